"""Fake AWS credentials and a loopback guard for every infra test.

The infra tests parse files and call no AWS API; the guard makes any boto3 request
to a non-loopback host raise, so a test that starts calling AWS fails at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cardfraud.deploy.aws import install_loopback_guard

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "eu-west-2",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture(autouse=True)
def aws_guard(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Fake credentials, no profiles, and fail any AWS request off loopback."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-creds"))
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    remove = install_loopback_guard()
    yield
    remove()
