"""Plain-text reports of measurements: metadata line, tables, the headline, decode lines, claims.

:func:`report` is the one tail every CLI command ends with: print the metadata, the body and the
claims, save the records when asked, and return the exit status.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

from .._checks import format_bytes
from .methods import ALL_METHODS, FEATURE_MAP, MODES
from .records import Results
from .targets import Target
from .timer import machine_busy, short_number

__all__ = ["format_metadata", "format_table", "format_grid", "format_headline", "format_decode",
           "format_claims", "report"]


def _ms(t: float | None) -> str:
    return "-" if t is None else f"{t * 1e3:.3f}"


def format_metadata(meta: dict) -> str:
    """One line: device, torch version, dtype, threads, date, git revision, load average, allocator (where recorded)."""
    keys = ("device_name", "torch_version", "dtype", "threads", "date", "git_revision", "load_average_1m",
            "load_average_1m_end", "allocator", "compiled", "note")
    return "  ".join(f"{k}={meta[k]}" for k in keys if meta.get(k) not in (None, False))


def format_table(results: Results) -> str:
    """Plain-text table, one line per record: method, N, mode, median ± IQR ms, peak and predicted memory, status."""
    mw = max([18] + [len(r["method"]) for r in results.records])  # the longest method name sets the column
    lines = [f"{'method':{mw}s} {'N':>7s} {'mode':17s} {'median ms':>11s} {'IQR ms':>9s} {'peak':>10s} "
             f"{'predicted':>10s}  status"]
    for r in results.records:
        peak = "-" if r.get("peak_bytes") is None else format_bytes(r["peak_bytes"])
        pred = "-" if r.get("predicted_bytes") is None else format_bytes(r["predicted_bytes"])
        lines.append(f"{r['method']:{mw}s} {r['n']:>7d} {r['mode']:17s} {_ms(r.get('median_s')):>11s} "
                     f"{_ms(r.get('iqr_s')):>9s} {peak:>10s} {pred:>10s}  {r['status']}")
    return "\n".join(lines)


def _cell(r: dict | None, key: str) -> str:
    if r is None:
        return "-"
    if r.get("status") != "ok":
        return "skip" if str(r.get("status", "")).startswith("skipped") else "err"
    value = r.get(key)
    if value is None:
        return "-"
    value = value / 2**20 if key.endswith("_bytes") else value * 1e3  # MiB or ms
    return short_number(value) + ("~" if r.get("noisy") else "")


def format_grid(results: Results, *, key: str = "median_s", modes=None) -> str:
    """Compact table: one row per method and mode, one column per N (ms, or MiB for a ``*_bytes`` key).

    'skip': the guard skipped the point (memory or time); 'err': it failed; '~': a noisy timing.
    """
    ns = sorted({r["n"] for r in results.records})
    modes = [m for m in (modes or MODES) if results.select(mode=m)] or sorted({r["mode"] for r in results.records})
    unit = "MiB" if key.endswith("_bytes") else "ms"
    width = max(8, *(len(str(n)) + 2 for n in ns)) if ns else 8
    mw = max([20] + [len(m) for m in results.methods()])  # the longest method name sets the column
    lines = []
    for mode in modes:
        lines.append(f"{mode + ' (' + unit + ')':{mw + 2}s}" + "".join(f"{n:>{width}d}" for n in ns))
        for method in results.methods():
            rows = {r["n"]: r for r in results.select(method=method, mode=mode)}
            if rows:
                lines.append(f"  {method:{mw}s}" + "".join(f"{_cell(rows.get(n), key):>{width}s}" for n in ns))
    return "\n".join(lines)


def format_headline(h: dict) -> str:
    """The headline's lines: each method's median (IQR, repeats) per mode, ratios, the matmul yardstick."""
    lines = [f"# headline: causal, B={h['batch']}, H={h['heads']}, N={h['n']}, d={h['d']}, C={h['chunk_size']}, "
             f"{h.get('dtype', 'float32')}, feature map {FEATURE_MAP}" + (", chunkwise compiled" if h.get("compiled") else "")]
    for mode in MODES:
        base = h.get(("chunkwise", mode))
        for method in h.get("methods", ("chunkwise", "sdpa")):
            t = h.get((method, mode))
            if t is None:
                continue
            text = (f"{mode:17s} {ALL_METHODS[method].label:38s} {_ms(t['median_s']):>9s} ms "
                    f"(IQR {_ms(t['iqr_s'])}, n={t['repeats']}{', noisy' if t.get('noisy') else ''})")
            if base is not None and method != "chunkwise":
                text += f"  {t['median_s'] / base['median_s']:.2f}× chunkwise's time"
            if t.get("peak_bytes") is not None:
                text += f"  peak {format_bytes(t['peak_bytes'])}"
            lines.append(text)
    for method, message in h.get("errors", {}).items():
        lines.append(f"{method}: not measured: {message}")
    dtype = h.get("dtype", "float32")
    line = (f"dense {dtype} matmul: {h['matmul_gflops_before']:.1f} GFLOP/s before, "
            f"{h['matmul_gflops_after']:.1f} after")
    if h.get("chunkwise_gflops"):
        line += f"; chunkwise forward {h['chunkwise_gflops']:.1f} GFLOP/s (FLOPs = N(4d²+4Cd) per head)"
    lines.append(line)
    return "\n".join(lines)


def format_decode(results: Results) -> str:
    """One line per decode record: ms per token (IQR, noise flag) and the bytes kept."""
    return "\n".join(
        f"{r['method']:9s} context {r['n']:>6d}: {r['median_s'] * 1e3:.4f} ms/token (IQR {r['iqr_s'] * 1e3:.4f}"
        f"{', noisy' if r.get('noisy') else ''}), state {format_bytes(r['state_bytes'])}"
        for r in results.records)


def format_claims(targets: list[Target], load: float | None = None) -> str:
    """The claims with measured values and noise, or a sentence saying none is stated for this run.

    When the load average was at or above the core count, no verdict is given (the IQR does not
    capture how much other programs slowed each method).
    """
    if not targets:
        return "claims: none stated for this device and shape (numbers above are the result)"
    busy = machine_busy(load)
    lines = ["claims (each with the noise of the timings behind it):",
             *(replace(t, busy=busy or t.busy).line() for t in targets)]
    if busy:
        lines.append(f"  note: load average {load} >= {os.cpu_count()} cores: other programs competed for the "
                     "CPU; rerun on a quiet machine for a verdict")
    return "\n".join(lines)


def report(body: str, targets: list[Target], *, metadata: dict | None = None, results: Results | None = None,
           out: str | Path | None = None) -> int:
    """Print the metadata line, ``body`` and the claims; save ``results`` to ``out``; return the exit status.

    Exit status 0 when every claim holds beyond noise (or none is stated), 3 otherwise (also when the
    machine was too busy for a verdict), 1 when ``out`` could not be written (one line on stderr; the
    CLI checks the path before measuring, so only a folder that changed meanwhile gets here).
    """
    if metadata is not None:
        print("# " + format_metadata(metadata))
    if body:
        print(body)
    load = (metadata or {}).get("load_average_1m_end", (metadata or {}).get("load_average_1m"))
    if targets or results is None:
        print(format_claims(targets, load))
    if out is not None and results is not None:
        try:
            print(f"wrote {results.save(out)}")
        except OSError as exc:
            print(f"error: could not write the records to {out}: {exc.strerror or exc}", file=sys.stderr)
            return 1
    return 0 if all(t.holds for t in targets) and not (targets and machine_busy(load)) else 3
