"""Decay and gates: linear attention that forgets (RetNet, GLA, Mamba-2).

Plain linear attention only adds to its state, S_t = S_{t−1} + φ(k_t)v_tᵀ, so old tokens
never fade. A gate multiplies the state by a decay before each write — a one-line change
to the recurrent step:

    S_t = exp(g_t) ⊙ S_{t−1} + φ(k_t) v_tᵀ          (d_φ, d_v)
    z_t = exp(g_t) ⊙ z_{t−1} + φ(k_t)               (d_φ,)   only used when normalising
    out_t = φ(q_t)ᵀ S_t   (÷ φ(q_t)ᵀ z_t + eps when normalize=True)

with a log-decay g_t <= 0, either one number per step for every channel (RetNet's constant
γ, Mamba-2 and simple GLA: log_decay (..., N)), or one per key channel (GLA: log_decay
(..., N, d_φ), the rows of S decay separately). Unrolled, with G_i = Σ_{t<=i} g_t,

    out_i = Σ_{j<=i} exp(G_i − G_j) (φ(q_i)ᵀφ(k_j)) v_j          (scalar gate)

so the parallel form is causal linear attention with a decay mask L_ij = exp(G_i − G_j):
a 1-semiseparable matrix, and the chunkwise form is its block decomposition (Mamba-2's SSD).

Never compute exp(G_i)·exp(−G_j): G reaches −155 within 64 tokens for strong gates and
exp(155) overflows float32. Every form here exponentiates only segment sums
G_i − G_j = Σ_{j<t<=i} g_t <= 0 (chunk-local in the chunkwise form), so it stays finite
at log_decay ≈ −30. Half-precision inputs are computed, and the state kept, in float32.

Forms: "recurrent" (the reference: a loop over time), "parallel" (quadratic, N² memory),
"chunkwise" (intra-chunk quadratic + a decayed state carried across chunks), "auto".
"""
from __future__ import annotations

import math

import torch

from ._checks import (check_bool, check_dense_budget, check_eps, check_positive_int, check_qkv,
                      check_tensor, compute_dtype, safe_divide)
from .chunked import _chunk
from .feature_maps import FeatureMap, get_feature_map
from .linear import featurize
from .recurrent import check_prefill, check_token

__all__ = [
    "gated_linear_attention", "GATED_FORMS", "retnet_log_decay", "segment_sum", "gated_step",
    "gated_readout", "gated_recurrent_form", "gated_parallel_form", "gated_chunkwise_form",
    "decay_mask", "channel_gated_scores", "GatedState",
]

GATED_FORMS = ("auto", "recurrent", "parallel", "chunkwise")


def retnet_log_decay(heads, *, dtype=torch.float32) -> torch.Tensor:
    """RetNet's fixed per-head decay, as a log: log γ_h with γ_h = 1 − 2^(−5−h), h = 0 … heads−1.

    Returns (heads,): γ runs from 0.969 (head 0, a short memory of ~32 tokens) towards 1.
    Broadcast it over tokens for gated_linear_attention: ``g[:, None].expand(heads, N)``.
    """
    check_positive_int(heads, "heads")
    h = torch.arange(heads, dtype=torch.float64)  # (H,)
    return torch.log1p(-torch.pow(2.0, -5.0 - h)).to(dtype)  # (H,)


# The recurrent step: the one-line change to linear attention --------------------------------
def gated_step(s, z, fk_t, v_t, g_t):
    """One token into a decayed state: S = exp(g_t) ⊙ S + φ(k_t)v_tᵀ, z = exp(g_t) ⊙ z + φ(k_t).

    s (..., d_φ, d_v), z (..., d_φ), fk_t (..., d_φ), v_t (..., d_v), g_t (..., 1) for one gate
    on every channel or (..., d_φ) for one per key channel -> new (S, z).
    """
    a = g_t.exp()  # (..., 1 | d_φ): the decay, in (0, 1]
    s = a.unsqueeze(-1) * s + fk_t.unsqueeze(-1) * v_t.unsqueeze(-2)  # (..., d_φ, d_v)
    return s, a * z + fk_t  # (..., d_φ)


def gated_readout(fq_t, s, z, *, eps=1e-6, normalize=False):
    """out_t = φ(q_t)ᵀS (÷ φ(q_t)ᵀz + eps): fq_t (..., d_φ), S (..., d_φ, d_v), z (..., d_φ) -> (..., d_v)."""
    num = (fq_t.unsqueeze(-2) @ s).squeeze(-2)  # (..., 1, d_φ) @ (..., d_φ, d_v) -> (..., d_v)
    if not normalize:
        return num
    return safe_divide(num, (fq_t * z).sum(-1, keepdim=True), eps)  # (..., d_v)


def gated_recurrent_form(fq, fk, v, g, *, eps=1e-6, normalize=False):
    """The reference: a loop over tokens applying :func:`gated_step` then :func:`gated_readout`.

    fq, fk (..., N, d_φ), v (..., N, d_v), g (..., N, 1 | d_φ) -> out (..., N, d_v), final (S, z).
    """
    s = fq.new_zeros(*fq.shape[:-2], fq.shape[-1], v.shape[-1])  # (..., d_φ, d_v)
    z = fq.new_zeros(*fq.shape[:-2], fq.shape[-1])  # (..., d_φ)
    outs = []
    for t in range(fq.shape[-2]):
        s, z = gated_step(s, z, fk[..., t, :], v[..., t, :], g[..., t, :])
        outs.append(gated_readout(fq[..., t, :], s, z, eps=eps, normalize=normalize))  # (..., d_v)
    return torch.stack(outs, dim=-2), (s, z)  # (..., N, d_v)


# Segment sums and the decay mask --------------------------------------------------------------
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


def decay_mask(log_decay: torch.Tensor) -> torch.Tensor:
    """L_ij = exp(G_i − G_j) for i >= j, 0 above: log_decay (..., N) -> (..., N, N).

    The 1-semiseparable mask of a scalar gate; with log_decay = 0 it is the causal mask.
    """
    return segment_sum(log_decay).exp()  # (..., N, N); exp(−inf) = 0


def _gate_channels_first(g: torch.Tensor) -> torch.Tensor:
    """(..., N, c) -> (..., c, N): one gate sequence per channel, ready for segment_sum."""
    return g.transpose(-2, -1)


def gated_parallel_form(fq, fk, v, g, *, eps=1e-6, normalize=False):
    """The quadratic form: A_ij = Σ_c φ(q_i)_c φ(k_j)_c exp(G_ic − G_jc) for i >= j, out = A V (÷ A1).

    fq, fk (..., N, d_φ), v (..., N, d_v), g (..., N, 1 | d_φ) -> out (..., N, d_v), A (..., N, N).
    A scalar gate gives A = (φ(Q)φ(K)ᵀ) ⊙ L with L the decay mask; a per-channel gate needs an
    (..., N, N, d_φ) tensor — this form is the reference for pictures, not for long N.
    """
    seg = segment_sum(_gate_channels_first(g))  # (..., 1 | d_φ, N, N)
    if g.shape[-1] == 1:
        a = (fq @ fk.transpose(-2, -1)) * seg.squeeze(-3).exp()  # (..., N, N) ⊙ L
    else:
        a = torch.einsum("...ic,...jc,...cij->...ij", fq, fk, seg.exp())  # (..., N, N)
    out = a @ v  # (..., N, N) @ (..., N, d_v) -> (..., N, d_v)
    if normalize:
        out = safe_divide(out, a.sum(-1, keepdim=True), eps)  # (..., N, d_v)
    return out, a


# Chunkwise form ---------------------------------------------------------------------------------
SUB_CHUNK = 16  # per-channel gates: sub-chunk length u inside a chunk (the (u, u, d_φ) decay blocks)


def channel_gated_scores(q, k, b, *, sub_chunk=SUB_CHUNK):
    """Per-channel gated intra-chunk weights A_ij = Σ_c q_ic k_jc exp(b_ic − b_jc) for i >= j, 0 above.

    q, k (..., C, d_φ), b (..., C, d_φ) the chunk-local cumulative log-decay (non-increasing along C)
    -> A (..., C, C). The decay differs per channel, so A is no plain matmul; building the whole
    (C, C, d_φ) decay tensor costs C·d_φ per weight. Instead, split the chunk into sub-chunks of u:
      * query sub-chunk t after key sub-chunk s, through the end r of sub-chunk s:
            exp(b_i − b_j) = exp(b_i − b_r) · exp(b_r − b_j)      both exponents <= 0
        so the block is one matmul (Q_t ⊙ exp(b_t − b_r)) (K_s ⊙ exp(b_r − b_s))ᵀ;
      * t = s: the small (u, u, d_φ) decay tensor, elementwise (exponents b_i − b_j <= 0 for i >= j).
    No exponent is ever > 0, so nothing overflows however strong the gates (GLA's secondary chunking).
    """
    c = q.shape[-2]
    u = min(sub_chunk, c)
    qs, ks = _chunk(q, u), _chunk(k, u)  # (..., m, u, d_φ), zero rows pad C up to m·u
    pad = -c % u
    bp = torch.cat([b, b[..., -1:, :].expand(*b.shape[:-2], pad, b.shape[-1])], dim=-2) if pad else b
    bs = bp.unflatten(-2, (-1, u))  # (..., m, u, d_φ): padded steps decay by 1
    m = bs.shape[-3]
    b_end = bs[..., -1, :]  # (..., m, d_φ): b at the end of each sub-chunk
    k_rel = ks * (b_end.unsqueeze(-2) - bs).exp()  # (..., m, u, d_φ): exp(b_r − b_j) <= 1
    q_rel = qs.unsqueeze(-3) * (bs.unsqueeze(-3) - b_end.unsqueeze(-2).unsqueeze(-4)).clamp_max(0).exp()  # (..., m_t, m_s, u, d_φ)
    blocks = q_rel @ k_rel.unsqueeze(-4).transpose(-2, -1)  # (..., m, m, u, d_φ) @ (..., 1, m, d_φ, u) -> (..., m, m, u, u)
    decay = (bs.unsqueeze(-2) - bs.unsqueeze(-3)).clamp_max(0).exp()  # (..., m, u, u, d_φ): exp(b_i − b_j), i >= j
    diag = (qs.unsqueeze(-2) * ks.unsqueeze(-3) * decay).sum(-1).tril()  # (..., m, u, u)
    t = torch.arange(m, device=q.device)  # (m,)
    later, same = (t[:, None] > t)[:, :, None, None], (t[:, None] == t)[:, :, None, None]  # (m, m, 1, 1)
    blocks = torch.where(later, blocks, diag.unsqueeze(-3) * same)  # (..., m, m, u, u): t > s, t = s, else 0
    a = blocks.transpose(-3, -2).flatten(-4, -3).flatten(-2, -1)  # (..., m, u, m, u) -> (..., m·u, m·u)
    return a[..., :c, :c]  # (..., C, C)


def check_gated_chunk_budget(fq, g, chunk_size: int) -> None:
    """Raise MemoryBudgetError before the chunkwise form's largest temporary exceeds the budget.

    Scalar gate: the (..., N, C) intra-chunk blocks. Per-channel gate: the (..., N, u, d_φ) decay
    blocks of channel_gated_scores (u = min(SUB_CHUNK, C)), u·d_φ numbers per token.
    """
    lead, n = fq.shape[:-2], fq.shape[-2]
    c = min(chunk_size, n)
    n_pad = -(-n // c) * c
    if g.shape[-1] == 1:
        check_dense_budget((*lead, n_pad, c), fq.dtype, "the gated chunkwise form's (..., N, C) intra-chunk blocks",
                           "use a smaller chunk_size")
    else:
        u = min(SUB_CHUNK, c)
        check_dense_budget((*lead, -(-n_pad // u) * u, u, fq.shape[-1]), fq.dtype,
                           "the per-channel gated chunkwise form's (..., N, u, d_φ) decay blocks",
                           "use form='recurrent', or a scalar gate log_decay (..., N)")


def gated_chunkwise_form(fq, fk, v, g, *, chunk_size=64, eps=1e-6, normalize=False):
    """Chunkwise: per chunk c (state S before it, b = chunk-local cumsum of g, all exponents <= 0):

        out_c = (φ(Q_c) ⊙ exp(b)) S + [(φ(Q_c)φ(K_c)ᵀ) ⊙ exp(b_i − b_j)]_{i>=j} V_c
        S ← exp(b_C) ⊙ S + (φ(K_c) ⊙ exp(b_C − b))ᵀ V_c

    (per-channel gates: the intra-chunk weights sum exp(b_ic − b_jc) over channels, computed in
    sub-chunks by channel_gated_scores). With a scalar gate this is SSD's block decomposition of
    the semiseparable matrix: diagonal blocks dense, off-diagonal blocks through the state.
    fq, fk (..., N, d_φ), v (..., N, d_v), g (..., N, 1 | d_φ) -> out (..., N, d_v), final (S, z).
    """
    n = fq.shape[-2]
    check_gated_chunk_budget(fq, g, chunk_size)
    if normalize:  # the denominator is the same product with v -> 1: carry [S, z] together
        v = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)  # (..., N, d_v + 1)
    # padded tokens have φ(k) = 0, v = 0 and g = 0 (decay 1): they leave the state unchanged
    q, k, vv, gg = (_chunk(x, chunk_size) for x in (fq, fk, v, g))  # (..., n, C, ·)
    b = gg.cumsum(-2)  # (..., n, C, 1 | d_φ): chunk-local cumulative log-decay, <= 0
    b_last = b[..., -1:, :]  # (..., n, 1, 1 | d_φ)
    q_in = q * b.exp()  # (..., n, C, d_φ): query reads the state decayed to its own step
    k_out = k * (b_last - b).exp()  # (..., n, C, d_φ): key written, decayed to the chunk's end
    if g.shape[-1] == 1:
        seg = segment_sum(_gate_channels_first(gg)).squeeze(-3)  # (..., n, C, C)
        a = (q @ k.transpose(-2, -1)) * seg.exp()  # (..., n, C, C) ⊙ chunk mask
    else:
        a = channel_gated_scores(q, k, b)  # (..., n, C, C)
    out = a @ vv  # intra-chunk: (..., n, C, C) @ (..., n, C, e) -> (..., n, C, e)
    kv = k_out.transpose(-2, -1) @ vv  # (..., n, d_φ, C) @ (..., n, C, e) -> (..., n, d_φ, e)
    keep = b_last.exp().transpose(-2, -1)  # (..., n, 1 | d_φ, 1): the chunk's total decay
    s = fq.new_zeros(*fq.shape[:-2], fq.shape[-1], vv.shape[-1])  # (..., d_φ, e)
    starts = []
    for c in range(q.shape[-3]):  # carry the state chunk to chunk: the RNN at chunk resolution
        starts.append(s)
        s = keep[..., c, :, :] * s + kv[..., c, :, :]  # (..., d_φ, e)
    out = out + q_in @ torch.stack(starts, dim=-3)  # + (..., n, C, d_φ) @ (..., n, d_φ, e): from the state
    out = out.flatten(-3, -2)[..., :n, :]  # (..., N, e)
    if not normalize:
        return out, (s, None)
    return safe_divide(out[..., :-1], out[..., -1:], eps), (s[..., :-1], s[..., -1])


# The public entry point --------------------------------------------------------------------------
def _check_log_decay(log_decay, lead: tuple, d_phi: int | None, what: str = "log_decay") -> None:
    """log_decay must be (*lead) [one gate per step] or (*lead, d_φ) [one per key channel], finite, <= 0."""
    check_tensor(log_decay, what, min_rank=0)
    shapes = [tuple(lead)] + ([(*lead, d_phi)] if d_phi is not None else [])
    if tuple(log_decay.shape) not in shapes:
        want = " or ".join(str(s) for s in shapes)
        raise ValueError(f"{what} must have shape {want} (q.shape[:-1]"
                         f"{', + (d_φ,) for a per-channel gate' if d_phi is not None else ''}); "
                         f"got {tuple(log_decay.shape)}")
    with torch.no_grad():
        bad = ~torch.isfinite(log_decay) | (log_decay > 0)
        if bool(bad.any()):
            worst = log_decay[bad].flatten()[0].item()
            raise ValueError(f"{what} must be finite and <= 0 (a decay exp(g) in (0, 1]); "
                             f"got an entry {worst!r}")


def _check_gated_args(q, k, v, log_decay, feature_map, normalize, form, chunk_size, eps, return_state):
    check_qkv(q, k, v, causal=True)
    if form not in GATED_FORMS:
        raise ValueError(f"form must be one of {GATED_FORMS}; got {form!r}")
    check_positive_int(chunk_size, "chunk_size")
    check_eps(eps)
    check_bool(normalize, "normalize")
    check_bool(return_state, "return_state")
    if not isinstance(feature_map, (FeatureMap, str)):
        raise TypeError(f"feature_map must be a FeatureMap or a registered name; got {type(feature_map).__name__}")
    phi = get_feature_map(feature_map, q.shape[-1])
    if normalize and not phi.positive_kernel:
        raise ValueError(f"feature map {phi.name!r} can give negative kernel values, so the normalised "
                         "denominator can be 0 or negative; expected a map with positive_kernel=True "
                         "(elu+1, relu, favor+, taylor), or normalize=False")
    _check_log_decay(log_decay, q.shape[:-1], phi.d_out(q.shape[-1]))
    if log_decay.device != q.device:
        raise ValueError(f"log_decay must be on {q.device}; got {log_decay.device}")
    return phi


def gated_linear_attention(q, k, v, log_decay, *, feature_map="identity", normalize=False, form="auto",
                           chunk_size=64, eps=1e-6, return_state=False):
    """Causal linear attention with a decayed state (RetNet, GLA, Mamba-2 / simple GLA).

        S_t = exp(g_t) ⊙ S_{t−1} + φ(k_t) v_tᵀ,   out_t = φ(q_t)ᵀ S_t   (÷ φ(q_t)ᵀ z_t + eps)

    Args:
        q, k: (..., N, d); v: (..., N, d_v).
        log_decay: g, entries <= 0: (..., N) one gate per step for all channels, or (..., N, d_φ)
            one per key channel (d_φ = φ's output dim; d for the identity map).
        feature_map: φ ("identity" as in RetNet/GLA/Mamba-2, or any registered map).
        normalize: divide by φ(q_t)ᵀz_t + eps (z decayed like S); needs a positive kernel.
        form: "recurrent" (loop over time, the reference), "parallel" (N² decay mask),
            "chunkwise", or "auto" (chunkwise). All give the same answer.
        chunk_size: C for the chunkwise form (any N).
        return_state: also return the final state: S (..., d_φ, d_v), or (S, z (..., d_φ))
            when normalize=True.

    Returns out (..., N, d_v) in q's dtype, or (out, state) with the state in float32/float64.
    """
    phi = _check_gated_args(q, k, v, log_decay, feature_map, normalize, form, chunk_size, eps, return_state)
    fq, fk = featurize(q, k, phi)  # (..., N, d_φ) in the compute dtype
    work = fq.dtype
    vw = v.to(work)  # (..., N, d_v)
    g = log_decay.to(work)
    g = g.unsqueeze(-1) if g.dim() == q.dim() - 1 else g  # (..., N, 1 | d_φ)
    if form == "parallel":
        check_dense_budget((*q.shape[:-1], q.shape[-2], g.shape[-1]), work,
                           "the parallel form's (..., N, N, channels) decay mask", "use form='chunkwise'")
        out, a = gated_parallel_form(fq, fk, vw, g, eps=eps, normalize=normalize)
        state = None
        if return_state:  # the parallel form has no state: read it off the chunkwise form
            _, state = gated_chunkwise_form(fq, fk, vw, g, chunk_size=chunk_size, eps=eps, normalize=normalize)
    elif form == "recurrent":
        out, state = gated_recurrent_form(fq, fk, vw, g, eps=eps, normalize=normalize)
    else:
        out, state = gated_chunkwise_form(fq, fk, vw, g, chunk_size=chunk_size, eps=eps, normalize=normalize)
    out = out.to(q.dtype)
    if not return_state:
        return out
    return out, (state if normalize else state[0])


# Checks shared by the step APIs (GatedState here, DeltaState in delta.py) -------------------------
# The step API: a decayed state for decoding and pictures ----------------------------------------
class GatedState:
    """Running state of gated linear attention, one token at a time (the LinearAttentionState pattern).

    Args:
        d: key/query dim; d_v: value dim; feature_map: φ (default "identity");
        normalize: keep z and divide by φ(q)ᵀz + eps; batch_shape: leading dims (e.g. (B, H));
        dtype: float32 or float64; record: keep a snapshot after every token in ``.history``.

    Attributes: S (*batch_shape, d_φ, d_v), z (*batch_shape, d_φ), t (tokens absorbed).
    ``step(q_t, k_t, v_t, g_t)`` takes one log-decay per step, g_t (*batch_shape,), or one per key
    channel, (*batch_shape, d_φ). ``prefill`` runs the chunkwise form; then ``step`` continues it.
    A step that fails its checks leaves the state untouched.
    """

    def __init__(self, d, d_v, *, feature_map="identity", normalize=False, batch_shape=(),
                 dtype=torch.float32, device=None, eps=1e-6, record=False):
        check_positive_int(d, "d")
        check_positive_int(d_v, "d_v")
        check_eps(eps)
        check_bool(normalize, "normalize")
        check_bool(record, "record")
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"state dtype must be float32 or float64; got {dtype}")
        self.phi = get_feature_map(feature_map, d)
        if normalize and not self.phi.positive_kernel:
            raise ValueError(f"feature map {self.phi.name!r} can give negative kernel values; "
                             "normalize=True needs positive_kernel=True")
        self.d, self.d_v, self.eps, self.normalize, self.record = d, d_v, eps, normalize, record
        self.batch_shape = tuple(batch_shape)
        self.d_phi = self.phi.d_out(d)
        self.S = torch.zeros(*self.batch_shape, self.d_phi, d_v, dtype=dtype, device=device)  # (..., d_φ, d_v)
        self.z = torch.zeros(*self.batch_shape, self.d_phi, dtype=dtype, device=device)  # (..., d_φ)
        self.t = 0
        self.history: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __repr__(self) -> str:
        return f"GatedState({self.phi.name!r}, S={tuple(self.S.shape)}, t={self.t})"

    def _features(self, x, query: bool):
        return (self.phi.query(x) if query else self.phi.key(x)).to(self.S.dtype)  # (..., d_φ)

    def readout(self, q_t):
        """out = φ(q_t)ᵀS (÷ φ(q_t)ᵀz + eps) without changing the state: (..., d) -> (..., d_v)."""
        check_token(self, q_t, "q_t", self.d)
        out = gated_readout(self._features(q_t, True), self.S, self.z, eps=self.eps, normalize=self.normalize)
        return out.to(q_t.dtype)

    def step(self, q_t, k_t, v_t, g_t):
        """Decay the state by exp(g_t), write φ(k_t)v_tᵀ, read it out with q_t -> (..., d_v)."""
        check_token(self, q_t, "q_t", self.d)
        check_token(self, k_t, "k_t", self.d)
        check_token(self, v_t, "v_t", self.d_v)
        _check_log_decay(g_t, self.batch_shape, self.d_phi, "g_t")
        g = g_t.to(self.S.dtype)
        g = g.unsqueeze(-1) if g.dim() == len(self.batch_shape) else g  # (..., 1 | d_φ)
        self.S, self.z = gated_step(self.S, self.z, self._features(k_t, False), v_t.to(self.S.dtype), g)
        self.t += 1
        if self.record:
            self.history.append(self.snapshot())
        return self.readout(q_t)

    def prefill(self, q, k, v, log_decay, *, chunk_size=64):
        """Absorb a prefix with the chunkwise form; returns its outputs (*batch_shape, N, d_v). Needs t == 0."""
        check_prefill(self, q, k, v)
        out, state = gated_linear_attention(q, k, v, log_decay, feature_map=self.phi, normalize=self.normalize,
                                            form="chunkwise", chunk_size=chunk_size, eps=self.eps,
                                            return_state=True)
        s, z = state if self.normalize else (state, None)
        self.S = s.to(self.S.dtype)
        if z is not None:
            self.z = z.to(self.z.dtype)
        self.t = q.shape[-2]
        if self.record:
            self.history.append(self.snapshot())
        return out

    def snapshot(self):
        """A copy of (S, z) to keep or plot."""
        return self.S.detach().clone(), self.z.detach().clone()

    def nbytes(self) -> int:
        """Bytes held by the state (S, and z when normalising): constant in t."""
        size = self.S.numel() * self.S.element_size()
        return size + (self.z.numel() * self.z.element_size() if self.normalize else 0)
