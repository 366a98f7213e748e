"""Models that could not be logged (the tracking server or the artifact store failed at the end of
a run) are not lost: :func:`save_unlogged` writes them, with what their logging needs, to
``output/unlogged/<run id>/``, and :func:`log_saved` (``python -m entrypoints.log_saved FOLDER``)
logs and registers them into their run later, as the run would have.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import mlflow

from hwr.data.charset import Charset
from hwr.mlflow import runs
from hwr.mlflow.packaging import LoggedModels, log_models
from hwr.model.language import LanguageModel

FALLBACK_ROOT = Path("output") / "unlogged"
FULL_MODEL_FILE = "full_model.keras"
CHARSET_FILE = "charset.json"
LANGUAGE_FILE = "language_model.json"
RECORD_FILE = "unlogged.json"


def save_unlogged(full: keras.Model, charset: Charset, example_paths: list[str], record: dict,
                  root: Path = FALLBACK_ROOT, language: LanguageModel | None = None) -> Path:
    """Write the full model (``.keras``), its charset, its ``language`` model (if any), the
    input-example images and ``record`` (the run id, the step, the model metadata, the metrics to
    link, the registration) to ``root/<run id>/``; returns that folder."""
    folder = root / record["run_id"]
    (folder / "examples").mkdir(parents=True, exist_ok=True)
    full.save(folder / FULL_MODEL_FILE)
    charset.save(folder / CHARSET_FILE)
    if language is not None:
        language.save(folder / LANGUAGE_FILE)
    record = {**record, "examples": []}
    for i, path in enumerate(example_paths):
        target = folder / "examples" / f"{i}{Path(path).suffix}"
        shutil.copyfile(path, target)
        record["examples"].append(target.name)
    (folder / RECORD_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
    return folder.resolve()


def log_saved(folder: Path) -> tuple[dict, LoggedModels]:
    """Log the models saved by :func:`save_unlogged` into their run (at their step, with their
    metrics linked) and end the run FINISHED. Returns the saved record and the logged models;
    registration is the caller's (it needs the training configuration's names)."""
    folder = Path(folder)
    record = json.loads((folder / RECORD_FILE).read_text(encoding="utf-8"))
    full = keras.saving.load_model(folder / FULL_MODEL_FILE)
    charset = Charset.load(folder / CHARSET_FILE)
    language = LanguageModel.load(folder / LANGUAGE_FILE, charset) if (folder / LANGUAGE_FILE).is_file() else None
    examples = [str(folder / "examples" / name) for name in record["examples"]]
    with mlflow.start_run(run_id=record["run_id"]):
        models = log_models(full, charset, examples, record.get("metadata"), step=record["step"], language=language)
        runs.log_metrics(record["metrics"], model_ids=models.ids)
    return record, models
