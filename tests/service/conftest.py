"""Fixtures of the service tests: a served workspace and the running service.

The served workspace copies the smoke workspace's data and trains one model family
on it in process. Its online store holds every card's and merchant's state as of
``replay_start``, so replaying the later transactions through the service must give
the feature table's values.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
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
from tests.support.servers import free_port

START_TIMEOUT_S = 120
TOKEN = "test-explanation-token"
LABEL_COLUMNS = ("is_fraud", "label_available_at", "fraud_scenario")


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


def fresh_bodies(
    served: ServedWorkspace, tag: str, count: int, *, own_entities: bool = False
) -> list[dict]:
    """Return ``count`` replay transactions under new ids, repeating the replay.

    With ``own_entities`` the card and merchant ids get the tag as a prefix, so a
    service on the shared SQLite store leaves the replayed cards' states as they
    were for the other tests.
    """
    replay = replay_transactions(served)
    bodies = []
    for index in range(count):
        body = dict(replay[index % len(replay)])
        body["transaction_id"] = f"{tag}-{index:04d}"
        if own_entities:
            body["card_id"] = f"{tag}-{body['card_id']}"
            body["merchant_id"] = f"{tag}-{body['merchant_id']}"
        bodies.append(body)
    return bodies


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
    """A ``cardfraud serve`` process on 127.0.0.1 and its responses.

    Attributes:
        url: Base URL of the service.
        process: The process started; after its ``exec`` it is BentoML's arbiter.
        log: File with the process's stdout and stderr.
        audit_db: SQLite audit file (unused with the DynamoDB audit backend).
        bentoml_home: BENTOML_HOME given to ``cardfraud serve``.
        accepted: Transaction ids of the scores returned with 200, in order.
        decisions: Their decisions, in the same order.
        sent: ``(path, status)`` of every request made with ``post``.
    """

    url: str
    process: subprocess.Popen
    log: Path
    audit_db: Path
    bentoml_home: Path
    accepted: list[str] = field(default_factory=list)
    decisions: list[str] = field(default_factory=list)
    sent: list[tuple[str, int]] = field(default_factory=list)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        """POST and remember the status, and the ids and decisions of scores.

        A score response carries ``timings_ms``; an explanation does not.
        """
        response = httpx.post(f"{self.url}{path}", timeout=30, **kwargs)
        self.sent.append((path, response.status_code))
        if response.status_code != 200:
            return response
        body = response.json()
        for item in body.get("results", [body]):
            if "timings_ms" in item:
                self.accepted.append(item["transaction_id"])
                self.decisions.append(item["decision"])
        return response

    @property
    def prometheus_dir(self) -> Path:
        """The Prometheus multiprocess folder that this service's workers write."""
        home = self.bentoml_home / "cardfraud-serve" / str(self.process.pid)
        return home / "prometheus_multiproc_dir"

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


def service_environment(
    served: ServedWorkspace, folder: Path, extra_env: dict[str, str] | None = None
) -> dict[str, str]:
    """Return the environment of a service on ``served`` that writes to ``folder``.

    The audit log is ``folder/audit.db``, and BENTOML_HOME is ``folder/bentoml`` so
    that nothing is written to ``~/bentoml``. ``extra_env`` overrides any of these.
    """
    env = {
        **os.environ,
        "CARDFRAUD_WORKSPACE": str(served.ws.root),
        "CARDFRAUD_PARAMS": str(served.params_path),
        "CARDFRAUD_AUDIT_DB": str(folder / "audit.db"),
        "CARDFRAUD_EXPLANATION_TOKEN": TOKEN,
        "CARDFRAUD_MAX_BATCH": "5",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "BENTOML_DO_NOT_TRACK": "true",
        "DO_NOT_TRACK": "1",
        "FEAST_USAGE": "False",
        "BENTOML_HOME": str(folder / "bentoml"),
        **(extra_env or {}),
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def launch_service(
    command: list[str],
    env: dict[str, str],
    folder: Path,
    *,
    port: int,
    stdout: Path | None = None,
) -> RunningService:
    """Start ``command``, a service on 127.0.0.1:``port``, and wait until it is ready.

    Its stderr goes to ``folder/service.log``, and so does its stdout unless
    ``stdout`` names another file. The process leads a session of its own, so
    ``stop`` signals BentoML's arbiter and workers together.
    """
    log = folder / "service.log"
    with contextlib.ExitStack() as files:
        errors = files.enter_context(log.open("w"))
        output = errors if stdout is None else files.enter_context(stdout.open("w"))
        process = subprocess.Popen(
            command,
            env=env,
            stdout=output,
            stderr=errors,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    service = RunningService(
        url,
        process,
        log,
        audit_db=Path(env["CARDFRAUD_AUDIT_DB"]),
        bentoml_home=Path(env["BENTOML_HOME"]),
    )
    try:
        wait_until_ready(url, process, log)
    except BaseException:
        service.stop()
        raise
    return service


def start_service(
    served: ServedWorkspace,
    folder: Path,
    *,
    extra_env: dict[str, str] | None = None,
) -> RunningService:
    """Start ``cardfraud serve`` with two workers on a free 127.0.0.1 port."""
    port = free_port()
    cardfraud = str(Path(sys.executable).with_name("cardfraud"))
    command = [cardfraud, "serve", "--workers", "2", "--port", str(port)]
    command += ["--host", "127.0.0.1"]
    env = service_environment(served, folder, extra_env)
    return launch_service(command, env, folder, port=port)


def last_moment(served: ServedWorkspace) -> datetime:
    """The time of the workspace's latest transaction."""
    return served.transactions["timestamp"].max()


def later(moment: datetime, *, seconds: int) -> str:
    """Return ``moment`` plus ``seconds`` as an ISO string with offset."""
    return (moment + timedelta(seconds=seconds)).isoformat()
