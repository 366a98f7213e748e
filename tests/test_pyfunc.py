"""The served prediction model's input handling: every error path names the row and the problem,
and good rows of any PNG/JPEG come back as text and confidence. A tiny untrained model, no MLflow."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from conftest import DHSD
from hwr.errors import InvalidImageError


@pytest.fixture(scope="module")
def pyfunc():
    import keras

    from hwr.config import ModelConfig
    from hwr.data.charset import Charset
    from hwr.mlflow.pyfunc import HwrPredictionModel
    from hwr.model.crnn import build_crnn, prediction_model

    keras.utils.set_random_seed(0)
    cfg = ModelConfig(img_height=32, img_width=64, conv_filters=(4, 8), dense_units=8, lstm1_units=4, lstm2_units=4)
    model = HwrPredictionModel()
    charset = Charset(tuple("abcdefghij"))
    model.use(prediction_model(build_crnn(cfg, charset.num_classes)), charset)
    return model


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


PNG = (DHSD / "images/writer1/1_0.png").read_bytes()


BAD_ROWS = [  # (cell, what its ``error`` says)
    ("%%% not base64 %%%", "not valid base64"),
    (b64(b"GIF89a but not an image"), "not a decodable PNG or JPEG image"),
    ("", "empty file"),
    (None, r"missing value \(null\)"),
    (float("nan"), r"missing value \(null\)"),
    (12, "expected a base64 string, got int"),
    (3.5, "expected a base64 string, got float"),
    ({"a": 1}, "expected a base64 string, got dict"),
]


def test_bad_rows_get_their_error_and_the_good_rows_are_still_transcribed(pyfunc):
    rows = [b64(PNG)] + [value for value, _ in BAD_ROWS] + [b64(PNG)]
    out = pyfunc.predict(None, pd.DataFrame({"image": rows}))
    assert list(out.columns) == ["text", "confidence", "error"] and len(out) == len(rows)
    assert out.error[0] == "" and out.error.iloc[-1] == ""
    assert out.text[0] == out.text.iloc[-1] and out.confidence[0] == out.confidence.iloc[-1] > 0
    for i, (_, says) in enumerate(BAD_ROWS, start=1):
        assert re.search(says, out.error[i]), (i, out.error[i])
        assert out.text[i] == "" and out.confidence[i] == 0.0


def test_a_request_that_is_bad_as_a_whole_is_refused_as_invalid_parameter(pyfunc):
    """The scoring server answers these with HTTP 400 and the message (see tests/test_serving.py)."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, ErrorCode

    cases = [(pd.DataFrame({"picture": [b64(PNG)]}), None, r"input has no column 'image'; columns: \['picture'\]"),
             (pd.DataFrame({"image": []}), None, "the request has no rows"),
             (pd.DataFrame({"image": [b64(PNG)]}), {"decoder": "viterbi"}, "decoder='viterbi'"),
             (pd.DataFrame({"image": [b64(PNG)]}), {"decoder": "beam", "beam_width": 0}, "beam_width=0")]
    for frame, params, says in cases:
        with pytest.raises(InvalidImageError, match=says) as caught:
            pyfunc.predict(None, frame, params=params)
        assert isinstance(caught.value, ValueError) and isinstance(caught.value, MlflowException)
        assert caught.value.error_code == ErrorCode.Name(INVALID_PARAMETER_VALUE)
        assert caught.value.get_http_status_code() == 400


def odd_images() -> dict[str, bytes]:
    """Valid but odd PNG/JPEG files: all must be transcribed."""
    from PIL import Image

    gray = cv2.imdecode(np.frombuffer(PNG, np.uint8), cv2.IMREAD_GRAYSCALE)
    cmyk = io.BytesIO()
    Image.fromarray(gray).convert("CMYK").save(cmyk, "JPEG")
    page = np.full((8000, 8000, 3), 255, np.uint8)
    page[3000:5000, 500:7500] = 0
    return {
        "jpeg": cv2.imencode(".jpg", cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))[1].tobytes(),
        "rgba": cv2.imencode(".png", cv2.cvtColor(gray, cv2.COLOR_GRAY2BGRA))[1].tobytes(),
        "16-bit": cv2.imencode(".png", gray.astype(np.uint16) * 257)[1].tobytes(),
        "16-bit RGB": cv2.imencode(".png", cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR).astype(np.uint16) * 257)[1].tobytes(),
        "CMYK JPEG": cmyk.getvalue(),
        "1 px wide": cv2.imencode(".png", gray[:, :1])[1].tobytes(),
        "1 x 1": cv2.imencode(".png", gray[:1, :1])[1].tobytes(),
        "20,000 px wide": cv2.imencode(".png", np.tile(gray, (1, 80)))[1].tobytes(),
        "8,000 x 8,000": cv2.imencode(".jpg", page)[1].tobytes(),
    }


def test_good_rows_of_any_format_and_size_give_text_and_confidence(pyfunc):
    odd = odd_images()
    rows = [b64(PNG)] + [b64(data) for data in odd.values()] + [PNG]  # raw bytes are accepted too
    for decoder in ("greedy", "beam"):
        out = pyfunc.predict(None, pd.DataFrame({"image": rows}), params={"decoder": decoder, "beam_width": 3})
        assert list(out.columns) == ["text", "confidence", "error"] and len(out) == len(rows)
        assert (out.error == "").all(), dict(zip(["png", *odd, "bytes"], out.error))
        assert out.text.map(lambda t: isinstance(t, str) and set(t) <= set("abcdefghij")).all()
        assert out.confidence.between(0.0, 1.0).all() and out.confidence.dtype == np.float64
    # the same image as PNG, RGBA and 16 bit is the same input to the model
    same = pyfunc.predict(None, pd.DataFrame({"image": [b64(PNG), b64(odd["rgba"]), b64(odd["16-bit"])]}))
    assert same.text.nunique() == 1 and same.confidence.max() - same.confidence.min() < 1e-5


# A fresh process without the installed hwr (the editable install's finder and any folder holding
# hwr leave the import system): the models' own code folders are all it can import hwr from.
WITHOUT_INSTALLED_HWR = """
import base64, importlib.util, os, sys
sys.meta_path = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")]
sys.path = [p for p in sys.path if not os.path.isdir(os.path.join(p or ".", "hwr"))]
assert importlib.util.find_spec("hwr") is None, "hwr is still importable"
import mlflow, pandas as pd
m = mlflow.pyfunc.load_model(sys.argv[1])
out = m.predict(pd.DataFrame({'image': [base64.b64encode(open(sys.argv[2], 'rb').read()).decode()]}))
os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"  # the full model's custom objects are cloudpickled
full = mlflow.tensorflow.load_model(sys.argv[3])
print('columns', list(out.columns), len(out), 'full', full.name)
print('hwr from', os.path.relpath(sys.modules['hwr'].__file__, sys.argv[1]))
print('imported', sorted(n for n in sys.modules if n.split('.')[0] == 'hwr'))
"""


def test_logged_models_carry_only_their_code_and_load_without_pickles_or_installed_hwr(tracking_uri, tmp_path):
    """Models From Code: no pickle in the logged prediction model. Each model carries as code only
    the hwr modules it can import (9 of the package's 78 files for the full model's custom layers, 19 for the
    pyfunc), and a fresh process that cannot import the installed hwr loads both: the pyfunc while
    it refuses pickles (MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false) and transcribes with it."""
    import os
    import subprocess
    import sys

    import keras
    import mlflow
    import yaml

    from hwr.config import ModelConfig
    from hwr.data.charset import Charset
    from hwr.mlflow.code_paths import import_closure, module_file
    from hwr.mlflow.packaging import log_models
    from hwr.model.crnn import build_crnn

    keras.utils.set_random_seed(0)
    charset = Charset(tuple("abcdefghij"))
    cfg = ModelConfig(img_height=32, img_width=64, conv_filters=(4, 8), dense_units=8, lstm1_units=4, lstm2_units=4)
    with mlflow.start_run():
        models = log_models(build_crnn(cfg, charset.num_classes), charset, [str(DHSD / "images/writer1/1_0.png")])
    local = mlflow.artifacts.download_artifacts(models.prediction_uri, dst_path=str(tmp_path / "model"))
    full = mlflow.artifacts.download_artifacts(models.full_uri, dst_path=str(tmp_path / "full"))
    files = {p.name for p in (tmp_path / "model").rglob("*")}
    assert "python_model.pkl" not in files and "model_code.py" in files
    flavor = yaml.safe_load(open(os.path.join(local, "MLmodel")))["flavors"]["python_function"]
    assert flavor["model_code_path"].endswith("model_code.py")
    for folder, root in ((local, "hwr.mlflow.model_code"), (full, "hwr.model.crnn")):
        code = {p.relative_to(Path(folder) / "code").as_posix() for p in (Path(folder) / "code").rglob("*.py")}
        assert code == {module_file(name).as_posix() for name in import_closure([root])}
        assert "hwr/model/crnn.py" in code and not any(f.startswith(("hwr/training", "hwr/tuning")) for f in code)
    done = subprocess.run([sys.executable, "-c", WITHOUT_INSTALLED_HWR, local, str(DHSD / "images/writer1/1_0.png"),
                           full], env=os.environ | {"MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false"}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "columns ['text', 'confidence', 'error'] 1 full crnn" in done.stdout
    assert "hwr from code/hwr/__init__.py" in done.stdout  # the model's copy, not the installed package


def test_logged_model_warms_up_on_load_and_turns_numbers_and_nulls_into_row_errors(tracking_uri):
    """Through ``mlflow.pyfunc.load_model`` (its schema enforcement included, as the scoring server
    does it): the signature names the ``error`` output; numbers and nulls in the string column ``image``
    reach the model and become row errors; loading traced the inference function already."""
    import keras
    import mlflow

    from hwr.config import ModelConfig
    from hwr.data.charset import Charset
    from hwr.mlflow.packaging import log_models
    from hwr.model.crnn import build_crnn
    from hwr.model.inference import inference_function

    keras.utils.set_random_seed(0)
    charset = Charset(tuple("abcdefghij"))
    cfg = ModelConfig(img_height=32, img_width=64, conv_filters=(4, 8), dense_units=8, lstm1_units=4, lstm2_units=4)
    with mlflow.start_run():
        models = log_models(build_crnn(cfg, charset.num_classes), charset, [str(DHSD / "images/writer1/1_0.png")])
    loaded = mlflow.pyfunc.load_model(models.prediction_uri)
    assert loaded.metadata.get_output_schema().input_names() == ["text", "confidence", "error"]
    assert [p.name for p in loaded.metadata.get_params_schema().params] == ["decoder", "beam_width", "tta"]
    inner = loaded.unwrap_python_model()
    assert inference_function(inner.model, (32, 64, 1)).experimental_get_tracing_count() == 1  # warmed up
    out = loaded.predict(pd.DataFrame({"image": [b64(PNG), 12, None, "", b64(PNG)]}))
    assert out.error.tolist()[:1] + out.error.tolist()[-1:] == ["", ""]
    assert "got int" in out.error[1] and "null" in out.error[2] and "empty" in out.error[3]
    assert inference_function(inner.model, (32, 64, 1)).experimental_get_tracing_count() == 1  # no retrace


def test_concurrent_requests_share_forward_passes_and_get_their_own_answers(pyfunc):
    """The scoring server runs requests in threads: answers must match the sequential ones."""
    from concurrent.futures import ThreadPoolExecutor

    paths = sorted((DHSD / "images/writer1").glob("*.png"))[:12]
    frames = [pd.DataFrame({"image": [b64(p.read_bytes())] * (1 + i % 3) + ["%%%"]}) for i, p in enumerate(paths)]
    sequential = [pyfunc.predict(None, f) for f in frames]
    with ThreadPoolExecutor(6) as pool:
        concurrent = list(pool.map(lambda f: pyfunc.predict(None, f), frames * 3))
    for got, want in zip(concurrent, sequential * 3):
        assert got.text.tolist() == want.text.tolist() and got.error.tolist() == want.error.tolist()
        assert np.allclose(got.confidence, want.confidence, atol=1e-5)


def test_a_free_width_model_gets_a_batch_padded_to_its_widest_image_rounded_to_the_stride():
    from hwr.mlflow.pyfunc import pad_batch

    narrow, wide = np.zeros((32, 10), np.float32), np.ones((32, 21), np.float32)
    batch, widths = pad_batch([narrow, wide], None, 4)
    assert batch.shape == (2, 32, 24, 1) and widths.tolist() == [10, 21]  # 21 px -> 24, the next multiple of 4
    assert batch[0, :, 10:].max() == 0.0 and batch[1, :, 21:].min() == 1.0  # each padded with its own background
    assert pad_batch([narrow, wide], 64, 4)[0].shape == (2, 32, 64, 1)  # a fixed-width model: its width


def test_logged_model_carries_its_language_model_and_decodes_with_it_on_request(tracking_uri):
    """``decoder=beam_lm`` through a logged model gives what the n-gram model of the texts it was
    logged with gives on the model's own probabilities; a model logged without one refuses it."""
    import keras
    import mlflow

    from hwr.config import ModelConfig
    from hwr.data.charset import Charset
    from hwr.mlflow.packaging import log_models
    from hwr.mlflow.pyfunc import InvalidRequestError
    from hwr.model.crnn import build_crnn
    from hwr.model.inference import predict_probs
    from hwr.model.language import LanguageModel

    keras.utils.set_random_seed(0)
    charset = Charset(tuple("abcdefghij"))
    texts = ["abba", "cab", "bad", "fig", "jig"] * 3
    cfg = ModelConfig(img_height=32, img_width=64, conv_filters=(4, 8), dense_units=8, lstm1_units=4, lstm2_units=4)
    full = build_crnn(cfg, charset.num_classes)
    with mlflow.start_run():
        with_lm = log_models(full, charset, [str(DHSD / "images/writer1/1_0.png")],
                             language=LanguageModel.from_texts(texts, charset))
        without = log_models(full, charset, [str(DHSD / "images/writer1/1_0.png")])
    frame = pd.DataFrame({"image": [b64(PNG), b64((DHSD / "images/writer1/1_1.png").read_bytes())]})
    inner = mlflow.pyfunc.load_model(with_lm.prediction_uri).unwrap_python_model()
    assert inner.language.ngram.texts == texts and inner.language.ngram.order == 6
    images, _, _ = inner.preprocess(frame.image)
    expected, _ = inner.language.decode(predict_probs(inner.model, images)[0], charset, beam_width=4)
    out = inner.predict(None, frame, params={"decoder": "beam_lm", "beam_width": 4})
    assert out.text.tolist() == expected and (out.error == "").all()
    plain = mlflow.pyfunc.load_model(without.prediction_uri).unwrap_python_model()
    with pytest.raises(InvalidRequestError, match="carries no language model"):
        plain.predict(None, frame, params={"decoder": "beam_lm"})
