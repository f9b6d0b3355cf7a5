"""SHAP explanations of the trained model on a seeded sample of test rows.

Contributions come from the boosting library's own tree SHAP (XGBoost ``pred_contribs``,
LightGBM ``pred_contrib``), the same call that scoring uses for reasons, and are checked
against SHAP's ``TreeExplainer``. All values are in log-odds (margin) units.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import polars as pl
import shap

from cardfraud.training import TrainedModel, feature_matrix

logger = logging.getLogger(__name__)

SHAP_PREFIX = "shap__"


@dataclass(frozen=True)
class SampleExplanation:
    """Contributions of a sample of rows.

    Attributes:
        base_value: Expected margin of the model, in log-odds.
        contributions: Per-feature contributions, shape (rows, features), log-odds.
        matrix: Feature values of the rows, shape (rows, features), float64.
    """

    base_value: float
    contributions: np.ndarray
    matrix: np.ndarray


def sample_rows(frame: pl.DataFrame, *, rows: int, seed: int) -> pl.DataFrame:
    """Return ``rows`` rows drawn without replacement, kept in their input order.

    All rows are returned when the frame has fewer than ``rows``.
    """
    if frame.height <= rows:
        return frame
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(frame.height, size=rows, replace=False))
    return frame[chosen]


def explain_rows(model: TrainedModel, frame: pl.DataFrame) -> SampleExplanation:
    """Compute the contributions of every row of ``frame``."""
    matrix = feature_matrix(frame, model.feature_columns)
    base_value, contributions = model.contributions(matrix)
    return SampleExplanation(base_value, contributions, matrix)


def tree_explainer_values(
    model: TrainedModel, matrix: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return SHAP TreeExplainer's base values (rows,) and values (rows, features).

    The base values come from the Explanation object: in shap 0.54 with XGBoost 3,
    ``TreeExplainer.expected_value`` contains only the intercept and omits the trees'
    expected output, while ``Explanation.base_values`` adds up with the values.
    """
    explanation = shap.TreeExplainer(model.booster)(matrix)
    values = np.asarray(explanation.values, dtype=np.float64)
    base_values = np.asarray(explanation.base_values, dtype=np.float64)
    if values.ndim == 3:
        # Binary LightGBM models may report both classes; the fraud class is last.
        values = values[..., -1]
        base_values = base_values[..., -1]
    return base_values.reshape(-1), values


def max_difference_from_shap(
    model: TrainedModel, explanation: SampleExplanation
) -> float:
    """Return the largest absolute difference from SHAP TreeExplainer, in log-odds.

    Both the contributions and the base value are compared.
    """
    base_values, values = tree_explainer_values(model, explanation.matrix)
    value_gap = np.abs(values - explanation.contributions).max(initial=0.0)
    base_gap = np.abs(base_values - explanation.base_value).max(initial=0.0)
    return float(max(value_gap, base_gap))


def shap_importance(
    contributions: np.ndarray, feature_columns: list[str]
) -> pl.DataFrame:
    """Return the mean absolute contribution per feature, largest first.

    Returns:
        Columns feature (String) and mean_abs_shap (Float64, log-odds, rounded to 6
        decimals), sorted by mean_abs_shap descending and then feature name.
    """
    if contributions.shape[0] == 0:
        mean_abs = np.zeros(len(feature_columns))
    else:
        mean_abs = np.abs(contributions).mean(axis=0)
    return pl.DataFrame(
        {"feature": feature_columns, "mean_abs_shap": mean_abs.round(6)}
    ).sort(["mean_abs_shap", "feature"], descending=[True, False])


def shap_sample_frame(
    frame: pl.DataFrame,
    explanation: SampleExplanation,
    *,
    feature_columns: list[str],
) -> pl.DataFrame:
    """Return one row per explained transaction for beeswarm plots.

    Returns:
        Columns transaction_id, base_value (log-odds), every feature's value under its
        own name (Float64), and every feature's contribution as ``shap__<feature>``.
    """
    values = {
        name: explanation.matrix[:, index] for index, name in enumerate(feature_columns)
    }
    contributions = {
        f"{SHAP_PREFIX}{name}": explanation.contributions[:, index]
        for index, name in enumerate(feature_columns)
    }
    return pl.DataFrame(
        {
            "transaction_id": frame["transaction_id"],
            "base_value": np.full(frame.height, explanation.base_value),
            **values,
            **contributions,
        }
    )
