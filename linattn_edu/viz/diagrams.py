"""Pictures of ideas rather than of data: the associativity reorder, the chunkwise tiling, a message figure."""

from __future__ import annotations

import plotly.graph_objects as go

from .._checks import check_number
from ._style import FONT, LINEAR_COLOUR, MASKED_COLOUR, METHOD_COLOURS, NEUTRAL_COLOUR, SOFTMAX_COLOUR, finish, subplots

__all__ = ["associativity_diagram", "chunk_tiling", "message_figure"]

MAX_TILING_N = 4096  # the tiling is drawn cell by cell


def message_figure(text: str) -> go.Figure:
    """An empty figure carrying a message, for views that cannot be drawn for the current input."""
    fig = subplots(1, 1)
    fig.add_annotation(text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return finish(fig, "Nothing to draw for these settings", 200)


# ----------------------------------------------------------------------------- associativity


def _box(fig: go.Figure, x0: float, y_mid: float, w: float, h: float, colour: str, label: str, shape: str,
         *, bold: bool = False) -> float:
    """A matrix drawn as a w × h rectangle starting at x0, centred on y_mid, labelled; returns its right edge."""
    fig.add_shape(type="rect", x0=x0, x1=x0 + w, y0=y_mid - h / 2, y1=y_mid + h / 2,
                  line=dict(color=colour, width=3 if bold else 1.5), fillcolor=colour, opacity=0.35 if bold else 0.2)
    fig.add_annotation(x=x0 + w / 2, y=y_mid, text=f"<b>{label}</b>", showarrow=False, font=dict(size=13))
    fig.add_annotation(x=x0 + w / 2, y=y_mid - h / 2, text=shape, showarrow=False, yanchor="top",
                       font=dict(size=11, color="#333"))
    return x0 + w


def _op(fig: go.Figure, x: float, y: float, text: str) -> float:
    fig.add_annotation(x=x + 0.35, y=y, text=text, showarrow=False, font=dict(size=18))
    return x + 0.7


def associativity_diagram(*, n: int = 8, d: int = 2) -> go.Figure:
    """(φ(Q)φ(K)ᵀ)V against φ(Q)(φ(K)ᵀV): which matrices exist, their shapes, and the N × N one gone.

    Each matrix is a rectangle whose sides are proportional to its shape (``n`` drawn tokens, ``d``
    drawn feature / value dims; only the proportions matter).  Top row, left to right:
    ``φ(Q) (N×d_φ) · φ(K)ᵀ (d_φ×N) = A (N×N)``, then ``A · V (N×d_v)``: an N × N matrix exists, O(N²d)
    time and O(N²) memory.  Bottom row: ``φ(K)ᵀ (d_φ×N) · V (N×d_v) = S (d_φ×d_v)``, then ``φ(Q) · S``:
    the only intermediate is d_φ × d_v, O(Nd²) time and O(d²) memory, whatever N.
    """
    check_number(n, "n", integer=True, minimum=2, maximum=64)
    check_number(d, "d", integer=True, minimum=1, maximum=n - 1)
    u = 0.35  # drawing units per row/column
    N, D = n * u, d * u
    fig = subplots(1, 1)
    top, bottom = N + 2.0, 0.0  # rows N tall, with room for the shape labels and the second header
    fig.add_annotation(x=0, y=top + N / 2 + 0.55, xanchor="left", showarrow=False, font=dict(size=14),
                       text="<b>(φ(Q) φ(K)ᵀ) V</b>: multiply queries by keys first<br>"
                            "→ an N × N matrix, time ∝ N²·d, memory ∝ N²")
    x = _box(fig, 0.0, top, D, N, SOFTMAX_COLOUR, "φ(Q)", "N × d_φ")
    x = _op(fig, x, top, "·")
    x = _box(fig, x, top, N, D, SOFTMAX_COLOUR, "φ(K)ᵀ", "d_φ × N")
    x = _op(fig, x, top, "=")
    x = _box(fig, x, top, N, N, "#a00", "A", "N × N  (grows as N²)", bold=True)
    x = _op(fig, x, top, "·")
    x = _box(fig, x, top, D, N, NEUTRAL_COLOUR, "V", "N × d_v")
    x = _op(fig, x, top, "=")
    right = _box(fig, x, top, D, N, NEUTRAL_COLOUR, "out", "N × d_v")
    fig.add_annotation(x=0, y=bottom + N / 2 + 0.55, xanchor="left", showarrow=False, font=dict(size=14),
                       text="<b>φ(Q) (φ(K)ᵀ V)</b>: multiply keys by values first<br>"
                            "→ a d_φ × d_v state S, time ∝ N·d², memory ∝ d² (no N × N)")
    x = _box(fig, 0.0, bottom, N, D, LINEAR_COLOUR, "φ(K)ᵀ", "d_φ × N")
    x = _op(fig, x, bottom, "·")
    x = _box(fig, x, bottom, D, N, NEUTRAL_COLOUR, "V", "N × d_v")
    x = _op(fig, x, bottom, "=")
    x = _box(fig, x, bottom, D, D, LINEAR_COLOUR, "S", "d_φ × d_v", bold=True)
    x = _op(fig, x, bottom, ";")
    x = _box(fig, x, bottom, D, N, LINEAR_COLOUR, "φ(Q)", "N × d_φ")
    x = _op(fig, x, bottom, "·")
    x = _box(fig, x, bottom, D, D, LINEAR_COLOUR, "S", "d_φ × d_v")
    x = _op(fig, x, bottom, "=")
    _box(fig, x, bottom, D, N, NEUTRAL_COLOUR, "out", "N × d_v")
    fig.update_xaxes(visible=False, range=[-0.3, max(right, x + D) + 0.3])
    fig.update_yaxes(visible=False, range=[bottom - N / 2 - 0.8, top + N / 2 + 1.0], scaleanchor="x")
    fig.update_layout(showlegend=False, font=FONT)
    return finish(fig, "Associativity: the same product, two orders — same output, different intermediates", 520)


# ----------------------------------------------------------------------------- chunkwise tiling


def chunk_tiling(n: int, chunk_size: int) -> go.Figure:
    """Which part of causal linear attention the chunkwise form computes how, for N tokens in chunks of C.

    The N × N causal attention matrix is cut into C × C tiles (the last chunk may be shorter):

    * diagonal tiles (intra-chunk): computed as a small quadratic block (φ(Q_c)φ(K_c)ᵀ ⊙ causal mask) V_c,
      C × C numbers per chunk;
    * tiles below the diagonal (inter-chunk): never formed — their contribution reaches chunk c through
      the carried state ``S_{c−1} = Σ_{chunks b < c} φ(K_b)ᵀ V_b`` (d_φ × d_v), read out as φ(Q_c) S_{c−1};
    * above the diagonal: future keys, masked.

    The title counts the quadratic cells against the dense N² and the number of states carried.
    """
    check_number(n, "n", integer=True, minimum=1, maximum=MAX_TILING_N)
    check_number(chunk_size, "chunk_size", integer=True, minimum=1)
    c = min(chunk_size, n)  # the library clamps C to N as well
    chunk = [i // c for i in range(n)]  # (N,) chunk id of each position
    masked, intra, inter = 0, 1, 2
    z = [[masked if j > i else (intra if chunk[i] == chunk[j] else inter) for j in range(n)] for i in range(n)]
    n_chunks = chunk[-1] + 1
    quad = sum(sum(1 for v in row if v == intra) for row in z)
    colours = {masked: MASKED_COLOUR, intra: METHOD_COLOURS["softmax"], inter: METHOD_COLOURS["recurrent"]}
    scale = [[0.0, colours[masked]], [1 / 3, colours[masked]], [1 / 3, colours[intra]], [2 / 3, colours[intra]],
             [2 / 3, colours[inter]], [1.0, colours[inter]]]
    names = {masked: "future key (masked)", intra: "intra-chunk: quadratic C × C block",
             inter: "inter-chunk: through the carried state S"}
    hover = [[names[v] + f" (chunk {chunk[i]} ← {chunk[j]})" for j, v in enumerate(row)] for i, row in enumerate(z)]
    fig = subplots(1, 1)
    fig.add_trace(go.Heatmap(z=z, x=list(range(n)), y=list(range(n)), zmin=0, zmax=2, colorscale=scale,
                             showscale=False, text=hover, name="tiles", xgap=1 if n <= 64 else 0,
                             ygap=1 if n <= 64 else 0, hovertemplate="query i=%{y}, key j=%{x}<br>%{text}"
                                                                     "<extra></extra>"))
    for value in (intra, inter, masked):  # legend entries for the three kinds of tile
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=names[value],
                                 marker=dict(symbol="square", size=14, color=colours[value],
                                             line=dict(color="#999", width=1))))
    for b in range(1, n_chunks):  # chunk boundaries
        edge = b * c - 0.5
        fig.add_shape(type="line", x0=edge, x1=edge, y0=-0.5, y1=n - 0.5, line=dict(color="black", width=1.5))
        fig.add_shape(type="line", x0=-0.5, x1=n - 0.5, y0=edge, y1=edge, line=dict(color="black", width=1.5))
    for b in range(n_chunks):  # the state each chunk reads, written at its rows' right edge
        mid = min(b * c + (c - 1) / 2, n - 1)
        fig.add_annotation(x=n - 0.5, y=mid, xanchor="left", showarrow=False, font=dict(size=11),
                           text=f" chunk {b}: φ(Q_{b}) S_{b - 1} + block" if b else " chunk 0: block only")
    fig.update_xaxes(title_text="key position j", range=[-0.5, n - 0.5], constrain="domain")
    fig.update_yaxes(title_text="query position i", autorange="reversed", scaleanchor="x", constrain="domain")
    fig.update_layout(legend=dict(orientation="h", x=0.0, y=-0.12, xanchor="left", yanchor="top"),
                      margin=dict(r=210))
    title = (f"Chunkwise form, N = {n}, C = {c}: {n_chunks} chunks<br><sup>quadratic blocks hold {quad:,} of the "
             f"{n * (n + 1) // 2:,} causal pairs; the rest arrive through {max(n_chunks - 1, 0)} carried states S</sup>")
    return finish(fig, title, 560)
