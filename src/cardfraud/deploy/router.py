"""AWS Lambda router and authorizer in front of the SageMaker scoring endpoint.

API Gateway (HTTP API, payload format 2.0) calls :func:`authorize` for every request
and :func:`handle` for the two routes:

- ``POST /score`` with a JSON object of canonical transaction fields is sent to the
  endpoint's ``/invocations`` as ``{"transaction": {...}}``;
- ``GET /explanations/{transaction_id}`` is sent as
  ``{"explanation": {"transaction_id": "..."}}``.

The router returns the container's JSON response unchanged. This file is deployed
on its own as the Lambda package, so it imports only the standard library and
boto3, which the Lambda Python runtime provides.

Settings come from the environment: ``ENDPOINT_NAME`` (the SageMaker endpoint) for
the router, and ``TOKEN_SHA256`` (comma-separated hex SHA-256 digests of the
accepted bearer tokens) for the authorizer. Only digests are stored, never tokens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import re
from typing import Any

import boto3

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)

SCORE_ROUTE = "POST /score"
EXPLANATION_ROUTE = "GET /explanations/{transaction_id}"
CONTENT_TYPE = "application/json"
MAX_BODY_BYTES = 16 * 1024
TRANSACTION_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
DIGEST = re.compile(r"^[0-9a-f]{64}$")

_runtime_client: Any = None


def runtime_client() -> Any:
    """Return the process's ``sagemaker-runtime`` client, created on first use.

    botocore reads ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` when it is set, which is
    how a local run points the router at a stand-in.
    """
    global _runtime_client
    if _runtime_client is None:
        _runtime_client = boto3.client("sagemaker-runtime")
    return _runtime_client


def response(status: int, payload: Any) -> dict[str, Any]:
    """Return an API Gateway payload 2.0 response with a JSON body."""
    return {
        "statusCode": status,
        "headers": {"content-type": CONTENT_TYPE},
        "body": payload if isinstance(payload, str) else json.dumps(payload),
    }


def error(status: int, message: str) -> dict[str, Any]:
    """Return an error response whose body is ``{"error": message}``."""
    return response(status, {"error": message})


# --- Authorizer ---


def accepted_digests(setting: str) -> list[str]:
    """Parse ``TOKEN_SHA256`` into lowercase hex digests, skipping blanks.

    Raises:
        ValueError: An entry is not 64 hexadecimal characters.
    """
    digests = [item.strip().lower() for item in setting.split(",") if item.strip()]
    for digest in digests:
        if not DIGEST.fullmatch(digest):
            raise ValueError(
                "TOKEN_SHA256 entries must be hex SHA-256 digests of 64 characters; "
                f"found one of {len(digest)} characters"
            )
    return digests


def bearer_token(event: dict[str, Any]) -> str | None:
    """Return the bearer token of a request, or None when it carries none."""
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def check_token(token: str | None, digests: list[str]) -> str | None:
    """Return the matching digest's first 12 characters as a client id, or None.

    Every digest is compared in constant time, so the time taken does not tell
    which digest came close.
    """
    if token is None or not digests:
        return None
    presented = hashlib.sha256(token.encode("utf-8")).hexdigest()
    matched = None
    for digest in digests:
        if hmac.compare_digest(presented, digest):
            matched = digest[:12]
    return matched


def authorize(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda authorizer with simple responses: allow only a known bearer token."""
    digests = accepted_digests(os.environ.get("TOKEN_SHA256", ""))
    client = check_token(bearer_token(event), digests)
    if client is None:
        logger.info(
            "rejected request %s: missing or unknown bearer token",
            event.get("requestContext", {}).get("requestId", "-"),
        )
        return {"isAuthorized": False}
    return {"isAuthorized": True, "context": {"client": client}}


# --- Router ---


def authorized_client(event: dict[str, Any]) -> str | None:
    """Return the client id the authorizer put in the request context, if any."""
    authorizer = event.get("requestContext", {}).get("authorizer") or {}
    client = (authorizer.get("lambda") or {}).get("client")
    return client if isinstance(client, str) and client else None


def read_body(event: dict[str, Any]) -> bytes:
    """Return the request body as bytes, decoding base64 when API Gateway used it."""
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return base64.b64decode(body, validate=True)
    return body.encode("utf-8")


def invocation(event: dict[str, Any]) -> dict[str, Any] | tuple[int, str]:
    """Build the ``/invocations`` payload of a request, or (status, error message)."""
    route = event.get("routeKey", "")
    if route == SCORE_ROUTE:
        try:
            raw = read_body(event)
        except (binascii.Error, ValueError):
            return 400, "body is not valid base64"
        if len(raw) > MAX_BODY_BYTES:
            return 413, f"body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES}"
        try:
            transaction = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return 400, "body is not JSON; send a JSON object of transaction fields"
        if not isinstance(transaction, dict):
            return 400, "body must be a JSON object of canonical transaction fields"
        return {"transaction": transaction}
    if route == EXPLANATION_ROUTE:
        transaction_id = (event.get("pathParameters") or {}).get("transaction_id", "")
        if not TRANSACTION_ID.fullmatch(transaction_id):
            return 400, (
                "transaction_id must be 1 to 128 characters of letters, digits, "
                "'.', '_', ':' or '-'"
            )
        return {"explanation": {"transaction_id": transaction_id}}
    return 404, f"no route {route!r}; use POST /score or GET /explanations/{{id}}"


def forward(payload: dict[str, Any], *, runtime: Any, endpoint_name: str) -> dict:
    """Send one payload to the endpoint and return its response for API Gateway."""
    try:
        answer = runtime.invoke_endpoint(
            EndpointName=endpoint_name,
            ContentType=CONTENT_TYPE,
            Accept=CONTENT_TYPE,
            Body=json.dumps(payload).encode("utf-8"),
        )
    except runtime.exceptions.ModelError as failure:
        status = int(failure.response.get("OriginalStatusCode", 502))
        logger.warning("container returned %s on %s", status, endpoint_name)
        if 400 <= status < 500:
            message = failure.response.get("OriginalMessage") or ""
            return response(status, message or {"error": "request rejected"})
        return error(502, "the scoring container failed; retry or check its logs")
    except runtime.exceptions.ValidationError:
        logger.error("endpoint %s is not in service", endpoint_name)
        return error(
            503,
            "the scoring endpoint is not in service (outside service hours or "
            "being replaced); retry later",
        )
    except (
        runtime.exceptions.ServiceUnavailable,
        runtime.exceptions.InternalFailure,
    ):
        logger.error("SageMaker runtime unavailable for %s", endpoint_name)
        return error(503, "the scoring service is unavailable; retry later")
    return response(200, answer["Body"].read().decode("utf-8"))


def route(event: dict[str, Any], *, runtime: Any, endpoint_name: str) -> dict:
    """Check the caller, build the invocation and forward it."""
    if authorized_client(event) is None:
        return error(401, "missing or invalid bearer token")
    payload = invocation(event)
    if isinstance(payload, tuple):
        status, message = payload
        return error(status, message)
    return forward(payload, runtime=runtime, endpoint_name=endpoint_name)


def handle(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point of the router."""
    return route(
        event, runtime=runtime_client(), endpoint_name=os.environ["ENDPOINT_NAME"]
    )
