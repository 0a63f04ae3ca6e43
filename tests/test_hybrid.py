"""Window + linear hybrid (Based-style) against its direct definition."""
import math

import pytest
import torch
from conftest import assert_close, rand

from linattn_edu import window_linear_attention
from linattn_edu.feature_maps import taylor


def _direct(q, k, v, w):
    """Dense definition: masked softmax over i − w < j <= i, plus normalised Taylor linear attention."""
    n = q.shape[-2]
    i, j = torch.arange(n).unsqueeze(-1), torch.arange(n).unsqueeze(0)
    band = (j <= i) & (i - j < w)
    scores = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(~band, -math.inf)
    local = torch.softmax(scores, dim=-1) @ v
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # the Taylor kernel is 1 + s + s²/2
    kern = torch.where(j <= i, 1 + s + s * s / 2, torch.zeros_like(s))
    far = (kern @ v) / (kern.sum(-1, keepdim=True) + 1e-6)
    return local + far


@pytest.mark.parametrize("n,w", [(1, 4), (19, 4), (33, 8), (20, 64)])
def test_hybrid_matches_definition(n, w):
    q, k, v = rand(2, 3, n, 4, seed=1), rand(2, 3, n, 4, seed=2), rand(2, 3, n, 5, seed=3)
    assert_close("hybrid", _direct(q, k, v, w), window_linear_attention(q, k, v, window=w, chunk_size=8), 1e-10)


def test_hybrid_float32_and_taylor_kernel():
    q, k, v = rand(1, 40, 4, seed=4), rand(1, 40, 4, seed=5), rand(1, 40, 4, seed=6)
    ref = _direct(q, k, v, 6)
    out = window_linear_attention(q.float(), k.float(), v.float(), window=6)
    assert out.dtype == torch.float32
    assert_close("hybrid fp32", ref, out, 1e-5)
    s = (q[0, 0] @ k[0, 1]) / 2  # √d = 2
    assert math.isclose(float(taylor(q[0, 0]) @ taylor(k[0, 1])), float(1 + s + s * s / 2), rel_tol=1e-12)


def test_hybrid_is_causal():
    q, k, v = rand(1, 30, 4, seed=7), rand(1, 30, 4, seed=8), rand(1, 30, 4, seed=9)
    out = window_linear_attention(q, k, v, window=5)
    k2, v2 = k.clone(), v.clone()
    k2[:, 20], v2[:, 20] = 9.0, -9.0
    out2 = window_linear_attention(q, k2, v2, window=5)
    assert_close("rows before the change", out[:, :20], out2[:, :20], 1e-12)


def test_hybrid_bad_window():
    q = rand(1, 5, 4)
    with pytest.raises(ValueError, match="window"):
        window_linear_attention(q, q, q, window=0)


@pytest.mark.parametrize("window,cut", [(1, 9), (4, 2), (4, 9), (6, 20)])
def test_two_calls_equal_one_call(window, cut):
    """The hybrid's state (S, z and the last w − 1 keys and values) carries a sequence across calls."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 29, 4, generator=g, dtype=torch.float64) for _ in range(3))
    full, s_full = window_linear_attention(q, k, v, window=window, feature_map="elu+1", chunk_size=8,
                                           return_state=True)
    a, s1 = window_linear_attention(q[:, :cut], k[:, :cut], v[:, :cut], window=window, feature_map="elu+1",
                                    chunk_size=8, return_state=True)
    b, s2 = window_linear_attention(q[:, cut:], k[:, cut:], v[:, cut:], window=window, feature_map="elu+1",
                                    chunk_size=8, initial_state=s1, return_state=True)
    assert_close("outputs", full, torch.cat([a, b], 1), 1e-10)
    for ref, got in zip(s_full, s2):
        assert_close("state", ref, got, 1e-10)
    assert s2[2].shape[-2] == min(window - 1, 29)


def test_hybrid_state_is_checked():
    q = torch.randn(2, 5, 4)
    _, s = window_linear_attention(q, q, q, window=3, feature_map="elu+1", return_state=True)
    with pytest.raises(ValueError, match=r"K_tail must be .*m <= window − 1 = 1"):
        window_linear_attention(q, q, q, window=2, feature_map="elu+1", initial_state=s)
    with pytest.raises(TypeError, match=r"initial_state must be a tuple \(S, z, K_tail, V_tail\)"):
        window_linear_attention(q, q, q, window=3, feature_map="elu+1", initial_state=s[:2])
