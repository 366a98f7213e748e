"""Models registered before the package moved to subpackages keep loading, predicting and
fine-tuning. The fixture is a tiny model logged by main at commit 96b75d7 (flat ``hwr/``: its
pyfunc is pickled as ``hwr.serving.HwrPredictionModel``, its loss layer as ``hwr.model.CTCLossLayer``),
with the pyfunc's outputs on four DHSD images at the time (``expected.json``)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import pandas as pd
import pytest

from conftest import DHSD, ROOT, write_subset

LEGACY = ROOT / "tests" / "fixtures" / "legacy_models_96b75d7"
EXPECTED = json.loads((LEGACY / "expected.json").read_text(encoding="utf-8"))


def request() -> pd.DataFrame:
    return pd.DataFrame({"image": [base64.b64encode((DHSD / p).read_bytes()).decode() for p in EXPECTED["images"]]})


@pytest.fixture
def keep_sys_path(monkeypatch):
    """Loading a model prepends its code/ folder to sys.path; undo that after the test."""
    monkeypatch.setattr(sys, "path", list(sys.path))


def test_old_prediction_model_predicts_as_it_did_in_a_process_with_todays_hwr(keep_sys_path):
    import mlflow.pyfunc

    import hwr.mlflow.pyfunc

    model = mlflow.pyfunc.load_model(str(LEGACY / "model"))
    assert type(model.unwrap_python_model()) is hwr.mlflow.pyfunc.HwrPredictionModel  # via hwr.serving
    out = model.predict(request())
    assert out.text.tolist() == EXPECTED["text"]
    assert out.confidence.tolist() == pytest.approx(EXPECTED["confidence"], abs=1e-4)


def test_old_prediction_model_predicts_as_it_did_in_a_fresh_process():
    code = f"""
import base64, json, mlflow.pyfunc, pandas as pd
model = mlflow.pyfunc.load_model({str(LEGACY / 'model')!r})
frame = pd.DataFrame({{"image": [base64.b64encode(open(p, "rb").read()).decode() for p in {[str(DHSD / p) for p in EXPECTED['images']]!r}]}})
out = model.predict(frame)
print(json.dumps({{"text": out.text.tolist(), "confidence": out.confidence.tolist()}}))
"""
    done = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["text"] == EXPECTED["text"]
    assert out["confidence"] == pytest.approx(EXPECTED["confidence"], abs=1e-4)


def test_old_full_model_reloads_and_trains(keep_sys_path):
    import mlflow.tensorflow
    import numpy as np

    model = mlflow.tensorflow.load_model(str(LEGACY / "full_model"))
    assert type(model.get_layer("ctc_loss")).__name__ == "CTCLossLayer"
    x = {"image": np.random.default_rng(0).random((4, 32, 128, 1)).astype("float32"),
         "label": np.array([[1, 2, 3]] * 4, "int32")}
    before = model.evaluate(x, verbose=0)
    assert model.fit(x, epochs=3, verbose=0).history["loss"][-1] < before


@pytest.mark.slow
def test_old_full_model_is_fine_tuned_and_registered(tracking_uri, tmp_path, keep_sys_path):
    from mlflow import MlflowClient

    from hwr.config import FinetuneConfig
    from hwr.training.finetune import run_finetune

    labels = write_subset(DHSD, tmp_path / "subset.csv", {"train": 32, "val": 8, "test": 8})
    cfg = FinetuneConfig().replace(base_model=str(LEGACY / "full_model"), data=str(DHSD), labels=str(labels),
                                   head_epochs=1, full_epochs=1, batch_size=16, patience=0).validate()
    result = run_finetune(cfg)
    client = MlflowClient()
    assert client.get_run(result.run_id).data.params["img_width"] == "128"  # the legacy model's geometry
    for name in ("hwr-crnn", "hwr-crnn-full"):
        assert client.get_model_version(name, "1").run_id == result.run_id
    import mlflow.pyfunc

    assert len(mlflow.pyfunc.load_model("models:/hwr-crnn/1").predict(request())) == 4


def test_old_prediction_model_refuses_the_language_model_decoder_with_one_line(keep_sys_path):
    """Models logged before they carried a language model: ``beam_lm`` is a clear refusal, both in a
    request and in ``predict`` before any image is read."""
    import mlflow.pyfunc

    from hwr.errors import ConfigError
    from hwr.mlflow.pyfunc import InvalidRequestError
    from hwr.prediction.models import load_models

    model = mlflow.pyfunc.load_model(str(LEGACY / "model"))
    with pytest.raises(InvalidRequestError, match="carries no language model"):
        model.predict(request(), params={"decoder": "beam_lm"})
    with pytest.raises(ConfigError, match="decoder=beam_lm: model=.* carries no language model"):
        load_models([str(LEGACY / "model")], "beam_lm")
    assert len(load_models([str(LEGACY / "model")], "beam")) == 1
    with pytest.raises(ConfigError, match="tta=true: model=.* was logged before the pyfunc took tta"):
        load_models([str(LEGACY / "model")], "greedy", tta=True)
