"""The per-row reference implementation follows the vectorised generator's rules."""

from __future__ import annotations

import polars as pl
import pytest

import fraudgen
from fraudgen.reference import generate_reference

CONFIG = {"rows": 40_000, "days": 14, "fraud_rate": 0.002, "seed": 3}


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    config = fraudgen.build_config(CONFIG)
    folder = tmp_path_factory.mktemp("reference")
    rows = generate_reference(config, folder)
    reference = pl.read_parquet(folder / "dt=*" / "*.parquet")
    assert reference.height == rows
    return reference, fraudgen.generate_frame(config)


def shares(frame: pl.DataFrame, column: str) -> dict:
    counts = frame.group_by(column).len()
    total = frame.height
    return dict(zip(counts[column], (counts["len"] / total).to_list(), strict=True))


def test_same_schema_and_volume(both):
    reference, vectorised = both
    assert reference.schema == vectorised.schema
    assert reference.height == pytest.approx(vectorised.height, rel=0.03)
    assert reference["is_fraud"].sum() == vectorised["is_fraud"].sum()


@pytest.mark.parametrize("column", ["channel", "mcc", "merchant_country"])
def test_same_category_shares(both, column):
    reference, vectorised = both
    expected = shares(vectorised, column)
    observed = shares(reference, column)
    for key in set(expected) | set(observed):
        assert observed.get(key, 0.0) == pytest.approx(
            expected.get(key, 0.0), abs=0.012
        ), key


def test_same_amounts_and_hours(both):
    reference, vectorised = both
    for quantile in (0.1, 0.5, 0.9):
        assert reference["amount_minor"].quantile(quantile) == pytest.approx(
            vectorised["amount_minor"].quantile(quantile), rel=0.06
        )
    hours_ref = shares(reference.with_columns(h=pl.col("timestamp").dt.hour()), "h")
    hours_vec = shares(vectorised.with_columns(h=pl.col("timestamp").dt.hour()), "h")
    distance = sum(abs(hours_ref.get(h, 0) - hours_vec.get(h, 0)) for h in range(24))
    assert distance / 2 < 0.03


def test_same_device_habits(both):
    reference, vectorised = both
    for frame in (reference, vectorised):
        online = frame.filter(pl.col("channel") == "ecommerce")
        assert online["device_id"].null_count() == 0
        assert frame.filter(pl.col("channel") != "ecommerce")[
            "device_id"
        ].null_count() == (frame.height - online.height)
    per_card_ref = (
        reference.filter(pl.col("channel") == "ecommerce")
        .group_by("card_id")
        .agg(pl.col("device_id").n_unique())["device_id"]
        .mean()
    )
    per_card_vec = (
        vectorised.filter(pl.col("channel") == "ecommerce")
        .group_by("card_id")
        .agg(pl.col("device_id").n_unique())["device_id"]
        .mean()
    )
    assert per_card_ref == pytest.approx(per_card_vec, rel=0.05)
