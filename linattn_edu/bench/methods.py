"""The methods under test and how one call of each is built (forward, or forward+backward).

Every method is causal attention in the SDPA tensor convention, q, k, v: (B, H, N, d).
:func:`build_call` returns a zero-argument callable (what the timer runs); ``compile=True``
wraps the method in ``torch.compile`` (``fullgraph=True`` where the method allows it) and
compiles it inside :func:`build_call`, so that no timed call pays for compilation.
The gated and delta-rule methods take per-token gates (log-decays, write strengths β) that
:func:`make_gates` draws once, seeded, inside :func:`build_call`: no timed call builds them.
The FLA methods (``fla_chunk``, ``fla_fused_chunk``) exist only where the optional
flash-linear-attention package imports and a CUDA device is used (see :mod:`.fla`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .._checks import parse_dtype
from .._state import RULES
from ..delta import delta_rule_attention
from ..gated import gated_linear_attention
from ..linear import linear_attention
from ..softmax import softmax_attention
from ..window import sliding_window_attention
from . import fla, hf

__all__ = ["Method", "METHODS", "OPTIONAL_METHODS", "ALL_METHODS", "MODES", "FEATURE_MAP", "check_method", "check_mode", "log_grid",
           "make_inputs", "make_gates", "GATED_METHODS", "RULE_METHODS", "channel_gates", "attention_fn", "build_call", "predict_peak_bytes", "predict_seconds"]

MODES = ("forward", "forward+backward")
FEATURE_MAP = "elu+1"


@dataclass(frozen=True)
class Method:
    """One attention implementation under test (all causal, SDPA tensor convention).

    exponent: theoretical growth of time with N (2: quadratic, 1: linear) used to extrapolate
    the time of the next point.  max_n: largest N worth running (the recurrent token loop is
    a Python loop: short N only).  optional: needs an optional package (FLA) and a GPU.
    """

    name: str
    label: str
    exponent: int
    max_n: int | None = None
    optional: bool = False


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("softmax", "naive softmax (dense N×N)", 2),
        Method("sdpa", "torch SDPA (flash, fused)", 2),
        Method("linear_quadratic", "linear, quadratic form", 2),
        Method("chunkwise", "linear, chunkwise", 1),
        Method("recurrent", "linear, recurrent (token loop)", 1, max_n=1024),
        Method("window", "sliding window", 1),
        Method("gated_chunkwise", "gated, one gate per step, chunkwise", 1),
        Method("gla_chunkwise", "GLA, one gate per key channel, chunkwise", 1),
        Method("delta_chunkwise", "delta rule, chunkwise (WY)", 1),
        Method("gated_delta_chunkwise", "gated delta rule, chunkwise (WY)", 1),
        Method("delta_recurrent", "delta rule, recurrent (token loop)", 1, max_n=4096),
    )
}
#: the methods of the gated and delta rules: method -> (rule name in linattn_edu.RULES, form); their
#: per-token gates (log-decays and/or β) come from :func:`make_gates`
RULE_METHODS = {
    "gated_chunkwise": ("gated", "chunkwise"), "gla_chunkwise": ("gla", "chunkwise"),
    "delta_chunkwise": ("delta", "chunkwise"), "gated_delta_chunkwise": ("gated_delta", "chunkwise"),
    "delta_recurrent": ("delta", "recurrent"),
}
for _name, _rule in RULES.items():  # a newly registered rule gets its chunkwise method here, nothing to add
    if _name != "linear" and "chunkwise" in _rule.forms and f"{_name}_chunkwise" not in METHODS:
        METHODS[f"{_name}_chunkwise"] = Method(f"{_name}_chunkwise", f"{_rule.label}, chunkwise", 1)
        RULE_METHODS[f"{_name}_chunkwise"] = (_name, "chunkwise")
GATED_METHODS = tuple(RULE_METHODS)
#: optional yardsticks: FLA's Triton kernels (a GPU and the flash-linear-attention package), and the pure-PyTorch
#: Gated DeltaNet that Hugging Face transformers runs on a CPU (the transformers package)
OPTIONAL_METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("fla_chunk", "FLA chunk_linear_attn (Triton)", 1, optional=True),
        Method("fla_fused_chunk", "FLA fused_chunk_linear_attn (Triton)", 1, optional=True),
        Method("hf_gated_delta", "transformers torch_chunk_gated_delta_rule (CPU fallback)", 1, optional=True),
    )
}
ALL_METHODS: dict[str, Method] = {**METHODS, **OPTIONAL_METHODS}


def check_method(name: str) -> Method:
    """The :class:`Method` called ``name``; ValueError naming the choices otherwise."""
    if name not in ALL_METHODS:
        raise ValueError(f"method must be one of {list(ALL_METHODS)}; got {name!r}")
    return ALL_METHODS[name]


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
    return mode


def log_grid(n_min: int, n_max: int, points_per_octave: int = 1) -> list[int]:
    """Sequence lengths n_min·2^(i/p) up to n_max, rounded to multiples of 16 (all powers of two when p = 1).

    >>> log_grid(256, 2048)
    [256, 512, 1024, 2048]
    """
    for name, value in (("n_min", n_min), ("n_max", n_max), ("points_per_octave", points_per_octave)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1; got {value!r}")
    if n_max < n_min:
        raise ValueError(f"n_max must be >= n_min = {n_min}; got {n_max}")
    steps = int(math.floor(points_per_octave * math.log2(n_max / n_min) + 1e-9))
    grid = {n_min}
    for i in range(1, steps + 1):
        n = n_min * 2 ** (i / points_per_octave)
        grid.add(int(round(n)) if n < 64 else int(16 * round(n / 16)))
    return sorted(g for g in grid if g <= n_max)


def make_inputs(n: int, *, batch: int = 1, heads: int = 4, d: int = 64, dtype=torch.float32,
                device="cpu", requires_grad: bool = False, seed: int = 0):
    """q, k, v ~ N(0, 1) of shape (batch, heads, n, d), seeded, optionally requiring grad.

    Drawn on the CPU for a CPU device (the same numbers on every CPU), on the device itself
    otherwise (no multi-GiB host tensors for GPU shapes).
    """
    device = torch.device(device)
    gen_device = device if device.type == "cuda" else torch.device("cpu")
    gen = torch.Generator(device=gen_device).manual_seed(seed)
    shape = (batch, heads, n, d)
    dt = parse_dtype(dtype)
    qkv = [torch.randn(shape, generator=gen, device=gen_device).to(device=device, dtype=dt)
           for _ in range(3)]  # 3 × (B, H, N, d)
    for t in qkv:
        t.requires_grad_(requires_grad)
    return tuple(qkv)


def make_gates(n: int, *, batch: int = 1, heads: int = 4, dtype=torch.float32, device="cpu", seed: int = 0):
    """Seeded per-token gates for the gated and delta-rule methods: (log_decay, beta), each (batch, heads, n).

    log_decay = log σ(x + 4) < 0 (a decay exp(g) ≈ 0.98 on average: a memory of ~50 tokens, as in
    Mamba-2 / GLA-style gates), beta = σ(y) ∈ (0, 1), with x, y ~ N(0, 1) drawn on the CPU from ``seed``.
    """
    gen = torch.Generator().manual_seed(seed + 2)  # seed: q, k, v; seed + 1: the backward's grad_out
    x, y = (torch.randn(batch, heads, n, generator=gen) for _ in range(2))  # (B, H, N) each
    dt = parse_dtype(dtype)
    return F.logsigmoid(x + 4).to(device=device, dtype=dt), torch.sigmoid(y).to(device=device, dtype=dt)


def attention_fn(method: str, *, chunk_size: int = 64, window: int = 256, gates=None) -> Callable:
    """The forward function ``f(q, k, v) -> out`` of a method, causal, (B, H, N, d) in and out.

    The methods in :data:`GATED_METHODS` need ``gates = (log_decay, beta)`` from :func:`make_gates`
    (the scalar-gated one uses the identity feature map, like RetNet and Mamba-2).
    """
    check_method(method)
    if method in GATED_METHODS:
        if gates is None:
            raise ValueError(f"method {method!r} needs gates=(log_decay, beta), each (B, H, N), from make_gates; "
                             "got None")
        return _gated_fn(method, chunk_size, *gates)
    if method == "softmax":
        return lambda q, k, v: softmax_attention(q, k, v, causal=True)
    if method == "sdpa":
        return lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)
    if method == "linear_quadratic":
        return lambda q, k, v: linear_attention(q, k, v, FEATURE_MAP, causal=True, form="quadratic")
    if method == "chunkwise":
        return lambda q, k, v: linear_attention(q, k, v, FEATURE_MAP, causal=True, form="chunkwise",
                                                chunk_size=chunk_size)
    if method == "recurrent":
        return lambda q, k, v: linear_attention(q, k, v, FEATURE_MAP, causal=True, form="recurrent")
    if method == "window":
        return lambda q, k, v: sliding_window_attention(q, k, v, window=window, causal=True)
    if method == "hf_gated_delta":
        return hf.attention_fn(chunk_size, *gates)
    return fla.attention_fn(method)


def channel_gates(log_decay: torch.Tensor, d: int) -> torch.Tensor:
    """A per-key-channel log-decay from a scalar one: g (..., N) -> (..., N, d), g_c = g·(0.5 + c/d), c < d."""
    return log_decay.unsqueeze(-1) * torch.linspace(0.5, 1.5 - 1 / d, d, dtype=log_decay.dtype, device=log_decay.device)


def _gated_fn(method: str, chunk_size: int, log_decay: torch.Tensor, beta: torch.Tensor) -> Callable:
    """f(q, k, v) for a gated or delta-rule method, closing over gates built once (a rule of RULES, one form)."""
    rule, form = RULE_METHODS[method]
    if rule == "gated":
        return lambda q, k, v: gated_linear_attention(q, k, v, log_decay, form=form, chunk_size=chunk_size)
    if rule == "gla":
        def gla(q, k, v, g=[]):  # the per-channel gate is built once, at the first call (it needs d)
            if not g:
                g.append(channel_gates(log_decay, q.shape[-1]))
            return gated_linear_attention(q, k, v, g[0], form=form, chunk_size=chunk_size)
        return gla
    if rule in ("delta", "gated_delta"):
        g = log_decay if rule == "gated_delta" else None
        return lambda q, k, v: delta_rule_attention(q, k, v, beta, log_decay=g, form=form, chunk_size=chunk_size)
    spec = RULES[rule]  # any other registered rule: its own gates, drawn once (seeded) at the first call

    def registered(q, k, v, kw={}):
        if not kw:
            gen = torch.Generator().manual_seed(0)
            kw.update(spec.gates(q.shape[:-1], q.shape[-1], gen, q.dtype, q.device) | spec.state_kwargs)
        return spec.attention(q, k, v, form=form, chunk_size=chunk_size, **kw)
    return registered


def _compiled(f: Callable, example: Callable[[], object]) -> Callable:
    """torch.compile(f, fullgraph=True), falling back to graph breaks; compiled here by one call of ``example``."""
    full = torch.compile(f, fullgraph=True)
    try:
        example(full)
        return full
    except Exception:  # noqa: BLE001 - a graph break (or backend limit): compile with breaks instead
        torch._dynamo.reset()
        loose = torch.compile(f)
        example(loose)
        return loose


def build_call(method: str, n: int, *, mode: str = "forward", batch: int = 1, heads: int = 4, d: int = 64,
               dtype=torch.float32, device="cpu", chunk_size: int = 64, window: int = 256,
               seed: int = 0, compile: bool = False) -> Callable[[], object]:
    """A zero-argument callable running one forward (under no_grad) or one forward+backward.

    forward+backward = out = f(q, k, v); torch.autograd.grad(out, (q, k, v), g) with a fixed
    random g of out's shape (no .grad accumulation between calls).  FLA methods are checked
    equal to the library's chunkwise form on the same inputs before they are returned.
    Gated and delta-rule methods get their gates from :func:`make_gates` (same seed), built here once.
    """
    spec = check_method(method)
    check_mode(mode)
    if spec.optional:
        (hf if method == "hf_gated_delta" else fla).require(device)
    gates = make_gates(n, batch=batch, heads=heads, dtype=dtype, device=device, seed=seed) \
        if method in GATED_METHODS or method == "hf_gated_delta" else None
    f = attention_fn(method, chunk_size=chunk_size, window=window, gates=gates)
    q, k, v = make_inputs(n, batch=batch, heads=heads, d=d, dtype=dtype, device=device,
                          requires_grad=mode != "forward", seed=seed)  # (B, H, N, d) each
    if method == "hf_gated_delta":
        hf.check_agrees(f, q, k, v, *gates, chunk_size=chunk_size)
    elif spec.optional:
        fla.check_agrees(f, q, k, v, chunk_size=chunk_size)
    if mode == "forward":
        def run_forward(g):
            with torch.no_grad():
                return g(q, k, v)  # (B, H, N, d)
        if compile:
            f = _compiled(f, run_forward)
        return lambda: run_forward(f)
    gen = torch.Generator(device=q.device).manual_seed(seed + 1)
    grad_out = torch.randn(v.shape, generator=gen, device=q.device).to(v.dtype)  # (B, H, N, d), seeded

    def run_backward(g):
        out = g(q, k, v)  # (B, H, N, d)
        return torch.autograd.grad(out, (q, k, v), grad_out)  # 3 × (B, H, N, d)
    if compile:
        f = _compiled(f, run_backward)
    return lambda: run_backward(f)


# Guards: predicted memory and time --------------------------------------------------------------
#: coefficients of (N·d, (N/C)·C², (N/C)·d²[, N·d², C·d²]) for (forward, forward+backward): fits to profiler
#: peaks at N = 128–2048, d = 16–64, C = 16–64 (within 0.88–1.35× of the measurement)
_GATED_PEAK = {
    "gated_chunkwise": ((5, 3, 3), (4, 3, 3)),
    "delta_chunkwise": ((9, 4, 2), (7, 5, 4)),
    "gated_delta_chunkwise": ((12, 5, 2), (10, 6, 4)),
    "hf_gated_delta": ((12, 5, 2), (10, 6, 4)),
    # per-key-channel gates: the decayed queries and keys of every level of the block tree (log₂C levels)
    # cost ~13 float32 numbers per token and channel forward, ~29 with backward (measured at C = 32-64)
    "gla_chunkwise": ((12, 0, 2), (24, 1, 4)),
    "kda_chunkwise": ((16, 4, 0), (40, 6, 0)),  # the same block tree, for the WY blocks' decays
    "gated_delta_product_chunkwise": ((26, 23, 2), (19, 31, 5)),  # n_h = 2 micro-steps a token: 2N rows
    "dplr_chunkwise": ((69, 6, 0), (116, 6, 0)),  # a, b, their decayed copies and the C×C pair blocks
    # MesaNet: one chunk's per-token key covariances H_kk (C·d² numbers) at a time, forward and in backward
    # (each chunk a checkpoint: backward keeps the chunks' entry states, (N/C)·d², and recomputes one chunk)
    "mesa_chunkwise": ((3, 2, 0.5, 0, 8), (2.5, 1, 1.5, 0, 8)),
}

def predict_peak_bytes(method: str, n: int, *, mode: str = "forward", batch: int = 1, heads: int = 4,
                       d: int = 64, dtype=torch.float32, chunk_size: int = 64, window: int = 256) -> int:
    """Predicted peak extra bytes of one call (inputs excluded), from each method's formula.

    With bh = batch·heads, e = bytes per element (float32 compute for half inputs):
      softmax, linear_quadratic: dense (bh, N, N) scores / weights: k·bh·N²·e (k = 4 / 3 forward,
          7 / 6 with backward) plus a bool N×N mask;
      sdpa (flash): O(bh·N·d) (output, log-sum-exp; gradients with backward);
      chunkwise (ours and FLA's): O(bh·N·(d + C)) (float32 features, partial sums, the (N/C)·C×C
          intra-chunk scores) + (N/C)·d² chunk states (ours: measured 6.1 / 8.6 bh·N·d float32 numbers
          forward / forward+backward at C = d = 64, bfloat16 inputs, the GPU's code path);  recurrent: O(bh·N·d) forward, bh·N·d² states saved
          for backward;  window: O(bh·N·w) band of scores (N rounded up to a multiple of w);
      gated / delta-rule chunkwise: the same three terms (N·d, (N/C)·C² blocks, (N/C)·d² states) with
          their own coefficients (the WY form keeps more (N/C)·C×C blocks: KKᵀ, QKᵀ, T, T⁻¹); MesaNet adds
          its per-token key covariances (C·d² for the chunk at work, forward and backward);
      delta_recurrent: O(bh·N·d) forward, bh·N·d² saved states with backward.
    The coefficients are upper-ish fits to profiler measurements at small N (tests keep the
    prediction within 0.5–3× of the measurement).
    """
    check_method(method)
    back = check_mode(mode) != "forward"
    e = max(torch.empty((), dtype=parse_dtype(dtype)).element_size(), 4)  # forms compute in float32 for halves
    bh, nd = batch * heads, batch * heads * n * d
    io = (4 if back else 1) * nd * e  # output (and three input gradients)
    if method in ("softmax", "linear_quadratic"):
        k = {"softmax": (4, 7), "linear_quadratic": (3, 6)}[method][back]
        return k * bh * n * n * e + n * n + io + 4 * nd * e
    if method == "sdpa":
        return io + (3 if back else 1) * nd * e + 2 * bh * n * e
    if method in ("chunkwise", "fla_chunk", "fla_fused_chunk"):
        c = min(chunk_size, n)
        chunks = -(-n // c)
        per = (4 if back else 5) * nd * e + bh * chunks * c * c * e  # features, partial sums, one C×C block
        return io + per + bh * chunks * d * d * e  # + the chunk states (recomputed in backward)
    if method == "recurrent":
        return io + (6 * nd + (bh * n * d * d if back else 0)) * e
    if method == "delta_recurrent":
        return io + ((4 * nd + bh * n * d * d) if back else 3 * nd) * e
    if method in _GATED_PEAK:
        c = min(chunk_size, n)
        chunks = -(-n // c)
        k_nd, k_blocks, k_states, k_tokens, k_chunk = (*_GATED_PEAK[method][back], 0, 0)[:5]
        numbers = k_nd * nd + k_blocks * bh * chunks * c * c + k_states * bh * chunks * d * d \
            + k_tokens * bh * n * d * d + k_chunk * bh * c * d * d
        return io + int(numbers) * e
    n_pad = -(-n // window) * window  # the band is computed in blocks of w: N rounds up to a multiple of w
    return io + (7 if back else 4) * bh * n_pad * 2 * window * e + 6 * nd * e  # window


def predict_seconds(method: str, n: int, previous: tuple[int, float] | None) -> float | None:
    """t(N) ≈ t(N₀)·(N/N₀)^p from the previous measured point (N₀, t₀); None without one."""
    if previous is None:
        return None
    n0, t0 = previous
    return t0 * (n / n0) ** check_method(method).exponent
