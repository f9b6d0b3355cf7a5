"""Point-in-time features: cross-checked against a slow per-row reference."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardfraud.features import (
    DISTINCT_ATTRIBUTES,
    FIRST_TIME_ATTRIBUTES,
    NEW_VALUE_ATTRIBUTES,
    NO_DISTANCE_KM,
    NO_HISTORY_SECONDS,
    OWN_COLUMNS,
    build_feature_table,
    describe_features,
    feature_columns,
    feature_dtype,
)
from cardfraud.params import FeaturesParams
from cardfraud.schema import CHANNELS, polars_schema

PARAMS = FeaturesParams(
    windows_hours=[1, 24, 168, 720],
    label_delay_days=30,
    distinct_windows_hours=[24, 168],
    merchant_windows_hours=[1, 24, 168],
    merchant_fraud_windows_days=[7, 30],
)
START = datetime(2025, 1, 1, tzinfo=UTC)


def make_transactions(
    rows: int, *, seed: int, cards: int, merchants: int, days: int, grid_s: int
) -> pl.DataFrame:
    """Random canonical transactions on a coarse time grid, so timestamps tie."""
    rng = np.random.default_rng(seed)
    seconds = np.sort(rng.integers(0, days * 86_400 // grid_s, rows)) * grid_s
    timestamps = [START + timedelta(seconds=int(s)) for s in seconds]
    fraud = rng.random(rows) < 0.15
    delays = rng.integers(0, 45 * 86_400, rows)
    label_times = [
        t + timedelta(seconds=int(d)) if f else None
        for t, d, f in zip(timestamps, delays, fraud, strict=True)
    ]
    frame = pl.DataFrame(
        {
            "transaction_id": [f"t{i:05d}" for i in rng.permutation(rows)],
            "timestamp": timestamps,
            "card_id": [f"c{i}" for i in rng.integers(0, cards, rows)],
            "customer_id": [None] * rows,
            "merchant_id": [f"m{i}" for i in rng.integers(0, merchants, rows)],
            "terminal_id": [None] * rows,
            "amount_minor": rng.integers(1, 50_000, rows),
            "currency": ["EUR"] * rows,
            "mcc": [str(x) for x in rng.integers(1000, 9999, rows)],
            "channel": [CHANNELS[i] for i in rng.integers(0, len(CHANNELS), rows)],
            "card_present": rng.random(rows) < 0.5,
            "merchant_country": [
                (None, "DE", "FR", "IT")[i] for i in rng.integers(0, 4, rows)
            ],
            "card_country": ["DE"] * rows,
            "device_id": [
                None if i == 0 else f"d{i}" for i in rng.integers(0, 4, rows)
            ],
            "customer_lat": [50.0] * rows,
            "customer_lon": [8.0] * rows,
            "merchant_lat": rng.uniform(40, 55, rows),
            "merchant_lon": rng.uniform(0, 15, rows),
            "is_fraud": fraud,
            "label_available_at": label_times,
            "fraud_scenario": ["stolen" if f else None for f in fraud],
        }
    )
    return frame.cast(polars_schema())


def label_time(row: dict, delay_days: int) -> datetime:
    known = row.get("label_available_at") or row["timestamp"] + timedelta(
        days=delay_days
    )
    return max(known, row["timestamp"])


def reference_features(frame: pl.DataFrame, params: FeaturesParams) -> list[dict]:
    """Compute the history features row by row from all earlier-ordered rows."""
    rows = frame.sort("timestamp", "transaction_id").to_dicts()
    first_use = [
        {
            name: int(
                row[column] is not None
                and all(
                    p[column] != row[column]
                    for p in rows[:i]
                    if p["card_id"] == row["card_id"]
                )
            )
            for name, column in FIRST_TIME_ATTRIBUTES.items()
        }
        for i, row in enumerate(rows)
    ]
    results = []
    for i, row in enumerate(rows):
        t = row["timestamp"]
        card = [p for p in rows[:i] if p["card_id"] == row["card_id"]]
        merchant = [p for p in rows[:i] if p["merchant_id"] == row["merchant_id"]]
        result = {"transaction_id": row["transaction_id"]}
        for hours in params.windows_hours:
            window = [p for p in card if p["timestamp"] > t - timedelta(hours=hours)]
            result[f"card_count_{hours}h"] = len(window)
            result[f"card_amount_sum_{hours}h"] = sum(p["amount_minor"] for p in window)
        for hours in params.distinct_windows_hours:
            window = [p for p in card if p["timestamp"] > t - timedelta(hours=hours)]
            for name, column in DISTINCT_ATTRIBUTES.items():
                present = {p[column] for p in window if p[column] is not None}
                result[f"card_distinct_{name}_{hours}h"] = len(present)
        for hours in params.new_value_windows_hours:
            window = [
                j
                for j in range(i)
                if rows[j]["card_id"] == row["card_id"]
                and rows[j]["timestamp"] > t - timedelta(hours=hours)
            ]
            for name, flag in NEW_VALUE_ATTRIBUTES.items():
                result[f"card_new_{name}_{hours}h"] = sum(
                    first_use[j][flag] for j in window
                )
        amounts = [p["amount_minor"] for p in card]
        result["card_prior_count"] = len(amounts)
        result["card_amount_mean_prior"] = float(np.mean(amounts)) if amounts else 0.0
        result["card_amount_std_prior"] = float(np.std(amounts)) if amounts else 0.0
        result["seconds_since_prev_card"] = (
            (t - card[-1]["timestamp"]).total_seconds() if card else NO_HISTORY_SECONDS
        )
        result.update(first_use[i])
        for hours in params.merchant_windows_hours:
            window = [
                p for p in merchant if p["timestamp"] > t - timedelta(hours=hours)
            ]
            result[f"merchant_count_{hours}h"] = len(window)
        for days in params.merchant_fraud_windows_days:
            window = [p for p in merchant if p["timestamp"] > t - timedelta(days=days)]
            known = [
                p
                for p in window
                if p["is_fraud"] and label_time(p, params.label_delay_days) < t
            ]
            rate = len(known) / len(window) if window else 0.0
            result[f"merchant_fraud_rate_{days}d"] = rate
        results.append(result)
    return results


APPROXIMATE = [
    "card_amount_mean_prior",
    "card_amount_std_prior",
    *[f"merchant_fraud_rate_{d}d" for d in PARAMS.merchant_fraud_windows_days],
]
HISTORY = [
    name
    for name in feature_columns(PARAMS)
    if name not in OWN_COLUMNS
    and name not in ("amount_ratio_card_mean", "amount_zscore_card")
]
EXACT = [name for name in HISTORY if name not in APPROXIMATE]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_features_match_reference_with_ties(seed: int) -> None:
    frame = make_transactions(
        400, seed=seed, cards=6, merchants=5, days=45, grid_s=1800
    )
    assert frame["timestamp"].is_duplicated().sum() > 50
    table = build_feature_table(frame, PARAMS)
    expected = reference_features(frame, PARAMS)
    actual = table.to_dicts()
    assert [row["transaction_id"] for row in actual] == [
        row["transaction_id"] for row in expected
    ]
    for got, want in zip(actual, expected, strict=True):
        for name in EXACT:
            assert got[name] == want[name], (got["transaction_id"], name)
        for name in APPROXIMATE:
            assert got[name] == pytest.approx(want[name], rel=1e-9, abs=1e-6), (
                got["transaction_id"],
                name,
            )


def test_features_tied_timestamp_orders_by_id() -> None:
    frame = make_transactions(2, seed=5, cards=1, merchants=1, days=1, grid_s=86_400)
    frame = frame.with_columns(
        transaction_id=pl.Series(["b", "a"]), timestamp=pl.lit(START)
    )
    table = build_feature_table(frame, PARAMS)
    assert table["transaction_id"].to_list() == ["a", "b"]
    assert table["card_count_1h"].to_list() == [0, 1]
    assert table["merchant_count_24h"].to_list() == [0, 1]
    assert table["seconds_since_prev_card"].to_list() == [NO_HISTORY_SECONDS, 0.0]


def test_new_merchant_count_sums_first_uses() -> None:
    frame = make_transactions(4, seed=5, cards=1, merchants=1, days=1, grid_s=86_400)
    minutes = [0, 10, 20, 90]
    frame = frame.with_columns(
        transaction_id=pl.Series(["a", "b", "c", "d"]),
        timestamp=pl.Series([START + timedelta(minutes=m) for m in minutes]),
        merchant_id=pl.Series(["m1", "m2", "m1", "m3"]),
    )
    table = build_feature_table(frame, PARAMS)
    assert table["first_time_merchant"].to_list() == [1, 1, 0, 1]
    assert table["card_new_merchants_1h"].to_list() == [0, 1, 2, 0]
    assert table["card_new_merchants_24h"].to_list() == [0, 1, 2, 2]


def test_features_unchanged_by_later_rows() -> None:
    frame = make_transactions(600, seed=7, cards=8, merchants=6, days=60, grid_s=600)
    cutoff = START + timedelta(days=30)
    early = frame.filter(pl.col("timestamp") < cutoff)
    assert 0 < early.height < frame.height
    full_table = build_feature_table(frame, PARAMS)
    early_table = build_feature_table(early, PARAMS)
    head = full_table.filter(pl.col("timestamp") < cutoff)
    columns = feature_columns(PARAMS)
    assert head.select(columns).equals(early_table.select(columns))


@st.composite
def transaction_tables(draw: st.DrawFn) -> pl.DataFrame:
    """Small tables on a 10-minute grid over 9 days: ties, gaps and null values."""
    rows = draw(st.integers(min_value=1, max_value=40))
    seed = draw(st.integers(min_value=0, max_value=2**32 - 1))
    grid_s = draw(st.sampled_from([600, 3600, 86_400]))
    return make_transactions(
        rows, seed=seed, cards=3, merchants=3, days=9, grid_s=grid_s
    )


@settings(max_examples=60, deadline=None)
@given(frame=transaction_tables(), data=st.data())
def test_features_unchanged_by_appended_rows(
    frame: pl.DataFrame, data: st.DataObject
) -> None:
    ordered = frame.sort("timestamp", "transaction_id")
    keep = data.draw(st.integers(min_value=0, max_value=ordered.height))
    # Short windows make the 1-hour and 1-day windows close and reopen in 9 days.
    params = PARAMS.model_copy(
        update={
            "windows_hours": [1, 24, 72],
            "distinct_windows_hours": [1, 48],
            "new_value_windows_hours": [1, 48],
            "merchant_windows_hours": [1, 24],
            "merchant_fraud_windows_days": [1, 3],
            "label_delay_days": 1,
        }
    )
    full_table = build_feature_table(ordered, params).head(keep)
    prefix_table = build_feature_table(ordered.head(keep), params)
    columns = ["transaction_id", *feature_columns(params)]
    assert prefix_table.select(columns).equals(full_table.select(columns))


def merchant_frame(label_at: datetime | None) -> pl.DataFrame:
    """One merchant: a fraud at day 0, then transactions at days 1, 6 and 31."""
    rows = make_transactions(4, seed=9, cards=4, merchants=1, days=1, grid_s=86_400)
    days = [0, 1, 6, 31]
    return rows.with_columns(
        transaction_id=pl.Series([f"t{d:02d}" for d in days]),
        card_id=pl.Series(["c0", "c1", "c2", "c3"]),
        timestamp=pl.Series([START + timedelta(days=d) for d in days]),
        is_fraud=pl.Series([True, False, False, False]),
        label_available_at=pl.Series(
            [label_at, None, None, None], dtype=pl.Datetime("us", "UTC")
        ),
    )


def test_fraud_rate_ignores_unknown_labels() -> None:
    table = build_feature_table(merchant_frame(START + timedelta(days=5)), PARAMS)
    rates = table["merchant_fraud_rate_30d"].to_list()
    assert rates[0] == 0.0
    assert rates[1] == 0.0
    assert rates[2] == pytest.approx(1 / 2)
    assert rates[3] == 0.0


def test_fraud_rate_label_at_transaction_time() -> None:
    table = build_feature_table(merchant_frame(START + timedelta(days=1)), PARAMS)
    assert table["merchant_fraud_rate_30d"].to_list()[1] == 0.0
    assert table["merchant_fraud_rate_30d"].to_list()[2] == pytest.approx(1 / 2)


def test_fraud_rate_uses_delay_without_label_column() -> None:
    frame = merchant_frame(START + timedelta(days=5)).drop("label_available_at")
    params = FeaturesParams(windows_hours=[24], label_delay_days=3)
    table = build_feature_table(frame, params)
    assert "label_available_at" not in table.columns
    assert table["merchant_fraud_rate_30d"].to_list() == [0.0, 0.0, 0.5, 0.0]


def test_feature_table_types_and_nulls() -> None:
    frame = make_transactions(300, seed=11, cards=5, merchants=4, days=20, grid_s=60)
    frame = frame.with_columns(
        channel=pl.when(pl.col("amount_minor") % 7 == 0)
        .then(None)
        .otherwise("channel"),
        merchant_lat=pl.when(pl.col("amount_minor") % 5 == 0)
        .then(None)
        .otherwise("merchant_lat"),
    )
    table = build_feature_table(frame, PARAMS)
    columns = feature_columns(PARAMS)
    assert len(columns) == 42
    assert table.select(columns).null_count().sum_horizontal().item() == 0
    for name in columns:
        assert table.schema[name] == feature_dtype(name), name
    assert table.filter(pl.col("channel_code") == -1).height > 0
    assert table.filter(pl.col("distance_from_home_km") == NO_DISTANCE_KM).height > 0
    assert table["hour_of_day"].is_between(0, 23).all()
    assert table["day_of_week"].is_between(1, 7).all()


def test_feature_table_is_deterministic() -> None:
    frame = make_transactions(300, seed=13, cards=5, merchants=4, days=20, grid_s=60)
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=3)
    first = build_feature_table(frame, PARAMS)
    second = build_feature_table(shuffled, PARAMS)
    assert first.equals(second)


def test_feature_names_embed_windows() -> None:
    params = FeaturesParams(windows_hours=[2, 48], label_delay_days=30)
    names = feature_columns(params)
    assert names[:4] == [
        "card_count_2h",
        "card_amount_sum_2h",
        "card_count_48h",
        "card_amount_sum_48h",
    ]
    assert "card_count_24h" not in names


def test_feature_table_rejects_repeated_window() -> None:
    frame = make_transactions(10, seed=1, cards=2, merchants=2, days=1, grid_s=60)
    params = FeaturesParams(windows_hours=[24, 24], label_delay_days=30)
    with pytest.raises(ValueError, match="repeats a window"):
        build_feature_table(frame, params)


def test_feature_table_rejects_repeated_distinct_window() -> None:
    frame = make_transactions(10, seed=1, cards=2, merchants=2, days=1, grid_s=60)
    params = PARAMS.model_copy(update={"distinct_windows_hours": [24, 24]})
    with pytest.raises(ValueError, match="distinct_windows_hours"):
        build_feature_table(frame, params)


def test_feature_table_rejects_zero_fraud_window() -> None:
    frame = make_transactions(10, seed=1, cards=2, merchants=2, days=1, grid_s=60)
    params = PARAMS.model_copy(update={"merchant_fraud_windows_days": [0]})
    with pytest.raises(ValueError, match="merchant_fraud_windows_days"):
        build_feature_table(frame, params)


def test_std_precise_for_large_close_amounts() -> None:
    frame = make_transactions(50, seed=23, cards=1, merchants=2, days=3, grid_s=60)
    amounts = [9_999_000 + (i % 3) for i in range(frame.height)]
    frame = frame.with_columns(amount_minor=pl.Series(amounts))
    table = build_feature_table(frame, PARAMS)
    ordered = frame.sort("timestamp", "transaction_id")["amount_minor"].to_list()
    for i, std in enumerate(table["card_amount_std_prior"].to_list()):
        expected = float(np.std(ordered[:i])) if i else 0.0
        assert std == pytest.approx(expected, rel=1e-9, abs=1e-12), i


def test_describe_features_covers_every_feature() -> None:
    descriptions = describe_features(PARAMS)
    assert list(descriptions) == feature_columns(PARAMS)
    merchants = descriptions["card_distinct_merchants_168h"]["parameters"]
    assert merchants == {
        "window_hours": 168,
        "group": "card_id",
        "column": "merchant_id",
    }
    rate = descriptions["merchant_fraud_rate_7d"]["parameters"]
    assert rate["window_days"] == 7
    assert rate["label_delay_days"] == 30


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Kolkata"])
def test_feature_bytes_independent_of_tz(
    zone: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = make_transactions(300, seed=19, cards=5, merchants=4, days=20, grid_s=60)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    reference = io.BytesIO()
    build_feature_table(frame, PARAMS).write_parquet(reference)
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    shifted = io.BytesIO()
    build_feature_table(frame, PARAMS).write_parquet(shifted)
    monkeypatch.undo()
    time.tzset()
    assert reference.getvalue() == shifted.getvalue()
