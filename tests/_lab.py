"""What the two real-browser test modules share: a JupyterLab server, the explorers notebook opened in
Chromium, the kernel called from the page, the redraw counter and the layout checks.

tests/test_browser.py (the first-half explorers) and tests/test_browser_frontier.py (the 2025–2026 ones)
each write their own notebook cells and moves; everything here is the same for both.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OVERRIDES = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false"},
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
}

KERNEL_EXECUTE = r"""
async (code) => {
  const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  const future = kernel.requestExecute({code, store_history: false});
  let out = '', err = '';
  future.onIOPub = (msg) => {
    if (msg.header.msg_type === 'stream') out += msg.content.text;
    if (msg.header.msg_type === 'error') err += msg.content.ename + ': ' + msg.content.evalue;
  };
  await future.done;
  return {out, err};
}
"""

# How many times plotly.js has drawn the graph of a cell: every Plotly call that draws (newPlot, react,
# update, addTraces, deleteTraces, relayout) ends in one 'plotly_afterplot' event; the counter is installed on
# first use and counts from then on.
REDRAWS = r"""
(index) => {
  const cell = document.querySelectorAll('.jp-Notebook .jp-CodeCell')[index];
  const gd = cell && cell.querySelector('.js-plotly-plot');
  if (!gd || !gd.on) return null;
  if (!gd.__linattnRedraws) { gd.__linattnRedraws = {n: 0}; gd.on('plotly_afterplot', () => { gd.__linattnRedraws.n++; }); }
  return gd.__linattnRedraws.n;
}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _notebook(cells: list[str]) -> dict:
    return {
        "cells": [{"cell_type": "code", "execution_count": None, "id": f"cell{i}", "metadata": {},
                   "outputs": [], "source": src} for i, src in enumerate(cells)],
        "metadata": {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                                    "name": "python3"},
                     "language_info": {"name": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }



def wait_for_server(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.25)  # polling a port: no event to wait on
    raise TimeoutError(f"JupyterLab did not answer {url} within {timeout} s:\n{log.read_text()[-3000:]}")


def jupyterlab_server(tmp_path_factory, cells: list[str]):
    """A JupyterLab server in an isolated temp dir with ``explorers.ipynb`` made of ``cells``; yields
    (base_url, token, root_dir). Use it as the body of a module-scoped fixture."""
    pytest.importorskip("playwright.sync_api")
    pytest.importorskip("jupyterlab")
    tmp_path = tmp_path_factory.mktemp("lab")
    root, settings = tmp_path / "root", tmp_path / "lab-settings"
    root.mkdir()
    settings.mkdir()
    (settings / "overrides.json").write_text(json.dumps(OVERRIDES))
    (root / "explorers.ipynb").write_text(json.dumps(_notebook(cells)))
    token, port = secrets.token_hex(16), free_port()
    env = dict(os.environ)
    env.update({
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
    })
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={root}", f"--LabApp.app_settings_dir={settings}",
           f"--LabApp.user_settings_dir={tmp_path / 'user-settings'}",
           f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}", "--LabApp.expose_app_in_browser=True",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = tmp_path / "jupyterlab.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(f"{base}/api/status?token={token}", proc, log)
        yield base, token, root
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp_path / "runtime", ignore_errors=True)


def open_explorers(browser, jupyterlab, plots: int):
    """The explorers notebook open in a new page of ``browser``, every cell run and ``plots`` graphs drawn;
    yields (page, errors) and closes the page after."""
    base, token, _root = jupyterlab
    pg = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        errors: list[str] = []
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        pg.goto(f"{base}/lab/tree/explorers.ipynb?reset&token={token}", timeout=60_000)
        pg.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                             " && window.jupyterapp.shell.currentWidget.sessionContext"
                             " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                             " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel",
                             timeout=60_000)
        pg.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        pg.locator(".jp-OutputArea-output", has_text="kernel python:").wait_for(timeout=60_000)
        pg.wait_for_function(f"() => document.querySelectorAll('.js-plotly-plot').length >= {plots}",
                             timeout=120_000)
        yield pg, errors
    finally:
        pg.close()


def launch_chromium(chromium_executable, chromium_args):
    """One headless Chromium (two sync_playwright sessions cannot share a thread: one per module)."""
    pytest.importorskip("playwright.sync_api")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=chromium_executable, args=chromium_args, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def kernel(pg, code: str) -> str:
    result = pg.evaluate(KERNEL_EXECUTE, code)
    assert not result["err"], f"kernel error for {code!r}: {result['err']}"
    return result["out"]


#: what a drawn plotly graph ``gd`` shows, in page pixels: its axes' ranges, every panel's plot area, the
#: colourbars, annotations (with their yref), titles, axis titles and tick labels (layout_problems reads it)
RENDERED_GRAPH = r"""
(gd) => {
  const fl = gd._fullLayout;
  const axes = {};
  for (const [key, ax] of Object.entries(fl)) {
    if (/^[xy]axis\d*$/.test(key) && ax && ax.range) axes[key] = {range: Array.from(ax.range, Number),
                                                                  autorange: ax.autorange ?? null};
  }
  const box = (el) => { const r = el.getBoundingClientRect();
                        return r.width > 0 && r.height > 0 ? [r.left, r.top, r.right, r.bottom] : null; };
  const boxes = (sel) => Array.from(gd.querySelectorAll(sel)).map(el => [el.textContent || '', box(el)])
                              .filter(([, b]) => b);
  const notes = Array.from(gd.querySelectorAll('.infolayer .annotation')).map(el => {
    const a = (fl.annotations || [])[+el.getAttribute('data-index')] || {};
    return [el.textContent || '', box(el), a.yref || null]; }).filter(([, b]) => b);
  const g = gd.getBoundingClientRect();
  const plots = [];
  for (const [id, sp] of Object.entries(fl._plots || {})) {
    const xa = sp.xaxis, ya = sp.yaxis;
    if (!xa || !ya) continue;
    plots.push([id, [g.left + xa._offset, g.top + ya._offset, g.left + xa._offset + xa._length,
                     g.top + ya._offset + ya._length]]);
  }
  return {axes, plots, graph: [g.left, g.top, g.right, g.bottom],
          colorbars: boxes('.colorbar'), annotations: notes,
          titles: boxes('.infolayer .gtitle'), axis_titles: boxes('.infolayer [class*="title"] text')
            .filter(([t]) => t), ticks: boxes('.xtick text, .ytick text, [class*="tick"] > text')};
}
"""


#: a kernel-free figure's parts in page pixels (the first plotly graph of the page): its slider, menu buttons
#: and menus, readout notes, title (boxes and text), legend, colourbars, panels, x-axis titles, and the
#: slider's steps (frame names) with the active one
KERNEL_FREE_BOXES = r"""
() => {
  const gd = document.querySelector('.js-plotly-plot');
  const box = (el) => { const r = el.getBoundingClientRect();
                        return r.width > 0 && r.height > 0 ? [r.left, r.top, r.right, r.bottom] : null; };
  const all = (sel) => Array.from(gd.querySelectorAll(sel)).map(box).filter(b => b);
  const g = gd.getBoundingClientRect(), fl = gd._fullLayout, plots = [];
  for (const sp of Object.values(fl._plots || {})) {
    plots.push([g.left + sp.xaxis._offset, g.top + sp.yaxis._offset, g.left + sp.xaxis._offset + sp.xaxis._length,
                g.top + sp.yaxis._offset + sp.yaxis._length]);
  }
  const notes = (gd.layout.annotations || []).map((a, i) => [a.name, i]).filter(([n]) => n === 'readout')
    .map(([, i]) => gd.querySelector(`.annotation[data-index="${i}"]`)).filter(el => el).map(box);
  const slider = (fl.sliders || [])[0] || {steps: [], active: null};
  return {slider: all('.slider-container'), buttons: all('.updatemenu-header-group'),
          menus: all('.updatemenu-container'), readout: notes, title: all('.gtitle'),
          shown: (fl.title && fl.title.text) || '', legend: all('.legend'), colorbar: all('.colorbar'),
          panel: plots, xtitle: all('.xtitle'), steps: slider.steps.map(s => s.args[0][0]), active: slider.active};
}
"""


def overlaps(a, b, tol: float = 1.0) -> bool:
    """Two page boxes [left, top, right, bottom] share more than ``tol`` px in both directions."""
    return min(a[2], b[2]) - max(a[0], b[0]) > tol and min(a[3], b[3]) - max(a[1], b[1]) > tol


def layout_problems(rendered: dict) -> list[str]:
    """Colourbars and titles that print over a panel, a tick label, an axis title or each other, or that are
    cut off by the figure's edge (page pixels of the rendered graph)."""
    out = []
    graph = rendered["graph"]
    for text, cb in rendered["colorbars"]:
        for pid, area in rendered["plots"]:
            if overlaps(cb, area):
                out.append(f"colourbar {text[:30]!r} covers panel {pid}")
        for kind in ("axis_titles", "ticks", "annotations"):
            for other, b, *_ in rendered[kind]:
                if overlaps(cb, b) and other not in text:
                    out.append(f"colourbar {text[:30]!r} covers {kind[:-1]} {other!r}")
    # panel titles (make_subplots puts them in paper coordinates above each panel) and the figure's title;
    # a note placed inside a panel on purpose (xref "x domain") may sit over its own data
    titles = [(text, b, yref == "paper") for text, b, yref in rendered["annotations"]]
    titles += [(text, b, True) for text, b in rendered["titles"]]
    for i, (text, b, is_title) in enumerate(titles):
        if b[0] < graph[0] - 1 or b[2] > graph[2] + 1:
            out.append(f"title {text!r} is cut off by the figure's edge")
        for other, c, _ in titles[i + 1:]:
            if overlaps(b, c):
                out.append(f"titles {text!r} and {other!r} overlap")
        for pid, area in rendered["plots"] if is_title else ():
            if overlaps(b, area, tol=3.0):
                out.append(f"title {text!r} covers panel {pid}")
    return out
