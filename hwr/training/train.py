"""The ``train`` verb: labelled folder -> fitted CRNN -> CER/WER -> two registered models.

Every epoch ends with a checkpoint in the run (:mod:`hwr.training.checkpoint`), and
``resume_run_id`` continues a killed or failed run in that same run. ``tune`` calls
:func:`train_and_log` inside each nested trial run.
"""

from __future__ import annotations

import dataclasses
import time

import keras
import mlflow

from hwr.config import TrainConfig
from hwr.data.dataset import prepare_data
from hwr.mlflow import runs
from hwr.mlflow.checkpoints import log_checkpoint
from hwr.training.checkpoint import Checkpoint, TrainingState, restore_model
from hwr.training.fit import fit
from hwr.training.resume import params_text, resumed_lr, training_run
from hwr.training.steps import (TrainResult, build_model, datasets, finish_run, log_data_summary, log_results,
                                register_result)


def train_and_log(cfg: TrainConfig, callbacks: tuple[keras.callbacks.Callback, ...] = (),
                  resume: TrainingState | None = None) -> TrainResult:
    """Train one model inside the active MLflow run and log everything but the registration.
    ``callbacks`` go to :func:`hwr.training.fit.fit` (``tune`` passes its pruning and time limit);
    ``resume``: the run's last checkpoint, to continue from (the active run is that run).

    Raises:
        TrainingDiverged: the loss became NaN or infinite.
    """
    started = time.monotonic()
    cfg.validate()
    runs.log_params(cfg.flat_params())
    if resume is None:
        runs.log_json(dataclasses.asdict(cfg), "config.json")
    first_epoch = resume.epoch if resume else 0
    data = prepare_data(cfg.data, cfg.model, cfg.seed)
    given, cfg = cfg, dataclasses.replace(cfg, model=data.model)  # shape=auto resolved from the data
    runs.log_params({f"picked.{name}": value for name, value in data.picked.items()})
    splits = log_data_summary(data, cfg.data)
    full = build_model(cfg, data.charset)
    runs.log_metrics({"num_params": full.count_params()})
    if resume is not None:
        restore_model(full, resume, resumed_lr(cfg.lr, resume))
        mlflow.set_tag(runs.RESUMED_AT_EPOCH, str(resume.epoch))
        print(f"resuming run {mlflow.active_run().info.run_id} after epoch {resume.epoch}", flush=True)
    keras.utils.set_random_seed(cfg.seed + first_epoch)
    train_ds, val_ds = datasets(cfg, data, first_epoch)
    checkpoint = Checkpoint(log_checkpoint, params_text(given), resume)  # the parameters as given
    val_images, val_widths = data.model_input("val")
    history, best = fit(full, train_ds, val_ds, val_images, data.texts("val"), data.charset, cfg.epochs,
                        cfg.patience, runs.epoch_logger(), callbacks=callbacks, checkpoint=checkpoint,
                        max_minutes=cfg.max_minutes, val_widths=val_widths)
    result = log_results(full, data, history, best.best_cer, best.best_epoch + 1, test_dataset=splits["test"])
    runs.log_metrics({"train_time_s": time.monotonic() - started + (resume.elapsed_s if resume else 0.0)})
    return result


def run_train(cfg: TrainConfig) -> TrainResult:
    """The ``train`` entry point: one MLflow run (the one ``mlflow run`` opened, if any, or the run
    ``resume_run_id`` names), tagged ``hwr.verb=train``.

    Raises:
        ConfigError: a run that cannot be resumed with these parameters (before any data is read).
        TrainingDiverged: a NaN loss (the run ends FAILED, its last checkpoint kept).
    """
    cfg.validate()
    with training_run("train", cfg, cfg.lr) as (_, resume):
        result = train_and_log(cfg, resume=resume)
        finish_run(result, cfg, register_result(result, cfg) if cfg.register else None)
    return result
