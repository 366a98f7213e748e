"""Test-time augmentation (``hwr/model/tta.py``): the slanted copies and their average, and
``tta=true`` through a logged pyfunc and through ``predict``. A tiny untrained model, no training."""

from __future__ import annotations

import base64
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import DHSD
from hwr.errors import InvalidImageError

IMAGES = sorted((DHSD / "images/writer1").glob("*.png"))[:4]


def test_slants_shear_about_the_middle_row_and_the_copies_probabilities_are_averaged():
    from hwr.model.tta import SLANTS, averaged_probs, slanted

    image = np.ones((1, 8, 16, 1), np.float32)
    image[0, :, 8] = 0.0  # a vertical stroke at x = 8
    assert slanted(image, 0.0) is image
    out = slanted(image, 0.5)  # output (x, y) samples the input at x + 0.5 (y - 4)
    assert out.shape == image.shape and out.dtype == np.float32
    assert out[0, 4, 8, 0] == 0.0 and out[0, 0, 10, 0] == 0.0 and out[0, 0, 8, 0] == 1.0
    assert out[0, 0, :2, 0].min() == 1.0  # uncovered pixels are background
    seen = []

    def forward(images):
        seen.append(images)
        return np.full((len(images), 3, 2), images.mean(), np.float32)

    probs = averaged_probs(forward, image)
    assert len(seen) == len(SLANTS) and seen[0] is image
    assert probs.shape == (1, 3, 2) and np.allclose(probs, np.mean([s.mean() for s in seen]))


@pytest.fixture
def logged(tracking_uri):
    """Both models of a tiny untrained CRNN, logged to a fresh store."""
    import keras
    import mlflow

    from hwr.config import ModelConfig
    from hwr.data.charset import Charset
    from hwr.mlflow.packaging import log_models
    from hwr.model.crnn import build_crnn

    keras.utils.set_random_seed(0)
    charset = Charset(tuple("abcdefghij"))
    cfg = ModelConfig(img_height=32, img_width=64, conv_filters=(4, 8), dense_units=8, lstm1_units=4, lstm2_units=4)
    with mlflow.start_run():
        return log_models(build_crnn(cfg, charset.num_classes), charset, [str(IMAGES[0])])


def frame() -> pd.DataFrame:
    return pd.DataFrame({"image": [base64.b64encode(p.read_bytes()).decode("ascii") for p in IMAGES]})


def test_the_logged_pyfunc_decodes_the_average_of_the_image_and_its_slanted_copies(logged):
    import mlflow

    from hwr.model.decode import greedy_decode
    from hwr.model.inference import predict_probs
    from hwr.model.tta import averaged_probs

    loaded = mlflow.pyfunc.load_model(logged.prediction_uri)
    assert [p.name for p in loaded.metadata.get_params_schema().params] == ["decoder", "beam_width", "tta"]
    inner = loaded.unwrap_python_model()
    images, _, _ = inner.preprocess(frame().image)
    texts, confidence = greedy_decode(averaged_probs(lambda x: predict_probs(inner.model, x)[0], images), inner.charset)
    out = loaded.predict(frame(), params={"tta": True})
    assert out.text.tolist() == texts and np.allclose(out.confidence, confidence, atol=1e-5)
    assert not np.allclose(loaded.predict(frame()).confidence, out.confidence, atol=1e-5)
    assert inner.predict(None, frame(), params={"tta": "true"}).text.tolist() == texts
    with pytest.raises(InvalidImageError, match="tta='maybe': expected true or false"):
        inner.predict(None, frame(), params={"tta": "maybe"})


def test_predict_with_tta_gives_what_the_model_gives_with_tta(logged, tmp_path):
    import mlflow

    from hwr.config import PredictConfig
    from hwr.prediction.predict import run_predict

    folder = tmp_path / "scans"
    folder.mkdir()
    for path in IMAGES:
        shutil.copy(path, folder / path.name)
    run_predict(PredictConfig(model=logged.prediction_uri, data=str(folder), tta=True, output=str(tmp_path / "t.csv")))
    table = pd.read_csv(tmp_path / "t.csv", dtype=str, keep_default_na=False)
    by_name = frame().set_index(pd.Index([p.name for p in IMAGES])).loc[table.image]
    model = mlflow.pyfunc.load_model(logged.prediction_uri)
    with_tta = model.predict(by_name.reset_index(drop=True), params={"tta": True})
    assert table.prediction.tolist() == with_tta.text.tolist()
    assert pd.to_numeric(table.confidence).to_numpy() == pytest.approx(with_tta.confidence.to_numpy(), abs=1e-5)


def test_every_way_of_reading_shares_three_forward_passes_and_reads_as_it_would_alone():
    """Test evaluation reads greedy, ``beam_lm``, each with and without ``tta``: the image's own pass
    and the two slanted copies' run once for all four (8 passes before), with the same texts."""
    import keras

    from hwr.config import ModelConfig
    from hwr.data.charset import Charset
    from hwr.model.crnn import build_crnn, prediction_model
    from hwr.model.inference import predict_probs, transcribe, transcribe_ways
    from hwr.model.language import LanguageModel

    keras.utils.set_random_seed(0)
    charset = Charset(tuple("abcdefghij"))
    cfg = ModelConfig(img_height=32, img_width=64, conv_filters=(4, 8), dense_units=8, lstm1_units=4, lstm2_units=4)
    model = prediction_model(build_crnn(cfg, charset.num_classes))
    language = LanguageModel.from_texts(["abc", "bad", "cab", "dice"], charset)
    images = np.random.default_rng(0).uniform(0, 1, (5, 32, 64, 1)).astype(np.float32)
    passes = []

    def forward(batch):
        passes.append(len(batch))
        return predict_probs(model, batch)[0]

    ways = {"": ("greedy", False), "_beam_lm": ("beam_lm", False), "_tta": ("greedy", True),
            "_beam_lm_tta": ("beam_lm", True)}
    read = transcribe_ways(model, charset, images, ways, predictor=forward, language=language)
    assert passes == [5, 5, 5]
    for name, (decoder, tta) in ways.items():
        alone = transcribe(model, charset, images, decoder=decoder, language=language, tta=tta)
        assert read[name][0] == alone[0] and np.allclose(read[name][1], alone[1], atol=1e-6)
    assert read[""][0] != read["_beam_lm"][0] or not np.allclose(read[""][1], read["_tta"][1])
    passes.clear()
    transcribe_ways(model, charset, images, {"": ("greedy", False)}, predictor=forward)
    assert passes == [5]
