"""Prometheus, Alertmanager and small HTTP servers on 127.0.0.1 for the tests.

Every process is started on a free loopback port with its data in a temporary folder
and stopped by its PID.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

START_TIMEOUT_S = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_binary(name: str) -> str:
    """Return the binary's path, or skip: .ci/run installs it from Debian."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(
            f"{name} is not installed; install Debian's prometheus and "
            "prometheus-alertmanager packages (.ci/run does)"
        )
    return path


def wait_for(check: Callable[[], bool], *, timeout_s: float, failure: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{failure} within {timeout_s} s")


@contextmanager
def running(command: list[str], log: Path, *, ready_url: str) -> Iterator[None]:
    """Run ``command`` until the block ends; ready when ``ready_url`` returns 200."""
    with log.open("w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
    try:
        wait_for(
            lambda: (
                process.poll() is None
                and httpx.get(ready_url, timeout=1).status_code == 200
            ),
            timeout_s=START_TIMEOUT_S,
            failure=f"{command[0]} was not ready:\n{log.read_text()[-3000:]}",
        )
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def prometheus(
    folder: Path,
    *,
    targets: dict[str, str],
    rule_files: list[Path] | None = None,
    alertmanager: str | None = None,
) -> Iterator[str]:
    """Run Prometheus scraping ``targets`` (job name to host:port) every second."""
    binary = require_binary("prometheus")
    port = free_port()
    config: dict[str, Any] = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target]}]}
            for job, target in targets.items()
        ],
    }
    if rule_files:
        config["rule_files"] = [str(path) for path in rule_files]
    if alertmanager:
        config["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]
        }
    config_path = folder / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    url = f"http://127.0.0.1:{port}"
    command = [
        binary,
        f"--config.file={config_path}",
        f"--storage.tsdb.path={folder / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with running(command, folder / "prometheus.log", ready_url=f"{url}/-/ready"):
        yield url


@contextmanager
def alertmanager(folder: Path, config: str) -> Iterator[str]:
    """Run Alertmanager with ``config`` (YAML text), clustering off."""
    binary = require_binary("prometheus-alertmanager")
    port = free_port()
    config_path = folder / "alertmanager.yml"
    config_path.write_text(config, encoding="utf-8")
    url = f"http://127.0.0.1:{port}"
    command = [
        binary,
        f"--config.file={config_path}",
        f"--storage.path={folder / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    with running(command, folder / "alertmanager.log", ready_url=f"{url}/-/ready"):
        yield url


class Recorder(BaseHTTPRequestHandler):
    """Records JSON bodies posted to it; serves ``text`` on GET."""

    bodies: list[Any]
    text: str = ""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self.server.bodies.append(json.loads(self.rfile.read(length) or b"null"))
        self.send_response(200)
        self.end_headers()

    def do_GET(self) -> None:
        body = self.server.text.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


@contextmanager
def http_server(text: str = "") -> Iterator[ThreadingHTTPServer]:
    """A server on 127.0.0.1 that records POSTed JSON and serves ``text``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.bodies = []  # type: ignore[attr-defined]
    server.text = text  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def query(url: str, expr: str) -> list[dict[str, Any]]:
    """Run an instant query and return its result list."""
    response = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10)
    response.raise_for_status()
    return response.json()["data"]["result"]
