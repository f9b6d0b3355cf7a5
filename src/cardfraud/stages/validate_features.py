"""Stage validate_features: check the feature table against the features suite."""

from __future__ import annotations

import json
import logging
from typing import Any

import polars as pl

from cardfraud.params import ValidateFeaturesParams
from cardfraud.paths import Workspace
from cardfraud.stages.build_features import FEATURES_FILE, SPEC_FILE
from cardfraud.stages.validate_raw import summarize
from cardfraud.validation import (
    FEATURES_SUITE,
    ValidationReport,
    check_not_null_coverage,
    features_suite_parameters,
    load_suite_document,
    raise_for_failures,
    validate_frame,
    write_report,
)

logger = logging.getLogger(__name__)


def validate(ws: Workspace, params: ValidateFeaturesParams) -> ValidationReport:
    """Validate the feature table and write ``ws.validation_dir/features.json``.

    Returns:
        The report, also when expectations failed.

    Raises:
        cardfraud.validation.SuiteError: The suite lacks a not-null expectation for
            a feature of ``feature_spec.json``.
    """
    spec = json.loads((ws.features_dir / SPEC_FILE).read_text(encoding="utf-8"))
    document = load_suite_document(FEATURES_SUITE)
    check_not_null_coverage(document, spec["feature_columns"])
    table = pl.read_parquet(ws.features_dir / FEATURES_FILE)
    report = validate_frame(
        table, document, parameters=features_suite_parameters(params)
    )
    write_report(report, ws.validation_dir)
    return report


def stop_on_failures(ws: Workspace, report: ValidationReport) -> dict[str, Any]:
    """Raise DataValidationError when the report has failures, else summarize it."""
    raise_for_failures(report)
    return summarize(ws, report)


def run(ws: Workspace, params: ValidateFeaturesParams) -> dict[str, Any]:
    """Validate the feature table, write the report, then stop on any failure.

    Raises:
        cardfraud.validation.SuiteError: The suite lacks a not-null expectation for
            a feature of ``feature_spec.json``.
        cardfraud.validation.DataValidationError: An expectation failed; the report
            is written first.
    """
    return stop_on_failures(ws, validate(ws, params))
