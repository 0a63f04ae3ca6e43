"""The delta rule: chunkwise (WY/UT) against the recurrent reference; overwriting, boundedness, errors."""
import pytest
import torch
from conftest import assert_close, rand

from linattn_edu import DeltaState, delta_rule_attention
from linattn_edu.delta import delta_step

TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def _inputs(lead=(2, 3), n=37, d=5, d_v=4, dtype=torch.float64, gated=False, seed=0):
    q, k = rand(*lead, n, d, dtype=dtype, seed=seed), rand(*lead, n, d, dtype=dtype, seed=seed + 1)
    v = rand(*lead, n, d_v, dtype=dtype, seed=seed + 2)
    beta = torch.sigmoid(rand(*lead, n, seed=seed + 3)).to(dtype)  # (0, 1)
    g = -rand(*lead, n, seed=seed + 4).abs().to(dtype) if gated else None
    return q, k, v, beta, g


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("chunk", [1, 8, 64])
def test_chunkwise_matches_recurrent(chunk, gated, dtype):
    q, k, v, beta, g = _inputs(dtype=dtype, gated=gated)  # N = 37: ragged for C = 8 and 64
    ref, s_ref = delta_rule_attention(q, k, v, beta, log_decay=g, form="recurrent", return_state=True)
    out, s = delta_rule_attention(q, k, v, beta, log_decay=g, form="chunkwise", chunk_size=chunk,
                                  return_state=True)
    assert out.dtype == dtype
    assert_close("out", ref, out, TOL[dtype])
    assert_close("S", s_ref, s, TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("gated", [False, True])
def test_gradients_match_recurrent(gated, dtype):
    base = [x for x in _inputs(lead=(2,), n=13, d=3, d_v=2, gated=gated, dtype=dtype) if x is not None]
    grads = {}
    for form in ("recurrent", "chunkwise"):
        xs = [x.clone().requires_grad_(True) for x in base]
        g = xs[4] if gated else None
        out, s = delta_rule_attention(*xs[:4], log_decay=g, form=form, chunk_size=4, return_state=True)
        (out.sin().sum() + s.cos().sum()).backward()
        grads[form] = [x.grad for x in xs]
    for name, ref, got in zip(["q", "k", "v", "beta", "log_decay"], grads["recurrent"], grads["chunkwise"]):
        assert_close(f"d{name}", ref, got, TOL[dtype])


@pytest.mark.parametrize("lead", [(), (2, 1, 3)])
def test_no_or_many_leading_dims(lead):
    """The chunkwise form flattens the leading dims into one batch dim and restores them."""
    q, k, v, beta, g = _inputs(lead=lead, n=21, gated=True)
    ref, s_ref = delta_rule_attention(q, k, v, beta, log_decay=g, form="recurrent", return_state=True)
    out, s = delta_rule_attention(q, k, v, beta, log_decay=g, form="chunkwise", chunk_size=8, return_state=True)
    assert out.shape == (*lead, 21, 4) and s.shape == (*lead, 5, 4)
    assert_close("out", ref, out, 1e-10)
    assert_close("S", s_ref, s, 1e-10)


@pytest.mark.parametrize("n", [1, 2, 64, 65])
def test_lengths_around_the_chunk(n):
    q, k, v, beta, g = _inputs(lead=(3,), n=n, d=4, d_v=6, gated=True)
    ref = delta_rule_attention(q, k, v, beta, log_decay=g, form="recurrent")
    assert_close(f"N={n}", ref, delta_rule_attention(q, k, v, beta, log_decay=g, form="chunkwise"), 1e-10)


def test_step_is_the_formula():
    """S_t = exp(g)(I − β k kᵀ) S + β k vᵀ, written with explicit matrices."""
    s, k, v = rand(4, 3, seed=1), torch.nn.functional.normalize(rand(4, seed=2), dim=0), rand(3, seed=3)
    beta, g = torch.tensor(0.7, dtype=torch.float64), torch.tensor(-0.2, dtype=torch.float64)
    ref = g.exp() * (torch.eye(4, dtype=torch.float64) - beta * torch.outer(k, k)) @ s + beta * torch.outer(k, v)
    assert_close("delta_step", ref, delta_step(s, k, v, beta, g), 1e-12)


def test_repeated_key_overwrites_with_beta_one():
    """β = 1, unit key: after writing v1 then v2 under the same key, the state recalls v2 exactly."""
    st = DeltaState(4, 2, dtype=torch.float64, record=True)
    key = rand(4, seed=5)
    for value in ([1.0, 0.0], [0.0, 1.0]):
        st.step(key, key, torch.tensor(value, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
    assert_close("recall", torch.tensor([0.0, 1.0], dtype=torch.float64), st.recall(key), 1e-12)
    assert len(st.history) == 2


def test_normalized_keys_stay_bounded_raw_keys_blow_up():
    q, k, v, beta, _ = _inputs(lead=(1,), n=256, d=32, d_v=32)
    beta = torch.full_like(beta, 0.9)
    _, s_norm = delta_rule_attention(q, k, v, beta, form="recurrent", return_state=True)
    _, s_raw = delta_rule_attention(q, k, v, beta, normalize_keys=False, form="recurrent", return_state=True)
    # with unit keys each write moves S towards v: ‖S‖ is bounded by the values' size
    assert s_norm.abs().max() < 10
    assert s_raw.abs().max() > 1e50  # ‖k‖² β ≈ 29 > 2: I − β k kᵀ expands along k every step
    _, s_chunk = delta_rule_attention(q, k, v, beta, form="chunkwise", return_state=True)
    assert_close("bounded chunkwise", s_norm, s_chunk, 1e-10)


def test_strong_gate_finite():
    q, k, v, beta, _ = _inputs(lead=(1,), n=150, d=6, dtype=torch.float32)
    g = torch.full((1, 150), -30.0)
    ref = delta_rule_attention(q.double(), k.double(), v.double(), beta.double(), log_decay=g.double(),
                               form="recurrent")
    for form in ("recurrent", "chunkwise"):
        out, s = delta_rule_attention(q, k, v, beta, log_decay=g, form=form, return_state=True)
        assert torch.isfinite(out).all() and torch.isfinite(s).all()
        assert_close(f"{form} g = −30", ref, out, 1e-5)


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_half_inputs_accumulate_in_float32(half):
    q, k, v, beta, g = _inputs(lead=(2,), n=300, d=8, d_v=8, gated=True)
    g = g * 0.01
    ref = delta_rule_attention(q, k, v, beta, log_decay=g, form="recurrent")
    cast = [x.to(half) for x in (q, k, v, beta, g)]
    out, s = delta_rule_attention(*cast[:4], log_decay=cast[4], return_state=True)
    assert out.dtype == half and s.dtype == torch.float32
    assert_close(f"chunkwise {half}", ref, out, 1e-2)


def test_prefill_then_step_reproduces_the_full_output():
    q, k, v, beta, g = _inputs(lead=(2,), n=21, gated=True)
    full, s_full = delta_rule_attention(q, k, v, beta, log_decay=g, form="recurrent", return_state=True)
    st = DeltaState(5, 4, batch_shape=(2,), dtype=torch.float64)
    head = st.prefill(q[:, :13], k[:, :13], v[:, :13], beta[:, :13], log_decay=g[:, :13], chunk_size=4)
    tail = [st.step(q[:, t], k[:, t], v[:, t], beta[:, t], g[:, t]) for t in range(13, 21)]
    assert_close("prefill + step", full, torch.cat([head, torch.stack(tail, 1)], 1), 1e-10)
    assert_close("state", s_full, st.S, 1e-10)
    assert st.nbytes() == 2 * 5 * 4 * 8
    with pytest.raises(ValueError, match=r"v must be \(\*\(2,\), N, 4\)"):  # a failed prefill changes nothing
        st.prefill(q, k, v[..., :3], beta)
    assert st.t == 21


# bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, float("nan")])
def test_beta_outside_unit_interval(bad):
    q, k, v, beta, _ = _inputs(lead=(1,), n=5)
    with pytest.raises(ValueError, match=r"beta must lie in \(0, 1\]"):
        delta_rule_attention(q, k, v, beta.index_fill(-1, torch.tensor([3]), bad))


def test_shape_and_flag_errors():
    q, k, v, beta, g = _inputs(lead=(1,), n=5, gated=True)
    with pytest.raises(ValueError, match=r"beta must have shape \(1, 5\).*got \(1, 4\)"):
        delta_rule_attention(q, k, v, beta[:, :4])
    with pytest.raises(ValueError, match=r"log_decay must have shape \(1, 5\) or \(1, 5, 5\).*got \(1, 5, 4\)"):
        delta_rule_attention(q, k, v, beta, log_decay=g.unsqueeze(-1).expand(1, 5, 4))
    with pytest.raises(ValueError, match="<= 0"):
        delta_rule_attention(q, k, v, beta, log_decay=-g)
    with pytest.raises(TypeError, match="normalize_keys must be True or False"):
        delta_rule_attention(q, k, v, beta, normalize_keys=0)
    with pytest.raises(ValueError, match="form must be one of"):
        delta_rule_attention(q, k, v, beta, form="parallel")
    with pytest.raises(ValueError, match="v must be"):
        delta_rule_attention(q, k, v[:, :3], beta)


def test_failed_step_leaves_the_state_untouched():
    st = DeltaState(3, 2, dtype=torch.float64)
    one = torch.tensor(1.0, dtype=torch.float64)
    st.step(torch.ones(3), torch.ones(3), torch.ones(2), one * 0.5)
    before = st.snapshot()
    with pytest.raises(ValueError, match="beta_t"):
        st.step(torch.ones(3), torch.ones(3), torch.ones(2), one * 2)
    with pytest.raises(ValueError, match="g_t"):
        st.step(torch.ones(3), torch.ones(3), torch.ones(2), one * 0.5, one * 0.1)
    with pytest.raises(ValueError, match="k_t must be"):
        st.step(torch.ones(3), torch.ones(4), torch.ones(2), one * 0.5)
    assert st.t == 1
    assert_close("S untouched", before[0], st.S, 0.0)


# the notebook's checker -----------------------------------------------------------------------
def test_delta_step_checker_accepts_the_step_and_names_mistakes(capsys):
    from linattn_edu.exercises import check_delta_step

    def right(S, k, v, b):
        r = (k[..., None, :] @ S).squeeze(-2)
        return S + k[..., :, None] * (b[..., None] * (v - r))[..., None, :]

    assert check_delta_step(right) is True
    additive = lambda S, k, v, b: S + k[..., :, None] * (b[..., None] * v)[..., None, :]  # noqa: E731
    assert check_delta_step(additive) is False
    assert "additive write" in capsys.readouterr().out
    assert check_delta_step(lambda S, k, v, b: right(S, k, v, torch.ones_like(b))) is False
    assert "left out β_t" in capsys.readouterr().out


def test_auto_form_is_chunkwise():
    q, k, v, beta, g = _inputs(lead=(2,), n=70, gated=True)
    ref = delta_rule_attention(q, k, v, beta, log_decay=g, form="recurrent")
    assert_close("auto", ref, delta_rule_attention(q, k, v, beta, log_decay=g), 1e-10)


@pytest.mark.parametrize("gated", [False, True])
def test_negative_eigenvalues_chunkwise_equals_recurrent(gated):
    """β ∈ (0, 2] (eigenvalue 1 − β ∈ [−1, 1) along k): the WY form holds for any β; the state stays bounded."""
    q, k, v, beta, g = _inputs(lead=(2,), n=45, gated=True)
    beta = 2 * beta  # some entries past 1
    g = g if gated else None
    ref, s_ref = delta_rule_attention(q, k, v, beta, log_decay=g, form="recurrent", return_state=True,
                                      allow_negative_eigenvalues=True)
    out, s = delta_rule_attention(q, k, v, beta, log_decay=g, chunk_size=8, return_state=True,
                                  allow_negative_eigenvalues=True)
    assert_close("negative eigenvalues", ref, out, 1e-10)
    assert_close("state", s_ref, s, 1e-10)
    assert s.abs().max() < 1e3
    with pytest.raises(ValueError, match=r"beta must lie in \(0, 1\]"):
        delta_rule_attention(q, k, v, beta)
    with pytest.raises(ValueError, match=r"beta must lie in \(0, 2\]"):
        delta_rule_attention(q, k, v, beta * 1.5, allow_negative_eigenvalues=True)


def test_a_beta_of_two_flips_the_stored_value():
    """With β = 2 and a unit key, I − 2kkᵀ is a reflection: writing v = 0 under k twice restores the state."""
    k = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    v = torch.zeros(2, 1, dtype=torch.float64)
    s0 = torch.tensor([[3.0], [5.0]], dtype=torch.float64)
    beta = torch.full((2,), 2.0, dtype=torch.float64)
    out, s = delta_rule_attention(k, k, v, beta, initial_state=s0, return_state=True, allow_negative_eigenvalues=True,
                                  form="recurrent")
    assert out[0, 0] == -3.0 and out[1, 0] == 3.0  # read along k: −3 after one reflection, +3 after two
    assert torch.equal(s, s0)  # exact by construction: two reflections are the identity


# KDA: one log-decay per key channel ------------------------------------------------------------
def _kda_inputs(lead=(2, 3), n=37, d=5, d_v=4, dtype=torch.float64, seed=0):
    q, k, v, beta, _ = _inputs(lead=lead, n=n, d=d, d_v=d_v, dtype=dtype, seed=seed)
    g = -rand(*lead, n, d, seed=seed + 5).abs().to(dtype)  # (..., N, d): each channel its own decay
    return q, k, v, beta, g


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("chunk", [1, 8, 16, 64])
def test_kda_chunkwise_matches_recurrent(chunk, dtype):
    q, k, v, beta, g = _kda_inputs(dtype=dtype)  # N = 37: C ∤ N for 8 and 16, C > N for 64
    ref, s_ref = delta_rule_attention(q, k, v, beta, log_decay=g, form="recurrent", return_state=True)
    out, s = delta_rule_attention(q, k, v, beta, log_decay=g, form="chunkwise", chunk_size=chunk, return_state=True)
    assert out.dtype == dtype and s.shape == (2, 3, 5, 4)
    assert_close("KDA out", ref, out, TOL[dtype])
    assert_close("KDA S", s_ref, s, TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_kda_gradients_match_recurrent(dtype):
    base = _kda_inputs(lead=(2,), n=19, d=4, d_v=3, dtype=dtype)
    s0 = rand(2, 4, 3, seed=9).to(dtype)
    grads = {}
    for form in ("recurrent", "chunkwise"):
        xs = [x.clone().requires_grad_(True) for x in (*base, s0)]
        out, s = delta_rule_attention(*xs[:4], log_decay=xs[4], initial_state=xs[5], form=form, chunk_size=8,
                                      return_state=True)
        (out.sin().sum() + s.cos().sum()).backward()
        grads[form] = [x.grad for x in xs]
    for name, ref, got in zip(["q", "k", "v", "beta", "log_decay", "S0"], grads["recurrent"], grads["chunkwise"]):
        assert_close(f"KDA d{name}", ref, got, TOL[dtype])


@pytest.mark.parametrize("lead", [(), (2, 1, 3)])
def test_kda_no_or_many_leading_dims(lead):
    q, k, v, beta, g = _kda_inputs(lead=lead, n=21)
    ref, s_ref = delta_rule_attention(q, k, v, beta, log_decay=g, form="recurrent", return_state=True)
    out, s = delta_rule_attention(q, k, v, beta, log_decay=g, chunk_size=8, return_state=True)
    assert out.shape == (*lead, 21, 4) and s.shape == (*lead, 5, 4)
    assert_close("KDA out", ref, out, 1e-10)
    assert_close("KDA S", s_ref, s, 1e-10)


def test_kda_step_is_the_formula():
    """FLA's naive_recurrent_kda order: decay the rows of S first, then the delta step:
    S_t = (I − β k kᵀ) Diag(exp(g)) S + β k vᵀ, written with explicit matrices."""
    s, k, v = rand(4, 3, seed=1), torch.nn.functional.normalize(rand(4, seed=2), dim=0), rand(3, seed=3)
    beta, g = torch.tensor(0.7, dtype=torch.float64), -rand(4, seed=4).abs()
    eye = torch.eye(4, dtype=torch.float64)
    ref = (eye - beta * torch.outer(k, k)) @ torch.diag(g.exp()) @ s + beta * torch.outer(k, v)
    assert_close("KDA delta_step", ref, delta_step(s, k, v, beta, g), 1e-12)
    other_order = torch.diag(g.exp()) @ (eye - beta * torch.outer(k, k)) @ s + beta * torch.outer(k, v)
    assert (other_order - ref).abs().max() > 1e-3  # the order matters once the channels decay differently


@pytest.mark.parametrize("form", ["recurrent", "chunkwise"])
def test_kda_with_one_gate_on_every_channel_is_gated_deltanet(form):
    q, k, v, beta, g = _inputs(lead=(2,), n=41, gated=True)
    ref, s_ref = delta_rule_attention(q, k, v, beta, log_decay=g, form=form, chunk_size=8, return_state=True)
    out, s = delta_rule_attention(q, k, v, beta, log_decay=g.unsqueeze(-1).expand(2, 41, 5), form=form, chunk_size=8,
                                  return_state=True)
    assert_close("KDA with a scalar gate", ref, out, 1e-12)
    assert_close("state", s_ref, s, 1e-12)


def test_kda_extreme_gates_stay_finite():
    """A channel gate of −3e38 (float32) or −1e300 (float64) forgets that channel at once; nothing overflows."""
    for dtype, huge in ((torch.float32, -3e38), (torch.float64, -1e300)):
        q, k, v, beta, g = _kda_inputs(lead=(2,), n=40, dtype=dtype)
        g[:, 7, :2] = huge
        g[:, 20:23, 3] = -torch.finfo(dtype).max
        ref = delta_rule_attention(q.double(), k.double(), v.double(), beta.double(), log_decay=g.double(),
                                   form="recurrent")
        for form in ("recurrent", "chunkwise"):
            out = delta_rule_attention(q, k, v, beta, log_decay=g, form=form, chunk_size=16)
            assert torch.isfinite(out).all()
            assert_close(f"KDA {form} {dtype}", ref, out, TOL[dtype])


def test_kda_state_steps_with_a_per_channel_gate():
    q, k, v, beta, g = _kda_inputs(lead=(2,), n=15)
    full, s_full = delta_rule_attention(q, k, v, beta, log_decay=g, form="recurrent", return_state=True)
    st = DeltaState(5, 4, batch_shape=(2,), dtype=torch.float64)
    head = st.prefill(q[:, :9], k[:, :9], v[:, :9], beta[:, :9], log_decay=g[:, :9], chunk_size=4)
    tail = [st.step(q[:, t], k[:, t], v[:, t], beta[:, t], g[:, t]) for t in range(9, 15)]
    assert_close("KDA prefill + step", full, torch.cat([head, torch.stack(tail, 1)], 1), 1e-10)
    assert_close("KDA state", s_full, st.S, 1e-10)
    before = st.snapshot()
    with pytest.raises(ValueError, match=r"g_t must have shape \(2,\) or \(2, 5\).*got \(2, 4\)"):
        st.step(q[:, 0], k[:, 0], v[:, 0], beta[:, 0], g[:, 0, :4])
    with pytest.raises(ValueError, match=r"g_t must be finite and <= 0"):
        st.step(q[:, 0], k[:, 0], v[:, 0], beta[:, 0], -g[:, 0])
    assert st.t == 15 and torch.equal(before[0], st.S)


def test_kda_bad_gates_get_clear_errors():
    q, k, v, beta, g = _kda_inputs(lead=(1,), n=6)
    with pytest.raises(ValueError, match=r"log_decay must have shape \(1, 6\) or \(1, 6, 5\).*got \(1, 6, 3\)"):
        delta_rule_attention(q, k, v, beta, log_decay=g[..., :3])
    with pytest.raises(ValueError, match=r"log_decay must have shape .*got \(6, 5\)"):
        delta_rule_attention(q, k, v, beta, log_decay=g[0])
    bad = g.clone()
    bad[0, 2, 1] = 0.25
    with pytest.raises(ValueError, match=r"log_decay must be finite and <= 0 .*got an entry 0.25"):
        delta_rule_attention(q, k, v, beta, log_decay=bad)
    bad[0, 2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"log_decay must be finite and <= 0"):
        delta_rule_attention(q, k, v, beta, log_decay=bad, form="recurrent")


def test_kda_with_negative_eigenvalues_chunkwise_equals_recurrent():
    """β ∈ (0, 2] with a per-channel gate: the WY form holds for any β."""
    q, k, v, beta, g = _kda_inputs(lead=(2,), n=45)
    beta = 2 * beta  # some entries past 1
    ref, s_ref = delta_rule_attention(q, k, v, beta, log_decay=g, form="recurrent", return_state=True,
                                      allow_negative_eigenvalues=True)
    out, s = delta_rule_attention(q, k, v, beta, log_decay=g, chunk_size=8, return_state=True,
                                  allow_negative_eigenvalues=True)
    assert_close("KDA, negative eigenvalues", ref, out, 1e-10)
    assert_close("state", s_ref, s, 1e-10)


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_kda_half_inputs_accumulate_in_float32(half):
    q, k, v, beta, g = _kda_inputs(lead=(2,), n=200, d=8, d_v=8)
    g = g * 0.05
    ref = delta_rule_attention(q, k, v, beta, log_decay=g, form="recurrent")
    cast = [x.to(half) for x in (q, k, v, beta, g)]
    out, s = delta_rule_attention(*cast[:4], log_decay=cast[4], return_state=True)
    assert out.dtype == half and s.dtype == torch.float32
    assert_close(f"KDA chunkwise {half}", ref, out, 1e-2)
