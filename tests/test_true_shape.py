"""Lines at their true shape: the geometry ``train`` picks from the data, each image's width,
batches of similar width, a model of free input width, and the served model at any width."""

from __future__ import annotations

import base64

import cv2
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from conftest import DHSD, HOOKER, TINY_MODEL, tiny_config, write_subset
from hwr.config import DataConfig, ModelConfig
from hwr.data.charset import Charset
from hwr.data.dataset import prepare_data
from hwr.data.geometry import MAX_LINE_WIDTH, pick_geometry, round_up, true_widths
from hwr.data.pipeline import make_dataset, pad_labels, width_buckets
from hwr.model.crnn import build_crnn, input_geometry, prediction_model, true_width, width_stride
from hwr.model.inference import transcribe, width_batches


def labelled_rows(source, n: int = 40) -> pd.DataFrame:
    table = pd.read_csv(source / "labels.csv", dtype=str, keep_default_na=False)
    train = table[table.split == "train"].head(n)
    return train.assign(path=[str(source / p) for p in train.image])


def test_lines_get_the_true_shape_with_geometry_from_the_data_and_words_stay_fixed():
    lines, words = labelled_rows(HOOKER), labelled_rows(DHSD)
    model, picked = pick_geometry(ModelConfig(), lines, Charset.from_texts(lines.text), seed=0)
    assert picked["shape"] == "true" and model.true_width
    assert 32 <= model.img_height <= 64 and model.img_height % 8 == 0
    longest = max(len(t) for t in lines.text)
    assert longest * 4 <= model.img_width <= MAX_LINE_WIDTH  # every label fits the widest image's frames
    model, picked = pick_geometry(ModelConfig(), words, Charset.from_texts(words.text), seed=0)
    assert picked == {"shape": "fixed"} and (model.img_height, model.img_width) == (40, 160)


def test_a_given_geometry_and_shape_are_kept():
    lines = labelled_rows(HOOKER)
    charset = Charset.from_texts(lines.text)
    model, picked = pick_geometry(ModelConfig(img_height=48), lines, charset, seed=0)
    assert model.img_height == 48 and picked["img_height"] == 48 and model.img_width != 160
    assert pick_geometry(ModelConfig(shape="fixed"), lines, charset, seed=0) == (ModelConfig(shape="fixed"), {})


def test_true_widths_widen_to_the_label_and_round_to_the_stride():
    charset = Charset.from_texts(["abcdefgh", "aa"])
    model = ModelConfig(shape="true", img_height=32, img_width=64)
    # 8 letters need 8 frames = 32 px; "aa" needs 3 frames = 12 px; 200 px is capped at 64
    widths = true_widths(np.array([10, 5, 200, 33]), ["abcdefgh", "aa", "a", "a"], charset, model)
    assert widths.tolist() == [32, 12, 64, 36]
    assert true_widths(np.array([10]), ["a"], charset, ModelConfig()).tolist() == [160]
    assert round_up(33, 4) == 36 and round_up(np.array([1, 4, 4.5]), 4).tolist() == [4, 4, 8]


def test_batches_are_cut_to_their_widest_image_not_the_data_sets():
    rng = np.random.default_rng(0)
    widths = np.array([16] * 40 + [400] * 8, np.int32)
    images = rng.integers(0, 255, (48, 32, 400), dtype=np.uint8)
    labels = pad_labels(["ab"] * 48, Charset.from_texts(["ab"]))
    assert width_buckets(widths)  # at least one boundary between 16 and 400
    seen = []
    for batch in make_dataset(images, labels, 8, shuffle=True, augment_images=True, seed=0, widths=widths):
        seen.append(int(batch["image"].shape[2]))
        assert set(batch) == {"image", "label"} and batch["label"].shape[1] == 2
    assert sorted(seen) == [16] * 5 + [400]  # no narrow batch padded to 400 pixels


def test_a_free_width_model_reads_each_batch_at_its_own_width_in_the_callers_order():
    cfg = ModelConfig(**{**TINY_MODEL, "conv_filters": (16, 32)}, shape="true")
    full = build_crnn(cfg, 5)
    recognizer = prediction_model(full)
    assert true_width(full) and input_geometry(full) == (32, 128)
    images = np.ones((5, 32, 128, 1), np.float32)
    widths = np.array([128, 8, 64, 8, 16])
    probs_by_width = {w: recognizer(images[:1, :, :w]).shape[1] for w in (8, 16, 64, 128)}
    assert probs_by_width == {8: 2, 16: 4, 64: 16, 128: 32}  # frames follow the width
    assert width_stride(recognizer) == cfg.width_stride == 4
    assert width_stride(build_crnn(ModelConfig(**{**TINY_MODEL, "conv_filters": (16,)}), 5)) == 2
    batches = width_batches(widths, 5, 2, width_stride(recognizer))
    assert [(rows.tolist(), width) for rows, width in batches] == [([1, 3], 8), ([4, 2], 64), ([0], 128)]
    texts, conf = transcribe(recognizer, Charset.from_texts(["abcd"]), images, batch_size=2, widths=widths)
    assert len(texts) == 5 and conf.shape == (5,)


@pytest.mark.slow
def test_train_on_lines_logs_the_picked_geometry_and_serves_lines_of_any_width(tmp_path, tracking_uri):
    from hwr.mlflow import runs
    from hwr.training.train import run_train

    labels = write_subset(HOOKER, tmp_path / "lines.csv", {"train": 48, "val": 16, "test": 16})
    cfg = tiny_config(labels, HOOKER, shape="auto", img_height=40, img_width=160, epochs=2,
                      conv_filters="16,32", register=False, system_metrics=False)
    result = run_train(cfg)
    run = MlflowClient().get_run(result.run_id)
    assert run.data.params["picked.shape"] == "true"
    height, width = int(run.data.params["picked.img_height"]), int(run.data.params["picked.img_width"])
    model = mlflow.pyfunc.load_model(result.models.prediction_uri)
    assert model.metadata.metadata["shape"] == "true" and model.metadata.metadata["img_width"] == width
    narrow = np.full((height, 30), 255, np.uint8)
    far_too_wide = np.full((height, 20 * width), 255, np.uint8)  # squeezed to the widest image
    cv2.line(far_too_wide, (0, height // 2), (20 * width - 1, height // 2), 0, 2)
    cells = [base64.b64encode(cv2.imencode(".png", image)[1].tobytes()).decode() for image in (narrow, far_too_wide)]
    out = model.predict(pd.DataFrame({"image": cells}))
    assert out["error"].tolist() == ["", ""] and len(out) == 2
