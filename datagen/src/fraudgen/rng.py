"""Random draws derived from the seed: sequential streams and counter-based draws.

Two kinds of randomness are used.

* ``stream`` returns a numpy ``Generator`` on PCG64 seeded by a ``SeedSequence``
  whose spawn key contains the stream's number and a day index. It serves draws made
  once for the whole data set (population, fraud plan) or once per day (ordering).
* ``CounterDraws`` serves legitimate payments. Each of its values is a hash of the
  seed, the day, the card, the payment's number within the card's day and the draw's
  number, so a payment's values do not depend on which other cards are generated
  with it. Cards can therefore be generated in shards of any size, by any number of
  threads, and give the same bytes.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

STREAMS = {
    "population": 1,
    "legitimate": 2,
    "fraud_plan": 3,
    "ordering": 4,
    "merchant_ids": 5,
    "drift": 6,
}

_MASK64 = (1 << 64) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_SLOT_MULTIPLIER = np.uint64(0xD6E8FEB86659FD93)
_DAY_MULTIPLIER = np.uint64(0xA0761D6478BD642F)
_TO_UNIT = 2.0**-53
# Rounding can leave the cumulative probability just below a draw close to 1; the
# inversion stops after this many steps.
MAX_POISSON_STEPS = 200
# Payment number used for draws made once per card (the day's payment count).
CARD_SLOT = 0xFFFF_FFFF


class Draws(Protocol):
    """The part of numpy's ``Generator`` API that payment helpers use."""

    def random(self, size: int | None = None) -> np.ndarray:
        """Return uniform floats in [0, 1)."""
        ...

    def integers(self, low: int, high: int, size: int | None = None) -> np.ndarray:
        """Return integers uniform in ``[low, high)``."""
        ...

    def standard_normal(self, size: int | None = None) -> np.ndarray:
        """Return standard normal floats."""
        ...


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


def counter_key(seed: int, name: str) -> int:
    """Return the 64-bit key of the counter-based draws of stream ``name``."""
    state = np.random.SeedSequence(seed, spawn_key=(STREAMS[name],))
    words = state.generate_state(2, np.uint32)
    return (int(words[0]) << 32 | int(words[1])) & _MASK64


def _mix(values: np.ndarray) -> np.ndarray:
    """Apply the splitmix64 finaliser to uint64 values (a bijection on 64 bits)."""
    values = values ^ (values >> np.uint64(30))
    values = values * _MIX1
    values = values ^ (values >> np.uint64(27))
    values = values * _MIX2
    return values ^ (values >> np.uint64(31))


class CounterDraws:
    """Counter-based random draws for a set of rows, with a subset of numpy's API.

    Row ``i`` is identified by ``(day[i], card[i], slot[i])``. The ``n``-th call of
    a drawing
    method returns, for every row, a value that depends only on the key, the row's
    identity and ``n``. Every call must draw one value per row (``size`` equal to
    the number of rows), which keeps the draws aligned whatever the grouping of rows.

    Args:
        key: Output of ``counter_key``.
        card: Card index of each row.
        slot: Payment number of each row within its card's day, or ``CARD_SLOT``.
        day: Day index of each row.
    """

    def __init__(
        self,
        key: int,
        card: np.ndarray,
        slot: np.ndarray | int,
        day: np.ndarray | int,
    ) -> None:
        card = np.asarray(card, np.uint64)
        slot = np.asarray(slot, np.uint64)
        day = np.asarray(day, np.int64)
        # Days repeat across rows: mix each distinct day once and look it up.
        first = int(day.min()) if day.size else 0
        span = np.arange(first, int(day.max()) + 1 if day.size else first + 1)
        day_keys = _mix(span.astype(np.uint64) * _DAY_MULTIPLIER + np.uint64(key))
        day_key = day_keys[day - first]
        self._base = _mix(_mix(card * _GOLDEN + day_key) ^ (slot * _SLOT_MULTIPLIER))
        self._count = 0
        self._size = len(card)

    def __len__(self) -> int:
        return self._size

    def _next_words(self, size: int | tuple[int, ...] | None) -> np.ndarray:
        if size is not None and size != self._size:
            raise ValueError(
                f"counter draws produce one value per row ({self._size}), "
                f"got size {size}"
            )
        self._count += 1
        offset = np.uint64((self._count * 0x9E3779B97F4A7C15) & _MASK64)
        return _mix(self._base + offset)

    def random(self, size: int | None = None) -> np.ndarray:
        """Return uniform floats in [0, 1), one per row."""
        return (self._next_words(size) >> np.uint64(11)).astype(np.float64) * _TO_UNIT

    def integers(self, low: int, high: int, size: int | None = None) -> np.ndarray:
        """Return integers uniform in ``[low, high)``, one per row, int64."""
        span = high - low
        return low + (self.random(size) * span).astype(np.int64)

    def standard_normal(self, size: int | None = None) -> np.ndarray:
        """Return standard normal floats, one per row (Box-Muller on two uniforms)."""
        radius = np.sqrt(-2.0 * np.log1p(-self.random(size)))
        return radius * np.cos(2.0 * np.pi * self.random(size))

    def poisson(self, lam: np.ndarray) -> np.ndarray:
        """Return Poisson counts with means ``lam``, one per row, by inversion."""
        lam = np.asarray(lam, np.float64)
        uniform = self.random(len(lam))
        count = np.zeros(len(lam), np.int64)
        probability = np.exp(-lam)
        # Most means are small: only rows past the first step stay in the loop.
        active = np.flatnonzero(uniform >= probability)
        uniform, rate = uniform[active], lam[active]
        probability = probability[active]
        cumulative = probability.copy()
        for k in range(1, MAX_POISSON_STEPS + 1):
            count[active] += 1
            probability = probability * rate / k
            cumulative = cumulative + probability
            going = uniform >= cumulative
            if not going.any():
                break
            active, uniform, rate = active[going], uniform[going], rate[going]
            probability, cumulative = probability[going], cumulative[going]
        return count
