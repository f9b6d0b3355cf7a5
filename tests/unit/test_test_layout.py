"""The test tree: pytest imports test modules by basename, so basenames must differ."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEST_FOLDERS = ("tests", "datagen/tests")


def test_test_module_basenames_unique():
    names = Counter(
        path.name
        for folder in TEST_FOLDERS
        for path in (ROOT / folder).rglob("test_*.py")
    )
    duplicated = sorted(name for name, count in names.items() if count > 1)
    assert duplicated == [], f"rename one of each: {duplicated}"
