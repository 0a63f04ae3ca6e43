"""The static site (scripts/build_site.sh -> build/site/) read offline in a real browser.

The site is served on 127.0.0.1 by a local HTTP server; every request to any other host is blocked
and recorded. For each notebook page: its plotly figures are drawn (one ``.js-plotly-plot`` with an
SVG per stored figure), its math is typeset by the local MathJax (``mjx-container`` elements, no raw
``$…$`` left in the prose), its explorers show their snapshot and the note, no request left the
machine, none failed, and no script error was raised. The index links every notebook.

The site under test is built from the committed notebooks into a temporary folder by
``scripts/build_site.py`` (about 15 s; MathJax comes from ``site/node_modules``, installed with
``npm ci --prefix site`` when npm is there). ``LINATTN_SITE=build/site`` tests an existing build
instead. Without npm and without MathJax installed the tests skip and say so, except under CI=true,
where ``.ci/run`` installs npm and a missing site is a failure.
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
MATHJAX = ROOT / "site" / "node_modules" / "mathjax" / "es5" / "tex-chtml-full.js"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PLOTLY_MIME = "application/vnd.plotly.v1+json"
EXPLORER_NOTE = "Run this cell to use the explorer"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _unavailable(message: str):
    if IN_CI:
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The built site: $LINATTN_SITE if set, else a fresh build of the committed notebooks."""
    if os.environ.get("LINATTN_SITE"):
        path = Path(os.environ["LINATTN_SITE"])
        if not (path / "pages.json").exists():
            _unavailable(f"LINATTN_SITE={path} holds no built site (scripts/build_site.sh writes build/site)")
        return path
    if not MATHJAX.exists():
        npm = shutil.which("npm")
        if npm is None:
            _unavailable("the site needs MathJax from npm and npm is not installed "
                         "(Debian: apt-get install -y nodejs npm), then run scripts/build_site.sh")
        done = subprocess.run([npm, "ci", "--prefix", "site", "--no-audit", "--no-fund"], cwd=ROOT,
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            _unavailable(f"`npm ci --prefix site` failed: {done.stderr[-800:]}")
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_site.py"), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"scripts/build_site.py failed:\n{done.stdout[-1500:]}\n{done.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def server(site):
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest's output clean
        pass


@pytest.fixture(scope="module")
def browser(chromium_executable, chromium_args):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_executable, args=chromium_args, headless=True)
        yield browser
        browser.close()


class Visit:
    """One page load with the network cut to 127.0.0.1, and what went wrong on the way."""

    def __init__(self, browser, url: str):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.blocked, self.failed, self.errors = [], [], []
        self.context.route("**/*", self._route)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("response", lambda r: r.status >= 400 and self.failed.append(f"{r.status} {r.url}"))
        self.page.on("requestfailed", lambda r: urlparse(r.url).hostname == "127.0.0.1"
                     and self.failed.append(f"{r.failure} {r.url}"))
        self.page.goto(url, wait_until="load")
        try:
            self.page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                                        timeout=30_000)
        except Exception:
            self.close()
            pytest.fail(f"{url}: MathJax did not start (failed: {self.failed[:3]}, blocked: {self.blocked[:3]}, "
                        f"errors: {self.errors[:3]})")
        self.page.evaluate("() => MathJax.startup.promise")

    def _route(self, route) -> None:
        url = urlparse(route.request.url)
        if url.scheme in ("data", "blob") or url.hostname == "127.0.0.1":
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def close(self) -> None:
        self.context.close()


def _stored(path: Path) -> tuple[int, bool, int]:
    """(plotly figures, has math in its prose, explorer snapshots) stored in a committed notebook."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    text = lambda s: "".join(s) if isinstance(s, list) else s  # noqa: E731
    figures = sum(PLOTLY_MIME in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", []))
    math = any(re.search(r"\$[^$]+\$", text(c["source"])) for c in nb["cells"] if c["cell_type"] == "markdown")
    notes = sum(EXPLORER_NOTE in json.dumps(o) for c in nb["cells"] for o in c.get("outputs", []))
    return figures, math, notes


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_page_renders_offline(notebook, site, server, browser):
    source = ROOT / json.loads((site / "pages.json").read_text(encoding="utf-8"))["notebooks"]
    figures, math, notes = _stored(source / notebook.name)  # the notebooks the site was built from
    visit = Visit(browser, f"{server}/{notebook.stem}.html")
    try:
        page = visit.page
        if figures:
            page.wait_for_function(f"() => document.querySelectorAll('.js-plotly-plot .main-svg').length >= {figures}",
                                   timeout=30_000)
        drawn = page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')]"
                              ".filter(el => el.querySelector('.main-svg')).length")
        assert drawn == figures, f"{notebook.stem}: {drawn} plotly figures drawn, {figures} stored"
        typeset = page.evaluate("() => document.querySelectorAll('.jp-MarkdownCell mjx-container').length")
        prose = page.evaluate("() => [...document.querySelectorAll('.jp-MarkdownCell')].map(e => e.innerText).join('\\n')")
        raw = re.findall(r"\$[^$\n]{1,60}\$", prose)
        if math:
            assert typeset > 0, f"{notebook.stem}: the prose has math but MathJax typeset none"
        assert not raw, f"{notebook.stem}: raw TeX left in the page: {raw[:3]}"
        if notes:
            shown = page.evaluate(
                "note => [...document.querySelectorAll('.jp-Cell')].filter(c => c.innerText.includes(note)"
                " && c.querySelector('.jp-OutputArea img')).length", EXPLORER_NOTE)
            assert shown >= notes, f"{notebook.stem}: {notes} explorer snapshots stored, {shown} shown with an image"
        assert not visit.blocked, f"{notebook.stem}: the page asked the network for {visit.blocked[:3]}"
        assert not visit.failed, f"{notebook.stem}: requests failed: {visit.failed[:3]}"
        assert not visit.errors, f"{notebook.stem}: script errors: {visit.errors[:3]}"
    finally:
        visit.close()


def test_index_links_every_notebook(server, browser):
    visit = Visit(browser, f"{server}/index.html")
    try:
        links = visit.page.evaluate("() => [...document.querySelectorAll('a')].map(a => a.getAttribute('href'))")
        for notebook in NOTEBOOKS:
            assert f"{notebook.stem}.html" in links, f"index.html does not link {notebook.stem}.html"
        assert not visit.blocked and not visit.failed and not visit.errors, (visit.blocked, visit.failed, visit.errors)
    finally:
        visit.close()


def test_site_refers_to_no_outside_resource(site):
    """No page loads a script, style sheet, image or font from another host (links to Colab/Binder are fine)."""
    for page in site.glob("*.html"):
        text = page.read_text(encoding="utf-8")
        outside = re.findall(r'<(?:script|img|link|iframe)[^>]+(?:src|href)="(https?://[^"]+)"', text)
        assert not outside, f"{page.name} loads {outside[:3]}"
