"""Plotly figures for timing and memory records (:mod:`linattn_edu.bench`) and cache sizes (:mod:`linattn_edu.memory`).

Pure functions, records in → ``go.Figure`` out (nothing shown, no widgets), so they are
tested headless and reused by notebooks 06/07 and the timing / KV-cache explorers.

* :func:`timing_figure`: time vs N (log-log) per method, IQR error bars, theory curves c·N²d and
  c·Nd² fitted to the data, the chunkwise/SDPA crossover marked, and peak memory on a second
  panel (skipped points drawn as ✕ at their *predicted* memory, with the guard's message).
* :func:`decode_figure`: per-token decode step time and cache/state bytes vs context N.
* :func:`kv_cache_figure`: KV-cache bytes vs tokens for real model shapes against the
  constant linear-attention state.

``python -m linattn_edu.viz_timing assets`` renders the PNGs of the shipped records (kaleido).
"""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path
from typing import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .bench import METHODS, Results, crossover_n, fit_theory_constant
from .memory import AttentionShape, cache_bytes, crossover_tokens, format_bytes, state_bytes

__all__ = ["METHOD_COLOURS", "timing_figure", "decode_figure", "kv_cache_figure", "kv_cache_summary",
           "render_assets", "main"]

#: Softmax family in blues, linear attention in reds/purples, the window in green.
METHOD_COLOURS = {
    "softmax": "#1f77b4",
    "sdpa": "#17becf",
    "linear_quadratic": "#ff9896",
    "chunkwise": "#d62728",
    "recurrent": "#9467bd",
    "window": "#2ca02c",
    "kv_cache": "#1f77b4",
}
THEORY_COLOUR = "#7f7f7f"
FONT = dict(size=12)
MiB = 2**20


def _results(records) -> Results:
    """Accept a Results, or a list of record dicts (no metadata)."""
    if isinstance(records, Results):
        return records
    if isinstance(records, (list, tuple)) and all(isinstance(r, dict) for r in records):
        return Results(records=list(records))
    raise TypeError(f"records must be a bench.Results or a list of record dicts; got {type(records).__name__}")


def _label(method: str) -> str:
    return METHODS[method].label if method in METHODS else method


def _subtitle(meta: dict) -> str:
    keys = ("device_name", "torch_version", "dtype", "threads", "date", "git_revision")
    parts = [f"{meta[k]}" if k in ("device_name", "torch_version", "dtype") else f"{k.replace('_', ' ')} {meta[k]}"
             for k in keys if meta.get(k) is not None]
    return " · ".join(parts)


def _theory_trace(res: Results, method: str, mode: str, exponent: int, d: int, text: str):
    """Dashed c·N^exponent·d^(3-exponent) line, c fitted to the upper half of ``method``'s points."""
    ns, ts = res.series(method, mode)
    if len(ns) < 2:
        return None
    upper = [(n, t) for n, t in zip(ns, ts) if n >= ns[len(ns) // 2]]
    scale = d ** (3 - exponent)  # c·N²d or c·Nd²
    c = fit_theory_constant([n for n, _ in upper], [t / scale for _, t in upper], exponent)
    grid = [ns[0] * (ns[-1] / ns[0]) ** (i / 40) for i in range(41)]
    return go.Scatter(x=grid, y=[1e3 * c * scale * n**exponent for n in grid], mode="lines",
                      line=dict(color=THEORY_COLOUR, dash="dash" if exponent == 2 else "dot", width=1.5),
                      name=f"{text} (fit to {method})", legendgroup=f"theory-{method}",
                      hovertemplate=f"{text}<br>N=%{{x:.0f}}<br>%{{y:.3g}} ms<extra></extra>")


def timing_figure(records, *, mode: str = "forward", methods: Sequence[str] | None = None, theory: bool = True,
                  memory: bool = True, crossover: bool = True, title: str | None = None,
                  height: int = 460) -> go.Figure:
    """Median time (ms, IQR bars) vs N on log-log axes; optional peak-memory panel, theory fits, crossover.

    records: a :class:`~linattn_edu.bench.Results` (its metadata becomes the subtitle) or record dicts.
    Legend entries toggle a method on both panels (legendgroup = method).
    """
    res = _results(records)
    if mode not in {r.get("mode") for r in res.records} and res.records:
        raise ValueError(f"mode must be one of {sorted({r.get('mode') for r in res.records})}; got {mode!r}")
    methods = [m for m in (methods or res.methods()) if res.select(method=m, mode=mode)]
    cols = 2 if memory else 1
    fig = make_subplots(rows=1, cols=cols, horizontal_spacing=0.1,
                        subplot_titles=("time per call (median, IQR bars)", "peak extra memory")[:cols])
    for method in methods:
        colour = METHOD_COLOURS.get(method, None)
        rows = sorted(res.select(ok=True, method=method, mode=mode), key=lambda r: r["n"])
        fig.add_trace(go.Scatter(
            x=[r["n"] for r in rows], y=[1e3 * r["median_s"] for r in rows], mode="lines+markers",
            error_y=dict(type="data", array=[1e3 * (r.get("iqr_s") or 0) / 2 for r in rows], thickness=1),
            name=_label(method), legendgroup=method, line=dict(color=colour),
            hovertemplate=f"{method}<br>N=%{{x}}<br>%{{y:.3g}} ms<extra></extra>"), row=1, col=1)
        if memory:
            measured = [r for r in rows if r.get("peak_bytes") is not None]
            fig.add_trace(go.Scatter(
                x=[r["n"] for r in measured], y=[r["peak_bytes"] / MiB for r in measured], mode="lines+markers",
                name=_label(method), legendgroup=method, showlegend=False, line=dict(color=colour),
                hovertemplate=f"{method}<br>N=%{{x}}<br>%{{y:.3g}} MiB<extra></extra>"), row=1, col=2)
            skipped = [r for r in res.select(method=method, mode=mode)  # the memory guard's skips
                       if "would need" in str(r.get("status", "")) and r.get("predicted_bytes")]
            if skipped:
                fig.add_trace(go.Scatter(
                    x=[r["n"] for r in skipped], y=[r["predicted_bytes"] / MiB for r in skipped], mode="markers",
                    marker=dict(symbol="x", size=10, color=colour), name=f"{method} skipped (predicted)",
                    legendgroup=method, showlegend=False, text=[r["status"] for r in skipped],
                    hovertemplate=f"{method}<br>N=%{{x}}<br>predicted %{{y:.3g}} MiB<br>%{{text}}<extra></extra>"),
                    row=1, col=2)
    if theory:
        d = next((r["d"] for r in res.records if r.get("d")), 64)
        for method, exponent, text in (("sdpa", 2, "theory c·N²d"), ("chunkwise", 1, "theory c·Nd²")):
            trace = _theory_trace(res, method, mode, exponent, d, text) if method in methods else None
            if trace is not None:
                fig.add_trace(trace, row=1, col=1)
    if crossover and {"chunkwise", "sdpa"} <= set(methods):
        n_star = crossover_n(res, mode=mode)
        if n_star is not None:
            fig.add_vline(x=n_star, line=dict(color="black", dash="dot", width=1), row=1, col=1)
            fig.add_annotation(x=math.log10(n_star), y=0.98, yref="y domain", xref="x", showarrow=False,
                               text=f" chunkwise faster<br> than SDPA from<br> N ≈ {n_star:,.0f}", xanchor="left",
                               yanchor="top", align="left", font=dict(size=11))
    fig.update_xaxes(type="log", title_text="sequence length N")
    fig.update_yaxes(type="log", title_text="ms", row=1, col=1)
    if memory:
        fig.update_yaxes(type="log", title_text="MiB", row=1, col=2)
    head = title or f"Causal attention, {mode}, as the sequence grows"
    sub = _subtitle(res.metadata)
    fig.update_layout(title=dict(text=head + (f"<br><sup>{sub}</sup>" if sub else "")), height=height,
                      font=FONT, legend=dict(groupclick="togglegroup"), margin=dict(t=90))
    return fig


def decode_figure(records, *, title: str | None = None, height: int = 420) -> go.Figure:
    """Per-token decode step (ms) and cache/state bytes vs context N: KV-cache softmax vs recurrent state."""
    res = _results(records)
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=("time per generated token", "what must be kept (cache or state)"))
    names = {"kv_cache": "softmax + KV cache", "recurrent": "linear attention state"}
    for method in res.methods():
        ns, ts = res.series(method, "decode")
        _, iqr = res.series(method, "decode", key="iqr_s")
        _, nbytes = res.series(method, "decode", key="state_bytes")
        colour = METHOD_COLOURS.get(method)
        fig.add_trace(go.Scatter(x=ns, y=[1e3 * t for t in ts], mode="lines+markers", legendgroup=method,
                                 error_y=dict(type="data", array=[5e2 * q for q in iqr], thickness=1),
                                 name=names.get(method, method), line=dict(color=colour),
                                 hovertemplate="N=%{x}<br>%{y:.3g} ms/token<extra></extra>"), row=1, col=1)
        fig.add_trace(go.Scatter(x=ns, y=[b / MiB for b in nbytes], mode="lines+markers", legendgroup=method,
                                 name=names.get(method, method), showlegend=False, line=dict(color=colour),
                                 hovertemplate="N=%{x}<br>%{y:.3g} MiB<extra></extra>"), row=1, col=2)
    fig.update_xaxes(type="log", title_text="context N (tokens already seen)")
    fig.update_yaxes(type="log", title_text="ms per token", row=1, col=1)
    fig.update_yaxes(type="log", title_text="MiB", row=1, col=2)
    sub = _subtitle(res.metadata)
    head = title or "Decoding one token at context N"
    fig.update_layout(title=dict(text=head + (f"<br><sup>{sub}</sup>" if sub else "")), height=height,
                      font=FONT, margin=dict(t=90))
    return fig


def kv_cache_figure(shapes: Sequence[AttentionShape], *, tokens: int | None = None, tokens_max: int = 131072,
                    batch: int = 1, dtype=2, d_phi: int | None = None, include_z: bool = False,
                    title: str | None = None, height: int = 440) -> go.Figure:
    """KV-cache bytes vs tokens (solid, one per model) against each model's linear state (dashed, flat).

    ``tokens`` marks one context length with a vertical line; d_phi defaults to head_dim.
    """
    if not shapes or not all(isinstance(s, AttentionShape) for s in shapes):
        raise TypeError("shapes must be a non-empty sequence of memory.AttentionShape")
    if isinstance(tokens_max, bool) or not isinstance(tokens_max, int) or tokens_max < 2:
        raise ValueError(f"tokens_max must be an int >= 2; got {tokens_max!r}")
    grid = sorted({max(1, round(2 ** (i / 4))) for i in range(int(4 * math.log2(tokens_max)) + 1)} | {tokens_max})
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
    fig = go.Figure()
    for i, shape in enumerate(shapes):
        colour = palette[i % len(palette)]
        fig.add_trace(go.Scatter(
            x=grid, y=[cache_bytes(shape, n, batch=batch, dtype=dtype) / MiB for n in grid], mode="lines",
            name=f"{shape.name} KV cache ({shape.kind})", legendgroup=shape.name, line=dict(color=colour),
            hovertemplate=f"{shape.name}<br>N=%{{x}}<br>%{{y:.4g}} MiB<extra></extra>"))
        s = state_bytes(shape, d_phi=d_phi, batch=batch, dtype=dtype, include_z=include_z) / MiB
        fig.add_trace(go.Scatter(
            x=[grid[0], grid[-1]], y=[s, s], mode="lines", name=f"{shape.name} linear state",
            legendgroup=shape.name, line=dict(color=colour, dash="dash"),
            hovertemplate=f"{shape.name} linear state: %{{y:.4g}} MiB at any N<extra></extra>"))
    if tokens is not None:
        fig.add_vline(x=tokens, line=dict(color="black", dash="dot", width=1))
        fig.add_annotation(x=math.log10(tokens), y=1, yref="paper", showarrow=False, text=f"N = {tokens:,}",
                           xanchor="left", yanchor="bottom")
    fig.update_xaxes(type="log", title_text="tokens in context N")
    fig.update_yaxes(type="log", title_text="MiB (per sequence batch)")
    fig.update_layout(title=title or "KV cache grows with N; the linear-attention state does not",
                      height=height, font=FONT)
    return fig


def kv_cache_summary(shape: AttentionShape, tokens: int, *, batch: int = 1, dtype=2, d_phi: int | None = None,
                     include_z: bool = False) -> str:
    """One line: cache bytes at ``tokens``, state bytes, and the crossover N."""
    cache = cache_bytes(shape, tokens, batch=batch, dtype=dtype)
    state = state_bytes(shape, d_phi=d_phi, batch=batch, dtype=dtype, include_z=include_z)
    equal = crossover_tokens(shape, d_phi=d_phi, include_z=include_z)
    return (f"{shape.name}: KV cache at N = {tokens:,} is {format_bytes(cache)}; linear state "
            f"{format_bytes(state)} at any N; equal at N ≈ {equal:,}")


def render_assets(folder="assets", *, width: int = 1100, height: int = 480) -> list[Path]:
    """Write a PNG beside each shipped record file in ``folder``: *sweep*.json → two PNGs (forward,
    forward+backward), *decode*.json → one PNG.  Needs kaleido and a Chromium."""
    import kaleido

    kaleido.start_sync_server()
    folder = Path(folder)
    written = []
    try:
        for path in sorted(folder.glob("*.json")):
            res = Results.load(path)
            if path.stem.endswith("decode"):
                figs = {path.with_suffix(".png"): decode_figure(res)}
            else:
                modes = [m for m in ("forward", "forward+backward") if res.select(mode=m)]
                figs = {path.with_name(f"{path.stem}_{m.replace('+', '_')}.png"): timing_figure(res, mode=m)
                        for m in modes}
            for out, fig in figs.items():
                with warnings.catch_warnings():  # plotly passes kaleido options a running server ignores
                    warnings.filterwarnings("ignore", message="The kopts argument is ignored")
                    fig.write_image(out, width=width, height=height, scale=1)
                written.append(out)
    finally:
        kaleido.stop_sync_server()
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m linattn_edu.viz_timing [FOLDER]``: render PNGs of the records in FOLDER (default assets)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    for path in render_assets(argv[0] if argv else "assets"):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
