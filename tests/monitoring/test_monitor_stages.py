"""Replay and monitor stages on the smoke workspace, and ``cardfraud monitor``."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from cardfraud.cli import app
from cardfraud.data import read_transactions
from cardfraud.monitoring.reference import PROFILE_FILE, read_profile
from cardfraud.paths import Workspace
from cardfraud.stages.monitor import METRICS_FILE, PROMETHEUS_FILE
from cardfraud.stages.replay import AUDIT_FILE, LABELS_FILE, replay_dir
from cardfraud.training import load_model


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def replayed_period(ws: Workspace) -> tuple[datetime, datetime]:
    meta = load_model(ws.candidate_dir).meta
    start = datetime.fromisoformat(meta["windows"]["test"]["start"])
    end = datetime.fromisoformat(meta["windows"]["test"]["end"])
    return start, end


def test_train_stage_writes_reference_profile(smoke_workspace: Workspace):
    model = load_model(smoke_workspace.candidate_dir)
    profile = read_profile(smoke_workspace.candidate_dir)
    assert (smoke_workspace.candidate_dir / PROFILE_FILE).is_file()
    assert set(profile.columns) == {*model.feature_columns, "score"}
    assert profile.rows > 1000
    assert profile.columns["hour_of_day"].to_json()["kind"] == "categorical"
    assert profile.columns["log_amount"].to_json()["kind"] == "numeric"


def test_replay_scores_every_transaction_once(smoke_workspace: Workspace):
    start, end = replayed_period(smoke_workspace)
    raw = read_transactions(smoke_workspace.raw_dir)
    expected = raw.filter((pl.col("timestamp") >= start) & (pl.col("timestamp") < end))
    connection = sqlite3.connect(replay_dir(smoke_workspace) / AUDIT_FILE)
    rows = connection.execute(
        "SELECT transaction_id, model_version, record FROM decisions"
    ).fetchall()
    connection.close()
    ids = [row[0] for row in rows]
    record = json.loads(rows[0][2])
    assert sorted(ids) == sorted(expected["transaction_id"].to_list())
    assert {row[1] for row in rows} == {"1"}
    assert set(record) >= {"request", "features", "score", "decision", "reasons"}
    assert "is_fraud" not in record["request"]


def test_replay_output_unchanged_by_monitor(smoke_workspace: Workspace):
    """The monitor stage, which ran after the replay, adds no file to its output."""
    folder = replay_dir(smoke_workspace)
    connection = sqlite3.connect(f"file:{folder / AUDIT_FILE}?mode=ro", uri=True)
    try:
        mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        connection.close()
    assert sorted(path.name for path in folder.iterdir()) == [AUDIT_FILE, LABELS_FILE]
    assert mode == "delete"


def test_replay_writes_label_events_of_period(smoke_workspace: Workspace):
    start, end = replayed_period(smoke_workspace)
    raw = read_transactions(smoke_workspace.raw_dir)
    expected = raw.filter(
        pl.col("is_fraud")
        & (pl.col("label_available_at") >= start)
        & (pl.col("label_available_at") < end)
    )
    labels = pl.read_parquet(replay_dir(smoke_workspace) / LABELS_FILE)
    assert labels.height == expected.height
    assert labels.height > 0
    assert labels["label_available_at"].max() < end


def test_monitor_summary_of_replay(smoke_workspace: Workspace):
    summary = read_json(smoke_workspace.metrics_dir / METRICS_FILE)
    start, _ = replayed_period(smoke_workspace)
    decisions = summary["decision_mix"]
    assert summary["period"]["start"] == start.date().isoformat()
    assert (
        decisions["approve"] + decisions["review"] + decisions["decline"]
        == (decisions["rows"])
    )
    assert summary["data_quality"]["rows"] == decisions["rows"]
    assert summary["skew"]["compared"] > 0
    assert summary["skew"]["columns_with_mismatches"] == []
    assert 0.0 < summary["unlabelled_share"] < 1.0
    assert set(summary["alert_counts"]) == {
        "feature_drift",
        "score_drift",
        "performance_drop",
    }


def test_monitor_prometheus_file_parses(smoke_workspace: Workspace):
    model = load_model(smoke_workspace.candidate_dir)
    text = (smoke_workspace.metrics_dir / PROMETHEUS_FILE).read_text()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    features = {
        sample.labels["feature"]
        for sample in families["cardfraud_monitor_feature_psi"].samples
    }
    assert features == set(model.feature_columns)
    assert "cardfraud_monitor_score_psi" in families
    assert "cardfraud_monitor_decision_rate" in families


def test_monitor_command_reads_live_log(
    smoke_workspace: Workspace, smoke_params_path: Path, tmp_path: Path
):
    start, end = replayed_period(smoke_workspace)
    folder = replay_dir(smoke_workspace)
    result = CliRunner().invoke(
        app,
        [
            "monitor",
            "--since",
            start.date().isoformat(),
            "--until",
            (end.date().fromordinal(end.date().toordinal() - 1)).isoformat(),
            "--audit-db",
            str(folder / AUDIT_FILE),
            "--labels",
            str(folder / LABELS_FILE),
            "--out",
            str(tmp_path),
            "--workspace",
            str(smoke_workspace.root),
            "--params",
            str(smoke_params_path),
        ],
    )
    summary = read_json(tmp_path / "monitor-live.json")
    assert result.exit_code == (1 if summary["alerts"] else 0), result.output
    assert summary["model_version"] == "1"
    assert (
        summary["decision_mix"]["rows"]
        == (
            read_json(smoke_workspace.metrics_dir / METRICS_FILE)["decision_mix"][
                "rows"
            ]
        )
    )
    assert (tmp_path / "monitor-live.prom").is_file()


def test_monitor_command_rejects_bad_day(smoke_workspace: Workspace):
    result = CliRunner().invoke(
        app,
        ["monitor", "--since", "2025-13-01", "--workspace", str(smoke_workspace.root)],
    )
    assert result.exit_code == 2
    assert "YYYY-MM-DD" in result.output


@pytest.mark.parametrize("missing", ["audit.db"])
def test_monitor_command_names_missing_log(
    smoke_workspace: Workspace, smoke_params_path: Path, tmp_path: Path, missing: str
):
    result = CliRunner().invoke(
        app,
        [
            "monitor",
            "--since",
            "2025-02-16",
            "--audit-db",
            str(tmp_path / missing),
            "--workspace",
            str(smoke_workspace.root),
            "--params",
            str(smoke_params_path),
        ],
    )
    assert result.exit_code == 2
    assert str(tmp_path / missing) in result.output
