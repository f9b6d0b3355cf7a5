"""`dvc repro` stops at validate_raw on bad raw data, with the readable report.

The test builds a throwaway DVC project with the validate_raw and build_features
stages of the real dvc.yaml: the same commands (papermill on the real notebooks with
the `cardfraud` kernel), params and outs. CARDFRAUD_ROOT points the notebooks'
workspace "." at that project, so nothing under the repository is read or written.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nbformat
import polars as pl
import pytest
import yaml

from cardfraud.paths import ROOT_ENV, project_root
from cardfraud.schema import CHANNELS, polars_schema
from cardfraud.smoke import smoke_params

STAGES = ("validate_raw", "build_features")
NOTEBOOKS = ("02_validate_raw.ipynb", "03_build_features.ipynb")
START = datetime(2025, 3, 1, tzinfo=UTC)
ROWS = 200


def bad_raw_frame() -> pl.DataFrame:
    """Raw transactions with one defect per acceptance rule.

    A null card_id (t0003), an amount above max_amount_minor (t0004), a repeated
    transaction id (t0007 renamed t0006) and a fraud share of 10%, above the smoke
    band of 0.5% to 6%.
    """
    ids = [f"t{i:04d}" for i in range(ROWS)]
    ids[7] = "t0006"
    frame = pl.DataFrame(
        {
            "transaction_id": ids,
            "timestamp": [START + timedelta(minutes=7 * i) for i in range(ROWS)],
            "card_id": [None if i == 3 else f"c{i % 9}" for i in range(ROWS)],
            "customer_id": [f"u{i % 9}" for i in range(ROWS)],
            "merchant_id": [f"m{i % 5}" for i in range(ROWS)],
            "terminal_id": [None] * ROWS,
            "amount_minor": [
                20_000_000 if i == 4 else 100 + 37 * i for i in range(ROWS)
            ],
            "currency": ["EUR"] * ROWS,
            "mcc": ["5411"] * ROWS,
            "channel": [CHANNELS[i % len(CHANNELS)] for i in range(ROWS)],
            "card_present": [i % 2 == 0 for i in range(ROWS)],
            "merchant_country": ["DE"] * ROWS,
            "card_country": ["DE"] * ROWS,
            "device_id": [None] * ROWS,
            "customer_lat": [52.5] * ROWS,
            "customer_lon": [13.4] * ROWS,
            "merchant_lat": [52.4] * ROWS,
            "merchant_lon": [13.3] * ROWS,
            "is_fraud": [i % 10 == 0 for i in range(ROWS)],
            "label_available_at": [
                START + timedelta(minutes=7 * i, days=20) if i % 10 == 0 else None
                for i in range(ROWS)
            ],
            "fraud_scenario": [
                "card_testing" if i % 10 == 0 else None for i in range(ROWS)
            ],
        }
    )
    return frame.cast(polars_schema())


def write_partitions(frame: pl.DataFrame, raw_dir: Path) -> None:
    """Write one parquet file per UTC day in the lake's dt=YYYY-MM-DD layout."""
    days = frame.with_columns(_day=pl.col("timestamp").dt.date())
    for (day,), part in days.partition_by(
        "_day", as_dict=True, maintain_order=True
    ).items():
        folder = raw_dir / f"dt={day:%Y-%m-%d}"
        folder.mkdir(parents=True)
        part.drop("_day").write_parquet(folder / "part-0.parquet")


def project_stages() -> dict[str, Any]:
    """Copy the vars and the two stages of the real dvc.yaml.

    Dependencies on library code and suites stay in the repository, so they are
    left out; the notebooks are copied into the project.
    """
    pipeline = yaml.safe_load((project_root() / "dvc.yaml").read_text(encoding="utf-8"))
    stages = {}
    for name in STAGES:
        stage = dict(pipeline["stages"][name])
        stage["deps"] = [
            dep
            for dep in stage["deps"]
            if not dep.startswith(("src/", "expectations/"))
        ]
        stages[name] = stage
    return {"vars": pipeline["vars"], "stages": stages}


@pytest.fixture
def dvc_project(tmp_path: Path) -> Path:
    """A DVC project (no git) with the two stages, smoke params and bad raw data."""
    bin_dir = Path(sys.executable).parent
    subprocess.run(
        [bin_dir / "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True
    )
    (tmp_path / "dvc.yaml").write_text(
        yaml.safe_dump(project_stages(), sort_keys=False), encoding="utf-8"
    )
    (tmp_path / "params.yaml").write_text(
        yaml.safe_dump(smoke_params(), sort_keys=False), encoding="utf-8"
    )
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "reports" / "executed").mkdir(parents=True)
    for name in NOTEBOOKS:
        shutil.copy(project_root() / "notebooks" / name, tmp_path / "notebooks")
    write_partitions(bad_raw_frame(), tmp_path / "data" / "raw")
    return tmp_path


def run_repro(project: Path) -> subprocess.CompletedProcess[str]:
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        ROOT_ENV: str(project),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
    }
    return subprocess.run(
        [bin_dir / "dvc", "repro"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_repro_stops_at_validate_raw(dvc_project: Path) -> None:
    result = run_repro(dvc_project)
    output = result.stdout + result.stderr

    assert result.returncode != 0, output
    assert "validate_raw" in output
    assert "DataValidationError" in output
    assert not (dvc_project / "data" / "features").exists()
    assert not (
        dvc_project / "reports" / "executed" / "03_build_features.ipynb"
    ).exists()
    lock = dvc_project / "dvc.lock"
    assert not lock.exists() or "validate_raw" not in lock.read_text(encoding="utf-8")

    report = json.loads(
        (dvc_project / "data" / "validation" / "raw_transactions.json").read_text(
            encoding="utf-8"
        )
    )
    assert report["success"] is False
    assert report["rows"] == ROWS
    failures = {row["expectation"]: row for row in report["failures"]}
    assert sorted(failures) == [
        "amount_minor_at_most_max",
        "card_id_not_null",
        "fraud_prevalence_in_band",
        "transaction_id_unique",
    ]
    assert failures["card_id_not_null"]["column"] == "card_id"
    assert failures["card_id_not_null"]["unexpected_rows"] == 1
    assert failures["amount_minor_at_most_max"]["column"] == "amount_minor"
    assert failures["amount_minor_at_most_max"]["unexpected_rows"] == 1
    assert failures["amount_minor_at_most_max"]["examples"] == [20_000_000]
    assert failures["transaction_id_unique"]["unexpected_rows"] == 2
    assert failures["transaction_id_unique"]["examples"] == ["t0006", "t0006"]
    assert failures["fraud_prevalence_in_band"]["column"] == "is_fraud"
    assert failures["fraud_prevalence_in_band"]["observed"] == pytest.approx(0.1)


def test_repro_failure_shows_in_executed_notebook(dvc_project: Path) -> None:
    result = run_repro(dvc_project)
    assert result.returncode != 0

    executed = dvc_project / "reports" / "executed" / "02_validate_raw.ipynb"
    notebook = nbformat.read(executed, as_version=4)
    failures_cell = next(
        cell
        for cell in notebook.cells
        if "label: tbl-raw-validation-failures" in cell.source
    )
    table = failures_cell.outputs[0]["data"]["text/html"]
    for name in (
        "card_id_not_null",
        "amount_minor_at_most_max",
        "transaction_id_unique",
    ):
        assert name in table
    assert "20000000" in table
    last = notebook.cells[-1]
    assert last.outputs[-1]["output_type"] == "error"
    assert last.outputs[-1]["ename"] == "DataValidationError"
