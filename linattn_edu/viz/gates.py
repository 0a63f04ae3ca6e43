"""Pictures for decay, gates and the delta rule: retrieval error, decay maps, gated vs delta states."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from ._arrays import as_array, max_abs
from ._style import (DIFF_SCALE, FALLBACK, NEUTRAL_COLOUR, OKABE_ITO, WEIGHT_SCALE, bar_marker, distinct_styles,
                     finish, subplots)
from .heatmaps import colorbar_at_right, heatmap_trace, square_cells

__all__ = ["retrieval_error", "decay_maps", "gated_delta_step"]


def retrieval_error(errors: Mapping[str, Sequence[float]], per_pair: Mapping[str, Sequence[float]], *, d: int,
                    n: int, height: int = 420) -> go.Figure:
    """Recall error of a d × d state holding n key→value pairs.

    errors: {rule: mean relative error ‖Sᵀk_i − v_i‖/‖v_i‖ after storing 1, 2, … pairs} (one list each);
    per_pair: {rule: the error of each of the n pairs stored now}. Left: error against the number of
    pairs with the capacity n = d marked; right: each pair's error at the chosen n.
    """
    if not errors:
        raise ValueError("errors must name at least one update rule; got none")
    fig = subplots(1, 2, [f"mean recall error vs pairs stored (state {d} × {d})",
                          f"each pair's recall error at n = {n}"], horizontal_spacing=0.12)
    looks = distinct_styles(errors)  # each rule its colour, dash and marker; its bars the dash's fill pattern
    for name, errs in errors.items():
        look = looks[name]
        e = as_array(errs, f"errors[{name!r}]", ndim=1)
        fig.add_trace(go.Scatter(x=list(range(1, len(e) + 1)), y=e, mode="lines+markers", name=name,
                                 line=dict(color=look.colour, dash=look.dash, width=2),
                                 marker=dict(color=look.colour, symbol=look.marker, size=7, maxdisplayed=16),
                                 legendgroup=name), 1, 1)
        p = as_array(per_pair[name], f"per_pair[{name!r}]", ndim=1)
        fig.add_trace(go.Bar(x=list(range(len(p))), y=p, name=name, marker=bar_marker(look), legendgroup=name,
                             showlegend=False), 1, 2)
    top = max(max_abs(as_array(e, "errors", ndim=1)) for e in errors.values())
    fig.add_trace(go.Scatter(x=[d, d], y=[0, max(top, 1e-3) * 1.05], mode="lines", name="n = d (capacity)",
                             line=dict(color=NEUTRAL_COLOUR, dash="dash")), 1, 1)
    fig.add_trace(go.Scatter(x=[n], y=[0], mode="markers", name="chosen n",
                             marker=dict(color=OKABE_ITO["black"], symbol="triangle-up", size=11)), 1, 1)
    fig.update_xaxes(title_text="pairs stored n", row=1, col=1)
    fig.update_yaxes(title_text="‖Sᵀk − v‖ / ‖v‖", rangemode="tozero", row=1, col=1)
    fig.update_xaxes(title_text="pair i (0 = oldest)", row=1, col=2)
    fig.update_yaxes(title_text="recall error", rangemode="tozero", row=1, col=2)
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=-0.2))
    summary = ", ".join(f"{k} {float(np.mean(as_array(per_pair[k], k))):.3f}" for k in per_pair)
    return finish(fig, f"Storing n = {n} pairs in a {d} × {d} state: mean recall error {summary}", height)




def decay_maps(maps: Mapping[str, object], *, height: int = 440) -> go.Figure:
    """Effective attention maps L_ij = exp(G_i − G_j) (i >= j) side by side, plus each map's last row.

    maps: {title: (N, N) matrix with entries in [0, 1]}. The last panel draws row N − 1 of each map:
    how much every past token still counts for the newest query.  Every axis has an explicit range
    (query 0 at the top), so the picture cannot turn upside down in an explorer's browser view.
    """
    if not maps:
        raise ValueError("maps must hold at least one (N, N) decay map; got none")
    arrays = {name: as_array(m, f"maps[{name!r}]", ndim=2) for name, m in maps.items()}
    shapes = {m.shape for m in arrays.values()}
    if len(shapes) != 1 or next(iter(shapes))[0] != next(iter(shapes))[1]:
        raise ValueError(f"maps must all be (N, N) with one N; got shapes {sorted(shapes)}")
    n = next(iter(shapes))[0]
    cols = len(arrays) + 1
    fig = subplots(1, cols, [*arrays, "last row: weight of each past token"], horizontal_spacing=0.08)
    for c, (name, m) in enumerate(arrays.items(), start=1):
        lower = [[float(x) if j <= i else None for j, x in enumerate(row)] for i, row in enumerate(m)]
        fig.add_trace(heatmap_trace(lower, name=name, colorscale=WEIGHT_SCALE, zmin=0.0, zmax=1.0,
                                    colorbar_title="exp(Gᵢ − Gⱼ)", showscale=c == 1,
                                    hover=("key j", "query i", "decay")), 1, c)
        fig.update_xaxes(title_text="key j", row=1, col=c)
        fig.update_yaxes(title_text="query i" if c == 1 else None, showticklabels=c == 1, row=1, col=c)
    square_cells(fig, cols - 1, (n, n))
    colorbar_at_right(fig.data[0].colorbar, fig, 1, cols, "weight exp(Gᵢ − Gⱼ)")
    for i, (name, m) in enumerate(arrays.items()):
        look = FALLBACK[i]  # map i: colour, dash and marker i of the course's fallback sequence
        fig.add_trace(go.Scatter(x=list(range(m.shape[1])), y=m[-1], mode="lines+markers", name=name,
                                 line=dict(color=look.colour, dash=look.dash),
                                 marker=dict(size=5, symbol=look.marker, color=look.colour)), 1, cols)
    fig.update_xaxes(title_text="key j", range=[-0.5, n - 0.5], autorange=False, row=1, col=cols)
    fig.update_yaxes(title_text="weight for the last query", range=[0, 1.05], autorange=False, row=1, col=cols)
    fig.update_layout(legend=dict(orientation="h", y=-0.2))
    memory = ", ".join(f"{name}: {float(m[-1].sum()):.1f}" for name, m in arrays.items())
    return finish(fig, f"Decay masks, N = {n}: tokens the last query remembers (the sum of its row)<br>"
                       f"<sup>{memory}</sup>", height)


def gated_delta_step(states: Mapping[str, object], recall_error: Mapping[str, Sequence[float]], t: int, *,
                     repeat_at: Sequence[int] = (), s_range: float | None = None, height: int = 460) -> go.Figure:
    """States of several update rules after token t, and how well each recalls the repeated key.

    states: {rule: S_t (d, d_v)}; recall_error: {rule: ‖S_sᵀk_A − v_A(s)‖ for every step s} where
    v_A(s) is the value most recently written under the repeated key A; repeat_at: the steps that
    write key A (drawn as dotted lines). ``s_range`` fixes the colour range (e.g. over all t).
    Each rule's curve has its own colour, dash and marker (:func:`._style.style`): gated and gated delta coincide
    until the repeat.  Every axis has an explicit range (key dim 0 at the top).
    """
    if not states:
        raise ValueError("states must name at least one update rule; got none")
    arrays = {name: as_array(s, f"states[{name!r}]", ndim=2) for name, s in states.items()}
    span = s_range if s_range is not None else max(max_abs(*arrays.values()), 1e-12)
    cols = len(arrays) + 1
    fig = subplots(1, cols, [f"{name}: Sₜ" for name in arrays] + ["recall error for the repeated key A"],
                   horizontal_spacing=0.07)
    for c, (name, s) in enumerate(arrays.items(), start=1):
        fig.add_trace(heatmap_trace(s, name=name, colorscale=DIFF_SCALE, zmin=-span, zmax=span,
                                    colorbar_title="entry of Sₜ", showscale=c == 1,
                                    hover=("value dim", "key dim", "S_t")), 1, c)
        fig.update_xaxes(title_text="value dim", row=1, col=c)
        fig.update_yaxes(title_text="key dim" if c == 1 else None, showticklabels=c == 1, row=1, col=c)
        fig.update_yaxes(range=[s.shape[0] - 0.5, -0.5], autorange=False, row=1, col=c)  # key dim 0 at the top
        fig.update_xaxes(range=[-0.5, s.shape[1] - 0.5], autorange=False, row=1, col=c)
    colorbar_at_right(fig.data[0].colorbar, fig, 1, cols, "entry of Sₜ (heatmaps)")
    top, steps = 0.0, 1
    looks = distinct_styles(recall_error)
    for name, errs in recall_error.items():
        e = as_array(errs, f"recall_error[{name!r}]", ndim=1)
        top, steps = max(top, max_abs(e)), max(steps, len(e))
        look = looks[name]
        fig.add_trace(go.Scatter(x=list(range(len(e))), y=e, mode="lines+markers", name=name,
                                 line=dict(color=look.colour, dash=look.dash),
                                 marker=dict(size=7, symbol=look.marker, color=look.colour, line=dict(width=1))),
                      1, cols)
    y_top = top * 1.08 + 0.02
    for r in repeat_at:
        fig.add_trace(go.Scatter(x=[r, r], y=[0, y_top], mode="lines", showlegend=False,
                                 line=dict(color=NEUTRAL_COLOUR, dash="dot"), name=f"key A written at {r}"),
                      1, cols)
    fig.add_trace(go.Scatter(x=[t, t], y=[0, y_top], mode="lines", name="now (t)",
                             line=dict(color=OKABE_ITO["black"], width=1)), 1, cols)
    fig.update_xaxes(title_text="step", range=[-0.5, steps - 0.5], autorange=False, row=1, col=cols)
    fig.update_yaxes(title_text="‖Sᵀk − latest value of A‖", range=[0, y_top], autorange=False, row=1, col=cols)
    fig.update_layout(legend=dict(orientation="h", y=-0.2))
    now = ", ".join(f"{name} {float(as_array(e, name)[t]):.3f}" for name, e in recall_error.items())
    return finish(fig, f"Step t = {t}: recall error for key A<br><sup>{now}</sup>", height)
