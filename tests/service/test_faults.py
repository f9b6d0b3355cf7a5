"""Faults of the running service: Redis killed mid-run and SIGTERM under load.

Each test starts its own ``cardfraud serve`` with two workers on 127.0.0.1. The Redis
test also starts its own redis-server, so killing it leaves the shared server to the
other tests.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from cardfraud.audit import SqliteAuditStore
from cardfraud.feature_store import apply_and_load_state
from cardfraud.features import feature_columns
from cardfraud.paths import project_root
from tests.service.conftest import (
    RunningService,
    ServedWorkspace,
    fresh_bodies,
    start_service,
)
from tests.support.servers import redis_server_or_skip

SENDERS = 4
REQUESTS_BEFORE_FAULT = 40
REQUESTS_AFTER_FAULT = 60


@dataclass
class Sent:
    """The response that one request of a load thread received."""

    transaction_id: str
    status: int | None
    body: dict[str, Any] | None
    sent_after_fault: bool


@dataclass
class LoadThreads:
    """Threads that post transactions to a service until ``stop`` is set.

    ``fault`` marks the moment a fault was injected; each request records whether it
    was sent after that moment. Transport errors (refused connections during a
    shutdown) are recorded with status None.
    """

    service: RunningService
    bodies: list[dict[str, Any]]
    fault: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    results: list[Sent] = field(default_factory=list)
    _next: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _take(self) -> dict[str, Any] | None:
        with self._lock:
            if self._next >= len(self.bodies):
                return None
            body = self.bodies[self._next]
            self._next += 1
            return body

    def _run(self) -> None:
        while not self.stop.is_set():
            body = self._take()
            if body is None:
                return
            after_fault = self.fault.is_set()
            try:
                response = self.service.post("/score", json=body)
            except httpx.TransportError:
                self.results.append(Sent(body["transaction_id"], None, None, True))
                continue
            parsed = response.json() if response.status_code == 200 else None
            self.results.append(
                Sent(body["transaction_id"], response.status_code, parsed, after_fault)
            )

    def wait_for(self, count: int, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.results) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(self.results)} of {count} responses")
            time.sleep(0.01)

    def __enter__(self) -> LoadThreads:
        self._pool = ThreadPoolExecutor(SENDERS)
        self._futures = [self._pool.submit(self._run) for _ in range(SENDERS)]
        return self

    def __exit__(self, *exc: object) -> None:
        for future in self._futures:
            future.result(timeout=300)
        self._pool.shutdown()


def degraded_counter(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("cardfraud_degraded_total")
    )


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """A redis-server that this test may kill: its connection and process."""
    with redis_server_or_skip(tmp_path) as server:
        yield server.connection, server.process


def redis_store_yaml(served: ServedWorkspace, connection: str) -> Path:
    """Write a Redis store file of its own and load the states into that server."""
    template = project_root() / "feature_repo" / "feature_store.redis.yaml"
    path = served.ws.feature_repo / f"feature_store.faults-{connection[-5:]}.yaml"
    path.write_text(
        template.read_text(encoding="utf-8").replace("${REDIS_CONNECTION}", connection),
        encoding="utf-8",
    )
    apply_and_load_state(
        served.ws,
        served.transactions,
        served.params.features,
        feature_columns(served.params.features),
        cutoff=served.replay_start,
        store_yaml=path,
    )
    return path


def test_redis_killed_mid_run_scores_degraded(
    served_workspace: ServedWorkspace, own_redis, tmp_path: Path
) -> None:
    connection, redis_process = own_redis
    store_yaml = redis_store_yaml(served_workspace, connection)
    service = start_service(
        served_workspace,
        tmp_path,
        extra_env={"CARDFRAUD_FEATURE_STORE_YAML": str(store_yaml)},
    )
    total = REQUESTS_BEFORE_FAULT + REQUESTS_AFTER_FAULT
    try:
        counter_before = degraded_counter(service.url)
        load = LoadThreads(service, fresh_bodies(served_workspace, "redis-kill", total))
        with load:
            load.wait_for(REQUESTS_BEFORE_FAULT)
            redis_process.send_signal(signal.SIGKILL)
            redis_process.wait(timeout=10)
            load.fault.set()
            completed_at_fault = len(load.results)
        readyz = httpx.get(f"{service.url}/readyz", timeout=30)
        counter_after = degraded_counter(service.url)
    finally:
        service.stop()

    statuses = [sent.status for sent in load.results]
    after = [sent for sent in load.results if sent.sent_after_fault]
    before = [sent for sent in load.results if not sent.sent_after_fault]
    flagged = [sent for sent in load.results if sent.body and sent.body["degraded"]]
    assert len(load.results) == total
    assert statuses == [200] * total
    # Requests still in flight at the kill are counted as sent before it.
    assert len(after) >= total - completed_at_fault - SENDERS
    assert len(after) > 0
    assert all(sent.body["degraded"] for sent in after)
    assert all(sent.body["cold_start"] for sent in after)
    assert not any(
        sent.body["degraded"] for sent in before[: REQUESTS_BEFORE_FAULT // 2]
    )
    assert counter_before == 0
    assert counter_after == len(flagged)
    assert readyz.status_code == 200
    assert readyz.json()["status"] == "degraded"
    assert readyz.json()["stores"]["online_store"]["status"] == "unavailable"
    records = SqliteAuditStore(service.audit_db).records()
    assert len(records) == total
    assert sum(bool(record["degraded"]) for record in records) == len(flagged)


def test_sigterm_under_load_keeps_every_accepted_decision(
    served_workspace: ServedWorkspace, tmp_path: Path
) -> None:
    service = start_service(served_workspace, tmp_path)
    bodies = fresh_bodies(served_workspace, "sigterm", 2000, own_entities=True)
    load = LoadThreads(service, bodies)
    with load:
        load.wait_for(REQUESTS_BEFORE_FAULT)
        load.fault.set()
        service.stop()
        load.stop.set()

    ok = [sent.transaction_id for sent in load.results if sent.status == 200]
    other = [sent.status for sent in load.results if sent.status not in (200, None)]
    records = SqliteAuditStore(service.audit_db).records()
    assert service.process.returncode is not None
    assert len(ok) >= REQUESTS_BEFORE_FAULT
    assert all(status < 500 or status == 503 for status in other)
    assert len(records) == len(ok)
    assert sorted(record["transaction_id"] for record in records) == sorted(ok)
