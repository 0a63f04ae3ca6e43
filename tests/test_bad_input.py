"""Bad input gets a ValueError/TypeError that names what was expected and what came."""
import pytest
import torch

from linattn_edu import (LinearAttentionState, MemoryBudgetError, kernel_smoother, linear_attention,
                         set_memory_budget, sliding_window_attention, softmax_attention)
from linattn_edu.feature_maps import favor_plus, get_feature_map, trig_random_features
from linattn_edu.kernel import exp_kernel, gaussian_kernel
from linattn_edu.window import window_mask

Q = torch.randn(2, 8, 4)
K = torch.randn(2, 8, 4)
V = torch.randn(2, 8, 3)


def la(*args, **kw):
    return lambda: linear_attention(*args, **kw)


CASES = [
    # (id, call, exception, regex that the message must match)
    ("rank-1 q", la(torch.randn(4), K, V, "elu+1"), ValueError, r"q must have at least 2 dims .*got shape \(4,\)"),
    ("d mismatch", la(Q, torch.randn(2, 8, 5), V, "elu+1"), ValueError, r"d == q.shape\[-1\] == 4; got \(2, 8, 5\)"),
    ("N mismatch k/v", la(Q, K, torch.randn(2, 7, 3), "elu+1"), ValueError, r"M == k.shape\[-2\] == 8; got \(2, 7, 3\)"),
    ("leading dims", la(Q, K, torch.randn(3, 8, 3), "elu+1"), ValueError, r"leading .* got q \(2, 8, 4\).*v \(3, 8, 3\)"),
    ("integer dtype", la(Q.long(), K.long(), V.long(), "elu+1"), TypeError, r"floating tensor .*got torch.int64"),
    ("mixed dtypes", la(Q, K.double(), V, "elu+1"), TypeError, r"one dtype; got torch.float32, torch.float64"),
    ("not a tensor", la(Q.tolist(), K, V, "elu+1"), TypeError, r"q must be a torch.Tensor; got list"),
    ("mismatched devices", la(Q, K.to("meta"), V, "elu+1"), ValueError, r"one device; got cpu, meta"),
    ("chunk_size 0", la(Q, K, V, "elu+1", causal=True, chunk_size=0), ValueError, r"chunk_size must be an int >= 1; got 0"),
    ("chunk_size float", la(Q, K, V, "elu+1", causal=True, chunk_size=2.5), TypeError, r"chunk_size must be an int >= 1; got float"),
    ("unknown form", la(Q, K, V, "elu+1", form="fast"), ValueError, r"form must be one of .*got 'fast'"),
    ("unknown feature map", la(Q, K, V, "softplus"), ValueError, r"unknown feature map 'softplus'; expected one of"),
    ("feature map wrong type", la(Q, K, V, 3), TypeError, r"feature_map must be a FeatureMap .*got int"),
    ("negative kernel + denominator", la(Q, K, V, "identity"), ValueError, r"'identity' can give negative .*positive_kernel=True"),
    ("trig + denominator", la(Q, K, V, trig_random_features(4)), ValueError, r"'trig' can give negative"),
    ("favor built for other d", la(Q, K, V, favor_plus(6)), ValueError, r"built for d = 6: input must be \(\.\.\., 6\); got \(2, 8, 4\)"),
    ("negative eps", la(Q, K, V, "elu+1", eps=-1e-6), ValueError, r"eps must be a finite number >= 0; got -1e-06"),
    ("recurrent non-causal", la(Q, K, V, "elu+1", form="recurrent"), ValueError, r"causal form; got causal=False"),
    ("linear causal", la(Q, K, V, "elu+1", causal=True, form="linear"), ValueError, r"non-causal associative form; got causal=True"),
    ("causal N != M", la(Q, torch.randn(2, 9, 4), torch.randn(2, 9, 3), "elu+1", causal=True), ValueError,
     r"N == M\); got q \(2, 8, 4\), k \(2, 9, 4\)"),
    ("empty sequence", la(torch.randn(2, 0, 4), torch.randn(2, 0, 4), torch.randn(2, 0, 3), "elu+1"), ValueError, r"N >= 1"),
    ("window 0", lambda: sliding_window_attention(Q, K, V, window=0), ValueError, r"window must be an int >= 1; got 0"),
    ("global token out of range", lambda: sliding_window_attention(Q, K, V, window=2, global_tokens=(8,)), ValueError,
     r"positions in \[0, N\) = \[0, 8\); got 8"),
    ("global token not int", lambda: sliding_window_attention(Q, K, V, window=2, global_tokens=(1.0,)), TypeError,
     r"global_tokens must be ints; got 1.0"),
    ("mask wrong shape", lambda: softmax_attention(Q, K, V, mask=torch.ones(3, 3, dtype=torch.bool)), ValueError,
     r"mask must broadcast to .*\(2, 8, 8\); got \(3, 3\)"),
    ("mask int dtype", lambda: softmax_attention(Q, K, V, mask=torch.ones(8, 8, dtype=torch.int32)), TypeError,
     r"mask must be bool .*got torch.int32"),
    ("scale not a number", lambda: softmax_attention(Q, K, V, scale="big"), ValueError, r"scale must be a finite number .*got 'big'"),
    ("kernel not callable", lambda: kernel_smoother(Q, K, V, "exp"), TypeError, r"kernel must be a callable .*got str"),
    ("kernel returns wrong shape", lambda: kernel_smoother(Q, K, V, lambda q, k: q), ValueError,
     r"kernel must return \(\.\.\., N, M\) = \(2, 8, 8\); got \(2, 8, 4\)"),
    ("bandwidth 0", lambda: gaussian_kernel(0.0), ValueError, r"bandwidth must be a finite number > 0; got 0.0"),
    ("exp kernel scale negative", lambda: exp_kernel(-1.0), ValueError, r"scale must be a finite number > 0; got -1.0"),
    ("favor m 0", lambda: favor_plus(4, m=0), ValueError, r"m must be an int >= 1; got 0"),
    ("random map without d", lambda: get_feature_map("favor+"), ValueError, r"needs the input dim d; got d=None"),
    ("state dtype", lambda: LinearAttentionState("elu+1", 4, 3, dtype=torch.float16), TypeError,
     r"state dtype must be float32 or float64; got torch.float16"),
    ("state token shape", lambda: LinearAttentionState("elu+1", 4, 3).step(torch.randn(4), torch.randn(4), torch.randn(5)),
     ValueError, r"v_t must be \(3,\) .*got \(5,\)"),
    ("window_mask n 0", lambda: window_mask(0, 2), ValueError, r"n must be an int >= 1; got 0"),
    ("memory budget", lambda: set_memory_budget(-5), ValueError, r"positive int of bytes; got -5"),
]


@pytest.mark.parametrize("call,exc,pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_clear_error(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_there_are_at_least_twenty_distinct_bad_inputs():
    assert len({c[0] for c in CASES}) >= 20


@pytest.mark.parametrize("call", [
    lambda q: softmax_attention(q, q, q),
    lambda q: linear_attention(q, q, q, "elu+1", form="quadratic"),
    lambda q: linear_attention(q, q, q, "elu+1", causal=True, form="prefix"),
    lambda q: linear_attention(q, q, q, "elu+1", causal=True, return_weights=True),
], ids=["softmax", "quadratic", "prefix", "weights"])
def test_dense_work_is_refused_before_allocating(call):
    """B = 4, N = 65536: 64 GiB of (N, N) scores, 4 GiB of prefix states: refused, nothing allocated."""
    q = torch.randn(4, 65536, 64, device="meta")  # meta tensors hold no memory
    with pytest.raises(MemoryBudgetError, match=r"would allocate .* GiB > budget 2.0 GiB; .*set_memory_budget"):
        call(q)
