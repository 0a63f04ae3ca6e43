"""Checkers for notebook 08 (how the field fixed linear attention): the interference term, the decay mask,
the gated step, the delta-rule step and one chunk of the delta rule's WY form."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..delta import delta_step
from ..gated import gated_step
from .runner import Case, close, gen, randn, run_cases

__all__ = ["check_interference", "check_decay_mask", "check_gated_step", "check_delta_step", "check_wy_chunk"]

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


# The capacity problem: the interference term --------------------------------------------------------
def _interference_cases():
    g, cases = gen(), []
    for n, d, dv in [(5, 4, 3), (12, 8, 2), (3, 6, 6)]:  # n > d once: keys cannot all be orthogonal
        K, V = randn(g, n, d), randn(g, n, dv)  # (n, d), (n, d_v); keys not unit length
        j = int(torch.randint(n, (1,), generator=g))
        overlaps = K @ K[j]  # (n,): k_iᵀk_j
        expected = overlaps @ V - overlaps[j] * V[j]  # (d_v,): Σ_{i≠j} (k_iᵀk_j) v_i
        cases.append(Case((K, V, j), expected, f"n = {n} pairs, d = {d}, d_v = {dv}, j = {j}"))
    return cases


def check_interference(your_fn) -> bool:
    """your_fn(K, V, j) -> Σ_{i≠j} (k_iᵀk_j) v_i: the interference in the readout Sᵀk_j of S = KᵀV.

    Shapes: K (n, d), V (n, d_v), j an int -> (d_v,).
    """
    def readout(c):
        K, V, j = c.args
        return (K @ K[j]) @ V  # (d_v,): Sᵀk_j, answer included

    def unit_answer(c):
        K, V, j = c.args
        return readout(c) - V[j]  # subtracted v_j as if k_j had unit length

    def transposed(c):
        K, V, j = c.args
        return (V @ V[j]) @ K if K.shape == V.shape else None

    return run_cases(
        "check_interference", your_fn, _interference_cases(), names=["interference"],
        hint="the readout is (K @ K[j]) @ V; the answer's own term is (K[j] @ K[j]) * V[j] — subtract it.",
        diagnoses=[
            (lambda e, g, c: close(g, readout(c)),
             "that is the whole readout Sᵀk_j: the term i = j, (k_jᵀk_j) v_j, is the answer, not interference."),
            (lambda e, g, c: close(g, unit_answer(c)),
             "you subtracted v_j, which is the answer only for a unit key: subtract (k_jᵀk_j) v_j."),
            (lambda e, g, c: close(g, -e),
             "the sign is flipped: interference is what the other pairs add to the readout."),
        ])


# The decay mask L of the scalar gate --------------------------------------------------------------
def _decay_cases():
    g, cases = gen(), []
    for batch, n in [((), 6), ((2, 3), 9), ((2,), 1)]:
        logs = -torch.rand(*batch, n, generator=g) * 1.5  # (..., N) log-decays <= 0
        G = logs.cumsum(-1)  # (..., N)
        lower = torch.ones(n, n, dtype=torch.bool).tril()  # (N, N)
        expected = torch.where(lower, (G[..., :, None] - G[..., None, :]).exp(), torch.zeros(()))  # (..., N, N)
        cases.append(Case((logs,), expected, f"g of shape {(*batch, n)}"))
    return cases


def check_decay_mask(your_fn) -> bool:
    """your_fn(g) -> L with L_ij = exp(G_i − G_j) for i >= j (G = cumsum(g)), 0 above the diagonal.

    Shapes: g (..., N) log-decays <= 0 -> (..., N, N).
    """
    def seg(c):
        G = c.args[0].cumsum(-1)
        return G[..., :, None] - G[..., None, :]  # (..., N, N)

    def lower(c):
        n = c.args[0].shape[-1]
        return torch.ones(n, n, dtype=torch.bool).tril()

    return run_cases(
        "check_decay_mask", your_fn, _decay_cases(), names=["L"],
        hint="G = g.cumsum(-1); seg = G[..., :, None] − G[..., None, :]; exp(seg) where i >= j, else 0 "
             "(mask before exp: above the diagonal seg > 0 and may overflow).",
        diagnoses=[
            (lambda e, g, c: close(g, e.transpose(-2, -1)),
             "your mask is transposed: row i is the query, so L_ij = exp(G_i − G_j) sits below the diagonal (j <= i)."),
            (lambda e, g, c: close(g, torch.where(lower(c), seg(c).exp(), seg(c).exp())),
             "the entries above the diagonal must be 0 (a query never sees a later key); yours are exp(G_i − G_j) > 1."),
            (lambda e, g, c: close(g, torch.where(lower(c), (seg(c) + c.args[0][..., None, :]).exp(), torch.zeros(()))),
             "off by one step: the diagonal must be 1 (a token's own write is not decayed) — the decay from j to i "
             "is the sum of g over j < t <= i, G_i − G_j, not including g_j."),
            (lambda e, g, c: close(g, torch.where(lower(c), seg(c), torch.zeros(()))),
             "you returned the log-decays G_i − G_j: exponentiate them."),
        ])


# One chunk of the delta rule's WY form ---------------------------------------------------------------
def _wy_reference(K, V, beta):
    n = K.shape[-2]
    T = torch.eye(n, dtype=K.dtype) + (beta[:, None] * (K @ K.T)).tril(-1)  # (C, C)
    W = torch.linalg.solve_triangular(T, beta[:, None] * K, upper=False)  # (C, d)
    U = torch.linalg.solve_triangular(T, beta[:, None] * V, upper=False)  # (C, d_v)
    return W, U


def _wy_cases():
    g, cases = gen(), []
    for C, d, dv in [(4, 5, 3), (8, 6, 2), (3, 3, 4)]:
        K = F.normalize(randn(g, C, d).double(), dim=-1)  # (C, d) unit keys
        V = randn(g, C, dv).double()  # (C, d_v)
        beta = (torch.rand(C, generator=g, dtype=torch.float64) * 0.8 + 0.2)  # (C,) in (0.2, 1)
        cases.append(Case((K, V, beta), _wy_reference(K, V, beta), f"C = {C}, d = {d}, d_v = {dv}"))
    return cases


def check_wy_chunk(your_fn) -> bool:
    """your_fn(K, V, beta) -> (W, U_bar) of one chunk: T = I + tril₋₁(diag(β)KKᵀ), W = T⁻¹diag(β)K, Ū = T⁻¹diag(β)V.

    Shapes: K (C, d) unit keys, V (C, d_v), beta (C,) -> W (C, d), U_bar (C, d_v). The check also replays
    the chunk: S + Kᵀ(Ū − W S) must equal the delta rule's state after the C tokens.
    """
    def with_T(c, T):
        K, V, beta = c.args
        return (torch.linalg.solve(T, beta[:, None] * K), torch.linalg.solve(T, beta[:, None] * V))

    def T_incl_diag(c):
        K, V, beta = c.args
        return torch.eye(K.shape[0], dtype=K.dtype) + (beta[:, None] * (K @ K.T)).tril()

    def T_no_beta(c):
        K, V, beta = c.args
        return torch.eye(K.shape[0], dtype=K.dtype) + (K @ K.T).tril(-1)

    def T_upper(c):
        K, V, beta = c.args
        return torch.eye(K.shape[0], dtype=K.dtype) + (beta[:, None] * (K @ K.T)).triu(1)

    def no_beta_rhs(c):
        K, V, beta = c.args
        n = K.shape[0]
        T = torch.eye(n, dtype=K.dtype) + (beta[:, None] * (K @ K.T)).tril(-1)
        return (torch.linalg.solve(T, K), torch.linalg.solve(T, V))

    def both(e, g, fn):
        return isinstance(g, (tuple, list)) and len(g) == 2 and all(close(a, b) for a, b in zip(g, fn))

    def replay(case, got):
        K, V, beta = case.args
        S = torch.linspace(-1, 1, K.shape[1] * V.shape[1], dtype=K.dtype).reshape(K.shape[1], V.shape[1])
        W, U_bar = got
        S_wy = S + K.T @ (U_bar - W @ S)  # (d, d_v)
        for t in range(K.shape[0]):
            S = S + beta[t] * torch.outer(K[t], V[t] - S.T @ K[t])
        return None if torch.allclose(S_wy, S) else "W and U_bar do not reproduce the delta rule's state"

    return run_cases(
        "check_wy_chunk", your_fn, _wy_cases(), names=["W", "U_bar"], after=replay,
        hint="T = I + (beta[:, None] * (K @ K.T)).tril(-1); W = solve(T, beta[:, None] * K); "
             "U_bar = solve(T, beta[:, None] * V) (torch.linalg.solve_triangular with upper=False).",
        diagnoses=[
            (lambda e, g, c: both(e, g, with_T(c, T_incl_diag(c))),
             "your T includes the diagonal of diag(β)KKᵀ: T is *unit* lower-triangular — only the pairs s < t "
             "interact (tril(-1)); the diagonal is the identity's 1."),
            (lambda e, g, c: both(e, g, with_T(c, T_no_beta(c))),
             "you left β out of T: row t of T carries β_t (k_tᵀk_s), because u_t = β_t(v_t − …) scales the whole read."),
            (lambda e, g, c: both(e, g, with_T(c, T_upper(c))),
             "your T is upper-triangular: token t depends on the *earlier* tokens s < t, so the coupling sits below the diagonal."),
            (lambda e, g, c: both(e, g, no_beta_rhs(c)),
             "the right-hand side needs diag(β) too: W = T⁻¹ diag(β) K and Ū = T⁻¹ diag(β) V."),
        ])
