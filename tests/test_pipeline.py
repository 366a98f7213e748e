"""tf.data inputs: label padding, and augmentation that keeps shape and range and never crops."""

import numpy as np
import pytest

from hwr.data.charset import Charset
from hwr.data.pipeline import augment, make_dataset, pad_labels


def test_labels_are_padded_with_the_blank_and_unknown_characters_dropped():
    labels = pad_labels(["ab", "", "bca", "aXb"], Charset(("a", "b", "c")))
    assert labels.dtype == np.int32
    assert labels.tolist() == [[1, 2, 0], [0, 0, 0], [2, 3, 1], [1, 2, 0]]


def wide_word(height=40, width=160) -> np.ndarray:
    """White paper with ink reaching the right edge (a word that fills the width)."""
    image = np.ones((height, width, 1), np.float32)
    image[height // 2 - 4:height // 2 + 4, 8:width - 2] = 0.0
    return image


@pytest.mark.parametrize("seed", range(2))
def test_augment_keeps_shape_and_range_and_never_crops_a_wide_word(seed):
    """A batch is augmented in one go, each image with its own draw: all of them keep the shape,
    the range and the word (shrink-only scaling about the left edge moves its right end left,
    never out of the image), and no two of the batch's images come out alike."""
    import tensorflow as tf

    tf.random.set_seed(seed)
    image = wide_word()
    batch = augment(tf.constant(np.stack([image] * 8))).numpy()
    assert batch.shape == (8, *image.shape) and batch.dtype == np.float32
    for out in batch:
        assert out.min() >= 0.0 and out.max() <= 1.0
        ink_columns = np.where((out < 0.5).any(axis=(0, 2)))[0]
        assert ink_columns.max() <= image.shape[1] - 1
        assert ink_columns.max() >= 0.8 * (image.shape[1] - 2) - 2
        assert (out < 0.5).sum() >= 0.5 * (image < 0.5).sum()  # the ink is still there
    assert min(np.abs(a - b).max() for i, a in enumerate(batch) for b in batch[i + 1:]) > 0.1


def test_dataset_batches_images_as_float_and_labels_as_ids():
    images = np.full((5, 8, 16), 255, np.uint8)
    labels = pad_labels(["a", "ab", "b", "ba", "a"], Charset(("a", "b")))
    batch = next(iter(make_dataset(images, labels, 2, shuffle=False, augment_images=False, seed=0)))
    assert batch["image"].shape == (2, 8, 16, 1) and float(batch["image"].numpy().max()) == 1.0
    assert batch["label"].numpy().tolist() == [[1, 0], [1, 2]]


@pytest.mark.parametrize("bucketed", [False, True])
def test_training_runs_one_iterator_whose_every_epoch_is_one_full_reshuffled_pass(bucketed):
    """fit repeats the training set with steps_per_epoch = its batches per pass (one long-lived
    iterator instead of one per epoch): each run of ``steps`` batches must hold every image once,
    in a new order, also when width buckets leave partial batches."""
    from hwr.training.fit import epoch_source

    n, widths = 37, np.array([8] * 20 + [16] * 11 + [32] * 6, np.int32)
    images = np.zeros((n, 4, 32), np.uint8)
    images[np.arange(n), 0, 0] = np.arange(n)  # each image carries its index in one pixel
    labels = pad_labels(["a"] * n, Charset(("a",)))
    ds = make_dataset(images, labels, 5, shuffle=True, augment_images=False, seed=0,
                      widths=widths if bucketed else None)
    data, steps = epoch_source(ds)
    assert steps == sum(1 for _ in ds) == (4 + 3 + 2 if bucketed else 8)  # buckets of 20, 11 and 6 images
    batches = iter(data)
    orders = []
    for _ in range(2):
        seen = np.concatenate([np.round(next(batches)["image"].numpy()[:, 0, 0, 0] * 255) for _ in range(steps)])
        assert sorted(seen.astype(int).tolist()) == list(range(n))
        orders.append(seen.tolist())
    assert orders[0] != orders[1]
    assert epoch_source(ds.repeat())[1] is None  # an endless data set is left as it is
