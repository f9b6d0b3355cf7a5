"""Stage evaluate: score the test window and write metrics and plot data."""

from __future__ import annotations

import json
import logging
from typing import Any

from cardfraud.evaluation import (
    evaluate_scores,
    pr_curve_points,
    roc_curve_points,
    scenario_recall,
)
from cardfraud.params import EvaluateParams
from cardfraud.paths import Workspace
from cardfraud.stages.train import FEATURES_FILE
from cardfraud.training import (
    TimeWindow,
    label_vector,
    load_model,
    read_feature_table,
    round_metrics,
    select_window,
)

logger = logging.getLogger(__name__)

METRICS_FILE = "evaluate.json"


def run(ws: Workspace, params: EvaluateParams) -> dict[str, Any]:
    """Evaluate the saved model on its test window.

    Writes ``evaluate.json`` to ``ws.metrics_dir`` and ``pr_curve.csv``,
    ``roc_curve.csv`` and ``scenario_recall.csv`` to ``ws.plots_dir``.

    Returns:
        The content of ``evaluate.json``.
    """
    model = load_model(ws.candidate_dir)
    frame = read_feature_table(
        ws.features_dir / FEATURES_FILE, feature_columns=model.feature_columns
    )
    test = select_window(frame, TimeWindow.from_json(model.meta["windows"]["test"]))
    labels = label_vector(test)
    scores = model.predict_proba(test)

    report = evaluate_scores(
        labels,
        scores,
        thresholds=model.thresholds,
        rounds=params.bootstrap_rounds,
        seed=params.seed,
    )
    recall_table = scenario_recall(
        test, scores=scores, threshold=model.thresholds["review"]
    )
    report["scenario_recall"] = dict(
        zip(recall_table["scenario"], recall_table["recall"], strict=True)
    )
    report = round_metrics(report)

    ws.metrics_dir.mkdir(parents=True, exist_ok=True)
    ws.plots_dir.mkdir(parents=True, exist_ok=True)
    metrics_text = json.dumps(report, indent=2, sort_keys=True) + "\n"
    (ws.metrics_dir / METRICS_FILE).write_text(metrics_text, encoding="utf-8")
    pr_curve_points(labels, scores).write_csv(ws.plots_dir / "pr_curve.csv")
    roc_curve_points(labels, scores).write_csv(ws.plots_dir / "roc_curve.csv")
    recall_table.with_columns(recall_table["recall"].round(6)).write_csv(
        ws.plots_dir / "scenario_recall.csv"
    )
    logger.info(
        "test average precision %.4f on %d rows",
        report["average_precision"]["value"],
        report["rows"],
    )
    return report
