"""Ingestion of an external CSV or parquet transaction table into the canonical schema.

A YAML mapping names the source column of each canonical column. It also sets the
rules that convert values: the unit and separators of amounts, the zone of timestamps
without a UTC offset, the label values that mean fraud, and channel names. The
result has the generate stage's layout: ``dt=YYYY-MM-DD/part-0.parquet`` per UTC day
plus ``manifest.json``, so every later stage reads it unchanged.

Every problem in the mapping or the table raises :class:`IngestError` with one line that
names the column, the rule and the fix. Rows in messages are 1-based data rows, header
excluded. Nothing is written until the whole table has been converted, and the output
folder is replaced only once every file is complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import tempfile
import zoneinfo
from pathlib import Path
from typing import Any, Literal

import polars as pl
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from cardfraud.schema import (
    CHANNELS,
    COLUMNS,
    SCHEMA_VERSION,
    UTC_DATETIME,
    SchemaError,
    validate_frame,
)

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
PARQUET_COMPRESSION = "zstd"
HASH_CHUNK_BYTES = 1 << 20

# ISO 4217 minor units of the currencies that do not use 2 decimals; every other
# three-letter code is taken to use 2.
# fmt: off
ISO_4217_EXPONENTS: dict[str, int] = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0,
    "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    "CLF": 4, "UYW": 4,
}
# ISO 4217 codes of precious metals, fund units and test codes: they have no minor unit.
ISO_4217_WITHOUT_MINOR_UNIT = frozenset((
    "XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XDR", "XPD", "XPT", "XSU", "XTS", "XUA",
    "XXX",
))
# fmt: on
# Maximum number of digits before the decimal separator: 10**14 major units with 4
# decimals still fit in int64 minor units (at most about 9.2 * 10**18).
MAX_WHOLE_DIGITS = 14

DEFAULT_FRAUD_VALUES: tuple[str, ...] = ("1", "true", "t", "yes", "y", "fraud")
DEFAULT_LEGIT_VALUES: tuple[str, ...] = (
    "0",
    "false",
    "f",
    "no",
    "n",
    "legit",
    "legitimate",
    "genuine",
)
TRUE_VALUES: tuple[str, ...] = ("1", "true", "t", "yes", "y")
FALSE_VALUES: tuple[str, ...] = ("0", "false", "f", "no", "n")

# An ISO 8601 time of day followed by a UTC offset or Z, at the end of the value.
OFFSET_PATTERN = r"\d{2}:\d{2}(:\d{2}([.,]\d+)?)?\s?(Z|z|[+-]\d{2}(:?\d{2})?)$"

ID_KEYS = (
    "transaction_id",
    "card_id",
    "customer_id",
    "merchant_id",
    "terminal_id",
    "device_id",
    "fraud_scenario",
)
COUNTRY_KEYS = ("merchant_country", "card_country")
COORDINATE_LIMITS = {
    "customer_lat": 90.0,
    "customer_lon": 180.0,
    "merchant_lat": 90.0,
    "merchant_lon": 180.0,
}


class IngestError(ValueError):
    """The mapping or the external table is invalid; the message names the fix."""


# --- The mapping file ------------------------------------------------------------


class MappingModel(BaseModel):
    """Base of the mapping sections: strict types, unknown keys rejected."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class ColumnMapping(MappingModel):
    """Source column name of each canonical column; None where the table lacks it."""

    transaction_id: str = Field(min_length=1)
    timestamp: str = Field(min_length=1)
    card_id: str | None = Field(default=None, min_length=1)
    customer_id: str | None = Field(default=None, min_length=1)
    merchant_id: str | None = Field(default=None, min_length=1)
    terminal_id: str | None = Field(default=None, min_length=1)
    amount: str = Field(min_length=1)
    currency: str | None = Field(default=None, min_length=1)
    is_fraud: str = Field(min_length=1)
    label_available_at: str | None = Field(default=None, min_length=1)
    mcc: str | None = Field(default=None, min_length=1)
    channel: str | None = Field(default=None, min_length=1)
    card_present: str | None = Field(default=None, min_length=1)
    merchant_country: str | None = Field(default=None, min_length=1)
    card_country: str | None = Field(default=None, min_length=1)
    device_id: str | None = Field(default=None, min_length=1)
    customer_lat: str | None = Field(default=None, min_length=1)
    customer_lon: str | None = Field(default=None, min_length=1)
    merchant_lat: str | None = Field(default=None, min_length=1)
    merchant_lon: str | None = Field(default=None, min_length=1)
    fraud_scenario: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _check_alternatives(self) -> ColumnMapping:
        if self.card_id is None and self.customer_id is None:
            raise ValueError(
                "map card_id, or customer_id when the table has no card id"
            )
        if self.merchant_id is None and self.terminal_id is None:
            raise ValueError(
                "map merchant_id, or terminal_id when the table has no merchant id"
            )
        return self

    def mapped(self) -> dict[str, str]:
        """Return the mapped keys and their source column names, in schema order."""
        return {key: name for key, name in self.model_dump().items() if name}


class AmountRule(MappingModel):
    """How the amount column is written in the source table.

    ``unit: minor`` means integer minor units (1234 for 12.34 EUR). ``unit: major``
    means decimal amounts in major units (12.34). ``exponent`` then gives the number
    of minor-unit digits: one integer for every row, or ``iso4217`` to take it from
    each row's currency.
    """

    unit: Literal["minor", "major"]
    exponent: int | Literal["iso4217"] | None = Field(default=None)
    decimal_separator: Literal[".", ","] = "."
    thousands_separator: Literal["", ",", ".", " ", "'"] = ""

    @field_validator("exponent")
    @classmethod
    def _check_exponent(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and not 0 <= value <= 4:
            raise ValueError("must be between 0 and 4, or 'iso4217'")
        return value

    @model_validator(mode="after")
    def _check_rule(self) -> AmountRule:
        if self.unit == "major" and self.exponent is None:
            raise ValueError(
                "unit 'major' needs exponent: the number of decimals of the currency "
                "(2 for EUR) or 'iso4217' to take it from each row's currency"
            )
        if self.unit == "minor" and self.exponent is not None:
            raise ValueError(
                "exponent applies to unit 'major' only; remove it for minor units"
            )
        if self.decimal_separator == self.thousands_separator:
            raise ValueError("decimal_separator and thousands_separator must differ")
        return self


class LabelRule(MappingModel):
    """Source values of the fraud label, compared as lower-case text."""

    fraud_values: list[str | int | bool] = Field(
        default_factory=lambda: list(DEFAULT_FRAUD_VALUES), min_length=1
    )
    legit_values: list[str | int | bool] = Field(
        default_factory=lambda: list(DEFAULT_LEGIT_VALUES), min_length=1
    )

    @model_validator(mode="after")
    def _check_disjoint(self) -> LabelRule:
        both = set(self.fraud_set()) & set(self.legit_set())
        if both:
            raise ValueError(
                f"value(s) {sorted(both)} are listed as both fraud and legitimate"
            )
        return self

    def fraud_set(self) -> list[str]:
        """Return the fraud values as normalised text."""
        return [_normalise_flag_value(value) for value in self.fraud_values]

    def legit_set(self) -> list[str]:
        """Return the legitimate values as normalised text."""
        return [_normalise_flag_value(value) for value in self.legit_values]


class ConstantValues(MappingModel):
    """Values of canonical columns that the table lacks, the same for every row."""

    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    mcc: str | None = Field(default=None, pattern=r"^[0-9]{4}$")
    channel: Literal[CHANNELS] | None = None  # type: ignore[valid-type]
    card_present: bool | None = None
    merchant_country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    card_country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")

    def given(self) -> dict[str, Any]:
        """Return the constants that are set."""
        return {
            key: value for key, value in self.model_dump().items() if value is not None
        }


class CsvOptions(MappingModel):
    """How to read a CSV source."""

    separator: str = Field(default=",", min_length=1, max_length=1)
    quote_char: str | None = Field(default='"', min_length=1, max_length=1)
    encoding: Literal["utf8", "utf8-lossy"] = "utf8"


class IngestMapping(MappingModel):
    """The whole mapping file: columns, conversion rules and constants."""

    format: Literal["csv", "parquet"] | None = Field(
        default=None, description="Source format; default from the file suffix."
    )
    timezone: str | None = Field(
        default=None,
        description="IANA zone of timestamps without a UTC offset; None rejects them.",
    )
    timestamp_format: str | None = Field(
        default=None,
        description="strftime format of text timestamps; default ISO 8601.",
    )
    epoch_unit: Literal["s", "ms", "us"] | None = Field(
        default=None, description="Unit of integer timestamps since 1970-01-01 UTC."
    )
    columns: ColumnMapping
    amount: AmountRule
    labels: LabelRule = Field(default_factory=LabelRule)
    channels: dict[str, Literal[CHANNELS]] = Field(  # type: ignore[valid-type]
        default_factory=dict,
        description="Source channel value to canonical channel.",
    )
    constants: ConstantValues = Field(default_factory=ConstantValues)
    csv: CsvOptions = Field(default_factory=CsvOptions)

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                "is not an IANA time zone; write e.g. UTC or Europe/Berlin"
            ) from None
        return value

    @model_validator(mode="after")
    def _check_constants(self) -> IngestMapping:
        mapped = self.columns.mapped()
        both = sorted(set(self.constants.given()) & set(mapped))
        if both:
            raise ValueError(
                f"{both} are set both in columns and in constants; keep one of them"
            )
        if "currency" not in mapped and self.constants.currency is None:
            raise ValueError(
                "currency is required: map columns.currency or set constants.currency"
            )
        return self

    def canonical_json(self) -> str:
        """Return the mapping as JSON with sorted keys, independent of YAML layout."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True)

    def content_hash(self) -> str:
        """Return the sha256 of ``canonical_json``, unaffected by YAML comments."""
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()


def load_mapping(path: Path) -> IngestMapping:
    """Read and validate a mapping file.

    Raises:
        IngestError: The file is missing, is not YAML, has an unknown key, lacks a
            required key or breaks a rule; the message names the key.
    """
    if not path.is_file():
        raise IngestError(f"mapping file {path} not found; check the mapping path")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        first_line = str(error).splitlines()[0]
        raise IngestError(f"mapping {path} is not valid YAML: {first_line}") from None
    if not isinstance(raw, dict):
        raise IngestError(
            f"mapping {path}: expected a mapping with at least 'columns' and 'amount'"
        )
    try:
        return IngestMapping.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(_describe_mapping_issue(issue) for issue in error.errors())
        raise IngestError(f"mapping {path}: {problems}") from None


def _describe_mapping_issue(issue: Any) -> str:
    """Format one pydantic error as ``key: problem`` with the fix."""
    location = [str(part) for part in issue["loc"]]
    key = ".".join(location)
    if issue["type"] == "extra_forbidden":
        valid = sorted(_model_at(location[:-1]).model_fields)
        return f"unknown key {key!r}; valid keys here are {valid}"
    if issue["type"] == "missing":
        return f"key {key!r} is required"
    message = issue["msg"].removeprefix("Value error, ")
    if issue["type"] == "value_error" and isinstance(issue["input"], dict):
        return f"{key}: {message}" if key else message
    return f"{key}: {message} (got {issue['input']!r:.60})"


def _model_at(location: list[str]) -> type[BaseModel]:
    """Return the mapping section model at a key path such as ``["columns"]``."""
    model: type[BaseModel] = IngestMapping
    for part in location:
        field = model.model_fields.get(part)
        annotation = field.annotation if field else None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
    return model


# --- Reading the source table ----------------------------------------------------


def file_sha256(path: Path) -> str:
    """Return the hex sha256 digest of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(HASH_CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def source_format(path: Path, mapping: IngestMapping) -> str:
    """Return ``csv`` or ``parquet``: the mapping's ``format``, else the suffix."""
    if mapping.format is not None:
        return mapping.format
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("parquet", "pq"):
        return "parquet"
    if suffix == "csv":
        return "csv"
    raise IngestError(
        f"cannot tell the format of {path.name} from its suffix; set format: csv or "
        "format: parquet in the mapping"
    )


def read_source(path: Path, mapping: IngestMapping) -> pl.DataFrame:
    """Read the mapped columns of the source table.

    CSV columns are read as text, so amounts and ids keep their exact digits; parquet
    columns keep their stored types.

    Raises:
        IngestError: The file is missing or unreadable, or a mapped column is absent.
    """
    if not path.is_file():
        raise IngestError(f"source table {path} not found; check the source path")
    kind = source_format(path, mapping)
    selected = list(dict.fromkeys(mapping.columns.mapped().values()))
    try:
        available = _source_columns(path, kind, mapping.csv)
        _check_columns_exist(path, mapping, available, kind=kind)
        if kind == "parquet":
            table = pl.read_parquet(path, columns=selected)
        else:
            table = pl.read_csv(path, columns=selected, **_csv_options(mapping.csv))
    except (pl.exceptions.PolarsError, OSError) as error:
        first_line = str(error).strip().splitlines()[0]
        raise IngestError(
            f"could not read {path.name} as {kind}: {first_line}; check the file and "
            "the mapping's format and csv options"
        ) from None
    logger.info("read %d rows of %d columns from %s", table.height, len(selected), path)
    return table


def _csv_options(options: CsvOptions) -> dict[str, Any]:
    return {
        "infer_schema": False,
        "separator": options.separator,
        "quote_char": options.quote_char,
        "encoding": options.encoding,
    }


def _source_columns(path: Path, kind: str, options: CsvOptions) -> list[str]:
    if kind == "parquet":
        return list(pl.read_parquet_schema(path))
    return pl.read_csv(path, n_rows=0, **_csv_options(options)).columns


def _check_columns_exist(
    path: Path, mapping: IngestMapping, available: list[str], *, kind: str
) -> None:
    separator_hint = ""
    if kind == "csv" and len(available) == 1:
        # A header that was not split at all points to another separator.
        separator = mapping.csv.separator
        separator_hint = (
            f", or set csv.separator if the file does not use {separator!r}"
        )
    for key, name in mapping.columns.mapped().items():
        if name not in available:
            raise IngestError(
                f"mapping columns.{key} names column {name!r}, which {path.name} does "
                f"not have (its columns: {available}); correct columns.{key} in the "
                f"mapping{separator_hint}"
            )


# --- Converting source columns to canonical columns ------------------------------


class _Columns:
    """The source table with the names of its mapped columns, for error messages."""

    def __init__(self, table: pl.DataFrame, mapping: IngestMapping, source_name: str):
        self.table = table
        self.mapping = mapping
        self.names = mapping.columns.mapped()
        self.source_name = source_name

    def get(self, key: str) -> pl.Series:
        """Return the source column mapped to ``key``."""
        return self.table[self.names[key]]

    def error(self, key: str, problem: str, fix: str) -> IngestError:
        """Build the error for a problem in the column mapped to ``key``."""
        return IngestError(
            f"{self.source_name}: column {self.names[key]!r} (columns.{key}) "
            f"{problem}; {fix}"
        )

    def value_error(
        self, key: str, values: pl.Series, bad: pl.Series, rule: str, fix: str
    ) -> IngestError:
        """Build the error for the rows where ``bad`` is true, naming the first."""
        bad = bad.fill_null(False)
        index = int(bad.arg_true()[0])
        count = int(bad.sum())
        problem = (
            f"has {count} value(s) that {rule}; the first is {values[index]!r} "
            f"at row {index + 1}"
        )
        return self.error(key, problem, fix)


def map_to_canonical(
    table: pl.DataFrame, mapping: IngestMapping, *, source_name: str
) -> pl.DataFrame:
    """Convert a source table to canonical transactions with labels.

    Args:
        table: Source columns as read by :func:`read_source`.
        mapping: The validated mapping.
        source_name: Name of the source file, used in error messages.

    Returns:
        Every canonical column in schema order, with schema dtypes; columns the
        table lacks are null. ``label_available_at`` is null where no label time is
        mapped, and the features stage then uses ``features.label_delay_days``.

    Raises:
        IngestError: A value breaks a rule; the message names the column, the first
            bad row and the fix.
    """
    if table.height == 0:
        raise IngestError(f"{source_name} has no rows; ingest a table with data")
    columns = _Columns(table, mapping, source_name)
    converted: dict[str, pl.Series] = {}
    for key in columns.names:
        if key in ID_KEYS:
            converted[key] = _convert_id(columns, key)
    _fall_back(converted, "card_id", "customer_id")
    _fall_back(converted, "merchant_id", "terminal_id")
    _check_unique_ids(columns, converted["transaction_id"])

    converted["timestamp"] = _convert_timestamp(columns, "timestamp")
    if "label_available_at" in columns.names:
        converted["label_available_at"] = _convert_timestamp(
            columns, "label_available_at"
        )
    converted["currency"] = _convert_currency(columns)
    converted["amount_minor"] = _convert_amount(columns, converted["currency"])
    converted["is_fraud"] = _convert_label(columns)
    converted.update(_convert_optional(columns))
    return _assemble(converted, mapping, height=table.height)


def _fall_back(converted: dict[str, pl.Series], key: str, alternative: str) -> None:
    """Use ``alternative`` as ``key`` where the mapping does not map ``key``."""
    if key not in converted:
        logger.info("%s is not mapped: using %s as %s", key, alternative, key)
        converted[key] = converted[alternative].alias(key)


def _text(columns: _Columns, key: str, *, floats_as_text: bool = False) -> pl.Series:
    """Return a column as stripped text, with empty strings as null.

    Float columns must hold whole numbers (ids and codes stored as floats), unless
    ``floats_as_text`` keeps their shortest decimal form (amounts).
    """
    values = columns.get(key)
    dtype = values.dtype
    if dtype.is_float() and not floats_as_text:
        # Floats above 2**53 are no longer exact integers.
        exact = values.is_finite() & (values.abs() < 2**53)
        integral = values.is_null() | (exact & (values == values.floor()))
        if not integral.all():
            raise columns.value_error(
                key,
                values,
                ~integral,
                "are not whole numbers",
                "store this column as text or integers",
            )
        values = values.cast(pl.Int64)
    elif not (dtype == pl.String or dtype.is_numeric() or dtype == pl.Boolean):
        raise columns.error(
            key, f"has type {dtype}", "store it as text, integers or decimals"
        )
    text = values.cast(pl.String).str.strip_chars()
    return _blank_to_null(text).alias(key)


def _blank_to_null(text: pl.Series) -> pl.Series:
    frame = pl.DataFrame({"text": text})
    return frame.select(
        pl.when(pl.col("text") == "").then(None).otherwise(pl.col("text"))
    ).to_series()


def _require(columns: _Columns, key: str, values: pl.Series, source: pl.Series) -> None:
    """Raise if a required column has empty values."""
    if values.null_count():
        raise columns.value_error(
            key,
            source.cast(pl.String, strict=False),
            values.is_null(),
            "are empty",
            "fill or drop those rows in the source, since this column is required",
        )


def _convert_id(columns: _Columns, key: str) -> pl.Series:
    values = _text(columns, key).alias(key)
    if key in ("transaction_id", "card_id", "merchant_id") or (
        key in ("customer_id", "terminal_id") and _is_fallback(columns, key)
    ):
        _require(columns, key, values, columns.get(key))
    return values


def _is_fallback(columns: _Columns, key: str) -> bool:
    replaced = {"customer_id": "card_id", "terminal_id": "merchant_id"}[key]
    return replaced not in columns.names


def _check_unique_ids(columns: _Columns, ids: pl.Series) -> None:
    duplicated = ids.is_duplicated()
    if duplicated.any():
        first = ids[int(duplicated.arg_true()[0])]
        rows = [int(row) + 1 for row in (ids == first).arg_true().head(3)]
        raise columns.error(
            "transaction_id",
            f"has {int(duplicated.sum())} row(s) with a duplicated id; {first!r} is in "
            f"rows {rows}",
            "transaction ids must be unique, so remove the duplicated rows",
        )


def _convert_timestamp(columns: _Columns, key: str) -> pl.Series:
    """Convert a timestamp column to UTC-aware microseconds.

    Aware values (parquet datetimes with a zone, text with an offset) are converted
    to UTC. Naive values are read in the mapping's ``timezone`` and rejected without
    one. Integers are epoch times in ``epoch_unit``.
    """
    values = columns.get(key)
    dtype = values.dtype
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            parsed = values.dt.convert_time_zone("UTC")
        else:
            parsed = _localise(columns, key, values, values, values.is_not_null())
    elif dtype.is_integer():
        parsed = _from_epoch(columns, key, values)
    elif dtype == pl.String:
        parsed = _parse_timestamp_text(
            columns, key, _blank_to_null(values.str.strip_chars())
        )
    else:
        raise columns.error(
            key,
            f"has type {dtype}, which carries no time of day",
            "store timestamps as ISO 8601 text with an offset, zoned datetimes, or "
            "integers with epoch_unit set",
        )
    parsed = parsed.dt.cast_time_unit("us").cast(UTC_DATETIME).alias(key)
    if key == "timestamp":
        _require(columns, key, parsed, values)
    return parsed


def _from_epoch(columns: _Columns, key: str, values: pl.Series) -> pl.Series:
    unit = columns.mapping.epoch_unit
    if unit is None:
        raise columns.error(
            key,
            "has integer values",
            "set epoch_unit (s, ms or us) in the mapping if they are times since "
            "1970-01-01 UTC",
        )
    return pl.from_epoch(values, time_unit=unit).dt.replace_time_zone("UTC")


def _parse_timestamp_text(columns: _Columns, key: str, text: pl.Series) -> pl.Series:
    """Parse text timestamps: offsets are honoured, naive values need a zone."""
    timestamp_format = columns.mapping.timestamp_format
    height = text.len()
    if timestamp_format is not None:
        aware = pl.repeat("%z" in timestamp_format, height, eager=True)
    else:
        aware = text.str.contains(OFFSET_PATTERN).fill_null(False)
    naive = text.is_not_null() & ~aware
    parsed = pl.repeat(None, height, dtype=UTC_DATETIME, eager=True)
    if aware.any():
        rows = aware.arg_true()
        values = _strptime(columns, key, text.gather(rows), time_zone="UTC")
        parsed = parsed.scatter(rows, values)
    if naive.any():
        rows = naive.arg_true()
        local = pl.repeat(None, height, dtype=pl.Datetime("us"), eager=True)
        local = local.scatter(
            rows, _strptime(columns, key, text.gather(rows), time_zone=None)
        )
        zoned = _localise(columns, key, local, text, naive)
        parsed = (
            pl.DataFrame({"aware": parsed, "zoned": zoned, "naive": naive})
            .select(
                pl.when(pl.col("naive"))
                .then(pl.col("zoned"))
                .otherwise(pl.col("aware"))
            )
            .to_series()
        )
    failed = text.is_not_null() & parsed.is_null()
    if failed.any():
        raise columns.value_error(
            key,
            text,
            failed,
            "do not parse as timestamps",
            "write ISO 8601 values such as 2025-01-31T14:05:00+01:00, or set "
            "timestamp_format in the mapping",
        )
    return parsed


def _strptime(
    columns: _Columns, key: str, text: pl.Series, *, time_zone: str | None
) -> pl.Series:
    try:
        return text.str.to_datetime(
            format=columns.mapping.timestamp_format,
            time_unit="us",
            time_zone=time_zone,
            strict=False,
        )
    except pl.exceptions.PolarsError:
        # Format inference fails outright when no pattern fits the first value.
        raise columns.error(
            key,
            f"has values such as {text[0]!r} in no known timestamp format",
            "write ISO 8601 values, or set timestamp_format in the mapping",
        ) from None


def _localise(
    columns: _Columns,
    key: str,
    local: pl.Series,
    source: pl.Series,
    naive: pl.Series,
) -> pl.Series:
    """Read naive datetimes in the mapping's timezone and convert them to UTC.

    Args:
        columns: The source table and mapping.
        key: Mapping key of the column.
        local: Naive datetimes, null where the row is not naive or did not parse.
        source: Source values of the whole column, for error messages.
        naive: True on the rows that carry no UTC offset.
    """
    zone = columns.mapping.timezone
    if zone is None:
        raise columns.value_error(
            key,
            source.cast(pl.String),
            naive,
            "have no UTC offset",
            "add offsets to the values, or declare the zone they were recorded in "
            "with timezone: UTC (or e.g. Europe/Berlin) in the mapping",
        )
    zoned = local.dt.replace_time_zone(zone, ambiguous="null", non_existent="null")
    invalid = local.is_not_null() & zoned.is_null()
    if invalid.any():
        raise columns.value_error(
            key,
            source.cast(pl.String),
            invalid,
            f"do not exist or are ambiguous in {zone} (a daylight saving change)",
            "record times with a UTC offset, or in UTC with timezone: UTC",
        )
    return zoned.dt.convert_time_zone("UTC")


def _convert_currency(columns: _Columns) -> pl.Series:
    constant = columns.mapping.constants.currency
    if constant is not None:
        return pl.repeat(constant, columns.table.height, eager=True).alias("currency")
    values = _text(columns, "currency").str.to_uppercase().alias("currency")
    _require(columns, "currency", values, columns.get("currency"))
    invalid = ~values.str.contains(r"^[A-Z]{3}$")
    if invalid.any():
        raise columns.value_error(
            "currency",
            values,
            invalid,
            "are not three-letter ISO 4217 codes",
            "write codes such as EUR or USD",
        )
    return values


def _convert_amount(columns: _Columns, currency: pl.Series) -> pl.Series:
    """Convert amounts to positive int64 minor units, rejecting any lost digit."""
    rule = columns.mapping.amount
    text = _text(columns, "amount", floats_as_text=True)
    _require(columns, "amount", text, columns.get("amount"))
    thousands = re.escape(rule.thousands_separator)
    whole = rf"(\d+|\d{{1,3}}({thousands}\d{{3}})+)" if thousands else r"\d+"
    fraction = (
        rf"({re.escape(rule.decimal_separator)}\d+)?" if rule.unit == "major" else ""
    )
    invalid = ~text.str.contains(rf"^[+-]?{whole}{fraction}$")
    if invalid.any():
        raise columns.value_error("amount", text, invalid, *_amount_rule_text(rule))

    digits = text.str.replace_all(thousands, "") if thousands else text
    parts = digits.str.split_exact(rule.decimal_separator, 1).struct.unnest()
    whole_part = parts["field_0"].str.strip_chars_start("+-").str.strip_chars_start("0")
    fraction_part = parts["field_1"].fill_null("")
    too_long = whole_part.str.len_chars() > MAX_WHOLE_DIGITS
    if too_long.any():
        raise columns.value_error(
            "amount",
            text,
            too_long,
            f"have more than {MAX_WHOLE_DIGITS} digits before the decimal separator",
            "check amount.unit and the separators in the mapping",
        )
    exponent = _exponents(columns, currency, rule)
    extra_digits = fraction_part.str.len_chars().cast(pl.Int64) > exponent
    if extra_digits.any():
        raise columns.value_error(
            "amount",
            text,
            extra_digits,
            "have more decimals than their currency's minor unit (e.g. 12.345 EUR)",
            "round them in the source, or check amount.exponent and the separators",
        )
    frame = pl.DataFrame(
        {
            "whole": whole_part.replace("", "0").cast(pl.Int64),
            "fraction": fraction_part.replace("", "0").cast(pl.Int64),
            "fraction_digits": fraction_part.str.len_chars().cast(pl.Int64),
            "exponent": exponent,
            "negative": text.str.starts_with("-"),
        }
    )
    ten = pl.lit(10, dtype=pl.Int64)
    magnitude = pl.col("whole") * ten.pow(pl.col("exponent")) + pl.col(
        "fraction"
    ) * ten.pow(pl.col("exponent") - pl.col("fraction_digits"))
    amount = frame.select(
        pl.when(pl.col("negative")).then(-magnitude).otherwise(magnitude)
    ).to_series()
    not_positive = amount <= 0
    if not_positive.any():
        raise columns.value_error(
            "amount",
            text,
            not_positive,
            "are zero or negative",
            "drop refunds, reversals and zero-value checks before ingesting",
        )
    return amount.alias("amount_minor")


def _amount_rule_text(rule: AmountRule) -> tuple[str, str]:
    """Return the rule and the fix for amount text that does not parse."""
    if rule.unit == "minor":
        return (
            "are not whole numbers of minor units",
            "write 1234 for 12.34, or set amount.unit: major with an exponent",
        )
    example = "1234" + rule.decimal_separator + "56"
    if rule.thousands_separator:
        example = "1" + rule.thousands_separator + "234" + rule.decimal_separator + "56"
    return (
        f"are not decimal amounts like {example}",
        "correct them in the source, or set amount.decimal_separator and "
        "amount.thousands_separator to the ones the file uses",
    )


def _exponents(columns: _Columns, currency: pl.Series, rule: AmountRule) -> pl.Series:
    """Return the number of minor-unit digits of each row, int64."""
    if rule.unit == "minor" or isinstance(rule.exponent, int):
        exponent = rule.exponent if isinstance(rule.exponent, int) else 0
        return pl.repeat(exponent, currency.len(), dtype=pl.Int64, eager=True)
    no_minor_unit = currency.is_in(list(ISO_4217_WITHOUT_MINOR_UNIT))
    if no_minor_unit.any():
        key = "currency" if "currency" in columns.names else "amount"
        raise columns.value_error(
            key,
            currency,
            no_minor_unit,
            "are ISO 4217 codes without a minor unit (metals, funds, test codes)",
            "convert those amounts to a payment currency first",
        )
    return currency.replace_strict(
        ISO_4217_EXPONENTS, default=2, return_dtype=pl.Int64
    ).alias("exponent")


def _convert_label(columns: _Columns) -> pl.Series:
    labels = columns.mapping.labels
    fraud, legit = labels.fraud_set(), labels.legit_set()
    return _convert_flag(
        columns,
        "is_fraud",
        true_values=fraud,
        false_values=legit,
        fix=(
            f"fraud values are {fraud} and legitimate values {legit}; add the value "
            "to labels.fraud_values or labels.legit_values"
        ),
        required=True,
    )


def _convert_flag(
    columns: _Columns,
    key: str,
    *,
    true_values: list[str],
    false_values: list[str],
    fix: str,
    required: bool,
) -> pl.Series:
    """Convert a yes/no column to Boolean through its lower-case text values."""
    source_text = _text(columns, key)
    if required:
        _require(columns, key, source_text, columns.get(key))
    text = source_text.str.to_lowercase()
    flags = (
        pl.DataFrame({"text": text})
        .select(
            pl.when(pl.col("text").is_in(true_values))
            .then(True)
            .when(pl.col("text").is_in(false_values))
            .then(False)
            .otherwise(None)
        )
        .to_series()
        .alias(key)
    )
    unknown = text.is_not_null() & flags.is_null()
    if unknown.any():
        raise columns.value_error(key, source_text, unknown, "are not recognised", fix)
    return flags


def _normalise_flag_value(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip().lower()


def _convert_optional(columns: _Columns) -> dict[str, pl.Series]:
    """Convert the optional categorical and geographic columns that are mapped."""
    converted: dict[str, pl.Series] = {}
    names = columns.names
    if "mcc" in names:
        converted["mcc"] = _convert_mcc(columns)
    if "channel" in names:
        converted["channel"] = _convert_channel(columns)
    if "card_present" in names:
        converted["card_present"] = _convert_flag(
            columns,
            "card_present",
            true_values=list(TRUE_VALUES),
            false_values=list(FALSE_VALUES),
            fix=f"write one of {list(TRUE_VALUES)} or {list(FALSE_VALUES)}",
            required=False,
        )
    for key in COUNTRY_KEYS:
        if key in names:
            converted[key] = _convert_country(columns, key)
    for key, limit in COORDINATE_LIMITS.items():
        if key in names:
            converted[key] = _convert_coordinate(columns, key, limit)
    return converted


def _convert_mcc(columns: _Columns) -> pl.Series:
    # Codes below 1000 lose their leading zero when stored as numbers.
    values = _text(columns, "mcc").str.zfill(4)
    invalid = values.is_not_null() & ~values.str.contains(r"^[0-9]{4}$")
    if invalid.any():
        raise columns.value_error(
            "mcc",
            values,
            invalid,
            "are not four-digit merchant category codes",
            "write codes such as 5411, or leave columns.mcc unmapped",
        )
    return values


def _convert_channel(columns: _Columns) -> pl.Series:
    source_text = _text(columns, "channel")
    values = source_text
    translations = columns.mapping.channels
    if translations:
        values = values.replace(translations)
    values = values.str.to_lowercase()
    unknown = values.is_not_null() & ~values.is_in(list(CHANNELS))
    if unknown.any():
        raise columns.value_error(
            "channel",
            source_text,
            unknown,
            f"are not one of {list(CHANNELS)}",
            "translate source values under channels in the mapping, e.g. "
            "channels: {WEB: ecommerce}",
        )
    return values


def _convert_country(columns: _Columns, key: str) -> pl.Series:
    source_text = _text(columns, key)
    values = source_text.str.to_uppercase()
    invalid = values.is_not_null() & ~values.str.contains(r"^[A-Z]{2}$")
    if invalid.any():
        raise columns.value_error(
            key,
            source_text,
            invalid,
            "are not ISO 3166-1 alpha-2 country codes",
            "write two-letter codes such as DE or US",
        )
    return values


def _convert_coordinate(columns: _Columns, key: str, limit: float) -> pl.Series:
    source = columns.get(key)
    if source.dtype == pl.String:
        source = _blank_to_null(source.str.strip_chars())
        values = source.cast(pl.Float64, strict=False)
    elif source.dtype.is_numeric():
        values = source.cast(pl.Float64)
    else:
        raise columns.error(key, f"has type {source.dtype}", "store degrees as numbers")
    unparsed = source.is_not_null() & values.is_null()
    if unparsed.any():
        raise columns.value_error(
            key,
            source.cast(pl.String),
            unparsed,
            "are not numbers",
            "write decimal degrees with a '.' separator",
        )
    outside = values.is_not_null() & ~values.is_between(-limit, limit)
    if outside.any():
        raise columns.value_error(
            key,
            values,
            outside,
            f"are outside [-{limit:g}, {limit:g}] degrees or not finite",
            "check that latitude and longitude are not swapped",
        )
    return values.alias(key)


def _assemble(
    converted: dict[str, pl.Series], mapping: IngestMapping, *, height: int
) -> pl.DataFrame:
    """Put every canonical column in schema order, constants and nulls included."""
    constants = mapping.constants.given()
    series = []
    for column in COLUMNS:
        if column.name in converted:
            values = converted[column.name].cast(column.dtype)
        else:
            value = constants.get(column.name)
            values = pl.repeat(value, height, dtype=column.dtype, eager=True)
        series.append(values.alias(column.name))
    frame = pl.DataFrame(series)
    try:
        return validate_frame(frame, require_labels=True)
    except SchemaError as error:
        raise IngestError(
            f"ingested table breaks the canonical schema: {error}"
        ) from None


# --- Writing partitions ----------------------------------------------------------


def write_partitions(
    frame: pl.DataFrame, target: Path, *, details: dict[str, Any]
) -> dict[str, Any]:
    """Write canonical transactions as daily partitions and ``manifest.json``.

    The files go to a temporary folder beside ``target`` that replaces ``target``
    only once every file is complete, so a failure leaves ``target`` as it was.

    Args:
        frame: Canonical transactions, as returned by :func:`map_to_canonical`.
        target: Output folder; an existing one is replaced.
        details: Extra manifest keys (source path and hash, mapping hash).

    Returns:
        The manifest written.
    """
    ordered = frame.sort("timestamp", "transaction_id")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        files = _write_days(ordered, staging)
        manifest = _build_manifest(ordered, files, details)
        text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
        (staging / MANIFEST_NAME).write_text(text, encoding="utf-8")
        _replace_folder(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info(
        "wrote %d rows in %d daily partitions to %s", frame.height, len(files), target
    )
    return manifest


def _write_days(frame: pl.DataFrame, folder: Path) -> list[dict[str, Any]]:
    files = []
    days = frame.with_columns(_day=pl.col("timestamp").dt.date())
    for (day,), part in days.partition_by(
        "_day", as_dict=True, maintain_order=True
    ).items():
        part = part.drop("_day")
        relative = f"dt={day:%Y-%m-%d}/part-0.parquet"
        path = folder / relative
        path.parent.mkdir(parents=True)
        part.write_parquet(path, compression=PARQUET_COMPRESSION, statistics=True)
        files.append(
            {
                "path": relative,
                "rows": part.height,
                "frauds": int(part["is_fraud"].sum()),
                "sha256": file_sha256(path),
            }
        )
    return sorted(files, key=lambda entry: entry["path"])


def _build_manifest(
    frame: pl.DataFrame, files: list[dict[str, Any]], details: dict[str, Any]
) -> dict[str, Any]:
    return {
        "package": "cardfraud.ingest",
        "format_version": MANIFEST_FORMAT,
        "schema_version": SCHEMA_VERSION,
        **details,
        "rows": frame.height,
        "frauds": int(frame["is_fraud"].sum()),
        "start": frame["timestamp"].min().date().isoformat(),
        "end": frame["timestamp"].max().date().isoformat(),
        "days": len(files),
        "scenarios": _scenario_counts(frame),
        "schema": [
            {"name": name, "dtype": str(dtype)} for name, dtype in frame.schema.items()
        ],
        "files": files,
    }


def _scenario_counts(frame: pl.DataFrame) -> dict[str, int]:
    """Count fraudulent rows per ``fraud_scenario``; empty where none is named."""
    counts = (
        frame.filter(pl.col("is_fraud") & pl.col("fraud_scenario").is_not_null())
        .group_by("fraud_scenario")
        .len()
        .sort("fraud_scenario")
    )
    return dict(zip(counts["fraud_scenario"], counts["len"], strict=True))


def _replace_folder(staging: Path, target: Path) -> None:
    """Move ``staging`` to ``target``, removing an existing ``target`` last."""
    if not target.exists():
        staging.rename(target)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    retired.rmdir()
    target.rename(retired)
    staging.rename(target)
    shutil.rmtree(retired, ignore_errors=True)


# --- The whole step --------------------------------------------------------------


def ingest_table(
    source: Path,
    mapping_path: Path,
    out_dir: Path,
    *,
    overwrite: bool = False,
    source_label: str | None = None,
    mapping_label: str | None = None,
) -> dict[str, Any]:
    """Map an external table into canonical daily partitions under ``out_dir``.

    Args:
        source: CSV or parquet table.
        mapping_path: YAML column mapping.
        out_dir: Output folder, such as a workspace's ``data/raw``.
        overwrite: Replace ``out_dir`` if it exists and is not empty.
        source_label: Source path recorded in the manifest; default ``source``.
        mapping_label: Mapping path recorded in the manifest; default ``mapping_path``.

    Returns:
        The manifest written to ``out_dir/manifest.json``.

    Raises:
        IngestError: The mapping or the table is invalid, or ``out_dir`` is not empty
            and ``overwrite`` is False. ``out_dir`` is then left as it was.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise IngestError(
            f"output {out_dir} exists and is not a folder; choose another"
        )
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise IngestError(
            f"output folder {out_dir} is not empty; remove it or pass --overwrite"
        )
    mapping = load_mapping(mapping_path)
    table = read_source(source, mapping)
    frame = map_to_canonical(table, mapping, source_name=source.name)
    details = {
        "source_path": source_label or str(source),
        "source_format": source_format(source, mapping),
        "source_sha256": file_sha256(source),
        "mapping_path": mapping_label or str(mapping_path),
        "mapping_hash": mapping.content_hash(),
    }
    return write_partitions(frame, out_dir, details=details)
