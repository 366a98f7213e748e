"""The ``train`` verb: labelled folder -> fitted CRNN -> CER/WER -> two registered models.

``tune`` calls :func:`train_and_log` inside each nested trial run; ``finetune`` reuses
:func:`prepare_data`, :func:`evaluate` and :func:`log_results`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import keras
import mlflow
import numpy as np
import pandas as pd

from hwr import metrics, tracking
from hwr.charset import Charset
from hwr.config import DataConfig, TrainConfig
from hwr.data import SPLITS, BadInputError, BadInputLog, check_label_lengths, load_images, read_labels
from hwr.fit import fit
from hwr.inference import transcribe
from hwr.model import build_crnn, compile_model, prediction_model
from hwr.pipeline import as_model_input, make_dataset, pad_labels


@dataclass
class PreparedData:
    """Validated rows, their images in memory and the charset.

    ``images[split]``: ``(n, height, width)`` uint8; ``frames[split]``: the kept CSV rows
    (``row``, ``image``, ``path``, ``text``, ``split``); ``bad``: the rejected rows.
    """

    charset: Charset
    frames: dict[str, pd.DataFrame]
    images: dict[str, np.ndarray]
    bad: BadInputLog
    random_split: bool

    def texts(self, split: str) -> list[str]:
        return self.frames[split]["text"].tolist()


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced: its metrics and the logged models' URIs."""

    run_id: str
    val_cer: float
    test_cer: float
    test_wer: float
    best_epoch: int
    models: tracking.LoggedModels


def prepare_data(cfg: DataConfig, height: int, width: int, time_steps: int, seed: int,
                 charset: Charset | None = None) -> PreparedData:
    """Read, validate and load a data set for a model of the given geometry.

    The charset is built from the training labels unless one is given (fine-tuning).

    Raises:
        BadInputError: bad input under policy ``error``, or a split left with no rows.
    """
    bad = BadInputLog(cfg.on_bad_input, cfg.labels_path())
    frame = read_labels(cfg, seed, bad)
    if charset is None:
        charset = Charset.from_texts(frame.loc[frame.split == "train", "text"])
    frame = check_label_lengths(frame, charset, time_steps, bad)
    frames, images = {}, {}
    for split in SPLITS:
        images[split], frames[split] = load_images(frame[frame.split == split], height, width, bad, split)
        if not len(frames[split]):
            raise BadInputError(f"{cfg.labels_path()}: no usable rows in split {split!r}")
    return PreparedData(charset, frames, images, bad, cfg.split_col not in pd.read_csv(cfg.labels_path(), nrows=0).columns)


def evaluate(model: keras.Model, data: PreparedData, split: str) -> dict[str, float]:
    """Greedy CER and WER of a prediction model on one split."""
    texts, _ = transcribe(model, data.charset, as_model_input(data.images[split]))
    return {"cer": metrics.cer(data.texts(split), texts), "wer": metrics.wer(data.texts(split), texts)}


def log_data_summary(data: PreparedData) -> None:
    """Counts per split, skipped rows (metric + ``bad_inputs.csv``), the charset and the split."""
    tracking.log_metrics({f"n_{s}": len(data.frames[s]) for s in SPLITS} | {"skipped_rows": len(data.bad.rows)})
    if data.bad.rows:
        tracking.log_frame(data.bad.to_frame(), "bad_inputs.csv")
        print(f"skipped {len(data.bad.rows)} bad rows (see bad_inputs.csv in the run's artifacts)", flush=True)
    tracking.log_json({"blank": 0, "chars": list(data.charset.chars)}, "charset.json")
    if data.random_split:
        tracking.log_frame(pd.concat(data.frames.values())[["row", "image", "split"]], "split.csv")


def build_model(cfg: TrainConfig, charset: Charset) -> keras.Model:
    keras.utils.set_random_seed(cfg.seed)
    return compile_model(build_crnn(cfg.model, charset.num_classes), cfg.lr)


def datasets(cfg: TrainConfig, data: PreparedData):
    """Training and validation tf.data pipelines (training shuffled and augmented)."""
    charset = data.charset
    train_ds = make_dataset(data.images["train"], pad_labels(data.texts("train"), charset), cfg.batch_size,
                            shuffle=True, augment_images=cfg.augment, seed=cfg.seed)
    val_ds = make_dataset(data.images["val"], pad_labels(data.texts("val"), charset), cfg.batch_size,
                          shuffle=False, augment_images=False, seed=cfg.seed)
    return train_ds, val_ds


def log_results(full: keras.Model, data: PreparedData, history: pd.DataFrame, best_cer: float,
                best_epoch: int, extra_metadata: dict | None = None) -> TrainResult:
    """Test evaluation, final metrics, history CSV and both models logged to the active run."""
    test = evaluate(prediction_model(full), data, "test")
    tracking.log_metrics({"best_val_cer": best_cer, "best_epoch": best_epoch,
                          "test_cer": test["cer"], "test_wer": test["wer"]})
    tracking.log_frame(history, "history.csv")
    examples = data.frames["test"]["path"].head(2).tolist()
    models = tracking.log_models(full, data.charset, examples, extra_metadata)
    print(f"best val_cer {best_cer:.4f} (epoch {best_epoch}); test_cer {test['cer']:.4f}, "
          f"test_wer {test['wer']:.4f}", flush=True)
    return TrainResult(mlflow.active_run().info.run_id, best_cer, test["cer"], test["wer"], best_epoch, models)


def train_and_log(cfg: TrainConfig) -> TrainResult:
    """Train one model inside the active MLflow run and log everything but the registration."""
    started = time.monotonic()
    cfg.validate()
    tracking.log_params(cfg.flat_params())
    tracking.log_json(dataclasses.asdict(cfg), "config.json")
    keras.utils.set_random_seed(cfg.seed)
    m = cfg.model
    data = prepare_data(cfg.data, m.img_height, m.img_width, m.time_steps, cfg.seed)
    log_data_summary(data)
    full = build_model(cfg, data.charset)
    tracking.log_metrics({"num_params": full.count_params()})
    train_ds, val_ds = datasets(cfg, data)
    history, best = fit(full, train_ds, val_ds, as_model_input(data.images["val"]), data.texts("val"),
                        data.charset, cfg.epochs, cfg.patience, tracking.epoch_logger())
    result = log_results(full, data, history, best.best_cer, best.best_epoch + 1)
    tracking.log_metrics({"train_time_s": time.monotonic() - started})
    return result


def register_result(result: TrainResult, cfg: TrainConfig, alias: str = "auto", tags: dict | None = None) -> dict[str, int]:
    """Register both models of a run; versions are tagged with the run's ``val_cer``/``test_cer``."""
    version_tags = {"val_cer": f"{result.val_cer:.4f}", "test_cer": f"{result.test_cer:.4f}",
                    "run_id": result.run_id, **(tags or {})}
    return {
        cfg.full_model_name: tracking.register(result.models.full_uri, cfg.full_model_name, version_tags, alias),
        cfg.model_name: tracking.register(result.models.prediction_uri, cfg.model_name, version_tags, alias),
    }


def run_train(cfg: TrainConfig) -> TrainResult:
    """The ``train`` entry point: one MLflow run (the one ``mlflow run`` opened, if any)."""
    cfg.validate()
    with mlflow.start_run():
        result = train_and_log(cfg)
        if cfg.register:
            versions = register_result(result, cfg)
            print("registered " + ", ".join(f"{n} version {v}" for n, v in versions.items()), flush=True)
    return result
