"""Executed notebooks with stable bytes for DVC, and the project's Jupyter kernel."""

from __future__ import annotations

import ast
import logging
import sys
from pathlib import Path

import nbformat

logger = logging.getLogger(__name__)

KERNEL_NAME = "cardfraud"
KERNEL_DISPLAY_NAME = "Python 3.12 (cardfraud)"

# Environment of the kernel: telemetry off, and no progress bars or informational logs
# that would write machine-specific paths and timings into executed notebooks.
KERNEL_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "BENTOML_DO_NOT_TRACK": "true",
    "FEAST_USAGE": "False",
    "TQDM_DISABLE": "1",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_LOGGING_LEVEL": "WARNING",
}

# Cell and notebook metadata that papermill and Jupyter rewrite on every run.
VOLATILE_CELL_KEYS = ("papermill", "execution", "ExecuteTime", "collapsed", "scrolled")
VOLATILE_NOTEBOOK_KEYS = ("widgets",)
VOLATILE_PAPERMILL_KEYS = (
    "start_time",
    "end_time",
    "duration",
    "exception",
    "input_path",
    "output_path",
    "environment_variables",
    "version",
)


def declared_parameters(notebook: nbformat.NotebookNode) -> set[str]:
    """Return the names assigned at top level in the cell tagged ``parameters``."""
    names: set[str] = set()
    for cell in notebook.cells:
        if cell.cell_type != "code" or "parameters" not in cell.metadata.get(
            "tags", []
        ):
            continue
        for node in ast.parse(cell.source).body:
            targets = node.targets if isinstance(node, ast.Assign) else []
            if isinstance(node, ast.AnnAssign):
                targets = [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def keep_declared_parameters(notebook: nbformat.NotebookNode) -> None:
    """Drop injected parameters that the notebook's parameters cell does not declare.

    ``papermill -f params.yaml`` injects every section of the file. Keeping only the
    declared ones makes an executed notebook depend on its own stage's parameters,
    as the stage's ``params`` in dvc.yaml do. Changes ``notebook`` in place.
    """
    from papermill.translators import PythonTranslator

    papermill = notebook.metadata.get("papermill")
    if not papermill or "parameters" not in papermill:
        return
    declared = declared_parameters(notebook)
    injected = papermill["parameters"]
    declared_values = {
        name: value for name, value in injected.items() if name in declared
    }
    papermill["parameters"] = declared_values
    for cell in notebook.cells:
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.source = PythonTranslator.codify(declared_values, "Parameters").rstrip(
                "\n"
            )


def strip_volatile_metadata(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return a copy of a notebook without timestamps, durations and execution counts.

    Outputs and the parameters the notebook declares are kept, so an executed notebook
    is a stable record of what the run showed: two runs with the same inputs give the
    same bytes.
    """
    cleaned = nbformat.from_dict(notebook)
    keep_declared_parameters(cleaned)
    for key in VOLATILE_NOTEBOOK_KEYS:
        cleaned.metadata.pop(key, None)
    papermill = cleaned.metadata.get("papermill")
    if papermill is not None:
        for key in VOLATILE_PAPERMILL_KEYS:
            papermill.pop(key, None)
    for index, cell in enumerate(cleaned.cells):
        for key in VOLATILE_CELL_KEYS:
            cell.metadata.pop(key, None)
        # papermill gives its injected cell a random id; ids by position are stable.
        cell.id = f"cell-{index:03d}"
        if cell.cell_type == "code":
            cell.execution_count = None
            for output in cell.outputs:
                if "execution_count" in output:
                    output.execution_count = None
    cleaned.nbformat_minor = max(cleaned.nbformat_minor, 5)
    return cleaned


def strip_file(path: Path) -> None:
    """Rewrite an executed notebook in place without its volatile metadata."""
    notebook = nbformat.read(path, as_version=4)
    cleaned = strip_volatile_metadata(notebook)
    nbformat.write(cleaned, path)
    logger.info("stripped volatile metadata from %s", path)


def install_kernel(*, user: bool = False) -> str:
    """Register this interpreter as the Jupyter kernel ``cardfraud``.

    The kernel goes into the virtual environment (``--sys-prefix``) unless ``user``
    is set, so JupyterLab, papermill and nbval started from the environment find it.
    It starts with ``KERNEL_ENV`` set.

    Returns:
        The folder the kernel spec was written to.
    """
    from ipykernel.kernelspec import install

    destination = install(
        kernel_name=KERNEL_NAME,
        display_name=KERNEL_DISPLAY_NAME,
        prefix=None if user else sys.prefix,
        user=user,
        env=KERNEL_ENV,
    )
    logger.info("installed Jupyter kernel %r in %s", KERNEL_NAME, destination)
    return destination
