"""A window + linear hybrid in the spirit of Based (Arora et al., 2024).

Linear attention keeps a fixed-size summary of the whole past but blurs exact recall;
sliding-window softmax is exact but forgets everything older than w tokens. Based uses both:
a Taylor-feature linear attention (φ(q)ᵀφ(k) = 1 + s + s²/2 ≈ exp(s), s = qᵀk/√d) for the
long range, and exact softmax attention over a short sliding window for the local detail.

Definition used here (the two branches read the same q, k, v and their outputs add):

    out_i =  Σ_{i−w<j<=i} softmax_j(q_iᵀk_j/√d) v_j                       window branch
           + Σ_{j<=i} φ(q_i)ᵀφ(k_j) v_j / (Σ_{j<=i} φ(q_i)ᵀφ(k_j) + eps)    linear branch

Each branch is normalised over its own keys (they do not share a denominator), so the sum is
two convex combinations of values added together. In Based the two are separate layers whose
outputs add into the residual stream; here they are two branches of one layer, which is the
same sum for one layer's worth of input. Memory per token at decode: the window's w keys and
values plus the linear state (d_φ·d_v + d_φ) — constant in the sequence length.
"""
from __future__ import annotations

from .linear import linear_attention
from .window import sliding_window_attention

__all__ = ["window_linear_attention"]


def window_linear_attention(q, k, v, *, window, feature_map="taylor", scale=None, chunk_size=64, eps=1e-6):
    """Causal hybrid: sliding-window softmax (width ``window``) + normalised causal linear attention.

    Args:
        q, k: (..., N, d); v: (..., N, d_v).
        window: w >= 1, the softmax band i − w < j <= i.
        feature_map: φ of the linear branch ("taylor" as in Based, or any positive-kernel map).
        scale: the window's score scale, default 1/√d.
        chunk_size, eps: passed to the linear branch (chunkwise form).

    Returns (..., N, d_v) = sliding_window_attention(..., causal=True) + linear_attention(..., causal=True).
    """
    local = sliding_window_attention(q, k, v, window=window, causal=True, scale=scale)  # (..., N, d_v)
    far = linear_attention(q, k, v, feature_map, causal=True, form="chunkwise", chunk_size=chunk_size,
                           eps=eps)  # (..., N, d_v)
    return local + far  # (..., N, d_v)
