"""The monitor over the live audit log, for a schedule (``cardfraud monitor``).

Reads the decisions made since a day, the fraud reports known now, and the
champion's reference profile, then writes the summary and the Prometheus text file,
and optionally publishes the figures to CloudWatch.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import polars as pl

from cardfraud.monitoring.decisions import (
    label_events_from_transactions,
    read_audit_decisions,
    read_label_events,
)
from cardfraud.monitoring.exporters import (
    post_weekly_summary,
    publish_cloudwatch,
    write_prometheus_file,
)
from cardfraud.monitoring.monitor import MonitorReport, run_monitor
from cardfraud.monitoring.settings import monitor_settings
from cardfraud.params import load_params
from cardfraud.paths import Workspace

logger = logging.getLogger(__name__)

SUMMARY_FILE = "monitor-live.json"
PROMETHEUS_FILE = "monitor-live.prom"


@dataclass(frozen=True)
class LiveRequest:
    """Inputs and outputs of one scheduled monitor run.

    Attributes:
        workspace: Workspace with the MLflow store, the feature table and raw data.
        params_path: The parameters file.
        since: First event day monitored (UTC).
        until: Last event day monitored; None for today.
        audit_db: Audit log; None for the workspace's ``state/audit.db``.
        labels: Label events file; None takes the reports in the workspace's raw
            data that are known now.
        out_dir: Folder of the summary and the Prometheus file; None for
            ``metrics/`` of the workspace.
        cloudwatch_region: Region to publish to; None publishes nothing.
        cloudwatch_endpoint: Endpoint other than AWS's (a local moto server).
        chat_webhook_url: Chat webhook that receives the summary message; None
            sends nothing.
    """

    workspace: Workspace
    params_path: Path
    since: date
    until: date | None = None
    audit_db: Path | None = None
    labels: Path | None = None
    out_dir: Path | None = None
    cloudwatch_region: str | None = None
    cloudwatch_endpoint: str | None = None
    chat_webhook_url: str | None = None


def read_raw_transactions(ws: Workspace) -> pl.DataFrame | None:
    """Return the workspace's raw transactions, or None when it has none."""
    from cardfraud.data import read_transactions

    if not (ws.raw_dir / "manifest.json").is_file():
        return None
    return read_transactions(ws.raw_dir)


def known_label_events(
    request: LiveRequest, raw: pl.DataFrame | None, now: datetime
) -> pl.DataFrame:
    """Return the fraud reports known at ``now``.

    Raises:
        FileNotFoundError: No label file is given and the workspace has no raw data.
    """
    if request.labels is not None:
        events = read_label_events(request.labels)
    elif raw is not None:
        events = label_events_from_transactions(raw)
    else:
        raise FileNotFoundError(
            "no label events: pass --labels, or generate data in "
            f"{request.workspace.root}"
        )
    return events.filter(pl.col("label_available_at") <= now)


def run_live_monitor(
    request: LiveRequest, *, now: datetime | None = None
) -> tuple[MonitorReport, dict[str, Any]]:
    """Monitor the live log and write the summary; returns the report and summary.

    Raises:
        FileNotFoundError: The audit log, the label file or the feature table is
            missing.
        ValueError: No decision falls in the period.
    """
    from cardfraud.served_model import load_from_registry
    from cardfraud.stages.monitor import champion_baseline, champion_profile

    now = now or datetime.now(UTC)
    params = load_params(request.params_path)
    ws = request.workspace
    served = load_from_registry(
        tracking_uri=ws.tracking_uri(),
        model_name=params.registry.model_name,
        alias="champion",
    )
    model = served.model
    since = datetime.combine(request.since, time(), tzinfo=UTC)
    last_day = request.until or now.date()
    decisions = read_audit_decisions(
        request.audit_db or ws.audit_db,
        feature_columns=model.feature_columns,
        since=since,
    )
    features = pl.read_parquet(ws.features_dir / "features.parquet")
    raw = read_raw_transactions(ws)
    settings = monitor_settings(
        params.monitor,
        review_threshold=model.thresholds["review"],
        alerts_per_10000=params.evaluate.alerts_per_10000,
        baseline=None
        if raw is None
        else champion_baseline(model, features, raw, params=params.monitor),
    )
    report = run_monitor(
        decisions,
        known_label_events(request, raw, now),
        champion_profile(ws, model, features),
        settings,
        feature_columns=model.feature_columns,
        offline_features=features,
        period=(request.since, last_day),
    )
    summary = report.summary() | {"model_version": served.version}
    out_dir = request.out_dir or ws.metrics_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / SUMMARY_FILE).write_text(
        json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    write_prometheus_file(report, out_dir / PROMETHEUS_FILE)
    if request.cloudwatch_region is not None:
        publish_cloudwatch(
            report,
            region=request.cloudwatch_region,
            endpoint_url=request.cloudwatch_endpoint,
            model_version=served.version,
        )
    if request.chat_webhook_url is not None:
        post_weekly_summary(summary, webhook_url=request.chat_webhook_url)
    return report, summary
