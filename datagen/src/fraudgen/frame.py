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
TIE_BITS = 26

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
    Microseconds since the day's first row (below 2**37 within a day) and a 26-bit
    random tie key share one int64 sort key.
    """
    tie = rng.integers(0, 1 << TIE_BITS, size=len(block), dtype=np.int64)
    if len(block) == 0:
        return block
    offset = block.timestamp_us - block.timestamp_us.min()
    key = (offset << TIE_BITS) | tie
    return block.take(np.argsort(key, kind="stable"))


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
    customer = population.card_customer[block.card]
    merchant = block.merchant
    merchant_country = population.merchant_country[merchant]
    indices = pl.DataFrame(
        {
            "day": np.repeat(np.arange(len(days), dtype=np.int64), counts_array),
            "position": position,
            "timestamp": block.timestamp_us,
            "card": block.card,
            "customer": customer,
            "merchant": merchant,
            "terminal": block.terminal,
            "amount_minor": block.amount_minor,
            "merchant_country": merchant_country,
            "card_country": population.customer_country[customer],
            "mcc": population.merchant_category[merchant],
            "channel": block.channel.astype(np.int64),
            "device": block.device,
            "customer_lat": population.customer_lat[customer],
            "customer_lon": population.customer_lon[customer],
            "merchant_lat": population.merchant_lat[merchant],
            "merchant_lon": population.merchant_lon[merchant],
            "scenario": block.scenario.astype(np.int64),
            "label": block.label_us,
        }
    )
    fraud = pl.col("scenario") != NO_SCENARIO
    frame = indices.select(
        transaction_id=pl.lit(prefixes).gather(pl.col("day"))
        + pl.col("position").cast(pl.String).str.zfill(TRANSACTION_ID_DIGITS),
        timestamp=pl.col("timestamp").cast(UTC_DATETIME),
        card_id=pl.lit(population.card_ids).gather(pl.col("card")),
        customer_id=pl.lit(population.customer_ids).gather(pl.col("customer")),
        merchant_id=pl.lit(population.merchant_ids).gather(pl.col("merchant")),
        terminal_id=pl.lit(population.terminal_ids).gather(pl.col("terminal")),
        amount_minor=pl.col("amount_minor"),
        currency=pl.lit(_CURRENCY_CODES).gather(pl.col("merchant_country")),
        mcc=pl.lit(_MCC_CODES).gather(pl.col("mcc")),
        channel=pl.lit(_CHANNEL_NAMES).gather(pl.col("channel")),
        card_present=pl.col("channel") != catalogue.ECOMMERCE,
        merchant_country=pl.lit(_COUNTRY_CODES).gather(pl.col("merchant_country")),
        card_country=pl.lit(_COUNTRY_CODES).gather(pl.col("card_country")),
        device_id=pl.when(pl.col("device") != NO_DEVICE).then(
            pl.lit("D") + pl.col("device").cast(pl.String)
        ),
        customer_lat=pl.col("customer_lat"),
        customer_lon=pl.col("customer_lon"),
        merchant_lat=pl.col("merchant_lat"),
        merchant_lon=pl.col("merchant_lon"),
        is_fraud=fraud,
        label_available_at=pl.when(pl.col("label") != NO_LABEL).then(
            pl.col("label").cast(UTC_DATETIME)
        ),
        fraud_scenario=pl.when(fraud).then(
            pl.lit(_SCENARIO_NAMES).gather(pl.col("scenario").clip(lower_bound=0))
        ),
    )
    return frame.cast(SCHEMA)  # type: ignore[arg-type]
