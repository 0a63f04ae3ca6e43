"""Optional yardstick: the flash-linear-attention (FLA) Triton kernels, when the package imports.

``pip install fla-core`` (the ``[fla]`` extra: the flash-linear-attention package's core) on a machine with a CUDA GPU adds
two methods to the bench: ``fla_chunk`` (``fla.ops.linear_attn.chunk_linear_attn``) and
``fla_fused_chunk`` (``fused_chunk_linear_attn``).  They get the same (B, H, N, d) inputs as our
forms; the callable applies the same feature map φ = elu+1, moves to FLA's (B, N, H, d) layout
(a view) and normalises like ours:

    out_i = φ(q_i)ᵀ Σ_{j<=i} φ(k_j) v_jᵀ / φ(q_i)ᵀ Σ_{j<=i} φ(k_j)

Before a FLA method is timed its output is checked against our chunkwise form on the same inputs
(relative error within bf16/tf32 tolerance): a kernel that computes something else is never timed.
Never a hard dependency: without the package (or without a GPU) these methods are reported as
unavailable and the rest of the bench runs.
"""

from __future__ import annotations

import importlib
from typing import Callable

import torch
import torch.nn.functional as F

from ._optional import guards

__all__ = ["available", "unavailable_reason", "require", "attention_fn", "check_agrees", "TOLERANCE"]

#: relative error (‖ours − FLA‖ / ‖ours‖) allowed per input dtype: FLA computes in bf16/tf32 tiles
TOLERANCE = {torch.float32: 1e-2, torch.bfloat16: 3e-2, torch.float16: 2e-2, torch.float64: 1e-2}
_KERNELS = {"fla_chunk": "chunk_linear_attn", "fla_fused_chunk": "fused_chunk_linear_attn"}


def _module():
    """fla.ops.linear_attn, or None when the package does not import."""
    try:
        return importlib.import_module("fla.ops.linear_attn")
    except Exception:  # noqa: BLE001 - missing package, missing triton, a broken install: all "unavailable"
        return None


def unavailable_reason(device="cpu") -> str | None:
    """None when the FLA methods can run on ``device``; else one sentence saying why not."""
    if torch.device(device).type != "cuda":
        return f"the FLA methods need a CUDA device (Triton kernels); got device {str(device)!r}"
    if _module() is None:
        return ("the FLA methods need the flash-linear-attention package: pip install fla-core "
                "(the [fla] extra; on a machine with a CUDA GPU)")
    return None


available, require = guards(unavailable_reason)


def attention_fn(method: str) -> Callable:
    """f(q, k, v) -> out, (B, H, N, d) in and out, running FLA's kernel ``method`` on φ(q), φ(k), v."""
    if method not in _KERNELS:
        raise ValueError(f"method must be one of {list(_KERNELS)}; got {method!r}")

    def fla_attention(q, k, v):
        kernel = getattr(_module(), _KERNELS[method])
        fq, fk = F.elu(q) + 1, F.elu(k) + 1  # (B, H, N, d) each, φ = elu+1 as in our forms
        to_fla = lambda t: t.transpose(1, 2)  # noqa: E731  (B, H, N, d) -> (B, N, H, d), a view
        out, _ = kernel(to_fla(fq), to_fla(fk), to_fla(v), scale=1.0, normalize=True)  # (B, N, H, d)
        return out.transpose(1, 2)  # (B, H, N, d)
    return fla_attention


def check_agrees(f: Callable, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, chunk_size: int = 64) -> float:
    """Relative error of ``f(q, k, v)`` against our chunkwise form; ValueError above :data:`TOLERANCE`."""
    from ..linear import linear_attention

    with torch.no_grad():
        ours = linear_attention(q.float(), k.float(), v.float(), "elu+1", causal=True, form="chunkwise",
                                chunk_size=chunk_size)  # (B, H, N, d) in float32
        theirs = f(q, k, v).float()  # (B, H, N, d)
    err = ((theirs - ours).norm() / ours.norm().clamp_min(1e-30)).item()
    tol = TOLERANCE.get(q.dtype, 1e-2)
    if not err <= tol:  # also catches NaN
        raise ValueError(f"FLA output differs from ours: relative error {err:.2e} > tolerance {tol:.0e} "
                         f"({q.dtype}); not timed")
    return err
