"""The one look of the course: colours, fonts, the subplot grid, and the friendly ImportError.

Every figure in :mod:`linattn_edu.viz` takes its colours from here, so a method, a feature map or
a model keeps one colour in every notebook and every explorer:

* the softmax family in blues (naive softmax, SDPA, the KV cache), linear attention in reds and
  purples (its quadratic, chunkwise and recurrent forms), the sliding window in green;
* each feature map φ one colour (elu+1 red like linear attention, FAVOR+ purple, ...);
* random-feature projections: orthogonal purple, iid orange — in every panel that shows both;
* model presets (notebook 07) one colour each, and their linear state a dashed line with markers.

:func:`colour` looks any of these names up (case and spacing ignored) and falls back to a fixed cycle.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

try:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
except ImportError as exc:  # pragma: no cover - only without the [viz] extra
    raise ImportError("linattn_edu.viz needs plotly (a figure library): pip install 'linattn-edu[viz]'") from exc

__all__ = ["METHOD_COLOURS", "FEATURE_MAP_COLOURS", "PROJECTION_COLOURS", "MODEL_COLOURS", "CYCLE", "colour",
           "SOFTMAX_COLOUR", "LINEAR_COLOUR", "THEORY_COLOUR", "NEUTRAL_COLOUR", "WEIGHT_SCALE", "DIFF_SCALE",
           "FONT", "GRID", "STATE_DASHES", "MARKERS"]

#: Softmax family in blues, linear attention in reds/purples, the window in green.
METHOD_COLOURS = {
    "softmax": "#1f77b4",
    "sdpa": "#17becf",
    "kv_cache": "#1f77b4",
    "linear": "#d62728",
    "linear_quadratic": "#ff9896",
    "chunkwise": "#d62728",
    "recurrent": "#9467bd",
    "window": "#2ca02c",
    # how the field fixed it (notebooks 08-09): one colour per state-update rule, whatever the form
    "additive": "#d62728",  # plain linear attention's S += φ(k)vᵀ: linear's red
    "gated": "#8c564b", "gla": "#8c564b", "gated_chunkwise": "#8c564b",
    "delta": "#6b6ecf", "delta_chunkwise": "#6b6ecf", "delta_recurrent": "#9c9ede",
    "gated delta": "#393b79", "gated_delta_chunkwise": "#393b79",
    "hybrid": "#ff7f0e",  # sliding window + linear (Based-style)
}
#: One colour per feature map φ (elu+1 is "the" linear attention of the course: its red).
FEATURE_MAP_COLOURS = {
    "elu+1": "#d62728",
    "relu": "#ff7f0e",
    "identity": "#8c564b",
    "taylor": "#bcbd22",
    "favor+": "#9467bd",
    "trig": "#e377c2",
}
#: Random-feature projections ω: the same two colours in every figure that compares them.
PROJECTION_COLOURS = {"orthogonal": "#6a3d9a", "iid": "#ff7f0e"}
#: Model presets of notebook 07 (memory.PRESETS names, lower case).
MODEL_COLOURS = {
    "gpt2": "#17becf",
    "llama-2-7b": "#1f77b4",
    "llama-2-70b": "#8c564b",
    "llama-3-8b": "#d62728",
    "mistral-7b": "#2ca02c",
    "falcon-7b": "#ff7f0e",
    "deepseek-v2": "#9467bd",
    "custom": "#7f7f7f",
}
#: Fallback for names not in a table (fixed order: the i-th unknown name always gets CYCLE[i]).
CYCLE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
#: Dash patterns and markers that keep coinciding constant lines apart (state lines of notebook 07).
STATE_DASHES = ("dash", "dot", "dashdot", "longdash", "longdashdot")
MARKERS = ("circle", "square", "diamond", "triangle-up", "triangle-down", "star")

SOFTMAX_COLOUR = METHOD_COLOURS["softmax"]
LINEAR_COLOUR = METHOD_COLOURS["linear"]
THEORY_COLOUR = "#7f7f7f"
NEUTRAL_COLOUR = "#7f7f7f"
WEIGHT_SCALE = "Viridis"  # sequential: attention weights, kernel values, masks
DIFF_SCALE = "RdBu"  # diverging, centred on 0: differences, state entries
FONT = dict(size=13)
GRID = "#e5e5e5"


def _key(name: str) -> str:
    return str(name).strip().lower().replace(" ", "").replace("_", "").replace("-", "")


_TABLE = {_key(k): v for table in (MODEL_COLOURS, PROJECTION_COLOURS, FEATURE_MAP_COLOURS, METHOD_COLOURS)
          for k, v in table.items()}


def colour(name: str, index: int = 0) -> str:
    """The course colour of a method, feature map, projection or model ``name``; else ``CYCLE[index]``.

    >>> colour("iid"), colour("FAVOR+"), colour("chunkwise")
    ('#ff7f0e', '#9467bd', '#d62728')
    """
    return _TABLE.get(_key(name), CYCLE[index % len(CYCLE)])


@lru_cache(maxsize=32)
def _subplot_grid(rows: int, cols: int, n_titles: int, options: tuple) -> go.Figure:
    """make_subplots with placeholder titles and the light look, built once per layout.

    make_subplots costs ~40 ms and a named template ~25 ms per figure; a copy of this is cheaper.
    """
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[" "] * n_titles or None, **dict(options))
    fig.update_layout(margin=dict(l=60, r=30, t=80, b=55), font=FONT, plot_bgcolor="white", autosize=True)
    fig.update_xaxes(gridcolor=GRID, zerolinecolor=GRID)
    fig.update_yaxes(gridcolor=GRID, zerolinecolor=GRID)
    return fig


def subplots(rows: int, cols: int, titles: Sequence[str] = (), **options) -> go.Figure:
    """A fresh copy of the cached, styled subplot grid with these panel titles."""
    fig = go.Figure(_subplot_grid(rows, cols, len(titles), tuple(sorted(options.items()))))
    for annotation, text in zip(fig.layout.annotations, titles):
        annotation.text = text
    return fig


def finish(fig: go.Figure, title: str, height: int) -> go.Figure:
    """Title and height; width is left to the page (autosize: the figure fills the cell)."""
    fig.update_layout(title=dict(text=title, x=0.01, xanchor="left"), height=height, autosize=True)
    return fig


def colorbar_beside(fig: go.Figure, colorbar, row: int, col: int) -> None:
    """Put ``colorbar`` just right of subplot (row, col) and as tall as it, so it never covers a panel."""
    ref = fig.get_subplot(row, col)
    (_, x1), (y0, y1) = ref.xaxis.domain, ref.yaxis.domain
    colorbar.update(x=x1 + 0.01, xanchor="left", y=(y0 + y1) / 2, yanchor="middle", len=y1 - y0, thickness=12)
