"""Logging a run's two models: the full model (``mlflow.tensorflow`` flavour, reloadable for
training) and the prediction model (the pyfunc of :mod:`hwr.mlflow.pyfunc`, logged as Models From
Code through :mod:`hwr.mlflow.model_code`, with signature and input example). Each carries as code
the ``hwr`` modules it can import (:mod:`hwr.mlflow.code_paths`) and the project's pins
(``requirements.txt``) as requirements.
"""

from __future__ import annotations

import base64
import importlib.metadata
import json
import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import keras
import mlflow
import pandas as pd

from hwr.data.charset import Charset
from hwr.mlflow.code_paths import module_file, write_code
from hwr.mlflow.pyfunc import DEFAULT_PARAMS, IMAGE_COLUMN, LANGUAGE_ARTIFACT
from hwr.model.crnn import AuxiliaryCTC, CTCLossLayer, InputWidth, input_geometry, prediction_model, true_width
from hwr.model.language import LanguageModel

PACKAGE = Path(__file__).resolve().parents[1]
REQUIREMENTS_FILE = Path(__file__).resolve().parents[2] / "requirements.txt"
# What a logged model needs at load time (the rest of requirements.txt is for training and tests).
MODEL_PACKAGES = ("tensorflow-cpu", "keras", "mlflow", "numpy", "pandas", "opencv-python-headless",
                  "rapidfuzz", "tqdm")
FULL_MODEL_NAME = "full_model"
PREDICTION_MODEL_NAME = "model"
KIND_KEY = "hwr_kind"
MODEL_CODE = "hwr.mlflow.model_code"  # the pyfunc's code (Models From Code)
FULL_MODEL_CODE = "hwr.model.crnn"  # the full model's custom layers


def _read_from_zip(archive: Path, name: str) -> str | None:
    """The text of member ``name`` of a zip, or None if it has none."""
    with zipfile.ZipFile(archive) as bundle:
        return bundle.read(name).decode("utf-8") if name in bundle.namelist() else None


def project_pins() -> dict[str, str]:
    """The project's pinned requirements, ``name -> "name==version"``, read from their one place,
    ``requirements.txt``: beside the package (a source checkout), inside the zip the package was
    imported from (a Spark executor, see :func:`hwr.tuning.search.ship_package`), else the installed
    package's metadata (which ``pip install`` built from the same file)."""
    archive = next((p for p in PACKAGE.parents if p.is_file()), None)
    if REQUIREMENTS_FILE.is_file():
        lines = REQUIREMENTS_FILE.read_text(encoding="utf-8").splitlines()
    elif archive is not None and (shipped := _read_from_zip(archive, REQUIREMENTS_FILE.name)) is not None:
        lines = shipped.splitlines()
    else:
        lines = [r for r in importlib.metadata.requires("hwr") or [] if "extra ==" not in r]
    pins = [line.split("#")[0].split(";")[0].strip() for line in lines]
    return {re.split(r"[=<>!~ ]", pin)[0].lower(): pin for pin in pins if pin}


def model_requirements() -> list[str]:
    """The pip requirements written into every logged model (:data:`MODEL_PACKAGES`, pinned)."""
    pins = project_pins()
    return [pins[name] for name in MODEL_PACKAGES]


@dataclass(frozen=True)
class LoggedModels:
    """URIs (``models:/m-...``) and logged-model ids (``m-...``) of the two models logged by a run."""

    full_uri: str
    prediction_uri: str
    full_id: str = ""
    prediction_id: str = ""

    @property
    def ids(self) -> tuple[str, str]:
        return self.full_id, self.prediction_id


def encode_example(paths: list[str]) -> pd.DataFrame:
    """An input example for the prediction model: base64 of real image files."""
    return pd.DataFrame({IMAGE_COLUMN: [base64.b64encode(Path(p).read_bytes()).decode("ascii") for p in paths]})


def prediction_signature(example: pd.DataFrame):
    """The pyfunc's signature: ``image`` (base64 string) in; ``text``, ``confidence`` and ``error``
    (``""`` for a good row, else why the row is not a usable image) out; and the inference params
    ``decoder`` / ``beam_width`` (defaults greedy / 10), so callers may pass them.

    MLflow's schema enforcement passes a number or a null in ``image`` through unchanged (a string
    column stays ``object``), so such a row reaches the model and becomes that row's ``error``."""
    output = pd.DataFrame({"text": ["a"], "confidence": [1.0], "error": [""]})
    return mlflow.models.infer_signature(example, output, params=DEFAULT_PARAMS)


def _prediction_artifacts(full: keras.Model, charset: Charset, geometry: dict,
                          language: LanguageModel | None, folder: Path) -> dict[str, str]:
    """The pyfunc's artifacts, written into ``folder``: its Keras model, charset, geometry and,
    where given, the language model."""
    keras_path = folder / "crnn.keras"
    prediction_model(full).save(keras_path)
    geometry_path = folder / "geometry.json"
    geometry_path.write_text(json.dumps(geometry))
    artifacts = {"keras_model": str(keras_path), "charset": str(charset.save(folder / "charset.json")),
                 "geometry": str(geometry_path)}
    if language is not None:
        artifacts[LANGUAGE_ARTIFACT] = str(language.save(folder / "language_model.json"))
    return artifacts


def log_models(full: keras.Model, charset: Charset, example_paths: list[str],
               extra_metadata: dict | None = None, step: int = 0,
               language: LanguageModel | None = None) -> LoggedModels:
    """Log the full model and the prediction model to the active run, at ``step``: the step of
    the epoch whose weights they hold, so MLflow links each logged model to that epoch's metrics
    (the Models tab and ``mlflow.search_logged_models`` show them).

    The charset and input geometry travel with both: in the MLmodel ``metadata`` of each and
    as artifacts of the pyfunc; ``language`` (the n-gram model of the training labels, for
    ``decoder=beam_lm``) with the pyfunc, as its ``language_model`` artifact.
    """
    height, width = input_geometry(full)
    geometry = {"img_height": height, "img_width": width, "shape": "true" if true_width(full) else "fixed"}
    metadata = {"charset": list(charset.chars), **geometry, **(extra_metadata or {})}
    requirements = model_requirements()
    with tempfile.TemporaryDirectory() as tmp:
        full_info = mlflow.tensorflow.log_model(
            full, name=FULL_MODEL_NAME,
            custom_objects={"CTCLossLayer": CTCLossLayer, "AuxiliaryCTC": AuxiliaryCTC, "InputWidth": InputWidth},
            code_paths=[str(write_code([FULL_MODEL_CODE], Path(tmp) / "full"))], pip_requirements=requirements,
            metadata={**metadata, KIND_KEY: "full"}, step=step,
        )
        artifacts = _prediction_artifacts(full, charset, geometry, language, Path(tmp))
        example = encode_example(example_paths)
        pred_info = mlflow.pyfunc.log_model(
            name=PREDICTION_MODEL_NAME, python_model=str(Path(tmp) / "code" / module_file(MODEL_CODE)),
            artifacts=artifacts, code_paths=[str(write_code([MODEL_CODE], Path(tmp) / "code"))],
            pip_requirements=requirements, input_example=example, signature=prediction_signature(example),
            metadata={**metadata, KIND_KEY: "prediction"}, step=step,
        )
    return LoggedModels(full_info.model_uri, pred_info.model_uri, full_info.model_id, pred_info.model_id)
