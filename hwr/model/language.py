"""A character n-gram language model built from training labels, and CTC prefix beam search
that consults it.

The model is interpolated Witten-Bell smoothing over contexts of up to ``order - 1`` characters
(Witten & Bell, IEEE Trans. Inf. Theory 1991; Chen & Goodman, "An Empirical Study of Smoothing
Techniques for Language Modeling", 1998), with a start-of-text context. The search is CTC prefix
beam search with a language model weight ``alpha`` and a per-character bonus ``beta`` (Hannun et
al., "First-Pass Large Vocabulary Continuous Speech Recognition using Bi-Directional Recurrent
DNNs", arXiv:1408.2873, 2014).
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hwr.data.charset import BLANK, Charset

START = "\x02"  # pads the context before the first character
ORDER = 6  # characters per n-gram (a context of 5)
# The LM weight and per-character bonus of the served decoder, chosen on Hooker's val lines from the
# grid alpha 0.3/0.6/1.0 x beta 0/1/2 (bench/decoding.py): test CER 0.442 greedy -> 0.395, WER 0.789 -> 0.665.
ALPHA, BETA = 0.3, 1.0
NO_LANGUAGE_MODEL = ("carries no language model (it was logged before hwr logged one with each model); "
                     "use decoder=greedy or beam")


class CharNgram:
    """Character n-gram model: ``log_prob(context, char)`` in nats, for ``char`` in the charset.

    Args:
        texts: training labels. order: n (context of ``order - 1`` characters), >= 1.
        charset: the characters it scores (unseen ones get the smoothed uniform share).
    """

    def __init__(self, texts, charset: Charset, order: int = 6):
        if order < 1:
            raise ValueError(f"order={order}: expected at least 1")
        self.order, self.vocabulary, self.texts = order, len(charset.chars), list(texts)
        self.counts: dict[str, Counter] = defaultdict(Counter)
        for text in self.texts:
            padded = START * (order - 1) + text
            for i in range(order - 1, len(padded)):
                for n in range(order):
                    self.counts[padded[i - n:i]][padded[i]] += 1
        self.totals = {h: sum(c.values()) for h, c in self.counts.items()}
        self._cache: dict[tuple[str, str], float] = {}

    def prob(self, context: str, char: str) -> float:
        """P(char | the last ``order - 1`` characters of ``context``), in (0, 1]."""
        context = (START * (self.order - 1) + context)[-(self.order - 1):] if self.order > 1 else ""
        key = (context, char)
        if key not in self._cache:
            p = 1.0 / self.vocabulary
            for n in range(0, len(context) + 1):  # shortest context first, interpolating upwards
                history = context[len(context) - n:]
                seen = self.counts.get(history)
                if seen:
                    types, total = len(seen), self.totals[history]
                    p = (seen[char] + types * p) / (total + types)
            self._cache[key] = p
        return self._cache[key]

    def log_prob(self, context: str, char: str) -> float:
        return math.log(self.prob(context, char))


def _logsumexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    hi = max(a, b)
    return hi + math.log1p(math.exp(min(a, b) - hi))


def lm_beam_decode(probs: np.ndarray, charset: Charset, lm: CharNgram, beam_width: int = 10,
                   alpha: float = 0.5, beta: float = 1.0, prune: float = 1e-3) -> tuple[list[str], np.ndarray]:
    """CTC prefix beam search with a character language model.

    Args:
        probs: ``(batch, time, V + 1)`` float32 softmax probabilities, class 0 = blank.
        lm: the language model; alpha: its weight; beta: bonus per emitted character (nats).
        beam_width: prefixes kept per frame. prune: characters below this probability in a frame
            are not tried.

    Returns:
        Texts, and ``(batch,)`` float32 confidences in [0, 1]: the optical probability of the best
        prefix as a geometric mean per frame.
    """
    texts, confidences = [], np.zeros(len(probs), np.float32)
    for i, frames in enumerate(np.asarray(probs, np.float64)):
        text, optical = _search(np.log(frames + 1e-12), frames >= prune, charset, lm, beam_width, alpha, beta)
        texts.append(text)
        confidences[i] = min(1.0, math.exp(optical / max(len(frames), 1)))
    return texts, confidences


def _search(log_frames: np.ndarray, allowed: np.ndarray, charset: Charset, lm: CharNgram, beam_width: int,
            alpha: float, beta: float) -> tuple[str, float]:
    """One image: ``{prefix: (log p_blank, log p_char, log lm, log optical)}`` per frame."""
    chars = charset.chars
    beams: dict[str, list[float]] = {"": [0.0, -math.inf, 0.0]}  # p ending in blank, p ending in a char, lm
    for log_p, ok in zip(log_frames, allowed):
        candidates = [c for c in np.flatnonzero(ok) if c != BLANK]
        nxt: dict[str, list[float]] = defaultdict(lambda: [-math.inf, -math.inf, 0.0])
        for prefix, (pb, pnb, lm_score) in beams.items():
            total = _logsumexp(pb, pnb)
            entry = nxt[prefix]
            entry[0] = _logsumexp(entry[0], total + log_p[BLANK])
            entry[2] = lm_score
            for c in candidates:
                char = chars[c - 1]
                if prefix and prefix[-1] == char:
                    entry[1] = _logsumexp(entry[1], pnb + log_p[c])  # the same character, not yet separated
                    source = pb
                else:
                    source = total
                if source == -math.inf:
                    continue
                extended = prefix + char
                target = nxt[extended]
                target[1] = _logsumexp(target[1], source + log_p[c])
                target[2] = lm_score + lm.log_prob(prefix, char)
        ranked = sorted(nxt.items(), key=lambda kv: -(_logsumexp(kv[1][0], kv[1][1]) + alpha * kv[1][2]
                                                      + beta * len(kv[0])))
        beams = dict(ranked[:beam_width])
    best, (pb, pnb, _) = max(beams.items(), key=lambda kv: _logsumexp(kv[1][0], kv[1][1]) + alpha * kv[1][2]
                             + beta * len(kv[0]))
    return best, _logsumexp(pb, pnb)


@dataclass
class LanguageModel:
    """What a logged prediction model carries for ``decoder=beam_lm``: the n-gram model of its
    training labels and the decoder's weights (:data:`ALPHA`, :data:`BETA`)."""

    ngram: CharNgram
    alpha: float = ALPHA
    beta: float = BETA

    @classmethod
    def from_texts(cls, texts, charset: Charset, order: int = ORDER) -> "LanguageModel":
        return cls(CharNgram(texts, charset, order))

    def save(self, path: Path) -> Path:
        """Write ``path`` (JSON: ``order``, ``alpha``, ``beta`` and the training ``texts`` the counts
        are rebuilt from); returns it."""
        path = Path(path)
        path.write_text(json.dumps({"order": self.ngram.order, "alpha": self.alpha, "beta": self.beta,
                                    "texts": self.ngram.texts}, ensure_ascii=False), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path, charset: Charset) -> "LanguageModel":
        """Read a file written by :meth:`save` (the counts are rebuilt: about a second for 5,000 lines)."""
        saved = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(CharNgram(saved["texts"], charset, int(saved["order"])), float(saved["alpha"]), float(saved["beta"]))

    def decode(self, probs: np.ndarray, charset: Charset, beam_width: int = 10) -> tuple[list[str], np.ndarray]:
        """:func:`lm_beam_decode` with this model and its weights."""
        return lm_beam_decode(probs, charset, self.ngram, beam_width, self.alpha, self.beta)
