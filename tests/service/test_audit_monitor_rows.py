"""The audit log's monitor rows: equal to the JSON records, read in bulk, migrated."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from cardfraud.audit import (
    MONITOR_ROW_COLUMNS,
    SCHEMA_VERSION,
    AuditSchemaError,
    SqliteAuditStore,
    migrate_audit_file,
)
from cardfraud.cli import app
from cardfraud.monitoring.decisions import AUDIT_COLUMNS, read_audit_decisions

FEATURES = ["card_count_1h", "log_amount", "hour_of_day"]
OLD_LAYOUT = (
    """CREATE TABLE decisions (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        transaction_id TEXT NOT NULL,
        decided_at TEXT NOT NULL,
        model_version TEXT NOT NULL,
        score REAL NOT NULL,
        decision TEXT NOT NULL,
        degraded INTEGER NOT NULL,
        record TEXT NOT NULL
    )""",
    "CREATE INDEX decisions_transaction ON decisions (transaction_id, seq)",
    """CREATE TRIGGER decisions_no_update BEFORE UPDATE ON decisions
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
    """CREATE TRIGGER decisions_no_delete BEFORE DELETE ON decisions
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
)


def record(
    transaction_id: str,
    timestamp: str | None,
    *,
    score: float = 0.25,
    features: dict[str, Any] | None = None,
    degraded: bool = False,
    model_version: str = "1",
) -> dict[str, Any]:
    """An audit record as the scoring core writes it (reasons and timings left out)."""
    result: dict[str, Any] = {
        "transaction_id": transaction_id,
        "decided_at": "2025-03-02T10:00:00.000123+00:00",
        "model_version": model_version,
        "score": score,
        "decision": "review" if score >= 0.5 else "approve",
        "degraded": degraded,
        "reasons": [],
    }
    if timestamp is not None:
        result["request"] = {
            "transaction_id": transaction_id,
            "timestamp": timestamp,
            "card_id": f"card-{transaction_id}",
            "merchant_id": f"merchant-{transaction_id}",
            "amount_minor": 1299,
        }
    if features is not None:
        result["features"] = features
    return result


def sample_records() -> list[dict[str, Any]]:
    """Records with awkward cases: offsets, a missing feature, nulls, no request."""
    rng = np.random.default_rng(5)
    records = [
        record(
            f"t{index:03d}",
            f"2025-03-{1 + index % 5:02d}T{index % 24:02d}:15:00.{index:06d}+00:00",
            score=float(rng.random()),
            features={name: float(rng.normal()) for name in FEATURES},
            degraded=index % 7 == 0,
        )
        for index in range(40)
    ]
    records += [
        record(
            "offset",
            "2025-03-03T01:30:00+02:00",
            features={"card_count_1h": 3, "log_amount": 0.1, "hour_of_day": 23.0},
        ),
        record("no-hour", "2025-03-03T05:00:00+00:00", features={"log_amount": 2.5}),
        record(
            "null-value",
            "2025-03-04T05:00:00+00:00",
            features={"card_count_1h": None, "log_amount": 1.0, "hour_of_day": 5.0},
        ),
        record(
            "other-model",
            "2025-03-04T06:00:00+00:00",
            features={"hour_of_day": 6.0, "new_feature": 9.0, "card_count_1h": 1.0},
            model_version="2",
        ),
        record("no-request", None, features={name: 1.0 for name in FEATURES}),
    ]
    return records


def expected_from_json(path: Path) -> pl.DataFrame:
    """Decision frame built the slow way: parse every JSON record in Python."""
    connection = sqlite3.connect(path)
    rows = connection.execute("SELECT record FROM decisions ORDER BY seq").fetchall()
    connection.close()
    newest: dict[str, dict[str, Any]] = {}
    for (text,) in rows:
        parsed = json.loads(text)
        newest[parsed["transaction_id"]] = parsed
    entries = []
    for parsed in newest.values():
        request = parsed.get("request", {})
        timestamp = request.get("timestamp")
        features = parsed.get("features", {})
        entries.append(
            {
                "transaction_id": parsed["transaction_id"],
                "timestamp": None
                if timestamp is None
                else datetime.fromisoformat(timestamp).astimezone(UTC),
                "decided_at": datetime.fromisoformat(parsed["decided_at"]),
                "card_id": request.get("card_id"),
                "merchant_id": request.get("merchant_id"),
                "model_version": parsed["model_version"],
                "score": parsed["score"],
                "decision": parsed["decision"],
                "degraded": parsed["degraded"],
                **{
                    name: None if features.get(name) is None else float(features[name])
                    for name in FEATURES
                },
            }
        )
    schema = {
        "transaction_id": pl.String,
        "timestamp": pl.Datetime("us", "UTC"),
        "decided_at": pl.Datetime("us", "UTC"),
        "card_id": pl.String,
        "merchant_id": pl.String,
        "model_version": pl.String,
        "score": pl.Float64,
        "decision": pl.String,
        "degraded": pl.Boolean,
        **dict.fromkeys(FEATURES, pl.Float64),
    }
    frame = pl.DataFrame(entries, schema=schema, orient="row")
    return frame.with_columns(day=pl.col("timestamp").dt.date()).sort(
        "timestamp", "transaction_id"
    )


def write_old_layout(path: Path, records: list[dict[str, Any]]) -> None:
    """Write an audit file as the version without monitor rows did."""
    connection = sqlite3.connect(path)
    for statement in OLD_LAYOUT:
        connection.execute(statement)
    connection.executemany(
        "INSERT INTO decisions (transaction_id, decided_at, model_version, score, "
        "decision, degraded, record) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                item["transaction_id"],
                item["decided_at"],
                item["model_version"],
                item["score"],
                item["decision"],
                int(item["degraded"]),
                json.dumps(item, sort_keys=True),
            )
            for item in records
        ],
    )
    connection.commit()
    connection.close()


def table_rows(path: Path, query: str) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(query).fetchall()
    finally:
        connection.close()


def test_reader_columns_match_json_reference(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    store = SqliteAuditStore(path)
    records = sample_records()
    store.append(records[:20])
    store.append(records[20:])
    store.close()

    decisions = read_audit_decisions(path, feature_columns=FEATURES)

    expected = expected_from_json(path)
    assert decisions.columns == expected.columns
    assert decisions.height == len(records)
    for column in expected.columns:
        assert decisions[column].to_list() == expected[column].to_list(), column


def test_monitor_row_values_equal_record(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    store = SqliteAuditStore(path)
    store.append(
        [
            record(
                "offset",
                "2025-03-03T01:30:00.000007+02:00",
                score=0.75,
                features={"log_amount": 0.1, "hour_of_day": 23.0},
                degraded=True,
            )
        ]
    )
    store.close()

    (row,) = table_rows(
        path, f"SELECT {', '.join(MONITOR_ROW_COLUMNS)} FROM monitor_rows"
    )
    values = dict(zip(MONITOR_ROW_COLUMNS, row, strict=True))
    (names,) = table_rows(path, "SELECT names FROM feature_sets")[0]

    assert values["transaction_id"] == "offset"
    # 2025-03-02T23:30:00.000007 UTC
    assert values["event_time_us"] == 1_740_958_200_000_007
    assert values["card_id"] == "card-offset"
    assert values["merchant_id"] == "merchant-offset"
    assert values["model_version"] == "1"
    assert values["score"] == 0.75
    assert values["decision"] == "review"
    assert values["degraded"] == 1
    assert json.loads(names) == ["log_amount", "hour_of_day"]
    assert np.frombuffer(values["feature_values"], "<f8").tolist() == [0.1, 23.0]


def test_audit_columns_follow_monitor_rows() -> None:
    assert (*AUDIT_COLUMNS, "feature_values") == MONITOR_ROW_COLUMNS


def test_reader_period_since_inclusive_until_exclusive(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    store = SqliteAuditStore(path)
    store.append(
        [
            record("before", "2025-03-01T23:59:59.999999+00:00"),
            record("first", "2025-03-02T00:00:00+00:00"),
            # 2025-03-02T23:59:59 UTC, inside the period despite its date.
            record("offset", "2025-03-03T01:59:59+02:00"),
            record("at-until", "2025-03-03T00:00:00+00:00"),
            record("no-request", None),
        ]
    )
    store.close()

    decisions = read_audit_decisions(
        path,
        feature_columns=[],
        since=datetime(2025, 3, 2, tzinfo=UTC),
        until=datetime(2025, 3, 3, tzinfo=UTC),
    )

    assert decisions["transaction_id"].to_list() == ["first", "offset"]
    assert decisions["day"].unique().to_list() == [datetime(2025, 3, 2).date()]


def test_reader_period_uses_event_time_index(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    SqliteAuditStore(path).close()
    plan = table_rows(
        path,
        "EXPLAIN QUERY PLAN SELECT seq FROM monitor_rows "
        "WHERE event_time_us >= 0 AND event_time_us < 10",
    )
    assert "monitor_rows_event_time" in plan[0][-1]


def test_reader_keeps_newest_record_per_transaction(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    store = SqliteAuditStore(path)
    store.append(
        [
            record("retried", "2025-03-02T10:00:00+00:00", score=0.1),
            record("moved", "2025-03-02T11:00:00+00:00", score=0.2),
            record("kept", "2025-03-02T12:00:00+00:00", score=0.3),
        ]
    )
    store.append(
        [
            record("retried", "2025-03-02T10:00:00+00:00", score=0.9),
            # The newest record of "moved" lies after the period.
            record("moved", "2025-03-05T11:00:00+00:00", score=0.8),
        ]
    )
    store.close()

    whole = read_audit_decisions(path, feature_columns=[])
    period = read_audit_decisions(
        path,
        feature_columns=[],
        since=datetime(2025, 3, 2, tzinfo=UTC),
        until=datetime(2025, 3, 3, tzinfo=UTC),
    )

    assert dict(whole.select("transaction_id", "score").iter_rows()) == {
        "retried": 0.9,
        "moved": 0.8,
        "kept": 0.3,
    }
    assert dict(period.select("transaction_id", "score").iter_rows()) == {
        "retried": 0.9,
        "kept": 0.3,
    }


def test_reader_rejects_naive_period(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    SqliteAuditStore(path).close()
    with pytest.raises(ValueError, match=r"since=.* is naive"):
        read_audit_decisions(path, feature_columns=[], since=datetime(2025, 3, 2))


def test_store_rejects_update_of_monitor_rows(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    store = SqliteAuditStore(path)
    store.append(
        [record("t1", "2025-03-02T10:00:00+00:00", features={"log_amount": 1.0})]
    )
    connection = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        connection.execute("UPDATE monitor_rows SET score = 0")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        connection.execute("DELETE FROM monitor_rows")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        connection.execute("DELETE FROM feature_sets")
    connection.close()
    assert table_rows(path, "SELECT score FROM monitor_rows") == [(0.25,)]


def test_old_layout_rejected_then_migrated(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    records = sample_records()
    write_old_layout(path, records)
    before = table_rows(path, "SELECT * FROM decisions ORDER BY seq")

    with pytest.raises(AuditSchemaError, match="cardfraud migrate-audit"):
        read_audit_decisions(path, feature_columns=FEATURES)
    filled = migrate_audit_file(path)
    decisions = read_audit_decisions(path, feature_columns=FEATURES)

    expected = expected_from_json(path)
    assert filled == len(records)
    assert table_rows(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert table_rows(path, "SELECT * FROM decisions ORDER BY seq") == before
    for column in expected.columns:
        assert decisions[column].to_list() == expected[column].to_list(), column
    assert migrate_audit_file(path) == 0


def test_migrated_file_takes_new_records(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    write_old_layout(path, sample_records()[:3])
    store = SqliteAuditStore(path)
    store.append([record("new", "2025-03-06T10:00:00+00:00", features={"x": 1.0})])
    store.close()

    decisions = read_audit_decisions(path, feature_columns=["x"])

    assert decisions.height == 4
    assert decisions.filter(pl.col("transaction_id") == "new")["x"].to_list() == [1.0]
    assert table_rows(path, "SELECT MAX(seq) FROM monitor_rows") == [(4,)]


def test_migration_with_bad_record_leaves_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    write_old_layout(path, sample_records()[:3])
    connection = sqlite3.connect(path)
    connection.execute(
        "INSERT INTO decisions (transaction_id, decided_at, model_version, score, "
        "decision, degraded, record) VALUES ('bad', 'x', '1', 0.5, 'review', 0, '{')"
    )
    connection.commit()
    connection.close()

    with pytest.raises(AuditSchemaError, match=r"seq=4 .* not valid JSON"):
        migrate_audit_file(path)

    assert table_rows(path, "PRAGMA user_version") == [(0,)]
    tables = {row[0] for row in table_rows(path, "SELECT name FROM sqlite_master")}
    assert "monitor_rows" not in tables
    assert table_rows(path, "SELECT COUNT(*) FROM decisions") == [(4,)]


def test_reader_rejects_rows_of_older_writer(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    store = SqliteAuditStore(path)
    store.append([record("t1", "2025-03-02T10:00:00+00:00")])
    store.close()
    late = record("late", "2025-03-02T11:00:00+00:00")
    connection = sqlite3.connect(path)
    connection.execute(
        "INSERT INTO decisions (transaction_id, decided_at, model_version, score, "
        "decision, degraded, record) VALUES (?, ?, '1', 0.25, 'approve', 0, ?)",
        ("late", late["decided_at"], json.dumps(late)),
    )
    connection.commit()
    connection.close()

    with pytest.raises(AuditSchemaError, match="newest 1 record"):
        read_audit_decisions(path, feature_columns=[])
    assert migrate_audit_file(path) == 1
    decisions = read_audit_decisions(path, feature_columns=[])

    assert sorted(decisions["transaction_id"].to_list()) == ["late", "t1"]


def test_newer_schema_version_rejected(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    SqliteAuditStore(path).close()
    connection = sqlite3.connect(path)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()

    with pytest.raises(AuditSchemaError, match="newer than this version's"):
        SqliteAuditStore(path)
    with pytest.raises(AuditSchemaError, match="upgrade cardfraud"):
        read_audit_decisions(path, feature_columns=[])


def test_migrate_rejects_file_without_decisions(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE something (x INTEGER)")
    connection.close()

    with pytest.raises(AuditSchemaError, match="no decisions table"):
        migrate_audit_file(path)
    with pytest.raises(AuditSchemaError, match="no decisions table"):
        read_audit_decisions(path, feature_columns=[])
    tables = {row[0] for row in table_rows(path, "SELECT name FROM sqlite_master")}
    assert tables == {"something"}


def test_invalid_timestamp_stored_without_event_time(tmp_path: Path, caplog) -> None:
    path = tmp_path / "audit.db"
    store = SqliteAuditStore(path)
    store.append(
        [
            record("naive", "2025-03-02T10:00:00"),
            record("garbled", "yesterday"),
        ]
    )
    stored = store.latest("naive")
    store.close()

    assert table_rows(path, "SELECT event_time_us FROM monitor_rows") == [
        (None,),
        (None,),
    ]
    assert "2 audit record(s) have a request.timestamp" in caplog.text
    assert stored is not None
    assert stored["request"]["timestamp"] == "2025-03-02T10:00:00"


def test_migrate_audit_command(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    write_old_layout(path, sample_records()[:3])

    migrated = CliRunner().invoke(app, ["migrate-audit", str(path)])
    missing = CliRunner().invoke(app, ["migrate-audit", str(tmp_path / "none.db")])

    assert migrated.exit_code == 0, migrated.output
    assert "filled 3 monitor row(s)" in migrated.output
    assert read_audit_decisions(path, feature_columns=[]).height == 3
    assert missing.exit_code == 2
    assert "not found" in missing.output
