"""Forgetting attention (FoX) and the sigmoid output gate: reductions, an independent loop, gradients,
NaN causality, extreme gates, errors."""
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_close, rand

from linattn_edu import softmax_attention
from linattn_edu.forgetting import forgetting_attention, forgetting_bias, output_gate


def _inputs(lead=(2, 3), n=23, d=5, d_v=4, seed=0, strength=1.0):
    q, k, v = rand(*lead, n, d, seed=seed), rand(*lead, n, d, seed=seed + 1), rand(*lead, n, d_v, seed=seed + 2)
    log_f = F.logsigmoid(rand(*lead, n, seed=seed + 3) + 2.0) * strength  # (..., N) <= 0
    return q, k, v, log_f


def _loop_reference(q, k, v, log_f, scale):
    """Query by query: weight of key j ∝ exp(q_iᵀk_j·scale) · Π_{s=j+1..i} f_s, renormalised."""
    outs = []
    for i in range(q.shape[-2]):
        keep = torch.stack([log_f[..., j + 1:i + 1].sum(-1) for j in range(i + 1)], -1)  # (..., i+1)
        logits = (q[..., i:i + 1, :] * k[..., :i + 1, :]).sum(-1) * scale + keep  # (..., i+1)
        w = torch.softmax(logits, dim=-1)  # (..., i+1)
        outs.append((w.unsqueeze(-1) * v[..., :i + 1, :]).sum(-2))  # (..., d_v)
    return torch.stack(outs, -2)


@pytest.mark.parametrize("lead, n", [((2, 3), 23), ((), 1), ((2, 1, 3), 6)])
def test_matches_a_loop_over_queries(lead, n):
    q, k, v, log_f = _inputs(lead=lead, n=n)
    out = forgetting_attention(q, k, v, log_f)
    assert out.shape == (*lead, n, 4)
    assert_close("out", _loop_reference(q, k, v, log_f, 5 ** -0.5), out, 1e-12)


def test_matches_flas_cumsum_difference_form_for_moderate_gates():
    """FLA's naive form: bias = cumsum(g)_i − cumsum(g)_j (fine while the cumsum stays small)."""
    q, k, v, log_f = _inputs()
    cum = log_f.cumsum(-1)  # (..., N)
    bias = cum[..., :, None] - cum[..., None, :]  # (..., N, N)
    mask = torch.ones(23, 23, dtype=torch.bool).tril()
    logits = (q @ k.transpose(-2, -1) * 0.3 + bias).masked_fill(~mask, -math.inf)
    assert_close("out", torch.softmax(logits, -1) @ v, forgetting_attention(q, k, v, log_f, scale=0.3), 1e-12)


def test_zero_forget_is_causal_softmax_attention():
    q, k, v, log_f = _inputs()
    zero = torch.zeros_like(log_f)
    assert_close("out", softmax_attention(q, k, v, causal=True), forgetting_attention(q, k, v, zero), 1e-13)
    assert_close("out, scale", softmax_attention(q, k, v, causal=True, scale=0.7),
                 forgetting_attention(q, k, v, zero, scale=0.7), 1e-13)


def test_bias_is_a_segment_sum():
    log_f = torch.tensor([-0.5, -1.0, -2.0], dtype=torch.float64)
    bias = forgetting_bias(log_f)
    expect = torch.tensor([[0.0, -math.inf, -math.inf], [-1.0, 0.0, -math.inf], [-3.0, -2.0, 0.0]],
                          dtype=torch.float64)
    assert torch.equal(bias, expect)


def test_float32_matches_float64_and_gradients_pass_gradcheck():
    q, k, v, log_f = _inputs(n=40)
    ref = forgetting_attention(q, k, v, log_f)
    assert_close("float32", ref, forgetting_attention(q.float(), k.float(), v.float(), log_f.float()), 1e-5)
    small = [x.detach().clone().requires_grad_(True) for x in _inputs(lead=(), n=6, d=3, d_v=2)]
    assert torch.autograd.gradcheck(lambda *xs: forgetting_attention(*xs), small, fast_mode=True)


def test_float32_gradients_match_float64():
    base = _inputs(lead=(2,), n=17)
    grads = {}
    for dt in (torch.float64, torch.float32):
        xs = [x.detach().to(dt).clone().requires_grad_(True) for x in base]
        forgetting_attention(*xs).sin().sum().backward()
        grads[dt] = [x.grad for x in xs]
    for name, ref, got in zip(["q", "k", "v", "log_forget"], grads[torch.float64], grads[torch.float32]):
        assert_close(f"d{name}", ref, got, 1e-5)


def test_long_sequences_keep_precision():
    """Σ log f reaches about −2e4 over N = 2000 tokens. The segment sum keeps each local bias exact in
    float32 (error ~1e-7 against float64); the difference of two float32 cumsums (FLA's naive form, which
    runs in float32) loses digits of the ±2e4 totals: ~2e-4 here."""
    n = 2000
    q, k, v = rand(1, n, 4, seed=1), rand(1, n, 4, seed=2), rand(1, n, 3, seed=3)
    log_f = -20 * torch.rand(1, n, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    ref = forgetting_attention(q, k, v, log_f)
    ours = forgetting_attention(q.float(), k.float(), v.float(), log_f.float())
    assert_close("float32 segment sum", ref, ours, 1e-6)
    cum = log_f.float().cumsum(-1)  # (1, N): down to about −2e4
    logits = (q.float() @ k.float().transpose(-2, -1) * 0.5 + cum[..., :, None] - cum[..., None, :])
    logits = logits.masked_fill(~torch.ones(n, n, dtype=torch.bool).tril(), -math.inf)  # (1, N, N)
    naive = torch.softmax(logits, -1) @ v.float()
    assert float((naive.double() - ref).abs().max() / ref.abs().max()) > 1e-5  # the trap is real


@pytest.mark.parametrize("where", ["q", "k", "v"])
def test_nan_at_token_t_never_reaches_earlier_rows(where):
    n, t = 13, 7
    q, k, v, log_f = _inputs(n=n)
    clean = forgetting_attention(q, k, v, log_f)
    poisoned = {"q": q.clone(), "k": k.clone(), "v": v.clone()}
    poisoned[where][..., t, :] = math.nan
    out = forgetting_attention(poisoned["q"], poisoned["k"], poisoned["v"], log_f)
    assert_close(f"NaN in {where}[{t}]: rows < t", clean[..., :t, :], out[..., :t, :], 1e-12)
    assert torch.isnan(out[..., t, :]).any()


def test_extreme_valid_gates_stay_finite():
    """log f = −1e30 forgets every earlier key: each row attends to itself only (out = v)."""
    q, k, v, _ = _inputs()
    hard = torch.full((2, 3, 23), -1e30)
    assert_close("forget all", v.float(), forgetting_attention(q.float(), k.float(), v.float(), hard), 1e-6)
    big = forgetting_attention(q * 1e3, k * 1e3, v, torch.zeros(2, 3, 23, dtype=torch.float64))
    assert torch.isfinite(big).all()


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_half_inputs_are_computed_in_float32(half):
    q, k, v, log_f = (x.to(half) for x in _inputs())
    out = forgetting_attention(q, k, v, log_f)
    ref = forgetting_attention(q.float(), k.float(), v.float(), log_f.float())
    assert out.dtype == half
    assert_close("out", ref.to(half).float(), out.float(), 1e-2)


def test_output_gate_is_a_sigmoid_per_channel_or_per_head():
    out, gate = rand(2, 5, 4, seed=1), rand(2, 5, 4, seed=2)
    assert_close("per channel", out / (1 + torch.exp(-gate)), output_gate(out, gate), 1e-15)
    head = gate[..., :1]
    assert_close("per head", out * torch.sigmoid(head), output_gate(out, head), 1e-15)
    assert output_gate(out.half(), gate.half()).dtype == torch.float16
    closed = output_gate(out, torch.full((2, 5, 4), -1e4, dtype=torch.float64))
    assert torch.equal(closed, torch.zeros_like(out))


Q, K, V, LF = rand(2, 6, 4, seed=1), rand(2, 6, 4, seed=2), rand(2, 6, 3, seed=3), torch.zeros(2, 6, dtype=torch.float64)
BAD = [
    ((Q, K, V, torch.zeros(2, 5, dtype=torch.float64)), {}, ValueError, r"log_forget must have shape \(2, 6\)"),
    ((Q, K, V, torch.full((2, 6), 0.1, dtype=torch.float64)), {}, ValueError,
     r"log_forget must be finite and <= 0 .*got an entry 0.1"),
    ((Q, K, V, torch.full((2, 6), -math.inf, dtype=torch.float64)), {}, ValueError, r"log_forget must be finite"),
    ((Q, K, V, [0.0] * 6), {}, TypeError, r"log_forget must be a torch.Tensor"),
    ((Q, K, V, LF), {"scale": math.nan}, ValueError, r"scale \(or None for 1/sqrt\(d\)\) must be a finite number"),
    ((Q, K, V, LF), {"scale": "1"}, TypeError, r"scale .*must be a finite number; got str"),
    ((Q, K[:, :5], V[:, :5], LF), {}, ValueError, r"causal attention needs as many queries as keys"),
    ((Q, K[..., :3], V, LF), {}, ValueError, r"k must be \(\.\.\., M, d\) with d == q.shape\[-1\] == 4"),
]


@pytest.mark.parametrize("args, kwargs, exc, match", BAD)
def test_bad_arguments(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        forgetting_attention(*args, **kwargs)


def test_output_gate_bad_arguments():
    out = rand(2, 5, 4, seed=1)
    with pytest.raises(ValueError, match=r"gate_logits must have shape \(2, 5, 4\) \(out's\) or \(2, 5, 1\)"):
        output_gate(out, rand(2, 5, 3, seed=2))
    with pytest.raises(TypeError, match=r"gate_logits must be a torch.Tensor"):
        output_gate(out, 1.0)
