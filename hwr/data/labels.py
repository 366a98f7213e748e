"""Reading a labels CSV: row validation, the bad-input policy, splits, label lengths.

Every bad row is reported through a :class:`BadInputLog`, which either raises a
:class:`BadInputError` naming the CSV row and file (policy ``error``) or records it (``skip``).
"""

from __future__ import annotations

import io
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hwr.config import DataConfig, ModelConfig
from hwr.config.training import SPLITS
from hwr.data.charset import Charset, ctc_frames_needed, nfc
from hwr.errors import BadInputError


@dataclass(frozen=True)
class BadRow:
    """One rejected CSV row. ``row`` is the 1-based line number in the CSV (header is line 1)."""

    row: int
    file: str
    split: str
    reason: str


class BadInputLog:
    """Collects bad rows under a policy: ``error`` raises at once, ``skip`` records and goes on."""

    def __init__(self, policy: str, csv_path: str | Path):
        self.policy = policy
        self.csv_path = str(csv_path)
        self.rows: list[BadRow] = []

    def report(self, row: int, file: str, split: str, reason: str) -> None:
        """Reject a row. Raises :class:`BadInputError` under policy ``error``."""
        if self.policy == "error":
            raise BadInputError(
                f"{self.csv_path}, row {row} (image {file!r}): {reason}."
                " Fix the row, or pass on_bad_input=skip to skip such rows."
            )
        self.rows.append(BadRow(row, file, split, reason))

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(r) for r in self.rows], columns=["row", "file", "split", "reason"])


def read_labels(cfg: DataConfig, seed: int, bad: BadInputLog, any_split: bool = False) -> pd.DataFrame:
    """Read and validate the labels CSV.

    Labels are normalised to Unicode NFC (``u`` + combining diaeresis is ``ü``). Image paths are
    relative to the data folder: a path that leaves it (``..``, an absolute path elsewhere) is
    refused; so is one that is, or lies behind, a symbolic link pointing outside it, unless
    ``cfg.allow_links_outside`` (then the link is followed; ``path`` is the link's target).

    Args:
        any_split: accept any value of the split column (``predict`` with ``split=all``); by
            default a value other than train/val/test rejects its row.

    Returns:
        DataFrame with columns ``row`` (CSV line), ``image`` (as in the CSV), ``path`` (absolute),
        ``text`` and ``split`` (train/val/test; any value with ``any_split``), and ``page`` when the CSV has it (cut page lines);
        bad rows removed. A non-empty ``problem`` column value (written for page lines that could
        not be cut, see :mod:`hwr.data.pages.lines`) rejects its row with that reason.

    Raises:
        BadInputError: missing folder/CSV/column, a CSV without rows or not in UTF-8 (always), or a bad row
        under policy ``error``: empty label, image path outside the data folder, missing image
        file, unknown split value.
    """
    folder = Path(cfg.data).resolve()
    csv_path = cfg.labels_path()
    if not folder.is_dir():
        raise BadInputError(f"data folder {cfg.data!r} does not exist (parameter data)")
    if not csv_path.is_file():
        raise BadInputError(f"labels CSV {str(csv_path)!r} does not exist (parameter labels)")
    table = read_csv_text(csv_path)
    if table.empty:
        raise BadInputError(f"{csv_path}: no rows, only the header {list(table.columns)} (parameter labels)")
    for column, param in ((cfg.image_col, "image_col"), (cfg.text_col, "text_col")):
        if column not in table.columns:
            raise BadInputError(
                f"{csv_path}: no column {column!r} (parameter {param}); columns are {list(table.columns)}"
            )
    frame = pd.DataFrame({
        "row": np.arange(len(table)) + 2,
        "image": table[cfg.image_col].str.strip(),
        "text": [nfc(t) for t in table[cfg.text_col]],
    })
    frame["split"] = (
        table[cfg.split_col].str.strip().str.lower() if cfg.split_col in table.columns
        else random_split(len(frame), cfg.val_fraction, cfg.test_fraction, seed)
    )
    located = [locate_image(folder, p, cfg.allow_links_outside) for p in frame["image"]]
    frame["path"] = [path for path, _ in located]
    frame["problem"] = table["problem"] if "problem" in table.columns else ""
    if "page" in table.columns:
        frame["page"] = table["page"]
    keep = [_row_problem(r, folder, outside, any_split) for r, (_, outside) in zip(frame.itertuples(), located)]
    for r, problem in zip(frame.itertuples(), keep):
        if problem:
            bad.report(r.row, r.image, r.split, problem)
    frame = frame.loc[np.array([p is None for p in keep], dtype=bool)].drop(columns="problem")
    if cfg.max_per_split:
        frame = frame.groupby("split", sort=False).head(cfg.max_per_split)
    return frame.reset_index(drop=True)


def read_csv_text(path: str | Path) -> pd.DataFrame:
    """A CSV file (UTF-8, with or without a byte-order mark) as a table of strings (empty cells ``""``).

    Raises:
        BadInputError: the file is not UTF-8 (naming the file, the byte, its position and line), or
        not a CSV (empty, or a row with more fields than the header).
    """
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise BadInputError(
            f"{path}: not UTF-8 text: byte 0x{raw[exc.start]:02x} at byte position {exc.start} (line {line},"
            f" column {column}) is not valid UTF-8 ({exc.reason}); save the CSV as UTF-8, e.g."
            f" iconv -f latin1 -t utf-8 (parameter labels)") from None
    try:
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:  # an empty file, ragged rows
        raise BadInputError(f"{path}: not a readable CSV: {' '.join(str(exc).split())}") from None


def locate_image(folder: Path, image: str, allow_links_outside: bool = False) -> tuple[str, str | None]:
    """Where an image path of the CSV leads: ``(absolute path, None)`` inside ``folder`` (resolved,
    absolute), else ``(path, reason)``.

    A path that leaves ``folder`` by its text (``..``, an absolute path elsewhere) is always
    refused; one that stays inside by its text but leads outside through a symbolic link (the file
    or a folder on its way) is refused unless ``allow_links_outside`` (then its target is returned).
    """
    lexical = Path(os.path.normpath(folder / image))
    if not lexical.is_relative_to(folder):
        return str(lexical), f"image path points outside the data folder {str(folder)!r}"
    real = lexical.resolve()
    if real.is_relative_to(folder) or allow_links_outside:
        return str(real), None
    return str(lexical), (f"image path leads through a symbolic link to {str(real)!r}, outside the data folder"
                          f" {str(folder)!r}; pass allow_links_outside=true to follow such links")


def _row_problem(r, folder: Path, outside: str | None, any_split: bool = False) -> str | None:
    if r.problem:
        return r.problem
    if not r.image:
        return "empty image path"
    if not r.text.strip():
        return "empty label"
    if not any_split and r.split not in SPLITS:
        return f"split is {r.split!r}, expected one of {SPLITS}"
    if outside:
        return outside
    if not Path(r.path).is_file():
        return "image file does not exist"
    return None


def random_split(n: int, val_fraction: float, test_fraction: float, seed: int) -> np.ndarray:
    """Seeded random assignment of ``n`` rows to train/val/test with the given fractions."""
    order = np.random.default_rng(seed).permutation(n)
    n_val, n_test = round(n * val_fraction), round(n * test_fraction)
    split = np.full(n, "train", dtype=object)
    split[order[:n_val]] = "val"
    split[order[n_val:n_val + n_test]] = "test"
    return split


def check_label_lengths(frame: pd.DataFrame, charset: Charset, model: ModelConfig, bad: BadInputLog) -> pd.DataFrame:
    """Drop (or raise for) labels that need more CTC frames than the model emits
    (:attr:`ModelConfig.time_steps`).

    Raises:
        BadInputError: under policy ``error``, for the first label too long for the model.
    """
    time_steps, keep = model.time_steps, []
    for r in frame.itertuples():
        needed = ctc_frames_needed(charset.encode(r.text, drop_unknown=True))
        if needed > time_steps:
            bad.report(r.row, r.image, r.split,
                       f"label of {len(r.text)} characters needs {needed} CTC frames but the model emits"
                       f" {time_steps} ({model.frames_formula}); raise img_width")
        keep.append(needed <= time_steps)
    return frame[np.array(keep, dtype=bool)].reset_index(drop=True)
