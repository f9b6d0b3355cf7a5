"""A per-row Python implementation of the legitimate-payment logic, for benchmarks.

``generate_reference`` draws every legitimate payment one at a time with Python's
``random`` module, following the same rules as the vectorised generator (daily
Poisson counts per card, channel shares per customer, favourite and exploring
shops, travel, log-normal amounts, hour profiles, devices), adds the same fraud
plan, and writes one parquet file a day. It is the straightforward way to write a
payment simulator, as in loop-based public simulators, and exists so that the
benchmark compares the vectorised generator with it on equal output. Its random
numbers differ from the vectorised generator's, so its rows differ too; tests check
that both follow the same distributions.
"""

from __future__ import annotations

import bisect
import math
import random
from datetime import timedelta
from pathlib import Path

import numpy as np

from fraudgen import catalogue
from fraudgen.blocks import ATM_STEP_UNITS, NO_DEVICE, Block, make_block
from fraudgen.config import GeneratorConfig
from fraudgen.entities import (
    CATEGORY_MEDIAN_EUR,
    CATEGORY_SIGMA,
    COUNTRY_UNITS_PER_EUR,
    DEVICE_ID_HIGH,
    DEVICE_ID_LOW,
    build_population,
)
from fraudgen.frame import order_day, to_frame
from fraudgen.legit import FAVOURITE_CUM
from fraudgen.rng import stream
from fraudgen.scenarios import plan_fraud
from fraudgen.seasonality import MICROS_PER_DAY, MICROS_PER_HOUR, day_factor
from fraudgen.seasonality import day_start_us as midnight_us


def _cumulative(weights: list[float]) -> list[float]:
    total = sum(weights)
    running, out = 0.0, []
    for weight in weights:
        running += weight
        out.append(running / total)
    out[-1] = 1.0
    return out


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's multiplication method, fine for the small daily means of cards."""
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def generate_reference(config: GeneratorConfig, out: str | Path) -> int:
    """Write the data set of ``config`` to ``out`` row by row; return the row count.

    Files are ``dt=YYYY-MM-DD/part-0.parquet`` in the canonical schema, without a
    manifest.
    """
    out = Path(out)
    population = build_population(config)
    plan = plan_fraud(population, config)
    settings = config.population
    rng = random.Random(config.seed)
    hour_cum = {
        False: _cumulative(catalogue.HOURLY_WEEKDAY.tolist()),
        True: _cumulative(catalogue.HOURLY_WEEKEND.tolist()),
    }
    favourite_cum = [float(x) for x in FAVOURITE_CUM]
    # Plain Python lists: the per-row loop reads them one element at a time.
    rate = population.card_daily_rate.tolist()
    card_customer = population.card_customer.tolist()
    home_city = population.customer_city.tolist()
    channel_cum = population.customer_channel_cum.tolist()
    favourite_physical = population.favourite_physical.tolist()
    favourite_online = population.favourite_online.tolist()
    favourite_atms = population.favourite_atms.tolist()
    hour_shift = population.customer_hour_shift.tolist()
    scale = population.customer_scale.tolist()
    devices = population.customer_devices.tolist()
    device_count = population.customer_device_count.tolist()
    physical_start = population.physical_start.tolist()
    physical_count = population.physical_count.tolist()
    atm_start = population.atm_start.tolist()
    atm_count = population.atm_count.tolist()
    online_merchants = population.online_merchants.tolist()
    online_cum = population.online_cum.tolist()
    travel_cum = population.travel_city_cum.tolist()
    category = population.merchant_category.tolist()
    units_per_eur = COUNTRY_UNITS_PER_EUR[population.merchant_country].tolist()
    is_atm = (population.merchant_kind == catalogue.ATM).tolist()
    terminal_start = population.merchant_terminal_start.tolist()
    terminal_count = population.merchant_terminal_count.tolist()
    median_eur = CATEGORY_MEDIAN_EUR.tolist()
    sigma = CATEGORY_SIGMA.tolist()

    total = 0
    plan_day = (plan.rows.timestamp_us - midnight_us(config.start)) // MICROS_PER_DAY
    for day_index in range(config.n_days):
        day = config.start + timedelta(days=day_index)
        factor = day_factor(day)
        start_us = midnight_us(day)
        cum_hours = hour_cum[day.weekday() >= 5]
        rows: dict[str, list[int]] = {
            name: [] for name in ("timestamp_us", "card", "merchant", "terminal")
        }
        rows.update(channel=[], amount_minor=[], device=[])
        for card in range(population.n_cards):
            customer = card_customer[card]
            for _ in range(_poisson(rng, rate[card] * factor)):
                channel = bisect.bisect_right(channel_cum[customer], rng.random())
                channel = min(channel, len(catalogue.CHANNELS) - 1)
                route = rng.random()
                travelling = route < settings.travel_share
                exploring = not travelling and (
                    route < settings.travel_share + settings.local_explore_share
                )
                city = home_city[customer]
                if travelling:
                    city = bisect.bisect_right(travel_cum, rng.random())
                if channel == catalogue.ECOMMERCE:
                    if rng.random() < settings.online_explore_share:
                        position = bisect.bisect_right(online_cum, rng.random())
                        merchant = online_merchants[position]
                    else:
                        rank = bisect.bisect_right(favourite_cum, rng.random())
                        merchant = favourite_online[customer][min(rank, 5)]
                elif channel == catalogue.ATM_CHANNEL:
                    if travelling:
                        offset = int(rng.random() * atm_count[city])
                        merchant = atm_start[city] + offset
                    else:
                        merchant = favourite_atms[customer][rng.randrange(2)]
                elif travelling or exploring:
                    offset = int(rng.random() * physical_count[city])
                    merchant = physical_start[city] + offset
                else:
                    rank = bisect.bisect_right(favourite_cum, rng.random())
                    merchant = favourite_physical[customer][min(rank, 9)]
                code = category[merchant]
                eur = (
                    median_eur[code]
                    * scale[customer]
                    * math.exp(sigma[code] * rng.gauss(0.0, 1.0))
                )
                local = eur * units_per_eur[merchant]
                if is_atm[merchant]:
                    local = max(
                        ATM_STEP_UNITS, round(local / ATM_STEP_UNITS) * ATM_STEP_UNITS
                    )
                hour = bisect.bisect_right(cum_hours, rng.random())
                hour = (min(hour, 23) + hour_shift[customer]) % 24
                device = NO_DEVICE
                if channel == catalogue.ECOMMERCE:
                    device = devices[customer][
                        int(rng.random() * device_count[customer])
                    ]
                    if rng.random() < settings.new_device_share:
                        device = rng.randrange(DEVICE_ID_LOW, DEVICE_ID_HIGH)
                terminal = terminal_start[merchant] + int(
                    rng.random() * terminal_count[merchant]
                )
                rows["timestamp_us"].append(
                    start_us + hour * MICROS_PER_HOUR + rng.randrange(MICROS_PER_HOUR)
                )
                rows["card"].append(card)
                rows["merchant"].append(merchant)
                rows["terminal"].append(terminal)
                rows["channel"].append(channel)
                rows["amount_minor"].append(max(1, round(local * 100)))
                rows["device"].append(device)
        legitimate = make_block(
            **{name: np.array(values, np.int64) for name, values in rows.items()}
        )
        planned = plan.rows.take(plan_day == day_index)
        block = order_day(
            Block.concat([legitimate, planned]),
            stream(config.seed, "ordering", day_index),
        )
        frame = to_frame(population, block, days=[day], counts=[len(block)])
        path = out / f"dt={day:%Y-%m-%d}" / "part-0.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(path, compression="zstd", compression_level=1)
        total += frame.height
    return total
