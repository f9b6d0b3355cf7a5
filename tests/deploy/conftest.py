"""AWS fixtures for the deploy tests: fake credentials, a loopback guard, moto.

No test here reaches AWS. Every test runs with fake credentials and with botocore's
HTTP layer guarded, so a request to any host but a loopback address raises. The
AWS control plane is stood in for by a moto server on 127.0.0.1 on a free port.
"""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cardfraud.deploy.aws import AwsTarget, install_loopback_guard

REGION = "eu-west-2"
# moto's default account id.
ACCOUNT_ID = "123456789012"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
}


def isolate_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Replace any AWS credentials and profiles of the machine with fake ones."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-creds"))
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(autouse=True)
def aws_guard(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Fake credentials, and fail any AWS request to a non-loopback host."""
    isolate_aws_environment(monkeypatch, tmp_path)
    remove = install_loopback_guard()
    yield
    remove()


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """URL of a moto server on 127.0.0.1, running for the whole session."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def moto_api(url: str, path: str, payload: dict | None = None) -> bytes:
    """POST to moto's own control API, e.g. ``/moto-api/reset``."""
    request = urllib.request.Request(
        f"{url}{path}",
        data=json.dumps(payload or {}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.read()


@pytest.fixture
def aws(moto_url: str) -> AwsTarget:
    """A target on the moto server, emptied before the test."""
    moto_api(moto_url, "/moto-api/reset")
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
