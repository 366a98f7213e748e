"""The served prediction model's input handling: every error path names the row and the problem,
and good rows of any PNG/JPEG come back as text and confidence. A tiny untrained model, no MLflow."""

from __future__ import annotations

import base64

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
    model.charset = Charset(tuple("abcdefghij"))
    model.model = prediction_model(build_crnn(cfg, model.charset.num_classes))
    model.height, model.width = cfg.img_height, cfg.img_width
    return model


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


PNG = (DHSD / "images/writer1/1_0.png").read_bytes()


@pytest.mark.parametrize("value, says", [
    ("%%% not base64 %%%", "row 1 of column 'image': not valid base64"),
    (b64(b"GIF89a but not an image"), "row 1 of column 'image': not a decodable PNG or JPEG image"),
    ("", "row 1 of column 'image': empty file"),
    (None, "row 1 of column 'image': missing value \\(null\\)"),
    (12, "row 1 of column 'image': expected a base64 string, got int"),
])
def test_a_bad_row_is_named(pyfunc, value, says):
    with pytest.raises(InvalidImageError, match=says):
        pyfunc.predict(None, pd.DataFrame({"image": [b64(PNG), value]}))


def test_a_frame_without_the_image_column_is_refused(pyfunc):
    with pytest.raises(InvalidImageError, match=r"input has no column 'image'; columns: \['picture'\]"):
        pyfunc.predict(None, pd.DataFrame({"picture": [b64(PNG)]}))


def test_an_unknown_decoder_is_refused(pyfunc):
    with pytest.raises(ValueError, match="decoder='viterbi'"):
        pyfunc.predict(None, pd.DataFrame({"image": [b64(PNG)]}), params={"decoder": "viterbi"})


def test_good_rows_of_any_format_give_text_and_confidence(pyfunc):
    gray = cv2.imdecode(np.frombuffer(PNG, np.uint8), cv2.IMREAD_GRAYSCALE)
    jpeg = cv2.imencode(".jpg", cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))[1].tobytes()
    rgba = cv2.imencode(".png", cv2.cvtColor(gray, cv2.COLOR_GRAY2BGRA))[1].tobytes()
    sixteen = cv2.imencode(".png", gray.astype(np.uint16) * 257)[1].tobytes()
    rows = [b64(PNG), b64(jpeg), b64(rgba), b64(sixteen), PNG]  # raw bytes are accepted too
    for decoder in ("greedy", "beam"):
        out = pyfunc.predict(None, pd.DataFrame({"image": rows}), params={"decoder": decoder, "beam_width": 3})
        assert list(out.columns) == ["text", "confidence"] and len(out) == len(rows)
        assert out.text.map(lambda t: isinstance(t, str) and set(t) <= set("abcdefghij")).all()
        assert out.confidence.between(0.0, 1.0).all() and out.confidence.dtype == np.float64
    assert len(pyfunc.predict(None, pd.DataFrame({"image": []}))) == 0


def test_logged_prediction_model_is_code_not_a_pickle_and_loads_without_pickles(tracking_uri, tmp_path):
    """Models From Code: no pickle in the logged model, and a fresh process that refuses pickles
    (MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false) loads it and transcribes."""
    import os
    import subprocess
    import sys

    import keras
    import mlflow
    import yaml

    from hwr.config import ModelConfig
    from hwr.data.charset import Charset
    from hwr.mlflow.packaging import log_models
    from hwr.model.crnn import build_crnn

    keras.utils.set_random_seed(0)
    charset = Charset(tuple("abcdefghij"))
    cfg = ModelConfig(img_height=32, img_width=64, conv_filters=(4, 8), dense_units=8, lstm1_units=4, lstm2_units=4)
    with mlflow.start_run():
        models = log_models(build_crnn(cfg, charset.num_classes), charset, [str(DHSD / "images/writer1/1_0.png")])
    local = mlflow.artifacts.download_artifacts(models.prediction_uri, dst_path=str(tmp_path / "model"))
    files = {p.name for p in (tmp_path / "model").rglob("*")}
    assert "python_model.pkl" not in files and "model_code.py" in files
    flavor = yaml.safe_load(open(os.path.join(local, "MLmodel")))["flavors"]["python_function"]
    assert flavor["model_code_path"].endswith("model_code.py")
    script = ("import base64, sys, mlflow, pandas as pd; m = mlflow.pyfunc.load_model(sys.argv[1]); "
              "out = m.predict(pd.DataFrame({'image': [base64.b64encode(open(sys.argv[2], 'rb').read()).decode()]})); "
              "print('columns', list(out.columns), len(out))")
    done = subprocess.run([sys.executable, "-c", script, local, str(DHSD / "images/writer1/1_0.png")],
                          env=os.environ | {"MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false"}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "columns ['text', 'confidence'] 1" in done.stdout
