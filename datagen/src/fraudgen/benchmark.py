"""Throughput and peak memory of the generator against the per-row reference.

Each measurement runs in a child process of its own, so that its peak resident
memory is its own and includes the interpreter and the imports, as a user sees it.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Runs a command and prints its wall seconds and the peak RSS of its process in KiB.
_PROBE = """\
import resource, subprocess, sys, time
started = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
seconds = time.perf_counter() - started
print(seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""
_REFERENCE = """\
import sys
import fraudgen
from fraudgen.reference import generate_reference
config = fraudgen.build_config({"rows": int(sys.argv[1]), "seed": int(sys.argv[2])})
print(generate_reference(config, sys.argv[3]))
"""


@dataclass(frozen=True)
class Measurement:
    """One timed run.

    Attributes:
        implementation: ``vectorised`` or ``per-row reference``.
        target_rows: Rows asked for.
        rows: Rows written.
        seconds: Wall-clock seconds of the whole process, start-up included.
        peak_rss_mib: Peak resident memory of the process in MiB.
    """

    implementation: str
    target_rows: int
    rows: int
    seconds: float
    peak_rss_mib: float

    @property
    def rows_per_second(self) -> float:
        """Rows written per wall-clock second."""
        return self.rows / self.seconds


def _run(command: list[str]) -> tuple[float, float]:
    output = subprocess.run(
        [sys.executable, "-c", _PROBE, *command],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return float(output[0]), float(output[1]) / 1024


def time_generate(rows: int, *, seed: int, out: Path, repeat: int = 1) -> Measurement:
    """Time ``fraudgen generate --rows ROWS`` writing to ``out``.

    With ``repeat`` above 1 the fastest run counts, and the largest peak memory:
    other work on the machine only ever slows a run down.
    """
    command = [sys.executable, "-m", "fraudgen", "generate", "--out", str(out)]
    command += ["--rows", str(rows), "--seed", str(seed), "--quiet", "--overwrite"]
    runs = [_run(command) for _ in range(repeat)]
    seconds = min(run[0] for run in runs)
    peak = max(run[1] for run in runs)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return Measurement("vectorised", rows, manifest["rows"], seconds, peak)


def time_reference(rows: int, *, seed: int, out: Path) -> Measurement:
    """Time the per-row reference implementation writing to ``out``."""
    command = [sys.executable, "-c", _REFERENCE, str(rows), str(seed), str(out)]
    seconds, peak = _run(command)
    if not any(out.glob("dt=*/part-0.parquet")):
        raise RuntimeError(f"the reference wrote no partition to {out}")
    import polars as pl

    realised = pl.scan_parquet(out / "dt=*" / "part-0.parquet").select(pl.len())
    return Measurement(
        "per-row reference", rows, int(realised.collect().item()), seconds, peak
    )


def run_benchmark(
    sizes: list[int], *, reference_sizes: list[int], seed: int, repeat: int = 3
) -> list[Measurement]:
    """Measure the generator at ``sizes`` and the reference at ``reference_sizes``.

    The generator runs ``repeat`` times per size and its fastest run counts; the
    reference, which takes minutes, runs once.
    """
    results = []
    with tempfile.TemporaryDirectory(prefix="fraudgen-bench-") as folder:
        for size in sizes:
            out = Path(folder) / "gen"
            results.append(time_generate(size, seed=seed, out=out, repeat=repeat))
        for size in reference_sizes:
            target = Path(folder) / f"reference-{size}"
            results.append(time_reference(size, seed=seed, out=target))
    return results


def markdown_table(results: list[Measurement]) -> str:
    """Format measurements as a markdown table with the speed-up over the reference."""
    reference = {
        r.target_rows: r.rows_per_second
        for r in results
        if r.implementation != "vectorised"
    }
    lines = [
        "| implementation | target rows | realised rows | seconds | rows per second "
        "| peak RSS (MiB) | speed-up |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        base = reference.get(r.target_rows)
        speed_up = f"{r.rows_per_second / base:.1f}×" if base else ""
        lines.append(
            f"| {r.implementation} | {r.target_rows:,} | {r.rows:,} | {r.seconds:.2f} "
            f"| {r.rows_per_second:,.0f} | {r.peak_rss_mib:.0f} | {speed_up} |"
        )
    return "\n".join(lines)


def machine() -> str:
    """Describe the machine: architecture, cores and Python version."""
    python = platform.python_version()
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {python}"
