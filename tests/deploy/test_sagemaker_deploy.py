"""Deploy and rollback of the scoring endpoint against a moto server on 127.0.0.1.

moto 5 does not implement SageMaker's UpdateEndpoint. Tests whose names end in
``stubbed_update`` send that one call to a botocore Stubber, which asserts the exact
request, and then apply its effect in moto by recreating the endpoint on the
requested configuration: the state a finished blue/green update leaves.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from cardfraud.deploy.aws import AwsTarget
from cardfraud.deploy.sagemaker import (
    PREVIOUS_CONFIG_TAG,
    Deployer,
    DeployError,
    Release,
    blue_green_config,
    rollback_config,
)
from cardfraud.deploy.settings import DeploySettings, load_settings

ACCOUNT_ID = "123456789012"
IMAGE = f"{ACCOUNT_ID}.dkr.ecr.eu-west-2.amazonaws.com/cardfraud-dev-scorer"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ARN = f"arn:aws:sagemaker:eu-west-2:{ACCOUNT_ID}"


class Clock:
    """A settable clock for release names and smoke timestamps."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


class StubbedUpdates:
    """A SageMaker client that sends UpdateEndpoint to a Stubber, the rest to moto.

    Each expected UpdateEndpoint request is asserted by the Stubber. When
    ``apply`` is true, the update's outcome is then written to moto by recreating
    the endpoint on the requested configuration; when false, the endpoint keeps its
    configuration, as after SageMaker's automatic rollback.
    """

    def __init__(self, moto_client: Any, target: AwsTarget) -> None:
        self.moto = moto_client
        self.stub_client = boto3.client(
            "sagemaker", region_name=target.region, endpoint_url=target.endpoint_url
        )
        self.stubber = Stubber(self.stub_client)
        self.stubber.activate()
        self.apply = True
        self.requests: list[dict[str, Any]] = []

    def expect(self, params: dict[str, Any]) -> None:
        """Expect one UpdateEndpoint request with exactly these parameters."""
        arn = f"{ARN}:endpoint/{params['EndpointName']}"
        self.stubber.add_response("update_endpoint", {"EndpointArn": arn}, params)

    def update_endpoint(self, **params: Any) -> dict[str, Any]:
        answer = self.stub_client.update_endpoint(**params)
        self.requests.append(params)
        if self.apply:
            self.moto.delete_endpoint(EndpointName=params["EndpointName"])
            self.moto.create_endpoint(
                EndpointName=params["EndpointName"],
                EndpointConfigName=params["EndpointConfigName"],
            )
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.moto, name)


@pytest.fixture
def settings() -> DeploySettings:
    return load_settings(overrides={"wait": {"poll_seconds": 0, "timeout_seconds": 5}})


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


def make_deployer(
    aws: AwsTarget, settings: DeploySettings, clock: Clock, sagemaker: Any = None
) -> Deployer:
    return Deployer(
        settings,
        sagemaker=sagemaker or aws.client("sagemaker"),
        runtime=aws.client("sagemaker-runtime"),
        ssm=aws.client("ssm"),
        account_id=ACCOUNT_ID,
        cloudwatch=aws.client("cloudwatch"),
        now=clock,
        sleep=lambda seconds: None,
    )


def create_alarms(aws: AwsTarget, settings: DeploySettings) -> None:
    """Create the rollback alarms as Terraform does, so updates may proceed."""
    cloudwatch = aws.client("cloudwatch")
    for name in settings.alarm_names:
        cloudwatch.put_metric_alarm(
            AlarmName=name,
            Namespace="AWS/SageMaker",
            MetricName="ModelLatency",
            ExtendedStatistic="p99",
            Period=60,
            EvaluationPeriods=1,
            Threshold=150000,
            ComparisonOperator="GreaterThanThreshold",
        )


def release(version: str) -> Release:
    return Release(
        model_name="card-fraud",
        model_version=version,
        run_id=f"run-{version}",
        image_uri=f"{IMAGE}:card-fraud-v{version}",
    )


def good_answers(transaction_id: str, version: str) -> list[str]:
    score = {
        "transaction_id": transaction_id,
        "score": 0.0123,
        "decision": "approve",
        "model_version": version,
    }
    explanation = {"transaction_id": transaction_id, "reasons": []}
    return [json.dumps(score), json.dumps(explanation)]


def live_parameter(aws: AwsTarget, settings: DeploySettings) -> str:
    return aws.client("ssm").get_parameter(Name=settings.live_config_parameter)[
        "Parameter"
    ]["Value"]


def config_tags(sagemaker: Any, name: str) -> dict[str, str]:
    arn = sagemaker.describe_endpoint_config(EndpointConfigName=name)[
        "EndpointConfigArn"
    ]
    return {t["Key"]: t["Value"] for t in sagemaker.list_tags(ResourceArn=arn)["Tags"]}


def deploy_first(
    aws: AwsTarget,
    settings: DeploySettings,
    clock: Clock,
    queue_answers: Callable[[list[str]], None],
) -> str:
    """Deploy version 1 on an empty moto and return its configuration name."""
    create_alarms(aws, settings)
    deployer = make_deployer(aws, settings, clock)
    name = deployer.release_name(release("1"))
    queue_answers(good_answers(f"smoke-{name}", "1"))
    deployer.deploy(release("1"))
    return name


def expected_update(settings: DeploySettings, config: str) -> dict[str, Any]:
    return {
        "EndpointName": settings.endpoint_name,
        "EndpointConfigName": config,
        "RetainAllVariantProperties": False,
        "DeploymentConfig": blue_green_config(settings),
    }


def expected_restore(settings: DeploySettings, config: str) -> dict[str, Any]:
    return {
        "EndpointName": settings.endpoint_name,
        "EndpointConfigName": config,
        "RetainAllVariantProperties": False,
        "DeploymentConfig": rollback_config(settings),
    }


# --- Requests, without moto ---


def test_update_endpoint_request_stubbed_carries_canary_and_alarms(
    settings: DeploySettings, clock: Clock
) -> None:
    client = boto3.client("sagemaker", region_name="eu-west-2")
    runtime = boto3.client("sagemaker-runtime", region_name="eu-west-2")
    ssm = boto3.client("ssm", region_name="eu-west-2")
    deployer = Deployer(
        settings,
        sagemaker=client,
        runtime=runtime,
        ssm=ssm,
        account_id=ACCOUNT_ID,
        now=clock,
        sleep=lambda seconds: None,
    )
    name = deployer.release_name(release("2"))
    captured: list[dict[str, Any]] = []
    client.meta.events.register(
        "provide-client-params.sagemaker.UpdateEndpoint",
        lambda params, **kwargs: captured.append(dict(params)),
    )
    with Stubber(client) as stub:
        stub.add_response(
            "describe_endpoint",
            {
                "EndpointName": settings.endpoint_name,
                "EndpointArn": f"{ARN}:endpoint/x",
                "EndpointConfigName": "old-config",
                "EndpointStatus": "InService",
                "CreationTime": START,
                "LastModifiedTime": START,
            },
            {"EndpointName": settings.endpoint_name},
        )
        stub.add_response("create_model", {"ModelArn": f"{ARN}:model/x"})
        stub.add_response(
            "create_endpoint_config", {"EndpointConfigArn": f"{ARN}:endpoint-config/x"}
        )
        stub.add_response(
            "update_endpoint",
            {"EndpointArn": f"{ARN}:endpoint/x"},
            expected_update(settings, name),
        )
        stub.add_client_error(
            "describe_endpoint", "ThrottlingException", "stop the test here"
        )
        with pytest.raises(Exception, match="stop the test here"):
            deployer.deploy(release("2"))
        stub.assert_no_pending_responses()

    assert len(captured) == 1
    deployment = captured[0]["DeploymentConfig"]
    routing = deployment["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing["Type"] == "CANARY"
    assert routing["CanarySize"] == {"Type": "CAPACITY_PERCENT", "Value": 50}
    assert routing["WaitIntervalInSeconds"] == 600
    assert deployment["BlueGreenUpdatePolicy"]["TerminationWaitInSeconds"] == 600
    alarms = deployment["AutoRollbackConfiguration"]["Alarms"]
    assert alarms == [
        {"AlarmName": "cardfraud-dev-scorer-p99-latency"},
        {"AlarmName": "cardfraud-dev-scorer-5xx"},
    ]
    assert captured[0]["EndpointConfigName"] == name


# --- Against moto ---


def test_first_deploy_moto_creates_endpoint_in_service(
    aws: AwsTarget,
    settings: DeploySettings,
    clock: Clock,
    queue_answers: Callable[[list[str]], None],
) -> None:
    deployer = make_deployer(aws, settings, clock)
    name = deployer.release_name(release("1"))
    queue_answers(good_answers(f"smoke-{name}", "1"))

    report = deployer.deploy(release("1"))

    sagemaker = aws.client("sagemaker")
    model = sagemaker.describe_model(ModelName=name)
    assert model["PrimaryContainer"]["Image"] == f"{IMAGE}:card-fraud-v1"
    environment = model["PrimaryContainer"]["Environment"]
    assert environment["CARDFRAUD_MODEL_VERSION"] == "1"
    assert environment["CARDFRAUD_INVOCATIONS_AUTH"] == "iam"
    assert model["ExecutionRoleArn"] == (
        f"arn:aws:iam::{ACCOUNT_ID}:role/cardfraud-dev-sagemaker-execution"
    )
    variant = sagemaker.describe_endpoint_config(EndpointConfigName=name)[
        "ProductionVariants"
    ][0]
    assert variant["InstanceType"] == "ml.t2.medium"
    assert variant["InitialInstanceCount"] == 2
    assert variant["VariantName"] == "AllTraffic"
    endpoint = sagemaker.describe_endpoint(EndpointName="cardfraud-dev-scorer")
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == name
    assert config_tags(sagemaker, name)[PREVIOUS_CONFIG_TAG] == ""
    assert live_parameter(aws, settings) == name
    assert report.action == "create"
    assert report.status == "in-service"
    assert report.smoke is not None
    assert report.smoke["score"]["decision"] == "approve"


def test_second_deploy_moto_stubbed_update_keeps_old_config(
    aws: AwsTarget,
    settings: DeploySettings,
    clock: Clock,
    queue_answers: Callable[[list[str]], None],
) -> None:
    first = deploy_first(aws, settings, clock, queue_answers)
    clock.now += timedelta(days=1)
    client = StubbedUpdates(aws.client("sagemaker"), aws)
    deployer = make_deployer(aws, settings, clock, sagemaker=client)
    second = deployer.release_name(release("2"))
    client.expect(expected_update(settings, second))
    queue_answers(good_answers(f"smoke-{second}", "2"))

    report = deployer.deploy(release("2"))

    sagemaker = aws.client("sagemaker")
    configs = {
        c["EndpointConfigName"]
        for c in sagemaker.list_endpoint_configs(NameContains="cardfraud-dev")[
            "EndpointConfigs"
        ]
    }
    assert configs == {first, second}
    assert {m["ModelName"] for m in sagemaker.list_models()["Models"]} == {
        first,
        second,
    }
    assert config_tags(sagemaker, second)[PREVIOUS_CONFIG_TAG] == first
    endpoint = sagemaker.describe_endpoint(EndpointName=settings.endpoint_name)
    assert endpoint["EndpointConfigName"] == second
    assert live_parameter(aws, settings) == second
    assert report.action == "update"
    assert report.previous_config_name == first
    client.stubber.assert_no_pending_responses()


def test_rollback_moto_stubbed_update_restores_previous(
    aws: AwsTarget,
    settings: DeploySettings,
    clock: Clock,
    queue_answers: Callable[[list[str]], None],
) -> None:
    first = deploy_first(aws, settings, clock, queue_answers)
    clock.now += timedelta(days=1)
    client = StubbedUpdates(aws.client("sagemaker"), aws)
    deployer = make_deployer(aws, settings, clock, sagemaker=client)
    second = deployer.release_name(release("2"))
    client.expect(expected_update(settings, second))
    client.expect(expected_restore(settings, first))
    queue_answers(good_answers(f"smoke-{second}", "2"))
    deployer.deploy(release("2"))

    dry = deployer.rollback(dry_run=True)
    assert dry.endpoint_config_name == first
    assert (
        aws.client("sagemaker").describe_endpoint(EndpointName=settings.endpoint_name)[
            "EndpointConfigName"
        ]
        == second
    )

    report = deployer.rollback()

    endpoint = aws.client("sagemaker").describe_endpoint(
        EndpointName=settings.endpoint_name
    )
    assert endpoint["EndpointConfigName"] == first
    assert live_parameter(aws, settings) == first
    assert report.action == "rollback"
    assert report.previous_config_name == second
    client.stubber.assert_no_pending_responses()


def test_rollback_moto_first_release_has_nothing_earlier(
    aws: AwsTarget,
    settings: DeploySettings,
    clock: Clock,
    queue_answers: Callable[[list[str]], None],
) -> None:
    first = deploy_first(aws, settings, clock, queue_answers)

    with pytest.raises(DeployError, match=f"{first} records no earlier"):
        make_deployer(aws, settings, clock).rollback()


@pytest.mark.parametrize(
    "bad_score",
    [
        "not json at all",
        json.dumps(["a", "list"]),
        json.dumps({"transaction_id": "TID", "score": 1.5, "decision": "approve"}),
        json.dumps({"transaction_id": "TID", "score": 0.1, "decision": "maybe"}),
        json.dumps({"transaction_id": "other", "score": 0.1, "decision": "approve"}),
    ],
    ids=["not-json", "list", "score-out-of-range", "unknown-decision", "wrong-id"],
)
def test_malformed_smoke_moto_stubbed_update_rolls_back(
    aws: AwsTarget,
    settings: DeploySettings,
    clock: Clock,
    queue_answers: Callable[[list[str]], None],
    bad_score: str,
) -> None:
    first = deploy_first(aws, settings, clock, queue_answers)
    clock.now += timedelta(days=1)
    client = StubbedUpdates(aws.client("sagemaker"), aws)
    deployer = make_deployer(aws, settings, clock, sagemaker=client)
    second = deployer.release_name(release("2"))
    client.expect(expected_update(settings, second))
    client.expect(expected_restore(settings, first))
    queue_answers([bad_score.replace("TID", f"smoke-{second}")])

    with pytest.raises(DeployError, match=f"rolled back to {first}"):
        deployer.deploy(release("2"))

    endpoint = aws.client("sagemaker").describe_endpoint(
        EndpointName=settings.endpoint_name
    )
    assert endpoint["EndpointConfigName"] == first
    assert live_parameter(aws, settings) == first
    assert [r["EndpointConfigName"] for r in client.requests] == [second, first]
    client.stubber.assert_no_pending_responses()


def test_first_deploy_malformed_smoke_moto_deletes_endpoint(
    aws: AwsTarget,
    settings: DeploySettings,
    clock: Clock,
    queue_answers: Callable[[list[str]], None],
) -> None:
    deployer = make_deployer(aws, settings, clock)
    queue_answers(["<html>502 Bad Gateway</html>"])

    with pytest.raises(DeployError, match="endpoint was deleted"):
        deployer.deploy(release("1"))

    assert aws.client("sagemaker").list_endpoints()["Endpoints"] == []
    ssm = aws.client("ssm")
    with pytest.raises(ssm.exceptions.ParameterNotFound):
        ssm.get_parameter(Name=settings.live_config_parameter)


def test_alarm_rollback_moto_stubbed_update_fails_deploy(
    aws: AwsTarget,
    settings: DeploySettings,
    clock: Clock,
    queue_answers: Callable[[list[str]], None],
) -> None:
    first = deploy_first(aws, settings, clock, queue_answers)
    clock.now += timedelta(days=1)
    client = StubbedUpdates(aws.client("sagemaker"), aws)
    client.apply = False
    deployer = make_deployer(aws, settings, clock, sagemaker=client)
    second = deployer.release_name(release("2"))
    client.expect(expected_update(settings, second))

    with pytest.raises(DeployError, match="SageMaker rolled the update back"):
        deployer.deploy(release("2"))

    assert live_parameter(aws, settings) == first


def test_deploy_dry_run_moto_creates_nothing(
    aws: AwsTarget, settings: DeploySettings, clock: Clock
) -> None:
    report = make_deployer(aws, settings, clock).deploy(release("1"), dry_run=True)

    sagemaker = aws.client("sagemaker")
    assert sagemaker.list_models()["Models"] == []
    assert sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
    assert sagemaker.list_endpoints()["Endpoints"] == []
    assert report.dry_run is True
    assert report.status == "planned"
    assert report.action == "create"
    assert report.steps[0].startswith("create model cardfraud-dev-scorer-v1-")


def test_update_without_alarms_moto_refused(
    aws: AwsTarget,
    settings: DeploySettings,
    clock: Clock,
    queue_answers: Callable[[list[str]], None],
) -> None:
    first = deploy_first(aws, settings, clock, queue_answers)
    aws.client("cloudwatch").delete_alarms(AlarmNames=[settings.alarm_names[0]])
    clock.now += timedelta(days=1)

    with pytest.raises(DeployError, match="cardfraud-dev-scorer-p99-latency not found"):
        make_deployer(aws, settings, clock).deploy(release("2"))

    sagemaker = aws.client("sagemaker")
    assert [m["ModelName"] for m in sagemaker.list_models()["Models"]] == [first]
