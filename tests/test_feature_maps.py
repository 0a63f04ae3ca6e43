"""Feature maps: the kernels they imply, FAVOR+ unbiasedness and 1/√m error, positivity, stabilisers."""
import math

import pytest
import torch
from conftest import assert_close, rand, rel_err

from linattn_edu import linear_attention, softmax_attention
from linattn_edu.feature_maps import (FEATURE_MAPS, _softmax_scaled, elu_plus_one, favor_plus, get_feature_map,
                                      identity, random_projection, relu, taylor, trig_random_features)


@pytest.mark.parametrize("name", FEATURE_MAPS)
def test_every_map_reports_its_output_dim_and_sign(name):
    d = 6
    phi = get_feature_map(name, d, **({"m": 10} if name in ("favor+", "trig") else {}))
    out = phi(rand(3, 4, d, seed=1) * 3)
    assert out.shape == (3, 4, phi.d_out(d))
    if phi.nonnegative:
        assert (out >= 0).all()
    assert isinstance(phi.name, str) and phi.name == name


def test_declared_flags():
    assert elu_plus_one.nonnegative and elu_plus_one.positive_kernel
    assert relu.nonnegative and relu.positive_kernel
    assert not identity.nonnegative and not identity.positive_kernel
    assert not taylor.nonnegative and taylor.positive_kernel  # 1 + s + s²/2 >= 1/2
    assert favor_plus(4).nonnegative and not trig_random_features(4).positive_kernel


def test_taylor_is_exact_second_order_expansion():
    q, k = rand(5, 16, seed=1), rand(7, 16, seed=2)
    s = q @ k.T / math.sqrt(16)  # (5, 7)
    assert_close("taylor kernel", 1 + s + s * s / 2, taylor(q) @ taylor(k).T, 1e-12)
    assert taylor.d_out(16) == 1 + 16 + 256


def test_random_projection_orthogonal_blocks_and_seeding():
    w = random_projection(8, 20, orthogonal=True, seed=5)
    assert w.shape == (20, 8)
    block = w[:8] / w[:8].norm(dim=-1, keepdim=True)
    assert_close("orthogonal block", torch.eye(8, dtype=torch.float64), block @ block.T, 1e-12)
    # same seed, same code path, same shapes: reproducible to rounding (not asked bit-for-bit)
    assert_close("same seed", w, random_projection(8, 20, orthogonal=True, seed=5), 1e-15)
    assert rel_err(w, random_projection(8, 20, orthogonal=True, seed=6)) > 0.1  # another seed, another ω


@pytest.mark.parametrize("orthogonal", [True, False])
@pytest.mark.parametrize("builder", [favor_plus, trig_random_features])
def test_random_features_are_unbiased_for_the_softmax_kernel(orthogonal, builder):
    """Mean of φ(q)ᵀφ(k) over 2000 independent draws is within 4 standard errors of exp(qᵀk/√d)."""
    d, m, draws = 4, 8, 2000
    q, k = rand(d, seed=11) * 0.8, rand(d, seed=12) * 0.8
    exact = math.exp((q @ k).item() / math.sqrt(d))
    est = torch.tensor([(lambda p: (p(q) @ p(k)).item())(builder(d, m, orthogonal=orthogonal, seed=s))
                        for s in range(draws)], dtype=torch.float64)
    stderr = est.std().item() / math.sqrt(draws)
    assert abs(est.mean().item() - exact) < 4 * stderr
    assert stderr < 0.1 * exact  # the test has power: a 40 % bias would fail it


def test_favor_output_error_falls_like_one_over_sqrt_m():
    d, n = 16, 64
    q, k, v = rand(2, n, d, seed=1) * 0.7, rand(2, n, d, seed=2) * 0.7, rand(2, n, 8, seed=3)
    exact = softmax_attention(q, k, v)
    ms = [64, 256, 1024, 4096]
    errs = []
    for m in ms:
        e = [((linear_attention(q, k, v, favor_plus(d, m, seed=s)) - exact).norm() / exact.norm()).item()
             for s in range(4)]
        errs.append(sum(e) / len(e))
    slope = torch.linalg.lstsq(torch.tensor([[math.log(m), 1.0] for m in ms]),
                               torch.tensor([[math.log(e)] for e in errs])).solution[0, 0].item()
    assert errs == sorted(errs, reverse=True), errs
    assert -0.75 < slope < -0.3, (slope, errs)


def test_favor_stabilisers_cancel_in_the_ratio():
    """query()/key() carry constants that cancel: the weights equal those of the raw φ."""
    phi = favor_plus(8, 64, seed=2)
    q, k = rand(10, 8, seed=1), rand(10, 8, seed=2)
    raw = phi(q) @ phi(k).T  # (10, 10)
    stab = phi.query(q) @ phi.key(k).T  # (10, 10)
    assert_close("normalised weights", raw / raw.sum(-1, keepdim=True), stab / stab.sum(-1, keepdim=True), 1e-12)
    assert phi.query(q * 100).max() <= 1 / math.sqrt(64) + 1e-15
    assert phi.key_shift == 0.0 and phi.key(k * 100).max() <= math.exp(60)


def _leaky_key(phi, x):
    """The usual stabiliser, subtracting one max over EVERY key of the sequence (it looks at the future)."""
    xs = _softmax_scaled(x)  # (N, d)
    e = xs @ phi.omega.to(xs).T - xs.pow(2).sum(-1, keepdim=True) / 2  # (N, m)
    return torch.exp(e - e.amax()) / math.sqrt(phi.m)  # (N, m)


def test_favor_key_stabiliser_never_looks_at_other_tokens():
    """Keys 0..4 get the same features whether 5 or 12 keys are featurised together.

    The future keys are chosen to move a sequence-wide max: x' = ω_r maximises ω_rᵀx' − ‖x'‖²/2.
    Measured (float64, this seed): key() changes rows 0..4 by rel. err 4e-18 (rounding of two
    products that a BLAS may block differently for 5 and 12 rows: not bit-for-bit), the leaky
    sequence-max stabiliser by 0.97. The tolerance 1e-12 sits 6 orders above the first and 12
    below the second.
    """
    phi = favor_plus(8, 32, seed=0)
    k = rand(12, 8, seed=4)
    k_future = k.clone()
    top = phi.omega.norm(dim=-1).argsort(descending=True)[:7]
    k_future[5:] = phi.omega[top].to(k) * 8 ** 0.25  # keys that maximise a sequence-wide max
    assert_close("key features of tokens 0..4", phi.key(k[:5]), phi.key(k_future)[:5], 1e-12)
    # the guard has power: the leaky stabiliser fails the same check by far
    assert rel_err(_leaky_key(phi, k[:5]), _leaky_key(phi, k_future)[:5]) > 0.5


def test_favor_in_half_precision_has_no_nan():
    """Trap 1: fp16 FAVOR+ underflows to 0/0. Features are computed in float32 here."""
    q, k, v = (rand(1, 256, 64, seed=s, dtype=torch.float16, scale=3) for s in (1, 2, 3))
    out = linear_attention(q, k, v, favor_plus(64, 256), causal=True)
    assert out.dtype == torch.float16 and torch.isfinite(out).all()


def test_trig_features_give_negative_kernel_estimates():
    """Trap 4: trig features estimate exp(qᵀk/√d) with terms that can be negative."""
    phi = trig_random_features(64, 64, seed=0)
    q, k = rand(128, 64, seed=1), rand(128, 64, seed=2)
    est = phi(q) @ phi(k).T  # (128, 128)
    frac = (est < 0).double().mean().item()
    assert 0.01 < frac < 0.5
    with pytest.raises(ValueError, match="positive_kernel"):
        linear_attention(q, k, q, phi)


def test_feature_map_rejects_wrong_input_dim():
    with pytest.raises(ValueError, match=r"built for d = 8"):
        favor_plus(8)(rand(3, 5))
