"""Bad input gets a ValueError/TypeError that names what was expected and what came.

One error type for one mistake: a value of the wrong type (a str, a bool for an int, a float for
an int) is a TypeError; a value of the right type out of range (0, negative, NaN, inf, too large
for the memory budget) is a ValueError (MemoryBudgetError is one).
"""
import math

import pytest
import torch
from conftest import assert_close, rand

from linattn_edu import (LinearAttentionState, MemoryBudgetError, kernel_smoother, linear_attention,
                         set_memory_budget, sliding_window_attention, softmax_attention)
from linattn_edu import memory
from linattn_edu.feature_maps import (elu_plus_one, favor_plus, get_feature_map, random_projection, taylor,
                                      trig_random_features)
from linattn_edu.kernel import boxcar_kernel, exp_kernel, feature_map_kernel, gaussian_kernel
from linattn_edu.softmax import attention_scores, causal_mask, combine_masks, stable_softmax
from linattn_edu.window import window_mask

_GEN = torch.Generator().manual_seed(0)  # seeded: which inputs a case meets must not depend on the test order
Q = torch.randn(2, 8, 4, generator=_GEN)
K = torch.randn(2, 8, 4, generator=_GEN)
V = torch.randn(2, 8, 3, generator=_GEN)


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
    ("scale not a number", lambda: softmax_attention(Q, K, V, scale="big"), TypeError, r"scale .*must be a finite number; got str 'big'"),
    ("kernel not callable", lambda: kernel_smoother(Q, K, V, "exp"), TypeError, r"kernel must be a callable .*got str"),
    ("kernel returns wrong shape", lambda: kernel_smoother(Q, K, V, lambda q, k: q), ValueError,
     r"kernel must return \(\.\.\., N, M\) = \(2, 8, 8\); got \(2, 8, 4\)"),
    ("bandwidth 0", lambda: gaussian_kernel(0.0), ValueError, r"bandwidth must be a finite number > 0; got 0.0"),
    ("exp kernel scale negative", lambda: exp_kernel(-1.0), ValueError, r"scale must be a finite number > 0; got -1.0"),
    ("favor m 0", lambda: favor_plus(4, m=0), ValueError, r"m must be an int >= 1; got 0"),
    ("random map without d", lambda: get_feature_map("favor+"), ValueError, r"needs the input dim d; got d=None"),
    ("state dtype", lambda: LinearAttentionState(4, 3, feature_map="elu+1", dtype=torch.float16), TypeError,
     r"state dtype must be float32 or float64 \(a torch.dtype or its name\); got torch.float16"),
    ("state token shape", lambda: LinearAttentionState(4, 3, feature_map="elu+1").step(torch.randn(4), torch.randn(4), torch.randn(5)),
     ValueError, r"v_t must be \(3,\) .*got \(5,\)"),
    ("window_mask n 0", lambda: window_mask(0, 2), ValueError, r"n must be an int >= 1; got 0"),
    ("memory budget", lambda: set_memory_budget(-5), ValueError, r"positive int of bytes; got -5"),
    # causal / return_weights must be real bools ('no' used to be taken as True)
    *[(f"{fn} causal={bad!r}", call, TypeError, rf"causal must be True or False; got {type(bad).__name__}")
      for bad in ("no", 1, None)
      for fn, call in (
          ("softmax", (lambda b: lambda: softmax_attention(Q, K, V, causal=b))(bad)),
          ("kernel_smoother", (lambda b: lambda: kernel_smoother(Q, K, V, exp_kernel(), causal=b))(bad)),
          ("sliding_window", (lambda b: lambda: sliding_window_attention(Q, K, V, window=2, causal=b))(bad)),
      )],
    ("softmax return_weights 'y'", lambda: softmax_attention(Q, K, V, return_weights="y"), TypeError,
     r"return_weights must be True or False; got str"),
    ("window return_weights 'x'", lambda: sliding_window_attention(Q, K, V, window=2, return_weights="x"), TypeError,
     r"return_weights must be True or False"),
    ("kernel_smoother return_weights 2", lambda: kernel_smoother(Q, K, V, exp_kernel(), return_weights=2), TypeError,
     r"return_weights must be True or False; got int"),
    ("window_mask causal 'x'", lambda: window_mask(4, 2, causal="x"), TypeError, r"causal must be True or False"),
    ("combine_masks causal 'x'", lambda: combine_masks(torch.randn(4, 4), causal="x", mask=None), TypeError,
     r"causal must be True or False"),
    # kernels: non-negative weights of the dtype they were given
    ("kernel q @ kᵀ (negative weights)", lambda: kernel_smoother(Q, K, V, lambda q, k: q @ k.transpose(-2, -1)),
     ValueError, r"kernel must give weights >= 0 .*got a minimum of -"),
    ("identity feature-map kernel", lambda: kernel_smoother(Q, K, V, feature_map_kernel("identity")), ValueError,
     r"kernel must give weights >= 0"),
    ("trig feature-map kernel", lambda: kernel_smoother(Q, K, V, feature_map_kernel(trig_random_features(4))),
     ValueError, r"kernel must give weights >= 0"),
    ("kernel returns float64", lambda: kernel_smoother(Q, K, V, lambda q, k: torch.ones(2, 8, 8, dtype=torch.float64)),
     TypeError, r"kernel must return float32 weights .*got float64"),
    ("kernel returns int64", lambda: kernel_smoother(Q, K, V, lambda q, k: torch.ones(2, 8, 8, dtype=torch.long)),
     TypeError, r"kernel must return float32 weights .*got int64"),
    ("kernel returns a list", lambda: kernel_smoother(Q, K, V, lambda q, k: [[1.0]]), TypeError,
     r"kernel must return a torch.Tensor .*got list"),
    ("kernel returns inf", lambda: kernel_smoother(Q, K, V, lambda q, k: torch.full((2, 8, 8), math.inf)),
     ValueError, r"kernel must give finite weights; got inf"),
    ("kernel returns NaN for finite inputs", lambda: kernel_smoother(Q, K, V, lambda q, k: torch.full((2, 8, 8), math.nan)),
     ValueError, r"NaN weights for finite q and k"),
    ("feature_map_kernel unknown name", lambda: feature_map_kernel("softplus"), ValueError,
     r"unknown feature map 'softplus'"),
    ("exp kernel scale NaN", lambda: exp_kernel(math.nan), ValueError, r"scale must be a finite number > 0; got nan"),
    ("exp kernel scale True", lambda: exp_kernel(True), TypeError, r"scale must be a finite number > 0; got bool"),
    ("gaussian bandwidth inf", lambda: gaussian_kernel(math.inf), ValueError, r"bandwidth .*got inf"),
    ("boxcar width str", lambda: boxcar_kernel("w"), TypeError, r"width must be a finite number > 0; got str"),
    # softmax helpers
    ("attention_scores d mismatch", lambda: attention_scores(Q, torch.randn(2, 8, 5), 1.0), ValueError,
     r"d == q.shape\[-1\] == 4; got \(2, 8, 5\)"),
    ("attention_scores scale NaN", lambda: attention_scores(Q, K, math.nan), ValueError, r"scale must be .*got nan"),
    ("stable_softmax int tensor", lambda: stable_softmax(torch.ones(3, dtype=torch.long)), TypeError,
     r"scores must be a floating tensor"),
    ("stable_softmax list", lambda: stable_softmax([1.0, 2.0]), TypeError, r"scores must be a torch.Tensor; got list"),
    ("causal_mask n -1", lambda: causal_mask(-1), ValueError, r"n must be an int >= 1; got -1"),
    ("causal_mask n 2.5", lambda: causal_mask(2.5), TypeError, r"n must be an int >= 1; got float"),
    ("causal_mask huge", lambda: causal_mask(10**7), MemoryBudgetError, r"causal_mask's \(n, m\) mask would allocate"),
    ("softmax scale NaN", lambda: softmax_attention(Q, K, V, scale=math.nan), ValueError, r"scale .*got nan"),
    ("window scale inf", lambda: sliding_window_attention(Q, K, V, window=2, scale=math.inf), ValueError, r"scale .*got inf"),
    ("window True", lambda: sliding_window_attention(Q, K, V, window=True), TypeError, r"window must be an int >= 1; got bool"),
    ("window 2.0", lambda: sliding_window_attention(Q, K, V, window=2.0), TypeError, r"window must be an int >= 1; got float"),
    ("window_mask huge", lambda: window_mask(10**6, 2), MemoryBudgetError, r"window_mask's \(N, N\) mask would allocate"),
    # random feature maps
    ("favor seed 'a'", lambda: favor_plus(16, seed="a"), TypeError, r"seed must be an int >= 0; got str 'a'"),
    ("favor seed 1.5", lambda: favor_plus(16, seed=1.5), TypeError, r"seed must be an int >= 0; got float"),
    ("favor seed -1", lambda: favor_plus(16, seed=-1), ValueError, r"seed must be an int >= 0; got -1"),
    ("favor seed None", lambda: favor_plus(16, seed=None), TypeError, r"seed must be an int >= 0; got NoneType"),
    ("favor m 10**10", lambda: favor_plus(16, m=10**10), MemoryBudgetError,
     r"random projection ω \(m, d\) would allocate \(10000000000, 16\) float64 = 1.2 TiB"),
    ("favor m True", lambda: favor_plus(16, m=True), TypeError, r"m must be an int >= 1; got bool"),
    ("favor m 2.0", lambda: favor_plus(16, m=2.0), TypeError, r"m must be an int >= 1; got float"),
    ("favor d 10**6", lambda: favor_plus(10**6, m=4), MemoryBudgetError, r"orthogonal \(d, d\) block"),
    ("favor orthogonal 'no'", lambda: favor_plus(16, orthogonal="no"), TypeError, r"orthogonal must be True or False"),
    ("trig m 10**10", lambda: trig_random_features(16, m=10**10), MemoryBudgetError, r"would allocate"),
    ("trig seed 'a'", lambda: trig_random_features(16, seed="a"), TypeError, r"seed must be an int"),
    ("random_projection seed 'x'", lambda: random_projection(4, 4, seed="x"), TypeError, r"seed must be an int"),
    ("get_feature_map d 'x'", lambda: get_feature_map("elu+1", "x"), TypeError, r"d must be an int >= 1; got str"),
    ("d_out of 'a'", lambda: elu_plus_one.d_out("a"), TypeError, r"d must be an int >= 1; got str"),
    ("taylor d_out -1", lambda: taylor.d_out(-1), ValueError, r"d must be an int >= 1; got -1"),
    ("taylor huge d", lambda: taylor(torch.randn(1, 100000)), MemoryBudgetError, r"taylor's .* would allocate"),
    # the recurrent state
    ("state batch_shape 5", lambda: LinearAttentionState(4, 3, feature_map="elu+1", batch_shape=5), TypeError,
     r"batch_shape must be a tuple of ints >= 1 .*got int 5"),
    ("state batch_shape (-1,)", lambda: LinearAttentionState(4, 3, feature_map="elu+1", batch_shape=(-1,)), ValueError,
     r"batch_shape\[0\] must be an int >= 1; got -1"),
    ("state batch_shape ('a',)", lambda: LinearAttentionState(4, 3, feature_map="elu+1", batch_shape=("a",)), TypeError,
     r"batch_shape\[0\] must be an int >= 1; got str 'a'"),
    ("state batch_shape (0,)", lambda: LinearAttentionState(4, 3, feature_map="elu+1", batch_shape=(0,)), ValueError,
     r"batch_shape\[0\] must be an int >= 1; got 0"),
    ("state batch_shape huge", lambda: LinearAttentionState(4, 3, feature_map="elu+1", batch_shape=(10**6, 10**4)),
     MemoryBudgetError, r"the state S .* would allocate"),
    ("state favor built for other d", lambda: LinearAttentionState(16, 3, feature_map=favor_plus(32)), ValueError,
     r"'favor\+' was built for d = 32; the state has d = 16"),
    ("state eps NaN", lambda: LinearAttentionState(4, 3, feature_map="elu+1", eps=math.nan), ValueError, r"eps must be .*got nan"),
    ("state record 'yes'", lambda: LinearAttentionState(4, 3, feature_map="elu+1", record="yes"), TypeError,
     r"record must be True or False"),
    ("state device 'xyz'", lambda: LinearAttentionState(4, 3, feature_map="elu+1", device="xyz"), ValueError,
     r"device must name a torch device .*got 'xyz'"),
    ("state d_v True", lambda: LinearAttentionState(4, True, feature_map="elu+1"), TypeError, r"d_v must be an int >= 1; got bool"),
    # memory calculator
    ("format_bytes NaN", lambda: memory.format_bytes(math.nan), ValueError, r"a byte count must be a finite number >= 0; got nan"),
    ("format_bytes inf", lambda: memory.format_bytes(math.inf), ValueError, r"byte count .*got inf"),
    ("format_bytes str", lambda: memory.format_bytes("a"), TypeError, r"byte count .*got str"),
    ("format_bytes -1", lambda: memory.format_bytes(-1), ValueError, r"byte count .*>= 0; got -1"),
    ("state_bytes d_phi 0", lambda: memory.state_bytes(memory.PRESETS["gpt2"], d_phi=0), ValueError,
     r"d_phi must be an int >= 1; got 0"),
    ("state_bytes include_z 1", lambda: memory.state_bytes(memory.PRESETS["gpt2"], include_z=1), TypeError,
     r"include_z must be True or False"),
    ("cache_bytes tokens NaN", lambda: memory.cache_bytes(memory.PRESETS["gpt2"], math.nan), TypeError,
     r"tokens must be an int >= 0; got float nan"),
    ("shape name not str", lambda: memory.AttentionShape(3, layers=1, heads=1, kv_heads=1, head_dim=1), TypeError,
     r"name must be a str; got int"),
    ("latent_dim on an MHA shape", lambda: memory.AttentionShape("x", layers=1, heads=1, kv_heads=1, head_dim=1, latent_dim=5),
     ValueError, r"kind 'MHA' needs them None"),
    ("with_ unknown field", lambda: memory.PRESETS["gpt2"].with_(bogus=1), TypeError, r"has no field\(s\) \['bogus'\]"),
    ("hybridize too many linear layers", lambda: memory.hybridize(memory.PRESETS["gpt2"], 13), ValueError,
     r"linear_layers must be an int >= 0 and <= 12; got 13"),
    ("hybridize linear_layers 1.5", lambda: memory.hybridize(memory.PRESETS["gpt2"], 1.5), TypeError,
     r"linear_layers must be an int"),
    ("hybrid_bytes of an AttentionShape", lambda: memory.hybrid_bytes(memory.PRESETS["gpt2"], 10), TypeError,
     r"hybrid must be a HybridShape"),
    ("hybrid preset unknown", lambda: memory.get_hybrid_preset("jamba-2"), ValueError, r"hybrid preset must be one of"),
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


@pytest.mark.parametrize("bad", ["q", "k", "v"])
def test_failed_step_leaves_the_state_untouched(bad):
    """A step that fails on any of q_t, k_t, v_t changes neither S, z, t nor the history."""
    st = LinearAttentionState(4, 3, feature_map="elu+1", batch_shape=(2,), dtype=torch.float64, record=True)
    st.step(rand(2, 4, seed=1), rand(2, 4, seed=2), rand(2, 3, seed=3))
    before = (st.S.clone(), st.z.clone(), st.t, len(st.history))
    args = {"q": rand(2, 4, seed=4), "k": rand(2, 4, seed=5), "v": rand(2, 3, seed=6)}
    args[bad] = rand(2, 7, seed=7)  # wrong last dim
    with pytest.raises(ValueError, match=rf"{bad}_t must be \(2, [34]\)"):
        st.step(args["q"], args["k"], args["v"])
    with pytest.raises(TypeError, match=r"floating tensor"):
        st.step(*(x.long() if name == bad else x for name, x in args.items()))
    # no arithmetic happened on the state, so it must be bit-for-bit what it was
    assert torch.equal(st.S, before[0]) and torch.equal(st.z, before[1])
    assert (st.t, len(st.history)) == before[2:]


NAN_FORMS = {
    "softmax": lambda q, k, v: softmax_attention(q, k, v, causal=True),
    "softmax weights": lambda q, k, v: softmax_attention(q, k, v, causal=True, return_weights=True)[0],
    "sliding window": lambda q, k, v: sliding_window_attention(q, k, v, window=3, causal=True),
    "sliding window + global 0": lambda q, k, v: sliding_window_attention(q, k, v, window=4, causal=True,
                                                                            global_tokens=(0,)),
    "kernel smoother exp": lambda q, k, v: kernel_smoother(q, k, v, exp_kernel(), causal=True),
    "kernel smoother gaussian": lambda q, k, v: kernel_smoother(q, k, v, gaussian_kernel(2.0), causal=True),
}


@pytest.mark.parametrize("where", ["q", "k", "v"])
@pytest.mark.parametrize("form", list(NAN_FORMS))
def test_nan_at_token_t_never_reaches_earlier_rows(form, where):
    """NaN in q, k or v at token t = 7: rows i < 7 stay finite and equal the clean run."""
    n, t = 13, 7
    q, k, v = rand(2, 3, n, 4, seed=1), rand(2, 3, n, 4, seed=2), rand(2, 3, n, 5, seed=3)
    clean = NAN_FORMS[form](q, k, v)
    poisoned = {"q": q.clone(), "k": k.clone(), "v": v.clone()}
    poisoned[where][..., t, :] = math.nan
    out = NAN_FORMS[form](poisoned["q"], poisoned["k"], poisoned["v"])
    assert_close(f"{form}, NaN in {where}[{t}]: rows < t", clean[..., :t, :], out[..., :t, :], 1e-12)
    assert torch.isnan(out[..., t, :]).any()  # the NaN is not hidden at its own row
