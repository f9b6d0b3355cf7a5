"""Benchmarks: wall time and peak memory of every pipeline stage at full size.

The stages run in process on a temporary workspace, so the pipeline's own outputs and
MLflow store stay untouched. Papermill and DVC overhead (kernel start, about 5 to 10 s a
stage) is not included.
"""

from __future__ import annotations

import logging
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

from cardfraud.params import load_params
from cardfraud.paths import Workspace
from cardfraud.pipeline import STAGES, run_stage

logger = logging.getLogger(__name__)


def peak_rss_mib() -> float:
    """Return the process's peak resident memory so far in MiB (ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_stages(params_path: Path) -> list[dict[str, float | str]]:
    """Run every stage once on a temporary workspace and time it.

    Returns:
        One row per stage: name, seconds, and peak RSS in MiB after the stage.
    """
    params = load_params(params_path)
    rows: list[dict[str, float | str]] = []
    with tempfile.TemporaryDirectory(prefix="cardfraud-bench-") as folder:
        ws = Workspace(Path(folder))
        for stage in STAGES:
            started = time.perf_counter()
            run_stage(stage.name, ws, params)
            seconds = time.perf_counter() - started
            rows.append(
                {
                    "stage": stage.name,
                    "seconds": round(seconds, 1),
                    "peak_rss_mib": round(peak_rss_mib()),
                }
            )
            logger.info("%s: %.1f s", stage.name, seconds)
    return rows


def markdown_table(rows: list[dict[str, float | str]]) -> str:
    """Format the rows as a markdown table with a total line."""
    lines = ["| stage | seconds | peak RSS (MiB) |", "|---|---:|---:|"]
    lines += [
        f"| {row['stage']} | {row['seconds']} | {row['peak_rss_mib']} |" for row in rows
    ]
    total = sum(float(row["seconds"]) for row in rows)
    lines.append(f"| total | {total:.1f} | |")
    return "\n".join(lines)


def machine_description() -> str:
    """Describe the machine a benchmark ran on: architecture, cores, Python."""
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
