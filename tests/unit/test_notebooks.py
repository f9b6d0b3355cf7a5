import nbformat

from cardfraud.notebooks import strip_volatile_metadata


def executed_notebook(start: str, duration: float) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("rows = 1\nrows + 1")
    cell.execution_count = 7
    cell.metadata["papermill"] = {"start_time": start, "duration": duration}
    cell.metadata["tags"] = ["parameters"]
    cell.outputs = [
        nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=7)
    ]
    notebook.cells.append(cell)
    notebook.metadata["papermill"] = {
        "start_time": start,
        "end_time": start,
        "duration": duration,
        "parameters": {"rows": 10},
        "input_path": "/somewhere/in.ipynb",
    }
    return notebook


def test_strip_volatile_metadata_gives_equal_bytes():
    first = strip_volatile_metadata(executed_notebook("2025-01-01T00:00", 1.5))
    second = strip_volatile_metadata(executed_notebook("2026-06-30T12:00", 9.25))
    assert nbformat.writes(first) == nbformat.writes(second)


def test_strip_volatile_metadata_keeps_outputs_and_parameters():
    cleaned = strip_volatile_metadata(executed_notebook("2025-01-01T00:00", 1.5))
    cell = cleaned.cells[0]
    assert cell.outputs[0]["data"]["text/plain"] == "2"
    assert cell.outputs[0]["execution_count"] is None
    assert cell.execution_count is None
    assert cell.metadata["tags"] == ["parameters"]
    assert cell.id == "cell-000"
    assert cleaned.metadata["papermill"] == {"parameters": {"rows": 10}}


def test_strip_volatile_metadata_leaves_input_unchanged():
    notebook = executed_notebook("2025-01-01T00:00", 1.5)
    strip_volatile_metadata(notebook)
    assert notebook.cells[0].execution_count == 7
    assert "start_time" in notebook.metadata["papermill"]


def test_strip_volatile_metadata_drops_undeclared_parameters():
    notebook = executed_notebook("2025-01-01T00:00", 1.5)
    injected = nbformat.v4.new_code_cell('# Parameters\nrows = 10\nother = {"a": 1}\n')
    injected.metadata["tags"] = ["injected-parameters"]
    notebook.cells.append(injected)
    notebook.metadata["papermill"]["parameters"] = {"rows": 10, "other": {"a": 1}}
    notebook.cells[0].source = "rows = 5"
    cleaned = strip_volatile_metadata(notebook)
    assert cleaned.metadata["papermill"]["parameters"] == {"rows": 10}
    assert cleaned.cells[1].source == "# Parameters\nrows = 10"
