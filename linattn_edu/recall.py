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
from .window import sliding_window_attention, window_linear_attention

__all__ = ["mqar", "RecallModel", "run_mqar", "MIXERS", "MixerSpec", "ABLATION", "mixer_name", "state_bytes",
           "readout_error", "IGNORE_INDEX", "POWER_A", "MAX_SEED"]

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
        self.qkv = nn.Linear(d_model, 2 * d_qk + d_model)
        self.out = nn.Linear(d_model, d_model)
        self.d_qk = d_qk
        if spec.gate:  # β_t (delta: write strength) or g_t (gated: forget gate), per token
            self.gate = nn.Linear(d_model, 1)

    def forward(self, x):
        q, k, v = self.qkv(x).split([self.d_qk, self.d_qk, x.shape[-1]], dim=-1)  # (B, L, d_qk) ×2, (B, L, d)
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


@dataclass(frozen=True)
class MixerSpec:
    """One recall mixer: how it mixes, what it keeps, and what it allocates.

    attend(mixer, x, q, k, v) -> (B, L, d): the library call (x is the block's input, for gates).
    state_floats(seq_len, d_model, window[, d_key]) -> floats a decoder keeps per sequence (see
    :func:`state_bytes`; the optional 4th argument is the q/k width when a model narrows it).
    label: the name figures print. d_qk: width of q and k (None: d_model). gate: learns one scalar per
    token from x.
    """

    attend: Callable
    state_floats: Callable[[int, int, int], int]
    label: str
    d_qk: int | None = None
    gate: bool = False


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
    check_dense_budget((2 * d_qk + d_model, d_model), torch.float32, f"RecallModel's q/k/v projection "
                       f"(2 · {d_qk} + d_model, d_model) with d_model={d_model}", "lower d_model")


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
