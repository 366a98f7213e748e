"""Epoch checkpoints as run artifacts (``checkpoint/state.json``, ``checkpoint/arrays.npz``, replaced
after every epoch), and reopening a run to resume it: ``-P resume_run_id=RUN`` continues RUN
itself, so its step metrics, datasets and models stay in one run.

What a checkpoint holds is :class:`hwr.training.checkpoint.TrainingState`'s business; this module
only moves its folder and checks the run.
"""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from hwr.errors import ConfigError
from hwr.mlflow import runs

CHECKPOINT_DIR = "checkpoint"


def log_checkpoint(folder: Path) -> None:
    """Log (replace) the active run's checkpoint with the files of ``folder``."""
    mlflow.log_artifacts(str(folder), CHECKPOINT_DIR)


def download_checkpoint(run_id: str, dst: Path) -> Path | None:
    """Download run ``run_id``'s checkpoint folder into ``dst``; None when the run has none."""
    if not any(f.path == CHECKPOINT_DIR for f in MlflowClient().list_artifacts(run_id)):
        return None
    return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=CHECKPOINT_DIR, dst_path=str(dst)))


def resumable_run(run_id: str, verbs: tuple[str, ...]) -> Run:
    """The run ``run_id``, checked to be an unfinished run of one of ``verbs`` (``hwr.verb`` tag).

    Raises:
        ConfigError: no such run, a run of another verb, or a finished run.
    """
    what = f"resume_run_id={run_id}"
    try:
        run = MlflowClient().get_run(run_id)
    except MlflowException as exc:
        raise ConfigError(f"{what}: no such run ({str(exc).splitlines()[0]})") from exc
    verb = run.data.tags.get(runs.VERB, "")
    if verb not in verbs:
        raise ConfigError(f"{what}: a {verb or 'non-hwr'} run; resume it with the verb that started it")
    if run.info.status == "FINISHED":
        raise ConfigError(f"{what}: the run finished; there is nothing to resume")
    return run


def take_over_launcher(run_id: str) -> None:
    """Let this process reopen run ``run_id`` when ``mlflow run`` opened a new run for it
    (``MLFLOW_RUN_ID``): the new run is tagged ``hwr.resumed_run_id`` and left to its launcher."""
    launcher = os.environ.get("MLFLOW_RUN_ID")
    if launcher and launcher != run_id:
        os.environ.pop("MLFLOW_RUN_ID")
        MlflowClient().set_tag(launcher, runs.RESUMED_RUN_ID, run_id)
