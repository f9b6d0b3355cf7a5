"""Generate stage: raw transactions from fraudgen, or from an external table.

With ``data.source`` unset the stage runs the generator. With it set, the stage ingests
that table through the mapping in ``data.mapping`` instead. Either way it writes the
same layout: daily parquet partitions plus ``manifest.json`` in ``ws.raw_dir``.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

import fraudgen
from cardfraud.ingest import ingest_table
from cardfraud.params import DataParams, GenerateParams
from cardfraud.paths import Workspace, project_root
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


def run(
    ws: Workspace, params: GenerateParams, *, data: DataParams | None = None
) -> dict[str, Any]:
    """Write the raw transactions into ``ws.raw_dir``, replacing earlier output.

    Args:
        ws: Workspace to write to.
        params: Generator parameters; unused when ``data.source`` is set.
        data: Source of the data. With ``data.source`` set, that table is ingested
            through ``data.mapping`` instead of generating.

    Returns:
        A JSON-serialisable summary (see ``summarise`` and ``summarise_ingest``).

    Raises:
        cardfraud.ingest.IngestError: The external table or its mapping is invalid;
            ``ws.raw_dir`` is then left as it was.
    """
    if data is not None and data.source is not None:
        return run_ingest(ws, data)
    return run_generator(ws, params)


def run_generator(ws: Workspace, params: GenerateParams) -> dict[str, Any]:
    """Generate the synthetic transactions of ``params`` into ``ws.raw_dir``."""
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


def resolve_project_path(path: str) -> Path:
    """Return ``path`` as is when absolute, else relative to the project root."""
    candidate = Path(path)
    return candidate if candidate.is_absolute() else project_root() / candidate


def run_ingest(ws: Workspace, data: DataParams) -> dict[str, Any]:
    """Ingest the external table of ``data.source`` into ``ws.raw_dir``."""
    if data.source is None or data.mapping is None:
        raise ValueError("data.source and data.mapping must both be set to ingest")
    source = resolve_project_path(data.source)
    mapping = resolve_project_path(data.mapping)
    logger.info("ingesting %s with mapping %s", source, mapping)
    manifest = ingest_table(
        source,
        mapping,
        ws.raw_dir,
        overwrite=True,
        source_label=data.source,
        mapping_label=data.mapping,
    )
    return summarise_ingest(manifest, ws.raw_dir / "manifest.json")


def summarise_ingest(manifest: dict[str, Any], manifest_path: Path) -> dict[str, Any]:
    """Return the stage summary of an ingested table: sizes, source and hashes."""
    rows, frauds = manifest["rows"], manifest["frauds"]
    return {
        "rows": rows,
        "frauds": frauds,
        "prevalence": round(frauds / rows, 6),
        "scenarios": manifest["scenarios"],
        "days": manifest["days"],
        "start": manifest["start"],
        "end": manifest["end"],
        "source_path": manifest["source_path"],
        "source_sha256": manifest["source_sha256"],
        "mapping_hash": manifest["mapping_hash"],
        "manifest_sha256": hashlib.sha256(manifest_path.read_bytes()).hexdigest(),
    }
