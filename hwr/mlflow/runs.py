"""Logging to the active MLflow run: parameters, metrics, artifacts, and the run tags, all under
one ``hwr.`` namespace.

The tracking store is MLflow's default (``sqlite:///mlflow.db`` in the working directory,
artifacts under ``mlruns/``) unless ``MLFLOW_TRACKING_URI`` says otherwise; the experiment is
``hwr`` (:func:`use_default_experiment`) unless the user names another.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import os
import re
import tempfile
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient

from hwr.config.params import Declaration

DEFAULT_EXPERIMENT = "hwr"
# set by the user (experiment) or by `mlflow run` (the run it opened): then the default stays out of the way
EXPERIMENT_VARIABLES = ("MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID")

# Run tags written by hwr (every verb sets VERB).
VERB = "hwr.verb"                      # train, finetune, predict, tune, tune-trial
LABELLED = "hwr.labelled"              # predict: whether the data had labels
BASE_MODEL = "hwr.base_model"          # finetune: the base model URI as given
BASE_RUN_ID = "hwr.base_run_id"        # finetune: the run that logged the base model
TRIAL = "hwr.trial"                    # tune trial: its 1-based number
ERROR = "hwr.error"                    # tune trial: why it failed
TRIAL_OUTCOME = "hwr.trial_outcome"    # tune trial: completed, pruned, out_of_time or failed
PRUNED = "hwr.pruned"                  # tune trial: why it was pruned
BEST_RUN_ID = "hwr.best_run_id"        # tune parent: the best trial's run
BEST_TRIAL = "hwr.best_trial"          # tune parent: the best trial's number
REGISTERED_RUN_ID = "hwr.registered_run_id"  # tune parent: the trial whose models were registered
BASELINE_TRIAL = "hwr.baseline_trial"  # tune parent: the trial that trained the run's own parameters
SEARCH_STOP = "hwr.search_stop"        # tune parent: why the search ended
RESUMED_RUN_ID = "hwr.resumed_run_id"  # the launcher run of a resumed run or search: which run it resumed
RESUMED_AT_EPOCH = "hwr.resumed_at_epoch"  # a resumed train/finetune run: the checkpoint's epoch (the last resume's)


def param_text(value) -> str:
    """How a parameter value is written to MLflow (booleans as ``true``/``false``, as in MLproject)."""
    return Declaration("").as_text(value)


def use_default_experiment() -> None:
    """Send the runs of a verb started directly (``python -m entrypoints.<verb>``) to the experiment
    :data:`DEFAULT_EXPERIMENT`, created if needed, unless ``MLFLOW_EXPERIMENT_NAME`` or
    ``MLFLOW_EXPERIMENT_ID`` names another or ``mlflow run`` already opened the run
    (``MLFLOW_RUN_ID``; ``mlflow run`` takes ``--experiment-name``, which the Makefile passes)."""
    if not any(os.environ.get(name) for name in EXPERIMENT_VARIABLES):
        mlflow.set_experiment(DEFAULT_EXPERIMENT)


# the names MLflow generates for unnamed runs, e.g. "brave-owl-123"
GENERATED_NAME = re.compile(r"^[a-z]+-[a-z]+-\d+$")


@contextlib.contextmanager
def verb_run(**start_run_args):
    """``mlflow.start_run(**start_run_args)`` for a verb: the run ends FINISHED, or FAILED (KILLED on
    Ctrl-C) when an exception leaves the block. When even that cannot be recorded (the tracking
    server is down), a note says so and the block's own error is the one raised, not MLflow's."""
    run = mlflow.start_run(**start_run_args)
    try:
        yield run
    except BaseException as exc:
        status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
        try:
            mlflow.end_run(status)
        except Exception as end_error:  # the tracking server went away with the run
            print(f"note: run {run.info.run_id} could not be marked {status} "
                  f"({str(end_error).splitlines()[0][:200]})", flush=True)
            os.environ.pop("MLFLOW_RUN_ID", None)
        raise
    mlflow.end_run()


def name_run(verb: str, data: str) -> None:
    """Give the active run a readable name, ``<verb>-<data folder>-<MMDD-HHMM>`` (e.g.
    ``train-dhsd-1125-0102``), unless the user named it (``mlflow run --run-name``, or
    ``mlflow.start_run(run_name=...)``): only a name MLflow generated is replaced."""
    current = mlflow.active_run().info.run_name or ""
    if not current or GENERATED_NAME.match(current):
        folder = re.sub(r"[^\w.-]+", "_", data_name(data))
        stamp = datetime.datetime.now().strftime("%m%d-%H%M")
        mlflow.set_tag("mlflow.runName", f"{verb}-{folder}-{stamp}")


def data_name(data: str) -> str:
    """A data set's short name for run and dataset names: its folder's name (``dhsd``)."""
    return Path(data).expanduser().resolve().name or "data"


def describe_run(markdown: str) -> None:
    """Set the active run's description (the UI's *Description* box: the ``mlflow.note.content`` tag)."""
    mlflow.set_tag("mlflow.note.content", markdown)


def log_params(params: dict) -> None:
    """Log run parameters. Those already on the run (``mlflow run`` logs the ``-P`` values as
    typed, e.g. ``1e-3``) are kept as they are; MLflow forbids changing a logged parameter."""
    run = mlflow.active_run()
    logged = MlflowClient().get_run(run.info.run_id).data.params if run else {}
    mlflow.log_params({k: param_text(v) for k, v in params.items() if k not in logged})


def log_metrics(values: dict, step: int | None = None, prefix: str = "", model_ids: tuple[str, ...] = (),
                dataset=None) -> None:
    """Log the finite numeric entries of ``values`` (others are ignored) to the active run, and
    link them to each logged model of ``model_ids`` (``m-...``; its metrics in the Models tab) and
    to ``dataset`` (an MLflow dataset: the data they were measured on)."""
    numeric = {f"{prefix}{k}": float(v) for k, v in values.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))}
    for model_id in model_ids or (None,):
        mlflow.log_metrics(numeric, step=step, model_id=model_id, dataset=dataset)


def epoch_logger(prefix: str = ""):
    """An ``on_epoch(epoch, logs)`` hook for :func:`hwr.training.fit.fit` that logs step metrics."""
    return lambda epoch, logs: log_metrics(logs, step=epoch, prefix=prefix)


def log_frame(frame: pd.DataFrame, artifact_file: str) -> None:
    """Log a DataFrame as a CSV artifact (``artifact_file`` may include a folder)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(artifact_file).name
        frame.to_csv(path, index=False)
        mlflow.log_artifact(str(path), str(Path(artifact_file).parent) if "/" in artifact_file else None)


def log_json(payload: dict, artifact_file: str) -> None:
    mlflow.log_dict(payload, artifact_file)
