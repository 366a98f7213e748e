"""Test-time augmentation (TTA) for a CTC recogniser: the per-frame probabilities of the image and
of two slanted copies (x-shear +-0.15 about the middle row, the kind of slant training augments
with, :func:`hwr.data.pipeline.augment`) averaged before decoding.

A shear about the middle row keeps the image's width and moves ink by at most 0.15 x half the
height (3 px at 40 px high), so the copies' CTC frames still line up and can be averaged frame by
frame; a shrink or shift along the line would not (measured: averaging with a 0.9 shrink doubled
the greedy CER). Measured on DHSD (``bench/tta.py``, the default model of 2026-12-05): val CER
0.1374 -> 0.1251 with ``decoder=beam_lm``, test 0.1063 -> 0.0996; greedy test 0.1536 -> 0.1443;
three forward passes instead of one.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

SLANTS = (0.0, 0.15, -0.15)  # x-shear of each copy; 0.0 is the image itself


def slanted(images: np.ndarray, slant: float) -> np.ndarray:
    """``(n, height, width, 1)`` float32 in [0, 1] -> the same shape, each image sheared by
    ``slant`` (pixels of x per pixel of y) about its middle row; uncovered pixels get the
    background, 1.0. ``slant == 0`` returns ``images`` itself."""
    if slant == 0.0:
        return images
    inverse = np.float32([[1.0, slant, -slant * images.shape[1] / 2.0], [0.0, 1.0, 0.0]])
    size = (images.shape[2], images.shape[1])
    return np.stack([cv2.warpAffine(image[..., 0], inverse, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=1.0)[..., np.newaxis]
                     for image in images]).astype(np.float32)


def slanted_probs(forward: Callable[[np.ndarray], np.ndarray], images: np.ndarray,
                  slants: tuple[float, ...] = SLANTS) -> list[np.ndarray]:
    """``forward(slanted(images, s))`` for each of ``slants``, in that order: ``(n, time, V + 1)``
    float32 probabilities each. ``forward`` maps ``(n, height, width, 1)`` images to their
    ``(n, time, V + 1)`` softmax probabilities."""
    return [forward(slanted(images, slant)) for slant in slants]


def averaged_probs(forward: Callable[[np.ndarray], np.ndarray], images: np.ndarray,
                   slants: tuple[float, ...] = SLANTS) -> np.ndarray:
    """The mean of :func:`slanted_probs` over ``slants``: ``(n, time, V + 1)`` float32
    probabilities, still summing to 1 per frame."""
    return np.mean(slanted_probs(forward, images, slants), axis=0, dtype=np.float32)
