"""Behavioural tests of a small model trained on generated payments.

Invariance: renaming ids changes no score. Direction: each further payment of a
card-testing burst raises the score. Minimum function: recall per fraud scenario on
the test window stays above stated floors.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest

import fraudgen
from cardfraud.features import build_feature_table
from cardfraud.params import TrainParams, load_params
from cardfraud.paths import project_root
from cardfraud.schema import validate_frame
from cardfraud.splits import TimeWindow
from cardfraud.training import (
    TrainedModel,
    join_amounts,
    select_window,
    train_model,
)

ROWS = 30_000
BURST_PAYMENTS = 8
# Floors of recall at the review threshold on the test window. This model reaches
# about 0.92 (spree), 0.90 (takeover), 0.71 (compromised merchant), 0.39 (mimicry)
# and 0.16 (card testing); each floor is 0.1 to 0.15 lower, so that a broken feature
# or label fails the test.
# NOTE: Card testing scores low on this 30,000-row set, against 0.96 recall on the
# full-size test window; its floor only guards against losing it entirely.
RECALL_FLOORS = {
    "stolen_card_spree": 0.8,
    "account_takeover": 0.75,
    "compromised_merchant": 0.55,
    "mimicry": 0.25,
    "card_testing": 0.05,
}
PARAMS = TrainParams(
    cutoff=None,
    test_days=14,
    maturity_days=5,
    burn_in_days=3,
    folds=2,
    fold_days=7,
    models=["xgboost"],
    trials=3,
    max_estimators=120,
    negative_sample_rate=0.5,
    # Card-testing payments are too small for the cost rule to review them, so the
    # floors below hold the ranking to an alert budget of 3% instead.
    threshold_rule="alert_rate",
    review_alert_rate=0.03,
    cost={
        "false_alarm_minor": 500,
        "caught_fraud_minor": 500,
        "missed_fraud_share": 1.0,
    },
    baseline_rules={"card_count_1h": 3.0},
    seed=7,
)


@pytest.fixture(scope="module")
def transactions() -> pl.DataFrame:
    """60 days of generated payments at a 2% fraud rate."""
    config = fraudgen.build_config(
        {
            "rows": ROWS,
            "days": 60,
            "start": "2025-01-01",
            "fraud_rate": 0.02,
            "seed": 20250101,
        }
    )
    return validate_frame(fraudgen.generate_frame(config), require_labels=True)


@pytest.fixture(scope="module")
def features_params():
    return load_params(project_root() / "params.yaml").features


def feature_table(transactions: pl.DataFrame, params) -> pl.DataFrame:
    """Build the feature table and attach the amounts the cost matrix needs."""
    table = build_feature_table(transactions, params)
    return join_amounts(table, transactions)


@pytest.fixture(scope="module")
def table(transactions: pl.DataFrame, features_params) -> pl.DataFrame:
    return feature_table(transactions, features_params)


@pytest.fixture(scope="module")
def model(table: pl.DataFrame, features_params) -> TrainedModel:
    from cardfraud.features import feature_columns

    return train_model(
        table,
        feature_columns=feature_columns(features_params),
        params=PARAMS,
        data_fingerprint="behaviour",
    ).model


def test_renamed_ids_leave_scores_unchanged(
    transactions: pl.DataFrame, features_params, table: pl.DataFrame, model
) -> None:
    # A prefix keeps the order of ids, which breaks ties between equal timestamps.
    renamed = transactions.with_columns(
        ("z" + pl.col("transaction_id")).alias("transaction_id"),
        ("z" + pl.col("card_id")).alias("card_id"),
        ("z" + pl.col("merchant_id")).alias("merchant_id"),
        ("z" + pl.col("customer_id")).alias("customer_id"),
    )

    renamed_table = feature_table(renamed, features_params)

    assert renamed_table["transaction_id"].to_list() == [
        f"z{tid}" for tid in table["transaction_id"]
    ]
    assert np.array_equal(
        model.predict_proba(renamed_table), model.predict_proba(table)
    )
    assert not any(name.endswith("_id") for name in model.feature_columns)


def burst_scores(
    transactions: pl.DataFrame, features_params, model, *, card_id: str
) -> np.ndarray:
    """Append a card-testing burst to a legitimate card and score its payments.

    The burst copies the card's last payment and changes what card testing changes:
    tiny online payments at one shop of a card-testing fraud, one minute apart, from
    a device the card never used.
    """
    history = transactions.filter(pl.col("card_id") == card_id).sort("timestamp")
    template = history.tail(1)
    shop = transactions.filter(pl.col("fraud_scenario") == "card_testing").head(1)
    start = template["timestamp"][0] + timedelta(hours=3)
    burst = pl.concat(
        [
            template.with_columns(
                pl.lit(f"burst-{index:02d}").alias("transaction_id"),
                pl.lit(start + timedelta(minutes=index)).alias("timestamp"),
                pl.lit(150).cast(pl.Int64).alias("amount_minor"),
                pl.lit("burst-device").alias("device_id"),
                pl.lit(False).alias("is_fraud"),
                pl.lit(None).cast(pl.String).alias("fraud_scenario"),
                *[
                    shop[name].alias(name)
                    for name in (
                        "merchant_id",
                        "terminal_id",
                        "mcc",
                        "channel",
                        "card_present",
                        "merchant_country",
                        "merchant_lat",
                        "merchant_lon",
                    )
                ],
            )
            for index in range(BURST_PAYMENTS)
        ]
    ).select(transactions.columns)
    combined = pl.concat([transactions, burst.cast(transactions.schema)])
    scored = feature_table(combined, features_params).filter(
        pl.col("transaction_id").str.starts_with("burst-")
    )
    return model.predict_proba(scored.sort("timestamp"))


def test_card_testing_burst_raises_score(
    transactions: pl.DataFrame, features_params, model
) -> None:
    legitimate_cards = (
        transactions.group_by("card_id")
        .agg(pl.col("is_fraud").any().alias("fraud"), pl.len().alias("payments"))
        .filter(~pl.col("fraud") & (pl.col("payments") >= 20))
        .sort("card_id")["card_id"]
        .head(4)
    )

    for card_id in legitimate_cards:
        scores = burst_scores(transactions, features_params, model, card_id=card_id)
        assert scores[-1] > scores[0], card_id


def test_recall_per_scenario_above_floors(table: pl.DataFrame, model) -> None:
    test = select_window(table, TimeWindow.from_json(model.meta["windows"]["test"]))
    scores = model.predict_proba(test)
    frauds = test.with_columns(
        pl.Series("alerted", scores >= model.thresholds["review"])
    ).filter(pl.col("is_fraud"))

    recall = dict(
        frauds.group_by("fraud_scenario").agg(pl.col("alerted").mean()).iter_rows()
    )

    for scenario, floor in RECALL_FLOORS.items():
        assert recall[scenario] >= floor, (scenario, recall)
