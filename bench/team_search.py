r"""A 4-trial search against the team server: Spark ``local[2]`` (two trials as threads of one
driver process) against the standalone cluster of ``make spark`` (two workers of one core), on an
``s3://`` copy of the data; optionally a worker killed in the middle of the cluster search.

Needs the stack up and its exports set (``make server``, ``make spark``, then the printed
``export`` lines). Uploads ``--data`` (its labels CSV and the images it names) to
``s3://hwr-bench/<name>`` once, then runs ``mlflow run . -e tune`` per master, one after the other,
and prints per search: wall time, trial outcomes (from the tracking server) and the best
``val_cer``. With ``--kill-worker-after S`` the cluster search loses worker 1 (its daemon and every
process under it, as if its machine died) S seconds after it starts.

    .venv/bin/python bench/team_search.py --max-per-split 300 --trial-epochs 2
    .venv/bin/python bench/team_search.py --masters spark://127.0.0.1:7077 --kill-worker-after 90
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "hwr-bench"


def upload(data: Path, name: str) -> str:
    """Copy ``data``'s labels.csv and the images it names to s3://hwr-bench/<name> (skipped when
    the CSV is there already); returns the URI."""
    from hwr.data.remote import s3_client

    s3 = s3_client()
    if BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=BUCKET)
    if s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{name}/labels.csv").get("KeyCount"):
        return f"s3://{BUCKET}/{name}"
    images = pd.read_csv(data / "labels.csv", dtype=str, keep_default_na=False)["image"]
    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: s3.upload_file(str(data / i), BUCKET, f"{name}/{i}"), images))
    s3.upload_file(str(data / "labels.csv"), BUCKET, f"{name}/labels.csv")
    print(f"uploaded {len(images)} images to s3://{BUCKET}/{name} in {time.monotonic() - started:.0f} s", flush=True)
    return f"s3://{BUCKET}/{name}"


def kill_worker(after: float, state: Path) -> None:
    """SIGKILL worker 1 of ``make spark`` and all its descendants after ``after`` seconds."""
    time.sleep(after)
    pid = int((state / "spark" / "worker1.pid").read_text())
    tree = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    grandchildren = [c for p in tree for c in subprocess.run(["pgrep", "-P", p], capture_output=True,
                                                             text=True).stdout.split()]
    for victim in [pid, *tree, *grandchildren]:
        try:
            os.kill(int(victim), signal.SIGKILL)
        except ProcessLookupError:
            pass
    print(f"killed worker 1 (pid {pid}) and {len(tree) + len(grandchildren)} processes under it "
          f"at {after:.0f} s", flush=True)


def search(master: str, uri: str, args) -> dict:
    """One ``mlflow run . -e tune`` on ``master``; returns its wall time, parent run and trials."""
    from mlflow import MlflowClient

    experiment = f"team-search-{'cluster' if master.startswith('spark://') else 'local'}"
    command = [str(Path(sys.executable).parent / "mlflow"), "run", ".", "-e", "tune", "--env-manager", "local",
               "--experiment-name", experiment, "-P", f"data={uri}", "-P", "backend=spark",
               "-P", f"spark_master={master}", "-P", "parallelism=2", "-P", f"max_evals={args.max_evals}",
               "-P", f"trial_epochs={args.trial_epochs}", "-P", f"max_per_split={args.max_per_split}",
               "-P", "register=false", "-P", "baseline_trial=false", "-P", "prune=false"]
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    killer = None
    if args.kill_worker_after and master.startswith("spark://"):
        killer = threading.Thread(target=kill_worker, args=(args.kill_worker_after, args.stack_dir), daemon=True)
        killer.start()
    started = time.monotonic()
    with open(args.log_dir / f"{experiment}.log", "wb") as log:
        code = subprocess.call(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    wall = time.monotonic() - started
    client = MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"], max_results=50)
    parent = next(r for r in runs if r.data.tags.get("hwr.verb") == "tune")
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return {"master": master, "exit": code, "wall_s": wall, "parent": parent, "trials": trials}


def report(result: dict) -> None:
    trials, parent = result["trials"], result["parent"]
    outcomes = pd.Series([f"{t.info.status}/{t.data.tags.get('hwr.trial_outcome', '-')}" for t in trials])
    print(f"{result['master']:28s} exit {result['exit']}  wall {result['wall_s'] / 60:5.1f} min  "
          f"parent {parent.info.status}  trial runs {len(trials)}: {({k: int(v) for k, v in outcomes.value_counts().items()})}  "
          f"best val_cer {parent.data.metrics.get('best_val_cer', float('nan')):.3f}  "
          f"stop: {parent.data.tags.get('hwr.search_stop', '')}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "dhsd")
    parser.add_argument("--masters", default="local[2],spark://127.0.0.1:7077", help="comma-separated")
    parser.add_argument("--max-evals", type=int, default=4)
    parser.add_argument("--trial-epochs", type=int, default=2)
    parser.add_argument("--max-per-split", type=int, default=300)
    parser.add_argument("--kill-worker-after", type=float, default=0.0, help="seconds; 0 = no kill")
    parser.add_argument("--stack-dir", type=Path, default=Path(os.environ.get("HWR_STACK_DIR", ROOT / ".stack")))
    parser.add_argument("--log-dir", type=Path, default=Path("/tmp"))
    args = parser.parse_args()
    if not os.environ.get("MLFLOW_TRACKING_URI", "").startswith("http"):
        sys.exit("set the exports `make server` prints first (MLFLOW_TRACKING_URI=http://..., AWS_*)")
    uri = upload(args.data, args.data.name)
    for master in args.masters.split(","):
        report(search(master.strip(), uri, args))


if __name__ == "__main__":
    main()
