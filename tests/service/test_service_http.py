"""The scoring service over HTTP on 127.0.0.1, started with ``cardfraud serve``.

The first half serves an XGBoost champion on the SQLite online store; the second
trains a LightGBM model, moves the ``champion`` alias to it, and restarts the service
on a Redis online store. Both replay the last day of the smoke data through the
service and compare it with the offline model on the feature table.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import polars as pl
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cardfraud.audit import SqliteAuditStore
from cardfraud.feature_store import FEATURES_FILE, apply_and_load_state, open_store
from cardfraud.features import feature_columns
from cardfraud.online import (
    CardState,
    MerchantState,
    OnlineFeatures,
    add_transaction_to_card,
    add_transaction_to_merchant,
    replay_events,
)
from cardfraud.registry import make_client, set_alias
from cardfraud.served_model import ServedModel, load_from_registry
from cardfraud.serving import decide
from tests.service.conftest import (
    LABEL_COLUMNS,
    TOKEN,
    RunningService,
    ServedWorkspace,
    last_moment,
    start_service,
    train_and_register,
    write_redis_store_yaml,
)

AUTH = {"Authorization": f"Bearer {TOKEN}"}
CONCURRENT_REQUESTS = 16
# Maximum wait, in seconds, for the workers to count the requests they responded to.
METRICS_WAIT_S = 30


def request_body(row: dict[str, Any]) -> dict[str, Any]:
    body = {key: value for key, value in row.items() if key not in LABEL_COLUMNS}
    body["timestamp"] = body["timestamp"].isoformat()
    return {key: value for key, value in body.items() if value is not None}


def replay(
    service: RunningService, served: ServedWorkspace, online: OnlineFeatures
) -> dict[str, dict[str, Any]]:
    """Send every transaction from replay_start on, applying labels in between."""
    responses = {}
    events = replay_events(
        served.transactions, served.params.features, start=served.replay_start
    )
    for kind, event in events:
        if kind == "label":
            online.apply_label(**event)
            continue
        response = service.post("/score", json=request_body(event))
        assert response.status_code == 200, response.text
        responses[event["transaction_id"]] = response.json()
    assert len(responses) >= 20
    return responses


def offline_rows(served: ServedWorkspace, ids: list[str]) -> pl.DataFrame:
    table = pl.read_parquet(served.ws.features_dir / FEATURES_FILE)
    rows = table.filter(pl.col("transaction_id").is_in(ids))
    return rows.sort(pl.col("transaction_id").replace_strict(ids, range(len(ids))))


def assert_scores_equal_offline(
    served: ServedWorkspace, model: ServedModel, responses: dict[str, dict]
) -> None:
    ids = list(responses)
    rows = offline_rows(served, ids)
    assert rows["transaction_id"].to_list() == ids
    expected = model.model.predict_proba(rows)
    served_scores = np.array([responses[tid]["score"] for tid in ids])
    assert np.max(np.abs(served_scores - expected)) <= 1e-6
    decisions = [decide(float(s), model.model.thresholds) for s in expected]
    assert [responses[tid]["decision"] for tid in ids] == decisions


def assert_reasons_add_up(
    served: ServedWorkspace, model: ServedModel, responses: dict[str, dict]
) -> None:
    ids = list(responses)
    margins = model.model.predict_margin(offline_rows(served, ids))
    for tid, margin in zip(ids, margins, strict=True):
        body = responses[tid]
        shown = sum(reason["contribution"] for reason in body["reasons"])
        total = body["base_value"] + shown + body["other_contribution"]
        assert 1 <= len(body["reasons"]) <= 4
        assert total == pytest.approx(body["margin"], abs=1e-9)
        assert body["margin"] == pytest.approx(float(margin), abs=1e-5)
        assert all(reason["sentence"].endswith(".") for reason in body["reasons"])


def assert_concurrent_matches_sequential(
    service: RunningService, served: ServedWorkspace, online: OnlineFeatures, tag: str
) -> None:
    """Concurrent requests of one card and merchant leave the sequential state.

    Equal amounts make the final state independent of the order in which the
    workers took the lock, so a replay in time order is the expected state.
    """
    start = last_moment(served) + timedelta(days=2)
    transactions = [
        {
            "transaction_id": f"{tag}-concurrent-{i:02d}",
            "timestamp": start + timedelta(seconds=i),
            "card_id": f"{tag}-card",
            "merchant_id": f"{tag}-merchant",
            "amount_minor": 2_500,
            "currency": "EUR",
            "device_id": f"device-{i % 3}",
            "merchant_country": "DE",
        }
        for i in range(CONCURRENT_REQUESTS)
    ]
    bodies = [
        {**item, "timestamp": item["timestamp"].isoformat()} for item in transactions
    ]
    with ThreadPoolExecutor(CONCURRENT_REQUESTS) as pool:
        responses = list(
            pool.map(lambda body: service.post("/score", json=body), bodies)
        )
    assert [response.status_code for response in responses] == [200] * len(bodies)
    assert not any(response.json()["degraded"] for response in responses)

    card = CardState()
    merchant = MerchantState()
    for item in transactions:
        card = add_transaction_to_card(card, item, served.params.features)
        merchant = add_transaction_to_merchant(merchant, item, served.params.features)
    stored_card = online.read_card(f"{tag}-card")
    stored_merchant = online.read_merchant(f"{tag}-merchant")
    assert stored_card is not None
    assert stored_card.count == CONCURRENT_REQUESTS
    assert stored_card == card
    assert stored_merchant == merchant


def assert_audit_rows_equal_accepted(service: RunningService) -> None:
    service.stop()
    records = SqliteAuditStore(service.audit_db).records()
    assert len(records) == len(service.accepted)
    assert sorted(r["transaction_id"] for r in records) == sorted(service.accepted)


# XGBoost on the SQLite online store.


@pytest.fixture(scope="module")
def xgb_service(
    served_workspace: ServedWorkspace, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    service = start_service(served_workspace, tmp_path_factory.mktemp("xgb-service"))
    yield service
    service.stop()


@pytest.fixture(scope="module")
def sqlite_online(served_workspace: ServedWorkspace) -> OnlineFeatures:
    return OnlineFeatures(
        open_store(served_workspace.ws), served_workspace.params.features
    )


@pytest.fixture(scope="module")
def xgb_model(served_workspace: ServedWorkspace) -> ServedModel:
    return load_from_registry(
        tracking_uri=served_workspace.ws.tracking_uri(),
        model_name=served_workspace.params.registry.model_name,
        alias="champion",
        version="1",
    )


@pytest.fixture(scope="module")
def xgb_replay(
    xgb_service: RunningService,
    served_workspace: ServedWorkspace,
    sqlite_online: OnlineFeatures,
) -> dict[str, dict]:
    return replay(xgb_service, served_workspace, sqlite_online)


def test_xgboost_scores_equal_offline_model(served_workspace, xgb_model, xgb_replay):
    assert xgb_model.model.flavour == "xgboost"
    assert {body["model_version"] for body in xgb_replay.values()} == {"1"}
    assert_scores_equal_offline(served_workspace, xgb_model, xgb_replay)


def test_xgboost_reasons_add_up_to_margin(served_workspace, xgb_model, xgb_replay):
    assert_reasons_add_up(served_workspace, xgb_model, xgb_replay)


def test_pinned_version_keeps_alias_it_had(served_workspace):
    from cardfraud.registry import find_alias_version, make_client

    uri = served_workspace.ws.tracking_uri()
    name = served_workspace.params.registry.model_name
    champion = find_alias_version(make_client(uri), model_name=name, alias="champion")
    assert champion is not None
    pinned = load_from_registry(
        tracking_uri=uri,
        model_name=name,
        alias="champion",
        version=str(champion.version),
    )
    assert pinned.alias == "champion"


def test_readyz_reports_model_and_stores(xgb_service):
    body = httpx.get(f"{xgb_service.url}/readyz", timeout=10).json()
    assert body["status"] == "ready"
    assert body["model"]["version"] == "1"
    assert body["model"]["flavour"] == "xgboost"
    assert body["stores"]["online_store"]["status"] == "ok"
    assert body["stores"]["audit_store"]["status"] == "ok"


def test_new_card_scored_as_cold_start(xgb_service, served_workspace):
    body = {
        "transaction_id": "cold-start-1",
        "timestamp": (last_moment(served_workspace) + timedelta(days=1)).isoformat(),
        "card_id": "card-never-seen",
        "merchant_id": "merchant-never-seen",
        "amount_minor": 1999,
        "currency": "EUR",
    }
    response = xgb_service.post("/score", json=body)
    assert response.status_code == 200
    assert response.json()["cold_start"] is True
    assert response.json()["degraded"] is False
    assert sorted(response.json()["missing_features"]) == [
        "card_state",
        "merchant_state",
    ]


BAD_INPUTS = [
    ("missing field", {"drop": "amount_minor"}, "amount_minor"),
    ("wrong type", {"amount_minor": "12.50"}, "amount_minor"),
    ("negative amount", {"amount_minor": -100}, "amount_minor"),
    ("absurd amount", {"amount_minor": 10**15}, "amount_minor"),
    ("unknown currency", {"currency": "XYZ"}, "currency"),
    ("naive timestamp", {"timestamp": "2025-03-01T10:00:00"}, "timestamp"),
    ("null required", {"card_id": None}, "card_id"),
    ("unknown field", {"amonut_minor": 5}, "amonut_minor"),
    ("bad channel", {"channel": "telepathy"}, "channel"),
    ("float amount", {"amount_minor": 12.5}, "amount_minor"),
    ("boolean amount", {"amount_minor": True}, "amount_minor"),
    ("zero amount", {"amount_minor": 0}, "amount_minor"),
    ("lowercase currency", {"currency": "eur"}, "currency"),
    ("numeric timestamp", {"timestamp": 1740823200}, "timestamp"),
    ("date only timestamp", {"timestamp": "2025-03-01"}, "timestamp"),
    ("object card id", {"card_id": {"id": 1}}, "card_id"),
    ("empty transaction id", {"transaction_id": ""}, "transaction_id"),
    ("latitude out of range", {"customer_lat": 91.0}, "customer_lat"),
    ("boolean latitude", {"customer_lat": True}, "customer_lat"),
    ("text longitude", {"merchant_lon": "4.8"}, "merchant_lon"),
    ("epoch text timestamp", {"timestamp": "1741262400"}, "timestamp"),
]
RAW_BAD_INPUTS = [
    ("1e309 amount", '"amount_minor": 1e309', "amount_minor"),
    ("NaN latitude", '"customer_lat": NaN', "customer_lat"),
    ("Infinity longitude", '"merchant_lon": -Infinity', "merchant_lon"),
    ("-1e309 amount", '"amount_minor": -1e309', "amount_minor"),
    ("NaN amount", '"amount_minor": NaN', "amount_minor"),
]
BAD_BODIES = [
    ("empty body", "/score", b"", 400, "body"),
    ("invalid UTF-8", "/score", b'{"card_id": "\xff"}', 400, "body"),
    ("JSON array", "/score", b"[]", 422, "body"),
    ("JSON null", "/score", b"null", 422, "body"),
    ("oversized body", "/score", b" " * 1_000_001, 413, "body"),
    ("batch not a list", "/score/batch", b'{"transactions": {}}', 422, "transactions"),
    ("batch extra key", "/score/batch", b'{"transactions": [{}], "x": 1}', 422, "x"),
    (
        "deep nesting",
        "/score",
        b'{"x": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
        400,
        "body",
    ),
    (
        "deep batch nesting",
        "/score/batch",
        b'{"transactions": [{"x": ' + b"[" * 3_000 + b"]" * 3_000 + b"}]}",
        400,
        "body",
    ),
    (
        "duplicate key",
        "/score",
        b'{"amount_minor": -5, "amount_minor": 1000}',
        400,
        "amount_minor",
    ),
]


def good_body(served: ServedWorkspace, transaction_id: str) -> dict[str, Any]:
    row = served.transactions.sort("timestamp").row(-1, named=True)
    body = request_body(row)
    body["transaction_id"] = transaction_id
    body["timestamp"] = (last_moment(served) + timedelta(days=3)).isoformat()
    return body


@pytest.mark.parametrize("path", ["/score", "/score/batch"])
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded"]
)
def test_non_json_content_type_rejected(
    xgb_service, served_workspace, path, content_type
):
    body = good_body(served_workspace, "content-type")
    if path == "/score/batch":
        body = {"transactions": [body]}
    response = xgb_service.post(
        path, content=json.dumps(body), headers={"Content-Type": content_type}
    )
    assert response.status_code == 415, response.text
    assert response.json()["problems"][0]["field"] == "Content-Type"


def test_metric_field_bounds_label_values():
    from cardfraud.service_app import REQUEST_FIELDS, metric_field
    from cardfraud.service_requests import build_transaction_model

    known = frozenset(build_transaction_model().model_fields) | REQUEST_FIELDS
    assert metric_field("transactions.7.amount_minor", known) == "amount_minor"
    assert metric_field("row 12.currency", known) == "currency"
    assert metric_field("explanation.transaction_id", known) == "transaction_id"
    assert metric_field("surprise_field", known) == "other"
    assert metric_field("<script>", known) == "other"
    assert metric_field("body", known) == "body"


def test_retry_returns_same_decision(xgb_service, served_workspace):
    body = good_body(served_workspace, "retry-same")
    first = xgb_service.post("/score", json=body)
    later = {**body, "transaction_id": "retry-later"}
    later["timestamp"] = (
        datetime.fromisoformat(body["timestamp"]) + timedelta(seconds=30)
    ).isoformat()
    assert xgb_service.post("/score", json=later).status_code == 200
    retried = xgb_service.post("/score", json=body)
    assert first.status_code == 200
    assert retried.status_code == 200
    assert retried.json()["score"] == first.json()["score"]
    assert retried.json()["decision"] == first.json()["decision"]
    assert retried.json()["reasons"] == first.json()["reasons"]


def test_reused_id_with_other_fields_conflicts(xgb_service, served_workspace):
    body = good_body(served_workspace, "retry-changed")
    assert xgb_service.post("/score", json=body).status_code == 200
    changed = {**body, "amount_minor": body["amount_minor"] + 1}
    response = xgb_service.post("/score", json=changed)
    assert response.status_code == 409, response.text
    problem = response.json()["problems"][0]
    assert problem["field"] == "transaction_id"
    assert "amount_minor" in problem["message"]


@pytest.mark.parametrize(("case", "change", "field"), BAD_INPUTS)
def test_bad_input_names_field(xgb_service, served_workspace, case, change, field):
    body = good_body(served_workspace, f"bad-{case}")
    if "drop" in change:
        body.pop(change["drop"])
    else:
        body.update(change)
    response = xgb_service.post("/score", json=body)
    assert response.status_code == 422, case
    problems = response.json()["problems"]
    assert problems[0]["field"] == field
    assert problems[0]["fix"]


@pytest.mark.parametrize(("case", "fragment", "field"), RAW_BAD_INPUTS)
def test_non_finite_number_names_field(
    xgb_service, served_workspace, case, fragment, field
):
    body = good_body(served_workspace, f"raw-{case}")
    body.pop(field, None)
    text = json.dumps(body)[:-1] + ", " + fragment + "}"
    response = xgb_service.post(
        "/score", content=text, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["problems"][0]["field"] == field


@pytest.mark.parametrize(("case", "path", "content", "status", "field"), BAD_BODIES)
def test_bad_body_names_field(xgb_service, case, path, content, status, field):
    response = xgb_service.post(
        path, content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status, case
    assert response.json()["problems"][0]["field"] == field
    assert response.json()["problems"][0]["fix"]


def test_bad_batch_item_names_index_and_field(xgb_service, served_workspace):
    good = good_body(served_workspace, "batch-item-good")
    text = json.dumps(good)
    bad = text[:-1] + ', "amount_minor": 1e309}'
    bad = bad.replace(f'"amount_minor": {good["amount_minor"]}, ', "")
    body = '{"transactions": [' + text + ", " + bad + "]}"
    response = xgb_service.post(
        "/score/batch", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["problems"][0]["field"] == "transactions.1.amount_minor"


MALFORMED_CSV = [
    ("carriage return only", b"\r0", 422, "header"),
    ("field over csv limit", b"transaction_id\n" + b"x" * 200_000, 400, "body"),
]


@pytest.mark.parametrize(("case", "content", "status", "field"), MALFORMED_CSV)
def test_malformed_csv_names_field(xgb_service, case, content, status, field):
    response = xgb_service.post(
        "/invocations", content=content, headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == status, case
    assert response.json()["problems"][0]["field"] == field


def test_malformed_json_rejected_and_service_keeps_serving(
    xgb_service, served_workspace
):
    broken = xgb_service.post(
        "/score",
        content=b'{"transaction_id": ',
        headers={"Content-Type": "application/json"},
    )
    after = xgb_service.post("/score", json=good_body(served_workspace, "after-bad"))
    assert broken.status_code == 400
    assert broken.json()["problems"][0]["field"] == "body"
    assert after.status_code == 200


def test_batch_scores_in_order_and_bounds_size(xgb_service, served_workspace):
    bodies = [good_body(served_workspace, f"batch-{i}") for i in range(6)]
    too_many = xgb_service.post("/score/batch", json={"transactions": bodies})
    accepted = xgb_service.post("/score/batch", json={"transactions": bodies[:2]})
    assert too_many.status_code == 413
    assert too_many.json()["problems"][0]["field"] == "transactions"
    assert accepted.status_code == 200
    ids = [item["transaction_id"] for item in accepted.json()["results"]]
    assert ids == ["batch-0", "batch-1"]


def test_explanation_requires_token_and_known_id(xgb_service, xgb_replay):
    transaction_id = next(iter(xgb_replay))
    url = f"{xgb_service.url}/explanations/{transaction_id}"
    missing = httpx.get(url, timeout=30)
    wrong = httpx.get(url, headers={"Authorization": "Bearer nope"}, timeout=30)
    unknown = httpx.get(f"{xgb_service.url}/explanations/no-such-id", headers=AUTH)
    found = httpx.get(url, headers=AUTH, timeout=30)
    page = httpx.get(url, params={"format": "html"}, headers=AUTH, timeout=30)
    assert missing.status_code == 401
    assert wrong.status_code == 401
    assert unknown.status_code == 404
    assert found.status_code == 200
    body = found.json()
    assert body["decision"] == xgb_replay[transaction_id]["decision"]
    assert body["model_version"] == "1"
    assert body["model_card"]
    lineage = {row["feature"]: row["lineage"] for row in body["features"]}
    assert lineage["card_count_1h"]["online_source"] == "card_state"
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert transaction_id in page.text


def test_counterfactual_change_flips_decision(xgb_service, xgb_model, xgb_replay):
    flagged = [tid for tid, body in xgb_replay.items() if body["decision"] != "approve"]
    transaction_id = (flagged or list(xgb_replay))[0]
    response = httpx.get(
        f"{xgb_service.url}/explanations/{transaction_id}", headers=AUTH, timeout=60
    )
    body = response.json()
    counterfactual = body["counterfactual"]
    assert counterfactual is not None, body.get("counterfactual_note")
    values = {row["feature"]: row["value"] for row in body["features"]}
    for change in counterfactual["changes"]:
        assert values[change["feature"]] == change["before"]
        values[change["feature"]] = change["after"]
    columns = xgb_model.model.feature_columns
    row = np.array([[values[name] for name in columns]])
    score = float(xgb_model.model.predict_proba(row)[0])
    decision = decide(score, xgb_model.model.thresholds)
    assert decision != body["decision"]
    assert decision == counterfactual["decision"]


def test_sagemaker_invocations_json_csv_and_explanation(
    xgb_service, served_workspace, xgb_replay
):
    ping = httpx.get(f"{xgb_service.url}/ping", timeout=10)
    single = xgb_service.post(
        "/invocations", json={"transaction": good_body(served_workspace, "inv-json")}
    )
    header = "transaction_id,timestamp,card_id,merchant_id,amount_minor,currency"
    moment = (last_moment(served_workspace) + timedelta(days=4)).isoformat()
    rows = [
        f"inv-csv-{i},{moment},card-csv,merchant-csv,{1000 + i},EUR" for i in range(2)
    ]
    csv = xgb_service.post(
        "/invocations",
        content="\n".join([header, *rows]) + "\n",
        headers={"Content-Type": "text/csv"},
    )
    bad_csv = xgb_service.post(
        "/invocations",
        content=f"{header}\ninv-bad,{moment},c,m,twelve,EUR\n",
        headers={"Content-Type": "text/csv"},
    )
    explained = xgb_service.post(
        "/invocations",
        json={"explanation": {"transaction_id": next(iter(xgb_replay))}},
        headers=AUTH,
    )
    assert ping.status_code == 200
    assert single.status_code == 200
    assert single.json()["transaction_id"] == "inv-json"
    assert csv.status_code == 200
    assert [r["transaction_id"] for r in csv.json()["results"]] == [
        "inv-csv-0",
        "inv-csv-1",
    ]
    assert bad_csv.status_code == 422
    assert bad_csv.json()["problems"][0]["field"] == "row 1.amount_minor"
    assert explained.status_code == 200
    assert explained.json()["transaction_id"] == next(iter(xgb_replay))


def test_concurrent_same_card_sqlite(xgb_service, served_workspace, sqlite_online):
    assert_concurrent_matches_sequential(
        xgb_service, served_workspace, sqlite_online, "sqlite"
    )


def decision_counts(text: str) -> dict[str, int]:
    """Return the decision counts of a /metrics page by decision."""
    counts: dict[str, int] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "cardfraud_decisions_total":
                counts[sample.labels["decision"]] = round(sample.value)
    return counts


def score_statuses(text: str) -> dict[str, int]:
    """Return the /score request counts of a /metrics page by status code."""
    counts: dict[str, int] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "cardfraud_requests_total" and (
                sample.labels["route"] == "/score"
            ):
                counts[sample.labels["status"]] = round(sample.value)
    return counts


def decisions_logged_by_worker(log: Path) -> dict[int, Counter[str]]:
    """Count the decisions in a service log by the worker process that logged them."""
    counts: dict[int, Counter[str]] = {}
    for line in log.read_text(encoding="utf-8").splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        if entry.get("logger") == "cardfraud.service_app" and "decision" in entry:
            counts.setdefault(entry["process"], Counter())[entry["decision"]] += 1
    return counts


def read_metrics_when_counted(
    service: RunningService, expected_statuses: Counter[str]
) -> str:
    """Read /metrics until its /score request counts reach ``expected_statuses``.

    A worker counts a request after it has sent the response, so the last counts
    may lag the responses by a moment. Returns the last page read.
    """
    deadline = time.monotonic() + METRICS_WAIT_S
    while True:
        text = httpx.get(f"{service.url}/metrics", timeout=10).text
        if score_statuses(text) == expected_statuses:
            return text
        if time.monotonic() > deadline:
            return text
        time.sleep(0.2)


def test_metrics_sum_decisions_across_workers(
    xgb_service, xgb_replay, served_workspace, tmp_path
):
    # BentoML empties the Prometheus folder of its home when a service starts, so a
    # second service given the same BENTOML_HOME must leave this one's metrics alone.
    other = start_service(
        served_workspace,
        tmp_path,
        extra_env={"BENTOML_HOME": str(xgb_service.bentoml_home)},
    )
    other.stop()
    rejected = xgb_service.post("/score", json={"transaction_id": "metrics-422"})
    expected_decisions = Counter(xgb_service.decisions)
    expected_statuses = Counter(
        str(status) for path, status in xgb_service.sent if path == "/score"
    )
    text = read_metrics_when_counted(xgb_service, expected_statuses)

    by_worker = decisions_logged_by_worker(xgb_service.log)
    assert rejected.status_code == 422
    assert len(xgb_replay) <= len(xgb_service.decisions)
    assert decision_counts(text) == expected_decisions
    assert len(by_worker) == 2
    assert sum(by_worker.values(), Counter()) == expected_decisions
    counter_files = {path.name for path in xgb_service.prometheus_dir.iterdir()}
    assert {name for name in counter_files if name.startswith("counter_")} == {
        f"counter_{pid}.db" for pid in by_worker
    }
    assert score_statuses(text) == expected_statuses
    assert "cardfraud_request_duration_seconds_bucket" in text
    assert "cardfraud_score_bucket" in text


def test_xgboost_audit_rows_equal_accepted_requests(xgb_service, xgb_replay):
    assert len(xgb_service.accepted) > len(xgb_replay)
    assert_audit_rows_equal_accepted(xgb_service)


# LightGBM on Redis, after the champion alias moved to it.


@pytest.fixture(scope="module")
def lgb_setup(
    served_workspace: ServedWorkspace,
    xgb_service: RunningService,
    redis_connection: str,
) -> tuple[ServedModel, Path]:
    xgb_service.stop()
    version = train_and_register(served_workspace, "lightgbm")
    client = make_client(served_workspace.ws.tracking_uri())
    model_name = served_workspace.params.registry.model_name
    set_alias(client, model_name=model_name, version=version, alias="champion")
    store_yaml = write_redis_store_yaml(served_workspace.ws, redis_connection)
    apply_and_load_state(
        served_workspace.ws,
        served_workspace.transactions,
        served_workspace.params.features,
        feature_columns(served_workspace.params.features),
        cutoff=served_workspace.replay_start,
        store_yaml=store_yaml,
    )
    model = load_from_registry(
        tracking_uri=served_workspace.ws.tracking_uri(),
        model_name=model_name,
        alias="champion",
    )
    return model, store_yaml


@pytest.fixture(scope="module")
def lgb_service(
    served_workspace: ServedWorkspace,
    lgb_setup: tuple[ServedModel, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningService]:
    service = start_service(
        served_workspace,
        tmp_path_factory.mktemp("lgb-service"),
        extra_env={"CARDFRAUD_FEATURE_STORE_YAML": str(lgb_setup[1])},
    )
    yield service
    service.stop()


@pytest.fixture(scope="module")
def redis_online(
    served_workspace: ServedWorkspace, lgb_setup: tuple[ServedModel, Path]
) -> OnlineFeatures:
    store = open_store(served_workspace.ws, store_yaml=lgb_setup[1])
    return OnlineFeatures(store, served_workspace.params.features)


@pytest.fixture(scope="module")
def lgb_replay(lgb_service, served_workspace, redis_online) -> dict[str, dict]:
    return replay(lgb_service, served_workspace, redis_online)


def test_restarted_service_serves_moved_alias(lgb_service, lgb_setup, served_workspace):
    body = httpx.get(f"{lgb_service.url}/readyz", timeout=10).json()
    assert lgb_setup[0].version == "2"
    assert body["model"]["version"] == "2"
    assert body["model"]["flavour"] == "lightgbm"
    assert body["model"]["alias"] == "champion"
    earlier = load_from_registry(
        tracking_uri=served_workspace.ws.tracking_uri(),
        model_name=lgb_setup[0].name,
        alias="champion",
        version="1",
    )
    assert earlier.alias == ""


def test_lightgbm_redis_scores_equal_offline_model(
    served_workspace, lgb_setup, lgb_replay
):
    assert lgb_setup[0].model.flavour == "lightgbm"
    assert {body["model_version"] for body in lgb_replay.values()} == {"2"}
    assert not any(body["degraded"] for body in lgb_replay.values())
    assert_scores_equal_offline(served_workspace, lgb_setup[0], lgb_replay)


def test_lightgbm_reasons_add_up_to_margin(served_workspace, lgb_setup, lgb_replay):
    assert_reasons_add_up(served_workspace, lgb_setup[0], lgb_replay)


def test_concurrent_same_card_redis(lgb_service, served_workspace, redis_online):
    assert_concurrent_matches_sequential(
        lgb_service, served_workspace, redis_online, "redis"
    )


def test_lightgbm_audit_rows_equal_accepted_requests(lgb_service, lgb_replay):
    assert_audit_rows_equal_accepted(lgb_service)
