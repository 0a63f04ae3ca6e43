"""Real browser: what JupyterLab + headless Chromium draw equals what each explorer holds in the kernel.

Starts JupyterLab on 127.0.0.1 (free port, a token, a temp root dir, temp settings: no news fetching, no
notebook windowing so every cell stays in the DOM, no network needed), writes a notebook with one cell per
explorer, opens it with ``?reset`` and runs all cells.  Then, for EVERY control of EVERY explorer, the
kernel sets a new value on the control widget (what a browser control move does: the control's observer
recomputes and syncs the FigureWidget), and the test waits until the plotly graph in the page holds what
``explorer.figure`` holds in the kernel: trace count, each trace's type, name and visibility, a fingerprint
of its x / y / z data (length, gaps, sum of the finite values), the title and the panel titles, each axis's
domain, type, scale anchor, title and autorange, and the shapes (type and position).
A keyboard test moves two sliders with the arrow keys, the whole front-end → kernel → front-end loop.

The timing explorer runs live with ``bench.sweep`` replaced in the kernel by a synthetic sweep (pure N² and
N laws): this checks the figure sync, not the timer.  Screenshots of each explorer at its default and
after its moves go to ``artifacts/`` (git-ignored).  Playwright drives the Chromium tests/conftest.py finds
(Debian's /usr/bin/chromium; never ``playwright install``).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
from _lab import RENDERED_GRAPH, REDRAWS, jupyterlab_server, kernel, launch_chromium, layout_problems, open_explorers

from linattn_edu import bench, explorers  # the registries the moves below are read from

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "artifacts"

SETUP = r'''
import json, math, sys
import numpy as np
from linattn_edu import bench, explorers
from linattn_edu.bench import Results
print('kernel python:', sys.executable)

def _fake_sweep(methods, ns, *, modes=("forward",), chunk_size=64, **_ignored):
    """Synthetic records: quadratic methods ~ N², the others ~ N (no timing in a sync test)."""
    quadratic = {"softmax", "sdpa", "linear_quadratic"}
    rows = []
    for mode in modes:
        for m in methods:
            for n in ns:
                t = (2e-9 * n * n if m in quadratic else 2e-6 * n) * (3 if mode != "forward" else 1)
                if m == "chunkwise":
                    t *= 1 + 16 / chunk_size
                rows.append(dict(method=m, n=n, mode=mode, status="ok", d=64, chunk_size=chunk_size,
                                 median_s=t, iqr_s=0.1 * t, peak_bytes=(64 * n * n if m in quadratic else 4096 * n)))
    return Results(records=rows, metadata={"device_name": "synthetic", "dtype": "float32"})

bench.sweep = _fake_sweep

def _numbers(value):
    acc = dict(n=0, sum=0.0, nulls=0, strings=0)
    def walk(x):
        if x is None:
            acc["n"] += 1; acc["nulls"] += 1
        elif isinstance(x, str):
            acc["n"] += 1; acc["strings"] += 1
        elif isinstance(x, np.ndarray) and x.dtype.kind in "biuf":
            x = x.astype(float).ravel(); ok = np.isfinite(x)
            acc["n"] += x.size; acc["nulls"] += int((~ok).sum()); acc["sum"] += float(x[ok].sum())
        elif isinstance(x, (list, tuple, np.ndarray)):
            for e in x:
                walk(e)
        else:
            f = float(x); acc["n"] += 1
            if math.isfinite(f):
                acc["sum"] += f
            else:
                acc["nulls"] += 1
    walk(value)
    return acc

def _fingerprint(fig):
    traces = []
    for t in fig.data:
        entry = dict(type=t.type, name=t.name, visible=True if t.visible is None else t.visible,
                     yaxis=getattr(t, "yaxis", None) or "y")
        for key in ("x", "y", "z"):
            v = getattr(t, key, None)
            entry[key] = None if v is None else _numbers(v)
        traces.append(entry)
    layout = fig.layout.to_plotly_json()
    axes = {}
    for key, ax in layout.items():
        if key[1:5] == "axis" and key[0] in "xy":
            entry = [None if ax.get("domain") is None else [round(float(v), 4) for v in ax["domain"]],
                     ax.get("type"), ax.get("scaleanchor"), (ax.get("title") or {}).get("text"),
                     ax.get("autorange"), None if ax.get("range") is None else [round(float(v), 4) for v in ax["range"]]]
            if any(v is not None for v in entry):
                axes[key] = entry
    shapes = [[s.get("type"), round(float(s.get("x0", 0) or 0), 4), round(float(s.get("y0", 0) or 0), 4)]
              for s in layout.get("shapes", [])]
    return dict(title=fig.layout.title.text or "", annotations=[a.text for a in fig.layout.annotations],
                axes=axes, shapes=shapes, traces=traces)

EX = {}

def _report(name):
    ex = EX[name]
    print(json.dumps(dict(figure=_fingerprint(ex.figure), message=ex.message, sync=getattr(ex, "last_sync", None),
                          redraws=ex.redraws, messages=ex.figure._last_trace_edit_id,
                          controls=list(ex.controls), values={k: repr(v) for k, v in ex.values().items()})))

def _move(name, control, value):
    EX[name].controls[control].value = value  # what a control move in the browser does in the kernel
    _report(name)
'''

#: (key in EX, constructor call) — one cell each, in this order
EXPLORERS = (
    ("amap", "explorers.attention_map_explorer(n=16)"),
    ("stepper", "explorers.state_stepper(n=12, t=5)"),
    ("smoother", "explorers.kernel_smoother_explorer()"),
    ("features", "explorers.feature_map_explorer()"),
    ("window", "explorers.sliding_window_explorer()"),
    ("timing", "explorers.timing_explorer(methods=('softmax', 'sdpa', 'chunkwise'), n_max=512)"),
    ("kv", "explorers.kv_cache_calculator()"),
    ("decay", "explorers.decay_explorer()"),
    ("gated", "explorers.gated_stepper()"),
    ("retrieval", "explorers.retrieval_explorer()"),
)

def test_the_browser_test_builds_every_registered_explorer():
    built = {call.split("(")[0].removeprefix("explorers.") for _, call in EXPLORERS}
    assert built == set(explorers.__all__)


#: per explorer: (control, new value) in order; every control appears (checked), and the moves include
#: the ones that change the set of traces (φ with another d_φ, 1-D ↔ 2-D, methods, mode, memory panel, view)
MOVES = {
    "amap": [("n", 24), ("d", 8), ("feature_map", "favor+"), ("m", 256), ("causal", True), ("temperature", 2.0),
             ("inputs", "clustered"), ("view", "rows"), ("seed", 3), ("view", "maps"), ("inputs", "tokens")],
    "stepper": [("t", 7), ("feature_map", "taylor"), ("d", 3), ("d_v", 2), ("n", 20), ("seed", 2), ("t", 15),
                ("feature_map", "favor+")],
    "smoother": [("kernel", "boxcar"), ("bandwidth", 0.3), ("query", 1.0), ("n_points", 60), ("noise", 0.5),
                 ("dim", 2), ("query2", 1.0), ("kernel", "gaussian"), ("dim", 1), ("seed", 4)],
    "features": [("kind", "trig"), ("m", 256), ("orthogonal", False), ("d", 8), ("input_scale", 1.2), ("seed", 5),
                 ("kind", "favor+")],
    "window": [("n", 64), ("window", 8), ("global_tokens", "0, 20"), ("causal", True), ("seed", 1)],
    "timing": [(m, True) for m in bench.METHODS if m not in ("softmax", "sdpa", "chunkwise")]  # the registry's
              + [("mode", "forward+backward"),
               ("softmax", False), ("n_max", 1024), ("chunk_size", 128), ("theory", False), ("memory", False),
               ("sdpa", False), ("memory", True), ("mode", "forward"), ("chunkwise", False), ("theory", True)],
    "kv": [("preset", "llama-3-8b"), ("layers", 40), ("heads", 40), ("kv_heads", 4), ("head_dim", 64),
           ("kind", "MHA"), ("kind", "MLA"), ("latent_dim", 256), ("rope_dim", 32), ("dtype", 4), ("batch", 8),
           ("tokens", 131072), ("feature_map", "taylor-2"), ("softmax_fraction", 0.25), ("preset", "falcon-7b")],
    "decay": [("n", 48), ("head", 5), ("bias", 2.0), ("spread", 1.5), ("seed", 2)],
    "gated": [("n", 24), ("repeat_at", 10), ("t", 15), ("gamma", 0.9), ("beta", 0.5), ("seed", 1)],
    "retrieval": [("n", 24), ("d", 8), ("keys", "random"), ("beta", 0.5), ("seed", 3)],
}

#: explorers whose moves above change the set of traces (view, 1-D ↔ 2-D, methods and panels)
CHANGES_TRACE_SET = {"amap", "smoother", "timing"}

# The page side of the fingerprint: plotly.js keeps the graph's data on the DOM node (gd.data).
PAGE_FINGERPRINT = r"""
(index) => {
  const cell = document.querySelectorAll('.jp-Notebook .jp-CodeCell')[index];
  const gd = cell && cell.querySelector('.js-plotly-plot');
  if (!gd || !gd.data || !gd.layout) return null;
  const decode = (spec) => {  // plotly.js typed-array spec {dtype, bdata, shape}
    const bytes = Uint8Array.from(atob(spec.bdata), c => c.charCodeAt(0));
    const kinds = {f8: Float64Array, f4: Float32Array, i4: Int32Array, u4: Uint32Array, i2: Int16Array,
                   u2: Uint16Array, i1: Int8Array, u1: Uint8Array};
    return new kinds[spec.dtype](bytes.buffer);
  };
  const numbers = (value) => {
    const acc = {n: 0, sum: 0, nulls: 0, strings: 0};
    const walk = (x) => {
      if (x === null || x === undefined) { acc.n++; acc.nulls++; }
      else if (typeof x === 'string') { acc.n++; acc.strings++; }
      else if (typeof x === 'number' || typeof x === 'boolean') {
        acc.n++; const f = +x; if (Number.isFinite(f)) acc.sum += f; else acc.nulls++; }
      else if (ArrayBuffer.isView(x) || Array.isArray(x)) { for (const e of x) walk(e); }
      else if (x.bdata !== undefined) { walk(decode(x)); }
      else { acc.n++; acc.strings++; }
    };
    walk(value);
    return acc;
  };
  const text = (t) => (t === undefined || t === null) ? null : (typeof t === 'string' ? t : (t.text ?? null));
  const axes = {};
  for (const [key, ax] of Object.entries(gd.layout)) {
    if (!/^[xy]axis\d*$/.test(key) || !ax) continue;
    const entry = [ax.domain === undefined ? null : Array.from(ax.domain, v => Math.round(v * 1e4) / 1e4),
                   ax.type ?? null, ax.scaleanchor ?? null, text(ax.title), ax.autorange ?? null,
                   ax.range ? Array.from(ax.range, v => Math.round(v * 1e4) / 1e4) : null];
    if (entry.some(v => v !== null)) axes[key] = entry;
  }
  const round = (v) => Math.round((+v || 0) * 1e4) / 1e4;
  return {
    title: text(gd.layout.title) || '',
    annotations: (gd.layout.annotations || []).map(a => a.text === undefined ? null : a.text),
    axes,
    shapes: (gd.layout.shapes || []).map(s => [s.type ?? null, round(s.x0), round(s.y0)]),
    traces: gd.data.map(t => {
      const entry = {type: t.type || 'scatter', name: t.name === undefined ? null : t.name,
                     visible: t.visible === undefined ? true : t.visible};
      for (const key of ['x', 'y', 'z']) entry[key] = t[key] === undefined ? null : numbers(t[key]);
      return entry;
    }),
  };
}
"""

# Run code in the notebook's kernel (the same connection the widgets use) and return its stdout.
# What plotly.js actually drew: the full layout it computed (autorange resolved), per axis, and the
# rendered boxes of colourbars, panel titles, axis titles, tick labels and plot areas (page pixels).
RENDERED = r"""
(index) => {
  const cell = document.querySelectorAll('.jp-Notebook .jp-CodeCell')[index];
  const gd = cell && cell.querySelector('.js-plotly-plot');
  if (!gd || !gd._fullLayout) return null;
  return (""" + RENDERED_GRAPH + r""")(gd);
}
"""


def _axis_direction_problems(rendered: dict, kernel_fp: dict) -> list[str]:
    """Every heatmap's y axis has a fixed range in Python (no orientation left to autorange) and the
    browser drew it in that direction: query / key 0 at the top."""
    out = []
    for t in kernel_fp["traces"]:
        if t["type"] != "heatmap":
            continue
        name = "yaxis" + t["yaxis"][1:]
        kernel_axis = kernel_fp["axes"].get(name) or [None] * 6
        k_auto, k_range = kernel_axis[4], kernel_axis[5]
        if not k_range or k_auto not in (None, False):
            out.append(f"{t['name']!r}: {name} leaves its orientation to autorange ({k_auto!r}, range {k_range})")
            continue
        drawn = rendered["axes"].get(name)
        if drawn is None:
            out.append(f"{t['name']!r}: {name} not drawn")
        elif (drawn["range"][0] > drawn["range"][1]) != (k_range[0] > k_range[1]) or drawn["autorange"] not in (
                False, None):
            out.append(f"{t['name']!r}: {name} drawn with range {drawn['range']} (autorange "
                       f"{drawn['autorange']!r}); Python holds {k_range}")
    return out


def _cells() -> list[str]:
    return [SETUP] + [f"EX[{key!r}] = {call}\nEX[{key!r}]" for key, call in EXPLORERS]


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory):
    """A JupyterLab server with this module's explorers notebook; yields (base_url, token, root_dir)."""
    yield from jupyterlab_server(tmp_path_factory, _cells())


@pytest.fixture(scope="module")
def browser(chromium_executable, chromium_args):
    """One headless Chromium for the module."""
    yield from launch_chromium(chromium_executable, chromium_args)


@pytest.fixture(scope="module")
def page(jupyterlab, browser):
    """The notebook open in Chromium with every cell run and every explorer drawn; yields (page, errors)."""
    yield from open_explorers(browser, jupyterlab, len(EXPLORERS))


def _report(pg, code: str) -> dict:
    return json.loads(kernel(pg, code).strip().splitlines()[-1])


def _same_axis(page: list | None, kernel: list | None) -> bool:
    """[domain, type, scaleanchor, title, autorange, range] agree, allowing what plotly.js writes back
    into the page's layout: the type it inferred (never "log") where Python set none, the domain it shrank
    to keep cells square, and the range it computed.  An axis without a fixed range must autorange (a range
    left over from another view freezes the axis: seen after 2-D → 1-D)."""
    (p_dom, p_type, p_anchor, p_title, p_auto, p_range) = page or [None] * 6
    (k_dom, k_type, k_anchor, k_title, k_auto, k_range) = kernel or [None] * 6
    if (p_anchor, p_title) != (k_anchor, k_title):
        return False
    if k_range and k_type != "log" and p_range != k_range:  # a fixed range (e.g. a heatmap's reversed rows)
        return False
    if not k_range and not (p_auto or (k_auto is None and p_auto is None)):  # plotly.js turns "reversed" into
        return False  # autorange true plus a reversed range, so any autorange counts
    if (k_type if k_type is not None else "auto") != (p_type if k_type is not None else "auto") and (
            k_type is not None or p_type == "log"):
        return False
    return k_anchor is not None or k_dom is None or p_dom == k_dom


def _differences(page_fp: dict | None, kernel_fp: dict, rel: float = 1e-6) -> list[str]:
    """What differs between the page's graph and the kernel's figure ([] when they agree)."""
    if page_fp is None:
        return ["no plotly graph in the page"]
    out = []
    for key in ("title", "annotations", "shapes"):
        if page_fp[key] != kernel_fp[key]:
            out.append(f"{key}: page {page_fp[key]!r} != kernel {kernel_fp[key]!r}")
    for name in sorted(set(page_fp["axes"]) | set(kernel_fp["axes"])):
        if not _same_axis(page_fp["axes"].get(name), kernel_fp["axes"].get(name)):
            out.append(f"{name}: page {page_fp['axes'].get(name)} != kernel {kernel_fp['axes'].get(name)}")
    if len(page_fp["traces"]) != len(kernel_fp["traces"]):
        out.append(f"trace count: page {len(page_fp['traces'])} != kernel {len(kernel_fp['traces'])} "
                   f"(page {[t['name'] for t in page_fp['traces']]}, kernel {[t['name'] for t in kernel_fp['traces']]})")
        return out
    for i, (p, k) in enumerate(zip(page_fp["traces"], kernel_fp["traces"])):
        for key in ("type", "name", "visible"):
            if p[key] != k[key]:
                out.append(f"trace {i} {key}: page {p[key]!r} != kernel {k[key]!r}")
        for key in ("x", "y", "z"):
            a, b = p[key], k[key]
            if (a is None) != (b is None):
                out.append(f"trace {i} ({k['name']}) {key}: page {a} != kernel {b}")
            elif a is not None and (
                    (a["n"], a["nulls"], a["strings"]) != (b["n"], b["nulls"], b["strings"])
                    or not math.isclose(a["sum"], b["sum"], rel_tol=rel, abs_tol=1e-9)):
                out.append(f"trace {i} ({k['name']}) {key}: page {a} != kernel {b}")
    return out


def _settle(pg, key: str, index: int, what: str, timeout: float = 15.0) -> dict:
    """Poll until the page's graph holds what ``EX[key].figure`` holds in the kernel; return the kernel report.

    Both sides are read on every poll: the front end applies messages asynchronously, and a control's
    front end may answer a value with its own (a log slider snaps 0.3 to its grid, 10^-0.52 = 0.302),
    which the kernel then redraws for.
    """
    deadline = time.monotonic() + timeout
    while True:
        report = _report(pg, f"_report({key!r})")
        diff = _differences(pg.evaluate(PAGE_FINGERPRINT, index), report["figure"])
        if not diff:
            return report
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: the browser does not show explorer.figure after {timeout:.0f} s:\n  "
                        + "\n  ".join(diff[:12]))
        pg.wait_for_timeout(100)


def _took(value, shown: str) -> bool:
    """The control holds ``value`` (floats: within the 5 % a slider may snap them by)."""
    if isinstance(value, float):
        return math.isclose(float(shown), value, rel_tol=0.05)
    return shown == repr(value)


def _screenshot(pg, index: int, name: str) -> None:
    cell = pg.locator(".jp-Notebook .jp-CodeCell").nth(index)
    cell.scroll_into_view_if_needed()
    pg.wait_for_timeout(600)  # plotly.js draws after its data are set: let the last redraw finish
    ARTIFACTS.mkdir(exist_ok=True)
    cell.locator(".jp-OutputArea").first.screenshot(path=str(ARTIFACTS / f"browser_{name}.png"))


@pytest.mark.parametrize("position", range(len(EXPLORERS)), ids=[key for key, _ in EXPLORERS])
def test_every_control_redraws_the_browser_figure(page, position):
    pg, errors = page
    key, _call = EXPLORERS[position]
    index = position + 1  # cell 0 is the setup
    start = _settle(pg, key, index, f"{key} as first shown")
    assert start["message"] == "", start["message"]
    _screenshot(pg, index, f"{key}_default")
    rendered = pg.evaluate(RENDERED, index)
    problems = layout_problems(rendered) + _axis_direction_problems(rendered, start["figure"])
    assert not problems, f"{key} as first shown: " + "; ".join(problems)
    moved = {control for control, _ in MOVES[key]}
    assert moved == set(start["controls"]), f"{key}: controls without a move: {set(start['controls']) - moved}"
    syncs, draws = [], {}
    pg.evaluate(REDRAWS, index)  # install the counter
    counted = (start["redraws"], start["messages"])
    for control, value in MOVES[key]:
        pg.wait_for_timeout(300)  # nothing left over from the last move
        before = pg.evaluate(REDRAWS, index)
        syncs.append(_report(pg, f"_move({key!r}, {control!r}, {value!r})")["sync"])
        after = _settle(pg, key, index, f"{key}: after {control} = {value!r}")
        pg.wait_for_timeout(400)  # a second draw (the flicker of a half-built figure) would come within this
        after = _report(pg, f"_report({key!r})")
        # (page draws, messages that edit the graph, figures the kernel computed) for this move: a move the
        # control snaps (a log slider's grid) is two changes, two figures; a figure equal to the last one
        # sends no message
        draws[f"{control} = {value!r} ({syncs[-1]})"] = (pg.evaluate(REDRAWS, index) - before,
                                                         after["messages"] - counted[1], after["redraws"] - counted[0])
        counted = (after["redraws"], after["messages"])
        assert after["message"] == "", f"{key}.{control} = {value!r} gave a message: {after['message']}"
        assert _took(value, after["values"][control]), f"{key}.{control} did not take {value!r}: {after['values']}"
        rendered = pg.evaluate(RENDERED, index)
        assert not _axis_direction_problems(rendered, after["figure"]), (control, value, _axis_direction_problems(
            rendered, after["figure"]))
    _screenshot(pg, index, f"{key}_moved")
    flicker = {move: n for move, n in draws.items() if not n[0] == n[1] <= n[2]}
    assert not flicker, (f"{key}: a figure sent in several messages or drawn more than once "
                         f"(move: (page draws, messages, figures)): {flicker}")
    assert sum(n[0] for n in draws.values()) >= len(draws) - 3, draws  # the moves do change the figure
    problems = layout_problems(pg.evaluate(RENDERED, index))
    assert not problems, f"{key} after its moves: " + "; ".join(problems)
    if key in CHANGES_TRACE_SET:
        assert "rebuild" in syncs, f"{key}: no move changed the set of traces; the test lost its point"
    assert not [e for e in errors if "plotly" in e.lower() or "widget" in e.lower()], errors


def _slider_handle(pg, cell: int, label: str):
    """The noUiSlider handle of the ipywidgets slider described ``label`` in code cell ``cell``."""
    output = pg.locator(".jp-Notebook .jp-CodeCell").nth(cell)
    return output.locator(".widget-slider", has=pg.locator("label", has_text=label)).locator(".noUi-handle").first


def test_keyboard_moves_reach_the_kernel_and_come_back_drawn(page):
    """Arrow keys on a focused slider: front-end value → kernel recompute → figure in the page."""
    pg, errors = page
    index = 1 + [key for key, _ in EXPLORERS].index("window")
    before = _report(pg, "_report('window')")
    handle = _slider_handle(pg, index, "window w")
    handle.scroll_into_view_if_needed()
    handle.focus()
    pg.keyboard.press("ArrowRight")
    deadline = time.monotonic() + 20
    while True:  # the kernel hears the key press through the widget comm
        after = _report(pg, "_report('window')")
        if after["values"]["window"] != before["values"]["window"]:
            break
        assert time.monotonic() < deadline, "the arrow key never reached the kernel"
        pg.wait_for_timeout(100)
    assert int(after["values"]["window"]) == int(before["values"]["window"]) + 1
    _settle(pg, "window", index, "window after an arrow key")
    assert not [e for e in errors if "plotly" in e.lower() or "widget" in e.lower()], errors


def test_decay_map_keeps_query_zero_on_top_after_head_changes(page):
    """Head 0 → 1 → 0 and 0 → 1 → 7: both causal maps stay drawn with query 0 at the top, in the browser.

    Before the maps had fixed ranges, plotly.js re-autoranged the RetNet panel to ascending
    (``_fullLayout.yaxis.range == [-0.5, 47.5]``) after the second change while the Python figure still
    said ``autorange="reversed"``: only the rendered layout shows it.
    """
    pg, _errors = page
    index = 1 + [key for key, _ in EXPLORERS].index("decay")
    flipped, policy = [], []
    for path in ((0, 1, 0), (0, 1, 7)):
        for head in path:
            _report(pg, f"_move('decay', 'head', {head})")
            report = _settle(pg, "decay", index, f"decay after head = {head}")
            pg.wait_for_timeout(300)  # let plotly.js finish its relayout before reading what it drew
            rendered = pg.evaluate(RENDERED, index)
            for axis in ("yaxis", "yaxis2"):
                low, high = rendered["axes"][axis]["range"]
                if not low > high:
                    flipped.append(f"head path {path}, at head {head}: {axis} drawn {[low, high]}")
            policy += _axis_direction_problems(rendered, report["figure"])
    _screenshot(pg, index, "decay_head_0_1_7")
    assert not flipped, "query 0 drawn at the bottom: " + "; ".join(flipped)
    assert not policy, policy


def test_try_this_box_is_legible_in_the_dark_theme(page):
    """JupyterLab Dark: every "Try this" box reads at a contrast of at least 4.5:1 (WCAG AA)."""
    pg, _errors = page
    contrast = r"""
    () => {
      const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
      const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92
                                                       : Math.pow((v + 0.055) / 1.055, 2.4); };
                                   return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
      const bg = (el) => { for (; el; el = el.parentElement) { const c = rgb(getComputedStyle(el).backgroundColor);
                                                             if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c; }
                           return [255, 255, 255]; };
      return Array.from(document.querySelectorAll('.linattn-try-this')).map(el => {
        const a = lum(rgb(getComputedStyle(el).color)), b = lum(bg(el));
        return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      });
    }
    """
    try:
        pg.evaluate("window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
        pg.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'", timeout=30_000)
        pg.wait_for_timeout(500)
        ratios = pg.evaluate(contrast)
        assert len(ratios) == len(EXPLORERS), f"{len(ratios)} try-this boxes for {len(EXPLORERS)} explorers"
        assert min(ratios) >= 4.5, [round(r, 2) for r in ratios]
        index = 1 + [key for key, _ in EXPLORERS].index("decay")
        _screenshot(pg, index, "decay_dark")
    finally:
        pg.evaluate("window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Light'})")
        pg.wait_for_function("() => document.body.dataset.jpThemeLight === 'true'", timeout=30_000)



#: roles a reader operates: each needs a name a screen reader can announce
_OPERATED = ("slider", "button", "combobox", "checkbox", "spinbutton", "textbox", "radio", "switch", "link")


def _aria_node(line: str) -> str:
    """One node of an ARIA snapshot as 'role "name"' (YAML quotes a line holding ': ', a node with children ends in ':')."""
    node = line.strip()[2:]
    node = node[:-1] if node.endswith(":") else node
    return node[1:-1].replace("''", "'") if node.startswith("'") and node.endswith("'") else node


def test_every_control_and_figure_has_an_accessible_name(page):
    """What a screen reader announces for each explorer (Chromium's accessibility tree, as an ARIA snapshot).

    Every slider, button, drop-down, checkbox and number box has a name (ipywidgets leaves slider handles
    and the Play widget's icon buttons nameless; AccessibleNames names them), each figure is a "figure"
    named by its title, and a slider's name is its description.
    """
    pg, _errors = page
    outputs = pg.locator(".jp-Notebook .jp-CodeCell .jp-OutputArea")
    nameless, figures, sliders = [], {}, {}
    for i, (key, _) in enumerate(EXPLORERS, start=1):
        deadline = time.monotonic() + 20
        while True:  # the names are set by the page's module once the views exist
            snapshot = outputs.nth(i).aria_snapshot()
            lines = [_aria_node(line) for line in snapshot.splitlines() if line.strip().startswith("- ")]
            bare = [line for line in lines if line in _OPERATED or any(line.startswith(f'{role} ""') for role in _OPERATED)]
            named_figures = [line for line in lines if line.startswith('figure "Figure: ')]
            if (not bare and named_figures) or time.monotonic() > deadline:
                break
            pg.wait_for_timeout(200)
        nameless += [f"{key}: {line}" for line in bare]
        figures[key] = named_figures
        sliders[key] = [line for line in lines if line.startswith("slider ")]
    assert not nameless, f"controls without an accessible name: {nameless}"
    assert all(len(f) == 1 for f in figures.values()), f"one named figure per explorer: {figures}"
    report = _report(pg, "_report('window')")
    title = report["figure"]["title"]
    assert any(title.split("<")[0].strip()[:30] in f for f in figures["window"]), (title, figures["window"])
    assert 'slider "window w"' in [s.split(":")[0] for s in sliders["window"]], sliders["window"]

