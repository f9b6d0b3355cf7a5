"""fraudgen: synthetic card payments with labelled fraud scenarios.

The same seed and configuration give byte-identical output.

Public API:
    load_config, build_config: read and validate a configuration.
    generate_frame: generate a small data set into a polars DataFrame.
    generate_to_path: write daily parquet partitions and a manifest.
"""

from __future__ import annotations

__version__ = "0.3.0"

from fraudgen.config import (
    SCENARIOS,
    ConfigError,
    GeneratorConfig,
    build_config,
    load_config,
)
from fraudgen.frame import SCHEMA
from fraudgen.generator import generate_frame
from fraudgen.writer import Manifest, generate_to_path

__all__ = [
    "SCENARIOS",
    "SCHEMA",
    "ConfigError",
    "GeneratorConfig",
    "Manifest",
    "__version__",
    "build_config",
    "generate_frame",
    "generate_to_path",
    "load_config",
]
