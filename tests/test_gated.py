"""Gated linear attention: every form against the recurrent reference, the SSD duality, stability."""
import math

import pytest
import torch
from conftest import assert_close, rand

from linattn_edu import GatedState, MemoryBudgetError, gated_linear_attention, set_memory_budget
from linattn_edu.gated import channel_gated_scores, decay_mask, retnet_log_decay, segment_sum

TOL = {torch.float64: 1e-10, torch.float32: 1e-5}
FAST_FORMS = ("parallel", "chunkwise")


def _gate(lead, channels=None, *, dtype=torch.float64, seed=7, strength=1.0):
    """A log-decay <= 0: (lead) for a scalar gate, (lead, channels) per key channel."""
    shape = (*lead, channels) if channels else tuple(lead)
    return -(rand(*shape, dtype=torch.float64, seed=seed).abs() * strength).to(dtype)


def _inputs(lead=(2, 3), n=37, d=5, d_v=4, dtype=torch.float64, per_channel=False, seed=0):
    q, k = rand(*lead, n, d, dtype=dtype, seed=seed), rand(*lead, n, d, dtype=dtype, seed=seed + 1)
    v = rand(*lead, n, d_v, dtype=dtype, seed=seed + 2)
    g = _gate((*lead, n), d if per_channel else None, dtype=dtype, seed=seed + 3)
    return q, k, v, g


def _run(form, q, k, v, g, normalize, fm, chunk=8):
    return gated_linear_attention(q, k, v, g, feature_map=fm, normalize=normalize, form=form, chunk_size=chunk,
                                  return_state=True)


CASES = [(False, "identity"), (True, "elu+1")]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("normalize,fm", CASES)
@pytest.mark.parametrize("form", FAST_FORMS)
def test_forms_match_recurrent(form, normalize, fm, per_channel, dtype):
    q, k, v, g = _inputs(dtype=dtype, per_channel=per_channel)  # N = 37: ragged for C = 8
    ref_out, ref_state = _run("recurrent", q, k, v, g, normalize, fm)
    out, state = _run(form, q, k, v, g, normalize, fm)
    assert out.dtype == dtype
    assert_close(f"{form} out", ref_out, out, TOL[dtype])
    ref_s, s = (ref_state[0], state[0]) if normalize else (ref_state, state)
    assert_close(f"{form} S", ref_s, s, TOL[dtype])
    if normalize:
        assert_close(f"{form} z", ref_state[1], state[1], TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("form", FAST_FORMS)
def test_gradients_match_recurrent(form, per_channel, dtype):
    base = _inputs(lead=(2,), n=13, d=3, d_v=2, per_channel=per_channel, dtype=dtype)
    grads = {}
    for f in ("recurrent", form):
        xs = [x.clone().requires_grad_(True) for x in base]
        out, s = gated_linear_attention(*xs, form=f, chunk_size=4, return_state=True)
        (out.sin().sum() + s.cos().sum()).backward()
        grads[f] = [x.grad for x in xs]
    for name, ref, got in zip("qkvg", grads["recurrent"], grads[form]):
        assert_close(f"{form} d{name}", ref, got, TOL[dtype])


def test_gradients_normalized_chunkwise():
    base = _inputs(lead=(1,), n=11, d=3, d_v=2)
    grads = {}
    for f in ("recurrent", "chunkwise"):
        xs = [x.clone().requires_grad_(True) for x in base]
        gated_linear_attention(*xs, feature_map="elu+1", normalize=True, form=f, chunk_size=4).sum().backward()
        grads[f] = [x.grad for x in xs]
    for name, ref, got in zip("qkvg", grads["recurrent"], grads["chunkwise"]):
        assert_close(f"normalised d{name}", ref, got, 1e-10)


@pytest.mark.parametrize("n", [1, 2, 64, 65])
def test_lengths_around_the_chunk(n):
    q, k, v, g = _inputs(lead=(3,), n=n, d=4, d_v=6)
    ref = gated_linear_attention(q, k, v, g, form="recurrent")
    for form in FAST_FORMS:
        assert_close(f"{form} N={n}", ref, gated_linear_attention(q, k, v, g, form=form, chunk_size=64), 1e-10)


def test_zero_gate_is_plain_linear_attention():
    from linattn_edu import linear_attention
    q, k, v, _ = _inputs(lead=(2,), n=20)
    g = torch.zeros(2, 20, dtype=torch.float64)
    ref = linear_attention(q, k, v, "elu+1", causal=True, form="recurrent")
    assert_close("g = 0", ref, gated_linear_attention(q, k, v, g, feature_map="elu+1", normalize=True), 1e-10)


def test_duality_parallel_is_semiseparable_masked_attention():
    """Scalar gate: out = ((QKᵀ) ⊙ L) V with L_ij = exp(G_i − G_j) for i >= j, built explicitly."""
    q, k, v, g = _inputs(lead=(2,), n=23)
    big_g = g.cumsum(-1)  # (2, N): G_i
    i, j = torch.arange(23).unsqueeze(-1), torch.arange(23).unsqueeze(0)
    diff = big_g.unsqueeze(-1) - big_g.unsqueeze(-2)  # (2, N, N): G_i − G_j
    mask = torch.where(i >= j, diff.exp(), torch.zeros_like(diff))  # 1-semiseparable
    ref = ((q @ k.transpose(-2, -1)) * mask) @ v
    assert_close("decay_mask", mask, decay_mask(g), 1e-12)
    assert_close("parallel = masked attention", ref, gated_linear_attention(q, k, v, g, form="parallel"), 1e-10)
    # every block below the diagonal has rank 1 (semiseparable): L[c:, :c] = exp(G_i − G_c) exp(G_c − G_j)
    assert torch.linalg.matrix_rank(mask[0, 12:, :12]).item() == 1


def test_duality_chunkwise_is_ssd_block_decomposition():
    """SSD: diagonal blocks dense with their local mask; off-diagonal blocks C_i·(decays)·B_jᵀ, low rank."""
    q, k, v, g = _inputs(lead=(1,), n=24)
    c, n = 8, 24
    big_g = g.cumsum(-1)[0]  # (N,)
    out = torch.zeros(n, v.shape[-1], dtype=torch.float64)
    for bi in range(n // c):
        rows = slice(bi * c, (bi + 1) * c)
        for bj in range(bi + 1):
            cols = slice(bj * c, (bj + 1) * c)
            if bi == bj:
                block = (q[0, rows] @ k[0, cols].T) * decay_mask(g[0, rows])  # diagonal block
            else:  # low rank: exp(G_i − G_end(bj)) · exp(G_end(bj) − G_j), both <= 1
                end = big_g[bj * c + c - 1]
                left = q[0, rows] * (big_g[rows] - end).exp().unsqueeze(-1)  # (C, d)
                right = k[0, cols] * (end - big_g[cols]).exp().unsqueeze(-1)  # (C, d)
                block = left @ right.T
            out[rows] += block @ v[0, cols]
    assert_close("chunkwise = SSD blocks", out.unsqueeze(0),
                 gated_linear_attention(q, k, v, g, form="chunkwise", chunk_size=c), 1e-10)


def test_segment_sum_is_differences_of_cumsum_and_minus_inf_above():
    g = _gate((2, 9))
    seg = segment_sum(g)
    big_g = g.cumsum(-1)
    lower = torch.ones(9, 9, dtype=torch.bool).tril()
    assert_close("segsum", (big_g.unsqueeze(-1) - big_g.unsqueeze(-2))[..., lower], seg[..., lower], 1e-12)
    assert torch.isneginf(seg[..., ~lower]).all()


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("form", ("recurrent", "parallel", "chunkwise"))
def test_strong_gates_stay_finite(form, per_channel):
    q, k, v, _ = _inputs(lead=(1,), n=150, d=6, dtype=torch.float32)
    g = torch.full((1, 150, 6) if per_channel else (1, 150), -30.0)
    ref = gated_linear_attention(q.double(), k.double(), v.double(), g.double(), form="recurrent")
    out, s = gated_linear_attention(q, k, v, g, form=form, return_state=True)
    assert torch.isfinite(out).all() and torch.isfinite(s).all()
    # exp(−30) ≈ 1e-13: every output is its own token's (q·k) v
    assert_close(f"{form} at g = −30", ref, out, 1e-5)
    own = (q.double() * k.double()).sum(-1, keepdim=True) * v.double()
    assert_close("own token only", own, ref, 1e-10)


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("form", FAST_FORMS)
def test_half_inputs_accumulate_in_float32(form, half):
    q, k, v, g = _inputs(lead=(2,), n=300, d=8, d_v=8, dtype=torch.float64)
    g = g * 0.05  # slow decay: long memory, large states
    ref = gated_linear_attention(q, k, v, g, form="recurrent")
    out, s = gated_linear_attention(q.to(half), k.to(half), v.to(half), g.to(half), form=form, return_state=True)
    assert out.dtype == half and s.dtype == torch.float32
    assert_close(f"{form} {half}", ref, out, 1e-2)


def test_retnet_log_decay():
    g = retnet_log_decay(4, dtype=torch.float64)
    assert g.shape == (4,)
    for h in range(4):
        assert math.isclose(math.exp(g[h].item()), 1 - 2 ** (-5 - h), rel_tol=1e-12)
    with pytest.raises(ValueError, match="heads"):
        retnet_log_decay(0)


# bad input ----------------------------------------------------------------------------------
def test_positive_log_decay_is_an_error():
    q, k, v, g = _inputs(lead=(1,), n=5)
    with pytest.raises(ValueError, match=r"<= 0.*got an entry 0\.5"):
        gated_linear_attention(q, k, v, g.index_fill(-1, torch.tensor([2]), 0.5))
    with pytest.raises(ValueError, match="finite"):
        gated_linear_attention(q, k, v, g.index_fill(-1, torch.tensor([2]), float("nan")))


@pytest.mark.parametrize("shape", [(1, 4), (1, 5, 3), (2, 5), (1, 5, 5, 1)])
def test_log_decay_shape_mismatch(shape):
    q, k, v, _ = _inputs(lead=(1,), n=5)
    with pytest.raises(ValueError, match=r"log_decay must have shape \(1, 5\) or \(1, 5, 5\).*got"):
        gated_linear_attention(q, k, v, -torch.ones(shape, dtype=torch.float64))


def test_other_bad_arguments():
    q, k, v, g = _inputs(lead=(1,), n=5)
    with pytest.raises(ValueError, match="form must be one of"):
        gated_linear_attention(q, k, v, g, form="quadratic")
    with pytest.raises(TypeError, match="normalize must be True or False"):
        gated_linear_attention(q, k, v, g, normalize=1)
    with pytest.raises(TypeError, match="return_state must be True or False"):
        gated_linear_attention(q, k, v, g, return_state="yes")
    with pytest.raises(ValueError, match="positive_kernel"):
        gated_linear_attention(q, k, v, g, normalize=True)  # identity map can make den <= 0
    with pytest.raises(ValueError, match="chunk_size"):
        gated_linear_attention(q, k, v, g, chunk_size=0)
    with pytest.raises(ValueError, match="k must be"):
        gated_linear_attention(q, k[..., :3], v, g)


# the step API ---------------------------------------------------------------------------------
@pytest.mark.parametrize("normalize,fm", CASES)
@pytest.mark.parametrize("per_channel", [False, True])
def test_state_prefill_then_step_reproduces_the_full_output(per_channel, normalize, fm):
    q, k, v, g = _inputs(lead=(2,), n=19, per_channel=per_channel)
    full, state = gated_linear_attention(q, k, v, g, feature_map=fm, normalize=normalize, form="recurrent",
                                         return_state=True)
    st = GatedState(5, 4, feature_map=fm, normalize=normalize, batch_shape=(2,), dtype=torch.float64, record=True)
    head = st.prefill(q[:, :11], k[:, :11], v[:, :11], g[:, :11], chunk_size=4)
    tail = [st.step(q[:, t], k[:, t], v[:, t], g[:, t]) for t in range(11, 19)]
    assert_close("prefill + step", full, torch.cat([head, torch.stack(tail, 1)], 1), 1e-10)
    assert_close("state", state[0] if normalize else state, st.S, 1e-10)
    if normalize:
        assert_close("z", state[1], st.z, 1e-10)
    assert st.t == 19 and len(st.history) == 9
    assert st.nbytes() == 2 * (5 * 4 + (5 if normalize else 0)) * 8


def test_failed_step_leaves_the_state_untouched():
    st = GatedState(3, 2, dtype=torch.float64)
    st.step(torch.ones(3), torch.ones(3), torch.ones(2), torch.tensor(-0.1))
    before = st.snapshot()
    for bad in (torch.tensor(0.3), torch.ones(2) * -0.1, torch.tensor(float("inf"))):
        with pytest.raises(ValueError, match="g_t"):
            st.step(torch.ones(3), torch.ones(3), torch.ones(2), bad)
    with pytest.raises(ValueError, match="v_t must be"):
        st.step(torch.ones(3), torch.ones(3), torch.ones(3), torch.tensor(-0.1))
    assert st.t == 1
    assert_close("S untouched", before[0], st.S, 0.0)


def test_decayed_state_forgets():
    """A key written once fades as exp(Σ g): after 10 steps of g = log 0.5 only 2⁻¹⁰ of it is left."""
    st = GatedState(2, 1, dtype=torch.float64)
    e0, e1 = torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64)
    g = torch.tensor(math.log(0.5), dtype=torch.float64)
    st.step(e0, e0, torch.ones(1, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64))
    for _ in range(10):
        st.step(e1, e1, torch.zeros(1, dtype=torch.float64), g)
    assert math.isclose(st.readout(e0).item(), 2.0 ** -10, rel_tol=1e-12)


# the notebook's checker -----------------------------------------------------------------------
def test_gated_step_checker_accepts_the_step_and_names_mistakes(capsys):
    from linattn_edu.exercises import check_gated_step
    right = lambda S, k, v, g: g.exp()[..., None, None] * S + k[..., :, None] * v[..., None, :]  # noqa: E731
    assert check_gated_step(right) is True
    no_exp = lambda S, k, v, g: g[..., None, None] * S + k[..., :, None] * v[..., None, :]  # noqa: E731
    assert check_gated_step(no_exp) is False
    assert "multiply by exp(g_t)" in capsys.readouterr().out
    late = lambda S, k, v, g: g.exp()[..., None, None] * (S + k[..., :, None] * v[..., None, :])  # noqa: E731
    assert check_gated_step(late) is False
    assert "decayed after writing" in capsys.readouterr().out


def test_auto_form_is_chunkwise():
    q, k, v, g = _inputs(lead=(2,), n=70)
    assert_close("auto", gated_linear_attention(q, k, v, g, form="recurrent"), gated_linear_attention(q, k, v, g), 1e-10)


@pytest.mark.parametrize("c", [1, 2, 5, 16, 30, 37, 64, 100])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_channel_gated_scores_equal_the_full_decay_tensor(c, dtype):
    """Block-by-block per-channel weights == Σ_c q_ic k_jc exp(b_ic − b_jc) from the whole (C, C, d_φ) tensor.

    Gates from gentle to −30 per step (exp(−30·16) underflows inside a factor: the product must still be right)."""
    q, k = rand(2, 3, c, 6, dtype=torch.float64, seed=1), rand(2, 3, c, 6, dtype=torch.float64, seed=2)
    g = _gate((2, 3, c), 6, seed=3) * torch.tensor([0.1, 1.0, 30.0], dtype=torch.float64)[:, None, None]
    b = g.cumsum(-2)  # (2, 3, C, 6)
    diff = (b.unsqueeze(-2) - b.unsqueeze(-3)).clamp_max(0)  # (2, 3, C, C, 6)
    ref = torch.einsum("...ic,...jc,...ijc->...ij", q, k, diff.exp()).tril()  # (2, 3, C, C)
    got = channel_gated_scores(q.to(dtype), k.to(dtype), b.to(dtype))
    assert got.shape == ref.shape and got.dtype == dtype
    assert_close("sub-chunked per-channel weights", ref, got, TOL[dtype])
    assert torch.isfinite(got).all()


@pytest.mark.parametrize("chunk", [64, 40])
def test_per_channel_chunkwise_with_sub_chunks_matches_recurrent(chunk):
    """Chunks longer than a sub-chunk (the path the short-chunk tests above never take), ragged N, gradients."""
    base = _inputs(lead=(2,), n=100, d=5, d_v=3, per_channel=True)
    results = {}
    for form in ("recurrent", "chunkwise"):
        xs = [x.clone().requires_grad_(True) for x in base]
        out, (s, z) = gated_linear_attention(*xs, feature_map="elu+1", normalize=True, form=form,
                                             chunk_size=chunk, return_state=True)
        (out.sin().sum() + s.cos().sum() + z.sum()).backward()
        results[form] = [out, s, z, *(x.grad for x in xs)]
    for name, ref, got in zip(["out", "S", "z", "dq", "dk", "dv", "dg"], results["recurrent"], results["chunkwise"]):
        assert_close(f"chunk {chunk}: {name}", ref, got, 1e-12)


def test_per_channel_chunkwise_is_guarded_by_the_memory_budget():
    q, k, v, g = _inputs(lead=(4,), n=4096, d=64, d_v=8, per_channel=True, dtype=torch.float32)
    old = set_memory_budget(2**20)
    try:
        with pytest.raises(MemoryBudgetError, match=r"gated chunkwise form's \(\.\.\., N, C\) intra-chunk blocks "
                                                    r"would allocate \(4, 4096, 64\)"):
            gated_linear_attention(q, k, v, g, form="chunkwise")
    finally:
        set_memory_budget(old)
