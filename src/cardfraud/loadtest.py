"""Open-loop load test of the scoring service, beside a bare BentoML baseline.

The generator sends requests on a fixed schedule (request ``i`` at ``start + i /
rate``) without waiting for earlier responses, and measures each latency from the
scheduled send time. A slow response therefore cannot delay the requests behind it
and hide its own cost (coordinated omission). The send lag, how late the generator
sent a request, shows when the generator itself is the bottleneck.

``run_service_benchmark`` builds, for each model family, a smoke-size workspace with
a registered model and its online store. It starts ``cardfraud serve`` (two workers,
SQLite online store and audit log) and ``bento/bare_service.py`` (two workers, the
raw model score only) on 127.0.0.1. Against each it runs the fixed-rate test, then
steps the rate up to find the highest rate whose p99 stays within the bound. It
checks that every accepted request of the full service is in its audit log. Last, it
measures degraded responses on a Redis online store whose server was killed.
Generator and services share the machine's cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import polars as pl
import yaml

from cardfraud.paths import Workspace, project_root

logger = logging.getLogger(__name__)

P99_BOUND_MS = 50.0
"""Largest p99 latency, end to end, that a passing rate may have."""
DEGRADED_P99_BOUND_MS = 50.0
"""Largest p99 latency of degraded responses while the Redis server is down."""
STEP_RATES = (50, 100, 150, 200, 300, 400, 600, 800, 1000, 1200)
"""Rates in requests per second tried in turn until one misses the p99 bound."""
WARMUP_RATE = 100
WARMUP_SECONDS = 3.0
START_TIMEOUT_S = 180.0
REQUEST_TIMEOUT_S = 10.0
LABEL_COLUMNS = ("is_fraud", "label_available_at", "fraud_scenario")
TELEMETRY_OFF = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "BENTOML_DO_NOT_TRACK": "true",
    "DO_NOT_TRACK": "1",
    "FEAST_USAGE": "False",
}


@dataclass
class LoadResult:
    """Outcome of one open-loop run against one service.

    Attributes:
        target: ``full`` (the scoring service) or ``bare`` (the raw score only).
        rate: Scheduled requests per second.
        seconds: Length of the schedule.
        sent: Requests sent.
        ok: Responses with status 200.
        errors: Other responses and transport errors (timeouts, refused).
        p50_ms: Median latency from the scheduled send time, ms.
        p95_ms: 95th percentile, ms.
        p99_ms: 99th percentile, ms.
        max_ms: Largest latency, ms.
        send_lag_p99_ms: 99th percentile of the generator's lateness, ms.
        degraded: Responses marked ``degraded`` (full service only).
        ok_ids: Transaction ids of the 200 responses.
        ok_latencies_ms: Latencies of the 200 responses, in send order.
        ok_degraded: Whether each 200 response was marked degraded.
    """

    target: str
    rate: float
    seconds: float
    sent: int
    ok: int
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    send_lag_p99_ms: float
    degraded: int = 0
    ok_ids: list[str] = field(default_factory=list, repr=False)
    ok_latencies_ms: list[float] = field(default_factory=list, repr=False)
    ok_degraded: list[bool] = field(default_factory=list, repr=False)

    @property
    def within_bound(self) -> bool:
        """True when no request failed and the p99 is within ``P99_BOUND_MS``."""
        return self.errors == 0 and self.p99_ms <= P99_BOUND_MS


@dataclass(frozen=True)
class Outcome:
    """One request's result: status (None for a transport error) and timings."""

    transaction_id: str
    status: int | None
    latency_s: float
    send_lag_s: float
    degraded: bool


def percentile_ms(seconds: list[float] | np.ndarray, q: float) -> float:
    """Return the ``q``-th percentile (0-100) of durations in seconds, in ms."""
    if len(seconds) == 0:
        return float("nan")
    return round(float(np.percentile(np.asarray(seconds) * 1000, q)), 2)


async def _send(
    client: httpx.AsyncClient,
    url: str,
    transaction_id: str,
    body: bytes,
    scheduled: float,
) -> Outcome:
    loop = asyncio.get_running_loop()
    send_lag = loop.time() - scheduled
    degraded = False
    try:
        response = await client.post(
            url, content=body, headers={"Content-Type": "application/json"}
        )
        status: int | None = response.status_code
        if status == 200 and b'"degraded":true' in response.content:
            degraded = True
    except httpx.HTTPError as error:
        logger.debug("request %s failed: %s", transaction_id, error)
        status = None
    return Outcome(transaction_id, status, loop.time() - scheduled, send_lag, degraded)


async def _open_loop(
    url: str, requests: list[tuple[str, bytes]], *, rate: float
) -> list[Outcome]:
    loop = asyncio.get_running_loop()
    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=2000)
    async with httpx.AsyncClient(limits=limits, timeout=REQUEST_TIMEOUT_S) as client:
        start = loop.time() + 0.05
        tasks = []
        for index, (transaction_id, body) in enumerate(requests):
            scheduled = start + index / rate
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(
                asyncio.create_task(_send(client, url, transaction_id, body, scheduled))
            )
        return list(await asyncio.gather(*tasks))


@contextlib.contextmanager
def quiet_generator() -> Iterator[None]:
    """Keep the generator's own pauses out of the latencies it measures.

    Within the block the cyclic garbage collector is off, after one collection and
    a freeze of what exists, and httpx logs no line per request. A full collection
    of a run's thousands of pending requests would otherwise stall the event loop
    for 20 to 30 ms and delay the sends behind it.
    """
    was_enabled = gc.isenabled()
    gc.collect()
    gc.freeze()
    gc.disable()
    request_loggers = [logging.getLogger(name) for name in ("httpx", "httpcore")]
    levels = [request_logger.level for request_logger in request_loggers]
    for request_logger in request_loggers:
        request_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for request_logger, level in zip(request_loggers, levels, strict=True):
            request_logger.setLevel(level)
        gc.unfreeze()
        if was_enabled:
            gc.enable()


def run_open_loop(
    url: str, requests: list[tuple[str, bytes]], *, rate: float, target: str
) -> LoadResult:
    """Send ``requests`` to ``url`` at ``rate`` per second and summarise them.

    Args:
        url: Endpoint that receives every request as a JSON POST.
        requests: ``(transaction id, JSON body)`` pairs, sent in order.
        rate: Requests per second of the schedule.
        target: Label of the service in the result.
    """
    with quiet_generator():
        outcomes = asyncio.run(_open_loop(url, requests, rate=rate))
    latencies = [outcome.latency_s for outcome in outcomes]
    ok = [outcome for outcome in outcomes if outcome.status == 200]
    return LoadResult(
        target=target,
        rate=rate,
        seconds=round(len(requests) / rate, 1),
        sent=len(outcomes),
        ok=len(ok),
        errors=len(outcomes) - len(ok),
        p50_ms=percentile_ms(latencies, 50),
        p95_ms=percentile_ms(latencies, 95),
        p99_ms=percentile_ms(latencies, 99),
        max_ms=round(max(latencies) * 1000, 2),
        send_lag_p99_ms=percentile_ms([o.send_lag_s for o in outcomes], 99),
        degraded=sum(outcome.degraded for outcome in ok),
        ok_ids=[outcome.transaction_id for outcome in ok],
        ok_latencies_ms=[outcome.latency_s * 1000 for outcome in ok],
        ok_degraded=[outcome.degraded for outcome in ok],
    )


@dataclass
class BenchWorkspace:
    """A smoke-size workspace with a registered model and a loaded online store.

    Attributes:
        ws: The workspace.
        params_path: Its parameters file.
        version: Registered version that the alias ``champion`` points to.
        describe: The model's flavour and number of trees.
        templates: Recent transactions, the templates of the scoring requests.
        feature_rows: Feature rows in the model's column order, for the bare
            service.
        next_moment: Time of the next request's transaction, after the data end.
    """

    ws: Workspace
    params_path: Path
    version: str
    describe: str
    templates: list[dict[str, Any]]
    feature_rows: list[list[float]]
    next_moment: datetime
    counter: int = 0

    def score_requests(self, count: int, tag: str) -> list[tuple[str, bytes]]:
        """Return ``count`` transactions with fresh ids and increasing timestamps.

        Each copies a recent transaction's card, merchant and amount, so the
        service reads and updates real states; timestamps advance 5 ms a request.
        """
        requests = []
        for _ in range(count):
            template = self.templates[self.counter % len(self.templates)]
            transaction_id = f"load-{tag}-{self.counter:07d}"
            body = {**template, "transaction_id": transaction_id}
            body["timestamp"] = self.next_moment.isoformat()
            self.next_moment += timedelta(milliseconds=5)
            self.counter += 1
            requests.append((transaction_id, json.dumps(body).encode()))
        return requests

    def bare_requests(self, count: int, tag: str) -> list[tuple[str, bytes]]:
        """Return ``count`` feature rows as bare-service bodies."""
        requests = []
        for _ in range(count):
            row = self.feature_rows[self.counter % len(self.feature_rows)]
            transaction_id = f"bare-{tag}-{self.counter:07d}"
            self.counter += 1
            requests.append((transaction_id, json.dumps({"features": row}).encode()))
        return requests


def prepare_workspace(
    folder: Path, params_path: Path, flavour: str | None = None
) -> BenchWorkspace:
    """Run the pipeline at smoke size up to ``register`` in ``folder``.

    The smoke sizes come from ``cardfraud.smoke``. The model family is ``flavour``,
    by default the first in the parameters' ``train.models``, with the parameters'
    ``max_estimators``, so the served model has the ensemble size the pipeline
    allows.
    """
    from cardfraud.data import read_transactions
    from cardfraud.feature_store import FEATURES_FILE
    from cardfraud.params import load_params
    from cardfraud.pipeline import run_pipeline
    from cardfraud.registry import find_alias_version, make_client
    from cardfraud.served_model import load_from_registry
    from cardfraud.smoke import SMOKE_OVERRIDES, smoke_params

    full = load_params(params_path)
    train = {
        **SMOKE_OVERRIDES["train"],
        "models": [flavour] if flavour else full.train.models[:1],
        "max_estimators": full.train.max_estimators,
    }
    folder.mkdir(parents=True, exist_ok=True)
    bench_params = folder / "params.yaml"
    bench_params.write_text(
        yaml.safe_dump(smoke_params({"train": train}), sort_keys=False),
        encoding="utf-8",
    )
    ws = Workspace(folder / "workspace")
    run_pipeline(ws, bench_params, until="register")

    params = load_params(bench_params)
    client = make_client(ws.tracking_uri())
    found = find_alias_version(
        client, model_name=params.registry.model_name, alias="champion"
    )
    if found is None:
        raise RuntimeError(f"no champion registered in {ws.tracking_uri()}")
    version = str(found.version)
    served = load_from_registry(
        tracking_uri=ws.tracking_uri(),
        model_name=params.registry.model_name,
        alias="champion",
        version=version,
    )
    transactions = read_transactions(ws.raw_dir).sort("timestamp", "transaction_id")
    table = pl.read_parquet(ws.features_dir / FEATURES_FILE)
    rows = table.select(served.model.feature_columns).tail(2000).to_numpy()
    return BenchWorkspace(
        ws=ws,
        params_path=bench_params,
        version=version,
        describe=describe_model(served.model),
        templates=_templates(transactions.tail(2000)),
        feature_rows=rows.astype(np.float64).tolist(),
        next_moment=transactions["timestamp"].max() + timedelta(days=1),
    )


def describe_model(model: Any) -> str:
    """Return the model's flavour, tree count and feature count."""
    booster = model.booster
    if model.flavour == "xgboost":
        trees = booster.num_boosted_rounds()
    else:
        trees = booster.num_trees()
    return f"{model.flavour}, {trees} trees, {len(model.feature_columns)} features"


def _templates(transactions: pl.DataFrame) -> list[dict[str, Any]]:
    templates = []
    for row in transactions.drop(LABEL_COLUMNS, strict=False).to_dicts():
        row.pop("timestamp")
        row.pop("transaction_id")
        templates.append(
            {key: value for key, value in row.items() if value is not None}
        )
    return templates


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServiceProcess:
    """A service started by the benchmark, stopped with SIGTERM."""

    url: str
    process: subprocess.Popen
    log: Path

    def stop(self) -> None:
        """Send SIGTERM to the service's process group and wait for it to exit."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            logger.error("service %d ignored SIGTERM; killing it", self.process.pid)
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        logger.info("service %d stopped", self.process.pid)


def service_environment(
    bench: BenchWorkspace, folder: Path, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """Return the environment of a benchmarked service: workspace, audit log, model."""
    env = {
        **os.environ,
        **TELEMETRY_OFF,
        "CARDFRAUD_WORKSPACE": str(bench.ws.root),
        "CARDFRAUD_PARAMS": str(bench.params_path),
        "CARDFRAUD_MODEL_VERSION": bench.version,
        "CARDFRAUD_AUDIT_DB": str(folder / "audit.db"),
        "CARDFRAUD_AUDIT_FALLBACK": str(folder / "audit-fallback.jsonl"),
        "CARDFRAUD_WORKERS": "2",
        # BentoML 1.4 empties $BENTOML_HOME/prometheus_multiproc_dir whenever a
        # service starts, so a shared home would reset another service's metrics.
        "BENTOML_HOME": str(folder / "bentoml"),
        **(extra or {}),
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def start_process(
    command: list[str], env: dict[str, str], folder: Path, port: int
) -> ServiceProcess:
    """Start a service in its own process group and wait until /readyz returns 200."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "service.log"
    with log.open("w") as handle:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    service = ServiceProcess(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"service exited early:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{service.url}/readyz", timeout=2).status_code == 200:
                logger.info("service %d ready on %s", process.pid, service.url)
                return service
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    service.stop()
    raise TimeoutError(f"service not ready in {START_TIMEOUT_S:g} s; see {log}")


def start_full_service(
    bench: BenchWorkspace, folder: Path, extra: dict[str, str] | None = None
) -> ServiceProcess:
    """Start ``cardfraud serve`` with two workers on a free 127.0.0.1 port."""
    port = free_port()
    cardfraud = str(Path(sys.executable).with_name("cardfraud"))
    command = [cardfraud, "serve", "--workers", "2", "--host", "127.0.0.1"]
    command += ["--port", str(port)]
    env = service_environment(bench, folder, extra)
    return start_process(command, env, folder, port)


def start_bare_service(bench: BenchWorkspace, folder: Path) -> ServiceProcess:
    """Start ``bento/bare_service.py`` with two workers on a free 127.0.0.1 port."""
    port = free_port()
    bentoml = str(Path(sys.executable).with_name("bentoml"))
    command = [bentoml, "serve", "bare_service:BareScorer", "--working-dir"]
    command += [str(project_root() / "bento"), "--host", "127.0.0.1"]
    command += ["--port", str(port)]
    env = service_environment(bench, folder)
    return start_process(command, env, folder, port)


@dataclass
class TargetReport:
    """The fixed-rate run and the rate steps of one service."""

    target: str
    warmup: LoadResult
    fixed: LoadResult
    steps: list[LoadResult]
    model: str = ""
    audit_missing: int | None = None
    audit_rows: int | None = None

    def accepted_ids(self) -> list[str]:
        """Return the transaction ids of every 200 response, warm-up included."""
        ids = [*self.warmup.ok_ids, *self.fixed.ok_ids]
        for step in self.steps:
            ids += step.ok_ids
        return ids

    @property
    def highest_rate(self) -> float | None:
        """Highest stepped rate within the bound, stepping up from the lowest."""
        best = None
        for step in self.steps:
            if not step.within_bound:
                break
            best = step.rate
        return best


def load_target(
    service: ServiceProcess,
    make_requests: Any,
    *,
    target: str,
    rate: float,
    seconds: float,
    step_rates: tuple[int, ...],
    step_seconds: float,
) -> TargetReport:
    """Warm the service up, run the fixed rate, then step the rate until it fails."""
    url = f"{service.url}/score"
    warmup = make_requests(int(WARMUP_RATE * WARMUP_SECONDS), f"{target}-warmup")
    warmed = run_open_loop(url, warmup, rate=WARMUP_RATE, target=target)
    fixed = run_open_loop(
        url,
        make_requests(int(rate * seconds), f"{target}-{rate:g}"),
        rate=rate,
        target=target,
    )
    logger.info("%s at %g/s: %s", target, rate, _summary(fixed))
    steps = []
    for step_rate in step_rates:
        requests = make_requests(
            int(step_rate * step_seconds), f"{target}-s{step_rate}"
        )
        step = run_open_loop(url, requests, rate=step_rate, target=target)
        logger.info("%s step %d/s: %s", target, step_rate, _summary(step))
        steps.append(step)
        if not step.within_bound:
            break
    return TargetReport(target, warmed, fixed, steps)


def _summary(result: LoadResult) -> str:
    return (
        f"p50 {result.p50_ms} ms, p99 {result.p99_ms} ms, errors {result.errors}, "
        f"send lag p99 {result.send_lag_p99_ms} ms"
    )


def audited_ids(audit_db: Path) -> tuple[set[str], int]:
    """Return the distinct transaction ids in a SQLite audit log and its row count."""
    connection = sqlite3.connect(f"file:{audit_db}?mode=ro", uri=True)
    try:
        ids = {
            row[0] for row in connection.execute("SELECT transaction_id FROM decisions")
        }
        (rows,) = connection.execute("SELECT COUNT(*) FROM decisions").fetchone()
    finally:
        connection.close()
    return ids, int(rows)


def check_audit(report: TargetReport, audit_db: Path) -> None:
    """Count the accepted requests missing from the audit log and the log's rows."""
    ids, rows = audited_ids(audit_db)
    report.audit_missing = len(set(report.accepted_ids()) - ids)
    report.audit_rows = rows


@dataclass
class DegradedReport:
    """Latency of the full service on Redis before and after the server was killed.

    Attributes:
        healthy: The run with the Redis server up.
        down: The run after the server was killed.
        readyz_ms: Time of each ``/readyz`` call while the server was down, ms.
        readyz_status: Its ``status`` fields.
        degraded_counter: ``cardfraud_degraded_total`` as ``/metrics`` returned it
            after the second run, summed over its label sets.
    """

    healthy: LoadResult
    down: LoadResult
    readyz_ms: list[float]
    readyz_status: list[str]
    degraded_counter: float

    @property
    def degraded_p99_ms(self) -> float:
        """p99 of the degraded 200 responses, ms."""
        values = [
            latency
            for latency, flagged in zip(
                self.down.ok_latencies_ms, self.down.ok_degraded, strict=True
            )
            if flagged
        ]
        return round(float(np.percentile(values, 99)), 2) if values else float("nan")


def measure_degraded(
    bench: BenchWorkspace, folder: Path, *, rate: float = 50, seconds: float = 10
) -> DegradedReport | None:
    """Serve from a Redis online store, kill the server, and time what follows.

    Returns None when ``redis-server`` is not installed.
    """
    from cardfraud.bench import redis_server

    (folder / "redis").mkdir(parents=True, exist_ok=True)
    with redis_server(folder / "redis") as connection:
        if connection is None:
            logger.warning("redis-server not installed: degraded latency not measured")
            return None
        store_yaml = _load_redis_state(bench, connection)
        service = start_full_service(
            bench,
            folder / "service",
            {"CARDFRAUD_FEATURE_STORE_YAML": str(store_yaml)},
        )
        try:
            url = f"{service.url}/score"
            run_open_loop(
                url, bench.score_requests(100, "redis-warmup"), rate=rate, target="full"
            )
            healthy = run_open_loop(
                url,
                bench.score_requests(int(rate * seconds), "redis-up"),
                rate=rate,
                target="full",
            )
            _kill_redis(connection)
            down = run_open_loop(
                url,
                bench.score_requests(int(rate * seconds), "redis-down"),
                rate=rate,
                target="full",
            )
            readyz = [_time_readyz(service.url) for _ in range(5)]
            counter = _degraded_counter(service.url)
        finally:
            service.stop()
    return DegradedReport(
        healthy=healthy,
        down=down,
        readyz_ms=[round(elapsed, 2) for elapsed, _ in readyz],
        readyz_status=[status for _, status in readyz],
        degraded_counter=counter,
    )


def _load_redis_state(bench: BenchWorkspace, connection: str) -> Path:
    from cardfraud.data import read_transactions
    from cardfraud.feature_store import apply_and_load_state
    from cardfraud.features import feature_columns
    from cardfraud.params import load_params

    template = project_root() / "feature_repo" / "feature_store.redis.yaml"
    store_yaml = bench.ws.feature_repo / "feature_store.redis.yaml"
    store_yaml.write_text(
        template.read_text(encoding="utf-8").replace("${REDIS_CONNECTION}", connection),
        encoding="utf-8",
    )
    features = load_params(bench.params_path).features
    apply_and_load_state(
        bench.ws,
        read_transactions(bench.ws.raw_dir),
        features,
        feature_columns(features),
        store_yaml=store_yaml,
    )
    return store_yaml


def _kill_redis(connection: str) -> None:
    """Kill the benchmark's own redis-server with SIGKILL, found by its port."""
    import redis

    host, _, port = connection.rpartition(":")
    client = redis.Redis(host=host, port=int(port))
    pid = int(client.info("server")["process_id"])
    client.close()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.01)
    logger.info("killed redis-server %d on %s", pid, connection)


def _time_readyz(url: str) -> tuple[float, str]:
    started = time.perf_counter()
    response = httpx.get(f"{url}/readyz", timeout=30)
    elapsed = (time.perf_counter() - started) * 1000
    return elapsed, str(response.json().get("status"))


def _degraded_counter(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("cardfraud_degraded_total")
    )


@dataclass
class ServiceBenchmark:
    """Everything ``run_service_benchmark`` measured.

    Attributes:
        model: Description of the model that the degraded run served.
        load_before: Load average before the first workspace was prepared.
        load_after: Load average after the last run.
        reports: Full and bare service of each model family, in turn.
        degraded: The Redis run, None without ``redis-server``.
    """

    model: str
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    reports: list[TargetReport]
    degraded: DegradedReport | None

    def failures(self) -> list[str]:
        """Return the bounds this run missed, each as a sentence."""
        problems = []
        for report in self.reports:
            fixed = report.fixed
            if report.target == "full" and not fixed.within_bound:
                problems.append(
                    f"full service ({report.model}) at {fixed.rate:g}/s: p99 "
                    f"{fixed.p99_ms} ms "
                    f"(bound {P99_BOUND_MS:g} ms), {fixed.errors} errors"
                )
            if report.audit_missing:
                problems.append(
                    f"{report.audit_missing} accepted requests missing from the "
                    "audit log"
                )
            accepted = len(report.accepted_ids())
            if report.audit_rows is not None and report.audit_rows != accepted:
                problems.append(
                    f"audit log has {report.audit_rows} rows for {accepted} "
                    "accepted requests"
                )
        if self.degraded is not None:
            p99 = self.degraded.degraded_p99_ms
            if not p99 <= DEGRADED_P99_BOUND_MS:
                problems.append(
                    f"degraded responses: p99 {p99} ms (bound "
                    f"{DEGRADED_P99_BOUND_MS:g} ms)"
                )
            if self.degraded.down.errors:
                problems.append(
                    f"{self.degraded.down.errors} errors while Redis was down"
                )
        return problems


def run_service_benchmark(
    params_path: Path,
    *,
    rate: float = 200,
    seconds: float = 60,
    step_rates: tuple[int, ...] = STEP_RATES,
    step_seconds: float = 20,
    flavours: list[str] | None = None,
    folder: Path | None = None,
) -> ServiceBenchmark:
    """Load-test the full and the bare service on temporary smoke workspaces.

    Args:
        params_path: Parameters file whose features and model families to use.
        rate: Requests per second of the fixed-rate run.
        seconds: Length of the fixed-rate run.
        step_rates: Rates of the stepped runs, increasing.
        step_seconds: Length of each stepped run.
        flavours: Model families to serve, one workspace each; default every
            family in the parameters' ``train.models``.
        folder: Working folder; default a temporary one, removed afterwards.
    """
    from cardfraud.params import load_params

    chosen = flavours or list(load_params(params_path).train.models)
    if not chosen:
        raise ValueError("flavours: name at least one model family to serve")
    with _working_folder(folder) as work:
        load_before = os.getloadavg()
        reports = []
        benches = []
        for flavour in chosen:
            bench = prepare_workspace(work / f"prepare-{flavour}", params_path, flavour)
            benches.append(bench)
            logger.info("serving %s", bench.describe)
            reports += _load_both(
                bench,
                work / flavour,
                rate=rate,
                seconds=seconds,
                step_rates=step_rates,
                step_seconds=step_seconds,
            )
            degraded = measure_degraded(benches[0], work / "degraded")
        return ServiceBenchmark(
            model=benches[0].describe,
            load_before=load_before,
            load_after=os.getloadavg(),
            reports=reports,
            degraded=degraded,
        )


def _load_both(
    bench: BenchWorkspace,
    folder: Path,
    *,
    rate: float,
    seconds: float,
    step_rates: tuple[int, ...],
    step_seconds: float,
) -> list[TargetReport]:
    """Load the full service, check its audit log, then load the bare service."""
    schedule = {
        "rate": rate,
        "seconds": seconds,
        "step_rates": step_rates,
        "step_seconds": step_seconds,
    }
    full = start_full_service(bench, folder / "full")
    try:
        report = load_target(full, bench.score_requests, target="full", **schedule)
    finally:
        full.stop()
    check_audit(report, folder / "full" / "audit.db")
    report.model = bench.describe

    bare = start_bare_service(bench, folder / "bare")
    try:
        baseline = load_target(bare, bench.bare_requests, target="bare", **schedule)
    finally:
        bare.stop()
    baseline.model = bench.describe
    return [report, baseline]


@contextlib.contextmanager
def _working_folder(folder: Path | None) -> Iterator[Path]:
    """Yield ``folder``, or a temporary folder that is removed afterwards."""
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="cardfraud-load-") as name:
        yield Path(name)


def service_tables(result: ServiceBenchmark) -> str:
    """Format the benchmark as markdown: load table, rate steps, degraded mode."""
    lines = [
        "load average (1, 5, 15 min) before: "
        + ", ".join(f"{value:.2f}" for value in result.load_before)
        + "; after: "
        + ", ".join(f"{value:.2f}" for value in result.load_after),
        "",
        "| service | model | rate/s | seconds | sent | errors | p50 ms | p95 ms | "
        "p99 ms | max ms | send lag p99 ms | highest rate with p99 <= "
        f"{P99_BOUND_MS:g} ms | accepted, audit rows, missing |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for report in result.reports:
        fixed = report.fixed
        highest_text = _highest_text(report)
        missing = ""
        if report.audit_missing is not None:
            missing = (
                f"{len(report.accepted_ids())}, {report.audit_rows}, "
                f"{report.audit_missing}"
            )
        lines.append(
            f"| {report.target} | {report.model} | {fixed.rate:g} | "
            f"{fixed.seconds:g} | {fixed.sent} | {fixed.errors} | "
            f"{fixed.p50_ms} | {fixed.p95_ms} | {fixed.p99_ms} | "
            f"{fixed.max_ms} | {fixed.send_lag_p99_ms} | {highest_text} | {missing} |"
        )
    lines += [
        "",
        "| service | model | rate/s | errors | p50 ms | p99 ms | send lag p99 ms |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for report in result.reports:
        for step in report.steps:
            lines.append(
                f"| {step.target} | {report.model} | {step.rate:g} | {step.errors} | "
                f"{step.p50_ms} | {step.p99_ms} | {step.send_lag_p99_ms} |"
            )
    if result.degraded is not None:
        lines += [
            "",
            f"Degraded mode, served model {result.model}:",
            "",
            _degraded_table(result.degraded),
        ]
    return "\n".join(lines)


def _highest_text(report: TargetReport) -> str:
    if not report.steps:
        return "not stepped"
    highest = report.highest_rate
    if highest is None:
        return f"below {report.steps[0].rate:g}/s"
    if report.steps[-1].within_bound:
        return f"{highest:g}/s or more"
    return f"{highest:g}/s"


def _degraded_table(report: DegradedReport) -> str:
    lines = [
        "| Redis online store | rate/s | errors | degraded | p50 ms | p99 ms "
        "| max ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, run in (("server up", report.healthy), ("server killed", report.down)):
        lines.append(
            f"| {name} | {run.rate:g} | {run.errors} | {run.degraded} | {run.p50_ms} "
            f"| {run.p99_ms} | {run.max_ms} |"
        )
    lines.append("")
    lines.append(
        f"degraded responses p99 {report.degraded_p99_ms} ms (bound "
        f"{DEGRADED_P99_BOUND_MS:g} ms); /readyz while down: "
        + ", ".join(f"{value:g} ms" for value in report.readyz_ms)
        + f" ({', '.join(sorted(set(report.readyz_status)))}); "
        f"cardfraud_degraded_total {report.degraded_counter:g}"
    )
    return "\n".join(lines)
