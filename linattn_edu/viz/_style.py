"""The one look of the course: a colour-blind-safe palette, a line style per method, fonts, the subplot grid.

Every figure in :mod:`linattn_edu.viz` takes its colours, dashes and markers from here, so a method, a
feature map or a model keeps one look in every notebook and every explorer, and two methods in one figure
never differ by colour alone:

* colours come from the Okabe–Ito palette (:data:`OKABE_ITO`, distinguishable under the common colour-vision
  deficiencies) plus one neutral grey for guides and theory lines (:data:`PALETTE` is all of them);
* each named method, rule, feature map, projection and model has a :class:`Style` — colour, dash pattern
  and marker — (:data:`METHOD_STYLES`, :data:`FEATURE_MAP_STYLES`, ...): the softmax family in blues, linear
  attention in vermillion and purple, the sliding window in green, gates in orange, the delta rule in sky
  blue, gated delta in black;
* :func:`distinct_styles` gives the lines of one figure their styles, replacing any that another line of
  the same figure already has, so the (colour, dash, marker) of two lines never coincide;
* sequential maps use Viridis and differences the diverging RdBu (both legible without red–green vision).

:func:`colour` and :func:`style` look a name up (case, spaces, ``_`` and ``-`` ignored) and fall back to a
fixed sequence of styles.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable, NamedTuple, Sequence

try:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
except ImportError as exc:  # pragma: no cover - only without the [viz] extra
    raise ImportError("linattn_edu.viz needs plotly (a figure library): pip install 'linattn-edu[viz]'") from exc

__all__ = ["OKABE_ITO", "PALETTE", "Style", "METHOD_STYLES", "FEATURE_MAP_STYLES", "PROJECTION_STYLES",
           "MODEL_STYLES", "METHOD_COLOURS", "FEATURE_MAP_COLOURS", "PROJECTION_COLOURS", "MODEL_COLOURS",
           "CYCLE", "colour", "style", "distinct_styles", "line_style", "SOFTMAX_COLOUR", "LINEAR_COLOUR",
           "THEORY_COLOUR", "NEUTRAL_COLOUR", "MASKED_COLOUR", "FALLBACK", "WEIGHT_SCALE", "DIFF_SCALE", "FONT", "GRID", "STATE_DASHES",
           "MARKERS", "PATTERNS", "bar_marker"]

#: Okabe & Ito's eight colours ("Color Universal Design", 2008), the names they gave them.
OKABE_ITO = {
    "black": "#000000",
    "orange": "#e69f00",
    "sky blue": "#56b4e9",
    "bluish green": "#009e73",
    "yellow": "#f0e442",
    "blue": "#0072b2",
    "vermillion": "#d55e00",
    "reddish purple": "#cc79a7",
}
_K, _OR, _SKY, _GREEN, _YELLOW, _BLUE, _VERM, _PURPLE = OKABE_ITO.values()
#: guides, theory curves and other lines that are not a method
NEUTRAL_COLOUR = "#999999"
THEORY_COLOUR = NEUTRAL_COLOUR
#: every colour a line, marker or bar of a course figure may have
PALETTE = (*OKABE_ITO.values(), NEUTRAL_COLOUR)
#: the light grey of cells that are masked out (future keys), and of their legend swatch
MASKED_COLOUR = "#f0f0f0"


class Style(NamedTuple):
    """How one method's line looks: an Okabe–Ito colour, a plotly dash pattern and a marker symbol."""

    colour: str
    dash: str
    marker: str


#: One style per method / update rule (bench method names and rule names share them).
METHOD_STYLES = {
    "softmax": Style(_BLUE, "solid", "circle"),
    "sdpa": Style(_SKY, "solid", "square"),
    "kv_cache": Style(_BLUE, "solid", "circle"),
    "linear": Style(_VERM, "solid", "diamond"),
    "linear_quadratic": Style(_VERM, "dot", "triangle-down"),
    "chunkwise": Style(_VERM, "solid", "diamond"),
    "recurrent": Style(_PURPLE, "dash", "triangle-up"),
    "window": Style(_GREEN, "solid", "cross"),
    # how the field fixed it (notebooks 08-09): one style per state-update rule, whatever the form
    "additive": Style(_VERM, "solid", "diamond-open"),  # plain linear attention's S += φ(k)vᵀ
    "gated": Style(_OR, "dash", "square"), "gated_chunkwise": Style(_OR, "dash", "square"),
    "gla": Style(_OR, "longdash", "triangle-down"), "gla_chunkwise": Style(_OR, "longdash", "triangle-down"),
    "delta": Style(_SKY, "dot", "diamond"), "delta_chunkwise": Style(_SKY, "dot", "diamond"),
    "delta_recurrent": Style(_SKY, "dashdot", "triangle-up"),
    "gated delta": Style(_K, "dashdot", "x"), "gated_delta": Style(_K, "dashdot", "x"),
    "gated_delta_chunkwise": Style(_K, "dashdot", "x"),
    "kda": Style(_PURPLE, "longdashdot", "pentagon"), "kda_chunkwise": Style(_PURPLE, "longdashdot", "pentagon"),
    "hybrid": Style(_GREEN, "dashdot", "star"),  # sliding window + linear (Based-style)
    "window_linear": Style(_GREEN, "longdash", "hexagon"),
    "taylor": Style(_GREEN, "dot", "triangle-up"),
    "linear_nodenom": Style(_VERM, "dash", "cross"),
    "delta_neg": Style(_SKY, "longdash", "hourglass"),
    "deltaproduct": Style(_BLUE, "dashdot", "hexagram"), "deltaproduct_neg": Style(_BLUE, "longdash", "bowtie"),
    "delta_product": Style(_BLUE, "dashdot", "hexagram"),
    "gated_delta_product": Style(_K, "longdash", "triangle-up"),
    "mesa": Style(_BLUE, "longdashdot", "star-diamond"),  # MesaNet: the optimal test-time regression
    "forgetting": Style(_OR, "dot", "cross"),  # the forgetting transformer: softmax with a forget gate
    "dplr": Style(_K, "dot", "bowtie"),  # diagonal plus low-rank transitions (RWKV-7 style)
}
#: One style per feature map φ (elu+1 is "the" linear attention of the course: its vermillion).
FEATURE_MAP_STYLES = {
    "elu+1": Style(_VERM, "solid", "diamond"),
    "relu": Style(_OR, "dash", "square"),
    "identity": Style(_K, "dot", "circle"),
    "taylor": Style(_GREEN, "dot", "triangle-up"),
    "favor+": Style(_PURPLE, "solid", "circle"),
    "trig": Style(_SKY, "longdash", "x"),
}
#: Random-feature projections ω: the same two styles in every figure that compares them.
PROJECTION_STYLES = {"orthogonal": Style(_PURPLE, "solid", "circle"), "iid": Style(_OR, "dash", "square")}
#: Model presets of notebook 07 (memory.PRESETS names, lower case).
MODEL_STYLES = {
    "gpt2": Style(_SKY, "solid", "circle"),
    "llama-2-7b": Style(_BLUE, "solid", "square"),
    "llama-2-70b": Style(_K, "solid", "diamond"),
    "llama-3-8b": Style(_VERM, "solid", "triangle-up"),
    "mistral-7b": Style(_GREEN, "solid", "triangle-down"),
    "falcon-7b": Style(_OR, "solid", "star"),
    "deepseek-v2": Style(_PURPLE, "solid", "hexagon"),
    "minimax-m2": Style(_SKY, "solid", "pentagon"),
    "custom": Style(NEUTRAL_COLOUR, "solid", "x"),
}
METHOD_COLOURS = {k: s.colour for k, s in METHOD_STYLES.items()}
FEATURE_MAP_COLOURS = {k: s.colour for k, s in FEATURE_MAP_STYLES.items()}
PROJECTION_COLOURS = {k: s.colour for k, s in PROJECTION_STYLES.items()}
MODEL_COLOURS = {k: s.colour for k, s in MODEL_STYLES.items()}

#: Colours for lines that have no name of their own, in a fixed order (yellow last: pale on white).
CYCLE = (_BLUE, _VERM, _GREEN, _PURPLE, _OR, _SKY, _K, _YELLOW)
#: Dash patterns and markers that keep coinciding lines apart (state lines of notebook 07, fallbacks).
STATE_DASHES = ("dash", "dot", "dashdot", "longdash", "longdashdot")
MARKERS = ("circle", "square", "diamond", "triangle-up", "triangle-down", "star", "x", "hexagon", "pentagon")
_FALLBACK_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
#: fallback styles: all 54 (dash, marker) pairs, each once, the colours cycling through CYCLE
FALLBACK = tuple(Style(CYCLE[i % len(CYCLE)], dash, marker) for i, (dash, marker) in enumerate(
    (dash, MARKERS[(j + k) % len(MARKERS)]) for k in range(len(MARKERS)) for j, dash in enumerate(_FALLBACK_DASHES)))

SOFTMAX_COLOUR = METHOD_COLOURS["softmax"]
LINEAR_COLOUR = METHOD_COLOURS["linear"]
WEIGHT_SCALE = "Viridis"  # sequential: attention weights, kernel values, masks
DIFF_SCALE = "RdBu"  # diverging, centred on 0: differences, state entries
FONT = dict(size=13)
GRID = "#e5e5e5"


def _key(name: str) -> str:
    return str(name).strip().lower().replace(" ", "").replace("_", "").replace("-", "")


_TABLE = {_key(k): v for table in (MODEL_STYLES, PROJECTION_STYLES, FEATURE_MAP_STYLES, METHOD_STYLES)
          for k, v in table.items()}


def _named(name: str) -> Style | None:
    """The table's style of ``name``, or of its rule when it is a bench method ``<rule>_chunkwise``."""
    key = _key(name)
    return _TABLE.get(key) or (_TABLE.get(key.removesuffix("chunkwise")) if key.endswith("chunkwise") else None)


def style(name: str, index: int = 0) -> Style:
    """The course style of a method, rule, feature map, projection or model ``name``; else ``FALLBACK[index]``.

    >>> style("gated").dash, style("iid").marker
    ('dash', 'square')
    """
    return _named(name) or FALLBACK[index % len(FALLBACK)]


def colour(name: str, index: int = 0) -> str:
    """The course colour of a method, feature map, projection or model ``name``; else ``CYCLE[index]``.

    >>> colour("iid"), colour("FAVOR+"), colour("chunkwise")
    ('#e69f00', '#cc79a7', '#d55e00')
    """
    return style(name, index).colour


#: every marker symbol a figure may hand out when markers alone tell its points apart
ALL_MARKERS = (*MARKERS, "cross", "hourglass", "hexagram", "bowtie", "star-diamond", "star-triangle-up",
               "star-square", "circle-open", "square-open", "diamond-open", "triangle-up-open", "triangle-down-open",
               "diamond-tall", "diamond-wide", "asterisk-open", "y-up-open", "hash-open")


def distinct_styles(names: Iterable[str], *, markers_only: bool = False,
                    unique_colours: bool = False) -> dict[str, Style]:
    """{name: Style} for the lines of one figure: each its course style unless an earlier line has it.

    A name without a style of its own, or whose dash and marker an earlier name of the figure already took
    (softmax and the KV cache, for instance), gets the first fallback style whose dash and marker no line of
    the figure uses (a colour no line uses, while there is one): two lines never look alike without colour.
    ``markers_only``: the figure draws markers without lines, so the markers alone must differ.
    ``unique_colours``: the figure compares close relatives (the linear family of the recall lab), so a line
    whose colour an earlier line took gets the first :data:`CYCLE` colour no line uses (its dash and marker
    kept), while one is free.
    """
    if markers_only:
        return _distinct_markers(list(dict.fromkeys(names)))
    looks = _distinct_shapes(names)
    return _recoloured(looks) if unique_colours else looks


def _recoloured(looks: dict[str, Style]) -> dict[str, Style]:
    """``looks`` with a repeated colour replaced by a free :data:`CYCLE` colour, in order, while one is free."""
    out: dict[str, Style] = {}
    for name, look in looks.items():
        used = {s.colour for s in out.values()}
        free = [c for c in CYCLE if c not in used and c not in {s.colour for s in looks.values()}]
        out[name] = look._replace(colour=free[0]) if look.colour in used and free else look
    return out


def _distinct_shapes(names: Iterable[str]) -> dict[str, Style]:
    """{name: Style}: course styles, a fallback where the (dash, marker) pair is taken (see distinct_styles)."""
    out: dict[str, Style] = {}
    shapes: set[tuple[str, str]] = set()
    pending = []
    for name in dict.fromkeys(names):
        named = _named(name)
        if named is not None and (named.dash, named.marker) not in shapes:
            out[name] = named
            shapes.add((named.dash, named.marker))
        else:
            pending.append(name)
    for name in pending:
        free = [s for s in FALLBACK if (s.dash, s.marker) not in shapes]
        if not free:
            raise ValueError(f"names must be at most {len(FALLBACK)} lines for one figure; got {len(out) + 1}+")
        used = {s.colour for s in out.values()}
        out[name] = next((s for s in free if s.colour not in used), free[0])
        shapes.add((out[name].dash, out[name].marker))
    return {name: out[name] for name in dict.fromkeys(names)}


def _distinct_markers(names: list[str]) -> dict[str, Style]:
    """{name: Style} whose markers all differ: a name's own unless taken, else the first free symbol."""
    out: dict[str, Style] = {}
    for i, name in enumerate(names):
        named = _named(name) or FALLBACK[i % len(FALLBACK)]
        used = {s.marker for s in out.values()}
        if named.marker in used:
            free = [m for m in ALL_MARKERS if m not in used]
            if not free:
                raise ValueError(f"names must be at most {len(ALL_MARKERS)} for one figure; got {len(names)}")
            colours = [c for c in CYCLE if c not in {s.colour for s in out.values()}] or [named.colour]
            named = Style(colours[0], named.dash, free[0])
        out[name] = named
    return out


def line_style(s: Style, *, width: float = 2, size: int = 7) -> dict:
    """Plotly ``line`` and ``marker`` keyword arguments for a Scatter drawn in style ``s``."""
    return dict(line=dict(color=s.colour, dash=s.dash, width=width), marker=dict(color=s.colour, symbol=s.marker,
                                                                                   size=size))


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
    colorbar.update(x=x1 + 0.01, xanchor="left", y=(y0 + y1) / 2, yanchor="middle", len=y1 - y0, thickness=12,
                    title_side="right")  # its title runs along the bar: no wider than the bar and its ticks


#: a bar's fill pattern for each dash pattern: bars of two methods differ by pattern as their lines by dash
PATTERNS = {"solid": "", "dash": "/", "dot": ".", "dashdot": "x", "longdash": "\\", "longdashdot": "+"}


def bar_marker(s: Style) -> dict:
    """Plotly ``marker`` for a Bar in style ``s``: its colour and the fill pattern of its dash."""
    return dict(color=s.colour, pattern=dict(shape=PATTERNS.get(s.dash, ""), fgcolor="#ffffff", fgopacity=0.6))
