"""The audit log: SQLite append-only with parallel writers, and DynamoDB on moto."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cardfraud.audit import AuditWriter, DynamoAuditStore, SqliteAuditStore
from tests.support.aws import use_fake_aws_credentials


def record(transaction_id: str, score: float = 0.25) -> dict:
    return {
        "transaction_id": transaction_id,
        "decided_at": "2025-03-02T10:00:00+00:00",
        "model_version": "1",
        "score": score,
        "decision": "approve",
        "degraded": False,
        "reasons": [],
    }


def test_sqlite_parallel_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    writers = [
        AuditWriter(SqliteAuditStore(path), flush_interval_s=0.01) for _ in range(2)
    ]
    for index in range(1_000):
        writers[index % 2].submit(record(f"t{index:04d}"))
    for writer in writers:
        writer.close()
    store = SqliteAuditStore(path)
    assert store.count() == 1_000
    assert sum(writer.written for writer in writers) == 1_000
    assert {r["transaction_id"] for r in store.records()} == {
        f"t{i:04d}" for i in range(1_000)
    }


def test_sqlite_rejects_update_and_delete(tmp_path: Path) -> None:
    store = SqliteAuditStore(tmp_path / "audit.db")
    store.append([record("t1")])
    connection = sqlite3.connect(tmp_path / "audit.db")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        connection.execute("UPDATE decisions SET score = 0")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        connection.execute("DELETE FROM decisions")
    assert store.count() == 1


def test_sqlite_latest_returns_newest_record(tmp_path: Path) -> None:
    store = SqliteAuditStore(tmp_path / "audit.db")
    store.append([record("t1", 0.1), record("t2", 0.2), record("t1", 0.3)])
    assert store.latest("t1")["score"] == 0.3
    assert store.latest("unknown") is None


class FailingStore(SqliteAuditStore):
    def append(self, records: list[dict]) -> None:
        raise sqlite3.OperationalError("disk I/O error")


def test_failed_batches_go_to_fallback_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("cardfraud.audit.RETRY_BASE_S", 0.0)
    fallback = tmp_path / "fallback.jsonl"
    writer = AuditWriter(
        FailingStore(tmp_path / "audit.db"),
        flush_interval_s=0.01,
        fallback_path=fallback,
    )
    writer.submit(record("t1"))
    writer.submit(record("t2"))
    writer.close()
    lines = fallback.read_text().splitlines()
    assert len(lines) == 2
    assert writer.failed_batches >= 1


def test_dynamodb_moto_writer_keeps_every_record(
    fresh_moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_fake_aws_credentials(monkeypatch, tmp_path, region="eu-west-1")
    store = DynamoAuditStore(
        "decisions-test", region="eu-west-1", endpoint_url=fresh_moto_url
    )
    store.ensure_table()
    writer = AuditWriter(store, flush_interval_s=0.01, max_batch=60)
    for index in range(130):
        writer.submit(record(f"t{index:03d}", score=index / 1000))
    writer.submit(record("t005", score=0.9))
    writer.close()
    assert store.count() == 131
    assert store.latest("t005")["score"] in (0.005, 0.9)
    assert len([r for r in store.records() if r["transaction_id"] == "t005"]) == 2
    store.check()
