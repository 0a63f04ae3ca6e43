"""The transition zoo, the regression solvers and the KV calculator's hybrid control, headless.

Each figure is checked against the library it draws: the transition heatmap is the rule's A_t, its eigenvalue
markers are torch.linalg.eigvals(A_t), the states obey S_t = A_t S_{t−1} + write_t; the solvers' curves are
the capacity module's, mesa_attention's and a direct Nadaraya–Watson sum's; the kernel-free figures' frames
are the live explorers' figures; every "Try this" line is moved as it says and its promise checked.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pytest.importorskip("plotly")
pytest.importorskip("ipywidgets")
pytest.importorskip("anywidget")

import plotly.graph_objects as go  # noqa: E402

from linattn_edu import mesa_attention  # noqa: E402
from linattn_edu.capacity import store_pairs  # noqa: E402
from linattn_edu.explorers import kernel_free as kf  # noqa: E402
from linattn_edu.explorers import kv_cache_calculator, mesa_solvers_explorer, transition_zoo_explorer  # noqa: E402
from linattn_edu.explorers.mesa_solvers import MAX_N, SOLVERS, pair_stream, solver_run  # noqa: E402
from linattn_edu.explorers.transition_zoo import RULES, STREAM_N, _stream, transition_run  # noqa: E402
from linattn_edu.memory import PRESETS, cache_bytes, hybrid_bytes, hybridize, state_bytes  # noqa: E402
from linattn_edu.transitions import delta_product_step  # noqa: E402
from linattn_edu.viz.transitions import EIGEN_GROUPS  # noqa: E402

GROUPS = list(EIGEN_GROUPS)


def _z(trace) -> np.ndarray:
    return np.asarray([[np.nan if x is None else x for x in row] for row in trace.z], dtype=float)


def _eigen_traces(fig):
    return {tr.name: tr for tr in fig.data if tr.name in EIGEN_GROUPS}


def _points(trace) -> np.ndarray:
    """The eigenvalues a group's trace draws (complex), without the gap point an empty group keeps."""
    pts = [complex(x, y) for x, y in zip(trace.x, trace.y) if x is not None]
    assert len(pts) or list(trace.x) == [None], "an empty group is one gap point (plotly.js hides empty traces)"
    return np.asarray(pts, dtype=complex)


def _drawn_eigenvalues(fig) -> np.ndarray:
    traces = _eigen_traces(fig)
    assert set(traces) == set(GROUPS), "every eigenvalue group keeps its trace (frames animate between equal sets)"
    return np.sort_complex(np.concatenate([_points(tr) for tr in traces.values()]))


def count_messages(fig) -> list[str]:
    """Record every message a FigureWidget sends to the front end (each one is a redraw)."""
    sent: list[str] = []
    for name in ("_send_update_msg", "_send_relayout_msg", "_send_restyle_msg", "_send_addTraces_msg",
                 "_send_deleteTraces_msg", "_send_moveTraces_msg", "_send_animate_msg"):
        original = getattr(fig, name)

        def wrapper(*args, _original=original, _name=name, **kwargs):
            sent.append(_name)
            return _original(*args, **kwargs)

        setattr(fig, name, wrapper)
    return sent


def _fixed_axes(fig) -> list[str]:
    """Axes that leave their range to plotly.js (every axis of these figures must have an explicit range)."""
    layout = fig.layout.to_plotly_json()
    out = []
    for key, ax in layout.items():
        if key[1:5] == "axis" and key[0] in "xy":
            if not ax.get("range") or ax.get("autorange") not in (False, None):
                out.append(f"{key}: range {ax.get('range')}, autorange {ax.get('autorange')}")
    return out


# transition zoo --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rule", list(RULES))
def test_zoo_figure_is_the_rules_transition_and_torchs_eigenvalues(rule):
    z = transition_zoo_explorer(rule=rule, beta=1.5, decay=0.8, n_h=3, t=4, seed=2)
    assert z.message == ""
    run = transition_run(rule, beta=1.5, decay=0.8, n_h=3, seed=2)
    a = run["A"][4]
    np.testing.assert_allclose(_z(z.figure.data[0]), a.numpy(), rtol=0, atol=0)  # the heatmap is A_t
    lam = torch.linalg.eigvals(a).numpy()
    np.testing.assert_allclose(_drawn_eigenvalues(z.figure), np.sort_complex(lam), atol=1e-12)
    np.testing.assert_allclose(_z(z.figure.data[-3]), run["states"][4].numpy(), rtol=0, atol=0)  # S_t
    assert np.allclose(z.figure.data[-2].y, run["states"].flatten(-2).norm(dim=-1).numpy())
    assert _fixed_axes(z.figure) == []
    for axis in ("yaxis", "yaxis3"):  # both heatmaps: row 0 at the top, by an explicit reversed range
        low, high = z.figure.layout[axis].range
        assert low > high and z.figure.layout[axis].autorange is False


@pytest.mark.parametrize("rule", list(RULES))
def test_zoo_states_follow_their_transitions(rule):
    """S_t = A_t S_{t−1} + write_t, with write_t what the rule adds from a zero state."""
    beta, decay, n_h = 1.7, 0.7, 2
    run = transition_run(rule, beta=beta, decay=decay, n_h=n_h, seed=1)
    q, keys, vals, r = _stream(1)
    k, v = keys[:, 0], vals[:, 0]
    s = run["states"]
    prev = torch.zeros_like(s[0])
    for t in range(STREAM_N):
        write = s[t] - run["A"][t] @ prev  # (d, d_v)
        if rule == "gla":
            expected = torch.outer(k[t], v[t])
        elif rule in ("delta", "kda"):
            expected = beta * torch.outer(k[t], v[t])
        elif rule == "dplr":
            expected = torch.outer(beta * r[t] * k[t], v[t])
        else:
            expected = delta_product_step(torch.zeros_like(prev), keys[t, :n_h], vals[t, :n_h],
                                          torch.full((n_h,), beta, dtype=torch.float64))
        torch.testing.assert_close(write, expected, rtol=1e-10, atol=1e-10)
        prev = s[t]


def test_zoo_reductions_between_rules():
    """KDA with no decay is DeltaNet; DeltaProduct with n_h = 1 is DeltaNet (same A and states)."""
    delta = transition_run("delta", beta=1.3, decay=1.0, seed=3)
    for other in (transition_run("kda", beta=1.3, decay=1.0, seed=3),
                  transition_run("delta_product", beta=1.3, decay=1.0, n_h=1, seed=3)):
        torch.testing.assert_close(other["A"], delta["A"], rtol=0, atol=1e-14)
        torch.testing.assert_close(other["states"], delta["states"], rtol=1e-10, atol=1e-10)
    gla = transition_run("gla", decay=0.6, seed=0)
    spread = torch.linspace(0.5, 1.5, 4, dtype=torch.float64)
    torch.testing.assert_close(gla["eigenvalues"][0].real.sort().values, (0.6 ** spread).sort().values)


def test_zoo_eigenvalue_along_k_is_one_minus_beta_and_stays_in_the_disc():
    for beta in (0.5, 1.0, 1.5, 2.0):
        run = transition_run("delta", beta=beta, seed=0)
        lam = run["eigenvalues"]  # (N, d): 1 three times and 1 − β along k_t
        assert float(lam.imag.abs().max()) < 1e-12
        assert torch.allclose(lam.real.min(-1).values, torch.full((STREAM_N,), 1 - beta, dtype=torch.float64))
    for rule in ("delta", "kda", "delta_product"):  # products of contractions: never outside the disc
        for beta in (1.0, 2.0):
            assert float(transition_run(rule, beta=beta, decay=0.5, n_h=4)["eigenvalues"].abs().max()) <= 1 + 1e-12


def test_try_this_zoo_lines_come_true_on_the_drawn_eigenvalues():
    z = transition_zoo_explorer()  # the defaults: DeltaNet, β = 1, token 6
    text = z.try_this
    assert "β from 1 to 2" in text and "n_h = 2 and β = 2" in text and "β = 2, γ = 0.5 and token t = 9" in text
    seen = []
    for beta in [round(1 + 0.1 * i, 1) for i in range(11)]:  # drag β from 1 to 2
        z.update(beta=beta)
        orange = _points(_eigen_traces(z.figure)[GROUPS[1]])
        seen.append(min(np.asarray(_drawn_eigenvalues(z.figure).real)))
        if beta > 1:
            assert len(orange) == 1 and orange[0].real == pytest.approx(1 - beta, abs=1e-12)
        else:
            assert len(orange) == 0
    assert seen[0] == pytest.approx(0, abs=1e-12) and seen[-1] == pytest.approx(-1, abs=1e-12)
    assert all(a > b for a, b in zip(seen, seen[1:]))  # moves steadily from 0 to −1
    z.update(rule="delta_product", n_h=2, beta=2.0)
    pair = _points(_eigen_traces(z.figure)[GROUPS[1]])
    assert len(pair) == 2 and np.all(np.abs(pair.imag) > 0.1)  # a complex pair: a rotation
    np.testing.assert_allclose(np.abs(pair), 1.0, atol=1e-12)  # on the unit circle
    z.update(rule="dplr", beta=2.0, decay=0.5, t=9)
    out = _points(_eigen_traces(z.figure)[GROUPS[2]])
    assert len(out) == 1 and 1.15 < abs(out[0]) < 1.25  # |λ| ≈ 1.2, outside the disc
    assert "DPLR" in z.figure.layout.title.text and "token t = 9" in z.figure.layout.title.text


def test_zoo_one_update_per_control_change_and_controls_follow_the_rule():
    z = transition_zoo_explorer()
    sent = count_messages(z.figure)
    for change in (dict(beta=1.4), dict(t=3), dict(decay=0.7), dict(seed=5)):
        sent.clear()
        z.update(**change)
        assert sent == ["_send_update_msg"], (change, sent)
    assert z.controls["n_h"].disabled and not z.controls["beta"].disabled
    z.update(rule="gla")
    assert z.controls["beta"].disabled and z.message == ""
    z.update(rule="delta_product")
    assert not z.controls["n_h"].disabled


def test_zoo_bad_values_keep_the_view_and_say_why():
    z = transition_zoo_explorer()
    title = z.figure.layout.title.text
    z.update(beta=2.5)
    assert "beta must be in [0.1, 2.0]" in z.message and z.figure.layout.title.text == title
    z.update(rule="rwkv")
    assert "rule must be one of" in z.message
    with pytest.raises(ValueError, match="n_h must be in"):
        transition_zoo_explorer(n_h=9)
    with pytest.raises(ValueError, match="rule must be one of"):
        transition_run("mamba")
    with pytest.raises(ValueError, match=r"beta must be in \(0, 2\]"):
        transition_run("delta", beta=0.0)


# regression solvers ---------------------------------------------------------------------------------------
def test_ridge_error_is_zero_up_to_d_pairs_with_a_tiny_ridge():
    run = solver_run(8, keys="random", ridge=1e-6, seed=0)
    ridge = run["curves"]["ridge (exact)"]
    assert float(ridge[:8].max()) < 1e-4  # n <= d random keys: the exact solver interpolates
    assert float(ridge[31]) > 0.3  # n = 4d: no linear map holds them all
    assert float(run["curves"]["additive"][1]) > 0.1  # additive interferes from the second pair on
    m = mesa_solvers_explorer(n=8, d=8, ridge=1e-6)
    assert m.error["ridge (exact)"] < 1e-4 < m.error["additive"]


@pytest.mark.parametrize("keys", ["random", "orthogonal first"])
def test_solver_curves_are_the_capacity_modules(keys):
    """additive and delta on the same stream as linattn_edu.capacity.store_pairs give its curves."""
    run = solver_run(6, keys=keys, beta=0.7, seed=4)
    ref = store_pairs(MAX_N, 6, keys=keys, beta=0.7, seed=4)
    for name in ("additive", "delta"):
        np.testing.assert_allclose(run["curves"][name].numpy(), ref["curve"][name], rtol=1e-12, atol=1e-12)


def test_ridge_states_read_out_what_mesa_attention_outputs():
    run = solver_run(5, ridge=0.05, seed=2)
    k, v = run["keys"], run["values"]
    out = mesa_attention(k, k, v, ridge=0.05, form="recurrent")  # (N, d): o_t = S*_tᵀ k_t
    read = torch.einsum("td,tde->te", k, run["states"]["ridge (exact)"])
    torch.testing.assert_close(read, out, rtol=1e-9, atol=1e-10)


def test_softmax_curve_is_nadaraya_watson():
    d, tau = 6, 5.0
    run = solver_run(d, sharpness=tau, seed=1)
    k, v = pair_stream(MAX_N, d, seed=1)
    for t in (1, 5, 40):
        w = torch.softmax(tau * k[:t] @ k[:t].T, dim=-1)  # (t, t): weights of stored keys for each stored query
        err = (w @ v[:t] - v[:t]).norm(dim=-1).mean()
        assert float(run["curves"]["softmax"][t - 1]) == pytest.approx(float(err), rel=1e-10)


def test_solvers_figure_draws_the_readouts():
    m = mesa_solvers_explorer(n=20, d=5, seed=3)
    assert m.message == "" and [tr.name for tr in m.figure.data[:5]] == list(SOLVERS)
    run = solver_run(5, seed=3)
    for i, name in enumerate(SOLVERS):
        np.testing.assert_allclose(m.figure.data[i].y, run["curves"][name][:20].numpy(), rtol=1e-12)
        np.testing.assert_allclose(m.figure.data[i].x, np.arange(1, 21) / 5, rtol=1e-6)
    heat = [tr for tr in m.figure.data if tr.type == "heatmap"]
    assert [tr.name for tr in heat] == [f"{n} S" for n in SOLVERS[1:]]
    for tr, name in zip(heat, SOLVERS[1:]):
        s = run["states"][name][19].numpy()
        np.testing.assert_allclose(_z(tr), s / np.abs(s).max(), rtol=1e-12)
        assert f"{name}: S / {np.abs(s).max():.3g}" in [a.text for a in m.figure.layout.annotations]
    assert _fixed_axes(m.figure) == []
    assert m.figure.layout.yaxis2.range[0] > m.figure.layout.yaxis2.range[1]  # key dim 0 at the top
    colours = [tr.line.color for tr in m.figure.data[:5]]
    styles = {(tr.line.color, tr.line.dash, tr.marker.symbol) for tr in m.figure.data[:5]}
    assert len(set(colours)) == 5 and len(styles) == 5  # distinct colour, and distinct dash + marker


def test_try_this_solvers_line_comes_true():
    m = mesa_solvers_explorer()  # d = 8, random keys
    text = m.try_this
    assert "n from 4 to 32" in text and "λ = 1" in text
    for n in range(4, 33):
        m.update(n=n)
        assert f"n = {n} pairs" in m.figure.layout.title.text
    curves = {tr.name: np.asarray(tr.y, dtype=float) for tr in m.figure.data[:5]}
    assert curves["ridge (exact)"][:8].max() < 0.05  # near 0 up to t = d
    assert curves["ridge (exact)"][16] > 10 * curves["ridge (exact)"][7]  # and rising after it
    assert curves["additive"][1] > 0.1
    assert all(curves["softmax"][t] < min(curves[s][t] for s in SOLVERS[1:]) for t in range(8, 32))  # lowest past d
    at_d = curves["ridge (exact)"][7]
    m.update(ridge=1.0)
    assert np.asarray(m.figure.data[4].y)[7] > at_d + 0.3  # λ = 1: the ridge trades fit for a smaller S


def test_solvers_moving_n_reuses_the_run_and_sends_one_update():
    m = mesa_solvers_explorer()
    run = m._run
    sent = count_messages(m.figure)
    m.update(n=30)
    assert m._run is run and sent == ["_send_update_msg"]
    m.update(d=1)
    assert "d must be in [2, 16]" in m.message
    with pytest.raises(ValueError, match="keys must be one of"):
        pair_stream(4, 4, keys="sorted")


# kernel-free figures: each frame is the live explorer's figure ------------------------------------------------
def _same(a, b, path="") -> list[str]:
    """Differences between two plotly JSON values (arrays element-wise, None = gap)."""
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
            return [] if np.array_equal(x.astype(float), y.astype(float), equal_nan=True) else [f"{path}: differ"]
        except (TypeError, ValueError):
            return [] if x.tolist() == y.tolist() else [f"{path}: {x.tolist()[:3]} != {y.tolist()[:3]}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


FRAME_CASES = [
    ("zoo", kf.transition_zoo_figure, transition_zoo_explorer, "beta", dict(rule="delta_product", n_h=2, beta=1.5)),
    ("solvers", kf.mesa_solvers_figure, mesa_solvers_explorer, "n", dict(n=24, d=8)),
]


@pytest.mark.parametrize("name, build, live, control, settings", FRAME_CASES, ids=[c[0] for c in FRAME_CASES])
def test_kernel_free_frames_are_the_live_figures(name, build, live, control, settings):
    fig = build(**settings)
    meta = fig.layout.meta["kernel_free"]
    buttons = meta.get("buttons")
    assert meta["control"] == control and len(fig.frames) >= 20
    slider = fig.layout.sliders[0]
    opened = [f.name for f in fig.frames]
    if buttons:  # the slider steps through the frames of the button value shown first
        opened = [n for n in opened if n.split("|")[0] == str(settings[buttons])]
        assert len(fig.frames) == len(meta["button_values"]) * len(meta["values"])
    assert [s.args[0][0] for s in slider.steps] == opened
    assert slider.steps[slider.active].label == str(settings[control])  # opens where the notebook's call does
    ex = live(**settings)
    for frame in fig.frames[::3]:
        *pressed, position = frame.name.split("|")
        change = {control: type(settings[control])(position)}
        if buttons:
            change[buttons] = pressed[0]
        ex.update(**change)
        value = frame.name
        assert ex.message == ""
        shown = go.Figure(ex.figure)
        problems = []
        assert len(frame.data) == len(shown.data)
        for i, (a, b) in enumerate(zip(frame.data, shown.data)):
            problems += _same(a.to_plotly_json(), b.to_plotly_json(), f"trace {i}")
        layout, frame_layout = shown.layout.to_plotly_json(), frame.layout.to_plotly_json()
        for key in ("title", "annotations", *(k for k in layout if k[1:5] == "axis" and k[0] in "xy")):
            problems += _same(frame_layout.get(key), layout.get(key), key)
        assert not problems, f"{name}, {control} = {value}: " + "; ".join(problems[:8])
    shown = [f for f in fig.frames if f.name == slider.steps[slider.active].args[0][0]][0]
    assert fig.layout.title.text == shown.layout.title.text


def test_kernel_free_zoo_buttons_switch_the_rule_and_carry_the_slider_with_them():
    fig = kf.transition_zoo_figure(rule="delta", beta=1.5)
    menu = fig.layout.updatemenus[0]
    assert [b.args[0][0] for b in menu.buttons] == [f"{r}|1.5" for r in RULES]  # each rule opens at β = 1.5
    assert menu.buttons[menu.active].label == "DeltaNet"
    for frame in fig.frames:
        rule, beta = frame.name.split("|")
        steps = frame.layout.sliders[0].steps  # after this frame, the slider moves this rule's β
        assert [s.args[0][0] for s in steps] == [f"{rule}|{b}" for b in kf.ZOO_BETAS]
        assert steps[frame.layout.sliders[0].active].label == beta
        assert frame.layout.updatemenus[0].active == list(RULES).index(rule)
    with pytest.raises(ValueError, match="control must be one of"):
        kf.kernel_free_grid(transition_zoo_explorer(), "nope", [1], "beta", [1.0])
    with pytest.raises(ValueError, match="one label per button"):
        kf.kernel_free_grid(transition_zoo_explorer(), "rule", ["delta"], "beta", [1.0], button_labels=[])


def test_kernel_free_registry_names_the_new_explorers():
    assert kf.FIGURES["transition_zoo_explorer"] is kf.transition_zoo_figure
    assert kf.FIGURES["mesa_solvers_explorer"] is kf.mesa_solvers_figure
    assert kf.ZOO_BETAS[0] == 0.25 and kf.ZOO_BETAS[-1] == 2.0 and {1.0, 1.5} <= set(kf.ZOO_BETAS)


# the KV calculator's hybrid control ----------------------------------------------------------------------
def test_kv_hybrid_fraction_prices_the_softmax_layers_only():
    calc = kv_cache_calculator(preset="llama-2-7b", tokens=32768, dtype=2)
    hybrid = [tr for tr in calc.figure.data if tr.name.startswith("hybrid")]
    cache = calc.figure.data[0]
    assert len(hybrid) == 1 and np.allclose(hybrid[0].y, cache.y)  # all layers softmax: the model itself
    assert calc.hybrid.linear_layers == 0
    calc.update(softmax_fraction=0.25)  # 3 linear : 1 softmax
    llama = PRESETS["llama-2-7b"]
    assert calc.message == "" and calc.hybrid.ratio == "24:8"
    assert calc.hybrid_bytes.kv_cache == cache_bytes(llama, 32768, dtype=2) // 4 == 4 * 2**30
    assert calc.hybrid_bytes.state == 24 * 32 * 128 * 128 * 2
    assert calc.hybrid_bytes == hybrid_bytes(hybridize(llama, 24), 32768, dtype=2)
    line = [tr for tr in calc.figure.data if tr.name.startswith("hybrid")][0]
    y, full = np.asarray(line.y), np.asarray(calc.figure.data[0].y)
    assert "8 of 32 layers softmax" in line.name and "8 of 32 layers softmax" in calc.summary
    assert y[-1] == pytest.approx(full[-1] / 4 + 24 * 32 * 128 * 128 * 2 / 2**20, rel=1e-12)
    assert y[0] == pytest.approx(24 * 32 * 128 * 128 * 2 / 2**20 + full[0] / 4, rel=1e-12)  # the states' floor
    calc.update(softmax_fraction=0.0)  # all linear: the plain state, flat
    y = np.asarray([tr for tr in calc.figure.data if tr.name.startswith("hybrid")][0].y)
    assert np.allclose(y, state_bytes(llama, dtype=2) / 2**20)
    calc.update(softmax_fraction=0.3)
    assert "softmax_fraction must be one of" in calc.message
    with pytest.raises(ValueError, match="softmax_fraction must be one of"):
        kv_cache_calculator(softmax_fraction=0.3)


def test_kv_try_this_hybrid_line_comes_true():
    calc = kv_cache_calculator()
    assert "1/4 (3:1)" in calc.try_this
    calc.update(softmax_fraction=0.25)
    line = [tr for tr in calc.figure.data if tr.name.startswith("hybrid")][0]
    assert line.marker.symbol == "triangle-up" and line.line.color == "#cc79a7"
    full = np.asarray(calc.figure.data[0].y)
    assert np.asarray(line.y)[-1] / full[-1] == pytest.approx(0.25, abs=0.01)  # a quarter at long N
    assert min(line.y) > max(calc.figure.data[1].y) * 0.74  # never below the floor of 24 layers' states
