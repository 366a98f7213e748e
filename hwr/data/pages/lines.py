"""A folder of pages -> cut line images and a labels CSV, so that ``train``, ``tune``, ``finetune``
and ``predict`` read pages through the same code as a CSV data set.

Each page's lines are cut once (:mod:`.cutting`) into ``line_cache/<key>/`` where ``key`` hashes
the page file, its image and the cutting settings, so a later run reuses them and an edited page
is cut anew. Splits are drawn by page or by document (seeded), or read from a split file.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from hwr.config import DataConfig
from hwr.config.training import SPLITS
from hwr.data.images import load_image
from hwr.data.pages import cutting, formats
from hwr.data.pages.layout import Page
from hwr.errors import BadInputError, ImageDecodeError

CUT_VERSION = "1"  # bump when cutting changes, so cached lines are cut anew
LINES_FILE = "lines.csv"
COLUMNS = ["xml", "page", "document", "line_id", "source", "image", "text", "problem"]


def page_format(cfg: DataConfig) -> str:
    """``csv``, ``pagexml`` or ``alto``: ``cfg.format``, or detected from the folder for ``auto``."""
    return cfg.format if cfg.format != "auto" else formats.detect(Path(cfg.data), cfg.labels_path())


def line_table(cfg: DataConfig, fmt: str, seed: int) -> pd.DataFrame:
    """Every text line of the pages under ``cfg.data``, cut and cached, with its split.

    Returns:
        One row per line in page and reading order: ``xml`` (page file, absolute), ``page``,
        ``document``, ``line_id``, ``source`` (``file.xml, line ID``), ``image`` (cut PNG relative to
        the cache, "" when it could not be cut), ``text`` ("" without a transcription), ``problem``
        ("" or why the line cannot be used) and ``split``.

    Raises:
        BadInputError: no page files; a bad line with a transcription under ``on_bad_input=error``
        (naming file and line);
        a split file that is missing or lacks a page.
    """
    folder = Path(cfg.data)
    files = formats.page_files(folder, fmt)
    cache = Path(cfg.line_cache).expanduser()
    parts = [_page_lines(xml, fmt, folder, cache, cfg) for xml in tqdm(files, desc="cutting lines", unit="page",
                                                                       leave=False)]
    table = pd.concat(parts, ignore_index=True)
    bad = (table["problem"] != "") & (table["text"] != "")  # a line without text is no sample anyway
    if cfg.on_bad_input == "error" and bad.any():
        first = table[bad].iloc[0]
        raise BadInputError(f"{first.source}: {first.problem}. Fix the page file, or pass on_bad_input=skip "
                            "to skip such lines.")
    table["split"] = _splits(table, cfg, seed)
    return table


def as_csv(cfg: DataConfig, seed: int) -> DataConfig:
    """``cfg`` itself for a CSV data set; for pages, a DataConfig that reads the cut lines through a
    labels CSV written under ``line_cache/sets/`` (lines without a transcription are not samples:
    their count is printed). Bad lines are rows with a ``problem`` (see
    :func:`hwr.data.labels.read_labels`).

    Raises:
        BadInputError: as :func:`line_table`.
    """
    fmt = page_format(cfg)
    if fmt == "csv":
        return cfg
    table = line_table(cfg, fmt, seed)
    untranscribed = table["text"] == ""
    if untranscribed.any():
        print(f"{int(untranscribed.sum())} of {len(table)} lines have no transcription: not training samples",
              flush=True)
    rows = table[~untranscribed]
    rows = rows.assign(image=np.where(rows["problem"] == "", rows["image"], rows["source"]))
    body = rows[["image", "text", "split", "page", "problem"]].to_csv(index=False)
    folder = Path(cfg.line_cache).expanduser() / "sets" / hashlib.sha256(body.encode()).hexdigest()[:16]
    _write_atomic(folder / "labels.csv", body.encode("utf-8"))
    return cfg.replace(data=str(Path(cfg.line_cache).expanduser()), labels=str(folder / "labels.csv"),
                       format="csv", image_col="image", text_col="text", split_col="split")


def _page_lines(xml: Path, fmt: str, folder: Path, cache: Path, cfg: DataConfig) -> pd.DataFrame:
    page = formats.read_page(xml, fmt)
    relative = xml.relative_to(folder)
    parent = relative.parent.parent if relative.parent.name == "page" else relative.parent
    document = str(parent) if str(parent) != "." else page.page_id
    key = _page_key(page, cfg)
    lines = _cached_lines(page, cache / key, cfg) if key else _unreadable(page)
    lines["image"] = [f"{key}/{name}" if name else "" for name in lines["image"]]
    return lines.assign(xml=str(xml.resolve()), page=page.page_id, document=document,
                        source=[f"{relative}, line {i}" for i in lines["line_id"]])[COLUMNS]


def _page_key(page: Page, cfg: DataConfig) -> str | None:
    """Hash of the page file, its image and the cutting settings; None when the image is missing."""
    if not page.image_path.is_file():
        return None
    digest = hashlib.sha256(f"{CUT_VERSION}|{cfg.deskew}|{cfg.line_fill}|".encode())
    for path in (page.xml_path, page.image_path):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:20]


def _unreadable(page: Page, reason: str | None = None) -> pd.DataFrame:
    reason = reason or f"page image {str(page.image_path)!r} does not exist"
    return pd.DataFrame({"line_id": [l.line_id for l in page.lines], "image": "",
                         "text": [l.text or "" for l in page.lines], "problem": reason})


def _cached_lines(page: Page, folder: Path, cfg: DataConfig) -> pd.DataFrame:
    index = folder / LINES_FILE
    if index.is_file():
        return pd.read_csv(index, dtype=str, keep_default_na=False)
    try:
        scan = load_image(page.image_path)
    except (ImageDecodeError, OSError) as exc:
        return _unreadable(page, f"cannot read page image {str(page.image_path)!r}: {exc}")
    background = 255 if cfg.line_fill == "white" else cutting.page_background(scan)
    rows = [_cut_one(scan, line, n, folder, background, cfg.deskew) for n, line in enumerate(page.lines)]
    lines = pd.DataFrame(rows, columns=["line_id", "image", "text", "problem"])
    _write_atomic(index, lines.to_csv(index=False).encode("utf-8"))
    return lines


def _cut_one(scan: np.ndarray, line, n: int, folder: Path, background: int, deskew: bool) -> tuple:
    text = line.text or ""
    if line.problem:
        return line.line_id, "", text, line.problem
    try:
        image = cutting.cut_line(scan, line.polygon, line.baseline if deskew else None, background)
    except cutting.LineGeometryError as exc:
        return line.line_id, "", text, str(exc)
    name = f"{n:04d}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', line.line_id)[:80]}.png"
    _write_atomic(folder / name, cv2.imencode(".png", image)[1].tobytes())
    return line.line_id, name, text, ""


def _write_atomic(path: Path, data: bytes) -> None:
    """Write through a temporary file and rename, so a concurrent run (tune trials) never reads
    half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


def _splits(table: pd.DataFrame, cfg: DataConfig, seed: int) -> pd.Series:
    if cfg.split_file:
        return _split_from_file(table, Path(cfg.split_file))
    groups = sorted(table[cfg.split_by].unique())
    order = np.random.default_rng(seed).permutation(len(groups))
    sizes = [_group_count(len(groups), f) for f in (cfg.val_fraction, cfg.test_fraction)]
    split = {groups[i]: "train" for i in order}
    split.update({groups[i]: "val" for i in order[:sizes[0]]})
    split.update({groups[i]: "test" for i in order[sizes[0]:sizes[0] + sizes[1]]})
    return table[cfg.split_by].map(split)


def _group_count(n: int, fraction: float) -> int:
    """Groups for a split: the fraction rounded, but at least one when the fraction is not 0 and
    there are three groups or more (four pages with 10 % val still get a val page)."""
    return max(round(n * fraction), 1 if fraction > 0 and n >= 3 else 0)


def _split_from_file(table: pd.DataFrame, path: Path) -> pd.Series:
    if not path.is_file():
        raise BadInputError(f"split file {str(path)!r} does not exist (parameter split_file)")
    splits = pd.read_csv(path, dtype=str, keep_default_na=False)
    key = next((c for c in ("page", "document") if c in splits.columns), None)
    if key is None or "split" not in splits.columns:
        raise BadInputError(f"{path}: expected columns page (or document) and split; "
                            f"columns are {list(splits.columns)}")
    bad = sorted(set(splits["split"]) - set(SPLITS))
    if bad:
        raise BadInputError(f"{path}: split values {bad}, expected one of {SPLITS}")
    mapping = dict(zip(splits[key].str.strip(), splits["split"].str.strip()))
    missing = sorted(set(table[key]) - set(mapping))
    if missing:
        raise BadInputError(f"{path}: no split for {key} {', '.join(missing[:5])}"
                            f"{f' and {len(missing) - 5} more' if len(missing) > 5 else ''}")
    return table[key].map(mapping)
