"""CTC decoding of softmax outputs into label ids, with a confidence per transcription.

Greedy (best path) decoding: per frame take the most likely class, merge repeats, drop blanks
(Graves et al., "Connectionist Temporal Classification", ICML 2006); beam search keeps the
``beam_width`` most likely label prefixes per frame (TensorFlow's CTC beam search decoder); ``beam_lm``
adds a character n-gram language model of the training labels (:mod:`hwr.model.language`).
"""

from __future__ import annotations

import numpy as np

from hwr.config.prediction import DECODERS
from hwr.data.charset import BLANK, Charset
from hwr.model.language import NO_LANGUAGE_MODEL, LanguageModel


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



def beam_decode(probs: np.ndarray, charset: Charset, beam_width: int = 10) -> tuple[list[str], np.ndarray]:
    """CTC prefix beam search (``keras.ops.ctc_decode(strategy="beam_search", mask_index=0)``).

    Args:
        probs: ``(batch, time, V + 1)`` float32 softmax probabilities, class 0 = blank.
        beam_width: beams kept per frame (>= 1; 1 is close to greedy).

    Returns:
        Texts, and ``(batch,)`` float32 confidences in [0, 1]: the best labelling's probability
        as a geometric mean per frame, ``exp(log_p / time)``.
    """
    from keras import ops

    if len(probs) == 0:
        return [], np.zeros(0, np.float32)
    lengths = np.full(len(probs), probs.shape[1], np.int32)
    decoded, scores = ops.ctc_decode(np.log(probs + 1e-7), lengths, strategy="beam_search",
                                     beam_width=int(beam_width), top_paths=1, mask_index=BLANK)
    paths, log_p = np.asarray(decoded)[0], np.asarray(scores)[:, 0]
    texts = [charset.decode(path.tolist()) for path in paths]
    confidences = np.clip(np.exp(log_p / probs.shape[1]), 0.0, 1.0).astype(np.float32)
    return texts, confidences


def decode(probs: np.ndarray, charset: Charset, decoder: str = "greedy", beam_width: int = 10,
           language: LanguageModel | None = None) -> tuple[list[str], np.ndarray]:
    """Decode with ``decoder``: ``greedy`` (:func:`greedy_decode`), ``beam`` (:func:`beam_decode`) or
    ``beam_lm`` (prefix beam search with the character ``language`` model,
    :meth:`hwr.model.language.LanguageModel.decode`).

    Raises:
        ValueError: unknown decoder name, or ``beam_lm`` without a language model.
    """
    if decoder == "greedy":
        return greedy_decode(probs, charset)
    if decoder == "beam":
        return beam_decode(probs, charset, beam_width)
    if decoder == "beam_lm":
        if language is None:
            raise ValueError(f"decoder='beam_lm' needs a language model: this model {NO_LANGUAGE_MODEL}")
        return language.decode(probs, charset, beam_width)
    raise ValueError(f"decoder={decoder!r}: expected one of {DECODERS}")
