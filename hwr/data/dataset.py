"""A labelled data set in memory for training: validated rows per split, their preprocessed
images and the charset. Shared by ``train``, ``finetune`` and every ``tune`` trial."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm import tqdm

from hwr.config import DataConfig, ModelConfig
from hwr.config.training import SPLITS
from hwr.data.charset import Charset
from hwr.data.geometry import pick_geometry, true_widths
from hwr.data.images import fit_to_height, load_image, pad_to_width, to_uint8
from hwr.data.labels import BadInputLog, check_label_lengths, read_labels
from hwr.data.pages.lines import as_csv
from hwr.data.pipeline import as_model_input
from hwr.data.remote import local_view
from hwr.errors import BadInputError, ImageDecodeError


@dataclass
class PreparedData:
    """Validated rows, their images in memory and the charset.

    ``images[split]``: ``(n, height, img_width)`` uint8, 255 = white, padded on the right;
    ``widths[split]``: ``(n,)`` int32, each image's width in the model (:func:`true_widths`; all
    ``img_width`` at a fixed shape); ``frames[split]``: the kept CSV rows (``row``, ``image``,
    ``path``, ``text``, ``split``); ``bad``: the rejected rows; ``random_split``: the split was
    drawn, seeded (a CSV without a split column, or pages without a split file); ``model``: the
    model configuration with ``shape=auto`` resolved; ``picked``: what was picked for it.
    """

    charset: Charset
    frames: dict[str, pd.DataFrame]
    images: dict[str, np.ndarray]
    widths: dict[str, np.ndarray]
    bad: BadInputLog
    random_split: bool
    model: ModelConfig
    picked: dict

    def texts(self, split: str) -> list[str]:
        return self.frames[split]["text"].tolist()

    def model_input(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(n, height, img_width, 1)`` float32 in [0, 1] images of ``split`` and their ``(n,)`` widths."""
        return as_model_input(self.images[split]), self.widths[split]


def load_images(frame: pd.DataFrame, height: int, width: int, bad: BadInputLog,
                desc: str = "images") -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Decode and preprocess every image of ``frame`` into memory.

    Returns:
        ``(n, height, width)`` uint8 images (255 = white; padded on the right with each image's
        background), ``(n,)`` int32 widths of their content in pixels, and the frame of the rows kept.

    Raises:
        BadInputError: under policy ``error``, for the first undecodable image.
    """
    images, widths, keep = [], [], []
    for r in tqdm(frame.itertuples(), total=len(frame), desc=f"loading {desc}", unit="img", leave=False):
        try:
            content = fit_to_height(load_image(r.path), height, width)
            images.append(to_uint8(pad_to_width(content, width)))
            widths.append(content.shape[1])
            keep.append(True)
        except (ImageDecodeError, OSError) as exc:
            bad.report(r.row, r.image, r.split, f"cannot read image: {exc}")
            keep.append(False)
    stacked = np.stack(images) if images else np.zeros((0, height, width), np.uint8)
    return stacked, np.asarray(widths, np.int32), frame[keep].reset_index(drop=True)


def read_collection(cfg: DataConfig, seed: int) -> pd.DataFrame:
    """The validated labels of a data set as ``train`` reads them (pages cut into lines, ``s3://``
    through its local view): :func:`hwr.data.labels.read_labels`'s frame, without loading images.

    Raises:
        BadInputError: a bad row under policy ``error``.
    """
    data = as_csv(local_view(cfg), seed)
    return read_labels(data, seed, BadInputLog(data.on_bad_input, data.labels_path()))


def prepare_data(cfg: DataConfig, model: ModelConfig, seed: int, charset: Charset | None = None) -> PreparedData:
    """Read, validate and load a data set for a model of ``model``'s geometry and frame count
    (``shape=auto`` resolved from the training images: :func:`hwr.data.geometry.pick_geometry`).

    The charset is built from the training labels unless one is given (fine-tuning). Pages
    (PAGE-XML, ALTO) are cut into lines first (:func:`hwr.data.pages.lines.as_csv`); ``s3://``
    data is read through its local view (:func:`hwr.data.remote.local_view`).

    Raises:
        BadInputError: bad input under policy ``error``, or a split left with no rows.
    """
    cfg = local_view(cfg)
    pages = as_csv(cfg, seed)
    drawn = pages is not cfg and not cfg.split_file
    cfg = pages
    bad = BadInputLog(cfg.on_bad_input, cfg.labels_path())
    frame = read_labels(cfg, seed, bad)
    if charset is None:
        charset = Charset.from_texts(frame.loc[frame.split == "train", "text"])
    model, picked = pick_geometry(model, frame, charset, seed)
    if picked:
        print("picked from the data: " + ", ".join(f"{k}={v}" for k, v in picked.items()), flush=True)
    frame = check_label_lengths(frame, charset, model, bad)
    frames, images, widths = {}, {}, {}
    for split in SPLITS:
        images[split], content, frames[split] = load_images(frame[frame.split == split], model.img_height,
                                                            model.img_width, bad, split)
        if not len(frames[split]):
            raise BadInputError(f"{cfg.labels_path()}: no usable rows in split {split!r}")
        widths[split] = true_widths(content, frames[split]["text"].tolist(), charset, model)
    has_split = cfg.split_col in pd.read_csv(cfg.labels_path(), nrows=0, encoding="utf-8-sig").columns
    return PreparedData(charset, frames, images, widths, bad, drawn or not has_split, model, picked)
