"""Resuming a run from its last epoch checkpoint: the run is checked
(:func:`hwr.mlflow.checkpoints.resumable_run`), its checkpoint downloaded and its parameters
compared with the resume's; a changed learning rate is applied; a NaN loss says how to resume."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

from hwr.errors import ConfigError, TrainingDiverged
from hwr.mlflow import runs
from hwr.mlflow.checkpoints import download_checkpoint, resumable_run, take_over_launcher
from hwr.training.checkpoint import RESUMABLE_CHANGES, TrainingState, differing_params


def resume_state(run_id: str, verbs: tuple[str, ...], params: dict) -> TrainingState:
    """The last checkpoint of run ``run_id``, checked against the resume's flat ``params``.

    Raises:
        ConfigError: the run cannot be resumed (:func:`~hwr.mlflow.checkpoints.resumable_run`), has no
            checkpoint (it stopped before its first epoch ended), or was trained with other
            parameters (each one named; :data:`~hwr.training.checkpoint.RESUMABLE_CHANGES` may differ).
    """
    resumable_run(run_id, verbs)
    with tempfile.TemporaryDirectory() as tmp:
        folder = download_checkpoint(run_id, Path(tmp))
        if folder is None:
            raise ConfigError(f"resume_run_id={run_id}: the run has no checkpoint (it stopped before its first "
                              "epoch ended); start a new run")
        state = TrainingState.load(folder)
    differing = differing_params(state.params, {k: runs.param_text(v) for k, v in params.items()})
    if differing:
        listed = ", ".join(f"{name}={old!r} (now {new!r})" for name, (old, new) in differing.items())
        allowed = ", ".join(sorted(RESUMABLE_CHANGES - {"resume_run_id"}))
        raise ConfigError(f"resume_run_id={run_id}: the run was trained with {listed}; resume with the run's "
                          f"parameters (only {allowed} may change)")
    return state


def params_text(cfg) -> dict[str, str]:
    """A configuration's flat parameters as MLflow writes them (what a checkpoint stores)."""
    return {k: runs.param_text(v) for k, v in cfg.flat_params().items()}


def resumed_lr(cfg_lr: float, state: TrainingState, key: str = "lr") -> float | None:
    """The learning rate a resume sets: ``cfg_lr`` when it differs from the run's (e.g. lower after a
    NaN loss), else None (the checkpoint's own, halvings included, continues). A new rate also
    restarts the plateau halving's floor from it."""
    if runs.param_text(cfg_lr) == state.params.get(key):
        return None
    print(f"learning rate {cfg_lr:g} (the run had {state.params.get(key)})", flush=True)
    state.callbacks.get("PlateauReduceLR", {}).pop("min_lr", None)
    return cfg_lr


def diverged_hint(exc: TrainingDiverged, run_id: str, lr: float, lr_param: str = "lr") -> TrainingDiverged:
    """The NaN error with what to do next: the run is FAILED; its last checkpoint resumes with a lower rate."""
    return TrainingDiverged(f"{exc}; run {run_id} is marked FAILED. Continue it from its last checkpoint with a "
                            f"lower learning rate: -P resume_run_id={run_id} -P {lr_param}={lr / 10:g}")


@contextlib.contextmanager
def training_run(verb: str, cfg, lr: float, lr_param: str = "lr"):
    """The run of a training verb (``train``, ``finetune``): a new one, named after the data, or,
    with ``cfg.resume_run_id``, that run reopened (its checkpoint and parameters checked first).
    Yields ``(run, resume)``, ``resume`` being the :class:`TrainingState` to continue from or None.
    A NaN loss leaves the block as :class:`TrainingDiverged` saying how to resume with a rate below
    ``lr`` (the parameter ``lr_param``).

    Raises:
        ConfigError: a run that cannot be resumed with these parameters (before the run is opened).
    """
    resume = resume_state(cfg.resume_run_id, (verb,), cfg.flat_params()) if cfg.resume_run_id else None
    if resume is not None:
        take_over_launcher(cfg.resume_run_id)
    with runs.verb_run(run_id=cfg.resume_run_id or None, tags={runs.VERB: verb},
                       log_system_metrics=cfg.system_metrics) as run:
        if resume is None:
            runs.name_run(verb, cfg.data.data)
        try:
            yield run, resume
        except TrainingDiverged as exc:
            raise diverged_hint(exc, run.info.run_id, lr, lr_param) from exc
