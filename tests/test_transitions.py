"""Transitions beyond the diagonal: DeltaProduct and DPLR, each fast form against its recurrent reference,
the reductions to the delta rule / Gated DeltaNet / KDA, state passing, NaN causality, errors."""
import cmath
import functools
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_close, rand

from linattn_edu import delta_rule_attention, transitions
from linattn_edu import DeltaProductState, DPLRState
from linattn_edu.transitions import (delta_product_attention, delta_product_step, delta_product_transition,
                                     dplr_attention, dplr_step, dplr_transition, shifted_micro_steps)

TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


# -- DeltaProduct ----------------------------------------------------------------------------------
def _dp_inputs(lead=(2, 3), n=37, n_h=2, d=5, d_v=4, gated=True, seed=0):
    q = rand(*lead, n, d, seed=seed)
    k, v = rand(*lead, n, n_h, d, seed=seed + 1), rand(*lead, n, n_h, d_v, seed=seed + 2)
    beta = torch.sigmoid(rand(*lead, n, n_h, seed=seed + 3))  # (0, 1)
    g = -0.3 * rand(*lead, n, seed=seed + 4).abs() if gated else None
    return q, k, v, beta, g


@functools.cache
def _dp_reference(n_h, gated):
    q, k, v, beta, g = _dp_inputs(n_h=n_h, gated=gated)
    return delta_product_attention(q, k, v, beta, log_decay=g, form="recurrent", return_state=True)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("n_h, gated", [(1, True), (2, False), (2, True), (3, True)])
@pytest.mark.parametrize("chunk", [1, 8, 64])
def test_delta_product_chunkwise_matches_recurrent(chunk, n_h, gated, dtype):
    """N = 37: ragged for C = 8, clamped for C = 64; float32 against the float64 reference."""
    ref, s_ref = _dp_reference(n_h, gated)
    q, k, v, beta, g = (None if x is None else x.to(dtype) for x in _dp_inputs(n_h=n_h, gated=gated))
    out, s = delta_product_attention(q, k, v, beta, log_decay=g, form="chunkwise", chunk_size=chunk,
                                     return_state=True)
    assert out.dtype == dtype and out.shape == (2, 3, 37, 4) and s.shape == (2, 3, 5, 4)
    assert_close("out", ref, out, TOL[dtype])
    assert_close("S", s_ref, s, TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_delta_product_gradients_match_recurrent(dtype):
    base = [*_dp_inputs(lead=(2,), n=11, n_h=3, d=3, d_v=2), rand(2, 3, 2, seed=9)]
    grads = {}
    for form, dt in (("recurrent", torch.float64), ("chunkwise", dtype)):
        xs = [x.detach().to(dt).clone().requires_grad_(True) for x in base]
        out, s = delta_product_attention(*xs[:4], log_decay=xs[4], form=form, chunk_size=4, return_state=True,
                                         initial_state=xs[5])
        (out.sin().sum() + s.cos().sum()).backward()
        grads[form] = [x.grad for x in xs]
    for name, ref, got in zip(["q", "k", "v", "beta", "log_decay", "S0"], grads["recurrent"], grads["chunkwise"]):
        assert_close(f"d{name}", ref, got, TOL[dtype])


@pytest.mark.parametrize("lead", [(), (2, 1, 3)])
@pytest.mark.parametrize("n", [1, 9])
def test_delta_product_leading_dims_and_short_sequences(lead, n):
    q, k, v, beta, g = _dp_inputs(lead=lead, n=n)
    ref, s_ref = delta_product_attention(q, k, v, beta, log_decay=g, form="recurrent", return_state=True)
    out, s = delta_product_attention(q, k, v, beta, log_decay=g, form="chunkwise", chunk_size=4, return_state=True)
    assert out.shape == (*lead, n, 4) and s.shape == (*lead, 5, 4)
    assert_close("out", ref, out, 1e-10)
    assert_close("S", s_ref, s, 1e-10)


@pytest.mark.parametrize("form", ["recurrent", "chunkwise"])
@pytest.mark.parametrize("normalize_keys", [True, False])
def test_delta_product_with_one_householder_is_the_delta_rule(form, normalize_keys):
    q, k, v, beta, g = _dp_inputs(n=21, n_h=1)
    k = k if normalize_keys else 0.4 * k  # raw keys: keep ‖k‖²β small enough to stay bounded
    ref, s_ref = delta_rule_attention(q, k[..., 0, :], v[..., 0, :], beta[..., 0], log_decay=g,
                                      normalize_keys=normalize_keys, form="recurrent", return_state=True)
    out, s = delta_product_attention(q, k, v, beta, log_decay=g, normalize_keys=normalize_keys, form=form,
                                     chunk_size=8, return_state=True)
    assert_close("out", ref, out, 1e-10)
    assert_close("S", s_ref, s, 1e-10)


def test_delta_product_is_the_delta_rule_over_micro_steps_read_every_n_h():
    """FLA's layout: token i's j-th micro-step at position i·n_h + j, the decay on each token's first step."""
    n, n_h = 10, 3
    q, k, v, beta, g = _dp_inputs(lead=(2,), n=n, n_h=n_h)
    q_steps = torch.zeros(2, n, n_h, 5, dtype=q.dtype)
    q_steps[:, :, -1] = q
    g_steps = torch.zeros(2, n, n_h, dtype=q.dtype)
    g_steps[:, :, 0] = g
    long = delta_rule_attention(q_steps.flatten(1, 2), k.flatten(1, 2), v.flatten(1, 2), beta.flatten(1, 2),
                                log_decay=g_steps.flatten(1, 2), form="recurrent")  # (2, N·n_h, d_v)
    out = delta_product_attention(q, k, v, beta, log_decay=g, form="recurrent")
    assert_close("out", long[:, n_h - 1::n_h], out, 1e-12)


def test_delta_product_transition_is_the_product_of_its_steps():
    """One token, two unit keys 60° apart, β = 1, zero values: S₁ = (I − k₂k₂ᵀ)(I − k₁k₁ᵀ) S₀, the last
    micro-step leftmost; on the keys' plane that product is not symmetric (its eigenvalues are complex)."""
    k1 = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    k2 = torch.tensor([0.5, math.sqrt(3) / 2, 0.0], dtype=torch.float64)
    s0 = rand(3, 2, seed=5)
    k = torch.stack([k1, k2])[None]  # (N=1, n_h=2, d)
    v = torch.zeros(1, 2, 2, dtype=torch.float64)  # writes nothing new: only the transition acts
    _, s = delta_product_attention(rand(1, 3, seed=6), k, v, torch.ones(1, 2, dtype=torch.float64),
                                   form="recurrent", return_state=True, initial_state=s0)
    eye = torch.eye(3, dtype=torch.float64)
    product = (eye - torch.outer(k2, k2)) @ (eye - torch.outer(k1, k1))  # (d, d): last micro-step leftmost
    assert_close("S", product @ s0, s, 1e-14)


@pytest.mark.parametrize("takes_state", [True, False])
@pytest.mark.parametrize("form", ["recurrent", "chunkwise"])
def test_delta_product_two_calls_with_the_state_equal_one_call(form, takes_state, monkeypatch):
    """Outputs, state and gradients; the chunkwise form hands S₀ to the delta rule, or (where the delta
    rule has no initial_state) writes it with d leading micro-steps — both paths are run."""
    if takes_state and not transitions._DELTA_TAKES_STATE:
        pytest.skip("delta_rule_attention has no initial_state argument in this revision")
    monkeypatch.setattr(transitions, "_DELTA_TAKES_STATE", takes_state)
    base = _dp_inputs(lead=(2,), n=19)
    xs = [x.clone().requires_grad_(True) for x in base]
    q, k, v, beta, g = xs
    one, s_one = delta_product_attention(q, k, v, beta, log_decay=g, form=form, chunk_size=4, return_state=True)
    (one.sum() + s_one.sum()).backward()
    grads_one = [x.grad.clone() for x in xs]
    for x in xs:
        x.grad = None
    cut = 7
    first, s = delta_product_attention(q[:, :cut], k[:, :cut], v[:, :cut], beta[:, :cut], log_decay=g[:, :cut],
                                       form=form, chunk_size=4, return_state=True)
    second, s_two = delta_product_attention(q[:, cut:], k[:, cut:], v[:, cut:], beta[:, cut:], log_decay=g[:, cut:],
                                            form=form, chunk_size=4, return_state=True, initial_state=s)
    assert_close("out", one, torch.cat([first, second], dim=-2), 1e-12)
    assert_close("S", s_one, s_two, 1e-12)
    (torch.cat([first, second], dim=-2).sum() + s_two.sum()).backward()
    for name, ref, x in zip("q k v beta g".split(), grads_one, xs):
        assert_close(f"d{name}", ref, x.grad, 1e-10)


@pytest.mark.parametrize("form", ["recurrent", "chunkwise"])
@pytest.mark.parametrize("where", ["q", "k", "v"])
def test_delta_product_nan_at_token_t_never_reaches_earlier_rows(where, form):
    n, t = 13, 7
    q, k, v, beta, g = _dp_inputs(n=n)
    clean = delta_product_attention(q, k, v, beta, log_decay=g, form=form, chunk_size=8)
    poisoned = {"q": q.clone(), "k": k.clone(), "v": v.clone()}
    poisoned[where][:, :, t] = math.nan
    out = delta_product_attention(poisoned["q"], poisoned["k"], poisoned["v"], beta, log_decay=g, form=form,
                                  chunk_size=8)
    assert_close(f"NaN in {where}[{t}]: rows < t", clean[..., :t, :], out[..., :t, :], 1e-12)
    assert torch.isnan(out[..., t, :]).any()


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_delta_product_half_inputs_are_computed_in_float32(half):
    q, k, v, beta, g = (x.to(half) for x in _dp_inputs(n=20))
    out, s = delta_product_attention(q, k, v, beta, log_decay=g, return_state=True)
    ref = delta_product_attention(q.float(), k.float(), v.float(), beta.float(), log_decay=g.float(), form="recurrent")
    assert out.dtype == half and s.dtype == torch.float32
    assert_close("out", ref.to(half).float(), out.float(), 1e-2)


def test_delta_product_extreme_valid_gates_stay_finite():
    q, k, v, beta = (x.float() for x in _dp_inputs(lead=(2,), n=21, gated=False)[:4])
    g = torch.full((2, 21), -1e30)
    outs = [delta_product_attention(q, k, v, beta, log_decay=g, form=f, chunk_size=8) for f in ("recurrent", "chunkwise")]
    assert all(torch.isfinite(o).all() for o in outs)
    assert_close("chunkwise vs recurrent", outs[0], outs[1], 1e-5)


DQ, DK, DV, DB = rand(2, 6, 4, seed=1), rand(2, 6, 2, 4, seed=2), rand(2, 6, 2, 3, seed=3), torch.full((2, 6, 2), 0.5,
                                                                                                     dtype=torch.float64)
DP_BAD = [
    ({"k": rand(2, 6, 4, seed=2)}, ValueError, r"k must be \(\.\.\., N, n_h, d\) with \(\.\.\., N\) == \(2, 6\) and d == "
                                               r"q.shape\[-1\] == 4, n_h >= 1; got \(2, 6, 4\)"),
    ({"k": rand(2, 6, 2, 3, seed=2)}, ValueError, r"k must be \(\.\.\., N, n_h, d\).*got \(2, 6, 2, 3\)"),
    ({"v": rand(2, 6, 3, 3, seed=3)}, ValueError, r"v must be \(\.\.\., N, n_h, d_v\) with \(\.\.\., N, n_h\) == "
                                                  r"\(2, 6, 2\); got \(2, 6, 3, 3\)"),
    ({"beta": torch.full((2, 6), 0.5, dtype=torch.float64)}, ValueError, r"beta must have shape \(2, 6, 2\)"),
    ({"beta": torch.full((2, 6, 2), 1.5, dtype=torch.float64)}, ValueError, r"beta must lie in \(0, 1\].*1.5"),
    ({"beta": torch.full((2, 6, 2), math.nan, dtype=torch.float64)}, ValueError, r"beta must lie in \(0, 1\].*nan"),
    ({"v": rand(2, 6, 2, 3, seed=3).float()}, TypeError, r"v must have q's dtype torch.float64; got torch.float32"),
    ({"log_decay": torch.full((2, 6), 0.1, dtype=torch.float64)}, ValueError, r"log_decay must be finite and <= 0"),
    ({"log_decay": torch.zeros(2, 6, 2, dtype=torch.float64)}, ValueError, r"log_decay must have shape \(2, 6\)"),
    ({"normalize_keys": "yes"}, TypeError, r"normalize_keys must be True or False"),
    ({"form": "parallel"}, ValueError, r"form must be one of \('auto', 'recurrent', 'chunkwise'\)"),
    ({"chunk_size": 0}, ValueError, r"chunk_size must be an int >= 1; got 0"),
    ({"initial_state": torch.zeros(2, 4, 4, dtype=torch.float64)}, ValueError,
     r"initial_state must have shape \(2, 4, 3\)"),
    ({"initial_state": [0.0]}, TypeError, r"initial_state must be a torch.Tensor"),
]


@pytest.mark.parametrize("kwargs, exc, match", DP_BAD)
def test_delta_product_bad_arguments(kwargs, exc, match):
    args = {"q": DQ, "k": DK, "v": DV, "beta": DB}
    args.update({key: kwargs.pop(key) for key in list(kwargs) if key in args})
    with pytest.raises(exc, match=match):
        delta_product_attention(args["q"], args["k"], args["v"], args["beta"], **kwargs)


# -- DPLR ------------------------------------------------------------------------------------------
def _dplr_inputs(lead=(2, 3), n=37, d=5, d_v=4, gated=True, seed=0):
    q, k, v = rand(*lead, n, d, seed=seed), rand(*lead, n, d, seed=seed + 1), rand(*lead, n, d_v, seed=seed + 2)
    kk = F.normalize(rand(*lead, n, d, seed=seed + 3), dim=-1)  # A = Diag(w) − κ̂ (κ̂ ⊙ σ)ᵀ: RWKV-7's A transposed
    a, b = -kk, kk * torch.sigmoid(rand(*lead, n, d, seed=seed + 4))
    g = -0.5 * rand(*lead, n, d, seed=seed + 5).abs() if gated else None
    return q, k, v, a, b, g


@functools.cache
def _dplr_reference(gated):
    q, k, v, a, b, g = _dplr_inputs(gated=gated)
    return dplr_attention(q, k, v, a, b, g, form="recurrent", return_state=True)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("chunk", [1, 8, 64])
def test_dplr_chunkwise_matches_recurrent(chunk, gated, dtype):
    ref, s_ref = _dplr_reference(gated)
    xs = [None if x is None else x.to(dtype) for x in _dplr_inputs(gated=gated)]
    out, s = dplr_attention(*xs, form="chunkwise", chunk_size=chunk, return_state=True)
    assert out.dtype == dtype and out.shape == (2, 3, 37, 4) and s.shape == (2, 3, 5, 4)
    assert_close("out", ref, out, TOL[dtype])
    assert_close("S", s_ref, s, TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("n, chunk", [(13, 4), (37, 64)])  # C = 37 > 16: sub-chunks of 16 (the last padded)
def test_dplr_gradients_match_recurrent(n, chunk, dtype):
    base = [*_dplr_inputs(lead=(2,), n=n, d=3, d_v=2), rand(2, 3, 2, seed=9)]
    grads = {}
    for form, dt in (("recurrent", torch.float64), ("chunkwise", dtype)):
        xs = [x.detach().to(dt).clone().requires_grad_(True) for x in base]
        out, s = dplr_attention(*xs[:6], form=form, chunk_size=chunk, return_state=True, initial_state=xs[6])
        (out.sin().sum() + s.cos().sum()).backward()
        grads[form] = [x.grad for x in xs]
    for name, ref, got in zip(["q", "k", "v", "a", "b", "log_decay", "S0"], grads["recurrent"], grads["chunkwise"]):
        assert_close(f"d{name}", ref, got, TOL[dtype])


@pytest.mark.parametrize("lead", [(), (2, 1, 3)])
@pytest.mark.parametrize("n", [1, 9])
def test_dplr_leading_dims_and_short_sequences(lead, n):
    xs = _dplr_inputs(lead=lead, n=n)
    ref, s_ref = dplr_attention(*xs, form="recurrent", return_state=True)
    out, s = dplr_attention(*xs, form="chunkwise", chunk_size=4, return_state=True)
    assert out.shape == (*lead, n, 4) and s.shape == (*lead, 5, 4)
    assert_close("out", ref, out, 1e-10)
    assert_close("S", s_ref, s, 1e-10)


@pytest.mark.parametrize("form", ["recurrent", "chunkwise"])
def test_dplr_reduces_to_the_delta_rule(form):
    """a = −βk, b = k, no decay, βk written in place of k: S = (I − βkkᵀ)S + βkvᵀ (normalize_keys=False)."""
    q, k, v, _, _, _ = _dplr_inputs(n=21)
    k = F.normalize(k, dim=-1)
    beta = torch.sigmoid(rand(2, 3, 21, seed=7))
    ref, s_ref = delta_rule_attention(q, k, v, beta, normalize_keys=False, form="recurrent", return_state=True)
    bk = beta[..., None] * k
    out, s = dplr_attention(q, bk, v, -bk, k, None, form=form, chunk_size=8, return_state=True)
    assert_close("out", ref, out, 1e-10)
    assert_close("S", s_ref, s, 1e-10)


@pytest.mark.parametrize("form", ["recurrent", "chunkwise"])
def test_dplr_with_kda_terms_and_a_scalar_gate_is_gated_deltanet(form):
    """KDA: S = (I − βkkᵀ) Diag(e^{g}) S + βkvᵀ = Diag(e^{g}) S + (−βk)(e^{g} ⊙ k)ᵀ S + βkvᵀ, i.e. DPLR with
    a = −βk, b = e^{g} ⊙ k. With the same gate on every channel it is Gated DeltaNet."""
    q, k, v, _, _, _ = _dplr_inputs(n=21)
    k = F.normalize(k, dim=-1)
    beta = torch.sigmoid(rand(2, 3, 21, seed=7))
    g = -0.4 * rand(2, 3, 21, seed=8).abs()  # (..., N): one gate per token
    ref, s_ref = delta_rule_attention(q, k, v, beta, log_decay=g, normalize_keys=False, form="recurrent",
                                      return_state=True)
    g_ch = g[..., None].expand(2, 3, 21, 5)  # (..., N, d_k): the scalar gate on every key channel
    bk = beta[..., None] * k
    out, s = dplr_attention(q, bk, v, -bk, g_ch.exp() * k, g_ch, form=form, chunk_size=8, return_state=True)
    assert_close("out", ref, out, 1e-10)
    assert_close("S", s_ref, s, 1e-10)


def test_dplr_with_kda_terms_matches_a_per_channel_kda_loop():
    """The same identity with a per-channel gate, against KDA written as FLA's naive loop does it
    (decay the rows of S, then one delta step)."""
    q, k, v, _, _, g = _dplr_inputs(lead=(2,), n=15)
    k = F.normalize(k, dim=-1)
    beta = torch.sigmoid(rand(2, 15, seed=7))
    s = torch.zeros(2, 5, 4, dtype=torch.float64)
    outs = []
    for t in range(15):
        s = g[:, t].exp()[..., None] * s  # (2, d_k, d_v): per-channel decay first
        s = s + (beta[:, t, None] * k[:, t])[..., None] * (v[:, t] - (k[:, t, :, None] * s).sum(-2))[:, None, :]
        outs.append((q[:, t, :, None] * s).sum(-2))
    bk = beta[..., None] * k
    for form in ("recurrent", "chunkwise"):
        out = dplr_attention(q, bk, v, -bk, g.exp() * k, g, form=form, chunk_size=4)
        assert_close(f"{form} out", torch.stack(outs, 1), out, 1e-10)


@pytest.mark.parametrize("form", ["recurrent", "chunkwise"])
def test_dplr_two_calls_with_the_state_equal_one_call(form):
    base = _dplr_inputs(lead=(2,), n=19)
    xs = [x.clone().requires_grad_(True) for x in base]
    one, s_one = dplr_attention(*xs, form=form, chunk_size=4, return_state=True)
    (one.sum() + s_one.sum()).backward()
    grads_one = [x.grad.clone() for x in xs]
    for x in xs:
        x.grad = None
    cut = 7
    first, s = dplr_attention(*(x[:, :cut] for x in xs), form=form, chunk_size=4, return_state=True)
    second, s_two = dplr_attention(*(x[:, cut:] for x in xs), form=form, chunk_size=4, return_state=True,
                                   initial_state=s)
    two = torch.cat([first, second], dim=-2)
    assert_close("out", one, two, 1e-12)
    assert_close("S", s_one, s_two, 1e-12)
    (two.sum() + s_two.sum()).backward()
    for name, ref, x in zip("q k v a b g".split(), grads_one, xs):
        assert_close(f"d{name}", ref, x.grad, 1e-10)


@pytest.mark.parametrize("form, chunk", [("recurrent", 8), ("chunkwise", 8), ("chunkwise", 64)])
@pytest.mark.parametrize("where", ["q", "k", "v", "a", "b"])
def test_dplr_nan_at_token_t_never_reaches_earlier_rows(where, form, chunk):
    n, t = 37, 20  # C = 64 -> one chunk of 37 in sub-chunks of 16: t sits in the second one
    xs = dict(zip("q k v a b g".split(), _dplr_inputs(n=n)))
    clean = dplr_attention(*xs.values(), form=form, chunk_size=chunk)
    xs[where] = xs[where].clone()
    xs[where][..., t, :] = math.nan
    out = dplr_attention(*xs.values(), form=form, chunk_size=chunk)
    assert_close(f"NaN in {where}[{t}]: rows < t", clean[..., :t, :], out[..., :t, :], 1e-12)
    assert torch.isnan(out[..., t, :]).any()  # a_t, b_t act through b_tᵀS_{t−1} != 0: row t sees the NaN


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_dplr_half_inputs_are_computed_in_float32(half):
    xs = [x.to(half) for x in _dplr_inputs(n=20)]
    out, s = dplr_attention(*xs, return_state=True)
    ref = dplr_attention(*(x.float() for x in xs), form="recurrent")
    assert out.dtype == half and s.dtype == torch.float32
    assert_close("out", ref.to(half).float(), out.float(), 1e-2)


@pytest.mark.parametrize("chunk", [8, 64])
def test_dplr_extreme_valid_gates_stay_finite(chunk):
    q, k, v, a, b = (x.float() for x in _dplr_inputs(lead=(2,), n=37, gated=False)[:5])
    g = torch.full((2, 37, 5), -1e30)
    g[..., 0] = 0.0  # one channel never decays, the others forget everything at once
    outs = [dplr_attention(q, k, v, a, b, g, form=f, chunk_size=chunk) for f in ("recurrent", "chunkwise")]
    assert all(torch.isfinite(o).all() for o in outs)
    assert_close("chunkwise vs recurrent", outs[0], outs[1], 1e-5)


PQ, PK, PV = rand(2, 6, 4, seed=1), rand(2, 6, 4, seed=2), rand(2, 6, 3, seed=3)
PA, PB, PG = rand(2, 6, 4, seed=4), rand(2, 6, 4, seed=5), torch.zeros(2, 6, 4, dtype=torch.float64)
DPLR_BAD = [
    ({"a": rand(2, 6, 3, seed=4)}, ValueError, r"a must have shape \(2, 6, 4\) \(q's shape \(\.\.\., N, d_k\)\); got \(2, 6, 3\)"),
    ({"b": rand(2, 5, 4, seed=5)}, ValueError, r"b must have shape \(2, 6, 4\)"),
    ({"k": rand(2, 6, 3, seed=2)}, ValueError, r"k must have shape \(2, 6, 4\)"),
    ({"v": rand(2, 5, 3, seed=3)}, ValueError, r"v must be \(\.\.\., N, d_v\) with \(\.\.\., N\) == \(2, 6\); got \(2, 5, 3\)"),
    ({"a": rand(2, 6, 4, seed=4).float()}, TypeError, r"a must have q's dtype"),
    ({"log_decay": torch.zeros(2, 6, dtype=torch.float64)}, ValueError,
     r"log_decay must have shape \(2, 6, 4\) \(q's shape \(\.\.\., N, d_k\): one log-decay per token and key channel\)"),
    ({"log_decay": torch.full((2, 6, 4), math.inf, dtype=torch.float64)}, ValueError, r"log_decay must be finite and <= 0"),
    ({"log_decay": torch.full((2, 6, 4), 0.5, dtype=torch.float64)}, ValueError, r"log_decay must be finite and <= 0.*0.5"),
    ({"form": "quadratic"}, ValueError, r"form must be one of"),
    ({"chunk_size": 2.0}, TypeError, r"chunk_size must be an int >= 1; got float 2.0"),
    ({"return_state": None}, TypeError, r"return_state must be True or False"),
    ({"initial_state": torch.zeros(2, 3, 4, dtype=torch.float64)}, ValueError, r"initial_state must have shape \(2, 4, 3\)"),
]


@pytest.mark.parametrize("kwargs, exc, match", DPLR_BAD)
def test_dplr_bad_arguments(kwargs, exc, match):
    args = {"q": PQ, "k": PK, "v": PV, "a": PA, "b": PB, "log_decay": PG}
    args.update({key: kwargs.pop(key) for key in list(kwargs) if key in args})
    with pytest.raises(exc, match=match):
        dplr_attention(*args.values(), **kwargs)


# -- transition matrices ------------------------------------------------------------------------------
def test_transition_matrices_reproduce_a_step():
    """S_t = A_t S_{t−1} + (the step applied to S = 0), for both rules, with a decay."""
    s0 = rand(2, 5, 4, seed=1)
    k, v = F.normalize(rand(2, 3, 5, seed=2), dim=-1), rand(2, 3, 4, seed=3)
    beta, g = torch.sigmoid(rand(2, 3, seed=4)), -rand(2, seed=5).abs()
    write = delta_product_step(torch.zeros_like(s0), k, v, beta, g)
    assert_close("DeltaProduct", delta_product_step(s0, k, v, beta, g),
                 delta_product_transition(k, beta, g) @ s0 + write, 1e-14)
    kk, vv, a, b = rand(2, 5, seed=6), rand(2, 4, seed=7), rand(2, 5, seed=8), rand(2, 5, seed=9)
    gd = -rand(2, 5, seed=10).abs()
    assert_close("DPLR", dplr_step(s0, kk, vv, a, b, gd),
                 dplr_transition(a, b, gd) @ s0 + kk.unsqueeze(-1) * vv.unsqueeze(-2), 1e-14)


def test_transition_eigenvalues():
    """One Householder step with unit k: eigenvalue 1 − β along k, 1 elsewhere; two steps with keys 60°
    apart and β = 1: a product of two projections, eigenvalues on [0, 1]; with β = 2 two reflections make
    a rotation by 120° (|λ| = 1, complex)."""
    k1 = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    k2 = torch.tensor([0.5, math.sqrt(3) / 2, 0.0], dtype=torch.float64)
    one = torch.linalg.eigvalsh(delta_product_transition(k1[None], torch.tensor([0.3], dtype=torch.float64)))
    assert_close("1 − β", torch.tensor([0.7, 1.0, 1.0], dtype=torch.float64), one, 1e-14)
    two = torch.linalg.eigvals(delta_product_transition(torch.stack([k1, k2]), torch.full((2,), 2.0, dtype=torch.float64)))
    assert_close("|λ|", torch.ones(3, dtype=torch.float64), two.abs(), 1e-12)
    angles = sorted(abs(math.degrees(cmath.phase(z))) for z in two.tolist())
    assert angles == pytest.approx([0.0, 120.0, 120.0], abs=1e-9)
    eig = torch.linalg.eigvals(dplr_transition(-k1, k1, torch.zeros(3, dtype=torch.float64)))  # I − k kᵀ
    assert sorted(eig.real.tolist()) == pytest.approx([0.0, 1.0, 1.0], abs=1e-14)
    with pytest.raises(ValueError, match=r"b_t must have shape \(3,\)"):
        dplr_transition(k1, k1[:2])


# -- running states and the registry's views -----------------------------------------------------------
def test_delta_product_state_steps_and_prefills_equal_one_call():
    q, k, v, beta, g = _dp_inputs(lead=(2,), n=17, n_h=3)
    full, s_full = delta_product_attention(q, k, v, beta, log_decay=g, form="recurrent", return_state=True)
    st = DeltaProductState(5, 4, n_h=3, batch_shape=(2,), dtype=torch.float64, record=True)
    head = [st.step(q[:, t], k[:, t], v[:, t], beta[:, t], g[:, t]) for t in range(5)]
    mid = st.prefill(q[:, 5:12], k[:, 5:12], v[:, 5:12], beta[:, 5:12], log_decay=g[:, 5:12], chunk_size=3)
    tail = [st.step(q[:, t], k[:, t], v[:, t], beta[:, t], g[:, t]) for t in range(12, 17)]
    assert_close("DeltaProductState", full, torch.cat([torch.stack(head, 1), mid, torch.stack(tail, 1)], 1), 1e-10)
    assert_close("S", s_full, st.S, 1e-10)
    assert st.t == 17 and len(st.history) == 11
    before = st.snapshot()
    with pytest.raises(ValueError, match=r"k_t must be \(2, 3, 5\) \(batch_shape \+ \(n_h, 5\)\); got \(2, 2, 5\)"):
        st.step(q[:, 0], k[:, 0, :2], v[:, 0], beta[:, 0])
    with pytest.raises(ValueError, match=r"beta_t must lie in \(0, 1\]"):
        st.step(q[:, 0], k[:, 0], v[:, 0], beta[:, 0] + 1)
    with pytest.raises(ValueError, match=r"beta_t must have shape \(2, 3\)"):
        st.step(q[:, 0], k[:, 0], v[:, 0], beta[:, 0, :2])
    with pytest.raises(ValueError, match=r"g_t must be finite and <= 0"):
        st.step(q[:, 0], k[:, 0], v[:, 0], beta[:, 0], -g[:, 0] + 0.1)
    with pytest.raises(ValueError, match=r"v must be \(\*\(2,\), N, 3, 4\)"):
        st.prefill(q, k, v[..., :2, :], beta)
    with pytest.raises(ValueError, match=r"n_h must be an int >= 1"):
        DeltaProductState(5, 4, n_h=0)
    assert st.t == 17 and torch.equal(before[0], st.S)


def test_dplr_state_steps_and_prefills_equal_one_call():
    q, k, v, a, b, g = _dplr_inputs(lead=(2,), n=15)
    full, s_full = dplr_attention(q, k, v, a, b, g, form="recurrent", return_state=True)
    st = DPLRState(5, 4, batch_shape=(2,), dtype=torch.float64)
    head = [st.step(q[:, t], k[:, t], v[:, t], a[:, t], b[:, t], g[:, t]) for t in range(4)]
    mid = st.prefill(q[:, 4:11], k[:, 4:11], v[:, 4:11], a=a[:, 4:11], b=b[:, 4:11], log_decay=g[:, 4:11], chunk_size=4)
    tail = [st.step(q[:, t], k[:, t], v[:, t], a[:, t], b[:, t], g[:, t]) for t in range(11, 15)]
    assert_close("DPLRState", full, torch.cat([torch.stack(head, 1), mid, torch.stack(tail, 1)], 1), 1e-10)
    assert_close("S", s_full, st.S, 1e-10)
    before = st.snapshot()
    with pytest.raises(ValueError, match=r"g_t must be finite and <= 0"):
        st.step(q[:, 0], k[:, 0], v[:, 0], a[:, 0], b[:, 0], -g[:, 0] + 0.1)
    with pytest.raises(ValueError, match=r"b_t must be \(2, 5\)"):
        st.step(q[:, 0], k[:, 0], v[:, 0], a[:, 0], b[:, 0, :3])
    assert st.t == 15 and torch.equal(before[0], st.S)


def test_the_registry_view_of_delta_product_is_a_product_of_distinct_householders():
    """The registered 'gated_delta_product' writes (k, v) and (k, v) rolled by one channel: the public
    function with those micro-steps, and not the delta rule (the second key differs from the first)."""
    from linattn_edu import RULES
    rule = RULES["gated_delta_product"]
    q, k, v = rand(2, 19, 5, seed=1), rand(2, 19, 5, seed=2), rand(2, 19, 4, seed=3)
    gates = rule.gates((2, 19), 5, torch.Generator().manual_seed(0), torch.float64, "cpu")
    assert gates["beta"].shape == (2, 19, 2) and gates["log_decay"].shape == (2, 19)
    out = rule.attention(q, k, v, **gates, form="chunkwise", chunk_size=4)
    steps_k, steps_v = shifted_micro_steps(k, 2), shifted_micro_steps(v, 2)
    assert torch.equal(steps_k[..., 1, :], k.roll(1, -1)) and torch.equal(steps_v[..., 0, :], v)
    ref = delta_product_attention(q, steps_k, steps_v, gates["beta"], log_decay=gates["log_decay"], form="recurrent")
    assert_close("registry view", ref, out, 1e-10)
    one = delta_product_attention(q, steps_k[..., :1, :], steps_v[..., :1, :], gates["beta"][..., :1],
                                  log_decay=gates["log_decay"], form="recurrent")
    assert (one - out).abs().max() > 1e-2


@pytest.mark.parametrize("form", ["recurrent", "chunkwise"])
def test_kda_of_the_delta_rule_is_dplr_with_kda_terms(form):
    """delta_rule_attention with a per-channel log_decay (KDA) = DPLR with a = −βk, b = e^{g} ⊙ k, βk written."""
    q, k, v, _, _, g = _dplr_inputs(lead=(2,), n=23)
    beta = torch.sigmoid(rand(2, 23, seed=7))
    kda, s_kda = delta_rule_attention(q, k, v, beta, log_decay=g, form=form, chunk_size=8, return_state=True)
    kn = F.normalize(k, dim=-1)  # delta_rule_attention normalises keys; DPLR takes them as given
    bk = beta[..., None] * kn
    out, s = dplr_attention(q, bk, v, -bk, g.exp() * kn, g, form=form, chunk_size=8, return_state=True)
    assert_close("KDA = DPLR", out, kda, 1e-10)
    assert_close("state", s, s_kda, 1e-10)
