"""Stage validate_raw: check raw transactions against the raw_transactions suite."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import polars as pl

from cardfraud import schema
from cardfraud.data import list_partitions
from cardfraud.params import ValidateRawParams
from cardfraud.paths import Workspace
from cardfraud.validation import (
    RAW_SUITE,
    ValidationReport,
    load_suite_document,
    raise_for_failures,
    raw_suite_parameters,
    validate_frame,
    write_report,
)

logger = logging.getLogger(__name__)


def read_partitions_in_order(raw_dir: Path) -> pl.DataFrame:
    """Read the raw partitions as stored: files in path order, rows in file order.

    Unlike ``cardfraud.data.read_transactions`` this neither sorts nor checks the
    schema, so that the suite receives nulls, repeated ids and rows out of time order
    as they are and reports them with examples.

    Raises:
        FileNotFoundError: ``raw_dir`` has no ``dt=YYYY-MM-DD`` parquet partition.
    """
    files = list_partitions(raw_dir)
    frame = pl.read_parquet(files, hive_partitioning=False)
    logger.info("read %d raw rows from %d files", frame.height, len(files))
    return frame


def validate(ws: Workspace, params: ValidateRawParams) -> ValidationReport:
    """Validate ``ws.raw_dir`` and write ``ws.validation_dir/raw_transactions.json``.

    Returns:
        The report, also when expectations failed.
    """
    transactions = read_partitions_in_order(ws.raw_dir)
    document = load_suite_document(RAW_SUITE)
    report = validate_frame(
        transactions, document, parameters=raw_suite_parameters(params)
    )
    write_report(report, ws.validation_dir)
    return report


def stop_on_failures(ws: Workspace, report: ValidationReport) -> dict[str, Any]:
    """Raise when the report has failures or a partition's dtypes break the schema.

    Returns:
        The stage summary, when everything passed.

    Raises:
        cardfraud.validation.DataValidationError: An expectation failed.
        cardfraud.schema.SchemaError: A partition file lacks a required column or
            has a column of another dtype than the canonical schema's.
    """
    raise_for_failures(report)
    for path in list_partitions(ws.raw_dir):
        # Nulls and repeated ids are the suite's job; an empty frame with the
        # file's schema checks the columns and dtypes without reading the rows.
        empty = pl.DataFrame(schema=pl.read_parquet_schema(path))
        try:
            schema.validate_frame(empty, require_labels=True)
        except schema.SchemaError as error:
            raise schema.SchemaError(f"{path}: {error}") from None
    return summarize(ws, report)


def run(ws: Workspace, params: ValidateRawParams) -> dict[str, Any]:
    """Validate the raw partitions, write the report, then stop on any failure.

    Raises:
        cardfraud.validation.DataValidationError: An expectation failed; the report
            is written first.
        cardfraud.schema.SchemaError: A partition's columns or dtypes break the
            canonical schema.
    """
    return stop_on_failures(ws, validate(ws, params))


def summarize(ws: Workspace, report: ValidationReport) -> dict[str, Any]:
    """Return the stage summary: suite, rows, expectation counts and report path."""
    path = ws.validation_dir / f"{report.suite}.json"
    return {
        "suite": report.suite,
        "rows": report.rows,
        "expectations": len(report.outcomes),
        "failed": len(report.failed),
        "report": str(path.relative_to(ws.root)),
    }
