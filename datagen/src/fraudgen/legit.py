"""Legitimate payments of a run of days, drawn card shard by card shard."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from fraudgen import catalogue
from fraudgen.blocks import (
    NO_DEVICE,
    Block,
    amount_eur,
    draw_channels,
    hours_on_days,
    make_block,
    new_device_ids,
    pick_terminal,
    time_in_hour,
    to_minor_units,
)
from fraudgen.config import GeneratorConfig, PopulationConfig
from fraudgen.entities import FAVOURITE_WEIGHTS, Population
from fraudgen.rng import CARD_SLOT, CounterDraws, Draws, counter_key
from fraudgen.seasonality import day_factor, day_start_us

# Cards drawn per vectorised step unless the caller chooses another shard size.
DEFAULT_SHARD_CARDS = 65_536
FAVOURITE_CUM = np.cumsum(FAVOURITE_WEIGHTS) / FAVOURITE_WEIGHTS.sum()
FAVOURITE_CUM[-1] = 1.0


def legitimate_days(
    population: Population,
    config: GeneratorConfig,
    day_indices: list[int],
    *,
    shard_cards: int = DEFAULT_SHARD_CARDS,
) -> list[Block]:
    """Draw every legitimate payment of the given days, one block per day.

    Cards are drawn ``shard_cards`` at a time, for all the days at once. A day's
    rows come card by card in index order, and each card's payments in their
    order of drawing. The draws are counter-based (``CounterDraws``), so the rows
    do not depend on ``shard_cards`` or on which days are drawn together.

    Args:
        population: Entities of the data set.
        config: Validated configuration.
        day_indices: Day indices from the first day, 0-based, in increasing order.
        shard_cards: Cards drawn per vectorised step; bounds the working memory.
    """
    key = counter_key(config.seed, "legitimate")
    per_day: list[list[Block]] = [[] for _ in day_indices]
    days = np.asarray(day_indices, np.int64)
    for first in range(0, population.n_cards, shard_cards):
        cards = np.arange(first, min(first + shard_cards, population.n_cards))
        block, day_position = legitimate_cards(
            population, config, key=key, days=days, cards=cards
        )
        bounds = np.searchsorted(day_position, np.arange(len(days) + 1))
        for position in range(len(days)):
            rows = np.arange(bounds[position], bounds[position + 1])
            per_day[position].append(block.take(rows))
    return [Block.concat(blocks) for blocks in per_day]


def legitimate_cards(
    population: Population,
    config: GeneratorConfig,
    *,
    key: int,
    days: np.ndarray,
    cards: np.ndarray,
) -> tuple[Block, np.ndarray]:
    """Draw the legitimate payments of ``cards`` on each of ``days``.

    Each card makes a Poisson number of payments a day, with mean equal to its
    daily rate times the day's calendar factor (and a segment's volume multiplier
    while a shift is in force).

    Returns:
        The rows, day by day, then card by card within a day, and each row's
        position in ``days``.
    """
    settings = config.population
    dates = [config.start + timedelta(days=int(index)) for index in days]
    pair_day = np.repeat(np.arange(len(days)), len(cards))
    pair_card = np.tile(cards, len(days))
    factor = np.array([day_factor(day) for day in dates])
    rate = population.card_daily_rate[pair_card] * factor[pair_day]
    shift_start = _shift_starts(config, days)
    shifted = bool(config.drift.segment_shifts)
    if shifted:
        pair_customer = population.card_customer[pair_card]
        rate = rate * _segment_factor(
            population, config, pair_customer, pair_day, shift_start, "volume"
        )
    counts = CounterDraws(key, pair_card, CARD_SLOT, days[pair_day]).poisson(rate)
    card = np.repeat(pair_card, counts)
    day_position = np.repeat(pair_day, counts)
    first_row = np.cumsum(counts) - counts
    slot = np.arange(len(card)) - np.repeat(first_row, counts)
    rng = CounterDraws(key, card, slot, days[day_position])
    customer = population.card_customer[card]
    starts = np.array([day_start_us(day) for day in dates], np.int64)[day_position]
    channel = draw_channels(rng, population, customer)
    merchant = _draw_merchants(rng, population, settings, customer, channel)
    eur = amount_eur(rng, population, merchant=merchant, customer=customer)
    hour = hours_on_days(rng, population, customer=customer, day_start_us=starts)
    if shifted:
        eur = eur * _segment_factor(
            population, config, customer, day_position, shift_start, "amount"
        )
        extra_hours = _segment_factor(
            population, config, customer, day_position, shift_start, "hours"
        )
        hour = (hour + extra_hours) % 24
    device = _draw_devices(rng, population, settings, customer, channel)
    block = make_block(
        timestamp_us=time_in_hour(rng, day_start_us=starts, hour=hour.astype(np.int64)),
        card=card,
        merchant=merchant,
        terminal=pick_terminal(rng, population, merchant),
        channel=channel,
        amount_minor=to_minor_units(population, merchant=merchant, eur=eur),
        device=device,
    )
    return block, day_position


def _shift_starts(config: GeneratorConfig, days: np.ndarray) -> list[np.ndarray]:
    """Return, per segment shift, which of ``days`` it is in force on (bool)."""
    return [
        days >= (shift.start - config.start).days
        for shift in config.drift.segment_shifts
    ]


def _segment_factor(
    population: Population,
    config: GeneratorConfig,
    customer: np.ndarray,
    day_position: np.ndarray,
    in_force: list[np.ndarray],
    kind: str,
) -> np.ndarray | float:
    """Return each row's volume or amount multiplier, or its extra hours.

    Multipliers of shifts in force multiply; hour shifts add up.
    """
    total: np.ndarray | float = 0.0 if kind == "hours" else 1.0
    for shift, active in zip(config.drift.segment_shifts, in_force, strict=True):
        value = {
            "volume": shift.volume_multiplier,
            "amount": shift.amount_multiplier,
            "hours": shift.hour_shift,
        }[kind]
        segment = catalogue.SEGMENTS.index(shift.segment)
        hit = (population.customer_segment[customer] == segment) & active[day_position]
        if kind == "hours":
            total = total + np.where(hit, value, 0)
        else:
            total = total * np.where(hit, value, 1.0)
    return total


def _draw_merchants(
    rng: Draws,
    population: Population,
    settings: PopulationConfig,
    customer: np.ndarray,
    channel: np.ndarray,
) -> np.ndarray:
    """Choose a merchant for each payment from the customer's habits and channel.

    Card-present payments go mostly to the customer's favourite local shops, some
    to other local shops and a few to shops in a travel destination. Online payments
    go mostly to favourite web shops. Withdrawals use the customer's usual ATMs,
    or an ATM in the travel destination.
    """
    size = len(customer)
    route = rng.random(size)
    travel_draw = rng.random(size)
    favourite_draw = rng.random(size)
    other_shop_draw = rng.random(size)
    favourite_web_draw = rng.random(size)
    other_web_draw = rng.random(size)
    web_explore = rng.random(size) < settings.online_explore_share
    atm_slot_draw = rng.random(size)
    other_atm_draw = rng.random(size)

    travelling = route < settings.travel_share
    exploring = ~travelling & (
        route < settings.travel_share + settings.local_explore_share
    )
    merchant = np.empty(size, np.int64)
    online = np.flatnonzero(channel == catalogue.ECOMMERCE)
    at_atm = np.flatnonzero(channel == catalogue.ATM_CHANNEL)
    in_person = np.flatnonzero(
        (channel != catalogue.ECOMMERCE) & (channel != catalogue.ATM_CHANNEL)
    )
    city = population.customer_city[customer]
    away = np.flatnonzero(travelling)
    city[away] = np.searchsorted(
        population.travel_city_cum, travel_draw[away], side="right"
    )

    # Shops: favourites, or another shop in the city for explorers and travellers.
    rows = in_person
    other = travelling[rows] | exploring[rows]
    rank = np.searchsorted(FAVOURITE_CUM, favourite_draw[rows], side="right")
    favourite = population.favourite_physical[customer[rows], np.minimum(rank, 9)]
    start = population.physical_start[city[rows]]
    count = population.physical_count[city[rows]]
    other_shop = start + (other_shop_draw[rows] * count).astype(np.int64)
    merchant[rows] = np.where(other, other_shop, favourite)

    # Web shops: favourites, or a shop drawn by popularity.
    rows = online
    rank = np.searchsorted(FAVOURITE_CUM, favourite_web_draw[rows], side="right")
    width = population.favourite_online.shape[1]
    favourite = population.favourite_online[customer[rows], np.minimum(rank, width - 1)]
    popular = population.online_merchants[
        np.searchsorted(population.online_cum, other_web_draw[rows], side="right")
    ]
    merchant[rows] = np.where(web_explore[rows], popular, favourite)

    # Cash machines: the usual ones, or one in the travel destination.
    rows = at_atm
    width = population.favourite_atms.shape[1]
    usual = population.favourite_atms[
        customer[rows], (atm_slot_draw[rows] * width).astype(np.int64)
    ]
    start = population.atm_start[city[rows]]
    count = population.atm_count[city[rows]]
    other_atm = start + (other_atm_draw[rows] * count).astype(np.int64)
    merchant[rows] = np.where(travelling[rows], other_atm, usual)
    return merchant


def _draw_devices(
    rng: Draws,
    population: Population,
    settings: PopulationConfig,
    customer: np.ndarray,
    channel: np.ndarray,
) -> np.ndarray:
    size = len(customer)
    slot = (rng.random(size) * population.customer_device_count[customer]).astype(
        np.int64
    )
    device = population.customer_devices[customer, slot]
    fresh = rng.random(size) < settings.new_device_share
    device = np.where(fresh, new_device_ids(rng, size), device)
    return np.where(channel == catalogue.ECOMMERCE, device, NO_DEVICE)
