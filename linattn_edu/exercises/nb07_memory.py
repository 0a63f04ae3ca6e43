"""Checkers for notebook 07 (memory: the KV cache vs the state): cache bytes for MHA/GQA/MQA/MLA, a
sliding-window cache, the memory of a hybrid model, GQA made from an MHA checkpoint (mean-pooled K/V
heads) and MLA's absorbed attention scores."""
from __future__ import annotations

import math

import torch

from ..kv_sharing import mean_pool_kv_heads, rope
from ..memory import PRESETS, cache_bytes, state_bytes
from .runner import (CallSpy, Case, Guard, Hint, add_guard, close, fail, gen, randn, refuse_library, run_cases,
                     shape_of)

__all__ = ["check_cache_bytes", "check_window_cache_bytes", "check_hybrid_bytes", "check_mean_pool_kv",
           "check_mla_scores"]

_LIBRARY_NAMES = {"cache_bytes", "kv_cache_bytes", "mla_cache_bytes", "state_bytes", "linear_state_bytes",
                  "hybrid_bytes", "hybridize", "mean_pool_kv_heads", "first_head_kv", "mla_attention"}


def _num(x) -> torch.Tensor:
    return torch.tensor(float(x), dtype=torch.float64)


def _refuse_library(title: str, fn):
    return refuse_library(title, fn, _LIBRARY_NAMES, "write the formula yourself from the shape's fields "
                          "(layers, kv_heads, head_dim, latent_dim, rope_dim).")


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


# --------------------------------------------------------------------------- GQA from an MHA checkpoint

HINTS = {
    "check_mean_pool_kv": Hint(
        "head h owns rows h·head_dim … (h+1)·head_dim − 1 of w; group g is the heads:per consecutive heads "
        "g·per … (g+1)·per − 1 (per = heads // groups), because query head h reads KV head h // per. Reshape to "
        "(groups, per, head_dim, d_model), average over the per axis, reshape back.",
        "def my_mean_pool_kv(w, heads, groups):\n"
        "    head_dim = w.shape[0] // heads\n"
        "    per = w.reshape(groups, heads // groups, head_dim, w.shape[1])   # (G, H/G, d_h, D)\n"
        "    return per.mean(1).reshape(groups * head_dim, w.shape[1])        # (G·d_h, D)"),
    "check_mla_scores": Hint(
        "fold W_UK,i into the query: q_lat_i = W_UK,iᵀ q^C_i (d_c numbers per head), score it against every "
        "cached latent, add the rotary part q^R_iᵀ k^R_j, and scale by 1/√(d_h + d_r).",
        "def my_mla_scores(q_c, q_r, latent, k_r, w_uk):\n"
        "    q_lat = torch.einsum('hec,he->hc', w_uk, q_c)          # (H, d_c): W_UK,iᵀ q^C_i\n"
        "    scores = q_lat @ latent.T + q_r @ k_r.T                 # (H, M)\n"
        "    return scores / math.sqrt(q_c.shape[-1] + q_r.shape[-1])"),
}


def check_mean_pool_kv(your_fn) -> bool:
    """your_fn(w (heads·head_dim, d_model), heads, groups) -> (groups·head_dim, d_model).

    Group g is the H/G consecutive heads g·H/G … (g+1)·H/G − 1; its new head is their mean (Ainslie et al., 2023).
    """
    code = getattr(your_fn, "__code__", None)
    if code is not None and {"mean_pool_kv_heads", "first_head_kv"} & set(code.co_names):
        return fail("check_mean_pool_kv", ["  your function calls the library's pooling"],
                    "write the pooling yourself: reshape w into its heads and groups, then average.")
    g, cases = gen(), []
    for heads, groups, head_dim, d_model in ((8, 2, 3, 5), (6, 3, 4, 7), (4, 1, 2, 3), (4, 4, 3, 2)):
        w = randn(g, heads * head_dim, d_model)  # (H·d_h, D)
        cases.append(Case((w, heads, groups), mean_pool_kv_heads(w, heads, groups),
                          f"w {shape_of(w)}, heads {heads}, groups {groups}"))

    def heads_of(c):
        w, heads, groups = c.args
        return w.reshape(heads, w.shape[0] // heads, w.shape[1])  # (H, d_h, D)

    def interleaved(c):
        w, heads, groups = c.args
        h = heads_of(c)
        return h.reshape(heads // groups, groups, *h.shape[1:]).mean(0).reshape(-1, w.shape[1])  # heads g, g+G, …

    def summed(c):
        w, heads, groups = c.args
        return heads_of(c).reshape(groups, heads // groups, *heads_of(c).shape[1:]).sum(1).reshape(-1, w.shape[1])

    def first(c):
        w, heads, groups = c.args
        return heads_of(c).reshape(groups, heads // groups, *heads_of(c).shape[1:])[:, 0].reshape(-1, w.shape[1])

    def rows_mixed(c):
        w, heads, groups = c.args
        d_h = w.shape[0] // heads
        per = w.reshape(d_h, heads, w.shape[1])  # head_dim-major: the wrong row layout
        return per.reshape(d_h, groups, heads // groups, w.shape[1]).mean(2).reshape(-1, w.shape[1])

    return run_cases(
        "check_mean_pool_kv", your_fn, cases, names=["pooled"], hint=HINTS["check_mean_pool_kv"],
        diagnoses=[
            (lambda e, g, c: c.args[2] not in (1, c.args[1]) and close(g, interleaved(c)),
             "you pooled heads g, g + G, g + 2G, …: query head h reads KV head h // (H/G), so a group is H/G "
             "*consecutive* heads."),
            (lambda e, g, c: c.args[2] != c.args[1] and close(g, summed(c)),
             "you summed the heads of a group: mean-pooling divides by H/G, so a group of identical heads stays "
             "that head."),
            (lambda e, g, c: c.args[2] != c.args[1] and close(g, first(c)),
             "you kept the first head of each group; mean-pooling averages all of them (it kept more of the "
             "checkpoint in Ainslie et al.'s comparison)."),
            (lambda e, g, c: c.args[2] != c.args[1] and close(g, rows_mixed(c)),
             "each head owns head_dim *consecutive* rows of w (row h·head_dim + e is dim e of head h): reshape "
             "to (heads, head_dim, d_model), not (head_dim, heads, d_model)."),
        ])


# --------------------------------------------------------------------------- MLA: scores from the latent cache

def _mla_case(g, heads, head_dim, latent_dim, rope_dim, m):
    q_c = randn(g, heads, head_dim)  # (H, d_h) the new token's content queries
    q_r = rope(randn(g, heads, 1, rope_dim), torch.tensor([m - 1])).squeeze(-2)  # (H, d_r) rotated at its position
    latent = randn(g, m, latent_dim)  # (M, d_c) the cached latents
    k_r = rope(randn(g, m, rope_dim))  # (M, d_r) the cached rotary keys
    w_uk = randn(g, heads, head_dim, latent_dim, scale=latent_dim ** -0.5)  # (H, d_h, d_c)
    keys = torch.einsum("hec,mc->hme", w_uk, latent)  # (H, M, d_h): the reference may up-project
    expected = (torch.einsum("he,hme->hm", q_c, keys) + q_r @ k_r.T) / math.sqrt(head_dim + rope_dim)  # (H, M)
    return Case((q_c, q_r, latent, k_r, w_uk), expected,
                f"H = {heads}, d_h = {head_dim}, d_c = {latent_dim}, d_r = {rope_dim}, M = {m} cached tokens")


def check_mla_scores(your_fn) -> bool:
    """your_fn(q_c (H, d_h), q_r (H, d_r), latent (M, d_c), k_r (M, d_r), w_uk (H, d_h, d_c)) -> scores (H, M).

    score_ij = ((W_UK,iᵀ q^C_i)ᵀ c_j + q^R_iᵀ k^R_j) / √(d_h + d_r), computed from the cache without
    up-projecting it: no (H, M, d_h) tensor of per-head keys.
    """
    g = gen()
    cases = [_mla_case(g, *shape) for shape in ((4, 16, 24, 8, 37), (2, 8, 12, 4, 5), (3, 16, 20, 8, 1))]
    spy: dict = {}

    def watched(*args):
        heads, head_dim, m = args[0].shape[0], args[0].shape[1], args[2].shape[0]
        with CallSpy() as mode:
            out = your_fn(*args)
        spy["numel"], spy["limit"] = mode.max_numel, heads * m * head_dim
        return out

    def no_keys(case, got):
        if case.args[2].shape[0] > 1 and spy.get("numel", 0) >= spy.get("limit", math.inf):
            return ("right values, but your function built a tensor as large as every cached latent up-projected "
                    "to per-head keys (H·M·d_h numbers): fold W_UK into the query instead, so each step reads only "
                    "the d_c-wide latents")
        return None

    def parts(c, scale, rope_part=True):
        q_c, q_r, latent, k_r, w_uk = c.args
        content = torch.einsum("hec,he->hc", w_uk, q_c) @ latent.T  # (H, M)
        return (content + (q_r @ k_r.T if rope_part else 0)) * scale

    d_h = lambda c: c.args[0].shape[-1]  # noqa: E731
    d_r = lambda c: c.args[1].shape[-1]  # noqa: E731
    return run_cases(
        "check_mla_scores", watched, cases, names=["scores"], after=no_keys, hint=HINTS["check_mla_scores"],
        diagnoses=[
            (lambda e, g, c: close(g, parts(c, d_h(c) ** -0.5)),
             "the scale is 1/√(d_h + d_r): each query–key dot product runs over the content *and* the rotary dims."),
            (lambda e, g, c: close(g, parts(c, (d_h(c) + d_r(c)) ** -0.5, rope_part=False)),
             "you left out the rotary part q^Rᵀk^R: the latent carries no position, the shared rotary key does."),
            (lambda e, g, c: close(g, parts(c, (d_h(c) + d_r(c)) ** -0.5, rope_part=False) + parts(c, 0.0) +
                                   c.args[1] @ c.args[3].T),
             "only the content part is scaled: divide the whole score, content plus rotary, by √(d_h + d_r)."),
            (lambda e, g, c: close(g, parts(c, 1.0)), "scale the scores by 1/√(d_h + d_r), as attention does."),
        ])


# --------------------------------------------------------------------------- hidden tests (graded edition)

add_guard("check_mean_pool_kv", Guard(lambda: (randn(gen(), 8 * 4, 6), 8, 2), allowed=()))
add_guard("check_mla_scores", Guard(lambda: _mla_case(gen(), 4, 16, 24, 8, 64).args, allowed=(),
                                    max_numel=lambda args: args[0].shape[0] * args[2].shape[0] * args[0].shape[1]))
