"""Test-window metrics with seeded bootstrap confidence intervals, and plot data.

Scores are fraud probabilities in [0, 1] and labels are 0/1 integers. A transaction is
alerted at a threshold when its score is at least that threshold.

Row metrics are computed on scores sorted once. A bootstrap resample of the rows is
the same as giving each row the number of times it was drawn as a weight, so every
round reuses the sorted order and needs no new sort; with all weights 1 the functions
return the plain metrics, which the tests compare with scikit-learn.

Card Precision@k follows the fraud-detection handbook (Le Borgne et al., "Reproducible
Machine Learning for Credit Card Fraud Detection", chapter 4.4): each day, the ``k``
cards with the highest transaction score are alerted, and the metric is the share of
them with a fraud that day. Cards already known to be compromised are left out: those
with a fraud label available at the test start, and, as in the handbook, those found in
the alerts of an earlier test day. Their rows stay in every other metric. The interval
of Card Precision@k resamples days instead of rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from sklearn.metrics import precision_recall_curve, roc_curve

from cardfraud.params import CostParams

logger = logging.getLogger(__name__)

CONFIDENCE = 0.95
CURVE_POINTS = 300
UNLABELLED_SCENARIO = "unlabelled"


class EvaluationError(ValueError):
    """The test rows cannot be evaluated."""


@dataclass(frozen=True)
class Ranking:
    """Scores sorted once, highest first, for weighted ranking metrics.

    Attributes:
        order: Row indices that sort the scores in descending order (stable).
        group_ends: Positions in sorted order of the last row of each distinct score;
            rows with equal scores are alerted together.
        scores: The sorted scores.
    """

    order: np.ndarray
    group_ends: np.ndarray
    scores: np.ndarray

    @classmethod
    def of(cls, scores: np.ndarray) -> Ranking:
        """Sort ``scores`` (shape (rows,)) and find the ends of equal-score runs."""
        order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
        ordered = np.asarray(scores, dtype=np.float64)[order]
        ends = np.flatnonzero(np.append(ordered[1:] != ordered[:-1], True))
        return cls(order, ends, ordered)


def cumulative_counts(
    ranking: Ranking, labels: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return weighted true and false positives at each distinct-score threshold."""
    sorted_labels = labels[ranking.order].astype(np.float64)
    sorted_weights = weights[ranking.order].astype(np.float64)
    true_positives = np.cumsum(sorted_weights * sorted_labels)[ranking.group_ends]
    false_positives = np.cumsum(sorted_weights * (1.0 - sorted_labels))[
        ranking.group_ends
    ]
    return true_positives, false_positives


def ranking_metrics(
    ranking: Ranking,
    labels: np.ndarray,
    weights: np.ndarray,
    *,
    fpr_target: float,
) -> dict[str, float]:
    """Return average precision, ROC AUC and recall at a false-positive rate.

    Average precision is ``sum((R_n - R_{n-1}) * P_n)`` over the distinct thresholds,
    as in scikit-learn. Recall at ``fpr_target`` is the highest recall of a threshold
    whose false-positive rate does not exceed the target.

    Args:
        ranking: The sorted scores.
        labels: 0/1 labels in the original row order, shape (rows,).
        weights: Non-negative row weights, shape (rows,); ones give plain metrics.
    """
    true_positives, false_positives = cumulative_counts(ranking, labels, weights)
    positives = true_positives[-1]
    negatives = false_positives[-1]
    alerted = true_positives + false_positives
    precision = np.divide(
        true_positives, alerted, out=np.zeros_like(alerted), where=alerted > 0
    )
    recall = true_positives / positives
    false_positive_rate = false_positives / negatives
    within = false_positive_rate <= fpr_target
    return {
        "average_precision": float(np.sum(np.diff(recall, prepend=0.0) * precision)),
        "roc_auc": float(
            np.trapezoid(np.append(0.0, recall), np.append(0.0, false_positive_rate))
        ),
        "recall_at_fpr": float(recall[within].max()) if within.any() else 0.0,
    }


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Return the average precision (area under the step precision-recall curve)."""
    return ranking_metrics(
        Ranking.of(scores), labels, np.ones(labels.size), fpr_target=0.0
    )["average_precision"]


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Return the area under the ROC curve."""
    return ranking_metrics(
        Ranking.of(scores), labels, np.ones(labels.size), fpr_target=0.0
    )["roc_auc"]


def brier_score(
    labels: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None
) -> float:
    """Return the weighted mean squared difference between score and label."""
    weights = np.ones(labels.size) if weights is None else weights
    return float(np.sum(weights * (scores - labels) ** 2) / np.sum(weights))


def bin_indices(scores: np.ndarray, *, bins: int) -> np.ndarray:
    """Return each score's equal-width bin in [0, 1]; a score of 1.0 is in the last."""
    return np.minimum((np.asarray(scores) * bins).astype(np.int64), bins - 1)


def expected_calibration_error(
    labels: np.ndarray,
    scores: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    bins: int,
) -> float:
    """Return the expected calibration error over equal-width score bins.

    ECE is ``sum_b (n_b / n) * |mean score_b - fraud rate_b|``.
    """
    weights = np.ones(labels.size) if weights is None else weights
    index = bin_indices(scores, bins=bins)
    counts = np.bincount(index, weights=weights, minlength=bins)
    score_sums = np.bincount(index, weights=weights * scores, minlength=bins)
    fraud_sums = np.bincount(index, weights=weights * labels, minlength=bins)
    return float(np.sum(np.abs(score_sums - fraud_sums)) / np.sum(counts))


def reliability_table(
    labels: np.ndarray, scores: np.ndarray, *, bins: int
) -> pl.DataFrame:
    """Return the reliability curve: one row per non-empty equal-width bin.

    Returns:
        Columns bin (Int64), bin_low and bin_high (Float64, the bin's score range),
        rows (Int64), mean_score and fraud_rate (Float64, rounded to 6 decimals).
    """
    index = bin_indices(scores, bins=bins)
    counts = np.bincount(index, minlength=bins)
    mean_score = np.bincount(index, weights=scores, minlength=bins)
    fraud_rate = np.bincount(index, weights=labels, minlength=bins)
    present = np.flatnonzero(counts)
    return pl.DataFrame(
        {
            "bin": present.astype(np.int64),
            "bin_low": (present / bins).round(6),
            "bin_high": ((present + 1) / bins).round(6),
            "rows": counts[present].astype(np.int64),
            "mean_score": (mean_score[present] / counts[present]).round(6),
            "fraud_rate": (fraud_rate[present] / counts[present]).round(6),
        }
    )


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


def ratio(numerator: float, denominator: float) -> float:
    """Return ``numerator / denominator``, or 0.0 when the denominator is 0."""
    return float(numerator) / float(denominator) if denominator else 0.0


@dataclass(frozen=True)
class HoldoutScores:
    """Labels, scores and amounts of the test rows, all shape (rows,).

    Attributes:
        labels: Ground-truth 0/1 labels, int8.
        calibrated: The candidate's calibrated probabilities.
        uncalibrated: The candidate's raw scores.
        amounts: Amounts in minor units, int64.
        scenarios: Fraud scenario of each fraud, ``""`` for legitimate rows.
        references: Scores of the reference models by name.
    """

    labels: np.ndarray
    calibrated: np.ndarray
    uncalibrated: np.ndarray
    amounts: np.ndarray
    scenarios: np.ndarray
    references: dict[str, np.ndarray]

    @property
    def scenario_names(self) -> list[str]:
        """Sorted names of the scenarios that occur among the frauds."""
        return sorted({str(name) for name in self.scenarios[self.labels == 1]})


@dataclass(frozen=True)
class MetricSettings:
    """Thresholds and settings that the row metrics depend on."""

    thresholds: dict[str, float]
    cost: CostParams
    fpr_target: float
    bins: int


def row_metrics(
    data: HoldoutScores,
    rankings: dict[str, Ranking],
    weights: np.ndarray,
    settings: MetricSettings,
) -> dict[str, float]:
    """Return every row metric of the test rows under the given row weights.

    Keys are flat: ``average_precision``, ``scenario/<name>/recall_at_review``,
    ``reference/<name>/average_precision`` and so on.
    """
    labels = data.labels
    metrics = ranking_metrics(
        rankings["calibrated"], labels, weights, fpr_target=settings.fpr_target
    )
    metrics.update(operating_point_metrics(data, weights, settings))
    metrics["brier_score"] = brier_score(labels, data.calibrated, weights)
    metrics["brier_score_uncalibrated"] = brier_score(
        labels, data.uncalibrated, weights
    )
    metrics["ece"] = expected_calibration_error(
        labels, data.calibrated, weights, bins=settings.bins
    )
    metrics["ece_uncalibrated"] = expected_calibration_error(
        labels, data.uncalibrated, weights, bins=settings.bins
    )
    for name in ("uncalibrated", *data.references):
        reference = ranking_metrics(
            rankings[name], labels, weights, fpr_target=settings.fpr_target
        )
        metrics[f"reference/{name}/average_precision"] = reference["average_precision"]
        metrics[f"reference/{name}/roc_auc"] = reference["roc_auc"]
    metrics.update(scenario_metrics(data, rankings["calibrated"], weights, settings))
    return metrics


def operating_point_metrics(
    data: HoldoutScores, weights: np.ndarray, settings: MetricSettings
) -> dict[str, float]:
    """Return precision, recall, alert rate and cost at the review and decline levels.

    The cost counts every alert at the review threshold: a false alarm costs
    ``false_alarm_minor``, a caught fraud ``caught_fraud_minor``, and a missed fraud
    ``missed_fraud_share`` of its amount, all in minor units per transaction.
    """
    labels = data.labels
    fraud = labels == 1
    total = np.sum(weights)
    frauds = np.sum(weights * labels)
    metrics: dict[str, float] = {}
    for level in ("review", "decline"):
        alerted = data.calibrated >= settings.thresholds[level]
        caught = np.sum(weights * (alerted & fraud))
        metrics[f"precision_at_{level}"] = ratio(caught, np.sum(weights * alerted))
        metrics[f"recall_at_{level}"] = ratio(caught, frauds)
    alerted = data.calibrated >= settings.thresholds["review"]
    metrics["alert_rate"] = float(np.sum(weights * alerted) / total)
    cost = settings.cost
    missed_loss = np.sum(weights * data.amounts * (fraud & ~alerted))
    all_loss = np.sum(weights * data.amounts * fraud)
    metrics["expected_cost_per_transaction"] = float(
        (
            cost.false_alarm_minor * np.sum(weights * (alerted & ~fraud))
            + cost.caught_fraud_minor * np.sum(weights * (alerted & fraud))
            + cost.missed_fraud_share * missed_loss
        )
        / total
    )
    metrics["cost_without_model_per_transaction"] = float(
        cost.missed_fraud_share * all_loss / total
    )
    return metrics


def scenario_metrics(
    data: HoldoutScores,
    ranking: Ranking,
    weights: np.ndarray,
    settings: MetricSettings,
) -> dict[str, float]:
    """Return recall at review and average precision for each fraud scenario.

    A scenario's average precision ranks its frauds against every legitimate row;
    frauds of other scenarios are left out.
    """
    metrics: dict[str, float] = {}
    fraud = data.labels == 1
    alerted = data.calibrated >= settings.thresholds["review"]
    for name in data.scenario_names:
        member = fraud & (data.scenarios == name)
        kept = np.where(fraud & ~member, 0.0, weights)
        frauds = np.sum(kept * member)
        metrics[f"scenario/{name}/recall_at_review"] = ratio(
            np.sum(kept * (member & alerted)), frauds
        )
        metrics[f"scenario/{name}/average_precision"] = (
            ranking_metrics(ranking, data.labels, kept, fpr_target=0.0)[
                "average_precision"
            ]
            if frauds
            else 0.0
        )
    return metrics


def bootstrap_intervals(
    compute: Callable[[np.ndarray], dict[str, float]],
    labels: np.ndarray,
    *,
    rounds: int,
    seed: int,
    confidence: float = CONFIDENCE,
) -> dict[str, tuple[float, float]]:
    """Return percentile bootstrap confidence intervals of row metrics.

    Each round draws ``rows`` rows with replacement and passes the number of times
    each row was drawn to ``compute`` as its weight. A resample with a single class
    is skipped, so fewer than ``rounds`` resamples count when frauds are very rare.

    Args:
        compute: Returns every metric by name for a weight vector of shape (rows,).
        labels: 0/1 labels, shape (rows,), to detect single-class resamples.
        rounds: Number of resamples drawn; 0 returns an empty dict.
        seed: Seed of the resampling; the same seed gives the same intervals.
        confidence: Coverage of the two-sided interval.

    Returns:
        ``{name: (low, high)}``, the metric's lower and upper percentiles.

    Raises:
        EvaluationError: Every resample held a single class.
    """
    if rounds == 0:
        return {}
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {}
    for _ in range(rounds):
        draws = rng.integers(0, labels.size, size=labels.size)
        weights = np.bincount(draws, minlength=labels.size).astype(np.float64)
        frauds = np.sum(weights * labels)
        if frauds == 0 or frauds == labels.size:
            continue
        for name, value in compute(weights).items():
            samples.setdefault(name, []).append(value)
    if not samples:
        raise EvaluationError(
            f"all {rounds} bootstrap resamples held a single class; the test rows have "
            "too few frauds, so widen the test window (train.test_days)"
        )
    return percentile_intervals(samples, confidence=confidence)


def percentile_intervals(
    samples: dict[str, list[float]], *, confidence: float
) -> dict[str, tuple[float, float]]:
    """Return the two-sided percentile interval of each metric's samples."""
    tail = (1.0 - confidence) / 2.0 * 100.0
    return {
        name: (
            float(np.percentile(values, tail)),
            float(np.percentile(values, 100.0 - tail)),
        )
        for name, values in samples.items()
    }


def check_both_classes(labels: np.ndarray) -> None:
    """Raise :class:`EvaluationError` unless ``labels`` contains both 0 and 1."""
    frauds = int(labels.sum())
    if frauds == 0 or frauds == labels.size:
        raise EvaluationError(
            f"the test rows contain {frauds} frauds in {labels.size} rows; ranking "
            "metrics need both classes, so widen the test window (train.test_days)"
        )


def evaluate_rows(
    data: HoldoutScores, settings: MetricSettings, *, rounds: int, seed: int
) -> dict[str, dict[str, float]]:
    """Return every row metric with its bootstrap interval.

    Returns:
        ``{name: {"value", "ci_low", "ci_high"}}`` with the flat names of
        :func:`row_metrics`; the interval keys are absent when ``rounds`` is 0.

    Raises:
        EvaluationError: The rows lack one of the two classes.
    """
    check_both_classes(data.labels)
    rankings = {
        "calibrated": Ranking.of(data.calibrated),
        "uncalibrated": Ranking.of(data.uncalibrated),
        **{name: Ranking.of(scores) for name, scores in data.references.items()},
    }

    def compute(weights: np.ndarray) -> dict[str, float]:
        return row_metrics(data, rankings, weights, settings)

    points = compute(np.ones(data.labels.size))
    intervals = bootstrap_intervals(compute, data.labels, rounds=rounds, seed=seed)
    return with_intervals(points, intervals)


def with_intervals(
    points: dict[str, float], intervals: dict[str, tuple[float, float]]
) -> dict[str, dict[str, float]]:
    """Combine point values and intervals into ``{name: {value, ci_low, ci_high}}``."""
    report: dict[str, dict[str, float]] = {}
    for name, value in points.items():
        entry = {"value": value}
        if name in intervals:
            entry["ci_low"], entry["ci_high"] = intervals[name]
        report[name] = entry
    return report


def alerts_per_day(rows: int, days: int, *, alerts_per_10000: float) -> int:
    """Return k of Card Precision@k, at least 1.

    k is ``alerts_per_10000`` for every 10,000 transactions a day.
    """
    return max(1, round(alerts_per_10000 * rows / days / 10_000))


def card_precision_at_k(
    frame: pl.DataFrame,
    scores: np.ndarray,
    *,
    k: int,
    known_cards: Iterable[str],
) -> pl.DataFrame:
    """Return the daily Card Precision@k of the test rows.

    Each UTC day, rows of cards that are known to be compromised are left out. A
    card's score is its highest transaction score of the day and it counts as
    compromised that day when one of its transactions is fraud. The ``k`` highest
    cards are alerted (ties broken by card id); the day's value is the number of
    compromised cards among them divided by ``k``. Compromised cards among the
    alerts are known from the next day on.

    Args:
        frame: Test rows with ``timestamp`` (UTC), ``card_id`` and ``is_fraud``.
        scores: Scores of the same rows, shape (rows,).
        k: Cards alerted per day.
        known_cards: Cards known to be compromised at the start of the first day.

    Returns:
        Columns day (Date), transactions (Int64, rows scored that day),
        compromised_cards (Int64, among the scored cards), detected (Int64),
        card_precision and max_card_precision (Float64, the value a perfect ranking
        reaches when fewer than k cards are compromised), one row per day with data,
        in day order.
    """
    removed = set(known_cards)
    daily = frame.select(
        pl.col("timestamp").dt.date().alias("day"),
        pl.col("card_id"),
        pl.col("is_fraud"),
        pl.Series("score", scores, dtype=pl.Float64),
    )
    rows: list[dict[str, Any]] = []
    for day, day_rows in daily.sort("day").group_by("day", maintain_order=True):
        scored = day_rows.filter(~pl.col("card_id").is_in(sorted(removed)))
        cards = (
            scored.group_by("card_id")
            .agg(pl.col("score").max(), pl.col("is_fraud").any())
            .sort(["score", "card_id"], descending=[True, False])
        )
        alerted = cards.head(k)
        detected = alerted.filter(pl.col("is_fraud"))["card_id"].to_list()
        removed.update(detected)
        rows.append(
            {
                "day": day[0],
                "transactions": scored.height,
                "compromised_cards": int(cards["is_fraud"].sum()),
                "detected": len(detected),
                "card_precision": len(detected) / k,
                "max_card_precision": min(int(cards["is_fraud"].sum()), k) / k,
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "day": pl.Date,
            "transactions": pl.Int64,
            "compromised_cards": pl.Int64,
            "detected": pl.Int64,
            "card_precision": pl.Float64,
            "max_card_precision": pl.Float64,
        },
    )


def day_bootstrap_mean(
    values: np.ndarray, *, rounds: int, seed: int, confidence: float = CONFIDENCE
) -> dict[str, float]:
    """Return the mean of daily values with a bootstrap interval over days.

    Returns:
        ``{"value", "ci_low", "ci_high"}``; the interval keys are absent when
        ``rounds`` is 0.
    """
    entry = {"value": float(np.mean(values))}
    if rounds == 0:
        return entry
    rng = np.random.default_rng(seed)
    means = [
        float(np.mean(values[rng.integers(0, values.size, size=values.size)]))
        for _ in range(rounds)
    ]
    low, high = percentile_intervals({"mean": means}, confidence=confidence)["mean"]
    return {**entry, "ci_low": low, "ci_high": high}


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
        scenario_expr(frame).alias("scenario"),
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


def scenario_expr(frame: pl.DataFrame) -> pl.Expr:
    """Return each fraud's scenario, ``unlabelled`` where none is named."""
    if "fraud_scenario" not in frame.columns:
        return pl.lit(UNLABELLED_SCENARIO)
    return pl.col("fraud_scenario").fill_null(UNLABELLED_SCENARIO)


def scenario_array(frame: pl.DataFrame) -> np.ndarray:
    """Return each row's scenario as a string array, ``""`` for legitimate rows."""
    names = frame.select(
        pl.when(pl.col("is_fraud"))
        .then(scenario_expr(frame))
        .otherwise(pl.lit(""))
        .alias("scenario")
    )["scenario"]
    return np.asarray(names.to_list(), dtype=object)


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


def nest_metrics(flat: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Turn ``a/b/c`` metric names into nested dicts ``{a: {b: {c: ...}}}``."""
    nested: dict[str, Any] = {}
    for name, entry in flat.items():
        target = nested
        *parents, leaf = name.split("/")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = entry
    return nested
