"""Typed run parameters, one model per pipeline stage, loaded from params.yaml.

Models are strict: a boolean given as the string "false" or a count given as "10" is
rejected with the section and key, because papermill and shells turn values into
strings.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)


class StageParams(BaseModel):
    """Base of every stage's parameters: strict types, unknown keys rejected."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class DataParams(StageParams):
    """Source of the raw transactions: the generator, or an external table.

    Relative paths start at the project root.
    """

    source: str | None = Field(
        default=None,
        min_length=1,
        description="CSV or parquet table to ingest; None runs the generator.",
    )
    mapping: str | None = Field(
        default=None,
        min_length=1,
        validate_default=True,
        description="YAML mapping of the source's columns to the canonical schema.",
    )

    @field_validator("mapping")
    @classmethod
    def _require_mapping(cls, mapping: str | None, info: ValidationInfo) -> str | None:
        if mapping is None and info.data.get("source") is not None:
            raise ValueError(
                "required when data.source is set; give the path of a YAML column "
                "mapping, such as configs/ingest/example.yaml"
            )
        return mapping


class GenerateParams(StageParams):
    """Synthetic data generation."""

    rows: int = Field(gt=0, description="Target number of transactions.")
    days: int = Field(gt=0, description="Span of the data in days.")
    start: date = Field(description="First day of the data (UTC).")
    fraud_rate: float = Field(
        gt=0, lt=1, description="Share of fraudulent transactions."
    )
    seed: int = Field(ge=0)
    write_csv: bool = False


class ValidateRawParams(StageParams):
    """Expectations on raw transactions."""

    prevalence_min: float = Field(ge=0, le=1)
    prevalence_max: float = Field(ge=0, le=1)
    max_amount_minor: int = Field(gt=0, description="Largest plausible amount.")


class FeaturesParams(StageParams):
    """Point-in-time feature computation."""

    windows_hours: list[int] = Field(min_length=1, description="Card window lengths.")
    label_delay_days: int = Field(
        ge=0, description="Delay before a label counts, where no label time exists."
    )
    distinct_windows_hours: list[int] = Field(
        default=[24, 168],
        min_length=1,
        description="Windows of the card's distinct merchants, countries and devices.",
    )
    merchant_windows_hours: list[int] = Field(
        default=[1, 24, 168],
        min_length=1,
        description="Windows of the merchant's transaction counts.",
    )
    merchant_fraud_windows_days: list[int] = Field(
        default=[7, 30],
        min_length=1,
        description="Windows of the merchant's fraud rate from available labels.",
    )


class ValidateFeaturesParams(StageParams):
    """Expectations on the feature table."""

    max_null_share: float = Field(ge=0, le=1)


class TrainParams(StageParams):
    """Model training on a time-ordered split."""

    model: Literal["xgboost", "lightgbm"] = "xgboost"
    test_days: int = Field(gt=0, description="Days at the end held out for testing.")
    n_estimators: int = Field(gt=0)
    max_depth: int = Field(gt=0)
    learning_rate: float = Field(gt=0, le=1)
    seed: int = Field(ge=0)
    threshold_days: int = Field(
        default=14,
        gt=0,
        description="Days at the end of training held out to set thresholds.",
    )
    review_alert_rate: float = Field(
        default=0.01, gt=0, lt=1, description="Share of transactions sent to review."
    )
    decline_precision: float = Field(
        default=0.8, gt=0, le=1, description="Fraud precision required to decline."
    )
    imbalance: Literal["balanced", "sqrt", "none"] = Field(
        default="sqrt",
        description="Positive weight: negatives/positives, its square root, or 1.",
    )


class EvaluateParams(StageParams):
    """Hold-out evaluation."""

    bootstrap_rounds: int = Field(ge=0)
    seed: int = Field(ge=0)


class ExplainParams(StageParams):
    """SHAP explanations."""

    sample_rows: int = Field(gt=0)
    seed: int = Field(ge=0)


class RegisterParams(StageParams):
    """MLflow registration and promotion."""

    model_name: str = Field(min_length=1)
    promotion_margin: float = Field(
        ge=0, description="Required gain in average precision."
    )


class PipelineParams(StageParams):
    """Every section of params.yaml."""

    data: DataParams
    generate: GenerateParams
    validate_raw: ValidateRawParams
    features: FeaturesParams
    validate_features: ValidateFeaturesParams
    train: TrainParams
    evaluate: EvaluateParams
    explain: ExplainParams
    registry: RegisterParams


class ParamsError(ValueError):
    """params.yaml or a notebook parameter is invalid."""


def parse_section[T: StageParams](
    model: type[T], values: dict[str, Any], *, section: str
) -> T:
    """Validate one section's values, naming the section and key on failure.

    Date fields may be ISO strings ("2025-01-01"); every other value must already
    have its type.
    """
    values = dict(values)
    for name, field in model.model_fields.items():
        if field.annotation is date and isinstance(values.get(name), str):
            try:
                values[name] = date.fromisoformat(values[name])
            except ValueError:
                raise ParamsError(
                    f"invalid parameters: {section}.{name}: {values[name]!r} is not an "
                    "ISO date; write it as YYYY-MM-DD"
                ) from None
    try:
        return model.model_validate(values)
    except ValidationError as error:
        problems = "; ".join(describe_issue(issue, section) for issue in error.errors())
        raise ParamsError(f"invalid parameters: {problems}") from None


def describe_issue(issue: Any, section: str) -> str:
    """Format one pydantic error as ``section.key: message (got value)``."""
    key = ".".join(str(part) for part in issue["loc"])
    text = f"{section}.{key}: {issue['msg']}"
    if issue["type"] != "missing":
        text += f" (got {issue['input']!r:.60})"
    return text


def load_params(path: Path) -> PipelineParams:
    """Read and validate params.yaml.

    Raises:
        ParamsError: A section or key is missing, unknown or of the wrong type.
    """
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections at the top level")
    sections = {}
    for name, field in PipelineParams.model_fields.items():
        if name not in raw:
            raise ParamsError(f"{path}: section {name!r} is missing")
        sections[name] = parse_section(field.annotation, raw[name] or {}, section=name)
    unknown = sorted(set(raw) - set(PipelineParams.model_fields))
    if unknown:
        raise ParamsError(
            f"{path}: unknown section(s) {unknown}; remove or rename them"
        )
    return PipelineParams(**sections)
