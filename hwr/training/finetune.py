"""The ``finetune`` verb: a registered full model -> adapted to a new collection in two phases
-> CER/WER -> two new registered model versions, tagged with their base model.

Phase 1 trains the layers after ``freeze_until`` (default: the output layer) with the rest frozen;
phase 2 trains everything at a lower rate. New characters of the data widen the output layer
(:mod:`hwr.model.transfer`); the data, pipelines, fit, evaluation, model logging and registration
are the shared steps of :mod:`hwr.training.steps`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import keras
import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.entities import LoggedModelInput
from mlflow.models import Model

from hwr.config import DataConfig, FinetuneConfig, ModelConfig, TrainConfig
from hwr.data.charset import Charset
from hwr.data.dataset import PreparedData, prepare_data, read_collection
from hwr.errors import ConfigError
from hwr.evaluation import metrics
from hwr.mlflow import runs
from hwr.mlflow.packaging import FULL_MODEL_NAME, KIND_KEY
from hwr.model import transfer
from hwr.model.crnn import compile_model, prediction_model
from hwr.model.inference import transcribe
from hwr.mlflow.checkpoints import log_checkpoint
from hwr.training.checkpoint import Checkpoint, TrainingState, restore_model
from hwr.training.fit import fit
from hwr.training.resume import params_text, resumed_lr, training_run
from hwr.training.steps import TrainResult, datasets, finish_run, log_data_summary, log_results, register_result

PHASE_METRICS = ("loss", "val_loss", "val_cer", "val_wer")
MODEL_PARAMS = {f.name for f in dataclasses.fields(ModelConfig)}


@dataclass(frozen=True)
class BaseModel:
    """A resolved base model: its URI, the run that logged it, its charset and geometry, and its
    logged-model id (None for a model logged before MLflow 3)."""

    uri: str
    run_id: str | None
    charset: Charset
    img_height: int
    img_width: int
    model_id: str | None = None


def resolve_base_model(uri: str) -> BaseModel:
    """Read ``uri``'s MLmodel file (no weights are loaded) and check that it is a full model of this project.

    Raises:
        ConfigError: no such model, or not a full model (e.g. the prediction model ``hwr-crnn``).
    """
    try:
        info = Model.load(uri)  # the MLmodel file: works for models:/, runs:/ and a local model folder
    except (MlflowException, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"base_model={uri!r}: cannot find this model ({reason})") from exc
    meta = info.metadata or {}
    kind = meta.get(KIND_KEY)
    if kind != "full":
        what = f"a {kind!r} model" if kind else "not a model logged by hwr"
        raise ConfigError(f"base_model={uri!r} is {what}; finetune needs a full model (logged as "
                          f"'{FULL_MODEL_NAME}', registered as e.g. hwr-crnn-full)")
    return BaseModel(uri, info.run_id, Charset(tuple(meta["charset"])), int(meta["img_height"]),
                     int(meta["img_width"]), getattr(info, "model_id", None))


def union_charset(data: DataConfig, seed: int, base: Charset) -> tuple[Charset, str]:
    """The base charset plus the characters of ``data``'s training labels it lacks (appended, so
    no base character is renumbered), and those added characters."""
    frame = read_collection(data, seed)
    return base.extend(frame.loc[frame.split == "train", "text"])


def base_val_cer(base_full: keras.Model, base_charset: Charset, data: PreparedData) -> dict[str, float]:
    """CER/WER of the untouched base model, with its own charset, on the new val split
    (characters it cannot write count as errors)."""
    images, widths = data.model_input("val")
    texts, _ = transcribe(prediction_model(base_full), base_charset, images, widths=widths)
    return {"base_val_cer": metrics.cer(data.texts("val"), texts),
            "base_val_wer": metrics.wer(data.texts("val"), texts)}


def phase_logger(phase: int):
    """Step-metric hook: every epoch's metrics, plus ``phaseN/<metric>`` copies per phase."""
    def log(step: int, logs: dict) -> None:
        runs.log_metrics(logs, step=step)
        runs.log_metrics({k: v for k, v in logs.items() if k in PHASE_METRICS}, step=step, prefix=f"phase{phase}/")
    return log


CARRY = "carry"  # checkpoint arrays of the best epoch of the phases before the current one


def carried_best(state: TrainingState | None) -> tuple[float, int, dict | None]:
    """``(best_val_cer, best_epoch, layer weights)`` of the phases a checkpoint's phase follows."""
    if state is None or state.extra.get("best_epoch", 0) == 0:
        return float("inf"), 0, None
    layers: dict[str, list] = {}
    for key in sorted(k for k in state.arrays if k.startswith(CARRY + "/")):
        _, layer, index = key.split("/")
        layers.setdefault(layer, {})[int(index)] = state.arrays[key]
    weights = {name: [values[i] for i in sorted(values)] for name, values in layers.items()}
    return float(state.extra["best_cer"]), int(state.extra["best_epoch"]), weights


def run_phases(model: keras.Model, cfg: FinetuneConfig, train_cfg: TrainConfig, data: PreparedData,
               resume: TrainingState | None = None):
    """Phase 1 (frozen up to ``freeze_until``) then phase 2 (all trainable, within what is left of
    ``max_minutes``: :func:`phase_minutes`); steps continue across phases, and every epoch ends
    with a checkpoint (its ``phase`` and the best epoch of the phases before it). ``resume``: skip the phases before the checkpoint's and continue its phase.
    The model ends with the weights of the best epoch of either phase.

    Returns ``(history, best_val_cer, best_epoch)`` (epoch 1-based over both phases).
    """
    train_ds, val_ds = datasets(train_cfg, data, resume.epoch if resume else 0)
    val_images, val_widths = data.model_input("val")
    plan = [(1, cfg.head_epochs, cfg.head_lr, "head_lr"), (2, cfg.full_epochs, cfg.full_lr, "full_lr")]
    params = params_text(cfg)
    best = carried_best(resume)
    offset = int(resume.extra.get("offset", 0)) if resume else 0
    earlier = [h for h in resume.history if h["epoch"] <= offset] if resume else []
    histories = [pd.DataFrame(earlier)] if earlier else []
    head_s = float(resume.extra.get("head_s", 0.0)) if resume else 0.0
    for phase, epochs, lr, lr_param in plan:
        if not epochs or (resume is not None and phase < resume.phase):
            continue
        minutes = phase_minutes(cfg, phase, head_s)
        if minutes < 0:
            print(f"phase 2 skipped: phase 1 used the {cfg.max_minutes:g}-minute budget", flush=True)
            continue
        phase_started = time.monotonic()
        if phase == 1:
            frozen = transfer.freeze_until(model, cfg.freeze_until)
            print(f"phase 1: {len(frozen)} frozen layers ({', '.join(frozen)})", flush=True)
        else:
            transfer.unfreeze(model)
        compile_model(model, lr)
        state = resume if resume is not None and resume.phase == phase else None
        if state is not None:
            restore_model(model, state, resumed_lr(lr, state, lr_param))
        offset = sum(len(h) for h in histories)
        carry = pack_layers(CARRY, best[2]) if best[2] is not None else {}
        checkpoint = Checkpoint(log_checkpoint, params, state, phase, {"offset": offset, "best_cer": best[0],
                                "best_epoch": best[1], "head_s": head_s},
                                pd.concat(histories).to_dict("records") if histories else [], carry)
        history, callback = fit(model, train_ds, val_ds, val_images, data.texts("val"), data.charset, epochs,
                                cfg.patience, phase_logger(phase), step_offset=offset, extra_logs={"phase": phase},
                                checkpoint=checkpoint, max_minutes=minutes, val_widths=val_widths)
        if phase == 1:
            head_s += time.monotonic() - phase_started
        histories.append(history)
        if callback.best_cer < best[0]:
            best = (callback.best_cer, offset + callback.best_epoch + 1, transfer.layer_weights(model))
    transfer.unfreeze(model)
    transfer.set_layer_weights(model, best[2])
    return pd.concat(histories, ignore_index=True), best[0], best[1]


def phase_minutes(cfg: FinetuneConfig, phase: int, head_s: float) -> float:
    """The time budget of ``phase`` in minutes for :func:`hwr.training.fit.fit`: 0 (none) for
    phase 1 and without ``max_minutes``; for phase 2 the minutes phase 1 (``head_s`` seconds) left,
    negative when it left none."""
    if phase == 1 or not cfg.max_minutes:
        return 0.0
    left = cfg.max_minutes - head_s / 60
    return left if left > 0 else -1.0


def pack_layers(prefix: str, weights: dict[str, list]) -> dict:
    """``{prefix/layer/i: array}`` of :func:`hwr.model.transfer.layer_weights` (read by :func:`carried_best`)."""
    return {f"{prefix}/{layer}/{i}": w for layer, values in weights.items() for i, w in enumerate(values)}


def finetune_and_log(cfg: FinetuneConfig, resume: TrainingState | None = None) -> tuple[TrainResult, BaseModel]:
    """Fine-tune inside the active MLflow run and log everything but the registration; ``resume``:
    the run's last checkpoint, to continue from (the active run is that run).

    Raises:
        ConfigError: bad base model or ``freeze_until`` (checked before any data is read).
        BadInputError: bad data, as in ``train``. TrainingDiverged: the loss became NaN or infinite.
    """
    started = time.monotonic()
    base = resolve_base_model(cfg.base_model)
    mlflow.set_tags({runs.BASE_MODEL: base.uri, runs.BASE_RUN_ID: base.run_id or ""})
    if base.model_id and resume is None:  # the run's model input: the UI links the base model to this run
        mlflow.log_input(model=LoggedModelInput(base.model_id))
    runs.log_params(cfg.flat_params())
    if resume is None:
        runs.log_json(dataclasses.asdict(cfg), "config.json")
    base_full = mlflow.tensorflow.load_model(base.uri)
    model_cfg = transfer.model_config_of(base_full)
    transfer.freeze_until(base_full, cfg.freeze_until)  # validates the layer name before data is read
    transfer.unfreeze(base_full)
    train_cfg = cfg.train_config(model_cfg)
    runs.log_params({k: v for k, v in train_cfg.flat_params().items() if k in MODEL_PARAMS})
    charset, added = union_charset(cfg.data, cfg.seed, base.charset)
    runs.log_params({"added_chars": added or "(none)", "base_charset_size": len(base.charset)})
    mlflow.log_text(added, "added_chars.txt")
    print(f"base model {base.uri}: {len(base.charset)} characters; adding {len(added)}: {added!r}", flush=True)
    data = prepare_data(cfg.data, model_cfg, cfg.seed, charset=charset)
    splits = log_data_summary(data, cfg.data)
    if resume is None:
        baseline = base_val_cer(base_full, base.charset, data)
        runs.log_metrics(baseline | {"n_added_chars": len(added)})
        print(f"base model on the new val split: cer {baseline['base_val_cer']:.4f}", flush=True)
    else:
        mlflow.set_tag(runs.RESUMED_AT_EPOCH, str(resume.epoch))
        print(f"resuming run {mlflow.active_run().info.run_id} after epoch {resume.epoch} (phase {resume.phase})",
              flush=True)
    model = transfer.rebuild_with_classes(base_full, charset.num_classes, cfg.seed)
    history, best_cer, best_epoch = run_phases(model, cfg, train_cfg, data, resume)
    lineage = {"base_model": base.uri, "base_run_id": base.run_id or ""}
    result = log_results(model, data, history, best_cer, best_epoch, lineage, test_dataset=splits["test"])
    runs.log_metrics({"train_time_s": time.monotonic() - started + (resume.elapsed_s if resume else 0.0)})
    return result, base


def run_finetune(cfg: FinetuneConfig) -> TrainResult:
    """The ``finetune`` entry point: one MLflow run (the one ``mlflow run`` opened, if any, or the run
    ``resume_run_id`` names).

    The base model (and a resume's run and parameters) are checked before the run starts, so a bad
    URI leaves no failed run behind.

    Raises:
        ConfigError: a bad base model, or a run that cannot be resumed with these parameters.
        TrainingDiverged: a NaN loss (the run ends FAILED, its last checkpoint kept).
    """
    cfg.validate()
    resolve_base_model(cfg.base_model)
    lr, lr_param = (cfg.full_lr, "full_lr") if cfg.full_epochs else (cfg.head_lr, "head_lr")
    with training_run("finetune", cfg, lr, lr_param) as (_, resume):
        result, base = finetune_and_log(cfg, resume)
        train_cfg = cfg.train_config(ModelConfig())
        tags = {"base_model": base.uri, "base_run_id": base.run_id or ""}
        finish_run(result, train_cfg, register_result(result, train_cfg, tags=tags) if cfg.register else None)
    return result
