"""Tests of SHAP contributions and of the train, evaluate and explain stages."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
import xgboost as xgb

from cardfraud.explain import (
    SampleExplanation,
    explain_rows,
    max_difference_from_shap,
    sample_rows,
    shap_importance,
    shap_sample_frame,
)
from cardfraud.params import EvaluateParams, ExplainParams, TrainParams
from cardfraud.paths import Workspace
from cardfraud.stages import evaluate as evaluate_stage
from cardfraud.stages import explain as explain_stage
from cardfraud.stages import train as train_stage
from cardfraud.training import load_model, train_model

FEATURES = ["amount_log", "velocity", "merchant_risk", "noise"]


def make_feature_table(
    *, rows: int = 2500, days: int = 30, seed: int = 2
) -> pl.DataFrame:
    """Build a small feature table whose fraud label depends on three features."""
    rng = np.random.default_rng(seed)
    start = datetime(2025, 3, 1, tzinfo=UTC)
    offsets = np.sort(rng.integers(0, days * 86_400_000_000, size=rows))
    features = {
        "amount_log": rng.normal(3.0, 1.0, rows),
        "velocity": rng.poisson(2.0, rows).astype(np.int64),
        "merchant_risk": rng.uniform(0.0, 1.0, rows),
        "noise": rng.normal(size=rows),
    }
    logit = (
        -9.0
        + 1.2 * features["amount_log"]
        + 0.8 * features["velocity"]
        + 2.0 * features["merchant_risk"]
    )
    is_fraud = rng.uniform(size=rows) < 1.0 / (1.0 + np.exp(-logit))
    scenario = np.where(features["velocity"] >= 3, "card_testing", "takeover")
    return pl.DataFrame(
        {
            "transaction_id": [f"t{i:06d}" for i in range(rows)],
            "card_id": [f"c{i % 53:03d}" for i in range(rows)],
            "merchant_id": [f"m{i % 17:03d}" for i in range(rows)],
            "timestamp": pl.Series(
                [start + timedelta(microseconds=int(o)) for o in offsets],
                dtype=pl.Datetime("us", "UTC"),
            ),
            **features,
            "amount_minor": rng.integers(500, 50_000, rows),
            "is_fraud": is_fraud,
            "fraud_scenario": [
                s if f else None for s, f in zip(scenario, is_fraud, strict=True)
            ],
        }
    )


TRAIN_PARAMS = TrainParams(
    cutoff=None,
    test_days=8,
    maturity_days=2,
    folds=1,
    fold_days=6,
    models=["xgboost"],
    trials=2,
    max_estimators=25,
    negative_sample_rate=1.0,
    review_alert_rate=0.05,
    decline_precision=0.5,
    cost={
        "false_alarm_minor": 500,
        "caught_fraud_minor": 500,
        "missed_fraud_share": 1.0,
    },
    baseline_rules={"velocity": 4.0},
    seed=3,
)


@pytest.fixture(scope="module")
def table() -> pl.DataFrame:
    return make_feature_table()


@pytest.fixture(scope="module")
def workspace(
    tmp_path_factory: pytest.TempPathFactory, table: pl.DataFrame
) -> Workspace:
    """A workspace after the train, evaluate and explain stages."""
    ws = Workspace(tmp_path_factory.mktemp("explain-ws"))
    ws.features_dir.mkdir(parents=True)
    table.write_parquet(ws.features_dir / "features.parquet")
    (ws.features_dir / "feature_spec.json").write_text(
        json.dumps({"feature_columns": FEATURES})
    )
    train_stage.run(ws, TRAIN_PARAMS)
    evaluate_stage.run(ws, EvaluateParams(bootstrap_rounds=50, seed=11))
    explain_stage.run(ws, ExplainParams(sample_rows=300, seed=13))
    return ws


@pytest.mark.parametrize("flavour", ["xgboost", "lightgbm"])
def test_contributions_add_up_to_margin(table: pl.DataFrame, flavour: str) -> None:
    params = TRAIN_PARAMS.model_copy(update={"models": [flavour]})
    model = train_model(
        table, feature_columns=FEATURES, params=params, data_fingerprint="x"
    ).model

    base_value, contributions = model.contributions(table)
    margin = model.predict_margin(table)

    assert contributions.shape == (table.height, len(FEATURES))
    np.testing.assert_allclose(
        base_value + contributions.sum(axis=1), margin, atol=1e-5
    )


def test_base_value_comes_from_model_not_half(table: pl.DataFrame) -> None:
    model = train_model(
        table, feature_columns=FEATURES, params=TRAIN_PARAMS, data_fingerprint="x"
    ).model
    config = json.loads(model.booster.save_config())
    base_score = float(
        config["learner"]["learner_model_param"]["base_score"].strip("[]")
    )

    # XGBoost estimates base_score from the labels, so it is far from 0.5 here.
    assert abs(base_score - 0.5) > 0.1
    assert model.expected_margin() == pytest.approx(model.contributions(table)[0])


def test_contributions_match_shap_tree_explainer(table: pl.DataFrame) -> None:
    model = train_model(
        table, feature_columns=FEATURES, params=TRAIN_PARAMS, data_fingerprint="x"
    ).model
    explanation = explain_rows(model, table.head(200))

    assert max_difference_from_shap(model, explanation) < 1e-4


def test_contributions_on_split_threshold_value(table: pl.DataFrame) -> None:
    model = train_model(
        table, feature_columns=FEATURES, params=TRAIN_PARAMS, data_fingerprint="x"
    ).model
    dump = model.booster.trees_to_dataframe()
    split = dump[dump["Feature"] != "Leaf"].iloc[0]
    row = np.zeros((1, len(FEATURES)))
    row[0, int(split["Feature"].lstrip("f"))] = float(split["Split"])

    base_value, contributions = model.contributions(row)

    assert base_value + contributions.sum() == pytest.approx(
        float(model.predict_margin(row)[0]), abs=1e-5
    )


def test_sample_rows_is_seeded_and_ordered(table: pl.DataFrame) -> None:
    first = sample_rows(table, rows=100, seed=13)
    again = sample_rows(table, rows=100, seed=13)
    other = sample_rows(table, rows=100, seed=14)

    assert first["transaction_id"].to_list() == again["transaction_id"].to_list()
    assert first["transaction_id"].to_list() != other["transaction_id"].to_list()
    assert first["transaction_id"].is_sorted()
    assert sample_rows(table.head(10), rows=100, seed=13).height == 10


def test_shap_importance_orders_by_mean_absolute_value() -> None:
    contributions = np.array([[0.5, -2.0, 0.0], [-0.5, 1.0, 0.0]])

    table = shap_importance(contributions, ["a", "b", "c"])

    assert table.to_dicts() == [
        {"feature": "b", "mean_abs_shap": 1.5},
        {"feature": "a", "mean_abs_shap": 0.5},
        {"feature": "c", "mean_abs_shap": 0.0},
    ]


def test_shap_sample_frame_columns() -> None:
    frame = pl.DataFrame({"transaction_id": ["t1", "t2"]})
    explanation = SampleExplanation(
        base_value=-3.0,
        contributions=np.array([[0.1, 0.2], [0.3, 0.4]]),
        matrix=np.array([[1.0, 2.0], [3.0, 4.0]]),
    )

    sample = shap_sample_frame(frame, explanation, feature_columns=["x", "y"])

    assert sample.columns == [
        "transaction_id",
        "base_value",
        "x",
        "y",
        "shap__x",
        "shap__y",
    ]
    assert sample["shap__y"].to_list() == [0.2, 0.4]
    assert sample["base_value"].to_list() == [-3.0, -3.0]


def test_explain_stage_writes_importance_and_sample(workspace: Workspace) -> None:
    importance = pl.read_csv(workspace.plots_dir / "shap_importance.csv")
    sample = pl.read_parquet(workspace.explain_dir / "shap_sample.parquet")
    model = load_model(workspace.candidate_dir)

    assert importance.columns == ["feature", "mean_abs_shap"]
    assert sorted(importance["feature"]) == sorted(FEATURES)
    assert importance["feature"][-1] == "noise"
    assert sample.height == 300
    margins = model.predict_margin(sample.select(FEATURES))
    shap_sum = sample.select(
        pl.sum_horizontal([f"shap__{name}" for name in FEATURES])
    ).to_series()
    np.testing.assert_allclose(
        sample["base_value"].to_numpy() + shap_sum.to_numpy(), margins, atol=1e-5
    )


def test_evaluate_stage_writes_metrics_and_plots(workspace: Workspace) -> None:
    report = json.loads((workspace.metrics_dir / "evaluate.json").read_text())
    pr = pl.read_csv(workspace.plots_dir / "pr_curve.csv")
    roc = pl.read_csv(workspace.plots_dir / "roc_curve.csv")
    scenarios = pl.read_csv(workspace.plots_dir / "scenario_recall.csv")

    average_precision = report["average_precision"]
    assert report["rows"] > 0
    assert 0.0 < average_precision["value"] <= 1.0
    assert average_precision["ci_low"] <= average_precision["value"]
    assert average_precision["value"] <= average_precision["ci_high"]
    assert report["roc_auc"]["value"] > 0.75
    assert average_precision["value"] == round(average_precision["value"], 6)
    assert pr.columns == ["recall", "precision"]
    assert roc.columns == ["fpr", "tpr"]
    assert scenarios.columns == ["scenario", "frauds", "detected", "recall"]
    assert set(report["scenario_recall"]) == set(scenarios["scenario"])
    assert scenarios["frauds"].sum() == report["frauds"]


def test_evaluate_stage_is_repeatable(workspace: Workspace) -> None:
    before = (workspace.metrics_dir / "evaluate.json").read_bytes()
    curve_before = (workspace.plots_dir / "pr_curve.csv").read_bytes()

    evaluate_stage.run(workspace, EvaluateParams(bootstrap_rounds=50, seed=11))

    assert (workspace.metrics_dir / "evaluate.json").read_bytes() == before
    assert (workspace.plots_dir / "pr_curve.csv").read_bytes() == curve_before


def test_xgboost_contributions_use_float32_inputs(table: pl.DataFrame) -> None:
    model = train_model(
        table, feature_columns=FEATURES, params=TRAIN_PARAMS, data_fingerprint="x"
    ).model
    matrix = table.select(FEATURES).to_numpy()
    direct = model.booster.predict(xgb.DMatrix(matrix), pred_contribs=True)

    _, contributions = model.contributions(matrix.astype(np.float32))

    np.testing.assert_allclose(contributions, direct[:, :-1], atol=1e-6)
