"""Checkers for notebook 08 (how the field fixed linear attention): the gated step, the delta-rule step."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..delta import delta_step
from ..gated import gated_step
from .runner import Case, close, gen, randn, run_cases

__all__ = ["check_gated_step", "check_delta_step"]

_SHAPES = [((), 4, 3), ((2, 3), 5, 2), ((2,), 3, 6)]  # (batch, d, d_v): d != d_v catches a transposed S


def _gated_cases():
    g, cases = gen(), []
    for batch, d, dv in _SHAPES:
        s, k, v = randn(g, *batch, d, dv), randn(g, *batch, d), randn(g, *batch, dv)
        gate = -torch.rand(batch, generator=g) * 2  # (...): log-decay <= 0
        z = torch.zeros(*batch, d)
        expected, _ = gated_step(s, z, k, v, gate.unsqueeze(-1))  # (..., d, d_v)
        cases.append(Case((s, k, v, gate), expected, f"batch {batch}, d = {d}, d_v = {dv}"))
    return cases


def check_gated_step(your_fn) -> bool:
    """your_fn(S, k_t, v_t, g_t) -> S_new = exp(g_t)·S + k_t v_tᵀ (one log-decay g_t <= 0 per batch entry).

    Shapes: S (..., d, d_v), k_t (..., d), v_t (..., d_v), g_t (...) -> (..., d, d_v).
    """
    def decay(c):
        return c.args[3].exp()[..., None, None]  # (..., 1, 1)

    def outer(c):
        return c.args[1].unsqueeze(-1) * c.args[2].unsqueeze(-2)  # (..., d, d_v)

    return run_cases(
        "check_gated_step", your_fn, _gated_cases(), names=["S_new"],
        hint="decay first, then write: exp(g_t)[..., None, None] * S + k_t[..., :, None] * v_t[..., None, :].",
        diagnoses=[
            (lambda e, g, c: close(g, c.args[3][..., None, None] * c.args[0] + outer(c)),
             "you multiplied by g_t itself; g_t is the log of the decay — multiply by exp(g_t)."),
            (lambda e, g, c: close(g, decay(c) * (c.args[0] + outer(c))),
             "you decayed after writing: the new token must enter at full strength — decay S, then add k vᵀ."),
            (lambda e, g, c: close(g, c.args[0] + outer(c)),
             "that is plain linear attention's step: the old state must be multiplied by exp(g_t) first."),
        ])


def _delta_cases():
    g, cases = gen(), []
    for batch, d, dv in _SHAPES:
        s, v = randn(g, *batch, d, dv), randn(g, *batch, dv)
        k = F.normalize(randn(g, *batch, d), dim=-1)  # unit keys, as the library uses them
        beta = torch.rand(batch, generator=g) * 0.9 + 0.1  # (...) in (0, 1]
        cases.append(Case((s, k, v, beta), delta_step(s, k, v, beta), f"batch {batch}, d = {d}, d_v = {dv}"))
    return cases


def check_delta_step(your_fn) -> bool:
    """your_fn(S, k_t, v_t, beta_t) -> S_new = S + β_t k_t (v_t − Sᵀk_t)ᵀ  (the delta rule, unit keys).

    Shapes: S (..., d, d_v), k_t (..., d), v_t (..., d_v), beta_t (...) -> (..., d, d_v).
    """
    def recalled(c):
        return (c.args[1].unsqueeze(-2) @ c.args[0]).squeeze(-2)  # (..., d_v): Sᵀk

    def write(c, value):
        return c.args[0] + c.args[1].unsqueeze(-1) * (c.args[3].unsqueeze(-1) * value).unsqueeze(-2)

    return run_cases(
        "check_delta_step", your_fn, _delta_cases(), names=["S_new"],
        hint="read what S holds for k_t: r = (k_t[..., None, :] @ S).squeeze(-2); then "
             "S + k_t[..., :, None] * (beta_t[..., None] * (v_t − r))[..., None, :].",
        diagnoses=[
            (lambda e, g, c: close(g, write(c, c.args[2])),
             "that is linear attention's additive write (S + β k vᵀ): subtract what S already returns for k_t, "
             "v_t − Sᵀk_t, before writing."),
            (lambda e, g, c: close(g, c.args[0] - (write(c, c.args[2] - recalled(c)) - c.args[0])),
             "the sign of the correction is flipped: S moves towards v_t, S + β k (v − Sᵀk)ᵀ."),
            (lambda e, g, c: close(g, c.args[0] + c.args[1].unsqueeze(-1) * (c.args[2] - recalled(c)).unsqueeze(-2)),
             "you left out β_t: the correction is scaled by the write strength β_t."),
        ])
