"""The monitor's performance figure draws average precision and ROC AUC."""

from __future__ import annotations

from datetime import date, timedelta

import matplotlib.pyplot as plt
import polars as pl
import pytest

from cardfraud.monitoring.figures import performance_figure
from cardfraud.monitoring.performance import PERFORMANCE_SCHEMA

DAYS = 4


def performance_frame() -> pl.DataFrame:
    """Return four matured days, the first without a ROC AUC."""
    first = date(2024, 3, 1)
    rows = []
    for index in range(DAYS):
        day = first + timedelta(days=index)
        rows.append(
            {
                "day": day,
                "unlabelled_share": 0.4 - 0.05 * index,
                "average_precision": 0.6 + 0.01 * index,
                "average_precision_low": 0.5,
                "average_precision_high": 0.7,
                "roc_auc": None if index == 0 else 0.95 - 0.01 * index,
                "roc_auc_low": None if index == 0 else 0.9,
                "roc_auc_high": None if index == 0 else 0.97,
            }
        )
    return pl.DataFrame(rows, schema=PERFORMANCE_SCHEMA)


def line_data(figure) -> dict[str, list[float]]:
    """Return the y values of each labelled line on the left axes."""
    axes = figure.axes[0]
    return {
        line.get_label(): [float(value) for value in line.get_ydata()]
        for line in axes.get_lines()
    }


def test_performance_figure_draws_roc_auc():
    frame = performance_frame()
    figure = performance_figure(frame, baseline=0.65, baseline_roc_auc=0.96)
    lines = line_data(figure)
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    plt.close(figure)
    assert lines["matured ROC AUC"] == pytest.approx([0.94, 0.93, 0.92])
    assert lines["matured AP"] == pytest.approx([0.6, 0.61, 0.62, 0.63])
    assert lines["ROC AUC baseline"] == [0.96, 0.96]
    assert lines["AP baseline"] == [0.65, 0.65]
    assert "matured ROC AUC" in legend
    assert len(figure.axes[0].collections) == 2


def test_performance_figure_without_roc_auc_column():
    frame = performance_frame().drop("roc_auc", "roc_auc_low", "roc_auc_high")
    figure = performance_figure(frame, baseline=0.65)
    lines = line_data(figure)
    plt.close(figure)
    assert "matured ROC AUC" not in lines
    assert "ROC AUC baseline" not in lines
    assert lines["matured AP"] == pytest.approx([0.6, 0.61, 0.62, 0.63])
    assert len(figure.axes[0].collections) == 1
