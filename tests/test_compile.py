"""torch.compile(linear_attention, fullgraph=True) works: forward, the hand-written backward, NaN containment.

Slow (each compile takes ~30 s on a small CPU): ``pytest -m "not slow"`` leaves it out.
"""
import pytest
import torch
from conftest import assert_close, rand

from linattn_edu import _blocks, linear_attention

pytestmark = pytest.mark.slow


def causal_chunkwise(q, k, v):
    return linear_attention(q, k, v, "elu+1", causal=True, form="chunkwise", chunk_size=16)


@pytest.mark.parametrize("carry", ["cumsum", "loop"])
def test_compiled_chunkwise_matches_eager(carry, monkeypatch):
    monkeypatch.setattr(_blocks, "_carry", [carry])
    torch._dynamo.reset()
    compiled = torch.compile(causal_chunkwise, fullgraph=True)
    q, k, v = (rand(2, 3, 70, 8, seed=s, dtype=torch.float32).requires_grad_() for s in (1, 2, 3))  # ragged: 70 = 4·16 + 6
    out, ref = compiled(q, k, v), causal_chunkwise(q, k, v)
    assert_close("compiled forward", ref, out, 1e-5)
    weights = rand(*out.shape, seed=4, dtype=out.dtype)
    grads = torch.autograd.grad((out * weights).sum(), (q, k, v))
    ref_grads = torch.autograd.grad((ref * weights).sum(), (q, k, v))
    for name, g, r in zip("qkv", grads, ref_grads):
        assert_close(f"compiled d{name}", r, g, 1e-5)
    # a NaN value at token 20 (mid-chunk) must not reach rows < 20 in the compiled graph either
    v_nan = v.detach().clone()
    v_nan[..., 20, :] = float("nan")
    out_nan = compiled(q.detach(), k.detach(), v_nan)
    assert torch.isfinite(out_nan[..., :20, :]).all()
    assert out_nan[..., 20:, :].isnan().all()
    assert_close("compiled rows before the NaN", ref[..., :20, :], out_nan[..., :20, :], 1e-5)
