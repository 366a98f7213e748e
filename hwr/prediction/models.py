"""Prediction models as ``predict`` and ``promote`` load them: pyfunc models by URI, checked for
what the run asks of them (a prediction rather than a full model, a language model for
``decoder=beam_lm``, ``tta``), each timed while it predicts."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import mlflow
import pandas as pd

from hwr.errors import ConfigError
from hwr.mlflow.packaging import KIND_KEY
from hwr.mlflow.pyfunc import LANGUAGE_ARTIFACT
from hwr.model.language import NO_LANGUAGE_MODEL


@dataclass
class LoadedModel:
    """A pyfunc prediction model and the seconds it spent predicting."""

    uri: str
    label: str
    pyfunc: object
    seconds: float = 0.0

    @property
    def model_ids(self) -> tuple[str, ...]:
        """The logged model's id (``m-...``), to link ``predict``'s metrics to it; empty for a
        model logged before MLflow 3."""
        model_id = getattr(self.pyfunc.metadata, "model_id", None)
        return (model_id,) if model_id else ()

    def predict(self, encoded: list[str], params: dict) -> pd.DataFrame:
        """``text``/``confidence`` of base64 images (``params``: ``decoder``, ``beam_width``)."""
        frame = pd.DataFrame({"image": encoded})
        started = time.perf_counter()
        out = self.pyfunc.predict(frame, params=params)
        self.seconds += time.perf_counter() - started
        return out



def model_labels(uris: list[str]) -> list[str]:
    """Short, file-name-safe, unique names of model URIs (``models:/hwr-crnn@champion`` ->
    ``hwr-crnn@champion``, ``models:/hwr-crnn/2`` -> ``hwr-crnn_v2``)."""
    labels = []
    for uri in uris:
        short = re.sub(r"^models:/([^/@]+)/(\d+)$", r"\1_v\2", uri)
        short = re.sub(r"^[a-z]+:/+", "", short)
        label = re.sub(r"[^\w@.-]+", "_", short).strip("_") or "model"
        labels.append(label if label not in labels else f"{label}_{len(labels) + 1}")
    return labels


def load_models(uris: list[str], decoder: str = "greedy", tta: bool = False) -> list[LoadedModel]:
    """Load each URI as a pyfunc prediction model that can decode with ``decoder`` (and ``tta``).

    Raises:
        ConfigError: a URI that cannot be loaded, a full (training) model, ``decoder=beam_lm``
            for a model without a language model (logged before models carried one), or ``tta``
            for a model logged before the pyfunc took it.
    """
    models = []
    for uri, label in zip(uris, model_labels(uris)):
        try:
            model = mlflow.pyfunc.load_model(uri)
        except Exception as exc:  # MlflowException, OSError, ...: one line naming the URI
            raise ConfigError(f"model={uri!r} cannot be loaded: {str(exc).splitlines()[0]}") from exc
        if (model.metadata.metadata or {}).get(KIND_KEY) == "full":
            raise ConfigError(f"model={uri!r} is a full (training) model; use the prediction model,"
                              " e.g. models:/hwr-crnn@champion")
        artifacts = model.metadata.flavors.get("python_function", {}).get("artifacts") or {}
        if decoder == "beam_lm" and LANGUAGE_ARTIFACT not in artifacts:
            raise ConfigError(f"decoder=beam_lm: model={uri!r} {NO_LANGUAGE_MODEL}, or train it again")
        if tta and "tta" not in {p.name for p in getattr(model.metadata.get_params_schema(), "params", [])}:
            raise ConfigError(f"tta=true: model={uri!r} was logged before the pyfunc took tta; train it again")
        models.append(LoadedModel(uri, label, model))
    return models
