"""The overnight stop and morning start of the endpoint, against moto on 127.0.0.1."""

from __future__ import annotations

import pytest

from cardfraud.deploy import scheduler
from cardfraud.deploy.aws import AwsTarget

ENDPOINT = "cardfraud-dev-scorer"
PARAMETER = "/cardfraud-dev/scorer/live-endpoint-config"


def create_config(aws: AwsTarget, name: str) -> None:
    sagemaker = aws.client("sagemaker")
    sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn="arn:aws:iam::123456789012:role/cardfraud-dev-sagemaker-execution",
        PrimaryContainer={"Image": "123456789012.dkr.ecr.eu-west-2.amazonaws.com/x:1"},
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InstanceType": "ml.t2.medium",
                "InitialInstanceCount": 2,
            }
        ],
    )


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, moto_url: str) -> None:
    monkeypatch.setenv("ENDPOINT_NAME", ENDPOINT)
    monkeypatch.setenv("LIVE_CONFIG_PARAMETER", PARAMETER)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)


def test_stop_then_start_moto_recreates_live_config(aws: AwsTarget, env: None) -> None:
    create_config(aws, "cfg-a")
    create_config(aws, "cfg-b")
    sagemaker = aws.client("sagemaker")
    sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="cfg-b")
    aws.client("ssm").put_parameter(Name=PARAMETER, Value="cfg-b", Type="String")

    stopped = scheduler.handle({"action": "stop"})
    assert stopped == {"endpoint": ENDPOINT, "result": "deleted"}
    assert sagemaker.list_endpoints()["Endpoints"] == []
    configs = sagemaker.list_endpoint_configs()["EndpointConfigs"]
    assert {c["EndpointConfigName"] for c in configs} == {"cfg-a", "cfg-b"}

    started = scheduler.handle({"action": "start"})
    assert started == {"endpoint": ENDPOINT, "result": "creating from cfg-b"}
    endpoint = sagemaker.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointConfigName"] == "cfg-b"


def test_stop_absent_and_start_present_moto_do_nothing(
    aws: AwsTarget, env: None
) -> None:
    assert scheduler.handle({"action": "stop"})["result"] == "absent"
    create_config(aws, "cfg-a")
    aws.client("sagemaker").create_endpoint(
        EndpointName=ENDPOINT, EndpointConfigName="cfg-a"
    )

    assert scheduler.handle({"action": "start"})["result"] == "already present"


def test_start_without_parameter_moto_raises(aws: AwsTarget, env: None) -> None:
    with pytest.raises(LookupError, match="run `cardfraud deploy release`"):
        scheduler.handle({"action": "start"})


def test_unknown_action_raises(env: None) -> None:
    with pytest.raises(ValueError, match="expected 'stop' or 'start'"):
        scheduler.handle({"action": "restart"})
