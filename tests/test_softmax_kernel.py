"""Softmax attention == torch SDPA == Nadaraya–Watson with the exp kernel; linear == NW with φ(q)ᵀφ(k)."""
import doctest

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_close, rand

import linattn_edu.linear
import linattn_edu.softmax
from linattn_edu import kernel_smoother, linear_attention, softmax_attention
from linattn_edu.feature_maps import favor_plus
from linattn_edu.kernel import boxcar_kernel, exp_kernel, feature_map_kernel, gaussian_kernel


F32 = torch.float32


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("shape", [(1, 5, 8), (2, 3, 64, 16), (2, 4, 129, 32)])
def test_softmax_equals_sdpa(causal, shape):
    q, k, v = rand(*shape, seed=1, dtype=F32), rand(*shape, seed=2, dtype=F32), rand(*shape[:-1], 7, seed=3, dtype=F32)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    assert_close("softmax vs SDPA", ref, softmax_attention(q, k, v, causal=causal), 1e-5)


def test_softmax_masks_match_sdpa():
    q, k, v = rand(2, 6, 8, seed=1, dtype=F32), rand(2, 9, 8, seed=2, dtype=F32), rand(2, 9, 4, seed=3, dtype=F32)
    keep = rand(2, 6, 9, seed=4) > -0.5
    keep[..., 0] = True  # no fully-masked row here (older SDPA versions give NaN there)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
    assert_close("bool mask", ref, softmax_attention(q, k, v, mask=keep), 1e-5)
    additive = torch.where(keep, 0.0, float("-inf")) + rand(2, 6, 9, seed=5, dtype=F32)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=additive)
    assert_close("additive mask", ref, softmax_attention(q, k, v, mask=additive), 1e-5)


def test_fully_masked_row_gives_zeros_not_nan():
    q, k, v = rand(4, 3, dtype=F32), rand(4, 3, seed=1, dtype=F32), rand(4, 2, seed=2, dtype=F32)
    keep = torch.ones(4, 4, dtype=torch.bool)
    keep[2] = False  # query 2 may attend to nothing
    out, w = softmax_attention(q, k, v, mask=keep, return_weights=True)
    assert torch.isfinite(out).all() and torch.isfinite(w).all()
    # a documented exact zero (0 / tiny), not a computed float: compared as such
    assert torch.count_nonzero(out[2]) == 0 and torch.count_nonzero(w[2]) == 0
    ref = softmax_attention(q[[0, 1, 3]], k, v)
    assert_close("other rows", ref, out[[0, 1, 3]], 1e-6)


def test_weights_are_row_stochastic_and_causal():
    q, k, v = rand(2, 10, 4, dtype=F32), rand(2, 10, 4, seed=1, dtype=F32), rand(2, 10, 3, seed=2, dtype=F32)
    out, w = softmax_attention(q, k, v, causal=True, return_weights=True)
    assert_close("row sums", torch.ones(2, 10), w.sum(-1), 1e-6)
    assert torch.count_nonzero(w.triu(1)) == 0
    assert_close("weights @ v", out, w @ v, 1e-6)


def test_max_subtraction_prevents_overflow():
    """Scores of ~1000: exp overflows float32 without the max subtraction, not with it."""
    q = torch.full((3, 4), 40.0)
    k = torch.full((3, 4), 40.0)
    v = rand(3, 2, dtype=F32)
    assert torch.isinf(torch.exp(q @ k.T / 2)).all()
    out = softmax_attention(q, k, v)
    assert_close("uniform weights", v.mean(0).expand(3, 2), out, 1e-6)


def test_docstring_examples_run():
    for module in (linattn_edu.softmax, linattn_edu.linear):
        failed, attempted = doctest.testmod(module, extraglobs={"torch": torch}).failed, 1
        assert failed == 0 and attempted


@pytest.mark.parametrize("causal", [False, True])
def test_nadaraya_watson_with_exp_kernel_is_softmax_attention(causal):
    q, k, v = rand(2, 12, 8, seed=1), rand(2, 12, 8, seed=2), rand(2, 12, 3, seed=3)
    a = kernel_smoother(q, k, v, exp_kernel(), causal=causal)
    b = softmax_attention(q, k, v, causal=causal)
    assert_close("NW exp kernel vs softmax", b, a, 1e-12)


@pytest.mark.parametrize("kernel", ["exp", "gaussian"])
def test_a_future_key_never_changes_a_past_row(kernel):
    """The row stabiliser looks only at the keys a row may see: a future key leaves rows < 8 as they were.

    exp: key 8 scores ~1e3·‖q‖² with every past query; gaussian (h = 0.05): key 8 sits exactly on query 3,
    whose past keys are all ~e^-1000 away. A max/min over all keys made those rows 0 (every visible weight
    underflowed)."""
    q, k, v = rand(2, 12, 4, seed=1), rand(2, 12, 4, seed=2), rand(2, 12, 3, seed=3)
    far = k.clone()
    far[:, 8] = q[:, :8].sum(1) * 1e3 if kernel == "exp" else q[:, 3]
    make = exp_kernel if kernel == "exp" else (lambda: gaussian_kernel(0.05))
    before, after = (kernel_smoother(q, keys, v, make(), causal=True) for keys in (k, far))
    assert_close("rows before the changed key", before[:, :8], after[:, :8], 1e-12)
    assert after[:, :8].abs().amax(-1).min() > 0, "a past row was emptied by a future key"
    if kernel == "exp":  # the same as softmax attention, causal or not (unmasked, the huge key takes rows over)
        assert_close("softmax, causal", softmax_attention(q, far, v, causal=True), after, 1e-12)
        assert_close("softmax, not causal", softmax_attention(q, far, v), kernel_smoother(q, far, v, make()), 1e-12)


@pytest.mark.parametrize("fmap", ["elu+1", "relu", "taylor", "favor+"])
@pytest.mark.parametrize("causal", [False, True])
def test_nadaraya_watson_with_factorised_kernel_is_linear_attention(fmap, causal):
    q, k, v = (rand(2, 11, 6, seed=s) for s in (1, 2, 3))
    fmap = favor_plus(6, m=64) if fmap == "favor+" else fmap
    a = kernel_smoother(q, k, v, feature_map_kernel(fmap), causal=causal)
    b = linear_attention(q, k, v, fmap, causal=causal, eps=0.0)
    assert_close("NW factorised kernel vs linear attention", b, a, 1e-12)


def test_gaussian_and_boxcar_smoothers_on_1d_data():
    x = torch.linspace(0, 1, 50, dtype=torch.float64).unsqueeze(-1)  # (50, 1) training inputs
    y = torch.sin(6 * x)  # (50, 1)
    xq = torch.tensor([[0.5], [5.0]], dtype=torch.float64)
    fit, w = kernel_smoother(xq, x, y, gaussian_kernel(0.05), return_weights=True)
    assert abs(fit[0, 0].item() - torch.sin(torch.tensor(3.0)).item()) < 0.05
    assert_close("row sums", torch.ones(2, dtype=torch.float64), w.sum(-1), 1e-12)
    assert abs(fit[1, 0].item() - y[-1, 0].item()) < 1e-12  # far query: the nearest point, not 0/0
    box = kernel_smoother(xq, x, y, boxcar_kernel(0.1))
    assert torch.count_nonzero(box[1]) == 0  # nobody within 0.1 of 5.0: the documented exact 0
    assert abs(box[0, 0].item() - y[(x - 0.5).abs().squeeze() <= 0.1].mean().item()) < 1e-12


def test_weighted_sum_keeps_zero_weights_away_from_nan_values():
    """weights @ values, except that a weight of exactly 0 never multiplies a NaN/inf value."""
    from linattn_edu._checks import weighted_sum

    w = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5]], dtype=torch.float64)  # (3, 3)
    v = rand(3, 2, seed=4)
    assert_close("all finite: a plain matmul", w @ v, weighted_sum(w, v), 1e-15)
    v_bad = v.clone()
    v_bad[2, 0] = float("nan")  # token 2, channel 0
    v_bad[1, 1] = float("inf")  # token 1, channel 1
    out = weighted_sum(w, v_bad)  # (3, 2)
    assert_close("row 0 sees no bad value", (w @ v)[0], out[0], 1e-15)
    assert_close("row 1, channel 0", (w @ v)[1, 0:1], out[1, 0:1], 1e-15)
    assert torch.isinf(out[1, 1]) and torch.isnan(out[2, 0]) and torch.isinf(out[2, 1])  # honest where used
    assert torch.isnan((w @ v_bad)[0, 0])  # what the plain matmul does: 0·NaN = NaN
