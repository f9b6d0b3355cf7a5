"""Conversion of transaction arrays into a polars frame in the canonical schema."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from fraudgen import catalogue
from fraudgen.blocks import NO_DEVICE, NO_LABEL, NO_SCENARIO, Block
from fraudgen.config import SCENARIOS
from fraudgen.entities import COUNTRIES, CURRENCIES, Population

UTC_DATETIME = pl.Datetime("us", "UTC")
# Output columns and dtypes, in order: the canonical transaction schema 1.0.0 of the
# cardfraud platform (cardfraud.schema), which this package does not import.
SCHEMA: dict[str, pl.DataType] = {
    "transaction_id": pl.String(),
    "timestamp": UTC_DATETIME,
    "card_id": pl.String(),
    "customer_id": pl.String(),
    "merchant_id": pl.String(),
    "terminal_id": pl.String(),
    "amount_minor": pl.Int64(),
    "currency": pl.String(),
    "mcc": pl.String(),
    "channel": pl.String(),
    "card_present": pl.Boolean(),
    "merchant_country": pl.String(),
    "card_country": pl.String(),
    "device_id": pl.String(),
    "customer_lat": pl.Float64(),
    "customer_lon": pl.Float64(),
    "merchant_lat": pl.Float64(),
    "merchant_lon": pl.Float64(),
    "is_fraud": pl.Boolean(),
    "label_available_at": UTC_DATETIME,
    "fraud_scenario": pl.String(),
}
TRANSACTION_ID_DIGITS = 8

_COUNTRY_CODES = pl.Series(COUNTRIES, dtype=pl.String)
_CURRENCY_CODES = pl.Series(CURRENCIES, dtype=pl.String)
_MCC_CODES = pl.Series(
    [category.mcc for category in catalogue.CATEGORIES], dtype=pl.String
)
_CHANNEL_NAMES = pl.Series(catalogue.CHANNELS, dtype=pl.String)
_SCENARIO_NAMES = pl.Series(SCENARIOS, dtype=pl.String)


def order_day(block: Block, rng: np.random.Generator) -> Block:
    """Sort one day's payments by timestamp, breaking ties with a random key.

    The tie key is drawn for every row, so neither the label nor the order in
    which legitimate and fraudulent payments were generated decides the order.
    """
    tie = rng.random(len(block))
    return block.take(np.lexsort((tie, block.timestamp_us)))


def to_frame(
    population: Population, block: Block, *, days: list[date], counts: list[int]
) -> pl.DataFrame:
    """Build the canonical frame from ordered daily blocks joined together.

    Args:
        population: Entities the block's indices refer to.
        block: Rows of consecutive days, each day sorted by ``order_day``.
        days: The days, in order.
        counts: Number of rows of each day.

    Returns:
        One row per payment in the columns and dtypes of ``SCHEMA``. A transaction
        id is ``T``, the day as YYYYMMDD and the row's 8-digit position within its
        day, so ids follow time order.
    """
    counts_array = np.asarray(counts, np.int64)
    day_starts = np.concatenate([[0], np.cumsum(counts_array)[:-1]])
    position = np.arange(len(block)) - np.repeat(day_starts, counts_array)
    prefixes = pl.Series([f"T{day:%Y%m%d}" for day in days], dtype=pl.String)
    day_prefix = prefixes.gather(np.repeat(np.arange(len(days)), counts_array))
    transaction_id = day_prefix + pl.Series(position).cast(pl.String).str.zfill(
        TRANSACTION_ID_DIGITS
    )

    customer = population.card_customer[block.card]
    merchant = block.merchant
    merchant_country = population.merchant_country[merchant]
    device = pl.Series(block.device)
    device_id = pl.select(
        pl.when(device != NO_DEVICE).then(pl.lit("D") + device.cast(pl.String))
    ).to_series()
    scenario = pl.Series(block.scenario, dtype=pl.Int8)
    scenario_index = pl.select(
        pl.when(scenario != NO_SCENARIO).then(scenario)
    ).to_series()
    label = pl.Series(block.label_us, dtype=pl.Int64)
    label_at = pl.select(pl.when(label != NO_LABEL).then(label)).to_series()
    is_fraud = block.scenario != NO_SCENARIO

    frame = pl.DataFrame(
        {
            "transaction_id": transaction_id,
            "timestamp": pl.Series(block.timestamp_us, dtype=pl.Int64).cast(
                UTC_DATETIME
            ),
            "card_id": population.card_ids.gather(block.card),
            "customer_id": population.customer_ids.gather(customer),
            "merchant_id": population.merchant_ids.gather(merchant),
            "terminal_id": population.terminal_ids.gather(block.terminal),
            "amount_minor": pl.Series(block.amount_minor, dtype=pl.Int64),
            "currency": _CURRENCY_CODES.gather(merchant_country),
            "mcc": _MCC_CODES.gather(population.merchant_category[merchant]),
            "channel": _CHANNEL_NAMES.gather(block.channel.astype(np.int64)),
            "card_present": pl.Series(block.channel != catalogue.ECOMMERCE),
            "merchant_country": _COUNTRY_CODES.gather(merchant_country),
            "card_country": _COUNTRY_CODES.gather(
                population.customer_country[customer]
            ),
            "device_id": device_id,
            "customer_lat": population.customer_lat[customer],
            "customer_lon": population.customer_lon[customer],
            "merchant_lat": population.merchant_lat[merchant],
            "merchant_lon": population.merchant_lon[merchant],
            "is_fraud": pl.Series(is_fraud),
            "label_available_at": label_at.cast(UTC_DATETIME),
            "fraud_scenario": _SCENARIO_NAMES.gather(scenario_index.cast(pl.Int64)),
        }
    )
    return frame.cast(SCHEMA)  # type: ignore[arg-type]
