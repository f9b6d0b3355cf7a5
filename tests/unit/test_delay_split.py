"""Tests of delay-aware labels, the window plan and known compromised cards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from cardfraud.splits import (
    SplitError,
    TimeWindow,
    delay_aware_rows,
    known_compromised_cards,
    label_counts,
    plan_windows,
    select_window,
)

START = datetime(2025, 1, 1, tzinfo=UTC)


def make_table(*, rows: int = 4000, days: int = 90, seed: int = 5) -> pl.DataFrame:
    """Build transactions with frauds whose labels arrive 1 to 60 days later.

    Every tenth fraud has no label time, which exercises the maturity fallback.
    """
    rng = np.random.default_rng(seed)
    offsets = np.sort(rng.integers(0, days * 86_400_000_000, size=rows))
    timestamps = [START + timedelta(microseconds=int(o)) for o in offsets]
    is_fraud = rng.uniform(size=rows) < 0.05
    delays = rng.uniform(1.0, 60.0, size=rows)
    label_times = [
        t + timedelta(days=float(d)) if f and i % 10 else None
        for i, (t, f, d) in enumerate(zip(timestamps, is_fraud, delays, strict=True))
    ]
    return pl.DataFrame(
        {
            "transaction_id": [f"t{i:05d}" for i in range(rows)],
            "card_id": [f"c{int(c):03d}" for c in rng.integers(0, 300, rows)],
            "timestamp": pl.Series(timestamps, dtype=pl.Datetime("us", "UTC")),
            "is_fraud": is_fraud,
            "label_available_at": pl.Series(
                label_times, dtype=pl.Datetime("us", "UTC")
            ),
        }
    )


def reference_labels(
    frame: pl.DataFrame,
    window: TimeWindow,
    *,
    known_at: datetime,
    maturity: timedelta,
) -> dict[str, int]:
    """Label row by row: transaction id to 0/1 for the rows that are kept."""
    labels = {}
    for row in frame.iter_rows(named=True):
        timestamp = row["timestamp"]
        if not window.start <= timestamp < window.end:
            continue
        label_time = row["label_available_at"] or timestamp + maturity
        if row["is_fraud"] and label_time <= known_at:
            labels[row["transaction_id"]] = 1
        elif timestamp <= known_at - maturity:
            labels[row["transaction_id"]] = 0
    return labels


@pytest.fixture(scope="module")
def table() -> pl.DataFrame:
    return make_table()


@pytest.mark.parametrize("maturity_days", [0, 7, 30])
def test_delay_aware_rows_match_reference(table: pl.DataFrame, maturity_days: int):
    window = TimeWindow(START + timedelta(days=5), START + timedelta(days=70))
    known_at = START + timedelta(days=70)
    maturity = timedelta(days=maturity_days)

    rows = delay_aware_rows(table, window, known_at=known_at, maturity=maturity)

    expected = reference_labels(table, window, known_at=known_at, maturity=maturity)
    actual = dict(zip(rows["transaction_id"], rows["target"], strict=True))
    assert actual == expected
    assert rows["target"].dtype == pl.Int8


def test_delay_aware_rows_hide_late_frauds(table: pl.DataFrame):
    window = TimeWindow(START, START + timedelta(days=60))
    known_at = START + timedelta(days=60)

    rows = delay_aware_rows(table, window, known_at=known_at, maturity=timedelta(30))

    late = rows.filter(pl.col("is_fraud") & (pl.col("target") == 0))
    assert late.height > 0
    assert (late["label_available_at"] > known_at).all()
    assert label_counts(rows)["unlabelled_frauds"] == late.height
    recent = rows.filter(pl.col("timestamp") > known_at - timedelta(days=30))
    assert (recent["target"] == 1).all()


def test_plan_windows_places_folds_before_maturity_gap(table: pl.DataFrame):
    plan = plan_windows(
        table,
        cutoff=START + timedelta(days=70),
        test_days=20,
        maturity_days=10,
        burn_in_days=3,
        folds=3,
        fold_days=7,
    )

    assert plan.data == TimeWindow(START, START + timedelta(days=90))
    assert plan.test == TimeWindow(START + timedelta(days=70), START + timedelta(90))
    assert plan.train.start == START + timedelta(days=3)
    assert [fold.index for fold in plan.folds] == [1, 2, 3]
    newest = plan.folds[0]
    assert newest.validation == TimeWindow(START + timedelta(53), START + timedelta(60))
    assert plan.folds[2].validation.start == START + timedelta(days=39)
    for fold in plan.folds:
        assert fold.train.start == plan.train.start
        assert fold.train.end == fold.validation.start
        assert fold.validation.end <= plan.cutoff - plan.maturity


def test_plan_windows_default_cutoff_from_data_end(table: pl.DataFrame):
    plan = plan_windows(
        table,
        cutoff=None,
        test_days=14,
        maturity_days=0,
        burn_in_days=0,
        folds=1,
        fold_days=7,
    )

    assert plan.cutoff == START + timedelta(days=76)
    assert plan.folds[0].validation.end == plan.cutoff


def test_plan_windows_rejects_cutoff_outside_data(table: pl.DataFrame):
    with pytest.raises(SplitError, match="outside the data"):
        plan_windows(
            table,
            cutoff=START + timedelta(days=80),
            test_days=20,
            maturity_days=0,
            burn_in_days=0,
            folds=1,
            fold_days=7,
        )


def test_plan_windows_rejects_fold_without_training_days(table: pl.DataFrame):
    with pytest.raises(SplitError, match=r"fold 3 .* no training days"):
        plan_windows(
            table,
            cutoff=START + timedelta(days=40),
            test_days=20,
            maturity_days=10,
            burn_in_days=10,
            folds=3,
            fold_days=7,
        )


def test_no_test_row_in_any_fold(table: pl.DataFrame):
    plan = plan_windows(
        table,
        cutoff=START + timedelta(days=70),
        test_days=20,
        maturity_days=10,
        burn_in_days=0,
        folds=3,
        fold_days=7,
    )
    test_ids = set(select_window(table, plan.test)["transaction_id"])

    for fold in plan.folds:
        train = delay_aware_rows(
            table, fold.train, known_at=fold.validation.start, maturity=plan.maturity
        )
        validation = delay_aware_rows(
            table, fold.validation, known_at=plan.cutoff, maturity=plan.maturity
        )
        assert test_ids.isdisjoint(train["transaction_id"])
        assert test_ids.isdisjoint(validation["transaction_id"])
        assert validation.height == select_window(table, fold.validation).height
        assert train["timestamp"].max() < validation["timestamp"].min()


def test_known_compromised_cards_match_reference(table: pl.DataFrame):
    known_at = START + timedelta(days=50)
    maturity = timedelta(days=20)

    cards = known_compromised_cards(table, known_at=known_at, maturity=maturity)

    expected = set()
    for row in table.iter_rows(named=True):
        label_time = row["label_available_at"] or row["timestamp"] + maturity
        if row["is_fraud"] and row["timestamp"] < known_at and label_time <= known_at:
            expected.add(row["card_id"])
    assert cards.to_list() == sorted(expected)
    assert len(expected) > 0
