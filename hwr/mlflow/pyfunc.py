"""The prediction model as an MLflow pyfunc: base64 PNG/JPEG in, text, confidence and error out.

It carries the Keras prediction model, the charset and the input geometry as artifacts, and the
``hwr`` package as code, and uses the same :mod:`hwr.data.images` and :mod:`hwr.model.inference` as
training, so a served model preprocesses and decodes exactly as it was validated.

Errors, as the scoring server (``mlflow models serve``) answers them:

- the request as a whole is unusable (no ``image`` column, no rows, an unknown ``decoder``):
  :class:`InvalidRequestError`, an :class:`~mlflow.exceptions.MlflowException` with error code
  ``INVALID_PARAMETER_VALUE``, which the server answers with HTTP 400 and the message;
- one row is not a usable image (not base64, not an image, empty, null, a number): that row gets
  ``text`` ``""``, ``confidence`` 0.0 and its problem in ``error``; the other rows are transcribed
  and the answer is 200. ``error`` is ``""`` for a good row.

Models logged before the package had subpackages pickled this class as
``hwr.serving.HwrPredictionModel``; :mod:`hwr.serving` re-exports it so they keep loading.
"""

from __future__ import annotations

import base64
import binascii
import math

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from hwr.data.geometry import round_up
from hwr.data.images import decode_image, fit_to_height, pad_to_width
from hwr.errors import InvalidImageError

IMAGE_COLUMN = "image"
OUTPUT_COLUMNS = ("text", "confidence", "error")
LANGUAGE_ARTIFACT = "language_model"  # the pyfunc artifact holding the model's LanguageModel, if any
DEFAULT_PARAMS = {"decoder": "greedy", "beam_width": 10, "tta": False}  # inference params of predict()
WARM_UP_BATCHES = (1, 64)  # batch sizes run once in load_context, so no request pays the tracing


class InvalidRequestError(InvalidImageError, MlflowException):
    """The request as a whole cannot be transcribed (no ``image`` column, no rows, a bad parameter).

    An :class:`MlflowException` with ``INVALID_PARAMETER_VALUE``, so the scoring server answers
    HTTP 400 with this message; a ``ValueError`` (and :class:`InvalidImageError`) for local callers.
    """

    def __init__(self, message: str):
        MlflowException.__init__(self, message, error_code=INVALID_PARAMETER_VALUE)


def image_bytes(value) -> bytes:
    """Raw image bytes from a base64 string (or bytes already decoded).

    Raises:
        InvalidImageError: the value is neither bytes nor valid base64.
    """
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        raise InvalidImageError("missing value (null); expected a base64 string")
    if not isinstance(value, str):
        raise InvalidImageError(f"expected a base64 string, got {type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidImageError(f"not valid base64 ({exc})") from exc


def row_image(value, height: int, width: int) -> np.ndarray:
    """One request cell -> ``(height, w)`` float32 in [0, 1], ``w <= width`` (the training
    preprocessing, :func:`hwr.data.images.fit_to_height`; not yet padded).

    Raises:
        InvalidImageError / ImageDecodeError: the cell is not a usable image; the message says why.
    """
    return fit_to_height(decode_image(image_bytes(value)), height, width)


def pad_batch(images: list[np.ndarray], width: int | None, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Images of :func:`row_image` -> ``(n, height, w, 1)`` float32, each padded with its background to
    ``width`` (a fixed-width model) or to the widest of them rounded up to ``stride`` pixels (``None``:
    a model of free width), and their ``(n,)`` int32 content widths."""
    widths = np.array([image.shape[1] for image in images], np.int32)
    target = width if width is not None else round_up(widths.max(), stride)
    return np.stack([pad_to_width(image, target) for image in images])[..., np.newaxis], widths


def check_params(params: dict | None, has_language: bool) -> tuple[str, int, bool]:
    """``decoder``, ``beam_width`` and ``tta`` of a request, checked (``has_language``: whether
    the model carries a language model for ``beam_lm``).

    Raises:
        InvalidRequestError: an unknown decoder, ``beam_lm`` for a model without a language model,
            a beam width that is not a positive integer, or a ``tta`` that is not true or false.
    """
    from hwr.config.params import parse_bool
    from hwr.config.prediction import DECODERS

    params = {**DEFAULT_PARAMS, **(params or {})}
    decoder = str(params["decoder"])
    if decoder not in DECODERS:
        raise InvalidRequestError(f"decoder={decoder!r}: expected one of {DECODERS}")
    if decoder == "beam_lm" and not has_language:
        from hwr.model.language import NO_LANGUAGE_MODEL

        raise InvalidRequestError(f"decoder='beam_lm': this model {NO_LANGUAGE_MODEL}")
    try:
        beam_width = int(params["beam_width"])
    except (TypeError, ValueError):
        beam_width = 0
    if beam_width < 1:
        raise InvalidRequestError(f"beam_width={params['beam_width']!r}: expected a positive integer")
    try:
        tta = parse_bool(params["tta"])
    except ValueError:
        raise InvalidRequestError(f"tta={params['tta']!r}: expected true or false") from None
    return decoder, beam_width, tta


class HwrPredictionModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper. Input: DataFrame with column ``image`` (base64-encoded PNG/JPEG, one per
    row). Output: DataFrame with ``text`` (str), ``confidence`` (float in [0, 1], mean
    per-character max probability) and ``error`` (``""``, or why the row is not a usable image),
    one row per input row.

    Artifacts: ``keras_model`` (prediction model ``.keras``), ``charset`` (``charset.json``),
    ``geometry`` (JSON with ``img_height``, ``img_width``, ``shape``, for readers; the pyfunc reads
    the geometry from the Keras model itself, :meth:`use`) and, in models logged since it exists,
    ``language_model`` (:class:`hwr.model.language.LanguageModel`, for ``decoder=beam_lm``).
    """

    def load_context(self, context):
        import keras

        from hwr.data.charset import Charset
        from hwr.model.language import LanguageModel

        charset = Charset.load(context.artifacts["charset"])
        language = context.artifacts.get(LANGUAGE_ARTIFACT)
        self.use(keras.saving.load_model(context.artifacts["keras_model"], compile=False), charset,
                 LanguageModel.load(language, charset) if language else None)
        self.warm_up()

    def use(self, model, charset, language=None) -> None:
        """Predict with the prediction ``model`` (Keras; through its copy for inference, batch
        normalisations folded and a fixed-width one's LSTMs unrolled, :func:`hwr.model.folding.for_inference`)
        and its ``charset``; the input geometry is read from the model
        (older models: fixed shape); ``language``: the :class:`~hwr.model.language.LanguageModel`
        for ``decoder=beam_lm``, if the model carries one."""
        from hwr.model.crnn import input_geometry, true_width, width_stride
        from hwr.model.folding import for_inference

        self.model, self.charset, self.language = for_inference(model), charset, language
        self.height, self.width = input_geometry(model)
        self.true_width, self.stride = true_width(model), width_stride(model)

    @property
    def predictor(self):
        """The model's :class:`~hwr.model.inference.BatchingPredictor`: concurrent requests (the
        scoring server runs each in a thread) share forward passes."""
        from hwr.model.inference import BatchingPredictor

        if getattr(self, "_predictor", None) is None or self._predictor.model is not self.model:
            self._predictor = BatchingPredictor(self.model)
        return self._predictor

    def warm_up(self) -> None:
        """Trace the inference function and touch its kernels (blank pages of each batch size of
        :data:`WARM_UP_BATCHES`), so that the first request is as fast as the rest."""
        from hwr.model.inference import transcribe

        for n in WARM_UP_BATCHES:
            transcribe(self.model, self.charset, np.ones((n, self.height, self.width, 1), np.float32),
                       predictor=self.predictor)

    def preprocess(self, values) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Column of base64 images -> ``(n_good, height, w, 1)`` float32 in [0, 1] (:func:`pad_batch`),
        their ``(n_good,)`` widths, and one error message per row (``""`` for a good row). A bad row
        never raises."""
        images, errors = [], []
        for value in values:
            try:
                images.append(row_image(value, self.height, self.width))
                errors.append("")
            except Exception as exc:  # noqa: BLE001 - one row's problem, whatever it is, stays in its row
                errors.append(str(exc) if isinstance(exc, ValueError) else f"unusable image ({type(exc).__name__}: {exc})")
        if not images:
            return np.zeros((0, self.height, self.width, 1), np.float32), np.zeros(0, np.int32), errors
        return (*pad_batch(images, None if self.true_width else self.width, self.stride), errors)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """``params`` (optional): ``decoder`` (``greedy``, the default, ``beam``, or ``beam_lm`` with
        the model's language model), ``beam_width`` (int, default 10) and ``tta`` (bool, default
        false: average the image's and two slanted copies' probabilities, :mod:`hwr.model.tta`).

        Returns:
            ``text``, ``confidence`` and ``error`` per input row; a row that is not a usable image
            has ``text`` ``""``, ``confidence`` 0.0 and its problem in ``error``.

        Raises:
            InvalidRequestError: not a frame, no ``image`` column, no rows, or bad ``params``.
        """
        from hwr.model.inference import transcribe

        if not isinstance(model_input, pd.DataFrame):
            raise InvalidRequestError(f"expected a table with column {IMAGE_COLUMN!r}, got {type(model_input).__name__}")
        if IMAGE_COLUMN not in model_input.columns:
            raise InvalidRequestError(f"input has no column {IMAGE_COLUMN!r}; columns: {list(model_input.columns)}")
        if len(model_input) == 0:
            raise InvalidRequestError(f"the request has no rows: send one base64 PNG/JPEG per row in column {IMAGE_COLUMN!r}")
        decoder, beam_width, tta = check_params(params, self.language is not None)
        images, widths, errors = self.preprocess(model_input[IMAGE_COLUMN])
        texts, confidence = [""] * len(errors), np.zeros(len(errors), np.float64)
        if len(images):
            good_texts, good_conf = transcribe(self.model, self.charset, images, decoder=decoder,
                                               beam_width=beam_width, predictor=self.predictor, widths=widths,
                                               language=self.language, tta=tta)
            for row, text, conf in zip((i for i, e in enumerate(errors) if not e), good_texts, good_conf):
                texts[row], confidence[row] = text, float(conf)
        return pd.DataFrame({"text": texts, "confidence": confidence, "error": errors})
