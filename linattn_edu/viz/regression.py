"""Memory as test-time regression: each solver's recall error against n/d, and the map S each one fitted.

Top: the mean recall error ‖read(k_i) − v_i‖ over the pairs stored so far, against the number of pairs t
divided by the key dimension d (t/d = 1 is where d keys stop fitting without interference), one curve per
solver, each with its own colour, dash and marker (curves that coincide stay apparent).  Bottom: the fitted
maps S (d × d_v) of the solvers that keep one, each divided by its own largest |entry| (the panel title
gives that size), so their patterns compare on one colour scale whatever their magnitudes.
Every axis range is explicit; the heatmaps keep key dimension 0 at the top.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ._arrays import as_array
from ._style import CYCLE, DIFF_SCALE, FONT, GRID, NEUTRAL_COLOUR, colour, finish
from .heatmaps import colorbar_at_right, heatmap_trace, square_cells

__all__ = ["regression_figure", "SOLVER_STYLES", "solver_colours"]

#: one dash and marker per solver
SOLVER_STYLES = {
    "softmax": ("solid", "circle"),
    "additive": ("dash", "square"),
    "delta": ("dot", "diamond"),
    "gated delta": ("dashdot", "x"),
    "ridge (exact)": ("longdash", "triangle-up"),
}


def solver_colours(names: Sequence[str]) -> dict[str, str]:
    """The course colour of each solver (:func:`._style.colour`), the next unused cycle colour where two collide."""
    out: dict[str, str] = {}
    for i, name in enumerate(names):
        c = colour(name, i)
        if c in out.values():
            c = next(x for x in CYCLE if x not in out.values())
        out[name] = c
    return out


@lru_cache(maxsize=8)
def _grid(panels: int) -> go.Figure:
    """One wide panel on top, ``panels`` square panels below (make_subplots costs ~40 ms: built once)."""
    specs = [[{"colspan": panels}] + [None] * (panels - 1), [{} for _ in range(panels)]]
    fig = make_subplots(rows=2, cols=panels, specs=specs, row_heights=[0.45, 0.55], vertical_spacing=0.16,
                        horizontal_spacing=0.05, subplot_titles=[" "] * (panels + 1))
    fig.update_layout(margin=dict(l=60, r=30, t=80, b=55), font=FONT, plot_bgcolor="white", autosize=True)
    fig.update_xaxes(gridcolor=GRID, zerolinecolor=GRID)
    fig.update_yaxes(gridcolor=GRID, zerolinecolor=GRID)
    return fig


def regression_figure(curves: Mapping[str, Sequence[float]], states: Mapping[str, object], *, d: int, n: int,
                      title: str, height: int = 900) -> go.Figure:
    """Recall error vs t/d for every solver (t = 1 … n pairs stored) and each fitted S at n.

    curves: {solver: mean recall error after 1, 2, …, n pairs}; states: {solver: S (d, d_v) after n pairs}
    (a subset of the solvers: softmax keeps every pair instead of a map); d: the key dimension.
    """
    if not curves or not states:
        raise ValueError("curves and states must each name at least one solver; got none")
    arrays = {name: as_array(c, f"curves[{name!r}]", ndim=1) for name, c in curves.items()}
    maps = {name: as_array(s, f"states[{name!r}]", ndim=2) for name, s in states.items()}
    if any(len(c) != n for c in arrays.values()):
        raise ValueError(f"every curve must hold n = {n} errors (after 1 … n pairs); got lengths "
                         f"{[len(c) for c in arrays.values()]}")
    fig = go.Figure(_grid(len(maps)))
    sizes = {name: max(float(np.abs(s).max()), 1e-300) for name, s in maps.items()}
    titles = [f"mean recall error after t pairs (keys in d = {d} dimensions)"]
    titles += [f"{name}: S / {sizes[name]:.3g}" for name in maps]
    for annotation, text in zip(fig.layout.annotations, titles):
        annotation.text = text
    colours = solver_colours(list(arrays))
    x = (np.arange(1, n + 1) / d).round(6).tolist()
    top = max(1.05, max(float(np.nanmax(c)) for c in arrays.values()) * 1.08)
    for i, (name, c) in enumerate(arrays.items()):
        dash, symbol = SOLVER_STYLES.get(name, ("solid", "circle"))
        fig.add_trace(go.Scatter(x=x, y=c.tolist(), mode="lines+markers", name=name, legendgroup=name,
                                 line=dict(color=colours[name], dash=dash, width=2),
                                 marker=dict(symbol=symbol, size=7, color=colours[name], line=dict(width=1)),
                                 hovertemplate=f"{name}<br>t/d = %{{x:.3g}}<br>error %{{y:.4g}}<extra></extra>"),
                      1, 1)
    fig.add_trace(go.Scatter(x=[1, 1], y=[0, top], mode="lines", name="t = d (d keys fill the space)",
                             line=dict(color=NEUTRAL_COLOUR, dash="dash", width=1)), 1, 1)
    x_max = max(n, 4 * d) / d * 1.03  # at least t/d = 4: the curves grow to the right as n moves
    fig.update_xaxes(title_text="pairs stored / key dimension  (t / d)", range=[0, x_max], autorange=False,
                     row=1, col=1)
    fig.update_yaxes(title_text="mean ‖read(kᵢ) − vᵢ‖", range=[0, top], autorange=False, row=1, col=1)
    for c, (name, s) in enumerate(maps.items(), start=1):
        fig.add_trace(heatmap_trace((s / sizes[name]).tolist(), name=f"{name} S", colorscale=DIFF_SCALE, zmin=-1.0,
                                    zmax=1.0, colorbar_title="S / max |S|", showscale=c == 1,
                                    hover=("value dim", "key dim", "S / max|S|")), 2, c)
        fig.update_xaxes(title_text="value dim", row=2, col=c)
        fig.update_yaxes(title_text="key dim" if c == 1 else None, showticklabels=c == 1, row=2, col=c)
    square_cells(fig, len(maps), next(iter(maps.values())).shape, row=2)
    colorbar_at_right(fig.data[len(arrays) + 1].colorbar, fig, 2, len(maps), "S / max |S|")
    top_panel = fig.layout.yaxis.domain  # the legend sits in the right margin beside the error panel
    fig.update_layout(legend=dict(x=1.02, xanchor="left", y=top_panel[1], yanchor="top"))
    return finish(fig, title, height)
