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

from ._checks import check_dense_budget, safe_divide

__all__ = ["chunkwise_form", "causal_product", "tril_product", "chunk_len"]


def chunk_len(n_tokens: int, chunk_size: int) -> int:
    """The chunk length actually used: C = min(chunk_size, N) (a chunk longer than N only pads)."""
    return min(chunk_size, n_tokens)


def check_chunk_budget(fq: torch.Tensor, v: torch.Tensor, c: int) -> None:
    """Raise MemoryBudgetError before the (..., n·C, C) blocks or (..., n, d_φ, d_v) states exceed the budget."""
    lead, n_chunks = fq.shape[:-2], -(-fq.shape[-2] // c)
    check_dense_budget((*lead, n_chunks * c, c), fq.dtype, "the chunkwise form's (..., N, C) intra-chunk blocks",
                       "use a smaller chunk_size")
    check_dense_budget((*lead, n_chunks, fq.shape[-1], v.shape[-1]), fq.dtype,
                       "the chunkwise form's (..., N/C, d_φ, d_v) chunk states", "use a larger chunk_size")


# Building blocks --------------------------------------------------------------------------------
def _chunk(x: torch.Tensor, c: int) -> torch.Tensor:
    """Split into chunks, zero-padding N up to a multiple of C: (..., N, e) -> (..., n, C, e)."""
    pad = -x.shape[-2] % c
    if pad:
        x = torch.cat([x, x.new_zeros(*x.shape[:-2], pad, x.shape[-1])], dim=-2)  # zero rows add nothing
    return x.unflatten(-2, (x.shape[-2] // c, c))  # (..., n, C, e)


def _unchunk(x: torch.Tensor, n_tokens: int) -> torch.Tensor:
    """(..., n, C, e) -> (..., N, e), dropping the padding rows."""
    return x.flatten(-3, -2)[..., :n_tokens, :]


# How chunk states are carried: "cumsum" (loop-free), "loop", or "auto": cumsum on a GPU, where a loop
# over N/C chunks is launch-bound, and under torch.compile, which would unroll the loop (measured on a
# 2-core CPU, B=1, H=4, N=16k: compiled forward 34 ms with cumsum vs 165 ms with the loop, forward+backward
# 117 vs 749 ms); the loop in eager mode on a CPU, where torch's cumsum over a non-last dim is slow
# (measured: (1, 4, 256, 64, 64) float32 states, loop 2.5 ms, cumsum 90-130 ms).
CARRY = "auto"


def _carry_for(device: torch.device) -> str:
    """The carry "auto" picks: the loop only in eager mode on a CPU."""
    eager_cpu = device.type == "cpu" and not torch.compiler.is_compiling()
    return "loop" if eager_cpu else "cumsum"


def _scan(increments: torch.Tensor, dim: int, reverse: bool = False):
    """Carry a state over chunks: the states entering each chunk, and the total.

    increments (..., n, ...) along ``dim`` -> states (same shape), total (shape without ``dim``), where
    states[c] = Σ_{c' < c} increments[c'] (Σ_{c' > c} when reverse). Exclusive: a chunk never sees
    its own increment, so a NaN in chunk c reaches only the chunks after it.
    """
    carry = CARRY if CARRY != "auto" else _carry_for(increments.device)
    if carry not in ("cumsum", "loop"):
        raise ValueError(f"chunked.CARRY must be 'auto', 'cumsum' or 'loop'; got {CARRY!r}")
    return (_scan_loop if carry == "loop" else _scan_cumsum)(increments, dim, reverse)


def _scan_cumsum(increments: torch.Tensor, dim: int, reverse: bool = False):
    """The carry with one cumsum over the chunk axis (no loop): see _scan.

    The increments shifted by one chunk (a zero state first), summed in place: one new tensor.
    """
    if reverse:
        states, total = _scan_cumsum(increments.flip(dim), dim)  # in the flipped order, then back
        return states.flip(dim), total
    n = increments.shape[dim]
    states = torch.zeros_like(increments)  # (..., n, ...): states[0] = 0
    states.narrow(dim, 1, n - 1).copy_(increments.narrow(dim, 0, n - 1))  # states[c] = increments[c - 1]
    states.cumsum_(dim)  # states[c] = Σ_{c' < c} increments[c']
    return states, states.select(dim, -1) + increments.select(dim, -1)  # total (..., ...)


def _scan_loop(increments: torch.Tensor, dim: int, reverse: bool = False):
    """The carry as a loop over chunks, like the RNN it is: see _scan.

    In place, chunk by chunk: states[c] = states[c − 1] + increments[c − 1] (no new tensor per chunk).
    """
    states = torch.empty_like(increments)  # (..., n, ...)
    order = list(range(increments.shape[dim]))
    order = order[::-1] if reverse else order
    states.select(dim, order[0]).zero_()  # the state entering the first chunk visited
    for prev, c in zip(order, order[1:]):
        states.select(dim, c).copy_(states.select(dim, prev)).add_(increments.select(dim, prev))
    return states, states.select(dim, order[-1]) + increments.select(dim, order[-1])


def _matmul_add(acc: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """acc += a @ b in one BLAS call (beta = 1), batched over the leading dims; returns acc."""
    acc.flatten(0, -3).baddbmm_(a.flatten(0, -3), b.flatten(0, -3))  # (B, r, k) @ (B, k, c) -> (B, r, c)
    return acc


def _scores(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The masked intra-chunk block tril(Q'_c K'_cᵀ): (..., n, C, d_φ) x2 -> (..., n, C, C).

    tril_ overwrites the entries j > i (it does not multiply them by 0), so a NaN key at j
    never reaches a row i < j.
    """
    return (q @ k.transpose(-2, -1)).tril_()  # (..., n, C, d_φ) @ (..., n, d_φ, C) -> (..., n, C, C)


def tril_product(a: torch.Tensor, v: torch.Tensor, acc: torch.Tensor | None = None) -> torch.Tensor:
    """A V (acc + A V when acc is given, in place) for a lower-triangular A, where a non-finite v_j reaches only the rows i >= j.

    a (..., C, C) with a_ij = 0 for j > i, v (..., C, e), acc (..., C, e) -> (..., C, e). A plain matmul
    would add 0·NaN = NaN into every row i < j. Here the finite part goes through the matmul, and
    v − v (0 where v is finite, NaN where it is not) is added back by a cumsum over the rows,
    which leaves exact zeros above the first non-finite v_j and NaN from it on. Without autograd
    watching, v − v is written over the finite copy once the matmul is done: one (..., C, e) temporary.
    """
    finite = v if _surely_finite(v) else torch.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0)  # (..., C, e)
    out = a @ finite if acc is None else _matmul_add(acc, a, finite)  # (..., C, C) @ (..., C, e) -> (..., C, e)
    if finite is v:  # the common case in eager mode: nothing to guard, one matmul
        return out
    recorded = torch.is_grad_enabled() and (a.requires_grad or v.requires_grad)  # the matmul saved `finite`
    marks = v - v if recorded else torch.sub(v, v, out=finite)  # (..., C, e): 0 where finite, NaN where not
    return out.add_(marks.cumsum_(-2))  # (..., C, e): + 0 above a non-finite v_j, NaN from row j on


def _surely_finite(v: torch.Tensor) -> bool:
    """True when every entry of v is finite, decided by one read-only pass (a finite sum has finite terms).

    Eager mode only, and on a GPU only outside CUDA-graph capture: the answer is a host
    synchronisation (a few µs, plus one read of v), while the guarded path costs four more
    passes over a (..., N, d_v) tensor (about 2.3 GB of traffic at B = 4, H = 16, N = 16k, d_v = 64).
    Under torch.compile (no data-dependent branch), during capture and on meta tensors (shapes, no
    data) the guarded path always runs.
    A false "no" (a sum that overflows) only takes the guarded path.
    """
    if torch.compiler.is_compiling() or v.is_meta:  # no data to look at
        return False
    if v.is_cuda and torch.cuda.is_current_stream_capturing():
        return False
    return bool(torch.isfinite(v.sum()))


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
        z, z_final = _scan(k.sum(-2), -2)  # Δz (..., n, d_φ) -> states (..., n, d_φ), final (..., d_φ)
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
        _matmul_add(dq, gd, z.unsqueeze(-2))  # + (..., n, C, 1) @ (..., n, 1, d_φ)
        ds = _scan(q.transpose(-2, -1) @ g, -3, reverse=True)[0].add_(g_s.unsqueeze(-3))  # (..., n, d_φ, d_v)
        dz = _scan((gd.transpose(-2, -1) @ q).squeeze(-2), -2, reverse=True)[0].add_(g_z.unsqueeze(-2))  # (..., n, d_φ)
        dv = _scores(q, k).transpose(-2, -1) @ g  # recomputed block: (..., n, C, C) @ (..., n, C, d_v) -> (..., n, C, d_v)
        _matmul_add(dv, k, ds)  # + (..., n, C, d_φ) @ (..., n, d_φ, d_v)
        dk = (vv @ ds.transpose(-2, -1)).add_(dz.unsqueeze(-2))  # (..., n, C, d_v) @ (..., n, d_v, d_φ) + 1 dzᵀ
        del ds
        d = (g @ vv.transpose(-2, -1)).add_(gd).tril_()  # (..., n, C, d_v) @ (..., n, d_v, C) + g_den -> (..., n, C, C)
        _matmul_add(dk, d.transpose(-2, -1), q)  # + (..., n, C, C) @ (..., n, C, d_φ)
        _matmul_add(dq, d, k)  # + (..., n, C, C) @ (..., n, C, d_φ)
        return _unchunk(dq, n_tok), _unchunk(dk, n_tok), _unchunk(dv, n_tok), None


def _states(k: torch.Tensor, v: torch.Tensor):
    """The state entering each chunk and the final one: S_c = Σ_{c'<c} K'_{c'}ᵀ V_{c'}.

    k (..., n, C, d_φ), v (..., n, C, d_v) -> S (..., n, d_φ, d_v), S_final (..., d_φ, d_v).
    """
    return _scan(k.transpose(-2, -1) @ v, -3)  # ΔS (..., n, d_φ, C) @ (..., n, C, d_v) -> (..., n, d_φ, d_v)


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


def chunkwise_form(fq, fk, v, *, chunk_size=64, eps=1e-6, normalize=True):
    """Causal chunkwise: out_c = (Q'_c S_c + tril(Q'_c K'_cᵀ) V_c) / (Q'_c z_c + tril(Q'_c K'_cᵀ) 1 + eps).

    Within a chunk of C tokens it is the quadratic form; across chunks it carries the recurrent
    state S_c = Σ_{c'<c} K'_{c'}ᵀ V_{c'} (z_c likewise), all chunks at once. N need not be a
    multiple of C; C is clamped to N.
    Shapes: fq, fk (..., N, d_φ), v (..., N, d_v) -> out (..., N, d_v), final (S (..., d_φ, d_v), z (..., d_φ)).
    """
    num, den, s, z = _product(fq, fk, v, chunk_size)  # (..., N, d_v), (..., N), final S, z
    out = _Normalize.apply(num, den.unsqueeze(-1), eps) if normalize else num  # (..., N, d_v)
    return out, (s, z)
