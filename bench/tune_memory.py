r"""Peak memory of ``tune`` against its number of trials: does a long search leak?

Runs ``entrypoints/tune.py`` in a fresh process per trial count (tiny trials: ``--max_per_split``
images per split, 1 epoch, default search space, nothing registered) in a throw-away tracking
store, and prints each run's peak resident memory (the largest of tune's process and its trial
processes) and the growth per extra trial.

    .venv/bin/python bench/tune_memory.py --trials 2,8 --max_per_split 64 \
        --data ../shared/data/dhsd [--isolate_trials false]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def peak_rss_of_tune(trials: int, args, store: Path) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of one ``tune`` process with ``trials`` trials."""
    command = [sys.executable, str(ROOT / "entrypoints" / "tune.py"), "--max_evals", str(trials),
               "--trial_epochs", "1", "--max_per_split", str(args.max_per_split), "--data", args.data,
               "--register", "false", "--seed", str(args.seed), "--isolate_trials", args.isolate_trials]
    env = os.environ | {"MLFLOW_TRACKING_URI": f"sqlite:///{store / f'tune{trials}.db'}"}
    started = time.perf_counter()
    log = store / f"tune{trials}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, cwd=store, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.stderr.write(log.read_text(errors="replace")[-4000:])
        raise SystemExit(f"tune with {trials} trials failed (exit {os.waitstatus_to_exitcode(status)})")
    return usage.ru_maxrss / 1024, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", default="2,8", help="comma-separated trial counts, one process each")
    parser.add_argument("--max_per_split", type=int, default=64, help="images per split in each trial")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "dhsd"))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--isolate_trials", default="true", choices=("true", "false"),
                        help="tune's isolate_trials: each trial in a child process (true) or in tune's own")
    args = parser.parse_args()
    counts = sorted(int(n) for n in args.trials.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        peaks = {}
        for count in counts:
            peaks[count], wall = peak_rss_of_tune(count, args, Path(tmp))
            print(f"{count:3d} trials: peak RSS {peaks[count]:7.0f} MiB, {wall:6.1f} s wall", flush=True)
    if len(counts) > 1:
        first, last = counts[0], counts[-1]
        print(f"growth: {(peaks[last] - peaks[first]) / (last - first):.1f} MiB per extra trial")


if __name__ == "__main__":
    main()
