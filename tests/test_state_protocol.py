"""One state protocol for every rule: two calls with the state passed between them equal one call
(outputs, final state, gradients through the initial state), in every form; and the guarantees every
rule and form shares: NaN causality, extreme gates, C clamped to N, meta tensors, failed calls."""
import math

import pytest
import torch
from conftest import assert_close

import linattn_edu as L
from linattn_edu import RULES

TOL = {torch.float64: 1e-10, torch.float32: 1e-5}
CASES = [(rule, form) for rule in sorted(RULES) for form in RULES[rule].forms]


def inputs(rule, lead=(2, 3), n=37, d=6, d_v=5, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(*lead, n, d, generator=g, dtype=torch.float64).to(dtype) for _ in range(2))
    v = torch.randn(*lead, n, d_v, generator=g, dtype=torch.float64).to(dtype)
    return q, k, v, RULES[rule].gates((*lead, n), d, g, dtype, "cpu") | RULES[rule].state_kwargs


def call(rule, form, q, k, v, kwargs, **extra):
    r = RULES[rule]
    if rule == "linear":
        extra = {"causal": True} | extra
    return r.attention(q, k, v, form=form, chunk_size=8, **kwargs, **extra)


def split(kwargs, a, b, token_axis):
    """The per-token gates of tokens a:b. Every gate has the token axis right after the leading dims
    (q.dim() − 2): (..., N), per key channel (..., N, d), per micro-step (..., N, n_h)."""
    def cut(x):
        if not isinstance(x, torch.Tensor):
            return x
        return x.narrow(token_axis, a, (x.shape[token_axis] if b is None else b) - a)
    return {key: cut(x) for key, x in kwargs.items()}


def gate_names(rule):
    """The rule's per-token gates in the order its state's ``step`` takes them (the order ``gates`` draws them)."""
    g = torch.Generator().manual_seed(0)
    return [name for name, x in RULES[rule].gates((1, 2), 6, g, torch.float64, "cpu").items()
            if isinstance(x, torch.Tensor)]


def flat(state):
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("rule,form", CASES)
def test_two_calls_equal_one_call(rule, form, dtype):
    q, k, v, kw = inputs(rule, dtype=dtype)
    q64, k64, v64, kw64 = inputs(rule)
    full, s_full = call(rule, "recurrent" if form == "quadratic" else form, q64, k64, v64, kw64, return_state=True)
    cut = 21  # not a multiple of the chunk (8)
    axis = q.dim() - 2  # the token axis
    out1, s1 = call(rule, form, q[..., :cut, :], k[..., :cut, :], v[..., :cut, :], split(kw, 0, cut, axis),
                    return_state=True)
    out2, s2 = call(rule, form, q[..., cut:, :], k[..., cut:, :], v[..., cut:, :], split(kw, cut, None, axis),
                    initial_state=s1, return_state=True)
    assert_close(f"{rule}/{form} outputs", full, torch.cat([out1, out2], -2).double(), TOL[dtype])
    for ref, got in zip(flat(s_full), flat(s2)):
        assert_close(f"{rule}/{form} final state", ref, got.double(), TOL[dtype])


@pytest.mark.parametrize("rule,form", CASES)
def test_gradients_flow_through_the_initial_state(rule, form):
    q, k, v, kw = inputs(rule, lead=(2,), n=19)
    _, s0 = call(rule, "recurrent", q[..., :7, :], k[..., :7, :], v[..., :7, :], split(kw, 0, 7, 1), return_state=True)
    s0 = tuple(x.detach().requires_grad_() for x in flat(s0))
    rest = [x[..., 7:, :].detach().requires_grad_() for x in (q, k, v)]
    grads = {}
    for name in ("recurrent", form):
        init = s0[0] if len(s0) == 1 else s0
        out, s = call(rule, name, *rest, split(kw, 7, None, 1), initial_state=init, return_state=True)
        loss = out.square().sum() + sum(x.sin().sum() for x in flat(s))
        grads[name] = torch.autograd.grad(loss, [*s0, *rest])
    for ref, got in zip(grads["recurrent"], grads[form]):
        assert_close(f"{rule}/{form} gradient", ref, got, 1e-10)


@pytest.mark.parametrize("rule,form", CASES)
@pytest.mark.parametrize("where", ["k", "v"])
def test_nan_at_token_t_never_reaches_an_earlier_row(rule, form, where):
    q, k, v, kw = inputs(rule, lead=(2,), n=29)
    t = 13  # inside a chunk of 8: rows 8..12 share its chunk
    bad = {"k": k, "v": v}[where].clone()
    bad[..., t, 0] = math.nan
    args = (q, bad, v) if where == "k" else (q, k, bad)
    out = call(rule, form, *args, kw)
    assert torch.isfinite(out[..., :t, :]).all(), f"{rule}/{form}: a NaN in {where} at t={t} reached an earlier row"
    assert torch.isnan(out[..., t:, :]).any()


@pytest.mark.parametrize("rule,form", [c for c in CASES if "log_decay" in gate_names(c[0])])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_the_most_negative_valid_gate_stays_finite(rule, form, dtype):
    q, k, v, kw = inputs(rule, lead=(2,), n=20, dtype=dtype)
    g = kw["log_decay"].clone()
    at = (lambda t: (..., t, slice(None))) if g.dim() == q.dim() else (lambda t: (..., t))  # per channel or not
    g[at(5)] = -torch.finfo(dtype).max  # a valid gate: finite and <= 0 (decay 0: forget everything before)
    g[at(6)] = -3e38 if dtype == torch.float32 else -1e300
    kw["log_decay"] = g
    ref = call(rule, "recurrent", q.double(), k.double(), v.double(),
               {key: (x.double() if isinstance(x, torch.Tensor) else x) for key, x in kw.items()})
    out = call(rule, form, q, k, v, kw)
    assert torch.isfinite(out).all()
    assert_close(f"{rule}/{form} with an extreme gate", ref, out.double(), TOL[dtype])


@pytest.mark.parametrize("rule", sorted(RULES))
def test_a_huge_chunk_size_is_clamped_to_n(rule):
    q, k, v, kw = inputs(rule, lead=(1,), n=8)
    old = L.set_memory_budget(4 * 1024**2)
    try:
        out = RULES[rule].attention(q, k, v, form="chunkwise", chunk_size=10**6, **kw,
                                    **({"causal": True} if rule == "linear" else {}))
    finally:
        L.set_memory_budget(old)
    assert out.shape == (1, 8, 5)


@pytest.mark.parametrize("rule", sorted(RULES))
def test_meta_tensors_flow_through_every_rule(rule):
    q, k, v, kw = inputs(rule, lead=(2,), n=70)
    meta = [x.to("meta").requires_grad_() for x in (q, k, v)]
    kw = {key: (x.to("meta") if isinstance(x, torch.Tensor) else x) for key, x in kw.items()}
    out = call(rule, "chunkwise", *meta, kw)
    assert out.shape == (2, 70, 5) and out.is_meta
    out.sum().backward()
    assert meta[0].grad.shape == q.shape


@pytest.mark.parametrize("rule", [r for r in sorted(RULES) if r != "linear"])  # linear has no per-token gates
def test_gates_on_another_device_get_a_clear_error(rule):
    q, k, v, kw = inputs(rule, lead=(2,), n=9)
    name = next(iter(k for k in kw if isinstance(kw[k], torch.Tensor)))
    kw[name] = kw[name].to("meta")
    with pytest.raises(ValueError, match=rf"{name} must be on cpu; got meta"):
        call(rule, "chunkwise", q, k, v, kw)


# The state classes ---------------------------------------------------------------------------------
def state_for(rule, d=6, d_v=5, **extra):
    r = RULES[rule]
    kwargs = {"feature_map": r.state_kwargs["feature_map"]} if "feature_map" in r.state_kwargs else {}
    return r.state(d, d_v, **({"batch_shape": (2,), "dtype": torch.float64} | kwargs | extra))


def token_gates(rule, kw, t):
    """Token t's gates (batch_shape (2,)), positional, in the order of the rule's gates."""
    return tuple(kw[name][:, t] for name in gate_names(rule))


def prefix_gates(rule, kw, a, b):
    """Tokens a:b's gates for ``prefill``, by the attention function's keyword names."""
    part = split(kw, a, b, 1)
    return (), {name: part[name] for name in gate_names(rule)}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_state_steps_and_prefills_equal_one_call(rule):
    q, k, v, kw = inputs(rule, lead=(2,), n=23)
    full, s_full = call(rule, "recurrent", q, k, v, kw, return_state=True)
    st = state_for(rule, record=True)
    outs = [st.step(q[:, t], k[:, t], v[:, t], *token_gates(rule, kw, t)) for t in range(5)]
    args, extra = prefix_gates(rule, kw, 5, 17)
    mid = st.prefill(q[:, 5:17], k[:, 5:17], v[:, 5:17], *args, chunk_size=4, **extra)  # prefill after steps
    outs2 = [st.step(q[:, t], k[:, t], v[:, t], *token_gates(rule, kw, t)) for t in range(17, 23)]
    got = torch.cat([torch.stack(outs, 1), mid, torch.stack(outs2, 1)], 1)
    assert_close(f"{rule} state", full, got, 1e-10)
    for ref, have in zip(flat(s_full), st.tensors):
        assert_close(f"{rule} final state", ref, have, 1e-10)
    assert st.t == 23 and len(st.history) == 5 + 1 + 6
    assert all(isinstance(h, tuple) for h in st.history)
    assert st.nbytes() == sum(x.numel() * 8 for x in st.tensors)


@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("bad,exc,pattern", [
    ({"batch_shape": 5}, TypeError, r"batch_shape must be a tuple of ints >= 1"),
    ({"batch_shape": (-1,)}, ValueError, r"batch_shape\[0\] must be an int >= 1; got -1"),
    ({"device": "xyz"}, ValueError, r"device must name a torch device"),
    ({"dtype": "float16"}, TypeError, r"state dtype must be float32 or float64"),
    ({"dtype": torch.int64}, TypeError, r"state dtype must be float32 or float64"),
    ({"record": "yes"}, TypeError, r"record must be True or False"),
    ({"batch_shape": (10**6, 10**4)}, L.MemoryBudgetError, r"the state (S|H_kk)"),
])
def test_every_state_validates_its_construction_alike(rule, bad, exc, pattern):
    args = {"batch_shape": (2,)} | bad
    with pytest.raises(exc, match=pattern):
        state_for(rule, **args)


@pytest.mark.parametrize("rule", sorted(RULES))
def test_state_dtype_may_be_named(rule):
    r = RULES[rule]
    kwargs = {"feature_map": r.state_kwargs["feature_map"]} if "feature_map" in r.state_kwargs else {}
    assert r.state(4, 3, dtype="float64", **kwargs).dtype == torch.float64


@pytest.mark.parametrize("rule", sorted(RULES))
def test_a_failed_step_or_prefill_changes_nothing(rule):
    q, k, v, kw = inputs(rule, lead=(2,), n=7)
    st = state_for(rule, record=True)
    st.step(q[:, 0], k[:, 0], v[:, 0], *token_gates(rule, kw, 0))
    before, hist = st.snapshot(), len(st.history)
    with pytest.raises(ValueError):
        st.step(q[:, 1], k[:, 1, :4], v[:, 1], *token_gates(rule, kw, 1))
    bad_gates = tuple(torch.full_like(g, 5.0) for g in token_gates(rule, kw, 1))
    if bad_gates:
        with pytest.raises(ValueError):
            st.step(q[:, 1], k[:, 1], v[:, 1], *bad_gates)
    args, extra = prefix_gates(rule, kw, 1, 7)
    with pytest.raises(ValueError):
        st.prefill(q[:, 1:], k[:, 1:], v[:, 1:, :3], *args, **extra)
    assert st.t == 1 and len(st.history) == hist
    for a, b in zip(before, st.tensors):
        assert torch.equal(a, b)


@pytest.mark.parametrize("rule", sorted(RULES))
def test_initial_state_is_checked(rule):
    q, k, v, kw = inputs(rule, lead=(2,), n=7)
    _, s = call(rule, "chunkwise", q, k, v, kw, return_state=True)
    wrong = tuple(x[..., :-1] for x in flat(s))
    with pytest.raises((ValueError, TypeError), match="initial_state"):
        call(rule, "chunkwise", q, k, v, kw, initial_state=wrong[0] if len(wrong) == 1 else wrong)
    with pytest.raises(TypeError, match="initial_state"):
        call(rule, "chunkwise", q, k, v, kw, initial_state="S")


def test_retnet_log_decay_needs_a_floating_dtype():
    with pytest.raises(ValueError, match=r"dtype must be one of .*got torch.int64"):
        L.retnet_log_decay(4, dtype=torch.int64)  # an integer dtype would round every log γ to 0: no decay
    assert L.retnet_log_decay(4, dtype="float32").dtype == torch.float32
    assert (L.retnet_log_decay(4) < 0).all()
