"""Evaluation of transcriptions against ground truth: per-sample scores, summary metrics with a
confidence interval, and character confusions from Levenshtein edit operations (rapidfuzz).

Pure functions over strings and DataFrames: no model, no MLflow. Texts are compared in Unicode NFC
(:func:`hwr.evaluation.metrics.nfc`).
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from typing import Sequence

import numpy as np
import pandas as pd
from rapidfuzz.distance import Levenshtein

from hwr.evaluation import metrics
from hwr.evaluation.metrics import nfc

BOOTSTRAP_SAMPLES = 1000


def per_sample(truths: Sequence[str], predictions: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Edit distance and CER of each pair.

    Returns:
        ``(n,)`` int64 Levenshtein distances and ``(n,)`` float64 CERs
        (distance / reference length; an empty reference counts as length 1).
    """
    truths = [nfc(t) for t in truths]
    dist = np.array([Levenshtein.distance(t, nfc(p)) for t, p in zip(truths, predictions)], np.int64)
    lengths = np.maximum(1, np.array([len(t) for t in truths], np.int64))
    return dist, dist / lengths


def mean_ci(values: np.ndarray, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``values`` and its percentile-bootstrap confidence interval.

    ``BOOTSTRAP_SAMPLES`` resamples with replacement (seeded), drawn in chunks so memory stays
    small for large ``values``. Returns ``(mean, low, high)``; NaNs for an empty input.
    """
    values = np.asarray(values, np.float64)
    if not len(values):
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    chunk = max(1, min(BOOTSTRAP_SAMPLES, 2_000_000 // len(values)))
    means = []
    for start in range(0, BOOTSTRAP_SAMPLES, chunk):
        idx = rng.integers(0, len(values), (min(chunk, BOOTSTRAP_SAMPLES - start), len(values)))
        means.append(values[idx].mean(axis=1))
    means = np.concatenate(means)
    alpha = (1.0 - level) / 2.0
    return float(values.mean()), float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def paired_cer_difference(truths: Sequence[str], predictions_a: Sequence[str], predictions_b: Sequence[str],
                          level: float = 0.95, resamples: int = BOOTSTRAP_SAMPLES,
                          seed: int = 0) -> tuple[float, float, float]:
    """Corpus CER of ``predictions_a`` minus that of ``predictions_b`` on the same samples, with a
    paired percentile-bootstrap confidence interval: samples are drawn with replacement *together*
    (the same images for both), and each draw's corpus CERs are recomputed (Koehn, "Statistical
    Significance Tests for Machine Translation Evaluation", EMNLP 2004; SciPy's
    ``scipy.stats.bootstrap`` with ``paired=True``).

    Returns:
        ``(difference, low, high)``; a negative ``high`` means a is better (lower CER) over the
        whole interval. All equal (e.g. the same predictions) gives a zero-width interval.
    Raises:
        ValueError: the three sequences differ in length, or are empty.
    """
    from scipy.stats import bootstrap

    truths, predictions_a, predictions_b = list(truths), list(predictions_a), list(predictions_b)
    if not (len(truths) == len(predictions_a) == len(predictions_b)) or not truths:
        raise ValueError(f"need equally many truths and predictions, at least one: {len(truths)}, "
                         f"{len(predictions_a)}, {len(predictions_b)}")
    edits_a, _ = per_sample(truths, predictions_a)
    edits_b, _ = per_sample(truths, predictions_b)
    lengths = np.array([len(nfc(t)) for t in truths], np.float64)

    def difference(a, b, n, axis=-1):
        return (a.sum(axis=axis) - b.sum(axis=axis)) / np.maximum(n.sum(axis=axis), 1.0)

    observed = float(difference(edits_a, edits_b, lengths))
    if np.array_equal(edits_a, edits_b):
        return observed, observed, observed
    result = bootstrap((edits_a.astype(np.float64), edits_b.astype(np.float64), lengths), difference, paired=True,
                       vectorized=True, n_resamples=resamples, confidence_level=level, method="percentile",
                       rng=np.random.default_rng(seed))
    return observed, float(result.confidence_interval.low), float(result.confidence_interval.high)


def strip_punctuation(text: str) -> str:
    """``text`` without Unicode punctuation (categories P*), spaces collapsed."""
    kept = "".join(ch for ch in text if not unicodedata.category(ch).startswith("P"))
    return " ".join(kept.split())


def summary_metrics(truths: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
    """Metrics of one set of predictions (only rows that have both, no unreadable images).

    Keys: ``n_evaluated``; ``cer``, ``wer`` (corpus level, :mod:`hwr.evaluation.metrics`);
    ``mean_sample_cer`` with ``mean_sample_cer_ci_low`` / ``_ci_high`` (95 % bootstrap CI);
    ``cer_case_insensitive`` (both sides casefolded); ``cer_no_punct`` (punctuation removed from
    both); ``exact_match`` and ``off_by_one`` (fraction of samples at edit distance 0 and 1).
    """
    truths, predictions = [nfc(t) for t in truths], [nfc(p) for p in predictions]
    if not truths:
        return {"n_evaluated": 0}
    dist, sample_cer = per_sample(truths, predictions)
    mean, low, high = mean_ci(sample_cer)
    return {
        "n_evaluated": len(truths),
        "cer": metrics.cer(truths, predictions),
        "wer": metrics.wer(truths, predictions),
        "mean_sample_cer": mean, "mean_sample_cer_ci_low": low, "mean_sample_cer_ci_high": high,
        "cer_case_insensitive": metrics.cer([t.casefold() for t in truths], [p.casefold() for p in predictions]),
        "cer_no_punct": metrics.cer([strip_punctuation(t) for t in truths],
                                    [strip_punctuation(p) for p in predictions]),
        "exact_match": float(np.mean(dist == 0)),
        "off_by_one": float(np.mean(dist == 1)),
    }


def confusions(truths: Sequence[str], predictions: Sequence[str]) -> pd.DataFrame:
    """Count the character edits that turn each truth into its prediction.

    Returns:
        DataFrame ``kind`` (``substitution``, ``deletion``: a true character missing,
        ``insertion``: an extra predicted one), ``truth``, ``predicted`` (``""`` where none),
        ``count``; most frequent first.
    """
    counts: Counter = Counter()
    for truth, pred in zip(truths, predictions):
        truth, pred = nfc(truth), nfc(pred)
        for op in Levenshtein.editops(truth, pred):
            if op.tag == "replace":
                counts[("substitution", truth[op.src_pos], pred[op.dest_pos])] += 1
            elif op.tag == "delete":
                counts[("deletion", truth[op.src_pos], "")] += 1
            else:
                counts[("insertion", "", pred[op.dest_pos])] += 1
    rows = [(k, t, p, n) for (k, t, p), n in counts.most_common()]
    return pd.DataFrame(rows, columns=["kind", "truth", "predicted", "count"])
