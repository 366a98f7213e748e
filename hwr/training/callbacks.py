"""The training loop's policy as small Keras callbacks, each usable and testable alone.

:class:`ValidationMetrics` adds ``val_cer``, ``val_wer`` and ``val_empty_rate`` to each epoch's
logs; the callbacks after it read them: :class:`BestWeights` keeps and restores the best epoch's
weights, :class:`PlateauReduceLR` halves the learning rate and :class:`PlateauEarlyStopping` stops
when ``val_cer`` stops improving, and :class:`StopOnNaN` stops at the first non-finite loss.
Each callback with counters has ``get_state``/``set_state`` (and its arrays ``get_arrays``/
``set_arrays``), so :class:`hwr.training.checkpoint.Checkpoint` can save and restore them.

CTC training starts on a plateau where the model emits only blanks (every transcription empty,
``val_cer`` 1.0); leaving it can take many epochs, and a smaller learning rate or an early stop
there would only make it longer or end it. The two plateau callbacks therefore count nothing
until the model has emitted a character on the val split once (``val_empty_rate`` < 1).
"""

from __future__ import annotations

import math
import time

import keras
import numpy as np

from hwr.data.charset import Charset
from hwr.evaluation import metrics
from hwr.model.crnn import prediction_model
from hwr.model.inference import transcribe

MONITOR = "val_cer"
EMPTY_RATE = "val_empty_rate"
LR_PATIENCE = 3  # epochs without a better val_cer before the learning rate halves
LR_FACTOR = 0.5
MIN_LR_FRACTION = 1 / 16  # the learning rate never falls below this fraction of its start value


def learning_rate(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


class ValidationMetrics(keras.callbacks.Callback):
    """After each epoch, greedy-decode the whole val split and add to the logs: ``val_cer``,
    ``val_wer`` (corpus level), ``val_empty_rate`` (share of empty transcriptions),
    ``elapsed_s`` (seconds since the callback was made), ``learning_rate`` and ``extra_logs``.

    Args:
        val_images: ``(n, height, width, 1)`` float32 in [0, 1]. val_texts: their ``n`` labels.
        charset: the model's charset. extra_logs: constant entries added every epoch (e.g. ``phase``).
        val_widths: ``(n,)`` pixels, each image's width for a model of free input width.
    """

    def __init__(self, val_images: np.ndarray, val_texts, charset: Charset, extra_logs: dict | None = None,
                 val_widths: np.ndarray | None = None):
        super().__init__()
        self.val_images, self.val_texts, self.charset = val_images, list(val_texts), charset
        self.val_widths = val_widths
        self.extra_logs = extra_logs or {}
        self.started = time.monotonic()

    def get_state(self) -> dict:
        return {"elapsed_s": time.monotonic() - self.started}

    def set_state(self, state: dict) -> None:
        """Continue ``elapsed_s`` from a checkpoint: a resumed run counts only the time it trained."""
        self.started = time.monotonic() - float(state["elapsed_s"])

    def on_train_begin(self, logs=None):
        self.recognizer = prediction_model(self.model)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        texts, _ = transcribe(self.recognizer, self.charset, self.val_images, widths=self.val_widths)
        logs[MONITOR] = metrics.cer(self.val_texts, texts)
        logs["val_wer"] = metrics.wer(self.val_texts, texts)
        logs[EMPTY_RATE] = float(np.mean([not t for t in texts])) if texts else 1.0
        logs["elapsed_s"] = time.monotonic() - self.started
        logs["learning_rate"] = learning_rate(self.model)
        logs.update(self.extra_logs)


class BestWeights(keras.callbacks.Callback):
    """Remember the weights of the epoch with the lowest ``val_cer`` and put them back when
    training ends. ``best_cer`` (inf before any epoch) and ``best_epoch`` (0-based, -1 before any)
    say which epoch that was."""

    def __init__(self):
        super().__init__()
        self.best_cer, self.best_epoch, self.weights = math.inf, -1, None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(MONITOR)
        if value is not None and value < self.best_cer:
            self.best_cer, self.best_epoch, self.weights = value, epoch, self.model.get_weights()

    def on_train_end(self, logs=None):
        if self.weights is not None:
            self.model.set_weights(self.weights)

    def get_state(self) -> dict:
        return {"best_cer": self.best_cer, "best_epoch": self.best_epoch}

    def set_state(self, state: dict) -> None:
        self.best_cer, self.best_epoch = float(state["best_cer"]), int(state["best_epoch"])

    def get_arrays(self):
        return self.weights

    def set_arrays(self, arrays) -> None:
        self.weights = list(arrays)


class _PlateauGate:
    """Mixin for a Keras monitor callback: its ``on_epoch_end`` runs only once the model has left
    CTC's all-blank plateau (some epoch with ``val_empty_rate`` < 1); before, epochs count for nothing."""

    left_plateau = False
    COUNTERS: tuple[str, ...] = ("wait", "best")

    def on_epoch_end(self, epoch, logs=None):
        self.left_plateau = self.left_plateau or (logs or {}).get(EMPTY_RATE, 0.0) < 1.0
        if self.left_plateau:
            super().on_epoch_end(epoch, logs)

    def get_state(self) -> dict:
        return {"left_plateau": self.left_plateau, **{k: getattr(self, k) for k in self.COUNTERS}}

    def set_state(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)


class PlateauReduceLR(_PlateauGate, keras.callbacks.ReduceLROnPlateau):
    """Halve the learning rate after every :data:`LR_PATIENCE` epochs without a better ``val_cer``,
    down to :data:`MIN_LR_FRACTION` of the rate training started with (Keras' ``ReduceLROnPlateau``,
    gated by the all-blank plateau)."""

    COUNTERS = ("wait", "best", "cooldown_counter", "min_lr")

    def __init__(self, patience: int = LR_PATIENCE, factor: float = LR_FACTOR,
                 min_fraction: float = MIN_LR_FRACTION):
        super().__init__(monitor=MONITOR, mode="min", factor=factor, patience=patience, min_delta=0.0)
        self.min_fraction = min_fraction

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.min_lr = learning_rate(self.model) * self.min_fraction


class PlateauEarlyStopping(_PlateauGate, keras.callbacks.EarlyStopping):
    """Stop after ``patience`` epochs without a better ``val_cer`` (Keras' ``EarlyStopping``,
    gated by the all-blank plateau; :class:`BestWeights` restores the best weights)."""

    COUNTERS = ("wait", "best", "best_epoch")

    def __init__(self, patience: int):
        super().__init__(monitor=MONITOR, mode="min", patience=patience, min_delta=0.0)


class StopOnNaN(keras.callbacks.TerminateOnNaN):
    """Stop training at the first batch whose loss is NaN or infinite (Keras' ``TerminateOnNaN``)
    and remember where: ``nan_at`` is ``(epoch, batch, learning_rate)`` (1-based epoch and batch),
    or None; :func:`hwr.training.fit.fit` then raises :class:`hwr.errors.TrainingDiverged`."""

    nan_at: tuple[int, int, float] | None = None
    epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)) and self.nan_at is None:
            self.nan_at = (self.epoch + 1, batch + 1, learning_rate(self.model))
            self.loss = float(loss)
            self.model.stop_training = True


class Deadline(keras.callbacks.Callback):
    """Stop training once the wall clock passes ``deadline`` (seconds since the epoch, as
    ``time.time()``; it may come from another process): checked after every batch, so training
    ends within one batch of it; the cut epoch still ends with its validation, and
    :class:`BestWeights` restores the best epoch. ``reached`` says whether it stopped training."""

    def __init__(self, deadline: float):
        super().__init__()
        self.deadline, self.reached = deadline, False

    def on_train_batch_end(self, batch, logs=None):
        if not self.reached and time.time() >= self.deadline:
            self.reached = True
            print("time budget reached: training stops after this batch", flush=True)
            self.model.stop_training = True


WARM_UP_FRACTION = 0.05  # of the time budget, with the learning rate rising from lr/10 to lr
FINAL_LR_FRACTION = 1 / 20  # the learning rate at the deadline


def budget_learning_rate(fraction: float, lr: float) -> float:
    """The learning rate at ``fraction`` (0..1) of a time budget: linear warm-up from ``lr/10`` to
    ``lr`` over :data:`WARM_UP_FRACTION`, then a cosine down to ``lr *`` :data:`FINAL_LR_FRACTION`
    at the deadline (Loshchilov & Hutter, "SGDR", ICLR 2017, one cycle without restarts, planned to
    the wall clock instead of to a number of steps)."""
    fraction = min(max(fraction, 0.0), 1.0)
    if fraction < WARM_UP_FRACTION:
        return lr * (0.1 + 0.9 * fraction / WARM_UP_FRACTION)
    final = lr * FINAL_LR_FRACTION
    progress = (fraction - WARM_UP_FRACTION) / (1.0 - WARM_UP_FRACTION)
    return final + (lr - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


class TimeBudget(keras.callbacks.Callback):
    """Train for ``seconds`` of training time: before each batch the learning rate follows
    :func:`budget_learning_rate` of the time spent, and after the batch that reaches the budget
    training stops (the epoch still ends with its validation; :class:`BestWeights` restores the best
    epoch). ``reached`` says whether the budget stopped training. Resumable: the time spent before a
    checkpoint counts (``get_state``/``set_state``). ``clock``: seconds, monotonic (for tests)."""

    def __init__(self, seconds: float, lr: float, clock=time.monotonic):
        super().__init__()
        self.seconds, self.lr, self.clock = seconds, lr, clock
        self.spent_before, self.started, self.reached = 0.0, None, False

    def spent(self) -> float:
        return self.spent_before + (self.clock() - self.started if self.started is not None else 0.0)

    def on_train_begin(self, logs=None):
        self.started = self.clock()

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate.assign(budget_learning_rate(self.spent() / self.seconds, self.lr))

    def on_train_batch_end(self, batch, logs=None):
        if not self.reached and self.spent() >= self.seconds:
            self.reached = True
            print(f"time budget of {self.seconds / 60:g} minutes reached: training stops after this batch", flush=True)
            self.model.stop_training = True

    def get_state(self) -> dict:
        return {"spent_s": self.spent()}

    def set_state(self, state: dict) -> None:
        self.spent_before, self.started = float(state["spent_s"]), self.clock()
