"""LinearAttentionState (the RNN view) and sliding-window attention."""
import pytest
import torch
from conftest import assert_close, rand

from linattn_edu import (LinearAttentionState, linear_attention, set_memory_budget,
                         sliding_window_attention, softmax_attention)
from linattn_edu.feature_maps import favor_plus
from linattn_edu.window import window_mask


@pytest.mark.parametrize("prefix", [0, 1, 17, 40])
@pytest.mark.parametrize("fmap", ["elu+1", "taylor"])
def test_prefill_then_step_equals_full_causal_output(prefix, fmap):
    q, k, v = rand(2, 3, 40, 4, seed=1), rand(2, 3, 40, 4, seed=2), rand(2, 3, 40, 5, seed=3)
    full = linear_attention(q, k, v, fmap, causal=True, form="quadratic")
    st = LinearAttentionState(4, 5, feature_map=fmap, batch_shape=(2, 3), dtype=torch.float64)
    outs = [st.prefill(q[..., :prefix, :], k[..., :prefix, :], v[..., :prefix, :], chunk_size=8)] if prefix else []
    for t in range(prefix, 40):
        outs.append(st.step(q[..., t, :], k[..., t, :], v[..., t, :]).unsqueeze(-2))
    assert st.t == 40
    assert_close("prefill + steps vs quadratic", full, torch.cat(outs, dim=-2), 1e-10)


def test_state_matches_definition_and_records_snapshots():
    q, k, v = rand(6, 3, seed=1), rand(6, 3, seed=2), rand(6, 2, seed=3)
    st = LinearAttentionState(3, 2, feature_map="elu+1", dtype=torch.float64, record=True)
    for t in range(6):
        st.step(q[t], k[t], v[t])
    fk = torch.nn.functional.elu(k) + 1
    assert_close("S", fk.T @ v, st.S, 1e-12)
    assert_close("z", fk.sum(0), st.z, 1e-12)
    assert len(st.history) == 6
    assert_close("first snapshot", torch.outer(fk[0], v[0]), st.history[0][0], 1e-12)
    fq = torch.nn.functional.elu(q[2]) + 1  # (3,)
    assert_close("readout", (fk.T @ v).T @ fq / (fq @ fk.sum(0) + 1e-6), st.readout(q[2]), 1e-12)
    assert st.nbytes() == (3 * 2 + 3) * 8  # constant in t


def test_state_memory_is_constant_in_t():
    st = LinearAttentionState(8, 8, feature_map="elu+1")
    before = st.nbytes()
    for _ in range(50):
        st.step(*(rand(8, seed=s, dtype=torch.float32) for s in range(3)))
    assert st.nbytes() == before


def test_state_with_favor_and_bad_tokens():
    f32 = torch.float32
    st = LinearAttentionState(4, 3, feature_map=favor_plus(4, 16), batch_shape=(2,))
    with pytest.raises(ValueError, match=r"k_t must be \(2, 4\)"):
        st.step(rand(2, 4, dtype=f32), rand(2, 5, dtype=f32), rand(2, 3, dtype=f32))
    with pytest.raises(ValueError, match="positive_kernel"):
        LinearAttentionState(4, 3, feature_map="identity")
    with pytest.raises(ValueError, match=r"built for d = 4; the state has d = 8"):
        LinearAttentionState(8, 3, feature_map=favor_plus(4, 16))
    st.step(rand(2, 4, dtype=f32), rand(2, 4, dtype=f32), rand(2, 3, dtype=f32))
    with pytest.raises(ValueError, match=r"k must be \(\*\(2,\), N, 4\)"):  # prefill continues any t, checks first
        st.prefill(rand(2, 3, 4, dtype=f32), rand(2, 3, 5, dtype=f32), rand(2, 3, 3, dtype=f32))
    assert st.t == 1


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("n,w", [(1, 1), (7, 1), (7, 3), (64, 8), (129, 16), (50, 200)])
@pytest.mark.parametrize("globals_", [(), (0,), (3, 0, 6)])
def test_sliding_window_equals_masked_softmax(causal, n, w, globals_):
    globals_ = tuple(g for g in globals_ if g < n)
    q, k, v = rand(2, 3, n, 8, seed=1), rand(2, 3, n, 8, seed=2), rand(2, 3, n, 5, seed=3)
    ref = softmax_attention(q, k, v, mask=window_mask(n, w, globals_, causal))
    out = sliding_window_attention(q, k, v, window=w, global_tokens=globals_, causal=causal)
    assert_close("window vs masked softmax", ref, out, 1e-12)


@pytest.mark.parametrize("causal", [False, True])
def test_window_wider_than_the_sequence_is_full_attention(causal):
    """window >= N is the band of the whole sequence: same as w = N, and no (N/w)·w padding."""
    q, k, v = rand(2, 9, 4, seed=1), rand(2, 9, 4, seed=2), rand(2, 9, 3, seed=3)
    ref = softmax_attention(q, k, v, causal=causal)
    for w in (9, 10, 10**12):
        assert_close(f"window {w}", ref, sliding_window_attention(q, k, v, window=w, causal=causal), 1e-12)


def test_window_mask_pattern():
    m = window_mask(6, 2, global_tokens=(0,), causal=True)
    expected = torch.tensor([[1, 0, 0, 0, 0, 0],
                             [1, 1, 0, 0, 0, 0],
                             [1, 1, 1, 0, 0, 0],
                             [1, 0, 1, 1, 0, 0],
                             [1, 0, 0, 1, 1, 0],
                             [1, 0, 0, 0, 1, 1]], dtype=torch.bool)
    assert torch.equal(m, expected)  # booleans, not floats: exact by definition
    assert window_mask(5, 2).sum().item() == 5 + 2 * 4  # |i − j| < 2: diagonal and both neighbours


def test_sliding_window_never_builds_n_by_n():
    """At N = 32768 an N×N float32 matrix is 4 GiB; with a 64 MiB budget the window still runs."""
    old = set_memory_budget(64 * 1024**2)
    try:
        n = 32768
        q = k = rand(1, n, 16, dtype=torch.float32)
        v = rand(1, n, 4, seed=1, dtype=torch.float32)
        out = sliding_window_attention(q, k, v, window=64, global_tokens=(0,), causal=True)
        assert out.shape == (1, n, 4) and torch.isfinite(out).all()
        i = torch.arange(n - 64, n).unsqueeze(-1)  # (64, 1) the last queries
        j = torch.arange(n).unsqueeze(0)  # (1, N)
        rows = ((i - j < 64) & (j <= i)) | (j == 0)  # (64, N): band + global token 0
        ref = softmax_attention(q[:, -64:], k, v, mask=rows)
        assert_close("last 64 rows", ref, out[:, -64:], 1e-5)
    finally:
        set_memory_budget(old)


def test_sliding_window_return_weights():
    q, k, v = rand(10, 4, seed=1), rand(10, 4, seed=2), rand(10, 3, seed=3)
    out, w = sliding_window_attention(q, k, v, window=3, causal=True, return_weights=True)
    assert_close("weights @ v", out, w @ v, 1e-12)
    assert torch.count_nonzero(w.tril(-3)) == 0
