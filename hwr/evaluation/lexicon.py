"""Lexicon correction: replace a transcription by the closest entry of a word list.

Similarity is rapidfuzz's normalised Levenshtein similarity, ``1 - distance / max(len(a), len(b))``
in [0, 1] (1 = identical). A prediction is replaced when its best entry scores at least the
threshold; otherwise it is kept as it is. Entries and texts are compared in Unicode NFC
(``u`` + combining diaeresis is ``ü``). Knows nothing of models or MLflow.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from pathlib import Path

from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from hwr.errors import LexiconError


class Lexicon:
    """A list of allowed transcriptions (one per line of a UTF-8 text file).

    Args:
        entries: the allowed strings; blank ones and duplicates are dropped, order kept.
        threshold: minimum similarity in [0, 1] for a replacement.

    Raises:
        LexiconError: no entries, or a threshold outside [0, 1].
    """

    def __init__(self, entries, threshold: float = 0.8):
        self.entries = list(dict.fromkeys(unicodedata.normalize("NFC", e.strip()) for e in entries if e.strip()))
        if not self.entries:
            raise LexiconError("the lexicon has no entries")
        if not 0.0 <= threshold <= 1.0:
            raise LexiconError(f"lexicon_threshold={threshold}: expected a similarity in [0, 1]")
        self.threshold = float(threshold)
        self._known = set(self.entries)
        self.correct = lru_cache(maxsize=100_000)(self._correct)

    @classmethod
    def load(cls, path: str | Path, threshold: float = 0.8) -> "Lexicon":
        """Read a lexicon file (UTF-8, one entry per line).

        Raises:
            LexiconError: the file does not exist, is not UTF-8 text, or has no entries.
        """
        path = Path(path)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise LexiconError(f"lexicon {str(path)!r} cannot be read (parameter lexicon): {exc}") from exc
        try:
            return cls(lines, threshold)
        except LexiconError as exc:
            raise LexiconError(f"lexicon {str(path)!r}: {exc}") from exc

    def __len__(self) -> int:
        return len(self.entries)

    def _correct(self, text: str) -> tuple[str, float]:
        """``(corrected text, similarity)``: the closest entry when its similarity reaches the
        threshold, else ``text`` itself (NFC) with the best similarity found (0.0 if none)."""
        text = unicodedata.normalize("NFC", text)
        if text in self._known:
            return text, 1.0
        best = process.extractOne(text, self.entries, scorer=Levenshtein.normalized_similarity)
        if best is None:
            return text, 0.0
        entry, score, _ = best
        return (entry, float(score)) if score >= self.threshold else (text, float(score))

    def correct_all(self, texts) -> tuple[list[str], list[float]]:
        """Correct many texts; returns the corrected texts and their similarities."""
        pairs = [self.correct(t) for t in texts]
        return [p[0] for p in pairs], [p[1] for p in pairs]
