"""Shared fixtures: a smoke-size pipeline run, smoke-executed notebooks and servers.

The pipeline and notebooks build everything in temporary folders: the pipeline's own
data/, models/, state/ and reports/executed/ are never read or written by the tests.
The servers (redis-server, and moto in place of AWS) listen on 127.0.0.1 only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cardfraud.paths import Workspace
from cardfraud.smoke import smoke_params


def write_smoke_params(
    target: Path, overrides: dict[str, dict[str, Any]] | None = None
) -> Path:
    """Write params.yaml with smoke sizes (and any further overrides) to ``target``."""
    params = smoke_params(overrides)
    target.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return target


@pytest.fixture(scope="session")
def smoke_params_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """params.yaml at smoke size, in a temporary folder."""
    return write_smoke_params(tmp_path_factory.mktemp("params") / "params.yaml")


@pytest.fixture(scope="session")
def smoke_workspace(
    tmp_path_factory: pytest.TempPathFactory, smoke_params_path: Path
) -> Iterator[Workspace]:
    """A workspace where every stage has run in process, champion registered.

    The MLflow store is the workspace's own SQLite file.
    """
    from cardfraud.pipeline import run_pipeline

    ws = Workspace(tmp_path_factory.mktemp("smoke-workspace"))
    run_pipeline(ws, smoke_params_path)
    yield ws


@pytest.fixture(scope="session")
def executed_notebooks_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every stage notebook executed by papermill at its smoke-size defaults."""
    from cardfraud.smoke import execute_notebooks

    out_dir = tmp_path_factory.mktemp("executed")
    execute_notebooks(
        out_dir, workspace_dir=tmp_path_factory.mktemp("notebook-workspace")
    )
    return out_dir


@pytest.fixture(scope="module")
def redis_connection(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a redis-server on 127.0.0.1 for one test module.

    The server keeps no data on disk. The test is skipped when ``redis-server`` is
    not installed.
    """
    from tests.support.servers import redis_server_or_skip

    with redis_server_or_skip(tmp_path_factory.mktemp("redis")) as server:
        yield server.connection


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """URL of a moto server on 127.0.0.1 in place of AWS, for the whole session.

    Resources stay between tests, so a test that needs an empty server requests
    ``fresh_moto_url``.
    """
    from tests.support.aws import moto_server

    with moto_server() as url:
        yield url


@pytest.fixture
def fresh_moto_url(moto_url: str) -> str:
    """URL of the session's moto server, with every resource deleted."""
    from tests.support.aws import reset_moto

    reset_moto(moto_url)
    return moto_url
