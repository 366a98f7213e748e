"""A page's text lines as hwr needs them, whatever the file format: an id, a polygon, an optional
baseline and an optional transcription, in reading order."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

Transcriptions = dict[str, tuple[str, float]]
"""Machine transcriptions to write into a page file: ``{line id: (text, confidence in [0, 1] or NaN)}``."""

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class PageLine:
    """One text line of a page.

    ``polygon``: ``(n, 2)`` int32 page pixel coordinates ``(x, y)``, or None when the file gives
    none; ``baseline``: ``(m, 2)`` int32 or None; ``text``: the transcription normalised to
    Unicode NFC, or None when the line has none; ``problem``: why the line cannot be cut, or "".
    """

    line_id: str
    polygon: np.ndarray | None
    baseline: np.ndarray | None = None
    text: str | None = None
    problem: str = ""


@dataclass(frozen=True)
class Page:
    """One page file: where it and its image are, its size in pixels (as the file states it,
    0 when unknown) and its text lines in reading order."""

    xml_path: Path
    image_path: Path
    format: str
    width: int
    height: int
    lines: list[PageLine] = field(default_factory=list)

    @property
    def page_id(self) -> str:
        """The page's name: the file name without its suffix."""
        return self.xml_path.stem


def parse_points(text: str | None) -> np.ndarray | None:
    """``"x1,y1 x2,y2 ..."`` (PAGE) or ``"x1 y1 x2 y2 ..."`` (ALTO) -> ``(n, 2)`` int32, rounding
    decimals; None for a missing, empty or odd-length list."""
    values = [float(v) for v in _NUMBER.findall(text or "")]
    if not values or len(values) % 2:
        return None
    return np.round(np.array(values, dtype=np.float64).reshape(-1, 2)).astype(np.int32)


def points_text(points: np.ndarray) -> str:
    """``(n, 2)`` points -> PAGE's ``"x1,y1 x2,y2 ..."``."""
    return " ".join(f"{int(x)},{int(y)}" for x, y in points)


def normalise_text(text: str | None) -> str | None:
    """A transcription in Unicode NFC with surrounding whitespace removed; None stays None and an
    empty text becomes None (a line without a transcription)."""
    if text is None:
        return None
    text = unicodedata.normalize("NFC", text).strip()
    return text or None
