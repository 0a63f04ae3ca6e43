"""The fast chunkwise form: causal linear attention in chunks, with a hand-written backward.

``linear.chunkwise_reference`` states the algorithm as a loop over chunks. This module computes
the same numbers with a fixed number of batched operations, whatever N/C, so that a GPU runs a
few large kernels instead of one small kernel per chunk. Split N tokens into n = N/C chunks of C:

1. per-chunk increments   ΔS_c = K'_cᵀ V_c,  Δz_c = K'_cᵀ 1             (..., n, d_φ, d_v), (..., n, d_φ)
2. every chunk's starting state by one exclusive cumsum over the chunk axis:
                          S_c = Σ_{c'<c} ΔS_c',  z_c = Σ_{c'<c} Δz_c'
3. all chunks at once     num_c = Q'_c S_c + tril(Q'_c K'_cᵀ) V_c        (one batched matmul each)
                          den_c = Q'_c z_c + tril(Q'_c K'_cᵀ) 1

The denominator is the same product with V replaced by a column of ones; it is computed on its
own (a row sum and a matrix-vector product), so no [V, 1] copy is ever built.

Cost: time N(4·d_φ·d_v + 4·C·d) like the loop; extra memory N·C for the intra-chunk blocks plus
(N/C)·d_φ·d_v for the chunk states (C times less than the prefix form, and the price of not looping).
"""
from __future__ import annotations

import torch

from ._blocks import chunk as _chunk
from ._blocks import chunk_len, matmul_add, scan, tril_product
from ._blocks import unchunk as _unchunk
from ._checks import check_dense_budget, safe_divide

__all__ = ["chunkwise_form", "causal_product", "check_chunk_budget"]


def check_chunk_budget(fq: torch.Tensor, v: torch.Tensor, c: int) -> None:
    """Raise MemoryBudgetError before the (..., n·C, C) blocks or (..., n, d_φ, d_v) states exceed the budget."""
    lead, n_chunks = fq.shape[:-2], -(-fq.shape[-2] // c)
    check_dense_budget((*lead, n_chunks * c, c), fq.dtype, "the chunkwise form's (..., N, C) intra-chunk blocks",
                       "use a smaller chunk_size")
    check_dense_budget((*lead, n_chunks, fq.shape[-1], v.shape[-1]), fq.dtype,
                       "the chunkwise form's (..., N/C, d_φ, d_v) chunk states", "use a larger chunk_size")


# Building blocks --------------------------------------------------------------------------------
def _scores(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The masked intra-chunk block tril(Q'_c K'_cᵀ): (..., n, C, d_φ) x2 -> (..., n, C, C).

    tril_ overwrites the entries j > i (it does not multiply them by 0), so a NaN key at j
    never reaches a row i < j.
    """
    return (q @ k.transpose(-2, -1)).tril_()  # (..., n, C, d_φ) @ (..., n, d_φ, C) -> (..., n, C, C)


# The autograd Function -----------------------------------------------------------------------------
class _CausalProduct(torch.autograd.Function):
    """num_i = Σ_{j<=i} (q'_i·k'_j) v_j, den_i = Σ_{j<=i} q'_i·k'_j, and the final S, z; chunked, loop-free.

    Forward, all chunks c at once (S_c, z_c = the state entering chunk c, by an exclusive cumsum):
        num_c = Q'_c S_c + tril(Q'_c K'_cᵀ) V_c,   den_c = Q'_c z_c + tril(Q'_c K'_cᵀ) 1
    The gradient of a causal product is itself two causal products, one running backwards in
    time (G = ∂L/∂num, g_den = ∂L/∂den, G_S = ∂L/∂S_final, g_z = ∂L/∂z_final); with
    D_c = tril(G_c V_cᵀ + g_den 1ᵀ) (the denominator is the product with V -> 1):
        dQ'_c = D_c K'_c + G_c S_cᵀ + g_den z_cᵀ                      (forward state S_c, z_c)
        dK'_c = D_cᵀ Q'_c + V_c dS_cᵀ + 1 dz_cᵀ                       (reverse state dS_c, dz_c)
        dV_c  = tril(Q'_c K'_cᵀ)ᵀ G_c + K'_c dS_c
    with dS_c = G_S + Σ_{c'>c} Q'_{c'}ᵀ G_{c'} and dz_c = g_z + Σ_{c'>c} Q'_{c'}ᵀ g_den: the state's
    twins, carried from the end by one reverse exclusive cumsum.
    Memory: only Q', K', V and the small z_c are kept for backward; the chunk states S_c (as large as
    V at C = d_φ) and the C×C blocks are recomputed there, as FLA's kernels do.
    """

    @staticmethod
    def forward(ctx, fq, fk, v, c):
        n_tok = fq.shape[-2]
        q, k, vv = _chunk(fq, c), _chunk(fk, c), _chunk(v, c)  # (..., n, C, d_φ | d_v)
        s, s_final = _states(k, vv)  # (..., n, d_φ, d_v), (..., d_φ, d_v)
        z, z_final = scan(k.sum(-2), -2)  # Δz (..., n, d_φ) -> states (..., n, d_φ), final (..., d_φ)
        num = q @ s  # the past: (..., n, C, d_φ) @ (..., n, d_φ, d_v) -> (..., n, C, d_v)
        del s  # freed before the C×C blocks exist
        a = _scores(q, k)  # (..., n, C, C)
        den = a.sum(-1) + (q @ z.unsqueeze(-1)).squeeze(-1)  # (..., n, C) + (..., n, C, d_φ) @ (..., n, d_φ, 1)
        tril_product(a, vv, acc=num)  # + this chunk: (..., n, C, C) @ (..., n, C, d_v)
        ctx.save_for_backward(q, k, vv, z)
        ctx.n_tok = n_tok
        return _unchunk(num, n_tok), _unchunk(den.unsqueeze(-1), n_tok).squeeze(-1), s_final, z_final

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_num, g_den, g_s, g_z):
        q, k, vv, z = ctx.saved_tensors
        n_tok, c = ctx.n_tok, q.shape[-2]
        g = _chunk(g_num.contiguous(), c)  # (..., n, C, d_v)
        gd = _chunk(g_den.unsqueeze(-1), c)  # (..., n, C, 1)
        # in the order that keeps the fewest (..., N, ·) tensors alive at once: g, dq, dk, dv and one more
        dq = g @ _states(k, vv)[0].transpose(-2, -1)  # recomputed S_c: (..., n, C, d_v) @ (..., n, d_v, d_φ) -> (..., n, C, d_φ)
        matmul_add(dq, gd, z.unsqueeze(-2))  # + (..., n, C, 1) @ (..., n, 1, d_φ)
        ds = scan(q.transpose(-2, -1) @ g, -3, reverse=True)[0].add_(g_s.unsqueeze(-3))  # (..., n, d_φ, d_v)
        dz = scan((gd.transpose(-2, -1) @ q).squeeze(-2), -2, reverse=True)[0].add_(g_z.unsqueeze(-2))  # (..., n, d_φ)
        dv = _scores(q, k).transpose(-2, -1) @ g  # recomputed block: (..., n, C, C) @ (..., n, C, d_v) -> (..., n, C, d_v)
        matmul_add(dv, k, ds)  # + (..., n, C, d_φ) @ (..., n, d_φ, d_v)
        dk = (vv @ ds.transpose(-2, -1)).add_(dz.unsqueeze(-2))  # (..., n, C, d_v) @ (..., n, d_v, d_φ) + 1 dzᵀ
        del ds
        d = (g @ vv.transpose(-2, -1)).add_(gd).tril_()  # (..., n, C, d_v) @ (..., n, d_v, C) + g_den -> (..., n, C, C)
        matmul_add(dk, d.transpose(-2, -1), q)  # + (..., n, C, C) @ (..., n, C, d_φ)
        matmul_add(dq, d, k)  # + (..., n, C, C) @ (..., n, C, d_φ)
        return _unchunk(dq, n_tok), _unchunk(dk, n_tok), _unchunk(dv, n_tok), None


def _states(k: torch.Tensor, v: torch.Tensor):
    """The state entering each chunk and the final one: S_c = Σ_{c'<c} K'_{c'}ᵀ V_{c'}.

    k (..., n, C, d_φ), v (..., n, C, d_v) -> S (..., n, d_φ, d_v), S_final (..., d_φ, d_v).
    """
    return scan(k.transpose(-2, -1) @ v, -3)  # ΔS (..., n, d_φ, C) @ (..., n, C, d_v) -> (..., n, d_φ, d_v)


class _Normalize(torch.autograd.Function):
    """out = num / (den + eps) by _checks.safe_divide, with a backward that holds one temporary.

    ∂L/∂num = G / (den + eps),  ∂L/∂den = −Σ_e (∂L/∂num ⊙ num) / (den + eps)   (0 where the clamp is active).
    Autograd's own division backward builds three (..., N, d_v) temporaries while every saved
    tensor of the chunked product is still alive: at long N that was the peak of forward+backward.
    num (..., N, d_v), den (..., N, 1) -> out (..., N, d_v).
    """

    @staticmethod
    def forward(ctx, num, den, eps):
        ctx.save_for_backward(num, den)
        ctx.eps = eps
        return safe_divide(num, den, eps)  # (..., N, d_v)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        num, den = ctx.saved_tensors
        tiny = torch.finfo(den.dtype).tiny
        shifted = den + ctx.eps  # (..., N, 1)
        g_num = g / shifted.clamp_min(tiny)  # (..., N, d_v)
        g_den = (g_num * num).sum(-1, keepdim=True).neg_().div_(shifted.clamp_min(tiny))  # (..., N, 1)
        return g_num, g_den.masked_fill_(shifted < tiny, 0), None


# Public entry points -------------------------------------------------------------------------------
def _product(fq, fk, v, chunk_size):
    """Clamp C to N, guard the memory, run the Function: -> num, den, S, z."""
    c = chunk_len(fq.shape[-2], chunk_size)
    check_chunk_budget(fq, v, c)
    return _CausalProduct.apply(fq, fk, v, c)


def causal_product(fq, fk, v, chunk_size=64):
    """Unnormalised causal linear attention, chunkwise, and the final state.

    out_i = Σ_{j<=i} (q'_i·k'_j) v_j and S = Σ_j k'_j v_jᵀ:
    fq, fk (..., N, d_φ), v (..., N, e) -> out (..., N, e), S (..., d_φ, e).
    Extra memory N·C + (N/C)·d_φ·e — never N² nor N·d_φ·e for C > 1.
    """
    num, _, s, _ = _product(fq, fk, v, chunk_size)
    return num, s


def chunkwise_form(fq, fk, v, *, chunk_size=64, eps=1e-6, normalize=True, initial_state=None):
    """Causal chunkwise: out_c = (Q'_c S_c + tril(Q'_c K'_cᵀ) V_c) / (Q'_c z_c + tril(Q'_c K'_cᵀ) 1 + eps).

    Within a chunk of C tokens it is the quadratic form; across chunks it carries the recurrent
    state S_c = S₀ + Σ_{c'<c} K'_{c'}ᵀ V_{c'} (z_c likewise), all chunks at once. N need not be a
    multiple of C; C is clamped to N. An initial state (S₀, z₀) adds Q'S₀ and Q'z₀ to every row
    (plain autograd: two matmuls) and to the final state.
    Shapes: fq, fk (..., N, d_φ), v (..., N, d_v) -> out (..., N, d_v), final (S (..., d_φ, d_v), z (..., d_φ)).
    """
    num, den, s, z = _product(fq, fk, v, chunk_size)  # (..., N, d_v), (..., N), final S, z
    if initial_state is not None:
        s0, z0 = initial_state
        num = num + fq @ s0  # (..., N, d_φ) @ (..., d_φ, d_v) -> (..., N, d_v): the earlier part, read by each row
        den = den + (fq @ z0.unsqueeze(-1)).squeeze(-1)  # (..., N)
        s, z = s + s0, z + z0
    out = _Normalize.apply(num, den.unsqueeze(-1), eps) if normalize else num  # (..., N, d_v)
    return out, (s, z)
