"""Drift statistics and matured labels, cross-checked against slow references."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from scipy import stats

from cardfraud.evaluation import (
    Ranking,
    average_precision,
    precision_at,
    ranking_metrics,
    recall_at,
)
from cardfraud.monitoring.drift import (
    categorical_drift,
    daily_drift,
    jensen_shannon_distance,
    level_bins,
    numeric_drift,
    population_stability_index,
    windowed_counts,
)
from cardfraud.monitoring.performance import (
    TARGET,
    card_bootstrap_intervals,
    card_weighted_metrics,
    label_status,
    naive_labels,
)
from cardfraud.monitoring.reference import (
    PROFILE_FILE,
    ReferenceProfile,
    bin_shares,
    build_profile,
    categorical_reference,
    numeric_reference,
    quantile_edges,
    read_profile,
    write_profile,
)


def psi_reference(actual: list[float], expected: list[float]) -> float:
    """PSI written out term by term."""
    total = 0.0
    for a, e in zip(actual, expected, strict=True):
        a, e = max(a, 1e-4), max(e, 1e-4)
        total += (a - e) * np.log(a / e)
    return total


def test_psi_matches_term_by_term_sum():
    actual = np.array([[0.1, 0.2, 0.3, 0.4], [0.25, 0.25, 0.25, 0.25]])
    expected = np.array([0.25, 0.25, 0.25, 0.25])
    values = population_stability_index(actual, expected)
    assert values[0] == pytest.approx(psi_reference([0.1, 0.2, 0.3, 0.4], expected))
    assert values[1] == 0.0


def test_psi_empty_bin_stays_finite():
    value = population_stability_index(np.array([[0.0, 1.0]]), np.array([0.5, 0.5]))
    assert np.isfinite(value[0])
    assert value[0] > 1.0


def test_jensen_shannon_matches_scipy():
    rng = np.random.default_rng(3)
    actual = rng.dirichlet(np.ones(6), size=4)
    expected = rng.dirichlet(np.ones(6))
    ours = jensen_shannon_distance(actual, expected)
    from scipy.spatial.distance import jensenshannon

    for row, value in zip(actual, ours, strict=True):
        assert value == pytest.approx(jensenshannon(row, expected, base=2), abs=1e-9)


def test_quantile_edges_collapse_ties():
    values = np.concatenate([np.zeros(900), np.arange(1, 101, dtype=float)])
    edges = quantile_edges(values, 10)
    shares = bin_shares(values, edges)
    assert edges[0] > 0.0
    assert shares[0] == pytest.approx(0.9)
    assert shares.sum() == pytest.approx(1.0)


def test_level_bins_maps_unknown_to_other():
    levels = np.array([3.0, 1.0, 7.0])
    bins = level_bins(np.array([1.0, 7.0, 3.0, 5.0, 9.0]), levels)
    assert bins.tolist() == [1, 2, 0, 3, 3]


def test_windowed_counts_sum_trailing_days():
    counts = np.array([[1, 0], [2, 1], [3, 2], [4, 3]])
    assert windowed_counts(counts, 2).tolist() == [[1, 0], [3, 1], [5, 3], [7, 5]]
    assert windowed_counts(counts, 1).tolist() == counts.tolist()


def test_numeric_ks_close_to_exact_two_sample():
    rng = np.random.default_rng(5)
    reference_values = rng.normal(size=20_000)
    shifted = rng.normal(loc=0.3, size=2_000)
    reference = numeric_reference(reference_values)
    result = numeric_drift(
        shifted,
        np.zeros(shifted.size, dtype=np.int64),
        reference,
        days=1,
        window_days=1,
        reference_rows=reference_values.size,
    )
    exact = stats.ks_2samp(shifted, reference_values).statistic
    assert result["ks"][0] <= exact + 1e-9
    assert result["ks"][0] == pytest.approx(exact, abs=0.02)
    assert result["ks_pvalue"][0] < 1e-6


def test_categorical_chi2_matches_scipy():
    reference = categorical_reference(np.repeat([0.0, 1.0, 2.0], [500, 300, 200]))
    observed = np.repeat([0.0, 1.0, 2.0], [40, 40, 20])
    result = categorical_drift(
        observed, np.zeros(100, dtype=np.int64), reference, days=1, window_days=1
    )
    expected = np.maximum(reference.shares, 1e-4)
    expected = expected / expected.sum() * 100
    scipy_result = stats.chisquare([40, 40, 20, 0], expected)
    assert result["chi2"][0] == pytest.approx(scipy_result.statistic)
    assert result["chi2_pvalue"][0] == pytest.approx(scipy_result.pvalue)


def profile_frame(rng: np.random.Generator, rows: int, shift: float) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "log_amount": rng.normal(3.0 + shift, 1.0, rows),
            "channel_code": rng.integers(0, 4, rows).astype(float),
        }
    )


def test_profile_round_trips_through_json(tmp_path):
    rng = np.random.default_rng(1)
    frame = profile_frame(rng, 5_000, 0.0)
    profile = build_profile(
        frame,
        feature_columns=["log_amount", "channel_code"],
        scores=rng.random(5_000),
        window={
            "start": "2025-01-01T00:00:00+00:00",
            "end": "2025-02-01T00:00:00+00:00",
        },
    )
    write_profile(profile, tmp_path)
    loaded = read_profile(tmp_path)
    assert (tmp_path / PROFILE_FILE).is_file()
    assert loaded.rows == 5_000
    assert set(loaded.columns) == {"log_amount", "channel_code", "score"}
    assert loaded.to_json() == profile.to_json()
    assert isinstance(loaded, ReferenceProfile)


def test_daily_drift_flags_only_shifted_days():
    rng = np.random.default_rng(2)
    reference = profile_frame(rng, 20_000, 0.0)
    profile = build_profile(
        reference,
        feature_columns=["log_amount", "channel_code"],
        scores=rng.random(20_000),
        window={"start": "", "end": ""},
    )
    days = []
    for offset, shift in enumerate([0.0, 0.0, 1.0]):
        day = profile_frame(rng, 2_000, shift).with_columns(
            day=pl.lit(date(2025, 3, 1) + timedelta(days=offset)),
            score=pl.lit(0.5),
        )
        days.append(day)
    drift = daily_drift(
        pl.concat(days), profile, columns=["log_amount", "channel_code"]
    )
    amount = drift.filter(pl.col("column") == "log_amount")["psi"].to_list()
    channel = drift.filter(pl.col("column") == "channel_code")
    assert amount[0] < 0.02
    assert amount[1] < 0.02
    assert amount[2] > 0.5
    assert channel["psi"].max() < 0.02
    assert channel["ks"].null_count() == 3
    assert channel["js_distance"].null_count() == 0


def decisions_frame() -> pl.DataFrame:
    start = datetime(2025, 3, 1, tzinfo=UTC)
    return pl.DataFrame(
        {
            "transaction_id": ["old-fraud", "old-legit", "new-fraud", "new-quiet"],
            "timestamp": [
                start,
                start,
                start + timedelta(days=25),
                start + timedelta(days=25),
            ],
            "card_id": ["a", "b", "c", "d"],
        }
    )


def label_events(start: datetime) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "transaction_id": ["old-fraud", "new-fraud", "new-quiet"],
            "label_available_at": [
                start + timedelta(days=3),
                start + timedelta(days=27),
                start + timedelta(days=60),
            ],
        }
    )


def test_label_status_keeps_unlabelled_apart():
    start = datetime(2025, 3, 1, tzinfo=UTC)
    known_at = start + timedelta(days=30)
    labelled = label_status(
        decisions_frame(), label_events(start), known_at=known_at, maturity_days=20
    )
    targets = dict(zip(labelled["transaction_id"], labelled[TARGET], strict=True))
    assert targets == {
        "old-fraud": 1,
        "old-legit": 0,
        "new-fraud": 1,
        "new-quiet": None,
    }


def test_naive_labels_count_unreported_as_legitimate():
    start = datetime(2025, 3, 1, tzinfo=UTC)
    labelled = naive_labels(
        decisions_frame(), label_events(start), known_at=start + timedelta(days=30)
    )
    targets = dict(zip(labelled["transaction_id"], labelled[TARGET], strict=True))
    assert targets["new-quiet"] == 0


def test_card_weighted_metrics_match_evaluation():
    rng = np.random.default_rng(6)
    labels = (rng.random(3_000) < 0.05).astype(float)
    scores = np.round(rng.random(3_000) + labels * 0.5, 2)
    cards = rng.integers(0, 500, 3_000)
    drawn = np.vstack([np.ones(500), rng.integers(0, 3, 500).astype(float)])
    metrics = card_weighted_metrics(labels, scores, cards, drawn, threshold=0.9)
    row_weights = drawn[1][cards]
    weighted_ap = ranking_metrics(
        Ranking.of(scores), labels, row_weights, fpr_target=0.0
    )["average_precision"]
    alerted = scores >= 0.9
    assert metrics["average_precision"][0] == pytest.approx(
        average_precision(labels, scores)
    )
    assert metrics["average_precision"][1] == pytest.approx(weighted_ap)
    assert metrics["precision"][0] == pytest.approx(
        precision_at(labels, scores, threshold=0.9)
    )
    assert metrics["recall"][0] == pytest.approx(
        recall_at(labels, scores, threshold=0.9)
    )
    assert metrics["precision"][1] == pytest.approx(
        np.sum(row_weights * labels * alerted) / np.sum(row_weights * alerted)
    )


def test_card_bootstrap_interval_contains_point():
    rng = np.random.default_rng(4)
    labels = (rng.random(2_000) < 0.05).astype(float)
    scores = rng.random(2_000) + labels * 0.3
    cards = rng.integers(0, 400, 2_000)
    intervals = card_bootstrap_intervals(
        labels,
        scores,
        np.unique(cards, return_inverse=True)[1],
        threshold=0.9,
        rounds=200,
        seed=1,
    )
    low, high = intervals["average_precision"]
    point = average_precision(labels, scores)
    assert low < point < high
    assert high - low < 0.3
    assert set(intervals) == {"average_precision", "precision", "recall", "roc_auc"}
