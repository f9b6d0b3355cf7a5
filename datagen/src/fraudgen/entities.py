"""The synthetic population: customers, cards, merchants, terminals and devices.

Entities are numpy arrays indexed by position; ids are strings built once per
population. Every draw comes from the ``population`` stream, so the population
depends only on the seed and the configuration.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from fraudgen import catalogue
from fraudgen.config import GeneratorConfig
from fraudgen.rng import stream
from fraudgen.seasonality import day_factors

logger = logging.getLogger(__name__)

FAVOURITE_PHYSICAL = 10
FAVOURITE_ONLINE = 6
FAVOURITE_ATMS = 2
MAX_DEVICES = 3
# Device ids are 16-digit numbers, drawn at random so that no id reveals when or
# why its device appeared.
DEVICE_ID_LOW = 10**15
DEVICE_ID_HIGH = 10**16

CITY_LAT = np.array([city.lat for city in catalogue.CITIES])
CITY_LON = np.array([city.lon for city in catalogue.CITIES])
CITY_WEIGHT = np.array([city.weight for city in catalogue.CITIES])
CITY_ISSUER = np.array([city.issuer for city in catalogue.CITIES])
COUNTRIES = tuple(sorted({city.country for city in catalogue.CITIES}))
CITY_COUNTRY = np.array([COUNTRIES.index(city.country) for city in catalogue.CITIES])
COUNTRY_IN_EEA = np.array([code in catalogue.EEA_COUNTRIES for code in COUNTRIES])
CURRENCIES = tuple(catalogue.CURRENCY_BY_COUNTRY[code] for code in COUNTRIES)
COUNTRY_UNITS_PER_EUR = np.array([catalogue.UNITS_PER_EUR[c] for c in CURRENCIES])
CATEGORY_KIND = np.array([category.kind for category in catalogue.CATEGORIES])
CATEGORY_MEDIAN_EUR = np.array([c.median_eur for c in catalogue.CATEGORIES])
CATEGORY_SIGMA = np.array([category.sigma for category in catalogue.CATEGORIES])
CATEGORY_WEIGHT = np.array([category.weight for category in catalogue.CATEGORIES])
# Share of a customer's favourite web shops that trade from the customer's own country.
DOMESTIC_ONLINE_FAVOURITE_SHARE = 0.8
# Within a customer's favourites, the k-th favourite is chosen with weight 1/(k+1)^1.1.
FAVOURITE_WEIGHTS = 1.0 / np.arange(1, FAVOURITE_PHYSICAL + 1) ** 1.1


@dataclass(frozen=True)
class Population:
    """Every entity of one generated data set, as parallel numpy arrays.

    Customer arrays have one row per customer, card arrays one per card, merchant
    arrays one per merchant (physical shops first, grouped by city, then online
    shops, then ATMs grouped by city). City and country values are indices into
    ``catalogue.CITIES`` and ``COUNTRIES``.
    """

    customer_city: np.ndarray
    customer_country: np.ndarray
    customer_lat: np.ndarray
    customer_lon: np.ndarray
    customer_scale: np.ndarray
    customer_segment: np.ndarray
    customer_hour_shift: np.ndarray
    customer_channel_cum: np.ndarray
    customer_devices: np.ndarray
    customer_device_count: np.ndarray
    favourite_physical: np.ndarray
    favourite_online: np.ndarray
    favourite_atms: np.ndarray
    card_customer: np.ndarray
    card_daily_rate: np.ndarray
    cards_by_city: np.ndarray
    cards_by_city_start: np.ndarray
    cards_by_city_count: np.ndarray
    merchant_kind: np.ndarray
    merchant_city: np.ndarray
    merchant_country: np.ndarray
    merchant_category: np.ndarray
    merchant_lat: np.ndarray
    merchant_lon: np.ndarray
    merchant_terminal_start: np.ndarray
    merchant_terminal_count: np.ndarray
    physical_start: np.ndarray
    physical_count: np.ndarray
    atm_start: np.ndarray
    atm_count: np.ndarray
    online_merchants: np.ndarray
    online_cum: np.ndarray
    online_by_country: np.ndarray
    online_country_start: np.ndarray
    online_country_count: np.ndarray
    online_outside_eea: np.ndarray
    travel_city_cum: np.ndarray
    card_ids: pl.Series
    customer_ids: pl.Series
    merchant_ids: pl.Series
    terminal_ids: pl.Series

    @property
    def n_cards(self) -> int:
        """Number of cards."""
        return len(self.card_customer)

    @property
    def n_customers(self) -> int:
        """Number of customers."""
        return len(self.customer_city)

    @property
    def n_merchants(self) -> int:
        """Number of merchants, ATMs included."""
        return len(self.merchant_kind)

    def merchants_of_categories(self, mccs: tuple[str, ...]) -> np.ndarray:
        """Return the indices of merchants whose MCC is in ``mccs``, int64."""
        codes = np.array([category.mcc for category in catalogue.CATEGORIES])
        wanted = np.isin(codes, mccs)
        return np.flatnonzero(wanted[self.merchant_category])


def card_count(config: GeneratorConfig) -> int:
    """Return the number of cards: ``cards``, or the count that yields ``rows``.

    With ``rows``, the count is chosen so that the expected number of legitimate
    payments over the span plus the fraud at ``fraud_rate`` equals ``rows``.
    """
    if config.cards is not None:
        return config.cards
    assert config.rows is not None
    daily_rate = config.population.payments_per_card_month / 30.4375
    calendar_days = float(day_factors(config.start, config.n_days).sum())
    legitimate_rows = config.rows * (1.0 - config.fraud_rate)
    return max(1, round(legitimate_rows / (daily_rate * calendar_days)))


def build_population(config: GeneratorConfig) -> Population:
    """Draw every customer, card, merchant, terminal and device of ``config``."""
    rng = stream(config.seed, "population")
    n_cards = card_count(config)
    card_customer = _assign_cards(rng, n_cards, config.population.cards_per_customer)
    n_customers = int(card_customer[-1]) + 1
    merchants = _build_merchants(rng, n_cards, config)
    customers = _build_customers(rng, n_customers, merchants)

    daily_rate = config.population.payments_per_card_month / 30.4375
    card_daily_rate = rng.gamma(shape=2.0, scale=daily_rate / 2.0, size=n_cards)
    card_city = customers["customer_city"][card_customer]
    cards_by_city = np.argsort(card_city, kind="stable").astype(np.int64)
    city_count = np.bincount(card_city, minlength=len(catalogue.CITIES))
    city_start = np.concatenate([[0], np.cumsum(city_count)[:-1]])

    population = Population(
        **customers,
        **merchants,
        card_customer=card_customer,
        card_daily_rate=card_daily_rate,
        cards_by_city=cards_by_city,
        cards_by_city_start=city_start,
        cards_by_city_count=city_count,
        card_ids=_format_ids("C", n_cards, 9),
        customer_ids=_format_ids("U", n_customers, 8),
    )
    logger.info(
        "population: %d customers, %d cards, %d merchants",
        n_customers,
        n_cards,
        population.n_merchants,
    )
    return population


def _assign_cards(
    rng: np.random.Generator, n_cards: int, weights: tuple[float, float, float]
) -> np.ndarray:
    probabilities = np.asarray(weights) / sum(weights)
    mean_cards = float(probabilities @ np.array([1, 2, 3]))
    draws = math.ceil(n_cards / mean_cards * 1.2) + 10
    per_customer = rng.choice(3, size=draws, p=probabilities) + 1
    card_customer = np.repeat(np.arange(draws, dtype=np.int64), per_customer)
    return card_customer[:n_cards]


def _format_ids(prefix: str, count: int, width: int) -> pl.Series:
    numbers = pl.int_range(0, count, eager=True).cast(pl.String).str.zfill(width)
    return (prefix + numbers).alias("id")


def _allocate(
    rng: np.random.Generator, total: int, weights: np.ndarray, minimum: int
) -> np.ndarray:
    """Split ``total`` items over cities, at least ``minimum`` each, int64."""
    spare = max(0, total - minimum * len(weights))
    return minimum + rng.multinomial(spare, weights / weights.sum())


def _build_merchants(
    rng: np.random.Generator, n_cards: int, config: GeneratorConfig
) -> dict[str, object]:
    population = config.population
    physical_count = _allocate(
        rng,
        round(n_cards * population.physical_merchants_per_1000_cards / 1000),
        CITY_WEIGHT,
        3,
    )
    atm_count = _allocate(
        rng, round(n_cards * population.atms_per_1000_cards / 1000), CITY_WEIGHT, 1
    )
    n_online = max(
        40, round(n_cards * population.online_merchants_per_1000_cards / 1000)
    )

    physical_city = np.repeat(np.arange(len(CITY_WEIGHT)), physical_count)
    physical_category = _draw_categories(rng, catalogue.PHYSICAL, len(physical_city))
    online_city = _draw_online_cities(rng, n_online)
    online_category = _draw_categories(rng, catalogue.ONLINE, n_online)
    # Every online category gets at least one shop, so each scenario finds its targets.
    online_codes = np.flatnonzero(CATEGORY_KIND == catalogue.ONLINE)
    online_category[: len(online_codes)] = online_codes
    atm_city = np.repeat(np.arange(len(CITY_WEIGHT)), atm_count)
    atm_category = np.full(
        len(atm_city), np.flatnonzero(CATEGORY_KIND == catalogue.ATM)[0]
    )

    kind = np.concatenate(
        [
            np.full(len(physical_city), catalogue.PHYSICAL),
            np.full(n_online, catalogue.ONLINE),
            np.full(len(atm_city), catalogue.ATM),
        ]
    ).astype(np.int8)
    city = np.concatenate([physical_city, online_city, atm_city])
    category = np.concatenate([physical_category, online_category, atm_category])
    n_merchants = len(kind)
    lat = CITY_LAT[city] + rng.normal(0.0, 0.04, n_merchants)
    lon = CITY_LON[city] + rng.normal(0.0, 0.06, n_merchants)
    terminal_count = np.where(
        kind == catalogue.PHYSICAL, rng.integers(1, 5, n_merchants), 1
    )
    terminal_start = np.concatenate([[0], np.cumsum(terminal_count)[:-1]])

    online_merchants = np.flatnonzero(kind == catalogue.ONLINE)
    popularity = 1.0 / np.arange(1, n_online + 1) ** 0.9
    popularity = popularity[rng.permutation(n_online)]
    online_cum = np.cumsum(popularity) / popularity.sum()
    online_cum[-1] = 1.0
    online_country = CITY_COUNTRY[online_city]
    online_by_country = online_merchants[np.argsort(online_country, kind="stable")]
    online_country_count = np.bincount(online_country, minlength=len(COUNTRIES))
    online_country_start = np.concatenate([[0], np.cumsum(online_country_count)[:-1]])
    online_outside_eea = online_merchants[~COUNTRY_IN_EEA[online_country]]

    # Ids are a seeded shuffle: numbered in creation order (city, then kind), they
    # would tell online shops and ATMs apart and so leak fraud risk. The shuffle has a
    # stream of its own, so every other draw stays as it was.
    id_order = stream(config.seed, "merchant_ids").permutation(n_merchants)
    merchant_numbers = pl.Series(id_order)
    merchant_ids = ("M" + merchant_numbers.cast(pl.String).str.zfill(7)).alias("id")
    terminal_numbers = np.arange(terminal_count.sum()) - np.repeat(
        terminal_start, terminal_count
    )
    terminal_ids = pl.Series(
        "id", merchant_ids.gather(np.repeat(np.arange(n_merchants), terminal_count))
    ) + ("-" + pl.Series(terminal_numbers).cast(pl.String).str.zfill(2))
    travel_weight = CITY_WEIGHT * np.where(CITY_ISSUER, 1.0, 1.5)
    travel_city_cum = np.cumsum(travel_weight) / travel_weight.sum()
    travel_city_cum[-1] = 1.0
    n_physical = len(physical_city)
    n_before_atms = n_physical + n_online
    return {
        "merchant_kind": kind,
        "merchant_city": city,
        "merchant_country": CITY_COUNTRY[city],
        "merchant_category": category,
        "merchant_lat": lat,
        "merchant_lon": lon,
        "merchant_terminal_start": terminal_start,
        "merchant_terminal_count": terminal_count,
        "physical_start": np.concatenate([[0], np.cumsum(physical_count)[:-1]]),
        "physical_count": physical_count,
        "atm_start": n_before_atms + np.concatenate([[0], np.cumsum(atm_count)[:-1]]),
        "atm_count": atm_count,
        "online_merchants": online_merchants,
        "online_cum": online_cum,
        "online_by_country": online_by_country,
        "online_country_start": online_country_start,
        "online_country_count": online_country_count,
        "online_outside_eea": online_outside_eea,
        "travel_city_cum": travel_city_cum,
        "merchant_ids": merchant_ids,
        "terminal_ids": terminal_ids,
    }


def _draw_categories(rng: np.random.Generator, kind: int, size: int) -> np.ndarray:
    codes = np.flatnonzero(kind == CATEGORY_KIND)
    weights = CATEGORY_WEIGHT[codes] / CATEGORY_WEIGHT[codes].sum()
    return codes[rng.choice(len(codes), size=size, p=weights)]


def _draw_online_cities(rng: np.random.Generator, size: int) -> np.ndarray:
    """Draw online shops' home cities: three in four in the euro area."""
    weights = CITY_WEIGHT * np.where(CITY_ISSUER, 3.0, 1.0)
    return rng.choice(len(weights), size=size, p=weights / weights.sum())


def _favourite_online(
    rng: np.random.Generator, merchants: dict[str, object], country: np.ndarray
) -> np.ndarray:
    """Choose each customer's favourite web shops, mostly in the home country.

    A favourite is domestic with probability ``DOMESTIC_ONLINE_FAVOURITE_SHARE``
    when the country has a web shop, and otherwise drawn by global popularity.

    Returns:
        Merchant indices, int64 of shape (customers, FAVOURITE_ONLINE).
    """
    shape = (len(country), FAVOURITE_ONLINE)
    popular = merchants["online_merchants"][
        np.searchsorted(merchants["online_cum"], rng.random(shape), side="right")
    ]
    count = merchants["online_country_count"][country][:, None]
    start = merchants["online_country_start"][country][:, None]
    position = start + (rng.random(shape) * count).astype(np.int64)
    position = np.minimum(position, len(merchants["online_by_country"]) - 1)
    domestic = merchants["online_by_country"][position]
    use_domestic = (rng.random(shape) < DOMESTIC_ONLINE_FAVOURITE_SHARE) & (count > 0)
    return np.where(use_domestic, domestic, popular)


def _build_customers(
    rng: np.random.Generator, n_customers: int, merchants: dict[str, object]
) -> dict[str, np.ndarray]:
    issuer_weights = np.where(CITY_ISSUER, CITY_WEIGHT, 0.0)
    city = rng.choice(
        len(CITY_WEIGHT), size=n_customers, p=issuer_weights / issuer_weights.sum()
    )
    lat = CITY_LAT[city] + rng.normal(0.0, 0.05, n_customers)
    lon = CITY_LON[city] + rng.normal(0.0, 0.07, n_customers)
    segment = rng.choice(3, size=n_customers, p=catalogue.SEGMENT_WEIGHTS)
    scale = catalogue.SEGMENT_SCALES[segment] * rng.lognormal(0.0, 0.3, n_customers)
    shift_index = rng.choice(
        len(catalogue.HOUR_SHIFTS),
        size=n_customers,
        p=catalogue.HOUR_SHIFT_WEIGHTS / catalogue.HOUR_SHIFT_WEIGHTS.sum(),
    )
    channel_shares = rng.dirichlet(catalogue.CHANNEL_SHARES * 12.0, size=n_customers)
    channel_cum = np.cumsum(channel_shares, axis=1)
    channel_cum[:, -1] = 1.0

    device_count = rng.choice(MAX_DEVICES, size=n_customers, p=[0.5, 0.35, 0.15]) + 1
    devices = rng.integers(
        DEVICE_ID_LOW, DEVICE_ID_HIGH, size=(n_customers, MAX_DEVICES)
    )

    physical_start = merchants["physical_start"][city]
    physical_count = merchants["physical_count"][city]
    favourite_physical = physical_start[:, None] + (
        rng.random((n_customers, FAVOURITE_PHYSICAL)) * physical_count[:, None]
    ).astype(np.int64)
    favourite_online = _favourite_online(rng, merchants, CITY_COUNTRY[city])
    atm_start = merchants["atm_start"][city]
    atm_count = merchants["atm_count"][city]
    favourite_atms = atm_start[:, None] + (
        rng.random((n_customers, FAVOURITE_ATMS)) * atm_count[:, None]
    ).astype(np.int64)
    return {
        "customer_city": city,
        "customer_country": CITY_COUNTRY[city],
        "customer_lat": lat,
        "customer_lon": lon,
        "customer_scale": scale,
        "customer_segment": segment.astype(np.int8),
        "customer_hour_shift": catalogue.HOUR_SHIFTS[shift_index],
        "customer_channel_cum": channel_cum,
        "customer_devices": devices,
        "customer_device_count": device_count,
        # Merchant indices fit in 32 bits; the narrower type halves the largest
        # per-customer arrays.
        "favourite_physical": favourite_physical.astype(np.int32),
        "favourite_online": favourite_online.astype(np.int32),
        "favourite_atms": favourite_atms.astype(np.int32),
    }
