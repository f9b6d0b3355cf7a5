"""The open-loop generator of ``cardfraud.loadtest`` against a local HTTP server.

The server responds to every request at once, except the request whose body names
``slow``, which it holds for ``SLOW_S``. An open-loop generator keeps sending on
schedule while that request waits, and counts the 500 it gets for ``fail``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from cardfraud.loadtest import (
    P99_BOUND_MS,
    LoadResult,
    TargetReport,
    percentile_ms,
    run_open_loop,
)

SLOW_S = 0.5
RATE = 100
REQUESTS = 100


ARRIVALS: list[bytes] = []
"""Bodies in the order the server received them."""
ARRIVED_WHILE_SLOW: list[int] = []
"""Requests that arrived while the slow request was held."""


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ARRIVALS.append(body)
        if b"slow" in body:
            before = len(ARRIVALS)
            time.sleep(SLOW_S)
            ARRIVED_WHILE_SLOW.append(len(ARRIVALS) - before)
        status = 500 if b"fail" in body else 200
        payload = b'{"degraded":true}' if b"degraded" in body else b"{}"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/score"
    server.shutdown()
    server.server_close()


def test_open_loop_sends_on_schedule(server_url: str) -> None:
    requests = [(f"t{i}", b'{"id": "plain"}') for i in range(REQUESTS)]
    requests[5] = ("t5", b'{"id": "slow"}')
    requests[7] = ("t7", b'{"id": "fail"}')
    requests[9] = ("t9", b'{"id": "degraded"}')
    result = run_open_loop(server_url, requests, rate=RATE, target="local")

    assert result.sent == REQUESTS
    assert result.ok == REQUESTS - 1
    assert result.errors == 1
    assert result.degraded == 1
    assert "t7" not in result.ok_ids
    assert result.ok_ids.count("t5") == 1
    assert result.max_ms >= SLOW_S * 1000
    assert result.seconds == REQUESTS / RATE
    assert len(ARRIVALS) == REQUESTS
    # A closed-loop generator would send nothing while the slow request waits.
    assert ARRIVED_WHILE_SLOW[0] > 0


def test_percentile_ms_matches_numpy() -> None:
    seconds = [0.001 * value for value in range(1, 101)]
    assert percentile_ms(seconds, 50) == round(
        float(np.percentile(seconds, 50)) * 1000, 2
    )
    assert percentile_ms(seconds, 99) == pytest.approx(99.01)


def _result(rate: float, p99_ms: float, errors: int = 0) -> LoadResult:
    return LoadResult(
        target="full",
        rate=rate,
        seconds=1,
        sent=10,
        ok=10 - errors,
        errors=errors,
        p50_ms=1,
        p95_ms=1,
        p99_ms=p99_ms,
        max_ms=p99_ms,
        send_lag_p99_ms=0,
    )


def test_highest_rate_stops_at_first_miss() -> None:
    fixed = _result(200, 10)
    steps = [
        _result(200, 10),
        _result(300, P99_BOUND_MS),
        _result(400, 20, errors=1),
        _result(500, 10),
    ]
    report = TargetReport("full", fixed, fixed, steps)
    assert report.highest_rate == 300
    assert TargetReport("full", fixed, fixed, [_result(200, 90)]).highest_rate is None


def test_quiet_generator_pauses_collection_and_request_logs() -> None:
    import gc
    import logging

    from cardfraud.loadtest import quiet_generator

    httpx_logger = logging.getLogger("httpx")
    httpx_logger.setLevel(logging.INFO)
    assert gc.isenabled()
    with quiet_generator():
        assert not gc.isenabled()
        assert gc.get_freeze_count() > 0
        assert httpx_logger.level == logging.WARNING
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0
    assert httpx_logger.level == logging.INFO
    httpx_logger.setLevel(logging.NOTSET)


def test_service_tables_name_each_model() -> None:
    from cardfraud.loadtest import ServiceBenchmark, service_tables

    fixed = _result(200, 10)
    reports = [
        TargetReport("full", fixed, fixed, [fixed], model="xgboost, 30 trees"),
        TargetReport("full", fixed, _result(200, 80), [], model="lightgbm, 90 trees"),
    ]
    result = ServiceBenchmark("xgboost, 30 trees", (1, 1, 1), (2, 2, 2), reports, None)
    table = service_tables(result)
    assert "| full | xgboost, 30 trees | 200 |" in table
    assert "| full | lightgbm, 90 trees | 200 |" in table
    assert result.failures() == [
        "full service (lightgbm, 90 trees) at 200/s: p99 80 ms (bound 50 ms), 0 errors"
    ]
