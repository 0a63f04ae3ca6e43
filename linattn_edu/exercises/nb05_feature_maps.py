"""Checkers for notebook 05 (feature maps and the Performer): elu+1, Taylor features, FAVOR+ features."""
from __future__ import annotations

import math

import torch

from ..feature_maps import elu_plus_one, favor_plus, taylor
from ..kernel import feature_map_kernel
from .runner import Case, Guard, Hint, add_guard, close, gen, qkv_cases, randn, run_cases, shape_of

__all__ = ["check_elu_plus_one", "check_taylor_features", "check_favor_features"]

#: Two-tier hints: the idea on a first miss, then code that passes the checker (tests run it).
HINTS = {
    "check_elu_plus_one": Hint(
        "elu(x) is x for x > 0 and exp(x) − 1 for x <= 0; add 1, so the features are positive.",
        "def my_elu_plus_one(x):\n"
        "    return torch.nn.functional.elu(x) + 1"),
    "check_taylor_features": Hint(
        "scale x by d^(-1/4) so that q'·k' = s; the features are [1, x', the outer product x'x'ᵀ flattened "
        "and divided by √2]: their dot product is 1 + s + s²/2.",
        "def my_taylor(x):\n"
        "    xs = x * x.shape[-1] ** -0.25                                    # (..., d)\n"
        "    outer = (xs.unsqueeze(-1) * xs.unsqueeze(-2)).flatten(-2) / math.sqrt(2)  # (..., d²)\n"
        "    return torch.cat([torch.ones_like(xs[..., :1]), xs, outer], dim=-1)      # (..., 1 + d + d²)"),
    "check_favor_features": Hint(
        "x' = x / d^¼; one feature per random row ω: exp(ωᵀx' − ‖x'‖²/2), divided by √m so the dot product "
        "averages over the m features.",
        "def my_favor(x, omega):\n"
        "    xs = x * x.shape[-1] ** -0.25                                    # (..., N, d)\n"
        "    wx = xs @ omega.T                                                # (..., N, m)\n"
        "    return torch.exp(wx - xs.pow(2).sum(-1, keepdim=True) / 2) / math.sqrt(omega.shape[0])"),
}


def check_elu_plus_one(your_fn) -> bool:
    """your_fn(x (..., d)) -> elu(x) + 1 (..., d): positive, ≈ 1 + x near 0, → 0 for very negative x."""
    g = gen()
    cases = [Case((x,), elu_plus_one(x), f"x {shape_of(x)}")
             for x in (randn(g, 7), randn(g, 2, 5, 4, scale=3.0), randn(g, 3, 1, 16, scale=10.0))]
    return run_cases(
        "check_elu_plus_one", your_fn, cases, names=["phi"],
        hint=HINTS["check_elu_plus_one"],
        diagnoses=[
            (lambda e, g, c: close(g, e - 1), "you forgot the + 1: elu(x) is negative for x < 0."),
            (lambda e, g, c: close(g, torch.relu(c.args[0])), "that is relu; elu+1 is exp(x) for x <= 0."),
            (lambda e, g, c: close(g, torch.relu(c.args[0]) + 1),
             "relu + 1 is not elu + 1: for x <= 0 use exp(x), which goes to 0 smoothly."),
        ])


def check_taylor_features(your_fn) -> bool:
    """your_fn(x (..., d)) -> φ(x) (..., d_φ) with φ(q)ᵀφ(k) = 1 + s + s²/2, s = qᵀk/√d.

    Only the kernel is checked (φ(Q)φ(K)ᵀ against the library's), so any arrangement of features works.
    """
    g, cases = gen(), []
    for q, k, _ in qkv_cases(g, [((), 5, 6, 4, 1), ((2, 3), 4, 4, 8, 1), ((2,), 1, 3, 16, 1)]):
        cases.append(Case((q, k), feature_map_kernel(taylor)(q, k), f"q {shape_of(q)}, k {shape_of(k)}"))

    def gram(q, k):
        return your_fn(q) @ your_fn(k).transpose(-2, -1)  # (..., N, d_φ) @ (..., d_φ, M) -> (..., N, M)

    def score(c, scale):
        return c.args[0] @ c.args[1].transpose(-2, -1) * scale  # (..., N, M)

    d = lambda c: c.args[0].shape[-1]  # noqa: E731
    return run_cases(
        "check_taylor_features (your φ(Q) φ(K)ᵀ vs 1 + s + s²/2)", gram, cases, names=["kernel"],
        hint=HINTS["check_taylor_features"],
        diagnoses=[
            (lambda e, g, c: close(g, 1 + score(c, d(c) ** -0.5) + score(c, d(c) ** -0.5) ** 2),
             "the quadratic term should be s²/2: divide the outer-product features by √2."),
            (lambda e, g, c: close(g, 1 + score(c, 1.0) + score(c, 1.0) ** 2 / 2),
             "scale the input by d^(-1/4) first, so the features' dot product is s = qᵀk/√d."),
            (lambda e, g, c: close(g, 1 + score(c, d(c) ** -0.5)), "you stopped at 1 + s: add the s²/2 term."),
        ])


def check_favor_features(your_fn) -> bool:
    """your_fn(x (..., d), omega (m, d)) -> FAVOR+ features (..., m), for the kernel exp(qᵀk/√d).

    φ(x) = exp(ωᵀx' − ‖x'‖²/2) / √m with x' = x / d^¼. Then E_ω[φ(q)ᵀφ(k)] = exp(qᵀk/√d).
    """
    g, cases = gen(), []
    for batch, d, m in (((), 4, 8), ((2, 3), 8, 32), ((2,), 16, 20)):
        phi = favor_plus(d, m, seed=3)
        x = randn(g, *batch, 5, d)  # (..., N, d)
        omega = phi.omega.float()  # (m, d)
        cases.append(Case((x, omega), phi(x), f"x {shape_of(x)}, omega {shape_of(omega)}"))

    def feats(c, scale=None, norm=True, sqrt_m=True):
        x, omega = c.args
        xs = x * (x.shape[-1] ** -0.25 if scale is None else scale)  # (..., N, d)
        out = torch.exp(xs @ omega.T - (xs.pow(2).sum(-1, keepdim=True) / 2 if norm else 0))  # (..., N, m)
        return out / math.sqrt(omega.shape[0]) if sqrt_m else out

    return run_cases(
        "check_favor_features", your_fn, cases, names=["phi"],
        hint=HINTS["check_favor_features"],
        diagnoses=[
            (lambda e, g, c: close(g, feats(c, norm=False)),
             "you left out −‖x'‖²/2: without it E[φ(q)ᵀφ(k)] = exp(q'ᵀk' + ‖q'‖²/2 + ‖k'‖²/2), biased."),
            (lambda e, g, c: close(g, feats(c, scale=1.0)),
             "scale x by d^(-1/4) first: the target kernel is exp(qᵀk/√d), not exp(qᵀk)."),
            (lambda e, g, c: close(g, feats(c, sqrt_m=False)),
             "divide by √m, so that φ(q)ᵀφ(k) is the *average* over the m random features."),
        ])


# --------------------------------------------------------------------------- hidden tests (graded edition)

add_guard("check_elu_plus_one", Guard(lambda: (randn(gen(), 2, 5, 4, scale=3.0),), allowed=()))
add_guard("check_taylor_features", Guard(lambda: (randn(gen(), 2, 5, 4),), allowed=()))
add_guard("check_favor_features", Guard(lambda: (randn(gen(), 2, 5, 8), favor_plus(8, 16, seed=3).omega.float()),
                                        allowed=()))
