"""Explorers that move without a kernel: one plotly figure whose slider steps through precomputed frames.

A live explorer recomputes its figure in Python on every control change, so a page without a kernel
(the course site, a notebook viewer) can only show a picture of it.  Here the explorer itself computes
the figure at every position of one control, and the positions become plotly *frames* behind a slider
(``method="animate"``): plotly.js swaps frames in the page, no Python involved.  Frame k is exactly the
live explorer's figure with that control at ``values[k]`` (tests/test_kernel_free.py checks it), and the
other controls stay at the values the explorer was built with.

    fig = kernel_free(decay_explorer(n=48), "head", range(8), label="RetNet head h")
    fig.write_html("decay.html", include_plotlyjs="cdn")  # any page that renders plotly HTML

:func:`kernel_free_grid` and :func:`kernel_free_menus` add rows of buttons over further controls (one frame per
combination), a play button steps a slider by itself, and a text readout the live explorer prints beside its
figure (the KV calculator's summary) can ride along in each frame.

:data:`FIGURES` names the explorers the course site shows this way, each by its factory's name: every
explorer a chapter calls except the timing explorer, which stays a picture.  Live, it measures this
machine, and frames of timings taken while the site builds would be one busy build machine's noise shown
as data; the chapter's call browses the shipped CPU sweep instead, whose forward and forward+backward
figures the same chapter already draws as plotly figures (methods toggle in their legends).  (The
explorers' responsiveness benchmark, :mod:`linattn_edu.explorers.bench`, draws nothing.)
"""

from __future__ import annotations

import base64
import textwrap
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

import numpy as np
import plotly.graph_objects as go

from ._base import Explorer

__all__ = ["kernel_free", "kernel_free_grid", "kernel_free_menus", "Menu", "frame_layout", "FIGURES", "decay_figure",
           "stepper_figure", "window_figure", "transition_zoo_figure", "mesa_solvers_figure", "attention_map_figure",
           "kernel_smoother_figure", "state_stepper_figure", "feature_map_figure", "retrieval_figure",
           "kv_calculator_figure", "ZOO_BETAS", "MESA_PAIRS", "ATTENTION_MS", "SMOOTHER_BANDWIDTHS", "RETRIEVAL_PAIRS",
           "KV_PRESETS", "KV_SOFTMAX_FRACTIONS"]

#: layout keys a frame carries: what changes with the control (titles, panel titles, axis ranges, shapes)
_FRAME_KEYS = ("title", "annotations", "shapes")


def frame_layout(layout: dict) -> dict:
    """The part of a figure's layout that a frame replaces: title, panel titles, shapes and every axis."""
    keep = {k: v for k, v in layout.items() if k in _FRAME_KEYS or k[1:5] == "axis" and k[0] in "xy"}
    keep.setdefault("annotations", [])
    keep.setdefault("shapes", [])
    return keep


def _arrays(value: Any) -> Any:
    """``value`` with every plotly.js typed-array spec ({"dtype": "f8", "bdata": base64, "shape": "r, c"}, how the
    widget holds some arrays) decoded back to the numpy array it encodes; everything else as it is."""
    if isinstance(value, dict):
        if "bdata" in value and "dtype" in value:
            out = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(_TYPED[value["dtype"]]))
            shape = value.get("shape")
            return out.reshape([int(n) for n in str(shape).split(",")]) if shape else out
        return {k: _arrays(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_arrays(v) for v in value]
    return value


#: plotly.js typed-array codes -> numpy dtypes (the inverse of plotly's encoding table)
_TYPED = {"i1": "int8", "u1": "uint8", "i2": "int16", "u2": "uint16", "i4": "int32", "u4": "uint32",
          "f4": "float32", "f8": "float64"}


def _drawn(explorer: Explorer) -> dict:
    """The live explorer's figure as plotly JSON ({"data": [...], "layout": {...}}), the widget's trace ids dropped.

    (A copy by ``to_plotly_json`` with the arrays decoded, not ``go.Figure(explorer.figure)``: the same
    figure without validating every property again, which was half the cost of a frame.)
    """
    spec = explorer.figure.to_plotly_json()
    spec["data"] = [_arrays({k: v for k, v in trace.items() if k != "uid"}) for trace in spec["data"]]
    return spec


_ANIMATE = dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))


def _frame_at(explorer: Explorer, setting: Mapping[str, Any], kinds: list | None) -> tuple[dict, list]:
    """The explorer's figure (plotly JSON) at ``setting``, and its trace types, which must equal ``kinds``.

    Raises ValueError when the explorer refuses the setting (its message says why) or the trace types differ
    from ``kinds`` (plotly.js can only animate between equal trace sets); ``kinds`` None: the first frame.
    """
    explorer.update(**setting)
    shown = ", ".join(f"{k} = {x!r}" for k, x in setting.items())
    if explorer.message:
        raise ValueError(f"{shown} cannot be drawn: {explorer.message}")
    spec = _drawn(explorer)
    shape = [t.get("type") for t in spec["data"]]
    if kinds is not None and shape != kinds:
        raise ValueError(f"{shown} changes the set of traces ({kinds} → {shape}); "
                         "a slider cannot animate between them")
    return spec, shape


def kernel_free(explorer: Explorer, control: str, values: Iterable[Any], *, label: str | None = None,
                start: Any = None, play: float | None = None, below: int = 60) -> go.Figure:
    """A figure with one slider over ``control`` = each of ``values``, each frame computed by ``explorer``.

    explorer: a live explorer (its other controls keep their current values); control: one of its
    controls; values: the slider's positions (each must be a value the control accepts); start: the
    position shown first (default: the explorer's current value, if it is one of ``values``); play: if given,
    a ▶ play / ❚❚ pause button pair left of the slider steps through the frames, ``play`` seconds each
    (the live explorer's play button, in plotly.js), in a row under the slider; below: px between the plot
    area's bottom and the slider (room for the x-axis titles and a legend drawn under the plot).
    Raises ValueError when a value is refused (the explorer's message says why) or the traces of two
    frames differ in number or type (plotly.js can only animate between equal trace sets).
    """
    if control not in explorer.controls:
        raise ValueError(f"control must be one of {sorted(explorer.controls)}; got {control!r}")
    values = list(values)
    if not values:
        raise ValueError("values must hold at least one position for the slider; got none")
    if play is not None and not (isinstance(play, (int, float)) and play > 0):
        raise ValueError(f"play must be a positive number of seconds per frame; got {play!r}")
    current = explorer.values()[control]
    start = current if start is None and current in values else (values[0] if start is None else start)
    if start not in values:
        raise ValueError(f"start must be one of the values {values}; got {start!r}")
    frames, first, kinds = [], None, None
    try:
        for value in values:
            spec, kinds = _frame_at(explorer, {control: value}, kinds)
            frames.append(dict(name=str(value), data=spec["data"], layout=frame_layout(spec["layout"])))
            if value == start:
                first = spec
    finally:
        explorer.update(**{control: current})  # the live explorer is left as it was
    fig = go.Figure(first)
    fig.frames = frames
    steps = [dict(label=str(v), method="animate", args=[[str(v)], _ANIMATE]) for v in values]
    fig.update_layout(sliders=[dict(active=values.index(start), steps=steps, x=0.0, len=1.0, y=-0.02,
                                    yanchor="top", pad=dict(t=below, b=10),
                                    currentvalue=dict(prefix=f"{label or control} = ", visible=True))],
                      margin=dict(b=below + 90))
    if play is not None:
        run = dict(mode="immediate", fromcurrent=True, frame=dict(duration=int(play * 1000), redraw=True),
                   transition=dict(duration=0))
        stop = dict(mode="immediate", frame=dict(duration=0, redraw=False), transition=dict(duration=0))
        fig.update_layout(margin=dict(b=below + 135), height=(fig.layout.height or 450) + 45,
                          updatemenus=[dict(type="buttons", direction="right", showactive=False, x=0.0,
                                            xanchor="left", y=-0.02, yanchor="top", pad=dict(t=below + 85, r=10),
                                            buttons=[dict(label="▶ play", method="animate", args=[None, run]),
                                                     dict(label="❚❚ pause", method="animate",
                                                          args=[[None], stop])])])
    fig.layout.meta = dict(kernel_free=dict(control=control, values=[str(v) for v in values]))
    return fig


def kernel_free_grid(explorer: Explorer, buttons: str, button_values: Iterable[Any], control: str,
                     values: Iterable[Any], *, button_labels: Iterable[str] | None = None, label: str | None = None,
                     slider: Mapping[str, Any] | None = None, menu: Mapping[str, Any] | None = None) -> go.Figure:
    """Buttons over ``buttons`` = each of ``button_values`` and one slider over ``control`` = each of ``values``.

    One frame per pair, named ``"<button value>|<slider value>"``, each the live explorer's figure at that
    pair.  Every frame's layout also carries the slider with its steps pointing at that button value's frames
    (and the pressed button), so after a button the slider moves through the new button value's frames:
    plotly.js applies a frame's ``sliders`` and ``updatemenus`` when it animates to it.  A button opens its
    value at the slider's first shown position.  ``slider``/``menu``: placement keys (x, y, pad, ...) merged
    into the slider and the button row.  Raises ValueError as :func:`kernel_free`.
    """
    return kernel_free_menus(explorer, [Menu(buttons, button_values, button_labels, menu)], control, values,
                             label=label, slider=slider, keep_position=False, below=None)


class Menu(NamedTuple):
    """One row of buttons of :func:`kernel_free_menus`: the control it sets and the values it offers.

    labels: the buttons' texts (default ``str(value)``); place: placement keys (x, y, pad, ...) merged
    into the row; kind: "buttons" (a row of buttons, like the live explorer's toggle buttons) or
    "dropdown" (one button that opens upwards onto the list, like its dropdowns: as wide as the longest
    label, so it fits a phone's width, and each label should say what it sets, e.g. "kernel: Gaussian").
    """

    control: str
    values: Iterable[Any]
    labels: Iterable[str] | None = None
    place: Mapping[str, Any] | None = None
    kind: str = "buttons"


def kernel_free_menus(explorer: Explorer, menus: Sequence[Menu], control: str, values: Iterable[Any], *,
                      label: str | None = None, slider: Mapping[str, Any] | None = None, keep_position: bool = True,
                      readout: Callable[[Explorer], str] | None = None, below: int | None = 60,
                      fmt: Callable[[Any], str] = str) -> go.Figure:
    """Rows of buttons (one per :class:`Menu`) and one slider over ``control`` = each of ``values``.

    One frame per combination, named ``"<menu 1 value>|…|<menu r value>|<slider value>"`` (r menus: the
    product of their values times the slider's positions), each the live explorer's figure at those settings.
    Each frame's layout carries the slider (its steps walk the frames of that frame's button values) and every
    button row (pressed buttons shown; a button goes to the frame with its own row changed and the other rows
    kept), so after any button the slider moves the right frames.  keep_position: a button keeps the slider's
    position (True) or opens its value at the first shown position (False).  readout: a function of the
    explorer giving its text readout at each setting (e.g. the KV calculator's summary, shown beside the live
    figure): each frame then carries it as a layout annotation named "readout".  fmt: the slider steps' labels
    (frame names keep ``str(value)``).
    below: the controls stack under the plot, from the top: the slider ``below`` px under the plot area (room
    for the x-axis titles and a legend drawn there), the button rows in the order given, the readout; the
    bottom margin and the figure's height grow by what they take, so the plot keeps its size.  None: the
    slider at plotly's place under the plot, the rows above it (:func:`kernel_free_grid`'s layout);
    ``slider`` and each :attr:`Menu.place` are merged last either way.
    Raises ValueError as :func:`kernel_free`.
    """
    menus = [Menu(*m) for m in menus]
    for m in menus:
        if m.kind not in ("buttons", "dropdown"):
            raise ValueError(f"kind must be 'buttons' or 'dropdown'; got {m.kind!r}")
    for name in (*(m.control for m in menus), control):
        if name not in explorer.controls:
            raise ValueError(f"control must be one of {sorted(explorer.controls)}; got {name!r}")
    values = list(values)
    rows = [list(m.values) for m in menus]
    labels = [[str(v) for v in row] if m.labels is None else list(m.labels) for m, row in zip(menus, rows)]
    if not menus or not values or any(not row or len(text) != len(row) for row, text in zip(rows, labels)):
        raise ValueError(f"button_values and values must be non-empty, with one label per button; got "
                         f"{[len(r) for r in rows]} buttons, {[len(t) for t in labels]} labels, {len(values)} "
                         f"slider positions")
    now = explorer.values()
    start_b = tuple(now[m.control] if now[m.control] in row else row[0] for m, row in zip(menus, rows))
    start_v = now[control] if now[control] in values else values[0]
    name = lambda bs, v: "|".join(str(x) for x in (*bs, v))  # noqa: E731
    row_px, slider_px, readout_px = 42, 85, 20  # heights: one button row, the slider with its labels, a text line
    under = (below or 0) + slider_px  # px from the plot area's bottom to the first button row
    rows_at = [dict(y=-0.02, yanchor="top", pad=dict(t=under + row_px * r, b=0)) if below is not None else {}
               for r in range(len(menus))]
    readout_at = under + row_px * len(menus) + 5

    def slider_for(bs, active):
        steps = [dict(label=fmt(v), method="animate", args=[[name(bs, v)], _ANIMATE]) for v in values]
        pad = dict(t=60 if below is None else below, b=10)
        return dict(dict(active=active, steps=steps, x=0.0, len=1.0, y=-0.02, yanchor="top", pad=pad,
                         currentvalue=dict(prefix=f"{label or control} = ", visible=True)), **(slider or {}))

    def menus_for(bs, v):
        out = []
        for r, (m, row, text) in enumerate(zip(menus, rows, labels)):
            go_to = v if keep_position else start_v
            buttons = [dict(label=t, method="animate", args=[[name((*bs[:r], b, *bs[r + 1:]), go_to)], _ANIMATE])
                       for b, t in zip(row, text)]
            out.append(dict(dict(type=m.kind, direction="right" if m.kind == "buttons" else "up",
                                 active=row.index(bs[r]), showactive=True,
                                 buttons=buttons, x=0.0, xanchor="left", y=1.15, yanchor="bottom",
                                 pad=dict(t=0, b=0)), **rows_at[r], **(m.place or {})))
        return out

    left = min(((explorer.figure.layout.margin.l or 80) - 10), 50)  # px: the text may start in the left margin

    def note(ex):
        return dict(name="readout", text=readout(ex), xref="paper", yref="paper", x=0.0, xanchor="left", y=-0.02,
                    yanchor="top", yshift=-readout_at, xshift=-left, showarrow=False, align="left")

    combos = [()]
    for row in rows:
        combos = [(*c, b) for c in combos for b in row]
    frames, first, kinds = [], None, None
    try:
        for bs in combos:
            for j, v in enumerate(values):
                spec, kinds = _frame_at(explorer, dict(zip((m.control for m in menus), bs), **{control: v}), kinds)
                if readout is not None:
                    spec["layout"]["annotations"] = [*spec["layout"].get("annotations", []), note(explorer)]
                layout = frame_layout(spec["layout"])
                layout.update(sliders=[slider_for(bs, j)], updatemenus=menus_for(bs, v))
                frames.append(dict(name=name(bs, v), data=spec["data"], layout=layout))
                if (bs, v) == (start_b, start_v):
                    first = spec
    finally:
        explorer.update(**{m.control: now[m.control] for m in menus}, **{control: now[control]})  # as it was
    fig = go.Figure(first)
    fig.frames = frames
    fig.update_layout(sliders=[slider_for(start_b, values.index(start_v))], updatemenus=menus_for(start_b, start_v),
                      margin=dict(b=150))
    if below is not None:
        lines = max(f["layout"]["annotations"][-1]["text"].count("<br>") + 1 for f in frames) if readout else 0
        bottom = readout_at + readout_px * lines + 15
        grow = bottom - ((first["layout"].get("margin") or {}).get("b") or 80)  # plotly's default margin: 80 px
        fig.update_layout(margin=dict(b=bottom), height=(first["layout"].get("height") or 450) + max(grow, 0))
    meta = dict(control=control, values=[str(v) for v in values])
    if len(menus) == 1:
        meta.update(buttons=menus[0].control, button_values=[str(b) for b in rows[0]])
    meta["menus"] = [dict(control=m.control, values=[str(b) for b in row]) for m, row in zip(menus, rows)]
    fig.layout.meta = dict(kernel_free=meta)
    return fig


def decay_figure(**settings) -> go.Figure:
    """The decay explorer (notebook 08) with a slider over the RetNet head h = 0 … 7."""
    from .decay import decay_explorer

    return kernel_free(decay_explorer(**settings), "head", range(8), label="RetNet head h")


def stepper_figure(**settings) -> go.Figure:
    """The gated / delta-rule stepper (notebook 08) with a slider over the step t = 0 … N − 1."""
    from .gated_stepper import gated_stepper

    ex = gated_stepper(**settings)
    return kernel_free(ex, "t", range(ex.values()["n"]), label="step t")


def window_figure(**settings) -> go.Figure:
    """The sliding-window explorer (notebook 08) with a slider over the window w = 1 … 16."""
    from .sliding_window import sliding_window_explorer

    return kernel_free(sliding_window_explorer(**settings), "window", range(1, 17), label="window w")


#: the β positions of the transition zoo's slider: 0.25 … 2.0 (past 1 the eigenvalue along k turns negative)
ZOO_BETAS = tuple(0.25 * i for i in range(1, 9))
#: the n positions of the solvers' slider: 1 … 32 pairs (n/d up to 4 at the default d = 8)
MESA_PAIRS = tuple(range(1, 33))


def transition_zoo_figure(**settings) -> go.Figure:
    """The transition zoo with buttons over the five rules and a slider over β (ZOO_BETAS).

    Each rule's button opens it at the β the figure was built with (the notebook call's); the slider then
    moves that rule's β.  (A pure decay, "gla", writes without a β: its frames are equal along the slider.)
    The bottom margin holds, from the top: the eigenvalue legend, the rule buttons, the β slider, the two
    colour scales (plot area 240 px).
    """
    from .transition_zoo import RULES, transition_zoo_explorer

    short = {"gla": "GLA (decay)", "delta": "DeltaNet", "kda": "KDA", "delta_product": "DeltaProduct",
             "dplr": "DPLR (RWKV-7)"}
    ex = transition_zoo_explorer(**settings)
    fig = kernel_free_grid(ex, "rule", list(RULES), "beta", ZOO_BETAS, button_labels=[short[r] for r in RULES],
                           label="β", slider=dict(y=-0.72, pad=dict(t=0, b=0)),
                           menu=dict(y=-0.45, yanchor="top"))
    fig.update_layout(height=fig.layout.height + 210, margin=dict(b=360))
    return fig


def mesa_solvers_figure(**settings) -> go.Figure:
    """The five solvers of one regression objective with a slider over the number of pairs n = 1 … 32."""
    from .mesa_solvers import mesa_solvers_explorer

    return kernel_free(mesa_solvers_explorer(**settings), "n", MESA_PAIRS, label="pairs n")


#: the FAVOR+ feature counts m of the attention map's slider: 4 … 1024, the live slider's options
ATTENTION_MS = tuple(2 ** i for i in range(2, 11))
#: the bandwidths h of the kernel smoother's slider (the live slider is log-spaced over 0.03 … 5)
SMOOTHER_BANDWIDTHS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 1.0, 2.0)
#: the pair counts n of the retrieval explorer's slider: 4, 8, …, 64 (n = d = 16 among them)
RETRIEVAL_PAIRS = tuple(range(4, 65, 4))
#: the presets of the KV calculator's buttons: MHA, GQA, MQA and MLA, the four kinds of KV cache
KV_PRESETS = ("llama-2-7b", "llama-3-8b", "falcon-7b", "deepseek-v2")
#: the fractions of softmax layers of the KV calculator's second menu: all, 1 in 4 (3 linear : 1), none
#: (three, not the live menu's six: each is 4 presets × 11 contexts = 44 frames, ~0.3 MiB of the page)
KV_SOFTMAX_FRACTIONS = ((1.0, "all"), (0.25, "1/4 (3:1)"), (0.0, "none (all linear)"))


def attention_map_figure(**settings) -> go.Figure:
    """The attention maps (notebooks 01, 03): a φ menu (elu+1 / FAVOR+), a slider over FAVOR+'s m (ATTENTION_MS).

    Left P = softmax(QKᵀ/√d), right A = φ(Q)φ(K)ᵀ / row sums, both (N, N); the title gives the row error
    ‖A_i − P_i‖₁ (max, mean).  With FAVOR+ the slider moves m: the blocks of A sharpen toward P's and the mean
    row error falls from m = 4 to 1024, not at every step (one draw of ω per m; clustered inputs, 1.44 → 0.87
    at N = 32).  elu+1 has no m, so its frames are equal along the slider.  A button keeps the slider's m.
    """
    from .attention_map import attention_map_explorer

    ex = attention_map_explorer(**settings)
    menu = Menu("feature_map", ("elu+1", "favor+"), ("φ = elu+1", "φ = FAVOR+ (random features)"), kind="dropdown")
    return kernel_free_menus(ex, [menu], "m", ATTENTION_MS, label="FAVOR+ features m")


def kernel_smoother_figure(**settings) -> go.Figure:
    """Nadaraya–Watson f(x*) = Σⱼ κ(x*, xⱼ) yⱼ / Σⱼ κ(x*, xⱼ) (notebook 02): a menu of the five kernels κ
    and a slider over the bandwidth h (SMOOTHER_BANDWIDTHS); the fit over the grid and one query's weights move.

    A button keeps the slider's h.
    """
    from .kernel_smoother import KERNELS, kernel_smoother_explorer

    ex = kernel_smoother_explorer(**settings)
    menu = Menu("kernel", [k for _, k in KERNELS], [f"kernel: {text}" for text, _ in KERNELS], kind="dropdown")
    return kernel_free_menus(ex, [menu], "bandwidth", SMOOTHER_BANDWIDTHS, label="bandwidth h")


def state_stepper_figure(**settings) -> go.Figure:
    """The recurrent state stepper (notebook 04) with a slider and a play button over the token t = 0 … N − 1.

    Each frame shows S_t = S_{t−1} + φ(k_t)v_tᵀ (d_φ, d_v), z_t (d_φ,) and the outputs so far (t + 1, d_v),
    with the readout − quadratic-form difference in the title.
    """
    from .state_stepper import state_stepper

    ex = state_stepper(**settings)
    return kernel_free(ex, "t", range(ex.values()["n"]), label="token t", play=0.6, below=85)


def feature_map_figure(**settings) -> go.Figure:
    """Random-feature estimates of exp(qᵀk/√d) (notebook 05): buttons FAVOR+ / trig, a slider over the number of
    features m = 4 … 1024 (the live slider's options).  Left: every pair's estimate against the exact value;
    right: the relative error against m with the 1/√m guide.  A button keeps the slider's m.
    """
    from .feature_map_approx import MS, feature_map_explorer

    ex = feature_map_explorer(**settings)
    menu = Menu("kind", ("favor+", "trig"), ("FAVOR+ (positive)", "trig (sin/cos)"))
    return kernel_free_menus(ex, [menu], "m", MS, label="features m")


def retrieval_figure(**settings) -> go.Figure:
    """Recall error of n key→value pairs in a d × d state (notebook 08): a menu of the keys (orthogonal first /
    random) and a slider over n (RETRIEVAL_PAIRS).  Additive S = Σⱼ kⱼvⱼᵀ against the delta rule
    S_t = S_{t−1} + β k_t (v_t − S_{t−1}ᵀk_t)ᵀ; a button keeps the slider's n.
    """
    from .retrieval import retrieval_explorer

    ex = retrieval_explorer(**settings)
    menu = Menu("keys", ("orthogonal first", "random"), ("keys: orthogonal first", "keys: random"), kind="dropdown")
    return kernel_free_menus(ex, [menu], "n", RETRIEVAL_PAIRS, label="pairs n", below=85)


def _tokens(n: int) -> str:
    """A context length as the slider labels it: 1024 -> "1k", 2**20 -> "1M"."""
    return f"{n // 2**20}M" if n % 2**20 == 0 else f"{n // 2**10}k" if n % 2**10 == 0 else str(n)


def _kv_summary(calc) -> str:
    """The KV calculator's one-sentence summary in lines of at most 50 characters, a new line at each of its
    semicolons (plotly wraps nothing; 50 characters fit a phone's width)."""
    return "<br>".join(line for part in calc.summary.split(";") for line in textwrap.wrap(part.strip(), 50))


def kv_calculator_figure(**settings) -> go.Figure:
    """KV cache 2·layers·kv_heads·head_dim·N·bytes against the constant linear state (notebook 07): a slider over
    the context N = 1k … 1M (the live slider's options), one menu of four presets (KV_PRESETS: MHA, GQA,
    MQA, MLA) and one over the fraction of softmax layers of a hybrid (KV_SOFTMAX_FRACTIONS).

    Each frame also carries the calculator's summary (cache per token and at N, the state, the crossover, the
    hybrid's cache and states) under the controls, as the live calculator prints it beside the figure.  The menus
    keep the slider's N.
    """
    from .kv_cache import TOKEN_CHOICES, kv_cache_calculator

    ex = kv_cache_calculator(**settings)
    presets = Menu("preset", KV_PRESETS, [f"preset: {p}" for p in KV_PRESETS], kind="dropdown")
    fractions = Menu("softmax_fraction", [f for f, _ in KV_SOFTMAX_FRACTIONS],
                     [f"softmax layers: {text}" for _, text in KV_SOFTMAX_FRACTIONS], kind="dropdown")
    return kernel_free_menus(ex, [presets, fractions], "tokens", TOKEN_CHOICES, label="context N",
                             readout=_kv_summary, fmt=_tokens)


#: explorer factory name (as a notebook cell calls it) -> (**the cell's keyword arguments) -> figure
FIGURES: dict[str, Callable[..., go.Figure]] = {
    "decay_explorer": decay_figure,
    "gated_stepper": stepper_figure,
    "sliding_window_explorer": window_figure,
    "transition_zoo_explorer": transition_zoo_figure,
    "mesa_solvers_explorer": mesa_solvers_figure,
    "attention_map_explorer": attention_map_figure,
    "kernel_smoother_explorer": kernel_smoother_figure,
    "state_stepper": state_stepper_figure,
    "feature_map_explorer": feature_map_figure,
    "retrieval_explorer": retrieval_figure,
    "kv_cache_calculator": kv_calculator_figure,
}
