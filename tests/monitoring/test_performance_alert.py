"""The performance alert: weighted ROC AUC, the baseline and the z-test rule."""

from __future__ import annotations

import logging
import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from cardfraud.evaluation import Ranking, ranking_metrics, roc_auc
from cardfraud.monitoring.monitor import MonitorSettings, performance_alerts
from cardfraud.monitoring.performance import (
    MaturedBaseline,
    PerformanceSettings,
    card_weighted_metrics,
    matured_baseline,
)

BASELINE = MaturedBaseline(
    average_precision=0.8, roc_auc=0.98, roc_auc_se=0.01, frauds=100, fraud_cards=20
)
START = date(2025, 5, 1)


def settings_with(baseline: MaturedBaseline | None) -> MonitorSettings:
    return MonitorSettings(
        psi_alert=0.25,
        score_psi_alert=0.25,
        drift_window_days=3,
        drift_min_rows=100,
        drift_exclude=(),
        confirm_days=3,
        performance=PerformanceSettings(
            maturity_days=30,
            window_days=7,
            review_threshold=0.5,
            alerts_per_10000=100.0,
            bootstrap_rounds=100,
            min_frauds=30,
            seed=17,
        ),
        performance_alpha=0.001,
        performance_gini_drop=0.1,
        baseline=baseline,
        skew_sample=0,
        seed=17,
    )


def performance_days(figures: list[tuple[float | None, float | None]]) -> pl.DataFrame:
    """One row per day from START with the given ROC AUC and standard error."""
    days = [START + timedelta(days=i) for i in range(len(figures))]
    return pl.DataFrame(
        {
            "day": days,
            "window_start": [day - timedelta(days=36) for day in days],
            "window_end": [day - timedelta(days=30) for day in days],
            "roc_auc": [auc for auc, _ in figures],
            "roc_auc_se": [se for _, se in figures],
        },
        schema_overrides={"roc_auc": pl.Float64, "roc_auc_se": pl.Float64},
    )


def test_card_weighted_auc_matches_evaluation():
    rng = np.random.default_rng(8)
    labels = (rng.random(3_000) < 0.05).astype(float)
    scores = np.round(rng.random(3_000) + labels * 0.4, 2)
    cards = rng.integers(0, 500, 3_000)
    drawn = np.vstack([np.ones(500), rng.integers(0, 3, 500).astype(float)])
    metrics = card_weighted_metrics(labels, scores, cards, drawn, threshold=0.9)
    weighted = ranking_metrics(
        Ranking.of(scores), labels, drawn[1][cards], fpr_target=0.0
    )["roc_auc"]
    assert metrics["roc_auc"][0] == pytest.approx(roc_auc(labels, scores))
    assert metrics["roc_auc"][1] == pytest.approx(weighted)


def test_card_weighted_auc_counts_ties_half():
    labels = np.array([1.0, 0.0, 1.0, 0.0])
    scores = np.array([0.9, 0.9, 0.2, 0.5])
    metrics = card_weighted_metrics(
        labels, scores, np.arange(4), np.ones((1, 4)), threshold=0.5
    )
    # Pairs (fraud, legitimate): (0.9, 0.9) ties, (0.9, 0.5) right, (0.2, *) wrong.
    assert metrics["roc_auc"][0] == pytest.approx(1.5 / 4)


def test_matured_baseline_counts_late_reports_legitimate():
    paid = datetime(2025, 3, 1, tzinfo=UTC)
    rows = pl.DataFrame(
        {
            "timestamp": [paid] * 6,
            "card_id": ["a", "a", "b", "c", "d", "e"],
            "is_fraud": [True, True, True, False, False, False],
            "label_available_at": [
                paid + timedelta(days=2),
                paid + timedelta(days=3),
                paid + timedelta(days=45),
                None,
                None,
                None,
            ],
        }
    )
    scores = np.array([0.9, 0.8, 0.1, 0.3, 0.2, 0.05])
    baseline = matured_baseline(
        rows, scores, maturity_days=30, bootstrap_rounds=50, seed=3
    )
    assert baseline is not None
    assert baseline.frauds == 2
    assert baseline.fraud_cards == 1
    # Counted as legitimate, the late fraud (score 0.1) ranks below both reported
    # frauds, so every pair is ordered. Counted as fraud, it would give 7 of 9.
    assert baseline.roc_auc == pytest.approx(1.0)
    assert baseline.average_precision == pytest.approx(1.0)
    assert baseline.roc_auc_se is not None


def test_matured_baseline_none_without_reports_in_time():
    paid = datetime(2025, 3, 1, tzinfo=UTC)
    rows = pl.DataFrame(
        {
            "timestamp": [paid, paid],
            "card_id": ["a", "b"],
            "is_fraud": [True, False],
            "label_available_at": [paid + timedelta(days=40), None],
        }
    )
    baseline = matured_baseline(
        rows, np.array([0.9, 0.1]), maturity_days=30, bootstrap_rounds=10, seed=1
    )
    assert baseline is None


def test_three_significant_material_days_raise():
    performance = performance_days(
        [(0.97, 0.01), (0.85, 0.03), (0.84, 0.03), (0.86, 0.03), (0.85, 0.03)]
    )
    (alert,) = performance_alerts(performance, settings_with(BASELINE))
    spread = math.sqrt(0.03**2 + 0.01**2)
    assert alert["kind"] == "performance_drop"
    assert alert["subject"] == "roc_auc"
    assert alert["first_day"] == (START + timedelta(days=1)).isoformat()
    assert alert["raised_on"] == (START + timedelta(days=3)).isoformat()
    assert alert["value"] == pytest.approx(0.86)
    assert alert["z"] == pytest.approx((0.86 - 0.98) / spread)
    assert alert["threshold"] == pytest.approx(0.98 - 3.090232 * spread, abs=1e-6)
    assert alert["baseline"] == 0.98
    assert alert["window_end"] == (START - timedelta(days=27)).isoformat()


def test_significant_but_small_drop_not_counted():
    """A narrow interval makes a 0.03 fall significant; the Gini fell only 6%."""
    baseline = MaturedBaseline(0.8, 0.98, 0.002, 1000, 300)
    performance = performance_days([(0.95, 0.002)] * 5)
    assert performance_alerts(performance, settings_with(baseline)) == []


def test_large_but_uncertain_drop_not_counted():
    performance = performance_days([(0.85, 0.1)] * 5)
    assert performance_alerts(performance, settings_with(BASELINE)) == []


def test_day_without_figure_breaks_the_run():
    performance = performance_days(
        [(0.85, 0.03), (0.85, 0.03), (None, None), (0.85, 0.03), (0.85, 0.03)]
    )
    assert performance_alerts(performance, settings_with(BASELINE)) == []


def test_baseline_without_standard_error_warns(caplog: pytest.LogCaptureFixture):
    baseline = MaturedBaseline(0.8, 0.98, None, 100, 20)
    performance = performance_days([(0.5, 0.01)] * 5)
    with caplog.at_level(logging.WARNING, logger="cardfraud.monitoring.monitor"):
        alerts = performance_alerts(performance, settings_with(baseline))
    assert alerts == []
    assert "bootstrap_rounds" in caplog.text


def test_no_baseline_no_alert():
    performance = performance_days([(0.5, 0.01)] * 5)
    assert performance_alerts(performance, settings_with(None)) == []
