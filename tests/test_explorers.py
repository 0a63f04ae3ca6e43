"""linattn_edu.explorers, headless: construction, update callbacks, readouts, messages, one redraw."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("plotly")
pytest.importorskip("ipywidgets")
pytest.importorskip("anywidget")

import plotly.graph_objects as go  # noqa: E402

from linattn_edu import linear_attention, softmax_attention  # noqa: E402
from linattn_edu.explorers import (  # noqa: E402
    attention_map_explorer,
    feature_map_explorer,
    kernel_smoother_explorer,
    sliding_window_explorer,
    state_stepper,
)
from linattn_edu.window import window_mask  # noqa: E402

ENTRY_POINTS = {
    "attention_map_explorer": attention_map_explorer,
    "state_stepper": state_stepper,
    "kernel_smoother_explorer": kernel_smoother_explorer,
    "feature_map_explorer": feature_map_explorer,
    "sliding_window_explorer": sliding_window_explorer,
}


def count_messages(fig: go.FigureWidget) -> list[str]:
    """Record every message the FigureWidget sends to the front end (each one is a redraw)."""
    sent: list[str] = []
    for name in ("_send_update_msg", "_send_relayout_msg", "_send_restyle_msg", "_send_addTraces_msg",
                 "_send_deleteTraces_msg", "_send_moveTraces_msg", "_send_animate_msg"):
        original = getattr(fig, name)

        def wrapper(*args, _original=original, _name=name, **kwargs):
            sent.append(_name)
            return _original(*args, **kwargs)

        setattr(fig, name, wrapper)
    return sent


def z_of(fig, i: int = 0) -> np.ndarray:
    return np.asarray(fig.data[i].z, dtype=float)


# ------------------------------------------------------------------------------------------ all explorers


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_entry_point_renders_default_view(name):
    ex = ENTRY_POINTS[name]()
    assert isinstance(ex.figure, go.FigureWidget) and len(ex.figure.data) > 0
    assert ex.message == "" and ex.redraws == 1
    assert ex.figure.layout.title.text  # a title saying what is drawn
    assert set(ex.controls) == set(ex.values()) | {n for n, w in ex.controls.items() if "value" not in w.trait_names()}
    assert ex.figure in ex.widget.children  # the figure lives in the displayed container
    bundle = ex._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == ex.widget.model_id


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_bad_default_raises_value_error_naming_the_range(name):
    first = next(iter(ENTRY_POINTS[name]().values()))
    with pytest.raises(ValueError, match=f"{first} must be"):
        ENTRY_POINTS[name](**{first: 10 ** 9})


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_out_of_range_update_shows_message_and_keeps_view(name):
    ex = ENTRY_POINTS[name]()
    before = ex.figure.to_plotly_json()
    values = ex.values()
    first = next(iter(values))
    ex.update(**{first: 10 ** 9})  # never raises
    assert f"{first} must be" in ex.message and "got 1000000000" in ex.message
    assert "must be" in ex._message_box.value  # shown in the widget, above the figure
    assert ex.values() == values and ex.redraws == 1
    assert ex.figure.to_plotly_json() == before


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_widget_state_is_strict_json_and_current_when_first_shown(name):
    """What the front end receives: no NaN (jupyter_client rejects it) and the figure as updated so far."""
    from ipywidgets.widgets.widget import _remove_buffers

    ex = ENTRY_POINTS[name]()
    first = next(iter(ex.values()))
    ex.update(**{first: ex.values()[first]})  # an update before the widget is displayed
    ex._repr_mimebundle_()
    state, _, _ = _remove_buffers(ex.figure.get_state())
    json.dumps(state, allow_nan=False)
    assert len(ex.figure._widget_data) == len(ex.figure.data)
    assert ex.figure._widget_layout["title"]["text"] == ex.figure.layout.title.text


def test_memory_budget_error_becomes_a_message():
    """The dense N × N view is guarded by the core's memory budget: over it, a message, not a traceback."""
    from linattn_edu import set_memory_budget

    ex = attention_map_explorer(n=16)
    old = set_memory_budget(16 * 16 * 8)  # exactly one float64 16 × 16 matrix
    try:
        ex.update(n=64)
    finally:
        set_memory_budget(old)
    assert "budget" in ex.message and ex.redraws == 1
    assert z_of(ex.figure).shape == (16, 16)  # the last good view stays
    ex.update(n=20)
    assert ex.message == "" and z_of(ex.figure).shape == (20, 20)


def test_unknown_control_is_a_type_error():
    with pytest.raises(TypeError, match=r"unknown control\(s\) \['nn'\]"):
        state_stepper().update(nn=3)


def test_error_inside_compute_becomes_a_message(monkeypatch):
    ex = sliding_window_explorer()

    def broken(**values):
        raise RuntimeError("boom")

    monkeypatch.setattr(ex, "compute", broken)
    ex.controls["window"].value = 3  # a front-end slider move: must not raise out of the callback
    assert ex.message == "RuntimeError: boom"


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_compute_runs_single_threaded_and_restores_torch_threads(name, monkeypatch):
    ex = ENTRY_POINTS[name]()
    seen = []
    original = ex.compute
    monkeypatch.setattr(ex, "compute", lambda **v: (seen.append(torch.get_num_threads()), original(**v))[1])
    before = torch.get_num_threads()
    ex.refresh()
    assert seen == [1] and torch.get_num_threads() == before


def test_slider_move_redraws_once_with_one_message():
    ex = attention_map_explorer(n=16)
    sent = count_messages(ex.figure)
    ex.controls["n"].value = 20  # what a front-end slider move does
    assert ex.redraws == 2 and sent == ["_send_update_msg"]
    assert z_of(ex.figure).shape == (20, 20)


def test_update_with_several_changes_redraws_once():
    ex = state_stepper()
    sent = count_messages(ex.figure)
    ex.update(n=20, d=3, feature_map="taylor", t=15)
    assert ex.redraws == 2 and len(sent) == 1
    assert ex.t == 15 and ex.S.shape == (1 + 3 + 9, 4)


def test_two_explorers_in_one_notebook_do_not_interfere():
    a, b = attention_map_explorer(n=12), attention_map_explorer(n=12)
    assert a.figure is not b.figure and a.controls["n"] is not b.controls["n"]
    before = z_of(b.figure, 1).copy()
    a.update(n=24, feature_map="relu")
    assert z_of(a.figure, 1).shape == (24, 24)
    np.testing.assert_array_equal(z_of(b.figure, 1), before)
    assert b.values()["n"] == 12 and b.redraws == 1
    s1, s2 = state_stepper(), state_stepper()
    s1.update(t=2)
    assert s2.t == 5 and "t = 5" in s2.figure.layout.title.text


def test_explorers_package_is_lazy():
    code = ("import sys, linattn_edu.explorers as e; assert 'plotly' not in sys.modules, 'eager'; "
            "assert callable(e.state_stepper); assert 'plotly' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------------------ attention map


def test_attention_map_panels_match_core_and_share_scale():
    ex = attention_map_explorer(n=10, d=8, feature_map="elu+1", temperature=2.0, causal=True)
    soft, lin, diff = (z_of(ex.figure, i) for i in range(3))
    assert soft.shape == lin.shape == diff.shape == (10, 10)
    p, a = ex.softmax_weights.numpy(), ex.linear_weights.numpy()
    np.testing.assert_allclose(soft, p)
    np.testing.assert_allclose(lin, a)
    np.testing.assert_allclose(diff, a - p)
    assert np.triu(soft, 1).max() == 0 and np.triu(lin, 1).max() == 0  # causal
    f = ex.figure.data
    assert f[0].zmin == f[1].zmin == 0.0 and f[0].zmax == f[1].zmax == pytest.approx(max(p.max(), a.max()))
    row_err = np.abs(a - p).sum(-1)
    assert ex.max_row_error == pytest.approx(row_err.max()) and ex.mean_row_error == pytest.approx(row_err.mean())
    assert f"max {ex.max_row_error:.3g}" in ex.figure.layout.title.text


def test_attention_map_temperature_is_the_softmax_scale():
    from linattn_edu.explorers.attention_map import make_inputs

    ex = attention_map_explorer(n=8, d=4, temperature=0.5)
    q, k, _ = make_inputs("random", 8, 4, 0)
    v = torch.zeros(8, 1, dtype=torch.float64)
    _, p = softmax_attention(q, k, v, scale=1 / (0.5 * 2.0), return_weights=True)  # 1/(τ√d)
    np.testing.assert_allclose(z_of(ex.figure, 0), p.numpy(), atol=1e-12)
    _, a = linear_attention(q / 0.5 ** 0.5, k / 0.5 ** 0.5, v, "elu+1", form="quadratic", return_weights=True)
    np.testing.assert_allclose(z_of(ex.figure, 1), a.numpy(), atol=1e-12)


def test_attention_map_taylor_beats_relu_near_zero_scores():
    """Small scores (large τ): Taylor's 1 + s + s²/2 ≈ exp(s), so its map is closer to softmax's."""
    ex = attention_map_explorer(n=32, d=16, temperature=4.0, feature_map="taylor")
    taylor = ex.max_row_error
    ex.update(feature_map="relu")
    assert taylor < 0.1 < ex.max_row_error


def test_attention_map_favor_error_falls_with_m():
    """At τ = 4 (scores of order 1/4) FAVOR+'s variance is small enough to see the error fall with m.

    At τ = 1 with N(0, I) inputs in d = 16 it falls slowly (0.85 at m = 8, 0.50 at m = 1024): the
    estimator's variance grows like exp(‖q + k‖²/√d), the heavy tail that motivates orthogonal features.
    """
    ex = attention_map_explorer(n=32, d=16, feature_map="favor+", m=8, temperature=4.0)
    coarse = ex.mean_row_error
    ex.update(m=1024)
    assert ex.mean_row_error < coarse / 3


def test_attention_map_token_inputs_label_axes():
    ex = attention_map_explorer(inputs="tokens", n=6)
    assert list(ex.figure.data[0].x) == ["0:the", "1:cat", "2:sat", "3:on", "4:the", "5:mat"]


# ------------------------------------------------------------------------------------------ state stepper


@pytest.mark.parametrize("feature_map", ["elu+1", "relu", "taylor", "favor+"])
def test_stepper_readout_matches_quadratic_row(feature_map):
    st = state_stepper(n=10, d=3, d_v=2, feature_map=feature_map)
    run = st.run
    reference = linear_attention(run.q, run.k, run.v, run.phi, causal=True, form="quadratic")  # (n, d_v)
    for t in (0, 4, 9):
        st.update(t=t)
        fq = run.phi.query(run.q[t])  # (d_φ,)
        readout = (fq @ st.S) / (fq @ st.z + 1e-6)  # (d_φ,) @ (d_φ, d_v) -> (d_v,)
        assert torch.allclose(readout, reference[t], atol=1e-6, rtol=0)
        assert st.readout_error < 1e-6
        assert f"t = {t} " in st.figure.layout.title.text


def test_stepper_state_is_the_sum_of_outer_products():
    st = state_stepper(n=6, d=2, d_v=3, t=3)
    fk = st.run.phi.key(st.run.k[:4])  # (4, d_φ)
    torch.testing.assert_close(st.S, fk.T @ st.run.v[:4])  # (d_φ, 4) @ (4, d_v) -> (d_φ, d_v)
    torch.testing.assert_close(st.z, fk.sum(0))
    np.testing.assert_allclose(z_of(st.figure, 0), st.S.numpy())


def test_stepper_t_move_changes_state_and_output_rows():
    st = state_stepper(n=8)
    st.update(t=2)
    rows_2 = z_of(st.figure, 2)
    s_2 = z_of(st.figure, 0)
    st.controls["t"].value = 6
    assert st.t == 6 and not np.allclose(z_of(st.figure, 0), s_2)
    assert np.isnan(rows_2[3:]).all() and np.isfinite(z_of(st.figure, 2)[:7]).all()


def test_stepper_n_change_moves_t_range_and_play():
    st = state_stepper(n=12, t=11)
    st.update(n=5)
    assert st.controls["t"].max == 4 and st.play.max == 4 and st.t == 4
    st.update(t=7)
    assert "t must be in [0, 4]; got 7" in st.message and st.t == 4


# ------------------------------------------------------------------------------------------ kernel smoother


def test_kernel_smoother_weights_and_fit():
    ks = kernel_smoother_explorer(kernel="gaussian", bandwidth=0.4, query=0.5)
    w = ks.weights
    assert w.shape == (40,) and float(w.sum()) == pytest.approx(1.0)
    fit_a = np.asarray(ks.figure.data[1].y)
    ks.update(bandwidth=2.0)  # wider kernel: flatter weights, smoother fit
    assert float(ks.weights.max()) < float(w.max())
    assert np.abs(np.diff(ks.figure.data[1].y)).max() < np.abs(np.diff(fit_a)).max()
    np.testing.assert_allclose(ks.figure.data[4].y, ks.weights.numpy())


def test_kernel_smoother_boxcar_is_a_local_average():
    from linattn_edu.explorers.kernel_smoother import _data

    ks = kernel_smoother_explorer(kernel="boxcar", bandwidth=0.5, query=0.0)
    x, y, _ = _data(1, 40, 0.3, 0)
    inside = (x[:, 0].abs() <= 0.5)
    assert ks.prediction == pytest.approx(float(y[inside, 0].mean()))


@pytest.mark.parametrize("kernel", ["gaussian", "boxcar", "exp", "elu+1", "favor+"])
def test_kernel_smoother_every_kernel_in_1d_and_2d(kernel):
    ks = kernel_smoother_explorer(kernel=kernel)
    assert ks.message == "" and np.isfinite(ks.fit.numpy()).all()
    ks.update(dim=2)
    assert ks.message == "" and ks.fit.shape == (41, 41)
    assert [t.type for t in ks.figure.data][0] == "heatmap"


# ------------------------------------------------------------------------------------------ feature maps


def test_feature_map_error_falls_like_inverse_sqrt_m():
    fm = feature_map_explorer(kind="favor+", d=16, m=4)
    for curve in fm.errors.values():
        assert curve[-1] < curve[0] / 3  # m ×256 -> error ÷16 ideally; ÷3 leaves room for noise
    assert fm.negative_fraction == 0.0
    coarse = fm.relative_error
    fm.update(m=1024)
    assert fm.relative_error < coarse / 3
    assert len(fm.figure.data[0].x) == 24 * 24


def test_feature_map_trig_gives_negative_estimates():
    fm = feature_map_explorer(kind="trig", m=4, input_scale=1.5)
    assert fm.negative_fraction > 0
    assert "negative estimates" in fm.figure.layout.title.text


def test_feature_map_resample_draws_new_features():
    fm = feature_map_explorer()
    before = np.asarray(fm.figure.data[0].y).copy()
    fm.resample.click()
    assert fm.values()["seed"] == 1 and fm.redraws == 2
    assert not np.allclose(fm.figure.data[0].y, before)
    fm.update(seed=0)
    np.testing.assert_allclose(fm.figure.data[0].y, before)  # the seed reproduces the draw


# ------------------------------------------------------------------------------------------ sliding window


def test_sliding_window_counts_and_mask():
    sw = sliding_window_explorer(n=20, window=3, global_tokens="0, 7", causal=True)
    mask = window_mask(20, 3, (0, 7), causal=True)
    np.testing.assert_array_equal(z_of(sw.figure, 0), mask.double().numpy())
    assert sw.attended_pairs == int(mask.sum()) and sw.dense_pairs == 400
    w = z_of(sw.figure, 1)
    assert np.all(w[~mask.numpy()] == 0) and np.allclose(w.sum(-1), 1)
    assert f"{sw.attended_pairs} of 400 pairs" in sw.figure.layout.title.text


def test_sliding_window_bad_global_tokens_give_message():
    sw = sliding_window_explorer(n=16)
    sw.update(global_tokens="0, x")
    assert "whole numbers" in sw.message
    sw.update(global_tokens="0, 99")
    assert "[0, 16)" in sw.message
    sw.update(global_tokens="3")
    assert sw.message == ""


# ------------------------------------------------------------------------------------------ the redraw path


def _sent_payloads(fig: go.FigureWidget) -> list[tuple[str, bool]]:
    """(message trait, whether it carried a payload) for every plotly message state sent to the front end."""
    sent: list[tuple[str, bool]] = []
    original = fig.send_state

    def record(key=None):
        for k in [key] if isinstance(key, str) else (key or []):
            if k.startswith("_py2js") and getattr(fig, k) is not None:
                sent.append(k)
        return original(key=key)

    fig.send_state = record
    return sent


def test_trace_set_change_rebuilds_the_widget_with_messages_that_carry_data():
    # 1-D -> 2-D replaces every trace; the front end must receive the whole new figure in one react message
    # (plotly's delete + add + update drew it three times; under held trait notifications each payload
    # collapsed to None and the browser kept the 1-D plot)
    from linattn_edu.explorers._base import ExplorerFigure

    ks = kernel_smoother_explorer()
    assert isinstance(ks.figure, ExplorerFigure) and ks.figure.can_react  # this plotly's bundle has the hooks
    payloads = []
    ks.figure.observe(lambda change: payloads.append(change["new"]), names="_py2js_react")
    sent = _sent_payloads(ks.figure)
    ks.update(dim=2)
    assert ks.last_sync == "rebuild"
    assert sent == ["_py2js_react"], sent  # one message, nothing else
    message = next(p for p in payloads if p is not None)
    assert [t["type"] for t in message["data"]] == ["heatmap", "scatter", "scatter", "scatter", "scatter"]
    assert message["layout"]["title"]["text"] == ks.figure.layout.title.text
    assert [t.type for t in ks.figure.data] == ["heatmap", "scatter", "scatter", "scatter", "scatter"]
    ks.update(dim=1)
    assert ks.last_sync == "rebuild" and ks.figure.data[0].type == "scatter"
    assert "Gaussian" in ks.figure.layout.title.text


def test_a_plain_figure_widget_is_rebuilt_by_plotlys_own_three_messages():
    from linattn_edu.explorers._base import sync_figure

    target = go.FigureWidget(go.Figure([go.Scatter(y=[1, 2], name="a")]))
    sent = _sent_payloads(target)
    source = go.Figure([go.Heatmap(z=[[1, 2]]), go.Scatter(y=[3, 4])], layout=dict(title="new"))
    assert sync_figure(target, source) == "rebuild"
    assert sent[:2] == ["_py2js_deleteTraces", "_py2js_addTraces"] and "_py2js_update" in sent
    assert [t.type for t in target.data] == ["heatmap", "scatter"]


def test_a_slider_echo_of_the_drawn_value_draws_nothing():
    # a browser slider sends back 16.0 as 15.999999999999998: the same figure, no second computation
    ex = kernel_smoother_explorer()
    name, slider = next((n, w) for n, w in ex.controls.items() if isinstance(w.value, float)
                        and not isinstance(w.value, bool))
    before = ex.redraws
    slider.value = slider.value * (1 - 2e-16) if slider.value else 1e-300
    assert ex.redraws == before, name
    slider.value = slider.max if slider.value != slider.max else slider.min
    assert ex.redraws == before + 1, name


def test_same_structure_is_one_update_and_leaves_nothing_stale():
    from linattn_edu.explorers._base import sync_figure

    target = go.FigureWidget(go.Figure([go.Scatter(y=[1, 2], error_y=dict(array=[0.1, 0.1]), name="a")]))
    source = go.Figure([go.Scatter(y=[3, 4], name="b")])  # no error bars: not the same structure
    assert sync_figure(target, source) == "rebuild"
    assert target.data[0].error_y.array is None and target.data[0].name == "b"
    sent = count_messages(target)
    assert sync_figure(target, go.Figure([go.Scatter(y=[5, 6], name="c")])) == "update"
    assert sent == ["_send_update_msg"] and list(target.data[0].y) == [5, 6]


def test_every_explorer_has_a_try_this_line_under_its_figure():
    for name, factory in ENTRY_POINTS.items():
        ex = factory()
        children = ex.widget.children
        assert children.index(ex.try_this_box) == children.index(ex.figure) + 1, name
        assert "Try this →" in ex.try_this_box.value and "you should see" in ex.try_this_box.value, name


def test_attention_map_clustered_inputs_come_in_blocks_and_rows_view_is_curves():
    ex = attention_map_explorer(n=32, inputs="clustered")
    per_block = ex.softmax_weights.reshape(32, 4, 8).sum(-1)  # (query, key block of 8 contiguous keys)
    # each query puts most of its weight on one contiguous key block, and queries are sorted by that block
    assert float(per_block.max(-1).values.mean()) > 0.9
    block = per_block.argmax(-1)  # (32,)
    assert bool((block[1:] >= block[:-1]).all()) and len(set(block.tolist())) > 1
    ex.update(view="rows")
    assert ex.last_sync == "rebuild" and {t.type for t in ex.figure.data} == {"scatter"}
    assert ex.figure.data[-1].name == "uniform 1/N"


def test_kv_calculator_query_heads_on_mha_move_kv_heads_and_numbers():
    from linattn_edu.explorers import kv_cache_calculator

    calc = kv_cache_calculator(preset="llama-2-7b")
    before = calc.cache_bytes
    calc.controls["heads"].value = 40  # a browser slider move
    assert calc.message == "" and calc.shape.kv_heads == 40 and calc.cache_bytes == before * 40 // 32
    assert "40" in calc.summary or calc.cache_bytes != before
    calc.update(kind="GQA")
    assert calc.message == "" and calc.shape.kv_heads < calc.shape.heads
    calc.update(kind="MHA", kv_heads=4)  # an explicit impossible request is explained, readout emptied
    assert "does not match" in calc.message and calc._readout.value == ""
