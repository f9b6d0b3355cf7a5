"""Tests of hold-out metrics, bootstrap intervals, scenario recall and curve data."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from cardfraud.evaluation import (
    EvaluationError,
    average_precision,
    bootstrap_intervals,
    brier_score,
    evaluate_scores,
    operating_metrics,
    pr_curve_points,
    precision_at,
    recall_at,
    roc_auc,
    roc_curve_points,
    scenario_recall,
    thin_indices,
)

LABELS = np.array([1, 0, 1, 0])
SCORES = np.array([0.9, 0.8, 0.7, 0.1])
THRESHOLDS = {"review": 0.75, "decline": 0.85}


def reference_average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average of the precision at the rank of each fraud; scores must be distinct."""
    order = np.argsort(-scores)
    hits = 0
    total = 0.0
    for rank, row in enumerate(order, start=1):
        if labels[row]:
            hits += 1
            total += hits / rank
    return total / labels.sum()


def noisy_case(rows: int = 2000, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Return labels at about 5% prevalence and scores that rank them imperfectly."""
    rng = np.random.default_rng(seed)
    labels = (rng.uniform(size=rows) < 0.05).astype(np.int8)
    scores = 1.0 / (1.0 + np.exp(-(rng.normal(size=rows) + 2.0 * labels - 3.0)))
    return labels, scores


def test_metrics_on_hand_case() -> None:
    # Frauds rank 1st and 3rd: AP = (1/1 + 2/3) / 2; 3 of 4 fraud-legit pairs ordered.
    assert average_precision(LABELS, SCORES) == pytest.approx(5 / 6)
    assert roc_auc(LABELS, SCORES) == pytest.approx(0.75)
    assert brier_score(LABELS, SCORES) == pytest.approx((0.01 + 0.64 + 0.09 + 0.01) / 4)
    assert precision_at(LABELS, SCORES, threshold=0.75) == 0.5
    assert recall_at(LABELS, SCORES, threshold=0.75) == 0.5
    assert precision_at(LABELS, SCORES, threshold=0.85) == 1.0
    assert recall_at(LABELS, SCORES, threshold=0.85) == 0.5


def test_metrics_at_threshold_above_every_score() -> None:
    assert precision_at(LABELS, SCORES, threshold=0.95) == 0.0
    assert recall_at(LABELS, SCORES, threshold=0.95) == 0.0


def test_average_precision_matches_reference() -> None:
    labels, scores = noisy_case()

    assert average_precision(labels, scores) == pytest.approx(
        reference_average_precision(labels, scores), abs=1e-12
    )


def test_bootstrap_interval_contains_point_estimate() -> None:
    labels, scores = noisy_case()
    metrics = operating_metrics({"review": 0.3, "decline": 0.6})

    intervals = bootstrap_intervals(labels, scores, metrics, rounds=200, seed=11)

    for name, metric in metrics.items():
        low, high = intervals[name]
        point = metric(labels, scores)
        assert low <= point <= high, name
        assert low < high, name


def test_bootstrap_interval_is_seeded() -> None:
    labels, scores = noisy_case()
    metrics = {"average_precision": average_precision}

    first = bootstrap_intervals(labels, scores, metrics, rounds=50, seed=11)
    again = bootstrap_intervals(labels, scores, metrics, rounds=50, seed=11)
    other = bootstrap_intervals(labels, scores, metrics, rounds=50, seed=12)

    assert first == again
    assert first != other


def test_bootstrap_without_rounds_is_empty() -> None:
    labels, scores = noisy_case()

    assert (
        bootstrap_intervals(labels, scores, {"ap": average_precision}, rounds=0, seed=1)
        == {}
    )


def test_evaluate_scores_report_shape() -> None:
    report = evaluate_scores(LABELS, SCORES, thresholds=THRESHOLDS, rounds=20, seed=5)

    assert report["rows"] == 4
    assert report["frauds"] == 2
    assert report["alert_rate"] == 0.5
    assert report["average_precision"]["value"] == pytest.approx(5 / 6)
    assert report["recall_at_decline"]["value"] == 0.5
    assert set(report["roc_auc"]) == {"value", "ci_low", "ci_high"}


def test_evaluate_scores_rejects_single_class() -> None:
    with pytest.raises(EvaluationError, match="0 frauds in 4 rows"):
        evaluate_scores(
            np.zeros(4, dtype=np.int8), SCORES, thresholds=THRESHOLDS, rounds=5, seed=1
        )


def test_scenario_recall_per_scenario() -> None:
    frame = pl.DataFrame(
        {
            "is_fraud": [True, True, True, False, True],
            "fraud_scenario": ["card_testing", "card_testing", "takeover", None, None],
        }
    )
    scores = np.array([0.9, 0.2, 0.8, 0.95, 0.1])

    table = scenario_recall(frame, scores=scores, threshold=0.5)

    assert table.to_dicts() == [
        {"scenario": "card_testing", "frauds": 2, "detected": 1, "recall": 0.5},
        {"scenario": "takeover", "frauds": 1, "detected": 1, "recall": 1.0},
        {"scenario": "unlabelled", "frauds": 1, "detected": 0, "recall": 0.0},
    ]


def test_thin_indices_keeps_ends() -> None:
    indices = thin_indices(1001, max_points=300)

    assert indices[0] == 0
    assert indices[-1] == 1000
    assert indices.size == 300
    assert np.all(np.diff(indices) > 0)
    assert thin_indices(5, max_points=300).tolist() == [0, 1, 2, 3, 4]


def test_curve_points_are_thinned() -> None:
    labels, scores = noisy_case()

    pr = pr_curve_points(labels, scores)
    roc = roc_curve_points(labels, scores)

    assert pr.columns == ["recall", "precision"]
    assert roc.columns == ["fpr", "tpr"]
    assert pr.height <= 300
    assert roc.height <= 300
    assert roc.row(0) == (0.0, 0.0)
    assert roc.row(-1) == (1.0, 1.0)
    assert pr["recall"].max() == 1.0
