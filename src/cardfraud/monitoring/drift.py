"""Per-day drift of every feature and the score against the reference profile.

Each day (or trailing window of days) gets the population stability index (PSI) on
the reference bins, and a test statistic by kind: the two-sample Kolmogorov-Smirnov
statistic for numeric columns, chi-square and the Jensen-Shannon distance for
categorical ones. Counts are taken per day and bin in one pass over each column, so
the cost grows with rows plus days times bins.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
from scipy import stats

from cardfraud.monitoring.reference import (
    SCORE_NAME,
    CategoricalReference,
    NumericReference,
    ReferenceProfile,
)

WEEKLY_COLUMNS: frozenset[str] = frozenset({"day_of_week", SCORE_NAME})
"""Columns whose daily sample pools at least seven days: one day holds one weekday,
and the score depends on the weekday through ``day_of_week``."""
SHARE_FLOOR = 1e-4
"""Smallest share used in the PSI and chi-square, so an empty bin stays finite."""
DRIFT_SCHEMA: dict[str, Any] = {
    "day": pl.Date,
    "column": pl.String,
    "kind": pl.String,
    "rows": pl.Int64,
    "full_window": pl.Boolean,
    "psi": pl.Float64,
    "ks": pl.Float64,
    "ks_pvalue": pl.Float64,
    "chi2": pl.Float64,
    "chi2_pvalue": pl.Float64,
    "js_distance": pl.Float64,
}


def population_stability_index(actual: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Return the PSI of each row of ``actual`` shares against ``expected`` shares.

    ``sum((a - e) * ln(a / e))`` over bins, with both shares floored at
    ``SHARE_FLOOR``. Common reading: below 0.1 stable, 0.1 to 0.25 a moderate shift,
    above 0.25 a major shift.

    Args:
        actual: Shares, shape (days, bins); rows sum to 1.
        expected: Reference shares, shape (bins,).
    """
    a = np.maximum(actual, SHARE_FLOOR)
    e = np.maximum(expected, SHARE_FLOOR)
    return np.sum((a - e) * np.log(a / e), axis=-1)


def jensen_shannon_distance(actual: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Return the Jensen-Shannon distance (base 2, in [0, 1]) of each row of shares."""
    middle = (actual + expected) / 2.0

    def divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(p > 0, p * np.log2(p / q), 0.0)
        return terms.sum(axis=-1)

    value = 0.5 * divergence(actual, middle) + 0.5 * divergence(expected, middle)
    return np.sqrt(np.maximum(value, 0.0))


def windowed_counts(counts: np.ndarray, window_days: int) -> np.ndarray:
    """Sum each day's bin counts with the ``window_days - 1`` days before it."""
    if window_days <= 1:
        return counts
    total = np.cumsum(counts, axis=0)
    earlier = np.zeros_like(total)
    earlier[window_days:] = total[:-window_days]
    return total - earlier


def day_bin_counts(
    day_index: np.ndarray, bins: np.ndarray, *, days: int, width: int
) -> np.ndarray:
    """Count rows per (day, bin), shape (days, width)."""
    flat = np.bincount(day_index * width + bins, minlength=days * width)
    return flat.reshape(days, width)


def level_bins(values: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Map each value to its level's position, or ``len(levels)`` for other."""
    order = np.argsort(levels)
    ordered = levels[order]
    position = np.searchsorted(ordered, values)
    clipped = np.minimum(position, max(ordered.size - 1, 0))
    found = (position < ordered.size) & (ordered[clipped] == values)
    return np.where(found, order[clipped], levels.size)


def numeric_drift(
    values: np.ndarray,
    day_index: np.ndarray,
    reference: NumericReference,
    *,
    days: int,
    window_days: int,
    reference_rows: int,
) -> dict[str, np.ndarray]:
    """Return per-day rows, PSI, KS and its p-value of one numeric column.

    NOTE: The KS statistic is taken on the reference's 100 quantile bins, so it is
    a lower bound of the exact two-sample statistic. Its p-value is the asymptotic
    Kolmogorov distribution at ``sqrt(n_eff) * D`` with the effective sample size
    ``n * m / (n + m)``, which is approximate for small samples and tied data.
    """
    psi_width = reference.psi_edges.size + 1
    ks_width = reference.ks_edges.size + 1
    psi_counts = windowed_counts(
        day_bin_counts(
            day_index,
            np.searchsorted(reference.psi_edges, values, side="right"),
            days=days,
            width=psi_width,
        ),
        window_days,
    )
    ks_counts = windowed_counts(
        day_bin_counts(
            day_index,
            np.searchsorted(reference.ks_edges, values, side="right"),
            days=days,
            width=ks_width,
        ),
        window_days,
    )
    rows = psi_counts.sum(axis=1)
    safe_rows = np.maximum(rows, 1)[:, None]
    psi = population_stability_index(psi_counts / safe_rows, reference.psi_shares)
    gaps = np.cumsum(ks_counts / safe_rows, axis=1) - np.cumsum(reference.ks_shares)
    ks = np.abs(gaps).max(axis=1)
    effective = np.maximum(rows * reference_rows / (rows + reference_rows), 1)
    pvalue = stats.kstwobign.sf(np.sqrt(effective) * ks)
    return {"rows": rows, "psi": psi, "ks": ks, "ks_pvalue": pvalue}


def categorical_drift(
    values: np.ndarray,
    day_index: np.ndarray,
    reference: CategoricalReference,
    *,
    days: int,
    window_days: int,
) -> dict[str, np.ndarray]:
    """Return per-day rows, PSI, chi-square, its p-value and the JS distance."""
    width = reference.levels.size + 1
    counts = windowed_counts(
        day_bin_counts(
            day_index, level_bins(values, reference.levels), days=days, width=width
        ),
        window_days,
    )
    rows = counts.sum(axis=1)
    actual = counts / np.maximum(rows, 1)[:, None]
    expected = np.maximum(reference.shares, SHARE_FLOOR)
    expected = expected / expected.sum()
    chi2 = np.sum(
        (counts - rows[:, None] * expected) ** 2
        / np.maximum(rows[:, None] * expected, SHARE_FLOOR),
        axis=1,
    )
    pvalue = stats.chi2.sf(chi2, df=max(width - 1, 1))
    return {
        "rows": rows,
        "psi": population_stability_index(actual, reference.shares),
        "chi2": chi2,
        "chi2_pvalue": pvalue,
        "js_distance": jensen_shannon_distance(actual, reference.shares),
    }


def daily_drift(
    frame: pl.DataFrame,
    profile: ReferenceProfile,
    *,
    columns: list[str],
    window_days: int = 1,
) -> pl.DataFrame:
    """Return the drift of each column on each day of ``frame``.

    Args:
        frame: Decisions with ``day`` (Date, event time in UTC) and the columns.
        profile: The model's reference profile.
        columns: Feature names and ``score``; each must be in the profile.
        window_days: Days pooled into each day's sample, ending on that day; at
            least seven for ``WEEKLY_COLUMNS``.

    Returns:
        One row per day (every day from the first to the last, including days
        without decisions, whose rows are 0) and column, with the columns of
        ``DRIFT_SCHEMA``; statistics that do not apply to a kind are null.
        ``full_window`` is false on the first days, whose window starts before
        the frame's first day.
    """
    if frame.height == 0:
        return pl.DataFrame(schema=DRIFT_SCHEMA)
    first = frame["day"].min()
    day_index = (frame["day"] - first).dt.total_days().to_numpy().astype(np.int64)
    days = int(day_index.max()) + 1
    calendar = pl.date_range(first, frame["day"].max(), "1d", eager=True)
    parts = []
    for name in columns:
        reference = profile.columns[name]
        values = frame[name].cast(pl.Float64).to_numpy()
        window = max(window_days, 7) if name in WEEKLY_COLUMNS else window_days
        if isinstance(reference, NumericReference):
            result = numeric_drift(
                values,
                day_index,
                reference,
                days=days,
                window_days=window,
                reference_rows=profile.rows,
            )
            kind = "numeric"
        else:
            result = categorical_drift(
                values, day_index, reference, days=days, window_days=window
            )
            kind = "categorical"
        part = {
            "day": calendar,
            "column": [name] * days,
            "kind": [kind] * days,
            "full_window": np.arange(days) >= window - 1,
        }
        for key in ("rows", "psi", "ks", "ks_pvalue", "chi2", "chi2_pvalue"):
            part[key] = result.get(key, [None] * days)
        part["js_distance"] = result.get("js_distance", [None] * days)
        parts.append(pl.DataFrame(part, schema=DRIFT_SCHEMA))
    return pl.concat(parts)
