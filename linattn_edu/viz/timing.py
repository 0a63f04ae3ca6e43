"""Timing records (:mod:`linattn_edu.bench`) as figures: time and memory vs N, and the per-token decode step.

* :func:`timing_figure`: time vs N (log-log) per method, IQR error bars, theory curves c·N²d and
  c·Nd² fitted to the data, the chunkwise/SDPA crossover marked, and peak memory on a second
  panel (skipped points drawn as ✖ at their *predicted* memory, with the guard's message).
* :func:`decode_figure`: per-token decode step time and cache/state bytes vs context N.
"""

from __future__ import annotations

import math
from typing import Sequence

import plotly.graph_objects as go

from ..bench import METHODS, Results, crossover_n, fit_theory_constant
from ._style import FONT, OKABE_ITO, THEORY_COLOUR, Style, distinct_styles, subplots

__all__ = ["timing_figure", "decode_figure"]

MiB = 2**20
SKIPPED_LEGEND = "✖ skipped by the memory guard (at its predicted size)"


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


def _head(title: str, meta: dict) -> dict:
    sub = _subtitle(meta)
    return dict(text=title + (f"<br><sup>{sub}</sup>" if sub else ""), x=0.01, xanchor="left")


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


def _method_traces(fig: go.Figure, res: Results, method: str, mode: str, memory: bool, look: Style) -> bool:
    """The time line (and memory line, ✖ skips) of one method in its style; True when something was skipped."""
    colour = look.colour
    line, marker = dict(color=colour, dash=look.dash, width=2), dict(color=colour, symbol=look.marker, size=8)
    rows = sorted(res.select(ok=True, method=method, mode=mode), key=lambda r: r["n"])
    fig.add_trace(go.Scatter(
        x=[r["n"] for r in rows], y=[1e3 * r["median_s"] for r in rows], mode="lines+markers",
        error_y=dict(type="data", array=[1e3 * (r.get("iqr_s") or 0) / 2 for r in rows], thickness=1),
        name=_label(method), legendgroup=method, line=line, marker=marker,
        hovertemplate=f"{method}<br>N=%{{x}}<br>%{{y:.3g}} ms<extra></extra>"), row=1, col=1)
    if not memory:
        return False
    measured = [r for r in rows if r.get("peak_bytes") is not None]
    fig.add_trace(go.Scatter(
        x=[r["n"] for r in measured], y=[r["peak_bytes"] / MiB for r in measured], mode="lines+markers",
        name=_label(method), legendgroup=method, showlegend=False, line=line, marker=marker,
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
    return bool(skipped)


def timing_figure(records, *, mode: str = "forward", methods: Sequence[str] | None = None, theory: bool = True,
                  memory: bool = True, crossover: bool = True, title: str | None = None,
                  height: int = 480) -> go.Figure:
    """Median time (ms, IQR bars) vs N on log-log axes; optional peak-memory panel, theory fits, crossover.

    records: a :class:`~linattn_edu.bench.Results` (its metadata becomes the subtitle) or record dicts.
    Legend entries toggle a method on both panels (legendgroup = method); points the memory guard
    skipped are ✖ at their predicted bytes, with one legend entry saying so.
    """
    res = _results(records)
    if mode not in {r.get("mode") for r in res.records} and res.records:
        raise ValueError(f"mode must be one of {sorted({r.get('mode') for r in res.records})}; got {mode!r}")
    methods = [m for m in (methods or res.methods()) if res.select(method=m, mode=mode)]
    cols = 2 if memory else 1
    fig = subplots(1, cols, titles=("time per call (median, IQR bars)", "peak extra memory")[:cols],
                   horizontal_spacing=0.1)
    any_skipped = False
    looks = distinct_styles(methods, markers_only=True)  # a marker per method (and its dash): not colour alone
    for method in methods:
        any_skipped |= _method_traces(fig, res, method, mode, memory, looks[method])
    if any_skipped:
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=SKIPPED_LEGEND, legendgroup="skipped",
                                 marker=dict(symbol="x", size=10, color=OKABE_ITO["black"]), hoverinfo="skip"),
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
    fig.update_layout(title=_head(head, res.metadata), height=height, font=FONT,
                      legend=dict(groupclick="togglegroup"), margin=dict(t=90))
    return fig


def decode_figure(records, *, title: str | None = None, height: int = 440) -> go.Figure:
    """Per-token decode step (ms) and cache/state bytes vs context N: KV-cache softmax vs recurrent state."""
    res = _results(records)
    fig = subplots(1, 2, titles=("time per generated token", "what must be kept (cache or state)"),
                   horizontal_spacing=0.12)
    names = {"kv_cache": "softmax + KV cache", "recurrent": "linear attention state"}
    looks = distinct_styles(res.methods())
    for method in res.methods():
        ns, ts = res.series(method, "decode")
        _, iqr = res.series(method, "decode", key="iqr_s")
        _, nbytes = res.series(method, "decode", key="state_bytes")
        look = looks[method]
        line, marker = dict(color=look.colour, dash=look.dash, width=2), dict(symbol=look.marker, size=8)
        fig.add_trace(go.Scatter(x=ns, y=[1e3 * t for t in ts], mode="lines+markers", legendgroup=method,
                                 error_y=dict(type="data", array=[5e2 * q for q in iqr], thickness=1),
                                 name=names.get(method, method), line=line, marker=marker,
                                 hovertemplate="N=%{x}<br>%{y:.3g} ms/token<extra></extra>"), row=1, col=1)
        fig.add_trace(go.Scatter(x=ns, y=[b / MiB for b in nbytes], mode="lines+markers", legendgroup=method,
                                 name=names.get(method, method), showlegend=False, line=line, marker=marker,
                                 hovertemplate="N=%{x}<br>%{y:.3g} MiB<extra></extra>"), row=1, col=2)
    fig.update_xaxes(type="log", title_text="context N (tokens already seen)")
    fig.update_yaxes(type="log", title_text="ms per token", row=1, col=1)
    fig.update_yaxes(type="log", title_text="MiB", row=1, col=2)
    head = title or "Decoding one token at context N"
    fig.update_layout(title=_head(head, res.metadata), height=height, font=FONT, margin=dict(t=90))
    return fig
