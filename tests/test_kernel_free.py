"""Kernel-free explorers: every frame behind the slider equals the live explorer's figure at that setting.

The site shows these figures where no kernel runs; their frames are computed by the explorers themselves
(:mod:`linattn_edu.explorers.kernel_free`). Here a fresh live explorer is moved to each slider position
with ``update`` and its figure (what a kernel would draw) is compared trace by trace and with the title,
panel titles and axes of the frame.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("plotly")
pytest.importorskip("ipywidgets")
pytest.importorskip("anywidget")

import plotly.graph_objects as go  # noqa: E402

from linattn_edu.explorers import kernel_free as kf  # noqa: E402
from linattn_edu.explorers.decay import decay_explorer  # noqa: E402
from linattn_edu.explorers.gated_stepper import gated_stepper  # noqa: E402
from linattn_edu.explorers.sliding_window import sliding_window_explorer  # noqa: E402


def _same(a, b, path="") -> list[str]:
    """Differences between two plotly JSON values (arrays compared element-wise, None = gap)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            if key == "uid":
                continue
            if key not in a or key not in b:
                out.append(f"{path}.{key}: only in {'frame' if key in a else 'live'}")
            else:
                out += _same(a[key], b[key], f"{path}.{key}")
        return out
    if isinstance(a, (list, tuple, np.ndarray)) and isinstance(b, (list, tuple, np.ndarray)):
        x = np.asarray([[np.nan if v is None else v for v in row] if isinstance(row, (list, tuple)) else
                        (np.nan if row is None else row) for row in a], dtype=object)
        y = np.asarray([[np.nan if v is None else v for v in row] if isinstance(row, (list, tuple)) else
                        (np.nan if row is None else row) for row in b], dtype=object)
        if x.shape != y.shape:
            return [f"{path}: shape {x.shape} != {y.shape}"]
        try:
            xf, yf = x.astype(float), y.astype(float)
        except (TypeError, ValueError):
            return [] if x.tolist() == y.tolist() else [f"{path}: {x.tolist()[:3]} != {y.tolist()[:3]}"]
        return [] if np.array_equal(xf, yf, equal_nan=True) else [f"{path}: arrays differ"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


CASES = [
    ("decay", kf.decay_figure, lambda: decay_explorer(n=48, head=0, bias=3.0, spread=2.0), "head",
     dict(n=48, head=0, bias=3.0, spread=2.0)),
    ("stepper", kf.stepper_figure, lambda: gated_stepper(n=16, t=10, repeat_at=8, gamma=0.9, beta=1.0), "t",
     dict(n=16, t=10, repeat_at=8, gamma=0.9, beta=1.0)),
    ("window", kf.window_figure, lambda: sliding_window_explorer(n=48, window=6, global_tokens="0", causal=True),
     "window", dict(n=48, window=6, global_tokens="0", causal=True)),
]


@pytest.mark.parametrize("name, build, live, control, settings", CASES, ids=[c[0] for c in CASES])
def test_every_frame_is_the_live_explorers_figure(name, build, live, control, settings):
    fig = build(**settings)
    meta = fig.layout.meta["kernel_free"]
    assert meta["control"] == control and len(fig.frames) == len(meta["values"]) >= 8
    slider = fig.layout.sliders[0]
    assert [s.args[0][0] for s in slider.steps] == [f.name for f in fig.frames]  # each step shows its frame
    assert all(s.method == "animate" for s in slider.steps)
    start = str(settings[control])
    assert slider.steps[slider.active].label == start  # the slider starts where the notebook's call does
    ex = live()
    for frame in fig.frames:
        value = type(settings[control])(frame.name)
        ex.update(**{control: value})
        assert ex.message == ""
        shown = go.Figure(ex.figure)  # what the live explorer draws at this setting
        frame_traces = [t.to_plotly_json() for t in frame.data]
        live_traces = [t.to_plotly_json() for t in shown.data]
        assert len(frame_traces) == len(live_traces)
        problems = []
        for i, (a, b) in enumerate(zip(frame_traces, live_traces)):
            problems += _same(a, b, f"trace {i}")
        layout = shown.layout.to_plotly_json()
        frame_layout = frame.layout.to_plotly_json()
        for key in ("title", "annotations", *(k for k in layout if k[1:5] == "axis" and k[0] in "xy")):
            problems += _same(frame_layout.get(key), layout.get(key), key)
        assert not problems, f"{name}, {control} = {value}: " + "; ".join(problems[:8])
    first = fig.frames[[f.name for f in fig.frames].index(start)]
    assert fig.layout.title.text == first.layout.title.text  # the figure opens on the notebook's setting


def test_decay_frames_keep_query_zero_on_top():
    fig = kf.decay_figure(n=24)
    for frame in fig.frames:
        for axis in ("yaxis", "yaxis2"):
            low, high = frame.layout[axis].range
            assert low > high and frame.layout[axis].autorange is False


def test_kernel_free_refuses_what_it_cannot_animate():
    ex = decay_explorer(n=12)
    with pytest.raises(ValueError, match="control must be one of"):
        kf.kernel_free(ex, "nope", [1, 2])
    with pytest.raises(ValueError, match="values must hold at least one"):
        kf.kernel_free(ex, "head", [])
    with pytest.raises(ValueError, match="cannot be drawn"):
        kf.kernel_free(ex, "head", [0, 99])
    assert ex.values()["head"] == 0 and ex.message == ""  # the explorer is left as it was
