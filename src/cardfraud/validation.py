"""Data validation with Great Expectations 1.x against suites committed as JSON.

A suite file in ``expectations/`` is ``{"name", "description", "parameters",
"expectations"}``; each expectation has a stable ``name``, a GX ``type`` and its
``kwargs``. Values that come from params.yaml are written ``{"$PARAMETER": "<key>"}``
and filled in at validation time, so the files carry no ids, timestamps or run values.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from cardfraud.params import ValidateFeaturesParams, ValidateRawParams

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

RAW_SUITE = "raw_transactions"
FEATURES_SUITE = "features"
EXAMPLE_COUNT = 5
NOT_NULL_TYPE = "expect_column_values_to_not_be_null"


class DataValidationError(ValueError):
    """A frame failed one or more expectations of a suite.

    Attributes:
        report: The full validation report.
    """

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(report.summary())
        self.report = report


class SuiteError(ValueError):
    """A suite file is malformed or does not cover the columns it must check."""


@dataclass(frozen=True)
class ExpectationOutcome:
    """Result of one expectation.

    Attributes:
        name: Stable name from the suite file.
        expectation: GX expectation type.
        column: Column checked (``"a, b"`` for a column pair or list), or None for
            table-level expectations.
        success: Whether the data met the expectation.
        unexpected_count: Rows that broke it, or None for aggregate expectations.
        examples: Up to five offending values, as JSON-compatible values.
        observed_value: Aggregate value (a mean, the column list), else None.
        error: Exception text when GX could not evaluate the expectation.
    """

    name: str
    expectation: str
    column: str | None
    success: bool
    unexpected_count: int | None
    examples: list[Any]
    observed_value: Any
    error: str | None


@dataclass(frozen=True)
class ValidationReport:
    """Outcome of validating one frame against one suite.

    Attributes:
        suite: Suite name.
        rows: Rows validated.
        parameters: Values substituted for ``$PARAMETER`` references.
        outcomes: One outcome per expectation, in suite order.
    """

    suite: str
    rows: int
    parameters: dict[str, float]
    outcomes: list[ExpectationOutcome]

    @property
    def success(self) -> bool:
        """Whether every expectation passed."""
        return all(outcome.success for outcome in self.outcomes)

    @property
    def failed(self) -> list[ExpectationOutcome]:
        """Outcomes of the expectations that failed."""
        return [outcome for outcome in self.outcomes if not outcome.success]

    def summary(self) -> str:
        """Describe the failures, one line each, for logs and error messages."""
        failed = self.failed
        head = (
            f"suite {self.suite!r}: {len(failed)} of {len(self.outcomes)} "
            f"expectation(s) failed on {self.rows} rows"
        )
        lines = [head]
        for outcome in failed:
            lines.append(
                f"  {outcome.name} ({outcome.expectation}, column "
                f"{outcome.column}): {_describe_failure(outcome)}"
            )
        return "\n".join(lines)

    def result_row(self) -> dict[str, Any]:
        """Return the suite's result as one table row, for reports and the site."""
        return {
            "suite": self.suite,
            "result": "passed" if self.success else "failed",
            "rows": self.rows,
            "expectations": len(self.outcomes),
            "failed": len(self.failed),
        }

    def failure_rows(self) -> list[dict[str, Any]]:
        """Return one table row per failed expectation, in suite order.

        Each row has the expectation's name and GX type, the column, the count of
        offending rows (None for aggregates such as a mean), up to five offending
        values, and the observed aggregate value or the evaluation error.
        """
        return [
            {
                "suite": self.suite,
                "expectation": outcome.name,
                "type": outcome.expectation,
                "column": outcome.column,
                "unexpected_rows": outcome.unexpected_count,
                "examples": outcome.examples,
                "observed": outcome.error or outcome.observed_value,
            }
            for outcome in self.failed
        ]

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-compatible values."""
        return {
            "suite": self.suite,
            "success": self.success,
            "rows": self.rows,
            "parameters": self.parameters,
            "failed": [outcome.name for outcome in self.failed],
            "failures": self.failure_rows(),
            "outcomes": [asdict(outcome) for outcome in self.outcomes],
        }

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> ValidationReport:
        """Rebuild a report from the output of :meth:`to_dict`."""
        return cls(
            suite=document["suite"],
            rows=document["rows"],
            parameters=document["parameters"],
            outcomes=[ExpectationOutcome(**item) for item in document["outcomes"]],
        )


def _describe_failure(outcome: ExpectationOutcome) -> str:
    if outcome.error:
        return f"error {outcome.error}"
    if outcome.unexpected_count is not None:
        return f"{outcome.unexpected_count} unexpected, examples {outcome.examples}"
    return f"observed {outcome.observed_value!r}"


def expectations_dir() -> Path:
    """Return the folder of the committed suites: ``<project root>/expectations``."""
    return Path(__file__).resolve().parents[2] / "expectations"


def load_suite_document(name: str, *, folder: Path | None = None) -> dict[str, Any]:
    """Read a committed suite file and check its shape.

    Raises:
        FileNotFoundError: The suite file does not exist.
        SuiteError: A key is missing or two expectations share a name.
    """
    path = (folder or expectations_dir()) / f"{name}.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    for key in ("name", "parameters", "expectations"):
        if key not in document:
            raise SuiteError(f"suite file {path} has no {key!r} key; add it")
    names = [item["name"] for item in document["expectations"]]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise SuiteError(f"suite file {path} repeats expectation name(s) {repeated}")
    return document


def build_suite(document: dict[str, Any]) -> Any:
    """Build a GX ExpectationSuite from a suite document, one expectation per entry.

    Each entry's ``name`` goes into the expectation's ``meta``, which keeps two
    expectations of the same type on one column distinct.
    """
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    expectations = [
        ExpectationConfiguration(
            type=item["type"], kwargs=item["kwargs"], meta={"name": item["name"]}
        ).to_domain_obj()
        for item in document["expectations"]
    ]
    return gx.ExpectationSuite(name=document["name"], expectations=expectations)


def check_not_null_coverage(document: dict[str, Any], columns: list[str]) -> None:
    """Check that the suite has a not-null expectation for each of ``columns``.

    Raises:
        SuiteError: Names the uncovered columns, for example after a change of
            ``features.windows_hours``.
    """
    covered = {
        item["kwargs"].get("column")
        for item in document["expectations"]
        if item["type"] == NOT_NULL_TYPE
    }
    uncovered = [column for column in columns if column not in covered]
    if uncovered:
        raise SuiteError(
            f"suite {document['name']!r} has no not-null expectation for {uncovered}; "
            f"add {NOT_NULL_TYPE} entries for them to expectations/"
            f"{document['name']}.json"
        )


def validate_frame(
    frame: pl.DataFrame,
    document: dict[str, Any],
    *,
    parameters: dict[str, float],
) -> ValidationReport:
    """Validate a polars frame against a suite document in an ephemeral GX context.

    Args:
        frame: Data to check; it is converted to pandas for GX.
        document: Suite document from ``load_suite_document``.
        parameters: Values for every ``$PARAMETER`` the suite declares.

    Returns:
        The report; it does not raise on failed expectations.

    Raises:
        SuiteError: A declared parameter has no value.
    """
    missing = sorted(set(document["parameters"]) - set(parameters))
    if missing:
        raise SuiteError(
            f"suite {document['name']!r} needs parameter(s) {missing}; pass them "
            "from params.yaml"
        )
    result = _run_gx(frame, document, parameters=parameters)
    # GX returns results grouped by domain, not in suite order. The report keeps the
    # suite's order, so two runs list the same failures the same way.
    order = {item["name"]: index for index, item in enumerate(document["expectations"])}
    outcomes = sorted(
        (_outcome(item) for item in result.results),
        key=lambda outcome: order.get(outcome.name, len(order)),
    )
    report = ValidationReport(
        suite=document["name"],
        rows=frame.height,
        parameters=dict(sorted(parameters.items())),
        outcomes=outcomes,
    )
    logger.info(
        "suite %s: %d of %d expectations passed on %d rows",
        report.suite,
        len(outcomes) - len(report.failed),
        len(outcomes),
        frame.height,
    )
    return report


def _run_gx(
    frame: pl.DataFrame, document: dict[str, Any], *, parameters: dict[str, float]
) -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas(f"{document['name']}_source")
    asset = source.add_dataframe_asset(f"{document['name']}_frame")
    batch_definition = asset.add_batch_definition_whole_dataframe("whole_frame")
    batch = batch_definition.get_batch(
        batch_parameters={"dataframe": frame.to_pandas()}
    )
    suite = context.suites.add(build_suite(document))
    return batch.validate(
        suite,
        expectation_parameters=parameters,
        result_format={"result_format": "SUMMARY", "partial_unexpected_count": 20},
    )


def _outcome(result: Any) -> ExpectationOutcome:
    config = result.expectation_config
    details = result.result or {}
    error = None
    if result.exception_info and result.exception_info.get("raised_exception"):
        error = str(result.exception_info.get("exception_message"))
    examples = details.get("partial_unexpected_list")
    return ExpectationOutcome(
        name=str(config.meta.get("name", config.type)),
        expectation=config.type,
        column=_checked_columns(config.kwargs),
        success=bool(result.success),
        unexpected_count=details.get("unexpected_count"),
        examples=[_jsonable(value) for value in (examples or [])[:EXAMPLE_COUNT]],
        observed_value=_jsonable(details.get("observed_value")),
        error=error,
    )


def _checked_columns(kwargs: dict[str, Any]) -> str | None:
    """Return the column an expectation checks, with pairs and lists joined by ", "."""
    if "column" in kwargs:
        return kwargs["column"]
    if "column_A" in kwargs:
        return f"{kwargs['column_A']}, {kwargs['column_B']}"
    if "column_list" in kwargs:
        return ", ".join(kwargs["column_list"])
    return None


def _jsonable(value: Any) -> Any:
    """Turn numpy, pandas and datetime values into JSON values (floats NaN to None)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else float(value)
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if hasattr(value, "item"):
        return _jsonable(value.item())
    return str(value)


def raw_suite_parameters(params: ValidateRawParams) -> dict[str, float]:
    """Return the raw suite's parameter values from the validate_raw section."""
    return {
        "max_amount_minor": params.max_amount_minor,
        "prevalence_min": params.prevalence_min,
        "prevalence_max": params.prevalence_max,
    }


def features_suite_parameters(params: ValidateFeaturesParams) -> dict[str, float]:
    """Return the features suite's parameter values from validate_features."""
    return {"min_non_null_share": 1.0 - params.max_null_share}


def write_report(report: ValidationReport, folder: Path) -> Path:
    """Write the report to ``folder/<suite>.json`` with sorted keys; return the path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{report.suite}.json"
    text = json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n"
    path.write_text(text, encoding="utf-8")
    return path


def outcome_table(report: ValidationReport) -> pd.DataFrame:
    """Return every expectation's outcome as a table indexed by expectation name."""
    import pandas as pd

    columns = ["expectation", "column", "success", "unexpected_count", "observed_value"]
    rows = [asdict(outcome) for outcome in report.outcomes]
    return pd.DataFrame(rows, columns=["name", *columns]).set_index("name")


def failure_table(report: ValidationReport) -> pd.DataFrame:
    """Return the failed expectations as a table for the notebook and the site.

    One row per failure with the expectation, its GX type, the column, the count
    of offending rows, up to five example values and the observed value or error.
    Without failures the table has one row that states that all expectations passed, so
    a rendered page never shows an empty table.
    """
    import pandas as pd

    rows = [
        {**row, "examples": ", ".join(json.dumps(value) for value in row["examples"])}
        for row in report.failure_rows()
    ]
    if not rows:
        rows = [
            {
                "suite": report.suite,
                "expectation": "none failed",
                "observed": (
                    f"all {len(report.outcomes)} expectations passed on "
                    f"{report.rows} rows"
                ),
            }
        ]
    columns = [
        "suite",
        "expectation",
        "type",
        "column",
        "unexpected_rows",
        "examples",
        "observed",
    ]
    return pd.DataFrame(rows, columns=columns).fillna("").set_index("expectation")


def read_report(path: Path) -> ValidationReport:
    """Read a report that :func:`write_report` wrote."""
    return ValidationReport.from_dict(json.loads(path.read_text(encoding="utf-8")))


def raise_for_failures(report: ValidationReport) -> None:
    """Raise DataValidationError with the readable summary when anything failed."""
    if not report.success:
        logger.error("%s", report.summary())
        raise DataValidationError(report)
