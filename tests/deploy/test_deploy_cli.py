"""`cardfraud deploy` commands against a moto server on 127.0.0.1.

The release command resolves the champion in a real MLflow registry (a SQLite store
in a temporary folder) before it calls the stand-in for AWS.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cardfraud.cli import app
from cardfraud.deploy.aws import AwsTarget

IMAGE = "123456789012.dkr.ecr.eu-west-2.amazonaws.com/cardfraud-dev-scorer:v3"


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    """An MLflow registry whose model card-fraud has version 1 as champion."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("card-fraud")
    source = tmp_path / "model"
    source.mkdir()
    version = client.create_model_version("card-fraud", source=str(source))
    client.set_registered_model_alias("card-fraud", "champion", version.version)
    return uri


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, ["deploy", *args])


def test_release_without_target_exits_2(tracking_uri: str) -> None:
    result = invoke("release", "--image-uri", IMAGE, "--tracking-uri", tracking_uri)

    assert result.exit_code == 2
    assert "no AWS target" in result.output


def test_release_moto_deploys_champion(
    aws: AwsTarget,
    tracking_uri: str,
    queue_answers: Callable[[list[str]], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M")
    monkeypatch.setattr(
        "cardfraud.deploy.sagemaker.Deployer.release_name",
        lambda self, release: f"cardfraud-dev-scorer-v{release.model_version}-{stamp}",
    )
    transaction_id = f"smoke-cardfraud-dev-scorer-v1-{stamp}"
    queue_answers(
        [
            json.dumps(
                {
                    "transaction_id": transaction_id,
                    "score": 0.3,
                    "decision": "review",
                    "model_version": "1",
                }
            ),
            json.dumps({"transaction_id": transaction_id, "reasons": []}),
        ]
    )

    result = invoke(
        "release",
        "--image-uri",
        IMAGE,
        "--tracking-uri",
        tracking_uri,
        "--endpoint-url",
        str(aws.endpoint_url),
    )

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["status"] == "in-service"
    assert report["action"] == "create"
    model = aws.client("sagemaker").describe_model(
        ModelName=f"cardfraud-dev-scorer-v1-{stamp}"
    )
    assert model["PrimaryContainer"]["Image"] == IMAGE
    assert model["PrimaryContainer"]["Environment"]["CARDFRAUD_MODEL_NAME"] == (
        "card-fraud"
    )


def test_release_dry_run_moto_changes_nothing(
    aws: AwsTarget, tracking_uri: str
) -> None:
    result = invoke(
        "release",
        "--image-uri",
        IMAGE,
        "--tracking-uri",
        tracking_uri,
        "--endpoint-url",
        str(aws.endpoint_url),
        "--dry-run",
    )

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["dry_run"] is True
    assert aws.client("sagemaker").list_models()["Models"] == []


def test_release_missing_alias_exits_2(aws: AwsTarget, tracking_uri: str) -> None:
    result = invoke(
        "release",
        "--image-uri",
        IMAGE,
        "--tracking-uri",
        tracking_uri,
        "--alias",
        "challenger",
        "--endpoint-url",
        str(aws.endpoint_url),
    )

    assert result.exit_code == 2
    assert "cannot resolve alias 'challenger'" in result.output


def test_rollback_moto_without_endpoint_exits_1(aws: AwsTarget) -> None:
    result = invoke("rollback", "--endpoint-url", str(aws.endpoint_url))

    assert result.exit_code == 1
    assert "does not exist" in result.output


def test_teardown_dry_run_moto_lists_stack(aws: AwsTarget) -> None:
    aws.client("dynamodb").create_table(
        TableName="cardfraud-dev-audit",
        KeySchema=[{"AttributeName": "transaction_id", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "transaction_id", "AttributeType": "S"}
        ],
        BillingMode="PAY_PER_REQUEST",
    )

    result = invoke(
        "teardown",
        "--no-terraform",
        "--dry-run",
        "--endpoint-url",
        str(aws.endpoint_url),
    )

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["remaining"] == ["dynamodb table cardfraud-dev-audit"]
    assert report["deleted"] == []


def test_cost_report_moto_sums_per_service(
    aws: AwsTarget, queue_cost_results: Callable[[list[dict]], None]
) -> None:
    from cardfraud.deploy.cost_report import format_cost_report, weekly_cost_report

    end = datetime(2026, 3, 9, tzinfo=UTC).date()

    def day(offset: int, sagemaker: str, functions: str) -> dict:
        start = end - timedelta(days=7 - offset)
        return {
            "TimePeriod": {
                "Start": start.isoformat(),
                "End": (start + timedelta(days=1)).isoformat(),
            },
            "Total": {},
            "Groups": [
                {
                    "Keys": ["Amazon SageMaker"],
                    "Metrics": {"UnblendedCost": {"Amount": sagemaker, "Unit": "USD"}},
                },
                {
                    "Keys": ["AWS Lambda"],
                    "Metrics": {"UnblendedCost": {"Amount": functions, "Unit": "USD"}},
                },
            ],
            "Estimated": False,
        }

    queue_cost_results([{"ResultsByTime": [day(i, "1.56", "0.01") for i in range(7)]}])

    report = weekly_cost_report(
        aws.client("ce", region="us-east-1"), end=end, days=7, project="cardfraud"
    )

    assert report.start.isoformat() == "2026-03-02"
    assert report.currency == "USD"
    assert report.by_service == {
        "Amazon SageMaker": pytest.approx(10.92),
        "AWS Lambda": pytest.approx(0.07),
    }
    assert report.total == pytest.approx(10.99)
    text = format_cost_report(report)
    assert text.splitlines()[4] == "| Amazon SageMaker | 10.92 |"
    assert text.splitlines()[-1] == "| **total** | **10.99** |"


def test_cost_report_dry_run_prints_request(aws: AwsTarget) -> None:
    result = invoke("cost-report", "--dry-run", "--endpoint-url", str(aws.endpoint_url))

    assert result.exit_code == 0, result.output
    request = json.loads(result.stdout)
    assert request["GroupBy"] == [{"Type": "DIMENSION", "Key": "SERVICE"}]
    assert request["Filter"] == {"Tags": {"Key": "project", "Values": ["cardfraud"]}}
