"""The ``pretrain`` verb: a collection's training labels -> synthetic handwriting-like lines
(:mod:`hwr.data.synthetic`) -> a CRNN trained on them -> a registered base model for ``finetune``.

The geometry is the collection's (``shape=auto`` is resolved from its training images, not from the
synthetic lines), so the base model reads the collection's lines at the same height; the training
itself is ``train``'s (:func:`hwr.training.train.train_and_log`), with its time budget.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import mlflow

from hwr.config import DataConfig, PretrainConfig, TrainConfig
from hwr.data.charset import Charset
from hwr.data.dataset import read_collection
from hwr.data.geometry import pick_geometry
from hwr.data.synthetic import SyntheticSet, cache_key, load_fonts, write_synthetic
from hwr.mlflow import runs
from hwr.training.resume import training_run
from hwr.training.steps import TrainResult, finish_run, register_result
from hwr.training.train import train_and_log


def synthetic_training(cfg: PretrainConfig, fonts) -> tuple[TrainConfig, SyntheticSet, dict]:
    """Read the collection, resolve its geometry, draw (or reuse) the synthetic set, each line within
    the frames that geometry gives (a word data set's lines are as short as its words); returns the
    training configuration on that set, the set, and the geometry picked (empty when given).

    Raises:
        BadInputError: bad rows in the collection's labels (policy ``error``).
        ConfigError: no words in its training labels.
    """
    train = cfg.training()
    frame = read_collection(train.data, train.seed)
    texts = frame.loc[frame.split == "train", "text"].tolist()
    model, picked = pick_geometry(train.model, frame, Charset.from_texts(texts), train.seed)
    folder = Path(cfg.synthetic_cache).expanduser() / cache_key(texts, fonts, cfg.n_lines, train.seed, model.time_steps)
    synthetic = write_synthetic(folder, texts, fonts, cfg.n_lines, train.seed, model.time_steps)
    return dataclasses.replace(train, data=DataConfig(data=str(synthetic.folder)), model=model), synthetic, picked


def run_pretrain(cfg: PretrainConfig) -> TrainResult:
    """The ``pretrain`` entry point: one MLflow run tagged ``hwr.verb=pretrain`` (the one ``mlflow
    run`` opened, if any), which logs the synthetic set (``corpus``, ``fonts``, ``n_lines``;
    metrics ``synthetic_lines``, ``synthetic_skipped``, ``synthetic_time_s``; ``fonts.txt``) and then
    everything ``train`` logs, and registers ``model_name`` / ``full_model_name``.

    Raises:
        ConfigError: no usable fonts (before the run opens), or no words in the training labels.
        BadInputError: bad rows in the collection's labels, or bad synthetic lines.
        TrainingDiverged: a NaN loss.
    """
    cfg.validate()
    fonts = load_fonts(cfg.fonts)
    with training_run("pretrain", cfg.train, cfg.train.lr):
        started = time.monotonic()
        train_cfg, synthetic, picked = synthetic_training(cfg, fonts)
        runs.log_params({"corpus": cfg.train.data.data, "fonts": cfg.fonts, "n_lines": cfg.n_lines,
                         "synthetic_cache": cfg.synthetic_cache, **{f"picked.{k}": v for k, v in picked.items()}})
        runs.log_metrics({"synthetic_lines": synthetic.written, "synthetic_skipped": synthetic.skipped,
                          "synthetic_time_s": time.monotonic() - started})
        mlflow.log_text("\n".join(synthetic.fonts) + "\n", "fonts.txt")
        print(f"synthetic set {synthetic.folder}: {synthetic.written} lines in {len(synthetic.fonts)} fonts "
              f"({synthetic.skipped} skipped: no font could draw them, or too long for the model)", flush=True)
        result = train_and_log(train_cfg)
        finish_run(result, train_cfg, register_result(result, train_cfg) if train_cfg.register else None)
    return result
