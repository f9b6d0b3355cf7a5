"""Named configurations shipped with fraudgen, each a YAML file in this package.

A preset is merged over the defaults like a user config file, and a user file and
command-line options are merged over the preset.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

from fraudgen.config import ConfigError

PRESET_SUFFIX = ".yaml"


def preset_names() -> list[str]:
    """Return the names of the shipped presets, sorted."""
    folder = resources.files(__name__)
    return sorted(
        entry.name.removesuffix(PRESET_SUFFIX)
        for entry in folder.iterdir()
        if entry.name.endswith(PRESET_SUFFIX)
    )


def load_preset(name: str) -> dict[str, Any]:
    """Return the values of the preset ``name`` as a nested dict.

    Raises:
        ConfigError: No preset is called ``name``; the message lists the shipped
            ones.
    """
    if name not in preset_names():
        raise ConfigError(
            f"unknown preset {name!r}; choose one of {', '.join(preset_names())}"
        )
    resource = resources.files(__name__).joinpath(name + PRESET_SUFFIX)
    values = yaml.safe_load(resource.read_text("utf-8"))
    return values or {}
