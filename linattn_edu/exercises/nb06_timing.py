"""Checkers for notebook 06 (timing as the sequence grows): the chunkwise FLOP count, a log-log slope, and
the crossover N read from two timing series."""
from __future__ import annotations

import math

import torch

from ..bench import fit_loglog_slope
from .runner import Case, refuse_library, run_cases

__all__ = ["check_chunkwise_flops", "check_loglog_slope", "check_crossover"]

NEVER = -1.0  # how a "None" (no crossover) is compared


def _num(x) -> torch.Tensor:
    """A number (or None, as NEVER) as a float64 scalar tensor, the form run_cases compares."""
    return torch.tensor(NEVER if x is None else float(x), dtype=torch.float64)

_LIBRARY_NAMES = {"chunkwise_flops", "fit_loglog_slope", "slopes", "crossover_n"}


def _refuse_library(title: str, fn):
    return refuse_library(title, fn, _LIBRARY_NAMES,
                          "write the formula yourself: the point is to derive it, not to look it up.")


# FLOPs of the chunkwise form -------------------------------------------------------------------------
def _flops(n, d, c):
    return n * (4 * d * d + 4 * c * d)


def check_chunkwise_flops(your_fn) -> bool:
    """your_fn(N, d, C) -> FLOPs of causal chunkwise linear attention per head: N(4d² + 4Cd).

    Per chunk: K_cᵀV_c (the state update) and Q_cS (the read from the state) cost 2d² FLOPs per token
    each; the intra-chunk part tril(Q_cK_cᵀ)V_c costs 2Cd per token for the scores and 2Cd for the product.
    """
    refused = _refuse_library("check_chunkwise_flops", your_fn)
    if refused is not None:
        return refused
    cases = [Case((n, d, c), _num(_flops(n, d, c)), f"N = {n}, d = {d}, C = {c}")
             for n, d, c in [(1024, 64, 64), (4096, 128, 32), (300, 16, 100)]]
    return run_cases(
        "check_chunkwise_flops", lambda n, d, c: _num(your_fn(n, d, c)), cases, names=["FLOPs"],
        hint="count multiply-adds as 2 FLOPs: per token 2d² (state update) + 2d² (read) + 2Cd (scores) + 2Cd (scores·V).",
        diagnoses=[
            (lambda e, g, c: math.isclose(g.item(), c.args[0] * 4 * c.args[1] ** 2, rel_tol=1e-9),
             "you counted only the state part (4d² per token): the intra-chunk scores tril(Q_cK_cᵀ)V_c add 4Cd per token."),
            (lambda e, g, c: math.isclose(g.item(), c.args[0] * (2 * c.args[1] ** 2 + 4 * c.args[2] * c.args[1]),
                                          rel_tol=1e-9),
             "you counted the state once: writing K_cᵀV_c and reading Q_cS are two d² products per token (4d² FLOPs)."),
            (lambda e, g, c: math.isclose(g.item(), e.item() / 2, rel_tol=1e-9),
             "off by a factor 2: a multiply-add is 2 FLOPs."),
            (lambda e, g, c: math.isclose(g.item(), 2 * c.args[0] ** 2 * c.args[1], rel_tol=1e-9),
             "that is causal softmax's count (2N²d), quadratic in N; the chunkwise form is linear in N."),
        ])


# The log-log slope -----------------------------------------------------------------------------------
def _slope_cases():
    series = [
        ([256, 512, 1024, 2048, 4096], [0.8, 1.9, 6.5, 27.0, 101.0]),  # quadratic-ish with an overhead at small N
        ([1024, 2048, 4096, 8192], [2.0, 3.1, 6.4, 12.0]),  # nearly linear, noisy
        ([100, 1000, 10000], [5.0, 5.5, 50.0]),  # flat then steep: the endpoints disagree with the fit
    ]
    return [Case((ns, ts), _num(fit_loglog_slope(ns, ts)[0]), f"{len(ns)} points, N = {ns[0]}–{ns[-1]}") for ns, ts in series]


def check_loglog_slope(your_fn) -> bool:
    """your_fn(ns, times) -> the least-squares slope of log t against log N (a float).

    Slope 2: time grows like N² (softmax); slope 1: like N (chunkwise).
    """
    refused = _refuse_library("check_loglog_slope", your_fn)
    if refused is not None:
        return refused

    def endpoints(c):
        ns, ts = c.args
        return math.log(ts[-1] / ts[0]) / math.log(ns[-1] / ns[0])

    def linear_space(c):
        ns, ts = c.args
        mx, my = sum(ns) / len(ns), sum(ts) / len(ts)
        return sum((a - mx) * (b - my) for a, b in zip(ns, ts)) / sum((a - mx) ** 2 for a in ns)

    def mixed_logs(c):
        ns, ts = c.args
        return fit_loglog_slope(ns, ts)[0] / math.log(10)  # log10 t against ln N

    return run_cases(
        "check_loglog_slope", lambda ns, ts: _num(your_fn(ns, ts)), _slope_cases(), names=["slope"],
        hint="x = log N, y = log t; slope = Σ(x − x̄)(y − ȳ) / Σ(x − x̄)²  (any log base, the same for both).",
        diagnoses=[
            (lambda e, g, c: math.isclose(g.item(), endpoints(c), rel_tol=1e-6),
             "you used the two end points only: a least-squares fit uses every point, so one noisy end cannot set the slope."),
            (lambda e, g, c: math.isclose(g.item(), linear_space(c), rel_tol=1e-6),
             "that is the slope of t against N (seconds per token), not of log t against log N."),
            (lambda e, g, c: math.isclose(g.item(), mixed_logs(c), rel_tol=1e-6),
             "you mixed log bases (log10 of one axis, ln of the other): take the same log of N and of t."),
        ])


# The crossover N -------------------------------------------------------------------------------------
class _Series:
    """The two methods' (N, time) series, shaped like bench.Results for bench.crossover_n."""

    def __init__(self, ns, fast, slow):
        self._data = {"fast": (list(ns), list(fast)), "slow": (list(ns), list(slow))}

    def series(self, method, mode="forward"):
        return self._data[method]


def _crossover_reference(ns, fast, slow):
    from ..bench import crossover_n
    return crossover_n(_Series(ns, fast, slow), fast="fast", slow="slow")


def _crossover_cases():
    series = [
        ([256, 512, 1024, 2048, 4096], [1.0, 1.6, 2.9, 5.5, 10.0], [0.3, 0.9, 3.2, 12.0, 47.0]),
        ([256, 512, 1024, 2048, 4096, 8192], [1.0, 1.5, 3.0, 6.0, 11.0, 20.0], [0.5, 1.7, 2.8, 6.5, 25.0, 96.0]),
        ([1024, 2048, 4096], [2.0, 3.0, 5.0], [1.0, 1.5, 2.5]),  # never: the slow one stays faster
    ]
    cases = []
    for ns, fast, slow in series:
        ref = _crossover_reference(ns, fast, slow)
        cases.append(Case((ns, fast, slow), _num(ref), f"N = {ns[0]}–{ns[-1]}"))
    return cases


def check_crossover(your_fn) -> bool:
    """your_fn(ns, t_fast, t_slow) -> N* where ``fast`` becomes *and stays* faster, or None if it never ends faster.

    Between the two grid points around the last change of sign of log(t_fast / t_slow), interpolate
    linearly in log N: N* = exp(x0 + (0 − y0)(x1 − x0)/(y1 − y0)) with x = log N, y = log(t_fast/t_slow).
    Returns the smallest N if ``fast`` is faster at every N.
    """
    refused = _refuse_library("check_crossover", your_fn)
    if refused is not None:
        return refused

    def wrapped(ns, fast, slow):
        return _num(your_fn(ns, fast, slow))

    def first_change(c):
        ns, fast, slow = c.args
        y = [math.log(f / s) for f, s in zip(fast, slow)]
        for i in range(1, len(y)):
            if y[i - 1] >= 0 > y[i]:
                x0, x1 = math.log(ns[i - 1]), math.log(ns[i])
                return math.exp(x0 + (0 - y[i - 1]) * (x1 - x0) / (y[i] - y[i - 1]))
        return None

    def grid_point(e, g, c):
        ns = c.args[0]
        return any(math.isclose(g.item(), n) for n in ns) and not any(math.isclose(e.item(), n) for n in ns)

    def linear_n(c):
        ns, fast, slow = c.args
        y = [math.log(f / s) for f, s in zip(fast, slow)]
        i = len(y) - 1
        while i > 0 and y[i - 1] < 0:
            i -= 1
        return ns[i - 1] + (0 - y[i - 1]) * (ns[i] - ns[i - 1]) / (y[i] - y[i - 1])

    def same(a, b):
        a = a.item() if isinstance(a, torch.Tensor) else a
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-6)

    return run_cases(
        "check_crossover", wrapped, _crossover_cases(), names=["N*"], rtol=1e-6, atol=1e-6,
        hint="y = log(t_fast/t_slow) per N; find the last i with y[i−1] >= 0 > y[i] (and y < 0 from there on); "
             "interpolate in x = log N; return None when the last y >= 0.",
        diagnoses=[
            (lambda e, g, c: e.item() == NEVER and g.item() != NEVER,
             "the fast method is not faster at the largest N here, so there is no crossover: return None."),
            (lambda e, g, c: same(g, first_change(c)) and not same(e, first_change(c)),
             "that is the *first* crossing; the curves cross back, and N* is where fast becomes and *stays* faster."),
            (grid_point, "you returned a grid point: interpolate between the two points around the crossing."),
            (lambda e, g, c: same(g, linear_n(c)),
             "you interpolated linearly in N; times are compared on log axes, so interpolate in log N."),
        ])
