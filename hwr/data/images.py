"""Image -> normalised array of the model's geometry.

The one preprocessing used by training, evaluation, ``predict`` and the served model.
Any PNG/JPEG (8 or 16 bit; gray, RGB or RGBA) becomes grayscale, is contrast-stretched to
[0, 1] (white paper ~1, ink ~0), scaled to the model's height keeping its aspect ratio, then
padded on the right with its background colour, or squeezed horizontally if too wide.
CMYK JPEGs are converted to colour by the decoder; images of any size work (a very large one is
shrunk while still 8 bit, so an 8,000 x 8,000 page costs its decoded pixels and little more).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from hwr.errors import ImageDecodeError

# Above this many pixels an image is shrunk to the model's geometry in uint8 before it becomes
# float32 (4 bytes a pixel): the same result up to rounding, at a quarter of the memory.
LARGE_IMAGE_PIXELS = 4_000_000


def decode_image(data: bytes) -> np.ndarray:
    """Decode image bytes to a grayscale ``(height, width)`` uint8 array.

    Transparent pixels (RGBA) are composited onto white; 16-bit images are reduced to 8 bit.

    Raises:
        ImageDecodeError: empty or undecodable bytes, or an image with no pixels.
    """
    if not data:
        raise ImageDecodeError("empty file")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:  # e.g. more pixels than OpenCV's limit (2**30)
        raise ImageDecodeError(f"not a decodable PNG or JPEG image ({str(exc).strip().splitlines()[-1]})") from exc
    if image is None or image.size == 0:
        raise ImageDecodeError("not a decodable PNG or JPEG image")
    if image.dtype == np.uint16:
        image = (image // 257).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 4:
        alpha = image[:, :, 3:4].astype(np.float32) / 255.0
        rgb = image[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        image = cv2.cvtColor(rgb.astype(np.uint8), cv2.COLOR_BGR2GRAY)
    elif image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    elif image.ndim == 3:
        image = image[:, :, 0]
    return image


def load_image(path: str | Path) -> np.ndarray:
    """Read and decode an image file (see :func:`decode_image`).

    Raises:
        FileNotFoundError: no such file. ImageDecodeError: not a decodable image.
    """
    return decode_image(Path(path).read_bytes())


def fit_to_height(gray: np.ndarray, height: int, max_width: int) -> np.ndarray:
    """Scale a grayscale image to ``height`` keeping its aspect ratio, squeezed to ``max_width``
    if wider, and stretch its contrast.

    Args:
        gray: ``(h, w)`` uint8 image, any size.
        height, max_width: pixels.

    Returns:
        ``(height, w')`` float32 in [0, 1] (background ~1.0, ink ~0.0), ``1 <= w' <= max_width``.
    """
    h, w = gray.shape[:2]
    new_w = max(1, min(max_width, round(w * height / h)))
    if gray.size > LARGE_IMAGE_PIXELS:  # shrink first, in uint8; stretch with the original's range
        low, high = float(gray.min()), float(gray.max())
        image = cv2.resize(gray, (new_w, height), interpolation=cv2.INTER_AREA).astype(np.float32)
        image = (image - low) / (high - low) if high > low else np.ones_like(image)
    else:
        image = gray.astype(np.float32)
        low, high = float(image.min()), float(image.max())
        image = (image - low) / (high - low) if high > low else np.ones_like(image)
        interpolation = cv2.INTER_AREA if h > height else cv2.INTER_LINEAR
        image = cv2.resize(image, (new_w, height), interpolation=interpolation)
    return np.clip(image, 0.0, 1.0)


def pad_to_width(image: np.ndarray, width: int) -> np.ndarray:
    """Pad a ``(height, w)`` float32 image on the right to ``width >= w`` pixels with its own
    background colour (its median)."""
    if image.shape[1] >= width:
        return image
    return np.pad(image, ((0, 0), (0, width - image.shape[1])), constant_values=float(np.median(image)))


def fit_to_geometry(gray: np.ndarray, height: int, width: int) -> np.ndarray:
    """Normalise a grayscale image to a fixed input geometry: :func:`fit_to_height`, then
    :func:`pad_to_width`.

    Args:
        gray: ``(h, w)`` uint8 image, any size.
        height, width: model input size in pixels.

    Returns:
        ``(height, width)`` float32 in [0, 1]; background ~1.0, ink ~0.0.
    """
    return pad_to_width(fit_to_height(gray, height, width), width)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """``[0, 1]`` float image -> uint8 (for compact in-memory training sets)."""
    return np.round(image * 255.0).astype(np.uint8)
