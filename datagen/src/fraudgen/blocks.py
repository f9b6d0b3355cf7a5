"""Transactions as parallel numpy arrays, and draws shared by every kind of payment."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from fraudgen import catalogue
from fraudgen.entities import (
    CATEGORY_MEDIAN_EUR,
    CATEGORY_SIGMA,
    CITY_COUNTRY,
    COUNTRY_UNITS_PER_EUR,
    DEVICE_ID_HIGH,
    DEVICE_ID_LOW,
    Population,
)
from fraudgen.rng import Draws
from fraudgen.seasonality import MICROS_PER_DAY, MICROS_PER_HOUR

NO_DEVICE = 0
NO_SCENARIO = -1
NO_LABEL = -1
ATM_STEP_UNITS = 10


@dataclass(frozen=True)
class Block:
    """Transactions as parallel arrays of equal length.

    Attributes:
        timestamp_us: Authorisation time, µs since the Unix epoch (UTC), int64.
        card: Card index into the population, int64.
        merchant: Merchant index, int64.
        terminal: Terminal index, int64.
        channel: Index into ``catalogue.CHANNELS``, int8.
        amount_minor: Amount in minor units of the merchant's currency, int64, > 0.
        device: Device number, int64; ``NO_DEVICE`` for card-present payments.
        scenario: Index into ``config.SCENARIOS``, int8; ``NO_SCENARIO`` if legitimate.
        label_us: Label arrival, microseconds since the epoch, int64; ``NO_LABEL``
            if legitimate.
    """

    timestamp_us: np.ndarray
    card: np.ndarray
    merchant: np.ndarray
    terminal: np.ndarray
    channel: np.ndarray
    amount_minor: np.ndarray
    device: np.ndarray
    scenario: np.ndarray
    label_us: np.ndarray

    def __len__(self) -> int:
        return len(self.timestamp_us)

    def take(self, index: np.ndarray) -> Block:
        """Return the rows at ``index`` (integer positions or a boolean mask)."""
        return Block(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def concat(blocks: list[Block]) -> Block:
        """Return the rows of ``blocks`` one after another."""
        if not blocks:
            return Block.empty()
        return Block(
            **{
                f.name: np.concatenate([getattr(block, f.name) for block in blocks])
                for f in fields(Block)
            }
        )

    @staticmethod
    def empty() -> Block:
        """Return a block without rows."""
        return Block(
            timestamp_us=np.empty(0, np.int64),
            card=np.empty(0, np.int64),
            merchant=np.empty(0, np.int64),
            terminal=np.empty(0, np.int64),
            channel=np.empty(0, np.int8),
            amount_minor=np.empty(0, np.int64),
            device=np.empty(0, np.int64),
            scenario=np.empty(0, np.int8),
            label_us=np.empty(0, np.int64),
        )


def make_block(
    *,
    timestamp_us: np.ndarray,
    card: np.ndarray,
    merchant: np.ndarray,
    terminal: np.ndarray,
    channel: np.ndarray,
    amount_minor: np.ndarray,
    device: np.ndarray,
    scenario: int | np.ndarray = NO_SCENARIO,
    label_us: np.ndarray | None = None,
) -> Block:
    """Build a block with the canonical dtypes, broadcasting a scalar ``scenario``."""
    size = len(timestamp_us)
    return Block(
        timestamp_us=np.asarray(timestamp_us, np.int64),
        card=np.asarray(card, np.int64),
        merchant=np.asarray(merchant, np.int64),
        terminal=np.asarray(terminal, np.int64),
        channel=np.broadcast_to(np.asarray(channel, np.int8), size).copy(),
        amount_minor=np.asarray(amount_minor, np.int64),
        device=np.broadcast_to(np.asarray(device, np.int64), size).copy(),
        scenario=np.broadcast_to(np.asarray(scenario, np.int8), size).copy(),
        label_us=(
            np.full(size, NO_LABEL, np.int64)
            if label_us is None
            else np.asarray(label_us, np.int64)
        ),
    )


def amount_eur(
    rng: Draws,
    population: Population,
    *,
    merchant: np.ndarray,
    customer: np.ndarray,
) -> np.ndarray:
    """Draw amounts in euros from the merchant category and the customer's segment."""
    category = population.merchant_category[merchant]
    median = CATEGORY_MEDIAN_EUR[category] * population.customer_scale[customer]
    return median * np.exp(
        CATEGORY_SIGMA[category] * rng.standard_normal(len(merchant))
    )


def to_minor_units(
    population: Population, *, merchant: np.ndarray, eur: np.ndarray
) -> np.ndarray:
    """Convert euro amounts to minor units of each merchant's currency, int64 >= 1.

    ATM withdrawals are rounded to multiples of 10 units of the local currency.
    """
    local = eur * COUNTRY_UNITS_PER_EUR[population.merchant_country[merchant]]
    is_atm = population.merchant_kind[merchant] == catalogue.ATM
    rounded = np.maximum(
        ATM_STEP_UNITS, np.rint(local / ATM_STEP_UNITS) * ATM_STEP_UNITS
    )
    local = np.where(is_atm, rounded, local)
    return np.maximum(1, np.rint(local * 100)).astype(np.int64)


def pick_terminal(
    rng: Draws, population: Population, merchant: np.ndarray
) -> np.ndarray:
    """Draw one of each merchant's terminals, uniformly, int64."""
    count = population.merchant_terminal_count[merchant]
    offset = (rng.random(len(merchant)) * count).astype(np.int64)
    return population.merchant_terminal_start[merchant] + offset


def pick_in_range(rng: Draws, start: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Draw uniformly from the index ranges ``[start, start + count)``, int64."""
    return start + (rng.random(len(start)) * count).astype(np.int64)


def pick_online(rng: Draws, population: Population, size: int) -> np.ndarray:
    """Draw online shops by popularity, int64."""
    position = np.searchsorted(population.online_cum, rng.random(size), side="right")
    return population.online_merchants[position]


def pick_fraud_online(
    rng: Draws,
    population: Population,
    *,
    home_country: np.ndarray,
    outside_eea: float,
    domestic: float,
) -> np.ndarray:
    """Draw web shops for fraudulent payments, one per entry of ``home_country``.

    A shop is outside the EEA with probability ``outside_eea``, in the card's home
    country with probability ``domestic``, and otherwise drawn by popularity. A
    draw without a candidate shop (no shop outside the EEA, or none in the home
    country) falls back to popularity.

    Returns:
        Merchant indices, int64.
    """
    size = len(home_country)
    choice = rng.random(size)
    shop = pick_online(rng, population, size)
    foreign_shops = population.online_outside_eea
    if len(foreign_shops) > 0:
        foreign = foreign_shops[rng.integers(0, len(foreign_shops), size)]
        shop = np.where(choice < outside_eea, foreign, shop)
    count = population.online_country_count[home_country]
    position = population.online_country_start[home_country] + (
        rng.random(size) * count
    ).astype(np.int64)
    position = np.minimum(position, len(population.online_by_country) - 1)
    home = population.online_by_country[position]
    at_home = (choice >= outside_eea) & (choice < outside_eea + domestic) & (count > 0)
    return np.where(at_home, home, shop)


def pick_travel_city(rng: Draws, population: Population, size: int) -> np.ndarray:
    """Draw destination cities of trips, weighted by tourism, int64."""
    return np.searchsorted(population.travel_city_cum, rng.random(size), side="right")


def pick_foreign_city(
    rng: Draws, population: Population, home_country: np.ndarray
) -> np.ndarray:
    """Draw cities outside ``home_country``, weighted by tourism, int64.

    Draws that land in the home country are redrawn up to eight times; the rare
    draw that still lands there is kept.
    """
    city = pick_travel_city(rng, population, len(home_country))
    for _ in range(8):
        same = CITY_COUNTRY[city] == home_country
        if not same.any():
            break
        city[same] = pick_travel_city(rng, population, int(same.sum()))
    return city


def new_device_ids(rng: Draws, size: int) -> np.ndarray:
    """Draw device numbers of devices never seen before, int64."""
    return rng.integers(DEVICE_ID_LOW, DEVICE_ID_HIGH, size=size)


def time_in_hour(
    rng: Draws, *, day_start_us: np.ndarray | int, hour: np.ndarray
) -> np.ndarray:
    """Return timestamps at a uniform instant of ``hour`` on each day, int64 µs."""
    within = rng.integers(0, MICROS_PER_HOUR, size=len(hour))
    return day_start_us + hour.astype(np.int64) * MICROS_PER_HOUR + within


def floor_to_day(timestamp_us: np.ndarray) -> np.ndarray:
    """Return midnight UTC of each timestamp's day, int64 µs."""
    return timestamp_us - timestamp_us % MICROS_PER_DAY


def draw_channels(
    rng: Draws, population: Population, customer: np.ndarray
) -> np.ndarray:
    """Draw each payment's channel from its customer's channel shares, int8."""
    cumulative = population.customer_channel_cum[customer]
    draw = rng.random(len(customer))
    return (draw[:, None] >= cumulative[:, :-1]).sum(axis=1).astype(np.int8)


def hours_on_days(
    rng: Draws,
    population: Population,
    *,
    customer: np.ndarray,
    day_start_us: np.ndarray,
) -> np.ndarray:
    """Draw payment hours on the given days from each customer's own profile."""
    # 1970-01-01 was a Thursday, so (days since epoch + 3) % 7 is the ISO weekday - 1.
    weekend = ((day_start_us // MICROS_PER_DAY + 3) % 7 >= 5).astype(np.int64)
    draw = rng.random(len(customer))
    # Weekend draws are shifted by 1 into the second half of one joined table.
    position = np.searchsorted(_HOURLY_TABLE, draw + weekend, "right")
    hour = np.minimum(position - 24 * weekend, 23)
    return (hour + population.customer_hour_shift[customer]) % 24


def _cumulative(weights: np.ndarray) -> np.ndarray:
    cumulative = np.cumsum(weights) / weights.sum()
    cumulative[-1] = 1.0
    return cumulative


_HOURLY_TABLE = np.concatenate(
    [_cumulative(catalogue.HOURLY_WEEKDAY), 1.0 + _cumulative(catalogue.HOURLY_WEEKEND)]
)
