"""Forgetting attention (FoX) and the sigmoid output gate: gates reach softmax attention too.

The Forgetting Transformer (FoX; Lin et al., 2025) keeps softmax attention and adds a data-dependent forget gate
f_t = σ(·) ∈ (0, 1] to its logits. Key j's score at query i is lowered by every forget gate
written since j:

    s_ij = q_iᵀ k_j · scale + Σ_{s=j+1..i} log f_s        (j <= i; −∞ for j > i)
    out_i = Σ_j softmax_j(s_i·) v_j

so the weight of key j is multiplied by Π_{s=j+1..i} f_s before the softmax renormalises —
the same decay mask exp(G_i − G_j) that gated linear attention (GLA, Mamba-2) puts on its
linear scores, here on softmax's. With log f = 0 it is plain causal softmax attention.

The (..., N, N) bias G_i − G_j is a *segment sum*: a cumsum of a masked copy of log f (Mamba-2's
segsum, ``linattn_edu.gated.segment_sum``), never the difference of two long cumulative sums
(which loses every digit when Σ log f reaches −1e4 and overflows if exponentiated).

Gated attention (Qiu et al., 2025; the gate in Qwen3-Next / Qwen3.5 attention layers) gates the
*output* instead: out ⊙ σ(x W_θ), one sigmoid per channel (or per head) computed from the layer's
input. :func:`output_gate` is that one line.

Conventions in the field's reference code (flash-linear-attention ``fla/ops/forgetting_attn/naive.py``,
``naive_forgetting_attn(q, k, v, g, scale=None, window_size=None)``):

- layout [B, T, H, D] (time second); ours is SDPA's (..., N, d) with any leading dims;
- ``g`` is log f, shape [B, T, HQ], added as ``cumsum(g)_i − cumsum(g)_j`` (a difference of two
  full-length cumsums, in float32) and masked with −∞ above the diagonal; here the same bias
  comes from a segment sum, and the causal mask is applied with ``where`` *after* the bias;
- scale defaults to D^−1/2 in both; FLA also offers a sliding window and GQA, which this
  function leaves out (see ``sliding_window_attention`` for windows).
"""
from __future__ import annotations

import torch

from ._checks import (check_dense_budget, check_log_decay, check_number, check_qkv, check_tensor, compute_dtype,
                      weighted_sum)
from ._blocks import segment_sum

__all__ = ["forgetting_attention", "forgetting_bias", "output_gate"]


def _check_log_forget(log_forget, q) -> None:
    """log_forget must be (..., N) == q.shape[:-1], on q's device, finite and <= 0 (the library's log-decay check)."""
    check_log_decay(log_forget, q.shape[:-1], None, q.device, "log_forget")


def forgetting_bias(log_forget: torch.Tensor) -> torch.Tensor:
    """The FoX logit bias D_ij = Σ_{s=j+1..i} log f_s for j <= i, −∞ for j > i.

    log_forget (..., N) -> (..., N, N). A segment sum (masked cumsum), so each entry is summed
    over exactly its own segment; the diagonal is 0 (a key never forgets itself).
    """
    return segment_sum(log_forget)  # (..., N, N)


def forgetting_attention(q, k, v, log_forget, *, scale=None):
    """Forgetting attention (FoX): causal softmax with a forget-gate bias on the logits.

        s_ij = q_iᵀk_j · scale + Σ_{s=j+1..i} log f_s  (j <= i),   out_i = Σ_{j<=i} softmax_j(s_i·) v_j

    Args:
        q, k: (..., N, d); v: (..., N, d_v).
        log_forget: (..., N), entries finite and <= 0: log f_t, e.g. ``F.logsigmoid(x W_f)``.
            All zeros gives causal softmax attention.
        scale: multiplies q·k; default 1/√d.

    Returns out (..., N, d_v) in q's dtype. Half-precision inputs are computed in float32. The
    (..., N, N) score matrix is materialised (guarded by the memory budget). The causal mask is
    applied with ``where`` after the bias, and a weight of exactly 0 never multiplies a value, so a
    NaN at token t reaches only rows i >= t. Every row keeps its diagonal (bias 0), so even the
    strongest valid gate (log f = −1e30) gives a finite answer: such a row attends to itself.
    """
    check_qkv(q, k, v, causal=True)
    _check_log_forget(log_forget, q)
    if scale is None:
        scale = q.shape[-1] ** -0.5
    else:
        check_number(scale, "scale (or None for 1/sqrt(d))")
    n = q.shape[-2]
    work = compute_dtype(q.dtype)
    check_dense_budget((*q.shape[:-2], n, n), work, "forgetting_attention's (..., N, N) score matrix",
                       "use a shorter sequence or fewer heads per call")
    qw, kw, vw, lf = q.to(work), k.to(work), v.to(work), log_forget.to(work)
    scores = (qw @ kw.transpose(-2, -1)) * float(scale)  # (..., N, d) @ (..., d, N) -> (..., N, N)
    causal = torch.ones(n, n, dtype=torch.bool, device=q.device).tril()  # (N, N): j <= i
    logits = torch.where(causal, scores + forgetting_bias(lf), -torch.inf)  # (..., N, N); a NaN key stays right of row t
    weights = torch.softmax(logits, dim=-1)  # (..., N, N): stable (max subtracted); the diagonal is never −∞
    return weighted_sum(weights, vw).to(q.dtype)  # (..., N, N) @ (..., N, d_v) -> (..., N, d_v)


def output_gate(out, gate_logits):
    """Gated attention's output gate: out ⊙ σ(gate_logits), elementwise (per channel) or per head.

    out (..., N, d_v); gate_logits (..., N, d_v) or (..., N, 1) (one gate per head and token),
    usually x W_θ from the layer's input. Returns (..., N, d_v) in out's dtype (computed in float32
    for half inputs). A gate of 0 (logit → −∞) closes the channel; the gate adds a non-linearity
    and lets a head output ≈ 0 without an attention sink.
    """
    check_tensor(out, "out")
    check_tensor(gate_logits, "gate_logits")
    if tuple(gate_logits.shape) not in (tuple(out.shape), (*out.shape[:-1], 1)):
        raise ValueError(f"gate_logits must have shape {tuple(out.shape)} (out's) or {(*out.shape[:-1], 1)} "
                         f"(one gate per head); got {tuple(gate_logits.shape)}")
    if gate_logits.device != out.device:
        raise ValueError(f"gate_logits must be on {out.device}; got {gate_logits.device}")
    work = compute_dtype(out.dtype)
    return (out.to(work) * torch.sigmoid(gate_logits.to(work))).to(out.dtype)  # (..., N, d_v)
