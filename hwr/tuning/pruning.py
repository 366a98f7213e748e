"""Stopping hopeless trials early: the median rule over earlier trials at the same epoch.

The rule is Optuna's ``MedianPruner`` (https://optuna.readthedocs.io/en/stable/reference/generated/
optuna.pruners.MedianPruner.html): after an epoch, a trial stops when the best value of its metric
so far is worse than the median of that epoch's value over the earlier *completed* trials. A pruned
trial keeps its curve and best weights, is logged like any other (status ``ok``, outcome
``pruned``, the reason as a tag) and counts as done, not failed.

:func:`completed_curves` reads the earlier trials' curves back from MLflow, so the rule works the
same for a trial in a child process, on a Spark worker or after a resumed search.
"""

from __future__ import annotations

import math
import statistics

import keras

from hwr.mlflow import runs

WARMUP_EPOCHS = 2   # never prune in a trial's first epochs (CTC's all-blank start looks alike for all)
MIN_TRIALS = 2      # completed earlier trials needed at an epoch before the rule applies there


def prune_reason(curve: list[float], earlier: list[list[float]], epochs: int = 0, warmup: int = WARMUP_EPOCHS,
                 min_trials: int = MIN_TRIALS) -> str | None:
    """Why a trial whose (minimised) metric after each epoch is ``curve`` should stop now, or None.

    Args:
        curve: the trial's values, one per finished epoch (index 0 = epoch 1).
        earlier: the curves of completed earlier trials (any lengths).
        epochs: the trial's last epoch (0 = unknown): a trial that has reached it is complete, not pruned.
    Returns:
        e.g. ``"epoch 3: best val_cer so far 0.62 > median 0.41 of 3 earlier trials"`` (the metric
        name is added by the caller), or None.
    """
    epoch = len(curve)
    if epoch <= warmup or (epochs and epoch >= epochs):
        return None
    at_epoch = [c[epoch - 1] for c in earlier if len(c) >= epoch and math.isfinite(c[epoch - 1])]
    if len(at_epoch) < min_trials:
        return None
    best, median = min(curve), statistics.median(at_epoch)
    if best > median:
        return f"epoch {epoch}: best so far {best:.4f} > median {median:.4f} of {len(at_epoch)} earlier trials"
    return None


class MedianPruning(keras.callbacks.Callback):
    """Keras callback applying :func:`prune_reason` after every epoch; on a prune it stops training
    (``model.stop_training``) and sets ``reason``. Place it after the callback that adds
    ``metric`` to the epoch's logs.

    Args:
        metric: the minimised metric in the epoch logs (e.g. ``val_cer``).
        earlier: completed earlier trials' curves (see :func:`completed_curves`).
        epochs: the trial's number of epochs (no pruning after the last one).
    """

    def __init__(self, metric: str, earlier: list[list[float]], epochs: int = 0):
        super().__init__()
        self.metric, self.earlier, self.epochs = metric, earlier, epochs
        self.curve: list[float] = []
        self.reason: str | None = None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.metric)
        self.curve.append(float(value) if value is not None else math.inf)
        reason = prune_reason(self.curve, self.earlier, self.epochs)
        if reason and self.reason is None:
            self.reason = f"{self.metric}, {reason}"
            print(f"trial pruned: {self.reason}", flush=True)
            self.model.stop_training = True


def completed_curves(parent_run_id: str, metric: str) -> list[list[float]]:
    """The per-epoch ``metric`` of every completed (finished, not pruned) trial of a search, read
    from the trial runs nested under ``parent_run_id``: one list per trial, by epoch."""
    from mlflow import MlflowClient

    client = MlflowClient()
    parent = client.get_run(parent_run_id)
    found = client.search_runs([parent.info.experiment_id],
                               f"tags.mlflow.parentRunId = '{parent_run_id}' and attributes.status = 'FINISHED' "
                               f"and tags.`{runs.TRIAL_OUTCOME}` = 'completed'", max_results=1000)
    curves = []
    for run in found:
        history = sorted(client.get_metric_history(run.info.run_id, metric), key=lambda m: m.step)
        curves.append([m.value for m in history])
    return curves
