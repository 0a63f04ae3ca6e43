"""Checkers for notebook 05 (feature maps and the Performer): elu+1, Taylor features, FAVOR+ features."""
from __future__ import annotations

import math

import torch

from ..feature_maps import elu_plus_one, favor_plus, relu, taylor
from ..kernel import feature_map_kernel
from ..learned_maps import causal_denominators
from .runner import CallSpy, Case, Guard, Hint, add_guard, calls_grow_with_n, close, gen, qkv_cases, randn, run_cases, shape_of

__all__ = ["check_elu_plus_one", "check_taylor_features", "check_favor_features", "check_causal_denominators"]

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
    "check_causal_denominators": Hint(
        "query i divides by φ(q_i)ᵀz_i with z_i = Σ_{j<=i} φ(k_j), its own key included: a running sum of the "
        "key features along the token dim (cumsum), then a dot product with each query's features.",
        "def my_denominators(fq, fk):\n"
        "    z = fk.cumsum(-2)            # (..., N, d_φ): z_i = Σ_{j<=i} φ(k_j)\n"
        "    return (fq * z).sum(-1)      # (..., N)"),
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


def check_causal_denominators(your_fn) -> bool:
    """your_fn(fq (..., N, d_φ), fk (..., N, d_φ)) -> den (..., N), den_i = φ(q_i)ᵀ Σ_{j<=i} φ(k_j).

    Inputs are features already (φ applied); relu features make some denominators exactly 0. O(N·d_φ):
    no N × N matrix.
    """
    g, cases = gen(), []
    for batch, n, d, phi in (((), 6, 4, elu_plus_one), ((2, 3), 37, 5, relu), ((2,), 1, 8, elu_plus_one)):
        fq, fk = phi(randn(g, *batch, n, d)), phi(randn(g, *batch, n, d))  # (..., N, d_φ)
        cases.append(Case((fq, fk), causal_denominators(fq, fk), f"fq {shape_of(fq)}, φ = {phi.name}"))
    spy: dict = {}

    def watched(fq, fk):
        n = fq.shape[-2]
        with CallSpy(n) as mode:
            out = your_fn(fq, fk)
        spy["seen"] = mode.nxn if n > 4 else None
        return out

    def no_nxn(case, got):
        if spy.get("seen"):
            fname, shape = spy["seen"]
            return (f"right values, but your function built an N×N tensor {shape} (in {fname}): a running sum of "
                    f"φ(k_j) (cumsum over the tokens) gives every z_i in O(N·d_φ)")
        n = case.args[0].shape[-2]
        grows = calls_grow_with_n(your_fn, case.args, n_dims=(0, 1)) if n > 4 else None
        if grows:
            return (f"right values, but your function loops over the tokens in Python ({grows[0]} torch calls at "
                    f"N = {n}, {grows[1]} at N = {2 * n}): use cumsum along the token dim")
        return None

    def with_z(c, z):
        return (c.args[0] * z).sum(-1)  # (..., N)

    return run_cases(
        "check_causal_denominators", watched, cases, names=["den"], after=no_nxn,
        hint=HINTS["check_causal_denominators"],
        diagnoses=[
            (lambda e, g, c: close(g, with_z(c, c.args[1].sum(-2, keepdim=True))),
             "you summed every key, future ones included: causal query i divides by Σ_{j<=i} only."),
            (lambda e, g, c: close(g, with_z(c, c.args[1].cumsum(-2) - c.args[1])),
             "you left key i out: the sum runs over j <= i, so a query's own key is in its denominator "
             "(and the first query's would otherwise be 0)."),
            (lambda e, g, c: close(g, with_z(c, c.args[1].flip(-2).cumsum(-2).flip(-2))),
             "you summed the keys j >= i (a reversed running sum): causal attention reads the past, j <= i."),
            (lambda e, g, c: close(g, c.args[1].cumsum(-2).sum(-1)),
             "you summed z_i's entries: the denominator is the dot product φ(q_i)ᵀz_i, with the query's features."),
        ])


# --------------------------------------------------------------------------- hidden tests (graded edition)

add_guard("check_elu_plus_one", Guard(lambda: (randn(gen(), 2, 5, 4, scale=3.0),), allowed=()))
add_guard("check_taylor_features", Guard(lambda: (randn(gen(), 2, 5, 4),), allowed=()))
add_guard("check_causal_denominators",
          Guard(lambda: (elu_plus_one(randn(gen(), 2, 256, 4)), elu_plus_one(randn(gen(), 2, 256, 4))), allowed=(),
                max_numel=lambda args: args[0].shape[-2] ** 2 // 4))
add_guard("check_favor_features", Guard(lambda: (randn(gen(), 2, 5, 8), favor_plus(8, 16, seed=3).omega.float()),
                                        allowed=()))
