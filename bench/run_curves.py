"""Finished ``train`` runs side by side: their val CER curves against wall minutes, how calm each
curve is, and their test figures, read back from the tracking store with ``MlflowClient``.

    MLFLOW_TRACKING_URI=sqlite:///mlflow.db .venv/bin/python bench/run_curves.py RUN_ID [RUN_ID ...]
        [--png docs/run_curves.png] [--jump 0.5] [--names NAME ...]

Prints per run: the parameters in which the runs differ, epochs, the best ``val_cer`` and its epoch,
the val CER's standard deviation over each third of the run's minutes and the number of epochs
after minute 2 whose val CER is above ``--jump`` (a curve that jumps misleads a short trial or an
early stop), and every ``test_*`` metric the run logged. The curves go to ``--png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from mlflow.tracking import MlflowClient


def curve(client: MlflowClient, run_id: str) -> np.ndarray:
    """``(epochs, 2)`` float64: wall minutes since training began (metric ``elapsed_s``) and
    ``val_cer``, per epoch."""
    minutes = {m.step: m.value / 60 for m in client.get_metric_history(run_id, "elapsed_s")}
    return np.array([(minutes[m.step], m.value) for m in client.get_metric_history(run_id, "val_cer")
                     if m.step in minutes])


def calmness(points: np.ndarray, jump: float) -> tuple[list[float], int]:
    """The val CER's standard deviation over each third of the run's minutes, and the epochs after
    minute 2 above ``jump``."""
    end = points[-1, 0]
    thirds = [points[(points[:, 0] > end * i / 3) & (points[:, 0] <= end * (i + 1) / 3), 1] for i in range(3)]
    jumps = int(np.sum(points[points[:, 0] > 2, 1] > jump))
    return [float(np.std(t)) if len(t) else float("nan") for t in thirds], jumps


def label(params: dict, differing: list[str]) -> str:
    return " ".join(f"{k}={params.get(k, '(not logged)')}" for k in differing) or "run"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run ids of finished train runs")
    parser.add_argument("--png", type=Path, default=Path("docs/run_curves.png"), help="where the curves go")
    parser.add_argument("--jump", type=float, default=0.5, help="a val CER above this after minute 2 is a jump")
    parser.add_argument("--names", nargs="+", help="one name per run for the table and the legend (default: the "
                                                    "parameters in which the runs differ)")
    args = parser.parse_args()
    if args.names and len(args.names) != len(args.runs):
        parser.error(f"--names: {len(args.names)} names for {len(args.runs)} runs")
    client = MlflowClient()
    runs = [client.get_run(r) for r in args.runs]
    keys = sorted(set().union(*(r.data.params for r in runs)))
    differing = [k for k in keys if len({r.data.params.get(k) for r in runs}) > 1 and k != "resume_run_id"]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for i, run in enumerate(runs):
        points, metrics = curve(client, run.info.run_id), run.data.metrics
        if not len(points):
            raise SystemExit(f"run {run.info.run_id}: no val_cer and elapsed_s per epoch (not a train run?)")
        sds, jumps = calmness(points, args.jump)
        name = args.names[i] if args.names else label(run.data.params, differing)
        best = int(np.argmin(points[:, 1]))
        print(f"{run.info.run_id[:8]} {name}: {len(points)} epochs in {points[-1, 0]:.1f} min, best val_cer "
              f"{points[best, 1]:.4f} at epoch {best + 1}; val CER s.d. by thirds "
              f"{' / '.join(f'{s:.3f}' for s in sds)}; epochs above {args.jump} after minute 2: {jumps}")
        print("    " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()) if k.startswith("test_")))
        ax.plot(points[:, 0], points[:, 1], label=name, lw=1)
    ax.set(xlabel="wall minutes of training", ylabel="val CER", ylim=(0, 1), title="val CER per epoch")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.png, dpi=110)
    print(f"curves: {args.png}")


if __name__ == "__main__":
    main()
