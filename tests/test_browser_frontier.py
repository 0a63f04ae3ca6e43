"""Real browser, the newest explorers: the transition zoo, the regression solvers and the KV calculator's hybrid
control, as JupyterLab + headless Chromium draw them, against what each explorer holds in the kernel.

The machinery is tests/test_browser.py's (copied, so that file can change on its own): JupyterLab on 127.0.0.1
in a temp root, a notebook with one cell per explorer, and for every control of every explorer the kernel sets
a new value on the control widget (what a browser control move does), then the test waits until the plotly
graph in the page holds what ``explorer.figure`` holds in the kernel (trace count, types, names, a fingerprint
of x / y / z, titles, panel titles, axes, shapes).  After every move it reads what plotly.js drew: each heatmap's
y axis runs in the direction Python fixed (row 0 at the top), every fixed range is the one drawn, no colourbar
or title prints over a panel, and plotly.js drew the graph exactly once for the move (no flicker).
Then the eigenvalue markers the page holds are compared with ``torch.linalg.eigvals`` of the kernel's A_t.
Screenshots go to ``artifacts/`` (git-ignored).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
from _lab import (KERNEL_FREE_BOXES, RENDERED_GRAPH, REDRAWS, jupyterlab_server, kernel, launch_chromium,
                  layout_problems, open_explorers)

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "artifacts"

SETUP = r'''
import json, math, sys
import numpy as np
from linattn_edu import explorers
print('kernel python:', sys.executable)

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
                          controls=list(ex.controls), values={k: repr(v) for k, v in ex.values().items()})))

def _move(name, control, value):
    EX[name].controls[control].value = value  # what a control move in the browser does in the kernel
    _report(name)
'''

#: (key in EX, constructor call) — one cell each, in this order
EXPLORERS = (
    ("zoo", "explorers.transition_zoo_explorer()"),
    ("solvers", "explorers.mesa_solvers_explorer()"),
    ("kv", "explorers.kv_cache_calculator()"),
)

#: per explorer: (control, new value) in order; every control of the two new explorers appears (checked); the
#: KV calculator's move list is its hybrid control (the others are tests/test_browser.py's)
MOVES = {
    "zoo": [("beta", 1.5), ("beta", 2.0), ("rule", "delta_product"), ("n_h", 3), ("t", 9), ("decay", 0.5),
            ("rule", "dplr"), ("seed", 4), ("rule", "kda"), ("rule", "gla"), ("rule", "delta")],
    "solvers": [("n", 8), ("n", 32), ("d", 6), ("keys", "orthogonal first"), ("beta", 0.5), ("gamma", 0.8),
                ("ridge", 1.0), ("sharpness", 16.0), ("seed", 2)],
    "kv": [("softmax_fraction", 0.25), ("preset", "llama-3-8b"), ("softmax_fraction", 0.125),
           ("tokens", 131072), ("softmax_fraction", 0.0)],
}
FULL_MOVES = {"zoo", "solvers"}

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
    cell.locator(".jp-OutputArea").first.screenshot(path=str(ARTIFACTS / f"browser_frontier_{name}.png"))



@pytest.mark.parametrize("position", range(len(EXPLORERS)), ids=[key for key, _ in EXPLORERS])
def test_every_move_redraws_the_browser_figure_once_and_right_side_up(page, position):
    pg, errors = page
    key, _call = EXPLORERS[position]
    index = position + 1  # cell 0 is the setup
    start = _settle(pg, key, index, f"{key} as first shown")
    assert start["message"] == "", start["message"]
    _screenshot(pg, index, f"{key}_default")
    rendered = pg.evaluate(RENDERED, index)
    problems = layout_problems(rendered) + _axis_direction_problems(rendered, start["figure"])
    assert not problems, f"{key} as first shown: " + "; ".join(problems)
    if key in FULL_MOVES:
        moved = {control for control, _ in MOVES[key]}
        assert moved == set(start["controls"]), f"{key}: controls without a move: {set(start['controls']) - moved}"
    redraws = {}  # draws per move, checked last (after everything drawn has been checked)
    pg.evaluate(REDRAWS, index)  # install the counter
    for control, value in MOVES[key]:
        pg.wait_for_timeout(300)  # nothing left over from the last move
        before = pg.evaluate(REDRAWS, index)
        sync = _report(pg, f"_move({key!r}, {control!r}, {value!r})")["sync"]
        after = _settle(pg, key, index, f"{key}: after {control} = {value!r}")
        pg.wait_for_timeout(400)  # a second draw (the flicker of a half-built figure) would come within this
        redraws[f"{control} = {value!r} ({sync})"] = pg.evaluate(REDRAWS, index) - before
        assert after["message"] == "", f"{key}.{control} = {value!r} gave a message: {after['message']}"
        assert _took(value, after["values"][control]), f"{key}.{control} did not take {value!r}: {after['values']}"
        pg.wait_for_timeout(200)  # let plotly.js finish its relayout before reading what it drew
        rendered = pg.evaluate(RENDERED, index)
        problems = _axis_direction_problems(rendered, after["figure"])
        for name, entry in after["figure"]["axes"].items():  # every axis drawn over the range Python fixed
            drawn = rendered["axes"].get(name)
            if entry[5] and drawn and entry[1] != "log":
                if any(abs(a - b) > 1e-3 for a, b in zip(drawn["range"], entry[5])):
                    problems.append(f"{name} drawn over {drawn['range']}; Python holds {entry[5]}")
        assert not problems, (key, control, value, problems)
    _screenshot(pg, index, f"{key}_moved")
    problems = layout_problems(pg.evaluate(RENDERED, index))
    assert not problems, f"{key} after its moves: " + "; ".join(problems)
    assert not [e for e in errors if "plotly" in e.lower() or "widget" in e.lower()], errors
    flicker = {move: n for move, n in redraws.items() if n != 1}
    assert not flicker, f"{key}: control changes drawn other than once (draws per move): {flicker}"


# the eigenvalue markers the page holds, per group: [[re...], [im...]]
PAGE_EIGENVALUES = r"""
(args) => {
  const [index, names] = args;
  const cell = document.querySelectorAll('.jp-Notebook .jp-CodeCell')[index];
  const gd = cell && cell.querySelector('.js-plotly-plot');
  if (!gd || !gd.data) return null;
  const decode = (spec) => {
    const bytes = Uint8Array.from(atob(spec.bdata), c => c.charCodeAt(0));
    const kinds = {f8: Float64Array, f4: Float32Array, i4: Int32Array, i2: Int16Array, i1: Int8Array,
                   u4: Uint32Array, u2: Uint16Array, u1: Uint8Array};
    return Array.from(new kinds[spec.dtype](bytes.buffer));
  };
  const values = (x) => (x && x.bdata !== undefined) ? decode(x) : Array.from(x || [], v => v === null ? null : +v);
  const out = {};
  for (const t of gd.data) {
    if (!names.includes(t.name)) continue;
    const xs = values(t.x), ys = values(t.y), keep = xs.map((v, i) => v !== null && ys[i] !== null);
    out[t.name] = [xs.filter((_, i) => keep[i]), ys.filter((_, i) => keep[i])];  // an empty group's gap point dropped
  }
  return out;
}
"""


def test_the_page_draws_torchs_eigenvalues_of_the_kernels_transition(page):
    """DeltaProduct with n_h = 2 and β = 2 (a rotation), then DPLR with β = 2, γ = 0.5, t = 9 (outside the disc):
    the markers in the page are torch.linalg.eigvals(A_t) of the kernel, each in its group."""
    pg, _errors = page
    index = 1 + [key for key, _ in EXPLORERS].index("zoo")
    groups = json.loads(kernel(pg, "from linattn_edu.viz.transitions import EIGEN_GROUPS\n"
                                    "print(json.dumps(list(EIGEN_GROUPS)))").strip().splitlines()[-1])
    for moves, expect in (([("rule", "delta_product"), ("n_h", 2), ("beta", 2.0), ("decay", 1.0), ("t", 6)],
                           "rotation"),
                          ([("rule", "dplr"), ("beta", 2.0), ("decay", 0.5), ("t", 9)], "outside")):
        for control, value in moves:
            _report(pg, f"_move('zoo', {control!r}, {value!r})")
        _settle(pg, "zoo", index, f"zoo after {moves}")
        in_kernel = json.loads(kernel(pg, "import torch\nlam = torch.linalg.eigvals(EX['zoo'].A)\n"
                                        "print(json.dumps([lam.real.tolist(), lam.imag.tolist()]))")
                            .strip().splitlines()[-1])
        drawn = pg.evaluate(PAGE_EIGENVALUES, [index, groups])
        assert set(drawn) == set(groups)
        page_values = sorted((round(x, 9), round(y, 9)) for re, im in drawn.values() for x, y in zip(re, im))
        kernel_values = sorted((round(x, 9), round(y, 9)) for x, y in zip(*in_kernel))
        assert page_values == kernel_values
        if expect == "rotation":
            re, im = drawn[groups[1]]
            assert len(re) == 2 and all(abs(math.hypot(x, y) - 1) < 1e-9 and abs(y) > 0.1 for x, y in zip(re, im))
        else:
            re, im = drawn[groups[2]]
            assert len(re) == 1 and math.hypot(re[0], im[0]) > 1.1
    _screenshot(pg, index, "zoo_dplr_outside")


# the kernel-free figures as a page without a kernel shows them: slider, legend and colour scales apart
@pytest.mark.parametrize("name", ["transition_zoo_explorer", "mesa_solvers_explorer"])
def test_kernel_free_figure_keeps_slider_legend_and_colour_scales_apart(tmp_path, browser, name):
    from linattn_edu.explorers import kernel_free

    fig = kernel_free.FIGURES[name]()
    html = tmp_path / f"{name}.html"
    fig.write_html(str(html), include_plotlyjs=True, full_html=True, auto_play=False)  # offline: plotly.js inline
    last = fig.frames[-1]
    pg = browser.new_page(viewport={"width": 1100, "height": 1000})
    try:
        pg.goto(html.as_uri())
        pg.wait_for_function("() => { const gd = document.querySelector('.js-plotly-plot');"
                             " return gd && gd._fullLayout && gd._fullLayout._plots; }", timeout=30_000)
        pg.wait_for_timeout(500)
        boxes = pg.evaluate(KERNEL_FREE_BOXES)
        assert boxes["shown"] == fig.layout.title.text and len(boxes["slider"]) == 1
        parts = ([("slider", b) for b in boxes["slider"]] + [("legend", b) for b in boxes["legend"]]
                 + [("buttons", b) for b in boxes["menus"]]
                 + [("colour scale", b) for b in boxes["colorbar"]] + [("panel", b) for b in boxes["panel"]])
        clashes = [f"{a} {p} and {b} {q}" for i, (a, p) in enumerate(parts) for b, q in parts[i + 1:]
                   if not (a == b == "panel") and min(p[2], q[2]) - max(p[0], q[0]) > 1
                   and min(p[3], q[3]) - max(p[1], q[1]) > 1]
        assert not clashes, f"{name}: " + "; ".join(clashes)
        # the last frame, as its button or slider step shows it (plotly.js alone, no kernel)
        pg.evaluate(f"() => Plotly.animate(document.querySelector('.js-plotly-plot'), [{last.name!r}],"
                    " {mode: 'immediate', frame: {duration: 0, redraw: true}, transition: {duration: 0}})")
        pg.wait_for_function(f"() => document.querySelector('.js-plotly-plot').layout.title.text === "
                             f"{json.dumps(last.layout.title.text)}", timeout=10_000)
        pg.wait_for_timeout(300)
        after = pg.evaluate(KERNEL_FREE_BOXES)
        if fig.layout.updatemenus:  # a button's frame brings its own slider: the steps now walk its frames
            pressed = last.name.split("|")[0]
            assert after["steps"] and all(step.split("|")[0] == pressed for step in after["steps"]), after["steps"]
            assert len(after["menus"]) == 1
        ARTIFACTS.mkdir(exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / f"browser_frontier_kernel_free_{name}.png"), full_page=True)
    finally:
        pg.close()
