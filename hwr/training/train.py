"""The ``train`` verb: labelled folder -> fitted CRNN -> CER/WER -> two registered models.

``tune`` calls :func:`train_and_log` inside each nested trial run.
"""

from __future__ import annotations

import dataclasses
import time

import keras
import mlflow

from hwr.config import TrainConfig
from hwr.data.dataset import prepare_data
from hwr.data.pipeline import as_model_input
from hwr.mlflow import runs
from hwr.training.fit import fit
from hwr.training.steps import (TrainResult, build_model, datasets, finish_run, log_data_summary, log_results,
                                register_result)


def train_and_log(cfg: TrainConfig, callbacks: tuple[keras.callbacks.Callback, ...] = ()) -> TrainResult:
    """Train one model inside the active MLflow run and log everything but the registration.
    ``callbacks`` go to :func:`hwr.training.fit.fit` (``tune`` passes its pruning and time limit)."""
    started = time.monotonic()
    cfg.validate()
    runs.log_params(cfg.flat_params())
    runs.log_json(dataclasses.asdict(cfg), "config.json")
    keras.utils.set_random_seed(cfg.seed)
    data = prepare_data(cfg.data, cfg.model, cfg.seed)
    splits = log_data_summary(data, cfg.data)
    full = build_model(cfg, data.charset)
    runs.log_metrics({"num_params": full.count_params()})
    train_ds, val_ds = datasets(cfg, data)
    history, best = fit(full, train_ds, val_ds, as_model_input(data.images["val"]), data.texts("val"),
                        data.charset, cfg.epochs, cfg.patience, runs.epoch_logger(), callbacks=callbacks)
    result = log_results(full, data, history, best.best_cer, best.best_epoch + 1, test_dataset=splits["test"])
    runs.log_metrics({"train_time_s": time.monotonic() - started})
    return result


def run_train(cfg: TrainConfig) -> TrainResult:
    """The ``train`` entry point: one MLflow run (the one ``mlflow run`` opened, if any), tagged
    ``hwr.verb=train``."""
    cfg.validate()
    with mlflow.start_run(tags={runs.VERB: "train"}, log_system_metrics=cfg.system_metrics):
        runs.name_run("train", cfg.data.data)
        result = train_and_log(cfg)
        finish_run(result, cfg, register_result(result, cfg) if cfg.register else None)
    return result
