"""Monitor figures as Prometheus metrics, CloudWatch data (moto) and EMF lines."""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import httpx
import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from cardfraud.monitoring.alert_rules import RULES_PATH, alert_rules
from cardfraud.monitoring.exporters import (
    EMF_METRICS,
    cloudwatch_data,
    cloudwatch_metric_count,
    emf_line,
    monitor_figures,
    monitor_registry,
    post_weekly_summary,
    publish_cloudwatch,
    serve_metrics,
    weekly_summary_message,
)
from cardfraud.params import load_params
from cardfraud.paths import project_root
from tests.monitoring.drift_scenarios import ScenarioRun, run_scenario
from tests.monitoring.prometheus_stack import free_port, http_server, require_binary
from tests.support.aws import use_fake_aws_credentials

REGION = "eu-west-2"


@pytest.fixture(scope="module")
def drifted() -> ScenarioRun:
    return run_scenario(3, drift=True)


def samples(registry) -> dict[tuple[str, tuple], float]:
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_registry_holds_last_day_figures(drifted: ScenarioRun):
    report = drifted.report
    values = samples(monitor_registry(report))
    last = report.drift.filter(report.drift["day"] == report.period[1])
    psi = dict(zip(last["column"], last["psi"], strict=True))
    assert values[
        ("cardfraud_monitor_feature_psi", (("feature", "log_amount"),))
    ] == pytest.approx(psi["log_amount"])
    assert values[("cardfraud_monitor_score_psi", ())] == pytest.approx(psi["score"])
    assert values[("cardfraud_monitor_alerts", (("kind", "performance_drop"),))] == 1.0
    assert values[
        ("cardfraud_monitor_baseline_average_precision", ())
    ] == pytest.approx(drifted.baseline)
    assert values[("cardfraud_monitor_model_info", (("model_version", "1"),))] == 1.0


def test_registry_holds_matured_roc_auc(drifted: ScenarioRun):
    report = drifted.report
    values = samples(monitor_registry(report))
    matured = report.performance.drop_nulls("average_precision").row(-1, named=True)
    for bound, column in (
        ("value", "roc_auc"),
        ("low", "roc_auc_low"),
        ("high", "roc_auc_high"),
    ):
        exported = values[("cardfraud_monitor_matured_roc_auc", (("bound", bound),))]
        assert exported == pytest.approx(matured[column]), bound
    assert matured["roc_auc_low"] < matured["roc_auc"] < matured["roc_auc_high"]
    assert values[("cardfraud_monitor_baseline_roc_auc", ())] == pytest.approx(
        drifted.matured_baseline.roc_auc
    )


def test_registry_baselines_nan_without_baseline(drifted: ScenarioRun):
    report = replace(
        drifted.report, baseline_average_precision=None, baseline_roc_auc=None
    )
    values = samples(monitor_registry(report))
    assert math.isnan(values[("cardfraud_monitor_baseline_average_precision", ())])
    assert math.isnan(values[("cardfraud_monitor_baseline_roc_auc", ())])


def test_cloudwatch_leaves_out_roc_auc(drifted: ScenarioRun):
    prometheus_names = {name for name, _, _ in monitor_figures(drifted.report)}
    entries = cloudwatch_data(drifted.report, model_version="1")
    cloudwatch_names = {entry["MetricName"] for entry in entries}
    metrics = {
        (entry["MetricName"], tuple(sorted(map(str, entry["Dimensions"]))))
        for entry in entries
    }
    assert "matured_roc_auc" in prometheus_names
    assert "MaturedRocAuc" not in cloudwatch_names
    assert "MaturedAveragePrecision" in cloudwatch_names
    assert len(metrics) == len(entries)
    assert len(entries) == cloudwatch_metric_count()["monitor"]


def test_page_rule_fires_on_exported_alert(drifted: ScenarioRun, tmp_path: Path):
    """promtool evaluates the generated rules on the drifted run's exported gauges."""
    promtool = require_binary("promtool")
    series = [
        {"series": series_selector(name, labels), "values": f"{value!r}x5"}
        for (name, labels), value in samples(monitor_registry(drifted.report)).items()
        if math.isfinite(value)
    ]
    params = load_params(project_root() / "params.yaml").monitor
    (page_rule,) = [
        rule
        for group in alert_rules(params)["groups"]
        for rule in group["rules"]
        if rule["alert"] == "CardFraudMaturedPerformanceDrop"
    ]
    expected = {
        "exp_labels": page_rule["labels"] | {"kind": "performance_drop"},
        "exp_annotations": page_rule["annotations"],
    }

    path = tmp_path / "exported_test.yml"
    path.write_text(
        yaml.safe_dump(promtool_alert_test(series, page_rule["alert"], [expected])),
        encoding="utf-8",
    )
    checked = subprocess.run(
        [promtool, "test", "rules", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert len(series) > 10
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def promtool_alert_test(
    series: list[dict[str, str]], alert: str, expected: list[dict]
) -> dict:
    """Return a promtool rule test of the project's rules.yml on constant series."""
    return {
        "rule_files": [str(project_root() / RULES_PATH)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": "2m", "alertname": alert, "exp_alerts": expected}
                ],
            }
        ],
    }


def series_selector(name: str, labels: tuple[tuple[str, str], ...]) -> str:
    """Return a series in the promtool notation, such as ``name{key="value"}``."""
    if not labels:
        return name
    pairs = ", ".join(f'{key}="{value}"' for key, value in labels)
    return f"{name}{{{pairs}}}"


def test_served_metrics_answer_scrape(drifted: ScenarioRun):
    port = free_port()
    server = serve_metrics(monitor_registry(drifted.report), port=port)
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        server.shutdown()
    assert "cardfraud_monitor_score_psi" in text
    assert 'cardfraud_monitor_decision_rate{decision="review"}' in text


def test_cloudwatch_publish_to_moto(
    drifted: ScenarioRun, fresh_moto_url: str, monkeypatch, tmp_path: Path
):
    """CloudWatch is a moto server on 127.0.0.1; no request leaves the machine."""
    use_fake_aws_credentials(monkeypatch, tmp_path, region=REGION)
    url = fresh_moto_url
    sent = publish_cloudwatch(
        drifted.report, region=REGION, endpoint_url=url, model_version="1"
    )

    client = boto3.client("cloudwatch", region_name=REGION, endpoint_url=url)
    metrics = client.list_metrics(Namespace="CardFraud")["Metrics"]
    now = datetime.now(UTC)
    stats = client.get_metric_statistics(
        Namespace="CardFraud",
        MetricName="ScorePsi",
        Dimensions=[{"Name": "ModelVersion", "Value": "1"}],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(hours=1),
        Period=3600,
        Statistics=["Maximum"],
    )["Datapoints"]

    names = {metric["MetricName"] for metric in metrics}
    feature_psi = [
        v for n, _, v in monitor_figures(drifted.report) if n == "feature_psi"
    ]
    max_psi = next(
        entry["Value"]
        for entry in cloudwatch_data(drifted.report)
        if entry["MetricName"] == "MaxFeaturePsi"
    )
    assert sent == len(cloudwatch_data(drifted.report, model_version="1"))
    assert {"MaxFeaturePsi", "ScorePsi", "MaturedAveragePrecision", "Alerts"} <= names
    assert "FeaturePsi" not in names
    assert len(metrics) == sent
    assert sent <= cloudwatch_metric_count()["monitor"]
    assert max_psi == max(feature_psi)
    score_psi = next(
        v for n, _, v in monitor_figures(drifted.report) if n == "score_psi"
    )
    assert stats[0]["Maximum"] == pytest.approx(score_psi)


def test_emf_line_declares_its_metrics():
    response = {
        "score": 0.42,
        "decision": "review",
        "degraded": False,
        "missing_features": ["card_state"],
        "model_version": "3",
    }
    document = json.loads(
        emf_line(
            response, route="/score", status=200, latency_s=0.0123, timestamp_ms=1_000
        )
    )
    declared = document["_aws"]["CloudWatchMetrics"][0]
    names = {metric["Name"] for metric in declared["Metrics"]}
    assert document["_aws"]["Timestamp"] == 1_000
    assert declared["Namespace"] == "CardFraud/Service"
    assert all(name in document for name in names)
    assert all(key in document for dims in declared["Dimensions"] for key in dims)
    assert document["Latency"] == 12.3
    assert document["ColdStart"] == 1
    assert document["Degraded"] == 0
    assert document["Errors"] == 0
    assert document["Decision"] == "review"
    assert (document["Approve"], document["Review"], document["Decline"]) == (0, 1, 0)
    assert declared["Dimensions"] == [["Route"]]
    assert len(declared["Metrics"]) == len(EMF_METRICS)
    assert document["ModelVersion"] == "3"


def test_emf_line_counts_server_error():
    document = json.loads(emf_line({}, route="/score", status=503, latency_s=0.5))
    assert document["Errors"] == 1
    assert document["Decision"] == "none"
    assert (document["Approve"], document["Review"], document["Decline"]) == (0, 0, 0)
    assert math.isclose(document["Latency"], 500.0)


def test_weekly_summary_reaches_webhook(drifted: ScenarioRun):
    summary = drifted.report.summary()
    with http_server() as chat:
        status = post_weekly_summary(
            summary, webhook_url=f"http://127.0.0.1:{chat.server_port}/hook"
        )
    text = chat.bodies[0]["text"]
    assert status == 200
    assert text == weekly_summary_message(summary)["text"]
    assert "performance_drop roc_auc" in text
    assert f"decisions: {summary['decision_mix']['rows']}" in text
