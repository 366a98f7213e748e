"""The Trials of a ``tune`` search: the finished trials, their snapshot in the parent run (for a
resume), the count of trials without progress, and points queued ahead of Hyperopt's proposals
(the baseline trial, an interrupted trial to continue)."""

from __future__ import annotations

import copy
import pickle
import tempfile
from pathlib import Path

from hwr.errors import ConfigError
from hwr.mlflow import runs
from hwr.tuning.config import TuneConfig

TRIALS_ARTIFACT = "hyperopt/trials.pkl"
SPACE_ARTIFACT = "hyperopt/search_space.json"



def done_trials(trials) -> list[dict]:
    """The finished trial documents, in trial order."""
    from hyperopt import JOB_STATE_DONE

    return sorted((d for d in trials.trials if d["state"] == JOB_STATE_DONE), key=lambda d: d["tid"])


def snapshot(trials) -> bytes:
    """A pickled plain ``hyperopt.Trials`` of the finished trials, renumbered 0..n-1 (a parallel
    search can finish trial 3 before trial 2; the unfinished ones are re-proposed on resume)."""
    from hyperopt import Trials

    docs = []
    for tid, doc in enumerate(done_trials(trials)):
        doc = copy.deepcopy(doc)
        doc["tid"] = doc["misc"]["tid"] = tid
        doc["misc"]["idxs"] = {k: [tid] if v else [] for k, v in doc["misc"]["idxs"].items()}
        docs.append(doc)
    plain = Trials()
    plain._insert_trial_docs(docs)
    plain.refresh()
    return pickle.dumps(plain)


def restore(trials, data: bytes):
    """Load a :func:`snapshot` into an empty ``Trials`` (or ``SparkTrials``); returns it."""
    old = pickle.loads(data)
    trials._insert_trial_docs([copy.deepcopy(d) for d in old.trials])
    trials.refresh()
    return trials


def trials_without_progress(trials) -> int:
    """How many finished trials came after the one with the best loss (all of them when none
    succeeded): Hyperopt's ``no_progress_loss`` count, computed from the trials themselves, so it
    survives a resume and a failed trial (``loss=None``) counts as no progress instead of resetting it."""
    from hyperopt import STATUS_OK

    docs = done_trials(trials)
    ok = [i for i, d in enumerate(docs) if d["result"]["status"] == STATUS_OK]
    if not ok:
        return len(docs)
    best = min(ok, key=lambda i: (docs[i]["result"]["loss"], i))
    return len(docs) - 1 - best


def save_trials(trials, parent_run_id: str) -> None:
    """Log the Trials snapshot as ``hyperopt/trials.pkl`` of the parent run (overwriting)."""
    from mlflow import MlflowClient

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(TRIALS_ARTIFACT).name
        path.write_bytes(snapshot(trials))
        MlflowClient().log_artifact(parent_run_id, str(path), str(Path(TRIALS_ARTIFACT).parent))


def load_resume(cfg: TuneConfig, space: dict) -> bytes:
    """The Trials pickle of the parent run ``cfg.resume_run_id``.

    Raises:
        ConfigError: no such run, not a tune parent run, or a different search space.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    run_id = cfg.resume_run_id
    try:
        run = mlflow.MlflowClient().get_run(run_id)
        stored = mlflow.artifacts.load_dict(f"runs:/{run_id}/{SPACE_ARTIFACT}")
        local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=TRIALS_ARTIFACT)
    except (MlflowException, OSError) as exc:
        raise ConfigError(f"resume_run_id={run_id}: not a tune run with a saved search ({exc})") from exc
    if run.data.tags.get(runs.VERB) != "tune":
        raise ConfigError(f"resume_run_id={run_id}: not a tune parent run")
    if stored != space:
        raise ConfigError(f"resume_run_id={run_id}: the search space differs from the interrupted search's "
                          f"({SPACE_ARTIFACT} of that run); resume with the same search_space")
    return Path(local).read_bytes()


def space_point(own: dict, specs: dict, what: str = "baseline trial") -> dict | None:
    """The Hyperopt point (``misc.vals`` form: a choice by its index) of the flat training
    parameters ``own`` (values or their text), or None (with a printed note naming ``what``) when
    one of them is outside the space."""
    from hwr.tuning.space import to_params

    point = {}
    for name, spec in specs.items():
        if spec["type"] == "fixed":
            continue
        value = to_params({name: own[name]})[name]
        if spec["type"] == "choice":
            values = [to_params({name: v})[name] for v in spec["values"]]
            if value not in values:
                print(f"note: no {what}: {name}={value} is not among the searched values {values}", flush=True)
                return None
            point[name] = values.index(value)
        else:
            point[name] = value
    return point


def queue_point(trials, point: dict) -> None:
    """Put ``point`` in a ``Trials``/``SparkTrials`` as the next trial, to be evaluated before any
    proposal (what ``fmin(points_to_evaluate=...)`` does for the Trials it makes itself)."""
    from hyperopt.fmin import generate_trial

    trials._insert_trial_docs([generate_trial(trials.new_trial_ids(1)[0], point)])
    trials.refresh()


def continue_interrupted(trials, parent_run_id: str, specs: dict) -> str | None:
    """Queue the search's interrupted trial (:func:`hwr.tuning.objective.interrupted_trial`) as the
    next trial, so that it continues from its last checkpoint; returns its run id, or None."""
    from hwr.tuning.objective import interrupted_trial

    finished = {d["result"].get("run_id") for d in done_trials(trials)}
    run = interrupted_trial(parent_run_id, finished)
    if run is None or (point := space_point(run.data.params, specs, "continued trial")) is None:
        return None
    queue_point(trials, point)
    print(f"continuing the interrupted trial run {run.info.run_id} from its last checkpoint", flush=True)
    return run.info.run_id
