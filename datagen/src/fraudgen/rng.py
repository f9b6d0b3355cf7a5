"""Independent random streams derived from the seed, a stream name and a day.

Each stream is a numpy ``Generator`` on PCG64 seeded by a ``SeedSequence`` whose spawn
key contains the stream's number and the day index. A day's data therefore depends only
on the seed and that day, never on how days are grouped into shards.
"""

from __future__ import annotations

import numpy as np

STREAMS = {
    "population": 1,
    "legitimate": 2,
    "fraud_plan": 3,
    "ordering": 4,
    "merchant_ids": 5,
}


def stream(seed: int, name: str, day: int = 0) -> np.random.Generator:
    """Return the random generator of stream ``name`` for day index ``day``.

    Args:
        seed: Configuration seed, a non-negative integer.
        name: One of ``STREAMS``.
        day: Day index from the first day, 0-based; 0 for streams that are not daily.
    """
    key = (STREAMS[name], day)
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key))
    )
