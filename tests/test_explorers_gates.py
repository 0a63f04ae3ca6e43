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
