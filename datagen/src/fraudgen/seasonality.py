"""Calendar effects on payment volume: weekdays, paydays, December and hour of day."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

from fraudgen import catalogue

MICROS_PER_SECOND = 1_000_000
MICROS_PER_HOUR = 3600 * MICROS_PER_SECOND
MICROS_PER_DAY = 24 * MICROS_PER_HOUR
EPOCH = date(1970, 1, 1)


def day_start_us(day: date) -> int:
    """Return midnight UTC of ``day`` in microseconds since the Unix epoch."""
    return (day - EPOCH).days * MICROS_PER_DAY


def day_factor(day: date) -> float:
    """Return the payment volume factor of ``day`` relative to an average Thursday."""
    factor = float(catalogue.WEEKDAY_FACTORS[day.weekday()])
    if day.day in catalogue.PAYDAY_DAYS:
        factor *= catalogue.PAYDAY_FACTOR
    if day.month == 12:
        factor *= catalogue.DECEMBER_FACTOR
    return factor


def day_factors(start: date, n_days: int) -> np.ndarray:
    """Return the volume factor of each day from ``start``, float64 of length n_days."""
    return np.array([day_factor(start + timedelta(days=i)) for i in range(n_days)])


def hour_cumulative(day: date) -> np.ndarray:
    """Return the cumulative hour-of-day distribution of ``day``, float64 of length 24.

    The last value is exactly 1.0, so ``searchsorted(cum, u, side="right")`` maps a
    uniform draw ``u`` in [0, 1) to an hour from 0 to 23.
    """
    weekend = day.weekday() >= 5
    weights = catalogue.HOURLY_WEEKEND if weekend else catalogue.HOURLY_WEEKDAY
    cumulative = np.cumsum(weights) / weights.sum()
    cumulative[-1] = 1.0
    return cumulative
