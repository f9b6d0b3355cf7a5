"""Append-only audit log of scoring decisions, written off the request path.

Every decision becomes one record: the transaction id, the request, the feature values
the model saw, the model version, the score, the decision, the reasons and the time.
``AuditWriter`` queues records and a background thread writes them in batches to an
``AuditStore``: SQLite in WAL mode by default, or a DynamoDB table. ``close`` writes
everything still queued, so a graceful shutdown loses no record.

In SQLite, the ``decisions`` table keeps the full JSON record, which the explanation
endpoint returns. In the same transaction, each record also gets a row of the narrow
``monitor_rows`` table with the columns the monitor reads in bulk: the request's event
time as microseconds since the epoch (UTC, indexed), card id, merchant id, model
version, score, decision, degraded flag and the feature values. A separate table
matters because a record of about 4 KB fills a 4 KiB page on its own, so any scan of
``decisions`` reads the whole file, while ``monitor_rows`` is about a tenth of its
size (44 MiB against 392 MiB for 100,000 benchmark records).

The feature values of a row are one BLOB of little-endian float64 in the order of a
feature set, a row of ``feature_sets`` that stores each list of names once. Reading
1,000,000 synthetic rows of 39 features with ``sqlite3`` ``fetchall`` took 3.6 to
3.8 s as one BLOB decoded by ``numpy.frombuffer``, but 15.6 s as 39 REAL columns
(33 s through ``polars.read_database``), because ``sqlite3`` turns every REAL value
into a Python float (Python 3.12, SQLite 3.40, 2 shared cores at load average 7).
One row per feature value would return 39 times as many rows. With a BLOB, a model
with other features writes to the same file without a change of schema.

``PRAGMA user_version`` stores ``SCHEMA_VERSION``. A file written before
``monitor_rows`` existed has version 0. ``SqliteAuditStore`` fills ``monitor_rows``
from the JSON records when it opens such a file, and the bulk reader rejects the file
until then.
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import random
import sqlite3
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple, Protocol

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 5_000
WRITE_ATTEMPTS = 5
RETRY_BASE_S = 0.05

SCHEMA_VERSION = 2
"""Layout of the SQLite audit file, stored in ``PRAGMA user_version``."""
FEATURE_VALUE_DTYPE = "<f8"
"""NumPy dtype of ``monitor_rows.feature_values``: little-endian float64, NaN for
null."""
MONITOR_ROW_COLUMNS = (
    "seq",
    "transaction_id",
    "event_time_us",
    "decided_at",
    "card_id",
    "merchant_id",
    "model_version",
    "score",
    "decision",
    "degraded",
    "feature_set_id",
    "feature_values",
)
"""Columns of ``monitor_rows`` in table order."""
MIGRATION_BATCH_ROWS = 20_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)

_SCHEMA_STATEMENTS = (
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
    """CREATE TABLE IF NOT EXISTS feature_sets (
        id INTEGER PRIMARY KEY,
        names TEXT NOT NULL UNIQUE
    )""",
    """CREATE TABLE IF NOT EXISTS monitor_rows (
        seq INTEGER PRIMARY KEY REFERENCES decisions (seq),
        transaction_id TEXT NOT NULL,
        event_time_us INTEGER,
        decided_at TEXT NOT NULL,
        card_id TEXT,
        merchant_id TEXT,
        model_version TEXT NOT NULL,
        score REAL NOT NULL,
        decision TEXT NOT NULL,
        degraded INTEGER NOT NULL,
        feature_set_id INTEGER REFERENCES feature_sets (id),
        feature_values BLOB
    )""",
    "CREATE INDEX IF NOT EXISTS decisions_transaction "
    "ON decisions (transaction_id, seq)",
    "CREATE INDEX IF NOT EXISTS monitor_rows_event_time "
    "ON monitor_rows (event_time_us)",
    *(
        f"""CREATE TRIGGER IF NOT EXISTS {table}_no_{action}
        BEFORE {action.upper()} ON {table}
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"""
        for table in ("decisions", "monitor_rows", "feature_sets")
        for action in ("update", "delete")
    ),
)
_INSERT_DECISION = (
    "INSERT INTO decisions (seq, transaction_id, decided_at, model_version, score, "
    "decision, degraded, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_MONITOR_ROW = (
    f"INSERT INTO monitor_rows ({', '.join(MONITOR_ROW_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(MONITOR_ROW_COLUMNS))})"
)


class AuditBacklogError(RuntimeError):
    """The audit queue stayed full, so a decision could not be recorded."""


class AuditSchemaError(ValueError):
    """An audit file's layout is one this version cannot read or write."""


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


class MonitorColumns(NamedTuple):
    """Values that a record adds to ``monitor_rows`` beyond the decision columns.

    Attributes:
        event_time_us: ``request.timestamp`` in microseconds since the epoch, or
            None when it is missing, invalid or has no UTC offset.
        card_id: ``request.card_id``, or None.
        merchant_id: ``request.merchant_id``, or None.
        feature_names: JSON array of the ``features`` keys in record order, or
            None when the record has no features.
        feature_values: The features as ``FEATURE_VALUE_DTYPE`` bytes in that
            order; a value that is not a number is NaN. None without features.
        invalid_timestamp: True when a timestamp was present but unusable.
    """

    event_time_us: int | None
    card_id: str | None
    merchant_id: str | None
    feature_names: str | None
    feature_values: bytes | None
    invalid_timestamp: bool


def monitor_columns(record: Mapping[str, Any]) -> MonitorColumns:
    """Extract the monitor's columns from one audit record.

    The JSON record stays the source of truth: these values are a copy of
    ``request.timestamp``, ``request.card_id``, ``request.merchant_id`` and
    ``features``, so the monitor can read them without parsing JSON.
    """
    request = record.get("request")
    if not isinstance(request, Mapping):
        request = {}
    timestamp = request.get("timestamp")
    event_time_us = epoch_microseconds(timestamp)
    names, values = pack_features(record.get("features"))
    return MonitorColumns(
        event_time_us=event_time_us,
        card_id=_optional_text(request.get("card_id")),
        merchant_id=_optional_text(request.get("merchant_id")),
        feature_names=names,
        feature_values=values,
        invalid_timestamp=timestamp is not None and event_time_us is None,
    )


def epoch_microseconds(timestamp: Any) -> int | None:
    """Return an ISO 8601 timestamp with a UTC offset as microseconds since 1970.

    Returns None for anything else (a missing, malformed or naive timestamp), because
    a naive time has no defined instant.
    """
    if not isinstance(timestamp, str):
        return None
    try:
        moment = datetime.fromisoformat(timestamp)
    except ValueError:
        return None
    if moment.utcoffset() is None:
        return None
    return instant_microseconds(moment)


def instant_microseconds(moment: datetime) -> int:
    """Return an aware datetime as integer microseconds since 1970-01-01 UTC.

    Raises:
        ValueError: ``moment`` is naive.
    """
    if moment.utcoffset() is None:
        raise ValueError(
            f"{moment!r} is naive; pass a timezone-aware datetime, for example "
            "with tzinfo=datetime.UTC"
        )
    return (moment - _EPOCH) // _ONE_MICROSECOND


def pack_features(features: Any) -> tuple[str | None, bytes | None]:
    """Return the JSON array of feature names and their values as float64 bytes.

    A value that is not a finite int or float (null, a string, a list) is packed as
    NaN, which the reader turns into null. Returns ``(None, None)`` when
    ``features`` is not a non-empty mapping.
    """
    if not isinstance(features, Mapping) or not features:
        return None, None
    values = [_feature_number(value) for value in features.values()]
    names = json.dumps([str(name) for name in features], separators=(",", ":"))
    return names, struct.pack(f"<{len(values)}d", *values)


def _feature_number(value: Any) -> float:
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            return math.nan
        return number if math.isfinite(number) else math.nan
    return math.nan


def _optional_text(value: Any) -> str | None:
    return None if value is None else str(value)


def schema_version(connection: sqlite3.Connection) -> int:
    """Return the audit file's ``PRAGMA user_version``."""
    return int(connection.execute("PRAGMA user_version").fetchone()[0])


def has_table(connection: sqlite3.Connection, name: str) -> bool:
    """Return whether the database has a table called ``name``."""
    row = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None


def rows_without_monitor_row(connection: sqlite3.Connection) -> int:
    """Return how many of the newest decisions have no ``monitor_rows`` row.

    Both tables share ``seq`` and this version writes both in one transaction, so
    a difference of the largest ``seq`` means that a writer of an older version
    appended records. Costs two index lookups.
    """
    decisions, monitored = connection.execute(
        "SELECT (SELECT COALESCE(MAX(seq), 0) FROM decisions), "
        "(SELECT COALESCE(MAX(seq), 0) FROM monitor_rows)"
    ).fetchone()
    if decisions <= monitored:
        return 0
    return int(
        connection.execute(
            "SELECT COUNT(*) FROM decisions WHERE seq > ?", (monitored,)
        ).fetchone()[0]
    )


def check_readable_schema(connection: sqlite3.Connection, path: Path) -> None:
    """Raise unless the audit file at ``path`` can be read from ``monitor_rows``.

    Raises:
        AuditSchemaError: The file has no ``decisions`` table, was written before
            ``monitor_rows`` existed or by a newer version, or its newest records
            lack monitor rows. The message names the fix.
    """
    if not has_table(connection, "decisions"):
        raise AuditSchemaError(
            f"{path} has no decisions table, so it is not an audit log; pass the "
            "file that the service's CARDFRAUD_AUDIT_DB names"
        )
    version = schema_version(connection)
    if version > SCHEMA_VERSION:
        raise AuditSchemaError(
            f"audit log {path} has schema version {version}, newer than this "
            f"version's {SCHEMA_VERSION}; upgrade cardfraud to read it"
        )
    missing = (
        None
        if version < SCHEMA_VERSION or not has_table(connection, "monitor_rows")
        else rows_without_monitor_row(connection)
    )
    if missing is None:
        raise AuditSchemaError(
            f"audit log {path} has schema version {version}, which keeps the "
            "monitor's columns only inside the JSON records; migrate it in place "
            f"with `cardfraud migrate-audit {path}`, then read it again"
        )
    if missing:
        raise AuditSchemaError(
            f"the newest {missing} record(s) of audit log {path} have no monitor "
            "row, so a writer of an older cardfraud version appended them; stop "
            f"that writer and run `cardfraud migrate-audit {path}`"
        )


class SqliteAuditStore:
    """Audit records in SQLite, WAL mode, append-only by trigger.

    Several processes may append to the same file: each write is one short
    ``BEGIN IMMEDIATE`` transaction that waits up to ``SQLITE_BUSY_TIMEOUT_MS`` for
    the lock. Commits use ``synchronous=FULL``, so a committed record survives a
    power cut. The writer is off the request path, so the extra fsync costs no
    response time.

    Opening a file fills ``monitor_rows`` for every record that lacks one (all of
    them in a file of schema version 0) in one transaction, which took 147 s for
    1,000,000 records on 2 shared cores at load average 7. Meanwhile another
    writer waits ``SQLITE_BUSY_TIMEOUT_MS`` per attempt, and an ``AuditWriter``
    that runs out of attempts appends its batch to its fallback file.

    Args:
        path: Database file; its folder is created when missing.

    Raises:
        AuditSchemaError: The file was written by a newer version, or a record
            that needs a monitor row is not valid JSON.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.migrated_rows = 0
        self._lock = threading.Lock()
        self._feature_set_ids: dict[str, int] = {}
        self._connection = sqlite3.connect(
            path,
            timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=FULL")
        try:
            self._create_schema()
        except BaseException:
            self._connection.close()
            raise

    def _create_schema(self) -> None:
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                version = schema_version(self._connection)
                if version > SCHEMA_VERSION:
                    raise AuditSchemaError(
                        f"audit log {self.path} has schema version {version}, newer "
                        f"than this version's {SCHEMA_VERSION}; upgrade cardfraud "
                        "or point the service at a new file"
                    )
                for statement in _SCHEMA_STATEMENTS:
                    self._connection.execute(statement)
                if rows_without_monitor_row(self._connection):
                    self._fill_monitor_rows(version)
                self._connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                self._connection.execute("COMMIT")
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise

    def _fill_monitor_rows(self, version: int) -> None:
        """Add a monitor row for each record newer than the last monitor row.

        Runs inside the caller's transaction, so a failure leaves the file as it
        was. The decision columns come from ``decisions``, the rest from the JSON.
        """
        started = time.perf_counter()
        logger.info(
            "filling monitor rows of audit log %s (schema version %d)",
            self.path,
            version,
        )
        (last_seq,) = self._connection.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM monitor_rows"
        ).fetchone()
        while True:
            batch = self._connection.execute(
                "SELECT seq, transaction_id, decided_at, model_version, score, "
                "decision, degraded, record FROM decisions WHERE seq > ? "
                "ORDER BY seq LIMIT ?",
                (last_seq, MIGRATION_BATCH_ROWS),
            ).fetchall()
            if not batch:
                break
            columns = [self._stored_columns(row[0], row[-1]) for row in batch]
            set_ids = self._insert_feature_sets(columns, known=self._feature_set_ids)
            self._connection.executemany(
                _INSERT_MONITOR_ROW,
                [
                    _monitor_row(row[:-1], column, set_ids)
                    for row, column in zip(batch, columns, strict=True)
                ],
            )
            self.migrated_rows += len(batch)
            last_seq = batch[-1][0]
        logger.info(
            "filled %d monitor row(s) of %s in %.1f s",
            self.migrated_rows,
            self.path,
            time.perf_counter() - started,
        )

    def _stored_columns(self, seq: int, text: str) -> MonitorColumns:
        try:
            record = json.loads(text)
        except json.JSONDecodeError as error:
            raise AuditSchemaError(
                f"record seq={seq} of audit log {self.path} is not valid JSON "
                f"({error}), so its monitor row cannot be filled; restore the file "
                "from a backup"
            ) from error
        return monitor_columns(record)

    def _insert_feature_sets(
        self, columns: Iterable[MonitorColumns], *, known: Mapping[str, int]
    ) -> dict[str, int]:
        """Return the id of every feature set of ``columns``, adding new ones.

        Runs inside the caller's transaction. ``known`` contains ids already
        committed, which never change because the table is append-only.
        """
        ids = dict(known)
        for names in {c.feature_names for c in columns if c.feature_names}:
            if names in ids:
                continue
            self._connection.execute(
                "INSERT OR IGNORE INTO feature_sets (names) VALUES (?)", (names,)
            )
            ids[names] = int(
                self._connection.execute(
                    "SELECT id FROM feature_sets WHERE names = ?", (names,)
                ).fetchone()[0]
            )
        return ids

    def append(self, records: list[dict[str, Any]]) -> None:
        """Insert the records and their monitor rows in one transaction.

        Raises:
            ValueError: A record contains NaN or infinity, which JSON cannot store.
        """
        decisions = [_decision_columns(record) for record in records]
        columns = [monitor_columns(record) for record in records]
        _warn_invalid_timestamps(records, columns)
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                # The write lock is held, so no other writer takes these seq values.
                (last_seq,) = self._connection.execute(
                    "SELECT COALESCE((SELECT seq FROM sqlite_sequence "
                    "WHERE name = 'decisions'), 0)"
                ).fetchone()
                seqs = range(last_seq + 1, last_seq + 1 + len(records))
                self._connection.executemany(
                    _INSERT_DECISION,
                    [(seq, *row) for seq, row in zip(seqs, decisions, strict=True)],
                )
                set_ids = self._insert_feature_sets(
                    columns, known=self._feature_set_ids
                )
                self._connection.executemany(
                    _INSERT_MONITOR_ROW,
                    [
                        _monitor_row((seq, *row[:-1]), column, set_ids)
                        for seq, row, column in zip(
                            seqs, decisions, columns, strict=True
                        )
                    ],
                )
                self._connection.execute("COMMIT")
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            # Only committed ids are cached: a rolled-back id may go to another set.
            self._feature_set_ids = set_ids

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


def _decision_columns(record: Mapping[str, Any]) -> tuple[Any, ...]:
    """Return the ``decisions`` columns after ``seq``; the JSON text comes last."""
    return (
        record["transaction_id"],
        record["decided_at"],
        record["model_version"],
        float(record["score"]),
        record["decision"],
        int(bool(record.get("degraded", False))),
        json.dumps(record, sort_keys=True, allow_nan=False),
    )


def _monitor_row(
    decision: tuple[Any, ...], columns: MonitorColumns, set_ids: Mapping[str, int]
) -> tuple[Any, ...]:
    """Return a ``monitor_rows`` row from ``decisions`` columns seq to degraded."""
    seq, transaction_id, decided_at, *outcome = decision
    return (
        seq,
        transaction_id,
        columns.event_time_us,
        decided_at,
        columns.card_id,
        columns.merchant_id,
        *outcome,
        None if columns.feature_names is None else set_ids[columns.feature_names],
        columns.feature_values,
    )


def _warn_invalid_timestamps(
    records: list[dict[str, Any]], columns: list[MonitorColumns]
) -> None:
    invalid = [
        record
        for record, column in zip(records, columns, strict=True)
        if column.invalid_timestamp
    ]
    if invalid:
        logger.warning(
            "%d audit record(s) have a request.timestamp that is not ISO 8601 with a "
            "UTC offset (first transaction %s); their monitor rows have no event "
            "time, so the monitor's period filter leaves them out",
            len(invalid),
            invalid[0].get("transaction_id"),
        )


def migrate_audit_file(path: Path) -> int:
    """Bring an audit file to ``SCHEMA_VERSION`` in place.

    Returns:
        The number of monitor rows filled; 0 when every record had one.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        AuditSchemaError: The file is not an audit log, was written by a newer
            version, or contains a record that is not valid JSON.
    """
    if not path.is_file():
        raise FileNotFoundError(f"audit log {path} not found; check the path")
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        if not has_table(connection, "decisions"):
            raise AuditSchemaError(
                f"{path} has no decisions table, so it is not an audit log; pass "
                "the file that the service's CARDFRAUD_AUDIT_DB names"
            )
    finally:
        connection.close()
    store = SqliteAuditStore(path)
    store.close()
    return store.migrated_rows


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
