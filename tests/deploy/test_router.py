"""The Lambda router and authorizer, run in process.

Requests to the SageMaker runtime go to a botocore Stubber, which asserts the exact
``/invocations`` request; one test sends them through the handler to the moto
server on 127.0.0.1 instead.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from cardfraud.deploy import router

ENDPOINT = "cardfraud-dev-scorer"
TOKEN = "s3cret-token-for-tests"
DIGEST = hashlib.sha256(TOKEN.encode()).hexdigest()
TRANSACTION = {
    "transaction_id": "t-001",
    "timestamp": "2026-03-02T09:00:00+00:00",
    "card_id": "c-1",
    "merchant_id": "m-1",
    "amount_minor": 1250,
    "currency": "GBP",
}


def body_stream(payload: dict[str, Any]) -> StreamingBody:
    raw = json.dumps(payload).encode()
    import io

    return StreamingBody(io.BytesIO(raw), len(raw))


def score_event(body: str, *, authorized: bool = True, **extra: Any) -> dict:
    event = {
        "version": "2.0",
        "routeKey": "POST /score",
        "rawPath": "/score",
        "body": body,
        "isBase64Encoded": False,
        "requestContext": {"requestId": "r-1"},
        **extra,
    }
    if authorized:
        event["requestContext"]["authorizer"] = {"lambda": {"client": DIGEST[:12]}}
    return event


def explanation_event(transaction_id: str) -> dict:
    return {
        "version": "2.0",
        "routeKey": "GET /explanations/{transaction_id}",
        "rawPath": f"/explanations/{transaction_id}",
        "pathParameters": {"transaction_id": transaction_id},
        "requestContext": {
            "requestId": "r-2",
            "authorizer": {"lambda": {"client": DIGEST[:12]}},
        },
    }


@pytest.fixture
def runtime() -> Any:
    return boto3.client("sagemaker-runtime", region_name="eu-west-2")


def expect_invocation(stub: Stubber, payload: dict, answer: dict) -> None:
    stub.add_response(
        "invoke_endpoint",
        {"Body": body_stream(answer), "ContentType": "application/json"},
        {
            "EndpointName": ENDPOINT,
            "ContentType": "application/json",
            "Accept": "application/json",
            "Body": json.dumps(payload).encode(),
        },
    )


# --- Authorizer ---


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({"authorization": f"Bearer {TOKEN}"}, True),
        ({"Authorization": f"bearer {TOKEN}"}, True),
        ({}, False),
        ({"authorization": TOKEN}, False),
        ({"authorization": "Bearer "}, False),
        ({"authorization": "Bearer wrong-token"}, False),
        ({"authorization": f"Basic {TOKEN}"}, False),
    ],
    ids=["valid", "header-case", "missing", "no-scheme", "empty", "wrong", "basic"],
)
def test_authorizer_token_cases(
    monkeypatch: pytest.MonkeyPatch, headers: dict, allowed: bool
) -> None:
    other = hashlib.sha256(b"another client").hexdigest()
    monkeypatch.setenv("TOKEN_SHA256", f"{other}, {DIGEST.upper()}")

    result = router.authorize({"headers": headers, "requestContext": {}})

    assert result["isAuthorized"] is allowed
    if allowed:
        assert result["context"] == {"client": DIGEST[:12]}
    else:
        assert "context" not in result


def test_authorizer_without_digests_rejects(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKEN_SHA256", "")

    result = router.authorize({"headers": {"authorization": f"Bearer {TOKEN}"}})

    assert result == {"isAuthorized": False}


def test_authorizer_bad_digest_setting_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKEN_SHA256", "not-a-digest")

    with pytest.raises(ValueError, match="64 characters"):
        router.authorize({"headers": {}})


# --- Router ---


def test_score_reaches_invocations_as_transaction(runtime: Any) -> None:
    answer = {"transaction_id": "t-001", "score": 0.2, "decision": "approve"}
    with Stubber(runtime) as stub:
        expect_invocation(stub, {"transaction": TRANSACTION}, answer)
        result = router.route(
            score_event(json.dumps(TRANSACTION)),
            runtime=runtime,
            endpoint_name=ENDPOINT,
        )
        stub.assert_no_pending_responses()

    assert result["statusCode"] == 200
    assert result["headers"] == {"content-type": "application/json"}
    assert json.loads(result["body"]) == answer


def test_score_base64_body_decoded(runtime: Any) -> None:
    encoded = base64.b64encode(json.dumps(TRANSACTION).encode()).decode()
    with Stubber(runtime) as stub:
        expect_invocation(stub, {"transaction": TRANSACTION}, {"ok": True})
        result = router.route(
            score_event(encoded, isBase64Encoded=True),
            runtime=runtime,
            endpoint_name=ENDPOINT,
        )

    assert result["statusCode"] == 200


def test_explanation_reaches_invocations_by_id(runtime: Any) -> None:
    answer = {"transaction_id": "t-001", "reasons": [{"feature": "amount"}]}
    with Stubber(runtime) as stub:
        expect_invocation(stub, {"explanation": {"transaction_id": "t-001"}}, answer)
        result = router.route(
            explanation_event("t-001"), runtime=runtime, endpoint_name=ENDPOINT
        )
        stub.assert_no_pending_responses()

    assert result["statusCode"] == 200
    assert json.loads(result["body"]) == answer


def test_router_without_authorizer_context_refuses(runtime: Any) -> None:
    with Stubber(runtime) as stub:
        result = router.route(
            score_event(json.dumps(TRANSACTION), authorized=False),
            runtime=runtime,
            endpoint_name=ENDPOINT,
        )
        stub.assert_no_pending_responses()

    assert result["statusCode"] == 401
    assert json.loads(result["body"]) == {"error": "missing or invalid bearer token"}


@pytest.mark.parametrize(
    ("event", "status", "fragment"),
    [
        (score_event("not json"), 400, "not JSON"),
        (score_event("[1, 2]"), 400, "JSON object"),
        (score_event("{}" + " " * router.MAX_BODY_BYTES), 413, "limit"),
        (score_event("%%%", isBase64Encoded=True), 400, "base64"),
        (explanation_event("bad id with spaces"), 400, "transaction_id"),
        (explanation_event("x" * 129), 400, "transaction_id"),
        ({**score_event("{}"), "routeKey": "DELETE /score"}, 404, "no route"),
    ],
    ids=[
        "not-json",
        "list",
        "too-large",
        "bad-base64",
        "id-spaces",
        "id-long",
        "route",
    ],
)
def test_router_rejects_bad_requests(
    runtime: Any, event: dict, status: int, fragment: str
) -> None:
    with Stubber(runtime) as stub:
        result = router.route(event, runtime=runtime, endpoint_name=ENDPOINT)
        stub.assert_no_pending_responses()

    assert result["statusCode"] == status
    assert fragment in json.loads(result["body"])["error"]


def test_container_4xx_passes_through(runtime: Any) -> None:
    message = json.dumps({"error": "amount_minor must be a positive integer"})
    with Stubber(runtime) as stub:
        stub.add_client_error(
            "invoke_endpoint",
            service_error_code="ModelError",
            http_status_code=424,
            modeled_fields={"OriginalStatusCode": 422, "OriginalMessage": message},
        )
        result = router.route(
            score_event(json.dumps(TRANSACTION)),
            runtime=runtime,
            endpoint_name=ENDPOINT,
        )

    assert result["statusCode"] == 422
    assert json.loads(result["body"]) == {
        "error": "amount_minor must be a positive integer"
    }


@pytest.mark.parametrize(
    ("code", "modeled", "status"),
    [
        ("ModelError", {"OriginalStatusCode": 500}, 502),
        ("ValidationError", {}, 503),
        ("ServiceUnavailable", {}, 503),
    ],
    ids=["container-500", "endpoint-missing", "unavailable"],
)
def test_runtime_failures_mapped(
    runtime: Any, code: str, modeled: dict, status: int
) -> None:
    with Stubber(runtime) as stub:
        stub.add_client_error(
            "invoke_endpoint",
            service_error_code=code,
            http_status_code=400,
            modeled_fields=modeled or None,
        )
        result = router.route(
            score_event(json.dumps(TRANSACTION)),
            runtime=runtime,
            endpoint_name=ENDPOINT,
        )

    assert result["statusCode"] == status
    assert "error" in json.loads(result["body"])


def test_handler_moto_forwards_score(
    monkeypatch: pytest.MonkeyPatch,
    moto_url: str,
    aws: Any,
    queue_answers: Callable[[list[str]], None],
) -> None:
    monkeypatch.setenv("ENDPOINT_NAME", ENDPOINT)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", moto_url)
    monkeypatch.setattr(router, "_runtime_client", None)
    answer = {"transaction_id": "t-001", "score": 0.9, "decision": "decline"}
    queue_answers([json.dumps(answer)])

    result = router.handle(score_event(json.dumps(TRANSACTION)))

    assert result["statusCode"] == 200
    assert json.loads(result["body"]) == answer


@pytest.mark.parametrize("module", ["router", "scheduler"])
def test_lambda_module_imports_only_runtime_packages(module: str) -> None:
    import ast
    import sys
    from pathlib import Path

    path = Path(router.__file__).with_name(f"{module}.py")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])

    third_party = imported - set(sys.stdlib_module_names) - {"__future__"}
    assert third_party <= {"boto3", "botocore"}
