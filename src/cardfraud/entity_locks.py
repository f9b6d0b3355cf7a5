"""Inter-process locks that make a card's and a merchant's state update atomic.

Scoring reads a card's and a merchant's online state, computes the features and
writes both states back. Two service workers scoring the same card at once would
otherwise both read the old state and one update would be lost. Each scoring step
therefore holds the locks of its card and its merchant from the read to the write:

* ``StripedFileLock`` for the SQLite online store: POSIX record locks (``fcntl``) on
  one byte per stripe of a lock file, the stripe chosen by a hash of the entity id.
  They exclude other processes on the same host; a per-stripe ``threading.Lock``
  excludes other threads of the same process, which POSIX locks do not.
* ``RedisEntityLock`` for the Redis online store: one Redis lock key per entity,
  taken with ``SET NX PX`` and released by a compare-and-delete script (redis-py's
  ``Lock``), so workers on different hosts exclude each other too.

Locks are always taken in sorted key order, so two steps that need the same two
locks cannot deadlock.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Protocol

logger = logging.getLogger(__name__)

DEFAULT_STRIPES = 4096


class LockTimeoutError(TimeoutError):
    """An entity lock was not acquired in time."""


class EntityLock(Protocol):
    """Mutual exclusion over named entities across processes."""

    def hold(self, *keys: str) -> Any:
        """Return a context manager that holds the locks of every key."""


def stripe_of(key: str, stripes: int) -> int:
    """Return the stripe of ``key``: a stable hash, the same in every process.

    Python's ``hash`` of a string changes between processes, so a digest is used.
    """
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % stripes


class StripedFileLock:
    """Exclusive locks on stripes of one lock file, across processes and threads.

    NOTE: POSIX record locks belong to the process and are all released when any
    descriptor of the file closes, so the file stays open for the object's life.
    They also do not work reliably on network file systems; keep the lock file on
    local disk.

    Args:
        path: Lock file; created when missing. Every process that updates the same
            online store must use the same path and stripe count.
        stripes: Number of stripes. Two entities that share a stripe are serialised
            although they do not conflict, which costs throughput, never
            correctness.
    """

    def __init__(self, path: Path, *, stripes: int = DEFAULT_STRIPES) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.stripes = stripes
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self._thread_locks = [threading.Lock() for _ in range(stripes)]

    @contextmanager
    def hold(self, *keys: str) -> Iterator[None]:
        """Hold the stripes of every key; blocks until they are free."""
        chosen = sorted({stripe_of(key, self.stripes) for key in keys})
        with ExitStack() as stack:
            for stripe in chosen:
                stack.enter_context(self._hold_stripe(stripe))
            yield

    @contextmanager
    def _hold_stripe(self, stripe: int) -> Iterator[None]:
        with self._thread_locks[stripe]:
            fcntl.lockf(self._fd, fcntl.LOCK_EX, 1, stripe, os.SEEK_SET)
            try:
                yield
            finally:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, stripe, os.SEEK_SET)

    def close(self) -> None:
        """Close the lock file, releasing every lock of this process."""
        os.close(self._fd)


class RedisEntityLock:
    """One Redis lock key per entity, shared by every process that uses the server.

    Args:
        client: A ``redis.Redis`` client of the online store's server.
        prefix: Prefix of the lock keys.
        ttl_s: Time after which a lock expires when its holder died.
        wait_s: Longest time to wait for a lock.
    """

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "cardfraud:lock:",
        ttl_s: float = 5.0,
        wait_s: float = 2.0,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.wait_s = wait_s

    @contextmanager
    def hold(self, *keys: str) -> Iterator[None]:
        """Hold the lock of every key.

        Raises:
            LockTimeoutError: A lock stayed taken for ``wait_s`` seconds.
            redis.exceptions.ConnectionError: The server is unreachable.
        """
        with ExitStack() as stack:
            for key in sorted(set(keys)):
                lock = self.client.lock(
                    f"{self.prefix}{key}",
                    timeout=self.ttl_s,
                    blocking_timeout=self.wait_s,
                )
                if not lock.acquire():
                    raise LockTimeoutError(
                        f"lock {self.prefix}{key} still held after {self.wait_s} s"
                    )
                stack.callback(_release, lock)
            yield


def _release(lock: Any) -> None:
    from redis.exceptions import LockError, RedisError

    try:
        lock.release()
    except LockError:
        logger.warning(
            "lock %s expired before release: the update took longer than its "
            "time to live",
            lock.name,
        )
    except RedisError as error:
        logger.warning("lock %s not released: %s", lock.name, error)


def redis_client_from_connection_string(connection_string: str) -> Any:
    """Build a redis-py client from a Feast Redis ``connection_string``.

    The string is ``host:port`` optionally followed by ``,key=value`` options;
    ``password``, ``ssl`` and ``db`` are honoured. The client retries a failed
    command once, at once: redis-py 7's default retries with backoff took about
    10 s against a closed port, and a scoring request must fall back to degraded
    mode sooner.
    """
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    address, *options = [part.strip() for part in connection_string.split(",")]
    host, _, port = address.rpartition(":")
    settings: dict[str, Any] = {
        "host": host or "localhost",
        "port": int(port or 6379),
        "socket_timeout": 2.0,
        "socket_connect_timeout": 2.0,
        "retry": Retry(NoBackoff(), 1),
    }
    for option in options:
        key, _, value = option.partition("=")
        if key == "password":
            settings["password"] = value
        elif key == "ssl":
            settings["ssl"] = value.lower() == "true"
        elif key == "db":
            settings["db"] = int(value)
    return redis.Redis(**settings)
