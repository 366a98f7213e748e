"""The end of a ``tune`` search, logged to the parent run: trials CSV, plot, ``best_*`` params and
metrics, the ``hwr.best_run_id`` tag, and registration of the best trial's models as ``@challenger``."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import mlflow

from hwr.mlflow import runs
from hwr.mlflow.packaging import LoggedModels
from hwr.training.steps import TrainResult, register_result
from hwr.tuning.report import plot_trials, trials_frame


@dataclass(frozen=True)
class TuneResult:
    """The outcome of a search. ``best_*`` are None when no trial succeeded."""

    parent_run_id: str
    n_ok: int
    n_failed: int
    best_run_id: str | None = None
    best_loss: float | None = None
    best_params: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)


def _log_best_params(best: dict) -> None:
    """``best_<name>`` params; MLflow cannot change a logged param, so when an extended search
    finds a new best the old values stay and ``best_params.json`` (always rewritten) is the truth."""
    params = {f"best_{k}": v for k, v in best["params"].items()}
    run = mlflow.active_run()
    logged = mlflow.MlflowClient().get_run(run.info.run_id).data.params
    stale = [k for k, v in params.items() if k in logged and logged[k] != runs.param_text(v)]
    if stale:
        print(f"note: params {stale} keep an earlier best; see best_params.json", flush=True)
    runs.log_params(params)
    runs.log_json({"run_id": best["run_id"], "trial": best["trial"], **best["params"]}, "best_params.json")


def _register(cfg, best: dict, parent_id: str) -> dict:
    client = mlflow.MlflowClient()
    if client.get_run(parent_id).data.tags.get(runs.REGISTERED_RUN_ID) == best["run_id"]:
        print("best trial unchanged and already registered", flush=True)
        return {}
    result = TrainResult(best["run_id"], best["val_cer"], best["test_cer"], best["test_wer"], best["best_epoch"],
                         LoggedModels(best["full_uri"], best["prediction_uri"]))
    versions = register_result(result, cfg.train.replace(**best["params"]), alias="challenger",
                               tags={"tune_run_id": parent_id})
    mlflow.set_tag(runs.REGISTERED_RUN_ID, best["run_id"])
    print("registered " + ", ".join(f"{n} version {v} @challenger" for n, v in versions.items()), flush=True)
    return versions


def _log_gain(metric: str, best: dict, ok: list[dict], parent_id: str) -> None:
    """``baseline_<metric>`` and ``gain_over_baseline`` (baseline minus best; 0 when the baseline
    won) when trial 1 trained the run's own parameters and succeeded."""
    tags = mlflow.MlflowClient().get_run(parent_id).data.tags
    baseline = next((r for r in ok if r["trial"] == 1), None) if tags.get(runs.BASELINE_TRIAL) == "1" else None
    if baseline is not None:
        runs.log_metrics({f"baseline_{metric}": baseline["loss"], "gain_over_baseline": baseline["loss"] - best["loss"]})
        print(f"baseline (trial 1) {metric}={baseline['loss']:.4f}; the search's best is "
              f"{baseline['loss'] - best['loss']:+.4f} better", flush=True)


def summarise(cfg, results: list[dict], searched: list[str], parent_id: str):
    """Log the search's outcome to the active (parent) run and register the best trial.

    Args:
        cfg: the :class:`hwr.tuning.config.TuneConfig`. results: the finished trials' result dicts with
            ``trial`` (1-based). searched: the parameters the space varies (CSV/plot columns).
    Returns:
        :class:`TuneResult`.
    """
    frame = trials_frame(results, searched, cfg.metric)
    runs.log_frame(frame, "trials.csv")
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.log_artifact(str(plot_trials(frame, searched, cfg.metric, Path(tmp) / "tuning_plot.png")))
    ok = [r for r in results if r["status"] == "ok"]
    runs.log_metrics({"n_trials": len(results), "n_trials_ok": len(ok), "n_trials_failed": len(results) - len(ok),
                      "n_trials_pruned": sum(r.get("outcome") == "pruned" for r in results)})
    if not ok:
        print(f"no trial succeeded ({len(results)} failed); nothing registered", flush=True)
        return TuneResult(parent_id, 0, len(results))
    best = min(ok, key=lambda r: (r["loss"], r["trial"]))
    _log_best_params(best)
    runs.log_metrics({f"best_{cfg.metric}": best["loss"], "best_val_cer": best["val_cer"],
                          "best_test_cer": best["test_cer"], "best_test_wer": best["test_wer"],
                          "best_epoch": best["best_epoch"], "best_trial": best["trial"]})
    mlflow.set_tags({runs.BEST_RUN_ID: best["run_id"], runs.BEST_TRIAL: str(best["trial"])})
    _log_gain(cfg.metric, best, ok, parent_id)
    print(f"best trial {best['trial']} (run {best['run_id']}): {cfg.metric}={best['loss']:.4f}; "
          f"test_cer {best['test_cer']:.4f}", flush=True)
    versions = _register(cfg, best, parent_id) if cfg.train.register else {}
    return TuneResult(parent_id, len(ok), len(results) - len(ok), best["run_id"], best["loss"],
                      best["params"], versions)
