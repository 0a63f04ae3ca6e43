"""Shared pieces of the notebook builders (scripts/build_notebooks_*.py).

A notebook is written as a list of cells, ``md(text)`` for prose and ``code(text)`` for code, so that
it can be reviewed as Python; :func:`main` writes each one (stable cell ids, a python3 kernelspec)
and, with ``--execute``, runs it in place with this venv's Jupyter.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
REPO_URL = "git+https://github.com/linattn-edu/linattn_edu"  # the public repository (placeholder until published)
CHECK = "# NBVAL_CHECK_OUTPUT\n"
IGNORE = "# NBVAL_IGNORE_OUTPUT\n"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def md(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_markdown_cell(text.strip("\n"))


def code(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(text.strip("\n"))


def build(name: str, cells: list) -> Path:
    """Write notebooks/<name>.ipynb from its cells, with stable cell ids and a python3 kernelspec."""
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    for i, cell in enumerate(nb.cells):
        cell.id = f"c{i:02d}"  # stable ids: a rebuild changes only what changed
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    path = NOTEBOOKS / f"{name}.ipynb"
    NOTEBOOKS.mkdir(exist_ok=True)
    nbformat.write(nb, path)
    return path


def execute(path: Path) -> float:
    """Execute a notebook in place with this venv's jupyter; returns the wall time in seconds.

    Widget state is not stored (the plotly FigureWidget's state bundles plotly.js: megabytes per
    notebook), so a committed widget-view output would point at a model that does not exist and
    JupyterLab would show "model not found". Those outputs keep only their text/plain repr
    (e.g. ``AttentionMapExplorer(n=24, …)``); running the cell shows the live widget.
    """
    jupyter = Path(sys.executable).with_name("jupyter")
    start = time.perf_counter()
    subprocess.run([str(jupyter), "nbconvert", "--to", "notebook", "--execute", "--inplace",
                    "--ExecutePreprocessor.timeout=600",
                    "--ExecutePreprocessor.store_widget_state=False", str(path)], check=True, cwd=path.parent)
    elapsed = time.perf_counter() - start
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            out.get("data", {}).pop(WIDGET_MIME, None)
    nbformat.write(nb, path)
    return elapsed


def main(notebook_cells: dict, description: str) -> None:
    """CLI: write every notebook in ``notebook_cells`` (name -> cells), or those named; --execute runs them."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--execute", action="store_true", help="execute each notebook in place")
    parser.add_argument("only", nargs="*", help="notebook name prefixes to build (default: all)")
    args = parser.parse_args()
    for name, cells in notebook_cells.items():
        if args.only and not any(name.startswith(p) for p in args.only):
            continue
        path = build(name, cells)
        if args.execute:
            print(f"{path.name}: executed in {execute(path):.1f} s", flush=True)
        else:
            print(f"wrote {path.relative_to(ROOT)}")
