"""Checkers for notebook 07 (memory: the KV cache vs the state): cache bytes for MHA/GQA/MQA/MLA, a
sliding-window cache, and the memory of a hybrid model."""
from __future__ import annotations

import torch

from ..memory import PRESETS, cache_bytes, state_bytes
from .runner import Case, fail, run_cases

__all__ = ["check_cache_bytes", "check_window_cache_bytes", "check_hybrid_bytes"]

_LIBRARY_NAMES = {"cache_bytes", "kv_cache_bytes", "mla_cache_bytes", "state_bytes", "linear_state_bytes",
                  "hybrid_bytes", "hybridize"}


def _num(x) -> torch.Tensor:
    return torch.tensor(float(x), dtype=torch.float64)


def _refuse_library(title: str, fn):
    code = getattr(fn, "__code__", None)
    hit = sorted(set(code.co_names if code is not None else ()) & _LIBRARY_NAMES)
    if not hit:
        return None
    return fail(title, [f"  your function calls the library's {hit[0]}()"],
                "write the formula yourself from the shape's fields (layers, kv_heads, head_dim, latent_dim, rope_dim).")


_SHAPES = ["llama-2-7b", "llama-3-8b", "falcon-7b", "deepseek-v2"]  # MHA, GQA, MQA, MLA


def check_cache_bytes(your_fn) -> bool:
    """your_fn(shape, tokens, bytes_per_element) -> KV-cache bytes at batch 1.

    MHA/GQA/MQA: 2 · layers · kv_heads · head_dim · tokens · bytes; MLA: layers · (latent_dim + rope_dim) · tokens · bytes.
    """
    refused = _refuse_library("check_cache_bytes", your_fn)
    if refused is not None:
        return refused
    cases = [Case((PRESETS[k], n, b), _num(cache_bytes(PRESETS[k], n, dtype=b)), f"{PRESETS[k].name}, N = {n}, {b} B")
             for k, n, b in [("llama-2-7b", 4096, 2), ("llama-3-8b", 1000, 2), ("falcon-7b", 333, 4),
                             ("deepseek-v2", 2048, 2)]]

    def mha_formula(c, heads_attr="kv_heads"):
        s, n, b = c.args
        return 2 * s.layers * getattr(s, heads_attr) * s.head_dim * n * b

    return run_cases(
        "check_cache_bytes", lambda s, n, b: _num(your_fn(s, n, b)), cases, names=["bytes"],
        hint="2 · shape.layers · shape.kv_heads · shape.head_dim · tokens · bytes; for shape.kind == 'MLA': "
             "shape.layers · (shape.latent_dim + shape.rope_dim) · tokens · bytes.",
        diagnoses=[
            (lambda e, g, c: c.args[0].kind == "MLA" and g.item() in (mha_formula(c), mha_formula(c, "heads")),
             "MLA caches one latent of width latent_dim plus a rope key of width rope_dim per layer and token, "
             "not keys and values per head."),
            (lambda e, g, c: g.item() == mha_formula(c, "heads") != e.item(),
             "you used the query heads: the cache holds one key and one value per *KV* head (GQA/MQA share them)."),
            (lambda e, g, c: g.item() * 2 == e.item(),
             "half the answer: the cache holds a key *and* a value per KV head — the factor 2."),
            (lambda e, g, c: g.item() == e.item() * 8,
             "you counted bits: bytes_per_element is already in bytes."),
        ])


def check_window_cache_bytes(your_fn) -> bool:
    """your_fn(shape, tokens, window, bytes_per_element) -> bytes of a sliding-window KV cache (batch 1).

    A window of w keys keeps at most w tokens per layer (a rolling buffer): the cache of min(tokens, w) tokens.
    """
    refused = _refuse_library("check_window_cache_bytes", your_fn)
    if refused is not None:
        return refused
    mistral = PRESETS["mistral-7b"]
    cases = [Case((mistral, n, w, 2), _num(cache_bytes(mistral, min(n, w), dtype=2)), f"Mistral-7B, N = {n}, w = {w}")
             for n, w in [(32768, 4096), (1000, 4096), (131072, 4096), (4096, 4096)]]

    def full(c):
        s, n, w, b = c.args
        return 2 * s.layers * s.kv_heads * s.head_dim * n * b

    def always_w(c):
        s, n, w, b = c.args
        return 2 * s.layers * s.kv_heads * s.head_dim * w * b

    return run_cases(
        "check_window_cache_bytes", lambda s, n, w, b: _num(your_fn(s, n, w, b)), cases, names=["bytes"],
        hint="the cache of min(tokens, window) tokens: 2 · layers · kv_heads · head_dim · min(N, w) · bytes.",
        diagnoses=[
            (lambda e, g, c: g.item() == full(c) != e.item(),
             "that is the full cache: with a window of w a layer never needs keys older than w tokens, so it keeps at most w."),
            (lambda e, g, c: g.item() == always_w(c) != e.item(),
             "before the context fills the window the cache holds only the N tokens seen so far: min(N, w), not w."),
        ])


def check_hybrid_bytes(your_fn) -> bool:
    """your_fn(shape, tokens, attention_layers, bytes_per_element) -> bytes a hybrid decoder keeps (batch 1).

    ``attention_layers`` of the shape's layers keep a KV cache (2 · kv_heads · head_dim · tokens · bytes each); the
    other layers keep one linear state per KV head (kv_heads · head_dim · head_dim · bytes each, d_φ = head_dim, no z).
    """
    refused = _refuse_library("check_hybrid_bytes", your_fn)
    if refused is not None:
        return refused
    cases = []
    for key, n, att in [("llama-2-7b", 32768, 8), ("llama-3-8b", 131072, 4), ("llama-3-8b", 16, 1)]:
        s = PRESETS[key]
        kv = cache_bytes(s.with_(layers=att), n, dtype=2)
        st = state_bytes(s.with_(layers=s.layers - att), dtype=2)
        cases.append(Case((s, n, att, 2), _num(kv + st), f"{s.name}, N = {n}, {att} attention layers"))

    def parts(c):
        s, n, att, b = c.args
        kv = 2 * att * s.kv_heads * s.head_dim * n * b
        state_per_layer = s.kv_heads * s.head_dim * s.head_dim * b
        return kv, state_per_layer

    return run_cases(
        "check_hybrid_bytes", lambda s, n, a, b: _num(your_fn(s, n, a, b)), cases, names=["bytes"],
        hint="KV cache of the attention layers + the states of the other (layers − attention_layers) layers.",
        diagnoses=[
            (lambda e, g, c: g.item() == parts(c)[0],
             "you left out the linear layers' states: they are small, but not zero."),
            (lambda e, g, c: g.item() == parts(c)[0] + c.args[0].layers * parts(c)[1],
             "you gave every layer a state: only the layers that are not attention layers keep one."),
            (lambda e, g, c: g.item() == 2 * c.args[0].layers * c.args[0].kv_heads * c.args[0].head_dim * c.args[1] * c.args[3]
             + (c.args[0].layers - c.args[2]) * parts(c)[1],
             "you priced the KV cache of every layer: only the attention layers keep one."),
        ])
