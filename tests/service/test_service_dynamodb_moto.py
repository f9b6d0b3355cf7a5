"""The service with its audit log in DynamoDB, a moto server on 127.0.0.1.

The service process gets fake AWS credentials, and AWS_ENDPOINT_URL points at a
closed port on 127.0.0.1. A boto3 client that ignored the service's own endpoint
setting (CARDFRAUD_AUDIT_ENDPOINT_URL) would therefore fail there instead of reaching
AWS.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from cardfraud.audit import DynamoAuditStore
from tests.service.conftest import (
    TOKEN,
    RunningService,
    ServedWorkspace,
    fresh_bodies,
    last_moment,
    start_service,
)
from tests.support.aws import fake_aws_environment, use_fake_aws_credentials
from tests.support.servers import free_port

REGION = "eu-west-1"
TABLE = "cardfraud-decisions-service-test"
TAG = "dynamo"
SCORED = 8
CSV_ROWS = 3
# Maximum wait, in seconds, for the decision of a score to reach the table.
EXPLANATION_WAIT_S = 10


def csv_body(served: ServedWorkspace) -> str:
    """Return a CSV body of ``CSV_ROWS`` transactions with a header row."""
    moment = (last_moment(served) + timedelta(days=5)).isoformat()
    header = "transaction_id,timestamp,card_id,merchant_id,amount_minor,currency"
    rows = [
        f"{TAG}-csv-{i},{moment},{TAG}-card-csv,{TAG}-merchant-csv,{1500 + i},EUR"
        for i in range(CSV_ROWS)
    ]
    return "\n".join([header, *rows]) + "\n"


def get_explanation_when_stored(
    service: RunningService, transaction_id: str
) -> httpx.Response:
    """GET the explanation of a scored transaction, retrying while it is a 404.

    The worker that handles the request may not be the one that scored, and that
    one writes the record to the table within its flush interval. Retries stop
    after ``EXPLANATION_WAIT_S`` seconds.
    """
    url = f"{service.url}/explanations/{transaction_id}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    deadline = time.monotonic() + EXPLANATION_WAIT_S
    while True:
        response = httpx.get(url, headers=headers, timeout=30)
        if response.status_code != 404 or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


@pytest.fixture(scope="module")
def audit_table(
    moto_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DynamoAuditStore]:
    """The audit table on the moto server, created before the service starts."""
    folder = tmp_path_factory.mktemp("aws-config")
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_fake_aws_credentials(monkeypatch, folder, region=REGION)
        store = DynamoAuditStore(TABLE, region=REGION, endpoint_url=moto_url)
        store.ensure_table()
        yield store


@pytest.fixture(scope="module")
def dynamo_service(
    served_workspace: ServedWorkspace,
    audit_table: DynamoAuditStore,
    moto_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningService]:
    folder = tmp_path_factory.mktemp("dynamodb-service")
    env = {
        **fake_aws_environment(folder, region=REGION),
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "CARDFRAUD_AUDIT_BACKEND": "dynamodb",
        "CARDFRAUD_AUDIT_TABLE": TABLE,
        "CARDFRAUD_AUDIT_REGION": REGION,
        "CARDFRAUD_AUDIT_ENDPOINT_URL": moto_url,
    }
    service = start_service(served_workspace, folder, extra_env=env)
    yield service
    service.stop()


@pytest.fixture(scope="module")
def scored(
    dynamo_service: RunningService, served_workspace: ServedWorkspace
) -> dict[str, dict[str, Any]]:
    """Responses of /score and of /invocations (JSON and CSV) by transaction id."""
    responses: list[httpx.Response] = []
    for body in fresh_bodies(served_workspace, TAG, SCORED, own_entities=True):
        responses.append(dynamo_service.post("/score", json=body))
    invocation = fresh_bodies(served_workspace, TAG, SCORED + 1, own_entities=True)[-1]
    invocation["transaction_id"] = f"{TAG}-invocation-json"
    responses.append(
        dynamo_service.post("/invocations", json={"transaction": invocation})
    )
    responses.append(
        dynamo_service.post(
            "/invocations",
            content=csv_body(served_workspace),
            headers={"Content-Type": "text/csv"},
        )
    )
    assert [response.status_code for response in responses] == [200] * len(responses)
    results = {}
    for response in responses:
        for item in response.json().get("results", [response.json()]):
            results[item["transaction_id"]] = item
    return results


def test_dynamodb_moto_readyz_reports_audit_table(dynamo_service):
    body = httpx.get(f"{dynamo_service.url}/readyz", timeout=10).json()
    assert body["status"] == "ready"
    assert body["stores"]["audit_store"]["status"] == "ok"


def test_dynamodb_moto_explanation_reads_table(dynamo_service, scored, audit_table):
    transaction_id = f"{TAG}-0000"
    response = get_explanation_when_stored(dynamo_service, transaction_id)
    stored = audit_table.latest(transaction_id)
    assert response.status_code == 200, response.text
    assert stored is not None
    body = response.json()
    assert body["transaction_id"] == transaction_id
    assert body["decision"] == scored[transaction_id]["decision"]
    assert body["decision"] == stored["decision"]
    assert body["model_version"] == stored["model_version"]
    assert body["score"] == pytest.approx(stored["score"], abs=1e-12)


def test_dynamodb_moto_items_equal_accepted_requests(
    dynamo_service, scored, audit_table
):
    dynamo_service.stop()
    records = audit_table.records()
    ids = sorted(record["transaction_id"] for record in records)
    assert len(scored) == SCORED + 1 + CSV_ROWS
    assert sorted(dynamo_service.accepted) == sorted(scored)
    assert ids == sorted(dynamo_service.accepted)
    for record in records:
        response = scored[record["transaction_id"]]
        assert record["decision"] == response["decision"]
        assert record["score"] == response["score"]
        assert record["model_version"] == response["model_version"]
