"""The bad-input catalogue, a run over bad rows and ``predict``'s data: one tiny model trained with
``on_bad_input=skip`` over a CSV holding every bad row counts and lists each; ``predict`` on held-out
splits, special images, paths that escape the data folder and unknown characters; too many
unreadable images fail the run; the CLIs end in one line. Each ends in a clear error or a counted,
reported skip, never a lost run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bad_data import SOURCE_IMAGE, SPECIAL_KINDS, copy_images, link_outside, small_data_set, write_special_image
from conftest import DHSD, ROOT, dhsd_rows, tiny_config
from hwr.config import PredictConfig
from hwr.errors import BadInputError, TooManyUnreadable


# Each bad row of the training CSV (the slow fixture below) and the reason bad_inputs.csv must give.
TRAIN_BAD_ROWS = [
    ({"image": "images/nowhere.png", "text": "Kiel"}, "image file does not exist"),
    ({"image": "images/corrupt.png", "text": "Kiel"}, "cannot read image"),
    ({"image": SOURCE_IMAGE, "text": ""}, "empty label"),
    ({"image": SOURCE_IMAGE, "text": "ie" * 16 + "i"}, "needs 33 CTC frames but the model emits 32"),
    ({"image": "../../etc/passwd", "text": "Kiel"}, "outside the data folder"),
    ({"image": "/etc/passwd", "text": "Kiel"}, "outside the data folder"),
    ({"image": "linked/writer1/1_1.png", "text": "Kiel"}, "symbolic link"),
    ({"image": SOURCE_IMAGE, "text": "Kiel", "split": "heldout"}, "split is 'heldout'"),
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny model (1 epoch) trained with on_bad_input=skip on 24/8/8 DHSD rows, the special
    images (train) and every row of TRAIN_BAD_ROWS; its tracking store, run and prediction model."""
    import mlflow

    from hwr.training.train import run_train

    root = tmp_path_factory.mktemp("bad_data")
    folder = root / "data"
    rows = dhsd_rows({"train": 24, "val": 8, "test": 8})
    copy_images(folder, rows.image)
    copy_images(folder, [SOURCE_IMAGE])
    (folder / "images/corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    link_outside(folder)
    specials = [{"image": write_special_image(folder, k), "text": "Königshain-Wiederau", "split": "train"}
                for k in SPECIAL_KINDS]
    bad = [{"split": "train", **row} for row, _ in TRAIN_BAD_ROWS]
    pd.concat([rows, pd.DataFrame(specials + bad)]).to_csv(folder / "labels.csv", index=False)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.chdir(root)
        mlflow.set_tracking_uri(uri)
        result = run_train(tiny_config(folder / "labels.csv", data=folder, on_bad_input="skip", register=False,
                                       system_metrics=False))
    mlflow.set_tracking_uri(None)
    return {"uri": uri, "folder": folder, "result": result, "specials": specials, "n_train": 24 + len(specials)}


@pytest.fixture
def in_store(trained, tmp_path, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained["uri"])
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(trained["uri"])
    yield trained
    mlflow.set_tracking_uri(None)


def run_of(result):
    from mlflow import MlflowClient

    return MlflowClient().get_run(result.run_id if hasattr(result, "run_id") else result)


@pytest.mark.slow
def test_train_skips_counts_and_lists_every_bad_row(in_store, tmp_path):
    import mlflow

    run = run_of(in_store["result"].run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["skipped_rows"] == len(TRAIN_BAD_ROWS)
    assert run.data.metrics["n_train"] == in_store["n_train"]  # 16-bit, RGBA, CMYK, 1 px, 20,000 px: used
    listed = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="bad_inputs.csv",
                                                             dst_path=str(tmp_path)), dtype=str, keep_default_na=False)
    assert len(listed) == len(TRAIN_BAD_ROWS)
    for row, reason in TRAIN_BAD_ROWS:
        assert any(got.file == row["image"] and reason in got.reason for got in listed.itertuples()), (row, listed)


def predict_cfg(trained, folder: Path, out: Path, **changes) -> PredictConfig:
    return PredictConfig(model=trained["result"].models.prediction_uri, data=str(folder), output=str(out),
                         system_metrics=False, **changes)


@pytest.mark.slow
def test_predict_heldout_split_special_images_escapes_and_unknown_characters(in_store, tmp_path):
    from hwr.prediction.predict import run_predict

    folder = in_store["folder"]  # the training folder: its images, special images and link
    rows = dhsd_rows({"test": 6})
    table = pd.concat([
        rows.assign(text=[t + ("§Ω" if i == 0 else "") for i, t in enumerate(rows.text)]),  # § and Ω: unknown
        pd.DataFrame(in_store["specials"]),
        pd.DataFrame([{"image": image, "text": "Kiel"} for image in
                      ("../../etc/passwd", "/etc/passwd", "linked/writer1/1_1.png", "images/nowhere.png")]),
    ]).assign(split="heldout")  # neither train, val nor test: with split=all it does not matter
    labels = tmp_path / "heldout.csv"
    table.to_csv(labels, index=False)
    out = tmp_path / "pred.csv"
    result = run_predict(predict_cfg(in_store, folder, out, labels=str(labels)))

    got = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert len(got) == len(table) and set(got.split) == {"heldout"}
    errors = dict(zip(got.image, got.error))
    assert all(errors[s["image"]] == "" for s in in_store["specials"])
    assert all(errors[i] == "" for i in rows.image)
    assert errors["../../etc/passwd"].startswith("image path points outside the data folder")
    assert errors["/etc/passwd"].startswith("image path points outside the data folder")
    assert "symbolic link" in errors["linked/writer1/1_1.png"]
    assert errors["images/nowhere.png"] == "image file does not exist"
    unknown = got.iloc[0]
    assert unknown.truth.endswith("§Ω") and int(unknown.edit_distance) >= 2 and float(unknown.cer) > 0
    metrics = run_of(result).data.metrics
    assert metrics["n_images"] == len(table) and metrics["n_unreadable"] == 4
    assert metrics["n_evaluated"] == len(table) - 4 and metrics["cer"] > 0

    with pytest.raises(BadInputError, match=r"split='test' matches no row of .*heldout.csv: its column 'split' "
                                            r"holds 'heldout' \(15 rows\); pass split=all"):
        run_predict(predict_cfg(in_store, folder, out, labels=str(labels), split="test"))
    allowed = run_predict(predict_cfg(in_store, folder, tmp_path / "allowed.csv", labels=str(labels),
                                      allow_links_outside=True))
    got = pd.read_csv(tmp_path / "allowed.csv", dtype=str, keep_default_na=False).set_index("image")
    assert got.error["linked/writer1/1_1.png"] == "" and got.error["/etc/passwd"] != ""
    assert run_of(allowed).data.metrics["n_unreadable"] == 3


@pytest.mark.slow
def test_predict_more_unreadable_than_max_unreadable_fails_the_run(in_store, tmp_path):
    import mlflow

    from hwr.prediction.predict import run_predict

    rows = dhsd_rows({"test": 2})
    missing = pd.DataFrame([{"image": f"images/gone{i}.png", "text": "Kiel", "split": "test"} for i in range(3)])
    labels = tmp_path / "labels.csv"
    pd.concat([rows, missing]).to_csv(labels, index=False)
    out = tmp_path / "pred.csv"
    with pytest.raises(TooManyUnreadable) as info:
        run_predict(predict_cfg(in_store, DHSD, out, labels=str(labels)))
    assert str(info.value) == ("3 of 5 images are unreadable, more than max_unreadable=0.5; most common reason "
                               f"(3 rows): image file does not exist; every row's reason is in the error column of {out}")
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                filter_string=f"params.output = '{out}'")
    assert run.info.status == "FAILED"
    assert run.data.metrics["n_unreadable"] == 3 and "pred.csv" in {a.path for a in
                                                                    mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert (pd.read_csv(out, dtype=str, keep_default_na=False).error != "").sum() == 3
    result = run_predict(predict_cfg(in_store, DHSD, tmp_path / "lenient.csv", labels=str(labels),
                                     max_unreadable=0.8))
    assert run_of(result).info.status == "FINISHED"


def run_entry_point(verb: str, args: list[str], uri: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m entrypoints.VERB`` run in ``cwd`` (where a new experiment's artifacts go)."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", f"entrypoints.{verb}", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_predict_cli_on_images_behind_a_link_fails_with_one_line_and_a_failed_run(in_store, tmp_path):
    """The issue's case: a data folder whose images are a link to another folder. Every row is
    refused, so the run fails (exit 2, one line, run FAILED, reasons in the CSV); with
    allow_links_outside=true the same folder is transcribed."""
    import mlflow

    from hwr.prediction.predict import run_predict

    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "images").symlink_to(DHSD / "images", target_is_directory=True)
    rows = dhsd_rows({"test": 4})
    rows.to_csv(folder / "labels.csv", index=False)
    out = tmp_path / "pred.csv"
    done = run_entry_point("predict", ["--model", in_store["result"].models.prediction_uri, "--data", str(folder),
                                       "--output", str(out), "--system_metrics", "false"], in_store["uri"], tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: all 4 images are unreadable; most common reason (4 rows): image path leads "
                           "through a symbolic link to ") and "allow_links_outside=true" in last
    assert "Traceback" not in done.stderr
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                filter_string=f"params.output = '{out}'")
    assert run.info.status == "FAILED" and run.data.metrics["n_unreadable"] == 4
    assert (pd.read_csv(out, dtype=str, keep_default_na=False).error.str.contains("symbolic link")).all()

    result = run_predict(predict_cfg(in_store, folder, out, allow_links_outside=True))
    assert run_of(result).data.metrics["n_unreadable"] == 0


@pytest.mark.slow
def test_train_cli_on_a_csv_that_is_not_utf8_exits_2_with_one_line(tmp_path):
    cfg = small_data_set(tmp_path / "data")
    labels = tmp_path / "data" / "labels.csv"
    labels.write_bytes(labels.read_text(encoding="utf-8").encode("cp1252"))
    done = run_entry_point("train", ["--data", cfg.data, "--epochs", "1", "--system_metrics", "false",
                                     "--register", "false"], f"sqlite:///{tmp_path / 'cli.db'}", tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {labels}: not UTF-8 text: byte 0xf6 at byte position ") and "(line 2," in last
    assert "Traceback" not in done.stderr
