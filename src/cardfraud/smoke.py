"""Execute every stage notebook at its smoke-size defaults, in pipeline order.

The notebooks' own parameter cells hold small sizes, and their outputs go to a smoke
workspace (``$CARDFRAUD_SMOKE_DIR``), so this never touches the pipeline's outputs.
Usage: ``cardfraud notebook smoke --out DIR [--workspace DIR]``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import yaml

from cardfraud.notebooks import KERNEL_NAME, strip_file
from cardfraud.paths import SMOKE_DIR_ENV, project_root
from cardfraud.pipeline import STAGES

logger = logging.getLogger(__name__)

# Smoke sizes: seconds per stage, with enough fraud to train on. The notebooks'
# parameter cells hold params.yaml with these values replaced.
SMOKE_OVERRIDES: dict[str, dict[str, Any]] = {
    "generate": {"rows": 6000, "days": 60, "fraud_rate": 0.02},
    "validate_raw": {"prevalence_min": 0.005, "prevalence_max": 0.06},
    "train": {
        "cutoff": "2025-02-16",
        "test_days": 14,
        "maturity_days": 5,
        "burn_in_days": 3,
        "folds": 2,
        "fold_days": 5,
        "trials": 3,
        "max_estimators": 60,
        "negative_sample_rate": 0.5,
    },
    "evaluate": {"bootstrap_rounds": 50},
    "explain": {"sample_rows": 300},
    "monitor": {
        "replay_days": 14,
        "maturity_days": 5,
        "performance_window_days": 3,
        "min_frauds": 5,
        "drift_min_rows": 30,
        "bootstrap_rounds": 20,
        "skew_sample": 200,
    },
}


def smoke_params(
    overrides: dict[str, dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Return params.yaml's sections with smoke sizes and any further overrides."""
    params = yaml.safe_load(
        (project_root() / "params.yaml").read_text(encoding="utf-8")
    )
    for section, values in (SMOKE_OVERRIDES | (overrides or {})).items():
        params[section] = {**params[section], **values}
    return params


def execute_notebooks(out_dir: Path, *, workspace_dir: Path) -> list[Path]:
    """Execute each stage notebook into ``out_dir`` and strip volatile metadata.

    Args:
        out_dir: Folder for the executed notebooks, named as in notebooks/.
        workspace_dir: Smoke workspace the notebooks write their outputs to.

    Returns:
        The executed notebooks, in pipeline order.
    """
    import papermill

    root = project_root()
    out_dir.mkdir(parents=True, exist_ok=True)
    workspace_dir.mkdir(parents=True, exist_ok=True)
    previous = os.environ.get(SMOKE_DIR_ENV)
    os.environ[SMOKE_DIR_ENV] = str(workspace_dir)
    executed: list[Path] = []
    try:
        for stage in STAGES:
            source = root / "notebooks" / f"{stage.notebook}.ipynb"
            target = out_dir / source.name
            logger.info("executing %s at smoke size", source.name)
            papermill.execute_notebook(
                str(source),
                str(target),
                kernel_name=KERNEL_NAME,
                cwd=str(root),
                progress_bar=False,
            )
            strip_file(target)
            executed.append(target)
    finally:
        if previous is None:
            os.environ.pop(SMOKE_DIR_ENV, None)
        else:
            os.environ[SMOKE_DIR_ENV] = previous
    return executed
