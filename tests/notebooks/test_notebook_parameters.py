"""The stage notebooks' parameter cells: smoke defaults and an isolated workspace."""

from __future__ import annotations

import ast

import nbformat
import pytest

from cardfraud.notebooks import KERNEL_NAME
from cardfraud.paths import project_root, resolve_workspace
from cardfraud.pipeline import STAGES
from cardfraud.smoke import smoke_params

NOTEBOOKS = [
    project_root() / "notebooks" / f"{stage.notebook}.ipynb" for stage in STAGES
]


def parameter_values(path) -> dict:
    notebook = nbformat.read(path, as_version=4)
    cells = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
    values = {}
    for node in ast.parse(cells[0].source).body:
        assert isinstance(node, ast.Assign), f"{path.name}: only assignments allowed"
        values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_parameters_cell_matches_smoke_params(path):
    values = parameter_values(path)
    expected = smoke_params()
    assert values.pop("workspace") is None
    assert values
    for section, section_values in values.items():
        assert section_values == expected[section], section


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_uses_project_kernel(path):
    notebook = nbformat.read(path, as_version=4)
    assert notebook.metadata["kernelspec"]["name"] == KERNEL_NAME


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_committed_notebook_has_no_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(not cell.outputs for cell in code_cells)
    assert all(cell.execution_count is None for cell in code_cells)


def test_smoke_workspace_outside_repository_in_tests():
    root = project_root()
    workspace = resolve_workspace(None).root
    assert not workspace.is_relative_to(root)
