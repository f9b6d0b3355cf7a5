"""Tests of thresholds, delay-aware training, calibration and the train stage."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from cardfraud.params import CostParams, EvaluateParams, TrainParams
from cardfraud.paths import Workspace
from cardfraud.stages import evaluate as evaluate_stage
from cardfraud.stages import train as train_stage
from cardfraud.training import (
    TrainingError,
    check_amounts,
    check_feature_table,
    choose_thresholds,
    file_sha256,
    join_amounts,
    load_model,
    operating_thresholds,
    review_threshold_by_cost,
    train_model,
)

FEATURES = ["amount_log", "card_tx_24h", "distance_km", "night", "merchant_risk"]
START = datetime(2025, 1, 1, tzinfo=UTC)
COST = CostParams(false_alarm_minor=500, caught_fraud_minor=500, missed_fraud_share=1.0)
RULES = {"card_tx_24h": 4.0, "merchant_risk": 0.9}


def make_feature_table(
    *, rows: int = 6000, days: int = 60, seed: int = 1
) -> pl.DataFrame:
    """Build a stationary feature table whose fraud label depends on its features.

    Fraud labels arrive 1 to 20 days after the transaction.
    """
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
        -9.0
        + 1.2 * features["amount_log"]
        + 0.6 * features["card_tx_24h"]
        + 2.0 * features["merchant_risk"]
        + 1.0 * features["night"]
    )
    is_fraud = rng.uniform(size=rows) < 1.0 / (1.0 + np.exp(-logit))
    timestamps = [START + timedelta(microseconds=int(o)) for o in offsets]
    delays = rng.uniform(1.0, 20.0, rows)
    scenario = np.where(features["card_tx_24h"] >= 3, "card_testing", "takeover")
    return pl.DataFrame(
        {
            "transaction_id": [f"t{i:06d}" for i in range(rows)],
            "card_id": [f"c{i % 397:03d}" for i in range(rows)],
            "merchant_id": [f"m{i % 31:03d}" for i in range(rows)],
            "timestamp": pl.Series(timestamps, dtype=pl.Datetime("us", "UTC")),
            **features,
            "amount_minor": np.round(np.exp(features["amount_log"]) * 100).astype(
                np.int64
            ),
            "is_fraud": is_fraud,
            "label_available_at": pl.Series(
                [
                    t + timedelta(days=float(d)) if f else None
                    for t, f, d in zip(timestamps, is_fraud, delays, strict=True)
                ],
                dtype=pl.Datetime("us", "UTC"),
            ),
            "fraud_scenario": [
                s if f else None for s, f in zip(scenario, is_fraud, strict=True)
            ],
        }
    )


def make_params(**changes: object) -> TrainParams:
    """Return small, fast training parameters for 60 days of data."""
    values = {
        "cutoff": None,
        "test_days": 14,
        "maturity_days": 7,
        "burn_in_days": 0,
        "folds": 2,
        "fold_days": 7,
        "models": ["xgboost"],
        "trials": 3,
        "max_estimators": 40,
        "negative_sample_rate": 0.5,
        "imbalance": "sqrt",
        "calibration": "sigmoid",
        "threshold_rule": "cost",
        "review_alert_rate": 0.05,
        "decline_precision": 0.5,
        "cost": COST,
        "baseline_rules": RULES,
        "seed": 7,
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


def test_feature_table_rejects_naive_timestamp(table: pl.DataFrame) -> None:
    naive = table.with_columns(pl.col("timestamp").dt.replace_time_zone(None))
    with pytest.raises(TrainingError, match=r"column 'timestamp'.*UTC-aware"):
        check_feature_table(naive, feature_columns=FEATURES)


def test_amounts_required_and_joined(table: pl.DataFrame) -> None:
    without = table.drop("amount_minor")
    raw = table.select("transaction_id", "amount_minor").reverse()

    with pytest.raises(TrainingError, match="'amount_minor' is missing"):
        check_amounts(without)
    joined = join_amounts(without, raw)
    assert joined["amount_minor"].to_list() == table["amount_minor"].to_list()
    with pytest.raises(TrainingError, match="1 transaction"):
        join_amounts(without, raw.tail(raw.height - 1))


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


def test_choose_thresholds_ties_count_together() -> None:
    scores = np.array([0.9, 0.9, 0.5, 0.1])
    labels = np.array([1, 0, 0, 0])

    thresholds = choose_thresholds(
        scores, labels, review_alert_rate=0.25, decline_precision=1.0
    )

    # The two rows at 0.9 can only be flagged together: precision 1/2 < 1.0.
    assert thresholds == {"review": 0.9, "decline": 1.0}


def brute_force_cost_threshold(
    scores: np.ndarray, labels: np.ndarray, amounts: np.ndarray, cost: CostParams
) -> float:
    """Try alerting nothing and every distinct score; keep the cheapest, highest."""
    best_threshold, best_cost = 1.0, float(np.sum(amounts[labels == 1]))
    for threshold in sorted(set(scores.tolist()), reverse=True):
        alerted = scores >= threshold
        total = (
            cost.false_alarm_minor * np.sum(alerted & (labels == 0))
            + cost.caught_fraud_minor * np.sum(alerted & (labels == 1))
            + cost.missed_fraud_share * np.sum(amounts[(labels == 1) & ~alerted])
        )
        if total < best_cost:
            best_threshold, best_cost = threshold, total
    return best_threshold


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cost_threshold_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = (rng.uniform(size=400) < 0.1).astype(np.int8)
    scores = np.round(rng.uniform(size=400) * 0.5 + 0.4 * labels, 2)
    amounts = rng.integers(100, 5000, size=400)

    threshold = review_threshold_by_cost(scores, labels, amounts, cost=COST)

    assert threshold == brute_force_cost_threshold(scores, labels, amounts, COST)


def test_cost_threshold_alerts_nothing_when_reviews_cost_more() -> None:
    scores = np.array([0.9, 0.5, 0.1])
    labels = np.array([1, 0, 0])
    amounts = np.array([100, 100, 100])

    assert review_threshold_by_cost(scores, labels, amounts, cost=COST) == 1.0


def test_operating_thresholds_rules() -> None:
    labels = np.array([1, 0, 1, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.1])
    amounts = np.array([10_000, 50, 10_000, 50])

    by_cost = operating_thresholds(
        scores, labels, amounts, params=make_params(decline_precision=0.9)
    )
    by_rate = operating_thresholds(
        scores,
        labels,
        amounts,
        params=make_params(
            threshold_rule="alert_rate", review_alert_rate=0.5, decline_precision=0.9
        ),
    )

    # Alerting down to 0.7 catches both frauds for 3 reviews: 1,500 < 20,000.
    assert by_cost == {"review": 0.7, "decline": 0.9}
    assert by_rate == {"review": 0.8, "decline": 0.9}


@pytest.mark.parametrize("family", ["xgboost", "lightgbm"])
def test_training_twice_gives_identical_models(
    table: pl.DataFrame, family: str
) -> None:
    params = make_params(models=[family])
    first = train_model(
        table, feature_columns=FEATURES, params=params, data_fingerprint="x"
    )
    second = train_model(
        table, feature_columns=FEATURES, params=params, data_fingerprint="x"
    )

    first_scores = first.model.predict_proba(table)
    assert np.array_equal(first_scores, second.model.predict_proba(table))
    assert first.metrics == second.metrics
    assert first.tuning == second.tuning
    assert first.model.thresholds == second.model.thresholds
    assert np.all((first_scores >= 0.0) & (first_scores <= 1.0))
    assert first.metrics["candidate"] == family


def test_candidate_is_best_family_by_validation(table: pl.DataFrame) -> None:
    result = train_model(
        table,
        feature_columns=FEATURES,
        params=make_params(models=["xgboost", "lightgbm"]),
        data_fingerprint="x",
    )

    validation = result.metrics["validation_average_precision"]
    best = max(("xgboost", "lightgbm"), key=lambda family: validation[family])
    assert result.metrics["candidate"] == best
    assert result.model.flavour == best
    assert set(validation) == {
        "xgboost",
        "lightgbm",
        "rule_baseline",
        "logistic_regression",
    }
    families = {trial["family"] for trial in result.tuning["trials"]}
    assert families == {"xgboost", "lightgbm"}
    assert len(result.tuning["trials"]) == 6


def test_model_trains_only_on_labels_known_at_fold_start(table: pl.DataFrame) -> None:
    result = train_model(
        table,
        feature_columns=FEATURES,
        params=make_params(refit=False),
        data_fingerprint="x",
    )

    windows = result.model.meta["windows"]
    fit_end = datetime.fromisoformat(windows["fit"]["end"])
    calibration = windows["calibration"]
    assert windows["fit"]["end"] == calibration["start"]
    assert windows["test"]["start"] == "2025-02-16T00:00:00+00:00"
    assert calibration["end"] == "2025-02-09T00:00:00+00:00"
    fit_rows = table.filter(pl.col("timestamp") < fit_end)
    known = fit_rows.filter(
        pl.col("is_fraud") & (pl.col("label_available_at") <= fit_end)
    ).height
    assert result.metrics["fit_frauds"] == known
    assert result.metrics["folds"]["1"]["train_unlabelled_frauds"] > 0


def test_refit_uses_labels_known_at_cutoff(table: pl.DataFrame) -> None:
    fold_only = train_model(
        table,
        feature_columns=FEATURES,
        params=make_params(refit=False),
        data_fingerprint="x",
    )
    refitted = train_model(
        table,
        feature_columns=FEATURES,
        params=make_params(refit=True),
        data_fingerprint="x",
    )

    windows = refitted.model.meta["windows"]
    cutoff = datetime.fromisoformat(windows["test"]["start"])
    assert windows["fit"]["end"] == windows["test"]["start"]
    assert windows["fit"]["start"] == windows["train"]["start"]
    period = table.filter(pl.col("timestamp") < cutoff)
    known = period.filter(
        pl.col("is_fraud") & (pl.col("label_available_at") <= cutoff)
    ).height
    assert refitted.metrics["fit_frauds"] == known
    assert refitted.metrics["fit_frauds"] > fold_only.metrics["fit_frauds"]
    assert refitted.model.meta["fit_rows"] == refitted.metrics["fit_rows"]
    # The calibrator and thresholds come from the fold model in both cases.
    assert refitted.model.meta["calibration"] == fold_only.model.meta["calibration"]
    assert refitted.model.thresholds == fold_only.model.thresholds


def test_train_stage_writes_model_and_records(
    tmp_path: Path, table: pl.DataFrame
) -> None:
    ws = Workspace(tmp_path)
    write_features(ws, table)

    summary = train_stage.run(ws, make_params())

    meta = json.loads((ws.candidate_dir / "model_meta.json").read_text())
    metrics = json.loads((ws.metrics_dir / "train.json").read_text())
    tuning = json.loads((ws.candidate_dir / "tuning.json").read_text())
    references = json.loads((ws.candidate_dir / "references.json").read_text())
    assert (ws.candidate_dir / "model.ubj").is_file()
    assert meta["flavour"] == "xgboost"
    assert meta["feature_columns"] == FEATURES
    assert meta["data_fingerprint"] == file_sha256(ws.features_dir / "features.parquet")
    assert meta["calibration"]["method"] == "sigmoid"
    assert meta["thresholds"]["decline"] >= meta["thresholds"]["review"]
    assert len(tuning["trials"]) == 3
    assert references["rule_baseline"]["rules"] == RULES
    assert len(references["logistic_regression"]["coef"]) == len(FEATURES)
    assert metrics == {key: summary[key] for key in metrics}


def test_calibration_lowers_brier_and_ece_on_test(
    tmp_path: Path, table: pl.DataFrame
) -> None:
    ws = Workspace(tmp_path)
    write_features(ws, table)
    params = make_params(negative_sample_rate=0.2, imbalance="balanced")

    train_stage.run(ws, params)
    report = evaluate_stage.run(
        ws, EvaluateParams(bootstrap_rounds=20, seed=11, calibration_bins=10)
    )

    assert report["brier_score"]["value"] < report["brier_score_uncalibrated"]["value"]
    assert report["ece"]["value"] < report["ece_uncalibrated"]["value"]
    for name in ("calibrated", "uncalibrated"):
        curve = pl.read_csv(ws.plots_dir / f"reliability_{name}.csv")
        assert curve.columns == [
            "bin",
            "bin_low",
            "bin_high",
            "rows",
            "mean_score",
            "fraud_rate",
        ]
        assert curve["rows"].sum() == report["rows"]


def test_train_stage_reproduces_smoke_metrics(
    tmp_path: Path, smoke_workspace: Workspace, smoke_params_path: Path
) -> None:
    from cardfraud.params import load_params

    params = load_params(smoke_params_path)
    outputs = []
    for name in ("first", "second"):
        ws = Workspace(tmp_path / name)
        shutil.copytree(smoke_workspace.raw_dir, ws.raw_dir)
        shutil.copytree(smoke_workspace.features_dir, ws.features_dir)
        train_stage.run(ws, params.train)
        evaluate_stage.run(ws, params.evaluate)
        outputs.append(ws)

    for relative in ("metrics/train.json", "metrics/evaluate.json"):
        first = json.loads((outputs[0].root / relative).read_text())
        second = json.loads((outputs[1].root / relative).read_text())
        assert_close(first, second, path=relative)
    first_model = load_model(outputs[0].candidate_dir)
    second_model = load_model(outputs[1].candidate_dir)
    rows = pl.read_parquet(smoke_workspace.features_dir / "features.parquet")
    np.testing.assert_allclose(
        first_model.predict_proba(rows), second_model.predict_proba(rows), atol=1e-6
    )


def assert_close(first: object, second: object, *, path: str) -> None:
    """Assert that two JSON values are equal, numbers within 1e-6."""
    if isinstance(first, dict) and isinstance(second, dict):
        assert first.keys() == second.keys(), path
        for key in first:
            assert_close(first[key], second[key], path=f"{path}.{key}")
    elif isinstance(first, float | int) and not isinstance(first, bool):
        assert second == pytest.approx(first, abs=1e-6), path
    else:
        assert first == second, path


def test_reproduction_check_detects_change() -> None:
    with pytest.raises(AssertionError):
        assert_close({"a": {"b": 0.5}}, {"a": {"b": 0.500002}}, path="x")
    assert_close({"a": [1, 2]}, {"a": [1, 2]}, path="x")
