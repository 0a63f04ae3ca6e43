"""Optional yardstick: the pure-PyTorch Gated DeltaNet that Hugging Face transformers runs on a CPU.

Qwen3-Next and Qwen3.5 use Gated DeltaNet layers; without their Triton kernels (every CPU),
transformers runs ``torch_chunk_gated_delta_rule`` from its ``qwen3_next`` model code. With the
``transformers`` package installed the bench gains the method ``hf_gated_delta``, on the same
(B, H, N, d) inputs and seeded gates as ``gated_delta_chunkwise``. Conventions, written down:

* layout: transformers takes (B, N, H, d) and returns (B, N, H, d_v); we move to it with a view;
* pre-processing, as its layer calls it (``use_qk_l2norm_in_kernel=True``): q and k are L2-normalised
  as x·rsqrt(Σx² + 1e-6), and q is scaled by d^-½, inside the function, in float32;
* the same rule: S_t = exp(g_t)(I − β_t k_t k_tᵀ)S_{t−1} + β_t k_t v_tᵀ, out_t = S_tᵀ q_t, so with that
  pre-processing applied to our inputs, ``delta_rule_attention(q', k', v, beta, log_decay=g,
  normalize_keys=False)`` computes the same numbers (checked before timing, float64 agreement ~1e-15).

Never a dependency: without the package the method is reported as unavailable.
"""
from __future__ import annotations

import importlib
from typing import Callable

import torch

from ._optional import guards

__all__ = ["available", "unavailable_reason", "require", "attention_fn", "check_agrees", "reference_inputs",
           "version"]


def _module():
    """transformers' qwen3_next modelling module, or None when it does not import."""
    try:
        return importlib.import_module("transformers.models.qwen3_next.modeling_qwen3_next")
    except Exception:  # noqa: BLE001 - missing package or a version without qwen3_next: "unavailable"
        return None


def version() -> str | None:
    """The installed transformers version, or None."""
    try:
        return importlib.import_module("transformers").__version__
    except Exception:  # noqa: BLE001
        return None


def unavailable_reason(device="cpu") -> str | None:
    """None when ``hf_gated_delta`` can run; else one sentence saying why not."""
    if _module() is None:
        return "the hf_gated_delta method needs Hugging Face transformers with qwen3_next: pip install transformers"
    return None


available, require = guards(unavailable_reason)


def attention_fn(chunk_size: int, log_decay: torch.Tensor, beta: torch.Tensor) -> Callable:
    """f(q, k, v) -> out, (B, H, N, d) in and out, through transformers' torch_chunk_gated_delta_rule."""
    def hf_gated_delta(q, k, v):
        fn = _module().torch_chunk_gated_delta_rule
        to_hf = lambda t: t.transpose(1, 2)  # noqa: E731  (B, H, N, ·) -> (B, N, H, ·), a view
        out, _ = fn(to_hf(q), to_hf(k), to_hf(v), to_hf(log_decay.unsqueeze(-1)).squeeze(-1),
                    to_hf(beta.unsqueeze(-1)).squeeze(-1), chunk_size=chunk_size, use_qk_l2norm_in_kernel=True)
        return out.transpose(1, 2)  # (B, H, N, d_v)
    return hf_gated_delta


def reference_inputs(q: torch.Tensor, k: torch.Tensor):
    """transformers' pre-processing applied to our inputs: q' = q·rsqrt(Σq² + 1e-6)·d^-½, k' = k·rsqrt(Σk² + 1e-6)."""
    norm = lambda x: x * torch.rsqrt((x * x).sum(-1, keepdim=True) + 1e-6)  # noqa: E731
    return norm(q) * q.shape[-1] ** -0.5, norm(k)  # (B, H, N, d) each


def check_agrees(f: Callable, q, k, v, log_decay, beta, *, chunk_size: int = 64) -> float:
    """Relative error of f against delta_rule_attention on the pre-processed inputs; ValueError above 1e-4."""
    from ..delta import delta_rule_attention

    with torch.no_grad():
        qr, kr = reference_inputs(q.float(), k.float())
        ours = delta_rule_attention(qr, kr, v.float(), beta.float(), log_decay=log_decay.float(),
                                    normalize_keys=False, chunk_size=chunk_size)  # (B, H, N, d_v)
        theirs = f(q, k, v).float()
    err = ((theirs - ours).norm() / ours.norm().clamp_min(1e-30)).item()
    if not err <= 1e-4:  # also catches NaN
        raise ValueError(f"transformers' gated delta rule differs from ours: relative error {err:.2e} > 1e-4; "
                         "not timed")
    return err
