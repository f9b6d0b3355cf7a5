"""Decisions and label events as frames: read from the audit log, or built in batch.

A decision frame has one row per transaction, the newest record of a retried one.
Its columns are ``transaction_id``, ``timestamp`` (the transaction's event time,
UTC), ``decided_at``, ``card_id``, ``merchant_id``, ``model_version``, ``score``,
``decision``, ``degraded``, ``day`` (UTC date of the event time) and one Float64
column per model feature, as the service saw it. A label event frame has
``transaction_id`` and ``label_available_at``: fraud reports, since a legitimate
payment is never reported and only counts as legitimate once its label window closed.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from cardfraud.audit import (
    FEATURE_VALUE_DTYPE,
    MONITOR_ROW_COLUMNS,
    AuditSchemaError,
    check_readable_schema,
    instant_microseconds,
)

logger = logging.getLogger(__name__)

LABEL_EVENT_SCHEMA: dict[str, Any] = {
    "transaction_id": pl.String,
    "label_available_at": pl.Datetime("us", "UTC"),
}
AUDIT_COLUMNS: dict[str, Any] = {
    "seq": pl.Int64,
    "transaction_id": pl.String,
    "event_time_us": pl.Int64,
    "decided_at": pl.String,
    "card_id": pl.String,
    "merchant_id": pl.String,
    "model_version": pl.String,
    "score": pl.Float64,
    "decision": pl.String,
    "degraded": pl.Int64,
    "feature_set_id": pl.Int64,
}
"""Columns of ``monitor_rows`` that the reader takes, before ``feature_values``."""
AUDIT_QUERY = f"SELECT {', '.join(MONITOR_ROW_COLUMNS)} FROM monitor_rows"
RETRIED_QUERY = (
    "SELECT transaction_id, MAX(seq) FROM decisions "
    "GROUP BY transaction_id HAVING COUNT(*) > 1"
)
"""Transactions with more than one record and the seq of the newest; a scan of the
``(transaction_id, seq)`` index only."""
FETCH_ROWS = 100_000
"""Rows converted to columns at a time, which bounds the Python objects alive."""
BASE_COLUMNS = (
    "transaction_id",
    "timestamp",
    "decided_at",
    "card_id",
    "merchant_id",
    "model_version",
    "score",
    "decision",
    "degraded",
)


def read_audit_decisions(
    path: Path,
    *,
    feature_columns: list[str],
    since: datetime | None = None,
    until: datetime | None = None,
) -> pl.DataFrame:
    """Read the decisions of a SQLite audit log whose event time is in a period.

    The period is a range on the indexed ``event_time_us`` column, and the
    columns come back in bulk without parsing the JSON records. A transaction
    with several records is represented by its newest one, and left out when
    that record lies outside the period.

    Args:
        path: The audit database (``state/audit.db`` of a workspace).
        feature_columns: Model features to take from each record's feature values;
            a feature that a record lacks is null.
        since: First event time kept, UTC-aware; None keeps from the start.
        until: Event times before this are kept; None keeps to the end.

    Raises:
        FileNotFoundError: The database does not exist.
        ValueError: ``since`` or ``until`` is naive.
        cardfraud.audit.AuditSchemaError: The file is not an audit log of this
            version's layout; the message names the migration command.
    """
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.utcoffset() is None:
            raise ValueError(
                f"{name}={value!r} is naive; pass a timezone-aware UTC datetime"
            )
    if not path.is_file():
        raise FileNotFoundError(
            f"audit log {path} not found; pass --audit-db with the service's "
            "CARDFRAUD_AUDIT_DB, or run the replay stage"
        )
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    connection.text_factory = bytes
    try:
        check_readable_schema(connection, path)
        # One read transaction, so both queries see the same snapshot of the WAL.
        connection.execute("BEGIN")
        feature_sets = read_feature_sets(connection)
        query, parameters = period_query(since, until)
        cursor = connection.execute(query, parameters)
        chunks = []
        while rows := cursor.fetchmany(FETCH_ROWS):
            chunks.append(
                audit_rows_frame(
                    rows, feature_sets=feature_sets, feature_columns=feature_columns
                )
            )
        retried = connection.execute(RETRIED_QUERY).fetchall()
    finally:
        connection.close()
    frame = newest_records(
        pl.concat(chunks) if chunks else empty_rows_frame(feature_columns), retried
    )
    logger.info("read %d decision(s) from %s", frame.height, path)
    return decision_frame(frame, feature_columns=feature_columns)


def period_query(
    since: datetime | None, until: datetime | None
) -> tuple[str, list[int]]:
    """Return ``AUDIT_QUERY`` restricted to event times in ``[since, until)``."""
    conditions = []
    parameters = []
    if since is not None:
        conditions.append("event_time_us >= ?")
        parameters.append(instant_microseconds(since))
    if until is not None:
        conditions.append("event_time_us < ?")
        parameters.append(instant_microseconds(until))
    if not conditions:
        return AUDIT_QUERY, []
    return f"{AUDIT_QUERY} WHERE {' AND '.join(conditions)}", parameters


def read_feature_sets(connection: sqlite3.Connection) -> dict[int, list[str]]:
    """Return every feature set of the audit file: id to feature names in order."""
    return {
        int(set_id): json.loads(names)
        for set_id, names in connection.execute("SELECT id, names FROM feature_sets")
    }


def audit_rows_frame(
    rows: list[tuple[Any, ...]],
    *,
    feature_sets: dict[int, list[str]],
    feature_columns: list[str],
) -> pl.DataFrame:
    """Turn rows of ``AUDIT_QUERY`` into ``AUDIT_COLUMNS`` and the feature columns.

    Text arrives as UTF-8 bytes (``text_factory=bytes``), which polars decodes
    faster than ``sqlite3`` builds str objects.
    """
    columns = list(zip(*rows, strict=True))
    raw = pl.DataFrame(
        [
            pl.Series(name, values, dtype=pl.Binary if dtype == pl.String else dtype)
            for (name, dtype), values in zip(
                AUDIT_COLUMNS.items(), columns, strict=False
            )
        ]
    ).with_columns(
        pl.col(name).cast(pl.String)
        for name, dtype in AUDIT_COLUMNS.items()
        if dtype == pl.String
    )
    matrix = unpack_features(
        raw["feature_set_id"].fill_null(-1).to_numpy(),
        columns[len(AUDIT_COLUMNS)],
        feature_sets=feature_sets,
        feature_columns=feature_columns,
    )
    features = pl.DataFrame(
        {name: matrix[:, j] for j, name in enumerate(feature_columns)},
        schema=dict.fromkeys(feature_columns, pl.Float64),
    ).fill_nan(None)
    return pl.concat([raw, features], how="horizontal")


def unpack_features(
    set_ids: np.ndarray,
    blobs: tuple[bytes | None, ...],
    *,
    feature_sets: dict[int, list[str]],
    feature_columns: list[str],
) -> np.ndarray:
    """Decode the ``feature_values`` BLOBs into a float64 matrix.

    Args:
        set_ids: Feature set id of each row, -1 for a row without features.
        blobs: Each row's ``FEATURE_VALUE_DTYPE`` bytes, in its set's order.
        feature_sets: Feature names of each set id.
        feature_columns: Columns of the result, in order.

    Returns:
        Shape (rows, len(feature_columns)); NaN where a row has no such feature.

    Raises:
        AuditSchemaError: A set id is unknown or a BLOB has the wrong length.
    """
    # Column-major, so each feature column is contiguous for polars.
    matrix = np.full((set_ids.size, len(feature_columns)), np.nan, order="F")
    for set_id in np.unique(set_ids[set_ids >= 0]).tolist():
        if set_id not in feature_sets:
            raise AuditSchemaError(
                f"feature_set_id {set_id} is missing from the feature_sets table; "
                "the audit file is damaged, restore it from a backup"
            )
        names = feature_sets[set_id]
        rows = np.flatnonzero(set_ids == set_id)
        every_row = rows.size == set_ids.size
        selected = blobs if every_row else [blobs[row] for row in rows.tolist()]
        values = np.frombuffer(b"".join(selected), dtype=FEATURE_VALUE_DTYPE)
        if values.size != rows.size * len(names):
            raise AuditSchemaError(
                f"feature_values of feature set {set_id} hold {values.size} numbers "
                f"for {rows.size} record(s) of {len(names)} feature(s); the audit "
                "file is damaged, restore it from a backup"
            )
        values = values.reshape(rows.size, len(names))
        position = {name: index for index, name in enumerate(names)}
        targets = [j for j, name in enumerate(feature_columns) if name in position]
        sources = [position[feature_columns[j]] for j in targets]
        if every_row:
            matrix[:, targets] = values[:, sources]
        else:
            matrix[np.ix_(rows, targets)] = values[:, sources]
    return matrix


def empty_rows_frame(feature_columns: list[str]) -> pl.DataFrame:
    """Return a frame of ``audit_rows_frame``'s schema with no rows."""
    return pl.DataFrame(
        schema={**AUDIT_COLUMNS, **dict.fromkeys(feature_columns, pl.Float64)}
    )


def newest_records(
    frame: pl.DataFrame, retried: list[tuple[bytes, int]]
) -> pl.DataFrame:
    """Drop every record that a newer record of its transaction supersedes.

    Args:
        frame: Rows of ``audit_rows_frame``, possibly of a period only.
        retried: ``RETRIED_QUERY`` over the whole table: transaction ids with
            several records and the seq of the newest.
    """
    if not retried:
        return frame
    ids, newest = zip(*retried, strict=True)
    latest = pl.DataFrame(
        {
            "transaction_id": pl.Series(ids, dtype=pl.Binary).cast(pl.String),
            "_newest": pl.Series(newest, dtype=pl.Int64),
        }
    )
    return (
        frame.join(latest, on="transaction_id", how="left", maintain_order="left")
        .filter(pl.col("_newest").is_null() | (pl.col("seq") == pl.col("_newest")))
        .drop("_newest")
    )


def decision_frame(frame: pl.DataFrame, *, feature_columns: list[str]) -> pl.DataFrame:
    """Convert audit rows into a decision frame sorted by event time."""
    converted = frame.with_columns(
        pl.col("event_time_us")
        .cast(pl.Datetime("us"))
        .dt.replace_time_zone("UTC")
        .alias("timestamp"),
        pl.col("decided_at").str.to_datetime(time_zone="UTC", time_unit="us"),
        pl.col("degraded").cast(pl.Boolean),
    )
    return with_day(converted.select(*BASE_COLUMNS, *feature_columns))


def with_day(frame: pl.DataFrame) -> pl.DataFrame:
    """Add ``day``, the UTC date of the event time, and sort by event time."""
    return frame.with_columns(day=pl.col("timestamp").dt.date()).sort(
        "timestamp", "transaction_id"
    )


def batch_decisions(
    features: pl.DataFrame,
    model: Any,
    *,
    model_version: str = "",
) -> pl.DataFrame:
    """Score feature table rows in one batch into a decision frame.

    The decisions equal the service's for the same feature values: the same
    ``predict_proba`` and the same thresholds. Tests and benchmarks use this to
    build long periods quickly; the replay stage goes through the scoring core.

    Args:
        features: Feature table rows with the keys and every model feature.
        model: A ``cardfraud.training.TrainedModel``.
        model_version: Version recorded with every decision.
    """
    from cardfraud.serving import decide

    scores = np.asarray(model.predict_proba(features), dtype=np.float64)
    decisions = [decide(float(score), model.thresholds) for score in scores]
    frame = features.select(
        "transaction_id",
        "timestamp",
        pl.col("timestamp").alias("decided_at"),
        "card_id",
        "merchant_id",
        pl.lit(model_version).alias("model_version"),
        pl.Series("score", scores),
        pl.Series("decision", decisions, dtype=pl.String),
        pl.lit(False).alias("degraded"),
        *[pl.col(name).cast(pl.Float64) for name in model.feature_columns],
    )
    return with_day(frame)


def label_events_from_transactions(transactions: pl.DataFrame) -> pl.DataFrame:
    """Return the fraud label events of canonical transactions with ground truth.

    A fraud without ``label_available_at`` is left out: its report time is unknown.
    """
    return (
        transactions.filter(
            pl.col("is_fraud") & pl.col("label_available_at").is_not_null()
        )
        .select("transaction_id", "label_available_at")
        .cast(LABEL_EVENT_SCHEMA)
        .sort("label_available_at", "transaction_id")
    )


def read_label_events(path: Path) -> pl.DataFrame:
    """Read label events from a parquet or CSV file.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: A required column is missing.
    """
    if not path.is_file():
        raise FileNotFoundError(f"label events file {path} not found")
    if path.suffix == ".csv":
        frame = pl.read_csv(path, try_parse_dates=True)
    else:
        frame = pl.read_parquet(path)
    missing = [name for name in LABEL_EVENT_SCHEMA if name not in frame.columns]
    if missing:
        raise ValueError(
            f"label events file {path} lacks column(s) {missing}; expected "
            "transaction_id and label_available_at (UTC)"
        )
    return frame.select(*LABEL_EVENT_SCHEMA).cast(LABEL_EVENT_SCHEMA)
