"""Softmax attention == torch SDPA == Nadaraya–Watson with the exp kernel; linear == NW with φ(q)ᵀφ(k)."""
import doctest

import pytest
import torch
import torch.nn.functional as F

import linattn_edu.linear
import linattn_edu.softmax
from linattn_edu import kernel_smoother, linear_attention, softmax_attention
from linattn_edu.feature_maps import favor_plus
from linattn_edu.kernel import boxcar_kernel, exp_kernel, feature_map_kernel, gaussian_kernel


def rand(*shape, dtype=torch.float32, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("shape", [(1, 5, 8), (2, 3, 64, 16), (2, 4, 129, 32)])
def test_softmax_equals_sdpa(causal, shape):
    q, k, v = rand(*shape, seed=1), rand(*shape, seed=2), rand(*shape[:-1], 7, seed=3)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    assert rel_err(softmax_attention(q, k, v, causal=causal), ref) <= 1e-5


def test_softmax_masks_match_sdpa():
    q, k, v = rand(2, 6, 8, seed=1), rand(2, 9, 8, seed=2), rand(2, 9, 4, seed=3)
    keep = rand(2, 6, 9, seed=4) > -0.5
    keep[..., 0] = True  # no fully-masked row here (older SDPA versions give NaN there)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
    assert rel_err(softmax_attention(q, k, v, mask=keep), ref) <= 1e-5
    additive = torch.where(keep, 0.0, float("-inf")) + rand(2, 6, 9, seed=5)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=additive)
    assert rel_err(softmax_attention(q, k, v, mask=additive), ref) <= 1e-5


def test_fully_masked_row_gives_zeros_not_nan():
    q, k, v = rand(4, 3), rand(4, 3), rand(4, 2)
    keep = torch.ones(4, 4, dtype=torch.bool)
    keep[2] = False  # query 2 may attend to nothing
    out, w = softmax_attention(q, k, v, mask=keep, return_weights=True)
    assert torch.isfinite(out).all() and torch.isfinite(w).all()
    assert torch.equal(out[2], torch.zeros(2)) and torch.equal(w[2], torch.zeros(4))
    ref = softmax_attention(q[[0, 1, 3]], k, v)
    assert torch.allclose(out[[0, 1, 3]], ref)


def test_weights_are_row_stochastic_and_causal():
    q, k, v = rand(2, 10, 4), rand(2, 10, 4), rand(2, 10, 3)
    out, w = softmax_attention(q, k, v, causal=True, return_weights=True)
    assert torch.allclose(w.sum(-1), torch.ones(2, 10)) and torch.count_nonzero(w.triu(1)) == 0
    assert torch.allclose(w @ v, out, atol=1e-6)


def test_max_subtraction_prevents_overflow():
    """Scores of ~1000: exp overflows float32 without the max subtraction, not with it."""
    q = torch.full((3, 4), 40.0)
    k = torch.full((3, 4), 40.0)
    v = rand(3, 2)
    assert torch.isinf(torch.exp(q @ k.T / 2)).all()
    out = softmax_attention(q, k, v)
    assert torch.allclose(out, v.mean(0).expand(3, 2), atol=1e-6)


def test_docstring_examples_run():
    for module in (linattn_edu.softmax, linattn_edu.linear):
        failed, attempted = doctest.testmod(module, extraglobs={"torch": torch}).failed, 1
        assert failed == 0 and attempted


@pytest.mark.parametrize("causal", [False, True])
def test_nadaraya_watson_with_exp_kernel_is_softmax_attention(causal):
    q, k, v = rand(2, 12, 8, dtype=torch.float64, seed=1), rand(2, 12, 8, dtype=torch.float64, seed=2), \
        rand(2, 12, 3, dtype=torch.float64, seed=3)
    a = kernel_smoother(q, k, v, exp_kernel(), causal=causal)
    b = softmax_attention(q, k, v, causal=causal)
    assert rel_err(a, b) < 1e-12


@pytest.mark.parametrize("fmap", ["elu+1", "relu", "taylor", "favor+"])
@pytest.mark.parametrize("causal", [False, True])
def test_nadaraya_watson_with_factorised_kernel_is_linear_attention(fmap, causal):
    q, k, v = (rand(2, 11, 6, dtype=torch.float64, seed=s) for s in (1, 2, 3))
    fmap = favor_plus(6, m=64) if fmap == "favor+" else fmap
    a = kernel_smoother(q, k, v, feature_map_kernel(fmap), causal=causal)
    b = linear_attention(q, k, v, fmap, causal=causal, eps=0.0)
    assert rel_err(a, b) < 1e-12


def test_gaussian_and_boxcar_smoothers_on_1d_data():
    x = torch.linspace(0, 1, 50, dtype=torch.float64).unsqueeze(-1)  # (50, 1) training inputs
    y = torch.sin(6 * x)  # (50, 1)
    xq = torch.tensor([[0.5], [5.0]], dtype=torch.float64)
    fit, w = kernel_smoother(xq, x, y, gaussian_kernel(0.05), return_weights=True)
    assert abs(fit[0, 0].item() - torch.sin(torch.tensor(3.0)).item()) < 0.05
    assert torch.allclose(w.sum(-1), torch.ones(2, dtype=torch.float64))
    assert abs(fit[1, 0].item() - y[-1, 0].item()) < 1e-12  # far query: the nearest point, not 0/0
    box = kernel_smoother(xq, x, y, boxcar_kernel(0.1))
    assert torch.equal(box[1], torch.zeros(1, dtype=torch.float64))  # nobody within 0.1 of 5.0
    assert abs(box[0, 0].item() - y[(x - 0.5).abs().squeeze() <= 0.1].mean().item()) < 1e-12
