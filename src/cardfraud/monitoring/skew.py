"""Online/offline skew: features stored with decisions against the offline table.

A seeded sample of decisions is joined on ``transaction_id`` with the feature table
that the offline path computes for the same transaction and time. A value differs
when ``|online - offline| > atol + rtol * |offline|``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

SKEW_SCHEMA: dict[str, Any] = {
    "column": pl.String,
    "compared": pl.Int64,
    "mismatches": pl.Int64,
    "mismatch_share": pl.Float64,
    "max_abs_difference": pl.Float64,
}


def sample_decisions(decisions: pl.DataFrame, *, size: int, seed: int) -> pl.DataFrame:
    """Return up to ``size`` decisions drawn without replacement, in event order."""
    if decisions.height <= size:
        return decisions
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(decisions.height, size=size, replace=False))
    return decisions[picked]


def feature_skew(
    decisions: pl.DataFrame,
    offline: pl.DataFrame,
    *,
    feature_columns: list[str],
    sample_size: int,
    seed: int,
    rtol: float = 1e-6,
    atol: float = 1e-6,
) -> tuple[pl.DataFrame, int]:
    """Compare a sample of decisions' features with the offline feature table.

    Args:
        decisions: Decision frame with the feature columns.
        offline: Feature table with ``transaction_id`` and the feature columns.
        feature_columns: Columns compared.
        sample_size: Decisions sampled.
        seed: Seed of the sample.
        rtol: Relative tolerance.
        atol: Absolute tolerance.

    Returns:
        The per-column comparison (columns of ``SKEW_SCHEMA``) and the number of
        sampled decisions that the offline table lacks.
    """
    sample = sample_decisions(decisions, size=sample_size, seed=seed)
    offline_columns = offline.select(
        "transaction_id",
        *[
            pl.col(name).cast(pl.Float64).alias(f"{name}__offline")
            for name in feature_columns
        ],
    )
    joined = sample.select("transaction_id", *feature_columns).join(
        offline_columns, on="transaction_id", how="inner"
    )
    rows = []
    for name in feature_columns:
        online = joined[name].to_numpy()
        expected = joined[f"{name}__offline"].to_numpy()
        difference = np.abs(online - expected)
        differs = difference > atol + rtol * np.abs(expected)
        rows.append(
            {
                "column": name,
                "compared": joined.height,
                "mismatches": int(differs.sum()),
                "mismatch_share": float(differs.mean()) if joined.height else 0.0,
                "max_abs_difference": float(difference.max()) if joined.height else 0.0,
            }
        )
    return pl.DataFrame(rows, schema=SKEW_SCHEMA), sample.height - joined.height
