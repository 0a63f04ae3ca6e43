"""Claims about measured numbers, per device and shape, reported with their noise.

A :class:`Target` is a claim ("chunkwise ≥ 15× faster than SDPA, forward, N = 16384, on a CPU")
with the measured value and its noise (± relative spread from the IQRs of the timings behind it).
Its verdict is "holds" only when the claim holds even at the unfavourable end of the noise,
"does not hold" when it fails even at the favourable end, and "within noise" otherwise: a claim
is never reported as holding on a number that noise could overturn.

Claims are stated for the shapes they were written for: on a CPU the CPU shape (B=1, H=4, d=64,
float32); on a GPU that shape and the shape that fills a GPU (B=4, H=16, d=64, bfloat16), and
against FLA's kernels where they were measured.  Other shapes get no claims, only numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .records import Results

__all__ = ["Target", "headline_targets", "decode_targets", "slope_targets", "CPU_SHAPE", "GPU_SHAPE",
           "ratio_noise", "slope_noise"]

#: the shapes claims are stated for: (N, batch, heads, d, dtype)
CPU_SHAPE = (16384, 1, 4, 64, "float32")
GPU_SHAPE = (16384, 4, 16, 64, "bfloat16")


@dataclass(frozen=True)
class Target:
    """A claim: ``value op threshold`` (op '>=' or '<='), with the value's relative noise and scope.

    noise: ± relative spread of ``value`` (0.05 = ±5 %); scope: where the claim is meant to hold
    ("CPU", "GPU", "" for any device); busy: measured while other programs competed for the cores
    (the IQR does not capture that: no verdict is given).
    """

    name: str
    value: float
    op: str
    threshold: float
    unit: str = ""
    noise: float = 0.0
    scope: str = ""
    busy: bool = False

    @property
    def met(self) -> bool:
        """The measured value meets the threshold (ignoring noise)."""
        return self.value >= self.threshold if self.op == ">=" else self.value <= self.threshold

    @property
    def margin(self) -> float:
        """Relative slack: +0.2 = 20 % better than needed, -0.2 = 20 % short."""
        if self.op == ">=":
            return self.value / self.threshold - 1
        return self.threshold / self.value - 1

    @property
    def verdict(self) -> str:
        """'holds', 'does not hold', 'within noise' (value ± noise straddles the threshold) or 'not judged'."""
        if self.busy:
            return "not judged (machine busy)"
        low, high = self.value * (1 - self.noise), self.value * (1 + self.noise)
        worst, best = (low, high) if self.op == ">=" else (high, low)
        meets = (lambda x: x >= self.threshold) if self.op == ">=" else (lambda x: x <= self.threshold)
        if meets(worst):
            return "holds"
        return "within noise" if meets(best) else "does not hold"

    @property
    def holds(self) -> bool:
        return self.verdict == "holds"

    def line(self) -> str:
        scope = f"{self.scope} claim" if self.scope else "claim"
        sign = "≥" if self.op == ">=" else "≤"
        return (f"  {scope}: {self.name} {sign} {self.threshold:g}{self.unit}; measured "
                f"{self.value:.3g}{self.unit} (noise ±{self.noise:.0%}): {self.verdict}")


def _half_noise(t: dict) -> float:
    """± relative spread of one timing: half its IQR over its median."""
    return 0.5 * t["iqr_s"] / t["median_s"] if t.get("median_s") else math.inf


def ratio_noise(*timings: dict) -> float:
    """± relative spread of a product or ratio of timings (the spreads add)."""
    return sum(_half_noise(t) for t in timings)


def _ratio(name, slow: dict, fast: dict, op, threshold, scope) -> Target:
    return Target(name, slow["median_s"] / fast["median_s"], op, threshold, "×", ratio_noise(slow, fast), scope)


def _shape(h: dict) -> tuple:
    dtype = h.get("dtype") or h.get("metadata", {}).get("dtype", "float32")
    return (h.get("n"), h.get("batch"), h.get("heads"), h.get("d"), dtype)


def _cpu_headline(h: dict) -> list[Target]:
    out = []
    for mode in ("forward", "forward+backward"):
        c, s = h.get(("chunkwise", mode)), h.get(("sdpa", mode))
        if c and s:
            out.append(_ratio(f"chunkwise speed-up over SDPA, {mode}, N = 16384", s, c, ">=", 15, "CPU"))
    if h.get("chunkwise_gflops") and h.get("matmul_gflops"):
        before, after = h["matmul_gflops_before"], h["matmul_gflops_after"]
        drift = abs(before - after) / max(before, after)
        out.append(Target("chunkwise GFLOP/s ÷ dense float32 matmul GFLOP/s", h["chunkwise_gflops"] / h["matmul_gflops"],
                          ">=", 0.5, "", _half_noise(h[("chunkwise", "forward")]) + drift, "CPU"))
    return out


def _gpu_headline(h: dict) -> list[Target]:
    shape, out = _shape(h), []
    c = {mode: h.get(("chunkwise", mode)) for mode in ("forward", "forward+backward")}
    if shape == (16384, 1, 4, 64, "float32") and c["forward"]:
        t = c["forward"]
        out.append(Target("chunkwise forward time, N = 16384", 1e3 * t["median_s"], "<=", 1.5, " ms",
                          _half_noise(t), "GPU"))
    if shape != GPU_SHAPE:
        return out
    for mode, t in c.items():
        s = h.get(("sdpa", mode))
        if t and s:
            out.append(_ratio(f"chunkwise speed-up over SDPA, {mode}", s, t, ">=", 1, "GPU"))
    fla = {mode: h.get(("fla_chunk", mode)) for mode in c}
    limits = {"forward": 1.5 if h.get("compiled") else 2.0, "forward+backward": 2.5}
    for mode, t in c.items():
        if t and fla[mode]:
            how = "compiled" if h.get("compiled") else "eager"
            out.append(_ratio(f"chunkwise ({how}) time ÷ FLA chunk kernel time, {mode}", t, fla[mode], "<=",
                              limits[mode], "GPU"))
    t, f = c["forward+backward"], fla["forward+backward"]
    if t and f and t.get("peak_bytes") and f.get("peak_bytes"):
        out.append(Target("chunkwise peak memory ÷ FLA's, forward+backward", t["peak_bytes"] / f["peak_bytes"],
                          "<=", 1.5, "×", 0.0, "GPU"))
    return out


def headline_targets(h: dict) -> list[Target]:
    """The claims stated for this headline's device and shape (an empty list for other shapes)."""
    device = str(h.get("device") or h.get("metadata", {}).get("device", "cpu"))
    if device.startswith("cuda"):
        return _gpu_headline(h)
    return _cpu_headline(h) if _shape(h) == CPU_SHAPE else []


def decode_targets(results: Results) -> list[Target]:
    """Decode claims over the contexts measured (smallest N₀ to largest N₁, r = N₁/N₀).

    Any device: the recurrent step at N₁ ÷ at N₀ <= 1.2 (the state does not grow).
    CPU: the KV-cache step at N₁ ÷ at N₀ >= r/4 (reading the cache grows with N).
    GPU: the KV-cache step ÷ the recurrent step at N₁ >= 2 (at this batch and context the cache
    read is visible above kernel-launch overhead; at small batch × context it is not).
    """
    rows = {m: sorted(results.select(ok=True, method=m, mode="decode"), key=lambda r: r["n"])
            for m in ("kv_cache", "recurrent")}
    if any(len(r) < 2 for r in rows.values()):
        return []
    rec, kv = rows["recurrent"], rows["kv_cache"]
    cuda = str(results.metadata.get("device", kv[0].get("device", "cpu"))).startswith("cuda")
    n0, n1 = kv[0]["n"], kv[-1]["n"]
    out = [_ratio(f"recurrent step time N = {n1} ÷ N = {n0}", rec[-1], rec[0], "<=", 1.2, "")]
    if cuda:
        out.append(_ratio(f"KV-cache step ÷ recurrent step at N = {n1}", kv[-1], rec[-1], ">=", 2, "GPU"))
    else:
        out.append(_ratio(f"KV-cache step time N = {n1} ÷ N = {n0} (context ×{n1 // n0})", kv[-1], kv[0], ">=",
                          round(n1 / n0 / 4, 2), "CPU"))
    return out


def slope_noise(results: Results, method: str, slope: float, *, n_min: int = 2048, n_max: int = 32768,
                mode: str = "forward") -> float:
    """± relative spread of a fitted log-log slope: the timings' mean half-IQR/median over ln(N_max/N_min).

    (A relative error ε in the times at the ends of the range tilts the fit by about 2ε / ln(range).)
    """
    rows = [r for r in results.select(ok=True, method=method, mode=mode) if n_min <= r["n"] <= n_max]
    if len(rows) < 2 or not slope:
        return 0.0
    spread = sum(_half_noise(r) for r in rows) / len(rows)
    span = math.log(max(r["n"] for r in rows) / min(r["n"] for r in rows))
    return (2 * spread / span) / abs(slope) if span > 0 else 0.0


def slope_targets(sl: dict[str, float], results: Results | None = None, *, n_min: int = 2048,
                  n_max: int = 32768) -> list[Target]:
    """Chunkwise log-log slope <= 1.15 (any device); SDPA >= 1.8 on a CPU (over N in [n_min, n_max]).

    Noise: :func:`slope_noise` when the records are given.  On a GPU SDPA at small N is
    launch-bound, so no SDPA slope is claimed there.
    """
    cuda = results is not None and str(results.metadata.get("device", "cpu")).startswith("cuda")
    out = []
    for method, op, threshold, scope in (("chunkwise", "<=", 1.15, ""), ("sdpa", ">=", 1.8, "CPU")):
        if method not in sl or (scope == "CPU" and cuda):
            continue
        noise = 0.0 if results is None else slope_noise(results, method, sl[method], n_min=n_min, n_max=n_max)
        out.append(Target(f"{method} log-log slope over N in [{n_min}, {n_max}]", sl[method], op, threshold, "",
                          noise, scope))
    return out
