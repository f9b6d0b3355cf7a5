"""Benchmark helpers of the feature build and the online path, on small sizes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from cardfraud.bench import features_and_online_table, percentile_ms, redis_server
from cardfraud.features import feature_columns
from cardfraud.params import load_params

os.environ.setdefault("FEAST_USAGE", "False")


def test_percentile_ms_converts_seconds() -> None:
    durations = [0.001] * 99 + [0.1]
    assert percentile_ms(durations, 50) == 1.0
    assert percentile_ms(durations, 100) == 100.0


def test_features_and_online_table_rows(smoke_params_path: Path) -> None:
    lines = features_and_online_table(
        smoke_params_path, rows=3_000, replay=100
    ).splitlines()
    assert lines[0] == "| step | rows | seconds | peak RSS (MiB) |"
    features = feature_columns(load_params(smoke_params_path).features)
    assert lines[2].startswith(f"| build_feature_table, {len(features)} features |")
    sqlite = lines[6].split(" | ")
    assert sqlite[0] == "| SQLite (WAL)"
    assert sqlite[1] == "100"
    assert float(sqlite[2]) > 0
    assert float(sqlite[3]) >= float(sqlite[2])
    if shutil.which("redis-server") is None:
        assert lines[7] == "| Redis | skipped: redis-server is not installed |"
    else:
        redis = lines[7].split(" | ")
        assert redis[0] == "| Redis (loopback)"
        assert redis[1] == "100"


def test_redis_server_stops_after_use(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed; install the redis-server package")
    import redis

    with redis_server(tmp_path) as connection:
        assert connection is not None
        host, port = connection.split(":")
        client = redis.Redis(host=host, port=int(port))
        assert client.ping() is True
        client.close()
    with pytest.raises(redis.ConnectionError):
        redis.Redis(host=host, port=int(port), socket_connect_timeout=1).ping()
