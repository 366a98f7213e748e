"""The ``predict`` verb: CSV, metrics, report artifacts, folder mode, several models, lexicon,
bad images, and the MLproject entry point. Two tiny models are trained once for the module."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import DHSD, ROOT, tiny_config, write_subset

from hwr.evaluation import metrics
from hwr.errors import ConfigError
from hwr.evaluation.scoring import confusions, summary_metrics
from hwr.evaluation.lexicon import Lexicon
from hwr.config import PredictConfig


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A tracking store holding ``hwr-crnn`` version 1 (a tiny model, one epoch) and version 2
    (the same model registered again: enough to compare two URIs, at no training cost)."""
    import mlflow

    from hwr.training.train import run_train

    root = tmp_path_factory.mktemp("predict_store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    subset = write_subset(DHSD, root / "subset.csv", {"train": 32, "val": 8, "test": 16})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.chdir(root)
        mlflow.set_tracking_uri(uri)
        result = run_train(tiny_config(subset, seed=1))
        mlflow.register_model(result.models.prediction_uri, "hwr-crnn")
    mlflow.set_tracking_uri(None)
    return {"uri": uri, "subset": subset}


@pytest.fixture
def use_store(store, tmp_path, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(store["uri"])
    yield store
    mlflow.set_tracking_uri(None)


def artifact_paths(client, run_id: str, path: str | None = None) -> set[str]:
    out = set()
    for item in client.list_artifacts(run_id, path):
        out |= artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return out


def read_csv(path) -> pd.DataFrame:
    """A predictions CSV: texts as written (empty stays ""), numbers as floats (empty: NaN)."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    for column in ("confidence", "edit_distance", "cer", "lexicon_similarity", "lexicon_edit_distance", "lexicon_cer"):
        if column in table:
            table[column] = pd.to_numeric(table[column], errors="coerce")
    return table


def test_lexicon_fixes_near_miss_and_leaves_far_one():
    lexicon = Lexicon(["Hauptstraße", "Berlin", "Mannheim", ""], threshold=0.8)
    assert len(lexicon) == 3
    assert lexicon.correct("Hauptstrase")[0] == "Hauptstraße"  # one edit in 11: similarity 0.91
    assert lexicon.correct("Mainz")[0] == "Mainz"  # closest is Mannheim, similarity 0.375: untouched
    assert lexicon.correct("Berlln") == ("Berlin", pytest.approx(5 / 6))
    assert lexicon.correct("Xyz")[0] == "Xyz"  # far from every entry: untouched
    assert lexicon.correct("Mannheim") == ("Mannheim", 1.0)
    assert Lexicon(["Berlin"], threshold=0.9).correct("Berlln")[0] == "Berlln"  # below the threshold


def test_evaluation_on_hand_made_strings():
    truths, preds = ["abc", "Abc.", "xy"], ["abd", "abc", "xy"]
    values = summary_metrics(truths, preds)
    assert values["cer"] == pytest.approx(3 / 9)
    assert values["exact_match"] == pytest.approx(1 / 3)
    assert values["off_by_one"] == pytest.approx(1 / 3)  # "abc"->"abd"; "Abc."->"abc" is 2 edits
    assert values["cer_case_insensitive"] == pytest.approx(2 / 9)
    assert values["cer_no_punct"] == pytest.approx(2 / 8)
    assert values["mean_sample_cer_ci_low"] <= values["mean_sample_cer"] <= values["mean_sample_cer_ci_high"]
    table = confusions(truths, preds)
    assert set(zip(table.kind, table.truth, table.predicted)) == {
        ("substitution", "c", "d"), ("substitution", "A", "a"), ("deletion", ".", "")}


@pytest.mark.slow
def test_predict_labelled_csv_metrics_and_report(use_store, tmp_path):
    from mlflow import MlflowClient

    from hwr.prediction.predict import run_predict

    labels = tmp_path / "labels.csv"
    rows = pd.read_csv(use_store["subset"], dtype=str, keep_default_na=False)
    rows = rows[rows.split == "test"]
    missing = pd.DataFrame([{**rows.iloc[0].to_dict(), "image": "images/nowhere/missing.png"}])
    pd.concat([rows, missing]).to_csv(labels, index=False)
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text("\n".join(rows.text), encoding="utf-8")
    out = tmp_path / "out" / "pred.csv"
    cfg = PredictConfig(model="models:/hwr-crnn/1", data=str(DHSD), labels=str(labels), split="test",
                        output=str(out), lexicon=str(lexicon), lexicon_threshold=0.0, batch_size=8)
    result = run_predict(cfg)

    table = read_csv(out)
    assert len(table) == len(rows) + 1
    assert (table.error != "").sum() == 1 and "does not exist" in table.error.iloc[-1]
    ok = table[table.error == ""]
    logged = MlflowClient().get_run(result.run_id).data.metrics
    assert logged["n_images"] == len(rows) + 1 and logged["n_unreadable"] == 1
    assert logged["cer"] == pytest.approx(metrics.cer(ok.truth, ok.prediction))
    assert logged["wer"] == pytest.approx(metrics.wer(ok.truth, ok.prediction))
    assert logged["exact_match"] == pytest.approx((ok.edit_distance == 0).mean())
    assert logged["mean_sample_cer"] == pytest.approx(ok.cer.mean())
    # threshold 0: every prediction becomes a lexicon entry, i.e. some true label
    assert set(ok.prediction_lexicon) <= set(rows.text)
    assert logged["lexicon_cer"] == pytest.approx(metrics.cer(ok.truth, ok.prediction_lexicon))
    run = MlflowClient().get_run(result.run_id)
    assert run.info.run_name.startswith("predict-dhsd-")
    assert f"CER {logged['cer']:.4f}" in run.data.tags["mlflow.note.content"]
    # the metrics are linked to the evaluated logged model too (its Models-tab metrics)
    import mlflow

    model_id = mlflow.pyfunc.load_model("models:/hwr-crnn/1").metadata.model_id
    linked = {m.key: m.value for m in mlflow.get_logged_model(model_id).metrics if m.run_id == result.run_id}
    assert linked["cer"] == pytest.approx(logged["cer"]) and linked["n_images"] == len(rows) + 1
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.name == "dhsd-test" and json.loads(dataset_input.dataset.source)["uri"] == str(labels)
    assert {m.dataset_name for m in mlflow.get_logged_model(model_id).metrics if m.key == "cer"} >= {"dhsd-test"}

    artifacts = artifact_paths(MlflowClient(), result.run_id)
    assert {"pred.csv", "report/report.html", "report/cer_distribution.png", "report/cer_by_length.png",
            "report/confusions.png", "report/worst_hwr-crnn_v1.png"} <= artifacts
    html = (tmp_path / "out" / "pred_report" / "report.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") >= 5 and "exact_match" in html


@pytest.mark.slow
def test_unlabelled_folder_with_a_corrupt_image(use_store, tmp_path):
    from mlflow import MlflowClient

    from hwr.prediction.predict import run_predict

    folder = tmp_path / "scans"
    (folder / "sub").mkdir(parents=True)
    sources = sorted((DHSD / "images").rglob("*.png"))[:3]
    for i, src in enumerate(sources):
        shutil.copy(src, (folder / "sub" if i else folder) / f"img{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG not really an image")
    (folder / "notes.txt").write_text("not an image")
    result = run_predict(PredictConfig(model="models:/hwr-crnn@champion", data=str(folder),
                                       output=str(tmp_path / "p.csv")))

    table = read_csv(tmp_path / "p.csv")
    assert table.image.tolist() == sorted(["img0.png", "broken.png", "sub/img1.png", "sub/img2.png"])
    assert "truth" not in table and "cer" not in table
    broken = table[table.image == "broken.png"].iloc[0]
    assert "cannot read image" in broken.error and broken.prediction == ""
    assert (table.error == "").sum() == 3
    logged = MlflowClient().get_run(result.run_id).data.metrics
    assert logged["n_unreadable"] == 1 and "cer" not in logged
    assert "report/report.html" in artifact_paths(MlflowClient(), result.run_id)


@pytest.mark.slow
def test_spark_backend_gives_the_same_table_as_local(use_store, tmp_path):
    pytest.importorskip("pyspark")
    from hwr.prediction.predict import run_predict

    folder = tmp_path / "scans"
    folder.mkdir()
    for i, src in enumerate(sorted((DHSD / "images").rglob("*.png"))[:5]):
        shutil.copy(src, folder / f"img{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG not really an image")
    common = dict(model="models:/hwr-crnn@champion", data=str(folder), batch_size=2)
    run_predict(PredictConfig(**common, output=str(tmp_path / "local.csv")))
    result = run_predict(PredictConfig(**common, output=str(tmp_path / "spark.csv"), backend="spark",
                                       spark_master="local[2]"))

    local, spark = read_csv(tmp_path / "local.csv"), read_csv(tmp_path / "spark.csv")
    assert spark.image.tolist() == local.image.tolist() and len(spark) == 6
    assert spark.prediction.tolist() == local.prediction.tolist()
    assert spark.error.tolist() == local.error.tolist() and (spark.error != "").sum() == 1
    assert spark.confidence.to_numpy() == pytest.approx(local.confidence.to_numpy(), abs=1e-5, nan_ok=True)
    assert result.metrics["hwr-crnn@champion"]["n_unreadable"] == 1


@pytest.mark.slow
def test_two_models_parent_and_children(use_store, tmp_path):
    from mlflow import MlflowClient

    from hwr.prediction.predict import run_predict

    out = tmp_path / "cmp.csv"
    result = run_predict(PredictConfig(model="models:/hwr-crnn/1, models:/hwr-crnn/2", data=str(DHSD),
                                       labels=str(use_store["subset"]), split="test", output=str(out),
                                       decoder="beam", beam_width=4))
    client = MlflowClient()
    parent = client.get_run(result.run_id)
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'")
    assert sorted(c.data.params["model"] for c in children) == ["models:/hwr-crnn/1", "models:/hwr-crnn/2"]
    for child in children:
        label = child.info.run_name
        table = read_csv(tmp_path / f"cmp_{label}.csv")
        assert len(table) == 16
        assert child.data.metrics["cer"] == pytest.approx(metrics.cer(table.truth, table.prediction))
        assert f"cmp_{label}.csv" in artifact_paths(client, child.info.run_id)
    assert parent.data.params["decoder"] == "beam"
    parent_artifacts = artifact_paths(client, result.run_id)
    assert {"summary.csv", "report/report.html", "report/worst_hwr-crnn_v1.png",
            "report/worst_hwr-crnn_v2.png"} <= parent_artifacts


def test_bad_model_uri_is_a_config_error(tracking_uri, dhsd_subset, tmp_path):
    from hwr.prediction.predict import run_predict

    with pytest.raises(ConfigError, match="nope"):
        run_predict(PredictConfig(model="models:/nope/1", data=str(DHSD), labels=str(dhsd_subset),
                                  output=str(tmp_path / "x.csv")))
    with pytest.raises(ConfigError, match="decoder"):
        PredictConfig(decoder="viterbi").validate()


@pytest.mark.slow
def test_a_verb_run_directly_goes_to_the_hwr_experiment_unless_told_otherwise(use_store, tmp_path):
    from mlflow import MlflowClient

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_EXPERIMENT")}
    env.update(MLFLOW_TRACKING_URI=use_store["uri"], PYTHONPATH=str(ROOT))  # artifacts under tmp_path
    command = [sys.executable, "-m", "entrypoints.predict", "--model", "models:/hwr-crnn/1", "--data", str(DHSD),
               "--labels", str(use_store["subset"]), "--max_images", "2", "--system_metrics", "false"]
    for extra, experiment in (({}, "hwr"), ({"MLFLOW_EXPERIMENT_NAME": "letters"}, "letters")):
        done = subprocess.run(command + ["--output", str(tmp_path / f"{experiment}.csv")], cwd=tmp_path,
                              env={**env, **extra}, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        found = MlflowClient().get_experiment_by_name(experiment)
        assert found is not None and len(MlflowClient().search_runs([found.experiment_id])) == 1


@pytest.mark.slow
def test_generate_dockerfile_for_the_served_model(use_store, tmp_path):
    """`mlflow models generate-dockerfile` writes a Dockerfile and the model, whose requirements are
    the project's pins (no Docker needed; building the image is the next test's)."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "MLFLOW_TRACKING_URI": use_store["uri"]}
    done = subprocess.run([str(bin_dir / "mlflow"), "models", "generate-dockerfile", "-m", "models:/hwr-crnn/1",
                           "-d", str(tmp_path / "docker")], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    dockerfile = (tmp_path / "docker" / "Dockerfile").read_text()
    pins = {line.split("==")[0]: line for line in (ROOT / "requirements.txt").read_text().split() if "==" in line}
    assert "COPY model_dir /opt/ml/model" in dockerfile and "_install_pyfunc_deps" in dockerfile
    assert f"pip install {pins['mlflow']}" in dockerfile
    requirements = (tmp_path / "docker" / "model_dir" / "requirements.txt").read_text().split()
    assert pins["tensorflow-cpu"] in requirements and pins["opencv-python-headless"] in requirements
    assert (tmp_path / "docker" / "model_dir" / "MLmodel").is_file()


@pytest.mark.slow
def test_build_docker_where_a_docker_daemon_answers(use_store, tmp_path):
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "info"], capture_output=True, timeout=60).returncode != 0:
        pytest.skip("no Docker daemon answers on this machine: `mlflow models build-docker` cannot be tried here")
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "MLFLOW_TRACKING_URI": use_store["uri"]}
    done = subprocess.run([str(bin_dir / "mlflow"), "models", "build-docker", "-m", "models:/hwr-crnn/1",
                           "-n", "hwr-crnn-test"], env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_mlflow_run_entry_point(use_store, tmp_path):
    from mlflow import MlflowClient

    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "MLFLOW_TRACKING_URI": use_store["uri"], "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    out = tmp_path / "e2e.csv"
    proc = subprocess.run(
        [str(bin_dir / "mlflow"), "run", ".", "-e", "predict", "--env-manager", "local",
         "-P", "model=models:/hwr-crnn@champion", "-P", f"data={DHSD}", "-P", f"labels={use_store['subset']}",
         "-P", "split=test", "-P", "max_images=8", "-P", f"output={out}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(read_csv(out)) == 8
    runs = MlflowClient().search_runs(["0"], filter_string="tags.`hwr.verb` = 'predict' and params.max_images = '8'")
    assert runs and runs[0].data.metrics["n_images"] == 8
