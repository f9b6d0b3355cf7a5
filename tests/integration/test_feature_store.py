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
from cardfraud.features import (
    CARD_STATE_COLUMN,
    feature_columns,
    online_input_columns,
    request_features,
)
from cardfraud.params import FeaturesParams, ValidateFeaturesParams, ValidateRawParams
from cardfraud.paths import Workspace
from cardfraud.schema import CHANNELS, SchemaError, polars_schema
from cardfraud.stages import build_features, validate_features, validate_raw
from cardfraud.validation import DataValidationError

os.environ.setdefault("FEAST_USAGE", "False")
os.environ.setdefault("DO_NOT_TRACK", "1")

PARAMS = FeaturesParams(windows_hours=[1, 24, 168, 720], label_delay_days=30)
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
            "fraud_scenario": ["stolen_card" if f else None for f in fraud],
        }
    )
    return frame.cast(polars_schema())


def write_partitions(frame: pl.DataFrame, raw_dir: Path) -> None:
    """Write one ``dt=YYYY-MM-DD/part-0.parquet`` file per UTC day, rows shuffled."""
    days = frame.with_columns(_day=pl.col("timestamp").dt.date())
    for (day,), part in days.group_by("_day"):
        folder = raw_dir / f"dt={day.isoformat()}"
        folder.mkdir(parents=True)
        shuffled = part.drop("_day").sample(fraction=1.0, shuffle=True, seed=1)
        shuffled.write_parquet(folder / "part-0.parquet")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, dict]:
    ws = Workspace(tmp_path_factory.mktemp("workspace"))
    write_partitions(make_transactions(1_500, seed=3), ws.raw_dir)
    summary = build_features.run(ws, PARAMS)
    return ws, summary


def test_read_transactions_sorted_from_partitions(tmp_path: Path) -> None:
    frame = make_transactions(300, seed=4)
    write_partitions(frame, tmp_path / "raw")
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


def test_online_card_matches_last_offline_row(built) -> None:
    ws, summary = built
    from cardfraud.feature_store import OnlineFeatureReader

    table = pl.read_parquet(ws.features_dir / "features.parquet")
    last = table.group_by("card_id").agg(pl.all().sort_by("timestamp").last())
    tied = table.filter(pl.struct("card_id", "timestamp").is_duplicated())
    card = last.filter(~pl.col("card_id").is_in(tied["card_id"].implode())).row(
        0, named=True
    )
    merchant = table.filter(pl.col("merchant_id") == card["merchant_id"]).row(
        -1, named=True
    )
    online = OnlineFeatureReader(ws.feature_repo).get(
        card["card_id"], card["merchant_id"]
    )
    assert summary["feature_store"]["cards"] == 25
    assert set(online) == set(online_input_columns(PARAMS))
    for name in online_input_columns(PARAMS):
        expected = merchant[name] if name.startswith("merchant_") else card[name]
        assert online[name] == pytest.approx(expected), name
    assert card["card_prior_count"] > 0


def test_online_unknown_card_reported_missing(built) -> None:
    ws, _ = built
    from cardfraud.feature_store import OnlineFeatureReader

    online = OnlineFeatureReader(ws.feature_repo).get("card-unknown", "mer1")
    assert online["card_count_24h"] is None
    assert online["merchant_count_24h"] is not None
    transaction = {"timestamp": START + timedelta(days=30), "amount_minor": 500}
    result = request_features(transaction, online, PARAMS)
    assert "card_count_24h" in result.missing
    assert CARD_STATE_COLUMN in result.missing
    assert "merchant_count_24h" not in result.missing
    assert result.values["card_count_24h"] == 0.0


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
    assert spec["params"] == {
        "windows_hours": [1, 24, 168, 720],
        "label_delay_days": 30,
    }
    assert sorted(lineage) == sorted(spec["feature_columns"])
    assert lineage["card_count_24h"]["feature_view"] == "card_features"
    assert lineage["card_count_24h"]["parameters"]["window_hours"] == 24
    assert lineage["merchant_fraud_rate_30d"]["feature_view"] == "merchant_features"
    assert lineage["log_amount"]["feature_view"] == "request"
    assert lineage["log_amount"]["source"] == "data/features/features.parquet"
    assert summary["rows"] == 1_500


def test_build_features_output_bytes_repeat(built, tmp_path: Path) -> None:
    ws, _ = built
    again = Workspace(tmp_path)
    write_partitions(make_transactions(1_500, seed=3), again.raw_dir)
    build_features.run(again, PARAMS)
    for name in ("features.parquet", "feature_spec.json", "lineage.json"):
        first = (ws.features_dir / name).read_bytes()
        second = (again.features_dir / name).read_bytes()
        assert first == second, name


def test_validate_stages_pass_and_write_reports(built) -> None:
    ws, _ = built
    raw = validate_raw.run(ws, RAW_PARAMS)
    features = validate_features.run(ws, ValidateFeaturesParams(max_null_share=0.0))
    assert raw["failed"] == 0
    assert raw["expectations"] == 15
    assert features["failed"] == 0
    assert features["expectations"] == 63
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
    fields = [field.name for field in module.card_features.schema]
    assert "card_count_720h" in fields
    assert CARD_STATE_COLUMN in fields
    assert {f.name for f in module.merchant_features.schema} == {
        "merchant_count_24h",
        "merchant_count_168h",
        "merchant_fraud_rate_30d",
    }
    assert module.feature_table.path == str(
        PROJECT_ROOT / "data" / "features" / "features.parquet"
    )
    assert module.fraud_model.name == "fraud_model"
