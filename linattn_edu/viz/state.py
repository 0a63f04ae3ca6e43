"""The recurrent view of causal linear attention: the state S_t, the normaliser z_t and the readouts."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ._arrays import as_array, max_abs
from ._style import DIFF_SCALE, NEUTRAL_COLOUR, bar_marker, colorbar_beside, finish, style, subplots
from .heatmaps import heatmap_trace

__all__ = ["state_step"]


def state_step(
    S,
    z,
    outputs,
    reference,
    t: int,
    *,
    s_range: float | None = None,
    z_range: float | None = None,
    feature_name: str = "φ",
) -> go.Figure:
    """The recurrent view of causal linear attention after token ``t`` (0-based).

    ``S (d_φ, d_v) = Σ_{j≤t} φ(k_j) v_jᵀ``, ``z (d_φ,) = Σ_{j≤t} φ(k_j)``,
    ``outputs (N, d_v)``: the readouts ``φ(q_i)ᵀS_i / φ(q_i)ᵀz_i`` for rows ``i ≤ t`` (later rows are
    not drawn), ``reference (N, d_v)``: the quadratic form's output.  Panels: S_t, z_t, outputs so
    far, and row t of both forms side by side with their max |difference| in the title.
    ``s_range`` / ``z_range`` fix the colour / y range (e.g. over all t, so growth is visible).
    """
    s = as_array(S, "S", ndim=2)
    zz = as_array(z, "z", ndim=1)
    out = as_array(outputs, "outputs", ndim=2)
    ref = as_array(reference, "reference", ndim=2)
    d_phi, d_v = s.shape
    n = ref.shape[0]
    if zz.shape != (d_phi,):
        raise ValueError(f"z must be (d_phi,) = ({d_phi},) to match S {s.shape}; got {zz.shape}")
    if out.shape != ref.shape or ref.shape[1] != d_v:
        raise ValueError(f"outputs and reference must both be (N, d_v={d_v}); got {out.shape} and {ref.shape}")
    if not 0 <= t < n:
        raise ValueError(f"t must be in [0, {n - 1}]; got {t}")
    shown = [list(row) if i <= t else [None] * d_v for i, row in enumerate(out)]  # (N, d_v); rows > t: gaps
    err = float(np.max(np.abs(out[t] - ref[t])))
    s_span = max_abs(s) if s_range is None else s_range
    o_span = max_abs(ref)
    titles = [
        f"state S_t = Σ_(j≤t) φ(k_j) v_jᵀ   ({d_phi} × {d_v})",
        "normaliser z_t = Σ_(j≤t) φ(k_j)",
        f"outputs so far (rows 0…{t})",
        "row t: recurrent vs quadratic",
    ]
    fig = subplots(2, 2, titles, vertical_spacing=0.2, horizontal_spacing=0.2)
    fig.add_trace(heatmap_trace(s, name="S_t", colorscale=DIFF_SCALE, zmin=-s_span, zmax=s_span,
                                colorbar_title="S_t entry", hover=("value dim", "feature", "S_t")), 1, 1)
    fig.add_trace(go.Bar(x=list(range(d_phi)), y=zz, name="z_t", marker_color=NEUTRAL_COLOUR,
                         showlegend=False), 1, 2)
    fig.add_trace(heatmap_trace(shown, name="outputs", colorscale=DIFF_SCALE, zmin=-o_span, zmax=o_span,
                                colorbar_title="output", hover=("value dim", "position", "output")), 2, 1)
    colorbar_beside(fig, fig.data[0].colorbar, 1, 1)
    colorbar_beside(fig, fig.data[2].colorbar, 2, 1)
    dims = list(range(d_v))
    fig.add_trace(go.Bar(x=dims, y=out[t], name="recurrent φ(q_t)ᵀS_t / φ(q_t)ᵀz_t",
                         marker=bar_marker(style("recurrent"))), 2, 2)  # hatched: told apart without colour
    fig.add_trace(go.Bar(x=dims, y=ref[t], name="quadratic form, row t", marker=bar_marker(style("softmax"))), 2, 2)
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=-0.12, x=0.55))
    fig.update_xaxes(title_text="value dim", row=1, col=1)
    fig.update_yaxes(title_text=f"feature ({feature_name})", range=[d_phi - 0.5, -0.5], row=1, col=1)  # row 0 on top
    fig.update_xaxes(title_text=f"feature ({feature_name})", row=1, col=2)
    fig.update_yaxes(title_text="z_t", side="right", row=1, col=2)  # the gap on its left holds S_t's colourbar
    if z_range is not None:
        fig.update_yaxes(range=[min(0.0, float(zz.min())), z_range], row=1, col=2)
    fig.update_xaxes(title_text="value dim", row=2, col=1)
    fig.update_yaxes(title_text="position i", range=[n - 0.5, -0.5], row=2, col=1)
    fig.update_xaxes(title_text="value dim", row=2, col=2)
    fig.update_yaxes(title_text="output", side="right", range=[-o_span * 1.05, o_span * 1.05], row=2, col=2)
    title = f"Recurrent linear attention, t = {t} of {n - 1}: readout − quadratic row t = {err:.2e}"
    return finish(fig, title, 640)
