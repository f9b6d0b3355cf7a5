"""Stage validate_raw: check raw transactions against the raw_transactions suite."""

from __future__ import annotations

import logging
from typing import Any

from cardfraud.data import read_transactions
from cardfraud.params import ValidateRawParams
from cardfraud.paths import Workspace
from cardfraud.validation import (
    RAW_SUITE,
    load_suite_document,
    raise_for_failures,
    raw_suite_parameters,
    validate_frame,
    write_report,
)

logger = logging.getLogger(__name__)


def run(ws: Workspace, params: ValidateRawParams) -> dict[str, Any]:
    """Validate ``ws.raw_dir`` and write ``ws.validation_dir/raw_transactions.json``.

    Raises:
        cardfraud.validation.DataValidationError: An expectation failed; the report
            is written first.
        cardfraud.schema.SchemaError: The raw data breaks the canonical schema.
    """
    transactions = read_transactions(ws.raw_dir)
    document = load_suite_document(RAW_SUITE)
    report = validate_frame(
        transactions, document, parameters=raw_suite_parameters(params)
    )
    path = write_report(report, ws.validation_dir)
    raise_for_failures(report)
    return {
        "suite": report.suite,
        "rows": report.rows,
        "expectations": len(report.outcomes),
        "failed": len(report.failed),
        "report": str(path.relative_to(ws.root)),
    }
