"""Images to transcribe for ``predict``: the rows of a labels CSV or every image of a folder,
read lazily chunk by chunk so memory stays flat with the number of images.

A row whose image is missing or undecodable is not fatal here: it is returned with an ``error``
text, and the batch goes on. Knows nothing of models or MLflow.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pandas as pd

from hwr.config import DataConfig
from hwr.config.prediction import ALL_SPLITS, NO_LABELS
from hwr.data.images import decode_image
from hwr.data.labels import BadInputLog, read_labels
from hwr.data.pages.lines import line_table, page_format
from hwr.data.remote import local_view
from hwr.errors import BadInputError, ImageDecodeError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def image_table(data: DataConfig, split: str = ALL_SPLITS, labelled: bool = True, seed: int = 42) -> pd.DataFrame:
    """The images to transcribe, one row each, in a stable order.

    Labelled (``labelled=True``): the labels CSV read with :func:`hwr.data.labels.read_labels` (policy
    ``skip``); columns ``row`` (CSV line), ``image`` (as in the CSV), ``path`` (absolute),
    ``truth``, ``split``, ``error`` (``""``, or why the row cannot be used, e.g. a missing image:
    such rows are kept, not dropped). With ``split="all"`` the split column's values do not matter;
    another ``split`` keeps only that split's rows; a CSV without a split column gets ``train``'s
    seeded random split (``seed``, default as in train).
    Unlabelled: every PNG/JPEG under ``data.data`` recursively, sorted; columns ``image``
    (relative to the folder), ``path``, ``error``. A symbolic link (to an image or a folder)
    pointing outside the folder is a row with an ``error`` unless ``data.allow_links_outside``
    (then it is followed).
    Pages (PAGE-XML, ALTO): every line with coordinates, cut (:func:`hwr.data.pages.lines.line_table`);
    ``image`` is ``file.xml, line ID``, plus ``xml``, ``page``, ``line_id``; the lines'
    transcriptions are the ``truth`` when every line has one (and ``labels`` is not ``none``).
    ``s3://`` data is read through its local view (:func:`hwr.data.remote.local_view`): ``path``
    is then the view's file.

    Raises:
        BadInputError: missing folder, CSV or column, a CSV that is not UTF-8, a ``split`` that
        matches no row, or no image at all.
    """
    data = local_view(data)
    folder = Path(data.data)
    if not folder.is_dir():
        raise BadInputError(f"data folder {data.data!r} does not exist (parameter data)")
    fmt = page_format(data)
    if fmt in ("pagexml", "alto"):
        table = _pages(data, fmt, split, seed)
    else:
        table = _labelled(data, split, seed) if labelled else _folder(folder, data.allow_links_outside)
    if not len(table):
        what = f"split {split!r} of {data.labels_path()}" if labelled else f"{data.data!r} (PNG/JPEG, recursively)"
        raise BadInputError(f"no images to transcribe in {what}")
    return table


def _labelled(data: DataConfig, split: str, seed: int) -> pd.DataFrame:
    bad = BadInputLog("skip", data.labels_path())
    frame = read_labels(data, seed=seed, bad=bad, any_split=True).rename(columns={"text": "truth"})
    frame["error"] = ""
    folder = Path(data.data).resolve()
    rejected = pd.DataFrame({
        "row": [b.row for b in bad.rows], "image": [b.file for b in bad.rows],
        "path": [str(folder / b.file) if b.file else "" for b in bad.rows], "truth": "",
        "split": [b.split for b in bad.rows], "error": [b.reason for b in bad.rows],
    })
    frame = pd.concat([frame, rejected], ignore_index=True) if len(rejected) else frame
    if split != ALL_SPLITS:
        chosen = frame[frame.split == split]
        if not len(chosen) and len(frame):
            found = ", ".join(f"{v!r} ({n} rows)" for v, n in frame.split.value_counts().head(5).items())
            source = (f"its column {data.split_col!r}" if _has_column(data, data.split_col)
                      else "the seeded random split")
            raise BadInputError(f"split={split!r} matches no row of {data.labels_path()}: {source} holds {found};"
                                " pass split=all to transcribe every row whatever its split (parameter split)")
        frame = chosen
    columns = ["row", "image", "path", "truth", "split", "error"]
    return frame.sort_values("row")[columns].reset_index(drop=True)


def _pages(data: DataConfig, fmt: str, split: str, seed: int) -> pd.DataFrame:
    lines = line_table(data.replace(on_bad_input="skip"), fmt, seed)
    lines = lines[lines["split"] == split] if split != ALL_SPLITS else lines
    cache = Path(data.line_cache).expanduser().resolve()
    table = pd.DataFrame({
        "row": range(1, len(lines) + 1), "image": lines["source"].to_numpy(),
        "path": [str(cache / i) if i else "" for i in lines["image"]], "split": lines["split"].to_numpy(),
        "page": lines["page"].to_numpy(), "line_id": lines["line_id"].to_numpy(), "xml": lines["xml"].to_numpy(),
        "error": lines["problem"].to_numpy(),
    })
    usable = (table["error"] == "").to_numpy()
    transcribed = usable.any() and (lines["text"].to_numpy()[usable] != "").all()
    if transcribed and data.labels.strip().lower() not in NO_LABELS:
        table.insert(3, "truth", lines["text"].to_numpy())
    return table


def _has_column(data: DataConfig, column: str) -> bool:
    return column in pd.read_csv(data.labels_path(), nrows=0, encoding="utf-8-sig").columns


def _folder(folder: Path, allow_links_outside: bool = False) -> pd.DataFrame:
    """Every PNG/JPEG under ``folder``, recursively, sorted. Symbolic links to images are listed;
    links to folders are followed only when they point outside ``folder`` and
    ``allow_links_outside`` (a link inside would list its images twice); a link pointing outside
    without it is a row with an ``error``."""
    root = folder.resolve()
    rows: list[tuple[Path, str, str]] = []  # (relative path, absolute path, error)
    seen: set[Path] = set()

    def walk(directory: Path) -> None:
        real = directory.resolve()
        if real in seen:
            return
        seen.add(real)
        for entry in os.scandir(directory):
            path = Path(entry.path)
            is_image = path.suffix.lower() in IMAGE_SUFFIXES
            if entry.is_symlink():
                target = path.resolve()
                if not target.is_relative_to(root):
                    if not allow_links_outside:
                        if is_image or target.is_dir():
                            rows.append((path.relative_to(folder), str(target),
                                         f"a symbolic link to {str(target)!r}, outside the data folder "
                                         f"{str(root)!r}; pass allow_links_outside=true to follow such links"))
                        continue
                    if target.is_dir():
                        walk(path)
                        continue
                elif target.is_dir():
                    continue
            if entry.is_dir() and not entry.is_symlink():
                walk(path)
            elif is_image and entry.is_file():
                rows.append((path.relative_to(folder), str(path.resolve()), ""))

    walk(folder)
    rows.sort(key=lambda r: r[0])
    return pd.DataFrame({"image": [str(r[0]) for r in rows], "path": [r[1] for r in rows],
                         "error": [r[2] for r in rows]}, columns=["image", "path", "error"])


@dataclass
class Chunk:
    """Up to ``chunk_size`` rows of the image table and their images.

    ``rows``: the table's rows (``error`` filled in for unreadable images);
    ``encoded``: base64 PNG/JPEG of the readable rows, in order; ``ok``: boolean mask of
    ``rows`` that are readable (``len(encoded) == ok.sum()``).
    """

    rows: pd.DataFrame
    encoded: list[str]
    ok: pd.Series


def read_chunks(table: pd.DataFrame, chunk_size: int = 64) -> Iterator[Chunk]:
    """Yield the table in chunks with their images read and checked (decoded once with
    :func:`hwr.data.images.decode_image`, so a bad file never reaches a model).

    Only one chunk's images are in memory at a time.
    """
    for start in range(0, len(table), chunk_size):
        rows = table.iloc[start:start + chunk_size].copy()
        encoded, errors = [], []
        for path, error in zip(rows["path"], rows["error"]):
            if not error:
                data, error = read_checked(path)
                if data is not None:
                    encoded.append(base64.b64encode(data).decode("ascii"))
            errors.append(error)
        rows["error"] = errors
        yield Chunk(rows, encoded, rows["error"] == "")


def read_checked(path: str) -> tuple[bytes | None, str]:
    """``(bytes, "")`` for a decodable image file, else ``(None, reason)``."""
    try:
        data = Path(path).read_bytes()
        decode_image(data)
        return data, ""
    except FileNotFoundError:
        return None, "image file does not exist"
    except (ImageDecodeError, OSError) as exc:
        return None, f"cannot read image: {exc}"
