"""Generator configuration: a YAML file merged over the shipped defaults and validated.

Every model rejects unknown keys, so a misspelt key or an unknown scenario fails
instead of being ignored.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SCENARIOS = (
    "card_testing",
    "stolen_card_spree",
    "account_takeover",
    "compromised_merchant",
    "mimicry",
)
# Pairs of keys that set the same quantity: a user config that sets the first key
# replaces the default of the second.
ALTERNATIVE_KEYS = {"cards": "rows", "end": "days"}
MAX_DAYS = 3660


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IntRange(_Strict):
    """Inclusive range of positive integers."""

    min: int = Field(ge=1)
    max: int = Field(ge=1)

    @model_validator(mode="after")
    def _check_order(self) -> IntRange:
        if self.max < self.min:
            raise ValueError(f"max {self.max} is below min {self.min}")
        return self

    @property
    def mean(self) -> float:
        """Mean of a uniform draw from the range."""
        return (self.min + self.max) / 2


class FloatRange(_Strict):
    """Closed range of non-negative floats."""

    min: float = Field(ge=0)
    max: float = Field(ge=0)

    @model_validator(mode="after")
    def _check_order(self) -> FloatRange:
        if self.max < self.min:
            raise ValueError(f"max {self.max} is below min {self.min}")
        return self


class PopulationConfig(_Strict):
    """Customers, cards, merchants and their habits."""

    payments_per_card_month: float = Field(gt=0, le=300)
    cards_per_customer: tuple[float, float, float]
    physical_merchants_per_1000_cards: float = Field(gt=0)
    online_merchants_per_1000_cards: float = Field(gt=0)
    atms_per_1000_cards: float = Field(gt=0)
    travel_share: float = Field(ge=0, le=1)
    local_explore_share: float = Field(ge=0, le=1)
    online_explore_share: float = Field(ge=0, le=1)
    new_device_share: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _check_weights(self) -> PopulationConfig:
        if min(self.cards_per_customer) < 0 or sum(self.cards_per_customer) <= 0:
            raise ValueError(
                f"cards_per_customer {list(self.cards_per_customer)} must be "
                "non-negative weights with a positive sum"
            )
        if self.travel_share + self.local_explore_share > 1:
            raise ValueError("travel_share plus local_explore_share must not exceed 1")
        return self


class ScenarioMix(_Strict):
    """Share of fraudulent transactions per scenario; normalised to sum to 1."""

    card_testing: float = Field(ge=0)
    stolen_card_spree: float = Field(ge=0)
    account_takeover: float = Field(ge=0)
    compromised_merchant: float = Field(ge=0)
    mimicry: float = Field(ge=0)

    def shares(self) -> dict[str, float]:
        """Return each scenario's share, normalised to sum to 1."""
        values = {name: getattr(self, name) for name in SCENARIOS}
        total = sum(values.values())
        return {name: value / total for name, value in values.items()}


class CardTestingConfig(_Strict):
    """Bursts of tiny online payments that check whether stolen card numbers work."""

    payments: IntRange
    window_minutes: FloatRange
    amount_minor: IntRange


class StolenCardSpreeConfig(_Strict):
    """A stolen card spent quickly, often abroad."""

    payments: IntRange
    duration_hours: FloatRange
    cross_border_share: float = Field(ge=0, le=1)
    card_not_present_share: float = Field(ge=0, le=1)
    amount_multiplier: float = Field(gt=0)


class AccountTakeoverConfig(_Strict):
    """A fraudster using the customer's online account from a new device."""

    payments: IntRange
    duration_hours: FloatRange
    night_share: float = Field(ge=0, le=1)
    amount_median_eur: float = Field(gt=0)


class CompromisedMerchantConfig(_Strict):
    """A skimmed terminal: cards that paid there are defrauded later elsewhere."""

    victims: IntRange
    payments_per_victim: IntRange
    compromise_days: float = Field(gt=0)
    fraud_delay_days: FloatRange
    cross_border_share: float = Field(ge=0, le=1)
    amount_multiplier: float = Field(gt=0)


class MimicryConfig(_Strict):
    """Fraud that copies the card's own habits."""

    payments: IntRange
    duration_hours: FloatRange


class ScenariosConfig(_Strict):
    """Parameters of every fraud scenario."""

    card_testing: CardTestingConfig
    stolen_card_spree: StolenCardSpreeConfig
    account_takeover: AccountTakeoverConfig
    compromised_merchant: CompromisedMerchantConfig
    mimicry: MimicryConfig


class LabelsConfig(_Strict):
    """When the bank learns that a payment was fraudulent."""

    delay_median_days: float = Field(gt=0)
    delay_sigma: float = Field(ge=0)
    min_delay_hours: float = Field(ge=0)
    max_delay_days: float = Field(gt=0, le=120)
    maturity_days: float = Field(gt=0)

    @model_validator(mode="after")
    def _check_order(self) -> LabelsConfig:
        if self.min_delay_hours / 24 > self.max_delay_days:
            raise ValueError("min_delay_hours must not exceed max_delay_days")
        return self


class CampaignConfig(_Strict):
    """A fraud campaign: extra incidents of one scenario between two days."""

    scenario: Literal[
        "card_testing",
        "stolen_card_spree",
        "account_takeover",
        "compromised_merchant",
        "mimicry",
    ]
    start: date
    end: date | None = None
    fraud_rate: float = Field(gt=0, lt=0.5)

    @model_validator(mode="after")
    def _check_order(self) -> CampaignConfig:
        if self.end is not None and self.end < self.start:
            raise ValueError(
                f"end {self.end} is before start {self.start}; "
                "set end on or after start"
            )
        return self


class SegmentShiftConfig(_Strict):
    """A lasting change in a customer segment's behaviour from a day on."""

    segment: Literal["student", "mass", "affluent"]
    start: date
    amount_multiplier: float = Field(default=1.0, gt=0, le=100)
    volume_multiplier: float = Field(default=1.0, gt=0, le=100)
    hour_shift: int = Field(default=0, ge=-12, le=12)


class DriftConfig(_Strict):
    """Scheduled changes over the span; both lists are empty by default."""

    campaigns: tuple[CampaignConfig, ...] = ()
    segment_shifts: tuple[SegmentShiftConfig, ...] = ()


class GeneratorConfig(_Strict):
    """Complete, validated generator configuration.

    Exactly one of ``rows`` and ``cards`` is set, and exactly one of ``days`` and
    ``end``.
    """

    start: date
    days: int | None = Field(default=None, gt=0, le=MAX_DAYS)
    end: date | None = None
    rows: int | None = Field(default=None, gt=0, le=2_000_000_000)
    cards: int | None = Field(default=None, gt=0, le=200_000_000)
    fraud_rate: float = Field(ge=0, lt=0.5)
    seed: int = Field(ge=0, lt=2**63)
    write_csv: bool
    population: PopulationConfig
    scenario_mix: ScenarioMix
    scenarios: ScenariosConfig
    labels: LabelsConfig
    drift: DriftConfig

    @model_validator(mode="after")
    def _check_alternatives(self) -> GeneratorConfig:
        if (self.rows is None) == (self.cards is None):
            raise ValueError("keys 'rows' and 'cards': set exactly one of them")
        if (self.days is None) == (self.end is None):
            raise ValueError("keys 'days' and 'end': set exactly one of them")
        if self.end is not None and self.end < self.start:
            raise ValueError(
                f"key 'end': {self.end} is before start {self.start}; "
                "set end on or after start"
            )
        if self.end is not None and self.n_days > MAX_DAYS:
            raise ValueError(f"key 'end': the span from start exceeds {MAX_DAYS} days")
        self._check_drift()
        mix_total = sum(getattr(self.scenario_mix, name) for name in SCENARIOS)
        if self.fraud_rate > 0 and mix_total <= 0:
            raise ValueError(
                "key 'scenario_mix': at least one share must be positive "
                "when fraud_rate > 0"
            )
        return self

    def _check_drift(self) -> None:
        last = self.last_day
        for index, campaign in enumerate(self.drift.campaigns):
            key = f"drift.campaigns.{index}"
            if campaign.start > last or (
                campaign.end is not None and campaign.end < self.start
            ):
                raise ValueError(
                    f"key '{key}': the campaign ({campaign.start} to "
                    f"{campaign.end or 'the end'}) lies outside the data span "
                    f"{self.start} to {last}; move it inside"
                )
        for index, shift in enumerate(self.drift.segment_shifts):
            if shift.start > last:
                raise ValueError(
                    f"key 'drift.segment_shifts.{index}.start': {shift.start} is after "
                    f"the last day {last}; move it inside the span"
                )

    def shifts_on(self, day: date) -> tuple[SegmentShiftConfig, ...]:
        """Return the segment shifts in force on ``day``."""
        return tuple(s for s in self.drift.segment_shifts if s.start <= day)

    @property
    def n_days(self) -> int:
        """Number of days generated, start and end included."""
        if self.days is not None:
            return self.days
        assert self.end is not None
        return (self.end - self.start).days + 1

    @property
    def last_day(self) -> date:
        """Last day generated (inclusive)."""
        return self.start + timedelta(days=self.n_days - 1)

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as JSON-compatible values (dates as ISO strings)."""
        return self.model_dump(mode="json")

    def config_hash(self) -> str:
        """Return the sha256 hex digest of the configuration's canonical JSON."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def load_defaults() -> dict[str, Any]:
    """Return the shipped default configuration as a nested dict."""
    text = resources.files("fraudgen").joinpath("defaults.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a dict.

    Raises:
        ConfigError: The file is missing, is not valid YAML or is not a mapping.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(
            f"config file {str(path)!r} cannot be read: {error}"
        ) from None
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(
            f"config file {str(path)!r} is not valid YAML{where}; fix its syntax"
        ) from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(
            f"config file {str(path)!r} must contain a mapping of keys, "
            f"not a {type(values).__name__}"
        )
    return values


def merge_over_defaults(
    defaults: dict[str, Any], overrides: dict[str, Any]
) -> dict[str, Any]:
    """Return ``defaults`` with ``overrides`` merged in, mapping by mapping.

    A top-level override of ``cards`` or ``end`` drops the default of its
    alternative (``rows`` or ``days``) unless the override sets that one too.
    """
    merged = _merge(defaults, overrides)
    for key, alternative in ALTERNATIVE_KEYS.items():
        for chosen, dropped in ((key, alternative), (alternative, key)):
            if chosen in overrides and dropped not in overrides:
                merged[dropped] = None
    return merged


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merged[key] = _merge(base[key], value)
        else:
            merged[key] = value
    return merged


def build_config(overrides: dict[str, Any] | None = None) -> GeneratorConfig:
    """Validate ``overrides`` merged over the shipped defaults.

    Args:
        overrides: Nested values to change, as in a config file. None or an empty
            dict gives the defaults.

    Raises:
        ConfigError: A key is unknown or a value is invalid; the message names the
            key as a dotted path.
    """
    merged = merge_over_defaults(load_defaults(), overrides or {})
    try:
        return GeneratorConfig.model_validate(merged)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error)) from None


def load_config(
    path: str | Path | None = None,
    *,
    overrides: dict[str, Any] | None = None,
    preset: str | None = None,
) -> GeneratorConfig:
    """Read a YAML config file, apply ``overrides`` and validate over the defaults.

    Args:
        path: YAML file; None uses only the defaults and ``overrides``.
        overrides: Values that take precedence over the file, such as command-line
            options.
        preset: Name of a shipped preset (``fraudgen.presets.preset_names()``),
            merged over the defaults and under the file and ``overrides``.

    Raises:
        ConfigError: The file cannot be read, the preset is unknown, or a key or
            value is invalid.
    """
    # Imported here because the presets module imports ConfigError from this one.
    from fraudgen.presets import load_preset

    values = load_preset(preset) if preset is not None else {}
    if path is not None:
        values = _merge_layer(values, read_config_file(path))
    values = _merge_layer(values, overrides or {})
    return build_config(values)


def _merge_layer(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Merge ``overrides`` over ``base``; a key set there drops its alternative."""
    values = _merge(base, overrides)
    for key, alternative in ALTERNATIVE_KEYS.items():
        for chosen, dropped in ((key, alternative), (alternative, key)):
            if chosen in overrides and dropped not in overrides:
                values.pop(dropped, None)
    return values


def describe_validation_error(error: ValidationError) -> str:
    """Format a pydantic error as one line that names each key as a dotted path."""
    problems = []
    for issue in error.errors():
        key = ".".join(str(part) for part in issue["loc"]) or "<top level>"
        if issue["type"] == "extra_forbidden":
            problems.append(f"unknown key '{key}'; remove it or check its spelling")
            continue
        message = issue["msg"].removeprefix("Value error, ")
        if not issue["loc"]:
            problems.append(message)
            continue
        if issue["type"] == "missing":
            problems.append(f"key '{key}' is missing; add it")
            continue
        value = issue.get("input")
        suffix = "" if isinstance(value, dict) else f" (got {value!r})"
        problems.append(f"key '{key}': {message}{suffix}")
    return "invalid config: " + "; ".join(problems)
