"""End to end: `mlflow run . -e train` on a DHSD subset into a temporary tracking store, read back
through MlflowClient; both registered models reload in fresh processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from conftest import DHSD, ROOT, TINY_MODEL

MLFLOW = str(Path(sys.executable).parent / "mlflow")


def mlflow_run(entry: str, params: dict, env: dict) -> subprocess.CompletedProcess:
    args = [MLFLOW, "run", str(ROOT), "-e", entry, "--env-manager", "local", "--experiment-name", "e2e"]
    for key, value in params.items():
        args += ["-P", f"{key}={value}"]
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def fresh_python(code: str, env: dict) -> str:
    """Run code in a new interpreter with nothing of hwr imported; returns its stdout."""
    done = subprocess.run([sys.executable, "-c", code], cwd="/", env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny `mlflow run . -e train` (2 epochs) into a temporary tracking store."""
    tmp = tmp_path_factory.mktemp("e2e")
    from conftest import write_subset

    labels = write_subset(DHSD, tmp / "subset.csv", {"train": 48, "val": 16, "test": 16})
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}", "TF_CPP_MIN_LOG_LEVEL": "2",
           "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "1",  # default 10 s: longer than this tiny run
           # `mlflow run --env-manager local` runs the entry point with the `python` on PATH
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    params = {"data": str(DHSD), "labels": str(labels), "epochs": 2, "max_minutes": 0, "patience": 0, "batch_size": 16,
              **TINY_MODEL, "dropout": 0.1}
    done = mlflow_run("train", params, env)
    assert done.returncode == 0, done.stderr[-4000:]
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    run = client.search_runs([client.get_experiment_by_name("e2e").experiment_id])[0]
    return {"env": env, "client": client, "run": run, "params": params, "labels": labels}


@pytest.mark.slow
def test_run_logs_params_epoch_metrics_and_artifacts(trained):
    run, client = trained["run"], trained["client"]
    assert run.info.status == "FINISHED"
    for key in ("lr", "batch_size", "epochs", "conv_filters", "img_height", "seed", "patience", "dropout"):
        assert key in run.data.params
    assert run.data.params["conv_filters"] == "16,32" and run.data.params["img_width"] == "128"
    for key in ("loss", "val_loss", "val_cer", "val_wer"):
        history = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in history] == [0, 1], key
    assert 0.0 <= run.data.metrics["test_cer"] and "test_wer" in run.data.metrics
    assert 0.0 <= run.data.metrics["test_cer_beam_lm"] and "test_wer_beam_lm" in run.data.metrics
    assert {"test_cer_tta", "test_wer_tta", "test_cer_beam_lm_tta", "test_wer_beam_lm_tta"} <= set(run.data.metrics)
    assert run.data.metrics["n_train"] == 48 and run.data.metrics["skipped_rows"] == 0
    system = client.get_metric_history(run.info.run_id, "system/cpu_utilization_percentage")
    assert len(system) >= 2 and all(0 <= m.value <= 100 * os.cpu_count() for m in system)
    assert run.data.metrics["system/system_memory_usage_megabytes"] > 0
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"charset.json", "history.csv", "config.json"} <= artifacts
    charset = json.loads(Path(client.download_artifacts(run.info.run_id, "charset.json")).read_text())
    assert charset["blank"] == 0 and "ö" in charset["chars"]


@pytest.mark.slow
def test_both_models_registered_with_alias_and_tags(trained):
    client, run = trained["client"], trained["run"]
    for name in ("hwr-crnn", "hwr-crnn-full"):
        version = client.get_model_version(name, "1")
        assert version.run_id == run.info.run_id
        assert float(version.tags["test_cer"]) == pytest.approx(run.data.metrics["test_cer"], abs=1e-4)
        assert float(version.tags["val_cer"]) == pytest.approx(run.data.metrics["best_val_cer"], abs=1e-4)
        assert str(client.get_model_version_by_alias(name, "champion").version) == "1"


@pytest.mark.slow
def test_run_and_versions_are_named_and_described_with_the_data_licence(trained):
    from hwr.training.steps import MODEL_DESCRIPTIONS

    client, run = trained["client"], trained["run"]
    assert run.info.run_name.startswith("train-dhsd-")
    note = run.data.tags["mlflow.note.content"]
    assert f"test CER {run.data.metrics['test_cer']:.4f}" in note
    assert "`hwr-crnn` version 1" in note and "`hwr-crnn-full` version 1" in note
    for name, kind in (("hwr-crnn", "prediction"), ("hwr-crnn-full", "full")):
        version = client.get_model_version(name, "1")
        assert run.info.run_id in version.description
        assert "Creative Commons Attribution 4.0" in version.description and "Nauman Riaz" in version.description
        assert client.get_registered_model(name).description == MODEL_DESCRIPTIONS[kind]
    inputs = {i.tags[0].value if i.tags else "": i.dataset for i in run.inputs.dataset_inputs}
    assert sorted(inputs) == ["test", "train", "val"]
    assert {d.name for d in inputs.values()} == {"dhsd-train", "dhsd-val", "dhsd-test"}
    assert inputs["train"].source and "subset.csv" in inputs["train"].source and len(inputs["train"].digest) == 16
    summary = Path(client.download_artifacts(run.info.run_id, "model_summary.txt")).read_text()
    assert "bilstm1" in summary and "Total params" in summary


@pytest.mark.slow
def test_logged_models_show_the_metrics_of_their_best_epoch(tracking_uri, dhsd_subset):
    """Both models are logged at the best epoch's step, so the Models tab shows that epoch's
    val_cer (here epoch 2 of 3, not the first) and the run's test_cer, and search_logged_models
    ranks models by them. The epochs' metrics are scripted; the model, data and logging are real."""
    import mlflow
    import pandas as pd

    from conftest import tiny_config
    from hwr.data.dataset import prepare_data
    from hwr.training.steps import build_model, log_results

    cfg = tiny_config(dhsd_subset)
    data = prepare_data(cfg.data, cfg.model, cfg.seed)
    with mlflow.start_run() as run:
        for step, value in enumerate([1.0, 0.4, 0.7]):
            mlflow.log_metric("val_cer", value, step=step)
        result = log_results(build_model(cfg, data.charset), data, pd.DataFrame({"epoch": [1, 2, 3]}), 0.4, 2)
    test_cer = mlflow.get_run(run.info.run_id).data.metrics["test_cer"]
    models = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list",
                                         order_by=[{"field_name": "metrics.test_cer", "ascending": True}])
    assert {m.model_id for m in models} == set(result.models.ids)
    for model in models:
        metrics = {(m.key, m.step): m.value for m in model.metrics}
        assert {k: v for k, v in metrics.items() if k[0] == "val_cer"} == {("val_cer", 1): pytest.approx(0.4)}
        assert metrics[("test_cer", 0)] == pytest.approx(test_cer)


@pytest.mark.slow
def test_prediction_model_transcribes_real_images_in_a_fresh_process(trained):
    import pandas as pd

    paths = [str(DHSD / p) for p in pd.read_csv(trained["labels"]).image.tail(3)]
    code = f"""
import base64, mlflow.pyfunc, pandas as pd
model = mlflow.pyfunc.load_model("models:/hwr-crnn/1")
frame = pd.DataFrame({{"image": [base64.b64encode(open(p, "rb").read()).decode() for p in {paths!r}]}})
out = model.predict(frame)
print(list(out.columns), len(out), out.confidence.between(0, 1).all(), out.text.map(type).eq(str).all())
print(model.metadata.get_input_schema().input_names())
"""
    out = fresh_python(code, trained["env"]).strip().splitlines()
    assert out[-2] == "['text', 'confidence', 'error'] 3 True True"
    assert out[-1] == "['image']"


@pytest.mark.slow
def test_full_model_reloads_and_trains_further_in_a_fresh_process(trained):
    code = """
import mlflow.tensorflow, numpy as np
model = mlflow.tensorflow.load_model("models:/hwr-crnn-full/1")
x = {"image": np.random.rand(4, 32, 128, 1).astype("float32"), "label": np.array([[1, 2, 3]] * 4, "int32")}
before = model.evaluate(x, verbose=0)
history = model.fit(x, epochs=3, verbose=0)
print(type(model.get_layer("ctc_loss")).__name__, np.isfinite(history.history["loss"]).all(), history.history["loss"][-1] < before)
"""
    assert fresh_python(code, trained["env"]).strip().splitlines()[-1] == "CTCLossLayer True True"


@pytest.mark.slow
def test_second_run_becomes_challenger_and_bad_input_fails_cleanly(trained, tmp_path):
    env = trained["env"]
    done = mlflow_run("train", {**trained["params"], "epochs": 1, "system_metrics": "false"}, env)
    assert done.returncode == 0, done.stderr[-3000:]
    client = trained["client"]
    second = client.search_runs([trained["run"].info.experiment_id], order_by=["start_time DESC"])[0]
    assert second.data.params["system_metrics"] == "false"
    assert not [k for k in second.data.metrics if k.startswith("system/")]
    assert str(client.get_model_version_by_alias("hwr-crnn", "challenger").version) == "2"
    assert str(client.get_model_version_by_alias("hwr-crnn", "champion").version) == "1"
    bad = mlflow_run("train", {**trained["params"], "text_col": "transcription"}, env)
    assert bad.returncode != 0
    assert "error: " in bad.stderr and "no column 'transcription' (parameter text_col)" in bad.stderr
    assert "hwr/data/" not in bad.stderr  # one clear line, not our stack trace
