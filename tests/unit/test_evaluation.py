"""Tests of test-window metrics, bootstrap intervals, Card Precision@k and plot data."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from cardfraud.evaluation import (
    EvaluationError,
    HoldoutScores,
    MetricSettings,
    Ranking,
    alerts_per_day,
    average_precision,
    bootstrap_intervals,
    brier_score,
    card_precision_at_k,
    day_bootstrap_mean,
    evaluate_rows,
    expected_calibration_error,
    nest_metrics,
    pr_curve_points,
    precision_at,
    ranking_metrics,
    recall_at,
    reliability_table,
    roc_auc,
    roc_curve_points,
    row_metrics,
    scenario_array,
    scenario_recall,
    thin_indices,
)
from cardfraud.params import CostParams

LABELS = np.array([1, 0, 1, 0])
SCORES = np.array([0.9, 0.8, 0.7, 0.1])
COST = CostParams(false_alarm_minor=10, caught_fraud_minor=5, missed_fraud_share=1.0)


def noisy_case(
    rows: int = 2000, seed: int = 3, *, ties: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Return labels at about 5% prevalence and scores that rank them imperfectly."""
    rng = np.random.default_rng(seed)
    labels = (rng.uniform(size=rows) < 0.05).astype(np.int8)
    scores = 1.0 / (1.0 + np.exp(-(rng.normal(size=rows) + 2.0 * labels - 3.0)))
    if ties:
        scores = np.round(scores, 2)
    return labels, scores


def reference_recall_at_fpr(
    labels: np.ndarray, scores: np.ndarray, *, target: float
) -> float:
    """Try every threshold; keep the best recall whose false-positive rate fits."""
    best = 0.0
    negatives = np.sum(labels == 0)
    for threshold in np.unique(scores):
        alerted = scores >= threshold
        false_positive_rate = np.sum(alerted & (labels == 0)) / negatives
        if false_positive_rate <= target:
            best = max(best, np.sum(alerted & (labels == 1)) / labels.sum())
    return float(best)


def test_metrics_on_hand_case() -> None:
    # Frauds rank 1st and 3rd: AP = (1/1 + 2/3) / 2; 3 of 4 fraud-legit pairs ordered.
    assert average_precision(LABELS, SCORES) == pytest.approx(5 / 6)
    assert roc_auc(LABELS, SCORES) == pytest.approx(0.75)
    assert brier_score(LABELS, SCORES) == pytest.approx((0.01 + 0.64 + 0.09 + 0.01) / 4)
    assert precision_at(LABELS, SCORES, threshold=0.75) == 0.5
    assert recall_at(LABELS, SCORES, threshold=0.75) == 0.5
    assert precision_at(LABELS, SCORES, threshold=0.95) == 0.0


@pytest.mark.parametrize("ties", [False, True])
def test_ranking_metrics_match_sklearn(ties: bool) -> None:
    labels, scores = noisy_case(ties=ties)

    metrics = ranking_metrics(
        Ranking.of(scores), labels, np.ones(labels.size), fpr_target=0.02
    )

    assert metrics["average_precision"] == pytest.approx(
        average_precision_score(labels, scores), abs=1e-12
    )
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert metrics["recall_at_fpr"] == pytest.approx(
        reference_recall_at_fpr(labels, scores, target=0.02)
    )


def test_weights_equal_resampled_rows() -> None:
    labels, scores = noisy_case(ties=True)
    draws = np.random.default_rng(8).integers(0, labels.size, size=labels.size)
    weights = np.bincount(draws, minlength=labels.size).astype(float)

    weighted = ranking_metrics(Ranking.of(scores), labels, weights, fpr_target=0.05)
    resampled = ranking_metrics(
        Ranking.of(scores[draws]),
        labels[draws],
        np.ones(labels.size),
        fpr_target=0.05,
    )

    for name, value in weighted.items():
        assert value == pytest.approx(resampled[name], abs=1e-12), name
    assert brier_score(labels, scores, weights) == pytest.approx(
        brier_score(labels[draws], scores[draws])
    )
    assert expected_calibration_error(
        labels, scores, weights, bins=10
    ) == pytest.approx(
        expected_calibration_error(labels[draws], scores[draws], bins=10)
    )


def test_expected_calibration_error_hand_case() -> None:
    labels = np.array([0, 0, 1, 1, 0])
    scores = np.array([0.05, 0.15, 0.95, 0.85, 0.9])

    # Bin 0: score 0.05, rate 0; bin 1: 0.15 vs 0; bin 8: 0.85 vs 1; bin 9: two
    # rows, mean 0.925 vs rate 0.5.
    expected = (0.05 + 0.15 + 0.15 + 2 * 0.425) / 5
    assert expected_calibration_error(labels, scores, bins=10) == pytest.approx(
        expected
    )


def test_reliability_table_bins() -> None:
    labels = np.array([0, 0, 1, 1, 0])
    scores = np.array([0.05, 0.15, 0.95, 0.85, 1.0])

    table = reliability_table(labels, scores, bins=10)

    assert table["bin"].to_list() == [0, 1, 8, 9]
    assert table["rows"].to_list() == [1, 1, 1, 2]
    assert table["mean_score"].to_list() == [0.05, 0.15, 0.85, 0.975]
    assert table["fraud_rate"].to_list() == [0.0, 0.0, 1.0, 0.5]


def make_test_scores() -> HoldoutScores:
    labels, scores = noisy_case(rows=600, seed=4)
    rng = np.random.default_rng(2)
    scenarios = np.where(
        labels == 1, np.where(rng.uniform(size=labels.size) < 0.5, "a", "b"), ""
    ).astype(object)
    return HoldoutScores(
        labels=labels,
        calibrated=scores,
        uncalibrated=np.sqrt(scores),
        amounts=rng.integers(100, 10_000, size=labels.size),
        scenarios=scenarios,
        references={"rule_baseline": np.round(scores, 1)},
    )


def test_row_metrics_cost_and_scenarios() -> None:
    data = make_test_scores()
    settings = MetricSettings({"review": 0.2, "decline": 0.5}, COST, 0.01, 10)
    rankings = {
        "calibrated": Ranking.of(data.calibrated),
        "uncalibrated": Ranking.of(data.uncalibrated),
        "rule_baseline": Ranking.of(data.references["rule_baseline"]),
    }

    metrics = row_metrics(data, rankings, np.ones(data.labels.size), settings)

    fraud = data.labels == 1
    alerted = data.calibrated >= 0.2
    cost = (
        10 * np.sum(alerted & ~fraud)
        + 5 * np.sum(alerted & fraud)
        + np.sum(data.amounts[fraud & ~alerted])
    )
    assert metrics["expected_cost_per_transaction"] == pytest.approx(
        cost / data.labels.size
    )
    assert metrics["cost_without_model_per_transaction"] == pytest.approx(
        np.sum(data.amounts[fraud]) / data.labels.size
    )
    assert metrics["alert_rate"] == pytest.approx(alerted.mean())
    for name in ("a", "b"):
        keep = ~fraud | (data.scenarios == name)
        assert metrics[f"scenario/{name}/average_precision"] == pytest.approx(
            average_precision_score(data.labels[keep], data.calibrated[keep])
        )
        member = fraud & (data.scenarios == name)
        assert metrics[f"scenario/{name}/recall_at_review"] == pytest.approx(
            alerted[member].mean()
        )
    assert metrics["reference/rule_baseline/average_precision"] == pytest.approx(
        average_precision_score(data.labels, data.references["rule_baseline"])
    )


def test_evaluate_rows_intervals_contain_points() -> None:
    data = make_test_scores()
    settings = MetricSettings({"review": 0.2, "decline": 0.5}, COST, 0.01, 10)

    report = evaluate_rows(data, settings, rounds=100, seed=11)

    for name in ("average_precision", "roc_auc", "brier_score", "ece"):
        entry = report[name]
        assert entry["ci_low"] <= entry["value"] <= entry["ci_high"], name
        assert entry["ci_low"] < entry["ci_high"], name
    nested = nest_metrics(report)
    assert set(nested["scenario"]) == {"a", "b"}
    assert (
        nested["reference"]["rule_baseline"]["roc_auc"]
        == report["reference/rule_baseline/roc_auc"]
    )


def test_bootstrap_is_seeded() -> None:
    labels, scores = noisy_case()
    ranking = Ranking.of(scores)

    def compute(weights: np.ndarray) -> dict[str, float]:
        return ranking_metrics(ranking, labels, weights, fpr_target=0.01)

    first = bootstrap_intervals(compute, labels, rounds=50, seed=11)
    again = bootstrap_intervals(compute, labels, rounds=50, seed=11)
    other = bootstrap_intervals(compute, labels, rounds=50, seed=12)

    assert first == again
    assert first != other
    assert bootstrap_intervals(compute, labels, rounds=0, seed=1) == {}


def test_evaluate_rows_rejects_single_class() -> None:
    data = make_test_scores()
    single = HoldoutScores(
        labels=np.zeros_like(data.labels),
        calibrated=data.calibrated,
        uncalibrated=data.uncalibrated,
        amounts=data.amounts,
        scenarios=data.scenarios,
        references={},
    )
    settings = MetricSettings({"review": 0.2, "decline": 0.5}, COST, 0.01, 10)

    with pytest.raises(EvaluationError, match="0 frauds in 600 rows"):
        evaluate_rows(single, settings, rounds=10, seed=1)


def test_alerts_per_day_scales_with_volume() -> None:
    assert alerts_per_day(300_000, 30, alerts_per_10000=100) == 100
    assert alerts_per_day(163_900, 30, alerts_per_10000=100) == 55
    assert alerts_per_day(700, 14, alerts_per_10000=100) == 1


def reference_card_precision(
    frame: pl.DataFrame, scores: np.ndarray, *, k: int, known: set[str]
) -> list[float]:
    """Card Precision@k per day written as loops over plain dicts."""
    removed = set(known)
    by_day: dict[date, list[tuple[str, float, bool]]] = {}
    for row, score in zip(frame.iter_rows(named=True), scores, strict=True):
        by_day.setdefault(row["timestamp"].date(), []).append(
            (row["card_id"], float(score), row["is_fraud"])
        )
    values = []
    for day in sorted(by_day):
        best: dict[str, float] = {}
        compromised: set[str] = set()
        for card, score, fraud in by_day[day]:
            if card in removed:
                continue
            best[card] = max(best.get(card, -1.0), score)
            if fraud:
                compromised.add(card)
        ranked = sorted(best, key=lambda card: (-best[card], card))[:k]
        detected = [card for card in ranked if card in compromised]
        values.append(len(detected) / k)
        removed.update(detected)
    return values


def card_rows(seed: int = 6, days: int = 10) -> tuple[pl.DataFrame, np.ndarray]:
    """Return test rows of 40 cards over ``days`` days and their scores (with ties)."""
    rng = np.random.default_rng(seed)
    rows = 1500
    start = datetime(2025, 6, 1, tzinfo=UTC)
    offsets = np.sort(rng.integers(0, days * 86_400, size=rows))
    cards = rng.integers(0, 40, size=rows)
    fraud_cards = {3, 7, 11, 19, 23, 31}
    is_fraud = np.isin(cards, list(fraud_cards)) & (rng.uniform(size=rows) < 0.4)
    scores = np.round(np.clip(rng.normal(0.2 + 0.4 * is_fraud, 0.2), 0, 1), 1)
    frame = pl.DataFrame(
        {
            "timestamp": pl.Series(
                [start + timedelta(seconds=int(o)) for o in offsets],
                dtype=pl.Datetime("us", "UTC"),
            ),
            "card_id": [f"c{c:02d}" for c in cards],
            "is_fraud": is_fraud,
        }
    )
    return frame, scores


@pytest.mark.parametrize("k", [1, 3, 8])
def test_card_precision_matches_reference(k: int) -> None:
    frame, scores = card_rows()
    known = {"c03", "c30"}

    daily = card_precision_at_k(frame, scores, k=k, known_cards=known)

    expected = reference_card_precision(frame, scores, k=k, known=known)
    assert daily["card_precision"].to_list() == pytest.approx(expected)
    assert daily.height == 10


def test_card_precision_leaves_out_known_cards() -> None:
    frame, scores = card_rows()
    fraud_cards = set(frame.filter(pl.col("is_fraud"))["card_id"])

    everything_known = card_precision_at_k(frame, scores, k=3, known_cards=fraud_cards)
    nothing_known = card_precision_at_k(frame, scores, k=3, known_cards=[])

    assert everything_known["card_precision"].sum() == 0.0
    assert everything_known["compromised_cards"].sum() == 0
    assert nothing_known["card_precision"].sum() > 0.0
    excluded = frame.filter(pl.col("card_id").is_in(sorted(fraud_cards))).height
    assert everything_known["transactions"].sum() == frame.height - excluded


def test_day_bootstrap_mean_interval() -> None:
    values = np.array([0.1, 0.3, 0.2, 0.5, 0.4, 0.0, 0.2])

    entry = day_bootstrap_mean(values, rounds=200, seed=3)

    assert entry["value"] == pytest.approx(values.mean())
    assert entry["ci_low"] <= entry["value"] <= entry["ci_high"]
    assert day_bootstrap_mean(values, rounds=0, seed=3) == {"value": values.mean()}


def test_scenario_recall_per_scenario() -> None:
    frame = pl.DataFrame(
        {
            "is_fraud": [True, True, True, False, True],
            "fraud_scenario": ["takeover", "takeover", "testing", None, None],
        }
    )
    scores = np.array([0.9, 0.2, 0.8, 0.95, 0.1])

    table = scenario_recall(frame, scores=scores, threshold=0.5)

    assert table.to_dicts() == [
        {"scenario": "takeover", "frauds": 2, "detected": 1, "recall": 0.5},
        {"scenario": "testing", "frauds": 1, "detected": 1, "recall": 1.0},
        {"scenario": "unlabelled", "frauds": 1, "detected": 0, "recall": 0.0},
    ]
    assert scenario_array(frame).tolist() == [
        "takeover",
        "takeover",
        "testing",
        "",
        "unlabelled",
    ]


def test_thin_indices_keep_ends() -> None:
    kept = thin_indices(10_000, max_points=50)

    assert kept[0] == 0
    assert kept[-1] == 9_999
    assert kept.size <= 50
    assert np.array_equal(thin_indices(5, max_points=50), np.arange(5))


def test_curve_points_are_thinned() -> None:
    labels, scores = noisy_case()

    pr = pr_curve_points(labels, scores, max_points=100)
    roc = roc_curve_points(labels, scores, max_points=100)

    assert pr.columns == ["recall", "precision"]
    assert roc.columns == ["fpr", "tpr"]
    assert pr.height <= 100
    assert roc.height <= 100
    assert roc["fpr"][0] == 0.0
    assert roc["tpr"][-1] == 1.0
