"""Stage monitor: drift, decision mix, matured performance and skew of the replay.

Reads the replay's audit log and label events, compares them with the champion's
reference profile, and writes ``metrics/monitor.json`` (the summary and the alerts),
the plot data under ``plots/`` and the Prometheus text file
``metrics/monitor.prom``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import polars as pl

from cardfraud.monitoring.decisions import read_audit_decisions, read_label_events
from cardfraud.monitoring.exporters import write_prometheus_file
from cardfraud.monitoring.monitor import MonitorReport, run_monitor
from cardfraud.monitoring.performance import MaturedBaseline, matured_baseline
from cardfraud.monitoring.reference import (
    ReferenceProfile,
    profile_for_model,
    read_profile,
    window_rows,
)
from cardfraud.monitoring.settings import monitor_settings
from cardfraud.params import EvaluateParams, MonitorParams, RegisterParams
from cardfraud.paths import Workspace
from cardfraud.stages.replay import AUDIT_FILE, LABELS_FILE, replay_dir
from cardfraud.training import TrainedModel, load_model

logger = logging.getLogger(__name__)

METRICS_FILE = "monitor.json"
PROMETHEUS_FILE = "monitor.prom"
PLOT_FILES = {
    "drift": "monitor_drift.csv",
    "decision_mix": "monitor_decisions.csv",
    "performance": "monitor_performance.csv",
}
FEATURES_FILE = "features.parquet"


def champion_profile(
    ws: Workspace, model: TrainedModel, features: pl.DataFrame
) -> ReferenceProfile:
    """Return the reference profile stored with the champion, or build it.

    The candidate folder's profile belongs to the champion when the candidate is
    the same model (equal metadata); otherwise the profile is built from the
    feature table rows the champion was fitted on.
    """
    try:
        candidate = load_model(ws.candidate_dir)
        if candidate.meta == model.meta:
            return read_profile(ws.candidate_dir)
    except FileNotFoundError:
        pass
    logger.info("building the champion's reference profile from the feature table")
    return profile_for_model(features, model)


def champion_baseline(
    model: TrainedModel,
    features: pl.DataFrame,
    raw: pl.DataFrame,
    *,
    params: MonitorParams,
) -> MaturedBaseline | None:
    """Return the champion's test-window performance under the monitor's labelling."""
    test = model.meta.get("windows", {}).get("test")
    if test is None:
        return None
    rows = window_rows(features, test)
    if "label_available_at" not in rows.columns:
        rows = rows.join(
            raw.select("transaction_id", "label_available_at"), "transaction_id", "left"
        )
    if rows.height == 0 or not rows["is_fraud"].any():
        return None
    return matured_baseline(
        rows,
        model.predict_proba(rows),
        maturity_days=params.maturity_days,
        bootstrap_rounds=params.bootstrap_rounds,
        seed=params.seed,
    )


def write_outputs(ws: Workspace, report: MonitorReport) -> dict[str, Any]:
    """Write the summary, the plot data and the Prometheus file; return the summary."""
    summary = report.summary()
    ws.metrics_dir.mkdir(parents=True, exist_ok=True)
    ws.plots_dir.mkdir(parents=True, exist_ok=True)
    (ws.metrics_dir / METRICS_FILE).write_text(
        json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    report.drift.select(
        "day", "column", "rows", "psi", "ks", "chi2", "js_distance"
    ).write_csv(ws.plots_dir / PLOT_FILES["drift"], float_precision=6)
    report.decision_mix.write_csv(
        ws.plots_dir / PLOT_FILES["decision_mix"], float_precision=6
    )
    report.performance.write_csv(
        ws.plots_dir / PLOT_FILES["performance"], float_precision=6
    )
    write_prometheus_file(report, ws.metrics_dir / PROMETHEUS_FILE)
    return summary


def run(
    ws: Workspace,
    params: MonitorParams,
    *,
    registry: RegisterParams,
    evaluate: EvaluateParams,
) -> dict[str, Any]:
    """Monitor the replay's decisions and write the summary and plot data.

    Returns:
        The content of ``metrics/monitor.json``.
    """
    from cardfraud.data import read_transactions
    from cardfraud.served_model import load_from_registry

    served = load_from_registry(
        tracking_uri=ws.tracking_uri(), model_name=registry.model_name, alias="champion"
    )
    model = served.model
    features = pl.read_parquet(ws.features_dir / FEATURES_FILE)
    raw = read_transactions(ws.raw_dir)
    folder = replay_dir(ws)
    decisions = read_audit_decisions(
        folder / AUDIT_FILE, feature_columns=model.feature_columns
    )
    labels = read_label_events(folder / LABELS_FILE)
    settings = monitor_settings(
        params,
        review_threshold=model.thresholds["review"],
        alerts_per_10000=evaluate.alerts_per_10000,
        baseline=champion_baseline(model, features, raw, params=params),
    )
    report = run_monitor(
        decisions,
        labels,
        champion_profile(ws, model, features),
        settings,
        feature_columns=model.feature_columns,
        offline_features=features,
    )
    return write_outputs(ws, report)


def read_summary(ws: Workspace) -> dict[str, Any]:
    """Read ``metrics/monitor.json``."""
    path: Path = ws.metrics_dir / METRICS_FILE
    return json.loads(path.read_text(encoding="utf-8"))
