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

import io
import logging
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

logger = logging.getLogger(__name__)

LABEL_EVENT_SCHEMA: dict[str, Any] = {
    "transaction_id": pl.String,
    "label_available_at": pl.Datetime("us", "UTC"),
}
AUDIT_COLUMNS: dict[str, Any] = {
    "seq": pl.Int64,
    "transaction_id": pl.String,
    "decided_at": pl.String,
    "model_version": pl.String,
    "score": pl.Float64,
    "decision": pl.String,
    "degraded": pl.Int64,
    "timestamp": pl.String,
    "card_id": pl.String,
    "merchant_id": pl.String,
}
AUDIT_QUERY = (
    "SELECT seq, transaction_id, decided_at, model_version, score, decision, "
    "degraded, json_extract(record, '$.request.timestamp'), "
    "json_extract(record, '$.request.card_id'), "
    "json_extract(record, '$.request.merchant_id'), "
    "json_extract(record, '$.features') FROM decisions"
)
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

    Args:
        path: The audit database (``state/audit.db`` of a workspace).
        feature_columns: Model features to take from each record's ``features``.
        since: First event time kept, UTC-aware; None keeps from the start.
        until: Event times before this are kept; None keeps to the end.

    Raises:
        FileNotFoundError: The database does not exist.
        ValueError: ``since`` or ``until`` is naive.
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
    frame = audit_rows_frame(read_rows(path), feature_columns=feature_columns)
    if since is not None:
        frame = frame.filter(pl.col("timestamp") >= since)
    if until is not None:
        frame = frame.filter(pl.col("timestamp") < until)
    logger.info("read %d decision(s) from %s", frame.height, path)
    return frame


def read_rows(path: Path) -> list[tuple[Any, ...]]:
    """Run ``AUDIT_QUERY`` over the whole table; text comes back as UTF-8 bytes."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    connection.text_factory = bytes
    try:
        return connection.execute(AUDIT_QUERY).fetchall()
    finally:
        connection.close()


def audit_rows_frame(
    rows: list[tuple[Any, ...]], *, feature_columns: list[str]
) -> pl.DataFrame:
    """Turn rows of ``AUDIT_QUERY`` into a decision frame, newest record per id.

    The features' JSON objects are parsed as one newline-delimited JSON document,
    which polars reads in parallel; a column missing from a record becomes null.
    """
    count = len(AUDIT_COLUMNS)
    columns = list(zip(*rows, strict=True)) if rows else [()] * (count + 1)
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
    schema = {name: pl.Float64 for name in feature_columns}
    if rows:
        features = pl.read_ndjson(io.BytesIO(b"\n".join(columns[count])), schema=schema)
    else:
        features = pl.DataFrame(schema=schema)
    frame = (
        pl.concat([raw, features], how="horizontal")
        .sort("seq")
        .unique("transaction_id", keep="last", maintain_order=True)
        .with_columns(
            pl.col("timestamp").str.to_datetime(time_zone="UTC", time_unit="us"),
            pl.col("decided_at").str.to_datetime(time_zone="UTC", time_unit="us"),
            pl.col("degraded").cast(pl.Boolean),
        )
    )
    return with_day(frame.select(*BASE_COLUMNS, *feature_columns))


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
