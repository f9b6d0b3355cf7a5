"""Hold-out metrics with seeded bootstrap confidence intervals, and plot data.

Scores are fraud scores in [0, 1] and labels are 0/1 integers. A transaction counts as
flagged at a threshold when its score is at least that threshold.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

logger = logging.getLogger(__name__)

Metric = Callable[[np.ndarray, np.ndarray], float]

CONFIDENCE = 0.95
CURVE_POINTS = 300
UNLABELLED_SCENARIO = "unlabelled"


class EvaluationError(ValueError):
    """The hold-out rows cannot be evaluated."""


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Return the average precision (area under the step precision-recall curve)."""
    return float(average_precision_score(labels, scores))


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Return the area under the ROC curve."""
    return float(roc_auc_score(labels, scores))


def brier_score(labels: np.ndarray, scores: np.ndarray) -> float:
    """Return the mean squared difference between score and label."""
    return float(brier_score_loss(labels, scores))


def precision_at(labels: np.ndarray, scores: np.ndarray, *, threshold: float) -> float:
    """Return the share of frauds among rows scored at least ``threshold``.

    Returns 0.0 when no row reaches the threshold.
    """
    flagged = scores >= threshold
    count = int(flagged.sum())
    return float(labels[flagged].sum()) / count if count else 0.0


def recall_at(labels: np.ndarray, scores: np.ndarray, *, threshold: float) -> float:
    """Return the share of frauds scored at least ``threshold``; 0.0 without frauds."""
    frauds = int(labels.sum())
    return float(labels[scores >= threshold].sum()) / frauds if frauds else 0.0


def operating_metrics(thresholds: dict[str, float]) -> dict[str, Metric]:
    """Return every reported metric by name, with the thresholds bound in."""

    def at(function: Callable[..., float], threshold: float) -> Metric:
        return lambda labels, scores: function(labels, scores, threshold=threshold)

    return {
        "average_precision": average_precision,
        "roc_auc": roc_auc,
        "brier_score": brier_score,
        "precision_at_review": at(precision_at, thresholds["review"]),
        "recall_at_review": at(recall_at, thresholds["review"]),
        "precision_at_decline": at(precision_at, thresholds["decline"]),
        "recall_at_decline": at(recall_at, thresholds["decline"]),
    }


def check_both_classes(labels: np.ndarray) -> None:
    """Raise :class:`EvaluationError` unless ``labels`` contains both 0 and 1."""
    frauds = int(labels.sum())
    if frauds == 0 or frauds == labels.size:
        raise EvaluationError(
            f"the test rows contain {frauds} frauds in {labels.size} rows; ranking "
            "metrics need both classes, so widen the test window (train.test_days)"
        )


def bootstrap_intervals(
    labels: np.ndarray,
    scores: np.ndarray,
    metrics: dict[str, Metric],
    *,
    rounds: int,
    seed: int,
    confidence: float = CONFIDENCE,
) -> dict[str, tuple[float, float]]:
    """Return percentile bootstrap confidence intervals for several metrics.

    Every round draws one resample of the rows with replacement and evaluates all
    metrics on it. A resample with a single class is redrawn in a later round, so
    fewer than ``rounds`` resamples count when frauds are very rare.

    Args:
        labels: 0/1 labels, shape (rows,).
        scores: Fraud scores, shape (rows,).
        metrics: Metric functions by name.
        rounds: Number of resamples drawn; 0 returns an empty dict.
        seed: Seed of the resampling; the same seed gives the same intervals.
        confidence: Coverage of the two-sided interval.

    Returns:
        ``{name: (low, high)}``, the metric's lower and upper percentiles.
    """
    if rounds == 0:
        return {}
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {name: [] for name in metrics}
    for _ in range(rounds):
        rows = rng.integers(0, labels.size, size=labels.size)
        resampled_labels = labels[rows]
        frauds = int(resampled_labels.sum())
        if frauds == 0 or frauds == labels.size:
            continue
        for name, metric in metrics.items():
            samples[name].append(metric(resampled_labels, scores[rows]))
    used = len(next(iter(samples.values()), []))
    if used == 0:
        raise EvaluationError(
            f"all {rounds} bootstrap resamples held a single class; the test rows have "
            "too few frauds, so widen the test window"
        )
    tail = (1.0 - confidence) / 2.0 * 100.0
    return {
        name: (
            float(np.percentile(values, tail)),
            float(np.percentile(values, 100.0 - tail)),
        )
        for name, values in samples.items()
    }


def evaluate_scores(
    labels: np.ndarray,
    scores: np.ndarray,
    *,
    thresholds: dict[str, float],
    rounds: int,
    seed: int,
) -> dict[str, Any]:
    """Return every metric with its bootstrap interval and the row counts.

    Returns:
        ``{"rows": int, "frauds": int, "alert_rate": float, "<metric>": {"value",
        "ci_low", "ci_high"}}``; the interval keys are absent when ``rounds`` is 0.

    Raises:
        EvaluationError: The rows lack one of the two classes.
    """
    check_both_classes(labels)
    metrics = operating_metrics(thresholds)
    intervals = bootstrap_intervals(labels, scores, metrics, rounds=rounds, seed=seed)
    report: dict[str, Any] = {
        "rows": int(labels.size),
        "frauds": int(labels.sum()),
        "alert_rate": float((scores >= thresholds["review"]).mean()),
    }
    for name, metric in metrics.items():
        entry = {"value": metric(labels, scores)}
        if name in intervals:
            entry["ci_low"], entry["ci_high"] = intervals[name]
        report[name] = entry
    return report


def scenario_recall(
    frame: pl.DataFrame, *, scores: np.ndarray, threshold: float
) -> pl.DataFrame:
    """Return the recall at ``threshold`` per fraud scenario.

    Args:
        frame: Rows with ``is_fraud`` (Boolean) and ``fraud_scenario`` (String,
            nullable); frauds without a scenario count as ``unlabelled``.
        scores: Fraud scores of the same rows, shape (rows,).
        threshold: Score at or above which a fraud counts as detected.

    Returns:
        Columns scenario (String), frauds (Int64), detected (Int64), recall (Float64),
        one row per scenario, sorted by scenario.
    """
    flagged = pl.Series("flagged", scores >= threshold)
    frauds = frame.select(
        pl.col("fraud_scenario").fill_null(UNLABELLED_SCENARIO).alias("scenario"),
        pl.col("is_fraud"),
        flagged,
    ).filter(pl.col("is_fraud"))
    return (
        frauds.group_by("scenario")
        .agg(
            pl.len().cast(pl.Int64).alias("frauds"),
            pl.col("flagged").sum().cast(pl.Int64).alias("detected"),
        )
        .with_columns((pl.col("detected") / pl.col("frauds")).alias("recall"))
        .sort("scenario")
    )


def thin_indices(size: int, *, max_points: int) -> np.ndarray:
    """Return at most ``max_points`` evenly spread indices of ``range(size)``.

    The first and last index are always kept, so a thinned curve keeps its ends.
    """
    if size <= max_points:
        return np.arange(size)
    return np.unique(np.linspace(0, size - 1, max_points).round().astype(np.int64))


def pr_curve_points(
    labels: np.ndarray, scores: np.ndarray, *, max_points: int = CURVE_POINTS
) -> pl.DataFrame:
    """Return a thinned precision-recall curve: columns recall, precision (Float64)."""
    precision, recall, _ = precision_recall_curve(labels, scores)
    keep = thin_indices(precision.size, max_points=max_points)
    return pl.DataFrame(
        {"recall": recall[keep].round(6), "precision": precision[keep].round(6)}
    )


def roc_curve_points(
    labels: np.ndarray, scores: np.ndarray, *, max_points: int = CURVE_POINTS
) -> pl.DataFrame:
    """Return a thinned ROC curve: columns fpr and tpr (Float64)."""
    false_positive_rate, true_positive_rate, _ = roc_curve(labels, scores)
    keep = thin_indices(false_positive_rate.size, max_points=max_points)
    return pl.DataFrame(
        {
            "fpr": false_positive_rate[keep].round(6),
            "tpr": true_positive_rate[keep].round(6),
        }
    )
