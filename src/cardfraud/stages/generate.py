"""Generate stage: synthetic transactions from fraudgen into the raw data folder."""

from __future__ import annotations

import hashlib
import logging
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

import fraudgen
from cardfraud.params import GenerateParams
from cardfraud.paths import Workspace
from cardfraud.schema import validate_frame

logger = logging.getLogger(__name__)


def build_config(params: GenerateParams) -> fraudgen.GeneratorConfig:
    """Build the fraudgen configuration from the stage parameters.

    Parameters not in ``GenerateParams`` keep fraudgen's shipped defaults.
    """
    return fraudgen.build_config(
        {
            "rows": params.rows,
            "days": params.days,
            "start": params.start,
            "fraud_rate": params.fraud_rate,
            "seed": params.seed,
            "write_csv": params.write_csv,
        }
    )


def check_partition(raw_dir: Path, manifest: fraudgen.Manifest) -> str:
    """Validate the first non-empty daily partition against the canonical schema.

    Returns:
        The relative path of the partition checked.

    Raises:
        cardfraud.schema.SchemaError: The partition breaks the schema.
        FileNotFoundError: The data set has no rows.
    """
    for entry in manifest.files:
        if entry.path.endswith(".parquet") and entry.rows > 0:
            validate_frame(pl.read_parquet(raw_dir / entry.path), require_labels=True)
            return entry.path
    raise FileNotFoundError(
        f"no non-empty parquet partition in {raw_dir}; increase generate.rows or days"
    )


def summarise(manifest: fraudgen.Manifest, manifest_path: Path) -> dict[str, Any]:
    """Return the stage summary: sizes, prevalence, scenario counts and hashes."""
    return {
        "rows": manifest.rows,
        "frauds": manifest.frauds,
        "prevalence": round(manifest.fraud_rate, 6),
        "scenarios": {
            name: counts["rows"] for name, counts in manifest.scenarios.items()
        },
        "days": manifest.days,
        "start": manifest.start,
        "end": manifest.end,
        "config_hash": manifest.config_hash,
        "manifest_sha256": hashlib.sha256(manifest_path.read_bytes()).hexdigest(),
    }


def run(ws: Workspace, params: GenerateParams) -> dict[str, Any]:
    """Generate the raw transactions into ``ws.raw_dir``, replacing earlier output.

    Returns:
        A JSON-serialisable summary (see ``summarise``).
    """
    config = build_config(params)
    logger.info(
        "generating about %d transactions over %d days from %s (seed %d)",
        params.rows,
        params.days,
        date.isoformat(params.start),
        params.seed,
    )
    manifest = fraudgen.generate_to_path(config, ws.raw_dir, overwrite=True)
    checked = check_partition(ws.raw_dir, manifest)
    logger.info("partition %s matches the canonical schema", checked)
    return summarise(manifest, ws.raw_dir / "manifest.json")
