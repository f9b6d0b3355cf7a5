"""Run the benchmarks and print markdown tables for docs/benchmarks.md.

Usage: ``python -m benchmarks [--params FILE]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
from pathlib import Path

from benchmarks.pipeline import markdown_table, time_stages
from cardfraud.paths import project_root


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="Run the project's benchmarks.")
    parser.add_argument(
        "--params",
        type=Path,
        default=project_root() / "params.yaml",
        help="parameters file",
    )
    arguments = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    print(f"machine: {machine}, Python {platform.python_version()}")
    print(f"params: {arguments.params}")
    print()
    print("## Pipeline stages, in process")
    print(markdown_table(time_stages(arguments.params)))


if __name__ == "__main__":
    main()
