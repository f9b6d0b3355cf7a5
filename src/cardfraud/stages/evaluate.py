"""Stage evaluate: score the test window and write metrics and plot data."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from cardfraud.evaluation import (
    HoldoutScores,
    MetricSettings,
    alerts_per_day,
    card_precision_at_k,
    day_bootstrap_mean,
    evaluate_rows,
    nest_metrics,
    pr_curve_points,
    reliability_table,
    roc_curve_points,
    scenario_array,
    scenario_recall,
)
from cardfraud.params import CostParams, EvaluateParams
from cardfraud.paths import Workspace
from cardfraud.splits import TimeWindow, known_compromised_cards
from cardfraud.stages.train import FEATURES_FILE, with_amounts, write_json
from cardfraud.training import (
    AMOUNT_COLUMN,
    REFERENCES_FILE,
    TrainedModel,
    feature_matrix,
    label_vector,
    load_model,
    read_feature_table,
    round_metrics,
    select_window,
)
from cardfraud.tuning import LogisticModel, rule_scores

logger = logging.getLogger(__name__)

METRICS_FILE = "evaluate.json"
RELIABILITY_FILES = {
    "calibrated": "reliability_calibrated.csv",
    "uncalibrated": "reliability_uncalibrated.csv",
}
CARD_PRECISION_FILE = "card_precision.csv"
COMPARISON_FILE = "model_comparison.csv"


def run(ws: Workspace, params: EvaluateParams) -> dict[str, Any]:
    """Evaluate the saved model and the reference models on the test window.

    Writes ``evaluate.json`` to ``ws.metrics_dir``, and ``pr_curve.csv``,
    ``roc_curve.csv``, ``scenario_recall.csv``, the reliability curves,
    ``card_precision.csv`` and ``model_comparison.csv`` to ``ws.plots_dir``.

    Returns:
        The content of ``evaluate.json``.
    """
    model = load_model(ws.candidate_dir)
    frame = read_feature_table(
        ws.features_dir / FEATURES_FILE, feature_columns=model.feature_columns
    )
    frame = with_amounts(frame, ws.raw_dir)
    windows = model.meta["windows"]
    test_window = TimeWindow.from_json(windows["test"])
    test = select_window(frame, test_window)
    data = holdout_scores(model, test, read_references(ws.candidate_dir))
    settings = MetricSettings(
        thresholds=model.thresholds,
        cost=CostParams(**model.meta["cost"]),
        fpr_target=params.fpr_target,
        bins=params.calibration_bins,
    )
    rows = evaluate_rows(
        data, settings, rounds=params.bootstrap_rounds, seed=params.seed
    )

    known = known_compromised_cards(
        frame,
        known_at=test_window.start,
        maturity=timedelta(days=windows["maturity_days"]),
    )
    days = (test_window.end - test_window.start).days
    k = alerts_per_day(test.height, days, alerts_per_10000=params.alerts_per_10000)
    daily = card_precision_at_k(test, data.calibrated, k=k, known_cards=known.to_list())
    recall_table = scenario_recall(
        test, scores=data.calibrated, threshold=model.thresholds["review"]
    )
    report = round_metrics(
        {
            "rows": int(data.labels.size),
            "frauds": int(data.labels.sum()),
            "days": days,
            "thresholds": dict(model.thresholds),
            "fpr_target": params.fpr_target,
            "card_precision_k": k,
            "known_compromised_cards": known.len(),
            "card_precision_left_out_rows": test.height
            - int(daily["transactions"].sum()),
            "card_precision_at_k_max": float(daily["max_card_precision"].mean()),
            "card_precision_at_k": day_bootstrap_mean(
                daily["card_precision"].to_numpy(),
                rounds=params.bootstrap_rounds,
                seed=params.seed,
            ),
            **nest_metrics(rows),
            "scenario_recall": dict(
                zip(recall_table["scenario"], recall_table["recall"], strict=True)
            ),
        }
    )
    write_json(ws.metrics_dir / METRICS_FILE, report)
    write_plots(ws.plots_dir, data, recall_table, daily, report, params=params)
    logger.info(
        "test average precision %.4f on %d rows; Card Precision@%d %.4f",
        report["average_precision"]["value"],
        report["rows"],
        k,
        report["card_precision_at_k"]["value"],
    )
    return report


def read_references(folder: Path) -> dict[str, Any] | None:
    """Read ``references.json`` from the candidate folder; None when absent."""
    path = folder / REFERENCES_FILE
    if not path.is_file():
        logger.warning("%s not found; the reference models are not evaluated", path)
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def holdout_scores(
    model: TrainedModel, test: pl.DataFrame, references: dict[str, Any] | None
) -> HoldoutScores:
    """Score the test rows with the candidate and the reference models."""
    reference_scores: dict[str, np.ndarray] = {}
    if references is not None:
        columns = list(references["feature_columns"])
        matrix = feature_matrix(test, columns)
        reference_scores["rule_baseline"] = rule_scores(
            matrix,
            rules=references["rule_baseline"]["rules"],
            feature_columns=columns,
        )
        reference_scores["logistic_regression"] = LogisticModel.from_json(
            references["logistic_regression"]
        ).predict(matrix)
    return HoldoutScores(
        labels=label_vector(test),
        calibrated=model.predict_proba(test),
        uncalibrated=model.predict_raw(test),
        amounts=test[AMOUNT_COLUMN].to_numpy(),
        scenarios=scenario_array(test),
        references=reference_scores,
    )


def write_plots(
    folder: Path,
    data: HoldoutScores,
    recall_table: pl.DataFrame,
    daily: pl.DataFrame,
    report: dict[str, Any],
    *,
    params: EvaluateParams,
) -> None:
    """Write the plot data files that dvc.yaml's plots section draws."""
    folder.mkdir(parents=True, exist_ok=True)
    pr_curve_points(data.labels, data.calibrated).write_csv(folder / "pr_curve.csv")
    roc_curve_points(data.labels, data.calibrated).write_csv(folder / "roc_curve.csv")
    recall_table.with_columns(recall_table["recall"].round(6)).write_csv(
        folder / "scenario_recall.csv"
    )
    for name, file_name in RELIABILITY_FILES.items():
        scores = data.calibrated if name == "calibrated" else data.uncalibrated
        reliability_table(data.labels, scores, bins=params.calibration_bins).write_csv(
            folder / file_name
        )
    daily.write_csv(folder / CARD_PRECISION_FILE)
    comparison_table(report).write_csv(folder / COMPARISON_FILE)


def comparison_table(report: dict[str, Any]) -> pl.DataFrame:
    """Return test average precision and ROC AUC of the candidate and references.

    Returns:
        Columns model (String), average_precision, ap_ci_low, ap_ci_high, roc_auc
        (Float64); the candidate first, then the references by name.
    """
    entries = {"candidate": report}
    entries.update(sorted(report.get("reference", {}).items()))
    rows = []
    for name, metrics in entries.items():
        precision = metrics["average_precision"]
        rows.append(
            {
                "model": name,
                "average_precision": precision["value"],
                "ap_ci_low": precision.get("ci_low"),
                "ap_ci_high": precision.get("ci_high"),
                "roc_auc": metrics["roc_auc"]["value"],
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "model": pl.String,
            "average_precision": pl.Float64,
            "ap_ci_low": pl.Float64,
            "ap_ci_high": pl.Float64,
            "roc_auc": pl.Float64,
        },
    )
