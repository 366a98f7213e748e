"""tf.data input pipelines: in-memory uint8 images + label ids -> shuffled, augmented batches.

Batches are dicts ``{"image": (batch, height, width, 1) float32 in [0, 1],
"label": (batch, max_len) int32}``; labels hold ids 1..V at their true length, padded with 0
(the blank id, which the CTC loss layer reads as "no character").
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from hwr.data.charset import Charset


def pad_labels(texts, charset: Charset) -> np.ndarray:
    """``(n, max_len)`` int32 label ids, 0-padded; unknown characters are left out.

    Unknown characters only occur in val/test labels; they are dropped from the *loss* target
    only (``val_loss``); CER/WER compare against the untouched text, so they count as errors.
    """
    encoded = [charset.encode(t, drop_unknown=True) for t in texts]
    width = max((len(e) for e in encoded), default=1) or 1
    out = np.zeros((len(encoded), width), np.int32)
    for i, ids in enumerate(encoded):
        out[i, :len(ids)] = ids
    return out


def augment(images: tf.Tensor) -> tf.Tensor:
    """Random handwriting-style distortion of a batch of ``(batch, height, width, 1)`` float32
    images in [0, 1], each image with its own random draw; same shape and dtype out.

    Slant (x-shear +-0.3), shrink (scale 0.8..1.0 about the left edge, so wide words are never
    cropped), a small vertical shift and thicker strokes (2x2 min filter, probability 1/4).
    Background (1.0) fills the uncovered area. No brightness/contrast jitter: preprocessing
    already stretches every image's contrast, so jitter would only move the training images'
    statistics away from those seen at validation and prediction time. A whole batch is one
    projective transform and one min filter (per image, these small operations cost the 2-core
    hosts about 8 ms of wall time per batch of 32 DHSD words, beside a training step of ~100 ms).
    """
    batch = tf.shape(images)[0]
    height = tf.cast(tf.shape(images)[1], tf.float32)
    shear = tf.random.uniform([batch], -0.3, 0.3)
    scale = tf.random.uniform([batch], 0.8, 1.0)
    shift = tf.random.uniform([batch], -0.05, 0.05) * height
    centre = height / 2.0
    zero = tf.zeros([batch])
    transforms = tf.stack([
        1.0 / scale, shear, -shear * centre,
        zero, 1.0 / scale, centre - centre / scale + shift,
        zero, zero,
    ], axis=1)
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.shape(images)[1:3],
        fill_value=1.0, interpolation="BILINEAR", fill_mode="CONSTANT",
    )
    thicker = -tf.nn.max_pool2d(-out, 2, 1, "SAME")  # ink is dark: a min filter thickens strokes
    chosen = tf.random.uniform([batch, 1, 1, 1]) < 0.25
    return tf.clip_by_value(tf.where(chosen, thicker, out), 0.0, 1.0)


BUCKETS = 8  # width buckets of a true-shape training set (quantiles of its widths)


def width_buckets(widths: np.ndarray) -> list[int]:
    """Bucket boundaries (pixels, ascending, unique) at the quantiles of ``widths``: batches are
    drawn from one bucket, so a batch is padded only to its widest image, not the data set's."""
    inner = np.quantile(widths, np.linspace(0, 1, BUCKETS + 1)[1:-1]) if len(widths) else []
    return sorted({int(b) + 1 for b in inner})


def make_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int, *, shuffle: bool,
                 augment_images: bool, seed: int, widths: np.ndarray | None = None) -> tf.data.Dataset:
    """Batched dataset of ``{"image", "label"}`` dicts (see module docstring).

    Args:
        images: ``(n, height, width)`` uint8, 255 = white.
        labels: ``(n, max_len)`` int32 from :func:`pad_labels`.
        shuffle: reshuffle every epoch (seeded). augment_images: apply :func:`augment`.
        widths: ``(n,)`` int32 pixels, for a true-shape model: each image is cut to its width,
            images of similar width are batched together (:func:`width_buckets`) and a batch is
            padded with white to its widest image. ``None``: every image at its full width.
    """
    columns = (images, labels) if widths is None else (images, labels, np.asarray(widths, np.int32))
    ds = tf.data.Dataset.from_tensor_slices(columns)
    if shuffle:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)

    def to_example(image, label, width=None):
        if width is not None:
            image = image[:, :width]
        example = {"image": image[..., tf.newaxis], "label": label}
        return example if width is None else {**example, "width": width}

    def to_model_input(batch):  # uint8 -> float32 in [0, 1], augmented: one operation per batch
        images = tf.cast(batch["image"], tf.float32) / 255.0
        return {"image": augment(images) if augment_images else images, "label": batch["label"]}

    ds = ds.map(to_example, num_parallel_calls=tf.data.AUTOTUNE)
    if widths is None:
        return ds.batch(batch_size).map(to_model_input, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    boundaries = width_buckets(np.asarray(widths))
    ds = ds.bucket_by_sequence_length(
        lambda example: example["width"], boundaries, [batch_size] * (len(boundaries) + 1),
        padding_values={"image": np.uint8(255), "label": 0, "width": 0})
    ds = ds.apply(tf.data.experimental.assert_cardinality(bucketed_batches(widths, boundaries, batch_size)))
    return ds.map(to_model_input, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def bucketed_batches(widths: np.ndarray, boundaries: list[int], batch_size: int) -> int:
    """Batches in one pass of a width-bucketed data set: each bucket (``boundaries[i-1] <= width <
    boundaries[i]``, as ``tf.data``'s ``bucket_by_sequence_length`` cuts them) yields full batches
    and one last partial batch. Known in advance, so that training can run over one long-lived
    iterator (:func:`hwr.training.fit.fit`)."""
    counts = np.bincount(np.searchsorted(boundaries, np.asarray(widths), side="right"),
                         minlength=len(boundaries) + 1)
    return int(sum(-(-int(c) // batch_size) for c in counts))


def as_model_input(images: np.ndarray) -> np.ndarray:
    """``(n, h, w)`` uint8 -> ``(n, h, w, 1)`` float32 in [0, 1] (the prediction model's input)."""
    return (images.astype(np.float32) / 255.0)[..., np.newaxis]
