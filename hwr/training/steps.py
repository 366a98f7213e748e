"""The steps every training verb shares: building the model, the tf.data pipelines, evaluating a
split, logging the data summary and the results, registering both models.

``train`` runs them once (:mod:`hwr.training.train`), every ``tune`` trial runs ``train``, and
``finetune`` runs them around its two phases (:mod:`hwr.training.finetune`).
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import mlflow
import pandas as pd
from mlflow import MlflowClient

from hwr.config import TrainConfig
from hwr.config.training import SPLITS
from hwr.data.charset import Charset
from hwr.data.dataset import PreparedData
from hwr.data.provenance import data_notice
from hwr.data.pipeline import make_dataset, pad_labels
from hwr.evaluation import metrics
from hwr.config import DataConfig
from hwr.mlflow import runs
from hwr.mlflow.datasets import data_source, log_splits
from hwr.errors import ModelsNotLogged
from hwr.mlflow.fallback import log_saved, save_unlogged
from hwr.mlflow.packaging import LoggedModels, log_models
from hwr.mlflow.registry import AUTO, register
from hwr.model.crnn import build_crnn, compile_model, prediction_model
from hwr.model.inference import transcribe_ways
from hwr.model.language import LanguageModel


MODEL_DESCRIPTIONS = {
    "full": "hwr CRNN (convolutions, bidirectional LSTMs) with its CTC loss layer: the trainable model, for "
            "`finetune` (`-P base_model=models:/NAME@champion`). Its versions' descriptions name their training "
            "data and its licence.",
    "prediction": "hwr handwriting recogniser, images in, text out: a pyfunc that takes a DataFrame column "
                  "`image` of base64 PNG/JPEG and returns `text` and `confidence`; `mlflow models serve` serves "
                  "it. Its versions' descriptions name their training data and its licence.",
}


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced: its metrics and the logged models' URIs."""

    run_id: str
    val_cer: float
    test_cer: float
    test_wer: float
    best_epoch: int
    models: LoggedModels


def build_model(cfg: TrainConfig, charset: Charset) -> keras.Model:
    """A compiled full CRNN for ``charset``, its weights seeded by ``cfg.seed``."""
    keras.utils.set_random_seed(cfg.seed)
    return compile_model(build_crnn(cfg.model, charset.num_classes), cfg.lr, cfg.weight_decay, cfg.clipnorm)


def datasets(cfg: TrainConfig, data: PreparedData, first_epoch: int = 0):
    """Training and validation tf.data pipelines (training shuffled and augmented, seeded with
    ``cfg.seed + first_epoch``: a resumed run draws a new order rather than epoch 1's again)."""
    charset, true_width = data.charset, data.model.true_width
    train_ds = make_dataset(data.images["train"], pad_labels(data.texts("train"), charset), cfg.batch_size,
                            shuffle=True, augment_images=cfg.augment, seed=cfg.seed + first_epoch,
                            widths=data.widths["train"] if true_width else None)
    val_ds = make_dataset(data.images["val"], pad_labels(data.texts("val"), charset), cfg.batch_size,
                          shuffle=False, augment_images=False, seed=cfg.seed,
                          widths=data.widths["val"] if true_width else None)
    return train_ds, val_ds


def evaluate(model: keras.Model, data: PreparedData, split: str, decoder: str = "greedy",
             language: LanguageModel | None = None, tta: bool = False) -> dict[str, float]:
    """CER and WER of a prediction model on one split, decoded with ``decoder`` (``beam_lm``: with
    the ``language`` model, beam width 10), with test-time augmentation where ``tta``."""
    return evaluate_ways(model, data, split, {"": (decoder, tta)}, language)[""]


def evaluate_ways(model: keras.Model, data: PreparedData, split: str, ways: dict[str, tuple[str, bool]],
                  language: LanguageModel | None = None) -> dict[str, dict[str, float]]:
    """:func:`evaluate` in each of ``ways`` (name -> ``(decoder, tta)``), sharing the forward passes
    (:func:`hwr.model.inference.transcribe_ways`): ``{name: {"cer": ..., "wer": ...}}``."""
    images, widths = data.model_input(split)
    truth = data.texts(split)
    read = transcribe_ways(model, data.charset, images, ways, widths=widths, language=language)
    return {name: {"cer": metrics.cer(truth, texts), "wer": metrics.wer(truth, texts)}
            for name, (texts, _) in read.items()}


def log_data_summary(data: PreparedData, cfg: DataConfig) -> dict:
    """Counts per split, skipped rows (metric + ``bad_inputs.csv``), the charset, the split, and one
    dataset input per split (:func:`hwr.mlflow.datasets.log_splits`), which it returns by split."""
    runs.log_metrics({f"n_{s}": len(data.frames[s]) for s in SPLITS} | {"skipped_rows": len(data.bad.rows)})
    if data.bad.rows:
        runs.log_frame(data.bad.to_frame(), "bad_inputs.csv")
        print(f"skipped {len(data.bad.rows)} bad rows (see bad_inputs.csv in the run's artifacts)", flush=True)
    runs.log_json({"blank": 0, "chars": list(data.charset.chars)}, "charset.json")
    if data.random_split:
        frame = pd.concat(data.frames.values())
        runs.log_frame(frame[[c for c in ("row", "image", "page", "split") if c in frame]], "split.csv")
    return log_splits(data.frames, data_source(cfg), runs.data_name(cfg.data))


def log_results(full: keras.Model, data: PreparedData, history: pd.DataFrame, best_cer: float,
                best_epoch: int, extra_metadata: dict | None = None, test_dataset=None) -> TrainResult:
    """Test evaluation (greedy: ``test_cer``, ``test_wer``; with the character n-gram language
    model of the training labels: ``test_cer_beam_lm``, ``test_wer_beam_lm``; each also with
    test-time augmentation, :mod:`hwr.model.tta`: ``test_cer_tta``, ``test_cer_beam_lm_tta`` and
    their WERs), final metrics,
    history CSV and both models logged to the active run (the prediction model with that language
    model).

    ``best_epoch`` is 1-based; the models are logged at its step (``best_epoch - 1``, as the epoch
    metrics are), and ``test_cer``/``test_wer`` are linked to both and to ``test_dataset`` (the test
    split's dataset input), so each logged model shows the metrics of the weights it holds.
    """
    language = LanguageModel.from_texts(data.texts("train"), data.charset)
    recognizer = prediction_model(full)
    evaluations = evaluate_ways(recognizer, data, "test", {"": ("greedy", False), "_beam_lm": ("beam_lm", False),
                                                           "_tta": ("greedy", True), "_beam_lm_tta": ("beam_lm", True)},
                                language)
    run_id = mlflow.active_run().info.run_id
    examples = data.frames["test"]["path"].head(2).tolist()
    metrics = {f"test_{name}{how}": value for how, result in evaluations.items() for name, value in result.items()}
    print(f"best val_cer {best_cer:.4f} (epoch {best_epoch}); test_cer {metrics['test_cer']:.4f}, test_wer "
          f"{metrics['test_wer']:.4f}; with the language model (decoder=beam_lm) test_cer "
          f"{metrics['test_cer_beam_lm']:.4f}; with test-time augmentation (tta=true) test_cer "
          f"{metrics['test_cer_tta']:.4f}, with both {metrics['test_cer_beam_lm_tta']:.4f}", flush=True)
    try:
        runs.log_metrics({"best_val_cer": best_cer, "best_epoch": best_epoch})
        runs.log_frame(history, "history.csv")
        summary: list[str] = []
        full.summary(print_fn=lambda line, **_: summary.append(line))
        mlflow.log_text("\n".join(summary), "model_summary.txt")
        models = log_models(full, data.charset, examples, extra_metadata, step=best_epoch - 1, language=language)
        runs.log_metrics(metrics, model_ids=models.ids, dataset=test_dataset)
    except Exception as exc:  # tracking server, artifact store or network: keep the models on disk
        record = {"run_id": run_id, "step": best_epoch - 1, "metadata": extra_metadata, "metrics": metrics,
                  "best_val_cer": best_cer, "best_epoch": best_epoch, "error": str(exc).splitlines()[0][:500]}
        folder = save_unlogged(full, data.charset, examples, record, language=language)
        raise ModelsNotLogged(f"the models could not be logged to MLflow ({record['error']}); they are saved in "
                              f"{folder}; log and register them into run {run_id} later with: "
                              f"python -m entrypoints.log_saved {folder}") from exc
    return TrainResult(run_id, best_cer, metrics["test_cer"], metrics["test_wer"], best_epoch, models)


def register_saved(folder) -> tuple[TrainResult, dict[str, int] | None]:
    """Log the models that :func:`log_results` saved to ``folder`` when MLflow failed, into their
    run, and register them as the run would have (its ``register``, ``model_name``,
    ``full_model_name`` and ``data`` parameters). Returns the result and the registered versions."""
    record, models = log_saved(folder)
    params = MlflowClient().get_run(record["run_id"]).data.params
    names = {k: params[k] for k in ("model_name", "full_model_name", "register", "data") if k in params}
    cfg = TrainConfig().replace(**names)
    result = TrainResult(record["run_id"], record["best_val_cer"], record["metrics"]["test_cer"],
                         record["metrics"]["test_wer"], record["best_epoch"], models)
    tags = {k: v for k, v in (record.get("metadata") or {}).items() if k in ("base_model", "base_run_id")}
    versions = register_result(result, cfg, tags=tags) if cfg.register else None
    MlflowClient().set_tag(result.run_id, "mlflow.note.content", result_markdown(result, cfg.data.data, versions))
    return result, versions


def register_result(result: TrainResult, cfg: TrainConfig, alias: str = AUTO, tags: dict | None = None) -> dict[str, int]:
    """Register both models of a run; versions are tagged with the run's ``val_cer``/``test_cer``
    and described (:func:`result_markdown`); a new registered model gets its description
    (:data:`MODEL_DESCRIPTIONS`)."""
    version_tags = {"val_cer": f"{result.val_cer:.4f}", "test_cer": f"{result.test_cer:.4f}",
                    "run_id": result.run_id, **(tags or {})}
    description = result_markdown(result, cfg.data.data)
    return {
        cfg.full_model_name: register(result.models.full_uri, cfg.full_model_name, version_tags, alias,
                                      description, MODEL_DESCRIPTIONS["full"]),
        cfg.model_name: register(result.models.prediction_uri, cfg.model_name, version_tags, alias,
                                 description, MODEL_DESCRIPTIONS["prediction"]),
    }


def result_markdown(result: TrainResult, data: str, versions: dict[str, int] | None = None) -> str:
    """A training run in markdown, for its description and its model versions': the data, the best
    epoch and the metrics, the registered versions (if given) and the data's licence and attribution
    (:func:`hwr.data.provenance.data_notice`)."""
    lines = [f"Trained by run `{result.run_id}` on `{data}`: best epoch {result.best_epoch}, best val CER "
             f"{result.val_cer:.4f}, **test CER {result.test_cer:.4f}**, test WER {result.test_wer:.4f}."]
    if versions:
        lines.append("Registered: " + ", ".join(f"`{name}` version {v}" for name, v in versions.items()) + ".")
    notice = data_notice(data)
    if notice:
        lines.append("Training data licence and attribution (keep it with the model):\n\n" + notice)
    return "\n\n".join(lines)


def finish_run(result: TrainResult, cfg: TrainConfig, versions: dict[str, int] | None) -> None:
    """Describe the active training run (:func:`result_markdown`) and print what was registered."""
    runs.describe_run(result_markdown(result, cfg.data.data, versions))
    if versions:
        print("registered " + ", ".join(f"{n} version {v}" for n, v in versions.items()), flush=True)
