"""Day-by-day generation: population, fraud plan, then one shard of days at a time."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl

from fraudgen.blocks import Block
from fraudgen.config import GeneratorConfig
from fraudgen.entities import Population, build_population
from fraudgen.frame import order_day, to_frame
from fraudgen.legit import legitimate_day
from fraudgen.rng import stream
from fraudgen.scenarios import FraudPlan, plan_fraud
from fraudgen.seasonality import MICROS_PER_DAY, day_start_us

logger = logging.getLogger(__name__)

# generate_frame keeps every row in memory. Beyond this many expected rows it logs a
# warning that recommends generate_to_path, which keeps one shard at a time.
FRAME_ROWS_WARNING = 5_000_000


@dataclass(frozen=True)
class Shard:
    """Consecutive days of output.

    Attributes:
        days: The days, in order.
        counts: Number of rows of each day.
        frame: Rows of all the days in the canonical schema, sorted by timestamp
            and transaction id.
    """

    days: list[date]
    counts: list[int]
    frame: pl.DataFrame

    def day_frames(self) -> Iterator[tuple[date, pl.DataFrame]]:
        """Yield each day with its rows."""
        offset = 0
        for day, count in zip(self.days, self.counts, strict=True):
            yield day, self.frame.slice(offset, count)
            offset += count


class Generation:
    """One generation run: the population and fraud plan, and the shards of days."""

    def __init__(self, config: GeneratorConfig) -> None:
        self.config = config
        self.population: Population = build_population(config)
        self.plan: FraudPlan = plan_fraud(self.population, config)
        self._plan_day_index = (
            self.plan.rows.timestamp_us - day_start_us(config.start)
        ) // MICROS_PER_DAY

    def day_block(self, day_index: int) -> Block:
        """Return the ordered payments of the day ``day_index`` (0-based)."""
        day = self.config.start + timedelta(days=day_index)
        legitimate = legitimate_day(
            self.population,
            self.config.population,
            seed=self.config.seed,
            day_index=day_index,
            day=day,
        )
        planned = self.plan.rows.take(self._plan_day_index == day_index)
        rows = Block.concat([legitimate, planned])
        return order_day(rows, stream(self.config.seed, "ordering", day_index))

    def shard(self, first_day: int, n_days: int) -> Shard:
        """Generate ``n_days`` days from day index ``first_day``."""
        indices = range(first_day, min(first_day + n_days, self.config.n_days))
        blocks = [self.day_block(index) for index in indices]
        days = [self.config.start + timedelta(days=index) for index in indices]
        counts = [len(block) for block in blocks]
        frame = to_frame(
            self.population, Block.concat(blocks), days=days, counts=counts
        )
        return Shard(days=days, counts=counts, frame=frame)

    def shards(self) -> Iterator[Shard]:
        """Yield every shard of ``shard_days`` days in order."""
        step = self.config.shard_days
        for first_day in range(0, self.config.n_days, step):
            yield self.shard(first_day, step)


def generate_frame(config: GeneratorConfig) -> pl.DataFrame:
    """Generate every transaction of ``config`` into one in-memory frame.

    Meant for small sizes: memory grows with the total row count. Use
    ``generate_to_path`` for large data sets.

    Returns:
        Rows in the canonical schema, sorted by timestamp and transaction id.
    """
    generation = Generation(config)
    expected = float(generation.population.card_daily_rate.sum()) * config.n_days
    if expected > FRAME_ROWS_WARNING:
        logger.warning(
            "generate_frame keeps about %.0f rows in memory; to bound memory, use "
            "generate_to_path, which writes one shard at a time",
            expected,
        )
    frames = [shard.frame for shard in generation.shards()]
    return pl.concat(frames) if frames else pl.DataFrame()


def scenario_counts(frame: pl.DataFrame) -> dict[str, int]:
    """Count fraudulent rows per scenario name."""
    counts = frame.filter(pl.col("is_fraud")).group_by("fraud_scenario").len()
    return dict(
        zip(counts["fraud_scenario"].to_list(), counts["len"].to_list(), strict=True)
    )
