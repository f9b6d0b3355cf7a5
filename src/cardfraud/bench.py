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


def time_generator(rows: int, *, seed: int, out_dir: Path) -> dict[str, float | int]:
    """Run ``fraudgen generate`` for ``rows`` transactions in a child process.

    A child process per size gives each run its own peak resident memory.

    Returns:
        rows (realised), seconds, transactions per second and peak RSS in MiB.
    """
    import json
    import subprocess
    import sys

    command = [sys.executable, "-m", "fraudgen", "generate", "--out", str(out_dir)]
    command += ["--rows", str(rows), "--seed", str(seed), "--quiet"]
    probe = (
        "import resource, subprocess, sys, time\n"
        "started = time.perf_counter()\n"
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
        "seconds = time.perf_counter() - started\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(seconds, peak)\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", probe, *command],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    seconds, peak = float(output[0]), float(output[1])
    manifest = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
    return {
        "rows": manifest["rows"],
        "seconds": round(seconds, 1),
        "rows_per_second": round(manifest["rows"] / seconds),
        "peak_rss_mib": round(peak),
    }


def generator_table(sizes: list[int], *, seed: int) -> str:
    """Time the generator at each size and format a markdown table."""
    lines = [
        "| target rows | realised rows | seconds | rows per second | peak RSS (MiB) |",
        "|---:|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory(prefix="cardfraud-bench-gen-") as folder:
        for size in sizes:
            result = time_generator(size, seed=seed, out_dir=Path(folder) / str(size))
            logger.info("fraudgen %d rows: %s", size, result)
            lines.append(
                f"| {size:,} | {result['rows']:,} | {result['seconds']} "
                f"| {result['rows_per_second']:,} | {result['peak_rss_mib']} |"
            )
    return "\n".join(lines)
