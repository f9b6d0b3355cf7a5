"""Local servers that tests start on 127.0.0.1: free ports and redis-server."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cardfraud.bench import RedisServer, redis_server_process


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def redis_server_or_skip(folder: Path) -> Iterator[RedisServer]:
    """Run a redis-server on 127.0.0.1 without persistence, or skip the test.

    Args:
        folder: Working folder of the server.

    Yields:
        The running server; a test may kill its process.
    """
    with redis_server_process(folder) as server:
        if server is None:
            pytest.skip(
                "redis-server is not installed; install the redis-server package"
            )
        yield server
