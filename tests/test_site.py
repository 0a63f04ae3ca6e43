"""The course site (scripts/build_site.sh -> build/site/, a Sphinx book) read offline in a real browser.

The site is served on 127.0.0.1 by a local HTTP server; every request to any other host is blocked and
recorded. Checked in Chromium (Debian's, flags from tests/conftest.py):

* every notebook page at 1280 px: its plotly figures are drawn (one SVG per stored figure, each with an
  accessible name), its math is typeset by the local MathJax (no raw ``$…$`` left), no test machinery
  (nbval's tags or a ``# NBVAL_*`` line, solution markers) or launch badge is shown, every image has
  alt text, the text column is at most 90 characters wide, no request left the machine, none failed, no
  script error;
* every page at 390 px (a phone) and, for the chapters with the most equations, tables and figures, in
  the dark colour scheme at both widths: nothing is cut off (no page-wide sideways scroll; an equation or
  table wider than the column scrolls inside its own box; figures fit the column);
* navigation: the sidebar lists every chapter (behind its toggle on a phone), prev/next links at the
  bottom lead on, the offline search finds the page a query belongs to, launch (Binder, Colab) and
  download (.ipynb) buttons point at the right notebook;
* a kernel-free explorer moves: its slider's frames redraw the figure in the page;
* weight: a page without figures loads neither plotly.js nor (without math) MathJax, and its first view
  stays under 1.5 MiB as a static host sends it (gzip), and uncompressed too when it has no math
  (MathJax alone is 1.3 MiB uncompressed); page weights (raw and gzip) go to artifacts/site_weights.json.

The site under test is built from the committed notebooks into a temporary folder by
``scripts/build_site.py`` (MathJax comes from ``site/node_modules``, installed with ``npm ci --prefix
site`` when npm is there); the build must take under a minute of CPU. ``LINATTN_SITE=build/site`` tests an
existing build instead. Without npm and without MathJax the tests skip and say so, except under CI=true,
where ``.ci/run`` installs npm and a missing site is a failure.
"""
from __future__ import annotations

import functools
import gzip
import http.server
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from html import unescape as html_unescape
from urllib.parse import unquote, urlparse

import pytest
from _lab import RENDERED_GRAPH, layout_problems

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
MATHJAX = ROOT / "site" / "node_modules" / "mathjax" / "es5" / "tex-chtml-full.js"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CHAPTERS = [p.stem for p in NOTEBOOKS]
PAGES = ["index", *CHAPTERS, "instructors", "references"]
REFERENCES = ROOT / "docs" / "book" / "references.md"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
MAX_MEASURE = 90  # characters per line of prose
NO_FIGURE_BUDGET = 1.5 * 2 ** 20  # bytes, first view of a page without figures

pytestmark = [pytest.mark.browser, pytest.mark.slow]


#: the JupyterHub address the test build passes to --hub-url (any address: the button is a link)
TEST_HUB = "https://hub.example.edu"


def _unavailable(message: str):
    if IN_CI:
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The built site: $LINATTN_SITE if set, else a fresh build of the committed notebooks."""
    pytest.importorskip("sphinx_book_theme")
    pytest.importorskip("myst_nb")
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
    out = tmp_path_factory.mktemp("site") / "site"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_site.py"), "--out", str(out),
                           "--hub-url", TEST_HUB],  # a class's hub: its launch button is tested below
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert done.returncode == 0, f"scripts/build_site.py failed:\n{done.stdout[-1500:]}\n{done.stderr[-3000:]}"
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    info = json.loads((out / "pages.json").read_text(encoding="utf-8"))
    info["build"] = {"cpu_s": round(cpu, 1), "wall_s": round(time.perf_counter() - start, 1)}
    (out / "pages.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
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


@pytest.fixture(scope="module")
def weights():
    """Page weights measured by the tests, written to artifacts/site_weights.json at the end."""
    found: dict = {}
    yield found
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "site_weights.json").write_text(json.dumps(found, indent=1, sort_keys=True), encoding="utf-8")


class Visit:
    """One page load with the network cut to 127.0.0.1, and what went wrong (or was fetched) on the way."""

    def __init__(self, browser, url: str, *, width: int = 1280, scheme: str = "light"):
        self.context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
        self.page = self.context.new_page()
        self.blocked, self.failed, self.errors, self.fetched, self.gzipped = [], [], [], {}, {}
        self.context.route("**/*", self._route)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("response", self._response)
        self.page.on("requestfailed", lambda r: urlparse(r.url).hostname == "127.0.0.1"
                     and self.failed.append(f"{r.failure} {r.url}"))
        self.page.goto(url, wait_until="load")
        if self.page.evaluate("() => !!window.MathJax"):
            self.page.wait_for_function("() => window.MathJax.startup && MathJax.startup.promise", timeout=30_000)
            self.page.evaluate("() => MathJax.startup.promise")
        figures = self.page.evaluate("() => document.querySelectorAll('.plotly-graph-div').length")
        if figures:
            self.page.wait_for_function(
                f"() => document.querySelectorAll('.plotly-graph-div .main-svg').length >= {figures}", timeout=30_000)

    def _route(self, route) -> None:
        url = urlparse(route.request.url)
        if url.scheme in ("data", "blob") or url.hostname == "127.0.0.1":
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def _response(self, response) -> None:
        if response.status >= 400:
            self.failed.append(f"{response.status} {response.url}")
            return
        try:
            body = response.body()
        except Exception:  # a response without a body (redirect)
            body = b""
        self.fetched[urlparse(response.url).path] = len(body)
        self.gzipped[urlparse(response.url).path] = len(gzip.compress(body, 6)) if body else 0

    def clean(self, what: str) -> None:
        assert not self.blocked, f"{what}: the page asked the network for {self.blocked[:3]}"
        assert not self.failed, f"{what}: requests failed: {self.failed[:3]}"
        assert not self.errors, f"{what}: script errors: {self.errors[:3]}"

    def close(self) -> None:
        self.context.close()


# what a page shows, measured in the page
PAGE_FACTS = r"""
() => {
  const article = document.querySelector('article.bd-article') || document.querySelector('main');
  const text = article ? article.innerText : '';
  const p = [...article.querySelectorAll('p')].filter(e => e.innerText.length > 200)[0];
  let measure = 0;
  if (p) {
    const s = getComputedStyle(p), c = document.createElement('canvas').getContext('2d');
    c.font = `${s.fontStyle} ${s.fontWeight} ${s.fontSize} ${s.fontFamily}`;
    const sample = 'the quick brown fox jumps over the lazy dog while attention weights sum to one ';
    measure = p.clientWidth / (c.measureText(sample).width / sample.length);
  }
  const root = document.documentElement;
  const clipped = (sel) => [...article.querySelectorAll(sel)].filter(el => {
    if (el.scrollWidth <= el.clientWidth + 1) return false;  // fits
    for (let e = el; e && e !== article; e = e.parentElement) {  // scrolls inside its own box
      const o = getComputedStyle(e).overflowX;
      if ((o === 'auto' || o === 'scroll') && e.clientWidth <= article.clientWidth + 1) return false;
    }
    return true;
  }).map(el => el.innerText.slice(0, 60));
  const wide = (sel) => [...article.querySelectorAll(sel)].filter(el => {
    const r = el.getBoundingClientRect(), a = article.getBoundingClientRect();
    if (r.width <= a.width + 1) return false;
    for (let e = el.parentElement; e && e !== article; e = e.parentElement) {
      const o = getComputedStyle(e).overflowX;
      if (o === 'auto' || o === 'scroll') return false;
    }
    return true;
  }).length;
  return {
    text,
    code: [...article.querySelectorAll('.cell_input pre')].map(e => e.textContent).join('\n'),
    measure,
    page_overflow: root.scrollWidth - root.clientWidth,
    math_typeset: article.querySelectorAll('mjx-container').length,
    display_math: article.querySelectorAll('mjx-container[display="true"]').length,
    clipped_math: clipped('mjx-container[display="true"]'),
    clipped_tables: clipped('table'),
    wide_figures: wide('.js-plotly-plot .main-svg'),
    figures: article.querySelectorAll('.plotly-graph-div').length,
    drawn: [...article.querySelectorAll('.plotly-graph-div')].filter(el => el.querySelector('.main-svg')).length,
    unnamed_figures: [...article.querySelectorAll('.plotly-graph-div')].filter(el => !el.getAttribute('aria-label')).length,
    images: [...article.querySelectorAll('img')].map(img => [img.getAttribute('src'), img.getAttribute('alt') || '',
                                                             img.complete && img.naturalWidth > 0]),
    background: getComputedStyle(document.body).backgroundColor,
    theme: root.dataset.theme || null,
  };
}
"""

PLACEHOLDER_ALT = re.compile(r"^(|png|image|output_\d+_\d+|No description has been provided for this image)$", re.I)


def _url(server: str, page: str) -> str:
    return f"{server}/{page}.html"


@pytest.mark.parametrize("page", PAGES)
def test_page_at_desktop_width(page, site, server, browser, weights):
    visit = Visit(browser, _url(server, page))
    try:
        facts = visit.page.evaluate(PAGE_FACTS)
        text = facts["text"]
        assert facts["drawn"] == facts["figures"], f"{page}: {facts['drawn']} of {facts['figures']} figures drawn"
        assert facts["unnamed_figures"] == 0, f"{page}: a figure without an accessible name"
        assert not re.findall(r"\$[^$\n]{1,60}\$", text), f"{page}: raw TeX left: {re.findall(r'[$][^$]{1,60}[$]', text)[:3]}"
        code = facts["code"]  # the code cells as shown (the prose may name the markers)
        assert code.strip() or page in ("index", "instructors", "references"), f"{page}: no code cells found"
        assert "# NBVAL_" not in code and "### BEGIN SOLUTION" not in code and "### END SOLUTION" not in code, (
            f"{page}: test machinery shown to readers")
        assert 'if "google.colab" in sys.modules' not in code, f"{page}: the Colab install block is shown"
        for src, alt, loaded in facts["images"]:
            assert loaded, f"{page}: image {src} not drawn"
            assert not PLACEHOLDER_ALT.match(alt.strip()), f"{page}: image {src} has no real alt text ({alt!r})"
        assert 0 < facts["measure"] <= MAX_MEASURE, f"{page}: lines of about {facts['measure']:.0f} characters"
        assert facts["page_overflow"] <= 0, f"{page}: the page scrolls sideways by {facts['page_overflow']} px"
        visit.clean(page)
        total, sent = sum(visit.fetched.values()), sum(visit.gzipped.values())
        weights[f"{page} (1280 px, first view)"] = {
            "bytes": total, "MiB": round(total / 2 ** 20, 2), "gzip_MiB": round(sent / 2 ** 20, 2),
            "figures": facts["figures"], "plotly.js": any(p.endswith("plotly.min.js") for p in visit.fetched),
            "MathJax": any("mathjax" in p for p in visit.fetched)}
        if facts["figures"] == 0:
            assert not any(p.endswith("plotly.min.js") for p in visit.fetched), f"{page}: plotly.js without a figure"
            # as a static host sends it (gzip); without math (no MathJax) also uncompressed
            assert sent <= NO_FIGURE_BUDGET, f"{page}: {sent / 2 ** 20:.2f} MiB (gzip) on first view without a figure"
            if facts["math_typeset"] == 0:
                assert total <= NO_FIGURE_BUDGET, f"{page}: {total / 2 ** 20:.2f} MiB on first view, no figure, no math"
        if facts["math_typeset"] == 0:
            assert not any("mathjax" in p for p in visit.fetched), f"{page}: MathJax loaded on a page without math"
        if page in CHAPTERS:
            stored = json.loads((site / "pages.json").read_text(encoding="utf-8"))
            assert f"{page}.html" in stored["pages"]
    finally:
        visit.close()


@pytest.mark.parametrize("page", PAGES)
def test_nothing_is_cut_off_on_a_phone(page, server, browser):
    visit = Visit(browser, _url(server, page), width=390)
    try:
        facts = visit.page.evaluate(PAGE_FACTS)
        assert facts["page_overflow"] <= 0, f"{page} at 390 px: the page scrolls sideways by {facts['page_overflow']} px"
        assert not facts["clipped_math"], f"{page} at 390 px: equations cut off: {facts['clipped_math'][:3]}"
        assert not facts["clipped_tables"], f"{page} at 390 px: tables cut off: {facts['clipped_tables'][:3]}"
        assert facts["wide_figures"] == 0, f"{page} at 390 px: {facts['wide_figures']} figures wider than the column"
        assert facts["drawn"] == facts["figures"]
        visit.clean(f"{page} at 390 px")
        if page == "08_how_the_field_fixed_linear_attention":
            ARTIFACTS.mkdir(exist_ok=True)
            visit.page.screenshot(path=str(ARTIFACTS / f"site_{page[:2]}_390_light.png"))
    finally:
        visit.close()


#: each figure of a page as drawn: how the page laid it out for this width, its rendered parts and panels
FIGURE_LAYOUTS = r"""
() => [...document.querySelectorAll('.bd-article .js-plotly-plot')].map(gd => {
  const box = gd.parentElement.getBoundingClientRect();
  let scrolls = false;
  for (let e = gd.parentElement; e; e = e.parentElement) {
    const o = getComputedStyle(e).overflowX;
    if ((o === 'auto' || o === 'scroll') && e.scrollWidth > e.clientWidth) { scrolls = true; break; }
  }
  return {mode: gd.getAttribute('data-linattn-layout'), column: box.width, scrolls,
          title: ((gd._fullLayout.title || {}).text || '').replace(/<[^>]*>/g, ' ').slice(0, 60),
          rendered: (""" + RENDERED_GRAPH + r""")(gd)};
})
"""


@pytest.mark.parametrize("width", [1280, 390])
@pytest.mark.parametrize("page", CHAPTERS)
def test_figures_fit_the_column_and_panels_stack_on_a_phone(page, width, server, browser):
    """Every figure as drawn: no title or panel title cut off by the figure's edge or printed over another,
    no colourbar over a panel or a label (the checks of the explorers' browser test, on the site's column).

    On a phone (390 px) a figure whose panels stand side by side is redrawn with them stacked, each the
    column's width; a figure that moves through frames, or a grid of square heatmap cells, keeps its layout
    and scrolls sideways inside its own box; a single panel fills the column.
    """
    visit = Visit(browser, _url(server, page), width=width)
    try:
        pg = visit.page
        pg.wait_for_function("() => [...document.querySelectorAll('.bd-article .plotly-graph-div')]"
                             ".every(el => el.getAttribute('data-linattn-layout') && el.querySelector('.main-svg'))",
                             timeout=30000)
        pg.wait_for_timeout(1500)  # the second draw (wrapped titles) and a fallback to scrolling
        problems = []
        for i, fig in enumerate(pg.evaluate(FIGURE_LAYOUTS)):
            where = f"{page} at {width} px, figure {i} ({fig['title']!r}, {fig['mode']})"
            problems += [f"{where}: {p}" for p in layout_problems(fig["rendered"])]
            plots = [b for _, b in fig["rendered"]["plots"]]
            lefts = {round(b[0]) for b in plots}
            if fig["mode"] == "stacked":
                wide = [b for b in plots if b[2] - b[0] < 0.6 * fig["column"]]
                if len(lefts) > 1 or wide:
                    problems.append(f"{where}: stacked, yet panels side by side or narrower than 0.6 of the column")
            elif fig["mode"] == "scroll":
                if width >= 1280 and not fig["rendered"]["graph"][2] - fig["rendered"]["graph"][0] <= fig["column"] + 1:
                    problems.append(f"{where}: scrolls sideways on a desktop screen")
                if not fig["scrolls"]:
                    problems.append(f"{where}: wider than its column but no box scrolls")
            elif width == 390 and len(lefts) > 1:
                problems.append(f"{where}: panels side by side on a phone, neither stacked nor scrolling")
        assert not problems, "\n".join(problems)
        visit.clean(f"{page} at {width} px")
    finally:
        visit.close()


def _busiest(site: Path) -> list[str]:
    """The chapters with the most display equations, tables and figures (dark-mode checks)."""
    score = {}
    for page in CHAPTERS:
        html = (site / f"{page}.html").read_text(encoding="utf-8")
        score[page] = html.count('class="math') + 5 * html.count("<table") + 10 * html.count("plotly-graph-div")
    return sorted(score, key=score.get, reverse=True)[:3]


# In the dark theme, what each figure's text sits on and how it is drawn: for every plotly figure the
# colour of its title and tick labels and of the paper behind them (the SVG's own background, else the
# card the stylesheet puts behind the figure), times any brightness() filter on the way up; for every
# stored image the mean luminance of its border pixels (its paper), read from the image itself.
DARK_FIGURES = r"""
() => {
  const rgb = (c) => { const m = (c || '').match(/[\d.]+/g); return m ? m.slice(0, 4).map(Number) : null; };
  const opaque = (c) => c && (c.length < 4 || c[3] > 0.5);
  const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
                               return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const brightness = (el) => { let k = 1;
    for (let e = el; e; e = e.parentElement) {
      for (const m of getComputedStyle(e).filter.matchAll(/brightness\(([\d.]+)\)/g)) k *= Number(m[1]); }
    return k; };
  const contrast = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  const figures = [...document.querySelectorAll('article .js-plotly-plot')].map(gd => {
    const svg = gd.querySelector('.main-svg');
    let paper = rgb(svg && getComputedStyle(svg).backgroundColor);
    if (!opaque(paper)) paper = rgb(getComputedStyle(gd).backgroundColor);
    if (!opaque(paper)) return {name: gd.getAttribute('aria-label'), paper: null, worst: 0};
    const k = brightness(gd), dim = (c) => c.slice(0, 3).map(v => v * k);
    const texts = [...gd.querySelectorAll('.gtitle, .g-xtitle text, .g-ytitle text, .xtick text, .ytick text')]
      .map(t => rgb(getComputedStyle(t).fill)).filter(Boolean);
    const worst = texts.length ? Math.min(...texts.map(t => contrast(dim(t), dim(paper)))) : 0;
    return {name: gd.getAttribute('aria-label'), paper: lum(dim(paper)), worst, texts: texts.length};
  });
  const images = [...document.querySelectorAll('article .cell_output img')].map(img => {
    const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
    const g = c.getContext('2d'); g.drawImage(img, 0, 0);
    const row = (y) => g.getImageData(0, y, c.width, 1).data, px = [...row(0), ...row(c.height - 1)];
    let sum = 0, n = 0;
    for (let i = 0; i < px.length; i += 4) {  // a transparent pixel shows the dark page behind it
      const a = px[i + 3] / 255; sum += lum([px[i] * a, px[i + 1] * a, px[i + 2] * a]); n++; }
    return {src: img.getAttribute('src'), paper: n ? sum / n : 0};
  });
  return {figures, images};
}
"""


@pytest.mark.parametrize("width", [1280, 390])
def test_dark_mode(width, site, server, browser):
    pages = ["index", *_busiest(site)]
    if not any("_images/" in (site / f"{p}.html").read_text(encoding="utf-8") for p in pages):
        pages += [next(p for p in CHAPTERS if "_images/" in (site / f"{p}.html").read_text(encoding="utf-8"))]
    for page in pages:
        visit = Visit(browser, _url(server, page), width=width, scheme="dark")
        try:
            facts = visit.page.evaluate(PAGE_FACTS)
            assert facts["theme"] == "dark", f"{page}: prefers-color-scheme dark gave theme {facts['theme']!r}"
            r, g, b = (int(v) for v in re.findall(r"\d+", facts["background"])[:3])
            assert 0.2126 * r + 0.7152 * g + 0.0722 * b < 60, f"{page}: dark mode background {facts['background']}"
            assert facts["page_overflow"] <= 0 and not facts["clipped_math"] and not facts["clipped_tables"]
            assert facts["drawn"] == facts["figures"]
            shown = visit.page.evaluate(DARK_FIGURES)
            for fig in shown["figures"]:  # a light card, its text legible on it (WCAG AA, 4.5:1)
                assert fig["paper"] is not None and fig["paper"] > 0.5, f"{page}: figure {fig['name']!r} on a dark or clear paper"
                assert fig["texts"] and fig["worst"] >= 4.5, (
                    f"{page} dark: figure {fig['name']!r} text contrast {fig['worst']:.2f}:1 on its paper")
            for img in shown["images"]:
                assert img["paper"] > 0.5, f"{page} dark: image {img['src']} has a dark or clear paper ({img['paper']:.2f})"
            visit.clean(f"{page} dark at {width} px")
            ARTIFACTS.mkdir(exist_ok=True)
            visit.page.screenshot(path=str(ARTIFACTS / f"site_{page[:5]}_{width}_dark.png"))
        finally:
            visit.close()


def test_sidebar_prev_next_and_launch_buttons(site, server, browser):
    page = "04_causal_linear_attention_is_an_rnn"
    visit = Visit(browser, _url(server, page))
    try:
        pg = visit.page
        links = pg.evaluate("() => [...document.querySelectorAll('.bd-sidebar-primary a')].map(a => a.getAttribute('href'))")
        for other in PAGES[1:]:
            assert other == page or any(h and h.split("#")[0] == f"{other}.html" for h in links), (
                f"sidebar lacks {other}")
        current = pg.evaluate("() => [...document.querySelectorAll('.bd-sidebar-primary li.current > a')]"
                              ".map(a => a.innerText)")
        assert any(t.startswith("04 ·") for t in current), f"the sidebar does not mark the current page: {current}"
        assert pg.locator(".bd-sidebar-primary").is_visible()
        toc = pg.evaluate("() => [...document.querySelectorAll('.bd-sidebar-secondary a')].length")
        assert toc >= 3, "no on-this-page contents"
        nxt = pg.locator(".prev-next-area a.right-next")
        assert "05_feature_maps_and_performer.html" in nxt.get_attribute("href")
        assert "03_linear_attention.html" in pg.locator(".prev-next-area a.left-prev").get_attribute("href")
        hrefs = pg.evaluate("() => [...document.querySelectorAll('a')].map(a => a.href)")
        assert any("colab.research.google.com" in h and f"notebooks/{page}.ipynb" in h for h in hrefs), "no Colab button"
        assert any("mybinder.org" in h and page in h for h in hrefs), "no Binder button"
        hub = json.loads((site / "pages.json").read_text(encoding="utf-8")).get("hub", "")  # "" for an older build
        hub_links = [h for h in hrefs if "/hub/user-redirect/git-pull?" in h]
        if hub:  # nbgitpuller pulls the repository into the student's home and opens this chapter in JupyterLab
            assert any(h.startswith(f"{hub}/hub/user-redirect/git-pull?") and "urlpath=lab/tree/" in h
                       and f"notebooks/{page}.ipynb" in h and "branch=" in h for h in hub_links), (
                f"no JupyterHub button for {hub}: {hub_links}")
        else:
            assert not hub_links, f"a JupyterHub button without a hub: {hub_links}"
        download = [h for h in hrefs if h.endswith(f"{page}.ipynb") and "127.0.0.1" in h]
        assert download, "no .ipynb download"
        nxt.click()
        pg.wait_for_url(re.compile(r"05_feature_maps_and_performer\.html"))
        visit.clean("navigation")
    finally:
        visit.close()
    visit = Visit(browser, _url(server, page), width=390)
    try:
        pg = visit.page
        assert not pg.locator(".bd-sidebar-primary").is_visible() or pg.evaluate(
            "() => document.querySelector('.bd-sidebar-primary').getBoundingClientRect().right <= 0")
        pg.locator("button.primary-toggle:visible").first.click()
        pg.locator(".bd-sidebar-primary a", has_text="05 · Feature maps").first.wait_for(state="visible", timeout=5000)
    finally:
        visit.close()


@pytest.mark.parametrize("query, page", [("Nadaraya", "02_attention_as_kernel_smoothing"),
                                         ("Performer", "05_feature_maps_and_performer"),
                                         ("associative recall", "09_associative_recall")])
def test_offline_search_finds_the_page(query, page, server, browser):
    visit = Visit(browser, f"{server}/search.html?q={query.replace(' ', '+')}")
    try:
        pg = visit.page
        pg.wait_for_function("() => document.querySelectorAll('#search-results li a').length > 0", timeout=30_000)
        found = pg.evaluate("() => [...document.querySelectorAll('#search-results li a')].map(a => a.getAttribute('href'))")
        assert any(h.split("#")[0].split("?")[0] == f"{page}.html" for h in found[:5]), (query, found[:8])
        visit.clean(f"search {query!r}")
    finally:
        visit.close()


def test_kernel_free_explorer_moves_in_the_page(server, browser):
    """The decay explorer's slider on the site: a step redraws the figure from its frame, query 0 stays on top."""
    visit = Visit(browser, _url(server, "08_how_the_field_fixed_linear_attention"))
    try:
        pg = visit.page
        gd = "[...document.querySelectorAll('.plotly-graph-div')].find(el => (el.layout.title.text || '').startsWith('Decay masks'))"
        assert pg.evaluate(f"() => !!({gd}) && ({gd})._transitionData._frames.length === 8")
        before = pg.evaluate(f"() => ({gd}).data[0].name")
        pg.evaluate(f"() => Plotly.animate({gd}, ['7'], {{mode: 'immediate', frame: {{duration: 0, redraw: true}},"
                    " transition: {duration: 0}})")
        pg.wait_for_function(f"() => ({gd}).data[0].name.includes('0.9998')", timeout=10_000)
        after = pg.evaluate(f"() => [({gd}).data[0].name, ({gd})._fullLayout.yaxis.range]")
        assert before != after[0] and after[1][0] > after[1][1], after
        handle = pg.locator(".plotly-graph-div .slider-rail-rect").first
        assert handle.count() == 1
        visit.clean("kernel-free explorer")
    finally:
        visit.close()


def test_index_gives_each_chapter_summary_time_and_prerequisites(server, browser):
    visit = Visit(browser, _url(server, "index"))
    try:
        text = visit.page.evaluate("() => document.querySelector('article').innerText")
        links = visit.page.evaluate("() => [...document.querySelectorAll('article a')].map(a => a.getAttribute('href'))")
        for page in PAGES[1:]:
            assert any(h and h.split("#")[0] == f"{page}.html" for h in links), f"index does not link {page}"
        assert len(re.findall(r"About \d+ minutes\.", text)) == len(NOTEBOOKS)
        assert text.count("You need:") >= len(NOTEBOOKS) - 3  # chapters that say what they need
        assert "φ(q)ᵀφ(k)" in text and "$" not in text  # summaries in Unicode: the front page needs no MathJax
        visit.clean("index")
        assert not any("mathjax" in p for p in visit.fetched), "the index loads MathJax"
        assert sum(visit.fetched.values()) <= NO_FIGURE_BUDGET, "the index's first view is over the budget"
    finally:
        visit.close()


def test_every_image_has_alt_text_from_its_context(site):
    """Every <img> on every page of the site (not only the articles) has real alt text, and the pictures of
    the content (``_images/``: the explorers' snapshots) each say which one they are: no two share a text."""
    seen: dict[str, str] = {}
    for page in sorted(site.glob("*.html")):
        for tag in re.findall(r"<img\b[^>]*>", page.read_text(encoding="utf-8")):
            src = re.search(r'\bsrc="([^"]*)"', tag)
            alt = re.search(r'\balt="([^"]*)"', tag)
            where = f"{page.name}: <img src={src.group(1) if src else '?'}>"
            assert alt is not None, f"{where} has no alt attribute"
            text = html_unescape(alt.group(1)).strip()
            assert not PLACEHOLDER_ALT.match(text), f"{where} has placeholder alt text {text!r}"
            if src and src.group(1).startswith("_images/"):
                assert len(text.split()) >= 6, f"{where}: alt text {text!r} says too little"
                assert text not in seen, f"{where} and {seen.get(text)} share the alt text {text!r}"
                seen[text] = where
    assert seen, "no content images found: the explorers' snapshots are gone or not under _images/"


def _citations(text: str) -> set[tuple[str, str]]:
    """(first author's surname, year) of every author-year citation in ``text``: "Sun et al., 2023",
    "Dao & Gu, 2024", "Schlag, Irie & Schmidhuber, 2021", "Ainslie et al. (2023", "Zhang, Bhatia,
    Kumbong & Ré, ICLR 2024", "Arora et al., *Zoology*, 2023"."""
    text = re.sub(r"\s+", " ", text)
    name = r"[A-Z][\w\u00C0-\u017F-]+"
    found = set()
    for m in re.finditer(rf"(?:von )?({name}) et al\.?,? (?:\*[^*]+\*,? )?\(?((?:19|20)\d\d)\b", text):
        found.add(m.groups())
    for m in re.finditer(rf"\b({name})(?:, {name})* & {name},? (?:[A-Z]+ )?\(?((?:19|20)\d\d)\b", text):
        found.add(m.groups())
    return found


def test_references_page_lists_every_cited_work():
    """Each author-year citation in the chapters (notebooks/*.md) has an entry on the references page,
    and every entry with an arXiv link points at an arXiv abstract."""
    page = REFERENCES.read_text(encoding="utf-8")
    entries = [e for e in re.split(r"\n- ", page)[1:]]
    cited = set()
    for source in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.md")):
        cited |= {(who, year, source.name) for who, year in _citations(source.read_text(encoding="utf-8"))}
    assert len({(w, y) for w, y, _ in cited}) >= 10, f"the citation pattern found too little: {sorted(cited)}"
    missing = [f"{who} ({year}) in {where}" for who, year, where in sorted(cited)
               if not any(who in e.split("*", 3)[2] and f"({year})" in e.split("*", 3)[2] for e in entries)]
    assert not missing, f"cited in the chapters but not on the references page: {missing}"
    for link in re.findall(r"\]\((https?://[^)]*arxiv[^)]*)\)", page):
        assert re.fullmatch(r"https://arxiv\.org/abs/\d{4}\.\d{4,5}", link), f"not an arXiv abstract link: {link}"


def test_no_broken_links_and_no_outside_resources(site):
    """Every link inside the site resolves to a file of the site; no page loads a file from another host."""
    broken = []
    for page in site.glob("*.html"):
        text = page.read_text(encoding="utf-8")
        outside = re.findall(r'<(?:script|img|link|iframe)[^>]+(?:src|href)="(https?://[^"]+)"', text)
        assert not outside, f"{page.name} loads {outside[:3]}"
        for href in re.findall(r'(?:href|src)="([^"#?]+)[^"]*"', text):
            if re.match(r"^[a-z]+:", href) or href.startswith("//"):
                continue
            if not (page.parent / unquote(href)).exists():
                broken.append(f"{page.name} -> {href}")
    assert not broken, broken[:10]


def test_build_takes_under_a_minute_of_cpu(site):
    info = json.loads((site / "pages.json").read_text(encoding="utf-8"))
    if "build" not in info:
        pytest.skip("LINATTN_SITE names a prebuilt site")
    assert info["build"]["cpu_s"] < 60, info["build"]
    assert info["kernel_free"] >= 2 and info["hidden_lines"] > 100 and info["folded"] > 10, info


def test_inline_tex_becomes_unicode_and_what_it_cannot_write_stays_tex():
    import importlib.util
    spec = importlib.util.spec_from_file_location("build_site", ROOT / "scripts" / "build_site.py")
    build_site = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_site)
    write = build_site.inline_tex_as_unicode
    assert write(r"the kernel $\varphi(q)^\top\varphi(k)$, *factorised*") == "the kernel φ(q)ᵀφ(k), *factorised*"
    assert write(r"$S_t = S_{t-1} + \varphi(k_t)v_t^\top$") == "Sₜ = Sₜ₋₁ + φ(kₜ)vₜᵀ"
    assert write(r"divided by $\sqrt d$; an $N \times N$ matrix") == "divided by √d; an N × N matrix"
    assert write(r"eigenvalues $e^{\pm i\theta}$") == "eigenvalues e^(±iθ)"
    assert write(r"$\frac{1}{2}$ and $$x^2$$") == r"$\frac{1}{2}$ and $$x^2$$"  # left to MathJax


def test_staging_hides_nbval_tags_comments_and_launch_badges():
    """What nbval and the launch badge need stays in the notebook; the page shows neither."""
    import importlib.util

    import nbformat

    spec = importlib.util.spec_from_file_location("build_site", ROOT / "scripts" / "build_site.py")
    build_site = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_site)
    badge = build_site.editions.badges("notebooks/01_softmax_attention.ipynb")
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell(f"# 01 · Title\n\n{badge}\n\n**You will:** read."),
        nbformat.v4.new_code_cell("x = 1\nprint(x)", metadata={"tags": ["nbval-check-output"]}),
        nbformat.v4.new_code_cell("# NBVAL_IGNORE_OUTPUT\nprint(2)", metadata={"tags": ["hide-output"]}),
    ])
    counts = build_site.stage_notebook(nb, "01", {})
    title, checked, ignored = nb.cells
    assert "colab" not in title.source and "mybinder" not in title.source and "**You will:** read." in title.source
    assert "tags" not in checked.metadata and checked.source == "x = 1\nprint(x)"
    assert ignored.metadata["tags"] == ["hide-output"] and ignored.source == "print(2)"
    assert counts["hidden_lines"] == 1


def test_pages_carry_no_nbval_tag_or_launch_badge_image(site):
    for page in site.glob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert not re.search(r"tag_(nbval-|raises-exception)", text), f"{page.name}: an nbval tag reached the page"
        assert "colab-badge.svg" not in text and "badge_logo.svg" not in text, f"{page.name}: a launch badge image"


def test_hub_url_is_checked_before_anything_is_built():
    """--hub-url takes an http(s) address (a trailing slash is dropped) or nothing; anything else is refused."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import build_site

    assert build_site.check_hub_url("") == ""
    assert build_site.check_hub_url("https://hub.example.edu/") == "https://hub.example.edu"
    assert build_site.check_hub_url("http://10.0.0.5:8000/course") == "http://10.0.0.5:8000/course"
    for bad in ("hub.example.edu", "https://hub.example.edu/?next=x", "ftp://hub", "https://a b"):
        with pytest.raises(ValueError, match="hub URL must look like"):
            build_site.check_hub_url(bad)
    with pytest.raises(TypeError, match="must be a string"):
        build_site.check_hub_url(None)
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_site.py"), "--hub-url", "hub.example.edu"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "hub URL must look like" in done.stderr

