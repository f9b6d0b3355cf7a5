"""Fraud scenarios: incidents planned over the whole span, then expanded to payments.

The plan draws from the ``fraud_plan`` stream with one sub-stream per scenario, so it
depends only on the seed, the configuration and the population. Each scenario leaves
its main trace in behaviour over time (bursts, velocity, new devices, departures from
the card's own habits), while each payment's own columns mostly stay inside the range
of legitimate payments.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from fraudgen import catalogue
from fraudgen.blocks import (
    NO_DEVICE,
    Block,
    amount_eur,
    draw_channels,
    floor_to_day,
    hours_on_days,
    make_block,
    new_device_ids,
    pick_foreign_city,
    pick_fraud_online,
    pick_in_range,
    pick_terminal,
    pick_travel_city,
    time_in_hour,
    to_minor_units,
)
from fraudgen.config import (
    SCENARIOS,
    AccountTakeoverConfig,
    GeneratorConfig,
    IntRange,
    LabelsConfig,
    StolenCardSpreeConfig,
)
from fraudgen.entities import Population
from fraudgen.rng import stream
from fraudgen.seasonality import (
    EPOCH,
    MICROS_PER_DAY,
    MICROS_PER_HOUR,
    day_factors,
    day_start_us,
)

logger = logging.getLogger(__name__)

MICROS_PER_MINUTE = 60_000_000
# Spread of fraud amounts around their scenario's median: a log-normal factor.
FRAUD_AMOUNT_SIGMA = 0.3
# Hours over which the payments of one compromised-merchant victim are spread.
VICTIM_BURST_HOURS = 3.0
# The shares below are calibrated so that the default data set matches the published
# figures listed in the README section "Realism".
# Share of fraudulent web payments made at shops outside the EEA, where published
# fraud rates are 10 to 17 times those inside it.
FRAUD_ONLINE_OUTSIDE_EEA = 0.13
# Share of fraudulent web payments made at shops in the card's own country. The
# remaining ones follow shop popularity.
FRAUD_ONLINE_DOMESTIC = 0.42
# Share of mimicry's web payments at shops in the card's own country, close to the
# domestic share of legitimate web payments.
MIMICRY_ONLINE_DOMESTIC = 0.7
# Channels of a stolen card's in-person payments and their shares.
SPREE_IN_PERSON_SHARES = {"pos": 0.1, "contactless": 0.85, "atm": 0.05}
# Share of a cloned card's payments abroad that are cash withdrawals. The others
# are card-present payments at shops.
CLONE_ATM_SHARE = 0.25
# Shops and web shops at which the cards of one compromised shop are cashed out.
CASH_OUT_PLACES = 3


@dataclass(frozen=True)
class Span:
    """Time range of the data set, microseconds since the epoch, end exclusive."""

    start_us: int
    end_us: int

    @property
    def length_us(self) -> int:
        """Length of the span in microseconds."""
        return self.end_us - self.start_us

    @property
    def first_day(self) -> date:
        """Calendar day of the span's start (spans start at midnight UTC)."""
        return EPOCH + timedelta(days=self.start_us // MICROS_PER_DAY)

    @staticmethod
    def of_days(first: date, last: date) -> Span:
        """Return the span from midnight of ``first`` to the end of ``last``."""
        return Span(day_start_us(first), day_start_us(last) + MICROS_PER_DAY)


@dataclass(frozen=True)
class FraudPlan:
    """Payments of every planned fraud incident, sorted by timestamp.

    Attributes:
        rows: Fraudulent payments, plus the legitimate payments at compromised
            terminals that exposed the victims' cards.
        incidents: Number of incidents per scenario.
    """

    rows: Block
    incidents: dict[str, int]


def plan_fraud(population: Population, config: GeneratorConfig) -> FraudPlan:
    """Plan every fraud incident of the span and expand it to payments.

    The number of incidents per scenario is chosen so that the expected number of
    fraudulent payments is ``fraud_rate`` of all payments, split by
    ``scenario_mix``. Every scenario with a positive share gets at least one
    incident, so very small data sets exceed ``fraud_rate``.
    """
    span = Span(
        day_start_us(config.start),
        day_start_us(config.start) + config.n_days * MICROS_PER_DAY,
    )
    if config.fraud_rate == 0:
        rows, incidents = plan_campaigns(population, config)
        rows = rows.take(np.argsort(rows.timestamp_us, kind="stable"))
        return FraudPlan(_inside(rows, span), incidents)
    incidents = count_incidents(population, config)
    rng = stream(config.seed, "fraud_plan", 0)
    direct = [name for name in SCENARIOS if name != "compromised_merchant"]
    needed = sum(incidents[name] for name in direct)
    if needed <= population.n_cards:
        victims = rng.permutation(population.n_cards)[:needed]
    else:
        victims = rng.integers(0, population.n_cards, needed)
    blocks = []
    offset = 0
    for index, name in enumerate(SCENARIOS):
        scenario_rng = stream(config.seed, "fraud_plan", index + 1)
        if name == "compromised_merchant":
            count = incidents[name]
            block = compromised_merchant(
                scenario_rng, population, config, n_merchants=count, span=span
            )
        else:
            cards = victims[offset : offset + incidents[name]]
            offset += incidents[name]
            block = SCENARIO_BUILDERS[name](
                scenario_rng, population, config, cards=cards, span=span
            )
        blocks.append(block)
    campaign_rows, campaign_incidents = plan_campaigns(population, config)
    blocks.append(campaign_rows)
    for name, count in campaign_incidents.items():
        incidents[name] += count
    rows = _inside(Block.concat(blocks), span)
    rows = rows.take(np.argsort(rows.timestamp_us, kind="stable"))
    logger.info("fraud plan: %d payments, incidents %s", len(rows), incidents)
    return FraudPlan(rows, incidents)


def _inside(rows: Block, span: Span) -> Block:
    """Keep the rows whose timestamp lies in ``span``."""
    inside = (rows.timestamp_us >= span.start_us) & (rows.timestamp_us < span.end_us)
    return rows.take(inside)


def plan_campaigns(
    population: Population, config: GeneratorConfig
) -> tuple[Block, dict[str, int]]:
    """Plan the incidents of every scheduled fraud campaign.

    A campaign adds incidents of its scenario whose payments fall between its first
    and last day (clipped to the data span). Their number is chosen so that the
    campaign's frauds are ``fraud_rate`` of the legitimate payments expected in
    that window, on top of the baseline fraud. Each campaign draws from its own
    ``drift`` stream, so adding one leaves the others and the baseline unchanged.

    Returns:
        The campaigns' payments and their incidents per scenario.
    """
    incidents = dict.fromkeys(SCENARIOS, 0)
    blocks = []
    sizes = mean_incident_sizes(config)
    factors = day_factors(config.start, config.n_days)
    daily_legitimate = float(population.card_daily_rate.sum())
    for index, campaign in enumerate(config.drift.campaigns):
        first = max(campaign.start, config.start)
        last = min(campaign.end or config.last_day, config.last_day)
        span = Span.of_days(first, last)
        offset = (first - config.start).days
        calendar = float(factors[offset : offset + (last - first).days + 1].sum())
        fraud_rows = (
            campaign.fraud_rate
            / (1 - campaign.fraud_rate)
            * daily_legitimate
            * calendar
        )
        rng = stream(config.seed, "drift", index)
        expected = fraud_rows / sizes[campaign.scenario]
        count = max(1, int(np.floor(expected)) + int(rng.random() < expected % 1.0))
        if campaign.scenario == "compromised_merchant":
            block = compromised_merchant(
                rng, population, config, n_merchants=count, span=span
            )
        else:
            cards = rng.integers(0, population.n_cards, count)
            block = SCENARIO_BUILDERS[campaign.scenario](
                rng, population, config, cards=cards, span=span
            )
        blocks.append(_inside(block, span))
        incidents[campaign.scenario] += count
    return Block.concat(blocks), incidents


def mean_incident_sizes(config: GeneratorConfig) -> dict[str, float]:
    """Return the expected fraudulent payments of one incident, per scenario."""
    settings = config.scenarios
    return {
        "card_testing": settings.card_testing.payments.mean,
        "stolen_card_spree": settings.stolen_card_spree.payments.mean,
        "account_takeover": settings.account_takeover.payments.mean,
        "compromised_merchant": settings.compromised_merchant.victims.mean
        * settings.compromised_merchant.payments_per_victim.mean,
        "mimicry": settings.mimicry.payments.mean,
    }


def count_incidents(population: Population, config: GeneratorConfig) -> dict[str, int]:
    """Return the number of incidents per scenario that meets ``fraud_rate``.

    A fractional expected count is rounded up with a probability equal to its
    fraction, so the count is unbiased over seeds even when a scenario expects only
    one or two incidents. Every scenario with a positive share gets at least one.
    """
    calendar = float(day_factors(config.start, config.n_days).sum())
    expected_legitimate = float(population.card_daily_rate.sum()) * calendar
    fraud_rows = config.fraud_rate / (1 - config.fraud_rate) * expected_legitimate
    mean_size = mean_incident_sizes(config)
    rng = stream(config.seed, "fraud_plan", len(SCENARIOS) + 1)
    counts = {}
    for name, share in config.scenario_mix.shares().items():
        expected = fraud_rows * share / mean_size[name]
        wanted = int(np.floor(expected)) + int(rng.random() < expected % 1.0)
        counts[name] = max(1, wanted) if share > 0 else 0
    return counts


def label_times(
    rng: np.random.Generator,
    labels: LabelsConfig,
    *,
    timestamp_us: np.ndarray,
    incident: np.ndarray,
    n_incidents: int,
) -> np.ndarray:
    """Draw when each fraudulent payment's label reaches the bank, int64 µs.

    One report covers an incident: it arrives a log-normal delay after the incident's
    last payment. Every label lies between ``min_delay_hours`` and
    ``max_delay_days`` after its own payment.
    """
    last = np.full(n_incidents, np.iinfo(np.int64).min, np.int64)
    np.maximum.at(last, incident, timestamp_us)
    delay_days = labels.delay_median_days * np.exp(
        labels.delay_sigma * rng.standard_normal(n_incidents)
    )
    min_delay_us = int(labels.min_delay_hours * MICROS_PER_HOUR)
    max_delay_us = int(labels.max_delay_days * MICROS_PER_DAY)
    delay_us = np.clip(delay_days * MICROS_PER_DAY, min_delay_us, max_delay_us).astype(
        np.int64
    )
    label = last[incident] + delay_us[incident]
    label = np.minimum(label, timestamp_us + max_delay_us)
    return np.maximum(label, timestamp_us + min_delay_us)


def _incident_rows(
    rng: np.random.Generator, *, n_incidents: int, low: int, high: int
) -> np.ndarray:
    """Draw each incident's payment count and return each row's incident index."""
    sizes = rng.integers(low, high + 1, n_incidents)
    return np.repeat(np.arange(n_incidents), sizes)


def _incident_starts(
    rng: np.random.Generator, span: Span, duration_us: np.ndarray
) -> np.ndarray:
    """Draw start times so that each incident ends inside the span when it fits."""
    room = np.maximum(0, span.length_us - duration_us)
    return span.start_us + (rng.random(len(duration_us)) * room).astype(np.int64)


def _calendar_days(
    rng: np.random.Generator, config: GeneratorConfig, span: Span, size: int
) -> np.ndarray:
    """Draw days of the span weighted by their volume factors; midnight UTC, µs."""
    del config  # the span carries the days
    factors = day_factors(span.first_day, span.length_us // MICROS_PER_DAY)
    day = rng.choice(len(factors), size=size, p=factors / factors.sum())
    return span.start_us + day.astype(np.int64) * MICROS_PER_DAY


def _spread(rng: np.random.Generator, duration_us: np.ndarray) -> np.ndarray:
    return (rng.random(len(duration_us)) * duration_us).astype(np.int64)


def _hours_us(
    rng: np.random.Generator, low: float, high: float, size: int
) -> np.ndarray:
    return (rng.uniform(low, high, size) * MICROS_PER_HOUR).astype(np.int64)


def _incident_payment_times(
    rng: np.random.Generator,
    settings: StolenCardSpreeConfig | AccountTakeoverConfig,
    *,
    n_incidents: int,
    span: Span,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw each incident's payments spread over its duration inside the span.

    Returns:
        Each row's incident index and its time in epoch microseconds.
    """
    incident = _incident_rows(
        rng,
        n_incidents=n_incidents,
        low=settings.payments.min,
        high=settings.payments.max,
    )
    duration_us = _hours_us(
        rng, settings.duration_hours.min, settings.duration_hours.max, n_incidents
    )
    start = _incident_starts(rng, span, duration_us)
    return incident, start[incident] + _spread(rng, duration_us[incident])


def card_testing(
    rng: np.random.Generator,
    population: Population,
    config: GeneratorConfig,
    *,
    cards: np.ndarray,
    span: Span,
) -> Block:
    """Bursts of tiny online payments at one shop, from one unseen device per card."""
    settings = config.scenarios.card_testing
    n = len(cards)
    incident = _incident_rows(
        rng, n_incidents=n, low=settings.payments.min, high=settings.payments.max
    )
    window = settings.window_minutes
    log_minutes = rng.uniform(
        np.log(max(window.min, 0.1)), np.log(max(window.max, 0.1)), n
    )
    window_us = (np.exp(log_minutes) * MICROS_PER_MINUTE).astype(np.int64)
    start = _incident_starts(rng, span, window_us)
    timestamp = start[incident] + _spread(rng, window_us[incident])

    targets = population.merchants_of_categories(catalogue.CARD_TESTING_MCCS)
    merchant = targets[rng.integers(0, len(targets), n)][incident]
    amount = rng.integers(
        settings.amount_minor.min, settings.amount_minor.max + 1, len(incident)
    )
    return make_block(
        timestamp_us=timestamp,
        card=cards[incident],
        merchant=merchant,
        terminal=population.merchant_terminal_start[merchant],
        channel=catalogue.ECOMMERCE,
        amount_minor=amount,
        device=new_device_ids(rng, n)[incident],
        scenario=SCENARIOS.index("card_testing"),
        label_us=label_times(
            rng, config.labels, timestamp_us=timestamp, incident=incident, n_incidents=n
        ),
    )


def stolen_card_spree(
    rng: np.random.Generator,
    population: Population,
    config: GeneratorConfig,
    *,
    cards: np.ndarray,
    span: Span,
) -> Block:
    """Many larger payments within hours, in shops at home or abroad and online."""
    settings = config.scenarios.stolen_card_spree
    n = len(cards)
    incident, timestamp = _incident_payment_times(
        rng, settings, n_incidents=n, span=span
    )
    rows = len(incident)

    customer = population.card_customer[cards]
    abroad = rng.random(n) < settings.cross_border_share
    foreign = pick_foreign_city(rng, population, population.customer_country[customer])
    city = np.where(abroad, foreign, population.customer_city[customer])[incident]
    remote = rng.random(rows) < settings.card_not_present_share
    in_person = _draw_in_person_channels(rng, rows)
    shop = pick_in_range(
        rng, population.physical_start[city], population.physical_count[city]
    )
    atm = pick_in_range(rng, population.atm_start[city], population.atm_count[city])
    web = _fraud_web_shops(rng, population, customer[incident])
    physical = np.where(in_person == catalogue.ATM_CHANNEL, atm, shop)
    merchant = np.where(remote, web, physical)
    channel = np.where(remote, catalogue.ECOMMERCE, in_person)

    eur = amount_eur(rng, population, merchant=merchant, customer=customer[incident])
    eur *= settings.amount_multiplier * rng.lognormal(0.0, FRAUD_AMOUNT_SIGMA, rows)
    device = np.where(remote, new_device_ids(rng, n)[incident], NO_DEVICE)
    return make_block(
        timestamp_us=timestamp,
        card=cards[incident],
        merchant=merchant,
        terminal=pick_terminal(rng, population, merchant),
        channel=channel,
        amount_minor=to_minor_units(population, merchant=merchant, eur=eur),
        device=device,
        scenario=SCENARIOS.index("stolen_card_spree"),
        label_us=label_times(
            rng, config.labels, timestamp_us=timestamp, incident=incident, n_incidents=n
        ),
    )


def account_takeover(
    rng: np.random.Generator,
    population: Population,
    config: GeneratorConfig,
    *,
    cards: np.ndarray,
    span: Span,
) -> Block:
    """Online payments from one new device, at unusual categories and hours."""
    settings = config.scenarios.account_takeover
    n = len(cards)
    incident, moment = _incident_payment_times(rng, settings, n_incidents=n, span=span)
    rows = len(incident)
    night = rng.random(rows) < settings.night_share
    hour = np.where(night, rng.integers(0, 5, rows), rng.integers(9, 23, rows))
    timestamp = time_in_hour(rng, day_start_us=floor_to_day(moment), hour=hour)

    targets = population.merchants_of_categories(catalogue.ACCOUNT_TAKEOVER_MCCS)
    unusual = targets[rng.integers(0, len(targets), rows)]
    other = _fraud_web_shops(rng, population, population.card_customer[cards][incident])
    merchant = np.where(rng.random(rows) < 0.7, unusual, other)
    eur = settings.amount_median_eur * rng.lognormal(0.0, 0.6, rows)
    return make_block(
        timestamp_us=timestamp,
        card=cards[incident],
        merchant=merchant,
        terminal=population.merchant_terminal_start[merchant],
        channel=catalogue.ECOMMERCE,
        amount_minor=to_minor_units(population, merchant=merchant, eur=eur),
        device=new_device_ids(rng, n)[incident],
        scenario=SCENARIOS.index("account_takeover"),
        label_us=label_times(
            rng, config.labels, timestamp_us=timestamp, incident=incident, n_incidents=n
        ),
    )


def mimicry(
    rng: np.random.Generator,
    population: Population,
    config: GeneratorConfig,
    *,
    cards: np.ndarray,
    span: Span,
) -> Block:
    """Payments drawn from the card's own channels, hours, amounts and devices."""
    settings = config.scenarios.mimicry
    n = len(cards)
    incident = _incident_rows(
        rng, n_incidents=n, low=settings.payments.min, high=settings.payments.max
    )
    rows = len(incident)
    # An incident is a burst centred on an hour drawn from the card's own profile, on
    # a day chosen with the calendar's volume factors.
    day = _calendar_days(rng, config, span, n)
    owner = population.card_customer[cards]
    hour = hours_on_days(rng, population, customer=owner, day_start_us=day)
    centre = time_in_hour(rng, day_start_us=day, hour=hour)
    duration_us = _hours_us(
        rng, settings.duration_hours.min, settings.duration_hours.max, n
    )
    offset = _spread(rng, duration_us[incident]) - duration_us[incident] // 2
    timestamp = centre[incident] + offset
    customer = owner[incident]

    channel = draw_channels(rng, population, customer)
    # Card-present payments are made away from home as often as legitimate ones.
    travelling = rng.random(rows) < config.population.travel_share
    city = np.where(
        travelling,
        pick_travel_city(rng, population, rows),
        population.customer_city[customer],
    )
    shop = pick_in_range(
        rng, population.physical_start[city], population.physical_count[city]
    )
    atm = pick_in_range(rng, population.atm_start[city], population.atm_count[city])
    merchant = np.select(
        [channel == catalogue.ECOMMERCE, channel == catalogue.ATM_CHANNEL],
        [_mimicry_web_shops(rng, population, customer), atm],
        shop,
    )
    eur = amount_eur(rng, population, merchant=merchant, customer=customer)
    slot = (rng.random(rows) * population.customer_device_count[customer]).astype(
        np.int64
    )
    own_device = population.customer_devices[customer, slot]
    return make_block(
        timestamp_us=timestamp,
        card=cards[incident],
        merchant=merchant,
        terminal=pick_terminal(rng, population, merchant),
        channel=channel,
        amount_minor=to_minor_units(population, merchant=merchant, eur=eur),
        device=np.where(channel == catalogue.ECOMMERCE, own_device, NO_DEVICE),
        scenario=SCENARIOS.index("mimicry"),
        label_us=label_times(
            rng, config.labels, timestamp_us=timestamp, incident=incident, n_incidents=n
        ),
    )


def compromised_merchant(
    rng: np.random.Generator,
    population: Population,
    config: GeneratorConfig,
    *,
    n_merchants: int,
    span: Span,
) -> Block:
    """Skimmed terminals: local cards pay there, then are defrauded elsewhere.

    Each victim's exposure is a legitimate payment at the compromised terminal
    during the compromise window. Days to weeks later the cloned card or its number
    is used abroad in shops or online from an unseen device.
    """
    settings = config.scenarios.compromised_merchant
    victim_card, victim_merchant, victim_group = _draw_victims(
        rng, population, settings.victims, n_merchants
    )
    n = len(victim_card)
    window_us = int(settings.compromise_days * MICROS_PER_DAY)
    # Windows may end up to the shortest fraud delay before the span's end, so the
    # frauds cover the whole span. The few frauds after its end are dropped.
    earliest_delay_us = int(settings.fraud_delay_days.min * MICROS_PER_DAY)
    room = max(0, span.length_us - window_us - earliest_delay_us - MICROS_PER_DAY)
    window_start = span.start_us + (rng.random(n_merchants) * room).astype(np.int64)
    exposure_time = window_start[victim_group] + (rng.random(n) * window_us).astype(
        np.int64
    )
    exposure = _exposure_payments(
        rng,
        population,
        card=victim_card,
        merchant=victim_merchant,
        timestamp=exposure_time,
    )

    incident = _incident_rows(
        rng,
        n_incidents=n,
        low=settings.payments_per_victim.min,
        high=settings.payments_per_victim.max,
    )
    rows = len(incident)
    delay = settings.fraud_delay_days
    first = exposure_time + (
        rng.uniform(delay.min, delay.max, n) * MICROS_PER_DAY
    ).astype(np.int64)
    timestamp = first[incident] + _hours_us(rng, 0.0, VICTIM_BURST_HOURS, rows)
    customer = population.card_customer[victim_card]
    abroad = (rng.random(n) < settings.cross_border_share)[incident]
    shops, atms, web_shops = _cash_out_places(
        rng, population, victim_merchant=victim_merchant, victim_group=victim_group
    )
    group = victim_group[incident]
    shop = shops[group, rng.integers(0, CASH_OUT_PLACES, rows)]
    web = web_shops[group, rng.integers(0, CASH_OUT_PLACES, rows)]
    cash = rng.random(rows) < CLONE_ATM_SHARE
    merchant = np.where(abroad, np.where(cash, atms[group], shop), web)
    in_person = np.where(cash, catalogue.ATM_CHANNEL, catalogue.POS)
    channel = np.where(abroad, in_person, catalogue.ECOMMERCE)
    eur = amount_eur(rng, population, merchant=merchant, customer=customer[incident])
    eur *= settings.amount_multiplier * rng.lognormal(0.0, FRAUD_AMOUNT_SIGMA, rows)
    device = np.where(abroad, NO_DEVICE, new_device_ids(rng, n)[incident])
    fraud = make_block(
        timestamp_us=timestamp,
        card=victim_card[incident],
        merchant=merchant,
        terminal=pick_terminal(rng, population, merchant),
        channel=channel,
        amount_minor=to_minor_units(population, merchant=merchant, eur=eur),
        device=device,
        scenario=SCENARIOS.index("compromised_merchant"),
        label_us=label_times(
            rng, config.labels, timestamp_us=timestamp, incident=incident, n_incidents=n
        ),
    )
    return Block.concat([exposure, fraud])


def _cash_out_places(
    rng: np.random.Generator,
    population: Population,
    *,
    victim_merchant: np.ndarray,
    victim_group: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Choose where the cards of each compromised shop are cashed out.

    One fraud ring works each compromised shop, so its victims' cards are used at
    the same few places: ``CASH_OUT_PLACES`` shops and one ATM in a city outside
    the shop's country, and ``CASH_OUT_PLACES`` web shops.

    Returns:
        Shops (groups x CASH_OUT_PLACES), ATMs (groups) and web shops (groups x
        CASH_OUT_PLACES), merchant indices, int64.
    """
    n_groups = int(victim_group.max()) + 1 if len(victim_group) else 0
    group_merchant = np.zeros(n_groups, np.int64)
    group_merchant[victim_group] = victim_merchant
    country = population.merchant_country[group_merchant]
    city = pick_foreign_city(rng, population, country)
    places = np.repeat(city, CASH_OUT_PLACES)
    shops = pick_in_range(
        rng, population.physical_start[places], population.physical_count[places]
    ).reshape(n_groups, CASH_OUT_PLACES)
    atms = pick_in_range(rng, population.atm_start[city], population.atm_count[city])
    web_shops = pick_fraud_online(
        rng,
        population,
        home_country=np.repeat(country, CASH_OUT_PLACES),
        outside_eea=FRAUD_ONLINE_OUTSIDE_EEA,
        domestic=FRAUD_ONLINE_DOMESTIC,
    ).reshape(n_groups, CASH_OUT_PLACES)
    return shops, atms, web_shops


def _draw_victims(
    rng: np.random.Generator,
    population: Population,
    victims: IntRange,
    n_merchants: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Choose compromised shops and, for each, distinct cards living in its city.

    Returns:
        Victim card indices, the compromised merchant of each victim, and the
        0-based number of that merchant within this draw; all int64.
    """
    has_cards = population.cards_by_city_count[population.merchant_city] > 0
    candidates = np.flatnonzero(
        (population.merchant_kind == catalogue.PHYSICAL) & has_cards
    )
    merchants = candidates[rng.integers(0, len(candidates), n_merchants)]
    wanted = rng.integers(victims.min, victims.max + 1, n_merchants)
    cards, groups = [], []
    # One iteration per compromised shop (a few dozen at most), not per payment.
    for group, merchant in enumerate(merchants):
        city = population.merchant_city[merchant]
        count = int(population.cards_by_city_count[city])
        chosen = rng.choice(count, size=min(int(wanted[group]), count), replace=False)
        start = population.cards_by_city_start[city]
        cards.append(population.cards_by_city[start + chosen])
        groups.append(np.full(len(chosen), group, np.int64))
    group_of_victim = np.concatenate(groups)
    return np.concatenate(cards), merchants[group_of_victim], group_of_victim


def _exposure_payments(
    rng: np.random.Generator,
    population: Population,
    *,
    card: np.ndarray,
    merchant: np.ndarray,
    timestamp: np.ndarray,
) -> Block:
    """Legitimate card-present payments at the compromised terminal."""
    size = len(card)
    customer = population.card_customer[card]
    eur = amount_eur(rng, population, merchant=merchant, customer=customer)
    channel = np.where(rng.random(size) < 0.5, catalogue.POS, catalogue.CONTACTLESS)
    return make_block(
        timestamp_us=timestamp,
        card=card,
        merchant=merchant,
        terminal=population.merchant_terminal_start[merchant],
        channel=channel,
        amount_minor=to_minor_units(population, merchant=merchant, eur=eur),
        device=NO_DEVICE,
    )


def _fraud_web_shops(
    rng: np.random.Generator, population: Population, customer: np.ndarray
) -> np.ndarray:
    """Draw the web shops of fraudulent payments by the customers ``customer``."""
    return pick_fraud_online(
        rng,
        population,
        home_country=population.customer_country[customer],
        outside_eea=FRAUD_ONLINE_OUTSIDE_EEA,
        domestic=FRAUD_ONLINE_DOMESTIC,
    )


def _mimicry_web_shops(
    rng: np.random.Generator, population: Population, customer: np.ndarray
) -> np.ndarray:
    """Draw web shops as a customer exploring: mostly domestic, none favoured."""
    return pick_fraud_online(
        rng,
        population,
        home_country=population.customer_country[customer],
        outside_eea=0.0,
        domestic=MIMICRY_ONLINE_DOMESTIC,
    )


def _draw_in_person_channels(rng: np.random.Generator, size: int) -> np.ndarray:
    """Draw card-present channels from ``SPREE_IN_PERSON_SHARES``, int8."""
    codes = np.array(
        [catalogue.CHANNELS.index(name) for name in SPREE_IN_PERSON_SHARES]
    )
    shares = np.array(list(SPREE_IN_PERSON_SHARES.values()))
    return codes[rng.choice(len(codes), size=size, p=shares / shares.sum())].astype(
        np.int8
    )


SCENARIO_BUILDERS = {
    "card_testing": card_testing,
    "stolen_card_spree": stolen_card_spree,
    "account_takeover": account_takeover,
    "mimicry": mimicry,
}
