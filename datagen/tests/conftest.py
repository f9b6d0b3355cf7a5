"""Shared fixtures: small configurations that generate in well under a second."""

from __future__ import annotations

from typing import Any

import pytest

import fraudgen

SMALL = {"rows": 6000, "days": 21, "fraud_rate": 0.01, "seed": 7}


def small_config(**changes: Any) -> fraudgen.GeneratorConfig:
    """Return the small test configuration with ``changes`` applied."""
    return fraudgen.build_config({**SMALL, **changes})


@pytest.fixture(name="make_config")
def make_config_fixture():
    """Return ``small_config``, so tests build variants of the small configuration."""
    return small_config


@pytest.fixture(scope="session")
def small_frame():
    """One generated frame of the small configuration, shared by read-only tests."""
    return fraudgen.generate_frame(small_config())
