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

from typing import Any, Callable, Iterable

import plotly.graph_objects as go

from ._base import Explorer

__all__ = ["kernel_free", "frame_layout", "FIGURES", "decay_figure", "stepper_figure", "window_figure",
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


#: the β positions of the transition zoo's slider: 0.1 … 2.0 (past 1 the eigenvalue along k turns negative)
ZOO_BETAS = tuple(round(0.1 * i, 1) for i in range(1, 21))
#: the n positions of the solvers' slider: 1 … 32 pairs (n/d up to 4 at the default d = 8)
MESA_PAIRS = tuple(range(1, 33))


def transition_zoo_figure(**settings) -> go.Figure:
    """The transition zoo (one rule, chosen by ``rule=``) with a slider over β = 0.1 … 2.0.

    A pure decay (rule "gla") writes without a β: its slider is over the token t instead.
    """
    from .transition_zoo import STREAM_N, transition_zoo_explorer

    ex = transition_zoo_explorer(**settings)
    if ex.values()["rule"] == "gla":
        fig = kernel_free(ex, "t", range(STREAM_N), label="token t")
    else:
        fig = kernel_free(ex, "beta", ZOO_BETAS, label="β")
    # the figure's bottom margin already holds the eigenvalue legend and the two colour scales: the slider goes
    # between them (plot area 240 px: legend 72 px under it, slider 132-215 px, colour scales in the last 55 px)
    fig.update_layout(height=fig.layout.height + 160, margin=dict(b=310))
    fig.layout.sliders[0].update(y=-0.55, pad=dict(t=0, b=0))
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
