"""Plotly figures for linear attention: tensors and records in, ``go.Figure`` out.

Every function here is pure: it takes tensors (or arrays / nested lists / bench records), builds a
figure and returns it.  Nothing is shown and no widget is created, so each picture can be tested
headless and reused by the notebooks and by :mod:`linattn_edu.explorers`.

One module per subject, one look for all of them (:mod:`._style`: palette, fonts, subplot grid):

=================  ===========================================================================
``heatmaps``       :func:`heatmap`, :func:`attention_map`, :func:`attention_comparison`, :func:`attention_rows`
``state``          :func:`state_step` (the recurrent view: S_t, z_t, readouts)
``kernel``         :func:`kernel_smoother_1d`, :func:`kernel_smoother_2d` (Nadaraya–Watson)
``features``       :func:`feature_map_approximation` (random features vs the exp kernel)
``window``         :func:`window_pattern` (sliding window + global tokens)
``timing``         :func:`timing_figure`, :func:`decode_figure` (bench records)
``memory``         :func:`kv_cache_figure`, :func:`kv_cache_summary` (KV cache vs linear state)
``diagrams``       :func:`associativity_diagram`, :func:`chunk_tiling`, :func:`message_figure`
``gates``          :func:`retrieval_error`, :func:`decay_maps`, :func:`gated_delta_step` (decay, delta rule)
``recall``         :func:`recall_capacity_figure`, :func:`recall_accuracy_figure`, :func:`recall_frontier_figure`
``assets``         :func:`render_assets` (``python -m linattn_edu.viz assets``, needs kaleido)
=================  ===========================================================================

Colours: :func:`colour` gives a method, feature map, projection ("iid", "orthogonal") or model its
one course colour; the tables are ``METHOD_COLOURS``, ``FEATURE_MAP_COLOURS``, ``PROJECTION_COLOURS``,
``MODEL_COLOURS``.
"""

from __future__ import annotations

from ._style import (CYCLE, DIFF_SCALE, FEATURE_MAP_COLOURS, LINEAR_COLOUR, METHOD_COLOURS, MODEL_COLOURS,
                     PROJECTION_COLOURS, SOFTMAX_COLOUR, THEORY_COLOUR, WEIGHT_SCALE, colour)
from .assets import main, render_assets
from .diagrams import associativity_diagram, chunk_tiling, message_figure
from .features import feature_map_approximation
from .gates import decay_maps, gated_delta_step, retrieval_error
from .heatmaps import attention_comparison, attention_map, attention_rows, heatmap
from .kernel import kernel_smoother_1d, kernel_smoother_2d
from .memory import kv_cache_figure, kv_cache_summary
from .recall import recall_accuracy_figure, recall_capacity_figure, recall_frontier_figure
from .state import state_step
from .timing import decode_figure, timing_figure
from .window import window_pattern

__all__ = [
    "heatmap", "attention_map", "attention_comparison", "attention_rows",
    "state_step",
    "kernel_smoother_1d", "kernel_smoother_2d",
    "feature_map_approximation",
    "window_pattern",
    "timing_figure", "decode_figure",
    "kv_cache_figure", "kv_cache_summary",
    "associativity_diagram", "chunk_tiling", "message_figure",
    "retrieval_error", "decay_maps", "gated_delta_step",
    "recall_capacity_figure", "recall_accuracy_figure", "recall_frontier_figure",
    "render_assets", "main",
    "colour", "METHOD_COLOURS", "FEATURE_MAP_COLOURS", "PROJECTION_COLOURS", "MODEL_COLOURS", "CYCLE",
    "SOFTMAX_COLOUR", "LINEAR_COLOUR", "THEORY_COLOUR", "WEIGHT_SCALE", "DIFF_SCALE",
]
