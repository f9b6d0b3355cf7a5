"""Loading of raw transactions from the data lake's daily parquet partitions."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import polars as pl

from cardfraud import schema

logger = logging.getLogger(__name__)

PARTITION_PATTERN = re.compile(r"^dt=\d{4}-\d{2}-\d{2}$")


def list_partitions(raw_dir: Path) -> list[Path]:
    """Return the parquet files of the ``dt=YYYY-MM-DD`` partitions, sorted by path.

    Raises:
        FileNotFoundError: ``raw_dir`` does not exist or has no parquet partition.
    """
    if not raw_dir.is_dir():
        raise FileNotFoundError(
            f"raw data folder {raw_dir} not found: run the generate stage first"
        )
    files = sorted(
        path
        for folder in raw_dir.iterdir()
        if folder.is_dir() and PARTITION_PATTERN.match(folder.name)
        for path in folder.glob("*.parquet")
    )
    if not files:
        raise FileNotFoundError(
            f"no parquet files under {raw_dir}/dt=YYYY-MM-DD/: run the generate stage "
            "or write partitions in that layout"
        )
    return files


def read_transactions(raw_dir: Path) -> pl.DataFrame:
    """Read every raw partition into one frame of canonical, labelled transactions.

    The partition column ``dt`` is not added, because the timestamp carries the day.

    Args:
        raw_dir: Folder with ``dt=YYYY-MM-DD/*.parquet`` partitions in the schema.

    Returns:
        Transactions in schema column order, sorted by ``(timestamp, transaction_id)``.

    Raises:
        FileNotFoundError: No partition exists.
        schema.SchemaError: The data breaks the canonical schema (missing column,
            wrong dtype, nulls in a required column, duplicated ``transaction_id``).
    """
    files = list_partitions(raw_dir)
    frame = pl.read_parquet(files, hive_partitioning=False)
    frame = schema.validate_frame(frame, require_labels=True)
    frame = frame.sort("timestamp", "transaction_id")
    logger.info(
        "read %d transactions from %d files in %s", frame.height, len(files), raw_dir
    )
    return frame
