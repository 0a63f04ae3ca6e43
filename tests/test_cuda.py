"""CUDA paths (marker ``cuda``: skipped where torch.cuda.is_available() is False).

These run on a GPU machine only; CI here has none. They check that every form
agrees with the float64 CPU reference on the GPU, in float32 and bfloat16.
"""
import pytest
import torch

from linattn_edu import linear_attention, sliding_window_attention, softmax_attention
from linattn_edu.feature_maps import favor_plus

pytestmark = pytest.mark.cuda


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def rel_err(a, b):
    return ((a.double().cpu() - b).norm() / b.norm()).item()


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize("form", ["quadratic", "recurrent", "prefix", "chunkwise"])
def test_forms_agree_on_cuda(device, dtype, tol, form):
    q, k, v = rand(2, 4, 129, 32, seed=1), rand(2, 4, 129, 32, seed=2), rand(2, 4, 129, 16, seed=3)
    ref = linear_attention(q, k, v, "elu+1", causal=True, form="quadratic")
    out = linear_attention(*(x.to(device, dtype) for x in (q, k, v)), "elu+1", causal=True, form=form,
                           chunk_size=32)
    assert out.device.type == "cuda" and out.dtype == dtype
    assert rel_err(out, ref) < tol


def test_chunkwise_gradients_on_cuda(device):
    q, k, v = (rand(2, 3, 70, 16, seed=s) for s in (1, 2, 3))
    ref = [x.clone().requires_grad_() for x in (q, k, v)]
    linear_attention(*ref, "elu+1", causal=True, form="quadratic").square().sum().backward()
    got = [x.to(device, torch.float32).requires_grad_() for x in (q, k, v)]
    linear_attention(*got, "elu+1", causal=True, chunk_size=16).square().sum().backward()
    for g, r in zip(got, ref):
        assert rel_err(g.grad, r.grad) < 1e-4


def test_softmax_window_and_favor_on_cuda(device):
    q, k, v = (rand(1, 2, 100, 16, seed=s) for s in (1, 2, 3))
    qd, kd, vd = (x.to(device, torch.float32) for x in (q, k, v))
    assert rel_err(softmax_attention(qd, kd, vd, causal=True), softmax_attention(q, k, v, causal=True)) < 1e-5
    assert rel_err(sliding_window_attention(qd, kd, vd, window=8, causal=True),
                   sliding_window_attention(q, k, v, window=8, causal=True)) < 1e-5
    fm = favor_plus(16, 64)
    assert rel_err(linear_attention(qd, kd, vd, fm, causal=True), linear_attention(q, k, v, fm, causal=True)) < 1e-4
