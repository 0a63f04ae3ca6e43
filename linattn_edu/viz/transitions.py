"""The transition zoo in one picture: one step's transition matrix, its eigenvalues on the unit disc, the state.

Every recurrent rule of the course is S_t = A_t S_{t−1} + (write)_t; the figure draws A_t as a heatmap
(rows i, columns j, row 0 at the top), its eigenvalues in the complex plane with the unit circle, and the
state S_t the rule holds after token t beside ‖S_s‖_F over the whole stream.  Eigenvalues fall into three
groups, each with its own colour (Okabe–Ito) and marker, so they read without colour too:

* 0 <= λ <= 1 (blue circles): the state only fades along that direction;
* λ < 0 or complex, |λ| <= 1 (orange diamonds): the state flips sign or rotates — what parity needs;
* |λ| > 1 (vermillion crosses): the state grows along that direction.

Every axis has an explicit range (nothing is left to autorange), so the picture cannot turn over in an
explorer's browser view.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from ._arrays import as_array
from ._style import DIFF_SCALE, NEUTRAL_COLOUR, finish, subplots
from .heatmaps import colorbar_below, heatmap_trace

__all__ = ["transition_figure", "eigenvalue_groups", "EIGEN_GROUPS", "EIGEN_RANGE", "format_eigenvalues"]

#: name -> (colour, marker symbol) for the three eigenvalue groups (Okabe–Ito blue, orange, vermillion)
EIGEN_GROUPS = {
    "0 ≤ λ ≤ 1: fades": ("#0072B2", "circle"),
    "λ < 0 or complex: flips / rotates": ("#E69F00", "diamond"),
    "|λ| > 1: grows": ("#D55E00", "x"),
}
#: the complex plane drawn: Re λ from −2.1 to 1.3 (DPLR can reach −2), Im λ from −1.3 to 1.3
EIGEN_RANGE = ((-2.1, 1.3), (-1.3, 1.3))
_TOL = 1e-9


def eigenvalue_groups(eigenvalues) -> dict[str, np.ndarray]:
    """Split complex eigenvalues (k,) into the groups of :data:`EIGEN_GROUPS` (a dict of complex arrays)."""
    lam = np.asarray(eigenvalues, dtype=complex).ravel()
    outside = np.abs(lam) > 1 + _TOL
    turning = ~outside & ((lam.real < -_TOL) | (np.abs(lam.imag) > _TOL))
    names = list(EIGEN_GROUPS)
    return {names[0]: lam[~outside & ~turning], names[1]: lam[turning], names[2]: lam[outside]}


def format_eigenvalues(eigenvalues, digits: int = 2) -> str:
    """'1.00 ×3, −0.50' — eigenvalues rounded to ``digits``, equal ones counted, complex as a ± pair."""
    lam = np.asarray(eigenvalues, dtype=complex).ravel()
    counts: dict[tuple[float, float], int] = {}
    for x in lam:
        key = (round(float(x.real), digits) + 0.0, round(abs(float(x.imag)), digits) + 0.0)
        counts[key] = counts.get(key, 0) + 1
    parts = []
    for (re, im), c in sorted(counts.items(), key=lambda kv: (-kv[0][0], kv[0][1])):
        if im > 0:
            c //= 2  # a conjugate pair counted once
            text = f"{re:.{digits}f}±{im:.{digits}f}i"
        else:
            text = f"{re:.{digits}f}"
        text = text.replace("-", "−")
        parts.append(text + (f" ×{c}" if c > 1 else ""))
    return ", ".join(parts)


def transition_figure(a, eigenvalues, state, norms: Sequence[float], t: int, *, title: str,
                      s_range: float | None = None, a_range: float = 2.0, height: int = 470) -> go.Figure:
    """A_t (d × d heatmap), its eigenvalues on the unit disc, S_t (d × d_v heatmap) and ‖S_s‖_F for every s.

    a: (d, d) the transition of token t; eigenvalues: (d,) complex (torch.linalg.eigvals of a);
    state: (d, d_v) S_t; norms: ‖S_s‖_F for s = 0 … N − 1; t: the token shown (marked on the norm curve);
    s_range: the state's colour range ±s_range (default: its largest |entry|); a_range: A's colour range.
    One row of four panels; the legend of the eigenvalue groups and the two colour scales lie under them.
    An eigenvalue group with no member keeps its trace with one gap point (plotly.js hides a trace with no
    points, which would change the set of drawn traces between two settings).
    """
    a = as_array(a, "a", ndim=2)
    s = as_array(state, "state", ndim=2)
    norms = as_array(norms, "norms", ndim=1)
    if a.shape[0] != a.shape[1]:
        raise ValueError(f"a must be a square (d, d) matrix; got shape {a.shape}")
    if not 0 <= t < len(norms):
        raise ValueError(f"t must be in [0, {len(norms) - 1}] (a token of the stream); got {t}")
    lam = np.asarray(eigenvalues.detach().cpu().numpy() if hasattr(eigenvalues, "detach") else eigenvalues,
                     dtype=complex).ravel()
    if lam.shape != (a.shape[0],):
        raise ValueError(f"eigenvalues must hold d = {a.shape[0]} values; got {lam.shape[0]}")
    span = float(s_range) if s_range is not None else max(float(np.abs(s).max()), 1e-12)
    fig = subplots(1, 4, [f"Aₜ (token t = {t})", "eigenvalues of Aₜ", f"Sₜ after token {t}", "‖Sₛ‖ per token"],
                   horizontal_spacing=0.07)
    fig.add_trace(heatmap_trace(a.tolist(), name="Aₜ", colorscale=DIFF_SCALE, zmin=-a_range, zmax=a_range,
                                colorbar_title="entry of Aₜ", hover=("column j", "row i", "A_t")), 1, 1)
    colorbar_below(fig.data[-1].colorbar, fig, 1, (1, 1), "entry of Aₜ")
    fig.update_xaxes(title_text="column j", row=1, col=1)
    fig.update_yaxes(title_text="row i", row=1, col=1)
    # the unit circle, then one trace per eigenvalue group (always present: frames animate between equal sets)
    theta = np.linspace(0, 2 * math.pi, 181)
    fig.add_trace(go.Scatter(x=np.cos(theta).round(6).tolist(), y=np.sin(theta).round(6).tolist(), mode="lines",
                             name="unit circle |λ| = 1", line=dict(color=NEUTRAL_COLOUR, width=1),
                             hoverinfo="skip", showlegend=False), 1, 2)
    for name, values in eigenvalue_groups(lam).items():
        colour_, symbol = EIGEN_GROUPS[name]
        fig.add_trace(go.Scatter(x=values.real.tolist() or [None], y=values.imag.tolist() or [None],
                                 mode="markers", name=name,
                                 marker=dict(color=colour_, symbol=symbol, size=11, line=dict(width=1.5,
                                                                                               color="black")),
                                 hovertemplate="λ = %{x:.3f} + %{y:.3f}i<extra></extra>"), 1, 2)
    (x0, x1), (y0, y1) = EIGEN_RANGE
    fig.update_xaxes(title_text="Re λ", range=[x0, x1], autorange=False, constrain="domain", row=1, col=2)
    fig.update_yaxes(title_text="Im λ", range=[y0, y1], autorange=False, scaleanchor="x2", scaleratio=1,
                     constrain="domain", row=1, col=2)
    fig.add_trace(heatmap_trace(s.tolist(), name="Sₜ", colorscale=DIFF_SCALE, zmin=-span, zmax=span,
                                colorbar_title="entry of Sₜ", hover=("value dim", "key dim", "S_t")), 1, 3)
    colorbar_below(fig.data[-1].colorbar, fig, 1, (3, 3), "entry of Sₜ")
    fig.update_xaxes(title_text="value dim", row=1, col=3)
    fig.update_yaxes(title_text="key dim", row=1, col=3)
    for col, shape in ((1, a.shape), (3, s.shape)):  # square cells, row 0 at the top, by explicit ranges
        ref = fig.get_subplot(1, col)
        fig.update_yaxes(scaleanchor=ref.xaxis.plotly_name.replace("axis", ""), scaleratio=1, constrain="domain",
                         autorange=False, range=[shape[0] - 0.5, -0.5], row=1, col=col)
        fig.update_xaxes(constrain="domain", autorange=False, range=[-0.5, shape[1] - 0.5], row=1, col=col)
    top = max(float(np.nanmax(norms)), 1e-3) * 1.1
    fig.add_trace(go.Scatter(x=list(range(len(norms))), y=norms.tolist(), mode="lines+markers", name="‖Sₛ‖",
                             line=dict(color="#009E73"), marker=dict(symbol="square", size=6), showlegend=False),
                  1, 4)
    fig.add_trace(go.Scatter(x=[t, t], y=[0, top], mode="lines", name="now (t)", line=dict(color="black", width=1),
                             showlegend=False), 1, 4)
    fig.update_xaxes(title_text="token s", range=[-0.5, len(norms) - 0.5], autorange=False, row=1, col=4)
    fig.update_yaxes(title_text="‖Sₛ‖", range=[0, top], autorange=False, row=1, col=4)
    # the eigenvalue groups' legend in one line under the panels, the colour scales under that
    fig.update_layout(legend=dict(orientation="h", x=0, xanchor="left", y=-0.3, yanchor="top"),
                      margin=dict(b=150))
    return finish(fig, title, height)
