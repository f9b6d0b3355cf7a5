"""EMF lines of the scoring service: built per request, written to stdout.

The service tests start ``cardfraud serve`` on 127.0.0.1 with stdout and stderr in
separate files, so that each EMF line is checked to be a whole stdout line that
parses as JSON on its own, as CloudWatch Logs requires.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from cardfraud.monitoring.exporters import EMF_METRICS, SERVICE_NAMESPACE
from cardfraud.service_emf import (
    EMF_ENV,
    MAX_VALUES_PER_METRIC,
    configure_emf_logger,
    emf_enabled,
    request_emf_lines,
    scored_responses,
)
from tests.service.conftest import (
    RunningService,
    ServedWorkspace,
    fresh_bodies,
    launch_service,
    service_environment,
)
from tests.support.servers import free_port

CARDFRAUD = str(Path(sys.executable).with_name("cardfraud"))


def response(transaction_id: str, decision: str, score: float) -> dict[str, Any]:
    return {
        "transaction_id": transaction_id,
        "score": score,
        "decision": decision,
        "model_version": "2",
        "degraded": decision == "decline",
        "missing_features": ["card_count_1h"] if decision == "review" else [],
        "timings_ms": {"total": 1.0},
    }


def emf_documents(text: str) -> list[dict[str, Any]]:
    """Parse every line that contains an EMF document; each must be pure JSON."""
    documents = []
    for line in text.splitlines():
        if '"_aws"' not in line:
            continue
        document = json.loads(line)
        assert isinstance(document, dict), line
        documents.append(document)
    return documents


# Lines built in process.


def test_emf_enabled_reads_zero_one_and_unset():
    assert emf_enabled({EMF_ENV: "1"}) is True
    assert emf_enabled({EMF_ENV: "0"}) is False
    assert emf_enabled({EMF_ENV: ""}) is False
    assert emf_enabled({}) is False


def test_emf_enabled_rejects_other_values():
    with pytest.raises(ValueError, match=r"CARDFRAUD_EMF='yes' is not 0 or 1; set 1"):
        emf_enabled({EMF_ENV: "yes"})


def test_scored_responses_skip_explanations():
    single = response("t1", "approve", 0.1)
    batch = {"results": [single, response("t2", "review", 0.5)]}
    explanation = {"transaction_id": "t1", "decision": "approve", "reasons": []}
    assert scored_responses(json.dumps(single).encode()) == [single]
    assert [
        item["transaction_id"] for item in scored_responses(json.dumps(batch).encode())
    ] == ["t1", "t2"]
    assert scored_responses(json.dumps(explanation).encode()) == []


def test_single_score_line_equals_emf_line():
    (line,) = request_emf_lines(
        [response("t1", "review", 0.42)],
        route="/invocations",
        status=200,
        latency_s=0.0125,
        timestamp_ms=1_700_000_000_000,
    )
    document = json.loads(line)
    assert document["TransactionId"] == "t1"
    assert document["Decision"] == "review"
    assert (document["Approve"], document["Review"], document["Decline"]) == (0, 1, 0)
    assert document["Latency"] == 12.5
    assert document["Score"] == 0.42
    assert document["ColdStart"] == 1
    assert document["_aws"]["Timestamp"] == 1_700_000_000_000


def test_batch_line_sums_decisions():
    responses = [
        response("t1", "approve", 0.1),
        response("t2", "approve", 0.2),
        response("t3", "review", 0.6),
        response("t4", "decline", 0.95),
    ]
    (line,) = request_emf_lines(
        responses, route="/score/batch", status=200, latency_s=0.02
    )
    document = json.loads(line)
    declared = document["_aws"]["CloudWatchMetrics"][0]
    assert (document["Approve"], document["Review"], document["Decline"]) == (2, 1, 1)
    assert document["Requests"] == 1
    assert document["Degraded"] == 1
    assert document["ColdStart"] == 1
    assert document["Latency"] == 20.0
    assert document["Score"] == [0.1, 0.2, 0.6, 0.95]
    assert document["TransactionIds"] == ["t1", "t2", "t3", "t4"]
    assert "TransactionId" not in document
    assert "Decision" not in document
    assert declared["Dimensions"] == [["Route"]]
    assert len(declared["Metrics"]) == len(EMF_METRICS)


def test_batch_over_hundred_scores_continues_score_only():
    responses = [response(f"t{i}", "approve", i / 1000) for i in range(230)]
    lines = request_emf_lines(
        responses, route="/invocations", status=200, latency_s=0.1
    )
    documents = [json.loads(line) for line in lines]
    first, *rest = documents
    assert len(documents) == 3
    assert first["Approve"] == 230
    assert len(first["Score"]) == MAX_VALUES_PER_METRIC
    assert [len(document["Score"]) for document in rest] == [100, 30]
    for document in rest:
        directive = document["_aws"]["CloudWatchMetrics"][0]
        assert directive["Metrics"] == [{"Name": "Score", "Unit": "None"}]
        assert directive["Namespace"] == SERVICE_NAMESPACE
        assert document["Route"] == "/invocations"
    scores = [value for document in documents for value in document["Score"]]
    assert scores == [i / 1000 for i in range(230)]


def test_server_error_line_counts_error():
    (line,) = request_emf_lines([], route="/score", status=503, latency_s=0.3)
    document = json.loads(line)
    assert document["Errors"] == 1
    assert document["Requests"] == 1
    assert document["Decision"] == "none"


def test_emf_logger_writes_bare_line():
    stream = io.StringIO()
    emf_logger = configure_emf_logger(stream)
    emf_logger.info('{"_aws":{}}')
    assert stream.getvalue() == '{"_aws":{}}\n'
    assert emf_logger.propagate is False
    configure_emf_logger(stream)
    assert len(logging.getLogger("cardfraud.emf").handlers) == 1


# The real service on 127.0.0.1.


def csv_body(transactions: list[dict[str, Any]]) -> str:
    columns = sorted({key for item in transactions for key in item})
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for item in transactions:
        writer.writerow(
            {
                key: str(value).lower() if isinstance(value, bool) else value
                for key, value in item.items()
            }
        )
    return out.getvalue()


def launch_sagemaker_mode(
    served: ServedWorkspace, folder: Path
) -> tuple[RunningService, Path]:
    """Start ``cardfraud serve --sagemaker`` on 127.0.0.1 without CARDFRAUD_EMF.

    Returns the service and the file of its stdout; its stderr is the service log.
    """
    port = free_port()
    command = [CARDFRAUD, "serve", "--sagemaker", "--workers", "2"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    env = service_environment(served, folder)
    env.pop(EMF_ENV, None)
    stdout = folder / "stdout.log"
    service = launch_service(command, env, folder, port=port, stdout=stdout)
    return service, stdout


def timed_post(service: RunningService, path: str, **kwargs: Any) -> float:
    """POST through ``service.post``; returns the round trip in milliseconds."""
    started = time.perf_counter()
    service.post(path, **kwargs)
    return (time.perf_counter() - started) * 1000


def wait_for_lines(path: Path, count: int, *, timeout_s: float = 10.0) -> str:
    """Return the file's text once it has ``count`` EMF lines, or at the timeout."""
    deadline = time.monotonic() + timeout_s
    text = path.read_text()
    while len(emf_documents(text)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
        text = path.read_text()
    return text


@pytest.fixture(scope="module")
def emf_run(
    served_workspace: ServedWorkspace, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Requests to the SageMaker-mode service and the stdout they produced."""
    folder = tmp_path_factory.mktemp("emf-service")
    service, stdout = launch_sagemaker_mode(served_workspace, folder)
    bodies = iter(fresh_bodies(served_workspace, "emf", 12, own_entities=True))
    round_trips: dict[str, float] = {}
    try:
        round_trips["/score"] = timed_post(service, "/score", json=next(bodies))
        batch = [next(bodies) for _ in range(3)]
        round_trips["/score/batch"] = timed_post(
            service, "/score/batch", json={"transactions": batch}
        )
        round_trips["/invocations json"] = timed_post(
            service, "/invocations", json={"transaction": next(bodies)}
        )
        rows = [next(bodies) for _ in range(2)]
        round_trips["/invocations csv"] = timed_post(
            service,
            "/invocations",
            content=csv_body(rows),
            headers={"Content-Type": "text/csv"},
        )
        explained = service.accepted[0]
        service.post(
            "/invocations", json={"explanation": {"transaction_id": explained}}
        )
        service.post("/score", json={"transaction": "not a transaction"})
        httpx.get(f"{service.url}/ping", timeout=10)
        text = wait_for_lines(stdout, 4)
    finally:
        service.stop()
    return {
        "service": service,
        "stdout": text,
        "stderr": service.log.read_text(),
        "round_trips": round_trips,
    }


def test_sagemaker_mode_one_line_per_request(emf_run: dict[str, Any]):
    documents = emf_documents(emf_run["stdout"])
    routes = Counter(document["Route"] for document in documents)
    statuses = Counter(status for _, status in emf_run["service"].sent)
    assert routes == {"/score": 1, "/score/batch": 1, "/invocations": 2}
    assert statuses == {200: 5, 422: 1}


def test_emf_lines_only_on_stdout(emf_run: dict[str, Any]):
    assert emf_documents(emf_run["stderr"]) == []
    for line in emf_run["stdout"].splitlines():
        if line.startswith("{") and '"_aws"' in line:
            assert line.endswith("}")


def test_decision_counts_match_responses(emf_run: dict[str, Any]):
    documents = emf_documents(emf_run["stdout"])
    service = emf_run["service"]
    counted = Counter()
    for document in documents:
        for name in ("approve", "review", "decline"):
            counted[name] += document[name.title()]
    listed = [
        transaction_id
        for document in documents
        for transaction_id in document.get(
            "TransactionIds", [document.get("TransactionId")]
        )
    ]
    assert len(service.accepted) == 7
    assert sorted(listed) == sorted(service.accepted)
    assert counted == Counter(service.decisions)
    assert all(document["Requests"] == 1 for document in documents)
    assert all(document["Errors"] == 0 for document in documents)


def test_latency_within_round_trip(emf_run: dict[str, Any]):
    documents = emf_documents(emf_run["stdout"])
    by_route: dict[str, list[float]] = {}
    for document in documents:
        key = document["Route"]
        if key == "/invocations":
            key += " csv" if "TransactionIds" in document else " json"
        by_route.setdefault(key, []).append(document["Latency"])
    for key, round_trip in emf_run["round_trips"].items():
        (latency,) = by_route[key]
        assert 0 < latency <= round_trip, key


def test_batch_line_scores_match_responses(emf_run: dict[str, Any]):
    (batch,) = [
        document
        for document in emf_documents(emf_run["stdout"])
        if document["Route"] == "/score/batch"
    ]
    assert len(batch["Score"]) == 3
    assert all(0.0 <= score <= 1.0 for score in batch["Score"])
    assert batch["Approve"] + batch["Review"] + batch["Decline"] == 3


def test_no_emf_lines_without_the_setting(
    served_workspace: ServedWorkspace, tmp_path: Path
):
    port = free_port()
    command = [CARDFRAUD, "serve", "--workers", "1", "--port", str(port)]
    command += ["--host", "127.0.0.1"]
    env = service_environment(served_workspace, tmp_path)
    env.pop(EMF_ENV, None)
    service = launch_service(command, env, tmp_path, port=port)
    try:
        body = fresh_bodies(served_workspace, "no-emf", 1, own_entities=True)[0]
        reply = service.post("/score", json=body)
    finally:
        service.stop()
    assert reply.status_code == 200
    assert emf_documents(service.log.read_text()) == []
