"""Building blocks every chunked rule shares: chunks, segment sums, gate floors, causal products, carries.

This module imports only torch: every rule (linear.py, gated.py, delta.py, …) stands one floor above
it and none borrows from a sibling. What lives here:

* chunking      ``chunk(x, C)`` (..., N, e) -> (..., n, C, e), zero rows pad N up to n·C; ``unchunk``;
                ``chunk_len`` (C clamped to N); ``padded_block_len`` (C rounded up to a power of two);
                ``chunks_first`` (chunk axis first, contiguous).
* decay math    ``segment_sum(g)[i, j] = Σ_{j<t<=i} g_t`` (−inf above the diagonal), ``floor_log_decay``
                (a log-decay below log(tiny) is a decay of 0 in that dtype: clamp it there so that no
                cumulative sum reaches −inf and no difference is −inf − (−inf) = NaN).
* causality     ``tril_product(A, V)`` = A V for a lower-triangular A where a NaN/inf value v_j
                reaches only rows i >= j (0·NaN = NaN would reach every row of a plain matmul);
                ``unit_tril_inverse(L)`` = (I + L)⁻¹ with the same property (the delta rules' UT transform).
* carries       ``scan`` (S_c = Σ_{c'<c} ΔS_c', the linear rule's carry, loop or cumsum),
                ``decayed_scan`` (S_c = keep_{c−1} ⊙ S_{c−1} + ΔS_{c−1}, the gated rules' carry) and
                the :func:`carry` context manager that picks how they run.
"""
from __future__ import annotations

import contextlib
import math

import torch

__all__ = [
    "chunk_len", "padded_block_len", "chunk", "unchunk", "chunks_first", "zero_state", "segment_sum", "floor_log_decay",
    "tril_product", "channel_decayed_scores", "unit_tril_inverse",
    "surely_finite", "matmul_add", "CARRIES", "carry", "carry_mode", "scan", "decayed_scan",
]


# Chunking --------------------------------------------------------------------------------------------
def chunk_len(n_tokens: int, chunk_size: int) -> int:
    """The chunk length actually used: C = min(chunk_size, N) (a chunk longer than N only pads)."""
    return min(chunk_size, n_tokens)


def padded_block_len(c: int) -> int:
    """C rounded up to a power of two: the length a chunk is padded to by the block tree
    (:func:`channel_decayed_scores`) and by :func:`unit_tril_inverse`."""
    return 1 << max(c - 1, 0).bit_length()


def chunk(x: torch.Tensor, c: int) -> torch.Tensor:
    """Split into chunks, zero-padding N up to a multiple of C: (..., N, e) -> (..., n, C, e)."""
    pad = -x.shape[-2] % c
    if pad:
        x = torch.cat([x, x.new_zeros(*x.shape[:-2], pad, x.shape[-1])], dim=-2)  # zero rows add nothing
    return x.unflatten(-2, (x.shape[-2] // c, c))  # (..., n, C, e)


def unchunk(x: torch.Tensor, n_tokens: int) -> torch.Tensor:
    """(..., n, C, e) -> (..., N, e), dropping the padding rows."""
    return x.flatten(-3, -2)[..., :n_tokens, :]


def batch_chunks(x: torch.Tensor, c: int) -> torch.Tensor:
    """(..., N, e) -> (B, n, C, e), B = the leading dims flattened: a view of x when N is a multiple of C.

    The view :func:`chunks_first` copies chunk-first; for loops that run on all chunks' blocks first:
    (B, n) merge into one batch dim, so a matmul over every chunk at once needs no copy, and
    ``unbind(1)`` hands the loop (B, C, e) views (batch stride n·C·e, which bmm reads in place) whose
    gradients autograd stacks once. Never write into it.
    """
    return chunk(x.reshape(-1, *x.shape[-2:]), c)  # (B, n, C, e)


def chunks_first(x: torch.Tensor, c: int) -> torch.Tensor:
    """(..., N, e) -> (n, B, C, e), B = the leading dims flattened, chunk axis first and contiguous.

    Each chunk is then one contiguous (B, C, e) block, and ``unbind(0)`` hands a loop over chunks
    views whose gradients autograd stacks once (indexing x[c] inside the loop would make autograd
    build one zero-filled, full-size gradient per chunk: a backward quadratic in N).
    """
    return batch_chunks(x, c).transpose(0, 1).contiguous()  # (B, n, C, e) -> (n, B, C, e)


def zero_state(fq: torch.Tensor, v: torch.Tensor, *, z: bool = True):
    """The empty state (S, z) = (0, 0) for features fq (..., N, d_φ) and values v (..., N, d_v).

    -> S (..., d_φ, d_v), z (..., d_φ) (None when ``z`` is False: a rule without a normaliser).
    """
    s = fq.new_zeros(*fq.shape[:-2], fq.shape[-1], v.shape[-1])  # (..., d_φ, d_v)
    return s, (fq.new_zeros(*fq.shape[:-2], fq.shape[-1]) if z else None)  # (..., d_φ)


# Decay math --------------------------------------------------------------------------------------------
def floor_log_decay(g: torch.Tensor) -> torch.Tensor:
    """Clamp a log-decay at log(tiny) of its dtype: g (...) -> (...), unchanged where g >= log(tiny).

    exp(g) for g < log(tiny) is 0 (or a subnormal) in that dtype anyway, so the answer is the same,
    but a chunk of C gates of −3e38 no longer sums to −inf (float32's max is 3.4e38), and no later
    difference b_i − b_j becomes −inf − (−inf) = NaN. Floors: −87.3 (float32), −708.4 (float64).
    """
    return g.clamp_min(math.log(torch.finfo(g.dtype).tiny))


def segment_sum(g: torch.Tensor) -> torch.Tensor:
    """out[..., i, j] = Σ_{j<t<=i} g_t = G_i − G_j for i >= j, −inf above the diagonal.

    g (..., N) -> (..., N, N). Computed as a cumsum of a masked copy, never as a difference of
    two long cumulative sums, so it is exact-ish however long the sequence (Mamba-2's segsum).
    """
    n = g.shape[-1]
    keep = torch.ones(n, n, dtype=torch.bool, device=g.device)
    rep = g.unsqueeze(-1).expand(*g.shape, n)  # (..., N, N): rep[..., t, j] = g_t
    rep = rep.masked_fill(~keep.tril(-1), 0.0)  # keep g_t only where t > j
    seg = rep.cumsum(-2)  # (..., N, N): seg[..., i, j] = Σ_{j<t<=i} g_t
    return seg.masked_fill(~keep.tril(), -math.inf)  # (..., N, N); the future is −inf


# Causality ---------------------------------------------------------------------------------------------
def matmul_add(acc: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """acc += a @ b in one BLAS call (beta = 1), batched over the leading dims; returns acc."""
    acc.flatten(0, -3).baddbmm_(a.flatten(0, -3), b.flatten(0, -3))  # (B, r, k) @ (B, k, c) -> (B, r, c)
    return acc


def surely_finite(v: torch.Tensor) -> bool:
    """True when every entry of v is finite, decided by one read-only pass (a finite sum has finite terms).

    One reduction and one scalar read, tested on the host (a tensor-side isfinite adds four small ops,
    which cost more than the sum of one chunk: 7 µs against 2.6 µs a call for a (4, 64, 64) chunk).
    Eager mode only, and on a GPU only outside CUDA-graph capture: the answer is a host
    synchronisation (a few µs, plus one read of v), while the guarded path costs four more
    passes over a (..., N, d_v) tensor. Under torch.compile (no data-dependent branch), during
    capture and on meta tensors (shapes, no data) the guarded path always runs.
    A false "no" (a sum that overflows) only takes the guarded path.
    """
    if torch.compiler.is_compiling() or v.is_meta:  # no data to look at
        return False
    if v.is_cuda and torch.cuda.is_current_stream_capturing():
        return False
    return math.isfinite(v.sum().item())


def tril_product(a: torch.Tensor, v: torch.Tensor, acc: torch.Tensor | None = None) -> torch.Tensor:
    """A V (acc + A V when acc is given, in place) for a lower-triangular A, where a non-finite v_j reaches only the rows i >= j.

    a (..., C, C) with a_ij = 0 for j > i, v (..., C, e), acc (..., C, e) -> (..., C, e). A plain matmul
    would add 0·NaN = NaN into every row i < j. Here the finite part goes through the matmul, and
    v − v (0 where v is finite, NaN where it is not) is added back by a cumsum over the rows,
    which leaves exact zeros above the first non-finite v_j and NaN from it on. Without autograd
    watching, v − v is written over the finite copy once the matmul is done: one (..., C, e) temporary.
    """
    finite = v if surely_finite(v) else torch.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0)  # (..., C, e)
    out = a @ finite if acc is None else matmul_add(acc, a, finite)  # (..., C, C) @ (..., C, e) -> (..., C, e)
    if finite is v:  # the common case in eager mode: nothing to guard, one matmul
        return out
    recorded = torch.is_grad_enabled() and (a.requires_grad or v.requires_grad)  # the matmul saved `finite`
    marks = v - v if recorded else torch.sub(v, v, out=finite)  # (..., C, e): 0 where finite, NaN where not
    marks = marks.cumsum(-2) if recorded else marks.cumsum_(-2)  # (..., C, e): NaN from the first bad row on
    return out + marks if recorded else out.add_(marks)  # (..., C, e)


def channel_decayed_scores(x, y, b, *, bx=None, strict=False):
    """Pairwise weights under a per-channel decay: A_ts = Σ_c x_tc y_sc exp(bx_tc − b_sc) for t >= s, 0 above.

    x, y (..., C, d), b (..., C, d) a chunk-local cumulative log-decay (non-increasing along C)
    -> A (..., C, C). bx: the queries' own cumulative log-decay (default b), with bx_t <= b_s for every
    s < t (DPLR reads S_{t−1}: bx_t = b_{t−1}); strict: leave the diagonal 0 (s < t only).
    A binary tree of blocks over the chunk (C padded to a power of two): at level s,
    every block of s rows splits into a top half T and a bottom half B, and for t in B, s' in T,
    through the last row r of T, exp(bx_t − b_s') = exp(bx_t − b_r) · exp(b_r − b_s') (both exponents
    <= 0), so A[B, T] is one matmul (X_B ⊙ exp(bx_B − b_r)) (Y_T ⊙ exp(b_r − b_T))ᵀ; the diagonal is
    x_t · y_t exp(bx_t − b_t) (x_t · y_t when bx is b). Nothing overflows, the work is C·d multiply-adds a
    weight like a plain matmul, memory (..., C/2, d) a level, and the weights are written into their
    blocks, never multiplied by 0 (a NaN at s reaches no row t < s).
    GLA's q-k weights (:func:`linattn_edu.gated.channel_gated_scores`), KDA's K Kᵀ and Q Kᵀ and DPLR's
    four C×C blocks are this one tree.
    """
    c = x.shape[-2]
    cp = padded_block_len(c)
    same = bx is None
    if cp != c:  # padded rows: x = y = 0 and both decays held at b's last row (decay 1): they add nothing, cut off
        x, y = chunk(x, cp).squeeze(-3), chunk(y, cp).squeeze(-3)  # (..., Cp, d)
        tail = b[..., -1:, :].expand(*b.shape[:-2], cp - c, b.shape[-1])  # (..., Cp − C, d)
        b, bx = (None if z is None else torch.cat([z, tail], dim=-2) for z in (b, bx))  # (..., Cp, d)
    bx = b if same else bx
    a = x.new_zeros(*x.shape[:-2], cp, cp)  # (..., Cp, Cp)
    if not strict:
        on_diag = x * y if same else x * y * (bx - b).exp()  # (..., Cp, d): exponent <= 0
        a.diagonal(dim1=-2, dim2=-1).copy_(on_diag.sum(-1))  # A_tt = x_t · y_t exp(bx_t − b_t)
    s = cp
    while s >= 2:
        h = s // 2
        xs, ys, bs, bxs = (z.unflatten(-2, (cp // s, 2, h)) for z in (x, y, b, bx))  # (..., Cp/s, 2, s/2, d)
        b_r = bs[..., 0, -1:, :]  # (..., Cp/s, 1, d): b at the last row of each top half
        x_b = xs[..., 1, :, :] * (bxs[..., 1, :, :] - b_r).exp()  # (..., Cp/s, s/2, d): exp(bx_t − b_r) <= 1
        y_t = ys[..., 0, :, :] * (b_r - bs[..., 0, :, :]).exp()  # (..., Cp/s, s/2, d): exp(b_r − b_s) <= 1
        block = x_b @ y_t.transpose(-2, -1)  # (..., Cp/s, s/2, d) @ (..., Cp/s, d, s/2) -> (..., Cp/s, s/2, s/2)
        _diagonal_blocks(a, s)[..., h:, :h].copy_(block)  # rows B, cols T of each diagonal s × s block
        s = h
    return a[..., :c, :c]  # (..., C, C)


def unit_tril_inverse(l: torch.Tensor) -> torch.Tensor:
    """(I + L)⁻¹ for the strictly lower part L of l: l (..., C, C) -> X (..., C, C), unit lower-triangular.

    Only l's entries below the diagonal are read, and X is exactly 0 above its diagonal. Row i of X
    depends on rows <= i of L, and so does the arithmetic: a NaN or inf in row j of L reaches rows
    i >= j of X only (as in forward substitution). Built from blocks (C padded to a power of two):
    the 8 × 8 diagonal blocks by forward substitution, X_i = e_i − L_i,<i X_<i (all blocks at once),
    then merged in pairs of growing size s, [[A, 0], [B, D]]⁻¹ = [[A⁻¹, 0], [−D⁻¹ B A⁻¹, D⁻¹]]: two
    batched (s × s) matmuls a level, the left one by :func:`tril_product`. Cost ≈ C³/3 multiply-adds, in
    log₂(C/8) + 8 batched calls: half the time of LAPACK's triangular solve against I on 256 blocks of
    64 × 64, whose per-matrix calls dominate. Backward, by its own rule (d X = −X dL X):
    ∂/∂L = −strict_tril(Xᵀ G Xᵀ).
    """
    return _UnitTrilInverse.apply(l)


class _UnitTrilInverse(torch.autograd.Function):
    """X = (I + strict_tril(L))⁻¹; backward −strict_tril(Xᵀ G Xᵀ) (differentiable again: X is saved)."""

    @staticmethod
    def forward(ctx, l):
        x = _unit_tril_inverse_blocks(l)
        ctx.save_for_backward(x)
        return x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        xt = x.transpose(-2, -1)  # (..., C, C)
        return -(xt @ g @ xt).tril(-1)  # (..., C, C) @ (..., C, C) @ (..., C, C)


def _diagonal_blocks(x: torch.Tensor, s: int) -> torch.Tensor:
    """A view of the (s × s) blocks on the diagonal of x (..., C, C): (..., C/s, s, s)."""
    m = x.shape[-1] // s
    return x.unflatten(-2, (m, s)).unflatten(-1, (m, s)).diagonal(dim1=-4, dim2=-2).movedim(-1, -3)


def _unit_tril_inverse_blocks(l: torch.Tensor, base: int = 8) -> torch.Tensor:
    """The forward of :func:`unit_tril_inverse`: substitution in the diagonal blocks, then merges."""
    c = l.shape[-1]
    cp = padded_block_len(c)
    if cp != c:  # zero rows and columns: an identity block after the last one, cut off at the end
        l = torch.nn.functional.pad(l, (0, cp - c, 0, cp - c))  # (..., Cp, Cp)
    b = min(base, cp)
    diag_l = _diagonal_blocks(l, b).reshape(-1, b, b)  # (M, b, b): the diagonal blocks of L
    diag_x = torch.eye(b, dtype=l.dtype, device=l.device).repeat(diag_l.shape[0], 1, 1)  # (M, b, b)
    for i in range(1, b):  # row i from rows < i: X_i,<i = −L_i,<i X_<i,<i
        diag_x[:, i:i + 1, :i] = -(diag_l[:, i:i + 1, :i] @ diag_x[:, :i, :i])  # (M, 1, i) @ (M, i, i)
    x = l.new_zeros(l.shape)  # (..., Cp, Cp)
    _diagonal_blocks(x, b).copy_(diag_x.view(*l.shape[:-2], cp // b, b, b))
    s = b
    while s < cp:  # merge pairs of s × s inverses into 2s × 2s ones
        blocks, l_blocks = _diagonal_blocks(x, 2 * s), _diagonal_blocks(l, 2 * s)  # (..., Cp/2s, 2s, 2s)
        b_a = l_blocks[..., s:, :s] @ blocks[..., :s, :s]  # B A⁻¹: (..., Cp/2s, s, s)
        blocks[..., s:, :s] = tril_product(blocks[..., s:, s:], b_a).neg_()  # −D⁻¹ (B A⁻¹)
        s *= 2
    return x[..., :c, :c]  # (..., C, C)



# Carries -------------------------------------------------------------------------------------------------
# How chunk states are carried: "cumsum" (loop-free), "loop", or "auto": loop-free on a GPU, where a loop
# over N/C chunks is launch-bound, and under torch.compile, which would unroll the loop (measured on a
# 2-core CPU, B=1, H=4, N=16k: compiled forward 34 ms with cumsum vs 165 ms with the loop); the loop in
# eager mode on a CPU, where torch's cumsum over a non-last dim is slow (measured: (1, 4, 256, 64, 64)
# float32 states, loop 2.5 ms, cumsum 90-130 ms). Choose with ``with carry("loop"): ...``.
CARRIES = ("auto", "cumsum", "loop")
_carry = ["auto"]


@contextlib.contextmanager
def carry(mode: str):
    """Run the block with chunk states carried by ``mode`` ("auto", "cumsum" or "loop"); restores the old mode."""
    if mode not in CARRIES:
        raise ValueError(f"carry mode must be one of {CARRIES}; got {mode!r}")
    old, _carry[0] = _carry[0], mode
    try:
        yield mode
    finally:
        _carry[0] = old


def carry_mode(device: torch.device) -> str:
    """The carry in force for tensors on ``device``: "auto" is the loop only in eager mode on a CPU."""
    if _carry[0] != "auto":
        return _carry[0]
    eager_cpu = device.type == "cpu" and not torch.compiler.is_compiling()
    return "loop" if eager_cpu else "cumsum"


def scan(increments: torch.Tensor, dim: int, reverse: bool = False):
    """Carry a state over chunks: the states entering each chunk, and the total.

    increments (..., n, ...) along ``dim`` -> states (same shape), total (shape without ``dim``), where
    states[c] = Σ_{c' < c} increments[c'] (Σ_{c' > c} when reverse). Exclusive: a chunk never sees
    its own increment, so a NaN in chunk c reaches only the chunks after it. No autograd (used inside
    hand-written backward passes): the loop writes in place.
    """
    return (_scan_loop if carry_mode(increments.device) == "loop" else _scan_cumsum)(increments, dim, reverse)


def _scan_cumsum(increments: torch.Tensor, dim: int, reverse: bool = False):
    """The carry with one cumsum over the chunk axis (no loop): see scan."""
    if reverse:
        states, total = _scan_cumsum(increments.flip(dim), dim)  # in the flipped order, then back
        return states.flip(dim), total
    n = increments.shape[dim]
    states = torch.zeros_like(increments)  # (..., n, ...): states[0] = 0
    states.narrow(dim, 1, n - 1).copy_(increments.narrow(dim, 0, n - 1))  # states[c] = increments[c - 1]
    states.cumsum_(dim)  # states[c] = Σ_{c' < c} increments[c']
    return states, states.select(dim, -1) + increments.select(dim, -1)  # total (..., ...)


def _scan_loop(increments: torch.Tensor, dim: int, reverse: bool = False):
    """The carry as a loop over chunks, in place: states[c] = states[c − 1] + increments[c − 1]."""
    states = torch.empty_like(increments)  # (..., n, ...)
    order = list(range(increments.shape[dim]))
    order = order[::-1] if reverse else order
    states.select(dim, order[0]).zero_()  # the state entering the first chunk visited
    for prev, c in zip(order, order[1:]):
        states.select(dim, c).copy_(states.select(dim, prev)).add_(increments.select(dim, prev))
    return states, states.select(dim, order[-1]) + increments.select(dim, order[-1])


def decayed_scan(increments: torch.Tensor, log_keep: torch.Tensor, initial: torch.Tensor):
    """The gated carry: S_0 = initial, S_{c+1} = exp(log_keep_c) ⊙ S_c + increments_c (autograd-friendly).

    increments (n, B, d_φ, e), log_keep (n, B, 1 | d_φ, 1) the chunk's total log-decay, initial (B, d_φ, e)
    -> states entering each chunk (n, B, d_φ, e), final state (B, d_φ, e).
    "loop": the RNN at chunk resolution over ``unbind`` views (linear in n, forward and backward).
    "cumsum" (loop-free, for GPUs and torch.compile): the state after chunk c is
        Σ_{c'<=c} exp(Σ_{c'<t<=c} lk_t) ΔS_c' + exp(Σ_{t<=c} lk_t) S_0
    one (n, n) lower-triangular decay matrix of chunk-level segment sums (per channel) times the
    increments, every exponent <= 0, through tril_product (a NaN in chunk c reaches no earlier state).
    It costs n²·d_φ·e instead of n·d_φ·e: cheap next to a GPU's launch cost for n = N/C chunks.
    """
    if carry_mode(increments.device) == "loop":
        s, starts = initial, []
        for inc, lk in zip(increments.unbind(0), log_keep.unbind(0)):
            starts.append(s)
            s = lk.exp() * s + inc  # (B, d_φ, e)
        return torch.stack(starts), s
    lk = log_keep.squeeze(-1).movedim(0, -1)  # (B, 1 | d_φ, n)
    w = segment_sum(lk).exp()  # (B, c, n, n): weight of ΔS_c' in the state after chunk c, exp(Σ_{c'<t<=c} lk_t)
    w0 = lk.cumsum(-1).exp()  # (B, c, n): weight of S_0 after chunk c, exp(Σ_{t<=c} lk_t) <= 1
    inc = increments.movedim(0, 1)  # (B, n, d_φ, e)
    if lk.shape[-2] == 1:  # one decay for every channel: one (n, n) matrix times (n, d_φ·e)
        after = tril_product(w[:, 0], inc.flatten(2)).unflatten(2, inc.shape[2:])  # (B, n, d_φ, e)
        after = after + w0[:, 0, :, None, None] * initial.unsqueeze(1)  # + (B, n, 1, 1) ⊙ S_0
    else:  # one (n, n) matrix per key channel
        after = tril_product(w, inc.transpose(1, 2)).transpose(1, 2)  # (B, d_φ, n, n) @ (B, d_φ, n, e) -> (B, n, d_φ, e)
        after = after + w0.transpose(1, 2).unsqueeze(-1) * initial.unsqueeze(1)  # + (B, n, d_φ, 1) ⊙ S_0
    starts = torch.cat([initial.unsqueeze(1), after[:, :-1]], dim=1)  # (B, n, d_φ, e): S entering chunk c
    return starts.movedim(1, 0), after[:, -1]  # (n, B, d_φ, e), (B, d_φ, e)
