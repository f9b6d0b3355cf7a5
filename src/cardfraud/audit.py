"""Append-only audit log of scoring decisions, written off the request path.

Every decision becomes one record: the transaction id, the request, the feature values
the model saw, the model version, the score, the decision, the reasons and the time.
``AuditWriter`` queues records and a background thread writes them in batches to an
``AuditStore``: SQLite in WAL mode by default, or a DynamoDB table. ``close`` writes
everything still queued, so a graceful shutdown loses no record.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 5_000
WRITE_ATTEMPTS = 5
RETRY_BASE_S = 0.05


class AuditBacklogError(RuntimeError):
    """The audit queue stayed full, so a decision could not be recorded."""


class AuditStore(Protocol):
    """Storage of audit records. Records are never updated or deleted."""

    def append(self, records: list[dict[str, Any]]) -> None:
        """Write records in one batch; raise on failure so the caller retries."""

    def latest(self, transaction_id: str) -> dict[str, Any] | None:
        """Return the newest record of a transaction, or None."""

    def count(self) -> int:
        """Return the number of records."""

    def check(self) -> None:
        """Raise when the store cannot be reached."""

    def close(self) -> None:
        """Release connections."""


class SqliteAuditStore:
    """Audit records in one SQLite table, WAL mode, append-only by trigger.

    Several processes may append to the same file: each write is one short
    ``BEGIN IMMEDIATE`` transaction that waits up to ``SQLITE_BUSY_TIMEOUT_MS`` for
    the lock. Commits use ``synchronous=FULL``, so a committed record survives a
    power cut. The writer is off the request path, so the extra fsync costs no
    response time.

    Args:
        path: Database file; its folder is created when missing.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(
            path,
            timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=FULL")
        self._create_schema()

    def _create_schema(self) -> None:
        statements = (
            """CREATE TABLE IF NOT EXISTS decisions (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                transaction_id TEXT NOT NULL,
                decided_at TEXT NOT NULL,
                model_version TEXT NOT NULL,
                score REAL NOT NULL,
                decision TEXT NOT NULL,
                degraded INTEGER NOT NULL,
                record TEXT NOT NULL
            )""",
            "CREATE INDEX IF NOT EXISTS decisions_transaction "
            "ON decisions (transaction_id, seq)",
            """CREATE TRIGGER IF NOT EXISTS decisions_no_update
                BEFORE UPDATE ON decisions
                BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
            """CREATE TRIGGER IF NOT EXISTS decisions_no_delete
                BEFORE DELETE ON decisions
                BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
        )
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                for statement in statements:
                    self._connection.execute(statement)
                self._connection.execute("COMMIT")
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise

    def append(self, records: list[dict[str, Any]]) -> None:
        """Insert the records in one transaction."""
        rows = [
            (
                record["transaction_id"],
                record["decided_at"],
                record["model_version"],
                float(record["score"]),
                record["decision"],
                int(bool(record.get("degraded", False))),
                json.dumps(record, sort_keys=True, allow_nan=False),
            )
            for record in records
        ]
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                self._connection.executemany(
                    "INSERT INTO decisions (transaction_id, decided_at, model_version, "
                    "score, decision, degraded, record) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                self._connection.execute("COMMIT")
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise

    def latest(self, transaction_id: str) -> dict[str, Any] | None:
        """Return the newest record of ``transaction_id``, or None."""
        with self._lock:
            row = self._connection.execute(
                "SELECT record FROM decisions WHERE transaction_id = ? "
                "ORDER BY seq DESC LIMIT 1",
                (transaction_id,),
            ).fetchone()
        return None if row is None else json.loads(row[0])

    def records(self) -> list[dict[str, Any]]:
        """Return every record in insertion order."""
        with self._lock:
            rows = self._connection.execute(
                "SELECT record FROM decisions ORDER BY seq"
            ).fetchall()
        return [json.loads(row[0]) for row in rows]

    def count(self) -> int:
        """Return the number of records."""
        with self._lock:
            return int(
                self._connection.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
            )

    def check(self) -> None:
        """Run a read that fails when the file is unusable."""
        with self._lock:
            self._connection.execute("SELECT 1 FROM decisions LIMIT 1").fetchall()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._connection.close()


class DynamoAuditStore:
    """Audit records in a DynamoDB table.

    The table's partition key is ``transaction_id`` and its sort key ``record_key``
    (the decision time and a random suffix), so a retried transaction adds a record
    next to the first one instead of replacing it. The full record is stored as a
    JSON string; the score is a Decimal, as DynamoDB numbers must be.

    Args:
        table_name: Existing table (``ensure_table`` creates one).
        region: AWS region.
        endpoint_url: Alternative endpoint, for example a local moto server; None
            for AWS itself.
    """

    def __init__(
        self, table_name: str, *, region: str, endpoint_url: str | None = None
    ) -> None:
        import boto3

        self.table_name = table_name
        self._resource = boto3.resource(
            "dynamodb", region_name=region, endpoint_url=endpoint_url
        )
        self._table = self._resource.Table(table_name)

    def ensure_table(self) -> None:
        """Create the table with on-demand capacity unless it exists."""
        client = self._resource.meta.client
        existing = client.list_tables().get("TableNames", [])
        if self.table_name in existing:
            return
        client.create_table(
            TableName=self.table_name,
            KeySchema=[
                {"AttributeName": "transaction_id", "KeyType": "HASH"},
                {"AttributeName": "record_key", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "transaction_id", "AttributeType": "S"},
                {"AttributeName": "record_key", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        client.get_waiter("table_exists").wait(TableName=self.table_name)
        logger.info("created DynamoDB audit table %s", self.table_name)

    def append(self, records: list[dict[str, Any]]) -> None:
        """Write the records with BatchWriteItem, 25 items a request."""
        with self._table.batch_writer() as batch:
            for record in records:
                batch.put_item(
                    Item={
                        "transaction_id": record["transaction_id"],
                        "record_key": f"{record['decided_at']}#{uuid.uuid4().hex}",
                        "model_version": record["model_version"],
                        "score": Decimal(repr(float(record["score"]))),
                        "decision": record["decision"],
                        "degraded": bool(record.get("degraded", False)),
                        "record": json.dumps(record, sort_keys=True, allow_nan=False),
                    }
                )

    def latest(self, transaction_id: str) -> dict[str, Any] | None:
        """Return the newest record of ``transaction_id``, or None."""
        from boto3.dynamodb.conditions import Key

        response = self._table.query(
            KeyConditionExpression=Key("transaction_id").eq(transaction_id),
            ScanIndexForward=False,
            Limit=1,
        )
        items = response.get("Items", [])
        return json.loads(items[0]["record"]) if items else None

    def records(self) -> list[dict[str, Any]]:
        """Return every record, in no particular order (a full scan)."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {}
        while True:
            response = self._table.scan(**kwargs)
            items.extend(response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return [json.loads(item["record"]) for item in items]

    def count(self) -> int:
        """Return the number of records (a full scan)."""
        return len(self.records())

    def check(self) -> None:
        """Describe the table; raises when it is unreachable or missing."""
        self._table.load()

    def close(self) -> None:
        """Nothing to release: boto3 pools its own connections."""


class AuditWriter:
    """A queue of audit records and the thread that writes them in batches.

    ``submit`` only enqueues, so the request path waits for the store only when
    the queue is full. The
    thread waits up to ``flush_interval_s`` for records, takes up to ``max_batch``
    of them and appends them in one call, retrying a failed write with backoff.
    When a batch fails ``WRITE_ATTEMPTS`` times it is appended to a JSON-lines
    fallback file, so no record is dropped. ``close`` stops the thread after it
    has written everything queued.

    Args:
        store: Where records go; the thread is the only caller of ``append``.
        flush_interval_s: Longest time a record waits before a batch is written.
        max_batch: Records per ``append`` call.
        max_queue: Records the queue holds before ``submit`` blocks.
        fallback_path: JSON-lines file for batches the store rejected.
        on_written: Called with the number of records after each written batch.
    """

    def __init__(
        self,
        store: AuditStore,
        *,
        flush_interval_s: float = 0.05,
        max_batch: int = 500,
        max_queue: int = 100_000,
        fallback_path: Path | None = None,
        on_written: Callable[[int], None] | None = None,
    ) -> None:
        self.store = store
        self.flush_interval_s = flush_interval_s
        self.max_batch = max_batch
        self.fallback_path = fallback_path
        self.on_written = on_written
        self.written = 0
        self.failed_batches = 0
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(max_queue)
        self._closed = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="audit-writer", daemon=True
        )
        self._thread.start()

    @property
    def pending(self) -> int:
        """Records queued and not yet written (approximate)."""
        return self._queue.qsize()

    def submit(self, record: dict[str, Any], *, timeout_s: float = 5.0) -> None:
        """Queue one record for writing.

        Raises:
            AuditBacklogError: The queue stayed full for ``timeout_s`` seconds, or
                the writer is closed; the caller must not report the decision.
        """
        if self._closed.is_set():
            raise AuditBacklogError(
                "the audit writer is closed; the service is shutting down"
            )
        try:
            self._queue.put(record, timeout=timeout_s)
        except queue.Full:
            raise AuditBacklogError(
                f"the audit queue stayed full for {timeout_s} s "
                f"({self._queue.maxsize} records); the audit store is too slow or down"
            ) from None

    def flush(self, *, timeout_s: float = 10.0) -> bool:
        """Wait until every record submitted so far is written; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def close(self, *, timeout_s: float = 30.0) -> None:
        """Write everything queued, then stop the thread."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._queue.put(None)
        self._thread.join(timeout_s)
        # A submit that raced with close can land after the thread's last drain.
        late = self._drain()
        if late and not self._thread.is_alive():
            self._write(late)
        if self._thread.is_alive():
            logger.error(
                "audit writer did not finish within %s s; %d record(s) pending",
                timeout_s,
                self.pending,
            )
        logger.info(
            "audit writer stopped: %d record(s) written, %d failed batch(es)",
            self.written,
            self.failed_batches,
        )

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch, stopping = self._take_batch()
            if batch:
                self._write(batch)
            for _ in range(len(batch) + (1 if stopping else 0)):
                self._queue.task_done()

    def _take_batch(self) -> tuple[list[dict[str, Any]], bool]:
        try:
            first = self._queue.get(timeout=self.flush_interval_s)
        except queue.Empty:
            return [], False
        if first is None:
            return self._drain(), True
        batch = [first]
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return [*batch, *self._drain()], True
            batch.append(item)
        return batch, False

    def _drain(self) -> list[dict[str, Any]]:
        """Take every record left after the stop marker."""
        rest = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return rest
            if item is not None:
                rest.append(item)
            else:
                self._queue.task_done()

    def _write(self, batch: list[dict[str, Any]]) -> None:
        for start in range(0, len(batch), self.max_batch):
            chunk = batch[start : start + self.max_batch]
            if self._append_with_retries(chunk):
                self.written += len(chunk)
                if self.on_written is not None:
                    self.on_written(len(chunk))
            else:
                self.failed_batches += 1
                self._write_fallback(chunk)

    def _append_with_retries(self, chunk: list[dict[str, Any]]) -> bool:
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                self.store.append(chunk)
                return True
            except Exception as error:  # any store error is retried
                delay = RETRY_BASE_S * 2**attempt * (1 + random.random())
                logger.warning(
                    "audit write of %d record(s) failed (attempt %d of %d, first "
                    "transaction %s): %s; retrying in %.2f s",
                    len(chunk),
                    attempt,
                    WRITE_ATTEMPTS,
                    chunk[0].get("transaction_id"),
                    error,
                    delay,
                )
                if attempt < WRITE_ATTEMPTS:
                    time.sleep(delay)
        return False

    def _write_fallback(self, chunk: list[dict[str, Any]]) -> None:
        if self.fallback_path is None:
            logger.error(
                "audit store rejected %d record(s) and no fallback file is set; "
                "transaction ids: %s",
                len(chunk),
                ", ".join(str(record.get("transaction_id")) for record in chunk),
            )
            return
        self.fallback_path.parent.mkdir(parents=True, exist_ok=True)
        with self.fallback_path.open("a", encoding="utf-8") as handle:
            for record in chunk:
                handle.write(json.dumps(record, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        logger.error(
            "audit store rejected %d record(s); appended them to %s for replay",
            len(chunk),
            self.fallback_path,
        )


def replay_fallback(path: Path, store: AuditStore) -> int:
    """Append the records of a fallback file to ``store`` and return their number.

    The file is left in place; delete it once the replay succeeded.
    """
    records = list(_read_json_lines(path))
    if records:
        store.append(records)
    return len(records)


def _read_json_lines(path: Path) -> Iterable[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)
