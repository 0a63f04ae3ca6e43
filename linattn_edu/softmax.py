"""Softmax attention, written out: scores -> stable softmax -> weighted sum.

    out = softmax(Q Kᵀ · scale + mask) V,   scale = 1/√d by default

Shapes follow ``torch.nn.functional.scaled_dot_product_attention``:
q (..., N, d), k (..., M, d), v (..., M, d_v) -> out (..., N, d_v).

This is the *teaching* baseline: it materialises the (..., N, M) score matrix
(guarded by the memory budget). The honest fast baseline is torch's SDPA, which
on CPU is a flash kernel with O(N) extra memory.
"""
from __future__ import annotations

import math

import torch

from ._checks import (check_bool, check_dense_budget, check_number, check_positive_int, check_qkv, check_tensor,
                      compute_dtype, safe_divide, weighted_sum)

__all__ = ["softmax_attention", "attention_scores", "stable_softmax", "combine_masks", "causal_mask"]


def causal_mask(n: int, m: int | None = None, device=None) -> torch.Tensor:
    """Boolean (n, m) lower-triangular mask: True where key j <= query i may be attended."""
    m = n if m is None else m
    check_positive_int(n, "n")
    check_positive_int(m, "m")
    check_dense_budget((n, m), torch.bool, "causal_mask's (n, m) mask", "use a smaller n")
    return torch.ones(n, m, dtype=torch.bool, device=device).tril()  # (n, m)


def _check_scale(scale, d: int) -> float:
    """None -> 1/√d; otherwise a finite number (TypeError for a non-number, ValueError for NaN/inf)."""
    if scale is None:
        return 1.0 / math.sqrt(d)
    check_number(scale, "scale (or None for 1/sqrt(d))")
    return float(scale)


def attention_scores(q: torch.Tensor, k: torch.Tensor, scale: float) -> torch.Tensor:
    """Scaled dot products s_ij = q_i·k_j · scale: (..., N, d), (..., M, d) -> (..., N, M)."""
    check_tensor(q, "q")
    check_tensor(k, "k")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"k must be (..., M, d) with d == q.shape[-1] == {q.shape[-1]}; got {tuple(k.shape)}")
    check_number(scale, "scale")
    return q @ k.transpose(-2, -1) * scale  # (..., N, d) @ (..., d, M) -> (..., N, M)


def combine_masks(scores: torch.Tensor, *, causal: bool, mask) -> torch.Tensor:
    """Apply a causal mask and/or a user mask to scores, returning masked scores.

    A boolean mask keeps True entries (others become -inf); a float mask is added.
    Either must broadcast to the scores' shape (..., N, M).
    """
    check_tensor(scores, "scores")
    check_bool(causal, "causal")
    if mask is not None:
        if not isinstance(mask, torch.Tensor):
            raise TypeError(f"mask must be a torch.Tensor (bool or float) or None; got {type(mask).__name__}")
        if mask.dtype != torch.bool and not mask.is_floating_point():
            raise TypeError(f"mask must be bool (True = attend) or an additive float tensor; got {mask.dtype}")
        try:
            ok = torch.broadcast_shapes(mask.shape, scores.shape) == scores.shape
        except RuntimeError:
            ok = False
        if not ok:
            raise ValueError(
                f"mask must broadcast to the scores' shape (..., N, M) = {tuple(scores.shape)}; "
                f"got {tuple(mask.shape)}"
            )
        if mask.device != scores.device:
            raise ValueError(f"mask must be on {scores.device}; got {mask.device}")
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))  # (..., N, M)
        else:
            scores = scores + mask.to(scores.dtype)  # (..., N, M)
    if causal:
        n, m = scores.shape[-2:]
        scores = scores.masked_fill(~causal_mask(n, m, scores.device), float("-inf"))  # (..., N, M)
    return scores


def stable_softmax(scores: torch.Tensor) -> torch.Tensor:
    """Row softmax with max subtraction: p_ij = exp(s_ij - max_j s_ij) / Σ_j exp(s_ij - max_j s_ij).

    Subtracting the row max leaves the result unchanged (it cancels) but keeps
    every exponent <= 0, so exp never overflows. A row whose entries are all
    -inf (fully masked) has no defined softmax: here it becomes all zeros, so the
    output for that query is the zero vector (documented choice, never NaN).
    """
    check_tensor(scores, "scores", min_rank=1)
    row_max = scores.amax(dim=-1, keepdim=True)  # (..., N, 1)
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))  # (..., N, 1)
    p = torch.exp(scores - row_max)  # (..., N, M), every exponent <= 0
    total = p.sum(dim=-1, keepdim=True)  # (..., N, 1), >= 1 unless the row is empty
    return safe_divide(p, total, 0.0)  # (..., N, M); empty rows stay 0


def softmax_attention(q, k, v, *, causal=False, mask=None, scale=None, return_weights=False):
    """Softmax attention: out = softmax(Q Kᵀ · scale + mask) V.

    Args:
        q: (..., N, d) queries; k: (..., M, d) keys; v: (..., M, d_v) values.
        causal: query i attends to keys j <= i (needs N == M).
        mask: bool (True = attend) or additive float, broadcastable to (..., N, M).
        scale: multiplies the scores; default 1/√d (keeps Var(q·k) ≈ 1 for unit inputs).
        return_weights: also return the (..., N, M) attention matrix.

    A fully-masked row gives output 0 and weights 0 (as torch 2.13 SDPA does; torch.softmax gives NaN).
    Half-precision inputs are computed in float32 and cast back. A NaN at token t reaches only the
    rows that attend to t (causal: rows i >= t): masking uses masked_fill, and a weight of 0 never
    multiplies a NaN value (see ``_checks.weighted_sum``).

    Example (q = k = all ones, causal, scalar values 1, 0, 0 -> prefix means)::

        >>> q = k = torch.ones(3, 1); v = torch.tensor([[1.], [0.], [0.]])
        >>> softmax_attention(q, k, v, causal=True).flatten().tolist()
        [1.0, 0.5, 0.3333333432674408]
    """
    check_bool(causal, "causal")
    check_bool(return_weights, "return_weights")
    check_qkv(q, k, v, causal=causal)
    scale = _check_scale(scale, q.shape[-1])
    n, m = q.shape[-2], k.shape[-2]
    work = compute_dtype(q.dtype)
    check_dense_budget(
        (*q.shape[:-2], n, m), work, "softmax_attention's (..., N, M) score matrix",
        "use torch SDPA or linear_attention(form='chunkwise') for long sequences",
    )
    qw, kw, vw = q.to(work), k.to(work), v.to(work)
    scores = attention_scores(qw, kw, scale)  # (..., N, M)
    weights = stable_softmax(combine_masks(scores, causal=causal, mask=mask))  # (..., N, M)
    out = weighted_sum(weights, vw).to(q.dtype)  # (..., N, M) @ (..., M, d_v) -> (..., N, d_v)
    return (out, weights.to(q.dtype)) if return_weights else out
