r"""Does a killed and resumed `train` end where an uninterrupted one does?

For each seed, one after the other (never at once: 2 cores): an uninterrupted ``train``, and the
same ``train`` SIGKILLed as soon as its checkpoint of epoch ``--kill-after`` is logged, then resumed
with ``resume_run_id``. Prints per seed both runs' ``test_cer``, ``best_val_cer`` and best epoch and
their difference, then the spread of the uninterrupted runs over the seeds: the noise a difference
has to be compared with. A resumed run reseeds its data order (``seed + epoch``), so it is not the
same computation as the uninterrupted one, only the same recipe.

    .venv/bin/python bench/resume_noise.py --seeds 1 2 3 --epochs 8 --kill-after 4 --max-per-split 400
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def command(args, seed: int) -> list[str]:
    return [sys.executable, "-m", "entrypoints.train", "--data", args.data, "--epochs", str(args.epochs),
            "--patience", "0", "--seed", str(seed), "--max_per_split", str(args.max_per_split),
            "--register", "false", "--system_metrics", "false"]


def checkpoint_epoch(store: Path, experiment: str) -> int:
    """The newest checkpoint epoch of the experiment's run in a local store (0 when none)."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    found = client.get_experiment_by_name(experiment) if (store / "mlflow.db").exists() else None
    for run in client.search_runs([found.experiment_id]) if found else []:
        for path in Path(run.info.artifact_uri.removeprefix("file://")).glob("checkpoint/state.json"):
            try:
                return json.loads(path.read_text())["epoch"]
            except (json.JSONDecodeError, OSError):
                return 0
    return 0


def train(args, seed: int, store: Path, kill_after: int = 0) -> dict:
    """One run (killed after ``kill_after`` epochs and resumed, when > 0); its final metrics."""
    from mlflow import MlflowClient

    experiment = f"seed{seed}-{'resumed' if kill_after else 'plain'}"
    env = os.environ | {"MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}", "MLFLOW_EXPERIMENT_NAME": experiment}
    started = time.monotonic()
    with (store / f"{experiment}.log").open("wb") as log:
        process = subprocess.Popen(command(args, seed), cwd=store, env=env | {"PYTHONPATH": str(ROOT)},
                                   stdout=log, stderr=subprocess.STDOUT)
        while kill_after and process.poll() is None and checkpoint_epoch(store, experiment) < kill_after:
            time.sleep(0.5)
        if kill_after:
            process.send_signal(signal.SIGKILL)
        process.wait()
        client = MlflowClient(env["MLFLOW_TRACKING_URI"])
        (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
        killed_at = checkpoint_epoch(store, experiment) if kill_after else 0
        if kill_after:
            subprocess.run(command(args, seed) + ["--resume_run_id", run.info.run_id], cwd=store,
                           env=env | {"PYTHONPATH": str(ROOT)}, stdout=log, stderr=subprocess.STDOUT, check=True)
        run = client.get_run(run.info.run_id)
    metrics = run.data.metrics
    return {"test_cer": metrics["test_cer"], "best_val_cer": metrics["best_val_cer"],
            "best_epoch": int(metrics["best_epoch"]), "killed_at": killed_at, "status": run.info.status,
            "wall_s": time.monotonic() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "dhsd"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--kill-after", type=int, default=4, help="SIGKILL once this epoch's checkpoint is logged")
    parser.add_argument("--max-per-split", type=int, default=400)
    parser.add_argument("--store", type=Path, default=None, help="tracking store folder (default: a temp folder)")
    args = parser.parse_args()
    store = args.store or Path(tempfile.mkdtemp(prefix="resume-noise-"))
    store.mkdir(parents=True, exist_ok=True)
    print(f"train --epochs {args.epochs} --max_per_split {args.max_per_split}, killed after epoch "
          f"{args.kill_after} and resumed; store {store}", flush=True)
    print(f"{'seed':>4} {'plain test_cer':>15} {'resumed test_cer':>17} {'diff':>8} {'plain best':>11} "
          f"{'resumed best':>13} {'killed at':>9}", flush=True)
    plain_cers, diffs = [], []
    for seed in args.seeds:
        plain = train(args, seed, store)
        resumed = train(args, seed, store, args.kill_after)
        diff = resumed["test_cer"] - plain["test_cer"]
        plain_cers.append(plain["test_cer"])
        diffs.append(diff)
        print(f"{seed:>4} {plain['test_cer']:>15.4f} {resumed['test_cer']:>17.4f} {diff:>+8.4f} "
              f"{plain['best_val_cer']:>6.4f}@{plain['best_epoch']:<4} {resumed['best_val_cer']:>8.4f}@"
              f"{resumed['best_epoch']:<4} {resumed['killed_at']:>9}", flush=True)
    spread = statistics.stdev(plain_cers) if len(plain_cers) > 1 else float("nan")
    print(f"mean |resumed - plain| test_cer: {statistics.mean(abs(d) for d in diffs):.4f}; "
          f"seed-to-seed std of the plain runs' test_cer: {spread:.4f}", flush=True)


if __name__ == "__main__":
    main()
