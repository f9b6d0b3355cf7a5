"""Benchmark helpers: child-process timing of the generator and the reference."""

from __future__ import annotations

import json

import pytest

from fraudgen import benchmark


def test_time_generate_reports_rows_and_memory(tmp_path):
    result = benchmark.time_generate(20_000, seed=3, out=tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert result.implementation == "vectorised"
    assert result.rows == manifest["rows"]
    assert 15_000 <= result.rows <= 25_000
    assert result.seconds > 0
    assert result.rows_per_second == pytest.approx(result.rows / result.seconds)
    # The interpreter with numpy and polars alone takes more than 50 MiB.
    assert result.peak_rss_mib > 50


def test_time_reference_counts_written_rows(tmp_path):
    result = benchmark.time_reference(5_000, seed=3, out=tmp_path / "ref")
    assert result.implementation == "per-row reference"
    assert 3_500 <= result.rows <= 6_500
    assert len(list((tmp_path / "ref").glob("dt=*/part-0.parquet"))) == 183


def test_markdown_table_shows_speed_up():
    results = [
        benchmark.Measurement("vectorised", 1000, 1000, 0.5, 100.0),
        benchmark.Measurement("per-row reference", 1000, 1000, 5.0, 90.0),
    ]
    lines = benchmark.markdown_table(results).splitlines()
    assert lines[2] == "| vectorised | 1,000 | 1,000 | 0.50 | 2,000 | 100 | 10.0× |"
    assert lines[3] == "| per-row reference | 1,000 | 1,000 | 5.00 | 200 | 90 | 1.0× |"
