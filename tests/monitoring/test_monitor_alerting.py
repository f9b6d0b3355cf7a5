"""Alerting rules, Alertmanager routing and Grafana dashboards on a real Prometheus.

Prometheus and Alertmanager are Debian's binaries, run on 127.0.0.1; the chat
webhook is a local HTTP server, and SNS is a moto server on 127.0.0.1.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import boto3
import pytest
import yaml

from cardfraud.monitoring.alert_rules import (
    ALERTMANAGER_TEMPLATE,
    RULES_PATH,
    alert_rules,
    render_alertmanager_config,
    rules_text,
)
from cardfraud.params import load_params
from cardfraud.paths import project_root
from tests.monitoring.prometheus_stack import (
    alertmanager,
    http_server,
    prometheus,
    require_binary,
    wait_for,
)
from tests.support.aws import use_fake_aws_credentials

ROOT = project_root()
RULES = ROOT / RULES_PATH
RULE_TESTS = RULES.with_name("rules_test.yml")
REGION = "eu-west-2"
TOPIC = f"arn:aws:sns:{REGION}:123456789012:cardfraud-alerts"
ALERT_NAMES = {
    "CardFraudLatencyP99High",
    "CardFraudErrorRateHigh",
    "CardFraudDegradedResponses",
    "CardFraudFeatureDrift",
    "CardFraudScoreDrift",
    "CardFraudMaturedPerformanceDrop",
    "CardFraudMaturedAveragePrecisionDrop",
}


def rendered_config(webhook: str, **environment: str) -> str:
    template = (ROOT / ALERTMANAGER_TEMPLATE).read_text(encoding="utf-8")
    return render_alertmanager_config(
        template,
        {
            "CHAT_WEBHOOK_URL": webhook,
            "SNS_TOPIC_ARN": TOPIC,
            "AWS_REGION": REGION,
            **environment,
        },
    )


def test_rules_file_equals_params():
    params = load_params(ROOT / "params.yaml").monitor
    assert RULES.read_text(encoding="utf-8") == rules_text(params)
    rules = {
        rule["alert"]: rule["expr"]
        for group in alert_rules(params)["groups"]
        for rule in group["rules"]
    }
    assert set(rules) == ALERT_NAMES
    assert rules["CardFraudLatencyP99High"].endswith(
        f"> {params.latency_p99_ms / 1000:g}"
    )
    assert f">= {params.psi_alert:g}" in rules["CardFraudFeatureDrift"]


def test_performance_rules_split_page_and_ticket():
    params = load_params(ROOT / "params.yaml").monitor
    rules = {
        rule["alert"]: rule
        for group in alert_rules(params)["groups"]
        for rule in group["rules"]
    }
    page = rules["CardFraudMaturedPerformanceDrop"]
    ticket = rules["CardFraudMaturedAveragePrecisionDrop"]
    assert page["expr"] == 'cardfraud_monitor_alerts{kind="performance_drop"} > 0'
    assert page["labels"]["severity"] == "page"
    assert f"z-test at {params.performance_alpha:g}" in page["annotations"]["summary"]
    assert (
        f"on {params.confirm_days} consecutive days" in (page["annotations"]["summary"])
    )
    assert ticket["labels"]["severity"] == "ticket"
    assert f"{1.0 - params.performance_drop:g} * " in ticket["expr"]
    assert "cardfraud_monitor_baseline_average_precision" in ticket["expr"]
    assert "roc_auc" not in ticket["expr"]


def test_rule_tests_cover_firing_and_quiet():
    tests = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
    cases: dict[str, set[str]] = {}
    for case in tests:
        for check in case["alert_rule_test"]:
            kind = "firing" if check["exp_alerts"] else "quiet"
            cases.setdefault(check["alertname"], set()).add(kind)
    assert set(cases) == ALERT_NAMES
    assert all(kinds == {"firing", "quiet"} for kinds in cases.values()), cases


def test_promtool_rule_tests_pass():
    promtool = require_binary("promtool")
    checked = subprocess.run(
        [promtool, "test", "rules", RULE_TESTS.name],
        cwd=RULE_TESTS.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def test_amtool_accepts_rendered_config(tmp_path: Path):
    amtool = require_binary("amtool")
    path = tmp_path / "alertmanager.yml"
    path.write_text(rendered_config("https://chat.example.com/hook"), encoding="utf-8")
    checked = subprocess.run(
        [amtool, "check-config", str(path)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def test_render_names_missing_variables():
    template = (ROOT / ALERTMANAGER_TEMPLATE).read_text(encoding="utf-8")
    with pytest.raises(KeyError, match=r"CHAT_WEBHOOK_URL.*SNS_TOPIC_ARN"):
        render_alertmanager_config(template, {"AWS_REGION": REGION})


@pytest.fixture
def moto_sns(fresh_moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """An SNS topic with an SQS subscriber on a moto server on 127.0.0.1."""
    use_fake_aws_credentials(monkeypatch, tmp_path, region=REGION)
    url = fresh_moto_url
    sns = boto3.client("sns", region_name=REGION, endpoint_url=url)
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=url)
    topic = sns.create_topic(Name="cardfraud-alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    return url, sqs, queue_url


def with_loopback_sns(config: str, sns_url: str) -> str:
    """Point the SNS receiver at moto and shorten the waits for a test."""
    document = yaml.safe_load(config)
    document["route"].update(group_wait="1s", group_interval="1s")
    for receiver in document["receivers"]:
        for sns in receiver.get("sns_configs", []):
            sns["api_url"] = sns_url
            sns["sigv4"].update(access_key="testing", secret_key="testing")
    return yaml.safe_dump(document)


def test_firing_rule_reaches_chat_and_sns(tmp_path: Path, moto_sns):
    sns_url, sqs, queue_url = moto_sns
    monitor_text = (
        "# TYPE cardfraud_monitor_score_psi gauge\ncardfraud_monitor_score_psi 0.9\n"
    )
    with (
        http_server() as chat,
        http_server(monitor_text) as monitor,
        alertmanager(
            tmp_path,
            with_loopback_sns(
                rendered_config(f"http://127.0.0.1:{chat.server_port}/hook"), sns_url
            ),
        ) as alertmanager_url,
        prometheus(
            tmp_path,
            targets={"cardfraud-monitor": f"127.0.0.1:{monitor.server_port}"},
            rule_files=[RULES],
            alertmanager=alertmanager_url.removeprefix("http://"),
        ),
    ):
        wait_for(
            lambda: bool(chat.bodies),
            timeout_s=60,
            failure="no alert reached the webhook",
        )
        messages: list[dict] = []

        def sns_delivered() -> bool:
            received = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)
            messages.extend(received.get("Messages", []))
            return bool(messages)

        wait_for(sns_delivered, timeout_s=30, failure="no alert reached SNS")
    alert = chat.bodies[0]["alerts"][0]
    assert chat.bodies[0]["status"] == "firing"
    assert alert["labels"]["alertname"] == "CardFraudScoreDrift"
    assert alert["annotations"]["summary"] == "score PSI at or above 0.25"
    notification = json.loads(messages[0]["Body"])
    assert notification["TopicArn"] == TOPIC
    assert "CardFraudScoreDrift" in notification["Subject"]


def dashboard_queries() -> list[tuple[str, str, str]]:
    """Return (dashboard, panel title, expression) of every panel target."""
    queries = []
    for path in sorted((ROOT / "infra/monitoring/grafana/dashboards").glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        for panel in document["panels"]:
            for target in panel["targets"]:
                queries.append((path.stem, panel["title"], target["expr"]))
    return queries


def test_dashboards_are_provisionable():
    provisioning = yaml.safe_load(
        (
            ROOT / "infra/monitoring/grafana/provisioning/datasources/prometheus.yml"
        ).read_text(encoding="utf-8")
    )
    uid = provisioning["datasources"][0]["uid"]
    uids = set()
    for path in sorted((ROOT / "infra/monitoring/grafana/dashboards").glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        uids.add(document["uid"])
        ids = [panel["id"] for panel in document["panels"]]
        assert len(ids) == len(set(ids)), path.name
        for panel in document["panels"]:
            assert panel["datasource"]["uid"] == uid, panel["title"]
            assert panel["targets"], panel["title"]
    assert uids == {"cardfraud-service", "cardfraud-monitor"}
    titles = {title for _, title, _ in dashboard_queries()}
    for needed in (
        "Scoring latency percentiles",
        "Throughput by route",
        "Decision mix",
        "Score distribution",
        "Feature drift (PSI, last day)",
        "Matured average precision and ROC AUC",
        "Model version",
        "Degraded responses",
    ):
        assert needed in titles


def test_monitor_dashboard_shows_matured_roc_auc():
    exprs = {
        expr
        for dashboard, title, expr in dashboard_queries()
        if dashboard == "cardfraud-monitor"
        and title == "Matured average precision and ROC AUC"
    }
    assert exprs == {
        "cardfraud_monitor_matured_average_precision",
        "cardfraud_monitor_baseline_average_precision",
        "cardfraud_monitor_matured_roc_auc",
        "cardfraud_monitor_baseline_roc_auc",
    }


def test_cloudwatch_dashboard_matches_monitor():
    import hcl2

    from cardfraud.monitoring.exporters import NAMESPACE, SERVICE_NAMESPACE

    folder = ROOT / "infra/terraform/modules/monitoring"
    # python-hcl2 8 keeps the quotes of block labels and string values.
    variables = {
        name.strip('"'): body
        for block in hcl2.loads((folder / "variables.tf").read_text())["variable"]
        for name, body in block.items()
    }
    main = (folder / "main.tf").read_text()
    params = load_params(ROOT / "params.yaml").monitor
    assert variables["psi_alert_threshold"]["default"] == params.psi_alert
    assert variables["monitor_namespace"]["default"].strip('"') == NAMESPACE
    assert variables["service_namespace"]["default"].strip('"') == SERVICE_NAMESPACE
    assert 'resource "aws_cloudwatch_dashboard" "platform"' in main
    for metric in ("MaxFeaturePsi", "ScorePsi", "MaturedAveragePrecision", "Alerts"):
        assert f'MetricName=\\"{metric}\\"' in main
