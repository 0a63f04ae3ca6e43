"""Matrix pictures: one labelled heatmap, one attention map, softmax vs linear side by side, row profiles.

Conventions: rows = query position i (top to bottom), columns = key position j, colour = weight A[i, j];
cells are square (the y axis is anchored to the x axis); panels meant to be compared by eye share one
colour axis, and differences use a diverging scale centred on 0.  Above ``SMOOTH_ABOVE`` rows a panel
is drawn as one image (``zsmooth="fast"``) so that sub-pixel cells blur instead of turning to moiré.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from ._arrays import as_array, max_abs, position_labels
from ._style import CYCLE, DIFF_SCALE, MARKERS, OKABE_ITO, WEIGHT_SCALE, colorbar_beside, finish, subplots

__all__ = ["heatmap", "attention_map", "attention_comparison", "attention_rows", "heatmap_trace", "colorbar_at_right"]

SMOOTH_ABOVE = 96  # rows; beyond this a 3-panel row has under ~3 px per cell


def heatmap_trace(
    z,
    *,
    name: str,
    colorscale: str,
    zmin: float,
    zmax: float,
    colorbar_title: str,
    x_labels: list | None = None,
    y_labels: list | None = None,
    showscale: bool = True,
    hover: tuple[str, str, str] = ("key j", "query i", "weight"),
) -> go.Heatmap:
    """A heatmap of z (rows, cols): a matrix, or nested lists where None leaves a gap (NaN is not JSON)."""
    x = x_labels if x_labels is not None else list(range(len(z[0])))
    y = y_labels if y_labels is not None else list(range(len(z)))
    return go.Heatmap(
        z=z, x=x, y=y, name=name, colorscale=colorscale, zmin=zmin, zmax=zmax, showscale=showscale,
        colorbar=dict(title=dict(text=colorbar_title), thickness=12),
        zsmooth="fast" if len(z) > SMOOTH_ABOVE and x_labels is None else False,
        hovertemplate=f"{hover[0]}=%{{x}}<br>{hover[1]}=%{{y}}<br>{hover[2]}=%{{z:.4g}}<extra>{name}</extra>",
    )


def colorbar_at_right(colorbar, fig: go.Figure, row: int, col: int, title: str) -> None:
    """Put ``colorbar`` in the right margin of the figure, as tall as panel (row, col).

    Beside the last panel rather than beside its heatmap: a colourbar between two panels prints over the
    next panel's axis title and ticks at any width narrower than its fixed pixel size allows, while the
    right margin grows to fit it (plotly's automargin).
    """
    (y0, y1) = fig.get_subplot(row, col).yaxis.domain
    colorbar.update(x=1.0, xanchor="left", xpad=12, y=(y0 + y1) / 2, yanchor="middle", len=y1 - y0,
                    thickness=12, title=dict(text=title, side="right"))


def colorbar_below(colorbar, fig: go.Figure, row: int, cols: tuple[int, int], title: str) -> None:
    """A horizontal ``colorbar`` under panels ``cols[0]…cols[1]`` of ``row``, in the figure's bottom margin.

    Placed in container coordinates (a fraction of the whole figure's height, which is fixed: the same
    pixels at any width), so it stays clear of every panel, tick label and axis title at any width; the caller
    leaves a bottom margin of about 120 px for it.
    """
    left, right = fig.get_subplot(row, cols[0]).xaxis.domain[0], fig.get_subplot(row, cols[1]).xaxis.domain[1]
    colorbar.update(orientation="h", x=(left + right) / 2, xanchor="center", len=(right - left) * 0.9,
                    yref="container", y=0.01, ypad=0, yanchor="bottom", thickness=10,
                    title=dict(text=title, side="top"))


def square_cells(fig: go.Figure, cols: int, shape: tuple[int, int], row: int = 1) -> None:
    """Make the heatmap panels 1…``cols`` of ``row`` draw square cells, query 0 at the top.

    Each y axis is anchored to its x axis and both get explicit ranges (``shape`` = (rows, cols) of the
    matrix, cells centred on integers): the rows run downwards by a reversed range, never by
    ``autorange="reversed"``, which plotly.js re-autoranges to ascending after a few relayouts of an
    explorer (seen in Chromium: the decay map turned upside down after head 0 → 1 → 0).
    """
    if shape is None or len(shape) != 2:
        raise ValueError(f"shape must be the (rows, cols) of the drawn matrix; got {shape!r}")
    for col in range(1, cols + 1):
        ref = fig.get_subplot(row, col)
        x_name = ref.xaxis.plotly_name.replace("axis", "")
        fig.update_yaxes(scaleanchor=x_name, scaleratio=1, constrain="domain", autorange=False,
                         range=[shape[0] - 0.5, -0.5], row=row, col=col)
        fig.update_xaxes(constrain="domain", autorange=False, range=[-0.5, shape[1] - 0.5], row=row, col=col)


def heatmap(
    matrix,
    *,
    title: str,
    x_title: str,
    y_title: str,
    colorbar_title: str,
    zmin: float | None = None,
    zmax: float | None = None,
    colorscale: str = WEIGHT_SCALE,
    x_labels: Sequence[str] | None = None,
    y_labels: Sequence[str] | None = None,
    height: int = 420,
) -> go.Figure:
    """One labelled heatmap of a matrix ``(rows, cols)``; row 0 drawn at the top.

    The one helper every chapter's matrix picture goes through (d2l's ``show_heatmaps``).
    ``zmin``/``zmax`` default to the matrix range; pass them to share a scale across figures.
    """
    z = as_array(matrix, "matrix", ndim=2)
    lo = float(np.nanmin(z)) if zmin is None else zmin
    hi = float(np.nanmax(z)) if zmax is None else zmax
    trace = heatmap_trace(
        z, name=title, colorscale=colorscale, zmin=lo, zmax=hi, colorbar_title=colorbar_title,
        x_labels=position_labels(x_labels, z.shape[1], "x_labels"),
        y_labels=position_labels(y_labels, z.shape[0], "y_labels"),
        hover=(x_title, y_title, colorbar_title),
    )
    fig = subplots(1, 1)
    fig.add_trace(trace)
    fig.update_xaxes(title_text=x_title, side="bottom")
    fig.update_yaxes(title_text=y_title, autorange="reversed")  # drawn once (no explorer uses it): query 0 on top
    return finish(fig, title, height)


def attention_map(weights, *, title: str = "Attention weights", labels: Sequence[str] | None = None,
                  zmax: float | None = None) -> go.Figure:
    """Heatmap of one attention matrix ``weights (N, M)``: query position i × key position j."""
    w = as_array(weights, "weights", ndim=2)
    return heatmap(w, title=title, x_title="key position j", y_title="query position i", colorbar_title="weight",
                   zmin=0.0, zmax=max_abs(w) if zmax is None else zmax, x_labels=labels, y_labels=labels)


def _comparison_inputs(softmax_weights, linear_weights):
    p = as_array(softmax_weights, "softmax_weights", ndim=2)
    a = as_array(linear_weights, "linear_weights", ndim=2)
    if p.shape != a.shape:
        raise ValueError(f"linear_weights must match softmax_weights {p.shape}; got {a.shape}")
    return p, a


def _row_error_title(linear_name: str, n: int, p: np.ndarray, a: np.ndarray) -> str:
    row_err = np.abs(a - p).sum(axis=-1)  # (N,)
    return (f"Softmax vs {linear_name} attention, N = {n}: row error ‖A_i − P_i‖₁ "
            f"max {row_err.max():.3g}, mean {row_err.mean():.3g}")


def attention_comparison(
    softmax_weights,
    linear_weights,
    *,
    linear_name: str = "linear",
    labels: Sequence[str] | None = None,
    title: str | None = None,
) -> go.Figure:
    """Softmax attention, the linear-attention matrix for the same Q, K, and their difference.

    Panels: ``P = softmax(QKᵀ/√d)``, ``A = φ(Q)φ(K)ᵀ / row sums`` (both ``(N, N)``, one shared
    colour axis from 0 to the larger maximum), and ``A − P`` on a diverging scale centred on 0.
    The title reports the row error ``‖A_i − P_i‖₁`` (max and mean over rows i).
    """
    p, a = _comparison_inputs(softmax_weights, linear_weights)
    n = p.shape[0]
    ticks = position_labels(labels, n, "labels") if labels is not None and p.shape[0] == p.shape[1] else None
    diff = a - p  # (N, N)
    top = max(max_abs(p), max_abs(a))
    span = max_abs(diff)
    fig = subplots(1, 3, titles=["softmax  P", f"{linear_name}  A", "difference  A − P"], horizontal_spacing=0.08)
    fig.add_trace(heatmap_trace(p, name="softmax", colorscale=WEIGHT_SCALE, zmin=0.0, zmax=top,
                                colorbar_title="weight", x_labels=ticks, y_labels=ticks, showscale=False), 1, 1)
    fig.add_trace(heatmap_trace(a, name=linear_name, colorscale=WEIGHT_SCALE, zmin=0.0, zmax=top,
                                colorbar_title="weight", x_labels=ticks, y_labels=ticks), 1, 2)
    fig.add_trace(heatmap_trace(diff, name="difference", colorscale=DIFF_SCALE, zmin=-span, zmax=span,
                                colorbar_title="A − P", x_labels=ticks, y_labels=ticks,
                                hover=("key j", "query i", "A − P")), 1, 3)
    colorbar_below(fig.data[1].colorbar, fig, 1, (1, 2), "weight (P and A)")
    colorbar_below(fig.data[2].colorbar, fig, 1, (3, 3), "A − P")
    fig.update_layout(margin=dict(b=120))  # room for the two colourbars under the x-axis titles
    fig.update_xaxes(title_text="key position j")
    square_cells(fig, 3, p.shape)
    fig.update_yaxes(title_text="query position i", col=1)
    fig.update_yaxes(showticklabels=False, col=2)  # rows line up with panel 1
    fig.update_yaxes(showticklabels=False, col=3)
    return finish(fig, title or _row_error_title(linear_name, n, p, a), 480)


def attention_rows(
    softmax_weights,
    linear_weights,
    *,
    linear_name: str = "linear",
    rows: Sequence[int] | None = None,
    title: str | None = None,
) -> go.Figure:
    """Row profiles: weight against key position j for a few query rows i, softmax solid, linear dashed.

    The view for diffuse maps, where a heatmap is one flat colour: ``P[i, :]`` and ``A[i, :]`` as curves
    (one colour per row i).  ``rows`` defaults to 4 rows spread over the sequence.
    """
    p, a = _comparison_inputs(softmax_weights, linear_weights)
    n, m = p.shape
    if rows is None:
        rows = sorted({round(f * (n - 1)) for f in (0.0, 1 / 3, 2 / 3, 1.0)})
    rows = list(rows)
    if not rows or any(not 0 <= int(i) < n for i in rows):
        raise ValueError(f"rows must be query indices in [0, {n - 1}]; got {rows}")
    fig = subplots(1, 1)
    keys = list(range(m))
    for idx, i in enumerate(rows):
        col, symbol = CYCLE[idx % len(CYCLE)], MARKERS[idx % len(MARKERS)]  # a colour and a marker per row
        marker = dict(color=col, symbol=symbol, size=7, maxdisplayed=12)
        fig.add_trace(go.Scatter(x=keys, y=p[i], mode="lines+markers", name=f"row i = {i}: softmax P",
                                 legendgroup=f"row{i}", line=dict(color=col, width=2), marker=marker))
        fig.add_trace(go.Scatter(x=keys, y=a[i], mode="lines+markers", name=f"row i = {i}: {linear_name} A",
                                 legendgroup=f"row{i}", line=dict(color=col, width=2, dash="dash"),
                                 marker={**marker, "symbol": symbol + "-open"}))
    fig.add_trace(go.Scatter(x=[0, m - 1], y=[1.0 / m, 1.0 / m], mode="lines", name="uniform 1/N",
                             line=dict(color=OKABE_ITO["black"], width=1, dash="dot")))
    fig.update_xaxes(title_text="key position j")
    fig.update_yaxes(title_text="weight", rangemode="tozero")
    fig.update_layout(legend=dict(x=1.01, y=1.0, xanchor="left"))
    return finish(fig, title or _row_error_title(linear_name, n, p, a) + "<br><sup>solid: softmax P, dashed: "
                  f"{linear_name} A, one colour per query row</sup>", 480)

