"""Prometheus alerting rules and the Alertmanager configuration, from params.yaml.

``alert_rules`` writes the thresholds of the ``monitor`` section into the rules, so
``infra/monitoring/prometheus/rules.yml`` is generated, never edited by hand:
``python -m cardfraud.monitoring.alert_rules`` rewrites it, and a test fails when the
committed file differs from what the parameters give. ``render_alertmanager_config``
fills the Alertmanager template's URLs from the environment, because Alertmanager
itself does not expand environment variables.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from cardfraud.params import MonitorParams, load_params
from cardfraud.paths import project_root

RULES_PATH = Path("infra/monitoring/prometheus/rules.yml")
ALERTMANAGER_TEMPLATE = Path("infra/monitoring/alertmanager/alertmanager.yml.tmpl")
RATE_WINDOW = "5m"
SERVICE_FOR = "5m"
MONITOR_FOR = "0m"
HEADER = (
    "# Generated from the monitor section of params.yaml by\n"
    "# `python -m cardfraud.monitoring.alert_rules`; edit params.yaml, not this file.\n"
)
PLACEHOLDER = re.compile(r"\$\{([A-Z0-9_]+)\}")


def rule(
    name: str, expr: str, *, duration: str, severity: str, summary: str
) -> dict[str, Any]:
    """Return one alerting rule."""
    return {
        "alert": name,
        "expr": expr,
        "for": duration,
        "labels": {"severity": severity, "service": "cardfraud"},
        "annotations": {"summary": summary},
    }


def service_rules(params: MonitorParams) -> list[dict[str, Any]]:
    """Rules on the scoring service's own metrics."""
    requests = f"sum(rate(cardfraud_requests_total[{RATE_WINDOW}]))"
    latency = (
        "histogram_quantile(0.99, sum by (le) (rate("
        f'cardfraud_request_duration_seconds_bucket{{route=~"/score.*|/invocations"}}'
        f"[{RATE_WINDOW}])))"
    )
    return [
        rule(
            "CardFraudLatencyP99High",
            f"{latency} > {params.latency_p99_ms / 1000:g}",
            duration=SERVICE_FOR,
            severity="page",
            summary=f"p99 scoring latency above {params.latency_p99_ms:g} ms",
        ),
        rule(
            "CardFraudErrorRateHigh",
            f'sum(rate(cardfraud_requests_total{{status=~"5.."}}[{RATE_WINDOW}])) '
            f"/ {requests} > {params.error_rate:g}",
            duration=SERVICE_FOR,
            severity="page",
            summary=f"more than {params.error_rate:.1%} of requests fail with 5xx",
        ),
        rule(
            "CardFraudDegradedResponses",
            f"sum(rate(cardfraud_degraded_total[{RATE_WINDOW}])) "
            f"/ sum(rate(cardfraud_decisions_total[{RATE_WINDOW}])) "
            f"> {params.degraded_rate:g}",
            duration=SERVICE_FOR,
            severity="ticket",
            summary=f"more than {params.degraded_rate:.1%} of scores are degraded "
            "(online store unavailable)",
        ),
    ]


def monitor_rules(params: MonitorParams) -> list[dict[str, Any]]:
    """Rules on the monitor's figures (drift of the last day, matured performance)."""
    excluded = "|".join(sorted(params.drift_exclude))
    selector = f'{{feature!~"{excluded}"}}' if excluded else ""
    return [
        rule(
            "CardFraudFeatureDrift",
            f"cardfraud_monitor_feature_psi{selector} >= {params.psi_alert:g}",
            duration=MONITOR_FOR,
            severity="ticket",
            summary=f"feature {{{{ $labels.feature }}}} PSI at or above "
            f"{params.psi_alert:g}",
        ),
        rule(
            "CardFraudScoreDrift",
            f"cardfraud_monitor_score_psi >= {params.score_psi_alert:g}",
            duration=MONITOR_FOR,
            severity="ticket",
            summary=f"score PSI at or above {params.score_psi_alert:g}",
        ),
        performance_drop_rule(params),
        average_precision_drop_rule(params),
    ]


def performance_drop_rule(params: MonitorParams) -> dict[str, Any]:
    """Return the page rule that fires once the monitor raised a performance alert.

    The test itself runs in the monitor (``performance_alerts`` in
    ``cardfraud.monitoring.monitor``), which exports the number of alerts it
    raised per kind as ``cardfraud_monitor_alerts``. The rule only reads that
    count, so the z-test and its confirmation days are computed in one place.
    """
    return rule(
        "CardFraudMaturedPerformanceDrop",
        'cardfraud_monitor_alerts{kind="performance_drop"} > 0',
        duration=MONITOR_FOR,
        severity="page",
        summary="the monitor found matured ROC AUC below the baseline on "
        f"{params.confirm_days} consecutive days (one-sided z-test at "
        f"{params.performance_alpha:g}, Gini {params.performance_gini_drop:.0%} "
        "or more lower)",
    )


def average_precision_drop_rule(params: MonitorParams) -> dict[str, Any]:
    """Return the ticket rule on matured average precision against its baseline.

    ROC AUC is the share of (fraud, legitimate) pairs in order, so 100 of 10,000
    legitimate payments moving above every fraud lower it by at most 0.01, while
    precision at the top of the ranking, which reviewers see, collapses. Average
    precision also falls when the fraud rate falls with the model unchanged, so
    this rule opens a ticket instead of paging. It fires when the value is
    ``performance_drop`` or more below the baseline and the upper bound of its
    interval is below the baseline too.
    """
    floor = 1.0 - params.performance_drop
    return rule(
        "CardFraudMaturedAveragePrecisionDrop",
        '(cardfraud_monitor_matured_average_precision{bound="value"} '
        f"<= ignoring(bound) {floor:g} * "
        "cardfraud_monitor_baseline_average_precision)"
        " and ignoring(bound) "
        '(cardfraud_monitor_matured_average_precision{bound="high"} '
        "< ignoring(bound) cardfraud_monitor_baseline_average_precision)",
        duration=MONITOR_FOR,
        severity="ticket",
        summary=f"matured average precision {params.performance_drop:.0%} or more "
        "below the baseline, interval below it too",
    )


def alert_rules(params: MonitorParams) -> dict[str, Any]:
    """Return the Prometheus rule file's content."""
    return {
        "groups": [
            {"name": "cardfraud-service", "rules": service_rules(params)},
            {"name": "cardfraud-monitor", "rules": monitor_rules(params)},
        ]
    }


def rules_text(params: MonitorParams) -> str:
    """Return the rule file as YAML text with its header."""
    body = yaml.safe_dump(alert_rules(params), sort_keys=False, width=1000)
    return HEADER + body


def render_alertmanager_config(
    template: str, environment: Mapping[str, str] | None = None
) -> str:
    """Replace each ``${NAME}`` in the template with the environment's value.

    Raises:
        KeyError: A placeholder has no value; the message names every missing one.
    """
    environment = os.environ if environment is None else environment
    missing = sorted(
        {name for name in PLACEHOLDER.findall(template) if not environment.get(name)}
    )
    if missing:
        raise KeyError(
            f"environment variable(s) {missing} unset: set the chat webhook URL, the "
            "SNS topic ARN and its region before rendering the Alertmanager config"
        )
    return PLACEHOLDER.sub(lambda match: environment[match.group(1)], template)


def main(argv: list[str] | None = None) -> int:
    """Rewrite the rule file from params.yaml (``--check`` only compares)."""
    argv = sys.argv[1:] if argv is None else argv
    root = project_root()
    text = rules_text(load_params(root / "params.yaml").monitor)
    path = root / RULES_PATH
    if "--check" in argv:
        current = path.read_text(encoding="utf-8") if path.is_file() else ""
        if current != text:
            print(
                f"{path} differs from params.yaml; run without --check", file=sys.stderr
            )
            return 1
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
