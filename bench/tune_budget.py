r"""A search on a time budget, with and without pruning: what does each find in the same minutes?

Runs ``entrypoints/tune.py`` twice, one after the other (never at once: 2 cores), with the same
seed, ``max_minutes`` and default search space: once with ``prune=true`` and once with
``prune=false``. Both start with the baseline trial (the ``train`` defaults) and, with the same
seed, propose the same first configurations, so configurations that completed in both searches
are repeated identical trials: their difference is the noise a gain must beat.

Prints, per search: trials finished / pruned / out of time, the baseline's and the best
``val_cer`` (and the best's ``test_cer``), the gain over the baseline; then the identical pairs'
differences. The tracking store is kept (``--store``) for the MLflow UI.

    .venv/bin/python bench/tune_budget.py --minutes 60 --data ../shared/data/dhsd --store /tmp/tune-budget
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_search(prune: str, args, store: Path) -> str:
    """Run one search; returns its parent run id."""
    command = [sys.executable, "-m", "entrypoints.tune", "--max_minutes", str(args.minutes), "--prune", prune,
               "--max_evals", str(args.max_evals), "--data", args.data, "--register", "false",
               "--seed", str(args.seed), "--max_per_split", str(args.max_per_split),
               "--trial_epochs", str(args.trial_epochs)]
    env = os.environ | {"MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}",
                        "MLFLOW_EXPERIMENT_NAME": f"tune-budget-prune-{prune}"}
    log = store / f"tune-prune-{prune}.log"
    started = time.monotonic()
    with log.open("wb") as out:
        code = subprocess.call(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    if code != 0:
        sys.stderr.write(log.read_text(errors="replace")[-4000:])
        raise SystemExit(f"tune prune={prune} failed (exit {code})")
    print(f"prune={prune}: {time.monotonic() - started:.0f} s wall, log {log}", flush=True)
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(f"tune-budget-prune-{prune}")
    [parent] = client.search_runs([experiment.experiment_id], "tags.`hwr.verb` = 'tune'",
                                  order_by=["attributes.start_time DESC"], max_results=1)
    return parent.info.run_id


def trials(client, parent_id: str) -> list[dict]:
    """The search's trials in order: number, outcome, best val_cer, test_cer, searched params."""
    parent = client.get_run(parent_id)
    found = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")
    searched = json.loads(Path(client.download_artifacts(parent_id, "hyperopt/search_space.json")).read_text())
    rows = []
    for run in sorted(found, key=lambda r: r.info.start_time):
        rows.append({"trial": int(run.data.tags.get("hwr.trial", 0)),
                     "outcome": run.data.tags.get("hwr.trial_outcome", run.info.status),
                     "val_cer": run.data.metrics.get("best_val_cer"), "test_cer": run.data.metrics.get("test_cer"),
                     "epochs": len(client.get_metric_history(run.info.run_id, "val_cer")),
                     "config": tuple(run.data.params.get(n) for n in sorted(searched))})
    return rows


def report(name: str, parent, rows: list[dict]) -> None:
    metrics, tags = parent.data.metrics, parent.data.tags
    outcomes = [r["outcome"] for r in rows]
    best = min((r for r in rows if r["val_cer"] is not None), key=lambda r: r["val_cer"])
    print(f"\n{name}: {len(rows)} trials ({outcomes.count('completed')} completed, {outcomes.count('pruned')} "
          f"pruned, {outcomes.count('out_of_time')} out of time, {outcomes.count('failed')} failed); "
          f"{metrics.get('search_time_s', 0) / 60:.1f} min; stop: {tags.get('hwr.search_stop')}")
    print(f"  baseline val_cer {metrics.get('baseline_val_cer', float('nan')):.4f}; best val_cer "
          f"{best['val_cer']:.4f} (trial {best['trial']}, {best['epochs']} epochs, test_cer {best['test_cer']:.4f}); "
          f"gain over baseline {metrics.get('gain_over_baseline', float('nan')):+.4f}")
    for r in rows:
        print(f"  trial {r['trial']:2d}: {r['outcome']:<11} {r['epochs']} epochs, best val_cer "
              f"{r['val_cer'] if r['val_cer'] is not None else float('nan'):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60, help="max_minutes of each search")
    parser.add_argument("--max_evals", type=int, default=40, help="trial limit (the budget should end first)")
    parser.add_argument("--trial_epochs", type=int, default=5)
    parser.add_argument("--max_per_split", type=int, default=0, help="0 = the whole data set")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "dhsd"))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--store", default="/tmp/tune-budget", help="folder of the tracking store and logs")
    args = parser.parse_args()
    store = Path(args.store)
    store.mkdir(parents=True, exist_ok=True)
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    found = {prune: run_search(prune, args, store) for prune in ("true", "false")}
    tables = {prune: trials(client, run_id) for prune, run_id in found.items()}
    for prune, run_id in found.items():
        report(f"prune={prune}", client.get_run(run_id), tables[prune])
    done = {p: {r["config"]: r["val_cer"] for r in rows if r["outcome"] == "completed"} for p, rows in tables.items()}
    pairs = [(c, done["true"][c], done["false"][c]) for c in done["true"] if c in done["false"]]
    print(f"\nidentical configurations completed in both searches: {len(pairs)}")
    for config, a, b in pairs:
        print(f"  val_cer {a:.4f} vs {b:.4f}: |difference| {abs(a - b):.4f}")


if __name__ == "__main__":
    main()
