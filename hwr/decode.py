"""CTC decoding of softmax outputs into label ids, with a confidence per transcription.

Greedy (best path) decoding: per frame take the most likely class, merge repeats, drop blanks
(Graves et al., "Connectionist Temporal Classification", ICML 2006).
"""

from __future__ import annotations

import numpy as np

from hwr.charset import BLANK, Charset


def greedy_decode(probs: np.ndarray, charset: Charset) -> tuple[list[str], np.ndarray]:
    """Best-path decoding.

    Args:
        probs: ``(batch, time, V + 1)`` float32 softmax probabilities, class 0 = blank.

    Returns:
        Texts, and ``(batch,)`` float32 confidences in [0, 1]: the mean over the emitted
        characters of the frame's max probability (1.0 for an empty transcription's blanks
        is not meaningful, so an empty result gets the mean blank probability).
    """
    best = probs.argmax(axis=-1)
    best_p = probs.max(axis=-1)
    texts, confidences = [], np.zeros(len(probs), np.float32)
    for i, (path, p) in enumerate(zip(best, best_p)):
        keep = (path != BLANK) & np.concatenate([[True], path[1:] != path[:-1]])
        texts.append(charset.decode(path[keep].tolist()))
        confidences[i] = p[keep].mean() if keep.any() else p.mean()
    return texts, confidences
