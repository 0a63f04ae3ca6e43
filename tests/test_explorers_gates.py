"""Explorers for decay, gates and the delta rule, headless: figures, titles, readouts after update()."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pytest.importorskip("plotly")
pytest.importorskip("ipywidgets")
pytest.importorskip("anywidget")

from linattn_edu.explorers.decay import decay_explorer  # noqa: E402
from linattn_edu.explorers.gated_stepper import gated_stepper, repeated_key_run  # noqa: E402
from linattn_edu.explorers.retrieval import retrieval_explorer, store_pairs  # noqa: E402
from linattn_edu.gated import decay_mask  # noqa: E402


# retrieval ------------------------------------------------------------------------------------
def test_retrieval_exact_below_capacity_and_interference_above():
    r = retrieval_explorer(n=12, d=16)
    assert r.message == ""
    assert r.mean_error["additive"] < 1e-12 and r.mean_error["delta"] < 1e-12  # orthogonal keys, n <= d
    r.update(n=64)
    assert r.mean_error["delta"] < 0.8 * r.mean_error["additive"]
    assert r.mean_error["additive"] > 1.0
    curve = np.asarray(r.figure.data[0].y, dtype=float)  # additive mean error after 1…n pairs
    assert curve.shape == (64,) and np.all(curve[:16] < 1e-12) and curve[-1] > curve[20]
    assert "n = 64" in r.figure.layout.title.text and "16 × 16" in r.figure.layout.title.text
    assert r.figure.data[0].name == "additive" and r.figure.data[2].name == "delta"


def test_retrieval_interference_is_the_formula():
    res = store_pairs(20, 8, keys="random", seed=3)
    # additive recall error of pair i is exactly ‖Σ_{j≠i}(k_jᵀk_i) v_j‖
    np.testing.assert_allclose(res["interference"].norm(dim=-1).numpy(), res["per_pair"]["additive"], rtol=1e-12)


def test_retrieval_bad_value_keeps_view():
    r = retrieval_explorer(n=8, d=8)
    title = r.figure.layout.title.text
    r.update(d=1)
    assert "d must be in [2, 64]" in r.message and r.figure.layout.title.text == title
    r.update(keys="nope")
    assert "keys must be one of" in r.message


# decay -------------------------------------------------------------------------------------------
def test_decay_maps_are_what_the_figure_shows():
    ex = decay_explorer(n=20, head=1, bias=2.0, spread=1.0, seed=4)
    assert math.isclose(ex.gamma, 1 - 2 ** -6, rel_tol=1e-12)
    z = np.asarray([[np.nan if x is None else x for x in row] for row in ex.figure.data[0].z], dtype=float)
    i, j = np.tril_indices(20)
    np.testing.assert_allclose(z[i, j], ex.gamma ** (i - j), rtol=1e-12)
    assert np.isnan(z[0, 1])  # the future is not drawn
    fixed, data = ex.maps.values()
    assert math.isclose(ex.remembered[next(iter(ex.maps))], float(fixed[-1].sum()), rel_tol=1e-12)
    assert float(data.max()) <= 1.0 and torch.all(data.diagonal() == 1)
    ex.update(head=7)
    assert "0.9998" in ex.figure.layout.annotations[0].text
    assert ex.remembered[next(iter(ex.maps))] > 19.9


def test_decay_data_gate_with_zero_spread_is_a_constant_decay():
    ex = decay_explorer(n=10, bias=1.0, spread=0.0)
    data = list(ex.maps.values())[1]
    g = math.log(1 / (1 + math.exp(-1.0)))
    torch.testing.assert_close(data, decay_mask(torch.full((10,), g, dtype=torch.float64)), rtol=1e-12, atol=0)


# gated / delta stepper ---------------------------------------------------------------------------
def test_stepper_delta_overwrites_additive_piles_up():
    st = gated_stepper(n=16, t=10, repeat_at=8, gamma=0.9, beta=1.0)
    assert st.message == ""
    assert st.recall_error["delta"] < 1e-12  # overwritten exactly at the repeat
    assert math.isclose(st.recall_error["additive"], 1.0, rel_tol=1e-12)  # returns v₁ + v₂: error ‖v₁‖ = 1
    assert 0 < st.recall_error["gated"] < 1
    assert "t = 10" in st.figure.layout.title.text
    assert [tr.name for tr in st.figure.data[:3]] == ["additive", "gated", "delta"]
    st.update(t=7)  # before the repeat everyone recalls v₁ (γ shrinks it)
    assert st.recall_error["additive"] < 1e-12 and st.recall_error["delta"] < 1e-12
    assert math.isclose(st.recall_error["gated"], 1 - 0.9 ** 7, rel_tol=1e-9)


def test_stepper_gated_error_is_the_decay_formula():
    run = repeated_key_run(12, 5, gamma=0.8, beta=1.0, seed=2)
    err = run["recall_error"]["gated"]
    s = run["states"]["gated"]
    assert s.shape == (12, 8, 8)
    for t in range(5):  # before the repeat: recall = 0.8^t v₁ (other keys are ⟂ A), error 1 − 0.8^t
        assert float(err[t]) == pytest.approx(1 - 0.8 ** t, abs=1e-12)


def test_stepper_n_shrinks_t_and_bad_values_give_messages():
    st = gated_stepper(n=16, t=12)
    st.update(n=6)
    assert st.values()["t"] <= 5 and st.message == ""
    st.update(gamma=0.2)
    assert "gamma must be in [0.5, 1.0]" in st.message


# "Try this" lines: each moves the controls as its line says and checks what the line promises -----------------
def _trace(fig, name):
    matches = [tr for tr in fig.data if tr.name == name and tr.type == "scatter"]
    assert len(matches) == 1, f"one trace named {name!r} expected; got {[tr.name for tr in fig.data]}"
    return matches[0]


def _z(trace):
    return np.asarray([[np.nan if x is None else x for x in row] for row in trace.z], dtype=float)


def test_try_this_decay_head_widens_band_and_low_bias_cuts_blocks():
    ex = decay_explorer(n=48, head=0, bias=3.0, spread=2.0)  # notebook 08's call
    assert "0 to 7" in ex.try_this and "25 of 48" in ex.try_this and "0.969" in ex.try_this
    first = ex.figure.data[0]
    assert "γ = 0.9688" in first.name and "RetNet head 0: γ = 0.9688: 25.0," in ex.figure.layout.title.text
    row0 = _z(first)[-1]
    assert round(np.nansum(row0)) == 25 and row0.min() < 0.25  # the sum of the last row, what the title reports
    ex.update(head=7)
    assert "γ = 0.9998" in ex.figure.data[0].name
    row = _z(ex.figure.data[0])[-1]
    assert row.sum() > 47.5 and row.min() > 0.98  # nearly all 48 tokens remembered: the band is the whole triangle
    assert np.allclose(ex.figure.data[2].y, row)  # the last-row panel draws the same row
    ex.update(bias=0.0, spread=4.0)
    data = _z(ex.figure.data[1])  # (48, 48): the data-dependent map
    sub = np.diagonal(data, offset=-1)  # sub[i − 1] = L[i, i−1] = exp(g_i): the gate of token i
    walls = np.flatnonzero(sub < 0.05) + 1  # tokens i whose gate is near 0
    assert len(walls) >= 3, f"a near-zero gate should appear at least 3 times; got gates {np.round(sub, 3)}"
    for i in walls:  # everything before a wall is (nearly) forgotten by every later query
        assert np.nanmax(data[i:, :i]) < 0.05
    assert np.nanmean(data[np.tril_indices(48, -1)] < 0.01) > 0.5  # blocks: most of the past is gone


def test_try_this_stepper_lines_come_true_on_the_drawn_curves():
    st = gated_stepper(n=16, t=10, repeat_at=8, gamma=0.9, beta=1.0)  # notebook 08's call
    text = st.try_this
    assert "jump from 0 to 1" in text and "delta stay at 0" in text and "γ = 0.7" in text and "β = 0.5" in text
    seen = {}
    for t in range(16):  # drag step t from 0 to the end
        st.update(t=t)
        assert f"t = {t}:" in st.figure.layout.title.text
        seen = {name: np.asarray(_trace(st.figure, name).y, dtype=float)
                for name in ("additive", "gated", "delta", "gated delta")}
        now = [tr for tr in st.figure.data if tr.name == "now (t)"][0]
        assert list(now.x) == [t, t]
    add, gated, delta, gdelta = seen["additive"], seen["gated"], seen["delta"], seen["gated delta"]
    assert np.all(add[:8] < 1e-12) and np.allclose(add[8:], 1.0)  # jumps from 0 to 1 at the repeat
    assert np.all(delta < 1e-12)  # β = 1 overwrites exactly: 0 at every step
    assert gdelta[7] > 0.4 and gdelta[8] < 1e-12  # gated delta falls back to 0 at the repeat
    st.update(gamma=0.7)
    gated, gdelta = (np.asarray(_trace(st.figure, n).y, dtype=float) for n in ("gated", "gated delta"))
    for curve in (gated, gdelta):
        assert curve[7] > 0.9 and curve[15] > 0.9  # v₁ forgotten before the repeat, v₂ forgotten by the end
        assert np.all(np.diff(curve[:8]) > 0) and np.all(np.diff(curve[9:]) > 0)  # climbing between writes
    st.update(beta=0.5)
    delta = np.asarray(_trace(st.figure, "delta").y, dtype=float)
    assert np.all(np.abs(delta - 0.5) < 0.06), np.round(delta, 3)  # sits at about 0.5


def test_stepper_curves_that_coincide_stay_apart():
    """Gated and gated delta are equal until the repeat: they must differ in dash and marker."""
    st = gated_stepper(n=16, t=10, repeat_at=8, gamma=0.7, beta=1.0)
    styles = {tr.name: (tr.line.dash, tr.marker.symbol) for tr in st.figure.data if tr.type == "scatter"
              and tr.name in ("additive", "gated", "delta", "gated delta")}
    assert len(set(styles.values())) == 4, styles


def test_try_this_window_global_tokens_and_share():
    from linattn_edu.explorers import sliding_window_explorer

    sw = sliding_window_explorer(n=48, window=6, global_tokens="0", causal=True)  # notebook 08's call
    assert "“0, 20”" in sw.try_this and "(w + g)/N" in sw.try_this
    sw.update(global_tokens="0, 20")
    mask = _z(sw.figure.data[0]) > 0.5  # (48, 48) drawn mask
    assert mask[20, :21].all() and mask[20:, 20].all()  # row 20 (keys it may see) and column 20 filled in
    assert not mask[19, 21:].any()  # still causal
    plain = np.add.outer(np.arange(48), -np.arange(48))
    band = (plain >= 0) & (plain < 6)
    assert mask[20].sum() > band[20].sum() + 10  # a full row stands out against the band of 6
    ratios = []
    for n in (48, 128, 256):
        sw.update(n=n)
        ratios.append(sw.memory_ratio)
        shown = float(sw.figure.layout.title.text.split("(")[1].split("%")[0]) / 100
        assert shown == pytest.approx(sw.memory_ratio, abs=6e-4)
        assert sw.memory_ratio == pytest.approx((6 + 2) / n, rel=0.1)  # (w + g)/N, causal
    assert ratios[0] > ratios[1] > ratios[2]
    dense = _trace(sw.figure, "dense N²")
    assert np.allclose(np.asarray(dense.y), np.asarray(dense.x) ** 2)
    sw.update(causal=False)
    assert sw.memory_ratio == pytest.approx((2 * 6 - 1 + 2 * 2) / 256, rel=0.1)  # two-sided
