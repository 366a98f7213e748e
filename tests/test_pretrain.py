"""pretrain: synthetic lines of a collection's text -> a registered base model that finetune takes
(a tiny model on a Hooker subset, drawn in matplotlib's DejaVu fonts)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from conftest import HOOKER, write_subset

pytestmark = pytest.mark.slow  # trains


def test_pretrain_registers_a_base_model_of_the_collections_text_and_geometry(tmp_path, tracking_uri):
    import matplotlib
    from mlflow import MlflowClient

    from hwr.config import FinetuneConfig, PretrainConfig
    from hwr.training.finetune import run_finetune
    from hwr.training.pretrain import run_pretrain

    fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    subset = write_subset(HOOKER, tmp_path / "hooker.csv", {"train": 40, "val": 8, "test": 8})
    tiny = dict(conv_filters="16,32", dense_units=32, dropout=0.0, lstm1_units=16, lstm2_units=16, batch_size=32,
                epochs=1, max_minutes=0, augment=False, system_metrics=False)
    cfg = PretrainConfig().replace(data=str(HOOKER), labels=str(subset), fonts=str(fonts), n_lines=32,
                                   synthetic_cache=str(tmp_path / "cache"), **tiny).validate()
    result = run_pretrain(cfg)

    client = MlflowClient()
    run = client.get_run(result.run_id)
    assert run.data.tags["hwr.verb"] == "pretrain"
    params, metrics = run.data.params, run.data.metrics
    assert params["corpus"] == str(HOOKER) and params["fonts"] == str(fonts)
    # the geometry is picked from the collection's real lines (Hooker: 32 px high), as train would
    assert (params["picked.shape"], params["picked.img_height"]) == ("true", "32")
    assert params["img_height"] == "32"
    drawn = pd.read_csv(Path(params["data"]) / "labels.csv", keep_default_na=False)
    assert metrics["synthetic_lines"] == len(drawn) == 32 + 8 + 8 - metrics["synthetic_skipped"]
    assert (drawn.font == "DejaVuSans.ttf").all()
    labels = pd.read_csv(subset, keep_default_na=False)
    train_words = set(" ".join(labels[labels.split == "train"].text).split())
    assert set(" ".join(drawn.text).split()) <= train_words  # never the val or test labels' text
    assert client.get_model_version("hwr-base-full", "1").run_id == result.run_id
    assert not client.search_registered_models("name='hwr-crnn'")  # a synthetic model is no champion

    tuned = run_finetune(FinetuneConfig().replace(base_model="models:/hwr-base-full/1", data=str(HOOKER),
                                                  labels=str(subset), head_epochs=0, full_epochs=1, batch_size=32,
                                                  augment=False, register=False, system_metrics=False).validate())
    assert client.get_run(tuned.run_id).data.tags["hwr.base_run_id"] == result.run_id
