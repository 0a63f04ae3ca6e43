"""Checkers for notebook 10 (memory as test-time regression): the gradient of the weighted ridge objective,
its exact read-out (the normal equations), one write of the two sufficient statistics, and which
fixed-size solver the measured table says recalls best past n = d."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..mesa import mesa_step
from .runner import Case, Guard, Hint, add_guard, close, fail, gen, randn, run_cases

__all__ = ["check_regression_grad", "check_ridge_readout", "check_mesa_step", "check_best_solver",
           "solver_means"]


# The objective ℓ(S) = ½ Σ_i γ_i ‖Sᵀk_i − v_i‖² + ½ λ ‖S‖²_F -----------------------------------------------
_SIZES = [(5, 4, 3), (12, 6, 2), (3, 5, 7)]  # (n, d, d_v): d != d_v catches a transposed S; n > d once


def _objective_args(g, n, d, dv):
    S, K, V = randn(g, d, dv).double(), randn(g, n, d).double(), randn(g, n, dv).double()  # (d, d_v), (n, d), (n, d_v)
    gamma = torch.rand(n, generator=g, dtype=torch.float64) * 0.9 + 0.1  # (n,) weights in (0.1, 1)
    lam = float(torch.rand((), generator=g) * 0.9 + 0.1)  # ridge λ in (0.1, 1)
    return S, K, V, gamma, lam


def _grad(S, K, V, gamma, lam, *, weights=True, ridge=True):
    r = K @ S - V  # (n, d_v): row i is Sᵀk_i − v_i
    w = gamma if weights else torch.ones_like(gamma)
    return K.T @ (w[:, None] * r) + (lam * S if ridge else 0)  # (d, n) @ (n, d_v) -> (d, d_v)


def _grad_cases():
    g, cases = gen(), []
    for n, d, dv in _SIZES:
        args = _objective_args(g, n, d, dv)
        cases.append(Case(args, _grad(*args), f"n = {n} pairs, d = {d}, d_v = {dv}"))
    return cases


def check_regression_grad(your_fn) -> bool:
    """your_fn(S, K, V, gamma, lam) -> ∇_S ℓ = Σ_i γ_i k_i (Sᵀk_i − v_i)ᵀ + λ S  for
    ℓ(S) = ½ Σ_i γ_i ‖Sᵀk_i − v_i‖² + ½ λ ‖S‖²_F.

    Shapes: S (d, d_v), K (n, d) keys as rows, V (n, d_v), gamma (n,), lam a float -> (d, d_v).
    """
    return run_cases(
        "check_regression_grad", your_fn, _grad_cases(), names=["grad"],
        hint=Hint("the residual of pair i is r_i = Sᵀk_i − v_i (row i of K S − V); the gradient sums "
                  "γ_i k_i r_iᵀ over the pairs (one matrix product) and adds λ S.",
                  "R = K @ S - V                      # (n, d_v): the residuals\n"
                  "return K.T @ (gamma[:, None] * R) + lam * S"),
        diagnoses=[
            (lambda e, g, c: close(g, -e),
             "the sign is flipped: the gradient points uphill, Σ γ_i k_i (Sᵀk_i − v_i)ᵀ + λS (residual = "
             "read-out minus target); the step goes against it."),
            (lambda e, g, c: close(g, _grad(*c.args, ridge=False)),
             "you left out the ridge term: ½λ‖S‖² adds λ S to the gradient."),
            (lambda e, g, c: close(g, _grad(*c.args, weights=False)),
             "every pair weighs 1 in yours: multiply pair i's term by its weight γ_i."),
            (lambda e, g, c: close(g, 2 * e),
             "twice the gradient: the objective carries ½ on both terms, so the square's 2 cancels."),
            (lambda e, g, c: isinstance(g, torch.Tensor) and g.shape == e.T.shape and close(g.T, e),
             "transposed: the gradient has S's shape (d, d_v) — k_i (Sᵀk_i − v_i)ᵀ, keys on the rows."),
        ])


# The exact read-out: o = H_kvᵀ (H_kk + λI)⁻¹ q ------------------------------------------------------------
def _stats(K, V, gamma):
    w = gamma[:, None] * K  # (n, d): γ_i k_i
    return w.T @ K, w.T @ V  # H_kk (d, d), H_kv (d, d_v)


def _readout(K, V, gamma, lam, q, *, ridge=True, weights=True):
    h_kk, h_kv = _stats(K, V, gamma if weights else torch.ones_like(gamma))
    a = h_kk + (lam * torch.eye(K.shape[1], dtype=K.dtype) if ridge else 0)  # (d, d)
    return h_kv.T @ torch.linalg.solve(a, q)  # (d_v, d) @ (d,) -> (d_v,)


def _readout_cases():
    g, cases = gen(), []
    for n, d, dv in [(10, 4, 3), (16, 6, 2), (9, 5, 7)]:  # n > d: H_kk is invertible, so "no ridge" differs
        _, K, V, gamma, lam = _objective_args(g, n, d, dv)
        q = randn(g, d).double()  # (d,)
        cases.append(Case((K, V, gamma, lam, q), _readout(K, V, gamma, lam, q), f"n = {n}, d = {d}, d_v = {dv}"))
    return cases


def check_ridge_readout(your_fn) -> bool:
    """your_fn(K, V, gamma, lam, q) -> o = S*ᵀq = H_kvᵀ (H_kk + λI)⁻¹ q with H_kk = Σ γ_i k_i k_iᵀ,
    H_kv = Σ γ_i k_i v_iᵀ: the read-out of the state that minimises the weighted ridge objective.

    Shapes: K (n, d), V (n, d_v), gamma (n,), lam a float, q (d,) -> (d_v,).
    """
    def additive(c):
        K, V, gamma, lam, q = c.args
        return _stats(K, V, gamma)[1].T @ q  # H_kvᵀ q

    return run_cases(
        "check_ridge_readout", your_fn, _readout_cases(), names=["o"],
        hint=Hint("build H_kk = Kᵀ diag(γ) K and H_kv = Kᵀ diag(γ) V, solve (H_kk + λI) x = q, return H_kvᵀ x.",
                  "Kw = gamma[:, None] * K                                   # (n, d)\n"
                  "x = torch.linalg.solve(Kw.T @ K + lam * torch.eye(K.shape[1], dtype=K.dtype), q)\n"
                  "return (Kw.T @ V).T @ x"),
        diagnoses=[
            (lambda e, g, c: close(g, additive(c)) or close(g, additive(c) / c.args[3]),
             "that is additive linear attention, H_kvᵀ q (÷ λ): it drops the key covariance H_kk — the exact "
             "solver reads with (H_kk + λI)⁻¹ q."),
            (lambda e, g, c: close(g, _readout(*c.args, ridge=False)),
             "you left out λI: the ridge term adds λ to H_kk's diagonal (and keeps it invertible when n < d)."),
            (lambda e, g, c: close(g, _readout(*c.args, weights=False)),
             "every pair weighs 1 in yours: both statistics sum γ_i-weighted outer products."),
        ])


# One write of the sufficient statistics (MesaNet's state) ----------------------------------------------
def _step_cases():
    g, cases = gen(), []
    for batch, d, dv in [((), 4, 3), ((2, 3), 5, 2), ((2,), 3, 6)]:
        a = randn(g, *batch, d, d)
        h_kk = a @ a.transpose(-2, -1)  # (..., d, d) symmetric, as H_kk always is
        h_kv, k, v = randn(g, *batch, d, dv), randn(g, *batch, d), randn(g, *batch, dv)
        beta = torch.rand(batch, generator=g) * 0.9 + 0.1  # (...)
        log_decay = -torch.rand(batch, generator=g) * 2  # (...) <= 0
        args = (h_kk, h_kv, k, v, beta, log_decay)
        cases.append(Case(args, mesa_step(h_kk, h_kv, k, v, beta, log_decay), f"batch {batch}, d = {d}, d_v = {dv}"))
    return cases


def check_mesa_step(your_fn) -> bool:
    """your_fn(H_kk, H_kv, k_t, v_t, beta_t, g_t) -> (H_kk', H_kv'): decay both by e^{g_t}, then add
    β_t k_t k_tᵀ and β_t k_t v_tᵀ.

    Shapes: H_kk (..., d, d), H_kv (..., d, d_v), k_t (..., d), v_t (..., d_v), beta_t, g_t (...) -> the two.
    """
    def written(c, keep_kk, keep_kv, beta=True, after=False):
        h_kk, h_kv, k, v, b, _ = c.args
        bb = (b if beta else torch.ones_like(b))[..., None, None]  # (..., 1, 1)
        add_kk = bb * k[..., :, None] * k[..., None, :]  # (..., d, d)
        add_kv = bb * k[..., :, None] * v[..., None, :]  # (..., d, d_v)
        if after:
            return keep_kk * (h_kk + add_kk), keep_kv * (h_kv + add_kv)
        return keep_kk * h_kk + add_kk, keep_kv * h_kv + add_kv

    def keep(c):
        return c.args[5].exp()[..., None, None]  # (..., 1, 1)

    def pair(g, want):
        return isinstance(g, (tuple, list)) and len(g) == 2 and all(close(a, b) for a, b in zip(g, want))

    return run_cases(
        "check_mesa_step", your_fn, _step_cases(), names=["H_kk", "H_kv"],
        hint=Hint("keep = exp(g_t)[..., None, None]; both statistics are multiplied by keep, then each gets "
                  "β_t times an outer product with k_t on the rows.",
                  "keep, bk = g_t.exp()[..., None, None], (beta_t[..., None] * k_t)[..., :, None]\n"
                  "return keep * H_kk + bk * k_t[..., None, :], keep * H_kv + bk * v_t[..., None, :]"),
        diagnoses=[
            (lambda e, g, c: pair(g, written(c, keep(c), keep(c), after=True)),
             "you decayed after writing: the new pair must enter at full weight β_t — decay first, then add."),
            (lambda e, g, c: pair(g, written(c, c.args[5][..., None, None], c.args[5][..., None, None])),
             "you multiplied by g_t itself; g_t is the log of the decay — multiply by exp(g_t)."),
            (lambda e, g, c: pair(g, written(c, keep(c), keep(c), beta=False)),
             "you left out β_t: each new outer product is weighted by the write strength β_t."),
            (lambda e, g, c: pair(g, written(c, 1.0, keep(c))) or pair(g, written(c, keep(c), 1.0)),
             "only one statistic decays in yours: the objective's weights γ_{t,i} multiply both sums, so both "
             "H_kk and H_kv decay by exp(g_t)."),
        ])


def _objective_guard_args():
    return _objective_args(gen(), 6, 4, 3)


def _readout_guard_args():
    _, K, V, gamma, lam = _objective_args(gen(), 8, 4, 3)
    return K, V, gamma, lam, randn(gen(), 4).double()


add_guard("check_regression_grad", Guard(_objective_guard_args, allowed=()))
add_guard("check_ridge_readout", Guard(_readout_guard_args, allowed=()))
add_guard("check_mesa_step", Guard(lambda: _step_cases()[1].args, allowed=()))


# Reading the measured table: which fixed-size solver recalls best past n = d? ----------------------------
#: The solvers of the table that keep a fixed-size state (softmax keeps every pair: a KV cache).
FIXED = ("additive", "delta", "gated delta", "exact ridge")


def solver_means(table: dict, ratio: float) -> dict:
    """{solver: mean error over seeds} at n/d = ``ratio`` from a table {solver: {n/d: [error per seed]}}."""
    out = {}
    for solver, by_ratio in table.items():
        for r, errs in by_ratio.items():
            if abs(float(r) - ratio) < 1e-9 and errs:
                out[solver] = sum(errs) / len(errs)
    return out


def check_best_solver(prediction, table, ratio: float = 2.0) -> bool:
    """Mark a prediction of the fixed-size solver with the lowest mean retrieval error at n/d = ``ratio``,
    read from the notebook's measured ``table`` {solver: {n/d: [error per seed]}}."""
    title = "check_best_solver"
    means = solver_means(table, ratio)
    fixed = {s: m for s, m in means.items() if s in FIXED}
    if not fixed:
        return fail(title, [f"  the table has no fixed-size solver at n/d = {ratio}"], "run the measurement cell first.")
    best = min(fixed, key=fixed.get)
    shown = ", ".join(f"{s} {m:.2f}" for s, m in sorted(fixed.items(), key=lambda x: x[1]))
    if not isinstance(prediction, str) or prediction not in means:
        return fail(title, [f"  expected one of {sorted(means)}; got {prediction!r}"],
                    "answer with a solver's name as the table prints it.")
    if prediction == best:
        print(f"✓ {title}: right — at n/d = {ratio:g}: {shown}. The exact solver minimises the summed "
              f"squared error of every pair at every token; the one-step solvers pay for not re-solving.")
        return True
    if prediction == "softmax":
        why = ("softmax keeps every pair (a KV cache that grows with n), so it is not a fixed-size state: the "
               "question asks among the solvers whose memory stays d × d_v.")
    elif prediction == "additive":
        why = ("the additive rule never corrects what a key already returns: its interference grows like "
               "√((n − 1)/d) and is the largest in the table.")
    else:
        why = (f"{prediction} takes one gradient step per token on the newest pair only; the exact solver "
               f"minimises the whole objective at every token.")
    return fail(title, [f"  {prediction}: {means[prediction]:.2f}, not the lowest among {shown}"], why)
