"""Attention as kernel smoothing (Nadaraya–Watson regression).

Given "training points" (k_j, v_j) and a query q, Nadaraya–Watson predicts

    out(q) = Σ_j κ(q, k_j) v_j / Σ_j κ(q, k_j)

a weighted average of the values, weighted by similarity. With
κ(q, k) = exp(qᵀk/√d) this *is* softmax attention; with κ(q, k) = φ(q)ᵀφ(k)
it is linear attention. A kernel here is a callable on whole blocks:
(q (..., N, d), k (..., M, d)) -> (..., N, M) non-negative Gram matrix.
"""
from __future__ import annotations

import math

import torch

from ._checks import check_dense_budget, check_qkv, compute_dtype
from .feature_maps import FeatureMap, get_feature_map
from .softmax import causal_mask

__all__ = ["kernel_smoother", "exp_kernel", "gaussian_kernel", "boxcar_kernel", "feature_map_kernel"]


def _positive(x, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not (x > 0 and math.isfinite(x)):
        raise ValueError(f"{name} must be a finite number > 0; got {x!r}")
    return float(x)


def _sq_dists(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """‖q_i − k_j‖²: (..., N, d), (..., M, d) -> (..., N, M), computed by broadcasting (exact)."""
    return (q.unsqueeze(-2) - k.unsqueeze(-3)).pow(2).sum(-1)  # (..., N, 1, d) - (..., 1, M, d) -> (..., N, M)


def exp_kernel(scale: float | None = None):
    """κ(q, k) = exp(qᵀk · scale), scale default 1/√d: the softmax kernel.

    Evaluated stably: each row is divided by its max, a per-query constant
    that cancels in the Nadaraya–Watson ratio.
    """
    if scale is not None:
        scale = _positive(scale, "scale")

    def kernel(q, k):
        s = scale if scale is not None else 1.0 / math.sqrt(q.shape[-1])
        scores = q @ k.transpose(-2, -1) * s  # (..., N, d) @ (..., d, M) -> (..., N, M)
        return torch.exp(scores - scores.amax(-1, keepdim=True))  # (..., N, M), row max 1

    kernel.name = "exp"
    return kernel


def gaussian_kernel(bandwidth: float = 1.0):
    """κ(q, k) = exp(−‖q − k‖² / (2h²)), h = bandwidth: the classic smoother.

    Evaluated stably: each row is divided by its largest value (a per-query
    constant that cancels in the ratio), so a query far from every key still
    gets its nearest keys' values instead of 0/0.
    """
    h = _positive(bandwidth, "bandwidth")

    def kernel(q, k):
        d2 = _sq_dists(q, k)  # (..., N, M)
        return torch.exp(-(d2 - d2.amin(-1, keepdim=True)) / (2 * h * h))  # (..., N, M), row max 1

    kernel.name = "gaussian"
    return kernel


def boxcar_kernel(width: float = 1.0):
    """κ(q, k) = 1[‖q − k‖ <= width]: a moving average; rows can be empty (output 0)."""
    w = _positive(width, "width")

    def kernel(q, k):
        return (_sq_dists(q, k) <= w * w).to(q.dtype)  # (..., N, M)

    kernel.name = "boxcar"
    return kernel


def feature_map_kernel(feature_map):
    """κ(q, k) = φ(q)ᵀφ(k): a factorised kernel, the one linear attention uses."""
    if not isinstance(feature_map, (FeatureMap, str)):
        raise TypeError(f"feature_map must be a FeatureMap or a name; got {type(feature_map).__name__}")

    def kernel(q, k):
        phi = get_feature_map(feature_map, q.shape[-1])
        return phi.query(q) @ phi.key(k).transpose(-2, -1)  # (..., N, d_φ) @ (..., d_φ, M) -> (..., N, M)

    kernel.name = getattr(feature_map, "name", feature_map)
    return kernel


def kernel_smoother(q, k, v, kernel, *, causal=False, return_weights=False):
    """Nadaraya–Watson: out_i = Σ_j κ(q_i, k_j) v_j / Σ_j κ(q_i, k_j).

    Args:
        q: (..., N, d) query points; k: (..., M, d) key points; v: (..., M, d_v) values.
        kernel: callable (q, k) -> (..., N, M) non-negative weights.
        causal: only keys j <= i count (needs N == M).
        return_weights: also return the row-normalised weights (..., N, M).

    Rows whose weights are all zero (e.g. an empty boxcar) give output 0.
    """
    check_qkv(q, k, v, causal=causal)
    if not callable(kernel):
        raise TypeError(f"kernel must be a callable (q, k) -> (..., N, M); got {type(kernel).__name__}")
    n, m = q.shape[-2], k.shape[-2]
    work = compute_dtype(q.dtype)
    check_dense_budget((*q.shape[:-2], n, m), work, "kernel_smoother's (..., N, M) Gram matrix",
                       "use linear_attention with a feature map for long sequences")
    gram = kernel(q.to(work), k.to(work))  # (..., N, M)
    if not isinstance(gram, torch.Tensor) or gram.shape != (*q.shape[:-2], n, m):
        got = tuple(gram.shape) if isinstance(gram, torch.Tensor) else type(gram).__name__
        raise ValueError(f"kernel must return (..., N, M) = {(*q.shape[:-2], n, m)}; got {got}")
    if causal:
        gram = gram * causal_mask(n, m, gram.device)  # (..., N, M) lower-triangular
    total = gram.sum(-1, keepdim=True)  # (..., N, 1)
    weights = gram / torch.where(total > 0, total, torch.ones_like(total))  # (..., N, M)
    out = (weights @ v.to(work)).to(q.dtype)  # (..., N, M) @ (..., M, d_v) -> (..., N, d_v)
    return (out, weights.to(q.dtype)) if return_weights else out
