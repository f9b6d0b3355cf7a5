"""Scheduled drift: fraud campaigns and segment behaviour shifts."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

import fraudgen
from fraudgen.config import ConfigError
from fraudgen.entities import build_population

BASE = {"rows": 20_000, "days": 28, "fraud_rate": 0.004, "seed": 5}
START = date(2025, 1, 1)


def frame_of(**drift) -> pl.DataFrame:
    return fraudgen.generate_frame(fraudgen.build_config({**BASE, "drift": drift}))


def circular_mean_hour(frame: pl.DataFrame) -> float:
    """Return the mean hour of day of ``frame``'s timestamps on a 24-hour circle."""
    angle = frame["timestamp"].dt.hour().cast(pl.Float64).to_numpy() * 2 * np.pi / 24
    mean = np.arctan2(np.sin(angle).mean(), np.cos(angle).mean())
    return float(mean * 24 / (2 * np.pi)) % 24


def test_drift_is_off_by_default():
    config = fraudgen.build_config({})
    assert config.drift.campaigns == ()
    assert config.drift.segment_shifts == ()


def test_campaign_adds_its_scenario_inside_its_window_only():
    window = {"start": "2025-01-15", "end": "2025-01-21"}
    campaign = {"scenario": "card_testing", "fraud_rate": 0.01, **window}
    baseline = frame_of()
    drifted = frame_of(campaigns=[campaign])
    # The campaign draws from its own stream: every baseline payment is still there
    # (transaction ids shift, because they number the payments of a day).
    content = ["timestamp", "card_id", "merchant_id", "amount_minor", "is_fraud"]
    assert baseline.join(drifted, on=content, how="anti").height == 0
    added = drifted.join(baseline, on=content, how="anti")
    assert added.height == drifted.height - baseline.height > 0
    assert added["is_fraud"].all()
    assert set(added["fraud_scenario"]) == {"card_testing"}
    days = added["timestamp"].dt.date()
    assert days.min() >= date(2025, 1, 15)
    assert days.max() <= date(2025, 1, 21)
    # About fraud_rate of the window's payments, within the noise of a few bursts.
    in_window = baseline.filter(
        pl.col("timestamp").dt.date().is_between(date(2025, 1, 15), date(2025, 1, 21))
    )
    expected = 0.01 * in_window.height
    assert 0.4 * expected < added.height < 2.0 * expected


def test_amount_shift_scales_only_its_segment_after_its_start():
    shift = {"segment": "student", "start": "2025-01-15", "amount_multiplier": 3.0}
    baseline = frame_of()
    drifted = frame_of(segment_shifts=[shift])
    # Counter-based draws: the same payments exist; only amounts may change.
    assert drifted.height == baseline.height
    keys = ["timestamp", "card_id", "merchant_id"]
    joined = baseline.join(drifted, on=keys, suffix="_drifted")
    assert joined.height == baseline.height
    population = build_population(fraudgen.build_config(BASE))
    students = {
        f"U{index:08d}"
        for index, segment in enumerate(population.customer_segment)
        if segment == 0
    }
    joined = joined.with_columns(
        student=pl.col("customer_id").is_in(list(students)),
        late=pl.col("timestamp").dt.date() >= date(2025, 1, 15),
        ratio=pl.col("amount_minor_drifted") / pl.col("amount_minor"),
        legitimate=~pl.col("is_fraud"),
    )
    changed = joined.filter(pl.col("legitimate") & pl.col("student") & pl.col("late"))
    unchanged = joined.filter(
        pl.col("legitimate") & ~(pl.col("student") & pl.col("late"))
    )
    assert changed.height > 100
    assert changed["ratio"].median() == pytest.approx(3.0, rel=0.01)
    assert (unchanged["ratio"] == 1.0).all()


def test_volume_and_hour_shift_change_the_segment():
    shift = {
        "segment": "affluent",
        "start": "2025-01-08",
        "volume_multiplier": 2.0,
        "hour_shift": 3,
    }
    baseline = frame_of()
    drifted = frame_of(segment_shifts=[shift])
    population = build_population(fraudgen.build_config(BASE))
    affluent = [
        f"U{index:08d}"
        for index, segment in enumerate(population.customer_segment)
        if segment == 2
    ]

    def affluent_rows(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.filter(
            ~pl.col("is_fraud")
            & pl.col("customer_id").is_in(affluent)
            & (pl.col("timestamp").dt.date() >= date(2025, 1, 8))
        )

    before, after = affluent_rows(baseline), affluent_rows(drifted)
    assert after.height / before.height == pytest.approx(2.0, rel=0.1)
    # Hours move three hours later: compare circular mean hours.
    shift_hours = (circular_mean_hour(after) - circular_mean_hour(before)) % 24
    assert shift_hours == pytest.approx(3.0, abs=0.5)
    others = baseline.filter(~pl.col("customer_id").is_in(affluent))
    assert drifted.filter(~pl.col("customer_id").is_in(affluent)).height == (
        others.height
    )


@pytest.mark.parametrize(
    ("drift", "named"),
    [
        (
            {
                "campaigns": [
                    {"scenario": "phishing", "start": "2025-01-02", "fraud_rate": 0.01}
                ]
            },
            "drift.campaigns.0.scenario",
        ),
        (
            {
                "campaigns": [
                    {
                        "scenario": "mimicry",
                        "start": "2025-01-09",
                        "end": "2025-01-02",
                        "fraud_rate": 0.01,
                    }
                ]
            },
            "drift.campaigns.0",
        ),
        (
            {
                "campaigns": [
                    {"scenario": "mimicry", "start": "2026-01-01", "fraud_rate": 0.01}
                ]
            },
            "drift.campaigns.0",
        ),
        (
            {
                "campaigns": [
                    {"scenario": "mimicry", "start": "2025-01-02", "fraud_rate": -0.1}
                ]
            },
            "drift.campaigns.0.fraud_rate",
        ),
        (
            {"segment_shifts": [{"segment": "retired", "start": "2025-01-02"}]},
            "drift.segment_shifts.0.segment",
        ),
        (
            {"segment_shifts": [{"segment": "mass", "start": "2025-03-01"}]},
            "drift.segment_shifts.0.start",
        ),
        ({"seasons": []}, "drift.seasons"),
    ],
)
def test_bad_drift_names_the_key(drift, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        fraudgen.build_config({**BASE, "drift": drift})


def test_campaign_with_zero_baseline_fraud():
    campaign = {
        "scenario": "account_takeover",
        "start": "2025-01-10",
        "fraud_rate": 0.01,
    }
    frame = fraudgen.generate_frame(
        fraudgen.build_config(
            {**BASE, "fraud_rate": 0.0, "drift": {"campaigns": [campaign]}}
        )
    )
    frauds = frame.filter(pl.col("is_fraud"))
    assert frauds.height > 0
    assert set(frauds["fraud_scenario"]) == {"account_takeover"}
    assert frauds["timestamp"].dt.date().min() >= date(2025, 1, 10)
    assert START + timedelta(days=27) >= frauds["timestamp"].dt.date().max()
