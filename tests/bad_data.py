"""Shared by the bad-input catalogue's data cases (``tests/test_bad_inputs.py``,
``tests/test_bad_predict.py``): real DHSD images copied into a test's folder, special images made
from them, and a small labelled data set around them."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from conftest import DHSD, TINY_MODEL, dhsd_rows
from hwr.config import DataConfig, ModelConfig

SPECIAL_KINDS = ("16bit", "rgba", "cmyk", "1px", "20000px")
SOURCE_IMAGE = "images/writer1/1_0.png"


def copy_images(folder: Path, images) -> Path:
    for rel in images:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(DHSD / rel, folder / rel)
    return folder


def write_special_image(folder: Path, kind: str) -> str:
    """A DHSD word image saved as 16-bit PNG, RGBA PNG, CMYK JPEG, 1 px wide or 20,000 px wide."""
    gray = cv2.imread(str(DHSD / SOURCE_IMAGE), cv2.IMREAD_GRAYSCALE)
    rel = f"special/{kind}.{'jpg' if kind == 'cmyk' else 'png'}"
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "16bit":
        cv2.imwrite(str(path), gray.astype(np.uint16) * 257)
    elif kind == "rgba":
        bgra = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGRA)
        bgra[:, :10, 3] = 0  # a transparent strip: white paper
        cv2.imwrite(str(path), bgra)
    elif kind == "cmyk":
        from PIL import Image

        Image.fromarray(gray).convert("CMYK").save(path, "JPEG", quality=95)
    elif kind == "1px":
        cv2.imwrite(str(path), gray[:, 100:101])
    else:
        cv2.imwrite(str(path), np.tile(gray, (1, 20_000 // gray.shape[1] + 1))[:, :20_000])
    return rel


def small_data_set(folder: Path, extra: list[dict] = ()) -> DataConfig:
    """One good DHSD row per split plus ``extra`` rows (default split train), as labels.csv."""
    rows = dhsd_rows({"train": 1, "val": 1, "test": 1})
    copy_images(folder, [*rows.image, SOURCE_IMAGE])
    table = pd.concat([rows, pd.DataFrame([{"split": "train", **r} for r in extra])], ignore_index=True)
    table.to_csv(folder / "labels.csv", index=False)
    return DataConfig(data=str(folder))


def prepare_small(cfg: DataConfig):
    from hwr.data.dataset import prepare_data

    return prepare_data(cfg, ModelConfig().replace(**TINY_MODEL), seed=1)


def link_outside(folder: Path, name: str = "linked") -> str:
    """A symbolic link inside ``folder`` to DHSD's image folder; returns an image path through it."""
    (folder / name).symlink_to(DHSD / "images", target_is_directory=True)
    return f"{name}/writer1/1_1.png"
