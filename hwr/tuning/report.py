"""What a ``tune`` search leaves to read: a table of all trials, which parameters mattered, a plot.

Knows nothing of MLflow or TensorFlow: it works on the result dicts the trials returned.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def trials_frame(results: list[dict], params: list[str], metric: str) -> pd.DataFrame:
    """One row per finished trial, in trial order.

    Args:
        results: the trials' result dicts (``trial``, ``status``, ``run_id``, ``loss``, ``val_cer``,
            ``test_cer``, ``test_wer``, ``best_epoch``, ``duration_s``, ``error``, ``params``).
        params: the searched parameter names (one column each).
        metric: the minimised metric; its column holds each trial's loss (NaN for failed trials).
    Returns:
        columns ``trial, run_id, status, outcome (completed, pruned, out_of_time, failed), <metric>, val_cer, test_cer, test_wer, best_epoch,
        duration_s, error`` and then one per parameter.
    """
    rows = []
    for res in sorted(results, key=lambda r: r["trial"]):
        row = {"trial": res["trial"], "run_id": res.get("run_id", ""), "status": res["status"],
               "outcome": res.get("outcome", "completed" if res["status"] == "ok" else "failed")}
        for key in ("val_cer", "test_cer", "test_wer", "best_epoch", "duration_s"):
            row[key] = res.get(key, np.nan)
        row[metric] = res.get("loss", np.nan)  # the minimised value (== val_cer for metric=val_cer)
        row["error"] = res.get("error", "")
        row.update({name: res.get("params", {}).get(name) for name in params})
        rows.append(row)
    columns = ["trial", "run_id", "status", "outcome", metric, "val_cer", "test_cer", "test_wer", "best_epoch",
               "duration_s", "error", *params]
    return pd.DataFrame(rows, columns=list(dict.fromkeys(columns)))


def influence(frame: pd.DataFrame, params: list[str], metric: str) -> pd.Series:
    """How strongly each parameter goes with the metric over the successful trials, in [0, 1].

    Numeric parameters: absolute Spearman rank correlation. Categorical ones (strings): the
    correlation ratio (share of the metric's spread explained by the category means).
    Parameters with a single value (or fewer than three successful trials) score 0.
    Returns the scores sorted from most to least influential.
    """
    ok = frame[frame["status"] == "ok"].dropna(subset=[metric])
    scores = {}
    for name in params:
        values = ok[name]
        if len(ok) < 3 or values.nunique() < 2 or ok[metric].nunique() < 2:
            scores[name] = 0.0
        elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            scores[name] = abs(float(values.astype(float).corr(ok[metric], method="spearman")))
        else:
            y = ok[metric].astype(float)
            means = y.groupby(values.astype(str)).transform("mean")
            scores[name] = float(np.sqrt(((means - y.mean()) ** 2).sum() / ((y - y.mean()) ** 2).sum()))
    return pd.Series(scores, dtype=float).fillna(0.0).sort_values(ascending=False)


def plot_trials(frame: pd.DataFrame, params: list[str], metric: str, out: Path, top: int = 3) -> Path:
    """A PNG: the metric per trial with the best so far, and the metric against the ``top`` most
    influential parameters (failed trials drawn as red crosses at the top of the axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    ranked = [p for p, s in influence(frame, params, metric).items() if s > 0][:top]
    ok = frame[frame["status"] == "ok"]
    failed = frame[frame["status"] != "ok"]
    fig, axes = plt.subplots(1, 1 + len(ranked), figsize=(5 * (1 + len(ranked)), 4), squeeze=False)
    ax = axes[0][0]
    ax.plot(ok["trial"], ok[metric], "o", label=metric)
    best = frame[metric].where(frame["status"] == "ok").cummin().ffill()
    ax.step(frame["trial"], best, where="post", color="tab:green", label="best so far")
    top_y = np.nanmax(ok[metric]) if len(ok) else 1.0
    if len(failed):
        ax.plot(failed["trial"], [top_y] * len(failed), "x", color="tab:red", label="failed")
    ax.set(xlabel="trial", ylabel=metric, title=f"{metric} per trial (lower is better)")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.legend()
    scores = influence(frame, params, metric)
    for ax, name in zip(axes[0][1:], ranked):
        values = ok[name]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            ax.plot(values.astype(float), ok[metric], "o")
            if name == "lr":
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        else:
            cats = sorted(values.astype(str).unique())
            ax.plot([cats.index(v) for v in values.astype(str)], ok[metric], "o")
            ax.set_xticks(range(len(cats)), cats)
        ax.set(xlabel=name, ylabel=metric, title=f"{metric} vs {name} (influence {scores[name]:.2f})")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
