"""scripts/execute_notebooks.py: the output post-processing and the kernel-side explorer snapshot.

- a plotly output gains an ``image/png`` and keeps its JSON (the site and JupyterLab stay interactive);
- an explorer result becomes the note and a PNG snapshot, with the explorer's own repr as text,
  and the private snapshot format and widget views are gone;
- the IPython startup code, run in a real IPython shell, makes an explorer's display carry its
  figure and repr (no change to the explorer classes).
"""
from __future__ import annotations

import base64
import importlib.util
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("execute_notebooks", ROOT / "scripts" / "execute_notebooks.py")
execute_notebooks = importlib.util.module_from_spec(_spec)
sys.modules["execute_notebooks"] = execute_notebooks
_spec.loader.exec_module(execute_notebooks)

PNG = b"\x89PNG\r\n\x1a\nfake"
FIGURE = {"data": [{"type": "scatter", "y": [1, 3, 2]}], "layout": {"title": {"text": "t"}}}


def _render(calls):
    def render(figure):
        calls.append(figure)
        return PNG
    return render


def _notebook(*outputs) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.from_dict(o) for o in outputs]
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), cell]
    return nb


def test_plotly_output_gets_a_png_and_keeps_its_json():
    calls = []
    nb = _notebook({"output_type": "display_data", "metadata": {},
                    "data": {execute_notebooks.PLOTLY_MIME: FIGURE, "text/html": "<div></div>"}})
    counts = execute_notebooks.postprocess(nb, _render(calls))
    data = nb.cells[1].outputs[0]["data"]
    assert base64.b64decode(data["image/png"]) == PNG and data[execute_notebooks.PLOTLY_MIME] == FIGURE
    assert calls == [FIGURE] and counts == {"plotly_png": 1, "explorers": 0}
    execute_notebooks.postprocess(nb, _render(calls))  # a second pass renders nothing again
    assert len(calls) == 1


def test_explorer_result_becomes_note_and_snapshot():
    calls = []
    nb = _notebook(
        {"output_type": "stream", "name": "stdout", "text": "before\n"},
        {"output_type": "execute_result", "execution_count": 7, "metadata": {},
         "data": {"text/plain": "VBox(children=(HBox(…", execute_notebooks.WIDGET_MIME: {"model_id": "x"},
                  execute_notebooks.EXPLORER_MIME: {"figure": FIGURE, "repr": "AttentionMapExplorer(n=24)"}}})
    counts = execute_notebooks.postprocess(nb, _render(calls))
    outputs = nb.cells[1].outputs
    assert [o["output_type"] for o in outputs] == ["stream", "display_data", "execute_result"]
    assert "Run this cell to use the explorer" in outputs[1]["data"]["text/markdown"]
    assert outputs[2]["execution_count"] == 7
    assert set(outputs[2]["data"]) == {"image/png", "text/plain"}
    assert outputs[2]["data"]["text/plain"] == "AttentionMapExplorer(n=24)"
    assert calls == [FIGURE] and counts["explorers"] == 1
    nbformat.validate(nb)


def test_widget_views_are_dropped():
    nb = _notebook({"output_type": "display_data", "metadata": {},
                    "data": {"text/plain": "FigureWidget()", execute_notebooks.WIDGET_MIME: {"model_id": "y"}}})
    execute_notebooks.postprocess(nb, _render([]))
    assert set(nb.cells[1].outputs[0]["data"]) == {"text/plain"}


def test_kernel_startup_adds_the_snapshot_to_an_explorers_display():
    pytest.importorskip("plotly")
    pytest.importorskip("ipywidgets")
    from IPython.core.interactiveshell import InteractiveShell

    from linattn_edu.explorers import attention_map_explorer

    shell = InteractiveShell.instance()
    try:
        shell.run_cell(execute_notebooks.KERNEL_STARTUP, store_history=False).raise_error()
        explorer = attention_map_explorer(n=8, d=4)
        data, _ = shell.display_formatter.format(explorer)
        snapshot = data[execute_notebooks.EXPLORER_MIME]
        assert snapshot["repr"] == repr(explorer) and snapshot["repr"].startswith("AttentionMapExplorer(")
        assert snapshot["figure"]["data"], "the snapshot figure has no traces"
        other, _ = shell.display_formatter.format([1, 2])
        assert execute_notebooks.EXPLORER_MIME not in other
    finally:
        shell.display_formatter.formatters.pop(execute_notebooks.EXPLORER_MIME, None)
        InteractiveShell.clear_instance()
