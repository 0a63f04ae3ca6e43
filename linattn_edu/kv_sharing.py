"""Sharing keys and values across heads: GQA made from an MHA checkpoint, and MLA's latent cache.

**GQA from a checkpoint** (Ainslie et al., 2023, "GQA: Training Generalized Multi-Query Transformer
Models from Multi-Head Checkpoints"): the H key (and value) heads of a multi-head layer are split into G
groups of H/G consecutive heads, and each group's projection matrices are **mean-pooled** into one head;
query head h then reads key/value head h // (H/G). G = H is the original MHA, G = 1 is MQA. The paper
then *uptrains* the converted model (about 5 % of the pre-training compute); this module shows the
conversion itself and what it costs before any uptraining.

**MLA** (multi-head latent attention, DeepSeek-V2, DeepSeek-AI 2024). Per token t, with input h_t (D):

    c_t      = W_DKV h_t                     (d_c)       the cached latent
    k^C_t,i  = W_UK,i c_t,  v^C_t,i = W_UV,i c_t  (d_h each, head i)
    k^R_t    = RoPE_t(W_KR h_t)              (d_r)       one rotary key shared by all heads, cached
    q^C_t,i  = W_Q,i h_t,   q^R_t,i = RoPE_t(W_QR,i h_t)  (d_h, d_r)
    score    = (q^C_t,iᵀ k^C_s,i + q^R_t,iᵀ k^R_s) / √(d_h + d_r)
    u_t      = W_O [o_t,1; …; o_t,H],  o_t,i = Σ_s softmax(score)_s v^C_s,i

The cache holds c_t and k^R_t: d_c + d_r numbers per token and layer (DeepSeek-V2: 512 + 64), against
2·H·d_h for MHA. **Absorption**: q^C_t,iᵀ (W_UK,i c_s) = (W_UK,iᵀ q^C_t,i)ᵀ c_s, so a decoder folds W_UK,i
into the query and scores the cached latents directly; likewise W_UV,i moves past the weighted sum
(o_t,i = W_UV,i Σ_s P_s c_s) and into W_O. No per-head key or value is ever built. RoPE cannot live on
k^C: the rotation R_s would sit between W_UK,i and c_s and depend on s, so no fixed matrix could be folded
into the query; hence the separate, shared rotary key. (DeepSeek-V2 also compresses the queries through
a 1536-wide latent to save activation memory in training; it does not change the cache, so it is left out.)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ._checks import check_bool, check_number, check_positive_int, check_tensor
from .softmax import softmax_attention

__all__ = ["mean_pool_kv_heads", "first_head_kv", "grouped_query_attention", "random_mha_checkpoint",
           "MLAWeights", "random_mla_weights", "rope", "mla_cache", "mla_attention"]


# --------------------------------------------------------------------------- GQA from an MHA checkpoint

def _check_groups(w, heads: int, groups: int, name: str) -> int:
    check_tensor(w, name)
    check_positive_int(heads, "heads")
    check_positive_int(groups, "groups")
    if heads % groups:
        raise ValueError(f"groups must divide heads = {heads}; got {groups}")
    if w.dim() != 2 or w.shape[0] % heads:
        raise ValueError(f"{name} must be (heads · head_dim, d_model) with heads = {heads}; got {tuple(w.shape)}")
    return w.shape[0] // heads


def mean_pool_kv_heads(w: torch.Tensor, heads: int, groups: int) -> torch.Tensor:
    """Mean-pool a key (or value) projection of ``heads`` heads into ``groups`` heads.

    w: (heads · head_dim, d_model), head h in rows h·head_dim … (h+1)·head_dim − 1 (torch Linear layout).
    Group g averages the consecutive heads g·H/G … (g+1)·H/G − 1. Returns (groups · head_dim, d_model).
    """
    head_dim = _check_groups(w, heads, groups, "w")
    per = w.reshape(groups, heads // groups, head_dim, w.shape[-1])  # (G, H/G, d_h, D)
    return per.mean(1).reshape(groups * head_dim, w.shape[-1])  # (G·d_h, D)


def first_head_kv(w: torch.Tensor, heads: int, groups: int) -> torch.Tensor:
    """Keep the first head of each group instead of the mean (the alternative Ainslie et al. compare with).

    w: (heads · head_dim, d_model) -> (groups · head_dim, d_model).
    """
    head_dim = _check_groups(w, heads, groups, "w")
    per = w.reshape(groups, heads // groups, head_dim, w.shape[-1])  # (G, H/G, d_h, D)
    return per[:, 0].reshape(groups * head_dim, w.shape[-1])  # (G·d_h, D)


def grouped_query_attention(x: torch.Tensor, wq: torch.Tensor, wk: torch.Tensor, wv: torch.Tensor,
                            wo: torch.Tensor, heads: int, *, causal: bool = True) -> torch.Tensor:
    """Multi-head softmax attention whose H query heads share G = wk.shape[0] / head_dim key/value heads.

    x: (..., N, D); wq, wo: (H·d_h, D), (D, H·d_h); wk, wv: (G·d_h, D). Query head h reads KV head
    h // (H/G) (consecutive query heads share one, as repeat_interleave and Llama's repeat_kv do).
    Returns (..., N, D). With G = H it is plain MHA.
    """
    check_tensor(x, "x")
    check_bool(causal, "causal")
    head_dim = _check_groups(wq, heads, 1, "wq")
    if wk.shape != wv.shape or wk.dim() != 2 or wk.shape[0] % head_dim or wk.shape[1] != x.shape[-1]:
        raise ValueError(f"wk and wv must both be (groups · {head_dim}, {x.shape[-1]}); got {tuple(wk.shape)} "
                         f"and {tuple(wv.shape)}")
    groups = wk.shape[0] // head_dim
    _check_groups(wq, heads, groups, "wq")

    def split(t, h):
        return t.unflatten(-1, (h, head_dim)).transpose(-3, -2)  # (..., N, h·d_h) -> (..., h, N, d_h)

    q = split(x @ wq.T, heads)  # (..., H, N, d_h)
    k = split(x @ wk.T, groups).repeat_interleave(heads // groups, dim=-3)  # (..., H, N, d_h)
    v = split(x @ wv.T, groups).repeat_interleave(heads // groups, dim=-3)  # (..., H, N, d_h)
    o = softmax_attention(q, k, v, causal=causal)  # (..., H, N, d_h)
    return o.transpose(-3, -2).flatten(-2) @ wo.T  # (..., N, H·d_h) @ (H·d_h, D) -> (..., N, D)


def random_mha_checkpoint(d_model: int, heads: int, head_dim: int, *, head_similarity: float = 0.0,
                          seed: int = 0, dtype=torch.float64) -> dict:
    """Random MHA projections whose heads are alike to a chosen degree: {"wq", "wk", "wv", "wo"}.

    Each head's key (and value) matrix is √s·B + √(1 − s)·E_h with one B shared by all heads and E_h its
    own (entries N(0, 1/d_model)), so s = ``head_similarity`` in [0, 1] is the expected correlation of two
    heads' weights: 0 independent heads, 1 identical heads (then mean-pooling loses nothing).
    """
    for name, value in (("d_model", d_model), ("heads", heads), ("head_dim", head_dim)):
        check_positive_int(value, name)
    check_number(head_similarity, "head_similarity", minimum=0.0, maximum=1.0)
    g = torch.Generator().manual_seed(seed)

    def draw(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype) / math.sqrt(shape[-1])

    def alike():
        shared = draw(1, head_dim, d_model)  # (1, d_h, D)
        own = draw(heads, head_dim, d_model)  # (H, d_h, D)
        w = math.sqrt(head_similarity) * shared + math.sqrt(1 - head_similarity) * own  # (H, d_h, D)
        return w.reshape(heads * head_dim, d_model)  # (H·d_h, D)

    return {"wq": draw(heads * head_dim, d_model), "wk": alike(), "wv": alike(),
            "wo": draw(d_model, heads * head_dim)}


# --------------------------------------------------------------------------- MLA

@dataclass(frozen=True)
class MLAWeights:
    """One MLA layer's weights (shapes with D = d_model, H heads, d_h, d_c = latent, d_r = rope dims).

    w_dkv (d_c, D) · w_uk, w_uv (H, d_h, d_c) · w_q (H, d_h, D) · w_qr (H, d_r, D) · w_kr (d_r, D) ·
    w_o (D, H·d_h).
    """

    w_dkv: torch.Tensor
    w_uk: torch.Tensor
    w_uv: torch.Tensor
    w_q: torch.Tensor
    w_qr: torch.Tensor
    w_kr: torch.Tensor
    w_o: torch.Tensor

    @property
    def heads(self) -> int:
        return self.w_uk.shape[0]

    @property
    def head_dim(self) -> int:
        return self.w_uk.shape[1]

    @property
    def latent_dim(self) -> int:
        return self.w_dkv.shape[0]

    @property
    def rope_dim(self) -> int:
        return self.w_kr.shape[0]


def random_mla_weights(d_model: int, heads: int, head_dim: int, latent_dim: int, rope_dim: int, *, seed: int = 0,
                       dtype=torch.float64) -> MLAWeights:
    """Random MLA weights (entries N(0, 1/fan_in)); rope_dim must be even (RoPE rotates pairs)."""
    for name, value in (("d_model", d_model), ("heads", heads), ("head_dim", head_dim), ("latent_dim", latent_dim),
                        ("rope_dim", rope_dim)):
        check_positive_int(value, name)
    if rope_dim % 2:
        raise ValueError(f"rope_dim must be even (RoPE rotates pairs of dims); got {rope_dim}")
    g = torch.Generator().manual_seed(seed)

    def draw(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype) / math.sqrt(shape[-1])

    return MLAWeights(w_dkv=draw(latent_dim, d_model), w_uk=draw(heads, head_dim, latent_dim),
                      w_uv=draw(heads, head_dim, latent_dim), w_q=draw(heads, head_dim, d_model),
                      w_qr=draw(heads, rope_dim, d_model), w_kr=draw(rope_dim, d_model),
                      w_o=draw(d_model, heads * head_dim))


def rope(x: torch.Tensor, positions: torch.Tensor | None = None, base: float = 10000.0) -> torch.Tensor:
    """Rotary position embedding: rotate each pair (x_2i, x_2i+1) of token t by the angle t·base^(−2i/d).

    x: (..., N, d) with d even; positions: (N,) (default 0 … N−1). Returns (..., N, d). A rotation keeps
    norms, and RoPE_t(a)ᵀRoPE_s(b) depends on t − s only.
    """
    check_tensor(x, "x")
    d, n = x.shape[-1], x.shape[-2]
    if d % 2:
        raise ValueError(f"x must have an even last dim (RoPE rotates pairs); got {tuple(x.shape)}")
    pos = torch.arange(n, dtype=x.dtype, device=x.device) if positions is None else positions.to(x.dtype)  # (N,)
    freq = base ** (-torch.arange(0, d, 2, dtype=x.dtype, device=x.device) / d)  # (d/2,)
    angle = pos[:, None] * freq  # (N, d/2)
    cos, sin = angle.cos(), angle.sin()  # (N, d/2)
    even, odd = x[..., 0::2], x[..., 1::2]  # (..., N, d/2)
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)  # (..., N, d)


def _check_mla(h, w) -> None:
    check_tensor(h, "h")
    if not isinstance(w, MLAWeights):
        raise TypeError(f"w must be an MLAWeights; got {type(w).__name__}")
    if h.shape[-1] != w.w_dkv.shape[1]:
        raise ValueError(f"h must be (..., N, {w.w_dkv.shape[1]}); got {tuple(h.shape)}")


def mla_cache(h: torch.Tensor, w: MLAWeights) -> tuple[torch.Tensor, torch.Tensor]:
    """What MLA caches per token: the latent c = h W_DKVᵀ (..., N, d_c) and the rotary key k^R (..., N, d_r)."""
    _check_mla(h, w)
    return h @ w.w_dkv.T, rope(h @ w.w_kr.T)  # (..., N, d_c), (..., N, d_r)


def mla_attention(h: torch.Tensor, w: MLAWeights, *, absorbed: bool = False) -> torch.Tensor:
    """Causal MLA over h (..., N, D) -> (..., N, D), from the cache (latent, rotary key) only.

    absorbed=False up-projects every cached latent to per-head keys and values (..., H, N, d_h);
    absorbed=True folds W_UK,i into the query and W_UV,i after the weighted sum, and never builds them.
    Both compute the same function (see the module docstring).
    """
    check_bool(absorbed, "absorbed")
    latent, k_rope = mla_cache(h, w)  # (..., N, d_c), (..., N, d_r)
    n = h.shape[-2]
    q_c = torch.einsum("hed,...nd->...hne", w.w_q, h)  # (..., H, N, d_h)
    q_r = rope(torch.einsum("hrd,...nd->...hnr", w.w_qr, h))  # (..., H, N, d_r)
    scale = 1 / math.sqrt(w.head_dim + w.rope_dim)
    rope_scores = q_r @ k_rope.unsqueeze(-3).transpose(-2, -1)  # (..., H, N, d_r) @ (..., 1, d_r, N) -> (..., H, N, N)
    if absorbed:
        q_lat = torch.einsum("hec,...hne->...hnc", w.w_uk, q_c)  # (..., H, N, d_c): W_UK,iᵀ q^C
        content = q_lat @ latent.unsqueeze(-3).transpose(-2, -1)  # (..., H, N, N)
    else:
        k_c = torch.einsum("hec,...nc->...hne", w.w_uk, latent)  # (..., H, N, d_h): every key, up-projected
        content = q_c @ k_c.transpose(-2, -1)  # (..., H, N, N)
    scores = (content + rope_scores) * scale  # (..., H, N, N)
    causal = torch.ones(n, n, dtype=torch.bool, device=h.device).tril()  # (N, N)
    p = scores.masked_fill(~causal, float("-inf")).softmax(-1)  # (..., H, N, N)
    if absorbed:
        o_lat = p @ latent.unsqueeze(-3)  # (..., H, N, d_c): Σ_s P_s c_s
        o = torch.einsum("hec,...hnc->...hne", w.w_uv, o_lat)  # (..., H, N, d_h)
    else:
        v_c = torch.einsum("hec,...nc->...hne", w.w_uv, latent)  # (..., H, N, d_h): every value, up-projected
        o = p @ v_c  # (..., H, N, d_h)
    return o.transpose(-3, -2).flatten(-2) @ w.w_o.T  # (..., N, H·d_h) @ (H·d_h, D) -> (..., N, D)
