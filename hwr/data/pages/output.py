"""Pages out: a predictions table -> one page file per input page, with each line's machine
transcription and confidence written in (see :mod:`.pagexml` and :mod:`.alto` for where), checked
against the shipped schemas."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from hwr.data.pages import formats


@dataclass
class WrittenPages:
    """What :func:`write_pages` wrote: the files, the repairs made to keep them valid (``file:
    note``) and the schema errors left (``file: line N: message``; empty when all are valid)."""

    files: list[Path] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)


def write_pages(predictions: pd.DataFrame, root: Path, out_dir: Path, keep_existing: bool) -> WrittenPages:
    """Write every page of ``predictions`` into ``out_dir``, at its path relative to ``root``.

    Args:
        predictions: rows with ``xml`` (page file), ``line_id``, ``prediction``, ``confidence`` and
            ``error`` (lines with an error are left as they were).
        root: the data folder the page files are under.
        keep_existing: leave lines that already have a transcription untouched.
    """
    written = WrittenPages()
    for xml, rows in predictions.groupby("xml", sort=True):
        ok = rows[rows["error"] == ""]
        texts = {r.line_id: (r.prediction, float(r.confidence)) for r in ok.itertuples()}
        page = formats.read_page(Path(xml), formats.sniff(Path(xml)))
        data, repairs = formats.write_transcriptions(page, texts, keep_existing)
        target = out_dir / Path(xml).resolve().relative_to(root.resolve())
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        written.files.append(target)
        written.repairs += [f"{target.name}: {note}" for note in repairs]
        written.invalid += [f"{target.name}: {error}" for error in formats.validate(data)]
    return written
