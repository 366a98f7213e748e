"""Fitting a full CRNN with the training loop's callbacks (:mod:`hwr.training.callbacks`):
per-epoch validation CER/WER, best-epoch weights, learning-rate halving, early stopping, a
stop at the first NaN loss (:class:`hwr.errors.TrainingDiverged`) and, given a
:class:`~hwr.training.checkpoint.Checkpoint`, a checkpoint after every epoch and the resume from one.

Knows nothing of MLflow: per-epoch metrics go to an ``on_epoch(epoch, logs)`` callable.
"""

from __future__ import annotations

import sys
from typing import Callable

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from hwr.data.charset import Charset
from hwr.errors import TrainingDiverged
from hwr.training.checkpoint import Checkpoint
from hwr.training.callbacks import (BestWeights, PlateauEarlyStopping, PlateauReduceLR, StopOnNaN, TimeBudget,
                                    ValidationMetrics, learning_rate)

EpochHook = Callable[[int, dict], None]


def epoch_report(best: BestWeights, on_epoch: EpochHook | None, step_offset: int) -> keras.callbacks.Callback:
    """Print one line per epoch and pass ``(epoch + step_offset, logs)`` to ``on_epoch``."""
    def report(epoch, logs):
        print(f"epoch {epoch + 1 + step_offset}: val_cer {logs['val_cer']:.4f} val_wer {logs['val_wer']:.4f} "
              f"(best {best.best_cer:.4f} at epoch {best.best_epoch + 1 + step_offset})", flush=True)
        if on_epoch:
            on_epoch(epoch + step_offset, dict(logs))
    return keras.callbacks.LambdaCallback(on_epoch_end=report)


def epoch_source(train_ds: tf.data.Dataset) -> tuple[tf.data.Dataset, int | None]:
    """``model.fit``'s data and ``steps_per_epoch`` for ``train_ds``: when its batches per pass are
    known, the data set repeated and those batches, so one iterator (its shuffle buffer,
    its parallel map and prefetch) lives through every epoch; otherwise ``train_ds`` as it is and ``None``.

    Epochs and their batches stay as before (each pass is reshuffled), but Keras no longer builds a
    new iterator per epoch: here that made epochs alternate between about 12 and 22 s for the same
    work, where one iterator held 11-14 s (docs/performance.md)."""
    steps = int(train_ds.cardinality())
    if steps <= 0:  # unknown (-2) or infinite (-1)
        return train_ds, None
    return train_ds.repeat(), steps


def fit(model: keras.Model, train_ds: tf.data.Dataset, val_ds: tf.data.Dataset | None, val_images: np.ndarray,
        val_texts, charset: Charset, epochs: int, patience: int, on_epoch: EpochHook | None = None,
        step_offset: int = 0, extra_logs: dict | None = None,
        callbacks: tuple[keras.callbacks.Callback, ...] = (),
        checkpoint: Checkpoint | None = None, max_minutes: float = 0.0,
        val_widths: np.ndarray | None = None) -> tuple[pd.DataFrame, BestWeights]:
    """Train a compiled full model; the model ends with its best-``val_cer`` weights.

    Args:
        val_images: ``(n, height, width, 1)`` float32 in [0, 1]; val_texts: their labels; val_widths:
            ``(n,)`` pixels, their widths for a model of free input width (``None``: full width).
        patience: epochs without a better ``val_cer`` before stopping (0 = never).
        on_epoch: called with ``(epoch, logs)`` after each epoch (epoch from 0, plus ``step_offset``).
        step_offset: added to epoch numbers (for fits in several phases); extra_logs: added to every epoch's logs.
        callbacks: more callbacks (e.g. a time limit or pruning), run after the best-weights one.
        max_minutes: a time budget (0 = none): :class:`~hwr.training.callbacks.TimeBudget` plans the
            learning rate to it and stops there, instead of the plateau halving.
        checkpoint: saves a checkpoint after every epoch; when it carries a state to resume
            (``checkpoint.resume``, whose weights :func:`~hwr.training.checkpoint.restore_model` put
            into ``model``), training continues at that state's epoch with its counters.

    Returns:
        The per-epoch history (``epoch`` 1-based, plus ``step_offset``; ``loss``, ``val_loss``,
        ``val_cer``, ``val_wer``, ``learning_rate``, ...; a resumed fit's includes the epochs before
        the checkpoint) and the :class:`BestWeights` callback (``best_cer``, ``best_epoch``).

    Raises:
        TrainingDiverged: the loss became NaN or infinite (the epoch, batch and learning rate named).
    """
    best = BestWeights()
    schedule = TimeBudget(60 * max_minutes, learning_rate(model)) if max_minutes else PlateauReduceLR()
    policy = [ValidationMetrics(val_images, val_texts, charset, extra_logs, val_widths), StopOnNaN(), best, schedule]
    if patience:
        policy.append(PlateauEarlyStopping(patience))
    policy += [*callbacks, epoch_report(best, on_epoch, step_offset)]
    if checkpoint is not None:
        policy.append(checkpoint.attach(policy, step_offset))
    verbose = 1 if sys.stdout.isatty() else 2
    initial = checkpoint.resume.epoch - step_offset if checkpoint and checkpoint.resume else 0
    if checkpoint and checkpoint.resume and checkpoint.resume.stopped:
        epochs = initial  # early stopping had ended this fit: only restore the best weights
    data, steps = epoch_source(train_ds)
    # shuffle=False: the pipeline reshuffles each pass itself; Keras' default True only warns.
    history = model.fit(data, steps_per_epoch=steps, validation_data=val_ds, epochs=epochs, initial_epoch=initial,
                        callbacks=policy, verbose=verbose, shuffle=False)
    stop = policy[1]
    if stop.nan_at is not None:
        epoch, batch, lr = stop.nan_at
        raise TrainingDiverged(f"loss became {stop.loss} in epoch {epoch + step_offset}, batch {batch} "
                               f"(learning rate {lr:g})")
    frame = pd.DataFrame(history.history)
    frame.insert(0, "epoch", np.asarray(history.epoch, dtype=int) + 1 + step_offset)
    if checkpoint is not None and checkpoint.resume is not None:
        before = pd.DataFrame(checkpoint.resume.history)  # this fit's epochs before the checkpoint
        before = before[(before.epoch > step_offset) & (before.epoch <= checkpoint.resume.epoch)]
        frame = pd.concat([before, frame], ignore_index=True)
    return frame, best
