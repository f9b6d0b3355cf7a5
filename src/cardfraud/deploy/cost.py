"""Monthly cost estimate of the AWS stack from the committed price table.

The estimate covers every billable component, Terraform-managed or not: the
SageMaker endpoint for its service hours, the doubled fleet while a blue/green
update runs, the API, the Lambda functions, the audit and feature tables, the data
lake, the image repository, keys, alarms, dashboards, the custom metrics of the
monitor and of the service's EMF lines, logs and the weekly Cost Explorer report.
Inputs are the price table (infra/pricing/<region>.yaml), the Terraform variables'
defaults (overridden by a tfvars file) and the workload in infra/deploy.yaml.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cardfraud.deploy.settings import DeploySettings
from cardfraud.monitoring.exporters import cloudwatch_metric_count
from cardfraud.paths import project_root

WEEKS_PER_MONTH = 52 / 12
HOURS_PER_MONTH = 730
DAYS_PER_WEEK = {"MON-FRI": 5, "MON-SUN": 7}


class CostError(ValueError):
    """The price table or the variables do not allow an estimate."""


@dataclass(frozen=True)
class Line:
    """One component of the estimate: what is billed, how much, in USD."""

    component: str
    quantity: str
    usd: float


@dataclass(frozen=True)
class Estimate:
    """A monthly estimate with its lines, total and the budget it must fit."""

    lines: list[Line]
    gbp_per_usd: float
    budget_gbp: float
    price_date: str
    region: str

    @property
    def total_usd(self) -> float:
        """Sum of the lines in USD."""
        return sum(line.usd for line in self.lines)

    @property
    def total_gbp(self) -> float:
        """Sum of the lines in pounds at the table's exchange rate."""
        return self.total_usd * self.gbp_per_usd

    @property
    def within_budget(self) -> bool:
        """True when the total in pounds is at or under the budget."""
        return self.total_gbp <= self.budget_gbp


def terraform_dir() -> Path:
    """Return infra/terraform at the project root."""
    return project_root() / "infra" / "terraform"


def load_price_table(path: Path) -> dict[str, Any]:
    """Read a price table and check that it states region, date, source and rate.

    Raises:
        CostError: The file is missing or lacks one of those fields.
    """
    try:
        table = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise CostError(f"cannot read price table {path}: {error}") from error
    for key in ("region", "date", "source", "gbp_per_usd", "prices"):
        if not table.get(key):
            raise CostError(f"price table {path} has no {key}; add it")
    return table


def terraform_variables(folder: Path, tfvars: Path | None = None) -> dict[str, Any]:
    """Return the root module's variable defaults, overridden by a tfvars file."""
    import hcl2
    from hcl2.utils import SerializationOptions

    options = SerializationOptions(
        with_comments=False, explicit_blocks=False, strip_string_quotes=True
    )
    values: dict[str, Any] = {}
    parsed = hcl2.loads(
        (folder / "variables.tf").read_text(encoding="utf-8"),
        serialization_options=options,
    )
    for block in parsed.get("variable", []):
        for name, body in block.items():
            values[name] = body.get("default")
    if tfvars is not None:
        values.update(
            hcl2.loads(
                tfvars.read_text(encoding="utf-8"), serialization_options=options
            )
        )
    return values


def terraform_resource_counts(folder: Path) -> dict[str, int]:
    """Count the resource blocks of each type in every .tf file under ``folder``."""
    counts: dict[str, int] = {}
    pattern = re.compile(r'^resource\s+"([a-z0-9_]+)"\s+"', re.MULTILINE)
    for path in sorted(folder.rglob("*.tf")):
        for kind in pattern.findall(path.read_text(encoding="utf-8")):
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def unpriced_resource_types(counts: dict[str, int], table: dict[str, Any]) -> set[str]:
    """Return the Terraform resource types with no row in the price table."""
    known = set(table.get("billable_resource_types", {})) | set(
        table.get("free_resource_types", {})
    )
    return set(counts) - known


def service_hours(variables: dict[str, Any]) -> float:
    """Return the endpoint's hours a month under the overnight stop.

    Raises:
        CostError: The service hours are out of order, or the days are neither
            MON-FRI nor MON-SUN.
    """
    if not variables["overnight_stop_enabled"]:
        return HOURS_PER_MONTH
    start, stop = variables["service_start_hour"], variables["service_stop_hour"]
    if not 0 <= start < stop <= 23:
        raise CostError(
            f"service_start_hour {start} must come before service_stop_hour {stop}"
        )
    days = DAYS_PER_WEEK.get(variables["service_days"])
    if days is None:
        raise CostError(
            f"service_days {variables['service_days']!r} is not one of "
            f"{', '.join(DAYS_PER_WEEK)}"
        )
    return (stop - start) * days * WEEKS_PER_MONTH


def instance_price(table: dict[str, Any], instance_type: str) -> float:
    """Return the USD price of one instance-hour of ``instance_type``."""
    hourly = table["prices"]["sagemaker_instance_hour"]
    if instance_type not in hourly:
        raise CostError(
            f"instance type {instance_type} has no price in the price table; add it "
            f"under prices.sagemaker_instance_hour (known: {', '.join(hourly)})"
        )
    return float(hourly[instance_type])


def estimate(
    *,
    settings: DeploySettings,
    table: dict[str, Any],
    variables: dict[str, Any],
    resource_counts: dict[str, int],
) -> Estimate:
    """Price one month of the stack.

    Raises:
        CostError: A Terraform resource type has no row in the price table, the
            table's region differs from the settings, or a price is missing.
    """
    missing = unpriced_resource_types(resource_counts, table)
    if missing:
        raise CostError(
            "resource types in infra/terraform with no row in the price table: "
            f"{', '.join(sorted(missing))}; add each under billable_resource_types "
            "or free_resource_types"
        )
    if table["region"] != settings.region:
        raise CostError(
            f"price table is for {table['region']} but infra/deploy.yaml deploys to "
            f"{settings.region}; use infra/pricing/{settings.region}.yaml"
        )
    prices = table["prices"]
    usage = settings.usage
    endpoint = settings.endpoint
    hourly = instance_price(table, endpoint.instance_type)
    lines: list[Line] = []

    hours = service_hours(variables)
    starts = (
        variables["overnight_stop_enabled"]
        * DAYS_PER_WEEK.get(variables["service_days"], 7)
        * WEEKS_PER_MONTH
    )
    billed_hours = hours + starts * table["provisioning_minutes"] / 60
    lines.append(
        Line(
            "sagemaker endpoint",
            f"{endpoint.instance_count} x {endpoint.instance_type} x "
            f"{billed_hours:.0f} h",
            endpoint.instance_count * billed_hours * hourly,
        )
    )

    shifting = settings.blue_green
    green_hours = (
        table["provisioning_minutes"] / 60
        + (shifting.canary_wait_seconds + shifting.termination_wait_seconds) / 3600
    )
    lines.append(
        Line(
            "blue/green second fleet",
            f"{usage.deploys_per_month} deploys x {endpoint.instance_count} x "
            f"{green_hours:.2f} h",
            usage.deploys_per_month * endpoint.instance_count * green_hours * hourly,
        )
    )

    millions = usage.requests_per_month / 1e6
    lines.append(
        Line(
            "api gateway",
            f"{usage.requests_per_month:,} requests",
            millions * prices["api_gateway_http_million_requests"],
        )
    )
    # The authorizer runs for each request in the worst case (no cached result).
    invocations = 2 * usage.requests_per_month
    gb_seconds = (
        usage.requests_per_month
        * (usage.router_duration_ms / 1000)
        * (usage.router_memory_mb / 1024)
    )
    lines.append(
        Line(
            "lambda",
            f"{invocations:,} invocations, {gb_seconds:,.0f} GB-s",
            invocations / 1e6 * prices["lambda_million_requests"]
            + gb_seconds * prices["lambda_gb_second"],
        )
    )

    audit_writes = usage.requests_per_month * math.ceil(usage.audit_item_kb)
    audit_gb = usage.requests_per_month * usage.audit_item_kb / 1024**2
    lines.append(
        Line(
            "audit table",
            f"{audit_writes:,} write units, {audit_gb:.2f} GB added",
            audit_writes / 1e6 * prices["dynamodb_million_write_units"]
            + audit_gb * prices["dynamodb_gb_month"],
        )
    )
    feature_writes = usage.requests_per_month * usage.feature_writes_per_request
    feature_reads = usage.requests_per_month * usage.feature_reads_per_request
    lines.append(
        Line(
            "feature tables (Feast)",
            f"{feature_writes:,} writes, {feature_reads:,} reads",
            feature_writes / 1e6 * prices["dynamodb_million_write_units"]
            + feature_reads / 1e6 * prices["dynamodb_million_read_units"],
        )
    )

    lines.append(
        Line(
            "data lake",
            f"{usage.data_lake_gb:g} GB",
            usage.data_lake_gb * prices["s3_standard_gb_month"],
        )
    )
    image_gb = usage.image_gb * min(usage.images_kept, variables["images_kept"])
    lines.append(
        Line("image repository", f"{image_gb:g} GB", image_gb * prices["ecr_gb_month"])
    )
    keys = resource_counts.get("aws_kms_key", 0)
    lines.append(Line("kms keys", f"{keys} keys", keys * prices["kms_key_month"]))
    alarms = resource_counts.get("aws_cloudwatch_metric_alarm", 0)
    lines.append(
        Line("alarms", f"{alarms} alarms", alarms * prices["cloudwatch_alarm_month"])
    )
    dashboards = resource_counts.get("aws_cloudwatch_dashboard", 0)
    lines.append(
        Line(
            "dashboards",
            f"{dashboards} dashboard{'' if dashboards == 1 else 's'}",
            dashboards * prices["cloudwatch_dashboard_month"],
        )
    )
    custom = cloudwatch_metric_count()
    lines.append(
        Line(
            "custom metrics",
            f"{custom['monitor']} monitor + {custom['service']} service (EMF)",
            sum(custom.values()) * prices["cloudwatch_custom_metric_month"],
        )
    )
    lines.append(
        Line(
            "logs",
            f"{usage.log_ingest_gb:g} GB ingested",
            usage.log_ingest_gb * prices["cloudwatch_logs_ingest_gb"],
        )
    )
    lines.append(
        Line(
            "cost explorer report",
            f"{usage.cost_report_requests_per_month} requests",
            usage.cost_report_requests_per_month * prices["cost_explorer_request"],
        )
    )
    return Estimate(
        lines=lines,
        gbp_per_usd=float(table["gbp_per_usd"]),
        budget_gbp=float(variables["monthly_budget_gbp"]),
        price_date=str(table["date"]),
        region=str(table["region"]),
    )


def format_estimate(result: Estimate) -> str:
    """Render an estimate as a markdown table with the total and the budget."""
    rows = [
        f"Estimated monthly cost, {result.region}, prices of {result.price_date}, "
        f"{result.gbp_per_usd} GBP per USD",
        "",
        "| component | billed quantity | USD | GBP |",
        "|---|---|---:|---:|",
    ]
    for line in result.lines:
        rows.append(
            f"| {line.component} | {line.quantity} | {line.usd:.2f} | "
            f"{line.usd * result.gbp_per_usd:.2f} |"
        )
    rows.append(
        f"| **total** | | **{result.total_usd:.2f}** | **{result.total_gbp:.2f}** |"
    )
    verdict = "within" if result.within_budget else "OVER"
    rows += [
        "",
        f"Budget: £{result.budget_gbp:.2f} a month; the estimate is {verdict} "
        f"the budget (£{result.total_gbp:.2f}).",
    ]
    return "\n".join(rows)
