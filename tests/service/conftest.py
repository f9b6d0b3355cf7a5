"""Fixtures of the service tests: a served workspace, redis-server and the service.

The served workspace copies the smoke workspace's data and trains one model family
on it in process. Its online store holds every card's and merchant's state as of
``replay_start``, so replaying the later transactions through the service must give
the feature table's values.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from cardfraud.data import read_transactions
from cardfraud.feature_store import STORE_YAML, apply_and_load_state
from cardfraud.features import feature_columns
from cardfraud.params import PipelineParams, load_params
from cardfraud.paths import Workspace, project_root
from cardfraud.pipeline import run_stage

START_TIMEOUT_S = 120
REDIS_START_TIMEOUT_S = 20
TOKEN = "test-explanation-token"
LABEL_COLUMNS = ("is_fraud", "label_available_at", "fraud_scenario")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServedWorkspace:
    """A workspace with a registered model and an online store as of replay_start."""

    ws: Workspace
    params_path: Path
    params: PipelineParams
    transactions: pl.DataFrame
    replay_start: datetime


def train_and_register(served: ServedWorkspace, family: str) -> str:
    """Train one model family on the workspace's features and register it."""
    train = served.params.train.model_copy(update={"models": [family]})
    params = served.params.model_copy(update={"train": train})
    for stage in ("train", "evaluate", "register"):
        summary = run_stage(stage, served.ws, params)
    return str(summary["version"])


@pytest.fixture(scope="session")
def served_workspace(
    smoke_workspace: Workspace,
    smoke_params_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> ServedWorkspace:
    """The smoke data with an XGBoost champion, version 1, and a fresh online store."""
    ws = Workspace(tmp_path_factory.mktemp("served-workspace"))
    shutil.copytree(smoke_workspace.root / "data", ws.root / "data")
    params = load_params(smoke_params_path)
    transactions = read_transactions(ws.raw_dir)
    last_day = transactions["timestamp"].max().replace(hour=0, minute=0, second=0)
    replay_start = last_day.replace(microsecond=0)
    served = ServedWorkspace(
        ws, smoke_params_path, params, transactions, replay_start=replay_start
    )
    version = train_and_register(served, "xgboost")
    assert version == "1"
    apply_and_load_state(
        ws,
        transactions,
        params.features,
        feature_columns(params.features),
        cutoff=replay_start,
    )
    return served


def replay_transactions(served: ServedWorkspace) -> list[dict[str, Any]]:
    """The transactions from replay_start on as request bodies, in feature order."""
    later = served.transactions.filter(pl.col("timestamp") >= served.replay_start).sort(
        "timestamp", "transaction_id"
    )
    bodies = []
    for row in later.drop(LABEL_COLUMNS).to_dicts():
        row["timestamp"] = row["timestamp"].isoformat()
        bodies.append({key: value for key, value in row.items() if value is not None})
    return bodies


@pytest.fixture(scope="session")
def redis_connection(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server on 127.0.0.1 on a free port, without persistence."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed; install the redis-server package")
    import redis

    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    command = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
    command += ["--appendonly", "no", "--dir", str(folder)]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        deadline = time.monotonic() + REDIS_START_TIMEOUT_S
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"redis-server on port {port} did not start"
                    ) from None
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)


def write_redis_store_yaml(ws: Workspace, connection: str) -> Path:
    """Write the project's Redis store file, pointed at ``connection``."""
    template = project_root() / "feature_repo" / "feature_store.redis.yaml"
    text = template.read_text(encoding="utf-8")
    path = ws.feature_repo / "feature_store.redis.yaml"
    path.write_text(text.replace("${REDIS_CONNECTION}", connection), encoding="utf-8")
    assert (ws.feature_repo / STORE_YAML).is_file()
    return path


@dataclass
class RunningService:
    """A ``cardfraud serve`` process on 127.0.0.1 and what it answered."""

    url: str
    process: subprocess.Popen
    log: Path
    audit_db: Path
    accepted: list[str] = field(default_factory=list)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        """POST and remember the transaction ids of accepted scores.

        A score response carries ``timings_ms``; an explanation does not.
        """
        response = httpx.post(f"{self.url}{path}", timeout=30, **kwargs)
        if response.status_code != 200:
            return response
        body = response.json()
        for item in body.get("results", [body]):
            if "timings_ms" in item:
                self.accepted.append(item["transaction_id"])
        return response

    def stop(self) -> None:
        """Stop the service with SIGTERM, as an orchestrator does."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


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
        time.sleep(0.25)
    raise TimeoutError(
        f"service not ready in {START_TIMEOUT_S} s:\n{log.read_text()[-4000:]}"
    )


def start_service(
    served: ServedWorkspace,
    folder: Path,
    *,
    extra_env: dict[str, str] | None = None,
    sagemaker: bool = False,
) -> RunningService:
    """Start ``cardfraud serve`` with two workers on a free 127.0.0.1 port."""
    port = free_port()
    log = folder / "service.log"
    audit_db = folder / "audit.db"
    env = {
        **os.environ,
        "CARDFRAUD_WORKSPACE": str(served.ws.root),
        "CARDFRAUD_PARAMS": str(served.params_path),
        "CARDFRAUD_AUDIT_DB": str(audit_db),
        "CARDFRAUD_EXPLANATION_TOKEN": TOKEN,
        "CARDFRAUD_MAX_BATCH": "5",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "BENTOML_DO_NOT_TRACK": "true",
        "DO_NOT_TRACK": "1",
        "FEAST_USAGE": "False",
        # BentoML 1.4 empties $BENTOML_HOME/prometheus_multiproc_dir whenever a service
        # starts, which resets the metrics of any other service using that home.
        "BENTOML_HOME": str(folder / "bentoml"),
        **(extra_env or {}),
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    cardfraud = str(Path(sys.executable).with_name("cardfraud"))
    command = [cardfraud, "serve", "--workers", "2", "--port", str(port)]
    command += ["--host", "127.0.0.1"]
    if sagemaker:
        command.append("--sagemaker")
    with log.open("w") as handle:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    service = RunningService(url, process, log, audit_db)
    try:
        wait_until_ready(url, process, log)
    except BaseException:
        service.stop()
        raise
    return service


def last_moment(served: ServedWorkspace) -> datetime:
    """The time of the workspace's latest transaction."""
    return served.transactions["timestamp"].max()


def later(moment: datetime, *, seconds: int) -> str:
    """Return ``moment`` plus ``seconds`` as an ISO string with offset."""
    return (moment + timedelta(seconds=seconds)).isoformat()
