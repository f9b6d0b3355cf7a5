"""Monitor figures as Prometheus metrics and CloudWatch data; the service's EMF lines.

Prometheus: ``monitor_registry`` fills a registry with gauges of the report's last
day, which ``write_prometheus_file`` writes in the text format (for the node
exporter's textfile collector) and ``serve_metrics`` exposes on ``/metrics``.
CloudWatch: ``publish_cloudwatch`` sends a fixed set of aggregates with
``PutMetricData``; each CloudWatch custom metric is billed by the month, so the
per-feature drift stays in Prometheus and the report, and CloudWatch gets the
largest feature PSI. On AWS nothing can scrape a SageMaker container, so the
service's own figures leave as Embedded Metric Format (EMF) log lines, which
CloudWatch Logs turns into metrics: ``emf_line`` builds one per request.
``cloudwatch_metric_count`` gives the number of custom metrics both create, which
``make cost`` prices.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import polars as pl

from cardfraud.monitoring.monitor import ALERT_KINDS, DECISIONS, MonitorReport
from cardfraud.monitoring.reference import SCORE_NAME

logger = logging.getLogger(__name__)

NAMESPACE = "CardFraud"
SERVICE_NAMESPACE = "CardFraud/Service"
CLOUDWATCH_BATCH = 20
PERFORMANCE_METRICS = (
    "average_precision",
    "roc_auc",
    "precision",
    "recall",
    "card_precision",
)
"""Matured-performance columns exported to Prometheus, each with its interval."""
CLOUDWATCH_PERFORMANCE_METRICS = (
    "average_precision",
    "precision",
    "recall",
    "card_precision",
)
"""Matured-performance columns sent to CloudWatch.

ROC AUC stays in Prometheus because a CloudWatch custom metric is billed by the
month, and the count of ``performance_drop`` alerts already carries the result of
the monitor's ROC AUC test.
"""
CLOUDWATCH_BOUNDS = ("value", "low")
"""Matured-performance bounds sent to CloudWatch; the upper bound stays local."""
EMF_ROUTES = ("/invocations",)
"""Routes a SageMaker endpoint serves, each a value of the EMF ``Route`` dimension."""
EMF_METRICS = (
    ("Latency", "Milliseconds"),
    ("Requests", "Count"),
    ("Errors", "Count"),
    ("Degraded", "Count"),
    ("ColdStart", "Count"),
    ("Score", "None"),
    ("Approve", "Count"),
    ("Review", "Count"),
    ("Decline", "Count"),
)


def monitor_figures(report: MonitorReport) -> list[tuple[str, dict[str, str], float]]:
    """Return ``(name, labels, value)`` of every figure the monitor exports.

    Drift is the period's last day; performance is the last day with a matured
    figure. Names are Prometheus metric names without the ``cardfraud_monitor_``
    prefix.
    """
    figures: list[tuple[str, dict[str, str], float]] = []
    last_day = report.drift.filter(pl.col("day") == report.period[1])
    for row in last_day.iter_rows(named=True):
        if row["column"] == SCORE_NAME:
            figures.append(("score_psi", {}, row["psi"]))
            figures.append(("score_ks", {}, row["ks"]))
            continue
        figures.append(("feature_psi", {"feature": row["column"]}, row["psi"]))
    mix = report.decision_mix.tail(1)
    if mix.height:
        for name in DECISIONS:
            figures.append(
                ("decision_rate", {"decision": name}, mix[f"{name}_rate"][0])
            )
        figures.append(("review_queue", {}, float(mix["review_queue"][0])))
    matured = report.performance.drop_nulls("average_precision").tail(1)
    for name in PERFORMANCE_METRICS:
        if not matured.height:
            break
        for bound, column in (
            ("value", name),
            ("low", f"{name}_low"),
            ("high", f"{name}_high"),
        ):
            value = matured[column][0] if column in matured.columns else None
            if value is not None:
                figures.append((f"matured_{name}", {"bound": bound}, value))
    if report.performance.height:
        share = report.performance["unlabelled_share"][-1]
        if share is not None:
            figures.append(("unlabelled_share", {}, share))
    for kind in ALERT_KINDS:
        count = sum(1 for alert in report.alerts if alert["kind"] == kind)
        figures.append(("alerts", {"kind": kind}, float(count)))
    if report.skew is not None and report.skew.height:
        figures.append(
            ("skew_mismatch_share", {}, float(report.skew["mismatch_share"].max()))
        )
    return [
        (name, labels, float(value))
        for name, labels, value in figures
        if value is not None and math.isfinite(float(value))
    ]


def monitor_registry(report: MonitorReport) -> Any:
    """Return a Prometheus ``CollectorRegistry`` holding the report's figures."""
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    gauges: dict[str, Any] = {}
    for name, labels, value in monitor_figures(report):
        gauge = gauges.get(name)
        if gauge is None:
            gauge = Gauge(
                f"cardfraud_monitor_{name}",
                f"Monitor figure {name.replace('_', ' ')}.",
                labelnames=sorted(labels),
                registry=registry,
            )
            gauges[name] = gauge
        (gauge.labels(**labels) if labels else gauge).set(value)
    for name, title, baseline in (
        ("average_precision", "average precision", report.baseline_average_precision),
        ("roc_auc", "ROC AUC", report.baseline_roc_auc),
    ):
        Gauge(
            f"cardfraud_monitor_baseline_{name}",
            f"The model's matured {title} on its test window; NaN when no fraud of "
            "that window was reported within the maturity delay.",
            registry=registry,
        ).set(math.nan if baseline is None else baseline)
    info = Gauge(
        "cardfraud_monitor_model_info",
        "Model versions that made the period's decisions (value 1).",
        labelnames=["model_version"],
        registry=registry,
    )
    for version in report.data_quality.get("model_versions", []):
        info.labels(model_version=str(version)).set(1)
    Gauge(
        "cardfraud_monitor_last_run_timestamp_seconds",
        "Unix time of the monitor run that set these figures.",
        registry=registry,
    ).set(time.time())
    return registry


def write_prometheus_file(report: MonitorReport, path: Path) -> Path:
    """Write the report's figures in the Prometheus text format to ``path``."""
    from prometheus_client import write_to_textfile

    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), monitor_registry(report))
    return path


def serve_metrics(registry: Any, *, port: int, host: str = "127.0.0.1") -> Any:
    """Serve ``registry`` on ``http://host:port/metrics``; returns the server."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=host, registry=registry)
    logger.info("serving monitor metrics on http://%s:%d/metrics", host, port)
    return server


def cloudwatch_figures(
    report: MonitorReport,
) -> list[tuple[str, dict[str, str], float]]:
    """Return the subset of ``monitor_figures`` that goes to CloudWatch.

    Per-feature PSI becomes one ``max_feature_psi`` figure, and matured performance
    keeps the value and lower bound of ``CLOUDWATCH_PERFORMANCE_METRICS``, so that
    the number of custom metrics is fixed (``cloudwatch_metric_count``) whatever
    the number of features.
    """
    figures = []
    feature_psi = []
    for name, labels, value in monitor_figures(report):
        if name == "feature_psi":
            feature_psi.append(value)
        elif name.startswith("matured_") and not sent_to_cloudwatch(name, labels):
            continue
        else:
            figures.append((name, labels, value))
    if feature_psi:
        figures.append(("max_feature_psi", {}, max(feature_psi)))
    return figures


def sent_to_cloudwatch(name: str, labels: dict[str, str]) -> bool:
    """Return whether a ``matured_`` figure is one of CloudWatch's metrics."""
    metric = name.removeprefix("matured_")
    return (
        metric in CLOUDWATCH_PERFORMANCE_METRICS
        and labels["bound"] in CLOUDWATCH_BOUNDS
    )


def cloudwatch_metric_count() -> dict[str, int]:
    """Return the custom metrics the monitor and the service create on CloudWatch.

    One model version at a time: CloudWatch bills a custom metric by the hour it
    receives data, so the metrics of a replaced version stop costing money.
    """
    monitor = (
        len(("score_psi", "score_ks", "max_feature_psi"))
        + len(DECISIONS)
        + len(("review_queue", "unlabelled_share", "skew_mismatch_share"))
        + len(CLOUDWATCH_PERFORMANCE_METRICS) * len(CLOUDWATCH_BOUNDS)
        + len(ALERT_KINDS)
    )
    return {"monitor": monitor, "service": len(EMF_METRICS) * len(EMF_ROUTES)}


def cloudwatch_data(
    report: MonitorReport, *, model_version: str = ""
) -> list[dict[str, Any]]:
    """Return ``PutMetricData`` entries of the report's CloudWatch figures."""
    entries = []
    for name, labels, value in cloudwatch_figures(report):
        dimensions = [
            {"Name": key.capitalize(), "Value": item}
            for key, item in sorted(labels.items())
        ]
        if model_version:
            dimensions.append({"Name": "ModelVersion", "Value": model_version})
        entries.append(
            {
                "MetricName": "".join(part.capitalize() for part in name.split("_")),
                "Dimensions": dimensions,
                "Value": value,
                "Unit": "Count" if name in ("review_queue", "alerts") else "None",
            }
        )
    return entries


def publish_cloudwatch(
    report: MonitorReport,
    *,
    region: str,
    namespace: str = NAMESPACE,
    endpoint_url: str | None = None,
    model_version: str = "",
) -> int:
    """Send the report's figures to CloudWatch; returns the number of data points.

    Args:
        report: The monitor report.
        region: AWS region.
        namespace: CloudWatch namespace of the metrics.
        endpoint_url: Endpoint other than AWS's, for example a local moto server.
        model_version: Added as the ``ModelVersion`` dimension when set.
    """
    import boto3

    client = boto3.client("cloudwatch", region_name=region, endpoint_url=endpoint_url)
    entries = cloudwatch_data(report, model_version=model_version)
    for start in range(0, len(entries), CLOUDWATCH_BATCH):
        client.put_metric_data(
            Namespace=namespace, MetricData=entries[start : start + CLOUDWATCH_BATCH]
        )
    logger.info(
        "published %d monitor figure(s) to CloudWatch %s", len(entries), namespace
    )
    return len(entries)


def emf_line(
    response: dict[str, Any],
    *,
    route: str,
    status: int,
    latency_s: float,
    namespace: str = SERVICE_NAMESPACE,
    timestamp_ms: int | None = None,
) -> str:
    """Return one Embedded Metric Format log line for a scored request.

    The line carries the latency, a request count, the score, flags for a degraded
    or cold-start score and one count per decision, with the route as the only
    dimension; CloudWatch Logs extracts them as metrics of ``namespace``. The
    decision is a metric rather than a dimension, and the model version a
    property, so that the number of custom metrics stays ``EMF_METRICS`` per route.

    Args:
        response: The scoring core's response (``score``, ``decision``,
            ``degraded``, ``missing_features``, ``model_version``).
        route: The HTTP route, for example ``/invocations``.
        status: HTTP status code returned.
        latency_s: Time from request to response, seconds.
        namespace: CloudWatch namespace.
        timestamp_ms: Unix time in milliseconds; default now.
    """
    decision = response.get("decision")
    document = {
        "_aws": {
            "Timestamp": timestamp_ms
            if timestamp_ms is not None
            else int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [["Route"]],
                    "Metrics": [
                        {"Name": name, "Unit": unit} for name, unit in EMF_METRICS
                    ],
                }
            ],
        },
        "Route": route,
        "Decision": decision or "none",
        "ModelVersion": str(response.get("model_version", "")),
        "TransactionId": str(response.get("transaction_id", "")),
        "Latency": round(latency_s * 1000.0, 3),
        "Requests": 1,
        "Errors": 1 if status >= 500 else 0,
        "Degraded": 1 if response.get("degraded") else 0,
        "ColdStart": 1 if response.get("missing_features") else 0,
        "Score": float(response.get("score", 0.0)),
        **{name.title(): int(decision == name) for name in DECISIONS},
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def weekly_summary_message(summary: dict[str, Any]) -> dict[str, Any]:
    """Return the weekly chat message of a monitor summary (a ``text`` payload).

    The text gives the period, the decisions and their mix, the matured average
    precision with its interval against the baseline, the unlabelled share and the
    alerts raised.
    """
    mix = summary["decision_mix"]
    matured = summary.get("matured_performance") or {}
    lines = [
        f"Card fraud weekly monitor, {summary['period']['start']} to "
        f"{summary['period']['end']}",
        f"decisions: {mix['rows']} (review {mix['review_rate']:.2%}, "
        f"decline {mix['decline_rate']:.2%})",
    ]
    if matured.get("average_precision") is not None:
        lines.append(
            f"matured AP {matured['average_precision']:.3f} "
            f"[{matured.get('average_precision_low', float('nan')):.3f}, "
            f"{matured.get('average_precision_high', float('nan')):.3f}] "
            f"on {matured['day']}, baseline {summary.get('baseline_average_precision')}"
        )
    else:
        lines.append("matured AP: not enough reported frauds yet")
    lines.append(f"unlabelled share: {summary.get('unlabelled_share')}")
    alerts = summary.get("alerts", [])
    lines.append(
        "alerts: "
        + (
            "; ".join(
                f"{a['kind']} {a['subject']} since {a['first_day']}" for a in alerts
            )
            if alerts
            else "none"
        )
    )
    return {"text": "\n".join(lines)}


def post_weekly_summary(
    summary: dict[str, Any], *, webhook_url: str, timeout_s: float = 10.0
) -> int:
    """Post the weekly summary to the chat webhook; returns the HTTP status.

    Raises:
        httpx.HTTPStatusError: The webhook returned an error status.
    """
    import httpx

    response = httpx.post(
        webhook_url, json=weekly_summary_message(summary), timeout=timeout_s
    )
    response.raise_for_status()
    logger.info("posted the weekly monitor summary (status %d)", response.status_code)
    return response.status_code
