"""Exact test-time ridge regression (MesaNet): chunkwise against the recurrent reference, against an
explicit least-squares solve per token, the λ → ∞ limit, state passing, NaN causality, errors."""
import functools
import math

import pytest
import torch
from conftest import assert_close, rand

from linattn_edu import MemoryBudgetError, set_memory_budget
from linattn_edu.mesa import mesa_attention

TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def _inputs(lead=(2, 3), n=37, d=5, d_v=4, dtype=torch.float64, gated=True, seed=0):
    q, k = rand(*lead, n, d, dtype=dtype, seed=seed), rand(*lead, n, d, dtype=dtype, seed=seed + 1)
    v = rand(*lead, n, d_v, dtype=dtype, seed=seed + 2)
    beta = torch.sigmoid(rand(*lead, n, seed=seed + 3)).to(dtype)  # (0, 1)
    g = (-0.3 * rand(*lead, n, seed=seed + 4).abs()).to(dtype) if gated else None
    return q, k, v, beta, g


@functools.cache
def _reference(gated):
    """The float64 recurrent reference for :func:`_inputs` (computed once per gate setting)."""
    q, k, v, beta, g = _inputs(gated=gated)
    return mesa_attention(q, k, v, ridge=0.5, beta=beta, log_decay=g, form="recurrent", return_state=True)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("chunk", [1, 8, 64])
def test_chunkwise_matches_recurrent(chunk, gated, dtype):
    """Outputs and both statistics; N = 37 is ragged for C = 8 and clamped for C = 64; float32 vs float64."""
    q, k, v, beta, g = _inputs(gated=gated)
    ref, (kk_ref, kv_ref) = _reference(gated)
    cast = [None if x is None else x.to(dtype) for x in (q, k, v, beta, g)]
    out, (kk, kv) = mesa_attention(*cast[:3], ridge=0.5, beta=cast[3], log_decay=cast[4], form="chunkwise",
                                   chunk_size=chunk, return_state=True)
    assert out.dtype == dtype and kk.shape == (2, 3, 5, 5) and kv.shape == (2, 3, 5, 4)
    assert_close("out", ref, out, TOL[dtype])
    assert_close("H_kk", kk_ref, kk, TOL[dtype])
    assert_close("H_kv", kv_ref, kv, TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gradients_match_recurrent(dtype):
    """Gradients w.r.t. q, k, v, β, log-decay, a per-channel ridge and both initial statistics."""
    q, k, v, beta, g = _inputs(lead=(2,), n=13, d=3, d_v=2)
    ridge = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    h_kk = rand(2, 3, 3, seed=9)
    h0 = (h_kk @ h_kk.transpose(-2, -1), rand(2, 3, 2, seed=10))  # H_kk symmetric PSD, as a real state
    base = [q, k, v, beta, g, ridge, *h0]
    grads = {}
    for form, dt in (("recurrent", torch.float64), ("chunkwise", dtype)):
        xs = [x.detach().to(dt).clone().requires_grad_(True) for x in base]
        out, (kk, kv) = mesa_attention(*xs[:3], ridge=xs[5], beta=xs[3], log_decay=xs[4], form=form, chunk_size=4,
                                       return_state=True, initial_state=(xs[6], xs[7]))
        (out.sin().sum() + kk.cos().sum() + kv.cos().sum()).backward()
        grads[form] = [x.grad for x in xs]
    names = ["q", "k", "v", "beta", "log_decay", "ridge", "H_kk0", "H_kv0"]
    for name, ref, got in zip(names, grads["recurrent"], grads["chunkwise"]):
        assert_close(f"d{name}", ref, got, TOL[dtype])


@pytest.mark.parametrize("lead", [(), (2, 1, 3)])
@pytest.mark.parametrize("n", [1, 2, 9])
def test_leading_dims_and_short_sequences(lead, n):
    q, k, v, beta, g = _inputs(lead=lead, n=n)
    ref, (kk_ref, kv_ref) = mesa_attention(q, k, v, beta=beta, log_decay=g, form="recurrent", return_state=True)
    out, (kk, kv) = mesa_attention(q, k, v, beta=beta, log_decay=g, form="chunkwise", chunk_size=4,
                                   return_state=True)
    assert out.shape == (*lead, n, 4) and kk.shape == (*lead, 5, 5) and kv.shape == (*lead, 5, 4)
    assert_close("out", ref, out, 1e-10)
    assert_close("H_kk", kk_ref, kk, 1e-10)
    assert_close("H_kv", kv_ref, kv, 1e-10)


@pytest.mark.parametrize("form", ["recurrent", "chunkwise"])
def test_output_is_the_ridge_regression_fit_at_every_token(form):
    """o_t = S*_tᵀ q_t with S*_t = argmin Σ_{s<=t} γ_ts ‖Sᵀk_s − v_s‖² + λ‖S‖², solved by lstsq on the
    stacked system [√γ K; √λ I] S = [√γ V; 0], independently of the normal equations the forms use."""
    lam = 0.7
    q, k, v, beta, g = _inputs(lead=(), n=11, d=4, d_v=3)
    out = mesa_attention(q, k, v, ridge=lam, beta=beta, log_decay=g, form=form, chunk_size=4)
    for t in range(11):
        decay = torch.stack([g[s + 1:t + 1].sum() for s in range(t + 1)])  # (t+1,): Σ_{s<r<=t} g_r
        w = (beta[:t + 1] * decay.exp()).sqrt()  # (t+1,): √γ_ts
        lhs = torch.cat([w[:, None] * k[:t + 1], math.sqrt(lam) * torch.eye(4, dtype=q.dtype)])  # (t+1+d, d)
        rhs = torch.cat([w[:, None] * v[:t + 1], torch.zeros(4, 3, dtype=q.dtype)])  # (t+1+d, d_v)
        s_star = torch.linalg.lstsq(lhs, rhs).solution  # (d, d_v)
        assert_close(f"o_{t}", s_star.T @ q[t], out[t], 1e-10)


def test_large_ridge_is_unnormalised_gated_linear_attention():
    """λ·o_t = H_kvᵀ (I + H_kk/λ)⁻¹ q_t → H_kvᵀ q_t = Σ_s γ_ts (q_tᵀk_s) v_s, with an error O(‖H_kk‖/λ)."""
    q, k, v, beta, g = _inputs(lead=(2,), n=17)
    log_w = torch.stack([torch.stack([g[:, s + 1:t + 1].sum(-1) if s <= t else torch.full((2,), -math.inf,
                                      dtype=g.dtype) for s in range(17)], -1) for t in range(17)], -2)  # (2, N, N)
    weights = log_w.exp() * beta[:, None, :]  # (2, N, N): γ_ts, 0 for s > t
    limit = ((q @ k.transpose(-2, -1)) * weights) @ v  # (2, N, d_v)
    errs = []
    for lam in (1e4, 1e7):
        out = mesa_attention(q, k, v, ridge=lam, beta=beta, log_decay=g)
        errs.append(float(((lam * out - limit).abs().max() / limit.abs().max())))
    assert errs[1] < 1e-5 and errs[1] < errs[0] * 1e-2, errs  # falls like 1/λ


def test_two_calls_with_the_state_equal_one_call():
    """Outputs, final statistics and gradients (also through the state between the calls)."""
    base = _inputs(lead=(2,), n=19)
    for form in ("recurrent", "chunkwise"):
        xs = [x.clone().requires_grad_(True) for x in base]
        q, k, v, beta, g = xs
        one, h_one = mesa_attention(q, k, v, beta=beta, log_decay=g, form=form, chunk_size=4, return_state=True)
        (one.sum() + h_one[0].sum() + h_one[1].sum()).backward()
        grads_one = [x.grad.clone() for x in xs]
        for x in xs:
            x.grad = None
        cut = 7
        first, h = mesa_attention(q[:, :cut], k[:, :cut], v[:, :cut], beta=beta[:, :cut], log_decay=g[:, :cut],
                                  form=form, chunk_size=4, return_state=True)
        second, h_two = mesa_attention(q[:, cut:], k[:, cut:], v[:, cut:], beta=beta[:, cut:],
                                       log_decay=g[:, cut:], form=form, chunk_size=4, return_state=True,
                                       initial_state=h)
        two = torch.cat([first, second], dim=-2)
        assert_close(f"{form} out", one, two, 1e-12)
        assert_close(f"{form} H_kk", h_one[0], h_two[0], 1e-12)
        assert_close(f"{form} H_kv", h_one[1], h_two[1], 1e-12)
        (two.sum() + h_two[0].sum() + h_two[1].sum()).backward()
        for name, ref, x in zip("q k v beta g".split(), grads_one, xs):
            assert_close(f"{form} d{name}", ref, x.grad, 1e-10)


@pytest.mark.parametrize("form", ["recurrent", "chunkwise"])
@pytest.mark.parametrize("where", ["q", "k", "v"])
def test_nan_at_token_t_never_reaches_earlier_rows(where, form):
    n, t = 13, 7
    q, k, v, beta, g = _inputs(n=n)
    clean = mesa_attention(q, k, v, beta=beta, log_decay=g, form=form, chunk_size=8)
    poisoned = {"q": q.clone(), "k": k.clone(), "v": v.clone()}
    poisoned[where][..., t, :] = math.nan
    out = mesa_attention(poisoned["q"], poisoned["k"], poisoned["v"], beta=beta, log_decay=g, form=form, chunk_size=8)
    assert_close(f"NaN in {where}[{t}]: rows < t", clean[..., :t, :], out[..., :t, :], 1e-12)
    assert torch.isnan(out[..., t, :]).any()  # the NaN is not hidden at its own row


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_half_inputs_are_computed_in_float32(half):
    q, k, v, beta, g = (x.to(half) for x in _inputs(n=20))
    out, (kk, kv) = mesa_attention(q, k, v, beta=beta, log_decay=g, return_state=True)
    ref = mesa_attention(*(x.float() for x in (q, k, v)), beta=beta.float(), log_decay=g.float(), form="recurrent")
    assert out.dtype == half and kk.dtype == kv.dtype == torch.float32
    assert_close("out", ref.to(half).float(), out.float(), 1e-2)


def test_extreme_valid_gates_stay_finite():
    """A decay of e^{-1e30} forgets everything (H = the current token's); no decay at all, β = 1 and
    large keys keep everything (cond(H_kk + λI) ~ 1e5): both forms stay finite and agree, in float32."""
    q, k, v, beta, _ = _inputs(lead=(2,), n=21, dtype=torch.float32)
    for g, b, scale in ((torch.full((2, 21), -1e30), beta, 1.0), (torch.zeros(2, 21), torch.ones(2, 21), 30.0)):
        outs = [mesa_attention(q, k * scale, v, beta=b, log_decay=g, form=f, chunk_size=8) for f in
                ("recurrent", "chunkwise")]
        assert all(torch.isfinite(o).all() for o in outs)
        assert_close("chunkwise vs recurrent", outs[0], outs[1], 1e-3)
    forget_all = mesa_attention(q, k, v, ridge=1.0, log_decay=torch.full((2, 21), -1e30))
    k_sq = (k * k).sum(-1, keepdim=True)  # one pair: (kkᵀ + I)⁻¹q = q − k (kᵀq)/(1 + ‖k‖²)
    expect = ((q * k).sum(-1, keepdim=True) - k_sq * (q * k).sum(-1, keepdim=True) / (1 + k_sq)) * v
    assert_close("only the current token", expect, forget_all, 1e-5)


def test_memory_guard_counts_one_chunk_and_the_chunk_entry_states():
    """With or without autograd the chunkwise form holds one chunk's statistics and the chunks' entry states."""
    q, k, v, beta, g = _inputs(lead=(2,), n=64, d=8, d_v=8)
    need = 2 * (16 + 64 // 16) * 8 * 16 * 8  # bytes of (B, C + N/C, d, d + d_v) float64
    old = set_memory_budget(need)
    try:
        with torch.no_grad():
            out = mesa_attention(q, k, v, beta=beta, log_decay=g, chunk_size=16)
        assert torch.isfinite(out).all()
        mesa_attention(q.clone().requires_grad_(True), k, v, beta=beta, log_decay=g, chunk_size=16).sum().backward()
        set_memory_budget(need - 1)
        with pytest.raises(MemoryBudgetError, match=r"\(B, C, d, d \+ d_v\) statistics and chunk entry states"):
            mesa_attention(q, k, v, beta=beta, log_decay=g, chunk_size=16)
    finally:
        set_memory_budget(old)


def test_backward_keeps_chunk_entry_states_not_every_tokens_statistics():
    """Autograd saves (checkpointed chunks) far fewer numbers than the N·d·(d + d_v) per-token H's."""
    q, k, v, beta, g = _inputs(lead=(2,), n=256, d=16, d_v=16)
    saved = []
    q.requires_grad_(True)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        out = mesa_attention(q, k, v, beta=beta, log_decay=g, chunk_size=16)
    every_token = 2 * 256 * 16 * 32  # (B, N, d, d + d_v)
    assert sum(saved) < 0.5 * every_token, f"autograd saved {sum(saved)} numbers; every token's H's are {every_token}"
    out.square().sum().backward()
    assert torch.isfinite(q.grad).all()


def test_forward_and_backward_memory_does_not_grow_by_a_chunk_of_statistics_per_chunk():
    """Peak memory of forward+backward at 8 and at 32 chunks: the 24 more chunks may add their entry states,
    inputs and gradients (a few KiB each), never a chunk's (B, C, d, d + d_v) statistics (256 KiB here) apiece.

    Allocator events under the profiler (bench.timer.peak_memory): the same count on any machine.
    """
    from linattn_edu.bench.timer import peak_memory

    def peak(n_chunks):
        q, k, v, beta, g = _inputs(lead=(2,), n=16 * n_chunks, d=32, d_v=32)
        q, k, v = (x.float().requires_grad_(True) for x in (q, k, v))
        beta, g = beta.float(), g.float()

        def step():
            out = mesa_attention(q, k, v, beta=beta, log_decay=g, chunk_size=16)
            torch.autograd.grad(out, (q, k, v), torch.ones_like(out))
        return peak_memory(step)
    chunk_stats = 2 * 16 * 32 * 64 * 4  # bytes of one chunk's (B, C, d, d + d_v) float32 statistics
    per_chunk = (peak(32) - peak(8)) / 24
    assert per_chunk < chunk_stats / 2, f"peak grows {per_chunk / 1024:.0f} KiB a chunk; a chunk's statistics " \
                                        f"are {chunk_stats / 1024:.0f} KiB"


def test_auto_is_chunkwise_and_beta_defaults_to_one():
    q, k, v, _, g = _inputs(n=10)
    ones = torch.ones(2, 3, 10, dtype=q.dtype)
    assert torch.equal(mesa_attention(q, k, v, log_decay=g), mesa_attention(q, k, v, log_decay=g, beta=ones,
                                                                            form="chunkwise"))


Q, K, V = rand(2, 6, 4, seed=1), rand(2, 6, 4, seed=2), rand(2, 6, 3, seed=3)
BAD = [
    ({"ridge": 0.0}, ValueError, r"ridge must be a finite number > 0; got 0.0"),
    ({"ridge": math.inf}, ValueError, r"ridge must be a finite number > 0; got inf"),
    ({"ridge": "1"}, TypeError, r"ridge must be a finite number > 0; got str"),
    ({"ridge": torch.ones(3, dtype=torch.float64)}, ValueError, r"ridge must be a number > 0 or a tensor of shape \(4,\)"),
    ({"ridge": torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=torch.float64)}, ValueError, r"ridge must have finite entries > 0"),
    ({"beta": torch.ones(2, 5, dtype=torch.float64)}, ValueError, r"beta must have shape \(2, 6\)"),
    ({"beta": -torch.ones(2, 6, dtype=torch.float64)}, ValueError, r"beta must be in \[0, 1\] .*got an entry -1.0"),
    ({"beta": torch.full((2, 6), 1.5, dtype=torch.float64)}, ValueError, r"beta must be in \[0, 1\] .*got an entry 1.5"),
    ({"beta": torch.full((2, 6), math.nan, dtype=torch.float64)}, ValueError, r"beta must be in \[0, 1\] .*got an entry nan"),
    ({"log_decay": torch.ones(2, 6, dtype=torch.float64)}, ValueError, r"log_decay must be finite and <= 0"),
    ({"log_decay": torch.zeros(2, 6, 4, dtype=torch.float64)}, ValueError, r"log_decay must have shape \(2, 6\)"),
    ({"log_decay": torch.zeros(2, 6, dtype=torch.long)}, TypeError, r"log_decay must be a floating tensor"),
    ({"form": "parallel"}, ValueError, r"form must be one of \('auto', 'recurrent', 'chunkwise'\); got 'parallel'"),
    ({"chunk_size": 0}, ValueError, r"chunk_size must be an int >= 1; got 0"),
    ({"return_state": 1}, TypeError, r"return_state must be True or False; got int 1"),
    ({"initial_state": torch.zeros(2, 4, 4, dtype=torch.float64)}, TypeError, r"initial_state must be None or a pair"),
    ({"initial_state": (torch.zeros(2, 4, 4, dtype=torch.float64), torch.zeros(2, 4, 4, dtype=torch.float64))},
     ValueError, r"initial_state\[1\] \(H_kv\) must have shape \(2, 4, 3\)"),
]


@pytest.mark.parametrize("kwargs, exc, match", BAD)
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        mesa_attention(Q, K, V, **kwargs)


def test_bad_qkv_name_the_shapes():
    with pytest.raises(ValueError, match=r"k must be \(\.\.\., M, d\) with d == q.shape\[-1\] == 4"):
        mesa_attention(Q, K[..., :3], V)
    with pytest.raises(ValueError, match=r"causal attention needs as many queries as keys"):
        mesa_attention(Q, K[:, :5], V[:, :5])
    with pytest.raises(TypeError, match=r"q, k, v must share one dtype"):
        mesa_attention(Q.float(), K, V)


def test_state_steps_with_a_per_channel_ridge_equal_one_call():
    """MesaState: steps and a prefill from the middle reproduce one call, with a (d,) ridge; bad gates change nothing."""
    from linattn_edu import MesaState
    q, k, v, beta, g = _inputs(lead=(2,), n=17)
    ridge = torch.tensor([0.5, 1.0, 2.0, 0.25, 3.0], dtype=torch.float64)
    full, (kk, kv) = mesa_attention(q, k, v, ridge=ridge, beta=beta, log_decay=g, form="recurrent", return_state=True)
    st = MesaState(5, 4, ridge=ridge, batch_shape=(2,), dtype=torch.float64)
    head = [st.step(q[:, t], k[:, t], v[:, t], beta[:, t], g[:, t]) for t in range(6)]
    mid = st.prefill(q[:, 6:13], k[:, 6:13], v[:, 6:13], beta=beta[:, 6:13], log_decay=g[:, 6:13], chunk_size=4)
    tail = [st.step(q[:, t], k[:, t], v[:, t], beta[:, t], g[:, t]) for t in range(13, 17)]
    assert_close("MesaState", full, torch.cat([torch.stack(head, 1), mid, torch.stack(tail, 1)], 1), 1e-10)
    assert_close("H_kk", kk, st.H_kk, 1e-10)
    assert_close("H_kv", kv, st.H_kv, 1e-10)
    assert isinstance(st.state, tuple) and st.nbytes() == 2 * (25 + 20) * 8
    before = st.snapshot()
    with pytest.raises(ValueError, match=r"beta_t must be in \[0, 1\].*1.5"):
        st.step(q[:, 0], k[:, 0], v[:, 0], torch.full((2,), 1.5, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"g_t must have shape \(2,\)"):
        st.step(q[:, 0], k[:, 0], v[:, 0], beta[:, 0], g[:, :2])
    with pytest.raises(ValueError, match=r"ridge must be a number > 0 or a tensor of shape \(5,\)"):
        MesaState(5, 4, ridge=torch.ones(3))
    assert st.t == 17 and all(torch.equal(a, b) for a, b in zip(before, st.tensors))
    unit = MesaState(5, 4, dtype=torch.float64)  # β defaults to 1: the statistics of plain pairs
    unit.step(q[0, 0], k[0, 0], v[0, 0])
    assert_close("β = 1", torch.outer(k[0, 0], k[0, 0]), unit.H_kk, 1e-15)
