"""Stage explain: SHAP contributions on a seeded sample of test rows."""

from __future__ import annotations

import logging
from typing import Any

from cardfraud.explain import (
    explain_rows,
    max_difference_from_shap,
    sample_rows,
    shap_importance,
    shap_sample_frame,
)
from cardfraud.params import ExplainParams
from cardfraud.paths import Workspace
from cardfraud.stages.train import FEATURES_FILE
from cardfraud.training import TimeWindow, load_model, read_feature_table, select_window

logger = logging.getLogger(__name__)

IMPORTANCE_FILE = "shap_importance.csv"
SAMPLE_FILE = "shap_sample.parquet"


def run(ws: Workspace, params: ExplainParams) -> dict[str, Any]:
    """Explain a sample of test rows with the saved model.

    Writes ``shap_importance.csv`` to ``ws.plots_dir`` and ``shap_sample.parquet`` to
    ``ws.explain_dir``.

    Returns:
        Sample size, base value, the largest gap from SHAP TreeExplainer and the top
        features by mean absolute contribution.
    """
    model = load_model(ws.candidate_dir)
    frame = read_feature_table(
        ws.features_dir / FEATURES_FILE, feature_columns=model.feature_columns
    )
    test = select_window(frame, TimeWindow.from_json(model.meta["windows"]["test"]))
    sample = sample_rows(test, rows=params.sample_rows, seed=params.seed)
    explanation = explain_rows(model, sample)
    importance = shap_importance(explanation.contributions, model.feature_columns)

    ws.plots_dir.mkdir(parents=True, exist_ok=True)
    ws.explain_dir.mkdir(parents=True, exist_ok=True)
    importance.write_csv(ws.plots_dir / IMPORTANCE_FILE)
    shap_sample_frame(
        sample, explanation, feature_columns=model.feature_columns
    ).write_parquet(ws.explain_dir / SAMPLE_FILE)
    gap = max_difference_from_shap(model, explanation)
    logger.info("explained %d rows; largest gap from SHAP %.3g", sample.height, gap)
    return {
        "rows": sample.height,
        "base_value": round(explanation.base_value, 6),
        "max_abs_difference_from_shap": float(f"{gap:.3g}"),
        "top_features": importance.head(10).to_dicts(),
    }
