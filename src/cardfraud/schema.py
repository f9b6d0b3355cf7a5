"""Canonical transaction schema shared by every producer and consumer.

Every table that enters the platform (the synthetic generator's partitions, an external
table mapped by the ingest step, a scoring request) is expressed in these columns.
Timestamps are UTC-aware microseconds; money is an integer amount in minor units plus an
ISO 4217 currency code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import polars as pl
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    create_model,
)

SCHEMA_VERSION = "1.0.0"

CHANNELS = ("pos", "ecommerce", "atm", "contactless")
UTC_DATETIME = pl.Datetime("us", "UTC")
# Largest amount a scoring request may carry: 10,000,000.00 in two-decimal currencies.
MAX_REQUEST_AMOUNT_MINOR = 1_000_000_000
# Range of request timestamps in UTC; anything outside is a client error.
EARLIEST_REQUEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_REQUEST_TIME = datetime(2100, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Column:
    """One column of the canonical schema."""

    name: str
    dtype: pl.DataType
    required: bool
    description: str
    unit: str = ""
    is_label: bool = False


COLUMNS: tuple[Column, ...] = (
    Column("transaction_id", pl.String(), True, "Unique id of the authorisation."),
    Column("timestamp", UTC_DATETIME, True, "Authorisation time.", "UTC, microseconds"),
    Column("card_id", pl.String(), True, "Card (PAN token) that paid."),
    Column("customer_id", pl.String(), False, "Customer who holds the card."),
    Column("merchant_id", pl.String(), True, "Merchant that was paid."),
    Column("terminal_id", pl.String(), False, "Terminal or web shop that captured it."),
    Column("amount_minor", pl.Int64(), True, "Amount paid.", "minor units"),
    Column("currency", pl.String(), True, "Currency of the amount.", "ISO 4217"),
    Column("mcc", pl.String(), False, "Merchant category code.", "4 digits"),
    Column("channel", pl.String(), False, f"One of {', '.join(CHANNELS)}."),
    Column("card_present", pl.Boolean(), False, "Card physically present."),
    Column("merchant_country", pl.String(), False, "Merchant country.", "ISO 3166-1"),
    Column("card_country", pl.String(), False, "Issuing country.", "ISO 3166-1"),
    Column("device_id", pl.String(), False, "Device of a remote payment."),
    Column("customer_lat", pl.Float64(), False, "Customer home latitude.", "degrees"),
    Column("customer_lon", pl.Float64(), False, "Customer home longitude.", "degrees"),
    Column("merchant_lat", pl.Float64(), False, "Merchant latitude.", "degrees"),
    Column("merchant_lon", pl.Float64(), False, "Merchant longitude.", "degrees"),
    Column("is_fraud", pl.Boolean(), False, "Ground-truth fraud label.", "", True),
    Column(
        "label_available_at",
        UTC_DATETIME,
        False,
        "When the fraud report or chargeback reached the bank; null for legitimate.",
        "UTC, microseconds",
        True,
    ),
    Column("fraud_scenario", pl.String(), False, "Generator scenario name.", "", True),
)

COLUMN_BY_NAME: dict[str, Column] = {column.name: column for column in COLUMNS}
REQUIRED_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.required)
LABEL_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.is_label)


class SchemaError(ValueError):
    """A table does not match the canonical transaction schema."""


def polars_schema() -> dict[str, pl.DataType]:
    """Return the canonical column names and polars dtypes, in schema order."""
    return {column.name: column.dtype for column in COLUMNS}


def validate_frame(
    frame: pl.DataFrame, *, require_labels: bool = False
) -> pl.DataFrame:
    """Check a frame against the canonical schema and return it in schema column order.

    Args:
        frame: Transactions. Columns outside the schema are dropped from the result.
        require_labels: Also require ``is_fraud`` (training and evaluation data).

    Returns:
        The frame with schema columns only, in schema order.

    Raises:
        SchemaError: A required column is missing, a column has the wrong dtype, a
            required column has nulls, or ``transaction_id`` repeats. The message
            names the column, the rule and the fix.
    """
    required = list(REQUIRED_COLUMNS) + (["is_fraud"] if require_labels else [])
    missing = [name for name in required if name not in frame.columns]
    if missing:
        raise SchemaError(
            f"missing required column(s) {missing}: schema {SCHEMA_VERSION} requires "
            f"{required}; add them or map them in the ingest mapping"
        )
    for name in frame.columns:
        column = COLUMN_BY_NAME.get(name)
        if column is None:
            continue
        actual = frame.schema[name]
        if actual != column.dtype:
            raise SchemaError(
                f"column {name!r} has dtype {actual}, expected {column.dtype}"
                f" ({column.unit or column.description}); cast it before loading"
            )
    for name in required:
        nulls = frame[name].null_count()
        if nulls:
            raise SchemaError(
                f"required column {name!r} has {nulls} null value(s); "
                "fill or drop those rows before loading"
            )
    duplicated = frame["transaction_id"].is_duplicated().sum()
    if duplicated:
        raise SchemaError(
            f"column 'transaction_id' has {duplicated} duplicated value(s); "
            "transaction ids must be unique"
        )
    present = [column.name for column in COLUMNS if column.name in frame.columns]
    return frame.select(present)


def _require_iso_text(value: Any) -> Any:
    """Reject numbers so that a timestamp always carries an explicit UTC offset."""
    if not isinstance(value, str | datetime):
        raise ValueError("must be an ISO 8601 string with a UTC offset, e.g. ...Z")
    return value


def _to_utc_in_range(value: datetime) -> datetime:
    """Convert to UTC and reject times outside the service's range."""
    message = "must be between 1970-01-01 and 2100-01-01 UTC"
    try:
        converted = value.astimezone(UTC)
    except OverflowError:
        raise ValueError(message) from None
    if not EARLIEST_REQUEST_TIME <= converted < LATEST_REQUEST_TIME:
        raise ValueError(message)
    return converted


def _request_field_type(column: Column) -> Any:
    """Map a schema column to the pydantic type a scoring request must send."""
    finite = {"allow_inf_nan": False}
    if column.name == "amount_minor":
        return Annotated[int, Field(gt=0, le=MAX_REQUEST_AMOUNT_MINOR, strict=True)]
    if column.name == "currency":
        return Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    if column.name == "channel":
        return Literal[CHANNELS]  # type: ignore[valid-type]
    if column.name in ("merchant_country", "card_country"):
        return Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    if column.name == "mcc":
        return Annotated[str, Field(pattern=r"^[0-9]{4}$")]
    if column.name.endswith("_lat"):
        return Annotated[float, Field(ge=-90, le=90, **finite)]
    if column.name.endswith("_lon"):
        return Annotated[float, Field(ge=-180, le=180, **finite)]
    if column.dtype == UTC_DATETIME:
        return Annotated[
            AwareDatetime,
            BeforeValidator(_require_iso_text),
            AfterValidator(_to_utc_in_range),
        ]
    if column.dtype == pl.Boolean():
        return Annotated[bool, Field(strict=True)]
    return Annotated[str, Field(min_length=1, max_length=128)]


def build_request_model() -> type[BaseModel]:
    """Build the scoring request model from the schema's non-label columns.

    Required columns are required fields; the others may be omitted or null. Unknown
    fields are rejected so that a misspelt column name is reported, not ignored.
    """
    fields: dict[str, Any] = {}
    for column in COLUMNS:
        if column.is_label:
            continue
        annotation = _request_field_type(column)
        description = f"{column.description} {column.unit}".strip()
        if column.required:
            fields[column.name] = (annotation, Field(description=description))
        else:
            fields[column.name] = (
                annotation | None,
                Field(default=None, description=description),
            )
    return create_model(
        "TransactionRequest",
        __config__=ConfigDict(extra="forbid"),
        __doc__=f"One transaction to score, canonical schema {SCHEMA_VERSION}.",
        **fields,
    )
