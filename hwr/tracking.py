"""Everything MLflow: run parameters and metrics, artifacts, model logging, registration, aliases.

The rest of the package never imports MLflow (but :mod:`hwr.serving`, the pyfunc itself), so it
stays testable without a tracking store. The tracking store is MLflow's default
(``sqlite:///mlflow.db`` in the working directory, artifacts under ``mlruns/``) unless
``MLFLOW_TRACKING_URI`` says otherwise.
"""

from __future__ import annotations

import base64
import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import keras
import mlflow
import pandas as pd
from mlflow import MlflowClient

from hwr.charset import Charset
from hwr.model import CTCLossLayer, input_geometry, prediction_model
from hwr.serving import DEFAULT_PARAMS, IMAGE_COLUMN, HwrPredictionModel

PACKAGE_DIR = str(Path(__file__).resolve().parent)
PIP_REQUIREMENTS = [
    "tensorflow-cpu==2.21.0", "keras==3.15.1", "mlflow==3.17.2", "numpy==2.4.6", "pandas==3.1.1",
    "opencv-python-headless==5.0.0.93", "rapidfuzz==3.14.6", "tqdm==4.70.1",
]
FULL_MODEL_NAME = "full_model"
PREDICTION_MODEL_NAME = "model"
KIND_KEY = "hwr_kind"


@dataclass(frozen=True)
class LoggedModels:
    """URIs of the two models logged by a run (``models:/m-...``)."""

    full_uri: str
    prediction_uri: str


def param_text(value) -> str:
    """How a parameter value is written to MLflow (booleans as ``true``/``false``, as in MLproject)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def log_params(params: dict) -> None:
    """Log run parameters. Those already on the run (``mlflow run`` logs the ``-P`` values as
    typed, e.g. ``1e-3``) are kept as they are; MLflow forbids changing a logged parameter."""
    run = mlflow.active_run()
    logged = MlflowClient().get_run(run.info.run_id).data.params if run else {}
    mlflow.log_params({k: param_text(v) for k, v in params.items() if k not in logged})


def log_metrics(values: dict, step: int | None = None, prefix: str = "") -> None:
    """Log the finite numeric entries of ``values`` (others are ignored)."""
    numeric = {f"{prefix}{k}": float(v) for k, v in values.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))}
    mlflow.log_metrics(numeric, step=step)


def epoch_logger(prefix: str = ""):
    """An ``on_epoch(epoch, logs)`` hook for :func:`hwr.fit.fit` that logs step metrics."""
    return lambda epoch, logs: log_metrics(logs, step=epoch, prefix=prefix)


def log_frame(frame: pd.DataFrame, artifact_file: str) -> None:
    """Log a DataFrame as a CSV artifact (``artifact_file`` may include a folder)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(artifact_file).name
        frame.to_csv(path, index=False)
        mlflow.log_artifact(str(path), str(Path(artifact_file).parent) if "/" in artifact_file else None)


def log_json(payload: dict, artifact_file: str) -> None:
    mlflow.log_dict(payload, artifact_file)


def encode_example(paths: list[str]) -> pd.DataFrame:
    """An input example for the prediction model: base64 of real image files."""
    return pd.DataFrame({IMAGE_COLUMN: [base64.b64encode(Path(p).read_bytes()).decode("ascii") for p in paths]})


def prediction_signature(example: pd.DataFrame):
    """The pyfunc's signature: ``image`` (base64 string) in; ``text``, ``confidence`` out; and the
    inference params ``decoder`` / ``beam_width`` (defaults greedy / 10), so callers may pass them."""
    output = pd.DataFrame({"text": ["a"], "confidence": [1.0]})
    return mlflow.models.infer_signature(example, output, params=DEFAULT_PARAMS)


def log_models(full: keras.Model, charset: Charset, example_paths: list[str], extra_metadata: dict | None = None) -> LoggedModels:
    """Log the full model (``mlflow.tensorflow`` flavour, reloadable for training) and the
    prediction model (pyfunc with signature and input example) to the active run.

    The charset and input geometry travel with both: in the MLmodel ``metadata`` of each and
    as artifacts of the pyfunc.
    """
    height, width = input_geometry(full)
    metadata = {"charset": list(charset.chars), "img_height": height, "img_width": width, **(extra_metadata or {})}
    full_info = mlflow.tensorflow.log_model(
        full, name=FULL_MODEL_NAME, custom_objects={"CTCLossLayer": CTCLossLayer},
        code_paths=[PACKAGE_DIR], pip_requirements=PIP_REQUIREMENTS, metadata={**metadata, KIND_KEY: "full"},
    )
    example = encode_example(example_paths)
    with tempfile.TemporaryDirectory() as tmp:
        keras_path = Path(tmp) / "crnn.keras"
        prediction_model(full).save(keras_path)
        geometry_path = Path(tmp) / "geometry.json"
        geometry_path.write_text(json.dumps({"img_height": height, "img_width": width}))
        pred_info = mlflow.pyfunc.log_model(
            name=PREDICTION_MODEL_NAME, python_model=HwrPredictionModel(),
            artifacts={"keras_model": str(keras_path), "charset": str(charset.save(Path(tmp) / "charset.json")),
                       "geometry": str(geometry_path)},
            code_paths=[PACKAGE_DIR], pip_requirements=PIP_REQUIREMENTS,
            input_example=example, signature=prediction_signature(example),
            metadata={**metadata, KIND_KEY: "prediction"},
        )
    return LoggedModels(full_info.model_uri, pred_info.model_uri)


def register(model_uri: str, name: str, tags: dict, alias: str = "auto") -> int:
    """Register ``model_uri`` as a new version of ``name``, tag the version and set an alias.

    ``alias="auto"``: ``champion`` if the registered model has no champion yet, else
    ``challenger``. Any other value is set as given. Returns the version number.
    """
    client = MlflowClient()
    version = mlflow.register_model(model_uri, name)
    for key, value in tags.items():
        client.set_model_version_tag(name, version.version, key, str(value))
    if alias == "auto":
        aliases = client.get_registered_model(name).aliases
        alias = "challenger" if "champion" in aliases else "champion"
    client.set_registered_model_alias(name, alias, version.version)
    return int(version.version)
