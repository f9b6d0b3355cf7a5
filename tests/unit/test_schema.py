from datetime import UTC, datetime

import polars as pl
import pytest
from pydantic import ValidationError

from cardfraud.schema import (
    COLUMNS,
    REQUIRED_COLUMNS,
    SchemaError,
    build_request_model,
    polars_schema,
    validate_frame,
)


def make_frame(rows: int = 3) -> pl.DataFrame:
    base = datetime(2025, 1, 1, tzinfo=UTC)
    return pl.DataFrame(
        {
            "transaction_id": [f"t{i}" for i in range(rows)],
            "timestamp": [base] * rows,
            "card_id": ["c1"] * rows,
            "merchant_id": ["m1"] * rows,
            "amount_minor": [1250] * rows,
            "currency": ["EUR"] * rows,
            "is_fraud": [False] * rows,
        },
        schema_overrides={"timestamp": pl.Datetime("us", "UTC")},
    )


def test_validate_frame_orders_columns_and_drops_extras():
    frame = make_frame().with_columns(pl.lit(1).alias("extra")).reverse()
    result = validate_frame(frame.select(reversed(frame.columns)), require_labels=True)
    assert result.columns == [
        "transaction_id",
        "timestamp",
        "card_id",
        "merchant_id",
        "amount_minor",
        "currency",
        "is_fraud",
    ]


def test_validate_frame_missing_column_named():
    with pytest.raises(SchemaError, match=r"\['amount_minor'\]"):
        validate_frame(make_frame().drop("amount_minor"))


def test_validate_frame_missing_label_when_required():
    with pytest.raises(SchemaError, match="is_fraud"):
        validate_frame(make_frame().drop("is_fraud"), require_labels=True)


def test_validate_frame_float_amount_rejected():
    frame = make_frame().with_columns(pl.col("amount_minor").cast(pl.Float64))
    with pytest.raises(SchemaError, match="'amount_minor' has dtype Float64"):
        validate_frame(frame)


def test_validate_frame_naive_timestamp_rejected():
    frame = make_frame().with_columns(pl.col("timestamp").dt.replace_time_zone(None))
    with pytest.raises(SchemaError, match="'timestamp'"):
        validate_frame(frame)


def test_validate_frame_null_in_required_column():
    frame = make_frame().with_columns(
        pl.when(pl.col("transaction_id") == "t1")
        .then(None)
        .otherwise(pl.col("card_id"))
        .alias("card_id")
    )
    with pytest.raises(SchemaError, match="'card_id' has 1 null"):
        validate_frame(frame)


def test_validate_frame_duplicated_id():
    frame = make_frame().with_columns(pl.lit("same").alias("transaction_id"))
    with pytest.raises(SchemaError, match="3 duplicated"):
        validate_frame(frame)


def test_polars_schema_matches_columns():
    schema = polars_schema()
    assert list(schema) == [column.name for column in COLUMNS]
    assert schema["amount_minor"] == pl.Int64()
    assert schema["timestamp"] == pl.Datetime("us", "UTC")


REQUEST = {
    "transaction_id": "t1",
    "timestamp": "2025-03-01T12:00:00+00:00",
    "card_id": "c1",
    "merchant_id": "m1",
    "amount_minor": 1999,
    "currency": "EUR",
}


def test_request_model_has_every_non_label_column():
    model = build_request_model()
    expected = [column.name for column in COLUMNS if not column.is_label]
    assert list(model.model_fields) == expected
    required = [
        name for name, field in model.model_fields.items() if field.is_required()
    ]
    assert required == list(REQUIRED_COLUMNS)


def test_request_model_accepts_minimal_transaction():
    parsed = build_request_model().model_validate(REQUEST)
    assert parsed.amount_minor == 1999
    assert parsed.timestamp.utcoffset().total_seconds() == 0


def test_request_model_converts_offset_to_utc():
    body = {**REQUEST, "timestamp": "2025-03-01T13:00:00+01:00", "mcc": "5411"}
    parsed = build_request_model().model_validate(body)
    assert parsed.timestamp == datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    assert parsed.timestamp.tzinfo == UTC
    assert parsed.mcc == "5411"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timestamp", "2025-03-01T12:00:00"),
        ("amount_minor", -5),
        ("amount_minor", 12.5),
        ("amount_minor", "100"),
        ("currency", "euro"),
        ("channel", "telepathy"),
        ("card_present", "yes"),
        ("merchant_lat", 91.0),
        ("timestamp", "0001-01-01T00:30:00+01:00"),
        ("timestamp", "9999-12-31T23:30:00-01:00"),
        ("timestamp", "2101-01-01T00:00:00Z"),
        ("timestamp", 1748781000),
        ("mcc", "²²²²"),
        ("mcc", "541"),
    ],
)
def test_request_model_rejects_bad_field(field, value):
    with pytest.raises(ValidationError) as caught:
        build_request_model().model_validate({**REQUEST, field: value})
    assert caught.value.errors()[0]["loc"] == (field,)


def test_request_model_rejects_unknown_field():
    with pytest.raises(ValidationError) as caught:
        build_request_model().model_validate({**REQUEST, "amount": 10})
    assert caught.value.errors()[0]["loc"] == ("amount",)


def test_request_model_rejects_huge_float_amount():
    body = (
        '{"transaction_id": "t", "timestamp": "2025-03-01T12:00:00Z", "card_id": "c",'
    )
    body += ' "merchant_id": "m", "amount_minor": 1e309, "currency": "EUR"}'
    with pytest.raises(ValidationError) as caught:
        build_request_model().model_validate_json(body)
    assert caught.value.errors()[0]["loc"] == ("amount_minor",)
