"""Epoch checkpoints: everything a killed run needs to continue where it stopped.

After every epoch :class:`Checkpoint` writes a :class:`TrainingState` to a folder and hands it to a
``publish(folder)`` hook (the verbs log it as the run's ``checkpoint/`` artifacts). The state holds
the weights, the optimizer's variables (its step count and learning rate included), the epoch, the
history so far, the training time, the parameters of the run and the counters of every callback
that has some (best ``val_cer`` and its weights, the plateau and early-stopping counters): Keras'
``BackupAndRestore`` keeps only the weights, the optimizer and the epoch.

A resumed fit (:func:`restore_model`, then ``fit(..., initial_epoch=state.epoch)``) repeats no
finished epoch and continues the step numbers. The data order is reseeded with ``seed + epoch``,
so a resumed run is equal to an uninterrupted one within training noise, not bit for bit.
Knows nothing of MLflow.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import keras
import numpy as np

STATE_FILE = "state.json"
ARRAYS_FILE = "arrays.npz"
# parameters a resume may change: the learning rates (e.g. lower after a NaN loss), what is logged
RESUMABLE_CHANGES = frozenset({"resume_run_id", "lr", "head_lr", "full_lr", "system_metrics"})


@dataclass
class TrainingState:
    """One checkpoint.

    Attributes:
        epoch: epochs finished, counted over the whole run (the next epoch's 0-based index and step).
        params: the run's flat parameters as text (``lr="0.001"``), to refuse a different resume.
        history: one dict per finished epoch (``epoch`` 1-based, ``loss``, ``val_cer``, ...).
        elapsed_s: seconds spent training so far, over every process that trained this run.
        callbacks: the state of each resumable callback, by its class name.
        arrays: ``model/i`` (weights in ``model.get_weights()`` order), ``optimizer/i``
            (``model.optimizer.variables``) and any callback arrays (e.g. ``BestWeights/i``).
        phase: the verb's phase (``finetune``: 1 or 2; ``train``: 0); extra: the verb's own values.
        stopped: a callback (early stopping) ended this fit at this epoch: a resume trains no more
            epochs of it.
    """

    epoch: int
    params: dict[str, str]
    history: list[dict] = field(default_factory=list)
    elapsed_s: float = 0.0
    callbacks: dict[str, dict] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    phase: int = 0
    extra: dict = field(default_factory=dict)
    stopped: bool = False

    def save(self, folder: Path) -> Path:
        """Write ``state.json`` and ``arrays.npz`` into ``folder``; returns it."""
        folder.mkdir(parents=True, exist_ok=True)
        meta = {k: getattr(self, k) for k in ("epoch", "params", "history", "elapsed_s", "callbacks", "phase", "extra",
                                           "stopped")}
        (folder / STATE_FILE).write_text(json.dumps(meta, default=_plain), encoding="utf-8")
        np.savez(folder / ARRAYS_FILE, **self.arrays)
        return folder

    @classmethod
    def load(cls, folder: Path) -> "TrainingState":
        """Read a state written by :meth:`save`.

        Raises:
            FileNotFoundError: ``folder`` holds no checkpoint.
        """
        meta = json.loads((Path(folder) / STATE_FILE).read_text(encoding="utf-8"))
        with np.load(Path(folder) / ARRAYS_FILE, allow_pickle=False) as stored:
            arrays = {k: stored[k] for k in stored.files}
        return cls(arrays=arrays, **meta)

    def list_of(self, prefix: str) -> list[np.ndarray]:
        """The arrays ``prefix/0``, ``prefix/1``, ... in order."""
        return [self.arrays[f"{prefix}/{i}"] for i in range(sum(k.startswith(prefix + "/") for k in self.arrays))]


def pack(prefix: str, values) -> dict[str, np.ndarray]:
    """``{prefix/i: array}`` of a list of arrays (see :meth:`TrainingState.list_of`)."""
    return {f"{prefix}/{i}": np.asarray(v) for i, v in enumerate(values)}


def _plain(value):
    """JSON for NumPy scalars (callback counters are often ``np.float32``)."""
    return value.item() if isinstance(value, np.generic) else str(value)


def differing_params(stored: dict[str, str], wanted: dict[str, str]) -> dict[str, tuple[str, str]]:
    """The parameters whose values differ between a checkpoint and a resume, except
    :data:`RESUMABLE_CHANGES`: ``name -> (checkpoint's, resume's)``."""
    names = (set(stored) | set(wanted)) - RESUMABLE_CHANGES
    return {n: (stored.get(n, "(none)"), wanted.get(n, "(none)")) for n in sorted(names)
            if stored.get(n) != wanted.get(n)}


def restore_model(model: keras.Model, state: TrainingState, lr: float | None = None) -> None:
    """Put a checkpoint's weights and optimizer variables into a compiled model of the same
    architecture and trainable layers; ``lr`` (if given) replaces the restored learning rate."""
    model.set_weights(state.list_of("model"))
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)
    for variable, value in zip(optimizer.variables, state.list_of("optimizer")):
        variable.assign(value)
    if lr is not None:
        optimizer.learning_rate.assign(lr)


class Checkpoint(keras.callbacks.Callback):
    """After every epoch with a finite loss, save a :class:`TrainingState` and ``publish`` it; on a
    resume, put the checkpoint's counters back into the other callbacks when training begins.

    Callbacks with ``get_state() -> dict``, ``set_state(dict)`` (and optionally ``get_arrays()``,
    ``set_arrays(list)``) are resumable. Place this callback after them: Keras callbacks reset
    their counters in ``on_train_begin``, which must run before the restore.

    Args:
        publish: called with the folder of each new checkpoint (it may be reused afterwards).
        params: the run's flat parameters as text. resume: the checkpoint being resumed, or None.
        phase, extra: stored as they are (see :class:`TrainingState`). history: the epochs
            before this fit (default: the resumed state's). arrays: more arrays to store as they are.
    """

    def __init__(self, publish: Callable[[Path], None], params: dict[str, str], resume: TrainingState | None = None,
                 phase: int = 0, extra: dict | None = None, history: list[dict] | None = None,
                 arrays: dict[str, np.ndarray] | None = None):
        super().__init__()
        self.publish, self.run_params, self.resume, self.phase = publish, params, resume, phase
        self.extra, self.extra_arrays = extra or {}, arrays or {}
        self.history = list(history if history is not None else resume.history if resume else [])
        self.resumables: list = []
        self.step_offset = 0

    def attach(self, callbacks, step_offset: int = 0) -> "Checkpoint":
        """Remember the resumable callbacks among ``callbacks`` and the fit's ``step_offset`` (epochs
        of earlier phases, added to Keras' epoch index); returns self."""
        self.resumables = [c for c in callbacks if hasattr(c, "get_state") and c is not self]
        self.step_offset = step_offset
        return self

    def on_train_begin(self, logs=None):
        if self.resume is None:
            return
        for callback in self.resumables:
            name = type(callback).__name__
            if name in self.resume.callbacks:
                callback.set_state(self.resume.callbacks[name])
            if hasattr(callback, "set_arrays") and f"{name}/0" in self.resume.arrays:
                callback.set_arrays(self.resume.list_of(name))

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if not math.isfinite(float(logs.get("loss", 0.0))):
            return  # a NaN epoch: the last good checkpoint stays
        done = epoch + 1 + self.step_offset
        self.history = [h for h in self.history if h["epoch"] < done]
        self.history.append({"epoch": done, **{k: v for k, v in logs.items() if _is_number(v)}})
        arrays = pack("model", self.model.get_weights())
        arrays |= pack("optimizer", [v.numpy() for v in self.model.optimizer.variables]) | self.extra_arrays
        states = {}
        for callback in self.resumables:
            name = type(callback).__name__
            states[name] = callback.get_state()
            if hasattr(callback, "get_arrays") and callback.get_arrays() is not None:
                arrays |= pack(name, callback.get_arrays())
        elapsed = float(logs.get("elapsed_s", 0.0))
        state = TrainingState(done, self.run_params, self.history, elapsed, states, arrays, self.phase, self.extra,
                              bool(self.model.stop_training))
        with tempfile.TemporaryDirectory(prefix="hwr-checkpoint-") as tmp:
            self.publish(state.save(Path(tmp)))


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
