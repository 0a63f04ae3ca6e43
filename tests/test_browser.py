"""Real browser: JupyterLab 4 + headless Chromium render two explorers and react to a keyboard slider move.

Starts JupyterLab on 127.0.0.1 (free port, a token, a temp root dir, temp settings whose overrides.json
turns off news fetching, no network needed), writes a notebook that shows the state stepper and the
attention-map explorer, opens it with ``?reset``, runs all cells, focuses sliders and moves them with the
arrow keys, and checks the plotly titles in the DOM change.  Screenshots go to ``artifacts/`` (git-ignored).
Playwright drives the Chromium that tests/conftest.py finds (Debian's /usr/bin/chromium; never ``playwright install``).
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

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "artifacts"
OVERRIDES = {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false"}}
STEPPER_TITLE = "Recurrent linear attention, t = {t} of 11"
MAP_TITLE = "N = {n}:"

CELLS = [
    "import sys\nprint('kernel python:', sys.executable)",
    "from linattn_edu.explorers import attention_map_explorer, state_stepper\n"
    "stepper = state_stepper(n=12, t=5)\nstepper",
    "amap = attention_map_explorer(n=16)\namap",
]


def _free_port() -> int:
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


def _wait_for_server(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
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


@pytest.fixture
def jupyterlab(tmp_path):
    """A JupyterLab server in an isolated temp dir; yields (base_url, token, root_dir)."""
    pytest.importorskip("playwright.sync_api")
    pytest.importorskip("jupyterlab")
    root, settings = tmp_path / "root", tmp_path / "lab-settings"
    root.mkdir()
    settings.mkdir()
    (settings / "overrides.json").write_text(json.dumps(OVERRIDES))
    (root / "explorers.ipynb").write_text(json.dumps(_notebook(CELLS)))
    token, port = secrets.token_hex(16), _free_port()
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
        _wait_for_server(f"{base}/api/status?token={token}", proc, log)
        yield base, token, root
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp_path / "runtime", ignore_errors=True)


def _plot_title(page, text: str, timeout_ms: float):
    """Wait until a plotly title (SVG text in the DOM) containing ``text`` is rendered."""
    page.locator(".js-plotly-plot .gtitle", has_text=text).first.wait_for(state="visible", timeout=timeout_ms)


def _slider_handle(page, cell: int, label: str):
    """The noUiSlider handle of the ipywidgets slider described ``label`` in code cell ``cell``."""
    output = page.locator(".jp-CodeCell").nth(cell)
    return output.locator(".widget-slider", has=page.locator("label", has_text=label)).locator(".noUi-handle").first


def _press_right(page, cell: int, label: str) -> None:
    """Focus a slider (as a keyboard user would after tabbing to it) and press the right arrow once."""
    handle = _slider_handle(page, cell, label)
    handle.scroll_into_view_if_needed()
    handle.focus()
    page.keyboard.press("ArrowRight")


def _traces(page) -> list[list[list]]:
    """Per plot, per trace: [type, heatmap z shape or bar count, heatmap z] as plotly.js holds them on the DOM node."""
    return page.evaluate(
        "() => Array.from(document.querySelectorAll('.js-plotly-plot'), gd => gd.data.map(t => t.type === 'heatmap'"
        " ? [t.type, [t.z.length, t.z[0].length], t.z] : [t.type, t.y.length, null]))")


def test_explorers_render_and_react_to_the_keyboard(jupyterlab, chromium_executable, chromium_args):
    from playwright.sync_api import sync_playwright

    base, token, root = jupyterlab
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_executable, args=chromium_args, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1500})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{base}/lab/tree/explorers.ipynb?reset&token={token}", timeout=60_000)
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel",
                                   timeout=60_000)
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")

            # the kernel is this venv's python (its ipykernel), and both explorers render their defaults
            page.locator(".jp-OutputArea-output", has_text="kernel python:").wait_for(timeout=60_000)
            shown = page.locator(".jp-OutputArea-output", has_text="kernel python:").inner_text()
            assert str(Path(sys.executable).parent) in shown or sys.executable in shown, shown
            _plot_title(page, STEPPER_TITLE.format(t=5), 60_000)
            _plot_title(page, MAP_TITLE.format(n=16), 60_000)
            assert page.locator(".js-plotly-plot").count() == 2

            # keyboard: focus the stepper's t slider, one step right -> the figure redraws for t = 6
            state_before = _traces(page)[0][0][2]
            _press_right(page, 1, "token t")
            _plot_title(page, STEPPER_TITLE.format(t=6), 20_000)
            assert page.locator(".gtitle", has_text=STEPPER_TITLE.format(t=5)).count() == 0
            traces = _traces(page)  # S_t is 4 × 4 (d_φ × d_v), z_t has 4 bars, outputs 12 × 4
            assert [t[:2] for t in traces[0]] == [["heatmap", [4, 4]], ["bar", 4], ["heatmap", [12, 4]],
                                                  ["bar", 4], ["bar", 4]]
            assert traces[0][0][2] != state_before  # S_6 = S_5 + φ(k_6)v_6ᵀ was drawn
            assert [t[:2] for t in traces[1]] == [["heatmap", [16, 16]]] * 3
            page.screenshot(path=str(ARTIFACTS / "browser_stepper.png"))

            # the other explorer is independent: its N slider moves its own plot only
            _press_right(page, 2, "N (tokens)")
            _plot_title(page, MAP_TITLE.format(n=17), 20_000)
            _plot_title(page, STEPPER_TITLE.format(t=6), 1_000)
            assert [t[:2] for t in _traces(page)[1]] == [["heatmap", [17, 17]]] * 3
            page.locator(".js-plotly-plot").nth(1).scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "browser_attention_map.png"))
            assert not [e for e in errors if "plotly" in e.lower() or "widget" in e.lower()], errors
        finally:
            browser.close()
