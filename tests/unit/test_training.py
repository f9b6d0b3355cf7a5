"""Tests of the time-ordered split, deterministic training and the train stage."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from cardfraud.params import TrainParams
from cardfraud.paths import Workspace
from cardfraud.stages import train as train_stage
from cardfraud.training import (
    TrainingError,
    check_feature_table,
    choose_thresholds,
    file_sha256,
    load_model,
    positive_weight,
    split_by_time,
    train_model,
)

FEATURES = ["amount_log", "card_tx_24h", "distance_km", "night", "merchant_risk"]
START = datetime(2025, 1, 1, tzinfo=UTC)


def make_feature_table(
    *, rows: int = 3000, days: int = 40, seed: int = 1
) -> pl.DataFrame:
    """Build a small feature table whose fraud label depends on its features."""
    rng = np.random.default_rng(seed)
    offsets = np.sort(rng.integers(0, days * 86_400_000_000, size=rows))
    features = {
        "amount_log": rng.normal(3.0, 1.0, rows),
        "card_tx_24h": rng.poisson(2.0, rows).astype(np.int64),
        "distance_km": rng.exponential(20.0, rows),
        "night": rng.integers(0, 2, rows).astype(np.int64),
        "merchant_risk": rng.uniform(0.0, 1.0, rows),
    }
    logit = (
        -10.0
        + 1.2 * features["amount_log"]
        + 0.6 * features["card_tx_24h"]
        + 2.0 * features["merchant_risk"]
        + 1.0 * features["night"]
    )
    is_fraud = rng.uniform(size=rows) < 1.0 / (1.0 + np.exp(-logit))
    timestamps = [START + timedelta(microseconds=int(o)) for o in offsets]
    scenario = np.where(
        features["card_tx_24h"] >= 3, "card_testing", "account_takeover"
    )
    return pl.DataFrame(
        {
            "transaction_id": [f"t{i:06d}" for i in range(rows)],
            "card_id": [f"c{i % 97:03d}" for i in range(rows)],
            "merchant_id": [f"m{i % 31:03d}" for i in range(rows)],
            "timestamp": pl.Series(timestamps, dtype=pl.Datetime("us", "UTC")),
            **features,
            "is_fraud": is_fraud,
            "label_available_at": pl.Series(
                [
                    t + timedelta(days=5) if f else None
                    for t, f in zip(timestamps, is_fraud, strict=True)
                ],
                dtype=pl.Datetime("us", "UTC"),
            ),
            "fraud_scenario": [
                s if f else None for s, f in zip(scenario, is_fraud, strict=True)
            ],
        }
    )


def make_params(**changes: object) -> TrainParams:
    """Return small, fast training parameters."""
    values = {
        "model": "xgboost",
        "test_days": 10,
        "threshold_days": 7,
        "n_estimators": 30,
        "max_depth": 3,
        "learning_rate": 0.3,
        "seed": 7,
        "review_alert_rate": 0.05,
        "decline_precision": 0.5,
    }
    values.update(changes)
    return TrainParams(**values)


def write_features(ws: Workspace, frame: pl.DataFrame) -> None:
    """Write the feature table, spec and lineage the train stage reads."""
    ws.features_dir.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(ws.features_dir / "features.parquet")
    spec = {"feature_columns": FEATURES}
    (ws.features_dir / "feature_spec.json").write_text(json.dumps(spec))
    (ws.features_dir / "lineage.json").write_text(json.dumps({"raw": "synthetic"}))


@pytest.fixture(scope="module")
def table() -> pl.DataFrame:
    return make_feature_table()


def test_split_keeps_test_rows_out_of_training(table: pl.DataFrame) -> None:
    split = split_by_time(table, test_days=10, threshold_days=7)
    test_ids = set(split.test["transaction_id"])

    assert test_ids.isdisjoint(split.fit["transaction_id"])
    assert test_ids.isdisjoint(split.threshold["transaction_id"])
    assert split.fit["timestamp"].max() < split.threshold["timestamp"].min()
    assert split.threshold["timestamp"].max() < split.test["timestamp"].min()
    assert split.fit.height + split.threshold.height + split.test.height == table.height


def test_split_windows_are_utc_days(table: pl.DataFrame) -> None:
    split = split_by_time(table, test_days=10, threshold_days=7)

    assert split.test_window.end == datetime(2025, 2, 10, tzinfo=UTC)
    assert split.test_window.start == datetime(2025, 1, 31, tzinfo=UTC)
    assert split.threshold_window.start == datetime(2025, 1, 24, tzinfo=UTC)
    assert split.fit_window.start == START
    assert split.test["timestamp"].min() >= split.test_window.start


def test_split_rejects_window_longer_than_data(table: pl.DataFrame) -> None:
    with pytest.raises(TrainingError, match="fit window has no rows"):
        split_by_time(table, test_days=35, threshold_days=7)


def test_feature_table_rejects_naive_timestamp(table: pl.DataFrame) -> None:
    naive = table.with_columns(pl.col("timestamp").dt.replace_time_zone(None))
    with pytest.raises(TrainingError, match=r"column 'timestamp'.*UTC-aware"):
        check_feature_table(naive, feature_columns=FEATURES)


def test_feature_table_rejects_null_feature(table: pl.DataFrame) -> None:
    broken = table.with_columns(
        pl.when(pl.col("transaction_id") == "t000005")
        .then(None)
        .otherwise(pl.col("distance_km"))
        .alias("distance_km")
    )
    with pytest.raises(TrainingError, match="'distance_km' has 1 null"):
        check_feature_table(broken, feature_columns=FEATURES)


def test_feature_table_rejects_missing_column(table: pl.DataFrame) -> None:
    with pytest.raises(TrainingError, match=r"lacks column\(s\) \['night'\]"):
        check_feature_table(table.drop("night"), feature_columns=FEATURES)


def test_positive_weight_modes() -> None:
    labels = np.array([1] * 4 + [0] * 396)

    assert positive_weight(labels, imbalance="balanced") == 99.0
    assert positive_weight(labels, imbalance="sqrt") == pytest.approx(9.949874)
    assert positive_weight(labels, imbalance="none") == 1.0


def test_choose_thresholds_hand_case() -> None:
    scores = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    labels = np.array([1, 1, 0, 1, 0, 0, 1, 0, 0, 0])

    at_two_thirds = choose_thresholds(
        scores, labels, review_alert_rate=0.5, decline_precision=0.7
    )
    at_full = choose_thresholds(
        scores, labels, review_alert_rate=0.5, decline_precision=1.0
    )

    # Review flags the top 5 scores; precision at 0.7 is 3/4, at 0.8 is 2/3.
    assert at_two_thirds == {"review": 0.6, "decline": 0.7}
    # Precision stays 1.0 down to 0.9, but decline never falls below review.
    assert at_full == {"review": 0.6, "decline": 0.9}


def test_choose_thresholds_unreachable_precision() -> None:
    scores = np.array([0.9, 0.8, 0.7])
    labels = np.array([0, 1, 0])

    thresholds = choose_thresholds(
        scores, labels, review_alert_rate=0.34, decline_precision=0.9
    )

    assert thresholds == {"review": 0.8, "decline": 1.0}


def test_choose_thresholds_ties_count_together() -> None:
    scores = np.array([0.9, 0.9, 0.5, 0.1])
    labels = np.array([1, 0, 0, 0])

    thresholds = choose_thresholds(
        scores, labels, review_alert_rate=0.25, decline_precision=1.0
    )

    # The two rows at 0.9 can only be flagged together: precision 1/2 < 1.0.
    assert thresholds == {"review": 0.9, "decline": 1.0}


@pytest.mark.parametrize("flavour", ["xgboost", "lightgbm"])
def test_training_twice_gives_identical_predictions(
    table: pl.DataFrame, flavour: str
) -> None:
    params = make_params(model=flavour)
    first = train_model(
        table, feature_columns=FEATURES, params=params, data_fingerprint="x"
    )
    second = train_model(
        table, feature_columns=FEATURES, params=params, data_fingerprint="x"
    )

    first_scores = first.model.predict_proba(table)
    assert np.array_equal(first_scores, second.model.predict_proba(table))
    assert first.metrics == second.metrics
    assert first.model.thresholds == second.model.thresholds
    assert np.all((first_scores >= 0.0) & (first_scores <= 1.0))


def test_model_ranks_frauds_above_legitimate(table: pl.DataFrame) -> None:
    result = train_model(
        table, feature_columns=FEATURES, params=make_params(), data_fingerprint="x"
    )
    split = split_by_time(table, test_days=10, threshold_days=7)
    scores = result.model.predict_proba(split.test)
    labels = split.test["is_fraud"].to_numpy()

    assert roc_auc_score(labels, scores) > 0.75


def test_train_stage_writes_model_and_metrics(
    tmp_path: Path, table: pl.DataFrame
) -> None:
    ws = Workspace(tmp_path)
    write_features(ws, table)

    summary = train_stage.run(ws, make_params())

    meta = json.loads((ws.candidate_dir / "model_meta.json").read_text())
    metrics = json.loads((ws.metrics_dir / "train.json").read_text())
    assert (ws.candidate_dir / "model.ubj").is_file()
    assert meta["flavour"] == "xgboost"
    assert meta["feature_columns"] == FEATURES
    assert meta["data_fingerprint"] == file_sha256(ws.features_dir / "features.parquet")
    assert meta["windows"]["test"]["start"] == "2025-01-31T00:00:00+00:00"
    assert meta["thresholds"]["decline"] >= meta["thresholds"]["review"]
    assert (
        metrics["fit_rows"] + metrics["threshold_rows"] + metrics["test_rows"] == 3000
    )
    assert metrics["fit_frauds"] == int(
        table.filter(pl.col("timestamp") < datetime(2025, 1, 24, tzinfo=UTC))[
            "is_fraud"
        ].sum()
    )
    assert summary["data_fingerprint"] == meta["data_fingerprint"]


def test_train_stage_twice_writes_identical_files(
    tmp_path: Path, table: pl.DataFrame
) -> None:
    outputs = []
    for name in ("first", "second"):
        ws = Workspace(tmp_path / name)
        write_features(ws, table)
        train_stage.run(ws, make_params())
        outputs.append(ws)

    for relative in ("metrics/train.json", "models/candidate/model_meta.json"):
        assert (outputs[0].root / relative).read_bytes() == (
            outputs[1].root / relative
        ).read_bytes()
    first_model = load_model(outputs[0].candidate_dir)
    second_model = load_model(outputs[1].candidate_dir)
    assert np.array_equal(
        first_model.predict_proba(table), second_model.predict_proba(table)
    )
