"""Images -> text with a prediction model: the one recognition path shared by validation during
training, test evaluation, ``predict`` and the served pyfunc model."""

from __future__ import annotations

import keras
import numpy as np

from hwr.data.charset import Charset
from hwr.model.decode import decode


def predict_probs(model: keras.Model, images: np.ndarray, batch_size: int = 64) -> list[np.ndarray]:
    """Run the prediction model in batches with ``predict_on_batch`` (no per-call setup cost).

    Args:
        images: ``(n, height, width, 1)`` float32 in [0, 1].

    Returns:
        One ``(b, time, V + 1)`` float32 array per batch.
    """
    return [np.asarray(model.predict_on_batch(images[i:i + batch_size]))
            for i in range(0, len(images), batch_size)]


def transcribe(model: keras.Model, charset: Charset, images: np.ndarray, batch_size: int = 64,
               decoder: str = "greedy", beam_width: int = 10) -> tuple[list[str], np.ndarray]:
    """Transcription of ``(n, height, width, 1)`` float32 images; ``decoder`` is ``greedy``
    (default) or ``beam`` (with ``beam_width``), see :func:`hwr.model.decode.decode`.

    Returns:
        ``n`` texts and ``(n,)`` float32 confidences in [0, 1].
    """
    texts: list[str] = []
    confidences: list[np.ndarray] = []
    for probs in predict_probs(model, images, batch_size):
        batch_texts, batch_conf = decode(probs, charset, decoder, beam_width)
        texts.extend(batch_texts)
        confidences.append(batch_conf)
    return texts, (np.concatenate(confidences) if confidences else np.zeros(0, np.float32))
