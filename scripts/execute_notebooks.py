#!/usr/bin/env python
"""Execute the course notebooks in place and make their outputs readable without a kernel.

    .venv/bin/python scripts/execute_notebooks.py            # every notebooks/NN_*.md
    .venv/bin/python scripts/execute_notebooks.py 03 06      # only those numbers

For each notebook: ``jupytext --sync`` (the ``.md`` text source and the ``.ipynb`` agree), execute the
``.ipynb`` in place with this venv's kernel, post-process the outputs (below), ``jupytext --sync`` again.
Prints each notebook's wall time.

Post-processing, so that GitHub, nbviewer, an HTML export and the static site show every figure:

* every plotly output (``application/vnd.plotly.v1+json``) also gets an ``image/png`` rendered by
  kaleido (headless Chromium);
* an explorer (the last expression of a cell) is stored as a PNG snapshot of its default figure and the
  note "Run this cell to use the explorer" instead of the widget view.  The kernel cannot send the
  widget's state (see below), so during execution an IPython startup file adds one more format to every
  explorer's display: its figure as plotly JSON (:data:`EXPLORER_MIME`); this script turns it into the
  PNG and drops it.  The notebook's own code is not changed;
* widget views (``application/vnd.jupyter.widget-view+json``) are dropped.  Widget state is not
  stored: the plotly FigureWidget's state bundles plotly.js (megabytes per notebook), and a stored view
  without its state shows "model not found" in JupyterLab.  Running the cell shows the live widget.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
EXPLORER_MIME = "application/x.linattn-explorer-figure+json"  # exists only during execution
EXPLORER_NOTE = ("*A snapshot of the explorer's default view. Run this cell to use the explorer: "
                 "with a running kernel its controls redraw the figure.*")

# Runs in the kernel before the first cell (IPython startup file): every linattn_edu explorer shown
# as a cell's result also carries its figure as plotly JSON under EXPLORER_MIME.
KERNEL_STARTUP = f'''
def _linattn_edu_explorer_snapshot():
    import json
    from IPython import get_ipython
    from IPython.core.formatters import JSONFormatter
    from traitlets import ObjectName, Unicode

    class ExplorerFigureFormatter(JSONFormatter):
        format_type = Unicode({EXPLORER_MIME!r})
        print_method = ObjectName("_repr_linattn_explorer_figure_")

    shell = get_ipython()
    if shell is None:
        return
    formatter = ExplorerFigureFormatter(parent=shell.display_formatter)
    shell.display_formatter.formatters[formatter.format_type] = formatter
    formatter.for_type_by_name("linattn_edu.explorers._base", "Explorer",
                               lambda explorer: {{"figure": json.loads(explorer.figure.to_json()),
                                                 "repr": repr(explorer)}})

_linattn_edu_explorer_snapshot()
del _linattn_edu_explorer_snapshot
'''


def notebook_sources(only: list[str] | None = None) -> list[Path]:
    """notebooks/NN_*.md, or those whose name starts with one of ``only`` (e.g. "03")."""
    sources = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.md"))
    if only:
        sources = [p for p in sources if any(p.name.startswith(prefix) for prefix in only)]
    return sources


def jupytext_sync(source: Path) -> None:
    jupytext = Path(sys.executable).with_name("jupytext")
    subprocess.run([str(jupytext), "--sync", "--quiet", str(source)], check=True, cwd=ROOT)


# --------------------------------------------------------------------------- post-processing


class PngRenderer:
    """Plotly figure JSON -> PNG bytes with kaleido; one headless Chromium for all figures."""

    def __enter__(self) -> "PngRenderer":
        import kaleido

        if Path("/usr/bin/chromium").exists():  # Debian's Chromium; elsewhere kaleido finds Chrome itself
            os.environ.setdefault("BROWSER_PATH", "/usr/bin/chromium")
        self._kaleido = kaleido
        kaleido.start_sync_server(silence_warnings=True)
        return self

    def __exit__(self, *exc) -> None:
        self._kaleido.stop_sync_server(silence_warnings=True)

    def __call__(self, figure: dict) -> bytes:
        import plotly.graph_objects as go
        import plotly.io as pio

        fig = go.Figure(figure)
        with warnings.catch_warnings():  # plotly warns that kaleido options go unused with a running server
            warnings.filterwarnings("ignore", message="The kopts argument is ignored")
            return pio.to_image(fig, format="png", width=fig.layout.width or 900, height=fig.layout.height or 500)


def _png_text(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")


def explorer_outputs(output: nbformat.NotebookNode, render) -> list[nbformat.NotebookNode]:
    """One explorer result -> [note (markdown), snapshot (PNG + the text repr)]."""
    snapshot = output["data"].pop(EXPLORER_MIME)  # {"figure": plotly JSON, "repr": "AttentionMapExplorer(n=24, …)"}
    note = nbformat.v4.new_output("display_data", data={"text/markdown": EXPLORER_NOTE,
                                                         "text/plain": EXPLORER_NOTE.strip("*")})
    data = {"image/png": _png_text(render(snapshot["figure"])), "text/plain": snapshot["repr"]}
    if output["output_type"] == "execute_result":
        image = nbformat.v4.new_output("execute_result", data=data, execution_count=output.get("execution_count"))
    else:
        image = nbformat.v4.new_output("display_data", data=data)
    return [note, image]


def postprocess(nb: nbformat.NotebookNode, render) -> dict:
    """Make ``nb``'s outputs readable without a kernel (see the module docstring); returns counts."""
    counts = {"plotly_png": 0, "explorers": 0}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for output in cell.get("outputs", []):
            data = output.get("data")
            if data is None:
                outputs.append(output)
                continue
            data.pop(WIDGET_MIME, None)
            if EXPLORER_MIME in data:
                outputs.extend(explorer_outputs(output, render))
                counts["explorers"] += 1
                continue
            if PLOTLY_MIME in data and "image/png" not in data:
                data["image/png"] = _png_text(render(data[PLOTLY_MIME]))
                counts["plotly_png"] += 1
            outputs.append(output)
        cell["outputs"] = outputs
    return counts


# --------------------------------------------------------------------------- execution


def execute(path: Path, render) -> tuple[float, nbformat.NotebookNode]:
    """Execute ``path`` (.ipynb) with this venv's kernel and post-process; returns (wall time in s, notebook).

    ``store_widget_state=False``: see the module docstring.
    """
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as ipython_dir:
        startup = Path(ipython_dir) / "profile_default" / "startup"
        startup.mkdir(parents=True)
        (startup / "00-linattn-edu-explorer-snapshot.py").write_text(KERNEL_STARTUP, encoding="utf-8")
        previous = os.environ.get("IPYTHONDIR")
        os.environ["IPYTHONDIR"] = ipython_dir
        start = time.perf_counter()
        try:
            NotebookClient(nb, timeout=600, kernel_name="python3", store_widget_state=False,
                           resources={"metadata": {"path": str(path.parent)}}).execute()
        finally:
            if previous is None:
                os.environ.pop("IPYTHONDIR", None)
            else:
                os.environ["IPYTHONDIR"] = previous
        elapsed = time.perf_counter() - start
    postprocess(nb, render)
    return elapsed, nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("only", nargs="*", help="notebook numbers or name prefixes (default: all)")
    args = parser.parse_args(argv)
    sources = notebook_sources(args.only)
    if not sources:
        parser.error(f"no notebooks/NN_*.md matches {args.only}")
    failed = []
    with PngRenderer() as render:
        for source in sources:
            jupytext_sync(source)
            text = source.read_text(encoding="utf-8")
            notebook = source.with_suffix(".ipynb")
            try:
                elapsed, nb = execute(notebook, render)
            except Exception as exc:  # report and go on with the next notebook
                print(f"{notebook.name}: FAILED: {type(exc).__name__}: {str(exc)[-2000:]}", flush=True)
                failed.append(notebook.name)
                continue
            if source.read_text(encoding="utf-8") != text:  # edited while it ran: the edit wins
                print(f"{notebook.name}: {source.name} changed while it ran; not written, run it again", flush=True)
                failed.append(notebook.name)
                continue
            nbformat.write(nb, notebook)
            jupytext_sync(source)
            print(f"{notebook.name}: executed in {elapsed:.1f} s", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)} (their .ipynb were left as they were)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
