"""Random features: how well φ(q)ᵀφ(k) estimates the exp kernel, and how the error falls with m."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from ._arrays import as_array
from ._style import NEUTRAL_COLOUR, OKABE_ITO, colour, distinct_styles, finish, subplots

__all__ = ["feature_map_approximation", "scatter_range", "clip_to_range"]

PAD = 0.15  # head room above the scatter's 99th percentile


def scatter_range(exact: np.ndarray, estimate: np.ndarray) -> tuple[float, float]:
    """Axis range of the estimate-vs-exact scatter: 0 … 99th percentile of the exact values (+15 %).

    It depends on the exact kernel only, so it is the same for every m and every draw of ω: one large
    value cannot rescale the panel.  Room below 0 is left when some estimate is negative (trig features).
    """
    hi = float(np.percentile(exact, 99)) * (1 + PAD) if exact.size else 1.0
    hi = hi if hi > 0 else 1.0
    lo = -PAD * hi if np.any(estimate < 0) else -0.03 * hi
    return lo, hi


def clip_to_range(values: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """(values clipped into [lo, hi], −1/0/+1 per value: below / inside / above)."""
    side = np.where(values < lo, -1, np.where(values > hi, 1, 0))
    return np.clip(values, lo, hi), side


def feature_map_approximation(
    exact,
    estimate,
    ms: Sequence[int],
    errors: Mapping[str, Sequence[float]],
    m: int,
    *,
    method: str = "FAVOR+",
    this_draw: float | None = None,
) -> go.Figure:
    """Random-feature estimate of the exp kernel, and its error against the number of features m.

    Left: ``φ(q)ᵀφ(k)`` against the exact ``exp(qᵀk/√d)`` for every (q, k) pair (flattened; the
    diagonal y = x is perfect).  Both axes span 0 … the 99th percentile of the exact values (+15 %), the
    same for every m, so one outlier cannot rescale the panel: pairs beyond it are drawn at the edge as
    ▲ ▼ ▶ and counted in a note.  Right: relative error against ``ms`` on log-log axes, one line per entry of
    ``errors`` ("orthogonal", "iid": the course colours of :mod:`._style`), with a ``1/√m`` guide
    through the first point, the current ``m`` marked, and ``this_draw`` as a cross at m.
    """
    ex = as_array(exact, "exact").ravel()
    es = as_array(estimate, "estimate").ravel()
    if ex.shape != es.shape:
        raise ValueError(f"estimate must have the shape of exact ({ex.size} values); got {es.size}")
    ms_arr = as_array(ms, "ms", 1)
    if np.any(ms_arr <= 0):
        raise ValueError(f"ms must be positive feature counts; got {list(ms)}")
    rel = float(np.mean(np.abs(es - ex)) / max(float(np.mean(np.abs(ex))), 1e-300))
    neg = float(np.mean(es < 0))
    lo, hi = scatter_range(ex, es)
    shown_x, side_x = clip_to_range(ex, lo, hi)
    shown, side = clip_to_range(es, lo, hi)
    outside = int(np.count_nonzero((side != 0) | (side_x != 0)))
    fig = subplots(1, 2, titles=[f"estimate vs exact kernel (m = {m})", "relative error vs number of features m"],
                   horizontal_spacing=0.12)
    symbols = np.where(side_x > 0, "triangle-right", np.where(side > 0, "triangle-up",
                       np.where(side < 0, "triangle-down", "circle"))).tolist()
    fig.add_trace(go.Scattergl(x=shown_x, y=shown, mode="markers", name="(q, k) pairs", showlegend=False,
                               customdata=np.stack([ex, es], axis=-1),
                               hovertemplate="exact %{customdata[0]:.4g}<br>estimate %{customdata[1]:.4g}"
                                             "<extra></extra>",
                               marker=dict(size=5, color=colour(method.lower().replace("trigonometric", "trig")),
                                           opacity=0.5, symbol=symbols)), 1, 1)
    if outside:
        fig.add_annotation(text=f"{outside} of {ex.size} pairs beyond the axes, drawn at the edge (▲ ▼ ▶)",
                           xref="x domain", yref="y domain", x=0.02, y=0.98, xanchor="left", yanchor="top",
                           showarrow=False, font=dict(size=11), bgcolor="rgba(255,255,255,0.8)")
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="exact (y = x)", showlegend=False,
                             line=dict(color=OKABE_ITO["black"], dash="dash", width=1)), 1, 1)
    first = None
    looks = distinct_styles(errors)  # orthogonal and iid: their own colour, dash and marker
    for idx, (label, errs) in enumerate(errors.items()):
        e = as_array(errs, f"errors[{label!r}]", 1)
        if e.shape != ms_arr.shape:
            raise ValueError(f"errors[{label!r}] must have one value per m ({ms_arr.size}); got {e.size}")
        first = e[0] if first is None else max(first, e[0])
        look = looks[label]
        fig.add_trace(go.Scatter(x=ms_arr, y=e, mode="lines+markers", name=label,
                                 line=dict(color=look.colour, dash=look.dash),
                                 marker=dict(color=look.colour, symbol=look.marker, size=7)), 1, 2)
    if first is not None:
        guide = first * np.sqrt(ms_arr[0] / ms_arr)  # (len(ms),) ∝ 1/√m
        fig.add_trace(go.Scatter(x=ms_arr, y=guide, mode="lines", name="∝ 1/√m",
                                 line=dict(color=NEUTRAL_COLOUR, dash="dot")), 1, 2)
    if this_draw is not None:
        fig.add_trace(go.Scatter(x=[m], y=[this_draw], mode="markers", name="this draw",
                                 marker=dict(symbol="x", size=11, color=OKABE_ITO["black"])), 1, 2)
    fig.add_vline(x=m, line=dict(color="black", dash="dash", width=1), row=1, col=2)
    fig.update_xaxes(title_text="exact exp(qᵀk/√d)", range=[lo, hi], row=1, col=1)
    fig.update_yaxes(title_text="estimate φ(q)ᵀφ(k)", range=[lo, hi], row=1, col=1)
    fig.update_xaxes(title_text="number of random features m", type="log", row=1, col=2)
    fig.update_yaxes(title_text="relative error", type="log", row=1, col=2)
    fig.update_layout(legend=dict(x=1.0, y=1.0, xanchor="right"))
    title = f"{method} random features, m = {m}: relative error {rel:.3f}, negative estimates {neg:.1%}"
    return finish(fig, title, 460)
