"""Images -> text with a prediction model: the one recognition path shared by validation during
training, test evaluation, ``predict`` and the served pyfunc model."""

from __future__ import annotations

import threading
import weakref

import keras
import numpy as np

from hwr.data.charset import Charset
from hwr.data.geometry import round_up
from hwr.model.crnn import width_stride
from hwr.model.decode import decode
from hwr.model.language import LanguageModel
from hwr.model.tta import SLANTS, slanted_probs

_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {input shape: tf.function}
_LOCK = threading.Lock()


def inference_function(model: keras.Model, image_shape: tuple[int | None, ...]):
    """The model's forward pass (``training=False``) as one ``tf.function`` whose batch dimension is
    free: traced once per model and image shape, then reused for every batch size (and, for a model
    of free input width, ``image_shape`` ``(height, None, 1)``, for every width). (Keras'
    ``predict_on_batch`` traces again for each new batch size until it relaxes the shape, which
    costs a served model 0.3-0.7 s on the first requests of each new size.) Cached per model,
    without keeping the model alive."""
    import tensorflow as tf

    with _LOCK:
        per_model = _FUNCTIONS.setdefault(model, {})
        function = per_model.get(image_shape)
        if function is None:
            ref = weakref.ref(model)
            spec = tf.TensorSpec((None, *image_shape), tf.float32)
            function = tf.function(lambda x: ref()(x, training=False), input_signature=[spec])
            per_model[image_shape] = function
        return function


def predict_probs(model: keras.Model, images: np.ndarray, batch_size: int = 64) -> list[np.ndarray]:
    """Run the prediction model in batches through :func:`inference_function` (no per-call setup
    cost, no retracing for a new batch size).

    Args:
        images: ``(n, height, width, 1)`` float32 in [0, 1].

    Returns:
        One ``(b, time, V + 1)`` float32 array per batch.
    """
    images = np.asarray(images, np.float32)
    function = inference_function(model, model_image_shape(model, images.shape[1:]))
    return [np.asarray(function(images[i:i + batch_size])) for i in range(0, len(images), batch_size)]


def model_image_shape(model: keras.Model, given: tuple[int, ...]) -> tuple[int | None, ...]:
    """The image shape to trace for: ``given``, with the width free where the model's is."""
    declared = tuple(model.inputs[0].shape[1:]) if model.inputs else ()
    if len(declared) == len(given) and declared[1] is None:
        return (given[0], None, *given[2:])
    return tuple(given)


def width_batches(widths: np.ndarray | None, n: int, batch_size: int, stride: int) -> list[tuple[np.ndarray, int | None]]:
    """Batches for a model of free input width: ``(row indices, width to cut to)``, the rows sorted
    by width so that each batch is cut to its own widest image (rounded up to ``stride`` pixels).
    Without ``widths``, ``(rows, None)`` batches in order."""
    if widths is None:
        return [(np.arange(i, min(i + batch_size, n)), None) for i in range(0, n, batch_size)]
    order = np.argsort(np.asarray(widths), kind="stable")
    batches = []
    for i in range(0, n, batch_size):
        rows = order[i:i + batch_size]
        batches.append((rows, round_up(np.max(widths[rows]), stride)))
    return batches


class BatchingPredictor:
    """:func:`predict_probs` shared by concurrent callers (the scoring server runs requests in
    threads): while one forward pass runs, the images of the requests that arrive meanwhile wait,
    and the next caller to get the model runs all of them as one batch. One forward pass of n images
    costs much less than n passes of one, so concurrent one-image requests gain throughput; a lone
    request runs at once (no waiting for company, no timer).
    """

    class _Job:
        __slots__ = ("images", "probs", "error", "done")

        def __init__(self, images: np.ndarray):
            self.images, self.probs, self.error, self.done = images, None, None, False

    def __init__(self, model: keras.Model, batch_size: int = 64):
        self.model, self.batch_size = model, batch_size
        self._pending: list[BatchingPredictor._Job] = []
        self._queue_lock = threading.Lock()
        self._run_lock = threading.Lock()

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """``(n, height, width, 1)`` float32 -> ``(n, time, V + 1)`` softmax probabilities."""
        job = self._Job(np.asarray(images, np.float32))
        with self._queue_lock:
            self._pending.append(job)
        with self._run_lock:  # a caller that held it ran our job with its own, or we run them all
            if not job.done:
                with self._queue_lock:
                    jobs, self._pending = self._pending, []
                self._run(jobs)
        if job.error is not None:
            raise job.error
        return job.probs

    def _run(self, jobs: list[_Job]) -> None:
        try:
            widest = max(j.images.shape[2] for j in jobs)
            images = jobs[0].images if len(jobs) == 1 else np.concatenate(
                [np.pad(j.images, ((0, 0), (0, 0), (0, widest - j.images.shape[2]), (0, 0)), constant_values=1.0)
                 for j in jobs])
            probs = np.concatenate(predict_probs(self.model, images, self.batch_size)) if len(images) else None
            start = 0
            for j in jobs:
                j.probs = probs[start:start + len(j.images)] if probs is not None else np.zeros((0, 0, 0), np.float32)
                start += len(j.images)
        except Exception as exc:  # noqa: BLE001 - every waiting caller gets the error
            for j in jobs:
                j.error = exc
        finally:
            for j in jobs:
                j.done = True


def transcribe(model: keras.Model, charset: Charset, images: np.ndarray, batch_size: int = 64,
               decoder: str = "greedy", beam_width: int = 10,
               predictor: BatchingPredictor | None = None,
               widths: np.ndarray | None = None,
               language: LanguageModel | None = None, tta: bool = False) -> tuple[list[str], np.ndarray]:
    """Transcription of ``(n, height, width, 1)`` float32 images; ``decoder`` is ``greedy``
    (default), ``beam`` (with ``beam_width``) or ``beam_lm`` (with the ``language`` model), see
    :func:`hwr.model.decode.decode`. With a
    ``predictor`` (a :class:`BatchingPredictor` of ``model``) the forward passes go through it.
    ``widths``: ``(n,)`` pixels of each image's content, for a model of free input width (images
    are batched by width and each batch cut to its widest; ignored by a fixed-width model).
    ``tta``: decode the probabilities averaged over the image and two slanted copies
    (:func:`hwr.model.tta.averaged_probs`, three forward passes).

    Returns:
        ``n`` texts and ``(n,)`` float32 confidences in [0, 1].
    """
    return transcribe_ways(model, charset, images, {"": (decoder, tta)}, batch_size, beam_width, predictor,
                           widths, language)[""]


def transcribe_ways(model: keras.Model, charset: Charset, images: np.ndarray, ways: dict[str, tuple[str, bool]],
                    batch_size: int = 64, beam_width: int = 10, predictor: BatchingPredictor | None = None,
                    widths: np.ndarray | None = None,
                    language: LanguageModel | None = None) -> dict[str, tuple[list[str], np.ndarray]]:
    """:func:`transcribe` in several ways at once, sharing the forward passes: ``ways`` maps a name
    to ``(decoder, tta)``. The image's own pass runs once and the slanted copies' once, however many
    ways use them (greedy, ``beam_lm``, each with and without ``tta``: 3 passes instead of 8).

    Returns:
        Per name, ``n`` texts and ``(n,)`` float32 confidences in [0, 1].
    """
    n = len(images)
    free = widths is not None and model_image_shape(model, tuple(images.shape[1:]))[1:2] == (None,)
    results = {name: ([""] * n, np.zeros(n, np.float32)) for name in ways}
    forward = predictor or (lambda batch: predict_probs(model, batch, batch_size)[0])
    slants = SLANTS if any(tta for _, tta in ways.values()) else SLANTS[:1]
    for rows, width in width_batches(np.asarray(widths) if free else None, n, batch_size, width_stride(model)):
        batch = images[rows] if width is None else images[rows, :, :width]
        per_slant = slanted_probs(forward, batch, slants)
        probs = {False: per_slant[0]}
        if len(per_slant) > 1:
            probs[True] = np.mean(per_slant, axis=0, dtype=np.float32)
        for name, (decoder, tta) in ways.items():
            batch_texts, batch_conf = decode(probs[tta], charset, decoder, beam_width, language)
            texts, confidences = results[name]
            for row, text in zip(rows, batch_texts):
                texts[row] = text
            confidences[rows] = batch_conf
    return results
