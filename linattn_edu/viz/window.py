"""Sliding-window attention: the allowed (query, key) band, the weights under it, and what it stores."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from ._arrays import as_array, max_abs
from ._style import OKABE_ITO, WEIGHT_SCALE, finish, style, subplots
from .heatmaps import colorbar_at_right, heatmap_trace, square_cells

__all__ = ["window_pattern"]


def window_pattern(
    mask,
    weights,
    *,
    window: int,
    causal: bool = False,
    global_tokens: Sequence[int] = (),
    ns: Sequence[int] | None = None,
) -> go.Figure:
    """Sliding-window attention: the allowed (query, key) pattern, the weights, and the memory cost.

    ``mask (N, N)`` bool (True = may attend), ``weights (N, N)`` the attention matrix under it.
    The third panel plots the scores stored against sequence length ``ns``: about
    ``N·w`` (causal) or ``N·(2w − 1)`` (two-sided) for the band plus ``2·g·N`` for g global tokens,
    versus dense ``N²``; the current N is marked with its exact count from the mask.
    """
    mk = as_array(mask, "mask", 2)
    w = as_array(weights, "weights", 2)
    if mk.shape != w.shape or mk.shape[0] != mk.shape[1]:
        raise ValueError(f"mask and weights must both be (N, N); got {mk.shape} and {w.shape}")
    n = mk.shape[0]
    allowed = int(mk.sum())
    ns = np.array(sorted({*(ns or [2 ** k for k in range(4, 17)]), n}), dtype=np.float64)  # (K,)
    per_query = window if causal else 2 * window - 1
    band = np.minimum(ns * per_query + 2 * len(global_tokens) * ns, ns ** 2)  # (K,) ≈ N·w
    fig = subplots(1, 3, titles=[f"allowed pairs (window {window}, {len(global_tokens)} global)",
                                 "attention weights", "attention scores stored vs N"],
                   horizontal_spacing=0.1)
    fig.add_trace(heatmap_trace(mk, name="mask", colorscale=[[0, "#f0f0f0"], [1, "#2a4d69"]], zmin=0, zmax=1,
                                colorbar_title="allowed", showscale=False,
                                hover=("key j", "query i", "allowed")), 1, 1)
    fig.add_trace(heatmap_trace(w, name="weights", colorscale=WEIGHT_SCALE, zmin=0.0, zmax=max_abs(w),
                                colorbar_title="weight"), 1, 2)
    colorbar_at_right(fig.data[1].colorbar, fig, 1, 3, "attention weight (panel 2)")
    for y, label, look in ((ns ** 2, "dense N²", style("softmax")), (band, "window ≈ N·w", style("window"))):
        fig.add_trace(go.Scatter(x=ns, y=y, mode="lines+markers", name=label,
                                 line=dict(color=look.colour, dash=look.dash),
                                 marker=dict(color=look.colour, symbol=look.marker, size=6)), 1, 3)
    fig.add_trace(go.Scatter(x=[n, n], y=[n ** 2, allowed], mode="markers", name=f"this N = {n}",
                             marker=dict(color=OKABE_ITO["black"], size=9, symbol="x")), 1, 3)
    square_cells(fig, 2, (n, n))
    for col in (1, 2):
        fig.update_xaxes(title_text="key position j", row=1, col=col)
    fig.update_yaxes(title_text="query position i", row=1, col=1)
    fig.update_yaxes(showticklabels=False, row=1, col=2)  # rows line up with panel 1
    fig.update_xaxes(title_text="sequence length N", type="log", row=1, col=3)
    fig.update_yaxes(type="log", row=1, col=3)  # its title is the panel title (an axis title would hit the colorbar)
    left = fig.get_subplot(1, 3).xaxis.domain[0]
    fig.update_layout(legend=dict(x=left + 0.01, y=1.0, xanchor="left", yanchor="top",
                                  bgcolor="rgba(255,255,255,0.7)"))  # top left of panel 3: the curves rise to the right
    title = (f"Sliding window, N = {n}: {allowed} of {n * n} pairs stored "
             f"({allowed / (n * n):.1%} of dense)")
    return finish(fig, title, 460)
