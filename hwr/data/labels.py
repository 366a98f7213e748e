"""Reading a labels CSV: row validation, the bad-input policy, splits, label lengths.

Every bad row is reported through a :class:`BadInputLog`, which either raises a
:class:`BadInputError` naming the CSV row and file (policy ``error``) or records it (``skip``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hwr.config import DataConfig, ModelConfig
from hwr.config.training import SPLITS
from hwr.data.charset import Charset, ctc_frames_needed
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


def read_labels(cfg: DataConfig, seed: int, bad: BadInputLog) -> pd.DataFrame:
    """Read and validate the labels CSV.

    Returns:
        DataFrame with columns ``row`` (CSV line), ``image`` (as in the CSV), ``path`` (absolute),
        ``text`` and ``split`` (train/val/test), and ``page`` when the CSV has it (cut page lines);
        bad rows removed. A non-empty ``problem`` column value (written for page lines that could
        not be cut, see :mod:`hwr.data.pages.lines`) rejects its row with that reason.

    Raises:
        BadInputError: missing folder/CSV/column (always), or a bad row under policy ``error``:
        empty label, image path outside the data folder, missing image file, unknown split value.
    """
    folder = Path(cfg.data).resolve()
    csv_path = cfg.labels_path()
    if not folder.is_dir():
        raise BadInputError(f"data folder {cfg.data!r} does not exist (parameter data)")
    if not csv_path.is_file():
        raise BadInputError(f"labels CSV {str(csv_path)!r} does not exist (parameter labels)")
    table = pd.read_csv(csv_path, dtype=str, keep_default_na=False, encoding="utf-8")
    for column, param in ((cfg.image_col, "image_col"), (cfg.text_col, "text_col")):
        if column not in table.columns:
            raise BadInputError(
                f"{csv_path}: no column {column!r} (parameter {param}); columns are {list(table.columns)}"
            )
    frame = pd.DataFrame({
        "row": np.arange(len(table)) + 2,
        "image": table[cfg.image_col].str.strip(),
        "text": table[cfg.text_col],
    })
    frame["split"] = (
        table[cfg.split_col].str.strip().str.lower() if cfg.split_col in table.columns
        else random_split(len(frame), cfg.val_fraction, cfg.test_fraction, seed)
    )
    frame["path"] = [str((folder / p).resolve()) for p in frame["image"]]
    frame["problem"] = table["problem"] if "problem" in table.columns else ""
    if "page" in table.columns:
        frame["page"] = table["page"]
    keep = [_row_problem(r, folder) for r in frame.itertuples()]
    for r, problem in zip(frame.itertuples(), keep):
        if problem:
            bad.report(r.row, r.image, r.split, problem)
    frame = frame[[p is None for p in keep]].drop(columns="problem")
    if cfg.max_per_split:
        frame = frame.groupby("split", sort=False).head(cfg.max_per_split)
    return frame.reset_index(drop=True)


def _row_problem(r, folder: Path) -> str | None:
    if r.problem:
        return r.problem
    if not r.image:
        return "empty image path"
    if not r.text.strip():
        return "empty label"
    if r.split not in SPLITS:
        return f"split is {r.split!r}, expected one of {SPLITS}"
    path = Path(r.path)
    if not path.is_relative_to(folder):
        return f"image path points outside the data folder {str(folder)!r}"
    if not path.is_file():
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
    return frame[keep].reset_index(drop=True)
