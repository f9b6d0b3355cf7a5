from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from fraudgen.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("fraud_rate: -0.5\n", "fraud_rate"),
        ("scenario_mix:\n  phishing: 0.1\n", "scenario_mix.phishing"),
        ("start: 2025-05-01\nend: 2025-04-01\n", "end"),
        ("colour: blue\n", "colour"),
    ],
)
def test_bad_config_exits_2_without_output(tmp_path, text, key):
    config = tmp_path / "bad.yaml"
    config.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["generate", "--config", str(config), "--out", str(out)]
    )
    assert result.exit_code == 2
    assert key in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


def test_validate_config_reports_bad_key(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("rows: 0\n", encoding="utf-8")
    result = runner.invoke(app, ["validate-config", str(config)])
    assert result.exit_code == 2
    assert "'rows'" in result.stderr


def test_validate_config_accepts_good_file(tmp_path):
    config = tmp_path / "good.yaml"
    config.write_text("rows: 5000\ndays: 10\n", encoding="utf-8")
    result = runner.invoke(app, ["validate-config", str(config)])
    assert result.exit_code == 0
    assert "rows=5000, 10 days" in result.stdout


def test_generate_writes_partitions(tmp_path):
    out = tmp_path / "out"
    args = [
        "generate",
        "--out",
        str(out),
        "--rows",
        "3000",
        "--days",
        "5",
        "--seed",
        "4",
    ]
    result = runner.invoke(app, [*args, "--quiet"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["days"] == 5
    assert manifest["seed"] == 4
    assert len(list(out.glob("dt=*/part-0.parquet"))) == 5
    again = runner.invoke(app, [*args, "--quiet"])
    assert again.exit_code == 2
    assert "not empty" in again.stderr


def test_describe_lists_columns_and_scenarios():
    result = runner.invoke(app, ["describe", "--json"])
    assert result.exit_code == 0
    payload = json.loads(result.stdout)
    assert payload["columns"][0]["name"] == "transaction_id"
    assert len(payload["columns"]) == 21
    assert payload["scenarios"][0]["name"] == "card_testing"


def test_console_module_runs():
    result = subprocess.run(
        [sys.executable, "-m", "fraudgen", "describe"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "stolen_card_spree" in result.stdout


def test_rows_and_days_override_config(tmp_path):
    config = tmp_path / "span.yaml"
    config.write_text("cards: 300\nend: 2025-01-20\nseed: 3\n", encoding="utf-8")
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "generate",
            "--config",
            str(config),
            "--out",
            str(out),
            "--rows",
            "2000",
            "--days",
            "3",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["rows"] == 2000
    assert manifest["config"]["cards"] is None
    assert manifest["config"]["days"] == 3
    assert manifest["config"]["end"] is None
    assert manifest["seed"] == 3


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--rows", "-5"),
        ("--rows", "0"),
        ("--rows", "abc"),
        ("--days", "0"),
        ("--days", "99999"),
        ("--seed", "-1"),
    ],
)
def test_bad_option_value_exits_2(tmp_path, option, value):
    out = tmp_path / "out"
    result = runner.invoke(app, ["generate", "--out", str(out), option, value])
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith(f"error: {option} must be an integer")
    assert repr(value) in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_csv_flag_writes_csv(tmp_path):
    out = tmp_path / "out"
    args = ["generate", "--out", str(out), "--rows", "2000", "--days", "2"]
    result = runner.invoke(app, [*args, "--csv", "--quiet"])
    assert result.exit_code == 0, result.output
    csv_files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.csv"))
    assert csv_files == [
        "csv/dt=2025-01-01/part-0.csv",
        "csv/dt=2025-01-02/part-0.csv",
    ]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["write_csv"] is True


def test_non_empty_out_left_untouched(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine\n", encoding="utf-8")
    result = runner.invoke(
        app, ["generate", "--out", str(out), "--rows", "2000", "--days", "2"]
    )
    assert result.exit_code == 2
    assert "not empty" in result.stderr
    assert "--overwrite" in result.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert (out / "keep.txt").read_text(encoding="utf-8") == "mine\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def generate_with_threads(out, threads: int) -> dict[str, bytes]:
    """Run `fraudgen generate` in a fresh process limited to ``threads`` threads."""
    env = {
        **os.environ,
        "POLARS_MAX_THREADS": str(threads),
        "OMP_NUM_THREADS": str(threads),
        "OPENBLAS_NUM_THREADS": str(threads),
    }
    command = [sys.executable, "-m", "fraudgen", "generate", "--out", str(out)]
    command += ["--rows", "20000", "--days", "20", "--seed", "5", "--quiet"]
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=300)
    return {
        str(path.relative_to(out)): path.read_bytes()
        for path in sorted(out.rglob("*"))
        if path.is_file()
    }


def test_output_bytes_independent_of_thread_count(tmp_path):
    single = generate_with_threads(tmp_path / "one", 1)
    double = generate_with_threads(tmp_path / "two", 2)
    assert "manifest.json" in single
    assert len(single) > 10
    assert single.keys() == double.keys()
    differing = [name for name in single if single[name] != double[name]]
    assert differing == []
