"""Interactive explorers (ipywidgets + plotly), one module each; every entry point returns an explorer.

    from linattn_edu.explorers import attention_map_explorer
    attention_map_explorer(n=32, feature_map="favor+")   # last expression of a cell: shows the widget

Every explorer renders its default view at construction and exposes ``.widget`` (the ipywidgets
container), ``.figure`` (a plotly ``FigureWidget``), ``.controls`` ({name: widget}), ``.update(**changes)``
(set controls, recompute, redraw once) and ``.message`` (why the current inputs cannot be drawn).
Modules are imported lazily, so importing this package does not import plotly until an explorer is built.
"""

from __future__ import annotations

import importlib

__all__ = [
    "attention_map_explorer",
    "state_stepper",
    "kernel_smoother_explorer",
    "feature_map_explorer",
    "sliding_window_explorer",
    "timing_explorer",
    "kv_cache_calculator",
    "decay_explorer",
    "gated_stepper",
    "retrieval_explorer",
]

_ENTRY_POINTS = {
    "attention_map_explorer": ".attention_map",
    "state_stepper": ".state_stepper",
    "kernel_smoother_explorer": ".kernel_smoother",
    "feature_map_explorer": ".feature_map_approx",
    "sliding_window_explorer": ".sliding_window",
    "timing_explorer": ".timing",
    "kv_cache_calculator": ".kv_cache",
    "decay_explorer": ".decay",
    "gated_stepper": ".gated_stepper",
    "retrieval_explorer": ".retrieval",
    "transition_zoo_explorer": ".transition_zoo",
    "mesa_solvers_explorer": ".mesa_solvers",
}
# (the two newest are not in __all__ until the browser test's own list of explorers builds them:
#  tests/test_browser_frontier.py drives them in a real browser meanwhile)


def __getattr__(name: str):
    """Import an explorer's module on first use (PEP 562)."""
    if name not in _ENTRY_POINTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        module = importlib.import_module(_ENTRY_POINTS[name], __name__)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("plotly", "ipywidgets", "anywidget"):
            raise ImportError(f"{name} needs plotly, ipywidgets and anywidget ({exc.name} is missing): "
                              "pip install 'linattn-edu[viz]'") from exc
        raise
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
