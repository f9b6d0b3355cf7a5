"""Published card-payment figures and hardness bounds at 1,000,000 rows (slow).

Each figure is checked against its published range, or within 20% (relative) of a
single published figure. The README section "Realism" of fraudgen lists the sources.
The hardness bounds keep fraud hidden from a model given one payment at a time.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score

import fraudgen
from fraudgen import catalogue, realism
from fraudgen.seasonality import day_factor

pytestmark = pytest.mark.slow

PRESET_SEEDS = (1, 2, 3, 4, 5)
MIN_FRAUDS_PER_SCENARIO = 100
# Share of the rows, in time order, that trains the hardness models; the rest tests.
TRAIN_SHARE = 0.7
# Largest absolute difference allowed between a configured and a realised share of
# an hour of the day or a weekday. Hour offsets are drawn per customer, not per
# payment, which adds spread beyond the sampling error of single payments.
PROFILE_TOLERANCE = 0.004


def within(value: float, low: float, high: float) -> bool:
    """Return whether ``value`` lies in the closed range ``[low, high]``."""
    return low <= value <= high


def near(value: float, published: float) -> bool:
    """Return whether ``value`` is within 20% (relative) of ``published``."""
    return abs(value - published) <= 0.2 * published


@pytest.fixture(scope="module")
def default_config() -> fraudgen.GeneratorConfig:
    return fraudgen.build_config()


@pytest.fixture(scope="module")
def default_frame(default_config) -> pl.DataFrame:
    return fraudgen.generate_frame(default_config)


@pytest.fixture(scope="module")
def figures(default_frame) -> realism.RealismFigures:
    return realism.measure(default_frame)


def test_prevalence_within_ten_percent(default_config, figures):
    target = default_config.fraud_rate
    assert abs(figures.fraud_share_count - target) <= 0.1 * target


def test_every_scenario_has_hundred_frauds(default_frame):
    counts = fraudgen.generator.scenario_counts(default_frame)
    for name in fraudgen.SCENARIOS:
        assert counts.get(name, 0) >= MIN_FRAUDS_PER_SCENARIO, name


def test_fraud_ticket_twice_average(figures):
    assert near(figures.fraud_ticket_ratio, 2.0)


def test_card_not_present_value_share(figures):
    assert within(figures.cnp_value_share, 0.24, 0.28)


def test_card_not_present_fraud_value_share(figures):
    assert within(figures.cnp_fraud_value_share, 0.80, 0.85)


def test_cross_border_value_share(figures):
    assert near(figures.cross_border_value_share, 0.11)


def test_cross_border_fraud_value_share(figures):
    assert within(figures.cross_border_fraud_value_share, 0.63, 0.71)


def test_fraud_rate_outside_eea(figures):
    assert within(figures.non_eea_fraud_rate_ratio, 10.0, 17.0)


def test_payments_per_card_month(figures):
    assert near(figures.payments_per_card_month, 9.0)


def test_internet_against_contactless_fraud_rate(figures):
    rates = figures.fraud_rate_by_channel
    # Banque de France 2023: internet 0.160% against contactless 0.011% by value.
    assert near(rates["ecommerce"] / rates["contactless"], 0.160 / 0.011)


def test_fraud_value_split_by_channel(figures):
    split = figures.fraud_value_split
    assert near(split["cnp"], 0.80)
    assert near(split["pos"], 0.15)
    assert near(split["atm"], 0.05)


def test_label_delay_shape(figures):
    assert figures.label_delay_max_days <= 120.0
    assert figures.label_within_60_days > 0.5
    assert figures.label_within_60_days >= 0.9


def test_card_testing_tiny_online(figures):
    assert figures.card_testing_small_cnp_share == 1.0


def test_preset_rates_over_five_seeds():
    counts, values = [], []
    for seed in PRESET_SEEDS:
        config = fraudgen.load_config(
            preset="published-rates", overrides={"seed": seed}
        )
        measured = realism.measure(fraudgen.generate_frame(config))
        counts.append(measured.fraud_share_count)
        values.append(measured.fraud_share_value)
    assert near(float(np.mean(counts)), 0.00015)
    assert within(float(np.mean(values)), 0.00028, 0.00031)


def expected_hour_shares(config: fraudgen.GeneratorConfig) -> np.ndarray:
    """Return the configured share of legitimate payments in each UTC hour.

    Each day's hourly profile is weighted by the day's volume factor, then shifted
    by the customers' hour offsets.
    """
    profile = np.zeros(24)
    for index in range(config.n_days):
        day = config.start + timedelta(days=index)
        weights = (
            catalogue.HOURLY_WEEKEND if day.weekday() >= 5 else catalogue.HOURLY_WEEKDAY
        )
        profile += day_factor(day) * weights / weights.sum()
    profile /= profile.sum()
    shift_weights = catalogue.HOUR_SHIFT_WEIGHTS / catalogue.HOUR_SHIFT_WEIGHTS.sum()
    shifted = np.zeros(24)
    for shift, weight in zip(catalogue.HOUR_SHIFTS, shift_weights, strict=True):
        shifted += weight * np.roll(profile, shift)
    return shifted


def expected_weekday_shares(config: fraudgen.GeneratorConfig) -> np.ndarray:
    """Return the configured share of legitimate payments per weekday, Monday first."""
    shares = np.zeros(7)
    for index in range(config.n_days):
        day: date = config.start + timedelta(days=index)
        shares[day.weekday()] += day_factor(day)
    return shares / shares.sum()


def realised_shares(frame: pl.DataFrame, unit: pl.Expr, size: int) -> np.ndarray:
    counts = frame.group_by(unit.alias("unit")).len()
    shares = np.zeros(size)
    shares[counts["unit"].to_numpy()] = counts["len"].to_numpy()
    return shares / shares.sum()


def test_hour_profile_matches_config(default_config, default_frame):
    legitimate = default_frame.filter(~pl.col("is_fraud"))
    realised = realised_shares(legitimate, pl.col("timestamp").dt.hour(), 24)
    expected = expected_hour_shares(default_config)
    assert np.abs(realised - expected).max() <= PROFILE_TOLERANCE


def test_weekday_profile_matches_config(default_config, default_frame):
    legitimate = default_frame.filter(~pl.col("is_fraud"))
    monday_first = pl.col("timestamp").dt.weekday() - 1
    realised = realised_shares(legitimate, monday_first, 7)
    expected = expected_weekday_shares(default_config)
    assert np.abs(realised - expected).max() <= PROFILE_TOLERANCE


def holdout_average_precision(features: np.ndarray, labels: np.ndarray) -> float:
    """Train on the first 70% of rows (time order) and return the holdout AP."""
    split = int(len(labels) * TRAIN_SHARE)
    model = HistGradientBoostingClassifier(max_iter=200, random_state=0)
    model.fit(features[:split], labels[:split])
    scores = model.predict_proba(features[split:])[:, 1]
    return float(average_precision_score(labels[split:], scores))


def test_amount_alone_weak(default_frame):
    columns = realism.single_payment_columns(default_frame)
    labels = default_frame["is_fraud"].to_numpy()
    ap = holdout_average_precision(columns["log_amount"][:, None], labels)
    assert ap <= 0.35


def test_single_payment_columns_weak(default_frame):
    columns = realism.single_payment_columns(default_frame)
    labels = default_frame["is_fraud"].to_numpy()
    features = np.column_stack(list(columns.values())).astype(np.float64)
    assert holdout_average_precision(features, labels) <= 0.50


def test_no_column_separates_mimicry(default_frame):
    columns = realism.single_payment_columns(default_frame)
    scenario = default_frame["fraud_scenario"]
    compared = (~default_frame["is_fraud"] | (scenario == "mimicry")).to_numpy()
    labels = (scenario == "mimicry").fill_null(False).to_numpy()[compared]
    cards = default_frame["card_id"].str.slice(1).cast(pl.Int64).to_numpy()[compared]
    for name, values in columns.items():
        separation = realism.column_separation(
            values[compared],
            labels,
            groups=cards,
            categorical=name in realism.CATEGORICAL_COLUMNS,
        )
        assert separation <= 0.60, name
