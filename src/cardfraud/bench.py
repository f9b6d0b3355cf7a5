"""Benchmarks: wall time and peak memory of every pipeline stage at full size.

The stages run in process on a temporary workspace, so the pipeline's own outputs and
MLflow store stay untouched. Papermill and DVC overhead (kernel start, about 5 to 10 s a
stage) is not included.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import resource
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from cardfraud.params import FeaturesParams, load_params
from cardfraud.paths import Workspace
from cardfraud.pipeline import STAGES, run_stage

logger = logging.getLogger(__name__)


def peak_rss_mib() -> float:
    """Return the process's peak resident memory so far in MiB (ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_stages(params_path: Path) -> list[dict[str, float | str]]:
    """Run every stage once on a temporary workspace and time it.

    Returns:
        One row per stage: name, seconds, and peak RSS in MiB after the stage.
    """
    params = load_params(params_path)
    rows: list[dict[str, float | str]] = []
    with tempfile.TemporaryDirectory(prefix="cardfraud-bench-") as folder:
        ws = Workspace(Path(folder))
        for stage in STAGES:
            started = time.perf_counter()
            run_stage(stage.name, ws, params)
            seconds = time.perf_counter() - started
            rows.append(
                {
                    "stage": stage.name,
                    "seconds": round(seconds, 1),
                    "peak_rss_mib": round(peak_rss_mib()),
                }
            )
            logger.info("%s: %.1f s", stage.name, seconds)
    return rows


def markdown_table(rows: list[dict[str, float | str]]) -> str:
    """Format the rows as a markdown table with a total line."""
    lines = ["| stage | seconds | peak RSS (MiB) |", "|---|---:|---:|"]
    lines += [
        f"| {row['stage']} | {row['seconds']} | {row['peak_rss_mib']} |" for row in rows
    ]
    total = sum(float(row["seconds"]) for row in rows)
    lines.append(f"| total | {total:.1f} | |")
    return "\n".join(lines)


def machine_description() -> str:
    """Describe the machine a benchmark ran on: architecture, cores, Python."""
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )


def generator_table(
    sizes: list[int], *, seed: int, reference_sizes: list[int] | None = None
) -> str:
    """Time fraudgen at each size, and its per-row reference, as a markdown table.

    Each run is a fresh process (``fraudgen.benchmark``), so every row's time and
    peak memory include interpreter start-up and imports.

    Args:
        sizes: Target rows of the vectorised generator runs.
        seed: Generator seed.
        reference_sizes: Target rows of the per-row reference runs; None runs it
            at the smallest of ``sizes``.
    """
    from fraudgen import benchmark

    if reference_sizes is None:
        reference_sizes = [min(sizes)]
    results = benchmark.run_benchmark(sizes, reference_sizes=reference_sizes, seed=seed)
    for result in results:
        logger.info("fraudgen %s: %s", result.implementation, result)
    return benchmark.markdown_table(results)


def generate_transactions(rows: int, *, seed: int, out_dir: Path) -> Path:
    """Write ``rows`` synthetic transactions with ``fraudgen`` in a child process.

    Returns:
        The folder of daily partitions.
    """
    import subprocess
    import sys

    command = [sys.executable, "-m", "fraudgen", "generate", "--out", str(out_dir)]
    command += ["--rows", str(rows), "--seed", str(seed), "--quiet"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return out_dir


def time_feature_build(
    raw_dir: Path, params: FeaturesParams
) -> tuple[dict[str, float | int], pl.DataFrame]:
    """Time ``build_feature_table`` on the transactions under ``raw_dir``.

    Returns:
        rows, features, seconds (reading excluded) and peak RSS in MiB so far; and
        the feature table.
    """
    from cardfraud.data import read_transactions
    from cardfraud.features import build_feature_table, feature_columns

    transactions = read_transactions(raw_dir)
    started = time.perf_counter()
    table = build_feature_table(transactions, params)
    seconds = time.perf_counter() - started
    logger.info("feature build: %d rows in %.1f s", table.height, seconds)
    summary = {
        "rows": table.height,
        "features": len(feature_columns(params)),
        "seconds": round(seconds, 1),
        "peak_rss_mib": round(peak_rss_mib()),
    }
    return summary, table


def percentile_ms(seconds: list[float], q: float) -> float:
    """Return the ``q``-th percentile (0-100) of durations in seconds, in ms."""
    import numpy as np

    return round(float(np.percentile(np.asarray(seconds) * 1000, q)), 3)


def time_online_path(
    transactions: pl.DataFrame,
    table: pl.DataFrame,
    params: FeaturesParams,
    *,
    workspace: Workspace,
    replay: int,
    store_yaml: Path | None = None,
) -> dict[str, float | int]:
    """Time the online read plus update of single transactions through Feast.

    ``table`` is the feature table of ``transactions``, the source of the Feast
    definitions. The state is bootstrapped as of the ``replay``-th last transaction.
    The rest stream through ``OnlineFeatures.process`` in order, and their label
    events are applied between them without being timed.

    Returns:
        transactions timed, p50, p99 and max in ms, cards and merchants loaded.
    """
    from cardfraud.feature_store import (
        FEATURES_FILE,
        apply_and_load_state,
        open_store,
    )
    from cardfraud.features import feature_columns
    from cardfraud.online import OnlineFeatures, replay_events

    ordered = transactions.sort("timestamp", "transaction_id")
    start = ordered["timestamp"][ordered.height - replay]
    workspace.features_dir.mkdir(parents=True, exist_ok=True)
    table.write_parquet(workspace.features_dir / FEATURES_FILE)
    summary = apply_and_load_state(
        workspace,
        ordered,
        params,
        feature_columns(params),
        cutoff=start,
        store_yaml=store_yaml,
    )
    online = OnlineFeatures(open_store(workspace, store_yaml=store_yaml), params)
    durations = []
    for kind, event in replay_events(ordered, params, start=start):
        if kind == "label":
            online.apply_label(**event)
            continue
        started = time.perf_counter()
        online.process(event)
        durations.append(time.perf_counter() - started)
    return {
        "transactions": len(durations),
        "p50_ms": percentile_ms(durations, 50),
        "p99_ms": percentile_ms(durations, 99),
        "max_ms": round(max(durations) * 1000, 3),
        "cards": summary["cards"],
        "merchants": summary["merchants"],
    }


REDIS_START_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class RedisServer:
    """A running redis-server started by ``redis_server_process``.

    Attributes:
        connection: ``host:port`` on 127.0.0.1, as Feast's ``connection_string``.
        process: The server process; stopping it early (a fault test) is allowed.
    """

    connection: str
    process: subprocess.Popen


@contextlib.contextmanager
def redis_server_process(folder: Path) -> Iterator[RedisServer | None]:
    """Run a redis-server on 127.0.0.1 on a free port, without persistence.

    The server is stopped with SIGTERM on exit unless it has already exited.

    Args:
        folder: Working folder of the server (``--dir``); it writes no data there.

    Yields:
        The running server, or None when the ``redis-server`` binary is not
        installed.

    Raises:
        RuntimeError: The server exited or did not respond to PING within
            ``REDIS_START_TIMEOUT_S`` seconds.
    """
    import shutil
    import socket

    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    import redis

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
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
                        f"redis-server on 127.0.0.1:{port} did not start"
                    ) from None
                time.sleep(0.05)
        logger.info("redis-server %d listening on 127.0.0.1:%d", process.pid, port)
        yield RedisServer(f"127.0.0.1:{port}", process)
    finally:
        client.close()
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=10)
        logger.info("redis-server %d stopped", process.pid)


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[str | None]:
    """Run a redis-server on 127.0.0.1 on a free port, without persistence.

    Yields:
        ``host:port``, or None when the ``redis-server`` binary is not installed.
    """
    with redis_server_process(folder) as server:
        yield None if server is None else server.connection


def write_redis_store_yaml(repo: Path, connection: str) -> Path:
    """Write the project's Redis ``feature_store.yaml`` for ``connection`` to repo."""
    from cardfraud.paths import project_root

    template = project_root() / "feature_repo" / "feature_store.redis.yaml"
    text = template.read_text(encoding="utf-8")
    repo.mkdir(parents=True, exist_ok=True)
    path = repo / "feature_store.yaml"
    path.write_text(text.replace("${REDIS_CONNECTION}", connection), encoding="utf-8")
    return path


def features_and_online_table(
    params_path: Path, *, rows: int, replay: int = 2_000
) -> str:
    """Time the feature build and the online path, and format a markdown report.

    Generates ``rows`` transactions with the generate section's seed, builds the
    feature table, then replays the last ``replay`` transactions through the
    online path on SQLite and on Redis (skipped without ``redis-server``).
    """
    from cardfraud.data import read_transactions

    params = load_params(params_path)
    features = params.features
    with tempfile.TemporaryDirectory(prefix="cardfraud-bench-online-") as folder:
        root = Path(folder)
        raw_dir = generate_transactions(
            rows, seed=params.generate.seed, out_dir=root / "raw"
        )
        build, table = time_feature_build(raw_dir, features)
        transactions = read_transactions(raw_dir)
        lines = [
            "| step | rows | seconds | peak RSS (MiB) |",
            "|---|---:|---:|---:|",
            f"| build_feature_table, {build['features']} features | {build['rows']:,} "
            f"| {build['seconds']} | {build['peak_rss_mib']} |",
            "",
            "| online store | transactions | p50 ms | p99 ms | max ms | cards "
            "| merchants |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        sqlite = time_online_path(
            transactions,
            table,
            features,
            workspace=Workspace(root / "sqlite"),
            replay=replay,
        )
        lines.append(_online_row("SQLite (WAL)", sqlite))
        with redis_server(root) as connection:
            if connection is None:
                lines.append("| Redis | skipped: redis-server is not installed |")
            else:
                workspace = Workspace(root / "redis")
                store_yaml = write_redis_store_yaml(workspace.feature_repo, connection)
                result = time_online_path(
                    transactions,
                    table,
                    features,
                    workspace=workspace,
                    replay=replay,
                    store_yaml=store_yaml,
                )
                lines.append(_online_row("Redis (loopback)", result))
    return "\n".join(lines)


def _online_row(name: str, result: dict[str, float | int]) -> str:
    return (
        f"| {name} | {result['transactions']:,} | {result['p50_ms']} "
        f"| {result['p99_ms']} | {result['max_ms']} | {result['cards']:,} "
        f"| {result['merchants']:,} |"
    )


def write_audit_log(
    path: Path, features: pl.DataFrame, raw: pl.DataFrame, model: object
) -> int:
    """Write one audit record per feature table row, as the scoring core would.

    Each record has the request, the features, the SHAP contributions, an empty
    reasons list, the score and the decision, about 4 KB like a live record (which
    also carries the model description, thresholds and timings). Returns the number
    of records.
    """
    import numpy as np

    from cardfraud.audit import SqliteAuditStore
    from cardfraud.serving import decide

    columns = model.feature_columns  # type: ignore[attr-defined]
    store = SqliteAuditStore(path)
    requests = features.select("transaction_id").join(
        raw.drop("is_fraud", "label_available_at", "fraud_scenario"),
        on="transaction_id",
        how="left",
        maintain_order="left",
    )
    written = 0
    for start in range(0, features.height, 50_000):
        chunk = features.slice(start, 50_000)
        matrix = chunk.select(columns).cast(pl.Float64).to_numpy()
        base, contributions = model.contributions(matrix)  # type: ignore[attr-defined]
        scores = np.asarray(model.predict_proba(matrix))  # type: ignore[attr-defined]
        request_rows = requests.slice(start, 50_000).to_dicts()
        records = []
        for i, request in enumerate(request_rows):
            request["timestamp"] = request["timestamp"].isoformat()
            score = float(scores[i])
            records.append(
                {
                    "transaction_id": request["transaction_id"],
                    "decided_at": request["timestamp"],
                    "model_version": "1",
                    "score": score,
                    "decision": decide(score, model.thresholds),  # type: ignore[attr-defined]
                    "reasons": [],
                    "base_value": float(base),
                    "degraded": False,
                    "request": request,
                    "features": dict(zip(columns, matrix[i].tolist(), strict=True)),
                    "contributions": dict(
                        zip(columns, contributions[i].tolist(), strict=True)
                    ),
                }
            )
        store.append(records)
        written += len(records)
    store.close()
    return written


@dataclass
class MonitorBench:
    """Inputs of the monitor benchmark, prepared once."""

    audit: Path
    columns: list[str]
    labels: pl.DataFrame
    profile: object
    settings: object
    features: pl.DataFrame
    rows: int


def prepare_monitor_bench(
    folder: Path, params_path: Path, *, rows: int, seed: int
) -> MonitorBench:
    """Generate data, fit a small model and write an audit log of ``rows`` decisions.

    The first 60 days fit an XGBoost model (100 rounds of depth 4); the next ``rows``
    transactions are scored and written to ``folder/audit.db`` in the service's
    record format.
    """
    from datetime import timedelta

    import numpy as np
    import xgboost as xgb

    from cardfraud.data import read_transactions
    from cardfraud.features import build_feature_table, feature_columns
    from cardfraud.monitoring.decisions import label_events_from_transactions
    from cardfraud.monitoring.reference import profile_for_model
    from cardfraud.monitoring.settings import monitor_settings
    from cardfraud.training import TrainedModel

    params = load_params(params_path)
    # About a third of the 183 generated days fit the model; the rest is monitored.
    generated = int(rows * 1.55)
    raw = read_transactions(
        generate_transactions(generated, seed=seed, out_dir=folder / "raw")
    )
    features = build_feature_table(raw, params.features)
    columns = feature_columns(params.features)
    split = features["timestamp"].min() + timedelta(days=60)
    fit = features.filter(pl.col("timestamp") < split)
    matrix = fit.select(columns).cast(pl.Float64).to_numpy()
    booster = xgb.train(
        {"max_depth": 4, "eta": 0.1, "objective": "binary:logistic", "nthread": 2},
        xgb.DMatrix(matrix, fit["is_fraud"].cast(pl.Float64).to_numpy()),
        num_boost_round=100,
    )
    scores = booster.inplace_predict(matrix)
    window = {"start": fit["timestamp"].min().isoformat(), "end": split.isoformat()}
    model = TrainedModel(
        "xgboost",
        booster,
        columns,
        {
            "review": float(np.quantile(scores, 0.99)),
            "decline": float(np.quantile(scores, 0.998)),
        },
        {"windows": {"fit": window}},
    )
    later = features.filter(pl.col("timestamp") >= split).head(rows)
    audit = folder / "audit.db"
    written = write_audit_log(audit, later, raw, model)
    settings = monitor_settings(
        params.monitor,
        review_threshold=model.thresholds["review"],
        alerts_per_10000=params.evaluate.alerts_per_10000,
        baseline=None,
    )
    return MonitorBench(
        audit,
        columns,
        label_events_from_transactions(raw),
        profile_for_model(features, model),
        settings,
        features,
        written,
    )


def reset_peak_rss() -> bool:
    """Reset the process's peak RSS (Linux ``VmHWM``); False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_since_reset_mib() -> float:
    """Return ``VmHWM`` from ``/proc/self/status`` in MiB: the peak since a reset."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("/proc/self/status has no VmHWM line")


def run_monitor_bench(bench: MonitorBench) -> dict[str, float | int]:
    """Time reading the audit log and running the monitor on it.

    On Linux the peak RSS is reset before the timed part, so it is the peak while
    that part runs, including the prepared inputs still in memory. Elsewhere it
    is the peak of the whole process, the preparation included.
    """
    from cardfraud.monitoring.decisions import read_audit_decisions
    from cardfraud.monitoring.monitor import run_monitor

    peak_reset = reset_peak_rss()
    load_at_start = os.getloadavg()[0]
    started = time.perf_counter()
    decisions = read_audit_decisions(bench.audit, feature_columns=bench.columns)
    read_done = time.perf_counter()
    run_monitor(
        decisions,
        bench.labels,
        bench.profile,  # type: ignore[arg-type]
        bench.settings,  # type: ignore[arg-type]
        feature_columns=bench.columns,
        offline_features=bench.features,
    )
    finished = time.perf_counter()
    return {
        "rows": decisions.height,
        "audit_mib": round(bench.audit.stat().st_size / 2**20),
        "read_seconds": round(read_done - started, 1),
        "monitor_seconds": round(finished - read_done, 1),
        "total_seconds": round(finished - started, 1),
        "peak_rss_mib": round(
            peak_rss_since_reset_mib() if peak_reset else peak_rss_mib()
        ),
        "load_1min_start": round(load_at_start, 2),
        "load_1min_end": round(os.getloadavg()[0], 2),
    }


def time_monitor(
    params_path: Path, *, rows: int = 1_000_000, seed: int = 1
) -> dict[str, float | int]:
    """Time the monitor over an audit log of ``rows`` decisions.

    The log is prepared untimed (:func:`prepare_monitor_bench`); the timed part
    reads it and runs the monitor with the parameters' thresholds: drift of every
    feature and the score per day, decision mix, matured performance with
    card-level bootstrap intervals, and the skew sample.

    Returns:
        rows (decisions monitored), audit_mib (file size), read_seconds,
        monitor_seconds, total_seconds, peak_rss_mib (see
        :func:`run_monitor_bench`), and the 1-minute load average when the timed
        part started and ended (load_1min_start, load_1min_end), because other
        processes on the machine slow it down.
    """
    with tempfile.TemporaryDirectory(prefix="cardfraud-bench-monitor-") as folder:
        bench = prepare_monitor_bench(Path(folder), params_path, rows=rows, seed=seed)
        result = run_monitor_bench(bench)
    logger.info("monitor over %d audit rows: %s", result["rows"], result)
    return result


def monitor_table(result: dict[str, float | int]) -> str:
    """Format a :func:`time_monitor` result as a markdown table."""
    return "\n".join(
        [
            "| rows | audit MiB | read s | monitor s | total s | peak RSS MiB "
            "| 1-min load at start, end |",
            "|---|---|---|---|---|---|---|",
            f"| {result['rows']:,} | {result['audit_mib']:,} | "
            f"{result['read_seconds']} | {result['monitor_seconds']} | "
            f"{result['total_seconds']} | {result['peak_rss_mib']:,} | "
            f"{result['load_1min_start']}, {result['load_1min_end']} |",
        ]
    )
