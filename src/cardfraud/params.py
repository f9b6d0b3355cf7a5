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
        default=[1, 24, 168],
        min_length=1,
        description="Windows of the card's distinct merchants, countries and devices.",
    )
    new_value_windows_hours: list[int] = Field(
        default=[1, 24],
        min_length=1,
        description=(
            "Windows of the card's counts of first-time merchants, devices and "
            "countries."
        ),
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


class CostParams(StageParams):
    """Cost matrix of the alert decision, in minor units of the transaction currency.

    A legitimate transaction that is not alerted costs nothing.
    """

    false_alarm_minor: int = Field(
        ge=0, description="Cost of reviewing an alerted legitimate transaction."
    )
    caught_fraud_minor: int = Field(
        ge=0, description="Cost of reviewing an alerted fraud."
    )
    missed_fraud_share: float = Field(
        gt=0, le=1, description="Share of a missed fraud's amount that is lost."
    )


class TrainParams(StageParams):
    """Delay-aware training windows, model tuning, calibration and thresholds."""

    cutoff: date | None = Field(
        default=None,
        description="First day of the test window (UTC midnight); training labels "
        "are those known at this instant. None puts it test_days before the end of "
        "the data.",
    )
    test_days: int = Field(gt=0, description="Length of the test window in days.")
    maturity_days: int = Field(
        ge=0,
        description="Age at the cutoff after which an unlabelled transaction counts "
        "as legitimate.",
    )
    burn_in_days: int = Field(
        default=0,
        ge=0,
        description="Days at the start of the data left out of training, while the "
        "longest feature windows fill.",
    )
    folds: int = Field(ge=1, description="Prequential folds used for tuning.")
    fold_days: int = Field(gt=0, description="Validation window of each fold, days.")
    models: list[Literal["xgboost", "lightgbm"]] = Field(
        min_length=1, description="Tree-model families tuned as candidates."
    )
    trials: int = Field(ge=1, description="Optuna trials per model family.")
    max_estimators: int = Field(
        ge=10, description="Largest number of boosting rounds in the search space."
    )
    negative_sample_rate: float = Field(
        gt=0, le=1, description="Share of legitimate training rows kept (seeded)."
    )
    imbalance: Literal["balanced", "sqrt", "none"] = Field(
        default="sqrt",
        description="Positive weight: negatives/positives, its square root, or 1.",
    )
    calibration: Literal["sigmoid", "isotonic"] = Field(
        default="sigmoid", description="Score calibration fitted on the last fold."
    )
    feature_source: Literal["feast", "parquet"] = Field(
        default="feast",
        description="Training table: Feast's get_historical_features over the "
        "transaction feature view, or features.parquet read directly (same rows).",
    )
    refit: bool = Field(
        default=True,
        description="Refit the candidate on the whole training period with the labels "
        "known at the cutoff; the calibrator and thresholds still come from the newest "
        "fold's out-of-time scores.",
    )
    threshold_rule: Literal["cost", "alert_rate"] = Field(
        default="cost",
        description="Review threshold: lowest expected cost, or review_alert_rate.",
    )
    review_alert_rate: float = Field(
        default=0.01, gt=0, lt=1, description="Share of transactions sent to review."
    )
    decline_precision: float = Field(
        default=0.8, gt=0, le=1, description="Fraud precision required to decline."
    )
    cost: CostParams
    baseline_rules: dict[str, float] = Field(
        min_length=1,
        description="Rule baseline: feature name to the value at or above which the "
        "rule fires; the score is the share of rules that fire.",
    )
    seed: int = Field(ge=0)

    @field_validator("cutoff", mode="before")
    @classmethod
    def _parse_cutoff(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                raise ValueError(
                    f"{value!r} is not an ISO date; write it as YYYY-MM-DD or null"
                ) from None
        return value


class EvaluateParams(StageParams):
    """Hold-out evaluation."""

    bootstrap_rounds: int = Field(ge=0)
    seed: int = Field(ge=0)
    alerts_per_10000: float = Field(
        default=100.0,
        gt=0,
        description="Card Precision@k budget: k is this many cards per 10,000 "
        "transactions a day in the test window.",
    )
    fpr_target: float = Field(
        default=0.01, gt=0, lt=1, description="False-positive rate of recall@FPR."
    )
    calibration_bins: int = Field(
        default=10, ge=2, description="Equal-width score bins of ECE and reliability."
    )


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


class MonitorParams(StageParams):
    """Replay of a period through the scoring core, and the monitor's thresholds."""

    replay_start: date | None = Field(
        default=None,
        description="First day replayed (UTC); None starts at the champion's test "
        "window.",
    )
    replay_days: int = Field(gt=0, description="Days replayed, cut at the data end.")
    maturity_days: int = Field(
        ge=0,
        description="Age after which a transaction without a fraud report counts as "
        "legitimate in matured performance.",
    )
    performance_window_days: int = Field(
        gt=0, description="Event days pooled into each day's matured performance."
    )
    performance_drop: float = Field(
        gt=0,
        lt=1,
        description="Relative fall of matured average precision below the model's "
        "baseline at which the Prometheus ticket rule "
        "CardFraudMaturedAveragePrecisionDrop fires (the upper bound of its "
        "interval must be below the baseline too). The monitor's own performance "
        "alert tests ROC AUC instead.",
    )
    performance_alpha: float = Field(
        gt=0,
        lt=0.5,
        description="One-sided significance level of the monitor's test that "
        "matured ROC AUC is below the baseline's.",
    )
    performance_gini_drop: float = Field(
        gt=0,
        lt=1,
        description="Smallest relative fall of the Gini coefficient (2 * ROC AUC "
        "- 1) below the baseline's that the monitor counts as a performance drop.",
    )
    min_frauds: int = Field(
        ge=1, description="Fewest frauds in a window for a performance figure."
    )
    psi_alert: float = Field(gt=0, description="Feature PSI that counts as drift.")
    score_psi_alert: float = Field(gt=0, description="Score PSI that counts as drift.")
    drift_window_days: int = Field(
        gt=0, description="Event days pooled into each day's drift sample."
    )
    drift_min_rows: int = Field(
        ge=1, description="Fewest rows in a drift sample for the day to be judged."
    )
    drift_exclude: list[str] = Field(
        default=[],
        description="Features reported but not judged for drift alerts.",
    )
    confirm_days: int = Field(
        ge=1, description="Consecutive days a condition holds before it alerts."
    )
    bootstrap_rounds: int = Field(ge=0, description="Resamples of each interval.")
    skew_sample: int = Field(
        ge=0, description="Decisions compared with the offline feature table."
    )
    latency_p99_ms: float = Field(
        gt=0, description="Service p99 latency above which an alert fires."
    )
    error_rate: float = Field(
        gt=0, lt=1, description="Share of 5xx responses above which an alert fires."
    )
    degraded_rate: float = Field(
        gt=0,
        lt=1,
        description="Share of degraded scores above which an alert fires.",
    )
    seed: int = Field(ge=0)

    @field_validator("replay_start", mode="before")
    @classmethod
    def _parse_replay_start(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                raise ValueError(
                    f"{value!r} is not an ISO date; write it as YYYY-MM-DD or null"
                ) from None
        return value


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
    monitor: MonitorParams


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
