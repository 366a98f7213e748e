"""The evaluation report of ``predict``: PNG figures (matplotlib, Agg backend) and one HTML page
tying them to the summary table. With several models every figure compares them side by side.

Input: prediction tables as written by :mod:`hwr.prediction.predict` (columns ``image``, ``path``,
``prediction``, ``confidence``, ``error`` and, with labels, ``truth``, ``edit_distance``, ``cer``).
Knows nothing of MLflow: the caller logs the folder.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from hwr.data.images import load_image  # noqa: E402
from hwr.evaluation.scoring import confusions  # noqa: E402

GALLERY_SIZE = 20
TOP_CONFUSIONS = 15
CAPTIONS = {
    "cer_distribution": "Per-sample CER (edit distance / truth length). A tall bar at 0 means many exact matches.",
    "cer_by_length": "Corpus CER by length of the true label (bar: number of samples, right axis of the first model).",
    "confusions": "Most frequent character edits from truth to prediction: a→b substitution, a→∅ deletion "
                  "(a missing), ∅→b insertion (b extra); ␣ is a space.",
    "confidence": "Model confidence (mean per-character probability) of readable images.",
    "worst": "The worst samples (highest CER; without labels: lowest confidence): image, truth and prediction.",
}


def _ok(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["error"] == ""]


def _subplots(n: int, width: float = 5.0, height: float = 3.6):
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False, sharey=True)
    return fig, axes[0]


def _save(fig, path: Path, top: float = 1.0) -> Path:
    fig.tight_layout(rect=(0, 0, 1, top))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_cer_distribution(frames: dict[str, pd.DataFrame], path: Path) -> Path:
    """Histogram of per-sample CER, one panel per model (CER above 1 is clipped into the last bin)."""
    fig, axes = _subplots(len(frames))
    bins = np.linspace(0, 1, 21)
    for ax, (label, frame) in zip(axes, frames.items()):
        cer = np.clip(_ok(frame)["cer"].to_numpy(float), 0, 1)
        ax.hist(cer, bins=bins, color="tab:blue")
        ax.set(title=f"{label}\nmean {cer.mean():.3f}" if len(cer) else label, xlabel="per-sample CER")
    axes[0].set_ylabel("samples")
    return _save(fig, path)


def plot_cer_by_length(frames: dict[str, pd.DataFrame], path: Path) -> Path:
    """Corpus CER per label-length bin, one line per model, and the sample count per bin."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    counts = None
    for label, frame in frames.items():
        ok = _ok(frame)
        length = ok["truth"].str.len()
        bins = min(12, max(1, length.nunique()))
        group = pd.cut(length, bins=bins) if length.nunique() > 12 else length
        grouped = ok.assign(n=length).groupby(group, observed=True)
        cer = grouped["edit_distance"].sum().astype(float) / grouped["n"].sum()
        names = [str(i) if not hasattr(i, "left") else f"{int(i.left) + 1}-{int(i.right)}" for i in cer.index]
        ax.plot(names, cer.to_numpy(), marker="o", label=label)
        counts = (names, grouped.size().to_numpy()) if counts is None else counts
    ax.set(xlabel="label length (characters)", ylabel="CER")
    ax.tick_params(axis="x", rotation=45)
    if counts is not None:
        twin = ax.twinx()
        twin.bar(counts[0], counts[1], alpha=0.15, color="gray")
        twin.set_ylabel("samples")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _edit_name(row) -> str:
    show = lambda ch: "∅" if ch == "" else ("␣" if ch == " " else ch)  # noqa: E731
    return f"{show(row.truth)}→{show(row.predicted)}"


def plot_confusions(frames: dict[str, pd.DataFrame], path: Path) -> Path:
    """Horizontal bars of the ``TOP_CONFUSIONS`` most frequent edits, one panel per model."""
    fig, axes = plt.subplots(1, len(frames), figsize=(4.5 * len(frames), 5), squeeze=False)
    colors = {"substitution": "tab:blue", "deletion": "tab:red", "insertion": "tab:green"}
    for ax, (label, frame) in zip(axes[0], frames.items()):
        ok = _ok(frame)
        top = confusions(ok["truth"], ok["prediction"]).head(TOP_CONFUSIONS)[::-1]
        ax.barh([_edit_name(r) for r in top.itertuples()], top["count"], color=[colors[k] for k in top["kind"]])
        ax.set(title=label, xlabel="count")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colors.values()]
    fig.legend(handles, list(colors), loc="upper center", ncol=3, fontsize=8)
    return _save(fig, path, top=0.94)


def plot_confidence(frames: dict[str, pd.DataFrame], path: Path) -> Path:
    """Histogram of confidences, one panel per model."""
    fig, axes = _subplots(len(frames))
    for ax, (label, frame) in zip(axes, frames.items()):
        ax.hist(_ok(frame)["confidence"].to_numpy(float), bins=np.linspace(0, 1, 21), color="tab:purple")
        ax.set(title=label, xlabel="confidence")
    axes[0].set_ylabel("samples")
    return _save(fig, path)


def worst_samples(frame: pd.DataFrame, n: int = GALLERY_SIZE) -> pd.DataFrame:
    """The ``n`` readable rows with the highest CER (ties: lowest confidence); without labels the
    ``n`` least confident."""
    ok = _ok(frame)
    if "cer" in ok:
        return ok.sort_values(["cer", "confidence"], ascending=[False, True], kind="stable").head(n)
    return ok.sort_values("confidence", kind="stable").head(n)


def plot_gallery(frame: pd.DataFrame, label: str, path: Path) -> Path:
    """One row per worst sample: the image, then truth / prediction / CER in its title."""
    rows = worst_samples(frame)
    fig, axes = plt.subplots(max(1, len(rows)), 1, figsize=(7, 1.1 * max(1, len(rows))), squeeze=False)
    for ax, r in zip(axes[:, 0], rows.itertuples()):
        try:
            ax.imshow(load_image(r.path), cmap="gray", vmin=0, vmax=255, aspect="equal")
            ax.set_anchor("W")
        except (OSError, ValueError):
            pass
        text = f"pred: {r.prediction!r}  conf {r.confidence:.2f}"
        if hasattr(r, "truth"):
            text = f"truth: {r.truth!r}  {text}  CER {r.cer:.2f}"
        ax.set_title(text, fontsize=8, loc="left")
        ax.set_axis_off()
    for ax in axes[len(rows):, 0]:
        ax.set_axis_off()
    fig.suptitle(f"{label}: worst {len(rows)}", fontsize=9)
    return _save(fig, path, top=1 - 0.3 / fig.get_figheight())


def _img_tag(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(path.stem)}" style="max-width:100%">'


def render_html(title: str, summary: pd.DataFrame, figures: list[tuple[str, list[Path]]]) -> str:
    """A self-contained page (figures embedded as base64 PNG), so it renders in MLflow's artifact view."""
    table = summary.set_index("model").T.to_html(float_format=lambda v: f"{v:.4f}", border=0)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
             "td,th{padding:2px 10px;text-align:right;border-bottom:1px solid #ddd}"
             ".row{display:flex;gap:1em;flex-wrap:wrap}</style></head><body>",
             f"<h1>{html.escape(title)}</h1><h2>Summary</h2>{table}",
             "<p>cer / wer: corpus character / word error rate; mean_sample_cer with its 95 % bootstrap "
             "interval; exact_match / off_by_one: share of samples at edit distance 0 / 1; lexicon_*: the "
             "same after lexicon correction; n_unreadable: images that could not be read.</p>"]
    for key, paths in figures:
        parts.append(f"<h2>{key.replace('_', ' ')}</h2><p>{html.escape(CAPTIONS[key])}</p><div class='row'>")
        parts += [f"<div>{_img_tag(p)}</div>" for p in paths]
        parts.append("</div>")
    return "\n".join(parts + ["</body></html>"])


def write_report(frames: dict[str, pd.DataFrame], summary: pd.DataFrame, out_dir: str | Path,
                 title: str) -> list[Path]:
    """Write the figures, ``summary.csv`` and ``report.html`` into ``out_dir`` (created).

    Args:
        frames: prediction table per model label (one entry: a single-model report).
        summary: one row per model, column ``model`` plus metric columns.

    Returns:
        The files written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labelled = all("cer" in f for f in frames.values())
    figures: list[tuple[str, list[Path]]] = []
    if labelled:
        figures.append(("cer_distribution", [plot_cer_distribution(frames, out / "cer_distribution.png")]))
        figures.append(("cer_by_length", [plot_cer_by_length(frames, out / "cer_by_length.png")]))
        figures.append(("confusions", [plot_confusions(frames, out / "confusions.png")]))
    figures.append(("confidence", [plot_confidence(frames, out / "confidence.png")]))
    figures.append(("worst", [plot_gallery(f, label, out / f"worst_{label}.png") for label, f in frames.items()]))
    summary.to_csv(out / "summary.csv", index=False)
    (out / "report.html").write_text(render_html(title, summary, figures), encoding="utf-8")
    return [p for _, paths in figures for p in paths] + [out / "summary.csv", out / "report.html"]
