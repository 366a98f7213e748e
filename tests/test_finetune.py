"""finetune: a tiny model trained on English Hooker lines, adapted to German DHSD words."""

from __future__ import annotations

import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import DHSD, HOOKER, ROOT, TINY_MODEL, tiny_config, write_subset

pytestmark = pytest.mark.slow  # every test here needs the module's store, which trains a model

GEOMETRY = dict(TINY_MODEL, img_width=256)  # Hooker lines are long: 64 CTC frames
BASE_FULL, BASE_PRED = "models:/hwr-crnn-full/1", "models:/hwr-crnn/1"
FROZEN = ("conv1", "bn1", "conv2", "bn2", "dense1", "bilstm1", "bilstm2")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A tracking store holding a tiny Hooker model registered as hwr-crnn-full/1 and hwr-crnn/1,
    and a DHSD subset (32/16/16) whose training labels hold characters Hooker's lack (äöüß...)."""
    import mlflow

    from hwr.training.train import run_train

    tmp = tmp_path_factory.mktemp("finetune")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    patch = pytest.MonkeyPatch()
    patch.setenv("MLFLOW_TRACKING_URI", uri)
    patch.chdir(tmp)
    mlflow.set_tracking_uri(uri)
    hooker = write_subset(HOOKER, tmp / "hooker.csv", {"train": 48, "val": 8, "test": 8})
    run_train(tiny_config(hooker, HOOKER, on_bad_input="skip", augment=False, **GEOMETRY))
    dhsd = write_subset(DHSD, tmp / "dhsd.csv", {"train": 32, "val": 16, "test": 16})
    yield {"tmp": tmp, "dhsd": dhsd, "uri": uri}
    mlflow.set_tracking_uri(None)
    patch.undo()


def finetune_config(store, **changes):
    from hwr.config import FinetuneConfig

    params = dict(base_model=BASE_FULL, data=str(DHSD), labels=str(store["dhsd"]), head_epochs=1,
                  full_epochs=1, batch_size=16, patience=0, augment=False)
    return FinetuneConfig().replace(**{**params, **changes}).validate()


def load(uri):
    import mlflow

    return mlflow.tensorflow.load_model(uri)


def n_runs():
    from mlflow import MlflowClient

    return len(MlflowClient().search_runs(["0"]))


@pytest.mark.parametrize("uri, says", [
    ("models:/no-such-model/1", "cannot find"),
    (BASE_PRED, "'prediction' model"),
    ("runs:/0123456789abcdef/full_model", "cannot find"),
])
def test_bad_base_model_is_refused_before_data_is_read(store, uri, says):
    from hwr.errors import ConfigError
    from hwr.training.finetune import run_finetune

    before = n_runs()
    cfg = finetune_config(store, base_model=uri, data=str(store["tmp"] / "no-such-folder"))
    with pytest.raises(ConfigError, match=says) as err:
        run_finetune(cfg)
    assert uri in str(err.value) and "\n" not in str(err.value)
    assert n_runs() == before  # refused before a run was even started


def test_cli_prints_one_line_for_a_prediction_model(store):
    proc = subprocess.run([sys.executable, str(ROOT / "entrypoints" / "finetune.py"), "--base_model", BASE_PRED,
                           "--data", "no-such-folder"], capture_output=True, text=True, cwd=store["tmp"])
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: base_model='{BASE_PRED}'") and "full model" in last
    assert "Traceback" not in proc.stderr


def test_unknown_freeze_until_lists_layer_names(store):
    from hwr.errors import ConfigError
    from hwr.training.finetune import run_finetune

    cfg = finetune_config(store, freeze_until="lstm9", data=str(store["tmp"] / "no-such-folder"))
    with pytest.raises(ConfigError, match="freeze_until='lstm9'.*bilstm1, .*bilstm2, output"):
        run_finetune(cfg)


def test_surgery_keeps_old_output_weights_and_freezes_up_to_the_recurrent_stack(store):
    from hwr.model import transfer
    from hwr.model.crnn import OUTPUT_LAYER

    base = load(BASE_FULL)
    old_kernel, old_bias = base.get_layer(OUTPUT_LAYER).get_weights()
    wide = transfer.rebuild_with_classes(base, old_kernel.shape[1] + 9, seed=1)
    kernel, bias = wide.get_layer(OUTPUT_LAYER).get_weights()
    assert kernel.shape == (old_kernel.shape[0], old_kernel.shape[1] + 9)
    np.testing.assert_array_equal(kernel[:, :old_kernel.shape[1]], old_kernel)
    np.testing.assert_array_equal(bias[:old_bias.shape[0]], old_bias)
    assert np.abs(kernel[:, old_kernel.shape[1]:]).sum() > 0  # new classes freshly initialised
    for name in FROZEN:
        for a, b in zip(base.get_layer(name).get_weights(), wide.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    assert transfer.model_config_of(wide) == transfer.model_config_of(base)
    assert tuple(transfer.freeze_until(wide)) == FROZEN
    assert {w.path.split("/")[0] for w in wide.trainable_weights} == {OUTPUT_LAYER}


def test_phase_one_extends_charset_and_trains_only_the_head(store):
    import mlflow
    from mlflow import MlflowClient

    from hwr.training.finetune import run_finetune
    from hwr.model.crnn import OUTPUT_LAYER

    result = run_finetune(finetune_config(store, head_epochs=2, full_epochs=0))
    base_chars = mlflow.models.get_model_info(BASE_FULL).metadata["charset"]
    info = mlflow.models.get_model_info("models:/hwr-crnn-full/2")
    chars = info.metadata["charset"]
    added = sorted(set("".join(write_subset_texts(store["dhsd"], "train"))) - set(base_chars))
    assert {"ä", "ö", "ü", "ß"} <= set(added)
    assert chars == base_chars + added  # old characters keep their ids; new ones appended
    run = MlflowClient().get_run(result.run_id)
    assert run.data.params["added_chars"] == "".join(added)
    assert run.data.params["img_width"] == "256"  # the base model's geometry
    assert "base_val_cer" in run.data.metrics and "test_cer" in run.data.metrics

    base, tuned = load(BASE_FULL), load("models:/hwr-crnn-full/2")
    for name in FROZEN:
        for a, b in zip(base.get_layer(name).get_weights(), tuned.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b, err_msg=f"frozen layer {name} changed in phase 1")
    old = base.get_layer(OUTPUT_LAYER).get_weights()[0]
    new = tuned.get_layer(OUTPUT_LAYER).get_weights()[0]
    assert new.shape[1] == len(chars) + 1
    assert not np.allclose(new[:, :old.shape[1]], old)  # the head did train


def write_subset_texts(csv, split):
    import pandas as pd

    table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    return table.loc[table.split == split, "text"].tolist()


def test_two_phases_continue_steps_and_register_with_lineage(store):
    from mlflow import MlflowClient

    from hwr.training.finetune import run_finetune

    client = MlflowClient()
    base_run = client.get_model_version("hwr-crnn-full", "1").run_id
    result = run_finetune(finetune_config(store, head_epochs=1, full_epochs=1, base_model="models:/hwr-crnn-full@champion"))
    run = client.get_run(result.run_id)
    assert run.data.tags["hwr.base_model"] == "models:/hwr-crnn-full@champion"
    assert run.data.tags["hwr.base_run_id"] == base_run
    assert run.data.params["base_model"] == "models:/hwr-crnn-full@champion"
    from mlflow.models import Model

    base_model_id = Model.load("models:/hwr-crnn-full/1").model_id
    assert [m.model_id for m in run.inputs.model_inputs] == [base_model_id]  # the base model is an input
    assert {i.dataset.name for i in run.inputs.dataset_inputs} == {"dhsd-train", "dhsd-val", "dhsd-test"}
    steps = lambda key: [(m.step, m.value) for m in client.get_metric_history(result.run_id, key)]
    assert [s for s, _ in steps("val_cer")] == [0, 1]
    assert steps("phase") == [(0, 1.0), (1, 2.0)]
    assert [s for s, _ in steps("phase1/val_cer")] == [0] and [s for s, _ in steps("phase2/val_cer")] == [1]
    for name in ("hwr-crnn-full", "hwr-crnn"):
        versions = client.search_model_versions(f"name='{name}'")
        newest = max(versions, key=lambda v: int(v.version))
        assert newest.run_id == result.run_id
        assert newest.tags["base_model"] == "models:/hwr-crnn-full@champion"
        assert newest.tags["base_run_id"] == base_run
        assert str(client.get_model_version_by_alias(name, "champion").version) == "1"  # base stays champion
        assert str(client.get_model_version_by_alias(name, "challenger").version) == str(newest.version)


def test_a_time_budget_plans_phase_two_and_stops_it_at_the_deadline(store):
    from mlflow import MlflowClient

    from hwr.training.finetune import run_finetune

    result = run_finetune(finetune_config(store, head_epochs=0, full_epochs=1000, full_lr=0.004, max_minutes=0.25,
                                          register=False))
    client = MlflowClient()
    epochs = client.get_metric_history(result.run_id, "val_cer")
    rates = [m.value for m in sorted(client.get_metric_history(result.run_id, "learning_rate"), key=lambda m: m.step)]
    assert 2 <= len(epochs) < 1000  # the deadline, not full_epochs, ended it
    assert max(rates) <= 0.004 + 1e-9 and rates[-1] < max(rates) / 2  # the cosine down towards full_lr / 20
    assert client.get_run(result.run_id).data.params["max_minutes"] == "0.25"


class Interrupt(keras.callbacks.Callback):
    """Stops the process (as a Ctrl-C would) when phase 2 begins its 2nd epoch."""

    def on_epoch_begin(self, epoch, logs=None):
        if self.model.get_layer("conv1").trainable and epoch == 1:
            raise KeyboardInterrupt


def test_interrupted_finetune_resumes_in_its_phase_with_the_earlier_best(store, monkeypatch):
    from mlflow import MlflowClient

    from hwr.training import finetune

    cfg = finetune_config(store, head_epochs=2, full_epochs=3, register=False)
    fit = finetune.fit
    monkeypatch.setattr(finetune, "fit", lambda *a, **k: fit(*a, **{**k, "callbacks": (Interrupt(),)}))
    with pytest.raises(KeyboardInterrupt):
        finetune.run_finetune(cfg)
    monkeypatch.setattr(finetune, "fit", fit)
    client = MlflowClient()
    run = client.search_runs(["0"], "tags.`hwr.verb` = 'finetune'", order_by=["attributes.start_time DESC"])[0]
    assert run.info.status == "KILLED"
    phase1 = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "phase1/val_cer")}
    assert sorted(phase1) == [0, 1]

    result = finetune.run_finetune(cfg.replace(resume_run_id=run.info.run_id))
    assert result.run_id == run.info.run_id
    resumed = client.get_run(run.info.run_id)
    assert resumed.info.status == "FINISHED" and resumed.data.tags["hwr.resumed_at_epoch"] == "3"
    steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "val_cer"))
    assert steps == [0, 1, 2, 3, 4]  # 2 + 3 epochs, none repeated
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "phase2/val_cer")) == [2, 3, 4]
    best = min(m.value for m in client.get_metric_history(run.info.run_id, "val_cer"))
    assert resumed.data.metrics["best_val_cer"] == pytest.approx(best)  # the best of both phases, phase 1's included
