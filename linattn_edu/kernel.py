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


def _nan_as(x: torch.Tensor, value: float) -> torch.Tensor:
    """x with NaN replaced by ``value``, so a row max/min ignores a NaN token (it stays in x itself)."""
    return x.masked_fill(torch.isnan(x), value)  # same shape as x


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
        row_max = _nan_as(scores, float("-inf")).amax(-1, keepdim=True)  # (..., N, 1), NaN keys ignored
        row_max = row_max.masked_fill(~torch.isfinite(row_max), 0.0)  # (..., N, 1)
        return torch.exp(scores - row_max)  # (..., N, M), row max 1

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
        row_min = _nan_as(d2, float("inf")).amin(-1, keepdim=True)  # (..., N, 1), NaN keys ignored
        row_min = row_min.masked_fill(~torch.isfinite(row_min), 0.0)  # (..., N, 1)
        return torch.exp(-(d2 - row_min) / (2 * h * h))  # (..., N, M), row max 1

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
        causal: only keys j <= i count (needs N == M).
        return_weights: also return the row-normalised weights (..., N, M).

    Rows whose weights are all zero (e.g. an empty boxcar) give output 0. Negative, infinite or
    wrongly-typed weights are refused (see the module docstring). A causal smoother is only as
    causal as its kernel: exp_kernel and gaussian_kernel stabilise each row with its max over
    *all* keys, so a future key of huge score can shrink a past row's weights to 0 (output 0).
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
    gram = kernel(qw, kw)  # (..., N, M)
    _check_gram(gram, qw, kw, (*q.shape[:-2], n, m), work)
    if causal:
        gram = gram.masked_fill(~causal_mask(n, m, gram.device), 0.0)  # (..., N, M) lower-triangular
    total = gram.sum(-1, keepdim=True)  # (..., N, 1)
    weights = safe_divide(gram, total, 0.0)  # (..., N, M); an all-zero row stays 0
    out = weighted_sum(weights, v.to(work)).to(q.dtype)  # (..., N, M) @ (..., M, d_v) -> (..., N, d_v)
    return (out, weights.to(q.dtype)) if return_weights else out
