"""AWS fixtures for the deploy tests: fake credentials, a loopback guard, moto.

No test here reaches AWS. Every test runs with fake credentials and with botocore's
HTTP layer guarded, so a request to any host but a loopback address raises. The
AWS control plane is stood in for by the session's moto server on 127.0.0.1
(``moto_url`` of tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cardfraud.deploy.aws import AwsTarget, install_loopback_guard
from tests.support.aws import moto_api, reset_moto, use_fake_aws_credentials

REGION = "eu-west-2"
# moto's default account id.
ACCOUNT_ID = "123456789012"


@pytest.fixture(autouse=True)
def aws_guard(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Fake credentials, and fail any AWS request to a non-loopback host."""
    use_fake_aws_credentials(monkeypatch, tmp_path, region=REGION)
    remove = install_loopback_guard()
    yield
    remove()


@pytest.fixture
def aws(moto_url: str) -> AwsTarget:
    """A target on the moto server, emptied before the test."""
    reset_moto(moto_url)
    return AwsTarget(region=REGION, endpoint_url=moto_url)


@pytest.fixture
def queue_answers(moto_url: str) -> Callable[[list[str]], None]:
    """Return a function that queues moto's sagemaker-runtime response bodies.

    moto returns the next queued body for each new distinct request.
    """
    return lambda bodies: queue_endpoint_answers(moto_url, bodies)


def queue_endpoint_answers(url: str, bodies: list[str]) -> None:
    """Queue the bodies that moto's sagemaker-runtime returns, one per new request."""
    moto_api(
        url,
        "/moto-api/static/sagemaker/endpoint-results",
        {
            "account_id": ACCOUNT_ID,
            "region": REGION,
            "results": [
                {
                    "Body": body,
                    "ContentType": "application/json",
                    "InvokedProductionVariant": "AllTraffic",
                    "CustomAttributes": "",
                }
                for body in bodies
            ],
        },
    )


@pytest.fixture
def queue_cost_results(moto_url: str) -> Callable[[list[dict]], None]:
    """Return a function that queues moto's GetCostAndUsage results, in order."""
    return lambda results: moto_api(
        moto_url, "/moto-api/static/ce/cost-and-usage-results", {"results": results}
    )
