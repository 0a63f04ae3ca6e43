"""Multi-query associative recall (MQAR): what a fixed-size state costs.

A sequence first lists n key–value pairs ``k1 v1 … kn vn``; then each key is asked again once, at a
gap drawn from a power law (queries cluster soon after the context). After reading a queried key the
model must output the value that followed it earlier (Zoology, Arora et al. 2023; Based, 2024).
Softmax attention can look the pair up in its KV cache; linear attention must read it out of one
d_φ × d_v state S = Σ_i φ(k_i) v_iᵀ, where the pairs interfere once n grows past what S can hold.

* :func:`mqar` — the seeded data generator (inputs, labels with -100 where not scored).
* :class:`RecallModel` — per mixer layer, pre-norm residual: a short causal depthwise conv block
  (BaseConv, ``proj(u) ⊙ conv_k3(u)``) then a sequence mixer; tied embeddings, N(0, 0.02) init. One
  mixer name gives Zoology's 2-block model; a tuple of names stacks layers (a layer-wise hybrid).
* :func:`run_mqar` — train one model and return test accuracy, seconds, CPU seconds, state bytes, loss curve.
* ``ABLATION`` — linear → linear_nodenom → additive → delta: one change between neighbours (normaliser,
  feature map, write rule).

Every mixer calls the library's own attention functions (softmax_attention, linear_attention,
sliding_window_attention, window_linear_attention, gated_linear_attention, delta_rule_attention).
"""
from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_bool, check_dense_budget, check_device, check_number, check_positive_int
from .capacity import readout_error  # noqa: F401  (the lab's interference law; computed in capacity)
from .delta import delta_rule_attention
from .gated import gated_linear_attention
from .linear import linear_attention
from .softmax import softmax_attention
from .transitions import delta_product_attention
from .window import sliding_window_attention, window_linear_attention

__all__ = ["mqar", "RecallModel", "run_mqar", "MIXERS", "MixerSpec", "ABLATION", "mixer_name", "state_bytes",
           "readout_error", "IGNORE_INDEX", "POWER_A", "MAX_SEED", "state_tracking", "run_state_tracking",
           "state_tracking_table", "state_tracking_curves", "format_state_tracking_table", "STATE_TASKS", "STATE_METRICS", "S3_ELEMENTS"]

IGNORE_INDEX = -100  # label of every position that is not scored (PyTorch's cross_entropy default)
POWER_A = 0.01  # p(gap = i) ∝ (i + 1)^(a − 1): nearly 1/(i + 1), queries cluster early
BYTES_PER_FLOAT = 4  # the states below are counted in float32
TAYLOR_DIM = 16  # Based's small q/k projection before the Taylor map: 1 + 16 + 16² = 273 features
WINDOW = 16  # the window mixer's (and the hybrid's) band width w
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes any int up to here (and more, but not every int)
MAX_CATEGORIES = 2**24  # torch.multinomial draws from at most 2²⁴ categories


# The data ---------------------------------------------------------------------------------------
def _check_sizes(seq_len, num_kv_pairs, vocab_size):
    check_positive_int(seq_len, "seq_len")
    check_positive_int(num_kv_pairs, "num_kv_pairs")
    check_positive_int(vocab_size, "vocab_size")
    if vocab_size <= seq_len:
        raise ValueError(f"MQAR needs vocab_size > seq_len; got vocab_size={vocab_size}, seq_len={seq_len}")
    if 4 * num_kv_pairs > seq_len:
        raise ValueError(
            f"MQAR needs 4 · num_kv_pairs <= seq_len (2n context tokens and n queries at even gaps); "
            f"got num_kv_pairs={num_kv_pairs}, seq_len={seq_len}"
        )


def _check_seed(seed, maximum=MAX_SEED):
    check_number(seed, "seed", integer=True, minimum=0, maximum=maximum)


def _check_data_budget(num_examples, seq_len, num_kv_pairs, vocab_size, what="num_examples"):
    """Refuse, before drawing anything, a data set whose tensors pass the memory budget or torch's limits.

    The draws allocate (num_examples, V − V/2) float32 weights for the values (the keys' are one
    smaller), (num_examples, (L − 2n)/2) float64 for the gaps and (num_examples, L) int64 twice.
    """
    half, space = vocab_size // 2, (seq_len - 2 * num_kv_pairs) // 2
    hint = f"lower {what} or vocab_size"
    check_dense_budget((num_examples, vocab_size - half), torch.float32,
                       f"mqar's value draw ({what}={num_examples}, vocab_size − vocab_size // 2 = "
                       f"{vocab_size - half})", hint)
    check_dense_budget((num_examples, space), torch.float64,
                       f"mqar's gap draw ({what}={num_examples}, (seq_len − 2 · num_kv_pairs) // 2 = {space})",
                       f"lower {what} or seq_len")
    check_dense_budget((num_examples, seq_len), torch.int64,
                       f"mqar's tokens ({what}={num_examples}, seq_len={seq_len})", f"lower {what} or seq_len")
    if vocab_size - half > MAX_CATEGORIES:
        raise ValueError(f"vocab_size must be <= {2 * MAX_CATEGORIES} (torch.multinomial draws the values from at "
                         f"most 2**24 tokens); got {vocab_size}")
    if space > MAX_CATEGORIES:
        raise ValueError(f"seq_len must be <= {2 * MAX_CATEGORIES + 2 * num_kv_pairs} with num_kv_pairs="
                         f"{num_kv_pairs} (torch.multinomial draws the gaps from at most 2**24 slots); got {seq_len}")


def _sample_without_replacement(weights: torch.Tensor, rows: int, k: int, g: torch.Generator):
    """k distinct indices per row, drawn with the given (unnormalised) weights: (rows, k)."""
    return torch.multinomial(weights.expand(rows, -1), k, replacement=False, generator=g)  # (rows, k)


def mqar(num_examples, *, seq_len=64, num_kv_pairs=8, vocab_size=256, seed=0):
    """MQAR examples: inputs (n, L) and next-token labels (n, L), -100 where not scored.

    Keys are drawn without replacement from [1, V/2), values from [V/2, V) (per example). Tokens
    0 … 2n−1 are the context k1 v1 … kn vn. The rest of the sequence (the query region, position
    2n + 2·gap for gap = 0, 1, …) holds each key once, at gaps drawn without replacement with
    p(gap = i) ∝ (i + 1)^(a − 1), a = 0.01; every other slot is 0.

    Labels follow next-token prediction: ``labels[b, t]`` is the target of the model's output at t,
    the token that should come after t. Only the output at a queried key is scored, and its label is
    the value that followed that key in the context; every other label is -100.

    Needs vocab_size > seq_len, 4 · num_kv_pairs <= seq_len and 0 <= seed <= 2⁶³ − 1; sizes whose tensors
    would pass the memory budget raise :class:`~linattn_edu.MemoryBudgetError` before anything is drawn.
    Same seed → same tensors; the global RNG is not touched.
    """
    check_positive_int(num_examples, "num_examples")
    _check_sizes(seq_len, num_kv_pairs, vocab_size)
    _check_seed(seed)
    _check_data_budget(num_examples, seq_len, num_kv_pairs, vocab_size)
    n, half = num_kv_pairs, vocab_size // 2
    g = torch.Generator().manual_seed(seed)
    keys = _sample_without_replacement(torch.ones(half - 1), num_examples, n, g) + 1  # (B, n) in [1, V/2)
    values = _sample_without_replacement(torch.ones(vocab_size - half), num_examples, n, g) + half  # (B, n)
    space = (seq_len - 2 * n) // 2  # query slots at even offsets of the query region
    p = (torch.arange(space, dtype=torch.float64) + 1) ** (POWER_A - 1)  # (space,)
    gaps = _sample_without_replacement(p, num_examples, n, g)  # (B, n)

    inputs = torch.zeros(num_examples, seq_len, dtype=torch.long)  # (B, L)
    inputs[:, 0:2 * n:2], inputs[:, 1:2 * n:2] = keys, values  # context k1 v1 … kn vn
    query_pos = 2 * n + 2 * gaps  # (B, n): where key j is asked again
    inputs.scatter_(1, query_pos, keys)  # (B, L)
    labels = torch.full_like(inputs, IGNORE_INDEX)  # (B, L)
    labels.scatter_(1, query_pos, values)  # the output at a queried key must be its value
    return inputs, labels


# The model --------------------------------------------------------------------------------------
class BaseConv(nn.Module):
    """Zoology's BaseConv: proj(u) ⊙ conv_k3(u), a causal depthwise conv (kernel 3) gated by a linear map.

    (B, L, d) -> (B, L, d); position t sees only u_{t−2}, u_{t−1}, u_t.
    """

    def __init__(self, d_model: int, kernel_size: int = 3):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)
        self.conv = nn.Conv1d(d_model, d_model, kernel_size, groups=d_model, padding=kernel_size - 1)

    def forward(self, u):
        conv = self.conv(u.transpose(1, 2))[..., : u.shape[1]].transpose(1, 2)  # (B, d, L + k − 1) -> (B, L, d)
        return self.proj(u) * conv  # (B, L, d)


class Mixer(nn.Module):
    """One attention head over the sequence, through the library's function for ``kind``.

    (B, L, d) -> (B, L, d). q/k are d_k-dimensional: ``d_key`` when given, else ``MIXERS[kind].d_qk``
    (16 for "taylor" and "hybrid", whose Taylor map then has 1 + 16 + 16² = 273 features, as in Based),
    else d; v and the output are d-dimensional. Mixers with ``gate`` learn one scalar per token from x
    (β or a forget gate).
    """

    def __init__(self, kind: str, d_model: int, window: int = WINDOW, d_key: int | None = None):
        super().__init__()
        spec = MIXERS[kind]
        self.kind, self.window = kind, window
        d_qk = d_key or spec.d_qk or d_model
        n_h = self.micro_steps = spec.micro_steps
        self.qkv = nn.Linear(d_model, d_qk + n_h * (d_qk + d_model))  # q, then n_h (k, v) pairs
        self.out = nn.Linear(d_model, d_model)
        self.d_qk = d_qk
        if spec.gate:  # β_t (delta: write strength; one per micro-step) or g_t (gated: forget gate), per token
            self.gate = nn.Linear(d_model, n_h)

    def forward(self, x):
        d, n_h = x.shape[-1], self.micro_steps
        if n_h == 1:
            q, k, v = self.qkv(x).split([self.d_qk, self.d_qk, d], dim=-1)  # (B, L, d_qk) ×2, (B, L, d)
        else:
            q, kv = self.qkv(x).split([self.d_qk, n_h * (self.d_qk + d)], dim=-1)  # (B, L, d_qk), (B, L, n_h(d_qk + d))
            k, v = kv.unflatten(-1, (n_h, self.d_qk + d)).split([self.d_qk, d], dim=-1)  # (B, L, n_h, d_qk), (B, L, n_h, d)
        return self.out(MIXERS[self.kind].attend(self, x, q, k, v))  # (B, L, d)


def _softmax(m, x, q, k, v):
    return softmax_attention(q, k, v, causal=True)  # (B, L, d)


def _linear(m, x, q, k, v):
    """φ = elu+1 with the denominator: o_t = S_tᵀφ(q_t) / z_tᵀφ(q_t), S_t = S_{t−1} + φ(k_t)v_tᵀ, z_t = z_{t−1} + φ(k_t)."""
    return linear_attention(q, k, v, "elu+1", causal=True)  # (B, L, d)


def _linear_nodenom(m, x, q, k, v):
    """``linear`` less its denominator (one change): φ = elu+1 scaled to unit length, o_t = S_tᵀφ(q_t).

    The unit length keeps the sum as bounded as ``additive``'s (each write adds a unit key).
    """
    fq, fk = (F.normalize(F.elu(t) + 1, dim=-1) for t in (q, k))  # (B, L, d_k) ×2: positive, unit length
    return linear_attention(fq, fk, v, "identity", causal=True, normalize=False)  # (B, L, d)


def _additive(m, x, q, k, v):
    """``linear_nodenom`` with φ = identity on unit q, k (one change: signed keys): o_t = S_tᵀq̂_t.

    The same map, normaliser (none) and state as ``delta``; only the write differs: S_t = S_{t−1} + k̂_t v_tᵀ.
    """
    q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)  # (B, L, d_k) ×2, unit length
    return linear_attention(q, k, v, "identity", causal=True, normalize=False)  # (B, L, d)


def _taylor(m, x, q, k, v):
    return linear_attention(q, k, v, "taylor", causal=True)  # (B, L, 16) -> 273 features -> (B, L, d)


def _window(m, x, q, k, v):
    return sliding_window_attention(q, k, v, window=m.window, causal=True)  # (B, L, d)


def _hybrid(m, x, q, k, v):
    """Based's idea in one head: exact softmax over a window + Taylor linear attention over everything."""
    return window_linear_attention(q, k, v, window=m.window, feature_map="taylor")  # (B, L, 16) -> (B, L, d)


def _window_linear(m, x, q, k, v):
    """The in-layer hybrid with ``linear``'s map: exact softmax over a window + elu+1 linear attention."""
    return window_linear_attention(q, k, v, window=m.window, feature_map="elu+1")  # (B, L, d)


def _gated(m, x, q, k, v):
    """Linear attention with one data-dependent forget gate per step (RetNet / Mamba-2 / FLA's "simple GLA"):

    S_t = exp(g_t) S_{t−1} + k_t v_tᵀ, g_t = logsigmoid(w·x_t + b)/16 (GLA's temperature 16).
    (A gate per key channel, as in GLA proper, makes the library's chunkwise form ~7× slower at the lab's
    shape: forward+backward at B = L = d = 64 took 36 ms vs 5 ms on a 2-core CPU.)
    """
    log_g = F.logsigmoid(m.gate(x)).squeeze(-1) / 16  # (B, L), entries < 0
    return gated_linear_attention(q * m.d_qk ** -0.5, k, v, log_g)  # (B, L, d)


def _delta(m, x, q, k, v):
    """DeltaNet: S_t = (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ with unit keys (and unit queries)."""
    beta = torch.sigmoid(m.gate(x)).squeeze(-1)  # (B, L) in (0, 1)
    return delta_rule_attention(F.normalize(q, dim=-1), k, v, beta, normalize_keys=True)  # (B, L, d)


def _delta_neg(m, x, q, k, v):
    """``delta`` with one change, β_t = 2·sigmoid(w·x_t + b) ∈ (0, 2): the transition I − β_t k_t k_tᵀ has
    eigenvalue 1 − β_t ∈ (−1, 1) along k_t, so the state can flip sign (Grazzi et al., 2025)."""
    beta = 2 * torch.sigmoid(m.gate(x)).squeeze(-1)  # (B, L) in (0, 2)
    return delta_rule_attention(F.normalize(q, dim=-1), k, v, beta, normalize_keys=True,
                                allow_negative_eigenvalues=True)  # (B, L, d)


def _deltaproduct(m, x, q, k, v):
    """DeltaProduct, n_h = 2: per token two delta micro-steps, S ← S + β_j k_j (v_j − Sᵀk_j)ᵀ, β_j ∈ (0, 1).

    k (B, L, 2, d_k), v (B, L, 2, d). The transition (I − β_2 k_2k_2ᵀ)(I − β_1 k_1k_1ᵀ) is a product of two
    symmetric matrices with eigenvalues in [0, 1]: its eigenvalues are real and stay in [0, 1] too.
    """
    beta = torch.sigmoid(m.gate(x))  # (B, L, 2) in (0, 1)
    return delta_product_attention(F.normalize(q, dim=-1), k, v, beta, normalize_keys=True)  # (B, L, d)


def _deltaproduct_neg(m, x, q, k, v):
    """DeltaProduct, n_h = 2, with β_j ∈ (0, 2) (one change from ``deltaproduct``): two reflections make a
    rotation. Run as the delta rule over the 2L micro-steps (what DeltaProduct is), read after each token's
    last micro-step: out_t = S_{t,2}ᵀ q_t.
    """
    B, L, n_h, d_k = k.shape
    beta = 2 * torch.sigmoid(m.gate(x))  # (B, L, n_h) in (0, 2)
    qm = F.normalize(q, dim=-1).unsqueeze(-2).expand(B, L, n_h, d_k)  # (B, L, n_h, d_k): q at every micro-step
    out = delta_rule_attention(qm.flatten(1, 2), k.flatten(1, 2), v.flatten(1, 2), beta.flatten(1, 2),
                               normalize_keys=True, allow_negative_eigenvalues=True)  # (B, L·n_h, d)
    return out.unflatten(1, (L, n_h))[:, :, -1]  # (B, L, d): the read after the token's last micro-step


@dataclass(frozen=True)
class MixerSpec:
    """One recall mixer: how it mixes, what it keeps, and what it allocates.

    attend(mixer, x, q, k, v) -> (B, L, d): the library call (x is the block's input, for gates).
    state_floats(seq_len, d_model, window[, d_key]) -> floats a decoder keeps per sequence (see
    :func:`state_bytes`; the optional 4th argument is the q/k width when a model narrows it).
    label: the name figures print. d_qk: width of q and k (None: d_model). gate: learns one scalar per
    token (per micro-step) from x. micro_steps: n_h key–value pairs per token (k (B, L, n_h, d_k)).
    """

    attend: Callable
    state_floats: Callable[[int, int, int], int]
    label: str
    d_qk: int | None = None
    gate: bool = False
    micro_steps: int = 1  # key–value pairs (and β's) per token: DeltaProduct's n_h


_TAYLOR_FEATURES = 1 + TAYLOR_DIM + TAYLOR_DIM ** 2  # 273


def _keyed(floats, default_k=None):
    """state_floats(L, d, w, k=None) from floats(L, d, w, k): k, the q/k width, defaults to ``default_k`` or d."""
    return lambda L, d, w, k=None: floats(L, d, w, k or default_k or d)


def _taylor_features(k):
    return 1 + k + k * k  # the Taylor map's features for a k-dim key

# The one registry of mixers: RecallModel, state_bytes, the error messages and the tests read it.
# A new mixer is one function above and one entry here.
MIXERS: dict[str, MixerSpec] = {
    "softmax": MixerSpec(_softmax, _keyed(lambda L, d, w, k: L * (k + d)), "softmax"),  # the KV cache
    "linear": MixerSpec(_linear, _keyed(lambda L, d, w, k: k * d + k), "linear (elu+1, denominator)"),  # S, z
    "taylor": MixerSpec(_taylor, _keyed(lambda L, d, w, k: _taylor_features(k) * (d + 1), TAYLOR_DIM),
                        "linear (Taylor, 273 features)", d_qk=TAYLOR_DIM),
    "window": MixerSpec(_window, _keyed(lambda L, d, w, k: min(w, L) * (k + d)), "sliding window"),  # last k, v
    "hybrid": MixerSpec(_hybrid, _keyed(lambda L, d, w, k: min(w, L) * (k + d) + _taylor_features(k) * (d + 1),
                                        TAYLOR_DIM), "window + Taylor", d_qk=TAYLOR_DIM),
    "gated": MixerSpec(_gated, _keyed(lambda L, d, w, k: k * d), "gated (one gate per step)", gate=True),
    "delta": MixerSpec(_delta, _keyed(lambda L, d, w, k: k * d), "delta rule", gate=True),
    # the one-change ablation between "linear" and "delta" (ABLATION), and the in-layer hybrid with elu+1
    "linear_nodenom": MixerSpec(_linear_nodenom, _keyed(lambda L, d, w, k: k * d), "elu+1, no denominator"),
    "additive": MixerSpec(_additive, _keyed(lambda L, d, w, k: k * d), "identity on unit keys, additive"),
    "window_linear": MixerSpec(_window_linear, _keyed(lambda L, d, w, k: min(w, L) * (k + d) + k * d + k),
                               "window + elu+1 (in-layer hybrid)"),
    # the state-tracking lab: transitions with negative eigenvalues, and products of two (DeltaProduct)
    "delta_neg": MixerSpec(_delta_neg, _keyed(lambda L, d, w, k: k * d), "delta rule, β ∈ (0, 2)", gate=True),
    "deltaproduct": MixerSpec(_deltaproduct, _keyed(lambda L, d, w, k: k * d), "DeltaProduct (n_h = 2)",
                              gate=True, micro_steps=2),
    "deltaproduct_neg": MixerSpec(_deltaproduct_neg, _keyed(lambda L, d, w, k: k * d),
                                  "DeltaProduct (n_h = 2), β ∈ (0, 2)", gate=True, micro_steps=2),
}
ABLATION = ("linear", "linear_nodenom", "additive", "delta")  # neighbours differ in one thing: normaliser, map, write


def state_bytes(mixer, *, seq_len: int, d_model: int, window: int = WINDOW, d_key: int | None = None) -> int:
    """Bytes (float32) a decoder keeps per sequence for the mixer layer(s) after ``seq_len`` tokens.

    With q/k width d_k (``d_key``; default d, 16 for taylor/hybrid) and value width d: softmax: KV cache
    L·(d_k + d); window: min(w, L)·(d_k + d); linear: d_k·d (+ d_k for z); taylor: m·d + m, m = 1 + d_k + d_k²;
    hybrid / window_linear: the window's cache + the linear state; gated, delta, linear_nodenom, additive:
    one d_k × d matrix (``MIXERS[mixer].state_floats``). A tuple of mixers (one per layer) keeps the sum.
    """
    layers = _check_mixer(mixer)
    for value, name in [(seq_len, "seq_len"), (d_model, "d_model"), (window, "window")]:
        check_positive_int(value, name)
    if d_key is not None:
        check_positive_int(d_key, "d_key")
    args = (seq_len, d_model, window) if d_key is None else (seq_len, d_model, window, d_key)
    return sum(MIXERS[m].state_floats(*args) for m in layers) * BYTES_PER_FLOAT


def _check_mixer(mixer) -> tuple:
    """A mixer name, or a non-empty tuple of names (one per mixer layer) -> the tuple of names."""
    names = tuple(MIXERS)
    layers = mixer if isinstance(mixer, tuple) and mixer else (mixer,)
    for name in layers:
        if not isinstance(name, str):
            raise TypeError(f"mixer must be a string, one of {names}, or a non-empty tuple of them (one per "
                            f"mixer layer); got {type(mixer).__name__} {mixer!r}")
        if name not in MIXERS:
            raise ValueError(f"mixer must be one of {names}; got {name!r}")
    return layers


def mixer_name(mixer) -> str:
    """The record's name of a mixer: "linear", or "linear+softmax" for the tuple ("linear", "softmax")."""
    return "+".join(_check_mixer(mixer))


def _check_model(mixer, vocab_size, d_model, window, d_key=None):
    """Mixer name(s), sizes, and the largest weights (embedding V × d, q/k/v projection) under the memory budget."""
    layers = _check_mixer(mixer)
    check_positive_int(vocab_size, "vocab_size")
    check_positive_int(d_model, "d_model")
    check_positive_int(window, "window")
    if d_key is not None:
        check_positive_int(d_key, "d_key")
    d_qk = max(d_key or MIXERS[m].d_qk or d_model for m in layers)
    check_dense_budget((vocab_size, d_model), torch.float32, f"RecallModel's embedding (vocab_size={vocab_size}, "
                       f"d_model={d_model})", "lower vocab_size or d_model")
    n_h = max(MIXERS[m].micro_steps for m in layers)
    check_dense_budget((d_qk + n_h * (d_qk + d_model), d_model), torch.float32, f"RecallModel's q/k/v projection "
                       f"({d_qk} + {n_h} · ({d_qk} + d_model), d_model) with d_model={d_model}", "lower d_model")


class RecallModel(nn.Module):
    """Embedding → [conv block, mixer block] per mixer layer (pre-norm residual) → norm → tied head.

    (B, L) -> (B, L, V). ``mixer`` is a name (one conv block, one mixer block) or a tuple of names, one
    per mixer layer: ("linear", "softmax") builds conv, linear, conv, softmax — a layer-wise hybrid.
    ``d_key`` sets the q/k width of every mixer (default: see :class:`Mixer`).
    """

    def __init__(self, mixer, *, vocab_size: int = 256, d_model: int = 64, window: int = WINDOW,
                 d_key: int | None = None):
        super().__init__()
        _check_model(mixer, vocab_size, d_model, window, d_key)
        self.embed = nn.Embedding(vocab_size, d_model)
        nn.init.normal_(self.embed.weight, std=0.02)  # N(0, 1) with a tied head stalls at chance
        self.blocks = nn.ModuleList([block for name in _check_mixer(mixer)
                                     for block in (BaseConv(d_model), Mixer(name, d_model, window, d_key))])
        self.norms = nn.ModuleList([nn.LayerNorm(d_model) for _ in range(len(self.blocks) + 1)])

    def forward(self, tokens):
        x = self.embed(tokens)  # (B, L) -> (B, L, d)
        for norm, block in zip(self.norms, self.blocks):
            x = x + block(norm(x))  # (B, L, d)
        return self.norms[-1](x) @ self.embed.weight.T  # (B, L, d) @ (d, V) -> (B, L, V)


# Training ---------------------------------------------------------------------------------------
def _accuracy(model, inputs, labels, batch_size):
    """Fraction of scored positions (label != -100) whose argmax equals the label."""
    right = total = 0
    model.eval()
    with torch.no_grad():
        for i in range(0, len(inputs), batch_size):
            x, y = inputs[i:i + batch_size], labels[i:i + batch_size]  # (b, L) ×2
            scored = y != IGNORE_INDEX  # (b, L)
            right += (model(x).argmax(-1)[scored] == y[scored]).sum().item()  # (b, L, V) -> (b, L)
            total += scored.sum().item()
    model.train()
    return right / total


def _train_device(device):
    """The device to train on: None → CUDA when present, else CPU; refuses devices this machine lacks."""
    dev = check_device(device)
    if dev is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "meta":
        raise ValueError(f"device must hold real numbers to train on ('cpu', 'cuda', ...); got {device!r}")
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device must be one this machine has; got {device!r}, but torch sees no CUDA GPU "
                             f"(use device='cpu', or None for the default)")
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"device must be one this machine has (cuda:0 … cuda:{count - 1}); got {device!r}")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"device must be one this machine has; got {device!r}, but MPS is not available "
                             f"(use device='cpu', or None for the default)")
    elif dev.type != "cpu":
        backend = getattr(torch, dev.type, None)
        available = getattr(backend, "is_available", None)
        if available is None or not available():
            raise ValueError(f"device must be 'cpu', 'cuda' or another device this machine has; got {device!r}")
    return dev


def _check_run_args(mixer, num_kv_pairs, seq_len, vocab_size, d_model, train_examples, test_examples,
                    epochs, seed, progress, batch_size, lr, weight_decay, window, device, d_key=None):
    """Every argument of run_mqar, and every allocation that scales with one, before any work; returns the device."""
    _check_mixer(mixer)
    _check_sizes(seq_len, num_kv_pairs, vocab_size)
    for value, name in [(d_model, "d_model"), (train_examples, "train_examples"), (window, "window"),
                        (test_examples, "test_examples"), (epochs, "epochs"), (batch_size, "batch_size")]:
        check_positive_int(value, name)
    _check_seed(seed, MAX_SEED - 1)  # the test set is drawn with seed + 1
    check_number(lr, "lr", minimum=0, exclusive_minimum=True)
    check_number(weight_decay, "weight_decay", minimum=0)
    check_bool(progress, "progress")
    device = _train_device(device)
    _check_data_budget(train_examples, seq_len, num_kv_pairs, vocab_size, "train_examples")
    _check_data_budget(test_examples, seq_len, num_kv_pairs, vocab_size, "test_examples")
    _check_model(mixer, vocab_size, d_model, window, d_key)
    for rows, name in [(min(batch_size, train_examples), "batch_size"),
                       (min(4 * batch_size, test_examples), "batch_size (4 · batch_size when testing)")]:
        # the widest activation: vocab_size > seq_len, so the logits also bound any (b, L, L) scores
        check_dense_budget((rows, seq_len, vocab_size), torch.float32, f"the logits ({name}, seq_len, vocab_size) "
                           f"= ({rows}, {seq_len}, {vocab_size})", "lower batch_size, seq_len or vocab_size")
    return device


def run_mqar(mixer, *, num_kv_pairs=8, seq_len=64, vocab_size=256, d_model=64, train_examples=20000,
             test_examples=1000, epochs=6, seed=0, progress=True, device=None, batch_size=64, lr=3e-3,
             weight_decay=0.1, window=WINDOW, d_key=None):
    """Train a recall model with ``mixer`` (a name, or a tuple: one per mixer layer) on MQAR; measure test accuracy.

    ``d_key`` narrows (or widens) every mixer's q/k to d_k dimensions (default: see :class:`Mixer`).

    Training: AdamW (lr 3e-3, weight decay 0.1) with a one-cycle schedule (warm up over the first
    30 % of steps to lr, then cosine down), batch 64, cross-entropy on the scored positions only.
    Seeds: train data ``seed``, test data ``seed + 1`` (independent draws), model init and batch order
    ``seed`` (0 <= seed <= 2⁶³ − 2). ``device`` defaults to CUDA when present, else CPU; a device this
    machine lacks is refused. ``progress`` shows a tqdm bar (the [bench] extra) with the loss and test
    accuracy after each epoch.

    Every argument is checked first, and so is every tensor that grows with one (data, embedding,
    logits) against the memory budget: a refused call draws nothing. The model's init is seeded on
    the CPU inside ``torch.random.fork_rng``, so no call, refused or not, moves the global RNG.

    Returns a dict: accuracy (scored test positions answered right), seconds (training + test),
    state_bytes (see :func:`state_bytes`), steps, losses (mean training loss per epoch), epoch_accuracy
    (test accuracy after each epoch), params, device, and the settings; also cpu_seconds (the process's
    CPU time for training + test) and, in the settings, d_key (the q/k width used).
    """
    device = _check_run_args(mixer, num_kv_pairs, seq_len, vocab_size, d_model, train_examples, test_examples,
                             epochs, seed, progress, batch_size, lr, weight_decay, window, device, d_key)
    sizes = dict(seq_len=seq_len, num_kv_pairs=num_kv_pairs, vocab_size=vocab_size)
    x_train, y_train = (t.to(device) for t in mqar(train_examples, seed=seed, **sizes))  # (n, L) ×2
    x_test, y_test = (t.to(device) for t in mqar(test_examples, seed=seed + 1, **sizes))  # (n, L) ×2
    with torch.random.fork_rng(devices=[]):  # seed the init on the CPU; the caller's RNG is restored after
        torch.default_generator.manual_seed(seed)
        model = RecallModel(mixer, vocab_size=vocab_size, d_model=d_model, window=window, d_key=d_key)
    model = model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(train_examples / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
    order = torch.Generator().manual_seed(seed)
    losses, epoch_acc, start, cpu_start = [], [], time.perf_counter(), time.process_time()
    bar = _progress(epochs * steps_per_epoch, f"{mixer_name(mixer)} n={num_kv_pairs}", progress)
    for _ in range(epochs):
        perm, total = torch.randperm(train_examples, generator=order).to(device), 0.0
        for i in range(0, train_examples, batch_size):
            idx = perm[i:i + batch_size]
            logits = model(x_train[idx])  # (b, L, V)
            loss = F.cross_entropy(logits.flatten(0, 1), y_train[idx].flatten(), ignore_index=IGNORE_INDEX)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            bar.update(1)
        losses.append(total / train_examples)
        epoch_acc.append(_accuracy(model, x_test, y_test, 4 * batch_size))
        bar.set_postfix(loss=f"{losses[-1]:.3f}", acc=f"{epoch_acc[-1]:.3f}")
    bar.close()
    return {
        "mixer": mixer_name(mixer), "accuracy": epoch_acc[-1], "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu_start,
        "state_bytes": state_bytes(mixer, seq_len=seq_len, d_model=d_model, window=window, d_key=d_key),
        "steps": epochs * steps_per_epoch, "losses": losses, "epoch_accuracy": epoch_acc,
        "params": sum(p.numel() for p in model.parameters()), "device": str(device),
        "settings": dict(sizes, d_model=d_model, train_examples=train_examples, test_examples=test_examples,
                         epochs=epochs, seed=seed, batch_size=batch_size, lr=lr,
                         weight_decay=weight_decay, window=window,
                         d_key=d_key or MIXERS[_check_mixer(mixer)[0]].d_qk or d_model),
    }


# State tracking ---------------------------------------------------------------------------------
#: task -> its tokens (= its labels): parity reads bits, mod3 the residues 0, 1, 2, s3 the six permutations
STATE_TASKS = {"parity": 2, "mod3": 3, "s3": 6}
#: the elements of S3 in the order the s3 task numbers its tokens: token i is the permutation S3_ELEMENTS[i]
#: of (0, 1, 2), written as the images (p(0), p(1), p(2)); token 0 is the identity
S3_ELEMENTS = tuple(itertools.permutations(range(3)))


def _s3_table() -> torch.Tensor:
    """table[p, g] = the token of g ∘ p, (g ∘ p)(i) = g(p(i)) (p first, then g): (6, 6) long."""
    index = {perm: i for i, perm in enumerate(S3_ELEMENTS)}
    return torch.tensor([[index[tuple(g[p[i]] for i in range(3))] for g in S3_ELEMENTS] for p in S3_ELEMENTS])


def _check_task(task):
    if not isinstance(task, str):
        raise TypeError(f"task must be a string, one of {tuple(STATE_TASKS)}; got {type(task).__name__} {task!r}")
    if task not in STATE_TASKS:
        raise ValueError(f"task must be one of {tuple(STATE_TASKS)}; got {task!r}")


def _check_state_data_budget(n_examples, seq_len, what="n_examples"):
    """Refuse, before drawing anything, tokens (n, L) int64 (and labels like them) past the memory budget."""
    check_dense_budget((n_examples, seq_len), torch.int64, f"state_tracking's tokens ({what}={n_examples}, "
                       f"seq_len={seq_len})", f"lower {what} or seq_len")


def state_tracking(task, *, n_examples, seq_len, seed=0):
    """State-tracking examples: tokens (n, L) and the running state after each token (n, L), both long.

    * ``"parity"``: tokens x_t ∈ {0, 1}; label_t = x_1 ⊕ … ⊕ x_t (the parity of the bits so far).
    * ``"mod3"``: tokens x_t ∈ {0, 1, 2}; label_t = (x_1 + … + x_t) mod 3.
    * ``"s3"``: tokens are the six permutations of three things (``S3_ELEMENTS``); label_t is the token
      of the running composition p_t = x_t ∘ p_{t−1} (x_1 acts first), p_0 = identity — the word problem
      of the smallest non-abelian group.

    Every position is scored: the label at t is the state after reading x_1 … x_t. A recurrence that
    tracks it needs transitions that act as the group does: a sign flip for parity, a rotation by 120°
    for mod 3, rotations and reflections for S3. Tokens are uniform and independent.

    Needs 0 <= seed <= 2⁶³ − 1; sizes whose tensors would pass the memory budget raise
    :class:`~linattn_edu.MemoryBudgetError` before anything is drawn. Same seed → same tensors; the
    global RNG is not touched.
    """
    _check_task(task)
    check_positive_int(n_examples, "n_examples")
    check_positive_int(seq_len, "seq_len")
    _check_seed(seed)
    _check_state_data_budget(n_examples, seq_len)
    m = STATE_TASKS[task]
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randint(m, (n_examples, seq_len), generator=g)  # (n, L) in [0, m)
    if task != "s3":  # Z_2 and Z_3: the running sum mod m
        return inputs, inputs.cumsum(-1) % m  # (n, L) ×2
    table, state = _s3_table(), torch.zeros(n_examples, dtype=torch.long)  # (6, 6), (n,): the identity
    labels = torch.empty_like(inputs)  # (n, L)
    for t in range(seq_len):
        state = labels[:, t] = table[state, inputs[:, t]]  # (n,): x_t ∘ p_{t−1}
    return inputs, labels


def _position_accuracy(model, inputs, labels, batch_size):
    """Per position, the fraction of examples whose argmax equals the label: (L,) float64."""
    right = torch.zeros(inputs.shape[1], dtype=torch.float64)  # (L,)
    model.eval()
    with torch.no_grad():
        for i in range(0, len(inputs), batch_size):
            x, y = inputs[i:i + batch_size], labels[i:i + batch_size]  # (b, L) ×2
            right += (model(x).argmax(-1) == y).sum(0).cpu().double()  # (b, L, V) -> (b, L) -> (L,)
    model.train()
    return right / len(inputs)


def _check_state_run_args(mixer, task, seq_len, test_lengths, d_model, train_examples, test_examples, epochs,
                          seed, progress, batch_size, lr, weight_decay, window, device, d_key):
    """Every argument of run_state_tracking, and every allocation that scales with one, before any work."""
    _check_mixer(mixer)
    _check_task(task)
    for value, name in [(seq_len, "seq_len"), (d_model, "d_model"), (train_examples, "train_examples"),
                        (test_examples, "test_examples"), (epochs, "epochs"), (batch_size, "batch_size"),
                        (window, "window")]:
        check_positive_int(value, name)
    if not isinstance(test_lengths, (tuple, list)) or not test_lengths:
        raise TypeError(f"test_lengths must be a non-empty tuple of ints (the lengths to test at); got "
                        f"{type(test_lengths).__name__} {test_lengths!r}")
    for length in test_lengths:
        check_positive_int(length, "every test length")
    _check_seed(seed, MAX_SEED - 1)  # the test sets are drawn with seed + 1
    check_number(lr, "lr", minimum=0, exclusive_minimum=True)
    check_number(weight_decay, "weight_decay", minimum=0)
    check_bool(progress, "progress")
    device = _train_device(device)
    _check_state_data_budget(train_examples, seq_len, "train_examples")
    vocab = STATE_TASKS[task]
    _check_model(mixer, vocab, d_model, window, d_key)
    for length in test_lengths:
        _check_state_data_budget(test_examples, length, "test_examples")
    for rows, length, name in [(min(batch_size, train_examples), seq_len, "batch_size"),
                               *[(min(4 * batch_size, test_examples), length, "4 · batch_size when testing")
                                 for length in test_lengths]]:
        # the widest activation with a tiny vocabulary: the (b, L, d) hidden states; softmax's (b, L, L) scores
        width = max(d_model, length) if "softmax" in _check_mixer(mixer) else d_model
        check_dense_budget((rows, length, width), torch.float32, f"the activations ({name}, length, width) = "
                           f"({rows}, {length}, {width})", "lower batch_size or the lengths")
    return device


def run_state_tracking(mixer, *, task="parity", seq_len=32, test_lengths=None, d_model=32, d_key=None,
                       train_examples=2048, test_examples=512, epochs=8, seed=0, progress=True, device=None,
                       batch_size=64, lr=3e-3, weight_decay=0.0, window=WINDOW):
    """Train a :class:`RecallModel` with ``mixer`` on a state-tracking task at length ``seq_len``; test it at
    ``test_lengths`` (default: seq_len and 4 · seq_len — the second measures length generalisation).

    The model reads tokens and must output the running state at every position (``state_tracking``:
    vocabulary = labels = 2, 3 or 6 tokens, tied embeddings). Training as :func:`run_mqar`: AdamW with a
    one-cycle schedule, batch 64, cross-entropy on every position. Seeds: train data ``seed``, test data
    ``seed + 1`` (one draw per test length), model init and batch order ``seed``; the global RNG is not moved.
    Every argument, and every tensor that grows with one, is checked before any work.

    Returns a dict: mixer, task, accuracy (per-position test accuracy averaged over the positions, at
    seq_len), last_accuracy (at the last position, the whole-sequence state), tests (one dict per test
    length: seq_len, accuracy, last_accuracy, position_accuracy (L,) rounded to 4 digits), seconds,
    cpu_seconds, steps, losses (mean training loss per epoch), params, state_bytes, device, settings.
    Chance is 1/2 (parity), 1/3 (mod3), 1/6 (s3).
    """
    test_lengths = (seq_len, 4 * seq_len) if test_lengths is None else test_lengths
    device = _check_state_run_args(mixer, task, seq_len, test_lengths, d_model, train_examples, test_examples,
                                   epochs, seed, progress, batch_size, lr, weight_decay, window, device, d_key)
    test_lengths = tuple(int(length) for length in test_lengths)
    x_train, y_train = (t.to(device) for t in state_tracking(task, n_examples=train_examples, seq_len=seq_len,
                                                             seed=seed))  # (n, L) ×2
    vocab = STATE_TASKS[task]
    with torch.random.fork_rng(devices=[]):  # seed the init on the CPU; the caller's RNG is restored after
        torch.default_generator.manual_seed(seed)
        model = RecallModel(mixer, vocab_size=vocab, d_model=d_model, window=window, d_key=d_key)
    model = model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(train_examples / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
    order = torch.Generator().manual_seed(seed)
    losses, start, cpu_start = [], time.perf_counter(), time.process_time()
    bar = _progress(epochs * steps_per_epoch, f"{mixer_name(mixer)} {task} L={seq_len}", progress)
    for _ in range(epochs):
        perm, total = torch.randperm(train_examples, generator=order).to(device), 0.0
        for i in range(0, train_examples, batch_size):
            idx = perm[i:i + batch_size]
            logits = model(x_train[idx])  # (b, L, V)
            loss = F.cross_entropy(logits.flatten(0, 1), y_train[idx].flatten())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            bar.update(1)
        losses.append(total / train_examples)
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    bar.close()
    tests = []
    for length in test_lengths:
        x_test, y_test = (t.to(device) for t in state_tracking(task, n_examples=test_examples, seq_len=length,
                                                               seed=seed + 1))  # (n, L') ×2
        acc = _position_accuracy(model, x_test, y_test, 4 * batch_size)  # (L',)
        tests.append({"seq_len": length, "accuracy": acc.mean().item(), "last_accuracy": acc[-1].item(),
                      "position_accuracy": [round(a, 4) for a in acc.tolist()]})
    return {
        "mixer": mixer_name(mixer), "task": task, "accuracy": tests[0]["accuracy"],
        "last_accuracy": tests[0]["last_accuracy"], "tests": tests,
        "seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu_start,
        "steps": epochs * steps_per_epoch, "losses": losses,
        "params": sum(p.numel() for p in model.parameters()), "device": str(device),
        "state_bytes": state_bytes(mixer, seq_len=seq_len, d_model=d_model, window=window, d_key=d_key),
        "settings": dict(task=task, seq_len=seq_len, test_lengths=list(test_lengths), d_model=d_model,
                         d_key=d_key or MIXERS[_check_mixer(mixer)[0]].d_qk or d_model, layers=len(_check_mixer(mixer)),
                         train_examples=train_examples, test_examples=test_examples, epochs=epochs, seed=seed,
                         batch_size=batch_size, lr=lr, weight_decay=weight_decay, window=window),
    }


STATE_METRICS = ("accuracy", "last_accuracy")  # per-position accuracy averaged over the sequence; at the last position


def state_tracking_table(record):
    """Summarise state-tracking runs over seeds: one row per task × mixer × test length.

    ``record``: what scripts/state_tracking.py writes ({"meta": …, "runs": [...]}) or its ``runs`` list
    (dicts from :func:`run_state_tracking`). Each row: task, mixer, train_len (the training length),
    seq_len (the test length), seeds (how many runs), and for each metric in ``STATE_METRICS`` its mean,
    min and max over the seeds (``accuracy_mean``, ``accuracy_min``, …, ``last_accuracy_max``). Rows keep
    the record's order of tasks and mixers; lengths ascend. Pure: reads numbers, draws nothing.
    """
    runs = record.get("runs") if isinstance(record, dict) else record
    if not isinstance(runs, (list, tuple)):
        raise TypeError(f"record must be a state-tracking record (a dict with a 'runs' list) or its runs list; "
                        f"got {type(record).__name__}")
    groups: dict[tuple, list[dict]] = {}
    for i, run in enumerate(runs):
        if not isinstance(run, dict) or not {"task", "mixer", "tests", "settings"} <= set(run):
            raise ValueError(f"record must hold runs from run_state_tracking (task, mixer, settings, tests); "
                             f"run {i} is {type(run).__name__} with {sorted(run) if isinstance(run, dict) else run!r}")
        for test in run["tests"]:
            key = (run["task"], run["mixer"], run["settings"]["seq_len"], test["seq_len"])
            groups.setdefault(key, []).append(test)
    tasks = list(dict.fromkeys(k[0] for k in groups))
    mixers = list(dict.fromkeys(k[1] for k in groups))
    rows = []
    for key in sorted(groups, key=lambda k: (tasks.index(k[0]), mixers.index(k[1]), k[2], k[3])):
        tests = groups[key]
        row = dict(zip(("task", "mixer", "train_len", "seq_len"), key), seeds=len(tests))
        for metric in STATE_METRICS:
            values = [t[metric] for t in tests]
            row.update({f"{metric}_mean": sum(values) / len(values), f"{metric}_min": min(values),
                        f"{metric}_max": max(values)})
        rows.append(row)
    return rows


def state_tracking_curves(record, task, seq_len):
    """Accuracy at every position, averaged over the seeds: {mixer: [acc_1, …, acc_L]} for one task and test
    length ``seq_len`` (the record's ``position_accuracy`` lists; mixers in the record's order). Pure."""
    rows = state_tracking_table(record)  # validates the record
    runs = record.get("runs") if isinstance(record, dict) else record
    if not any(r["task"] == task and r["seq_len"] == seq_len for r in rows):
        raise ValueError(f"seq_len must be a length the record tests {task!r} at, one of "
                         f"{sorted({r['seq_len'] for r in rows if r['task'] == task})}; got {seq_len!r}")
    curves: dict[str, list] = {}
    for run in runs:
        for test in run["tests"]:
            if run["task"] == task and test["seq_len"] == seq_len:
                curves.setdefault(run["mixer"], []).append(test["position_accuracy"])
    return {m: [sum(col) / len(col) for col in zip(*lists)] for m, lists in curves.items()}


def format_state_tracking_table(rows, metric="last_accuracy", digits=2):
    """The rows of :func:`state_tracking_table` as text: per task (and training length) a header with its
    test lengths, then one line per mixer, each cell ``mean [min, max]`` of ``metric`` over the seeds
    (rounded to ``digits``)."""
    if metric not in STATE_METRICS:
        raise ValueError(f"metric must be one of {STATE_METRICS}; got {metric!r}")
    check_number(digits, "digits", integer=True, minimum=0, maximum=6)
    groups: dict[tuple, dict] = {}  # (task, train_len) -> mixer -> test length -> cell
    for r in rows:
        groups.setdefault((r["task"], r["train_len"]), {}).setdefault(r["mixer"], {})[r["seq_len"]] = (
            f"{r[f'{metric}_mean']:.{digits}f} [{r[f'{metric}_min']:.{digits}f}, {r[f'{metric}_max']:.{digits}f}]")
    width = max([len(c) for g in groups.values() for row in g.values() for c in row.values()] + [8])
    name = max([len(m) for g in groups.values() for m in g] + [24])
    seeds = sorted({r["seeds"] for r in rows})
    lines = [f"{metric} over {'/'.join(map(str, seeds))} seeds: mean [min, max]"]
    for (task, train), mixers in groups.items():
        lengths = sorted({n for row in mixers.values() for n in row})
        lines.append(f"{f'{task} (trained at L={train})':{name}s} " + " ".join(f"{f'L={n}':>{width}s}" for n in lengths))
        for mixer, row in mixers.items():
            lines.append(f"  {mixer:{name - 2}s} " + " ".join(f"{row.get(n, '–'):>{width}s}" for n in lengths))
    return "\n".join(lines)


class _NoBar:
    """The silent stand-in for a tqdm bar (progress=False, or tqdm not installed)."""

    def update(self, n=1):
        pass

    def set_postfix(self, **kwargs):
        pass

    def close(self):
        pass


def _progress(total, desc, enabled):
    """A tqdm bar (auto: notebook or terminal; tqdm comes with the [bench] extra), else a silent stand-in."""
    if not enabled:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the core needs only torch: no bar, same results
        return _NoBar()
    return tqdm(total=total, desc=desc, leave=False)
