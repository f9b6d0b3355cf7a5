"""Realism figures, presets and behavioural traces on a moderate data set.

The data set has 300,000 rows over 30 days at a 1% fraud rate, so the ranges here are
wider than the published ones: a few dozen incidents per scenario leave several
points of sampling spread. The slow suite checks the published ranges at 1,000,000
rows.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import fraudgen
from fraudgen import catalogue, realism
from fraudgen.config import ConfigError
from fraudgen.generator import Generation
from fraudgen.presets import load_preset, preset_names

MODERATE = {"rows": 300_000, "days": 30, "fraud_rate": 0.01, "seed": 3}


@pytest.fixture(scope="module")
def moderate_frame() -> pl.DataFrame:
    return fraudgen.generate_frame(fraudgen.build_config(MODERATE))


@pytest.fixture(scope="module")
def figures(moderate_frame) -> realism.RealismFigures:
    return realism.measure(moderate_frame)


def test_prevalence_matches_fraud_rate(figures):
    # Over a 30-day span some compromised-merchant frauds fall after the last day and
    # are dropped, so the realised rate is a little below the target (0.94%).
    assert figures.fraud_share_count == pytest.approx(0.01, rel=0.15)


def test_fraud_ticket_about_twice_average(figures):
    assert 1.5 <= figures.fraud_ticket_ratio <= 2.8


def test_card_not_present_shares(figures):
    assert 0.20 <= figures.cnp_value_share <= 0.36
    assert 0.72 <= figures.cnp_fraud_value_share <= 0.92


def test_cross_border_shares(figures):
    assert 0.07 <= figures.cross_border_value_share <= 0.18
    assert 0.50 <= figures.cross_border_fraud_value_share <= 0.80


def test_fraud_rate_higher_outside_eea(figures):
    assert 6.0 <= figures.non_eea_fraud_rate_ratio <= 30.0


def test_payments_per_card_month(figures):
    assert 8.5 <= figures.payments_per_card_month <= 10.0


def test_internet_riskier_than_contactless(figures):
    rates = figures.fraud_rate_by_channel
    assert rates["ecommerce"] > 8 * rates["contactless"]
    assert rates["ecommerce"] > rates["pos"]


def test_fraud_value_split_by_channel(figures):
    split = figures.fraud_value_split
    assert sum(split.values()) == pytest.approx(1.0)
    assert 0.72 <= split["cnp"] <= 0.92
    assert 0.06 <= split["pos"] <= 0.25
    assert 0.01 <= split["atm"] <= 0.10


def test_label_delay_shape(figures):
    assert figures.label_delay_max_days <= 120.0
    assert figures.label_within_60_days >= 0.85
    assert 7.0 <= figures.label_delay_median_days <= 30.0


def test_card_testing_small_online(figures):
    assert figures.card_testing_small_cnp_share == 1.0


def test_legitimate_withdrawals_mostly_domestic(moderate_frame):
    withdrawals = moderate_frame.filter(
        (pl.col("channel") == "atm") & ~pl.col("is_fraud")
    )
    abroad = (withdrawals["merchant_country"] != withdrawals["card_country"]).mean()
    # Only travel takes a withdrawal abroad: travel_share is 5% by default.
    assert abroad < 0.08


def test_measure_rejects_frame_without_fraud(make_config):
    frame = fraudgen.generate_frame(make_config(fraud_rate=0.0))
    with pytest.raises(ValueError, match="no fraudulent payment"):
        realism.measure(frame)


def seconds_since_previous_payment(frame: pl.DataFrame) -> pl.DataFrame:
    """Add ``gap_s``: seconds since the same card's previous payment (null if none)."""
    return frame.sort("card_id", "timestamp").with_columns(
        gap_s=pl.col("timestamp").diff().over("card_id").dt.total_seconds()
    )


@pytest.mark.parametrize(
    ("scenario", "min_share"),
    [
        ("card_testing", 0.8),
        ("stolen_card_spree", 0.6),
        ("account_takeover", 0.4),
        ("compromised_merchant", 0.5),
        ("mimicry", 0.6),
    ],
)
def test_fraud_follows_recent_payment(moderate_frame, scenario, min_share):
    gaps = seconds_since_previous_payment(moderate_frame)
    within_3h = pl.col("gap_s").fill_null(10**9) < 3 * 3600
    legitimate = gaps.filter(~pl.col("is_fraud")).select(within_3h.mean()).item()
    fraud = (
        gaps.filter(pl.col("fraud_scenario") == scenario)
        .select(within_3h.mean())
        .item()
    )
    assert legitimate < 0.15
    assert fraud >= min_share


def test_mimicry_bursts_fit_duration(moderate_frame):
    settings = fraudgen.build_config().scenarios.mimicry
    bursts = (
        moderate_frame.filter(pl.col("fraud_scenario") == "mimicry")
        .group_by("card_id")
        .agg(
            span_h=(pl.col("timestamp").max() - pl.col("timestamp").min())
            .dt.total_seconds()
            .truediv(3600),
            payments=pl.len(),
        )
    )
    assert bursts["payments"].min() >= settings.payments.min
    assert bursts["span_h"].max() <= settings.duration_hours.max


def test_mimicry_uses_customer_devices(moderate_frame):
    population = Generation(fraudgen.build_config(MODERATE)).population
    mimicry = moderate_frame.filter(
        (pl.col("fraud_scenario") == "mimicry") & (pl.col("channel") == "ecommerce")
    )
    customer = mimicry["customer_id"].str.slice(1).cast(pl.Int64).to_numpy()
    device = mimicry["device_id"].str.slice(1).cast(pl.Int64).to_numpy()
    own_devices = population.customer_devices[customer]
    assert mimicry.height > 0
    assert (own_devices == device[:, None]).any(axis=1).all()


def test_preset_published_rates_listed():
    assert "published-rates" in preset_names()
    assert load_preset("published-rates") == {"fraud_rate": 0.000155, "rows": 5_000_000}


def test_load_config_applies_preset():
    config = fraudgen.load_config(preset="published-rates")
    defaults = fraudgen.build_config()
    assert config.fraud_rate == 0.000155
    assert config.rows == 5_000_000
    assert config.scenario_mix == defaults.scenario_mix
    assert config.scenarios == defaults.scenarios


def test_file_and_overrides_beat_preset(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("fraud_rate: 0.001\ncards: 500\n", encoding="utf-8")
    config = fraudgen.load_config(path, preset="published-rates", overrides={"seed": 5})
    assert config.fraud_rate == 0.001
    assert config.cards == 500
    assert config.rows is None
    assert config.seed == 5


def test_unknown_preset_rejected():
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        fraudgen.load_config(preset="nope")


def test_roc_auc_known_value():
    labels = np.array([False, False, True, True])
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    assert realism.roc_auc(labels, scores) == pytest.approx(0.75)


def test_roc_auc_counts_ties_as_half():
    labels = np.array([False, True])
    assert realism.roc_auc(labels, np.array([1.0, 1.0])) == pytest.approx(0.5)


def test_column_separation_category_only_in_positives():
    values = np.array([0, 1] * 50)
    labels = values == 1
    groups = np.arange(100) // 2
    separation = realism.column_separation(
        values, labels, groups=groups, categorical=True
    )
    assert separation == pytest.approx(1.0)


def test_single_payment_columns_shapes(moderate_frame):
    columns = realism.single_payment_columns(moderate_frame.head(1000))
    assert set(realism.CATEGORICAL_COLUMNS) <= set(columns)
    assert all(len(values) == 1000 for values in columns.values())
    assert columns["distance_km"].min() >= 0.0
    assert set(np.unique(columns["outside_eea"])) <= {0, 1}


def test_eea_countries_cover_issuers():
    issuers = {city.country for city in catalogue.CITIES if city.issuer}
    assert issuers <= set(catalogue.EEA_COUNTRIES)
    assert "GB" not in catalogue.EEA_COUNTRIES
