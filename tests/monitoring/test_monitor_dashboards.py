"""Every Grafana panel's query returns a series on a real Prometheus.

Prometheus on 127.0.0.1 scrapes the running scoring service (``cardfraud serve`` on
a copy of the smoke workspace, so that its requests leave the shared online store
as it was) and the monitor's figures (the monitor stage's Prometheus file, served
over HTTP).
"""

from __future__ import annotations

import shutil
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from cardfraud.data import read_transactions
from cardfraud.params import load_params
from cardfraud.paths import Workspace
from cardfraud.stages.monitor import PROMETHEUS_FILE
from tests.monitoring.prometheus_stack import http_server, prometheus, query, wait_for
from tests.monitoring.test_monitor_alerting import dashboard_queries
from tests.service.conftest import ServedWorkspace, start_service

LABEL_COLUMNS = ("is_fraud", "label_available_at", "fraud_scenario")
TRAFFIC_SECONDS = 6


def request_bodies(ws: Workspace, count: int) -> list[dict]:
    """Transactions after the workspace's last one, as request bodies."""
    raw = read_transactions(ws.raw_dir)
    last = raw.row(-1, named=True)
    bodies = []
    for index in range(count):
        row = {key: value for key, value in last.items() if key not in LABEL_COLUMNS}
        row["transaction_id"] = f"dashboard-{index}"
        row["timestamp"] = (
            last["timestamp"] + timedelta(minutes=index + 1)
        ).isoformat()
        bodies.append({key: value for key, value in row.items() if value is not None})
    return bodies


@pytest.fixture(scope="module")
def service(smoke_workspace: Workspace, smoke_params_path: Path, tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("dashboard-workspace"))
    shutil.copytree(smoke_workspace.root, ws.root, dirs_exist_ok=True)
    raw = read_transactions(ws.raw_dir)
    served = ServedWorkspace(
        ws,
        smoke_params_path,
        load_params(smoke_params_path),
        raw,
        replay_start=raw["timestamp"].max(),
    )
    running = start_service(served, tmp_path_factory.mktemp("dashboard-service"))
    yield running
    running.stop()


def test_every_panel_query_returns_series(
    service, smoke_workspace: Workspace, tmp_path: Path
):
    monitor_text = (smoke_workspace.metrics_dir / PROMETHEUS_FILE).read_text()
    service_target = service.url.removeprefix("http://")
    with (
        http_server(monitor_text) as monitor,
        prometheus(
            tmp_path,
            targets={
                "cardfraud-service": service_target,
                "cardfraud-monitor": f"127.0.0.1:{monitor.server_port}",
            },
        ) as url,
    ):
        wait_for(
            lambda: len([r for r in query(url, "up == 1")]) == 2,
            timeout_s=30,
            failure="Prometheus did not scrape both targets",
        )
        deadline = time.monotonic() + TRAFFIC_SECONDS
        for body in request_bodies(smoke_workspace, 200):
            response = httpx.post(f"{service.url}/score", json=body, timeout=30)
            assert response.status_code == 200, response.text
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        time.sleep(3)
        empty = [
            (dashboard, title, expr)
            for dashboard, title, expr in dashboard_queries()
            if not query(url, expr)
        ]
    assert empty == []
