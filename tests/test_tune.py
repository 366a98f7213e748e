"""The `tune` verb: nested trial runs, failed trials, resume, search-space validation, Spark."""

from __future__ import annotations

import json
import os
import pickle
import signal
from dataclasses import dataclass

import pytest

from conftest import DHSD, TINY_MODEL

SUBSET = {"max_evals": 3, "trial_epochs": 1, "patience": 0, "batch_size": 16, "seed": 42, **TINY_MODEL}


def tune_config(labels, tmp_path, space: dict | None = None, **changes):
    from hwr.tuning.config import TuneConfig

    flat = {"data": str(DHSD), "labels": str(labels), **SUBSET, **changes}
    if space is not None:
        (tmp_path / "space.json").write_text(json.dumps(space))
        flat["search_space"] = str(tmp_path / "space.json")
    return TuneConfig.from_flat(flat).validate()


def children(client, parent_id):
    from mlflow.entities import ViewType

    runs = client.search_runs([client.get_run(parent_id).info.experiment_id],
                              f"tags.mlflow.parentRunId = '{parent_id}'", run_view_type=ViewType.ALL)
    return sorted(runs, key=lambda r: r.info.start_time)


# ---- search-space files: validated before any trial ----

@pytest.mark.parametrize("params, message", [
    ({"learning_rate": [0.1]}, "unknown parameter"),
    ({"lr": {"type": "loguniform", "low": 0.0, "high": 0.01}}, "must be positive"),
    ({"lr": {"type": "uniform", "low": 0.01, "high": 0.001}}, "must be below high"),
    ({"dropout": {"type": "uniform", "low": 0.1, "high": 1.5}}, "dropout"),
    ({"batch_size": {"type": "uniform", "low": 8, "high": 64}}, "is an integer"),
    ({"activation": ["relu", "sparkle"]}, "sparkle"),
    ({"conv_filters": ["32,x"]}, "conv_filters"),
    ({"lr": {"type": "normal", "mu": 0.0}}, "type 'normal'"),
    ({"lr": {"type": "uniform", "low": 0.001}}, "needs high"),
    ({"kernel_size": 3}, "nothing to tune"),
])
def test_search_space_file_errors_name_the_parameter(tmp_path, params, message):
    from hwr.errors import ConfigError
    from hwr.tuning.space import load_space

    path = tmp_path / "space.yaml"
    path.write_text(json.dumps({"base": "none", "params": params}))  # JSON is valid YAML
    with pytest.raises(ConfigError, match=message) as info:
        load_space(path)
    assert str(path) in str(info.value)


def test_search_space_file_narrows_the_default(tmp_path):
    from hwr.tuning.space import DEFAULT_SPACE, hyperopt_space, load_space, to_params

    path = tmp_path / "space.yaml"
    path.write_text("params:\n  kernel_size: 5\n  batch_size: [8, 16]\n  lr: {type: loguniform, low: 1.0e-4, high: 1.0e-3}\n")
    space = load_space(path)
    assert set(space) == set(DEFAULT_SPACE)
    assert space["kernel_size"] == {"type": "fixed", "value": 5}
    from hyperopt.pyll.stochastic import sample

    drawn = to_params(sample(hyperopt_space(space)))
    assert drawn["kernel_size"] == 5 and drawn["batch_size"] in (8, 16) and 1e-4 <= drawn["lr"] <= 1e-3
    assert isinstance(drawn["dense_units"], int) and drawn["conv_filters"] in DEFAULT_SPACE["conv_filters"]["values"]


def test_bad_search_space_fails_before_any_trial(tmp_path, tracking_uri, dhsd_subset, capsys):
    """The whole verb, as the entry point runs it: one line, exit 2, and no run in the store."""
    from mlflow import MlflowClient

    from hwr.cli import run_cli
    from hwr.tuning.config import TuneConfig
    from hwr.tuning.search import run_tune

    (tmp_path / "bad.yaml").write_text("params:\n  lr: {type: loguniform, low: -1, high: 0.1}\n")
    cfg = TuneConfig.from_flat({"labels": str(dhsd_subset), "data": str(DHSD), "search_space": str(tmp_path / "bad.yaml")})
    with pytest.raises(SystemExit) as info:
        run_cli(lambda: run_tune(cfg))
    assert info.value.code == 2 and "'lr'" in capsys.readouterr().err
    assert not MlflowClient().search_runs(["0"])


# ---- real searches with tiny trials ----

@pytest.mark.slow
def test_tpe_search_nests_trials_and_registers_best_as_challenger(tmp_path, tracking_uri, dhsd_subset, capsys,
                                                                  monkeypatch):
    from mlflow import MlflowClient

    import hwr.training.train
    from hwr.tuning.search import run_tune

    def in_this_process(cfg, callbacks=(), resume=None):
        raise AssertionError("with isolate_trials (the default) a trial must not train in the search's process")

    monkeypatch.setattr(hwr.training.train, "train_and_log", in_this_process)

    space = {"base": "none", "params": {"lr": {"type": "loguniform", "low": 1e-3, "high": 1e-2},
                                        "dense_units": [16, 32]}}
    result = run_tune(tune_config(dhsd_subset, tmp_path, space, algo="tpe"))
    client = MlflowClient()
    parent = client.get_run(result.parent_run_id)
    kids = children(client, parent.info.run_id)
    assert len(kids) == 3 and all(k.info.status == "FINISHED" for k in kids)
    for kid in kids:
        assert kid.data.params["dense_units"] in ("16", "32") and "lr" in kid.data.params
        assert kid.data.params["epochs"] == "1" and 0 <= kid.data.metrics["val_cer"] <= 1.5
    assert kids[0].data.params["lr"] == "0.004" and kids[0].data.params["dense_units"] == "32"  # the baseline
    best = min(kids, key=lambda k: k.data.metrics["best_val_cer"])
    assert parent.data.metrics["best_val_cer"] == pytest.approx(best.data.metrics["best_val_cer"])
    assert parent.data.metrics["gain_over_baseline"] == pytest.approx(
        kids[0].data.metrics["best_val_cer"] - best.data.metrics["best_val_cer"])
    assert all(k.data.tags["hwr.trial_outcome"] == "completed" for k in kids)
    assert parent.data.tags["hwr.best_run_id"] == best.info.run_id == result.best_run_id
    assert parent.data.params["best_dense_units"] == best.data.params["dense_units"]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"trials.csv", "tuning_plot.png", "hyperopt"} <= artifacts
    for name in ("hwr-crnn", "hwr-crnn-full"):
        version = client.get_model_version_by_alias(name, "challenger")
        assert version.tags["run_id"] == best.info.run_id
    out = capsys.readouterr().out
    assert "trial 3/3: val_cer=" in out and "(best " in out


class Killed(BaseException):
    """Stands in for the process being killed mid-trial."""


@pytest.mark.slow
def test_failed_trial_is_marked_and_interrupted_search_resumes(tmp_path, tracking_uri, dhsd_subset, monkeypatch):
    import mlflow
    from mlflow import MlflowClient

    import hwr.training.train
    from hwr.tuning.search import run_tune
    from hwr.tuning.trials import TRIALS_ARTIFACT

    real, calls = hwr.training.train.train_and_log, []

    def train_and_log(cfg, callbacks=(), resume=None):
        calls.append(cfg.model.img_width)
        if len(calls) == 3:
            raise Killed()
        return real(cfg, callbacks, resume)

    monkeypatch.setattr(hwr.training.train, "train_and_log", train_and_log)
    # img_width=8 leaves 2 CTC frames: every DHSD word is too long, so that trial must fail.
    space = {"base": "none", "params": {"img_width": [128, 8], "lr": {"type": "loguniform", "low": 1e-3, "high": 1e-2}}}
    # in-process trials (isolate_trials=False), so that the patched train_and_log is the one called
    cfg = tune_config(dhsd_subset, tmp_path, space, algo="random", register=False, isolate_trials=False,
                      baseline_trial=False)
    with pytest.raises(Killed):
        run_tune(cfg)
    client = MlflowClient()
    parent_id = client.search_runs(["0"], "tags.`hwr.verb` = 'tune'")[0].info.run_id
    first = children(client, parent_id)
    assert [k.info.status for k in first] == ["FAILED", "FINISHED", "KILLED"]  # seed 42 draws img_width 8 first
    failed = first[0]
    assert failed.data.params["img_width"] == "8" and "CTC frames" in failed.data.tags["hwr.error"]
    assert "error.txt" in {a.path for a in client.list_artifacts(failed.info.run_id)}
    saved = pickle.loads(open(mlflow.artifacts.download_artifacts(run_id=parent_id, artifact_path=TRIALS_ARTIFACT), "rb").read())
    assert len(saved.trials) == 2

    calls.clear()
    result = run_tune(tune_config(dhsd_subset, tmp_path, space, algo="random", register=False,
                                  isolate_trials=False, baseline_trial=False, resume_run_id=parent_id))
    assert result.parent_run_id == parent_id and len(calls) == 1  # only the missing trial ran
    kids = children(client, parent_id)
    assert len(kids) == 4 and [k.info.run_id for k in kids[:2]] == [k.info.run_id for k in first[:2]]
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED" and parent.data.metrics["n_trials"] == 3
    ok = [k for k in kids if k.info.status == "FINISHED"]
    assert parent.data.metrics["best_val_cer"] == pytest.approx(min(k.data.metrics["best_val_cer"] for k in ok))


@pytest.mark.slow
def test_spark_backend_nests_parallel_trials(tmp_path, tracking_uri, dhsd_subset):
    pytest.importorskip("pyspark")
    from mlflow import MlflowClient

    from hwr.tuning.search import run_tune

    space = {"base": "none", "params": {"lr": {"type": "loguniform", "low": 1e-3, "high": 1e-2}}}
    cfg = tune_config(dhsd_subset, tmp_path, space, max_evals=2, backend="spark", parallelism=2,
                      spark_master="local[2]", register=False)
    result = run_tune(cfg)
    client = MlflowClient()
    parent = client.get_run(result.parent_run_id)
    kids = children(client, parent.info.run_id)
    assert len(kids) == 2 and all(k.info.status == "FINISHED" for k in kids)
    assert {k.info.experiment_id for k in kids} == {parent.info.experiment_id}
    assert parent.data.tags["hwr.best_run_id"] in {k.info.run_id for k in kids}
    assert result.n_ok == 2


def test_nan_training_loss_fails_the_trial(tracking_uri):
    import mlflow

    from hwr.mlflow import runs
    from hwr.errors import TrialFailed
    from hwr.tuning.objective import Objective

    with mlflow.start_run() as run:  # what a trial whose loss became NaN in epoch 2 leaves behind
        runs.log_metrics({"loss": 3.0, "val_cer": 0.9}, step=0)
        runs.log_metrics({"loss": float("nan"), "val_cer": 0.9}, step=1)
    with pytest.raises(TrialFailed, match="NaN/inf in 1 of 2 epochs"):
        Objective._check_finite(run.info.run_id, 0.9)
    with pytest.raises(TrialFailed, match="metric is nan"):
        Objective._check_finite(run.info.run_id, float("nan"))


@dataclass(frozen=True)
class DiesMidTrial:
    """An objective whose process is killed (as by the out-of-memory killer) after its run started."""

    tracking_uri: str
    parent_run_id: str

    def __call__(self, sample):
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.start_run(parent_run_id=self.parent_run_id, nested=True, run_name="trial")
        os.kill(os.getpid(), signal.SIGKILL)


def test_isolated_trial_whose_process_dies_is_failed_and_search_goes_on(tracking_uri):
    import mlflow
    from hyperopt import STATUS_FAIL
    from mlflow import MlflowClient

    from hwr.tuning.objective import LOST_TRIAL, IsolatedObjective

    with mlflow.start_run() as parent:
        result = IsolatedObjective(DiesMidTrial(mlflow.get_tracking_uri(), parent.info.run_id))({"lr": 0.001})
    assert result["status"] == STATUS_FAIL and result["error"] == LOST_TRIAL
    assert result["params"] == {"lr": 0.001}
    client = MlflowClient()
    [kid] = children(client, parent.info.run_id)
    assert kid.info.run_id == result["run_id"]
    assert kid.info.status == "FAILED" and kid.data.tags["hwr.error"] == LOST_TRIAL


# ---- searches on a budget: pruning, no-progress stop, baseline trial, time limit ----

def test_median_rule_prunes_only_a_trial_worse_than_earlier_ones_at_that_epoch():
    from hwr.tuning.pruning import prune_reason

    earlier = [[1.0, 0.8, 0.5, 0.3], [1.0, 0.9, 0.7, 0.4], [1.0, 0.6, 0.3]]
    assert prune_reason([1.0, 0.95], earlier) is None  # epochs 1-2 are the warm-up
    # epoch 3: median of 0.5, 0.7, 0.3 is 0.5; the trial's best so far 0.6 is worse
    assert prune_reason([1.0, 0.95, 0.6], earlier) == "epoch 3: best so far 0.6000 > median 0.5000 of 3 earlier trials"
    assert prune_reason([1.0, 0.45, 0.6], earlier) is None  # its best (0.45) counts, not its last value
    # epoch 4: only two earlier trials got there: median 0.35
    assert prune_reason([1.0, 0.9, 0.45, 0.36], earlier) is not None
    assert prune_reason([1.0, 0.9, 0.45, 0.36], earlier[:1]) is None  # fewer than two earlier trials
    assert prune_reason([1.0, 0.95, 0.6], earlier, epochs=3) is None  # its last epoch: a complete trial


def test_no_progress_counts_trials_since_the_best_and_failures_count_as_no_progress():
    from hyperopt import STATUS_FAIL, STATUS_OK, Trials

    from hwr.tuning.trials import trials_without_progress

    trials = Trials()
    docs = []
    for tid, loss in enumerate([0.5, 0.4, None, 0.45, 0.41]):
        result = {"status": STATUS_OK, "loss": loss} if loss is not None else {"status": STATUS_FAIL, "loss": None}
        docs.append({"state": 2, "tid": tid, "spec": None, "result": result, "owner": None, "version": 0,
                     "book_time": None, "refresh_time": None, "exp_key": None,
                     "misc": {"tid": tid, "cmd": None, "workdir": None, "idxs": {}, "vals": {}}})
    trials._insert_trial_docs(docs)
    trials.refresh()
    assert trials_without_progress(trials) == 3  # best is trial 2 (0.4); then a failure, 0.45 and 0.41


def test_baseline_point_is_the_runs_own_parameters_in_hyperopt_form(tmp_path, dhsd_subset):
    from hwr.tuning.trials import space_point

    space = {"base": "none", "params": {"lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2},
                                        "conv_filters": ["16,32", "32,64"], "kernel_size": 3}}
    cfg = tune_config(dhsd_subset, tmp_path, space, lr=0.002)
    assert space_point(cfg.train.flat_params(), cfg.space()) == {"lr": 0.002, "conv_filters": 0}  # a choice by its index
    assert space_point({"lr": "0.002", "conv_filters": "32,64"}, cfg.space()) == {"lr": 0.002, "conv_filters": 1}  # logged text
    cfg = tune_config(dhsd_subset, tmp_path, space, conv_filters="8,8")
    assert space_point(cfg.train.flat_params(), cfg.space()) is None


def test_deadline_stops_training_within_a_batch():
    import time

    import keras
    import numpy as np

    from hwr.training.callbacks import Deadline

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    deadline = Deadline(time.time() - 1)
    history = model.fit(np.zeros((64, 4)), np.zeros(64), batch_size=8, epochs=5, callbacks=[deadline], verbose=0)
    assert deadline.reached and len(history.history["loss"]) == 1


@pytest.mark.slow
def test_trial_worse_than_the_median_is_pruned_and_logged_as_done(tmp_path, tracking_uri, dhsd_subset):
    import mlflow
    from hyperopt import STATUS_OK
    from mlflow import MlflowClient

    from hwr.mlflow import runs
    from hwr.tuning.objective import Objective

    with mlflow.start_run() as parent:  # two completed earlier trials that reached val_cer 0.1 by epoch 3
        for _ in range(2):
            with mlflow.start_run(nested=True, tags={runs.TRIAL_OUTCOME: "completed"}):
                for step, value in enumerate([1.0, 0.5, 0.1, 0.05]):
                    mlflow.log_metric("val_cer", value, step=step)
    base = tune_config(dhsd_subset, tmp_path, trial_epochs=6).train
    result = Objective(base, "val_cer", mlflow.get_tracking_uri(), parent.info.experiment_id,
                       parent.info.run_id, prune=True)({"lr": 0.001})
    assert result["status"] == STATUS_OK and result["outcome"] == "pruned"
    run = MlflowClient().get_run(result["run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["hwr.trial_outcome"] == "pruned"
    assert run.data.tags["hwr.pruned"].startswith("val_cer, epoch 3: best so far")
    assert len(MlflowClient().get_metric_history(run.info.run_id, "val_cer")) == 3  # stopped after epoch 3


@pytest.mark.slow
def test_search_stops_at_its_time_budget(tmp_path, tracking_uri, dhsd_subset):
    import time

    from mlflow import MlflowClient

    from hwr.tuning.search import run_tune

    space = {"base": "none", "params": {"lr": {"type": "loguniform", "low": 1e-3, "high": 1e-2}}}
    started = time.monotonic()
    result = run_tune(tune_config(dhsd_subset, tmp_path, space, trial_epochs=500, patience=0, max_minutes=0.3,
                                  isolate_trials=False, register=False))
    elapsed = time.monotonic() - started
    client = MlflowClient()
    parent = client.get_run(result.parent_run_id)
    [kid] = children(client, result.parent_run_id)
    assert kid.data.tags["hwr.trial_outcome"] == "out_of_time" and kid.info.status == "FINISHED"
    assert parent.data.tags["hwr.search_stop"] == "time budget of 0.3 minutes reached after 1 trials"
    assert int(parent.data.metrics["n_trials"]) == 1 and elapsed < 18 + 60  # the budget plus setup and logging
