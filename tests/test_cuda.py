"""CUDA paths (marker ``cuda``: skipped where torch.cuda.is_available() is False).

These run on a GPU machine only; CI here has none. They check every form, and the fast chunkwise
form's output, final state and gradients, against a float64 CPU reference computed from the same
(rounded) inputs, in float32 and bfloat16.
"""
import pytest
import torch
from conftest import assert_close, rand

from linattn_edu import _blocks, chunked, linear_attention, sliding_window_attention, softmax_attention
from linattn_edu.feature_maps import favor_plus
from linattn_edu.feature_maps import featurize
from linattn_edu.linear import chunkwise_reference

pytestmark = pytest.mark.cuda

TOL = {torch.float32: 1e-5, torch.bfloat16: 1e-2}


def on_device(xs, device, dtype):
    """The inputs on the GPU in ``dtype``, and the same (rounded) values in float64 on the CPU."""
    dev = [x.to(device, dtype) for x in xs]
    return dev, [x.double().cpu() for x in dev]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("form", ["quadratic", "recurrent", "prefix", "chunkwise"])
def test_forms_agree_on_cuda(device, dtype, form):
    (q, k, v), (q64, k64, v64) = on_device((rand(2, 4, 129, 32, seed=1), rand(2, 4, 129, 32, seed=2),
                                            rand(2, 4, 129, 16, seed=3)), device, dtype)
    ref = linear_attention(q64, k64, v64, "elu+1", causal=True, form="quadratic")
    out = linear_attention(q, k, v, "elu+1", causal=True, form=form, chunk_size=32)
    assert out.device.type == "cuda" and out.dtype == dtype
    assert_close(form, ref, out, TOL[dtype])


@pytest.mark.parametrize("carry", ["cumsum", "loop"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("n,c", [(1, 64), (70, 16), (200, 64)])
def test_fast_chunkwise_on_cuda_equals_reference(device, carry, dtype, n, c, monkeypatch):
    """Output, final S and z, and d(q, k, v) of a loss reading all three, vs chunkwise_reference in float64."""
    monkeypatch.setattr(_blocks, "_carry", [carry])
    (q, k, v), ref_inputs = on_device((rand(2, 3, n, 16, seed=1), rand(2, 3, n, 16, seed=2),
                                       rand(2, 3, n, 8, seed=3)), device, dtype)
    results = []
    for xs, run in (([x.requires_grad_() for x in ref_inputs], lambda fq, fk, x: chunkwise_reference(fq, fk, x, chunk_size=c)),
                    ([x.requires_grad_() for x in (q, k, v)], lambda fq, fk, x: chunked.chunkwise_form(fq, fk, x, chunk_size=c))):
        fq, fk = featurize(xs[0], xs[1], "elu+1")  # float32 features for bfloat16 inputs
        out, (s, z) = run(fq, fk, xs[2].to(fq.dtype))
        weights = [rand(*t.shape, seed=10 + i).to(t.device, t.dtype) for i, t in enumerate((out, s, z))]
        loss = sum((t * w).sum() for t, w in zip((out, s, z), weights))
        results.append(((out, s, z), torch.autograd.grad(loss, xs)))
    (ref, ref_grads), (got, got_grads) = results
    for name, r, g in zip(("out", "S", "z"), ref, got):
        assert g.device.type == "cuda", name
        assert_close(f"{carry} {dtype} {name}", r, g, TOL[dtype])
    scale = max(float(g.abs().max()) for g in ref_grads)  # dq is ~0 at N = 1: one scale for all three
    for name, r, g in zip(("dq", "dk", "dv"), ref_grads, got_grads):
        assert g.shape == r.shape and g.device.type == "cuda" and torch.isfinite(g).all(), name
        err = float((g.double().cpu() - r).abs().max()) / scale
        assert err <= TOL[dtype], f"{carry} {dtype} {name}: rel err {err:.2e} > {TOL[dtype]:.0e}"


def test_chunkwise_gradients_on_cuda(device):
    q, k, v = (rand(2, 3, 70, 16, seed=s) for s in (1, 2, 3))
    ref = [x.clone().requires_grad_() for x in (q, k, v)]
    linear_attention(*ref, "elu+1", causal=True, form="quadratic").square().sum().backward()
    got = [x.to(device, torch.float32).requires_grad_() for x in (q, k, v)]
    linear_attention(*got, "elu+1", causal=True, chunk_size=16).square().sum().backward()
    for name, g, r in zip("qkv", got, ref):
        assert_close(f"d{name}", r.grad, g.grad, 1e-4)


def test_softmax_window_and_favor_on_cuda(device):
    q, k, v = (rand(1, 2, 100, 16, seed=s) for s in (1, 2, 3))
    qd, kd, vd = (x.to(device, torch.float32) for x in (q, k, v))
    assert_close("softmax", softmax_attention(q, k, v, causal=True), softmax_attention(qd, kd, vd, causal=True), 1e-5)
    assert_close("window", sliding_window_attention(q, k, v, window=8, causal=True),
                 sliding_window_attention(qd, kd, vd, window=8, causal=True), 1e-5)
    fm = favor_plus(16, 64)
    assert_close("favor+", linear_attention(q, k, v, fm, causal=True), linear_attention(qd, kd, vd, fm, causal=True), 1e-4)


@pytest.mark.parametrize("guard", ["when v may hold NaN", "always"])
def test_nan_in_v_reaches_only_later_rows_on_cuda(device, guard, monkeypatch):
    """A NaN value at token 20 (mid-chunk) leaves rows < 20 equal to the clean run, eager on the GPU."""
    if guard == "always":
        monkeypatch.setattr(_blocks, "surely_finite", lambda v: False)
    q, k, v = (rand(2, 3, 70, 8, seed=s).to(device) for s in (1, 2, 3))
    clean = linear_attention(q, k, v, "elu+1", causal=True, form="chunkwise", chunk_size=16)
    v[..., 20, :] = float("nan")
    dirty = linear_attention(q, k, v, "elu+1", causal=True, form="chunkwise", chunk_size=16)
    assert torch.isfinite(dirty[..., :20, :]).all() and dirty[..., 20:, :].isnan().all()
    assert_close("rows before the NaN", clean[..., :20, :], dirty[..., :20, :], 1e-5)
