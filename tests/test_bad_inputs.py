"""The bad-input catalogue: each case goes through the entry point a user would use (``train``'s
data, ``predict``'s data, the served model, a run) and must end in a clear error or a counted,
reported skip: never a stack trace from inside TensorFlow, never a silent skip, never a lost run.
"""

from __future__ import annotations

# --- training and predict data ---
# Shared by the cases below: real DHSD images copied into tmp_path, special images made from them,
# and (slow) one tiny model trained once, with on_bad_input=skip over a CSV holding every bad row.
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from conftest import DHSD, ROOT, TINY_MODEL, tiny_config  # noqa: E402
from hwr.config import DataConfig, ModelConfig, PredictConfig  # noqa: E402
from hwr.errors import BadInputError, TooManyUnreadable  # noqa: E402

SPECIAL_KINDS = ("16bit", "rgba", "cmyk", "1px", "20000px")
SOURCE_IMAGE = "images/writer1/1_0.png"
DECOMPOSED = "Mu\u0308ller"  # "u" + combining diaeresis: the same text as "Müller" in NFC


def dhsd_rows(per_split: dict[str, int], max_len: int = 24) -> pd.DataFrame:
    """The first DHSD rows of each split whose labels fit a tiny model (<= ``max_len`` characters)."""
    table = pd.read_csv(DHSD / "labels.csv", dtype=str, keep_default_na=False)
    table = table[table.text.str.len() <= max_len]
    return pd.concat([table[table.split == s].head(n) for s, n in per_split.items()])[["image", "text", "split"]]


def copy_images(folder: Path, images) -> Path:
    for rel in images:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(DHSD / rel, folder / rel)
    return folder


def write_special_image(folder: Path, kind: str) -> str:
    """A DHSD word image saved as 16-bit PNG, RGBA PNG, CMYK JPEG, 1 px wide or 20,000 px wide."""
    gray = cv2.imread(str(DHSD / SOURCE_IMAGE), cv2.IMREAD_GRAYSCALE)
    rel = f"special/{kind}.{'jpg' if kind == 'cmyk' else 'png'}"
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "16bit":
        cv2.imwrite(str(path), gray.astype(np.uint16) * 257)
    elif kind == "rgba":
        bgra = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGRA)
        bgra[:, :10, 3] = 0  # a transparent strip: white paper
        cv2.imwrite(str(path), bgra)
    elif kind == "cmyk":
        from PIL import Image

        Image.fromarray(gray).convert("CMYK").save(path, "JPEG", quality=95)
    elif kind == "1px":
        cv2.imwrite(str(path), gray[:, 100:101])
    else:
        cv2.imwrite(str(path), np.tile(gray, (1, 20_000 // gray.shape[1] + 1))[:, :20_000])
    return rel


def small_data_set(folder: Path, extra: list[dict] = ()) -> DataConfig:
    """One good DHSD row per split plus ``extra`` rows (default split train), as labels.csv."""
    rows = dhsd_rows({"train": 1, "val": 1, "test": 1})
    copy_images(folder, [*rows.image, SOURCE_IMAGE])
    table = pd.concat([rows, pd.DataFrame([{"split": "train", **r} for r in extra])], ignore_index=True)
    table.to_csv(folder / "labels.csv", index=False)
    return DataConfig(data=str(folder))


def prepare_small(cfg: DataConfig):
    from hwr.data.dataset import prepare_data

    return prepare_data(cfg, ModelConfig().replace(**TINY_MODEL), seed=1)


def link_outside(folder: Path, name: str = "linked") -> str:
    """A symbolic link inside ``folder`` to DHSD's image folder; returns an image path through it."""
    (folder / name).symlink_to(DHSD / "images", target_is_directory=True)
    return f"{name}/writer1/1_1.png"


@pytest.mark.parametrize("kind", SPECIAL_KINDS)
def test_train_data_decodes_and_uses_16bit_rgba_cmyk_and_extreme_widths(tmp_path, kind):
    from hwr.data.images import load_image

    rel = write_special_image(tmp_path, kind)
    data = prepare_small(small_data_set(tmp_path, [{"image": rel, "text": "Königshain-Wiederau"}]))
    assert not data.bad.rows
    assert rel in data.frames["train"].image.tolist() and data.images["train"].shape == (2, 32, 128)
    if kind in ("16bit", "rgba", "cmyk"):  # the same word, whatever the encoding
        original = cv2.imread(str(DHSD / SOURCE_IMAGE), cv2.IMREAD_GRAYSCALE).astype(float)
        decoded = load_image(tmp_path / rel).astype(float)
        if kind == "rgba":
            assert decoded[:, :10].min() == 255  # transparent: white paper
            decoded, original = decoded[:, 10:], original[:, 10:]
        assert np.abs(decoded - original).mean() < 3


def test_train_data_csv_that_is_not_utf8_is_one_clear_error(tmp_path):
    cfg = small_data_set(tmp_path)
    text = (tmp_path / "labels.csv").read_text(encoding="utf-8")
    (tmp_path / "labels.csv").write_bytes(text.encode("latin-1"))  # ö of Königshain as the byte 0xf6
    with pytest.raises(BadInputError) as info:
        prepare_small(cfg)
    message = str(info.value)
    assert str(tmp_path / "labels.csv") in message and "not UTF-8" in message and "byte 0xf6" in message
    assert "line 2" in message and "\n" not in message


def test_train_data_csv_with_a_byte_order_mark_is_read(tmp_path):
    cfg = small_data_set(tmp_path)
    text = (tmp_path / "labels.csv").read_text(encoding="utf-8")
    (tmp_path / "labels.csv").write_text(text, encoding="utf-8-sig")  # as Excel saves "CSV UTF-8"
    assert len(prepare_small(cfg).frames["train"]) == 1


def test_train_data_csv_without_the_named_columns(tmp_path):
    cfg = small_data_set(tmp_path)
    with pytest.raises(BadInputError, match=r"no column 'transcription' \(parameter text_col\); columns are "
                                            r"\['image', 'text', 'split'\]"):
        prepare_small(cfg.replace(text_col="transcription"))
    with pytest.raises(BadInputError, match=r"no column 'file' \(parameter image_col\)"):
        prepare_small(cfg.replace(image_col="file"))


def test_train_data_csv_with_only_a_header(tmp_path):
    cfg = small_data_set(tmp_path)
    cfg.labels_path().write_text("image,text,split\n", encoding="utf-8")
    with pytest.raises(BadInputError, match=r"labels.csv: no rows, only the header \['image', 'text', 'split'\]"):
        prepare_small(cfg)


ESCAPES = {"dotdot": "../../etc/passwd", "absolute": "/etc/passwd", "symlink": None}


@pytest.mark.parametrize("case", ESCAPES)
def test_train_data_paths_escaping_the_data_folder(tmp_path, case):
    folder = tmp_path / "data"
    folder.mkdir()
    image = ESCAPES[case] or link_outside(folder)
    cfg = small_data_set(folder, [{"image": image, "text": "Söllingen"}])
    with pytest.raises(BadInputError) as info:
        prepare_small(cfg)
    message = str(info.value)
    assert "row 5" in message and repr(image) in message and "outside the data folder" in message
    if case == "symlink":
        assert "symbolic link" in message and "allow_links_outside=true" in message
    # allow_links_outside follows symbolic links only: `..` and absolute paths stay refused
    allowed = cfg.replace(allow_links_outside=True, on_bad_input="skip")
    data = prepare_small(allowed)
    if case == "symlink":
        assert not data.bad.rows and image in data.frames["train"].image.tolist()
        assert data.frames["train"].set_index("image").path[image] == str((DHSD / "images/writer1/1_1.png").resolve())
    else:
        assert [b.reason for b in data.bad.rows] == [f"image path points outside the data folder "
                                                     f"{str(folder.resolve())!r}"]


def test_nfc_labels_charset_lexicon_and_scores(tmp_path):
    from hwr.evaluation import metrics
    from hwr.evaluation.lexicon import Lexicon
    from hwr.evaluation.scoring import confusions, per_sample, summary_metrics

    cfg = small_data_set(tmp_path, [{"image": SOURCE_IMAGE, "text": DECOMPOSED},
                                    {"image": SOURCE_IMAGE, "text": "Müller"}])
    data = prepare_small(cfg)
    assert data.texts("train")[1:] == ["Müller", "Müller"] and len(data.texts("train")[1]) == 6
    assert "ü" in data.charset.chars and "\u0308" not in data.charset.chars
    assert data.charset.encode(DECOMPOSED) == data.charset.encode("Müller") and not data.charset.unknown(DECOMPOSED)
    assert metrics.cer([DECOMPOSED], ["Müller"]) == 0 and metrics.wer([DECOMPOSED], ["Müller"]) == 0
    assert metrics.edit_distance(DECOMPOSED, "Muller") == 1
    assert per_sample([DECOMPOSED], ["Müller"])[0].tolist() == [0]
    assert summary_metrics([DECOMPOSED], ["Müller"])["exact_match"] == 1.0
    assert confusions([DECOMPOSED], ["Muller"]).values.tolist() == [["substitution", "ü", "u", 1]]
    assert Lexicon([DECOMPOSED]).correct("Müller") == ("Müller", 1.0)


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


# --- serving ---
# The scoring server's own request handling (mlflow.pyfunc.scoring_server.invocations, the function
# `mlflow models serve` runs per request), in this process, on a tiny logged prediction model: each
# malformed request must map to HTTP 400 (never 500) with a message naming the problem; bad rows
# inside a good frame must give 200 with a per-row error. tests/test_serving.py does a few of these
# through a real server.
import base64  # noqa: E402
import json  # noqa: E402


@pytest.fixture(scope="module")
def serving_model(tmp_path_factory):
    """A tiny untrained prediction model, logged (signature and all) and loaded as the server loads it."""
    import keras
    import mlflow

    from hwr.data.charset import Charset
    from hwr.mlflow.packaging import log_models
    from hwr.model.crnn import build_crnn

    root = tmp_path_factory.mktemp("serving")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    keras.utils.set_random_seed(0)
    charset = Charset(tuple("abcdefghij"))
    cfg = ModelConfig(img_height=32, img_width=64, conv_filters=(4, 8), dense_units=8, lstm1_units=4, lstm2_units=4)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setattr(sys, "path", list(sys.path))  # loading prepends the model's code/ folder
        mlflow.set_tracking_uri(uri)
        with mlflow.start_run():
            models = log_models(build_crnn(cfg, charset.num_classes), charset, [str(DHSD / SOURCE_IMAGE)])
        model = mlflow.pyfunc.load_model(models.prediction_uri)
    mlflow.set_tracking_uri(None)
    return model


def serve_once(model, body: bytes, content_type: str = "application/json") -> tuple[int, dict | str]:
    """What `mlflow models serve` answers to one POST /invocations: (HTTP status, parsed body)."""
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc import scoring_server

    try:
        answer = scoring_server.invocations(body, content_type, model, model.metadata.get_input_schema())
    except MlflowException as exc:  # the server's handler turns these into their HTTP status
        return exc.get_http_status_code(), json.loads(exc.serialize_as_json())
    return answer.status, (json.loads(answer.response) if answer.status == 200 else answer.response)


def serving_frame(cells: list, params: dict | None = None) -> bytes:
    body = {"dataframe_split": {"columns": ["image"], "data": [[c] for c in cells]}}
    return json.dumps({**body, **({"params": params} if params else {})}).encode()


SERVING_GOOD = base64.b64encode((DHSD / SOURCE_IMAGE).read_bytes()).decode()
MALFORMED_REQUESTS = {  # name: (body, content type, status, what the answer says)
    "not JSON": (b"{'image': not json", "application/json", 400, "valid JSON"),
    "not UTF-8": (bytes(range(256)) * 64, "application/json", 400, "valid JSON"),
    "a JSON list": (b"[1, 2, 3]", "application/json", 400, "Received a list"),
    "no image column": (json.dumps({"dataframe_split": {"columns": ["picture"], "data": [[SERVING_GOOD]]}}).encode(),
                        "application/json", 400, "missing inputs ['image']"),
    "no rows": (serving_frame([]), "application/json", 400, "the request has no rows"),
    "unknown decoder": (serving_frame([SERVING_GOOD], {"decoder": "viterbi"}), "application/json", 400,
                        "decoder='viterbi'"),
    "bad beam width": (serving_frame([SERVING_GOOD], {"decoder": "beam", "beam_width": 0}), "application/json", 400,
                       "beam_width=0"),
    "CSV without the column": (b"picture\nabc\n", "text/csv", 400, "missing inputs ['image']"),
}


@pytest.mark.parametrize("case", MALFORMED_REQUESTS)
def test_serving_a_malformed_request_is_400_with_its_reason(serving_model, case):
    body, content_type, status, says = MALFORMED_REQUESTS[case]
    got, answer = serve_once(serving_model, body, content_type)
    assert got == status, (case, got, answer)
    assert says in (answer["message"] if isinstance(answer, dict) else answer), answer


def test_serving_50_mb_of_garbage_is_400_not_a_crash(serving_model):
    got, answer = serve_once(serving_model, b"\x00garbage" * (50 * 1024 * 1024 // 8))
    assert got == 400 and "valid JSON" in answer["message"]


SERVING_BAD_CELLS = [  # (cell, what its row's error says)
    ("%%% not base64", "not valid base64"),
    (base64.b64encode(b"\x89PNG\r\n\x1a\n and nothing more").decode(), "not a decodable PNG or JPEG image"),
    ("", "empty file"),
    (None, "missing value (null)"),
    (12, "expected a base64 string, got int"),
    (1.5, "expected a base64 string, got float"),
    (True, "expected a base64 string, got bool"),
    (base64.b64encode(os.urandom(3 * 1024 * 1024)).decode(), "not a decodable PNG or JPEG image"),  # 4 MB cell
]


@pytest.mark.parametrize("content", ["dataframe_split", "dataframe_records", "inputs"])
def test_serving_bad_rows_get_200_and_an_error_each_the_good_rows_are_transcribed(serving_model, content):
    cells = [SERVING_GOOD] + [cell for cell, _ in SERVING_BAD_CELLS] + [SERVING_GOOD]
    body = {"dataframe_split": {"columns": ["image"], "data": [[c] for c in cells]},
            "dataframe_records": [{"image": c} for c in cells],
            "inputs": {"image": cells}}[content]
    got, answer = serve_once(serving_model, json.dumps({content: body}).encode())
    assert got == 200, answer
    rows = answer["predictions"]
    assert len(rows) == len(cells) and all(set(r) == {"text", "confidence", "error"} for r in rows)
    assert rows[0]["error"] == rows[-1]["error"] == "" and rows[0]["text"] == rows[-1]["text"]
    for row, (_, says) in zip(rows[1:-1], SERVING_BAD_CELLS):
        assert row["error"], row  # "inputs" turns numbers and nulls into strings: still a row error
        if content != "inputs":
            assert says in row["error"], row
        assert row["text"] == "" and row["confidence"] == 0.0

# --- runs: NaN loss, tracking server down ---

import time as _time  # noqa: E402

import keras as _keras  # noqa: E402
from mlflow import MlflowClient as _Client  # noqa: E402


class PoisonWeights(_keras.callbacks.Callback):
    """Makes the loss NaN from the 3rd batch of epoch 3 on (as an exploding gradient would): the
    learning rates that do so on a real CRNN differ by machine and data, the reaction must not."""

    def on_train_batch_begin(self, batch, logs=None):
        if self.params and getattr(self, "epoch", 0) == 2 and batch == 2:
            layer = self.model.get_layer("output")
            layer.set_weights([np.full_like(w, np.nan) for w in layer.get_weights()])

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch


@pytest.mark.slow
def test_nan_loss_fails_the_run_in_one_line_and_its_last_checkpoint_resumes(tmp_path, monkeypatch, capsys):
    import mlflow

    from hwr.errors import TrainingDiverged
    from hwr.training import train

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(uri)
    labels = tmp_path / "labels.csv"
    dhsd_rows({"train": 48, "val": 16, "test": 16}).to_csv(labels, index=False)
    cfg = tiny_config(labels, epochs=4, lr=0.002)
    fit = train.fit
    monkeypatch.setattr(train, "fit", lambda *a, **k: fit(*a, **{**k, "callbacks": (PoisonWeights(),)}))
    with pytest.raises(TrainingDiverged) as diverged:
        train.run_train(cfg)
    monkeypatch.setattr(train, "fit", fit)
    message = str(diverged.value)
    assert "\n" not in message and "in epoch 3, batch 3 (learning rate 0.002)" in message
    run_id = message.split("resume_run_id=")[1].split()[0]
    client = _Client(uri)
    run = client.get_run(run_id)
    assert run.info.status == "FAILED" and "marked FAILED" in message and "-P lr=0.0002" in message
    assert [m.step for m in client.get_metric_history(run_id, "val_cer")][:2] == [0, 1]

    result = train.run_train(cfg.replace(lr=0.0002, resume_run_id=run_id))  # the command the message gives
    assert result.run_id == run_id and client.get_run(run_id).info.status == "FINISHED"
    assert client.get_run(run_id).data.tags["hwr.resumed_at_epoch"] == "2"
    rates = {m.step: m.value for m in client.get_metric_history(run_id, "learning_rate")}
    assert rates[0] == pytest.approx(0.002) and rates[2] == pytest.approx(0.0002)
    mlflow.set_tracking_uri(None)


def test_tracking_server_down_is_one_line_naming_it_within_30_s(tmp_path):
    uri = "http://127.0.0.1:9"  # the discard port: nothing answers
    started = _time.monotonic()
    done = subprocess.run([sys.executable, "-m", "entrypoints.train", "--epochs", "1"], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": uri},
                          capture_output=True, text=True, timeout=120)
    took = _time.monotonic() - started
    assert done.returncode == 2 and took < 30, (took, done.stderr[-2000:])
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: tracking server {uri} did not answer within 10 s; start it, or point "
                      "MLFLOW_TRACKING_URI at one that runs"]
    assert "Traceback" not in done.stderr
