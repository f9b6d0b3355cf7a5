"""Great Expectations suites: committed files reload whole; bad data fails by name."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from cardfraud.features import build_feature_table, feature_columns
from cardfraud.params import FeaturesParams, ValidateRawParams
from cardfraud.paths import Workspace
from cardfraud.schema import (
    CHANNELS,
    COLUMNS,
    REQUIRED_COLUMNS,
    SchemaError,
    polars_schema,
)
from cardfraud.stages import validate_raw
from cardfraud.validation import (
    FEATURES_SUITE,
    RAW_SUITE,
    DataValidationError,
    SuiteError,
    build_suite,
    check_not_null_coverage,
    expectations_dir,
    failure_table,
    load_suite_document,
    outcome_table,
    raise_for_failures,
    raw_suite_parameters,
    read_report,
    validate_frame,
    write_report,
)
from fraudgen.config import SCENARIOS

RAW_PARAMS = ValidateRawParams(
    prevalence_min=0.05, prevalence_max=0.15, max_amount_minor=5_000_000
)
FEATURE_PARAMS = FeaturesParams(windows_hours=[1, 24, 168, 720], label_delay_days=30)
START = datetime(2025, 3, 1, tzinfo=UTC)


def raw_frame(rows: int = 200) -> pl.DataFrame:
    """Valid raw transactions with a fraud share of exactly 10%."""
    frame = pl.DataFrame(
        {
            "transaction_id": [f"t{i:04d}" for i in range(rows)],
            "timestamp": [START + timedelta(minutes=7 * i) for i in range(rows)],
            "card_id": [f"c{i % 9}" for i in range(rows)],
            "customer_id": [f"u{i % 9}" for i in range(rows)],
            "merchant_id": [f"m{i % 5}" for i in range(rows)],
            "terminal_id": [None] * rows,
            "amount_minor": [100 + 37 * i for i in range(rows)],
            "currency": ["EUR"] * rows,
            "mcc": ["5411"] * rows,
            "channel": [CHANNELS[i % len(CHANNELS)] for i in range(rows)],
            "card_present": [i % 2 == 0 for i in range(rows)],
            "merchant_country": ["DE"] * rows,
            "card_country": ["DE"] * rows,
            "device_id": [None] * rows,
            "customer_lat": [52.5] * rows,
            "customer_lon": [13.4] * rows,
            "merchant_lat": [52.4] * rows,
            "merchant_lon": [13.3] * rows,
            "is_fraud": [i % 10 == 0 for i in range(rows)],
            "label_available_at": [
                START + timedelta(minutes=7 * i, days=20) if i % 10 == 0 else None
                for i in range(rows)
            ],
            "fraud_scenario": [
                "stolen_card_spree" if i % 10 == 0 else None for i in range(rows)
            ],
        }
    )
    return frame.cast(polars_schema())


def run_raw(frame: pl.DataFrame, params: ValidateRawParams = RAW_PARAMS):
    document = load_suite_document(RAW_SUITE)
    return validate_frame(frame, document, parameters=raw_suite_parameters(params))


def test_committed_suites_reload_every_expectation() -> None:
    for name, expected in ((RAW_SUITE, 24), (FEATURES_SUITE, 99)):
        document = load_suite_document(name)
        suite = build_suite(document)
        assert len(document["expectations"]) == expected, name
        assert len(suite.expectations) == expected, name
        names = [e.meta["name"] for e in suite.expectations]
        assert names == [item["name"] for item in document["expectations"]]


def test_raw_suite_keeps_same_type_pair() -> None:
    suite = build_suite(load_suite_document(RAW_SUITE))
    pairs = Counter(
        (e.expectation_type, getattr(e, "column", None)) for e in suite.expectations
    )
    assert pairs[("expect_column_values_to_be_between", "amount_minor")] == 2


def test_features_suite_keeps_same_type_pair() -> None:
    suite = build_suite(load_suite_document(FEATURES_SUITE))
    pairs = Counter(
        (e.expectation_type, getattr(e, "column", None)) for e in suite.expectations
    )
    rate = ("expect_column_values_to_be_between", "merchant_fraud_rate_30d")
    assert pairs[rate] == 2


def test_committed_suites_are_stable_json() -> None:
    for name in (RAW_SUITE, FEATURES_SUITE):
        path = expectations_dir() / f"{name}.json"
        text = path.read_text(encoding="utf-8")
        document = json.loads(text)
        assert json.dumps(document, indent=2) + "\n" == text
        assert '"id"' not in text
        assert "ge_cloud_id" not in text
        assert "great_expectations_version" not in text


def test_raw_suite_covers_schema() -> None:
    document = load_suite_document(RAW_SUITE)
    column_sets = [
        item["kwargs"]["column_set"]
        for item in document["expectations"]
        if item["type"] == "expect_table_columns_to_match_set"
    ]
    assert column_sets == [[column.name for column in COLUMNS]]
    check_not_null_coverage(document, [*REQUIRED_COLUMNS, "is_fraud"])


def test_features_suite_covers_default_features() -> None:
    document = load_suite_document(FEATURES_SUITE)
    check_not_null_coverage(document, feature_columns(FEATURE_PARAMS))


def test_features_suite_coverage_names_new_window() -> None:
    document = load_suite_document(FEATURES_SUITE)
    params = FeaturesParams(windows_hours=[2], label_delay_days=30)
    with pytest.raises(SuiteError, match="card_count_2h"):
        check_not_null_coverage(document, feature_columns(params))


def test_raw_valid_frame_passes() -> None:
    report = run_raw(raw_frame())
    assert report.success
    assert report.rows == 200
    assert len(report.outcomes) == 24
    raise_for_failures(report)


def failed_names(report) -> list[str]:
    return [outcome.name for outcome in report.failed]


def test_raw_null_required_column_fails() -> None:
    frame = raw_frame().with_columns(
        card_id=pl.when(pl.col("transaction_id") == "t0003")
        .then(None)
        .otherwise("card_id")
    )
    report = run_raw(frame)
    assert failed_names(report) == ["card_id_not_null"]
    outcome = report.failed[0]
    assert outcome.column == "card_id"
    assert outcome.unexpected_count == 1


def test_raw_amount_out_of_range_fails() -> None:
    frame = raw_frame().with_columns(
        amount_minor=pl.when(pl.col("transaction_id") == "t0004")
        .then(5_000_001)
        .when(pl.col("transaction_id") == "t0005")
        .then(0)
        .otherwise("amount_minor")
    )
    report = run_raw(frame)
    assert failed_names(report) == [
        "amount_minor_at_least_one",
        "amount_minor_at_most_max",
    ]
    low, high = report.failed
    assert low.examples == [0]
    assert high.examples == [5_000_001]
    assert high.unexpected_count == 1


def test_raw_duplicated_id_fails() -> None:
    frame = raw_frame().with_columns(
        transaction_id=pl.when(pl.col("transaction_id") == "t0007")
        .then(pl.lit("t0006"))
        .otherwise("transaction_id")
    )
    report = run_raw(frame)
    assert failed_names(report) == ["transaction_id_unique"]
    assert report.failed[0].unexpected_count == 2
    assert report.failed[0].examples == ["t0006", "t0006"]


def test_raw_prevalence_outside_band_fails() -> None:
    params = ValidateRawParams(
        prevalence_min=0.001, prevalence_max=0.004, max_amount_minor=5_000_000
    )
    report = run_raw(raw_frame(), params)
    assert failed_names(report) == ["fraud_prevalence_in_band"]
    assert report.failed[0].observed_value == pytest.approx(0.1)


def test_raw_unknown_channel_fails() -> None:
    frame = raw_frame().with_columns(
        channel=pl.when(pl.col("transaction_id") == "t0001")
        .then(pl.lit("telepathy"))
        .otherwise("channel")
    )
    report = run_raw(frame)
    assert failed_names(report) == ["channel_allowed"]
    assert report.failed[0].examples == ["telepathy"]


def test_failure_raises_readable_error(tmp_path: Path) -> None:
    frame = raw_frame().with_columns(amount_minor=pl.lit(0, dtype=pl.Int64))
    report = run_raw(frame)
    path = write_report(report, tmp_path)
    written = json.loads(path.read_text(encoding="utf-8"))
    assert path.name == "raw_transactions.json"
    assert written["success"] is False
    assert written["failed"] == ["amount_minor_at_least_one"]
    with pytest.raises(DataValidationError) as caught:
        raise_for_failures(report)
    message = str(caught.value)
    assert "amount_minor_at_least_one" in message
    assert "200 unexpected" in message


def test_missing_parameter_is_named() -> None:
    document = load_suite_document(RAW_SUITE)
    with pytest.raises(SuiteError, match="prevalence_max"):
        validate_frame(
            raw_frame(),
            document,
            parameters={"max_amount_minor": 10, "prevalence_min": 0.0},
        )


def test_features_suite_fails_on_null_feature() -> None:
    table = build_feature_table(raw_frame(), FEATURE_PARAMS)
    document = load_suite_document(FEATURES_SUITE)
    assert validate_frame(
        table, document, parameters={"min_non_null_share": 1.0}
    ).success
    broken = table.with_columns(
        merchant_fraud_rate_30d=pl.when(pl.col("transaction_id") == "t0002")
        .then(None)
        .otherwise("merchant_fraud_rate_30d")
    )
    report = validate_frame(broken, document, parameters={"min_non_null_share": 1.0})
    assert failed_names(report) == ["merchant_fraud_rate_30d_not_null"]
    lenient = validate_frame(broken, document, parameters={"min_non_null_share": 0.99})
    assert lenient.success


def test_raw_suite_scenarios_match_generator() -> None:
    document = load_suite_document(RAW_SUITE)
    (entry,) = [
        item
        for item in document["expectations"]
        if item["name"] == "fraud_scenario_allowed"
    ]
    assert entry["kwargs"]["value_set"] == list(SCENARIOS)


def test_raw_unknown_scenario_fails() -> None:
    frame = raw_frame().with_columns(
        fraud_scenario=pl.when(pl.col("transaction_id") == "t0010")
        .then(pl.lit("phishing"))
        .otherwise("fraud_scenario")
    )
    report = run_raw(frame)
    assert failed_names(report) == ["fraud_scenario_allowed"]
    assert report.failed[0].examples == ["phishing"]


def test_raw_timestamp_out_of_order_fails() -> None:
    frame = raw_frame()
    swapped = pl.concat([frame.slice(0, 5), frame.slice(6, 1), frame.slice(5, 1)])
    frame = pl.concat([swapped, frame.slice(7)])
    report = run_raw(frame)
    assert failed_names(report) == ["timestamp_in_partition_order"]
    outcome = report.failed[0]
    assert outcome.column == "timestamp"
    assert outcome.unexpected_count == 1
    assert outcome.examples == ["2025-03-01 00:35:00+00:00"]


def test_raw_tied_timestamps_pass() -> None:
    frame = raw_frame().with_columns(
        timestamp=pl.when(pl.col("transaction_id") == "t0003")
        .then(pl.col("timestamp").shift(1))
        .otherwise("timestamp")
    )
    assert run_raw(frame).success


def test_raw_label_before_transaction_fails() -> None:
    frame = raw_frame().with_columns(
        label_available_at=pl.when(pl.col("transaction_id") == "t0020")
        .then(pl.col("timestamp") - timedelta(seconds=1))
        .otherwise("label_available_at")
    )
    report = run_raw(frame)
    assert failed_names(report) == ["label_available_at_not_before_timestamp"]
    outcome = report.failed[0]
    assert outcome.column == "label_available_at, timestamp"
    assert outcome.unexpected_count == 1


def test_raw_label_at_transaction_time_passes() -> None:
    frame = raw_frame().with_columns(
        label_available_at=pl.when(pl.col("is_fraud"))
        .then(pl.col("timestamp"))
        .otherwise(None)
    )
    assert run_raw(frame).success


def test_raw_latitude_out_of_range_fails() -> None:
    frame = raw_frame().with_columns(
        merchant_lat=pl.when(pl.col("transaction_id") == "t0008")
        .then(91.0)
        .otherwise("merchant_lat")
    )
    report = run_raw(frame)
    assert failed_names(report) == ["merchant_lat_range"]
    assert report.failed[0].examples == [91.0]


def test_report_lists_outcomes_in_suite_order() -> None:
    frame = raw_frame().with_columns(
        amount_minor=pl.lit(0, dtype=pl.Int64), channel=pl.lit("telepathy")
    )
    report = run_raw(frame)
    document = load_suite_document(RAW_SUITE)
    assert [outcome.name for outcome in report.outcomes] == [
        item["name"] for item in document["expectations"]
    ]
    assert failed_names(report) == ["amount_minor_at_least_one", "channel_allowed"]


def test_report_failure_rows_are_readable(tmp_path: Path) -> None:
    frame = raw_frame().with_columns(
        card_id=pl.when(pl.col("transaction_id").is_in(["t0003", "t0009"]))
        .then(None)
        .otherwise("card_id")
    )
    report = run_raw(frame, RAW_PARAMS.model_copy(update={"prevalence_max": 0.08}))
    rows = report.failure_rows()
    assert [row["expectation"] for row in rows] == [
        "card_id_not_null",
        "fraud_prevalence_in_band",
    ]
    assert rows[0]["column"] == "card_id"
    assert rows[0]["unexpected_rows"] == 2
    assert rows[0]["examples"] == [None, None]
    assert rows[1]["unexpected_rows"] is None
    assert rows[1]["observed"] == pytest.approx(0.1)
    assert report.result_row() == {
        "suite": "raw_transactions",
        "result": "failed",
        "rows": 200,
        "expectations": 24,
        "failed": 2,
    }
    path = write_report(report, tmp_path)
    assert json.loads(path.read_text(encoding="utf-8"))["failures"] == rows
    assert read_report(path) == report


def write_partitions_as_given(frame: pl.DataFrame, raw_dir: Path) -> None:
    """Write one file per UTC day, keeping the frame's row order inside each file."""
    days = frame.with_columns(_day=pl.col("timestamp").dt.date())
    for (day,), part in days.partition_by(
        "_day", as_dict=True, maintain_order=True
    ).items():
        folder = raw_dir / f"dt={day:%Y-%m-%d}"
        folder.mkdir(parents=True)
        part.drop("_day").write_parquet(folder / "part-0.parquet")


def test_stage_reports_null_before_schema_check(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    frame = raw_frame().with_columns(
        card_id=pl.when(pl.col("transaction_id") == "t0150")
        .then(None)
        .otherwise("card_id")
    )
    write_partitions_as_given(frame, ws.raw_dir)
    with pytest.raises(DataValidationError, match="card_id_not_null") as caught:
        validate_raw.run(ws, RAW_PARAMS)
    assert caught.value.report.failed[0].unexpected_count == 1
    written = json.loads(
        (ws.validation_dir / "raw_transactions.json").read_text(encoding="utf-8")
    )
    assert written["failed"] == ["card_id_not_null"]


def test_stage_reports_order_within_partition(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    frame = raw_frame()
    write_partitions_as_given(
        pl.concat([frame.slice(1, 1), frame.slice(0, 1), frame.slice(2)]), ws.raw_dir
    )
    with pytest.raises(DataValidationError, match="timestamp_in_partition_order"):
        validate_raw.run(ws, RAW_PARAMS)


def test_stage_passes_valid_partitions(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    write_partitions_as_given(raw_frame(), ws.raw_dir)
    summary = validate_raw.run(ws, RAW_PARAMS)
    assert summary == {
        "suite": "raw_transactions",
        "rows": 200,
        "expectations": 24,
        "failed": 0,
        "report": "data/validation/raw_transactions.json",
    }


def test_stage_rejects_wrong_dtype_after_suite(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    frame = raw_frame().with_columns(
        card_present=pl.when(pl.col("card_present"))
        .then(pl.lit("Y"))
        .otherwise(pl.lit("N"))
    )
    write_partitions_as_given(frame, ws.raw_dir)
    with pytest.raises(SchemaError, match="column 'card_present' has dtype String"):
        validate_raw.run(ws, RAW_PARAMS)
    written = read_report(ws.validation_dir / "raw_transactions.json")
    assert written.success


def test_failure_table_lists_failures() -> None:
    frame = raw_frame().with_columns(
        amount_minor=pl.when(pl.col("transaction_id") == "t0004")
        .then(5_000_001)
        .otherwise("amount_minor")
    )
    table = failure_table(run_raw(frame))
    assert list(table.index) == ["amount_minor_at_most_max"]
    row = table.loc["amount_minor_at_most_max"]
    assert row["column"] == "amount_minor"
    assert row["unexpected_rows"] == 1
    assert row["examples"] == "5000001"
    assert row["type"] == "expect_column_values_to_be_between"


def test_failure_table_without_failures_says_passed() -> None:
    table = failure_table(run_raw(raw_frame()))
    assert list(table.index) == ["none failed"]
    assert table.loc["none failed", "observed"] == (
        "all 24 expectations passed on 200 rows"
    )


def test_outcome_table_has_every_expectation() -> None:
    table = outcome_table(run_raw(raw_frame()))
    document = load_suite_document(RAW_SUITE)
    assert list(table.index) == [item["name"] for item in document["expectations"]]
    assert table["success"].all()
    assert table.loc["label_available_at_not_before_timestamp", "column"] == (
        "label_available_at, timestamp"
    )
