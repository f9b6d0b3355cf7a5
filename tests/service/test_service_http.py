"""The BentoML service over HTTP on 127.0.0.1, serving a smoke-size champion."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cardfraud.data import read_transactions
from cardfraud.paths import Workspace, project_root

START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_ready(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"service exited early:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise TimeoutError(
        f"service not ready in {START_TIMEOUT_S} s:\n{log.read_text()[-4000:]}"
    )


@pytest.fixture(scope="module")
def service_url(
    smoke_workspace: Workspace, smoke_params_path: Path, tmp_path_factory
) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("service") / "service.log"
    env = {
        **os.environ,
        "CARDFRAUD_WORKSPACE": str(smoke_workspace.root),
        "CARDFRAUD_PARAMS": str(smoke_params_path),
        "CARDFRAUD_WORKERS": "2",
    }
    bentoml = str(Path(sys.executable).with_name("bentoml"))
    command = [
        bentoml,
        "serve",
        "service:FraudScorer",
        "--working-dir",
        str(project_root() / "bento"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with log.open("w") as handle:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, process, log)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def generated_transaction(smoke_workspace: Workspace) -> dict:
    frame = read_transactions(smoke_workspace.raw_dir).tail(1)
    row = frame.drop(["is_fraud", "label_available_at", "fraud_scenario"]).to_dicts()[0]
    row["timestamp"] = row["timestamp"].isoformat()
    return {key: value for key, value in row.items() if value is not None}


def test_score_generated_transaction(service_url, generated_transaction):
    response = httpx.post(
        f"{service_url}/score", json=generated_transaction, timeout=30
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert 0.0 <= body["score"] <= 1.0
    assert body["decision"] in {"approve", "review", "decline"}
    assert body["transaction_id"] == generated_transaction["transaction_id"]
    assert body["model_version"] == "1"


def test_score_missing_field_names_it(service_url, generated_transaction):
    body = {k: v for k, v in generated_transaction.items() if k != "amount_minor"}
    response = httpx.post(f"{service_url}/score", json=body, timeout=30)
    assert 400 <= response.status_code < 500
    assert "amount_minor" in response.text


def test_score_naive_timestamp_rejected(service_url, generated_transaction):
    body = {**generated_transaction, "timestamp": "2025-02-01T10:00:00"}
    response = httpx.post(f"{service_url}/score", json=body, timeout=30)
    assert 400 <= response.status_code < 500
    assert "timestamp" in response.text


def test_score_serves_champion_version(
    service_url, smoke_workspace, generated_transaction
):
    from cardfraud.registry import load_champion

    champion = load_champion(
        tracking_uri=smoke_workspace.tracking_uri(), model_name="card-fraud"
    )
    response = httpx.post(
        f"{service_url}/score", json=generated_transaction, timeout=30
    )
    assert response.json()["model_version"] == str(champion.version)
