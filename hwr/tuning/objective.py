"""The Hyperopt objective of ``tune``: one trial = one child MLflow run of
:func:`hwr.training.train.train_and_log`.

The objective is a plain picklable object (it travels to Spark workers) that carries the tracking
URI, experiment id and parent run id captured on the driver, because a worker process has no
active MLflow run.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from hwr.config import TrainConfig
from hwr.errors import ConfigError, TrialFailed
from hwr.mlflow import runs
from hwr.tuning.space import to_params


def failure(run_id: str | None, error: str, params: dict, started: float) -> dict:
    """A failed trial's result for Hyperopt (``STATUS_FAIL``); ``started`` is its ``time.monotonic()``."""
    from hyperopt import STATUS_FAIL

    return {"status": STATUS_FAIL, "loss": None, "outcome": "failed", "run_id": run_id, "error": error,
            "params": params, "duration_s": time.monotonic() - started}


@dataclass(frozen=True)
class Objective:
    """Callable ``sample -> result dict`` for ``hyperopt.fmin``.

    Attributes:
        base: the training configuration every trial starts from (``epochs`` = trial epochs).
        metric: minimised metric; ``val_cer`` is the trial's best validation CER, any other the
            minimum over the child run's per-epoch history of that metric.
        tracking_uri, experiment_id, parent_run_id: where the child runs go.
        prune: stop a trial by the median rule (:mod:`hwr.tuning.pruning`).
        deadline: the search's end (``time.time()`` seconds) at which a running trial stops, or None.
        resume_trial: the run id of an interrupted trial of a resumed search: the trial with its
            parameters continues in that run from its last checkpoint instead of starting again.

    Returns (per call) ``{"status": "ok", "outcome", "loss", "run_id", "val_cer", "test_cer",
    "test_wer", "best_epoch", "full_uri", "prediction_uri", "params", "duration_s"}``, ``outcome``
    being ``completed``, ``pruned`` or ``out_of_time`` (also the run's ``hwr.trial_outcome`` tag; a
    pruned trial's reason is its ``hwr.pruned`` tag). A failed trial returns ``{"status": "fail",
    "outcome": "failed", "loss": None, "run_id", "error", "params", "duration_s"}``; its child run
    ends FAILED with the tag ``hwr.error`` and the traceback as ``error.txt``.
    """

    base: TrainConfig
    metric: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    prune: bool = False
    deadline: float | None = None
    resume_trial: str | None = None

    def __call__(self, sample: dict) -> dict:
        import mlflow
        from hyperopt import STATUS_OK

        params = to_params(sample)
        started = time.monotonic()
        os.environ.pop("MLFLOW_RUN_ID", None)  # a Spark worker may inherit the launcher's run id
        if mlflow.get_tracking_uri() != self.tracking_uri:
            mlflow.set_tracking_uri(self.tracking_uri)
        resume = self._resume(params)
        run = mlflow.start_run(run_id=self.resume_trial if resume else None, experiment_id=self.experiment_id,
                               parent_run_id=None if resume else self.parent_run_id, nested=True,
                               run_name=None if resume else "trial", tags={runs.VERB: "tune-trial"},
                               log_system_metrics=self.base.system_metrics)
        run_id = run.info.run_id
        try:
            result = self._train(params, run_id, resume)
        except Exception as exc:  # a failed trial must not stop the search
            error = f"{type(exc).__name__}: {exc}"
            print(f"trial run {run_id} failed: {error}", flush=True)
            mlflow.set_tags({runs.ERROR: error[:4000], runs.TRIAL_OUTCOME: "failed"})
            mlflow.log_text(traceback.format_exc(), "error.txt")
            mlflow.end_run(status="FAILED")
            return failure(run_id, error, params, started)
        except BaseException:
            mlflow.end_run(status="KILLED")
            raise
        mlflow.end_run(status="FINISHED")
        return {"status": STATUS_OK, **result, "run_id": run_id, "params": params,
                "duration_s": time.monotonic() - started}

    def _resume(self, params: dict):
        """The checkpoint of :attr:`resume_trial` when ``params`` are that trial's, else None."""
        if not self.resume_trial:
            return None
        from hwr.training.resume import resume_state

        try:
            return resume_state(self.resume_trial, ("tune-trial",), self.base.replace(**params).flat_params())
        except ConfigError:  # another point: a new trial
            return None

    def _callbacks(self) -> tuple:
        """The trial's pruning and time-limit callbacks (the earlier trials' curves read now)."""
        from hwr.training.callbacks import Deadline
        from hwr.tuning.pruning import MedianPruning, completed_curves

        callbacks = []
        if self.prune:
            callbacks.append(MedianPruning(self.metric, completed_curves(self.parent_run_id, self.metric),
                                           self.base.epochs))
        if self.deadline is not None:
            callbacks.append(Deadline(self.deadline))
        return tuple(callbacks)

    @staticmethod
    def _outcome(callbacks: tuple) -> str:
        """Log and return how the trial ended: completed, pruned (with the reason) or out_of_time (the
        search's deadline cut it, whatever the pruning rule said of its cut epoch)."""
        import mlflow

        from hwr.training.callbacks import Deadline
        from hwr.tuning.pruning import MedianPruning

        late = any(isinstance(c, Deadline) and c.reached for c in callbacks)
        pruned = None if late else next((c.reason for c in callbacks if isinstance(c, MedianPruning) and c.reason), None)
        outcome = "out_of_time" if late else "pruned" if pruned else "completed"
        mlflow.set_tags({runs.TRIAL_OUTCOME: outcome, **({runs.PRUNED: pruned} if pruned else {})})
        return outcome

    def _train(self, params: dict, run_id: str, resume=None) -> dict:
        import keras

        from hwr.training import train

        keras.backend.clear_session()  # Keras state of the previous trial (its advice for models built in a loop)
        cfg = self.base.replace(**params)
        runs.log_params(cfg.flat_params())  # logged even if the combination is rejected below
        callbacks = self._callbacks()
        result = train.train_and_log(cfg, callbacks, resume)
        loss = result.val_cer if self.metric == "val_cer" else self._history_min(run_id, self.metric)
        self._check_finite(run_id, loss)
        return {"loss": float(loss), "outcome": self._outcome(callbacks), "val_cer": result.val_cer,
                "test_cer": result.test_cer,
                "test_wer": result.test_wer, "best_epoch": result.best_epoch,
                "full_uri": result.models.full_uri, "prediction_uri": result.models.prediction_uri}

    @staticmethod
    def _history_min(run_id: str, metric: str) -> float:
        from mlflow import MlflowClient

        values = [m.value for m in MlflowClient().get_metric_history(run_id, metric)]
        if not values:
            raise TrialFailed(f"the run logged no finite {metric!r}")
        return min(values)

    @staticmethod
    def _check_finite(run_id: str, loss: float) -> None:
        """Raise :class:`TrialFailed` on a non-finite metric or a training loss that became NaN/inf
        (non-finite values are not logged, so fewer ``loss`` than ``val_cer`` points betray them)."""
        from mlflow import MlflowClient

        if not math.isfinite(loss):
            raise TrialFailed(f"metric is {loss}")
        client = MlflowClient()
        epochs = len(client.get_metric_history(run_id, "val_cer"))
        finite = len(client.get_metric_history(run_id, "loss"))
        if finite < epochs:
            raise TrialFailed(f"training loss was NaN/inf in {epochs - finite} of {epochs} epochs")


LOST_TRIAL = "the trial's process died before it finished (killed, e.g. by the out-of-memory killer)"
LOST_EXECUTOR = ("the trial's Spark executor was lost before the trial finished (its worker died or was "
                 "killed); Spark ran the trial again on another worker, or Hyperopt counted it as failed")


@dataclass(frozen=True)
class IsolatedObjective:
    """Runs each call of ``objective`` in a fresh child process (``spawn``), one at a time.

    TensorFlow keeps memory of every ``model.fit`` in its process (about 100 MiB a trial of the
    default model, see ``bench/tune_memory.py``), so a long in-process search grows without bound;
    a child process returns it all when the trial ends. A child that dies (out-of-memory kill,
    segfault) makes the trial FAILED with :data:`LOST_TRIAL` instead of ending the search.

    Attributes:
        objective: a picklable callable ``sample -> result dict`` with the attributes
            ``tracking_uri`` and ``parent_run_id`` (an :class:`Objective`).
    """

    objective: Objective

    def __call__(self, sample: dict) -> dict:
        started = time.monotonic()
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            try:
                return pool.submit(self.objective, sample).result()
            except BrokenProcessPool:
                return self._lost(sample, started)

    def _lost(self, sample: dict, started: float) -> dict:
        """Mark the child run the dead process left RUNNING as FAILED; a Hyperopt failure result."""
        print(f"trial failed: {LOST_TRIAL}", flush=True)
        stranded = fail_running_trials(self.objective.tracking_uri, self.objective.parent_run_id, LOST_TRIAL, 1)
        return failure(stranded[0] if stranded else None, LOST_TRIAL, to_params(sample), started)


def interrupted_trial(parent_run_id: str, finished: set[str]):
    """The newest trial run of the search that is not among the ``finished`` trials' runs and
    has a checkpoint (its process was killed with the search), or None."""
    from mlflow import MlflowClient

    from hwr.mlflow.checkpoints import CHECKPOINT_DIR

    client = MlflowClient()
    parent = client.get_run(parent_run_id)
    candidates = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}' "
                                    "and attributes.status != 'FINISHED'", order_by=["attributes.start_time DESC"])
    for run in candidates:
        if run.info.run_id not in finished and any(f.path == CHECKPOINT_DIR for f in client.list_artifacts(run.info.run_id)):
            return run
    return None


def fail_running_trials(tracking_uri: str, parent_run_id: str, error: str, limit: int = 1000) -> list[str]:
    """End the search's trial runs still RUNNING (newest first, at most ``limit``) as FAILED with
    ``error`` (tag ``hwr.error``) and outcome ``failed``: runs whose process died before it could
    end them. Returns their run ids."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    parent = client.get_run(parent_run_id)
    running = client.search_runs([parent.info.experiment_id],
                                 f"tags.mlflow.parentRunId = '{parent_run_id}' and attributes.status = 'RUNNING'",
                                 order_by=["attributes.start_time DESC"], max_results=limit)
    for run in running:
        client.set_tag(run.info.run_id, runs.ERROR, error)
        client.set_tag(run.info.run_id, runs.TRIAL_OUTCOME, "failed")
        client.set_terminated(run.info.run_id, status="FAILED")
    return [r.info.run_id for r in running]
