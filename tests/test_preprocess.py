"""Preprocessing: any PNG/JPEG -> (height, width) float32 in [0, 1], for word and line images."""

import cv2
import numpy as np
import pytest

from conftest import DHSD, HOOKER
from hwr.data.images import decode_image, fit_to_geometry, load_image
from hwr.errors import ImageDecodeError


def encode(image, ext=".png"):
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


def test_dhsd_word_image_fills_the_geometry_exactly():
    gray = load_image(DHSD / "images/writer1/1_0.png")
    assert gray.shape == (64, 256) and gray.dtype == np.uint8
    out = fit_to_geometry(gray, 40, 160)
    assert out.shape == (40, 160) and out.dtype == np.float32
    assert out.min() == pytest.approx(0.0, abs=0.05) and out.max() == pytest.approx(1.0)


def test_long_hooker_line_is_squeezed_short_one_padded_with_background():
    import pandas as pd

    table = pd.read_csv(HOOKER / "labels.csv")
    widths = {p: cv2.imread(str(HOOKER / p), cv2.IMREAD_GRAYSCALE).shape[1] for p in table.image.head(40)}
    longest, shortest = max(widths, key=widths.get), min(widths, key=widths.get)
    long_out = fit_to_geometry(load_image(HOOKER / longest), 32, 256)
    short_out = fit_to_geometry(load_image(HOOKER / shortest), 32, 1024)
    assert long_out.shape == (32, 256) and short_out.shape == (32, 1024)
    # the padded right part of the short line is one flat background value, bright (paper)
    pad = short_out[:, -50:]
    assert pad.std() == pytest.approx(0.0, abs=1e-6) and pad.mean() > 0.5
    assert 0.0 <= long_out.min() and long_out.max() <= 1.0


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_any_channel_count_and_format_becomes_grayscale(channels, ext):
    image = np.full((20, 60, channels) if channels > 1 else (20, 60), 255, np.uint8)
    image[5:15, 10:50] = 0  # a dark stroke
    if channels == 4:
        image[:, :, 3] = 255  # opaque
    if channels == 4 and ext == ".jpg":
        pytest.skip("JPEG has no alpha channel")
    gray = decode_image(encode(image, ext))
    assert gray.shape == (20, 60)
    out = fit_to_geometry(gray, 40, 160)
    assert out[20, 40] < 0.2 and out[2, 5] > 0.8  # ink dark, paper bright after scaling x2


def test_sixteen_bit_and_transparent_background():
    sixteen = np.full((10, 30), 65535, np.uint16)
    sixteen[3:7, 5:25] = 0
    assert decode_image(encode(sixteen))[5, 10] == 0 and decode_image(encode(sixteen))[0, 0] == 255
    rgba = np.zeros((10, 30, 4), np.uint8)  # fully transparent black = white paper
    rgba[3:7, 5:25] = (0, 0, 0, 255)
    gray = decode_image(encode(rgba))
    assert gray[0, 0] == 255 and gray[5, 10] == 0


def test_undecodable_bytes_raise_a_clear_error():
    with pytest.raises(ImageDecodeError, match="not a decodable"):
        decode_image(b"this is not an image")
    with pytest.raises(ImageDecodeError, match="empty"):
        decode_image(b"")


def test_cmyk_jpeg_becomes_grayscale_with_dark_ink():
    import io

    from PIL import Image

    page = np.full((20, 60), 255, np.uint8)
    page[5:15, 10:50] = 0
    buf = io.BytesIO()
    Image.fromarray(page).convert("CMYK").save(buf, "JPEG")
    gray = decode_image(buf.getvalue())
    assert gray.shape == (20, 60) and gray[10, 30] < 30 and gray[1, 1] > 225


@pytest.mark.parametrize("shape", [(64, 1), (1, 1), (1, 20000), (64, 20000), (5000, 3)])
def test_extreme_shapes_fit_the_geometry(shape):
    rng = np.random.default_rng(0)
    out = fit_to_geometry(rng.integers(0, 256, shape, dtype=np.uint8), 40, 160)
    assert out.shape == (40, 160) and out.dtype == np.float32 and np.isfinite(out).all()
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_a_huge_page_is_shrunk_in_uint8_same_result_a_fraction_of_the_memory(monkeypatch):
    import tracemalloc

    import hwr.data.images as images

    page = np.full((8000, 8000), 250, np.uint8)
    page[3000:5000, 500:7500] = 10  # one dark bar across the page
    tracemalloc.start()
    small = fit_to_geometry(page, 40, 160)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 40e6  # the float32 copy of the page alone would be 256 MB
    monkeypatch.setattr(images, "LARGE_IMAGE_PIXELS", 10**9)  # the plain float path, for reference
    reference = fit_to_geometry(page, 40, 160)
    assert small.shape == (40, 160) and np.abs(small - reference).max() < 2 / 255
