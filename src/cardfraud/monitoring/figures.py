"""Figures and tables of a monitor report, for the monitor notebook and report page."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import polars as pl
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


def performance_figure(performance: pl.DataFrame, *, baseline: float | None) -> Figure:
    """Plot matured average precision with its interval and the unlabelled share."""
    figure, left = plt.subplots(figsize=FIGURE_SIZE)
    known = performance.drop_nulls("average_precision")
    if known.height:
        days = known["day"].to_list()
        left.plot(
            days,
            known["average_precision"].to_list(),
            color="tab:blue",
            label="matured AP",
        )
        if known["average_precision_low"].null_count() < known.height:
            left.fill_between(
                days,
                known["average_precision_low"].fill_null(np.nan).to_list(),
                known["average_precision_high"].fill_null(np.nan).to_list(),
                color="tab:blue",
                alpha=0.2,
            )
    if baseline is not None:
        left.axhline(baseline, color="tab:green", linestyle="--", label="baseline")
    left.set_ylim(0, 1)

    left.set_ylabel("average precision")
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
