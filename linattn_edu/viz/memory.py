"""What a decoder keeps: KV-cache bytes vs tokens for real model shapes, against the constant linear state."""

from __future__ import annotations

import math
from typing import Sequence

import plotly.graph_objects as go

from ..memory import PRESETS, AttentionShape, cache_bytes, crossover_tokens, format_bytes, state_bytes
from ._style import FONT, MODEL_STYLES, OKABE_ITO, STATE_DASHES, Style, distinct_styles, finish, subplots

__all__ = ["kv_cache_figure", "kv_cache_summary"]

MiB = 2**20
_PRESET_BY_NAME = {shape.name: key for key, shape in PRESETS.items()}


def _model_styles(shapes: Sequence[AttentionShape]) -> list[Style]:
    """One style per model line: a preset's own (by its memory.PRESETS key), any other a spare one."""
    keys = [_PRESET_BY_NAME.get(s.name) if _PRESET_BY_NAME.get(s.name) in MODEL_STYLES else s.name for s in shapes]
    looks = distinct_styles(keys)
    return [looks[k] for k in keys]


def kv_cache_figure(shapes: Sequence[AttentionShape], *, tokens: int | None = None, tokens_max: int = 131072,
                    batch: int = 1, dtype=2, d_phi: int | None = None, include_z: bool = False,
                    title: str | None = None, height: int = 460) -> go.Figure:
    """KV-cache bytes vs tokens (solid, one per model) against each model's linear state (flat).

    Each model keeps its colour and marker from :mod:`._style` (markers on both of its lines); its state line
    has its own dash pattern, so two models with the same state size (e.g. Llama-2-7B and Llama-3-8B, same layers,
    heads and head dim) stay visible as two lines.  ``tokens`` marks one context length with a
    vertical line; d_phi defaults to head_dim.
    """
    if not shapes or not all(isinstance(s, AttentionShape) for s in shapes):
        raise TypeError("shapes must be a non-empty sequence of memory.AttentionShape")
    if isinstance(tokens_max, bool) or not isinstance(tokens_max, int) or tokens_max < 2:
        raise ValueError(f"tokens_max must be an int >= 2; got {tokens_max!r}")
    grid = sorted({max(1, round(2 ** (i / 4))) for i in range(int(4 * math.log2(tokens_max)) + 1)} | {tokens_max})
    fig = subplots(1, 1)
    state_shapes: set[tuple[str, str]] = set()
    for i, (shape, look) in enumerate(zip(shapes, _model_styles(shapes))):
        col = look.colour
        dashes = STATE_DASHES[i % len(STATE_DASHES):] + STATE_DASHES[:i % len(STATE_DASHES)]
        state_dash = next((d for d in dashes if (d, look.marker) not in state_shapes), dashes[0])
        state_shapes.add((state_dash, look.marker))
        fig.add_trace(go.Scatter(
            x=grid, y=[cache_bytes(shape, n, batch=batch, dtype=dtype) / MiB for n in grid], mode="lines+markers",
            name=f"{shape.name} KV cache ({shape.kind})", legendgroup=shape.name, line=dict(color=col, dash=look.dash),
            marker=dict(symbol=look.marker, size=8, color=col, maxdisplayed=7),
            hovertemplate=f"{shape.name}<br>N=%{{x}}<br>%{{y:.4g}} MiB<extra></extra>"))
        s = state_bytes(shape, d_phi=d_phi, batch=batch, dtype=dtype, include_z=include_z) / MiB
        # markers at staggered positions along the flat line, so coinciding lines show both
        marks = [grid[0]] + [grid[(len(grid) * (4 * k + 2 + i % 2)) // 16] for k in range(4)] + [grid[-1]]
        fig.add_trace(go.Scatter(
            x=marks, y=[s] * len(marks), mode="lines+markers", name=f"{shape.name} linear state",
            legendgroup=shape.name, line=dict(color=col, dash=state_dash, width=2),
            marker=dict(symbol=look.marker + "-open", size=8, color=col),
            hovertemplate=f"{shape.name} linear state: %{{y:.4g}} MiB at any N<extra></extra>"))
    if tokens is not None:
        fig.add_vline(x=tokens, line=dict(color=OKABE_ITO["black"], dash="dot", width=1))
        fig.add_annotation(x=math.log10(tokens), y=1, yref="paper", showarrow=False, text=f"N = {tokens:,}",
                           xanchor="left", yanchor="bottom")
    fig.update_xaxes(type="log", title_text="tokens in context N")
    fig.update_yaxes(type="log", title_text="MiB (per sequence batch)")
    fig.update_layout(font=FONT)
    return finish(fig, title or "KV cache grows with N; the linear-attention state does not", height)


def kv_cache_summary(shape: AttentionShape, tokens: int, *, batch: int = 1, dtype=2, d_phi: int | None = None,
                     include_z: bool = False) -> str:
    """One line: cache bytes at ``tokens``, state bytes, and the crossover N."""
    cache = cache_bytes(shape, tokens, batch=batch, dtype=dtype)
    state = state_bytes(shape, d_phi=d_phi, batch=batch, dtype=dtype, include_z=include_z)
    equal = crossover_tokens(shape, d_phi=d_phi, include_z=include_z)
    return (f"{shape.name}: KV cache at N = {tokens:,} is {format_bytes(cache)}; linear state "
            f"{format_bytes(state)} at any N; equal at N ≈ {equal:,}")
