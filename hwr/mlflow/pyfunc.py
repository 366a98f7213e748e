"""The prediction model as an MLflow pyfunc: base64 PNG/JPEG in, text and confidence out.

It carries the Keras prediction model, the charset and the input geometry as artifacts, and the
``hwr`` package as code, and uses the same :mod:`hwr.data.images` and :mod:`hwr.model.inference` as
training, so a served model preprocesses and decodes exactly as it was validated.

Models logged before the package had subpackages pickled this class as
``hwr.serving.HwrPredictionModel``; :mod:`hwr.serving` re-exports it so they keep loading.
"""

from __future__ import annotations

import base64
import binascii
import json
import math

import mlflow.pyfunc
import numpy as np
import pandas as pd

from hwr.data.images import decode_image, fit_to_geometry
from hwr.errors import ImageDecodeError, InvalidImageError

IMAGE_COLUMN = "image"
DEFAULT_PARAMS = {"decoder": "greedy", "beam_width": 10}  # inference params of predict()


def image_bytes(value) -> bytes:
    """Raw image bytes from a base64 string (or bytes already decoded).

    Raises:
        InvalidImageError: the value is neither bytes nor valid base64.
    """
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise InvalidImageError("missing value (null); expected a base64 string")
    if not isinstance(value, str):
        raise InvalidImageError(f"expected a base64 string, got {type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidImageError(f"not valid base64 ({exc})") from exc


class HwrPredictionModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper. Input: DataFrame with column ``image`` (base64-encoded PNG/JPEG, one per
    row). Output: DataFrame with ``text`` (str) and ``confidence`` (float in [0, 1], mean
    per-character max probability), one row per input row.

    Artifacts: ``keras_model`` (prediction model ``.keras``), ``charset`` (``charset.json``),
    ``geometry`` (JSON with ``img_height``, ``img_width``).
    """

    def load_context(self, context):
        import keras

        from hwr.data.charset import Charset

        self.model = keras.saving.load_model(context.artifacts["keras_model"], compile=False)
        self.charset = Charset.load(context.artifacts["charset"])
        geometry = json.loads(open(context.artifacts["geometry"], encoding="utf-8").read())
        self.height, self.width = int(geometry["img_height"]), int(geometry["img_width"])

    def preprocess(self, values) -> np.ndarray:
        """Column of base64 images -> ``(n, height, width, 1)`` float32 in [0, 1].

        Raises:
            InvalidImageError: naming the first row that is not a decodable image.
        """
        images = []
        for row, value in enumerate(values):
            try:
                gray = decode_image(image_bytes(value))
            except (InvalidImageError, ImageDecodeError) as exc:
                raise InvalidImageError(f"row {row} of column {IMAGE_COLUMN!r}: {exc}") from exc
            images.append(fit_to_geometry(gray, self.height, self.width))
        return np.stack(images)[..., np.newaxis] if images else np.zeros((0, self.height, self.width, 1), np.float32)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """``params`` (optional): ``decoder`` (``greedy``, the default, or ``beam``) and
        ``beam_width`` (int, default 10).

        Raises:
            InvalidImageError: no ``image`` column, or a row that is not a decodable image.
            ValueError: an unknown ``decoder``.
        """
        from hwr.model.inference import transcribe

        if IMAGE_COLUMN not in model_input.columns:
            raise InvalidImageError(f"input has no column {IMAGE_COLUMN!r}; columns: {list(model_input.columns)}")
        params = {**DEFAULT_PARAMS, **(params or {})}
        texts, confidence = transcribe(self.model, self.charset, self.preprocess(model_input[IMAGE_COLUMN]),
                                       decoder=str(params["decoder"]), beam_width=int(params["beam_width"]))
        return pd.DataFrame({"text": texts, "confidence": confidence.astype(np.float64)})
