"""Reading records: log-log slopes, theory constants, the crossover N, the chunkwise FLOP count."""

from __future__ import annotations

import math
import statistics
from typing import Sequence

from .records import Results

__all__ = ["fit_loglog_slope", "slopes", "fit_theory_constant", "crossover_n", "chunkwise_flops", "rule_costs", "SLOPE_N_MIN",
           "SLOPE_N_MAX"]

#: the N range the slope claims are fitted over (small N is overhead-bound, large N memory-bound)
SLOPE_N_MIN, SLOPE_N_MAX = 2048, 32768


def fit_loglog_slope(ns: Sequence[float], ts: Sequence[float]) -> tuple[float, float]:
    """Least-squares fit log t = slope · log N + intercept; returns (slope, intercept). Needs >= 2 points."""
    if len(ns) != len(ts) or len(ns) < 2:
        raise ValueError(f"need >= 2 (N, t) pairs of equal length; got {len(ns)} N and {len(ts)} t")
    if min(ns) <= 0 or min(ts) <= 0:
        raise ValueError("N and t must be positive for a log-log fit")
    x = [math.log(n) for n in ns]
    y = [math.log(t) for t in ts]
    mx, my = statistics.fmean(x), statistics.fmean(y)
    sxx = sum((a - mx) ** 2 for a in x)
    if sxx == 0:
        raise ValueError("need at least two distinct N for a slope")
    slope = sum((a - mx) * (b - my) for a, b in zip(x, y)) / sxx
    return slope, my - slope * mx


def slopes(results: Results, *, mode: str = "forward", n_min: int = SLOPE_N_MIN,
           n_max: int = SLOPE_N_MAX) -> dict[str, float]:
    """Log-log slope of median time vs N per method, over measured points with n_min <= N <= n_max."""
    out = {}
    for method in results.methods():
        ns, ts = results.series(method, mode)
        pairs = [(n, t) for n, t in zip(ns, ts) if n_min <= n <= n_max]
        if len({n for n, _ in pairs}) >= 2:
            out[method] = fit_loglog_slope([n for n, _ in pairs], [t for _, t in pairs])[0]
    return out


def fit_theory_constant(ns: Sequence[float], ts: Sequence[float], exponent: float) -> float:
    """c in t ≈ c·N^exponent, fitted in log space (geometric mean of t / N^exponent)."""
    if not ns or len(ns) != len(ts):
        raise ValueError(f"need >= 1 (N, t) pairs of equal length; got {len(ns)} N and {len(ts)} t")
    return math.exp(statistics.fmean(math.log(t) - exponent * math.log(n) for n, t in zip(ns, ts)))


def crossover_n(results: Results, *, fast: str = "chunkwise", slow: str = "sdpa",
                mode: str = "forward") -> float | None:
    """N at which ``fast`` becomes and stays faster than ``slow`` (log-linear interpolation).

    Over the N both measured: the last sign change of log(t_fast / t_slow) from >= 0 to < 0.
    Returns the smallest N if ``fast`` is faster everywhere, None if it never ends faster.
    """
    nf, tf = results.series(fast, mode)
    ns_, ts_ = results.series(slow, mode)
    common = sorted(set(nf) & set(ns_))
    if not common:
        return None
    diff = [math.log(tf[nf.index(n)] / ts_[ns_.index(n)]) for n in common]
    if diff[-1] >= 0:
        return None
    i = len(diff) - 1
    while i > 0 and diff[i - 1] < 0:
        i -= 1
    if i == 0:
        return float(common[0])
    x0, x1 = math.log(common[i - 1]), math.log(common[i])
    x = x0 + (0 - diff[i - 1]) * (x1 - x0) / (diff[i] - diff[i - 1])
    return math.exp(x)


def chunkwise_flops(n: int, d: int, chunk_size: int, *, heads: int = 1, batch: int = 1) -> int:
    """FLOPs of the causal chunkwise forward counted as N(4d² + 4Cd) per head.

    Per chunk of C tokens: K_cᵀV_c and Q_c S_c are 2Cd² each (4Cd² → 4d² per token), Q_cK_cᵀ and
    tril(·)V_c are 2C²d each (4C²d → 4Cd per token).
    """
    return batch * heads * n * (4 * d * d + 4 * chunk_size * d)


def rule_costs(results: Results, *, n_small: int, n_large: int) -> list[dict]:
    """One row per (method, d) measured at both N: median times, the log-log slope forward and forward+backward.

    Row: {"method", "d", "forward": (t_small, t_large), "forward+backward": (…), "slope_forward",
    "slope_forward+backward"} (seconds; a mode missing at either N is None). Reads the records of
    ``scripts/rule_costs.py`` (several d in one file: each record carries its d).
    """
    times: dict[tuple, float] = {}
    for r in results.records:
        if r.get("status") == "ok" and r.get("median_s"):
            times[(r["method"], r["d"], r["mode"], r["n"])] = r["median_s"]
    rows = []
    for method, d in sorted({(m, d) for m, d, _, _ in times}, key=lambda x: (x[1], x[0])):
        row = {"method": method, "d": d}
        for mode in ("forward", "forward+backward"):
            pair = (times.get((method, d, mode, n_small)), times.get((method, d, mode, n_large)))
            row[mode] = pair if None not in pair else None
            row[f"slope_{mode}"] = (math.log(pair[1] / pair[0]) / math.log(n_large / n_small)
                                    if None not in pair else None)
        if row["forward"] or row["forward+backward"]:
            rows.append(row)
    return rows
