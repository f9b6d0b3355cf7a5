"""A moto server on 127.0.0.1 in place of AWS, and fake credentials for it.

No test reaches AWS, because every AWS client in a test gets the moto server's URL as
its endpoint, and the credentials are fake ones that AWS would reject.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.servers import free_port

PROFILE_VARIABLES = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN")


def fake_aws_environment(folder: Path, *, region: str) -> dict[str, str]:
    """Return environment variables that replace the machine's AWS settings.

    The credentials are fake, the config and credentials files point at files that
    do not exist under ``folder``, and the EC2 metadata endpoint is off, so boto3
    finds no real credentials. The caller also removes ``PROFILE_VARIABLES``.
    """
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": region,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(folder / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(folder / "no-aws-credentials"),
    }


def use_fake_aws_credentials(
    monkeypatch: pytest.MonkeyPatch, folder: Path, *, region: str
) -> None:
    """Replace the AWS credentials and profiles of this process with fake ones."""
    for name in PROFILE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in fake_aws_environment(folder, region=region).items():
        monkeypatch.setenv(name, value)


@contextmanager
def moto_server() -> Iterator[str]:
    """Run a moto server on 127.0.0.1 on a free port and yield its URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
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


def reset_moto(url: str) -> None:
    """Delete every resource on the moto server at ``url``."""
    moto_api(url, "/moto-api/reset")
