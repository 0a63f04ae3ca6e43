"""linattn_edu: linear attention, derived step by step and tested like production code.

softmax attention -> attention as kernel smoothing -> feature maps φ ->
linear attention in every form (quadratic, associative, recurrent, chunkwise) ->
sliding windows. Core modules need only torch; plotting lives in ``viz`` and
``explorers`` (extras ``[viz]``/``[notebooks]``).
"""
from ._checks import MemoryBudgetError, memory_budget, set_memory_budget
from .delta import DeltaState, delta_rule_attention
from .feature_maps import FEATURE_MAPS, FeatureMap, get_feature_map
from .gated import GatedState, gated_linear_attention
from .hybrid import window_linear_attention
from .kernel import kernel_smoother
from .linear import FORMS, linear_attention
from .recurrent import LinearAttentionState
from .softmax import softmax_attention
from .window import sliding_window_attention

__version__ = "0.1.0"

__all__ = [
    "__version__", "softmax_attention", "kernel_smoother", "linear_attention", "LinearAttentionState",
    "sliding_window_attention", "FeatureMap", "get_feature_map", "FEATURE_MAPS", "FORMS",
    "MemoryBudgetError", "set_memory_budget", "memory_budget",
    "gated_linear_attention", "GatedState", "delta_rule_attention", "DeltaState", "window_linear_attention",
]
