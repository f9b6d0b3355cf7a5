"""Feature stages on a temporary workspace, with Feast's SQLite online store."""

from __future__ import annotations

import importlib.util
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from cardfraud.data import read_transactions
from cardfraud.feature_store import read_training_set
from cardfraud.features import build_feature_table, feature_columns
from cardfraud.online import (
    CARD_STATE_VIEW,
    MERCHANT_STATE_VIEW,
    CardState,
    OnlineFeatures,
    bootstrap_states,
    epoch_us,
)
from cardfraud.params import (
    FeaturesParams,
    ValidateFeaturesParams,
    ValidateRawParams,
    load_params,
)
from cardfraud.paths import Workspace
from cardfraud.schema import CHANNELS, SchemaError, polars_schema
from cardfraud.stages import build_features, validate_features, validate_raw
from cardfraud.validation import (
    FEATURES_SUITE,
    RAW_SUITE,
    DataValidationError,
    load_suite_document,
)

os.environ.setdefault("FEAST_USAGE", "False")
os.environ.setdefault("DO_NOT_TRACK", "1")

PARAMS = FeaturesParams(
    windows_hours=[1, 24, 168, 720],
    label_delay_days=30,
    distinct_windows_hours=[1, 24, 168],
    merchant_windows_hours=[1, 24, 168],
    merchant_fraud_windows_days=[7, 30],
)
RAW_PARAMS = ValidateRawParams(
    prevalence_min=0.01, prevalence_max=0.2, max_amount_minor=5_000_000
)
START = datetime(2025, 1, 1, tzinfo=UTC)
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def make_transactions(rows: int, *, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    seconds = np.sort(rng.integers(0, 20 * 86_400, rows))
    timestamps = [START + timedelta(seconds=int(s)) for s in seconds]
    fraud = rng.random(rows) < 0.08
    frame = pl.DataFrame(
        {
            "transaction_id": [f"tx{i:05d}" for i in range(rows)],
            "timestamp": timestamps,
            "card_id": [f"card{i}" for i in rng.integers(0, 25, rows)],
            "customer_id": [None] * rows,
            "merchant_id": [f"mer{i}" for i in rng.integers(0, 8, rows)],
            "terminal_id": [None] * rows,
            "amount_minor": rng.integers(1, 80_000, rows),
            "currency": ["EUR"] * rows,
            "mcc": ["5999"] * rows,
            "channel": [CHANNELS[i] for i in rng.integers(0, len(CHANNELS), rows)],
            "card_present": rng.random(rows) < 0.5,
            "merchant_country": ["DE"] * rows,
            "card_country": ["FR"] * rows,
            "device_id": [None] * rows,
            "customer_lat": [48.1] * rows,
            "customer_lon": [11.6] * rows,
            "merchant_lat": [48.2] * rows,
            "merchant_lon": [11.5] * rows,
            "is_fraud": fraud,
            "label_available_at": [
                t + timedelta(days=2) if f else None
                for t, f in zip(timestamps, fraud, strict=True)
            ],
            "fraud_scenario": ["stolen_card_spree" if f else None for f in fraud],
        }
    )
    return frame.cast(polars_schema())


def write_partitions(
    frame: pl.DataFrame, raw_dir: Path, *, shuffle: bool = False
) -> None:
    """Write one ``dt=YYYY-MM-DD/part-0.parquet`` file per UTC day.

    Rows stay in time order, as the raw suite requires, unless ``shuffle`` is set.
    """
    days = frame.with_columns(_day=pl.col("timestamp").dt.date())
    for (day,), part in days.group_by("_day"):
        folder = raw_dir / f"dt={day.isoformat()}"
        folder.mkdir(parents=True)
        part = part.drop("_day")
        if shuffle:
            part = part.sample(fraction=1.0, shuffle=True, seed=1)
        part.write_parquet(folder / "part-0.parquet")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, dict]:
    ws = Workspace(tmp_path_factory.mktemp("workspace"))
    write_partitions(make_transactions(1_500, seed=3), ws.raw_dir)
    summary = build_features.run(ws, PARAMS)
    return ws, summary


def test_read_transactions_sorted_from_partitions(tmp_path: Path) -> None:
    frame = make_transactions(300, seed=4)
    write_partitions(frame, tmp_path / "raw", shuffle=True)
    (tmp_path / "raw" / "notes").mkdir()
    loaded = read_transactions(tmp_path / "raw")
    assert loaded.columns == list(polars_schema())
    assert loaded.equals(frame.sort("timestamp", "transaction_id"))


def test_read_transactions_rejects_duplicate_id(tmp_path: Path) -> None:
    frame = make_transactions(50, seed=5).with_columns(transaction_id=pl.lit("same"))
    write_partitions(frame, tmp_path / "raw")
    with pytest.raises(SchemaError, match="transaction_id"):
        read_transactions(tmp_path / "raw")


def test_read_transactions_names_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="dt=YYYY-MM-DD"):
        read_transactions(tmp_path)


def online(ws: Workspace) -> OnlineFeatures:
    return OnlineFeatures.from_repo(ws.feature_repo, PARAMS)


def test_online_state_matches_bootstrap(built) -> None:
    ws, summary = built
    transactions = read_transactions(ws.raw_dir)
    cutoff = transactions["timestamp"].max() + timedelta(microseconds=1)
    cards, merchants = bootstrap_states(transactions, PARAMS, cutoff=cutoff)
    store = online(ws)
    assert summary["feature_store"]["cards"] == 25
    assert summary["feature_store"]["merchants"] == 8
    for row in cards.iter_rows(named=True):
        state = store.read_card(row["card_id"])
        assert state is not None
        assert state.count == row["count"]
        assert state.event_ids == row["event_ids"]
        assert state.shifted_square_sum == row["shifted_square_sum"]
    for row in merchants.iter_rows(named=True):
        state = store.read_merchant(row["merchant_id"])
        assert state is not None
        assert state.event_us == row["event_us"]
        assert state.fraud_label_us == row["fraud_label_us"]


def next_transaction(ws: Workspace, **fields: object) -> dict:
    """A transaction one hour after the last one, on an existing card."""
    last = read_transactions(ws.raw_dir).row(-1, named=True)
    row = {key: value for key, value in last.items() if key not in LABELS}
    row.update(
        transaction_id="tx-next",
        timestamp=last["timestamp"] + timedelta(hours=1),
        amount_minor=4_321,
    )
    return {**row, **fields}


LABELS = ("is_fraud", "label_available_at", "fraud_scenario")


def test_online_features_equal_table_with_new_row(built, tmp_path: Path) -> None:
    ws, _ = built
    transaction = next_transaction(ws)
    result = online(ws).features(transaction)
    extended = pl.concat(
        [
            read_transactions(ws.raw_dir),
            pl.DataFrame(
                [{**transaction, "is_fraud": False}], schema=polars_schema()
            ).select(read_transactions(ws.raw_dir).columns),
        ]
    )
    row = build_feature_table(extended, PARAMS).row(-1, named=True)
    assert row["transaction_id"] == "tx-next"
    assert result.missing == []
    for name in feature_columns(PARAMS):
        assert result.values[name] == pytest.approx(row[name], rel=1e-9, abs=0.0), name
    assert result.values["card_prior_count"] > 0


def test_process_retry_appends_once(built) -> None:
    ws, _ = built
    store = online(ws)
    transaction = next_transaction(ws, transaction_id="tx-retry")
    before = store.read_card(transaction["card_id"])
    store.process(transaction)
    store.process(transaction)
    after = store.read_card(transaction["card_id"])
    assert before is not None
    assert after is not None
    assert after.count == before.count + 1
    assert after.event_ids.count("tx-retry") == 1


def test_process_rejects_naive_time_without_write(built) -> None:
    ws, _ = built
    store = online(ws)
    transaction = next_transaction(
        ws, transaction_id="tx-naive", timestamp=datetime(2025, 3, 1)
    )
    before = store.read_card(transaction["card_id"])
    with pytest.raises(ValueError, match="timezone-aware"):
        store.process(transaction)
    assert store.read_card(transaction["card_id"]) == before


def test_online_unknown_card_reported_missing(built) -> None:
    ws, _ = built
    store = online(ws)
    transaction = {
        "transaction_id": "tx-unknown",
        "timestamp": START + timedelta(days=30),
        "card_id": "card-unknown",
        "merchant_id": "mer1",
        "amount_minor": 500,
    }
    result = store.features(transaction)
    assert result.missing == [CARD_STATE_VIEW]
    assert result.values["card_count_24h"] == 0.0
    assert result.values["merchant_count_168h"] == 0.0
    assert store.missing_counts[CARD_STATE_VIEW] == 1
    assert store.missing_counts[MERCHANT_STATE_VIEW] == 0
    assert store.read_card("card-unknown") is None


def test_apply_label_changes_merchant_rate(built) -> None:
    ws, _ = built
    store = online(ws)
    transaction = next_transaction(ws, transaction_id="tx-label-base")
    before = store.features(transaction).values["merchant_fraud_rate_30d"]

    labelled_at = transaction["timestamp"] - timedelta(minutes=1)
    fraud_time = transaction["timestamp"] - timedelta(hours=2)
    now_us = epoch_us(transaction["timestamp"])
    month_us = 30 * 86_400 * 1_000_000
    total = sum(
        1
        for event_us in store.read_merchant(transaction["merchant_id"]).event_us
        if now_us - month_us < event_us <= now_us
    )
    changed = store.apply_label(
        transaction_id="tx-new-fraud",
        merchant_id=transaction["merchant_id"],
        timestamp=fraud_time,
        is_fraud=True,
        label_available_at=labelled_at,
    )
    again = store.apply_label(
        transaction_id="tx-new-fraud",
        merchant_id=transaction["merchant_id"],
        timestamp=fraud_time,
        is_fraud=True,
        label_available_at=labelled_at,
    )
    legit = store.apply_label(
        transaction_id="tx-legit",
        merchant_id=transaction["merchant_id"],
        timestamp=fraud_time,
        is_fraud=False,
    )
    after = store.features(transaction).values["merchant_fraud_rate_30d"]

    assert changed is True
    assert again is False
    assert legit is False
    assert total > 0
    assert after == pytest.approx(before + 1 / total, rel=1e-9)


def test_training_set_equals_table(built) -> None:
    ws, _ = built
    table = pl.read_parquet(ws.features_dir / "features.parquet")
    training = read_training_set(ws, feature_columns(PARAMS))
    assert training.select(table.columns).equals(table)


def test_state_snapshots_written(built) -> None:
    ws, _ = built
    cards = pl.read_parquet(ws.features_dir / "card_state.parquet")
    merchants = pl.read_parquet(ws.features_dir / "merchant_state.parquet")
    assert cards.height == 25
    assert merchants.height == 8
    assert set(cards.columns) >= {
        "card_id",
        "state_time",
        *CardState.__dataclass_fields__,
    }


def test_spec_and_lineage_cover_features(built) -> None:
    ws, summary = built
    spec = json.loads((ws.features_dir / "feature_spec.json").read_text())
    lineage = json.loads((ws.features_dir / "lineage.json").read_text())
    assert spec["feature_columns"] == feature_columns(PARAMS)
    assert spec["key_columns"] == [
        "transaction_id",
        "card_id",
        "merchant_id",
        "timestamp",
    ]
    assert spec["label_column"] == "is_fraud"
    assert spec["params"] == PARAMS.model_dump(mode="json")
    assert spec["online_state_views"] == ["card_state", "merchant_state"]
    assert sorted(lineage) == sorted(spec["feature_columns"])
    assert lineage["card_count_24h"]["feature_view"] == "transaction_features"
    assert lineage["card_count_24h"]["online_source"] == "card_state"
    assert lineage["card_count_24h"]["parameters"]["window_hours"] == 24
    assert lineage["merchant_fraud_rate_30d"]["online_source"] == "merchant_state"
    assert lineage["log_amount"]["online_source"] == "request"
    assert lineage["log_amount"]["source"] == "data/features/features.parquet"
    assert summary["rows"] == 1_500


def test_build_features_output_bytes_repeat(built, tmp_path: Path) -> None:
    ws, _ = built
    again = Workspace(tmp_path)
    write_partitions(make_transactions(1_500, seed=3), again.raw_dir)
    build_features.run(again, PARAMS)
    names = ("features.parquet", "feature_spec.json", "lineage.json")
    for name in (*names, "card_state.parquet", "merchant_state.parquet"):
        first = (ws.features_dir / name).read_bytes()
        second = (again.features_dir / name).read_bytes()
        assert first == second, name


def test_validate_stages_pass_and_write_reports(built) -> None:
    ws, _ = built
    raw = validate_raw.run(ws, RAW_PARAMS)
    features = validate_features.run(ws, ValidateFeaturesParams(max_null_share=0.0))
    assert raw["failed"] == 0
    assert raw["expectations"] == len(load_suite_document(RAW_SUITE)["expectations"])
    assert features["failed"] == 0
    assert features["expectations"] == len(
        load_suite_document(FEATURES_SUITE)["expectations"]
    )
    report = json.loads((ws.validation_dir / "features.json").read_text())
    assert report["success"] is True


def test_validate_raw_stops_on_prevalence(built) -> None:
    ws, _ = built
    params = ValidateRawParams(
        prevalence_min=0.3, prevalence_max=0.4, max_amount_minor=5_000_000
    )
    with pytest.raises(DataValidationError, match="fraud_prevalence_in_band"):
        validate_raw.run(ws, params)
    report = json.loads((ws.validation_dir / "raw_transactions.json").read_text())
    assert report["failed"] == ["fraud_prevalence_in_band"]


def test_feature_repo_definitions_import() -> None:
    path = PROJECT_ROOT / "feature_repo" / "definitions.py"
    spec = importlib.util.spec_from_file_location("feature_repo_definitions", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fields = {field.name for field in module.transaction_features.schema}
    params = load_params(PROJECT_ROOT / "params.yaml").features
    assert fields == set(feature_columns(params))
    assert {f.name for f in module.card_state.schema} == set(
        CardState.__dataclass_fields__
    )
    assert "fraud_label_us" in {f.name for f in module.merchant_state.schema}
    assert module.feature_table.path == str(
        PROJECT_ROOT / "data" / "features" / "features.parquet"
    )
    assert module.card_state_snapshot.path == str(
        PROJECT_ROOT / "data" / "features" / "card_state.parquet"
    )
    assert module.fraud_model.name == "fraud_model"
