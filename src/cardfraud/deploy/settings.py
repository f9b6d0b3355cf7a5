"""Deployment settings from infra/deploy.yaml and the names derived from them.

Names follow the Terraform in infra/terraform: every resource of one stack starts
with ``<project>-<environment>``, which is what teardown searches for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cardfraud.paths import project_root

NAME_PATTERN = r"^[a-z][a-z0-9-]{1,19}$"


class DeploySettingsError(ValueError):
    """The deployment settings file is missing, unreadable or invalid."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EndpointSettings(_Strict):
    """The SageMaker endpoint's production variant."""

    instance_type: str = Field(pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
    instance_count: int = Field(ge=1, le=10)
    variant_name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$")


class BlueGreenSettings(_Strict):
    """Traffic shifting of an endpoint update; times in seconds."""

    canary_percent: int = Field(ge=1, le=50)
    canary_wait_seconds: int = Field(ge=0, le=3600)
    termination_wait_seconds: int = Field(ge=0, le=3600)
    max_execution_seconds: int = Field(ge=600, le=14400)


class WaitSettings(_Strict):
    """How often and how long the deploy polls the endpoint; seconds."""

    poll_seconds: float = Field(ge=0)
    timeout_seconds: float = Field(gt=0)


class UsageSettings(_Strict):
    """Workload assumptions that ``make cost`` prices."""

    deploys_per_month: int = Field(ge=0)
    requests_per_month: int = Field(ge=0)
    router_memory_mb: int = Field(ge=128, le=10240)
    router_duration_ms: float = Field(gt=0)
    audit_item_kb: float = Field(gt=0)
    feature_writes_per_request: int = Field(ge=0)
    feature_reads_per_request: int = Field(ge=0)
    data_lake_gb: float = Field(ge=0)
    image_gb: float = Field(ge=0)
    images_kept: int = Field(ge=1)
    log_ingest_gb: float = Field(ge=0)
    cost_report_requests_per_month: int = Field(ge=0)


class DeploySettings(_Strict):
    """Everything ``cardfraud deploy`` needs besides the image and the model."""

    project: str = Field(pattern=NAME_PATTERN)
    environment: str = Field(pattern=r"^(dev|staging|prod)$")
    region: str = Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
    endpoint: EndpointSettings
    blue_green: BlueGreenSettings
    wait: WaitSettings
    usage: UsageSettings

    @field_validator("endpoint")
    @classmethod
    def _canary_needs_two_instances(cls, value: EndpointSettings) -> EndpointSettings:
        if value.instance_count < 2:
            raise ValueError(
                f"instance_count {value.instance_count} leaves no room for a canary: "
                "a canary may be at most 50% of the fleet and at least one "
                "instance, so set instance_count to 2 or more"
            )
        return value

    @property
    def prefix(self) -> str:
        """Prefix of every resource name of this stack, e.g. ``cardfraud-dev``."""
        return f"{self.project}-{self.environment}"

    @property
    def endpoint_name(self) -> str:
        """Name of the SageMaker endpoint."""
        return f"{self.prefix}-scorer"

    @property
    def execution_role_name(self) -> str:
        """IAM role that SageMaker assumes to run the container."""
        return f"{self.prefix}-sagemaker-execution"

    @property
    def alarm_names(self) -> tuple[str, str]:
        """CloudWatch alarms that roll an update back: p99 latency, then 5xx."""
        return (f"{self.endpoint_name}-p99-latency", f"{self.endpoint_name}-5xx")

    @property
    def live_config_parameter(self) -> str:
        """SSM parameter holding the endpoint configuration last deployed."""
        return f"/{self.prefix}/scorer/live-endpoint-config"

    @property
    def canary_instances(self) -> int:
        """Instances in the canary step: the percentage of the fleet, at least 1."""
        share = self.endpoint.instance_count * self.blue_green.canary_percent // 100
        return max(1, share)


def default_settings_path() -> Path:
    """Return infra/deploy.yaml at the project root."""
    return project_root() / "infra" / "deploy.yaml"


def load_settings(
    path: Path | None = None, overrides: dict[str, Any] | None = None
) -> DeploySettings:
    """Read and validate the deployment settings.

    Args:
        path: The YAML file; default infra/deploy.yaml.
        overrides: Top-level keys replaced after reading, e.g. ``{"environment":
            "staging"}``; nested sections are merged one level deep.

    Raises:
        DeploySettingsError: The file is missing, is not a mapping, or a value is
            invalid; the message names the field.
    """
    path = path or default_settings_path()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise DeploySettingsError(
            f"cannot read deploy settings {path}: {error}"
        ) from error
    if not isinstance(raw, dict):
        raise DeploySettingsError(f"{path} must contain a mapping of settings")
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    try:
        return DeploySettings.model_validate(raw)
    except ValidationError as error:
        details = "; ".join(
            f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}"
            for item in error.errors()
        )
        raise DeploySettingsError(
            f"invalid deploy settings in {path}: {details}"
        ) from error
