"""Synthetic handwriting-like text lines, for pretraining a base model (the ``pretrain`` verb).

Text comes from a corpus (the training labels of a data set): lines are cut from its running words at the corpus's own line lengths, so words meet new neighbours. Each line is
drawn in a font that has glyphs for all its characters (Debian's handwriting-like fonts by
default, ``make fonts``), at a random size, slant, stroke weight, ink and paper grey, slightly
blurred and noisy, and sometimes cut along ragged top and bottom edges with white outside, as
lines cut from page polygons are. The lines are written as an ordinary labelled image folder
(``labels.csv`` with image, text, font and split columns), so training reads them like any data set.

Synthetic pretraining for HTR follows e.g. Kang et al. 2020 ("Unsupervised writer adaptation for
synthetic-to-real handwritten word recognition", WACV), who pretrain on words rendered in
handwriting fonts.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from hwr.data.charset import ctc_frames_needed, nfc
from hwr.errors import ConfigError

FONT_ROOT = Path("/usr/share/fonts")
# the fonts of the Makefile's FONT_PACKAGES (``make fonts``), under FONT_ROOT: handwriting-like fonts that draw
# lower case as lower case (Debian's fonts-bwht, fonts-humor-sans and fonts-femkeklaver draw capitals for it)
DEBIAN_FONTS = ("truetype/fifthhorseman/dkg.ttf", "truetype/fifthhorseman/dkgIt.ttf",
                "truetype/fifthhorseman/dkgBd.ttf", "truetype/fifthhorseman/dkgBI.ttf", "truetype/breip/Breip.ttf",
                "opentype/dancingscript/DancingScript-Regular.otf", "opentype/dancingscript/DancingScript-Bold.otf",
                "truetype/kristi/Kristi.ttf", "truetype/ecolier-court/Ecolier-court.ttf",
                "opentype/comic-neue/ComicNeue-Regular.otf", "opentype/comic-neue/ComicNeue-Italic.otf",
                "opentype/kaushanscript/KaushanScript-Regular.otf", "opentype/joscelyn/Joscelyn-Regular.otf")
FONT_SUFFIXES = (".ttf", ".otf")
RENDER_HEIGHT = 64  # pixels: lines are drawn at this height (the model scales them to its own)
RENDERER_VERSION = 1  # part of the cache key: raise it when the drawing changes
HELD_OUT = {"val": 300, "test": 200}  # synthetic lines per split besides train, at most
MIN_HELD_OUT = 8  # lines per held-out split however few the training lines


def held_out(n_lines: int) -> dict[str, int]:
    """Synthetic val and test lines for ``n_lines`` training lines: a tenth of them each, at least
    :data:`MIN_HELD_OUT` and at most :data:`HELD_OUT` (300 and 200 from 3,000 training lines on)."""
    return {split: min(most, max(MIN_HELD_OUT, n_lines // 10)) for split, most in HELD_OUT.items()}


@dataclass(frozen=True)
class Font:
    """A font file and the characters it has glyphs for (its character map, NFC)."""

    path: Path
    chars: frozenset[str]

    def covers(self, text: str) -> bool:
        return set(text) - {" "} <= self.chars


def font_files(spec: str) -> list[Path]:
    """The font files (.ttf, .otf) of ``spec``: ``debian`` (those of :data:`DEBIAN_FONTS` that
    exist) or comma-separated files and folders (searched recursively), sorted."""
    places = [FONT_ROOT / f for f in DEBIAN_FONTS] if spec == "debian" else \
        [Path(p.strip()).expanduser() for p in spec.split(",") if p.strip()]
    files = set()
    for place in places:
        if place.is_file() and place.suffix.lower() in FONT_SUFFIXES:
            files.add(place)
        elif place.is_dir():
            files.update(p for p in place.rglob("*") if p.suffix.lower() in FONT_SUFFIXES)
    return sorted(files)


def load_fonts(spec: str) -> list[Font]:
    """The fonts of ``spec`` (:func:`font_files`) with their character maps.

    Raises:
        ConfigError: no font file found (``make fonts`` installs Debian's), or one cannot be read.
    """
    files = font_files(spec)
    if not files:
        hint = "install them with `make fonts` (as root) or " if spec == "debian" else ""
        raise ConfigError(f"fonts={spec!r}: no .ttf or .otf font found; {hint}pass fonts=FILE_OR_FOLDER,...")
    fonts = []
    logging.getLogger("fontTools").setLevel(logging.ERROR)  # it warns of harmless quirks of many font files
    for path in files:
        try:
            with TTFont(path, lazy=True) as font:
                chars = frozenset(nfc(chr(c)) for c in font.getBestCmap())
        except Exception as exc:  # fontTools raises many kinds for a broken file
            raise ConfigError(f"fonts: cannot read {path} ({type(exc).__name__}: {exc})") from exc
        fonts.append(Font(path, chars))
    return fonts


def frames_needed(text: str) -> int:
    """The CTC frames ``text`` needs (:func:`hwr.data.charset.ctc_frames_needed`: its length plus
    one per doubled character)."""
    return ctc_frames_needed([ord(c) for c in text])


def corpus_lines(texts: list[str], n: int, rng: np.random.Generator, max_frames: int | None = None) -> list[str]:
    """``n`` lines cut from the running words of ``texts``: each starts at a random word and takes
    words until it reaches the length (characters) of a randomly drawn corpus line, never past
    ``max_frames`` CTC frames (:func:`frames_needed`; the frames the model emits, so that every
    line with more than one word fits it; a single word that does not is left to the caller).

    Raises:
        ConfigError: the corpus has no words.
    """
    words = " ".join(nfc(t) for t in texts).split()
    if not words:
        raise ConfigError("corpus: no words in its texts")
    lengths = np.array([len(t) for t in texts if t.strip()])
    out = []
    for start, length in zip(rng.integers(0, len(words), n), rng.choice(lengths, n)):
        line, i = words[start], start + 1
        while len(line) < length and i < len(words):
            longer = f"{line} {words[i]}"
            if max_frames is not None and frames_needed(longer) > max_frames:
                break
            line, i = longer, i + 1
        out.append(line)
    return out


def ragged_edge(width: int, low: float, high: float, rng: np.random.Generator) -> np.ndarray:
    """``(width,)`` float32 row positions of a piecewise-linear edge between ``low`` and ``high`` (pixels)."""
    knots = max(2, width // 60)
    return np.interp(np.arange(width), np.linspace(0, width - 1, knots),
                     rng.uniform(low, high, knots)).astype(np.float32)


class NoInk(ValueError):
    """A font drew nothing visible for a text (its glyphs are blank)."""


def draw_ink(text: str, font: Font, rng: np.random.Generator, cache: dict) -> np.ndarray:
    """``text`` in ``font`` at a random size (0.45-0.7 of :data:`RENDER_HEIGHT`), in a bolder stroke
    for 30 % of lines, slanted by a random shear (-0.3..0.4): ``(h, w)`` float32 ink in [0, 1] on 0,
    with a margin. ``cache``: opened fonts by ``(path, size)``."""
    size = int(RENDER_HEIGHT * rng.uniform(0.45, 0.7))
    if (font.path, size) not in cache:
        cache[font.path, size] = ImageFont.truetype(str(font.path), size)
    face = cache[font.path, size]
    stroke = int(rng.random() < 0.3)
    left, top, right, bottom = face.getbbox(text, stroke_width=stroke)
    pad = RENDER_HEIGHT // 2
    canvas = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 0)
    ImageDraw.Draw(canvas).text((pad - left, pad - top), text, font=face, fill=255, stroke_width=stroke,
                                stroke_fill=255)
    ink = np.asarray(canvas, np.float32) / 255.0
    shear = rng.uniform(-0.3, 0.4)
    h, w = ink.shape
    return cv2.warpAffine(ink, np.float32([[1, -shear, shear * h / 2], [0, 1, 0]]), (w + int(abs(shear) * h), h))


def crop_to_height(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The inked part of ``ink`` with a random margin (0.05-0.2 of the height), scaled to
    :data:`RENDER_HEIGHT` pixels high. Raises :class:`NoInk` when nothing is inked."""
    rows, cols = np.nonzero(ink > 0.1)
    if not len(rows):
        raise NoInk("no visible ink")
    margin = int(RENDER_HEIGHT * rng.uniform(0.05, 0.2))
    ink = ink[max(rows.min() - margin, 0):rows.max() + margin + 1, max(cols.min() - margin, 0):cols.max() + margin + 1]
    width = max(1, round(ink.shape[1] * RENDER_HEIGHT / ink.shape[0]))
    return cv2.resize(ink, (width, RENDER_HEIGHT), interpolation=cv2.INTER_AREA)


def on_paper(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``ink`` (float32 in [0, 1]) blurred (sigma 0.3-1 pixel) as ink grey (10-90) on paper grey
    (170-245) with pixel noise, and in half the lines white outside ragged top and bottom edges:
    uint8, same shape."""
    ink = cv2.GaussianBlur(ink, (0, 0), rng.uniform(0.3, 1.0))
    paper, dark = rng.uniform(170, 245), rng.uniform(10, 90)
    gray = paper - np.clip(ink, 0, 1) * (paper - dark) + rng.normal(0, rng.uniform(1, 8), ink.shape)
    if rng.random() < 0.5:
        height, width = gray.shape
        top_edge = ragged_edge(width, 0, height * 0.12, rng)
        bottom_edge = ragged_edge(width, height * 0.88, height, rng)
        y = np.arange(height, dtype=np.float32)[:, None]
        gray[(y < top_edge) | (y > bottom_edge)] = 255
    return np.clip(gray, 0, 255).astype(np.uint8)


def render_line(text: str, font: Font, rng: np.random.Generator, fonts_cache: dict | None = None) -> np.ndarray:
    """``text`` drawn in ``font`` on grey paper (:func:`draw_ink`, :func:`crop_to_height`,
    :func:`on_paper`): ``(RENDER_HEIGHT, width)`` uint8 (0 ink, 255 white), the width following the
    text (pixels). ``fonts_cache``: a dict reused across calls to keep opened fonts.

    Raises:
        NoInk: the font's glyphs for ``text`` are blank.
    """
    ink = draw_ink(text, font, rng, fonts_cache if fonts_cache is not None else {})
    return on_paper(crop_to_height(ink, rng), rng)


@dataclass(frozen=True)
class SyntheticSet:
    """A written synthetic data set: its folder (``labels.csv`` and ``lines/``), the lines written,
    the lines skipped (no font had glyphs for all their characters, or drew them blank, or a word
    too long for the model's frames), and the fonts used."""

    folder: Path
    written: int
    skipped: int
    fonts: tuple[str, ...]


def cache_key(texts: list[str], fonts: list[Font], n_lines: int, seed: int, max_frames: int | None = None) -> str:
    """A short hash of everything that decides a synthetic set (so an identical request reuses it)."""
    digest = hashlib.sha256(json.dumps([RENDERER_VERSION, n_lines, seed, sorted(map(str, (f.path for f in fonts))),
                                        texts] + ([max_frames] if max_frames is not None else [])).encode())
    return digest.hexdigest()[:16]


def write_synthetic(folder: Path, texts: list[str], fonts: list[Font], n_lines: int, seed: int,
                    max_frames: int | None = None) -> SyntheticSet:
    """Draw ``n_lines`` training lines plus :func:`held_out` val and test lines from ``texts``
    (:func:`corpus_lines`, at most ``max_frames`` CTC frames each) in ``fonts`` and write them to
    ``folder`` (``lines/NNNNNN.png``, ``labels.csv``), with a progress bar. A folder that already
    holds a complete set is reused.

    A line that no font has all the glyphs of, whose glyphs its font draws blank, or (a single word)
    that needs more than ``max_frames`` frames, is skipped and counted (``skipped``).
    """
    done = folder / "labels.csv"
    if done.exists():
        frame = pd.read_csv(done, keep_default_na=False)
        meta = json.loads((folder / "synthetic.json").read_text())
        return SyntheticSet(folder, len(frame), meta["skipped"], tuple(meta["fonts"]))
    rng = np.random.default_rng(seed)
    splits = ["train"] * n_lines + [s for s, k in held_out(n_lines).items() for _ in range(k)]
    (folder / "lines").mkdir(parents=True, exist_ok=True)
    rows, skipped, cache = [], 0, {}
    for i, (text, split) in enumerate(tqdm(list(zip(corpus_lines(texts, len(splits), rng, max_frames), splits)),
                                           desc="synthetic lines", unit="line", mininterval=2.0)):
        usable = [f for f in fonts if f.covers(text)]
        if not usable or (max_frames is not None and frames_needed(text) > max_frames):
            skipped += 1
            continue
        font = usable[rng.integers(len(usable))]
        try:
            image = render_line(text, font, rng, cache)
        except NoInk:
            skipped += 1
            continue
        name = f"lines/{i:06d}.png"
        cv2.imwrite(str(folder / name), image)
        rows.append({"image": name, "text": text, "font": font.path.name, "split": split})
    used = tuple(sorted({r["font"] for r in rows}))
    (folder / "synthetic.json").write_text(json.dumps({"skipped": skipped, "fonts": used}))
    pd.DataFrame(rows).to_csv(done.with_suffix(".tmp"), index=False)
    done.with_suffix(".tmp").rename(done)  # last: its presence marks a complete set
    return SyntheticSet(folder, len(rows), skipped, used)
