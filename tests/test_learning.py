"""The model learns: a small CRNN fits 64 real DHSD word images (training-set CER < 0.1)."""

import pytest

from conftest import DHSD, tiny_config
from hwr.evaluation import metrics
from hwr.data.dataset import prepare_data
from hwr.data.pipeline import as_model_input
from hwr.model.crnn import prediction_model
from hwr.model.inference import transcribe
from hwr.training.fit import fit
from hwr.training.steps import build_model, datasets


@pytest.mark.slow
def test_small_model_fits_64_dhsd_images(dhsd_subset, tmp_path):
    from conftest import write_subset

    labels = write_subset(DHSD, tmp_path / "s.csv", {"train": 64, "val": 8, "test": 8})
    # three conv blocks and the column max-pooling, as the default model (with two blocks the max over
    # 8 rows left it at training CER 0.38 after 70 epochs; flatten + dense fitted it)
    cfg = tiny_config(labels, img_height=32, img_width=160, conv_filters="32,64,64", height_pool="max",
                      dense_units=64, lstm1_units=64, lstm2_units=64, lr=3e-3, augment=False, batch_size=8)
    data = prepare_data(cfg.data, cfg.model, cfg.seed)
    model = build_model(cfg, data.charset)
    train_images = as_model_input(data.images["train"])
    before, _ = transcribe(prediction_model(model), data.charset, train_images)
    train_ds, _ = datasets(cfg, data)
    # validate on the training images themselves: the best-by-val_cer weights are the best fit
    fit(model, train_ds, None, train_images, data.texts("train"), data.charset, epochs=70, patience=20)
    after, _ = transcribe(prediction_model(model), data.charset, train_images)
    assert metrics.cer(data.texts("train"), before) > 0.9
    assert metrics.cer(data.texts("train"), after) < 0.1
