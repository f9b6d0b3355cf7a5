"""The AWS target rules and the loopback guard that every deploy test runs under."""

from __future__ import annotations

import re

import boto3
import pytest

from cardfraud.deploy.aws import (
    AwsTarget,
    AwsTargetError,
    NonLoopbackCallError,
    is_loopback_url,
)


def test_guard_blocks_default_endpoint() -> None:
    client = boto3.client("sts", region_name="eu-west-2")

    with pytest.raises(
        NonLoopbackCallError, match=re.escape("sts.eu-west-2.amazonaws.com")
    ):
        client.get_caller_identity()


def test_guard_blocks_non_loopback_endpoint_url() -> None:
    client = boto3.client(
        "s3", region_name="eu-west-2", endpoint_url="http://10.1.2.3:9000"
    )

    with pytest.raises(NonLoopbackCallError, match=re.escape("10.1.2.3")):
        client.list_buckets()


def test_guard_allows_moto_on_loopback(aws: AwsTarget) -> None:
    assert aws.client("sts").get_caller_identity()["Account"] == "123456789012"


def test_fake_credentials_in_environment() -> None:
    credentials = boto3.session.Session().get_credentials()

    assert credentials is not None
    assert credentials.access_key == "testing"


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:5000", True),
        ("http://127.8.9.10", True),
        ("http://[::1]:80", True),
        ("http://localhost:4566", True),
        ("https://sagemaker.eu-west-2.amazonaws.com", False),
        ("http://169.254.169.254/latest", False),
        ("http://127.0.0.1.example.com", False),
    ],
)
def test_is_loopback_url_cases(url: str, loopback: bool) -> None:
    assert is_loopback_url(url) is loopback


def test_target_without_flags_rejected() -> None:
    with pytest.raises(AwsTargetError, match="no AWS target"):
        AwsTarget.resolve(
            region="eu-west-2", endpoint_url=None, account_id=None, real_aws=False
        )


def test_target_real_aws_needs_account_id() -> None:
    with pytest.raises(AwsTargetError, match="12-digit"):
        AwsTarget.resolve(
            region="eu-west-2", endpoint_url=None, account_id="12345", real_aws=True
        )


def test_target_both_kinds_rejected() -> None:
    with pytest.raises(AwsTargetError, match="not both"):
        AwsTarget.resolve(
            region="eu-west-2",
            endpoint_url="http://127.0.0.1:5000",
            account_id="123456789012",
            real_aws=True,
        )


def test_target_account_mismatch_moto(aws: AwsTarget) -> None:
    target = AwsTarget(
        region=aws.region, endpoint_url=aws.endpoint_url, account_id="999999999999"
    )

    with pytest.raises(AwsTargetError, match="belong to account 123456789012"):
        target.check_account()
