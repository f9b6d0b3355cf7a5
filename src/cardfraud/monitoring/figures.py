"""Figures and tables of a monitor report, for the monitor notebook and report page."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import polars as pl
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cardfraud.monitoring.reference import SCORE_NAME

FIGURE_SIZE = (7.0, 3.6)
TOP_FEATURES = 12


def drift_heatmap_figure(drift: pl.DataFrame, *, threshold: float) -> Figure:
    """Plot the daily PSI of the most drifted features and the score as a heatmap.

    Rows are the ``TOP_FEATURES`` columns with the highest PSI in the period; the
    colour scale stops at twice the alert threshold.
    """
    ranked = (
        drift.group_by("column")
        .agg(pl.col("psi").max().alias("peak"))
        .sort("peak", descending=True, nulls_last=True)
    )
    columns = ranked["column"].head(TOP_FEATURES).to_list()
    if SCORE_NAME not in columns:
        columns.append(SCORE_NAME)
    table = (
        drift.filter(pl.col("column").is_in(columns))
        .pivot(on="day", index="column", values="psi")
        .to_pandas()
        .set_index("column")
        .loc[columns]
    )
    figure, axes = plt.subplots(figsize=(FIGURE_SIZE[0], 0.3 * len(columns) + 1.5))
    image = axes.imshow(
        table.to_numpy(dtype=float),
        aspect="auto",
        cmap="viridis",
        vmin=0.0,
        vmax=2 * threshold,
    )
    axes.set_yticks(range(len(columns)), columns, fontsize=7)
    days = list(table.columns)
    step = max(1, len(days) // 8)
    axes.set_xticks(
        range(0, len(days), step), [str(d) for d in days[::step]], fontsize=7
    )
    figure.colorbar(image, ax=axes, label="PSI")
    figure.autofmt_xdate()
    figure.tight_layout()
    return figure


def performance_figure(
    performance: pl.DataFrame,
    *,
    baseline: float | None,
    baseline_roc_auc: float | None = None,
) -> Figure:
    """Plot matured average precision and ROC AUC with their intervals.

    ROC AUC is drawn when ``performance`` has a ``roc_auc`` column with a value.
    Each baseline is a dashed line of its metric's colour, and the unlabelled
    share is on the right axis.

    Args:
        performance: Daily matured performance (``PERFORMANCE_SCHEMA``).
        baseline: The model's matured average precision on its test window.
        baseline_roc_auc: The model's matured ROC AUC on its test window.
    """
    figure, left = plt.subplots(figsize=FIGURE_SIZE)
    plot_matured_metric(
        left, performance, "average_precision", label="AP", colour="tab:blue"
    )
    plot_matured_metric(
        left, performance, "roc_auc", label="ROC AUC", colour="tab:purple"
    )
    for value, label, colour in (
        (baseline, "AP baseline", "tab:blue"),
        (baseline_roc_auc, "ROC AUC baseline", "tab:purple"),
    ):
        if value is not None:
            left.axhline(value, color=colour, linestyle="--", label=label)
    left.set_ylim(0, 1)
    left.set_ylabel("matured metric")

    right = left.twinx()
    right.plot(
        performance["day"].to_list(),
        performance["unlabelled_share"].to_list(),
        color="tab:gray",
        linestyle=":",
        label="unlabelled share",
    )
    right.set_ylim(0, 1)
    right.set_ylabel("unlabelled share", color="tab:gray")

    left.legend(loc="lower left", fontsize=8)
    left.set_xlabel("day the labels are known (UTC)")
    figure.autofmt_xdate()
    figure.tight_layout()
    return figure


def plot_matured_metric(
    axes: Axes, performance: pl.DataFrame, column: str, *, label: str, colour: str
) -> None:
    """Plot one matured metric and its interval, unless the frame has no value."""
    if column not in performance.columns:
        return
    known = performance.drop_nulls(column)
    if not known.height:
        return
    days = known["day"].to_list()
    axes.plot(days, known[column].to_list(), color=colour, label=f"matured {label}")
    low, high = f"{column}_low", f"{column}_high"
    if {low, high} <= set(known.columns) and known[low].null_count() < known.height:
        axes.fill_between(
            days,
            known[low].fill_null(np.nan).to_list(),
            known[high].fill_null(np.nan).to_list(),
            color=colour,
            alpha=0.2,
        )


def decision_mix_figure(mix: pl.DataFrame) -> Figure:
    """Plot the daily review and decline rates and the review queue."""
    figure, left = plt.subplots(figsize=FIGURE_SIZE)
    days = mix["day"].to_list()
    for name, colour in (("review", "tab:orange"), ("decline", "tab:red")):
        left.plot(
            days, mix[f"{name}_rate"].to_list(), color=colour, label=f"{name} rate"
        )
    left.set_ylabel("share of decisions")
    right = left.twinx()
    right.bar(days, mix["review_queue"].to_list(), color="tab:gray", alpha=0.3)
    right.set_ylabel("review queue (decisions a day)")
    left.legend(loc="upper left", fontsize=8)
    figure.autofmt_xdate()
    figure.tight_layout()
    return figure


def alerts_table(alerts: list[dict[str, Any]]) -> pd.DataFrame:
    """Return the alerts as a table, one row each; an empty table means none fired."""
    columns = ["kind", "subject", "first_day", "raised_on", "value", "threshold"]
    if not alerts:
        return pd.DataFrame(columns=columns)
    return pd.DataFrame([{key: alert.get(key) for key in columns} for alert in alerts])
