"""Attention as kernel smoothing (Nadaraya–Watson): the fit, the data, and one query's weights, in 1-D and 2-D."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from ._arrays import as_array, max_abs
from ._style import DIFF_SCALE, LINEAR_COLOUR, NEUTRAL_COLOUR, OKABE_ITO, SOFTMAX_COLOUR, WEIGHT_SCALE, colorbar_beside, \
    finish, subplots

__all__ = ["kernel_smoother_1d", "kernel_smoother_2d"]

NO_WEIGHT = "no key has weight > 0 for this query (every κ is 0): the output falls back to 0"


def _no_weight_note(fig: go.Figure, w: np.ndarray, xref: str, yref: str) -> None:
    """Say so when a query's weights are all zero (a boxcar with no key in reach), instead of an empty panel."""
    if not np.any(w > 0):
        fig.add_annotation(text=NO_WEIGHT, showarrow=False, x=0.5, y=0.5, xref=xref, yref=yref,
                           bgcolor="rgba(255,255,255,0.85)", font=dict(color="#a00"))


def kernel_smoother_1d(
    x,
    y,
    grid,
    fit,
    weights,
    query: float,
    *,
    truth=None,
    kernel_name: str = "kernel",
) -> go.Figure:
    """Nadaraya–Watson regression in 1-D: ``f(x*) = Σ_j κ(x*, x_j) y_j / Σ_j κ(x*, x_j)``.

    ``x, y (M,)`` the data (keys / values), ``grid, fit (G,)`` the fitted curve, ``weights (M,)`` the
    normalised weights of the selected ``query`` (a row of the attention matrix), ``truth (G,)``
    optional.  Top: data coloured by weight, fit, truth and the query; bottom: weight per key.
    """
    xs, ys = as_array(x, "x", 1), as_array(y, "y", 1)
    g, f = as_array(grid, "grid", 1), as_array(fit, "fit", 1)
    w = as_array(weights, "weights", 1)
    if xs.shape != ys.shape or w.shape != xs.shape:
        raise ValueError(f"x, y, weights must all be (M,); got {xs.shape}, {ys.shape}, {w.shape}")
    if g.shape != f.shape:
        raise ValueError(f"grid and fit must both be (G,); got {g.shape} and {f.shape}")
    fq = float(np.sum(w * ys)) if np.isfinite(w).all() else float("nan")
    fig = subplots(2, 1, titles=[f"fit with the {kernel_name} kernel",
                                 f"weights κ(x*, x_j) / Σ κ for the query x* = {query:.2f}"],
                   shared_xaxes=True, row_heights=(0.65, 0.35), vertical_spacing=0.08)
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name="data (x_j, y_j) = (key, value)",
                             marker=dict(color=w, colorscale=WEIGHT_SCALE, cmin=0.0, cmax=max_abs(w), size=8,
                                         colorbar=dict(title=dict(text="weight")),
                                         line=dict(width=0.5, color="#333"))), 1, 1)
    fig.add_trace(go.Scatter(x=g, y=f, mode="lines", name="Nadaraya–Watson fit",
                             line=dict(color=LINEAR_COLOUR, width=2.5)), 1, 1)
    if truth is not None:
        tr = as_array(truth, "truth", 1)
        fig.add_trace(go.Scatter(x=g, y=tr, mode="lines", name="true function",
                                 line=dict(color=NEUTRAL_COLOUR, dash="dot")), 1, 1)
    fig.add_trace(go.Scatter(x=[query], y=[fq], mode="markers", name="query x*, its output",
                             marker=dict(symbol="x", size=13, color=OKABE_ITO["black"])), 1, 1)
    fig.add_trace(go.Bar(x=xs, y=w, name="weight per key", marker_color=SOFTMAX_COLOUR, showlegend=False,
                         width=(xs.max() - xs.min()) / max(4 * len(xs), 1) if len(xs) > 1 else None), 2, 1)
    colorbar_beside(fig, fig.data[0].marker.colorbar, 1, 1)
    fig.add_vline(x=query, line=dict(color="black", dash="dash", width=1))
    _no_weight_note(fig, w, "x2 domain", "y2 domain")
    fig.update_xaxes(title_text="key position x (input)", row=2, col=1)
    fig.update_yaxes(title_text="value y", row=1, col=1)
    fig.update_yaxes(title_text="weight", row=2, col=1, rangemode="tozero")
    fig.update_layout(legend=dict(x=1.02, y=0.0, xanchor="left", yanchor="bottom"))  # beside the weights panel
    return finish(fig, f"Attention as kernel smoothing: {kernel_name} kernel, output at x* = {fq:.3f}", 560)


def kernel_smoother_2d(
    x,
    y,
    grid_axis,
    fit,
    weights,
    query: Sequence[float],
    *,
    kernel_name: str = "kernel",
) -> go.Figure:
    """Nadaraya–Watson regression in 2-D: the fitted field over a grid and one query's weights.

    ``x (M, 2)`` key positions, ``y (M,)`` values, ``grid_axis (G,)`` the grid coordinate on both
    axes, ``fit (G, G)`` with ``fit[r, c] = f(grid_axis[c], grid_axis[r])``, ``weights (M,)`` the
    normalised weights of the ``query (2,)``.  Left: fitted field + data; right: every key as a grey
    dot, sized and coloured by its weight (so the panel is never empty, even where weights vanish).
    """
    xs = as_array(x, "x", 2)
    ys, w = as_array(y, "y", 1), as_array(weights, "weights", 1)
    g, f = as_array(grid_axis, "grid_axis", 1), as_array(fit, "fit", 2)
    if xs.shape[1] != 2 or ys.shape[0] != xs.shape[0] or w.shape != ys.shape:
        raise ValueError(f"x must be (M, 2), y and weights (M,); got {xs.shape}, {ys.shape}, {w.shape}")
    if f.shape != (g.shape[0], g.shape[0]):
        raise ValueError(f"fit must be (G, G) = {(g.shape[0],) * 2}; got {f.shape}")
    fq = float(np.sum(w * ys)) if np.isfinite(w).all() else float("nan")
    span = max_abs(ys, f)
    fig = subplots(1, 2, titles=[f"fitted field ({kernel_name} kernel)",
                                 f"weights for the query ({query[0]:.2f}, {query[1]:.2f})"],
                   horizontal_spacing=0.14)
    fig.add_trace(go.Heatmap(x=g, y=g, z=f, colorscale=DIFF_SCALE, zmin=-span, zmax=span, name="fit",
                             colorbar=dict(title=dict(text="value y"))), 1, 1)
    fig.add_trace(go.Scatter(x=xs[:, 0], y=xs[:, 1], mode="markers", name="data",
                             marker=dict(color=ys, colorscale=DIFF_SCALE, cmin=-span, cmax=span, size=7,
                                         line=dict(width=0.7, color="#333"))), 1, 1)
    top = max_abs(w)
    fig.add_trace(go.Scatter(x=xs[:, 0], y=xs[:, 1], mode="markers", name="weight per key",
                             marker=dict(color=w, colorscale=WEIGHT_SCALE, cmin=0.0, cmax=top,
                                         size=5 + 25 * np.sqrt(np.clip(w, 0, None) / top),
                                         line=dict(width=0.5, color="#333"),
                                         colorbar=dict(title=dict(text="weight")))), 1, 2)
    colorbar_beside(fig, fig.data[0].colorbar, 1, 1)
    colorbar_beside(fig, fig.data[2].marker.colorbar, 1, 2)
    for col in (1, 2):
        fig.add_trace(go.Scatter(x=[query[0]], y=[query[1]], mode="markers", name="query",
                                 marker=dict(symbol="x", size=13, color=OKABE_ITO["black"]), showlegend=col == 1),
                      1, col)
        fig.update_xaxes(title_text="x₁ (key position)", range=[g.min(), g.max()], row=1, col=col)
        fig.update_yaxes(title_text="x₂", range=[g.min(), g.max()], scaleanchor=f"x{'' if col == 1 else col}",
                         constrain="domain", row=1, col=col)
    _no_weight_note(fig, w, "x2 domain", "y2 domain")
    fig.update_layout(showlegend=False)
    return finish(fig, f"Attention as kernel smoothing in 2-D: {kernel_name} kernel, output at the query = {fq:.3f}",
                  500)
