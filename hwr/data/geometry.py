"""The input geometry ``train`` picks from the data (``shape=auto``) and each image's width at
its true shape.

Lines (median width over height at least :data:`LINE_ASPECT`) keep their aspect ratio: the height
gives the median line about :data:`FRAMES_PER_CHARACTER` CTC frames per character, and the widest
image is the 99th percentile of the training lines at that height (never less than the longest
label needs). Words keep the configured fixed geometry.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pandas as pd

from hwr.config import ModelConfig
from hwr.data.charset import Charset, ctc_frames_needed

LINE_ASPECT = 5.0  # median width / height from which a data set is lines
FRAMES_PER_CHARACTER = 2.0  # at the median line, for the picked height
HEIGHT_RANGE = (32, 64)  # pixels, the picked height's bounds
MAX_LINE_WIDTH = 2048  # pixels, the widest picked img_width; wider lines are squeezed to it
SAMPLE_SIZE = 300  # training images whose size is read


def round_up(value, unit: int):
    """``value`` (pixels, a number or an array) rounded up to a multiple of ``unit`` pixels: an int
    for a number, an int64 array for an array."""
    rounded = np.ceil(np.asarray(value, np.float64) / unit) * unit
    return int(rounded) if rounded.ndim == 0 else rounded.astype(np.int64)


def image_sizes(paths: list[str]) -> np.ndarray:
    """``(n, 2)`` float64 ``(height, width)`` in pixels of each image of ``paths``; NaN for one
    that cannot be read (the data checks report it later)."""
    sizes = np.full((len(paths), 2), np.nan)
    for i, path in enumerate(paths):
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is not None and image.size:
            sizes[i] = image.shape[:2]
    return sizes


def pick_geometry(model: ModelConfig, frame: pd.DataFrame, charset: Charset, seed: int) -> tuple[ModelConfig, dict]:
    """Resolve ``shape=auto`` from the training rows of ``frame`` (columns ``path``, ``text``,
    ``split``); any other shape is returned unchanged.

    Returns:
        The resolved :class:`ModelConfig` and what was picked (``{"shape": ..., "img_height": ...,
        "img_width": ...}``; empty when nothing was picked).
    """
    if model.shape != "auto":
        return model, {}
    train = frame[frame.split == "train"]
    sample = train.sample(min(SAMPLE_SIZE, len(train)), random_state=seed) if len(train) else train
    sizes = image_sizes(sample.path.tolist())
    readable = ~np.isnan(sizes[:, 0])
    aspects = sizes[readable, 1] / sizes[readable, 0]
    if not len(aspects) or np.median(aspects) < LINE_ASPECT:
        picked = {"shape": "fixed"}
    else:
        defaults = ModelConfig()
        unit = 2 ** len(model.conv_filters)
        chars = sample.text.str.len().to_numpy()[readable]
        height = model.img_height
        if height == defaults.img_height:
            wanted = FRAMES_PER_CHARACTER * model.width_stride * np.median(chars / aspects)
            height = min(max(round_up(wanted, unit), HEIGHT_RANGE[0]), HEIGHT_RANGE[1])
        width = model.img_width
        if width == defaults.img_width:
            longest = max(ctc_frames_needed(charset.encode(t, drop_unknown=True)) for t in train.text)
            width = min(round_up(max(np.percentile(aspects, 99) * height, longest * model.width_stride), 16),
                        MAX_LINE_WIDTH)
        picked = {"shape": "true", "img_height": int(height), "img_width": int(width)}
    return dataclasses.replace(model, **picked), picked


def true_widths(content_widths: np.ndarray, texts: list[str], charset: Charset, model: ModelConfig) -> np.ndarray:
    """Each image's width in the model at its true shape: its scaled width, widened to the frames
    its label needs, rounded up to the width stride, at most ``img_width``. ``(n,)`` int32 pixels;
    all ``img_width`` for a fixed-shape model."""
    if not model.true_width:
        return np.full(len(content_widths), model.img_width, np.int32)
    stride = model.width_stride
    needed = np.array([ctc_frames_needed(charset.encode(t, drop_unknown=True)) for t in texts], np.int64) * stride
    widths = np.maximum(np.asarray(content_widths, np.int64), needed)
    return np.minimum(round_up(widths, stride), model.img_width).astype(np.int32)
