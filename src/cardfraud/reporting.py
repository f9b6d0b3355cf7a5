"""Tables and figures that the stage notebooks show and the report site embeds.

Each function takes plain data and returns a pandas DataFrame or a matplotlib Figure.
None of them reads files or displays anything, so the notebooks stay thin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import polars as pl
from matplotlib.figure import Figure

FIGURE_SIZE = (7.0, 3.6)


def flatten_mapping(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings into dotted keys."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_mapping(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def key_value_table(
    values: Mapping[str, Any], *, value_name: str = "value"
) -> pd.DataFrame:
    """Return a two-column table (name, value) of a possibly nested mapping."""
    flat = flatten_mapping(values)
    display_values = {
        key: (", ".join(map(str, value)) if isinstance(value, list | tuple) else value)
        for key, value in flat.items()
    }
    return pd.DataFrame(
        {"name": list(display_values), value_name: list(display_values.values())}
    ).set_index("name")


def daily_volume_figure(transactions: pl.DataFrame) -> Figure:
    """Plot transactions and frauds per day (UTC) on two axes."""
    daily = (
        transactions.group_by(pl.col("timestamp").dt.date().alias("day"))
        .agg(pl.len().alias("transactions"), pl.col("is_fraud").sum().alias("frauds"))
        .sort("day")
    )
    figure, left = plt.subplots(figsize=FIGURE_SIZE)
    left.plot(daily["day"].to_list(), daily["transactions"].to_list(), color="tab:blue")
    left.set_ylabel("transactions per day", color="tab:blue")
    right = left.twinx()
    right.plot(daily["day"].to_list(), daily["frauds"].to_list(), color="tab:red")
    right.set_ylabel("frauds per day", color="tab:red")
    left.set_xlabel("day (UTC)")
    figure.autofmt_xdate()
    figure.tight_layout()
    return figure


def curve_figure(
    frame: pd.DataFrame,
    *,
    x: str,
    y: str,
    xlabel: str,
    ylabel: str,
    baseline: float | None = None,
) -> Figure:
    """Plot one curve (for example precision against recall) from two columns."""
    figure, axes = plt.subplots(figsize=(4.8, 4.0))
    axes.plot(frame[x], frame[y], color="tab:blue")
    if baseline is not None:
        axes.axhline(baseline, color="grey", linestyle="--", linewidth=1)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def bar_figure(
    frame: pd.DataFrame, *, label: str, value: str, xlabel: str, top: int = 20
) -> Figure:
    """Plot the ``top`` largest values as horizontal bars, largest at the top."""
    largest = frame.sort_values(value, ascending=False).head(top).iloc[::-1]
    figure, axes = plt.subplots(figsize=(FIGURE_SIZE[0], 0.28 * len(largest) + 1.0))
    axes.barh(largest[label].astype(str), largest[value], color="tab:blue")
    axes.set_xlabel(xlabel)
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    return figure


def class_histograms_figure(
    features: pl.DataFrame, columns: Sequence[str], *, label: str = "is_fraud"
) -> Figure:
    """Plot each column's distribution for legitimate and fraudulent rows.

    Values are drawn on a log1p scale when the column is non-negative, so heavy tails
    stay readable.
    """
    count = len(columns)
    figure, axes_grid = plt.subplots(
        1, count, figsize=(3.0 * count, 2.8), squeeze=False
    )
    for axes, column in zip(axes_grid[0], columns, strict=True):
        values = features[column].cast(pl.Float64).to_numpy()
        labels = features[label].to_numpy()
        transformed = np.log1p(values) if values.min() >= 0 else values
        bins = np.histogram_bin_edges(transformed, bins=30)
        for flag, colour, name in (
            (False, "tab:blue", "legitimate"),
            (True, "tab:red", "fraud"),
        ):
            axes.hist(
                transformed[labels == flag],
                bins=bins,
                density=True,
                alpha=0.5,
                color=colour,
                label=name,
            )
        axes.set_title(column if values.min() < 0 else f"log1p({column})", fontsize=9)
        axes.tick_params(labelsize=8)
    axes_grid[0][0].legend(fontsize=8)
    figure.tight_layout()
    return figure


def beeswarm_figure(
    shap_values: np.ndarray,
    feature_values: np.ndarray,
    feature_names: Sequence[str],
    *,
    top: int = 12,
    seed: int = 0,
) -> Figure:
    """Plot a SHAP beeswarm: one dot per row and feature, coloured by feature value.

    Args:
        shap_values: Contributions, shape (rows, features), in margin (log-odds) units.
        feature_values: The explained rows' feature values, same shape.
        feature_names: Names of the columns.
        top: Number of features shown, by mean absolute contribution.
        seed: Seed of the vertical jitter, so the figure is the same on every run.
    """
    order = np.argsort(np.abs(shap_values).mean(axis=0))[::-1][:top][::-1]
    rng = np.random.default_rng(seed)
    figure, axes = plt.subplots(figsize=(FIGURE_SIZE[0], 0.35 * len(order) + 1.2))
    for position, column in enumerate(order):
        values = feature_values[:, column].astype(float)
        low, high = np.nanpercentile(values, [5, 95]) if len(values) else (0.0, 1.0)
        scale = (
            np.clip((values - low) / (high - low), 0, 1) if high > low else values * 0
        )
        jitter = rng.uniform(-0.3, 0.3, size=len(values))
        axes.scatter(
            shap_values[:, column],
            position + jitter,
            c=scale,
            cmap="coolwarm",
            s=6,
            alpha=0.7,
            linewidths=0,
        )
    axes.axvline(0, color="grey", linewidth=1)
    axes.set_yticks(range(len(order)))
    axes.set_yticklabels([feature_names[column] for column in order], fontsize=8)
    axes.set_xlabel("SHAP value (log-odds of fraud); colour: low to high feature value")
    figure.tight_layout()
    return figure
