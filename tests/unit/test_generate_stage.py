from __future__ import annotations

import json
from datetime import date

import polars as pl
import pytest

import fraudgen
from cardfraud.params import GenerateParams
from cardfraud.paths import Workspace
from cardfraud.schema import SchemaError, polars_schema, validate_frame
from cardfraud.stages import generate


def small_params(**changes) -> GenerateParams:
    values = {
        "rows": 5000,
        "days": 14,
        "start": date(2025, 3, 1),
        "fraud_rate": 0.01,
        "seed": 11,
        "write_csv": False,
    }
    return GenerateParams(**{**values, **changes})


def read_raw(ws: Workspace) -> pl.DataFrame:
    return pl.read_parquet(
        ws.raw_dir / "dt=*" / "part-0.parquet", hive_partitioning=False
    )


def test_fraudgen_schema_equals_canonical_schema():
    assert polars_schema() == fraudgen.SCHEMA
    assert list(fraudgen.SCHEMA) == list(polars_schema())


def test_generated_partitions_pass_validate_frame(tmp_path):
    ws = Workspace(tmp_path)
    generate.run(ws, small_params())
    frame = read_raw(ws)
    validated = validate_frame(frame, require_labels=True)
    assert validated.columns == list(polars_schema())
    assert validated.height == frame.height
    for path in sorted(ws.raw_dir.glob("dt=*/part-0.parquet")):
        validate_frame(pl.read_parquet(path), require_labels=True)


def test_summary_matches_written_data(tmp_path):
    ws = Workspace(tmp_path)
    summary = generate.run(ws, small_params())
    frame = read_raw(ws)
    assert summary["rows"] == frame.height
    assert summary["frauds"] == int(frame["is_fraud"].sum())
    assert summary["prevalence"] == pytest.approx(frame["is_fraud"].mean(), abs=1e-6)
    assert summary["days"] == 14
    assert summary["start"] == "2025-03-01"
    assert summary["end"] == "2025-03-14"
    assert sum(summary["scenarios"].values()) == summary["frauds"]
    assert set(summary["scenarios"]) == set(fraudgen.SCENARIOS)
    json.dumps(summary)


def test_stage_params_reach_manifest(tmp_path):
    ws = Workspace(tmp_path)
    generate.run(ws, small_params(write_csv=True))
    manifest = json.loads((ws.raw_dir / "manifest.json").read_text())
    assert manifest["seed"] == 11
    assert manifest["config"]["fraud_rate"] == 0.01
    assert manifest["config"]["rows"] == 5000
    assert manifest["config"]["start"] == "2025-03-01"
    assert len(list(ws.raw_dir.glob("csv/dt=*/part-0.csv"))) == 14


def test_rerun_gives_same_manifest_hash(tmp_path):
    ws = Workspace(tmp_path)
    first = generate.run(ws, small_params())
    second = generate.run(ws, small_params())
    assert first["manifest_sha256"] == second["manifest_sha256"]
    other = generate.run(ws, small_params(seed=12))
    assert other["manifest_sha256"] != first["manifest_sha256"]


def test_check_partition_rejects_bad_dtype(tmp_path):
    ws = Workspace(tmp_path)
    generate.run(ws, small_params())
    manifest = fraudgen.Manifest.read(ws.raw_dir)
    path = ws.raw_dir / manifest.files[0].path
    frame = pl.read_parquet(path).with_columns(pl.col("amount_minor").cast(pl.Float64))
    frame.write_parquet(path)
    with pytest.raises(SchemaError, match="amount_minor"):
        generate.check_partition(ws.raw_dir, manifest)
