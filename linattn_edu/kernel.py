"""Attention as kernel smoothing (Nadaraya–Watson regression).

Given "training points" (k_j, v_j) and a query q, Nadaraya–Watson predicts

    out(q) = Σ_j κ(q, k_j) v_j / Σ_j κ(q, k_j)

a weighted average of the values, weighted by similarity. With
κ(q, k) = exp(qᵀk/√d) this *is* softmax attention; with κ(q, k) = φ(q)ᵀφ(k)
it is linear attention. A kernel here is a callable on whole blocks:
(q (..., N, d), k (..., M, d)) -> (..., N, M) non-negative Gram matrix.

What :func:`kernel_smoother` checks on the Gram matrix it gets back (the weights themselves, so any
callable is judged by what it returns): a floating tensor of the inputs' compute dtype
(TypeError otherwise), shape (..., N, M), no negative entry (ValueError: Nadaraya–Watson is a
weighted *average*; qᵀk or identity features give negative weights, and then the denominator can
be 0 or change sign) and no ±inf (ValueError: stabilise the kernel, e.g. subtract the row max).
NaN entries are allowed only where q or k hold NaN; they reach only the rows that use them.
"""
from __future__ import annotations

import math

import torch

from ._checks import (check_bool, check_dense_budget, check_number, check_qkv, compute_dtype, dtype_name,
                      safe_divide, weighted_sum)
from .feature_maps import FEATURE_MAPS, FeatureMap, get_feature_map
from .softmax import causal_mask

__all__ = ["kernel_smoother", "exp_kernel", "gaussian_kernel", "boxcar_kernel", "feature_map_kernel"]


def _positive(x, name: str) -> float:
    check_number(x, name, minimum=0, exclusive_minimum=True)
    return float(x)


def _sq_dists(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """‖q_i − k_j‖²: (..., N, d), (..., M, d) -> (..., N, M), computed by broadcasting (exact)."""
    return (q.unsqueeze(-2) - k.unsqueeze(-3)).pow(2).sum(-1)  # (..., N, 1, d) - (..., 1, M, d) -> (..., N, M)


def _stable_exp(logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """exp(logits − m_i) with m_i the row max over the keys the row may see: (..., N, M) -> (..., N, M).

    m_i is a per-query constant, so it cancels in the Nadaraya–Watson ratio; the largest visible
    weight of each row is 1, so a row never underflows to 0/0. mask (N, M) bool, True = may see
    (None: every key): hidden weights are 0, and a hidden key never sets m_i — otherwise one huge
    future score would shrink a past row's weights to 0. NaN logits are skipped by the max (they
    stay NaN in their own entry).
    """
    visible = logits.masked_fill(torch.isnan(logits), float("-inf"))  # (..., N, M)
    if mask is not None:
        visible = visible.masked_fill(~mask, float("-inf"))  # hidden keys never set the max
    row_max = visible.amax(-1, keepdim=True)  # (..., N, 1)
    row_max = row_max.masked_fill(~torch.isfinite(row_max), 0.0)  # (..., N, 1): an empty row subtracts 0
    weights = torch.exp(logits - row_max)  # (..., N, M), visible row max 1
    return weights if mask is None else weights.masked_fill(~mask, 0.0)


def exp_kernel(scale: float | None = None):
    """κ(q, k) = exp(qᵀk · scale), scale default 1/√d: the softmax kernel.

    Evaluated stably: each row is divided by its max over the keys it may see (see _stable_exp),
    a per-query constant that cancels in the Nadaraya–Watson ratio. Call it as kernel(q, k) or
    kernel(q, k, mask) with a (N, M) boolean mask of the keys each query may see.
    """
    if scale is not None:
        scale = _positive(scale, "scale")

    def kernel(q, k, mask=None):
        s = scale if scale is not None else 1.0 / math.sqrt(q.shape[-1])
        return _stable_exp(q @ k.transpose(-2, -1) * s, mask)  # (..., N, d) @ (..., d, M) -> (..., N, M)

    kernel.name, kernel.takes_mask = "exp", True
    return kernel


def gaussian_kernel(bandwidth: float = 1.0):
    """κ(q, k) = exp(−‖q − k‖² / (2h²)), h = bandwidth: the classic smoother.

    Evaluated stably: each row is divided by its largest value over the keys it may see (a
    per-query constant that cancels in the ratio), so a query far from every key still gets its
    nearest keys' values instead of 0/0. kernel(q, k) or kernel(q, k, mask) as for exp_kernel.
    """
    h = _positive(bandwidth, "bandwidth")

    def kernel(q, k, mask=None):
        return _stable_exp(-_sq_dists(q, k) / (2 * h * h), mask)  # (..., N, M)

    kernel.name, kernel.takes_mask = "gaussian", True
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
    if isinstance(feature_map, str) and feature_map not in FEATURE_MAPS:
        raise ValueError(f"unknown feature map {feature_map!r}; expected one of {FEATURE_MAPS}")

    def kernel(q, k):
        phi = get_feature_map(feature_map, q.shape[-1])
        return phi.query(q) @ phi.key(k).transpose(-2, -1)  # (..., N, d_φ) @ (..., d_φ, M) -> (..., N, M)

    kernel.name = getattr(feature_map, "name", feature_map)
    return kernel


def _check_gram(gram, q, k, shape, work) -> None:
    """The kernel's answer must be a (..., N, M) tensor of the compute dtype, >= 0 and finite."""
    if not isinstance(gram, torch.Tensor):
        raise TypeError(f"kernel must return a torch.Tensor (..., N, M) = {shape}; got {type(gram).__name__}")
    if gram.dtype != work:
        raise TypeError(f"kernel must return {dtype_name(work)} weights (the dtype it was given); "
                        f"got {dtype_name(gram.dtype)}")
    if tuple(gram.shape) != shape:
        raise ValueError(f"kernel must return (..., N, M) = {shape}; got {tuple(gram.shape)}")
    if bool((gram < 0).any()):
        raise ValueError(f"kernel must give weights >= 0 (a Nadaraya–Watson average); got a minimum of "
                         f"{gram.min().item():.3g} — qᵀk or identity features can be negative: use exp_kernel "
                         "or a positive feature map (elu+1, favor+)")
    if bool(torch.isinf(gram).any()):
        raise ValueError("kernel must give finite weights; got inf — stabilise it (e.g. subtract each row's "
                         "max score before exp, as exp_kernel does)")
    if bool(torch.isnan(gram).any()) and bool(torch.isfinite(q).all()) and bool(torch.isfinite(k).all()):
        raise ValueError("kernel gave NaN weights for finite q and k")


def kernel_smoother(q, k, v, kernel, *, causal=False, return_weights=False):
    """Nadaraya–Watson: out_i = Σ_j κ(q_i, k_j) v_j / Σ_j κ(q_i, k_j).

    Args:
        q: (..., N, d) query points; k: (..., M, d) key points; v: (..., M, d_v) values.
        kernel: callable (q, k) -> (..., N, M) non-negative weights, of the dtype it is given
            (float32 for half-precision inputs).
        causal: only keys j <= i count (needs N == M). A kernel with ``takes_mask = True``
            (exp_kernel, gaussian_kernel) is called as kernel(q, k, mask) and stabilises each row
            over the keys it may see, so a future key never changes a past row; any other kernel
            is called as kernel(q, k) and its weights above the diagonal are set to 0.
        return_weights: also return the row-normalised weights (..., N, M).

    Rows whose weights are all zero (e.g. an empty boxcar) give output 0. Negative, infinite or
    wrongly-typed weights are refused (see the module docstring).
    """
    check_bool(causal, "causal")
    check_bool(return_weights, "return_weights")
    check_qkv(q, k, v, causal=causal)
    if not callable(kernel):
        raise TypeError(f"kernel must be a callable (q, k) -> (..., N, M); got {type(kernel).__name__}")
    n, m = q.shape[-2], k.shape[-2]
    work = compute_dtype(q.dtype)
    check_dense_budget((*q.shape[:-2], n, m), work, "kernel_smoother's (..., N, M) Gram matrix",
                       "use linear_attention with a feature map for long sequences")
    qw, kw = q.to(work), k.to(work)
    mask = causal_mask(n, m, q.device) if causal else None  # (N, M) or None
    gram = kernel(qw, kw, mask) if getattr(kernel, "takes_mask", False) else kernel(qw, kw)  # (..., N, M)
    _check_gram(gram, qw, kw, (*q.shape[:-2], n, m), work)
    if causal:
        gram = gram.masked_fill(~mask, 0.0)  # (..., N, M) lower-triangular
    total = gram.sum(-1, keepdim=True)  # (..., N, 1)
    weights = safe_divide(gram, total, 0.0)  # (..., N, M); an all-zero row stays 0
    out = weighted_sum(weights, v.to(work)).to(q.dtype)  # (..., N, M) @ (..., M, d_v) -> (..., N, d_v)
    return (out, weights.to(q.dtype)) if return_weights else out
