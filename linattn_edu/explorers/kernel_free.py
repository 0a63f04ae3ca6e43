"""Explorers that move without a kernel: one plotly figure whose slider steps through precomputed frames.

A live explorer recomputes its figure in Python on every control change, so a page without a kernel
(the course site, a notebook viewer) can only show a picture of it.  Here the explorer itself computes
the figure at every position of one control, and the positions become plotly *frames* behind a slider
(``method="animate"``): plotly.js swaps frames in the page, no Python involved.  Frame k is exactly the
live explorer's figure with that control at ``values[k]`` (tests/test_kernel_free.py checks it), and the
other controls stay at the values the explorer was built with.

    fig = kernel_free(decay_explorer(n=48), "head", range(8), label="RetNet head h")
    fig.write_html("decay.html", include_plotlyjs="cdn")  # any page that renders plotly HTML

:data:`FIGURES` names the explorers the course site shows this way, each by its factory's name.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import plotly.graph_objects as go

from ._base import Explorer

__all__ = ["kernel_free", "kernel_free_grid", "frame_layout", "FIGURES", "decay_figure", "stepper_figure", "window_figure",
           "transition_zoo_figure", "mesa_solvers_figure", "ZOO_BETAS", "MESA_PAIRS"]

#: layout keys a frame carries: what changes with the control (titles, panel titles, axis ranges, shapes)
_FRAME_KEYS = ("title", "annotations", "shapes")


def frame_layout(layout: dict) -> dict:
    """The part of a figure's layout that a frame replaces: title, panel titles, shapes and every axis."""
    keep = {k: v for k, v in layout.items() if k in _FRAME_KEYS or k[1:5] == "axis" and k[0] in "xy"}
    keep.setdefault("annotations", [])
    keep.setdefault("shapes", [])
    return keep


def _traces(fig: go.Figure) -> list[dict]:
    out = []
    for trace in fig.data:
        t = trace.to_plotly_json()
        t.pop("uid", None)
        out.append(t)
    return out


def kernel_free(explorer: Explorer, control: str, values: Iterable[Any], *, label: str | None = None,
                start: Any = None) -> go.Figure:
    """A figure with one slider over ``control`` = each of ``values``, each frame computed by ``explorer``.

    explorer: a live explorer (its other controls keep their current values); control: one of its
    controls; values: the slider's positions (each must be a value the control accepts); start: the
    position shown first (default: the explorer's current value, if it is one of ``values``).
    Raises ValueError when a value is refused (the explorer's message says why) or the traces of two
    frames differ in number or type (plotly.js can only animate between equal trace sets).
    """
    if control not in explorer.controls:
        raise ValueError(f"control must be one of {sorted(explorer.controls)}; got {control!r}")
    values = list(values)
    if not values:
        raise ValueError("values must hold at least one position for the slider; got none")
    current = explorer.values()[control]
    start = current if start is None and current in values else (values[0] if start is None else start)
    if start not in values:
        raise ValueError(f"start must be one of the values {values}; got {start!r}")
    frames, first, kinds = [], None, None
    try:
        for value in values:
            explorer.update(**{control: value})
            if explorer.message:
                raise ValueError(f"{control} = {value!r} cannot be drawn: {explorer.message}")
            fig = go.Figure(explorer.figure)
            shape = [t.type for t in fig.data]
            if kinds is None:
                kinds = shape
            elif shape != kinds:
                raise ValueError(f"{control} = {value!r} changes the set of traces ({kinds} → {shape}); "
                                 "a slider cannot animate between them")
            layout = frame_layout(fig.layout.to_plotly_json())
            frames.append(go.Frame(name=str(value), data=_traces(fig), layout=layout))
            if value == start:
                first = fig
    finally:
        explorer.update(**{control: current})  # the live explorer is left as it was
    fig = go.Figure(first)
    fig.frames = frames
    steps = [dict(label=str(v), method="animate",
                  args=[[str(v)], dict(mode="immediate", frame=dict(duration=0, redraw=True),
                                       transition=dict(duration=0))]) for v in values]
    fig.update_layout(sliders=[dict(active=values.index(start), steps=steps, x=0.0, len=1.0, y=-0.02,
                                    yanchor="top", pad=dict(t=60, b=10),
                                    currentvalue=dict(prefix=f"{label or control} = ", visible=True))],
                      margin=dict(b=150))
    fig.layout.meta = dict(kernel_free=dict(control=control, values=[str(v) for v in values]))
    return fig


_ANIMATE = dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))


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
    for name in (buttons, control):
        if name not in explorer.controls:
            raise ValueError(f"control must be one of {sorted(explorer.controls)}; got {name!r}")
    button_values, values = list(button_values), list(values)
    labels = [str(v) for v in button_values] if button_labels is None else list(button_labels)
    if not button_values or not values or len(labels) != len(button_values):
        raise ValueError(f"button_values and values must be non-empty, with one label per button; got "
                         f"{len(button_values)} buttons, {len(labels)} labels, {len(values)} slider positions")
    now = explorer.values()
    start_b = now[buttons] if now[buttons] in button_values else button_values[0]
    start_v = now[control] if now[control] in values else values[0]
    name = lambda b, v: f"{b}|{v}"  # noqa: E731

    def slider_for(b, active):
        steps = [dict(label=str(v), method="animate", args=[[name(b, v)], _ANIMATE]) for v in values]
        return dict(dict(active=active, steps=steps, x=0.0, len=1.0, y=-0.02, yanchor="top", pad=dict(t=60, b=10),
                         currentvalue=dict(prefix=f"{label or control} = ", visible=True)), **(slider or {}))

    def menu_for(active):
        row = [dict(label=text, method="animate", args=[[name(b, start_v)], _ANIMATE])
               for b, text in zip(button_values, labels)]
        return dict(dict(type="buttons", direction="right", active=active, showactive=True, buttons=row, x=0.0,
                         xanchor="left", y=1.15, yanchor="bottom", pad=dict(t=0, b=0)), **(menu or {}))

    frames, first, kinds = [], None, None
    try:
        for i, b in enumerate(button_values):
            for j, v in enumerate(values):
                explorer.update(**{buttons: b, control: v})
                if explorer.message:
                    raise ValueError(f"{buttons} = {b!r}, {control} = {v!r} cannot be drawn: {explorer.message}")
                fig = go.Figure(explorer.figure)
                shape = [t.type for t in fig.data]
                if kinds is None:
                    kinds = shape
                elif shape != kinds:
                    raise ValueError(f"{buttons} = {b!r}, {control} = {v!r} changes the set of traces ({kinds} → "
                                     f"{shape}); a slider cannot animate between them")
                layout = frame_layout(fig.layout.to_plotly_json())
                layout.update(sliders=[slider_for(b, j)], updatemenus=[menu_for(i)])
                frames.append(go.Frame(name=name(b, v), data=_traces(fig), layout=layout))
                if (b, v) == (start_b, start_v):
                    first = fig
    finally:
        explorer.update(**{buttons: now[buttons], control: now[control]})  # the live explorer as it was
    fig = go.Figure(first)
    fig.frames = frames
    fig.update_layout(sliders=[slider_for(start_b, values.index(start_v))],
                      updatemenus=[menu_for(button_values.index(start_b))], margin=dict(b=150))
    fig.layout.meta = dict(kernel_free=dict(control=control, values=[str(v) for v in values], buttons=buttons,
                                            button_values=[str(b) for b in button_values]))
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


#: explorer factory name (as a notebook cell calls it) -> (**the cell's keyword arguments) -> figure
FIGURES: dict[str, Callable[..., go.Figure]] = {
    "decay_explorer": decay_figure,
    "gated_stepper": stepper_figure,
    "sliding_window_explorer": window_figure,
    "transition_zoo_explorer": transition_zoo_figure,
    "mesa_solvers_explorer": mesa_solvers_figure,
}
