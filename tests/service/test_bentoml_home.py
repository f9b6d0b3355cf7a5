"""One BentoML home per ``cardfraud serve`` process, and the removal of stale ones."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cardfraud.service_metrics import SERVICE_HOMES_FOLDER, isolated_bentoml_home


def stopped_pid() -> int:
    """Return the id of a process that has exited."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(timeout=30)
    return process.pid


@pytest.fixture
def running_pid() -> Iterator[int]:
    """The id of a process that runs until the test ends."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"],
        stdin=subprocess.DEVNULL,
    )
    yield process.pid
    process.terminate()
    process.wait(timeout=30)


def metric_file(home: Path) -> Path:
    """Write a file where BentoML keeps a worker's counters and return its path."""
    folder = home / "prometheus_multiproc_dir"
    folder.mkdir(parents=True)
    path = folder / "counter_1.db"
    path.write_bytes(b"\0" * 16)
    return path


def test_home_is_named_after_process(tmp_path: Path) -> None:
    home = isolated_bentoml_home(tmp_path, 4321)
    assert home == tmp_path / SERVICE_HOMES_FOLDER / "4321"
    assert home.is_dir()
    assert list(home.iterdir()) == []


def test_home_of_running_service_kept(tmp_path: Path, running_pid: int) -> None:
    other = metric_file(tmp_path / SERVICE_HOMES_FOLDER / str(running_pid))
    isolated_bentoml_home(tmp_path, 4321)
    assert other.is_file()


def test_home_of_stopped_service_removed(tmp_path: Path) -> None:
    stale = tmp_path / SERVICE_HOMES_FOLDER / str(stopped_pid())
    metric_file(stale)
    isolated_bentoml_home(tmp_path, 4321)
    assert not stale.exists()


def test_stale_home_with_same_pid_emptied(tmp_path: Path) -> None:
    metric_file(tmp_path / SERVICE_HOMES_FOLDER / "4321")
    home = isolated_bentoml_home(tmp_path, 4321)
    assert list(home.iterdir()) == []


def test_other_folders_left_alone(tmp_path: Path) -> None:
    notes_folder = tmp_path / SERVICE_HOMES_FOLDER / "notes"
    notes_folder.mkdir(parents=True)
    isolated_bentoml_home(tmp_path, 4321)
    assert notes_folder.is_dir()
