"""The pipeline on an external table: a generated data set exported as a bank's CSV.

The CSV has other column names, decimal amounts, timestamps with a +01:00 offset and
text labels. Ingesting it must give back the generated transactions exactly, and the
stages through train must run on it unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from polars.testing import assert_frame_equal

from cardfraud.data import read_transactions
from cardfraud.params import load_params
from cardfraud.paths import Workspace
from cardfraud.pipeline import run_stage
from cardfraud.smoke import smoke_params
from cardfraud.stages import generate

# Canonical column: column name in the exported CSV.
EXPORT_NAMES = {
    "transaction_id": "TxnRef",
    "timestamp": "AuthTime",
    "card_id": "PanToken",
    "customer_id": "ClientNo",
    "merchant_id": "MerchantNo",
    "terminal_id": "TerminalNo",
    "currency": "Ccy",
    "mcc": "MCC",
    "channel": "Channel",
    "card_present": "CardPresent",
    "merchant_country": "MerchCountry",
    "card_country": "IssuerCountry",
    "device_id": "DeviceFingerprint",
    "customer_lat": "HomeLat",
    "customer_lon": "HomeLon",
    "merchant_lat": "MerchLat",
    "merchant_lon": "MerchLon",
    "fraud_scenario": "CaseType",
}
CHANNEL_CODES = {
    "pos": "POS",
    "ecommerce": "ECOM",
    "atm": "ATM",
    "contactless": "CTLS",
}


def export_as_bank_csv(frame: pl.DataFrame, path: Path) -> None:
    """Write canonical transactions the way a bank export might look."""
    local = pl.col("timestamp").dt.convert_time_zone("Etc/GMT-1")
    exported = frame.select(
        *[
            pl.col(name).alias(export)
            for name, export in EXPORT_NAMES.items()
            if name not in ("timestamp", "channel", "card_present")
        ],
        AuthTime=local.dt.strftime("%Y-%m-%dT%H:%M:%S%.6f%:z"),
        Amount=(pl.col("amount_minor") // 100).cast(pl.String)
        + "."
        + (pl.col("amount_minor") % 100).cast(pl.String).str.zfill(2),
        Channel=pl.col("channel").replace_strict(CHANNEL_CODES),
        CardPresent=pl.when(pl.col("card_present"))
        .then(pl.lit("Y"))
        .otherwise(pl.lit("N")),
        Outcome=pl.when(pl.col("is_fraud"))
        .then(pl.lit("FRAUD"))
        .otherwise(pl.lit("GENUINE")),
        ChargebackTime=pl.col("label_available_at").dt.strftime(
            "%Y-%m-%dT%H:%M:%S%.6fZ"
        ),
    )
    exported.sample(fraction=1.0, shuffle=True, seed=5).write_csv(path)


def bank_mapping(*, with_label_time: bool) -> dict[str, Any]:
    columns: dict[str, str] = {
        **EXPORT_NAMES,
        "amount": "Amount",
        "is_fraud": "Outcome",
    }
    if with_label_time:
        columns["label_available_at"] = "ChargebackTime"
    return {
        "format": "csv",
        "columns": columns,
        "amount": {"unit": "major", "exponent": "iso4217"},
        "labels": {"fraud_values": ["fraud"], "legit_values": ["genuine"]},
        "channels": {code: name for name, code in CHANNEL_CODES.items()},
    }


def write_params(folder: Path, source: Path, mapping: dict[str, Any]) -> Path:
    mapping_path = folder / "bank_mapping.yaml"
    mapping_path.write_text(yaml.safe_dump(mapping), encoding="utf-8")
    data = {"source": str(source), "mapping": str(mapping_path)}
    params_path = folder / "params.yaml"
    params = smoke_params({"data": data})
    params_path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return params_path


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    """Smoke-size generated transactions, in canonical form."""
    ws = Workspace(tmp_path_factory.mktemp("generated"))
    params = load_params(
        write_params(ws.root, Path("unused.csv"), bank_mapping(with_label_time=True))
    )
    generate.run_generator(ws, params.generate)
    return read_transactions(ws.raw_dir)


def test_pipeline_runs_on_external_csv(tmp_path, generated):
    source = tmp_path / "bank_export.csv"
    export_as_bank_csv(generated, source)
    params = load_params(
        write_params(tmp_path, source, bank_mapping(with_label_time=True))
    )
    ws = Workspace(tmp_path / "workspace")

    summaries = {
        name: run_stage(name, ws, params)
        for name in (
            "generate",
            "validate_raw",
            "build_features",
            "validate_features",
            "train",
        )
    }

    assert_frame_equal(read_transactions(ws.raw_dir), generated)
    manifest = json.loads((ws.raw_dir / "manifest.json").read_text())
    assert manifest["package"] == "cardfraud.ingest"
    assert manifest["source_path"] == str(source)
    assert summaries["generate"]["rows"] == generated.height
    assert summaries["generate"]["frauds"] == int(generated["is_fraud"].sum())
    assert summaries["validate_raw"]["failed"] == 0
    assert summaries["build_features"]["rows"] == generated.height
    assert summaries["validate_features"]["failed"] == 0
    metrics = json.loads((ws.metrics_dir / "train.json").read_text())
    assert metrics == {key: summaries["train"][key] for key in metrics}
    assert (ws.candidate_dir / "model_meta.json").is_file()


def test_external_csv_without_label_time(tmp_path, generated):
    source = tmp_path / "bank_export.csv"
    export_as_bank_csv(generated, source)
    params = load_params(
        write_params(tmp_path, source, bank_mapping(with_label_time=False))
    )
    ws = Workspace(tmp_path / "workspace")

    run_stage("generate", ws, params)
    features = run_stage("build_features", ws, params)

    raw = read_transactions(ws.raw_dir)
    assert raw["label_available_at"].null_count() == raw.height
    assert_frame_equal(
        raw.drop("label_available_at"), generated.drop("label_available_at")
    )
    assert features["rows"] == generated.height
