"""Kernel-free explorers: every frame behind the slider equals the live explorer's figure at that setting.

The site shows these figures where no kernel runs; their frames are computed by the explorers themselves
(:mod:`linattn_edu.explorers.kernel_free`). Here a fresh live explorer is moved to each slider position
with ``update`` and its figure (what a kernel would draw) is compared trace by trace and with the title,
panel titles and axes of the frame.
"""
from __future__ import annotations

import numpy as np
import pytest
from _lab import KERNEL_FREE_BOXES

pytest.importorskip("plotly")
pytest.importorskip("ipywidgets")
pytest.importorskip("anywidget")

import plotly.graph_objects as go  # noqa: E402

from linattn_edu.explorers import kernel_free as kf  # noqa: E402
from linattn_edu.explorers.decay import decay_explorer  # noqa: E402
from linattn_edu.explorers.gated_stepper import gated_stepper  # noqa: E402
from linattn_edu.explorers.sliding_window import sliding_window_explorer  # noqa: E402


def _same(a, b, path="") -> list[str]:
    """Differences between two plotly JSON values (arrays compared element-wise, None = gap)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            if key == "uid":
                continue
            if key not in a or key not in b:
                out.append(f"{path}.{key}: only in {'frame' if key in a else 'live'}")
            else:
                out += _same(a[key], b[key], f"{path}.{key}")
        return out
    if isinstance(a, (list, tuple, np.ndarray)) and isinstance(b, (list, tuple, np.ndarray)):
        x = np.asarray([[np.nan if v is None else v for v in row] if isinstance(row, (list, tuple)) else
                        (np.nan if row is None else row) for row in a], dtype=object)
        y = np.asarray([[np.nan if v is None else v for v in row] if isinstance(row, (list, tuple)) else
                        (np.nan if row is None else row) for row in b], dtype=object)
        if x.shape != y.shape:
            return [f"{path}: shape {x.shape} != {y.shape}"]
        try:
            xf, yf = x.astype(float), y.astype(float)
        except (TypeError, ValueError):
            return [] if x.tolist() == y.tolist() else [f"{path}: {x.tolist()[:3]} != {y.tolist()[:3]}"]
        return [] if np.array_equal(xf, yf, equal_nan=True) else [f"{path}: arrays differ"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


CASES = [
    ("decay", kf.decay_figure, lambda: decay_explorer(n=48, head=0, bias=3.0, spread=2.0), "head",
     dict(n=48, head=0, bias=3.0, spread=2.0)),
    ("stepper", kf.stepper_figure, lambda: gated_stepper(n=16, t=10, repeat_at=8, gamma=0.9, beta=1.0), "t",
     dict(n=16, t=10, repeat_at=8, gamma=0.9, beta=1.0)),
    ("window", kf.window_figure, lambda: sliding_window_explorer(n=48, window=6, global_tokens="0", causal=True),
     "window", dict(n=48, window=6, global_tokens="0", causal=True)),
]


@pytest.mark.parametrize("name, build, live, control, settings", CASES, ids=[c[0] for c in CASES])
def test_every_frame_is_the_live_explorers_figure(name, build, live, control, settings):
    fig = build(**settings)
    meta = fig.layout.meta["kernel_free"]
    assert meta["control"] == control and len(fig.frames) == len(meta["values"]) >= 8
    slider = fig.layout.sliders[0]
    assert [s.args[0][0] for s in slider.steps] == [f.name for f in fig.frames]  # each step shows its frame
    assert all(s.method == "animate" for s in slider.steps)
    start = str(settings[control])
    assert slider.steps[slider.active].label == start  # the slider starts where the notebook's call does
    ex = live()
    for frame in fig.frames:
        value = type(settings[control])(frame.name)
        ex.update(**{control: value})
        assert ex.message == ""
        shown = go.Figure(ex.figure)  # what the live explorer draws at this setting
        frame_traces = [t.to_plotly_json() for t in frame.data]
        live_traces = [t.to_plotly_json() for t in shown.data]
        assert len(frame_traces) == len(live_traces)
        problems = []
        for i, (a, b) in enumerate(zip(frame_traces, live_traces)):
            problems += _same(a, b, f"trace {i}")
        layout = shown.layout.to_plotly_json()
        frame_layout = frame.layout.to_plotly_json()
        for key in ("title", "annotations", *(k for k in layout if k[1:5] == "axis" and k[0] in "xy")):
            problems += _same(frame_layout.get(key), layout.get(key), key)
        assert not problems, f"{name}, {control} = {value}: " + "; ".join(problems[:8])
    first = fig.frames[[f.name for f in fig.frames].index(start)]
    assert fig.layout.title.text == first.layout.title.text  # the figure opens on the notebook's setting


def test_decay_frames_keep_query_zero_on_top():
    fig = kf.decay_figure(n=24)
    for frame in fig.frames:
        for axis in ("yaxis", "yaxis2"):
            low, high = frame.layout[axis].range
            assert low > high and frame.layout[axis].autorange is False


def test_kernel_free_refuses_what_it_cannot_animate():
    ex = decay_explorer(n=12)
    with pytest.raises(ValueError, match="control must be one of"):
        kf.kernel_free(ex, "nope", [1, 2])
    with pytest.raises(ValueError, match="values must hold at least one"):
        kf.kernel_free(ex, "head", [])
    with pytest.raises(ValueError, match="cannot be drawn"):
        kf.kernel_free(ex, "head", [0, 99])
    assert ex.values()["head"] == 0 and ex.message == ""  # the explorer is left as it was


# the explorers that were only pictures on the site: rows of buttons and a slider ------------------------------
from linattn_edu.explorers.attention_map import attention_map_explorer  # noqa: E402
from linattn_edu.explorers.feature_map_approx import MS, feature_map_explorer  # noqa: E402
from linattn_edu.explorers.kernel_smoother import KERNELS, kernel_smoother_explorer  # noqa: E402
from linattn_edu.explorers.kv_cache import TOKEN_CHOICES, kv_cache_calculator  # noqa: E402
from linattn_edu.explorers.retrieval import retrieval_explorer  # noqa: E402
from linattn_edu.explorers.state_stepper import state_stepper  # noqa: E402

#: (id, factory name in FIGURES, the live factory, the notebook cell's keyword arguments)
MENU_CASES = [
    ("attention_01", "attention_map_explorer", attention_map_explorer, dict(n=24, d=16, inputs="clustered")),
    ("attention_03", "attention_map_explorer", attention_map_explorer,
     dict(n=32, d=16, feature_map="elu+1", inputs="clustered")),
    ("smoother", "kernel_smoother_explorer", kernel_smoother_explorer, dict(kernel="gaussian", bandwidth=0.4)),
    ("features", "feature_map_explorer", feature_map_explorer, dict(kind="favor+", d=16, m=64)),
    ("retrieval", "retrieval_explorer", retrieval_explorer, dict(n=24, d=16)),
    ("kv", "kv_cache_calculator", kv_cache_calculator, dict(preset="llama-2-7b", tokens=32768)),
]
_BUILT: dict[str, go.Figure] = {}


def _figure(case_id: str) -> go.Figure:
    """Each case's kernel-free figure, built once for the module (the KV one has 132 frames)."""
    if case_id not in _BUILT:
        _, name, _, settings = next(c for c in MENU_CASES + STEPPER_CASE if c[0] == case_id)
        _BUILT[case_id] = kf.FIGURES[name](**settings)
    return _BUILT[case_id]


STEPPER_CASE = [("stepper04", "state_stepper", state_stepper, dict(n=12, d=4, d_v=4, feature_map="elu+1", t=5))]


def _setting(ex, meta: dict, frame_name: str) -> dict:
    """The control values a frame stands for: "<menu 1>|…|<slider>", each typed as the live control's value."""
    parts = frame_name.split("|")
    controls = [m["control"] for m in meta.get("menus", [])] + [meta["control"]]
    assert len(parts) == len(controls), frame_name
    now = ex.values()
    return {c: type(now[c])(p) for c, p in zip(controls, parts)}


def _frame_problems(frame, shown: go.Figure, readout: str | None) -> list[str]:
    """What differs between a frame and the live figure (traces, title, panel titles, axes; the readout note)."""
    problems = []
    assert len(frame.data) == len(shown.data)
    for i, (a, b) in enumerate(zip(frame.data, shown.data)):
        problems += _same(a.to_plotly_json(), b.to_plotly_json(), f"trace {i}")
    layout, frame_layout = shown.layout.to_plotly_json(), frame.layout.to_plotly_json()
    notes = frame_layout.get("annotations", [])
    extra = [a for a in notes if a.get("name") == "readout"]
    if readout is None:
        assert not extra
    else:  # the live explorer's text readout, carried by the frame beside the live figure's own annotations
        assert len(extra) == 1 and extra[0]["text"] == readout, (extra, readout)
    frame_layout["annotations"] = [a for a in notes if a.get("name") != "readout"]
    for key in ("title", "annotations", *(k for k in layout if k[1:5] == "axis" and k[0] in "xy")):
        problems += _same(frame_layout.get(key) or None, layout.get(key) or None, key)
    return problems


@pytest.mark.parametrize("case_id, name, live, settings", MENU_CASES + STEPPER_CASE,
                         ids=[c[0] for c in MENU_CASES + STEPPER_CASE])
def test_every_frame_of_the_new_figures_is_the_live_explorers_figure(case_id, name, live, settings):
    """Each frame, at every button combination and slider position, is what a fresh live explorer draws there."""
    fig = _figure(case_id)
    meta = fig.layout.meta["kernel_free"]
    names = [f.name for f in fig.frames]
    assert len(names) == len(set(names)) >= 12
    per_menu = [len(m["values"]) for m in meta.get("menus", [])]
    assert len(names) == int(np.prod(per_menu)) * len(meta["values"])  # every combination, once
    ex = live(**settings)
    opening = _setting(ex, meta, fig.layout.sliders[0].steps[fig.layout.sliders[0].active].args[0][0])
    assert all(ex.values()[c] == v for c, v in opening.items())  # the figure opens on the notebook's setting
    readout = kf._kv_summary if name == "kv_cache_calculator" else None
    for frame in fig.frames:
        setting = _setting(ex, meta, frame.name)
        ex.update(**setting)
        assert ex.message == "", (frame.name, ex.message)
        problems = _frame_problems(frame, go.Figure(ex.figure), readout(ex) if readout else None)
        assert not problems, f"{case_id}, {setting}: " + "; ".join(problems[:8])
    shown = fig.frames[names.index(fig.layout.sliders[0].steps[fig.layout.sliders[0].active].args[0][0])]
    assert fig.layout.title.text == shown.layout.title.text
    assert len(fig.to_json()) < 1.5 * 2 ** 20  # a chapter page carries it whole


@pytest.mark.parametrize("case_id", [c[0] for c in MENU_CASES])
def test_every_button_and_step_of_every_frame_leads_to_a_frame(case_id):
    """After any frame: the slider walks the frames of that frame's buttons; a button changes its own row only
    and keeps the slider's position; the pressed buttons and the slider's position are shown."""
    fig = _figure(case_id)
    meta = fig.layout.meta["kernel_free"]
    rows = [m["values"] for m in meta["menus"]]
    names = {f.name for f in fig.frames}
    for frame in [fig, *fig.frames]:  # the opening figure carries its controls in its layout
        layout = frame.layout
        if frame is fig:
            here = fig.layout.sliders[0].steps[fig.layout.sliders[0].active].args[0][0].split("|")
        else:
            here = frame.name.split("|")
        *pressed, position = here
        slider = layout.sliders[0]
        assert [s.args[0][0] for s in slider.steps] == ["|".join([*pressed, v]) for v in meta["values"]]
        assert slider.steps[slider.active].args[0][0] == "|".join(here)
        assert len(layout.updatemenus) == len(rows)
        for r, (menu, row) in enumerate(zip(layout.updatemenus, rows)):
            assert row[menu.active] == pressed[r]
            targets = [b.args[0][0] for b in menu.buttons]
            assert targets == ["|".join([*pressed[:r], value, *pressed[r + 1:], position]) for value in row]
            assert set(targets) <= names
            assert all(b.method == "animate" for b in menu.buttons)


def _title_numbers(text: str) -> list[float]:
    import re

    return [float(x) for x in re.findall(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e-?\d+)?", text)]


def _frames(fig, **fixed) -> dict:
    """{frame name: frame} for the frames whose name parts equal ``fixed`` ({position in the name: text})."""
    return {f.name: f for f in fig.frames if all(f.name.split("|")[i] == v for i, v in fixed.items())}


def test_try_this_attention_favor_sharpens_toward_softmax_as_m_grows():
    """φ = FAVOR+, m from 4 to 1024: the linear map's mean row error against softmax (from the frames' heatmaps,
    as the title prints it) falls, though not at every step (one draw of ω per m: 1.44 at m = 4, 0.87 at 1024)."""
    fig = _figure("attention_03")
    errors = {}
    for m in kf.ATTENTION_MS:
        frame = next(f for f in fig.frames if f.name == f"favor+|{m}")
        p, a = (np.asarray(t.z, dtype=float) for t in frame.data[:2])  # (N, N) softmax, linear
        errors[m] = float(np.abs(a - p).sum(-1).mean())
        assert _title_numbers(frame.layout.title.text)[-1] == pytest.approx(errors[m], rel=5e-3)  # 3 digits
    assert errors[1024] < 0.7 * errors[4], errors
    elu = {f.layout.title.text for f in fig.frames if f.name.startswith("elu+1|")}
    assert len(elu) == 1  # elu+1 has no m: its frames are equal along the slider


def test_try_this_smoother_small_bandwidth_is_jagged_and_exp_prefers_large_products():
    fig = _figure("smoother")
    fit = {}
    for h in (0.05, 1.0):
        frame = next(f for f in fig.frames if f.name == f"gaussian|{h}")
        y = np.asarray(next(t for t in frame.data if t.name == "Nadaraya–Watson fit").y, dtype=float)
        fit[h] = float(np.abs(np.diff(y)).sum())  # total variation of the fit over the grid
    assert fit[0.05] > 2 * fit[1.0], fit
    frame = next(f for f in fig.frames if f.name == "exp|0.4")
    data = next(t for t in frame.data if t.name.startswith("data"))
    weights = np.asarray(next(t for t in frame.data if t.type == "bar").y, dtype=float)
    x = np.asarray(data.x, dtype=float)  # keys; the query is x* = 0.5 > 0: exp(x·x*/h) grows with x
    assert x[int(np.argmax(weights))] > 2.5  # the weight piles onto the largest key, not the nearest one


def test_try_this_stepper_plays_one_outer_product_per_step():
    fig = _figure("stepper04")
    play, pause = fig.layout.updatemenus[0].buttons
    assert play.method == pause.method == "animate" and play.args[0] is None and play.args[1]["fromcurrent"]
    assert [s.args[0][0] for s in fig.layout.sliders[0].steps] == [str(t) for t in range(12)]
    states = [np.asarray(f.data[0].z, dtype=float) for f in fig.frames]  # S_t, (d_φ, d_v) each
    for t in range(1, 12):
        sv = np.linalg.svd(states[t] - states[t - 1], compute_uv=False)
        assert sv[1] < 1e-9 * sv[0]  # S_t − S_{t−1} = φ(k_t)v_tᵀ: rank one
        outputs = np.asarray(fig.frames[t].data[2].z, dtype=float)
        assert np.isfinite(outputs[: t + 1]).all() and not np.isfinite(outputs[t + 1:]).any()  # t + 1 rows so far
        assert _title_numbers(fig.frames[t].layout.title.text)[-1] < 1e-12  # readout − quadratic ~ 1e-16


def test_try_this_feature_error_falls_with_m_and_only_trig_goes_negative():
    fig = _figure("features")
    err = {f.name: _title_numbers(f.layout.title.text) for f in fig.frames}  # m, relative error, negative %
    assert err["favor+|1024"][1] < 0.25 * err["favor+|4"][1]
    assert all(err[f"favor+|{m}"][-1] == 0 for m in MS) and any(err[f"trig|{m}"][-1] > 0 for m in MS)


def test_try_this_retrieval_exact_to_n_equals_d_then_additive_grows_past_delta():
    fig = _figure("retrieval")
    err = {f.name: _title_numbers(f.layout.title.text)[-2:] for f in fig.frames}  # additive, delta
    assert err["orthogonal first|16"] == [0.0, 0.0]
    add, delta = err["orthogonal first|64"]
    assert add > 1.0 and delta < add
    assert err["random|8"][0] > 0  # random keys interfere from the second pair on


def test_try_this_kv_cache_grows_1024x_mqa_shrinks_it_and_a_3_to_1_hybrid_keeps_a_quarter():
    fig = _figure("kv")
    meta = fig.layout.meta["kernel_free"]
    assert [m["control"] for m in meta["menus"]] == ["preset", "softmax_fraction"]
    assert fig.layout.sliders[0].steps[0].label == "1k" and fig.layout.sliders[0].steps[-1].label == "1M"

    def note(name):
        frame = next(f for f in fig.frames if f.name == name)
        text = next(a.text for a in frame.layout.annotations if a.name == "readout")
        assert all(len(line) <= 50 for line in text.split("<br>"))  # lines a phone's width holds
        return text.replace("<br>", " "), frame

    small, _ = note("llama-2-7b|1.0|1024")
    large, _ = note("llama-2-7b|1.0|1048576")
    assert "512.0 MiB at N = 1,024" in small and "512.0 GiB at N = 1,048,576" in large  # 1024× the cache
    state = "linear state 32.0 MiB (d_φ = 128) at any N"  # 32 layers · 32 heads · 128 · 128 · 2 B
    assert state in small and state in large  # the linear state does not move
    mqa, _ = note("falcon-7b|1.0|32768")
    assert "KiB/token" in mqa and float(mqa.split("KV cache ")[1].split(" KiB")[0]) < 16  # one KV head
    _, frame = note("llama-2-7b|0.25|1048576")
    cache, hybrid = np.asarray(frame.data[0].y, float), np.asarray(frame.data[2].y, float)
    state = 24 * 32 * 128 * 128 * 2 / 2 ** 20  # MiB: the 24 linear layers' states (bf16)
    assert hybrid[-1] == pytest.approx(cache[-1] / 4 + state, rel=1e-12)
    assert hybrid[0] == pytest.approx(cache[0] / 4 + state, rel=1e-12)  # the flat floor of linear states


def test_kernel_free_menus_refuses_what_it_cannot_draw():
    ex = retrieval_explorer(n=8, d=4)
    with pytest.raises(ValueError, match="control must be one of"):
        kf.kernel_free_menus(ex, [kf.Menu("nope", [1])], "n", [4, 8])
    with pytest.raises(ValueError, match="one label per button"):
        kf.kernel_free_menus(ex, [kf.Menu("keys", ["random"], [])], "n", [4, 8])
    with pytest.raises(ValueError, match="cannot be drawn"):
        kf.kernel_free_menus(ex, [kf.Menu("keys", ["random"])], "n", [4, 999])
    assert ex.values()["n"] == 8 and ex.values()["keys"] == "orthogonal first" and ex.message == ""
    with pytest.raises(ValueError, match="play must be a positive number"):
        kf.kernel_free(state_stepper(n=4, t=1), "t", range(4), play=0)


def test_registry_names_every_explorer_a_notebook_cell_calls():
    """Every explorer factory a committed notebook cell calls has a kernel-free figure, except the timing
    explorer (its live mode measures this machine: frames would be one build's noise)."""
    import re
    from pathlib import Path

    sources = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.md"))
    called = set()
    for src in sources:
        called |= set(re.findall(r"^([a-z_]+)\(", src.read_text(encoding="utf-8"), re.M)) & set(
            ["attention_map_explorer", "kernel_smoother_explorer", "state_stepper", "feature_map_explorer",
             "retrieval_explorer", "kv_cache_calculator", "decay_explorer", "gated_stepper",
             "sliding_window_explorer", "transition_zoo_explorer", "mesa_solvers_explorer", "timing_explorer"])
    assert called - set(kf.FIGURES) <= {"timing_explorer"}, called - set(kf.FIGURES)
    assert set(kf.FIGURES) <= called


# in a browser: the controls clear the plot and each other, and buttons and slider reach the right frames ---------
BROWSER_CASES = [c for c in MENU_CASES if c[0] != "attention_01"] + STEPPER_CASE


@pytest.fixture(scope="module")
def browser(chromium_executable, chromium_args):
    from _lab import launch_chromium

    yield from launch_chromium(chromium_executable, chromium_args)


@pytest.mark.parametrize("case_id", [c[0] for c in BROWSER_CASES])
def test_in_the_page_controls_clear_the_figure_and_reach_their_frames(case_id, browser, tmp_path):
    """plotly.js alone (no kernel): the slider, the menus and the readout fit the figure's width down to a phone's
    390 px, and at 1100 and 700 px overlap no panel, title, axis title, legend, colour scale or each other;
    choosing the last entry of each menu, then the slider's last step, shows the frame of exactly those
    settings (its title; the readout with it)."""
    fig = _figure(case_id)
    page = tmp_path / f"{case_id}.html"
    fig.write_html(str(page), include_plotlyjs="directory", full_html=True, auto_play=False)  # offline
    mine = {"slider", "buttons", "readout"}
    for width in (1100, 700, 390):
        pg = browser.new_page(viewport={"width": width, "height": 1100})
        try:
            pg.goto(page.as_uri())
            pg.wait_for_function("() => { const gd = document.querySelector('.js-plotly-plot');"
                                 " return gd && gd._fullLayout && gd._fullLayout._plots; }", timeout=30_000)
            boxes = pg.evaluate(KERNEL_FREE_BOXES)
            right = pg.evaluate("() => document.querySelector('.js-plotly-plot').getBoundingClientRect().right")
            cut = [f"{kind} {b}" for kind in mine for b in boxes[kind] if b[2] > right + 1]
            assert not cut, f"{case_id} at {width} px: clipped at the figure's right edge ({right}): {cut}"
            if width == 390:  # a phone: the controls fit; the live figure's own panels are not laid out for it
                continue
            parts = [(kind, b) for kind in ("slider", "buttons", "readout", "title", "legend", "colorbar", "panel",
                                            "xtitle") for b in boxes[kind]]
            clashes = [f"{a} {p} and {b} {q}" for i, (a, p) in enumerate(parts) for b, q in parts[i + 1:]
                       if (a in mine or b in mine) and min(p[2], q[2]) - max(p[0], q[0]) > 1
                       and min(p[3], q[3]) - max(p[1], q[1]) > 1]
            assert not clashes, f"{case_id} at {width} px: " + "; ".join(clashes)
            if width != 1100:
                continue
            meta = fig.layout.meta["kernel_free"]
            expect = [m["values"][-1] for m in meta.get("menus", [])]
            for r, menu in enumerate(fig.layout.updatemenus if meta.get("menus") else ()):
                if menu.type == "dropdown":  # open it first: its list is drawn only then
                    pg.locator(".updatemenu-header-group").nth(r).click()
                    pg.wait_for_timeout(300)
                item = ".updatemenu-dropdown-button" if menu.type == "dropdown" else ".updatemenu-button"
                pg.locator(item, has_text=menu.buttons[-1].label).first.click()
                pg.wait_for_timeout(300)
            rail = pg.locator(".slider-rail-rect").first.bounding_box()
            pg.mouse.click(rail["x"] + rail["width"] - 2, rail["y"] + rail["height"] / 2)
            name = "|".join([*expect, meta["values"][-1]])
            frame = next(f for f in fig.frames if f.name == name)
            pg.wait_for_function("t => document.querySelector('.js-plotly-plot').layout.title.text === t",
                                 arg=frame.layout.title.text, timeout=10_000)
            after = pg.evaluate(KERNEL_FREE_BOXES)
            assert after["steps"][after["active"]] == name and after["steps"][0].startswith("|".join(expect))
            notes = [a.text for a in frame.layout.annotations if a.name == "readout"]
            if notes:
                shown = pg.evaluate("() => document.querySelector('.js-plotly-plot').layout.annotations"
                                    ".filter(a => a.name === 'readout').map(a => a.text)")
                assert shown == notes
        finally:
            pg.close()
