"""Stage report: gather the run's headline figures into one summary for the site."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from cardfraud.params import RegisterParams
from cardfraud.paths import Workspace
from cardfraud.reporting import flatten_mapping

logger = logging.getLogger(__name__)


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object written by an earlier stage.

    Raises:
        FileNotFoundError: The earlier stage has not run in this workspace; the
            message names the file and the stage to run.
    """
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: run the stages before 'report' in this workspace"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def run(ws: Workspace, params: RegisterParams) -> dict[str, Any]:
    """Write ``reports/summary.json`` from the manifest, metrics and registration.

    Returns:
        The summary: data (rows, frauds, manifest hash), training and test metrics,
        and the registered model version with its alias.
    """
    manifest = read_json(ws.raw_dir / "manifest.json")
    summary = {
        "model_name": params.model_name,
        "data": {
            key: manifest[key]
            for key in ("rows", "frauds", "config_hash", "package_version", "seed")
            if key in manifest
        },
        "train": flatten_mapping(read_json(ws.metrics_dir / "train.json")),
        "evaluate": flatten_mapping(read_json(ws.metrics_dir / "evaluate.json")),
        "registration": read_json(ws.registration_file),
    }
    ws.reports_dir.mkdir(parents=True, exist_ok=True)
    target = ws.reports_dir / "summary.json"
    target.write_text(
        json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    logger.info("wrote %s", target)
    return summary
