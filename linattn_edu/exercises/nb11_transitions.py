"""Checkers for notebook 11 (transitions and state tracking): the delta rule's transition I − βkkᵀ, Kimi Delta
Attention's (I − βkkᵀ)Diag(e^g), DeltaProduct's product of Householder-like factors, and two reflections
that count modulo 3."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..transitions import delta_product_transition, dplr_transition
from .runner import Case, Guard, Hint, add_guard, close, fail, gen, randn, run_cases

__all__ = ["check_delta_transition", "check_kda_transition", "check_product_transition", "check_mod3_keys"]


def _eye(d, like):
    return torch.eye(d, dtype=like.dtype)


# I − β k kᵀ ------------------------------------------------------------------------------------------
def _delta_cases():
    g, cases = gen(), []
    for batch, d in [((), 4), ((2, 3), 5), ((2,), 3)]:
        k = F.normalize(randn(g, *batch, d), dim=-1)  # (..., d) unit keys
        beta = torch.rand(batch, generator=g) * 1.9 + 0.1  # (...) in (0.1, 2): β past 1 too
        expected = delta_product_transition(k.unsqueeze(-2), beta.unsqueeze(-1))  # (..., d, d), n_h = 1
        cases.append(Case((k, beta), expected, f"batch {batch}, d = {d}"))
    return cases


def check_delta_transition(your_fn) -> bool:
    """your_fn(k, beta) -> A = I − β k kᵀ, the delta rule's transition (S_t = A S_{t−1} + β k vᵀ).

    Shapes: k (..., d) unit keys, beta (...) -> (..., d, d).
    """
    def outer(c):
        k = c.args[0]
        return k.unsqueeze(-1) * k.unsqueeze(-2)  # (..., d, d)

    def beta(c):
        return c.args[1][..., None, None]

    return run_cases(
        "check_delta_transition", your_fn, _delta_cases(), names=["A"],
        hint=Hint("k kᵀ is an outer product, (..., d, 1) times (..., 1, d); scale it by β (one per batch entry, "
                  "so β[..., None, None]) and subtract it from the identity.",
                  "d = k.shape[-1]\n"
                  "return torch.eye(d, dtype=k.dtype) - beta[..., None, None] * k[..., :, None] * k[..., None, :]"),
        diagnoses=[
            (lambda e, g, c: close(g, _eye(c.args[0].shape[-1], c.args[0]) - outer(c)),
             "you left out β: the write strength scales the rank-one term, I − β k kᵀ (eigenvalue 1 − β along k)."),
            (lambda e, g, c: close(g, _eye(c.args[0].shape[-1], c.args[0]) + beta(c) * outer(c)),
             "the sign is flipped: the delta rule *removes* what the state holds along k, I − β k kᵀ."),
            (lambda e, g, c: close(g, beta(c) * outer(c)) or close(g, -beta(c) * outer(c)),
             "the identity is missing: every direction orthogonal to k must pass unchanged (eigenvalue 1)."),
        ])


# KDA: (I − β k kᵀ) Diag(e^g) -------------------------------------------------------------------------
def _kda_cases():
    g, cases = gen(), []
    for batch, d in [((), 4), ((2, 3), 5), ((2,), 3)]:
        k = F.normalize(randn(g, *batch, d), dim=-1)  # (..., d)
        beta = torch.rand(batch, generator=g) * 0.9 + 0.1  # (...)
        logs = -torch.rand(*batch, d, generator=g) * 2  # (..., d) per-channel log-decays <= 0
        a, b = -beta.unsqueeze(-1) * k, logs.exp() * k  # DPLR's a = −βk, b = e^g ⊙ k
        cases.append(Case((k, beta, logs), dplr_transition(a, b, logs), f"batch {batch}, d = {d}"))
    return cases


def check_kda_transition(your_fn) -> bool:
    """your_fn(k, beta, g) -> A = (I − β k kᵀ) Diag(e^g): Kimi Delta Attention decays every key channel by its
    own gate, then takes the delta step (S_t = A S_{t−1} + β k vᵀ).

    Shapes: k (..., d) unit keys, beta (...), g (..., d) log-decays <= 0 -> (..., d, d).
    """
    def parts(c):
        k, beta, logs = c.args
        eye = _eye(k.shape[-1], k)
        house = eye - beta[..., None, None] * k.unsqueeze(-1) * k.unsqueeze(-2)  # (..., d, d)
        return house, torch.diag_embed(logs.exp()), torch.diag_embed(logs)

    return run_cases(
        "check_kda_transition", your_fn, _kda_cases(), names=["A"],
        hint=Hint("build H = I − β k kᵀ and D = Diag(e^g) (torch.diag_embed); the decay acts on S first, so "
                  "A = H @ D.",
                  "H = torch.eye(k.shape[-1], dtype=k.dtype) - beta[..., None, None] * k[..., :, None] * k[..., None, :]\n"
                  "return H @ torch.diag_embed(g.exp())"),
        diagnoses=[
            (lambda e, g, c: close(g, parts(c)[1] @ parts(c)[0]),
             "you decayed after the delta step: KDA decays S first, so Diag(e^g) is the right-hand factor, "
             "(I − βkkᵀ) Diag(e^g)."),
            (lambda e, g, c: close(g, parts(c)[0] @ parts(c)[2]),
             "you used the log-decays g as the decay: each channel keeps e^{g_c} of its row."),
            (lambda e, g, c: close(g, parts(c)[0] * c.args[2].exp().mean(-1)[..., None, None]),
             "one decay for all channels is Gated DeltaNet; KDA has one per key channel, Diag(e^g)."),
        ])


# DeltaProduct: Π_j (I − β_j k_j k_jᵀ), last factor leftmost ---------------------------------------------
def _product_cases():
    g, cases = gen(), []
    for n_h, d in [(2, 3), (3, 4), (4, 5)]:
        K = F.normalize(randn(g, n_h, d), dim=-1).double()  # (n_h, d)
        beta = torch.rand(n_h, generator=g, dtype=torch.float64) * 1.9 + 0.1  # (n_h,) in (0.1, 2)
        cases.append(Case((K, beta), delta_product_transition(K, beta), f"n_h = {n_h}, d = {d}"))
    return cases


def check_product_transition(your_fn) -> bool:
    """your_fn(K, beta) -> A = (I − β_{n_h} k_{n_h} k_{n_h}ᵀ) ⋯ (I − β_1 k_1 k_1ᵀ): DeltaProduct's transition for one
    token (micro-step 1 acts on S first, so its factor is rightmost).

    Shapes: K (n_h, d) unit keys as rows, beta (n_h,) -> (d, d).
    """
    def factors(c):
        K, beta = c.args
        eye = _eye(K.shape[1], K)
        return [eye - beta[j] * torch.outer(K[j], K[j]) for j in range(K.shape[0])]

    def product(ms):
        out = ms[0]
        for m in ms[1:]:
            out = out @ m
        return out

    return run_cases(
        "check_product_transition", your_fn, _product_cases(), names=["A"],
        hint=Hint("start from the identity and, for j = 1 … n_h, multiply the new factor I − β_j k_j k_jᵀ on the "
                  "LEFT of what you have (it acts after the earlier micro-steps).",
                  "A = torch.eye(K.shape[1], dtype=K.dtype)\n"
                  "for k, b in zip(K, beta):\n"
                  "    A = (torch.eye(K.shape[1], dtype=K.dtype) - b * torch.outer(k, k)) @ A\n"
                  "return A"),
        diagnoses=[
            (lambda e, g, c: close(g, product(factors(c))),
             "the factors are in the reverse order: micro-step 1 acts on S first, so its factor is the rightmost — "
             "A = H_{n_h} ⋯ H_2 H_1. (Householder-like factors do not commute unless their keys are orthogonal.)"),
            (lambda e, g, c: close(g, _eye(c.args[0].shape[1], c.args[0])
                                   - sum(b * torch.outer(k, k) for k, b in zip(*c.args))),
             "that is I − Σ_j β_j k_j k_jᵀ, the product to first order only: multiply the factors out — their "
             "cross terms (k_i k_iᵀ k_j k_jᵀ …) are what lets the product rotate."),
            (lambda e, g, c: close(g, product([_eye(c.args[0].shape[1], c.args[0]) - torch.outer(k, k)
                                               for k in c.args[0]][::-1])),
             "you left out β_j in the factors: each factor is I − β_j k_j k_jᵀ (eigenvalue 1 − β_j along k_j)."),
        ])


# Two reflections that count modulo 3 ---------------------------------------------------------------------
def check_mod3_keys(your_fn) -> bool:
    """your_fn(d) -> K (2, d): two unit keys whose reflections (β = 2) compose to a transition A = H_2 H_1 with
    A³ = I and A ≠ I — a state that comes back after three steps, so counting a token mod 3.

    Tried for d = 2, 3 and 5 (the rotation happens in the plane of the two keys; the rest is untouched).
    """
    title = "check_mod3_keys"
    hint = Hint("two reflections across lines at angle θ compose to a rotation by 2θ: pick θ with 2θ = 120° "
                "(or 240°) in the plane of the first two coordinates.",
                "K = torch.zeros(2, d, dtype=torch.float64)\n"
                "K[0, 0] = 1.0\n"
                "K[1, 0], K[1, 1] = math.cos(math.pi / 3), math.sin(math.pi / 3)\n"
                "return K")
    for d in (2, 3, 5):
        try:
            K = your_fn(d)
        except Exception as err:  # the reader's code
            return fail(title, [f"  d = {d}: your function raised {type(err).__name__}: {err}"], hint)
        if not isinstance(K, torch.Tensor) or tuple(K.shape) != (2, d):
            got = tuple(K.shape) if isinstance(K, torch.Tensor) else type(K).__name__
            return fail(title, [f"  d = {d}: expected a tensor of shape (2, {d}); got {got}"], hint)
        K = K.detach().double()
        norms = K.norm(dim=-1)
        if not torch.allclose(norms, torch.ones(2, dtype=torch.float64), atol=1e-6):
            return fail(title, [f"  d = {d}: key lengths {[round(x, 4) for x in norms.tolist()]}"],
                        "a reflection needs a unit key: I − 2kkᵀ with ‖k‖ = 1 (otherwise it stretches the state). "
                        "Normalise your keys.")
        A = delta_product_transition(K, torch.full((2,), 2.0, dtype=torch.float64))  # (d, d) = H_2 H_1
        eye = torch.eye(d, dtype=torch.float64)
        cos = float((K[0] @ K[1]).clamp(-1, 1))
        angle = 2 * math.degrees(math.acos(abs(cos)))  # rotation angle of H_2 H_1 in the keys' plane
        if torch.allclose(A, eye, atol=1e-6):
            return fail(title, [f"  d = {d}: A = I — the state never changes"],
                        "your two keys lie on one line (the same key, or its negative): two reflections across one "
                        "line undo each other. Tilt the second key.")
        if not torch.allclose(A @ A @ A, eye, atol=1e-6):
            if torch.allclose(A @ A, eye, atol=1e-6):
                why = ("your keys are orthogonal: the product is a rotation by 180° (−I in their plane), which "
                       "comes back after two steps — it counts mod 2 (parity), not mod 3.")
            else:
                why = (f"your keys are {math.degrees(math.acos(abs(cos))):.1f}° apart, so the product rotates by "
                       f"{angle:.1f}°: three steps turn {3 * angle:.0f}°, not a multiple of 360°. Two reflections "
                       f"across lines θ apart rotate by 2θ.")
            return fail(title, [f"  d = {d}: A³ ≠ I"], why)
    print(f"✓ {title}: H_2 H_1 rotates the keys' plane by {angle:.0f}° and leaves the other {d - 2} direction(s) "
          f"alone: A³ = I, so the state counts the tokens that apply it, mod 3 — eigenvalues e^{{±2πi/3}}, "
          f"which no transition with real eigenvalues in [0, 1] has.")
    return True


def _transition_args():
    g = gen()
    return F.normalize(randn(g, 2, 4), dim=-1), torch.rand(2, generator=g) + 0.5


add_guard("check_delta_transition", Guard(_transition_args, allowed=()))
add_guard("check_kda_transition", Guard(lambda: _kda_cases()[1].args, allowed=()))
add_guard("check_product_transition", Guard(lambda: _product_cases()[1].args, allowed=()))
