"""Plotly figures for linear attention: tensors and records in, ``go.Figure`` out.

Every function here is pure: it takes tensors (or arrays / nested lists), builds a
figure and returns it.  Nothing is shown and no widget is created, so each picture
can be tested headless (trace types, shapes, titles) and reused by the notebooks
and by :mod:`linattn_edu.explorers`, which only decide *when* to redraw.

Conventions shared by every figure:

* attention maps are drawn with rows = query position ``i`` (top to bottom) and
  columns = key position ``j``; the colour is the weight ``A[i, j]``;
* panels that are meant to be compared by eye (softmax vs linear) share one colour
  axis (same ``zmin``/``zmax``), and differences use a diverging scale centred on 0.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Mapping, Sequence

import numpy as np

try:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
except ImportError as exc:  # pragma: no cover - only without the [viz] extra
    raise ImportError("linattn_edu.viz needs plotly: pip install 'linattn-edu[viz]'") from exc

__all__ = [
    "heatmap",
    "attention_map",
    "attention_comparison",
    "state_step",
    "kernel_smoother_1d",
    "kernel_smoother_2d",
    "feature_map_approximation",
    "window_pattern",
    "message_figure",
]

WEIGHT_SCALE = "Viridis"  # sequential: attention weights, kernel values, masks
DIFF_SCALE = "RdBu"  # diverging, centred on 0: differences, state entries
SOFTMAX_COLOUR = "#1f77b4"
LINEAR_COLOUR = "#d62728"
FONT = dict(size=12)
GRID = "#e5e5e5"


# ----------------------------------------------------------------------------- helpers


def _array(x, name: str, ndim: int | None = None) -> np.ndarray:
    """Tensor / array / nested list -> float64 numpy array, checking its rank."""
    if hasattr(x, "detach"):
        x = x.detach().to("cpu").double().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dims; got shape {tuple(arr.shape)}")
    return arr


def _labels(labels: Sequence[str] | None, n: int, name: str) -> list | None:
    if labels is None:
        return None
    labels = [str(s) for s in labels]
    if len(labels) != n:
        raise ValueError(f"{name} must have {n} entries (one per position); got {len(labels)}")
    # plotly merges equal category labels; prefix the position to keep them distinct
    return [f"{i}:{s}" for i, s in enumerate(labels)]


def _max_abs(*arrays: np.ndarray) -> float:
    """Largest finite |value| over arrays (1.0 when there is none), for symmetric scales."""
    vals = [np.nanmax(np.abs(a)) for a in arrays if a.size and np.isfinite(a).any()]
    m = float(max(vals)) if vals else 0.0
    return m if m > 0 else 1.0


def _style(fig: go.Figure, title: str, height: int) -> go.Figure:
    """Title and height (the look is in the cached grid, see :func:`_subplot_grid`)."""
    fig.update_layout(title=dict(text=title, x=0.01, xanchor="left"), height=height)
    return fig


def _colorbar_beside(fig: go.Figure, colorbar, row: int, col: int) -> None:
    """Put ``colorbar`` just right of subplot (row, col) and as tall as it, so it never covers a panel."""
    ref = fig.get_subplot(row, col)
    (_, x1), (y0, y1) = ref.xaxis.domain, ref.yaxis.domain
    colorbar.update(x=x1 + 0.01, xanchor="left", y=(y0 + y1) / 2, yanchor="middle", len=y1 - y0, thickness=12)


@lru_cache(maxsize=32)
def _subplot_grid(rows: int, cols: int, n_titles: int, options: tuple) -> go.Figure:
    """make_subplots with placeholder titles and a light look, built once per layout.

    make_subplots costs ~40 ms and a named template ~25 ms per figure; a copy of this is cheaper.
    """
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[" "] * n_titles or None, **dict(options))
    fig.update_layout(margin=dict(l=60, r=30, t=80, b=55), font=FONT, plot_bgcolor="white")
    fig.update_xaxes(gridcolor=GRID, zerolinecolor=GRID)
    fig.update_yaxes(gridcolor=GRID, zerolinecolor=GRID)
    return fig


def _subplots(rows: int, cols: int, titles: Sequence[str] = (), **options) -> go.Figure:
    """A fresh copy of a cached, styled subplot grid with these panel titles."""
    fig = go.Figure(_subplot_grid(rows, cols, len(titles), tuple(sorted(options.items()))))
    for annotation, text in zip(fig.layout.annotations, titles):
        annotation.text = text
    return fig


def _heatmap_trace(
    z: np.ndarray | list,
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
    colorbar = dict(title=dict(text=colorbar_title), thickness=12)
    return go.Heatmap(
        z=z,
        x=x,
        y=y,
        name=name,
        colorscale=colorscale,
        zmin=zmin,
        zmax=zmax,
        showscale=showscale,
        colorbar=colorbar,
        hovertemplate=f"{hover[0]}=%{{x}}<br>{hover[1]}=%{{y}}<br>{hover[2]}=%{{z:.4g}}<extra>{name}</extra>",
    )


# ----------------------------------------------------------------------------- heatmaps


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
    z = _array(matrix, "matrix", ndim=2)
    lo = float(np.nanmin(z)) if zmin is None else zmin
    hi = float(np.nanmax(z)) if zmax is None else zmax
    trace = _heatmap_trace(
        z,
        name=title,
        colorscale=colorscale,
        zmin=lo,
        zmax=hi,
        colorbar_title=colorbar_title,
        x_labels=_labels(x_labels, z.shape[1], "x_labels"),
        y_labels=_labels(y_labels, z.shape[0], "y_labels"),
        hover=(x_title, y_title, colorbar_title),
    )
    fig = _subplots(1, 1)
    fig.add_trace(trace)
    fig.update_xaxes(title_text=x_title, side="bottom")
    fig.update_yaxes(title_text=y_title, autorange="reversed")
    return _style(fig, title, height)


def attention_map(weights, *, title: str = "Attention weights", labels: Sequence[str] | None = None,
                  zmax: float | None = None) -> go.Figure:
    """Heatmap of one attention matrix ``weights (N, M)``: query position i × key position j."""
    w = _array(weights, "weights", ndim=2)
    return heatmap(
        w,
        title=title,
        x_title="key position j",
        y_title="query position i",
        colorbar_title="weight",
        zmin=0.0,
        zmax=_max_abs(w) if zmax is None else zmax,
        x_labels=labels,
        y_labels=labels,
    )


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
    p = _array(softmax_weights, "softmax_weights", ndim=2)
    a = _array(linear_weights, "linear_weights", ndim=2)
    if p.shape != a.shape:
        raise ValueError(f"linear_weights must match softmax_weights {p.shape}; got {a.shape}")
    n = p.shape[0]
    ticks = _labels(labels, n, "labels") if labels is not None and p.shape[0] == p.shape[1] else None
    diff = a - p  # (N, N)
    row_err = np.abs(diff).sum(axis=-1)  # (N,)
    top = max(_max_abs(p), _max_abs(a))
    span = _max_abs(diff)
    fig = _subplots(1, 3, titles=["softmax  P", f"{linear_name}  A", "difference  A − P"],
                    horizontal_spacing=0.12)
    fig.add_trace(_heatmap_trace(p, name="softmax", colorscale=WEIGHT_SCALE, zmin=0.0, zmax=top,
                                 colorbar_title="weight", x_labels=ticks, y_labels=ticks, showscale=False), 1, 1)
    fig.add_trace(_heatmap_trace(a, name=linear_name, colorscale=WEIGHT_SCALE, zmin=0.0, zmax=top,
                                 colorbar_title="weight", x_labels=ticks, y_labels=ticks), 1, 2)
    fig.add_trace(_heatmap_trace(diff, name="difference", colorscale=DIFF_SCALE, zmin=-span, zmax=span,
                                 colorbar_title="A − P", x_labels=ticks, y_labels=ticks,
                                 hover=("key j", "query i", "A − P")), 1, 3)
    _colorbar_beside(fig, fig.data[1].colorbar, 1, 2)
    _colorbar_beside(fig, fig.data[2].colorbar, 1, 3)
    fig.update_xaxes(title_text="key position j")
    fig.update_yaxes(title_text="query position i", autorange="reversed", col=1)
    fig.update_yaxes(autorange="reversed", showticklabels=False, col=2)  # rows line up with panel 1
    fig.update_yaxes(autorange="reversed", showticklabels=False, col=3)
    if title is None:
        title = (f"Softmax vs {linear_name} attention, N = {n}: row error ‖A_i − P_i‖₁ "
                 f"max {row_err.max():.3g}, mean {row_err.mean():.3g}")
    return _style(fig, title, 430)


# ----------------------------------------------------------------------------- recurrent state


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
    s = _array(S, "S", ndim=2)
    zz = _array(z, "z", ndim=1)
    out = _array(outputs, "outputs", ndim=2)
    ref = _array(reference, "reference", ndim=2)
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
    s_span = _max_abs(s) if s_range is None else s_range
    o_span = _max_abs(ref)
    titles = [
        f"state S_t = Σ_(j≤t) φ(k_j) v_jᵀ   ({d_phi} × {d_v})",
        "normaliser z_t = Σ_(j≤t) φ(k_j)",
        f"outputs so far (rows 0…{t})",
        "row t: recurrent vs quadratic",
    ]
    fig = _subplots(2, 2, titles, vertical_spacing=0.2, horizontal_spacing=0.2)
    fig.add_trace(_heatmap_trace(s, name="S_t", colorscale=DIFF_SCALE, zmin=-s_span, zmax=s_span,
                                 colorbar_title="S_t entry",
                                 hover=("value dim", "feature", "S_t")), 1, 1)
    fig.add_trace(go.Bar(x=list(range(d_phi)), y=zz, name="z_t", marker_color="#7f7f7f",
                         showlegend=False), 1, 2)
    fig.add_trace(_heatmap_trace(shown, name="outputs", colorscale=DIFF_SCALE, zmin=-o_span, zmax=o_span,
                                 colorbar_title="output",
                                 hover=("value dim", "position", "output")), 2, 1)
    _colorbar_beside(fig, fig.data[0].colorbar, 1, 1)
    _colorbar_beside(fig, fig.data[2].colorbar, 2, 1)
    dims = list(range(d_v))
    fig.add_trace(go.Bar(x=dims, y=out[t], name="recurrent φ(q_t)ᵀS_t / φ(q_t)ᵀz_t",
                         marker_color=LINEAR_COLOUR), 2, 2)
    fig.add_trace(go.Bar(x=dims, y=ref[t], name="quadratic form, row t", marker_color=SOFTMAX_COLOUR), 2, 2)
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=-0.12, x=0.55))
    fig.update_xaxes(title_text="value dim", row=1, col=1)
    fig.update_yaxes(title_text=f"feature ({feature_name})", autorange="reversed", row=1, col=1)
    fig.update_xaxes(title_text=f"feature ({feature_name})", row=1, col=2)
    fig.update_yaxes(title_text="z_t", row=1, col=2)
    if z_range is not None:
        fig.update_yaxes(range=[min(0.0, float(zz.min())), z_range], row=1, col=2)
    fig.update_xaxes(title_text="value dim", row=2, col=1)
    fig.update_yaxes(title_text="position i", autorange="reversed", range=None, row=2, col=1)
    fig.update_xaxes(title_text="value dim", row=2, col=2)
    fig.update_yaxes(title_text="output", range=[-o_span * 1.05, o_span * 1.05], row=2, col=2)
    title = f"Recurrent linear attention, t = {t} of {n - 1}: readout − quadratic row t = {err:.2e}"
    return _style(fig, title, 640)


# ----------------------------------------------------------------------------- kernel smoothing


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
    xs, ys = _array(x, "x", 1), _array(y, "y", 1)
    g, f = _array(grid, "grid", 1), _array(fit, "fit", 1)
    w = _array(weights, "weights", 1)
    if xs.shape != ys.shape or w.shape != xs.shape:
        raise ValueError(f"x, y, weights must all be (M,); got {xs.shape}, {ys.shape}, {w.shape}")
    if g.shape != f.shape:
        raise ValueError(f"grid and fit must both be (G,); got {g.shape} and {f.shape}")
    fq = float(np.sum(w * ys)) if np.isfinite(w).all() else float("nan")
    fig = _subplots(2, 1, titles=[f"fit with the {kernel_name} kernel",
                                  f"weights κ(x*, x_j) / Σ κ for the query x* = {query:.2f}"],
                    shared_xaxes=True, row_heights=(0.65, 0.35), vertical_spacing=0.08)
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name="data (x_j, y_j) = (key, value)",
                             marker=dict(color=w, colorscale=WEIGHT_SCALE, cmin=0.0, cmax=_max_abs(w), size=8,
                                         colorbar=dict(title=dict(text="weight")),
                                         line=dict(width=0.5, color="#333"))), 1, 1)
    fig.add_trace(go.Scatter(x=g, y=f, mode="lines", name="Nadaraya–Watson fit", line=dict(color=LINEAR_COLOUR)),
                  1, 1)
    if truth is not None:
        tr = _array(truth, "truth", 1)
        fig.add_trace(go.Scatter(x=g, y=tr, mode="lines", name="true function",
                                 line=dict(color="#7f7f7f", dash="dot")), 1, 1)
    fig.add_trace(go.Scatter(x=[query], y=[fq], mode="markers", name="query x*, its output",
                             marker=dict(symbol="x", size=13, color="black")), 1, 1)
    fig.add_trace(go.Bar(x=xs, y=w, name="weight per key", marker_color=SOFTMAX_COLOUR, showlegend=False,
                         width=(xs.max() - xs.min()) / max(4 * len(xs), 1) if len(xs) > 1 else None), 2, 1)
    _colorbar_beside(fig, fig.data[0].marker.colorbar, 1, 1)
    fig.add_vline(x=query, line=dict(color="black", dash="dash", width=1))
    fig.update_xaxes(title_text="key position x (input)", row=2, col=1)
    fig.update_yaxes(title_text="value y", row=1, col=1)
    fig.update_yaxes(title_text="weight", row=2, col=1, rangemode="tozero")
    fig.update_layout(legend=dict(x=1.02, y=0.0, xanchor="left", yanchor="bottom"))  # beside the weights panel
    return _style(fig, f"Attention as kernel smoothing: {kernel_name} kernel, output at x* = {fq:.3f}", 560)


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
    normalised weights of the ``query (2,)``.  Left: fitted field + data; right: data sized and
    coloured by weight.
    """
    xs = _array(x, "x", 2)
    ys, w = _array(y, "y", 1), _array(weights, "weights", 1)
    g, f = _array(grid_axis, "grid_axis", 1), _array(fit, "fit", 2)
    if xs.shape[1] != 2 or ys.shape[0] != xs.shape[0] or w.shape != ys.shape:
        raise ValueError(f"x must be (M, 2), y and weights (M,); got {xs.shape}, {ys.shape}, {w.shape}")
    if f.shape != (g.shape[0], g.shape[0]):
        raise ValueError(f"fit must be (G, G) = {(g.shape[0],) * 2}; got {f.shape}")
    span = _max_abs(ys, f)
    fig = _subplots(1, 2, titles=[f"fitted field ({kernel_name} kernel)",
                                  f"weights for the query ({query[0]:.2f}, {query[1]:.2f})"],
                    horizontal_spacing=0.14)
    fig.add_trace(go.Heatmap(x=g, y=g, z=f, colorscale=DIFF_SCALE, zmin=-span, zmax=span, name="fit",
                             colorbar=dict(title=dict(text="value y"))), 1, 1)
    fig.add_trace(go.Scatter(x=xs[:, 0], y=xs[:, 1], mode="markers", name="data",
                             marker=dict(color=ys, colorscale=DIFF_SCALE, cmin=-span, cmax=span, size=7,
                                         line=dict(width=0.7, color="#333"))), 1, 1)
    top = _max_abs(w)
    fig.add_trace(go.Scatter(x=xs[:, 0], y=xs[:, 1], mode="markers", name="weight per key",
                             marker=dict(color=w, colorscale=WEIGHT_SCALE, cmin=0.0, cmax=top,
                                         size=5 + 25 * np.sqrt(np.clip(w, 0, None) / top),
                                         colorbar=dict(title=dict(text="weight")))), 1, 2)
    _colorbar_beside(fig, fig.data[0].colorbar, 1, 1)
    _colorbar_beside(fig, fig.data[2].marker.colorbar, 1, 2)
    for col in (1, 2):
        fig.add_trace(go.Scatter(x=[query[0]], y=[query[1]], mode="markers", name="query",
                                 marker=dict(symbol="x", size=13, color="black"), showlegend=col == 1), 1, col)
        fig.update_xaxes(title_text="x₁ (key position)", range=[g.min(), g.max()], row=1, col=col)
        fig.update_yaxes(title_text="x₂", range=[g.min(), g.max()], row=1, col=col)
    fig.update_layout(showlegend=False)
    return _style(fig, f"Attention as kernel smoothing in 2-D: {kernel_name} kernel", 470)


# ----------------------------------------------------------------------------- random features


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
    diagonal y = x is perfect).  Right: relative error against ``ms`` on log-log axes, one line per
    entry of ``errors`` (e.g. "orthogonal", "iid"), with a ``1/√m`` guide through the first point,
    the current ``m`` marked, and ``this_draw`` (the left panel's error) as a cross at m.
    """
    ex = _array(exact, "exact").ravel()
    es = _array(estimate, "estimate").ravel()
    if ex.shape != es.shape:
        raise ValueError(f"estimate must have the shape of exact ({ex.size} values); got {es.size}")
    ms_arr = _array(ms, "ms", 1)
    if np.any(ms_arr <= 0):
        raise ValueError(f"ms must be positive feature counts; got {list(ms)}")
    rel = float(np.mean(np.abs(es - ex)) / max(float(np.mean(np.abs(ex))), 1e-300))
    neg = float(np.mean(es < 0))
    fig = _subplots(1, 2, titles=[f"estimate vs exact kernel (m = {m})", "relative error vs number of features m"],
                    horizontal_spacing=0.12)
    fig.add_trace(go.Scattergl(x=ex, y=es, mode="markers", name="(q, k) pairs", showlegend=False,
                               marker=dict(size=4, color=SOFTMAX_COLOUR, opacity=0.5)), 1, 1)
    lo, hi = float(min(ex.min(), es.min(), 0.0)), float(max(ex.max(), es.max()))
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="exact (y = x)", showlegend=False,
                             line=dict(color="black", dash="dash", width=1)), 1, 1)
    colours = [LINEAR_COLOUR, SOFTMAX_COLOUR, "#2ca02c", "#9467bd"]
    first = None
    for idx, (label, errs) in enumerate(errors.items()):
        e = _array(errs, f"errors[{label!r}]", 1)
        if e.shape != ms_arr.shape:
            raise ValueError(f"errors[{label!r}] must have one value per m ({ms_arr.size}); got {e.size}")
        first = e[0] if first is None else max(first, e[0])
        fig.add_trace(go.Scatter(x=ms_arr, y=e, mode="lines+markers", name=label,
                                 line=dict(color=colours[idx % len(colours)])), 1, 2)
    if first is not None:
        guide = first * np.sqrt(ms_arr[0] / ms_arr)  # (len(ms),) ∝ 1/√m
        fig.add_trace(go.Scatter(x=ms_arr, y=guide, mode="lines", name="∝ 1/√m",
                                 line=dict(color="#7f7f7f", dash="dot")), 1, 2)
    if this_draw is not None:
        fig.add_trace(go.Scatter(x=[m], y=[this_draw], mode="markers", name="this draw",
                                 marker=dict(symbol="x", size=11, color="black")), 1, 2)
    fig.add_vline(x=m, line=dict(color="black", dash="dash", width=1), row=1, col=2)
    fig.update_xaxes(title_text="exact exp(qᵀk/√d)", row=1, col=1)
    fig.update_yaxes(title_text="estimate φ(q)ᵀφ(k)", row=1, col=1)
    fig.update_xaxes(title_text="number of random features m", type="log", row=1, col=2)
    fig.update_yaxes(title_text="relative error", type="log", row=1, col=2)
    fig.update_layout(legend=dict(x=1.0, y=1.0, xanchor="right"))
    title = f"{method} random features, m = {m}: relative error {rel:.3f}, negative estimates {neg:.1%}"
    return _style(fig, title, 440)


# ----------------------------------------------------------------------------- sliding window


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
    mk = _array(mask, "mask", 2)
    w = _array(weights, "weights", 2)
    if mk.shape != w.shape or mk.shape[0] != mk.shape[1]:
        raise ValueError(f"mask and weights must both be (N, N); got {mk.shape} and {w.shape}")
    n = mk.shape[0]
    allowed = int(mk.sum())
    ns = np.array(sorted({*(ns or [2 ** k for k in range(4, 17)]), n}), dtype=np.float64)  # (K,)
    per_query = window if causal else 2 * window - 1
    band = np.minimum(ns * per_query + 2 * len(global_tokens) * ns, ns ** 2)  # (K,) ≈ N·w
    fig = _subplots(1, 3, titles=[f"allowed pairs (window {window}, {len(global_tokens)} global)",
                                  "attention weights", "attention scores stored vs N"],
                    horizontal_spacing=0.13)
    fig.add_trace(_heatmap_trace(mk, name="mask", colorscale=[[0, "#f0f0f0"], [1, "#2a4d69"]], zmin=0, zmax=1,
                                 colorbar_title="allowed", showscale=False,
                                 hover=("key j", "query i", "allowed")), 1, 1)
    fig.add_trace(_heatmap_trace(w, name="weights", colorscale=WEIGHT_SCALE, zmin=0.0, zmax=_max_abs(w),
                                 colorbar_title="weight"), 1, 2)
    _colorbar_beside(fig, fig.data[1].colorbar, 1, 2)
    fig.add_trace(go.Scatter(x=ns, y=ns ** 2, mode="lines", name="dense N²", line=dict(color=SOFTMAX_COLOUR)),
                  1, 3)
    fig.add_trace(go.Scatter(x=ns, y=band, mode="lines", name="window ≈ N·w", line=dict(color=LINEAR_COLOUR)),
                  1, 3)
    fig.add_trace(go.Scatter(x=[n, n], y=[n ** 2, allowed], mode="markers", name=f"this N = {n}",
                             marker=dict(color="black", size=9)), 1, 3)
    for col in (1, 2):
        fig.update_xaxes(title_text="key position j", row=1, col=col)
        fig.update_yaxes(autorange="reversed", row=1, col=col)
    fig.update_yaxes(title_text="query position i", row=1, col=1)
    fig.update_yaxes(showticklabels=False, row=1, col=2)  # rows line up with panel 1
    fig.update_xaxes(title_text="sequence length N", type="log", row=1, col=3)
    fig.update_yaxes(type="log", row=1, col=3)  # its title is the panel title (an axis title would hit the colorbar)
    left = fig.get_subplot(1, 3).xaxis.domain[0]
    fig.update_layout(legend=dict(x=left + 0.01, y=1.0, xanchor="left", yanchor="top",
                                  bgcolor="rgba(255,255,255,0.7)"))  # top left of panel 3: the curves rise to the right
    title = (f"Sliding window, N = {n}: {allowed} of {n * n} pairs stored "
             f"({allowed / (n * n):.1%} of dense)")
    return _style(fig, title, 430)


# ----------------------------------------------------------------------------- messages


def message_figure(text: str) -> go.Figure:
    """An empty figure carrying a message, for views that cannot be drawn for the current input."""
    fig = _subplots(1, 1)
    fig.add_annotation(text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _style(fig, "Nothing to draw for these settings", 200)
