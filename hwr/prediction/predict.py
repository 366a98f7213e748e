"""The ``predict`` verb: transcribe a folder of images with one or several prediction models,
write a CSV per model, log metrics and an evaluation report to MLflow.

One model: one run. Several (comma-separated URIs): a parent run holding the side-by-side
report and one child run per model. Images stream through in chunks (``batch_size`` rows), each
chunk is read once and fed to every model, so memory stays flat with the number of images.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from tqdm import tqdm

from hwr.config import PredictConfig
from hwr.data.pages.output import write_pages
from hwr.data.remote import local_view
from hwr.data.sources import image_table, read_chunks
from hwr.errors import TooManyUnreadable
from hwr.evaluation.lexicon import Lexicon
from hwr.evaluation.scoring import per_sample, summary_metrics
from hwr.mlflow import runs
from hwr.mlflow.datasets import data_source, log_dataset, split_dataset
from hwr.prediction.models import LoadedModel, load_models


@dataclass
class PredictResult:
    """Run ids, per-model metrics and the files written (CSV per model, report folder)."""

    run_id: str
    child_run_ids: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    csv_paths: dict[str, Path] = field(default_factory=dict)
    report_dir: Path | None = None


def transcribe_table(table: pd.DataFrame, models: list[LoadedModel], params: dict,
                     batch_size: int) -> dict[str, pd.DataFrame]:
    """Stream the image table through every model, ``batch_size`` images at a time (``params``:
    the pyfunc's ``decoder``, ``beam_width``, ``tta``); returns one prediction table per model label, with
    ``prediction`` and ``confidence`` added (empty / NaN for unreadable rows)."""
    parts: dict[str, list[pd.DataFrame]] = {m.label: [] for m in models}
    with tqdm(total=len(table), unit="img", desc="predict", mininterval=1.0) as bar:
        for chunk in read_chunks(table, batch_size):
            for m in models:
                rows = chunk.rows.assign(prediction="", confidence=np.nan)
                if chunk.encoded:
                    out = m.predict(chunk.encoded, params)
                    rows.loc[chunk.ok, "prediction"] = out["text"].to_numpy()
                    rows.loc[chunk.ok, "confidence"] = out["confidence"].to_numpy()
                parts[m.label].append(rows)
            bar.update(len(chunk.rows))
    return {label: pd.concat(p, ignore_index=True) for label, p in parts.items()}


def transcribe(table: pd.DataFrame, models: list[LoadedModel], cfg: PredictConfig) -> dict[str, pd.DataFrame]:
    """:func:`transcribe_table` here (``backend=local``) or on Spark (``backend=spark``,
    :func:`hwr.prediction.spark.transcribe_on_spark`): the same tables either way."""
    params = {"decoder": cfg.decoder, "beam_width": cfg.beam_width} | ({"tta": True} if cfg.tta else {})
    if cfg.backend == "local":
        return transcribe_table(table, models, params, cfg.batch_size)
    from hwr.mlflow.spark import master_url
    from hwr.prediction.spark import transcribe_on_spark

    return transcribe_on_spark(table, models, params, cfg.batch_size, master_url(cfg.spark_master, "local[2]"))


def score(frame: pd.DataFrame, lexicon: Lexicon | None) -> pd.DataFrame:
    """Add per-sample ``edit_distance``/``cer`` (labelled) and the lexicon columns; order columns."""
    ok = frame["error"] == ""
    if lexicon is not None:
        corrected, similarity = lexicon.correct_all(frame.loc[ok, "prediction"])
        frame["prediction_lexicon"], frame["lexicon_similarity"] = "", np.nan
        frame.loc[ok, "prediction_lexicon"], frame.loc[ok, "lexicon_similarity"] = corrected, similarity
    if "truth" in frame:
        for column, prefix in (("prediction", ""), ("prediction_lexicon", "lexicon_")):
            if column in frame:
                dist, cer = per_sample(frame.loc[ok, "truth"], frame.loc[ok, column])
                frame[f"{prefix}edit_distance"] = pd.Series(pd.NA, index=frame.index, dtype="Int64")
                frame.loc[ok, f"{prefix}edit_distance"] = dist
                frame[f"{prefix}cer"] = np.nan
                frame.loc[ok, f"{prefix}cer"] = cer
    first = [c for c in ("row", "image", "path", "split", "truth", "prediction", "confidence", "edit_distance", "cer")
             if c in frame]
    return frame[first + [c for c in frame.columns if c not in first and c != "error"] + ["error"]]


def frame_metrics(frame: pd.DataFrame, model: LoadedModel) -> dict[str, float]:
    """Counts, throughput and, with labels, :func:`hwr.evaluation.scoring.summary_metrics` (also with
    prefix ``lexicon_`` for the corrected text)."""
    ok = frame[frame["error"] == ""]
    values = {"n_images": len(frame), "n_unreadable": int((frame["error"] != "").sum()),
              "images_per_s": len(ok) / model.seconds if model.seconds else float("nan"),
              "mean_confidence": float(ok["confidence"].mean()) if len(ok) else float("nan")}
    if "truth" in frame:
        values.update(summary_metrics(ok["truth"], ok["prediction"]))
        if "prediction_lexicon" in frame:
            lex = summary_metrics(ok["truth"], ok["prediction_lexicon"])
            values.update({f"lexicon_{k}": v for k, v in lex.items() if k != "n_evaluated"})
    return values


def log_outputs(frames: dict[str, pd.DataFrame], summary: pd.DataFrame, csv_path: Path | None,
                report_dir: Path, title: str) -> None:
    """Write the CSV (if given) and the report to disk, and log both to the active run."""
    from hwr.evaluation.report import write_report

    if csv_path is not None:
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        next(iter(frames.values())).to_csv(csv_path, index=False)
        mlflow.log_artifact(str(csv_path))
    write_report(frames, summary, report_dir, title)
    mlflow.log_artifacts(str(report_dir), "report")


def run_predict(cfg: PredictConfig) -> PredictResult:
    """The ``predict`` entry point (see module docstring). Opens the run ``mlflow run`` started,
    if any.

    Raises:
        ConfigError: a bad parameter, model URI or lexicon. BadInputError: missing data folder,
        labels CSV or column, a labels CSV that is not UTF-8, a split matching no row, or no image
        to transcribe. TooManyUnreadable: every image, or more than ``max_unreadable`` of them,
        unreadable: raised after the CSV and the report are written and logged, so the run ends
        FAILED with the per-row reasons in its CSV.
    """
    cfg.validate()
    data = local_view(cfg.data_config())
    table = image_table(data, cfg.split, cfg.labelled(data))
    pages = cfg.replace(data=data.data) if "xml" in table else None  # page files are written beside the view's
    table = table.head(cfg.max_images) if cfg.max_images else table
    lexicon = Lexicon.load(cfg.lexicon_path(), cfg.lexicon_threshold) if cfg.lexicon_path() else None
    models = load_models(cfg.model_uris(), cfg.decoder, cfg.tta)
    output = Path(cfg.output)
    report_dir = output.with_name(output.stem + "_report")
    with mlflow.start_run(log_system_metrics=cfg.system_metrics) as run:
        runs.name_run("predict", cfg.data)
        runs.log_params(cfg.flat_params())
        dataset = predict_dataset(table, cfg)
        mlflow.set_tags({runs.VERB: "predict", runs.LABELLED: str("truth" in table).lower()})
        frames = {label: score(f, lexicon) for label, f in transcribe(table, models, cfg).items()}
        result = PredictResult(run.info.run_id, report_dir=report_dir)
        for m in models:
            result.metrics[m.label] = frame_metrics(frames[m.label], m)
        summary = pd.DataFrame(result.metrics).T.rename_axis("model").reset_index()
        counts = [c for c in summary if c.startswith("n_")]
        summary[counts] = summary[counts].astype(int)
        if len(models) == 1:
            result.csv_paths[models[0].label] = output
            if pages is not None:
                result.metrics[models[0].label] |= log_pages(frames[models[0].label], pages,
                                                             output.with_name(output.stem + "_pages"))
            runs.log_metrics(result.metrics[models[0].label], model_ids=models[0].model_ids, dataset=dataset)
            log_outputs(frames, summary, output, report_dir, f"predict: {models[0].uri}")
        else:
            log_children(models, frames, summary, output, result, pages, dataset)
            runs.log_frame(summary, "summary.csv")
            log_outputs(frames, summary, None, report_dir, "predict: " + ", ".join(m.uri for m in models))
        runs.describe_run(predict_markdown(cfg, result))
        failure = unreadable_failure(next(iter(frames.values())), cfg.max_unreadable,
                                     next(iter(result.csv_paths.values())))
        if failure is not None:
            print_summary(summary, result)
            raise failure
    print_summary(summary, result)
    return result


def unreadable_failure(frame: pd.DataFrame, max_unreadable: float,
                       csv_path: Path | None = None) -> TooManyUnreadable | None:
    """The error that fails a run whose images are all unreadable, or more than the fraction
    ``max_unreadable`` of them; None when the run may succeed. The message is one line: the count,
    the most common reason and (``csv_path``) where every row's reason is."""
    errors = frame["error"][frame["error"] != ""]
    n, n_bad = len(frame), len(errors)
    if not n_bad or (n_bad < n and n_bad / n <= max_unreadable):
        return None
    kinds = errors.map(lambda e: re.sub(r"'[^']*'", "'…'", str(e)))  # the same reason for other files
    kind, count = next(iter(kinds.value_counts().items()))
    reason = " ".join(str(errors[kinds == kind].iloc[0]).split())
    share = f"all {n} images are unreadable" if n_bad == n else \
        f"{n_bad} of {n} images are unreadable, more than max_unreadable={max_unreadable:g}"
    where = f"; every row's reason is in the error column of {csv_path}" if csv_path is not None else ""
    return TooManyUnreadable(f"{share}; most common reason ({count} rows): {reason}{where}")


def log_pages(frame: pd.DataFrame, cfg: PredictConfig, out_dir: Path) -> dict[str, float]:
    """Write the page files with the transcriptions into ``out_dir``, log them (artifact folder
    ``pages/``, with ``pages_check.json`` listing repairs and schema errors) and return the counts
    ``n_pages``, ``n_pages_invalid``."""
    written = write_pages(frame, Path(cfg.data), out_dir, cfg.keep_existing)
    mlflow.log_artifacts(str(out_dir), "pages")
    runs.log_json({"repairs": written.repairs, "schema_errors": written.invalid}, "pages_check.json")
    invalid = {e.split(":", 1)[0] for e in written.invalid}
    print(f"wrote {len(written.files)} page files to {out_dir} ({len(written.repairs)} repairs, "
          f"{len(invalid)} not valid against the schema; see pages_check.json)", flush=True)
    for error in written.invalid[:3]:
        print(f"  schema: {error}", flush=True)
    return {"n_pages": len(written.files), "n_pages_invalid": len(invalid)}


def log_children(models, frames, summary, output: Path, result: PredictResult, pages: PredictConfig | None,
                 dataset) -> None:
    """One nested run per model: its params, its dataset input, metrics, CSV, its own report and
    (``pages``: the config, for page data) its page files."""
    for m in models:
        csv_path = output.with_name(f"{output.stem}_{m.label}.csv")
        with mlflow.start_run(run_name=m.label, nested=True) as child, tempfile.TemporaryDirectory() as tmp:
            mlflow.log_params({"model": m.uri})
            log_dataset(dataset, dataset.name.rsplit("-", 1)[-1])
            mlflow.set_tag(runs.VERB, "predict")
            if pages is not None:
                result.metrics[m.label] |= log_pages(frames[m.label], pages,
                                                     output.with_name(f"{output.stem}_{m.label}_pages"))
            runs.log_metrics(result.metrics[m.label], model_ids=m.model_ids, dataset=dataset)
            one = summary[summary["model"] == m.label]
            log_outputs({m.label: frames[m.label]}, one, csv_path, Path(tmp) / "report", f"predict: {m.uri}")
            result.child_run_ids[m.label] = child.info.run_id
            result.csv_paths[m.label] = csv_path


def predict_dataset(table: pd.DataFrame, cfg: PredictConfig):
    """Log the transcribed images as the run's dataset input (context = the split, ``all`` for a
    whole folder; the target is ``truth`` when labelled) and return it."""
    data = cfg.data_config()
    labelled = "truth" in table
    frame = table.assign(truth=table["truth"] if labelled else "")
    name = f"{runs.data_name(cfg.data)}-{cfg.split}"
    dataset = split_dataset(frame, data_source(data), name, "truth")
    log_dataset(dataset, cfg.split)
    return dataset


def predict_markdown(cfg: PredictConfig, result: PredictResult) -> str:
    """The run's description: what was transcribed with which model, and the headline figures."""
    lines = [f"Transcribed `{cfg.data}` (split `{cfg.split}`) into `{cfg.output}`."]
    for (label, values), uri in zip(result.metrics.items(), cfg.model_uris()):
        scores = f", CER {values['cer']:.4f}, WER {values['wer']:.4f}" if "cer" in values else ""
        lines.append(f"- `{uri}`: {int(values['n_images'])} images ({int(values['n_unreadable'])} unreadable)"
                     f"{scores}, {values['images_per_s']:.0f} images/s")
    return "\n".join(lines)


def print_summary(summary: pd.DataFrame, result: PredictResult) -> None:
    keys = [k for k in ("model", "n_images", "n_unreadable", "cer", "wer", "exact_match", "lexicon_cer",
                        "images_per_s") if k in summary]
    print(summary[keys].to_string(index=False, float_format=lambda v: f"{v:.4f}"), flush=True)
    print("wrote " + ", ".join(str(p) for p in result.csv_paths.values())
          + f"; report {result.report_dir / 'report.html'}; run {result.run_id}", flush=True)
