"""`train -P max_minutes=...`: the learning rate planned to the deadline, training stopped there."""

from __future__ import annotations

import pytest

from conftest import DHSD, tiny_config, write_subset


def test_budget_learning_rate_warms_up_then_follows_a_cosine_to_the_deadline():
    from hwr.training.callbacks import budget_learning_rate

    lr = 0.01
    assert budget_learning_rate(0.0, lr) == pytest.approx(0.001)   # lr / 10
    assert budget_learning_rate(0.025, lr) == pytest.approx(0.0055)  # half-way through the warm-up
    assert budget_learning_rate(0.05, lr) == pytest.approx(0.01)   # the peak
    assert budget_learning_rate(0.525, lr) == pytest.approx((0.01 + 0.0005) / 2)  # half-way down the cosine
    assert budget_learning_rate(1.0, lr) == pytest.approx(0.0005)  # lr / 20 at the deadline
    assert budget_learning_rate(1.7, lr) == pytest.approx(0.0005)  # past it: stays there


def test_finetune_budget_goes_to_phase_two_less_what_phase_one_took():
    from hwr.config import FinetuneConfig
    from hwr.training.finetune import phase_minutes

    budget = FinetuneConfig().replace(max_minutes=2.0)
    assert phase_minutes(budget, 1, 0.0) == 0.0  # phase 1 runs its epochs, unplanned
    assert phase_minutes(budget, 2, 30.0) == pytest.approx(1.5)
    assert phase_minutes(budget, 2, 0.0) == pytest.approx(2.0)  # phase 1 skipped
    assert phase_minutes(budget, 2, 150.0) < 0  # phase 1 used it all: phase 2 is skipped
    assert phase_minutes(FinetuneConfig(), 2, 30.0) == 0.0  # no budget


def test_time_budget_sets_the_rate_stops_at_the_deadline_and_counts_earlier_time():
    import keras

    from hwr.training.callbacks import TimeBudget

    now = [100.0]
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    budget = TimeBudget(60.0, 0.01, clock=lambda: now[0])
    budget.set_model(model)
    budget.on_train_begin()
    now[0] += 31.5  # 52.5 % of the budget
    budget.on_train_batch_begin(0)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.00525)
    budget.on_train_batch_end(0)
    assert not model.stop_training
    resumed = TimeBudget(60.0, 0.01, clock=lambda: now[0])  # a resumed run: 31.5 s spent before
    resumed.set_model(model)
    resumed.on_train_begin()
    resumed.set_state(budget.get_state())
    now[0] += 28.5
    resumed.on_train_batch_end(0)
    assert resumed.reached and model.stop_training


@pytest.mark.slow
def test_train_with_a_time_budget_stops_at_it_with_its_best_weights(tmp_path, tracking_uri):
    from mlflow import MlflowClient

    from hwr.training.train import run_train

    labels = write_subset(DHSD, tmp_path / "subset.csv", {"train": 64, "val": 16, "test": 16})
    cfg = tiny_config(labels, epochs=500, max_minutes=0.5, register=False)
    result = run_train(cfg)
    client = MlflowClient(tracking_uri)
    run = client.get_run(result.run_id)
    epochs = len(client.get_metric_history(result.run_id, "val_cer"))
    assert run.info.status == "FINISHED" and 1 < epochs < 500
    assert run.data.params["max_minutes"] == "0.5"
    rates = [m.value for m in sorted(client.get_metric_history(result.run_id, "learning_rate"), key=lambda m: m.step)]
    # Decaying to the deadline: the last rate is the lowest, below the peak. On a loaded host the
    # first epoch (tracing included) took over 15 s (three pytest workers on 2 cores), so the budget
    # is 30 s and only two epochs may be logged.
    assert rates[-1] == min(rates) and rates[-1] < max(rates) < cfg.lr
    # The epochs end within the budget plus the cut epoch's tail (its batch, validation and checkpoint):
    # the first epoch ends after training began, so the span from it to the last is at most that.
    ends = sorted(m.timestamp for m in client.get_metric_history(result.run_id, "val_cer"))
    assert (ends[-1] - ends[0]) / 1000 < 30 + 20
    # The whole run adds loading and the test-set evaluation and model logging: 106 s in all once on
    # the AVX2-only host under CI's load; without the budget its 500 epochs would take far longer.
    assert run.data.metrics["train_time_s"] < 30 + 120
