"""The AWS target of a command and the boto3 clients built for it.

A command reaches AWS only through an :class:`AwsTarget`, which is either a local
stand-in (an ``endpoint_url`` such as a moto server on 127.0.0.1) or a real account
named by its 12-digit id. There is no default target: a command without one fails
before it builds a client.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.httpsession
from botocore.config import Config

logger = logging.getLogger(__name__)

ACCOUNT_ID = re.compile(r"^\d{12}$")
LOOPBACK_NAMES = frozenset({"localhost"})
# Standard retries, but few: a local stand-in responds at once or not at all, and a
# real control-plane call that fails five times needs a person anyway.
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3})


class AwsTargetError(ValueError):
    """A command was given no AWS target, or a target that is not allowed."""


def is_loopback_url(url: str) -> bool:
    """Return True when ``url`` names a loopback host (127.0.0.0/8, ::1, localhost)."""
    host = urlsplit(url).hostname or ""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class AwsTarget:
    """The destination of a command's AWS calls.

    Attributes:
        region: AWS region, e.g. ``eu-west-2``.
        endpoint_url: URL of a local stand-in for every service (a moto server);
            None for a real account.
        account_id: The 12-digit id of the real account the caller expects; the
            credentials must belong to it. None with an ``endpoint_url``.
    """

    region: str
    endpoint_url: str | None = None
    account_id: str | None = None

    @classmethod
    def resolve(
        cls,
        *,
        region: str,
        endpoint_url: str | None,
        account_id: str | None,
        real_aws: bool,
    ) -> AwsTarget:
        """Build a target from command-line options, rejecting an ambiguous one.

        Raises:
            AwsTargetError: Neither an endpoint URL nor a real account was given,
                both were given, or a real-account flag is missing or invalid.
        """
        if endpoint_url and (real_aws or account_id):
            raise AwsTargetError(
                "--endpoint-url and --real-aws/--account-id were both given; pass "
                "--endpoint-url for a local stand-in or --real-aws with "
                "--account-id for an account, not both"
            )
        if endpoint_url:
            if not urlsplit(endpoint_url).scheme.startswith("http"):
                raise AwsTargetError(
                    f"--endpoint-url {endpoint_url!r} is not an http(s) URL; pass "
                    "one such as http://127.0.0.1:5000"
                )
            return cls(region=region, endpoint_url=endpoint_url)
        if not real_aws:
            raise AwsTargetError(
                "no AWS target: pass --endpoint-url URL for a local stand-in such "
                "as a moto server, or --real-aws --account-id ID to act on an account"
            )
        if account_id is None or not ACCOUNT_ID.fullmatch(account_id):
            raise AwsTargetError(
                f"--account-id {account_id!r} is not a 12-digit AWS account id; "
                "--real-aws needs the id of the account the credentials belong to"
            )
        return cls(region=region, account_id=account_id)

    def client(self, service: str, *, region: str | None = None) -> Any:
        """Return a boto3 client for ``service`` bound to this target.

        Args:
            region: Region of a global service's API, such as us-east-1 for Cost
                Explorer; default the target's region.
        """
        return boto3.session.Session().client(
            service,
            region_name=region or self.region,
            endpoint_url=self.endpoint_url,
            config=CLIENT_CONFIG,
        )

    def check_account(self) -> str:
        """Return the account id of the credentials, checked against the target.

        Raises:
            AwsTargetError: The credentials belong to another account than
                ``account_id``.
        """
        found = self.client("sts").get_caller_identity()["Account"]
        if self.account_id is not None and found != self.account_id:
            raise AwsTargetError(
                f"the credentials belong to account {found}, not to --account-id "
                f"{self.account_id}; switch credentials or fix --account-id"
            )
        return found


class NonLoopbackCallError(RuntimeError):
    """A boto3 request went to a host that is not a loopback address."""


def install_loopback_guard() -> Callable[[], None]:
    """Make every botocore HTTP request to a non-loopback host raise.

    The guard wraps ``URLLib3Session.send``, the one place where botocore puts a
    request on the network, instance-metadata lookups included. Calls answered by a
    ``botocore.stub.Stubber`` never reach it.

    Returns:
        A function that removes the guard.
    """
    original = botocore.httpsession.URLLib3Session.send

    def guarded_send(self: Any, request: Any) -> Any:
        if not is_loopback_url(request.url):
            raise NonLoopbackCallError(
                f"AWS request to {urlsplit(request.url).hostname} blocked: tests "
                "may only reach a loopback endpoint_url such as a moto server"
            )
        return original(self, request)

    botocore.httpsession.URLLib3Session.send = guarded_send

    def remove() -> None:
        botocore.httpsession.URLLib3Session.send = original

    return remove
