"""Smoke test of a deployed endpoint through the SageMaker container contract.

The container responds to ``POST /invocations`` with a JSON body of one of two shapes:
``{"transaction": {...canonical fields...}}`` returns a score, and
``{"explanation": {"transaction_id": "..."}}`` returns the stored explanation of an
earlier decision. The smoke test sends one of each and checks the responses.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

DECISIONS = ("approve", "review", "decline")
CONTENT_TYPE = "application/json"
# Dedicated card and merchant ids keep the online state that smoke requests append
# apart from real cards. Analysts filter these ids out of the audit log.
SMOKE_CARD_ID = "smoke-test-card"
SMOKE_MERCHANT_ID = "smoke-test-merchant"


class SmokeTestError(RuntimeError):
    """The endpoint response does not match the container contract."""


def smoke_transaction(*, transaction_id: str, now: datetime) -> dict[str, Any]:
    """Return a valid canonical transaction for the smoke test.

    Args:
        transaction_id: Unique id, so each smoke run is a new decision.
        now: Aware UTC time written as the authorisation time.
    """
    return {
        "transaction_id": transaction_id,
        "timestamp": now.astimezone(UTC).isoformat(),
        "card_id": SMOKE_CARD_ID,
        "merchant_id": SMOKE_MERCHANT_ID,
        "amount_minor": 1250,
        "currency": "GBP",
        "mcc": "5411",
        "channel": "contactless",
        "card_present": True,
        "merchant_country": "GB",
        "card_country": "GB",
    }


def score_request(transaction: dict[str, Any]) -> bytes:
    """Return the ``/invocations`` body that requests a score."""
    return json.dumps({"transaction": transaction}).encode("utf-8")


def explanation_request(transaction_id: str) -> bytes:
    """Return the ``/invocations`` body that requests a stored explanation."""
    return json.dumps({"explanation": {"transaction_id": transaction_id}}).encode()


def _parse_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SmokeTestError(
            f"{what} response is not JSON ({error}): {body[:200]!r}"
        ) from error
    if not isinstance(parsed, dict):
        raise SmokeTestError(f"{what} response is not a JSON object: {body[:200]!r}")
    return parsed


def check_score(
    body: bytes, *, transaction_id: str, model_version: str | None
) -> dict[str, Any]:
    """Check a score response and return it parsed.

    Raises:
        SmokeTestError: A field is missing or out of range; the message names it.
    """
    answer = _parse_object(body, "score")
    if answer.get("transaction_id") != transaction_id:
        raise SmokeTestError(
            f"score response transaction_id is {answer.get('transaction_id')!r}, "
            f"expected {transaction_id!r}"
        )
    score = answer.get("score")
    if (
        not isinstance(score, int | float)
        or isinstance(score, bool)
        or not math.isfinite(score)
        or not 0.0 <= score <= 1.0
    ):
        raise SmokeTestError(
            f"score response field score is {score!r}, expected a number in [0, 1]"
        )
    if answer.get("decision") not in DECISIONS:
        raise SmokeTestError(
            f"score response field decision is {answer.get('decision')!r}, "
            f"expected one of {', '.join(DECISIONS)}"
        )
    if model_version is not None and str(answer.get("model_version")) != model_version:
        raise SmokeTestError(
            f"score response model_version is {answer.get('model_version')!r}, but "
            f"version {model_version} was deployed: the endpoint serves another model"
        )
    return answer


def check_explanation(body: bytes, *, transaction_id: str) -> dict[str, Any]:
    """Check an explanation response and return it parsed.

    Raises:
        SmokeTestError: The response is not a JSON object for ``transaction_id``.
    """
    answer = _parse_object(body, "explanation")
    if answer.get("transaction_id") != transaction_id:
        raise SmokeTestError(
            f"explanation response transaction_id is {answer.get('transaction_id')!r}, "
            f"expected {transaction_id!r}"
        )
    return answer


def run_smoke_test(
    runtime: Any,
    *,
    endpoint_name: str,
    transaction_id: str,
    model_version: str | None,
    now: datetime,
) -> dict[str, Any]:
    """Score one transaction on the endpoint, then fetch its explanation.

    Args:
        runtime: A boto3 ``sagemaker-runtime`` client.

    Returns:
        The parsed score and explanation responses.

    Raises:
        SmokeTestError: A response breaks the container contract.
    """
    transaction = smoke_transaction(transaction_id=transaction_id, now=now)
    scored = runtime.invoke_endpoint(
        EndpointName=endpoint_name,
        ContentType=CONTENT_TYPE,
        Accept=CONTENT_TYPE,
        Body=score_request(transaction),
    )
    score = check_score(
        scored["Body"].read(),
        transaction_id=transaction_id,
        model_version=model_version,
    )
    explained = runtime.invoke_endpoint(
        EndpointName=endpoint_name,
        ContentType=CONTENT_TYPE,
        Accept=CONTENT_TYPE,
        Body=explanation_request(transaction_id),
    )
    explanation = check_explanation(
        explained["Body"].read(), transaction_id=transaction_id
    )
    return {"score": score, "explanation": explanation}
