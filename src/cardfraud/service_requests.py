"""Request bodies of the scoring service and the 4xx errors that name their fields.

A scoring request is one transaction in the canonical schema
(``cardfraud.schema.build_request_model``) whose currency must also be an active
ISO 4217 code. A validation failure becomes a list of problems, each naming the
field, what was wrong and what to send instead.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from typing import Any

import polars as pl
from pydantic import BaseModel, ValidationError, create_model, field_validator

from cardfraud.schema import (
    CHANNELS,
    COLUMN_BY_NAME,
    COLUMNS,
    MAX_REQUEST_AMOUNT_MINOR,
    UTC_DATETIME,
    build_request_model,
)

# Active ISO 4217 codes of currencies that card payments use (funds, precious metals
# and test codes left out), as published by the ISO 4217 maintenance agency.
# fmt: off
ISO_4217_CODES = frozenset((
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD",
    "BDT", "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN",
    "BZD", "CAD", "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF",
    "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS",
    "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR",
    "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW",
    "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA",
    "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MYR", "MZN", "NAD",
    "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN",
    "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD",
    "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT",
    "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS", "VES",
    "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
))
# fmt: on


class RequestError(ValueError):
    """A request body that cannot be scored.

    Attributes:
        status: HTTP status to return (400, 413 or 422).
        problems: ``{"field", "message", "fix"}`` per problem.
    """

    def __init__(self, status: int, problems: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{p['field']}: {p['message']}" for p in problems))
        self.status = status
        self.problems = problems

    def to_json(self) -> dict[str, Any]:
        """Return the error body."""
        first = self.problems[0]
        return {
            "error": f"{first['field']}: {first['message']}",
            "problems": self.problems,
        }


def _known_currency(value: str) -> str:
    if value not in ISO_4217_CODES:
        raise ValueError("is not an active ISO 4217 currency code")
    return value


def build_transaction_model() -> type[BaseModel]:
    """Return the canonical request model with the currency checked against ISO 4217."""
    base = build_request_model()
    return create_model(
        "TransactionRequest",
        __base__=base,
        __doc__=base.__doc__,
        __validators__={
            "known_currency": field_validator("currency")(_known_currency),
        },
    )


def expected_value(field: str) -> str:
    """Describe what a field must contain, for error messages."""
    hints = {
        "transaction_id": "a non-empty string of at most 128 characters",
        "timestamp": "an ISO 8601 string with a UTC offset, e.g. "
        "2025-03-01T12:00:00Z, between 1970 and 2100",
        "amount_minor": "a positive integer in minor units (1250 for 12.50), at "
        f"most {MAX_REQUEST_AMOUNT_MINOR:,}",
        "currency": "an active ISO 4217 code in capitals, e.g. EUR",
        "mcc": "a four-digit merchant category code as a string, e.g. '5411'",
        "channel": f"one of {', '.join(CHANNELS)}",
        "card_present": "true or false",
        "merchant_country": "an ISO 3166-1 alpha-2 code in capitals, e.g. DE",
        "card_country": "an ISO 3166-1 alpha-2 code in capitals, e.g. DE",
        "customer_lat": "a finite latitude in degrees, -90 to 90",
        "merchant_lat": "a finite latitude in degrees, -90 to 90",
        "customer_lon": "a finite longitude in degrees, -180 to 180",
        "merchant_lon": "a finite longitude in degrees, -180 to 180",
    }
    return hints.get(field, "a non-empty string of at most 128 characters")


def problems_from_validation(
    error: ValidationError, *, prefix: tuple[Any, ...] = ()
) -> list[dict[str, str]]:
    """Turn pydantic errors into problems that name the field and the fix."""
    problems = []
    for item in error.errors(include_url=False):
        location = [*prefix, *item["loc"]]
        field = ".".join(str(part) for part in location) or "body"
        name = str(item["loc"][-1]) if item["loc"] else ""
        problems.append(
            {
                "field": field,
                "message": _message(item),
                "fix": _fix(item["type"], name),
            }
        )
    return problems


def _message(item: dict[str, Any]) -> str:
    message = str(item["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    value = item.get("input")
    if item["type"] == "missing" or isinstance(value, dict | list):
        return message
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{message} (got {shown})"


def _fix(error_type: str, name: str) -> str:
    if error_type == "missing":
        column = COLUMN_BY_NAME.get(name)
        what = column.description if column is not None else "this field"
        return f"add {name} ({what}): {expected_value(name)}"
    if error_type == "extra_forbidden":
        known = ", ".join(c.name for c in COLUMNS if not c.is_label)
        return f"remove {name}: it is not a request field; the fields are {known}"
    return f"send {name} as {expected_value(name)}"


def parse_json_body(body: bytes, *, max_bytes: int) -> Any:
    """Parse a JSON request body.

    The non-standard literals NaN and Infinity, and numbers too large for a float
    such as 1e309, are read as non-finite floats, so that validation rejects them
    with the name of their field.

    Raises:
        RequestError: 413 when the body exceeds ``max_bytes``; 400 when it is not
            valid UTF-8 JSON, nests too deeply or repeats a key in one object.
    """
    check_size(body, max_bytes=max_bytes)
    try:
        return json.loads(body, object_pairs_hook=_unique_keys)
    except DuplicateKeyError as error:
        raise RequestError(
            400,
            [
                {
                    "field": error.key,
                    "message": f"key {error.key!r} appears more than once in one "
                    "JSON object",
                    "fix": f"send {error.key} once",
                }
            ],
        ) from None
    except RecursionError:
        raise RequestError(
            400,
            [
                {
                    "field": "body",
                    "message": "JSON nested too deeply to parse",
                    "fix": "send one flat JSON object of the documented fields",
                }
            ],
        ) from None
    except (UnicodeDecodeError, ValueError) as error:
        position = getattr(error, "pos", None)
        where = f" at character {position}" if position is not None else ""
        raise RequestError(
            400,
            [
                {
                    "field": "body",
                    "message": f"malformed JSON{where}: {error}",
                    "fix": "send one JSON object encoded as UTF-8, with numbers "
                    "written as finite decimals",
                }
            ],
        ) from None


CSV_MEDIA_TYPES = ("text/csv", "application/csv")
"""Content types read as CSV on ``/invocations``."""


def media_type(content_type: str | None) -> str:
    """Return a Content-Type header's media type in lower case, without parameters."""
    return (content_type or "").split(";")[0].strip().lower()


def is_csv(content_type: str | None) -> bool:
    """Return True when a Content-Type header names one of ``CSV_MEDIA_TYPES``."""
    return media_type(content_type) in CSV_MEDIA_TYPES


def check_json_content_type(content_type: str | None) -> None:
    """Raise a 415 ``RequestError`` unless the body is declared JSON or undeclared."""
    media = media_type(content_type)
    if media in ("", "application/json") or media.endswith("+json"):
        return
    raise RequestError(
        415,
        [
            {
                "field": "Content-Type",
                "message": f"unsupported content type {content_type!r}",
                "fix": "send the body as application/json",
            }
        ],
    )


class DuplicateKeyError(ValueError):
    """A JSON object names one key twice."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"duplicate key {key!r}")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKeyError(key)
        result[key] = value
    return result


def check_size(body: bytes, *, max_bytes: int) -> None:
    """Raise a 413 RequestError when ``body`` is longer than ``max_bytes``."""
    if len(body) > max_bytes:
        raise RequestError(
            413,
            [
                {
                    "field": "body",
                    "message": f"body of {len(body):,} bytes exceeds the limit of "
                    f"{max_bytes:,} bytes",
                    "fix": "split the request (CARDFRAUD_MAX_BODY_BYTES sets the "
                    "limit)",
                }
            ],
        )


def validate_transaction(
    model: type[BaseModel], value: Any, *, prefix: tuple[Any, ...] = ()
) -> dict[str, Any]:
    """Validate one transaction; return its fields without the omitted ones.

    Raises:
        RequestError: 422 naming every invalid field.
    """
    if not isinstance(value, dict):
        field = ".".join(str(part) for part in prefix) or "body"
        raise RequestError(
            422,
            [
                {
                    "field": field,
                    "message": f"expected a JSON object, got {type(value).__name__}",
                    "fix": "send the transaction as an object of canonical fields",
                }
            ],
        )
    loose = _loosely_typed(value, prefix=prefix)
    if loose:
        raise RequestError(422, loose)
    try:
        parsed = model.model_validate(value)
    except ValidationError as error:
        raise RequestError(
            422, problems_from_validation(error, prefix=prefix)
        ) from None
    return parsed.model_dump(exclude_none=True)


NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
"""A decimal number written in ASCII digits, as a CSV cell or a JSON string."""


def _loosely_typed(value: dict[str, Any], *, prefix: tuple[Any, ...]) -> list[dict]:
    """Return a problem for each value that pydantic would coerce from another type.

    Coordinates must be JSON numbers, not booleans or strings, and a timestamp must
    not be a number written as a string, which pydantic reads as Unix time.
    """
    problems = []
    for name, item in value.items():
        column = COLUMN_BY_NAME.get(name)
        if column is None or item is None:
            continue
        wrong_number = column.dtype == pl.Float64() and (
            isinstance(item, bool) or not isinstance(item, int | float)
        )
        numeric_time = (
            column.dtype == UTC_DATETIME
            and isinstance(item, str)
            and NUMBER_TEXT.fullmatch(item.strip()) is not None
        )
        if wrong_number or numeric_time:
            field = ".".join(str(part) for part in (*prefix, name))
            problems.append(
                {
                    "field": field,
                    "message": f"{item!r} is not {expected_value(name)}",
                    "fix": f"send {name} as {expected_value(name)}",
                }
            )
    return problems


def validate_batch(
    model: type[BaseModel], value: Any, *, max_batch: int, field: str = "transactions"
) -> list[dict[str, Any]]:
    """Validate ``{"transactions": [...]}`` with at most ``max_batch`` items.

    Raises:
        RequestError: 413 for too many items, 422 for a wrong shape or field.
    """
    items = value.get(field) if isinstance(value, dict) else None
    if not isinstance(items, list) or not items:
        raise RequestError(
            422,
            [
                {
                    "field": field,
                    "message": "missing, empty or not a list",
                    "fix": f'send {{"{field}": [transaction, ...]}} with 1 to '
                    f"{max_batch} transactions",
                }
            ],
        )
    extra = sorted(set(value) - {field})
    if extra:
        raise RequestError(
            422,
            [
                {
                    "field": extra[0],
                    "message": "unexpected field",
                    "fix": f"send only {field}",
                }
            ],
        )
    if len(items) > max_batch:
        raise RequestError(
            413,
            [
                {
                    "field": field,
                    "message": f"{len(items)} transactions exceed the limit of "
                    f"{max_batch}",
                    "fix": f"send at most {max_batch} transactions per request "
                    "(CARDFRAUD_MAX_BATCH sets the limit)",
                }
            ],
        )
    problems: list[dict[str, str]] = []
    transactions = []
    for index, item in enumerate(items):
        try:
            transactions.append(
                validate_transaction(model, item, prefix=(field, index))
            )
        except RequestError as error:
            problems.extend(error.problems)
    if problems:
        raise RequestError(422, problems)
    return transactions


@dataclass(frozen=True)
class InvocationRequest:
    """A parsed SageMaker invocation: transactions to score or an id to explain."""

    transactions: list[dict[str, Any]]
    explain_id: str | None = None


def parse_invocation(
    model: type[BaseModel],
    body: bytes,
    content_type: str,
    *,
    max_batch: int,
    max_bytes: int,
) -> InvocationRequest:
    """Parse a ``POST /invocations`` body.

    JSON bodies are ``{"transaction": {...}}`` to score or ``{"explanation":
    {"transaction_id": "..."}}`` to explain. CSV bodies have a header row of
    canonical column names and one transaction per row, at most ``max_batch``.

    Raises:
        RequestError: 415 for another content type, else as the parsers above.
    """
    if is_csv(content_type):
        return InvocationRequest(
            parse_csv(model, body, max_batch=max_batch, max_bytes=max_bytes)
        )
    if media_type(content_type) not in ("application/json", ""):
        raise RequestError(
            415,
            [
                {
                    "field": "Content-Type",
                    "message": f"unsupported content type {content_type!r}",
                    "fix": "send application/json or text/csv",
                }
            ],
        )
    value = parse_json_body(body, max_bytes=max_bytes)
    keys = sorted(value) if isinstance(value, dict) else []
    if keys == ["transaction"]:
        return InvocationRequest(
            [validate_transaction(model, value["transaction"], prefix=("transaction",))]
        )
    if keys == ["explanation"]:
        return InvocationRequest([], explain_id=_explain_id(value["explanation"]))
    raise RequestError(
        422,
        [
            {
                "field": "body",
                "message": f"expected one key, transaction or explanation; got {keys}",
                "fix": 'send {"transaction": {...}} to score or {"explanation": '
                '{"transaction_id": "..."}} to explain',
            }
        ],
    )


def _explain_id(value: Any) -> str:
    transaction_id = value.get("transaction_id") if isinstance(value, dict) else None
    if not isinstance(transaction_id, str) or not 0 < len(transaction_id) <= 128:
        raise RequestError(
            422,
            [
                {
                    "field": "explanation.transaction_id",
                    "message": "missing or not a string of 1 to 128 characters",
                    "fix": 'send {"explanation": {"transaction_id": "..."}}',
                }
            ],
        )
    return transaction_id


def parse_csv(
    model: type[BaseModel], body: bytes, *, max_batch: int, max_bytes: int
) -> list[dict[str, Any]]:
    """Parse CSV rows of canonical columns into validated transactions.

    Empty cells are omitted fields. Integers, booleans (true/false) and floats are
    converted by the column's dtype before validation.

    Raises:
        RequestError: 400 for undecodable text or no rows, 413 for more than
            ``max_batch`` rows, 422 naming the row and field of a bad value.
    """
    check_size(body, max_bytes=max_bytes)
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise RequestError(
            400,
            [
                {
                    "field": "body",
                    "message": f"CSV is not UTF-8: {error}",
                    "fix": "encode the CSV as UTF-8",
                }
            ],
        ) from None
    header, rows = _read_csv(text)
    unknown = [name for name in header if name not in COLUMN_BY_NAME]
    if not header or unknown:
        raise RequestError(
            422,
            [
                {
                    "field": unknown[0] if unknown else "header",
                    "message": "unknown column" if unknown else "no header row",
                    "fix": "start with a header row of canonical column names",
                }
            ],
        )
    if not rows:
        raise RequestError(
            400,
            [
                {
                    "field": "body",
                    "message": "no data rows after the header",
                    "fix": "send one transaction per row",
                }
            ],
        )
    if len(rows) > max_batch:
        raise RequestError(
            413,
            [
                {
                    "field": "body",
                    "message": f"{len(rows)} rows exceed the limit of {max_batch}",
                    "fix": f"send at most {max_batch} rows per request",
                }
            ],
        )
    transactions = []
    problems: list[dict[str, str]] = []
    for index, row in enumerate(rows, start=1):
        try:
            values = _convert_row(row, row_number=index)
            transactions.append(
                validate_transaction(model, values, prefix=(f"row {index}",))
            )
        except RequestError as error:
            problems.extend(error.problems)
    if problems:
        raise RequestError(422, problems)
    return transactions


def _read_csv(text: str) -> tuple[list[str], list[dict[str, Any]]]:
    """Return the header and the rows of a CSV text.

    Raises:
        RequestError: 400 when the csv module cannot parse the text, for example
            an unterminated quote or a stray carriage return.
    """
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        return list(reader.fieldnames or []), list(reader)
    except csv.Error as error:
        raise RequestError(
            400,
            [
                {
                    "field": "body",
                    "message": f"malformed CSV on line {reader.line_num}: {error}",
                    "fix": "send CSV as RFC 4180 describes: a header row, then one "
                    "row per transaction, fields with line breaks in double quotes",
                }
            ],
        ) from None


def _convert_row(row: dict[str, Any], *, row_number: int) -> dict[str, Any]:
    import polars as pl

    converted: dict[str, Any] = {}
    for name, text in row.items():
        if name is None or text is None or text == "":
            if name is None:
                raise RequestError(
                    422,
                    [
                        {
                            "field": f"row {row_number}",
                            "message": "more cells than header columns",
                            "fix": "give every row as many cells as the header",
                        }
                    ],
                )
            continue
        dtype = COLUMN_BY_NAME[name].dtype
        try:
            if dtype in (pl.Int64(), pl.Float64()) and not NUMBER_TEXT.fullmatch(text):
                raise ValueError(text)
            if dtype == pl.Int64():
                converted[name] = int(text)
            elif dtype == pl.Boolean():
                converted[name] = {"true": True, "false": False}[text.lower()]
            elif dtype == pl.Float64():
                converted[name] = float(text)
            else:
                converted[name] = text
        except (KeyError, ValueError):
            raise RequestError(
                422,
                [
                    {
                        "field": f"row {row_number}.{name}",
                        "message": f"cannot read {text!r}",
                        "fix": f"send {name} as {expected_value(name)}",
                    }
                ],
            ) from None
    return converted
