"""The ordered pipeline stages and the params section each one reads."""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cardfraud.params import PipelineParams, load_params
from cardfraud.paths import Workspace

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    """One pipeline stage: its module under ``cardfraud.stages`` and params sections.

    ``extra_sections`` are passed to the module's ``run`` as keyword arguments.
    """

    name: str
    notebook: str
    section: str | None
    extra_sections: tuple[str, ...] = ()


STAGES: tuple[Stage, ...] = (
    Stage("generate", "01_generate", "generate", extra_sections=("data",)),
    Stage("validate_raw", "02_validate_raw", "validate_raw"),
    Stage("build_features", "03_build_features", "features"),
    Stage("validate_features", "04_validate_features", "validate_features"),
    Stage("train", "05_train", "train"),
    Stage("evaluate", "06_evaluate", "evaluate"),
    Stage("explain", "07_explain", "explain"),
    Stage("register", "08_register", "registry"),
    Stage("report", "09_report", "registry"),
    Stage("replay", "10_replay", "monitor", extra_sections=("features", "registry")),
    Stage("monitor", "11_monitor", "monitor", extra_sections=("registry", "evaluate")),
)
STAGE_BY_NAME: dict[str, Stage] = {stage.name: stage for stage in STAGES}


def get_stage(name: str) -> Stage:
    """Look a stage up by name.

    Raises:
        KeyError: The name is not a stage; the message lists the valid names.
    """
    try:
        return STAGE_BY_NAME[name]
    except KeyError:
        raise KeyError(
            f"unknown stage {name!r}; choose one of {', '.join(STAGE_BY_NAME)}"
        ) from None


def run_stage(name: str, ws: Workspace, params: PipelineParams) -> dict[str, Any]:
    """Run one stage in this process and return its summary."""
    stage = get_stage(name)
    module = importlib.import_module(f"cardfraud.stages.{stage.name}")
    section = getattr(params, stage.section) if stage.section else None
    extras = {name: getattr(params, name) for name in stage.extra_sections}
    logger.info("stage %s: starting in %s", stage.name, ws.root)
    summary = module.run(ws, section, **extras)
    logger.info("stage %s: done", stage.name)
    return summary


def run_pipeline(
    ws: Workspace, params_path: Path, *, until: str | None = None
) -> dict[str, dict[str, Any]]:
    """Run every stage in order in this process, stopping after ``until`` if given.

    This path skips papermill and DVC; tests and quick checks use it, while
    ``dvc repro`` runs the notebooks.
    """
    params = load_params(params_path)
    if until is not None:
        get_stage(until)
    summaries: dict[str, dict[str, Any]] = {}
    for stage in STAGES:
        summaries[stage.name] = run_stage(stage.name, ws, params)
        if stage.name == until:
            break
    return summaries
