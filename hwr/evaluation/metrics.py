"""Character and word error rates (corpus-level), computed with rapidfuzz.

CER = sum of Levenshtein edits over all samples / sum of reference characters.
WER = the same over whitespace-separated tokens. This is the usual corpus-level definition
(e.g. the ICDAR / IAM HTR evaluations), not a mean of per-sample rates. Both sides are compared
in Unicode NFC, so ``u`` + combining diaeresis and ``ü`` are the same single character.
"""

from __future__ import annotations

import unicodedata
from typing import Sequence

from rapidfuzz.distance import Levenshtein


def nfc(text: str) -> str:
    """``text`` in Unicode normal form NFC (composed characters)."""
    return unicodedata.normalize("NFC", text)


def edit_distance(reference: str, hypothesis: str) -> int:
    """Levenshtein distance between two strings in NFC (insertions, deletions, substitutions cost 1)."""
    return Levenshtein.distance(nfc(reference), nfc(hypothesis))


def _corpus_rate(refs: Sequence, hyps: Sequence) -> float:
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    edits = sum(Levenshtein.distance(r, h) for r, h in zip(refs, hyps))
    total = sum(len(r) for r in refs)
    if total == 0:
        return 0.0 if edits == 0 else float("inf")
    return edits / total


def cer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus character error rate; 0.0 is perfect, may exceed 1.0 with many insertions.

    Raises:
        ValueError: if the two sequences differ in length.
    """
    return _corpus_rate([nfc(r) for r in references], [nfc(h) for h in hypotheses])


def wer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus word error rate over whitespace tokens (``str.split()``).

    Raises:
        ValueError: if the two sequences differ in length.
    """
    return _corpus_rate([nfc(r).split() for r in references], [nfc(h).split() for h in hypotheses])
