"""Weekly cost report from the Cost Explorer API: spend per service.

Cost Explorer bills each API request (0.01 USD at the time of writing), so the
report makes one request per page, and the weekly workflow runs it once a week.
Filtering on the ``project`` tag needs that tag activated as a cost allocation tag
in the Billing console; before then the filter matches nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

# Cost Explorer's API lives in us-east-1 whatever the stack's region.
COST_EXPLORER_REGION = "us-east-1"
METRIC = "UnblendedCost"


@dataclass(frozen=True)
class CostReport:
    """Spend per service over a period, end exclusive."""

    start: date
    end: date
    currency: str
    by_service: dict[str, float]

    @property
    def total(self) -> float:
        """Spend over all services."""
        return sum(self.by_service.values())


def cost_request(*, start: date, end: date, project: str | None) -> dict[str, Any]:
    """Return the GetCostAndUsage parameters: daily cost grouped by service."""
    request: dict[str, Any] = {
        "TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()},
        "Granularity": "DAILY",
        "Metrics": [METRIC],
        "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}],
    }
    if project:
        request["Filter"] = {"Tags": {"Key": "project", "Values": [project]}}
    return request


def weekly_cost_report(
    ce: Any, *, end: date, days: int = 7, project: str | None = None
) -> CostReport:
    """Sum the daily cost per service over ``days`` days before ``end``.

    Args:
        ce: A boto3 Cost Explorer client.
        end: First day after the period (exclusive, as Cost Explorer takes it).
        project: Value of the ``project`` tag to filter on; None for the account.
    """
    start = end - timedelta(days=days)
    request = cost_request(start=start, end=end, project=project)
    by_service: dict[str, float] = {}
    currency = "USD"
    token = None
    while True:
        answer = ce.get_cost_and_usage(
            **request, **({"NextPageToken": token} if token else {})
        )
        for period in answer.get("ResultsByTime", []):
            for group in period.get("Groups", []):
                service = group["Keys"][0]
                amount = group["Metrics"][METRIC]
                currency = amount.get("Unit", currency)
                by_service[service] = by_service.get(service, 0.0) + float(
                    amount["Amount"]
                )
        token = answer.get("NextPageToken")
        if not token:
            break
    return CostReport(start=start, end=end, currency=currency, by_service=by_service)


def format_cost_report(report: CostReport) -> str:
    """Render the report as markdown, the most expensive service first."""
    rows = [
        f"Cost by service, {report.start} to {report.end} (end exclusive), "
        f"{report.currency}",
        "",
        "| service | cost |",
        "|---|---:|",
    ]
    for service, amount in sorted(report.by_service.items(), key=lambda i: -i[1]):
        rows.append(f"| {service} | {amount:.2f} |")
    rows.append(f"| **total** | **{report.total:.2f}** |")
    return "\n".join(rows)
