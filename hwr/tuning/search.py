"""The ``tune`` verb: a Hyperopt search whose every trial is a nested MLflow run of ``train``.

One parent run holds the search (its Trials pickle after every trial, the trials CSV, a plot and
the best trial's ``best_*`` params/metrics); each trial calls
:func:`hwr.training.train.train_and_log` inside a child run. Trials run serially (``backend=local``;
each in a fresh child process unless ``isolate_trials`` is false, see
:class:`hwr.tuning.objective.IsolatedObjective`) or in parallel on Spark workers (``backend=spark``,
Hyperopt's ``SparkTrials``; the package is shipped to the executors). TensorFlow is imported inside
functions, so a bad configuration fails before it loads.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import numpy as np

from hwr.mlflow import runs
from hwr.tuning.config import TuneConfig
from hwr.tuning.space import hyperopt_space
from hwr.tuning.trials import (SPACE_ARTIFACT, continue_interrupted, done_trials, load_resume, queue_point, restore,
                               save_trials, space_point, trials_without_progress)


def absolute_tracking_uri(uri: str) -> str:
    """The tracking URI with a relative sqlite/file path made absolute (Spark workers may not
    share the driver's working directory)."""
    for prefix in ("sqlite:///", "file:"):
        if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
            return prefix + str(Path(uri[len(prefix):]).resolve())
    if "://" not in uri and ":" not in uri:
        return str(Path(uri).resolve())
    return uri


def algorithm(name: str, max_evals: int):
    """Hyperopt's suggest function. TPE starts with ``max(3, min(20, max_evals // 3))`` random
    trials (Hyperopt's default of 20 would make a short search purely random)."""
    from hyperopt import rand, tpe

    if name == "random":
        return rand.suggest
    return functools.partial(tpe.suggest, n_startup_jobs=max(3, min(20, max_evals // 3)))


class Progress:
    """Hyperopt ``early_stop_fn``: after each finished trial, print ``trial n/N: metric=... (best
    ...)``, name the child run ``trial-<n>`` and save the Trials pickle to the parent run; stop the
    search when ``no_progress`` (> 0) trials in a row brought no better loss, or when ``total`` trials
    have finished."""

    def __init__(self, total: int, metric: str, parent_run_id: str, save, no_progress: int = 0):
        self.total, self.metric, self.parent_run_id, self.save = total, metric, parent_run_id, save
        self.no_progress, self.stopped = no_progress, ""
        self.reported: set[int] = set()

    def __call__(self, trials, *args):
        from hyperopt import STATUS_OK
        from mlflow import MlflowClient

        docs = done_trials(trials)
        fresh = [d for d in docs if d["tid"] not in self.reported]
        losses = [d["result"]["loss"] for d in docs if d["result"]["status"] == STATUS_OK]
        best = f"{min(losses):.4f}" if losses else "none yet"
        for doc in fresh:
            self.reported.add(doc["tid"])
            res = doc["result"]
            if res.get("run_id"):
                MlflowClient().set_tag(res["run_id"], "mlflow.runName", f"trial-{doc['tid'] + 1}")
                MlflowClient().set_tag(res["run_id"], runs.TRIAL, str(doc["tid"] + 1))
            outcome = (f"{self.metric}={res['loss']:.4f}" if res["status"] == STATUS_OK
                       else f"FAILED ({res.get('error', 'unknown error')[:200]})")
            note = f", {res['outcome']}" if res.get("outcome", "completed") not in ("completed", "failed") else ""
            print(f"trial {len(self.reported)}/{self.total}: {outcome}{note} (best {best})", flush=True)
        if fresh:
            self.save(trials)
        stale = trials_without_progress(trials)
        if self.no_progress and stale >= self.no_progress and not self.stopped:
            self.stopped = f"no better {self.metric} in the last {stale} trials (no_progress_trials={self.no_progress})"
            print(f"search stopped: {self.stopped}", flush=True)
        return bool(self.stopped) or len(docs) >= self.total, args


def make_trials(cfg: TuneConfig):
    """(trials, spark session or None): ``hyperopt.Trials`` or ``SparkTrials`` on ``spark_master``
    (see :func:`hwr.mlflow.spark.spark_session`).

    Raises:
        ConfigError: backend=spark without pyspark installed.
    """
    from hyperopt import Trials

    if cfg.backend == "local":
        return Trials(), None
    from hyperopt import SparkTrials

    from hwr.mlflow.spark import master_url, spark_session

    session = spark_session(master_url(cfg.spark_master, f"local[{cfg.parallelism}]"), "hwr-tune")
    return SparkTrials(parallelism=cfg.parallelism, spark_session=session), session


def stop_reason(cfg: TuneConfig, no_progress: str, deadline: float | None, n_done: int) -> str:
    """Why the search ended, for the parent run's ``hwr.search_stop`` tag."""
    if no_progress:
        return no_progress
    if n_done < cfg.max_evals and deadline is not None and time.time() >= deadline - 1:
        return f"time budget of {cfg.max_minutes:g} minutes reached after {n_done} trials"
    return f"{n_done} of max_evals={cfg.max_evals} trials finished"


def run_tune(cfg: TuneConfig) -> TuneResult:
    """The ``tune`` entry point: run (or resume) the search in a parent run, summarise it and
    register the best trial's models with alias ``challenger`` (when ``register`` is true).

    Raises:
        ConfigError: bad settings or search space, or a run that cannot be resumed (before any trial).
    """
    import mlflow
    from hyperopt import fmin

    from hwr.mlflow.checkpoints import take_over_launcher
    from hwr.tuning.objective import LOST_EXECUTOR, IsolatedObjective, Objective, fail_running_trials
    from hwr.tuning.summary import TuneResult, summarise

    cfg.validate()
    specs = cfg.space()
    resumed = load_resume(cfg, specs) if cfg.resume_run_id else None
    if resumed is not None:
        take_over_launcher(cfg.resume_run_id)  # `mlflow run` opened a new run: reopen the search's instead
    started = time.monotonic()
    deadline = time.time() + 60 * cfg.max_minutes if cfg.max_minutes else None
    with mlflow.start_run(run_id=cfg.resume_run_id or None, run_name=None if resumed else "tune",
                          tags={runs.VERB: "tune"}, log_system_metrics=cfg.train.system_metrics) as parent:
        parent_id = parent.info.run_id
        print(f"tune parent run {parent_id} ({'resumed' if resumed else 'new'}); "
              f"{cfg.max_evals} trials of {cfg.trial_epochs} epochs, algo={cfg.algo}, backend={cfg.backend}",
              flush=True)
        runs.log_params(cfg.train.flat_params() | cfg.flat_params())  # with epochs (= trial_epochs); the search's own resume_run_id
        runs.log_json(specs, SPACE_ARTIFACT)
        trials, session = make_trials(cfg)
        try:
            resume_trial = None
            if resumed:
                restore(trials, resumed)
                print(f"resuming after {len(trials.trials)} finished trials", flush=True)
                resume_trial = continue_interrupted(trials, parent_id, specs)
            elif cfg.baseline_trial and (point := space_point(cfg.train.flat_params(), specs)) is not None:
                queue_point(trials, point)
                mlflow.set_tag(runs.BASELINE_TRIAL, "1")
            objective = Objective(cfg.train, cfg.metric, absolute_tracking_uri(mlflow.get_tracking_uri()),
                                  parent.info.experiment_id, parent_id, cfg.prune, deadline, resume_trial)
            if cfg.backend == "local" and cfg.isolate_trials:
                objective = IsolatedObjective(objective)
            progress = Progress(cfg.max_evals, cfg.metric, parent_id, lambda t: save_trials(t, parent_id),
                                cfg.no_progress_trials)
            progress.reported.update(d["tid"] for d in done_trials(trials))
            if len(done_trials(trials)) < cfg.max_evals:
                # a queued trial (baseline, continued) counts in len(trials) before it runs: one more
                # evaluation is allowed, and Progress stops the search at max_evals finished trials
                fmin(objective, hyperopt_space(specs), algorithm(cfg.algo, cfg.max_evals),
                     max(cfg.max_evals, len(trials.trials) + 1),
                     trials=trials, rstate=np.random.default_rng([cfg.train.seed, len(trials.trials)]),
                     early_stop_fn=progress, show_progressbar=False, return_argmin=False,
                     timeout=max(1.0, deadline - time.time()) if deadline else None)
            progress(trials)
        finally:
            if session is not None:
                session.stop()
        if cfg.backend == "spark" and (lost := fail_running_trials(objective.tracking_uri, parent_id, LOST_EXECUTOR)):
            print(f"{len(lost)} trial runs lost their Spark executor and are marked FAILED: {', '.join(lost)}",
                  flush=True)
        result = summarise(cfg, [d["result"] | {"trial": d["tid"] + 1} for d in done_trials(trials)],
                           [n for n, s in specs.items() if s["type"] != "fixed"], parent_id)
        runs.log_metrics({"search_time_s": time.monotonic() - started})
        mlflow.set_tag(runs.SEARCH_STOP, stop_reason(cfg, progress.stopped, deadline, len(done_trials(trials))))
    return result
