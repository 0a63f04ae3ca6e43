"""What every explorer shares: controls, one plotly ``FigureWidget``, a message line, one redraw per change.

An explorer is a small class with

* ``controls``: ``{name: ipywidget}``; each control's ``value`` is one keyword of :meth:`Explorer.compute`;
* :meth:`Explorer.compute` ``(**values) -> go.Figure``: calls the core library and :mod:`linattn_edu.viz`
  (pure, no widgets) and sets the explorer's readouts (``max_row_error``, ``readout_error``, ...);
* ``figure``: an :class:`ExplorerFigure` — plotly's ``go.FigureWidget`` (anywidget, bundled JS: works offline
  in JupyterLab 4) that can also replace every trace and the layout with one ``Plotly.react``.  Traces are
  updated in place inside one ``batch_update`` when the set of traces stays (a slider move); when it changes
  (another view, a method ticked) the figure is replaced by one react message.  Either way one message, one
  redraw: no flicker through half-built figures;
* ``message``: the text shown above the figure when the inputs cannot be drawn (out of range, too large
  for the dense N × N view, ...).  Bad inputs never raise out of a widget callback or :meth:`update`.

Each explorer owns its widgets and figure, so two explorers in one notebook never share state.
"""

from __future__ import annotations

import html
import math
import numbers
from contextlib import ExitStack, contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch

try:
    import anywidget
    import ipywidgets as widgets
    import plotly
    import plotly.graph_objects as go
    from plotly.serializers import custom_serializers
    from traitlets import Dict
except ImportError as exc:  # pragma: no cover - only without the [viz] extra
    raise ImportError("linattn_edu.explorers needs plotly, ipywidgets and anywidget: "
                      "pip install 'linattn-edu[viz]'") from exc

__all__ = ["Explorer", "ExplorerFigure", "sync_figure", "trace_structure", "layout_edits", "check_value", "seed_box",
           "torch_threads"]

# --------------------------------------------------------------------------- one message per redraw

#: What plotly's widget bundle must export for the react message to reach plotly.js (checked, not assumed):
#: its model and view classes, plotly.js under the name its own handlers call it by, and the table of
#: (de)serializers that turns the binary arrays of a message back into typed arrays.
_BUNDLE_HOOKS = ("export{TD as FigureModel,MD as FigureView", "Md.default.update(this.el", "_Ie={_widget_data:",
                 "new TD(ne.model,_Ie)")

#: Appended to plotly's widget bundle (the same ES module, so its classes are in scope): a ``_py2js_react``
#: message that replaces data and layout with one ``Plotly.react`` — one redraw, where ``deleteTraces``,
#: ``addTraces`` and ``update`` drew the figure three times.  The model keeps the new figure for views
#: opened later; each view answers with the trace and layout deltas plotly's Python side waits for.
_REACT_PATCH = r"""
;(() => {
  _Ie._py2js_react = _Ie._py2js_update;  // binary arrays arrive as typed arrays, as in plotly's own messages
  const render = MD.prototype.perform_render;
  MD.prototype.perform_render = function () {
    this.model.on("change:_py2js_react", () => this.do_react());
    return render.apply(this, arguments);
  };
  MD.prototype.do_react = function () {
    const msg = this.model.get("_py2js_react");
    if (msg === null || msg === undefined) return;
    const view = this;
    Md.default.react(this.el, msg.data, msg.layout).then(function () {
      view._sendTraceDeltas(msg.trace_edit_id);
      view._sendLayoutDelta(msg.layout_edit_id);
    });
  };
  const initialize = TD.prototype.initialize;
  TD.prototype.initialize = function () {
    initialize.apply(this, arguments);
    this.model.on("change:_py2js_react", () => {
      const msg = this.get("_py2js_react");
      if (msg === null || msg === undefined) return;
      const data = this.model.get("_widget_data"), layout = this.model.get("_widget_layout");
      data.splice(0, data.length, ...msg.data);
      for (const key of Object.keys(layout)) delete layout[key];
      Object.assign(layout, msg.layout);
    });
  };
})();
"""


@lru_cache(maxsize=1)
def _react_esm() -> str | None:
    """plotly's widget bundle with the react message, or None when this plotly's bundle lacks the hooks."""
    bundle = Path(plotly.__file__).parent / "package_data" / "widgetbundle.js"
    try:
        text = bundle.read_text(encoding="utf-8")
    except OSError:  # pragma: no cover - a plotly without its bundle
        return None
    return text + _REACT_PATCH if all(hook in text for hook in _BUNDLE_HOOKS) else None


_SENDS = ("_send_addTraces_msg", "_send_deleteTraces_msg", "_send_moveTraces_msg", "_send_relayout_msg",
          "_send_restyle_msg", "_send_update_msg")


def _silent(*args: Any, **kwargs: Any) -> None:
    """A message not sent (see :meth:`ExplorerFigure.react`)."""


def _same_values(now: Mapping[str, Any], drawn: Mapping[str, Any] | None) -> bool:
    """The control values ``now`` are those of the figure drawn last, floats to 1e-9 relative (a browser
    slider computes its value from its position and can send back 16.0 as 15.999999999999998)."""
    if drawn is None or now.keys() != drawn.keys():
        return False
    for name, value in now.items():
        old = drawn[name]
        if isinstance(value, float) and isinstance(old, numbers.Real) and not isinstance(old, bool):
            if not math.isclose(value, old, rel_tol=1e-9, abs_tol=1e-12):
                return False
        elif value != old:
            return False
    return True


class ExplorerFigure(go.FigureWidget):
    """A ``go.FigureWidget`` that can replace its whole figure with one message (:meth:`react`).

    Everything else is plotly's FigureWidget (the same bundle, the same messages); where the installed
    plotly's bundle does not have the hooks the patch needs, :attr:`can_react` is False and
    :func:`sync_figure` falls back to plotly's own delete + add + update.
    """

    _py2js_react = Dict(allow_none=True).tag(sync=True, **custom_serializers)
    _esm = _react_esm() or go.FigureWidget._esm  # the front-end module anywidget loads (plotly's + the patch)
    can_react = _react_esm() is not None

    def react(self, source: go.Figure) -> None:
        """Hold exactly ``source`` (its traces and layout) and send it in one ``Plotly.react`` message.

        plotly's own messages for the steps (delete, add, relayout) are silenced while the Python side is
        rebuilt: instance attributes shadow the sending methods for the duration.
        """
        for name in _SENDS:
            self.__dict__[name] = _silent
        try:
            self.data = ()
            self.add_traces(list(source.data))
            self.layout = source.layout
        finally:
            for name in _SENDS:
                self.__dict__.pop(name, None)
        trace_edit_id, layout_edit_id = self._last_trace_edit_id + 1, self._last_layout_edit_id + 1
        self._last_trace_edit_id, self._trace_edit_in_process = trace_edit_id, True
        self._last_layout_edit_id, self._layout_edit_in_process = layout_edit_id, True
        self._py2js_react = {"data": self._data, "layout": self._layout, "trace_edit_id": trace_edit_id,
                             "layout_edit_id": layout_edit_id}
        self._py2js_react = None


#: the front-end half of :class:`AccessibleNames`: names what a screen reader would otherwise announce bare
_NAMES_ESM = r"""
const PLAY = {play: "play", pause: "pause", stop: "stop", repeat: "repeat", retweet: "repeat"};
const plain = (text) => (text || "").replace(/<[^>]*>/g, " ").replace(/\s+/g, " ").trim();
function name(root) {
  for (const slider of root.querySelectorAll(".widget-slider")) {  // noUiSlider handles: role=slider, no name
    const text = plain(slider.querySelector(".widget-label")?.textContent);
    if (!text) continue;
    for (const handle of slider.querySelectorAll(".noUi-handle")) handle.setAttribute("aria-label", text);
    const readout = slider.querySelector(".widget-readout");
    if (readout) readout.setAttribute("aria-label", `${text}, typed value`);
  }
  for (const button of root.querySelectorAll("button")) {  // icon-only buttons (the Play widget's)
    if (plain(button.textContent) || button.getAttribute("aria-label")) continue;
    const icon = (button.querySelector("i")?.className || "").match(/fa-(play|pause|stop|repeat|retweet)/);
    if (icon) button.setAttribute("aria-label", PLAY[icon[1]]);
  }
  for (const plot of root.querySelectorAll(".js-plotly-plot")) {  // the figure: named by its title
    const title = plain(plot.layout?.title?.text ?? plot.querySelector(".gtitle")?.textContent);
    plot.setAttribute("role", "figure");
    plot.setAttribute("aria-label", title ? `Figure: ${title}` : "Figure");
  }
}
export default {
  render({ el }) {
    el.style.display = "none";
    const root = el.closest(".widget-vbox") || el.parentElement;
    if (!root) return;
    name(root);
    const watch = new MutationObserver(() => name(root));  // new views, redraws, a changed title
    watch.observe(root, { childList: true, subtree: true, characterData: true });
    return () => watch.disconnect();
  },
};
"""


class AccessibleNames(anywidget.AnyWidget):
    """An invisible widget that gives the controls and the figure of the box it sits in accessible names.

    ipywidgets 8 names its dropdowns, checkboxes and text boxes from their descriptions, but not a slider's
    handle (role "slider", no name), nor the Play widget's icon buttons, and a plotly figure is announced
    as a bare picture of tick labels.  In the page, this widget's module labels each slider handle with its
    description, each Play button with its action, and each figure ("Figure: <its title>"), again whenever
    the box redraws (tests/test_browser.py reads the names a screen reader gets).
    """

    _esm = _NAMES_ESM


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run torch on ``n`` intra-op threads for the duration (None: leave the setting alone).

    For tiny tensors (N <= 256) threads only add overhead, and on a busy 2-core machine they made
    small ops up to ~100x slower (measured: 48 ms vs 4.3 s for the trig error curve).
    """
    if n is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def seed_box() -> widgets.BoundedIntText:
    """The seed control every explorer with random inputs uses."""
    return widgets.BoundedIntText(min=0, max=2 ** 31 - 1, description="seed", layout=widgets.Layout(width="160px"))


def _shape_of(value: Any) -> Any:
    """The structure of a JSON-like value: dicts keep their keys (recursively), arrays and scalars collapse.

    Two traces with equal structure differ only in values, so overwriting every key of one with the
    other's leaves nothing stale; any other difference (a key such as ``error_y`` present in one only,
    another trace type) needs the traces rebuilt.
    """
    if isinstance(value, Mapping):
        return tuple(sorted((k, _shape_of(v)) for k, v in value.items() if k != "uid"))
    return None


def trace_structure(fig: go.Figure) -> tuple:
    """One entry per trace: its type and the structure of its properties (uids ignored)."""
    return tuple((trace.type, _shape_of(trace.to_plotly_json())) for trace in fig.data)


def _leaves(value: Any, path: str) -> dict[str, Any]:
    """``{dotted path: None}`` for every leaf under ``value`` (how plotly.js is told to delete them)."""
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_leaves(v, f"{path}.{k}"))
        return out
    return {path: None}


def layout_edits(old: Mapping, new: Mapping, prefix: str = "") -> dict[str, Any]:
    """The relayout that turns layout ``old`` into ``new``: ``{dotted path: value}``, None deletes.

    Containers are diffed key by key down to their leaves, and a nested key the old layout had and the new
    one lacks (a 2-D view's ``scaleanchor``) is deleted explicitly: plotly.js, given a whole new axis
    container, keeps the axis's old ``domain`` (measured in Chromium: 1-D → 2-D → 1-D left both y axes
    over the full height).  A top-level key that is gone (an axis of a panel that no longer exists) is
    dropped whole.  Lists (``shapes``, ``annotations``, a ``domain``) are replaced whole.  A path and its
    parent never both appear (plotly.js rejects that).
    """
    edits: dict[str, Any] = {}
    for key, old_value in old.items():
        if key not in new:  # a whole axis gone: drop it at the top (plotly.js fails on the domain of a
            # subplot that no longer exists); a nested key: delete its leaves
            edits.update({key: None} if not prefix else _leaves(old_value, prefix + key))
            if key == "range" and "autorange" not in new:  # a fixed range dropped: autorange again
                edits[prefix + "autorange"] = True
    for key, value in new.items():
        path = prefix + key
        old_value = old.get(key)
        if isinstance(value, Mapping) and isinstance(old_value, Mapping) and old_value:
            edits.update(layout_edits(old_value, value, path + ".") if value else _leaves(old_value, path))
        elif key not in old or old_value != value:
            edits[path] = value
    return edits


def sync_figure(target: go.FigureWidget, source: go.Figure) -> str:
    """Make ``target`` (what the browser shows) hold exactly ``source``; the one redraw path of every explorer.

    * Same traces (count, types and property structure, see :func:`trace_structure`): every trace is
      overwritten and the layout edited (:func:`layout_edits`) inside one ``batch_update`` — one
      ``update`` message, one redraw (a slider move).
    * Otherwise the set of traces changed (1-D ↔ 2-D, a method ticked, another mode): an
      :class:`ExplorerFigure` is replaced whole by one ``react`` message — one redraw.  A plain
      FigureWidget gets plotly's three messages in order (``deleteTraces``, ``addTraces``, ``update``,
      three redraws), each sent on its own.  They must not be sent under ``hold_trait_notifications``:
      plotly sends each message by setting a trait and resetting it to None at once, and held
      notifications collapse the pair to None, so the browser never hears of it.

    Returns ``"update"`` or ``"rebuild"`` (which path ran).
    """
    same = trace_structure(target) == trace_structure(source)
    if not same and getattr(target, "can_react", False):
        target.react(source)
        return "rebuild"
    edits = layout_edits(target.layout.to_plotly_json(), source.layout.to_plotly_json())
    if not same:
        target.data = ()  # -> deleteTraces
        target.add_traces(list(source.data))  # -> addTraces
    with target.batch_update():  # -> one update (restyle + relayout)
        if same:
            for trace, new in zip(target.data, source.data):
                trace.update(new.to_plotly_json(), overwrite=True)
        for path, value in edits.items():
            target.layout[path] = value
    return "update" if same else "rebuild"


def try_this_html(text: str) -> str:
    """The "Try this → … you should see …" line as HTML (empty when there is no text)."""
    if not text:
        return ""
    # theme colours with light fallbacks: JupyterLab's dark theme gives a dark box with light text (a fixed
    # light background under the theme's light text read at a contrast of about 1.07:1)
    return (f'<div class="linattn-try-this" style="margin:2px 0 6px 0;padding:4px 8px;border-left:3px solid #0072b2;'
            f'background:var(--jp-layout-color2, #f4f8fb);color:var(--jp-content-font-color1, #111)">'
            f'{html.escape(text)}</div>')


def check_value(name: str, widget: widgets.Widget, value: Any) -> str | None:
    """Why ``value`` cannot go into ``widget`` (a sentence naming expected vs received), or None."""
    if isinstance(widget, widgets.Checkbox):
        return None if isinstance(value, bool) else f"{name} must be True or False; got {value!r}"
    if hasattr(widget, "options"):
        options = list(widget.options)
        values = [o[1] if isinstance(o, tuple) else o for o in options]
        if value in values:
            return None
        return f"{name} must be one of {values}; got {value!r}"
    if hasattr(widget, "min") and hasattr(widget, "max"):
        lo, hi = widget.min, widget.max
        if isinstance(widget, widgets.FloatLogSlider):  # min/max are exponents of base
            lo, hi = round(widget.base ** lo, 6), round(widget.base ** hi, 6)
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            return f"{name} must be a number in [{lo}, {hi}]; got {value!r}"
        if isinstance(widget.value, int) and not float(value).is_integer():
            return f"{name} must be a whole number in [{lo}, {hi}]; got {value!r}"
        if not lo <= value <= hi:
            return f"{name} must be in [{lo}, {hi}]; got {value!r}"
        return None
    if isinstance(widget, (widgets.IntText,)) and not isinstance(value, numbers.Integral):
        return f"{name} must be an integer; got {value!r}"
    if isinstance(widget, (widgets.Text,)) and not isinstance(value, str):
        return f"{name} must be a string; got {value!r}"
    return None


class Explorer:
    """Base class: subclasses set ``controls`` and implement :meth:`compute` (and maybe :meth:`adjust`)."""

    #: notes appended to range messages, e.g. {"n": "the dense view stores N × N weights"}
    limits: Mapping[str, str] = {}
    #: controls set first when several change at once (e.g. N before t, whose range depends on N)
    apply_order: tuple[str, ...] = ()
    #: torch intra-op threads while computing (1 for tiny tensors; None leaves torch's setting,
    #: e.g. for an explorer that measures timings)
    compute_threads: int | None = None
    #: the line under the figure: what to do and what the student should see ("Try this → … → …")
    try_this: str = ""

    def __init__(self, controls: dict[str, widgets.Widget], values: Mapping[str, Any], *,
                 extra: list[widgets.Widget] = ()) -> None:
        """``controls`` are built with neutral values; ``values`` (the caller's defaults) are checked
        and set here, so a bad default raises a ValueError naming the range instead of being clamped."""
        self.controls = controls
        self._holding = False
        problem = self._apply(values)
        if problem:
            raise ValueError(problem)
        self.figure = ExplorerFigure()
        self.figure._config = {**self.figure._config, "responsive": True}  # follow the window's width
        self.figure.observe(self._on_new_view, names="_view_count")
        self.message = ""
        self.redraws = 0
        self.last_sync = ""  # "update" (one message) or "rebuild" (the set of traces changed)
        self._message_box = widgets.HTML(value="")
        self.try_this_box = widgets.HTML(value=try_this_html(self.try_this))
        for widget in controls.values():
            if "value" in widget.trait_names():
                widget.observe(self._on_control, names="value")
        boxes = [w for w in controls.values()] + list(extra)
        self.widget = widgets.VBox(
            [widgets.HBox(boxes, layout=widgets.Layout(flex_flow="row wrap")), self._message_box, self.figure,
             self.try_this_box, AccessibleNames()],
            layout=widgets.Layout(width="100%"),
        )
        self.adjust()
        self.refresh()

    # --------------------------------------------------------------- subclass hooks

    def compute(self, **values: Any) -> go.Figure:  # pragma: no cover - abstract
        """Build the figure for the control ``values``; raise ValueError/TypeError for bad inputs."""
        raise NotImplementedError

    def adjust(self) -> None:
        """Update dependent controls (e.g. a slider's max) before a redraw; runs with callbacks held."""

    # --------------------------------------------------------------- public API

    def values(self) -> dict[str, Any]:
        """Current value of every control that has one."""
        return {n: w.value for n, w in self.controls.items() if "value" in w.trait_names()}

    def update(self, **changes: Any) -> "Explorer":
        """Set controls, recompute, redraw once.  A bad value leaves the view as it was and shows why."""
        unknown = sorted(set(changes) - set(self.values()))
        if unknown:
            raise TypeError(f"unknown control(s) {unknown}; expected some of {sorted(self.values())}")
        with self.hold():
            problem = self._apply(changes)
        if problem:
            self._show_message(problem)
            return self
        self.refresh()
        return self

    def refresh(self) -> None:
        """Recompute from the current control values and redraw (one front-end message)."""
        try:
            with torch_threads(self.compute_threads):
                fig = self.compute(**self.values())
        except (ValueError, TypeError) as exc:  # includes MemoryBudgetError
            self._show_message(str(exc))
            return
        except Exception as exc:  # a widget callback must never surface a traceback
            self._show_message(f"{type(exc).__name__}: {exc}")
            return
        self._show_message("")
        self.last_sync = sync_figure(self.figure, fig)
        self.redraws += 1
        self._drawn = self.values()

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Set several controls without a redraw per control."""
        previous, self._holding = self._holding, True
        try:
            with ExitStack() as stack:
                for widget in self.controls.values():  # one state message per control, not per trait
                    stack.enter_context(widget.hold_sync())
                yield
        finally:
            self._holding = previous

    # --------------------------------------------------------------- display

    def _repr_mimebundle_(self, **kwargs: Any):
        """Jupyter shows the explorer's widget when it is the last expression of a cell.

        The FigureWidget's own ``_repr_mimebundle_`` copies the current figure into the state a new
        front-end view starts from; nested in a VBox it is never called, so call it here (without it
        a figure updated before it is first shown renders with no traces).
        """
        self.figure._repr_mimebundle_()
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.values().items())
        return f"{type(self).__name__}({settings})"

    # --------------------------------------------------------------- internals

    def _ordered(self, names) -> list[str]:
        first = [n for n in self.apply_order if n in names]
        return first + [n for n in names if n not in first]

    def _apply(self, changes: Mapping[str, Any]) -> str | None:
        """Set controls one by one (``apply_order`` first), adjusting dependent ones after each.

        On a bad value every control is restored and the reason is returned (None on success).
        """
        before = self.values()
        for name in self._ordered(changes):
            problem = check_value(name, self.controls[name], changes[name])
            if problem:
                for n in self._ordered(before):
                    self.controls[n].value = before[n]
                    self.adjust()
                note = self.limits.get(name)
                return problem + (f" ({note})" if note else "")
            self.controls[name].value = changes[name]
            self.adjust()
        return None

    def _on_control(self, change: dict) -> None:
        if self._holding:
            return
        with self.hold():
            self.adjust()
        if not self.message and _same_values(self.values(), getattr(self, "_drawn", None)):
            return  # a slider's echo of the value just drawn (16.0 comes back as 15.999999999999998): no redraw
        self.refresh()

    def _on_new_view(self, change: dict) -> None:
        """A new front-end view was drawn before it had a width (plotly then uses 700 px): resize it to its cell.

        The view counts itself in only after it is created, so this relayout reaches it once it is on the page.
        """
        if (change.get("new") or 0) > (change.get("old") or 0):
            self.figure._send_relayout_msg({"autosize": True})

    def _show_message(self, text: str) -> None:
        self.message = text
        self._message_box.value = (
            "" if not text else
            f'<div style="color:#a00;border:1px solid #a00;padding:4px 8px;margin:4px 0">'
            f"⚠ {html.escape(text)}</div>"
        )
