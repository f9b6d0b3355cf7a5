"""Legitimate payments of one day, drawn for every card at once."""

from __future__ import annotations

from datetime import date

import numpy as np

from fraudgen import catalogue
from fraudgen.blocks import (
    NO_DEVICE,
    Block,
    amount_eur,
    customer_hours,
    draw_channels,
    make_block,
    new_device_ids,
    pick_in_range,
    pick_online,
    pick_terminal,
    pick_travel_city,
    time_in_hour,
    to_minor_units,
)
from fraudgen.config import PopulationConfig
from fraudgen.entities import FAVOURITE_WEIGHTS, Population
from fraudgen.rng import stream
from fraudgen.seasonality import day_factor, day_start_us, hour_cumulative

FAVOURITE_CUM = np.cumsum(FAVOURITE_WEIGHTS) / FAVOURITE_WEIGHTS.sum()
FAVOURITE_CUM[-1] = 1.0


def legitimate_day(
    population: Population,
    settings: PopulationConfig,
    *,
    seed: int,
    day_index: int,
    day: date,
) -> Block:
    """Draw every legitimate payment of ``day``, in no particular order.

    Each card makes a Poisson number of payments with mean equal to its daily rate
    times the day's calendar factor. The draws use the ``legitimate`` stream of
    ``day_index`` only.
    """
    rng = stream(seed, "legitimate", day_index)
    counts = rng.poisson(population.card_daily_rate * day_factor(day))
    card = np.repeat(np.arange(population.n_cards, dtype=np.int64), counts)
    customer = population.card_customer[card]
    channel = draw_channels(rng, population, customer)
    merchant = _draw_merchants(rng, population, settings, customer, channel)
    eur = amount_eur(rng, population, merchant=merchant, customer=customer)
    hour = customer_hours(
        rng, population, customer=customer, hour_cum=hour_cumulative(day)
    )
    device = _draw_devices(rng, population, settings, customer, channel)
    return make_block(
        timestamp_us=time_in_hour(rng, day_start_us=day_start_us(day), hour=hour),
        card=card,
        merchant=merchant,
        terminal=pick_terminal(rng, population, merchant),
        channel=channel,
        amount_minor=to_minor_units(population, merchant=merchant, eur=eur),
        device=device,
    )


def _pick_favourite(rng: np.random.Generator, favourites: np.ndarray) -> np.ndarray:
    rank = np.searchsorted(FAVOURITE_CUM, rng.random(len(favourites)), side="right")
    rank = np.minimum(rank, favourites.shape[1] - 1)
    return favourites[np.arange(len(favourites)), rank]


def _draw_merchants(
    rng: np.random.Generator,
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
    home = population.customer_city[customer]
    route = rng.random(size)
    travelling = route < settings.travel_share
    exploring = ~travelling & (
        route < settings.travel_share + settings.local_explore_share
    )
    city = np.where(travelling, pick_travel_city(rng, population, size), home)

    favourite = _pick_favourite(rng, population.favourite_physical[customer])
    other_shop = pick_in_range(
        rng, population.physical_start[city], population.physical_count[city]
    )
    physical = np.where(travelling | exploring, other_shop, favourite)

    favourite_web = _pick_favourite(rng, population.favourite_online[customer])
    other_web = pick_online(rng, population, size)
    web_explore = rng.random(size) < settings.online_explore_share
    online = np.where(web_explore, other_web, favourite_web)

    usual_atm = population.favourite_atms[
        customer, rng.integers(0, population.favourite_atms.shape[1], size)
    ]
    other_atm = pick_in_range(
        rng, population.atm_start[city], population.atm_count[city]
    )
    atm = np.where(travelling, other_atm, usual_atm)

    return np.select(
        [channel == catalogue.ECOMMERCE, channel == catalogue.ATM_CHANNEL],
        [online, atm],
        physical,
    )


def _draw_devices(
    rng: np.random.Generator,
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
