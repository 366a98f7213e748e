"""Fitting a full CRNN model: per-epoch validation CER/WER, best-epoch weights, early stopping.

Knows nothing of MLflow: per-epoch metrics go to an ``on_epoch(epoch, logs)`` callable.
"""

from __future__ import annotations

import sys
import time
from typing import Callable

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from hwr import metrics
from hwr.charset import Charset
from hwr.inference import transcribe
from hwr.model import prediction_model

EpochHook = Callable[[int, dict], None]


LR_PATIENCE = 3  # epochs without a better val_cer before the learning rate halves
MIN_LR_FRACTION = 1 / 16  # the learning rate never falls below this fraction of its start value


class ValidationCER(keras.callbacks.Callback):
    """After each epoch: greedy-decode the whole val split, add ``val_cer`` and ``val_wer`` to the
    logs, remember the best weights (lowest ``val_cer``), halve the learning rate after every
    ``LR_PATIENCE`` epochs without improvement (down to ``MIN_LR_FRACTION`` of its start value)
    and stop after ``patience`` such epochs. The best weights are restored when training ends.

    Epochs spent on CTC's initial plateau (the model still emits only blanks, ``val_cer`` 1.0)
    count neither for the learning-rate decay nor for early stopping: leaving that plateau can
    take many epochs, and a smaller learning rate would only make it longer.

    Args:
        val_images: ``(n, height, width, 1)`` float32 in [0, 1]. val_texts: their ``n`` labels.
        patience: epochs without improvement before stopping; 0 disables early stopping.
        on_epoch: called with ``(epoch, logs)`` after the metrics are added (epoch from 0).
        step_offset: added to the epoch number passed to ``on_epoch`` (for multi-phase fits).
    """

    def __init__(self, val_images, val_texts, charset: Charset, patience: int,
                 on_epoch: EpochHook | None = None, step_offset: int = 0, extra_logs: dict | None = None):
        super().__init__()
        self.val_images, self.val_texts, self.charset = val_images, list(val_texts), charset
        self.patience, self.on_epoch, self.step_offset = patience, on_epoch, step_offset
        self.extra_logs = extra_logs or {}
        self.best_cer, self.best_epoch, self.best_weights, self.wait = np.inf, -1, None, 0
        self.started = time.monotonic()

    def on_train_begin(self, logs=None):
        self.recognizer = prediction_model(self.model)
        self.initial_lr = self._lr()

    def _lr(self) -> float:
        return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def _no_improvement(self) -> None:
        if self.best_cer >= 1.0:  # still on the all-blank plateau
            return
        self.wait += 1
        if self.wait % LR_PATIENCE == 0:
            self.model.optimizer.learning_rate = max(self._lr() / 2, self.initial_lr * MIN_LR_FRACTION)
        if self.patience and self.wait >= self.patience:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        texts, _ = transcribe(self.recognizer, self.charset, self.val_images)
        logs["val_cer"] = metrics.cer(self.val_texts, texts)
        logs["val_wer"] = metrics.wer(self.val_texts, texts)
        logs["elapsed_s"] = time.monotonic() - self.started
        logs["learning_rate"] = self._lr()
        logs.update(self.extra_logs)
        if logs["val_cer"] < self.best_cer:
            self.best_cer, self.best_epoch, self.wait = logs["val_cer"], epoch, 0
            self.best_weights = self.model.get_weights()
        else:
            self._no_improvement()
        print(f"epoch {epoch + 1 + self.step_offset}: val_cer {logs['val_cer']:.4f} "
              f"val_wer {logs['val_wer']:.4f} (best {self.best_cer:.4f} at epoch "
              f"{self.best_epoch + 1 + self.step_offset})", flush=True)
        if self.on_epoch:
            self.on_epoch(epoch + self.step_offset, dict(logs))

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


def fit(model: keras.Model, train_ds: tf.data.Dataset, val_ds: tf.data.Dataset, val_images: np.ndarray,
        val_texts, charset: Charset, epochs: int, patience: int, on_epoch: EpochHook | None = None,
        step_offset: int = 0, extra_logs: dict | None = None) -> tuple[pd.DataFrame, ValidationCER]:
    """Train a compiled full model; returns the per-epoch history and the validation callback
    (``best_cer``, ``best_epoch``). The model ends with its best-``val_cer`` weights.

    The learning rate halves after every 3 epochs without a better ``val_cer`` (down to 1/16 of
    its start value, see :class:`ValidationCER`); ``learning_rate`` is in the per-epoch logs.
    """
    validation = ValidationCER(val_images, val_texts, charset, patience, on_epoch, step_offset, extra_logs)
    verbose = 1 if sys.stdout.isatty() else 2
    history = model.fit(train_ds, validation_data=val_ds, epochs=epochs, callbacks=[validation], verbose=verbose)
    frame = pd.DataFrame(history.history)
    frame.insert(0, "epoch", np.arange(1, len(frame) + 1) + step_offset)
    return frame, validation
