"""linattn_edu: linear attention, derived step by step and tested like production code.

softmax attention -> attention as kernel smoothing -> feature maps φ ->
linear attention in every form (quadratic, associative, recurrent, chunkwise) ->
sliding windows, decay/gates, the delta rule, hybrids. Core modules need only torch; plotting
lives in ``viz`` and ``explorers`` (extras ``[viz]``/``[notebooks]``).

Every update rule is registered in :data:`RULES` (name -> attention function, state class, forms,
gates); every rule's attention function takes ``initial_state=`` and returns ``(out, state)`` with
``return_state=True``, and every state class speaks one protocol (step, prefill, readout,
snapshot, nbytes): see ``linattn_edu._state``.
"""
from ._blocks import carry
from ._checks import MemoryBudgetError, memory_budget, set_memory_budget
from ._state import RULES, RecurrentState, Rule, register_rule
from .delta import DeltaState, delta_rule_attention
from .feature_maps import FEATURE_MAPS, FeatureMap, get_feature_map, register_feature_map
from .gated import GatedState, gated_linear_attention, retnet_log_decay
from .forgetting import forgetting_attention, output_gate
from .kernel import kernel_smoother
from .linear import FORMS, LinearAttentionState, linear_attention
from .mesa import MesaState, mesa_attention
from .softmax import softmax_attention
from .transitions import DeltaProductState, DPLRState, delta_product_attention, dplr_attention
from .window import sliding_window_attention, window_linear_attention

__version__ = "0.1.0"

__all__ = [
    "__version__", "softmax_attention", "kernel_smoother", "linear_attention", "LinearAttentionState",
    "sliding_window_attention", "FeatureMap", "get_feature_map", "FEATURE_MAPS", "register_feature_map", "FORMS",
    "MemoryBudgetError", "set_memory_budget", "memory_budget", "carry",
    "gated_linear_attention", "GatedState", "retnet_log_decay", "delta_rule_attention", "DeltaState",
    "window_linear_attention", "RULES", "Rule", "register_rule", "RecurrentState",
    "mesa_attention", "MesaState", "delta_product_attention", "DeltaProductState", "dplr_attention", "DPLRState",
    "forgetting_attention", "output_gate",
]
