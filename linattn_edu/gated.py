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
G_i − G_j = Σ_{j<t<=i} g_t <= 0 (chunk-local in the chunkwise form), and clamps g at log(tiny)
of the dtype (a decay that is 0 there anyway), so it stays finite for every valid gate, down to the
most negative float. Half-precision inputs are computed, and the state kept, in float32.
A NaN or inf at token t reaches only rows i >= t in every form: masks are written with where/tril,
never by multiplying with 0.

Forms: "recurrent" (the reference: a loop over time), "parallel" (quadratic, N² memory),
"chunkwise" (intra-chunk quadratic + a decayed state carried across chunks), "auto".
"""
from __future__ import annotations

import torch

from ._blocks import (channel_decayed_scores, chunk_len, chunks_first, decayed_scan, floor_log_decay,
                      padded_block_len, segment_sum, tril_product, zero_state)
from ._checks import (check_bool, check_dense_budget, check_eps, check_initial_state, check_log_decay,
                      check_positive_int, check_qkv, compute_dtype, parse_dtype, safe_divide)
from ._state import RecurrentState, Rule, register_rule
from .feature_maps import featurize, resolve_feature_map

__all__ = [
    "gated_linear_attention", "GATED_FORMS", "retnet_log_decay", "gated_step", "gated_readout",
    "gated_recurrent_form", "gated_parallel_form", "gated_chunkwise_form", "decay_mask",
    "channel_gated_scores", "GatedState",
]

GATED_FORMS = ("auto", "recurrent", "parallel", "chunkwise")


def retnet_log_decay(heads, *, dtype=torch.float32) -> torch.Tensor:
    """RetNet's fixed per-head decay, as a log: log γ_h with γ_h = 1 − 2^(−5−h), h = 0 … heads−1.

    Returns (heads,) in a floating ``dtype`` (a torch dtype or its name): γ runs from 0.969
    (head 0, a short memory of ~32 tokens) towards 1.
    Broadcast it over tokens for gated_linear_attention: ``g[:, None].expand(heads, N)``.
    """
    check_positive_int(heads, "heads")
    dtype = parse_dtype(dtype)  # an integer dtype would round every log γ to 0: no decay at all
    h = torch.arange(heads, dtype=torch.float64)  # (H,)
    return torch.log1p(-torch.pow(2.0, -5.0 - h)).to(dtype)  # (H,)


# The recurrent step: the one-line change to linear attention --------------------------------
def gated_step(s, z, fk_t, v_t, g_t):
    """One token into a decayed state: S = exp(g_t) ⊙ S + φ(k_t)v_tᵀ, z = exp(g_t) ⊙ z + φ(k_t).

    s (..., d_φ, d_v), z (..., d_φ) or None (not normalising), fk_t (..., d_φ), v_t (..., d_v),
    g_t (..., 1) for one gate on every channel or (..., d_φ) for one per key channel -> new (S, z).
    """
    a = g_t.exp()  # (..., 1 | d_φ): the decay, in [0, 1]
    s = torch.addcmul(a.unsqueeze(-1) * s, fk_t.unsqueeze(-1), v_t.unsqueeze(-2))  # exp(g) ⊙ S + φ(k)vᵀ: (..., d_φ, d_v)
    return s, (None if z is None else a * z + fk_t)  # (..., d_φ)


def gated_readout(fq_t, s, z, *, eps=1e-6, normalize=False):
    """out_t = φ(q_t)ᵀS (÷ φ(q_t)ᵀz + eps): fq_t (..., d_φ), S (..., d_φ, d_v), z (..., d_φ) -> (..., d_v)."""
    num = (fq_t.unsqueeze(-2) @ s).squeeze(-2)  # (..., 1, d_φ) @ (..., d_φ, d_v) -> (..., d_v)
    if not normalize:
        return num
    return safe_divide(num, (fq_t * z).sum(-1, keepdim=True), eps)  # (..., d_v)


def gated_recurrent_form(fq, fk, v, g, *, eps=1e-6, normalize=False, initial_state=None):
    """The reference: a loop over tokens applying :func:`gated_step` then :func:`gated_readout`.

    fq, fk (..., N, d_φ), v (..., N, d_v), g (..., N, 1 | d_φ), initial_state (S₀, z₀ or None) or None
    -> out (..., N, d_v), final (S, z) (z None when not normalising).
    """
    s, z = initial_state or zero_state(fq, v, z=normalize)
    outs = []
    for t in range(fq.shape[-2]):
        s, z = gated_step(s, z, fk[..., t, :], v[..., t, :], g[..., t, :])
        outs.append(gated_readout(fq[..., t, :], s, z, eps=eps, normalize=normalize))  # (..., d_v)
    return torch.stack(outs, dim=-2), (s, z)  # (..., N, d_v)


# The decay mask and the parallel form ----------------------------------------------------------
def decay_mask(log_decay: torch.Tensor) -> torch.Tensor:
    """L_ij = exp(G_i − G_j) for i >= j, 0 above: log_decay (..., N) -> (..., N, N).

    The 1-semiseparable mask of a scalar gate; with log_decay = 0 it is the causal mask.
    """
    return segment_sum(log_decay).exp()  # (..., N, N); exp(−inf) = 0


def gated_parallel_form(fq, fk, v, g, *, eps=1e-6, normalize=False, initial_state=None):
    """The quadratic form: A_ij = Σ_c φ(q_i)_c φ(k_j)_c exp(G_ic − G_jc) for i >= j, out = A V (÷ A1).

    fq, fk (..., N, d_φ), v (..., N, d_v), g (..., N, 1 | d_φ) -> out (..., N, d_v), A (..., N, N).
    A scalar gate gives A = (φ(Q)φ(K)ᵀ) ⊙ L with L the decay mask; a per-channel gate needs an
    (..., N, N, d_φ) tensor — this form is the reference for pictures, not for long N.
    An initial state (S₀, z₀) is read by every row through the decay so far, exp(G_i) = exp(Σ_{t<=i} g_t):
    out_i += (φ(q_i) ⊙ exp(G_i))ᵀ S₀.
    """
    seg = segment_sum(g.transpose(-2, -1))  # (..., 1 | d_φ, N, N): G_i − G_j per channel, −inf above
    if g.shape[-1] == 1:
        a = (fq @ fk.transpose(-2, -1)) * seg.squeeze(-3).exp()  # (..., N, N) ⊙ L
    else:
        a = torch.einsum("...ic,...jc,...cij->...ij", fq, fk, seg.exp())  # (..., N, N)
    a = a.tril()  # overwrite j > i (0·NaN from a bad future key is NaN; tril writes 0)
    num, den = tril_product(a, v), a.sum(-1, keepdim=True)  # (..., N, d_v), (..., N, 1)
    if initial_state is not None:
        s0, z0 = initial_state
        fq_in = fq * g.cumsum(-2).exp()  # (..., N, d_φ): the query reads S₀ decayed to its step
        num = num + fq_in @ s0  # (..., N, d_φ) @ (..., d_φ, d_v)
        if normalize:
            den = den + fq_in @ z0.unsqueeze(-1)  # (..., N, 1)
    return (safe_divide(num, den, eps) if normalize else num), a


# Chunkwise form ---------------------------------------------------------------------------------
def channel_gated_scores(q, k, b):
    """Per-channel gated intra-chunk weights A_ij = Σ_c q_ic k_jc exp(b_ic − b_jc) for i >= j, 0 above.

    q, k (..., C, d_φ), b (..., C, d_φ) the chunk-local cumulative log-decay (non-increasing along C)
    -> A (..., C, C). The decay differs per channel, so A is no single matmul; building the whole
    (C, C, d_φ) decay tensor would cost C·d_φ numbers per weight. A binary tree of blocks builds it
    with every exponent <= 0 (:func:`linattn_edu._blocks.channel_decayed_scores`, shared with KDA).
    """
    return channel_decayed_scores(q, k, b)  # (..., C, C)


def check_gated_chunk_budget(fq, g, c: int) -> None:
    """Raise MemoryBudgetError before the chunkwise form's (..., N, C) intra-chunk blocks exceed the budget.

    C is already clamped to N (the per-channel form pads each chunk to a power of two, at most 2C).
    """
    lead, n = fq.shape[:-2], fq.shape[-2]
    c_blocks = c if g.shape[-1] == 1 else padded_block_len(c)
    n_pad = -(-n // c) * c_blocks
    check_dense_budget((*lead, n_pad, c_blocks), fq.dtype, "the gated chunkwise form's (..., N, C) intra-chunk blocks",
                       "use a smaller chunk_size")


def gated_chunkwise_form(fq, fk, v, g, *, chunk_size=64, eps=1e-6, normalize=False, initial_state=None):
    """Chunkwise: per chunk c (state S before it, b = chunk-local cumsum of g, all exponents <= 0):

        out_c = (φ(Q_c) ⊙ exp(b)) S + [(φ(Q_c)φ(K_c)ᵀ) ⊙ exp(b_i − b_j)]_{i>=j} V_c
        S ← exp(b_C) ⊙ S + (φ(K_c) ⊙ exp(b_C − b))ᵀ V_c

    (per-channel gates: the intra-chunk weights sum exp(b_ic − b_jc) over channels, computed block by
    block by channel_gated_scores). With a scalar gate this is SSD's block decomposition of
    the semiseparable matrix: diagonal blocks dense, off-diagonal blocks through the state.
    Everything but the carry runs for all chunks at once; the carry (``_blocks.decayed_scan``) is a
    loop over ``unbind`` views on a CPU and loop-free on a GPU or under torch.compile, so forward
    and backward are linear in N. C is clamped to N.
    fq, fk (..., N, d_φ), v (..., N, d_v), g (..., N, 1 | d_φ), initial_state (S₀, z₀ or None) or None
    -> out (..., N, d_v), final (S, z) (z None when not normalising).
    """
    lead, n, d_phi, d_v = fq.shape[:-2], fq.shape[-2], fq.shape[-1], v.shape[-1]
    c = chunk_len(n, chunk_size)
    check_gated_chunk_budget(fq, g, c)
    s0, z0 = initial_state or zero_state(fq, v, z=normalize)
    if normalize:  # the denominator is the same product with v -> 1: carry [S, z] together
        v = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)  # (..., N, d_v + 1)
        s0 = torch.cat([s0, z0.unsqueeze(-1)], dim=-1)  # (..., d_φ, d_v + 1)
    # padded tokens have φ(k) = 0, v = 0 and g = 0 (decay 1): they leave the state unchanged
    q, k, vv, gg = (chunks_first(x, c) for x in (fq, fk, v, g))  # (n, B, C, ·)
    b = gg.cumsum(-2)  # (n, B, C, 1 | d_φ): chunk-local cumulative log-decay, <= 0
    b_last = b[..., -1:, :]  # (n, B, 1, 1 | d_φ)
    if g.shape[-1] == 1:
        a = (q @ k.transpose(-2, -1)) * segment_sum(gg.squeeze(-1)).exp()  # (n, B, C, C) ⊙ chunk mask
        a = a.tril_()  # j > i overwritten (a NaN key times a 0 mask would be NaN)
    else:
        a = channel_gated_scores(q, k, b)  # (n, B, C, C)
    out = tril_product(a, vv)  # intra-chunk: (n, B, C, C) @ (n, B, C, e) -> (n, B, C, e)
    kv = (k * (b_last - b).exp()).transpose(-2, -1) @ vv  # keys decayed to the chunk's end: (n, B, d_φ, C) @ (n, B, C, e)
    starts, s = decayed_scan(kv, b_last.transpose(-2, -1), s0.reshape(-1, *s0.shape[-2:]))  # (n, B, d_φ, e), (B, d_φ, e)
    out = out + (q * b.exp()) @ starts  # + the past: (n, B, C, d_φ) @ (n, B, d_φ, e) -> (n, B, C, e)
    out = out.transpose(0, 1).flatten(1, 2)[:, :n].reshape(*lead, n, vv.shape[-1])  # (..., N, e)
    s = s.reshape(*lead, d_phi, vv.shape[-1])  # (..., d_φ, e)
    if not normalize:
        return out, (s, None)
    return safe_divide(out[..., :d_v], out[..., d_v:], eps), (s[..., :d_v], s[..., d_v])


# The public entry point --------------------------------------------------------------------------
def _check_gated_args(q, k, v, log_decay, feature_map, normalize, form, chunk_size, eps, return_state,
                      initial_state):
    check_qkv(q, k, v, causal=True)
    if form not in GATED_FORMS:
        raise ValueError(f"form must be one of {GATED_FORMS}; got {form!r}")
    check_positive_int(chunk_size, "chunk_size")
    check_eps(eps)
    check_bool(normalize, "normalize")
    check_bool(return_state, "return_state")
    phi = resolve_feature_map(feature_map, q.shape[-1], normalize=normalize)
    d_phi, lead = phi.d_out(q.shape[-1]), q.shape[:-2]
    check_log_decay(log_decay, q.shape[:-1], d_phi, q.device)
    shapes = {"S": (*lead, d_phi, v.shape[-1])} | ({"z": (*lead, d_phi)} if normalize else {})
    state = check_initial_state(initial_state, shapes, q.device)
    return phi, state


def gated_linear_attention(q, k, v, log_decay, *, feature_map="identity", normalize=False, form="auto",
                           chunk_size=64, eps=1e-6, return_state=False, initial_state=None):
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
        chunk_size: C for the chunkwise form (any N; clamped to N).
        return_state: also return the final state: S (..., d_φ, d_v), or (S, z (..., d_φ))
            when normalize=True.
        initial_state: the state an earlier call returned (same format); the recurrence starts from it.

    Returns out (..., N, d_v) in q's dtype, or (out, state) with the state in float32/float64.
    """
    phi, state = _check_gated_args(q, k, v, log_decay, feature_map, normalize, form, chunk_size, eps,
                                   return_state, initial_state)
    fq, fk = featurize(q, k, phi)  # (..., N, d_φ) in the compute dtype
    work = fq.dtype
    vw = v.to(work)  # (..., N, d_v)
    g = floor_log_decay(log_decay.to(work))  # a decay below log(tiny) is 0 anyway
    g = g.unsqueeze(-1) if g.dim() == q.dim() - 1 else g  # (..., N, 1 | d_φ)
    if state is not None:
        state = (state[0].to(work), state[1].to(work) if normalize else None)
    kwargs = dict(eps=eps, normalize=normalize, initial_state=state)
    if form == "parallel":
        check_dense_budget((*q.shape[:-1], q.shape[-2], g.shape[-1]), work,
                           "the parallel form's (..., N, N, channels) decay mask", "use form='chunkwise'")
        out, _ = gated_parallel_form(fq, fk, vw, g, **kwargs)
        if return_state:  # the parallel form has no state: read it off the chunkwise form
            _, final = gated_chunkwise_form(fq, fk, vw, g, chunk_size=chunk_size, **kwargs)
    elif form == "recurrent":
        out, final = gated_recurrent_form(fq, fk, vw, g, **kwargs)
    else:
        out, final = gated_chunkwise_form(fq, fk, vw, g, chunk_size=chunk_size, **kwargs)
    out = out.to(q.dtype)
    if not return_state:
        return out
    return out, (final if normalize else final[0])


# The step API: a decayed state for decoding and pictures ----------------------------------------
class GatedState(RecurrentState):
    """Running state of gated linear attention, one token at a time (the protocol of linattn_edu._state).

    Args:
        d: key/query dim; d_v: value dim; feature_map: φ (default "identity");
        normalize: keep z and divide by φ(q)ᵀz + eps; batch_shape, dtype, device, record: as every state.

    Attributes: S (*batch_shape, d_φ, d_v), and z (*batch_shape, d_φ) when normalising; t.
    ``step(q_t, k_t, v_t, g_t)`` takes one log-decay per step, g_t (*batch_shape,), or one per key
    channel, (*batch_shape, d_φ). ``prefill(q, k, v, log_decay)`` runs the chunkwise form from the
    current state. A call that fails its checks leaves the state untouched.
    """

    def __init__(self, d, d_v, *, feature_map="identity", normalize=False, batch_shape=(),
                 dtype=torch.float32, device=None, eps=1e-6, record=False):
        check_positive_int(d, "d")
        check_eps(eps)
        check_bool(normalize, "normalize")
        self.phi = resolve_feature_map(feature_map, d, normalize=normalize, owner="state")
        self.eps, self.normalize, self.d_phi = eps, normalize, self.phi.d_out(d)
        self.fields = ("S", "z") if normalize else ("S",)
        super().__init__(d, d_v, batch_shape=batch_shape, dtype=dtype, device=device, record=record)

    def _field_shapes(self):
        return {"S": (self.d_phi, self.d_v), "z": (self.d_phi,)}

    def _check_gates(self, g_t):
        check_log_decay(g_t, self.batch_shape, self.d_phi, self.device, "g_t")
        return (g_t,)

    def _update(self, tensors, q_t, k_t, v_t, g_t):
        g = floor_log_decay(g_t)
        g = g.unsqueeze(-1) if g.dim() == len(self.batch_shape) else g  # (..., 1 | d_φ)
        s, z = gated_step(tensors[0], tensors[1] if self.normalize else None, self.phi.key(k_t).to(self.dtype), v_t, g)
        return (s, z) if self.normalize else (s,)

    def _read(self, tensors, q_t):
        z = tensors[1] if self.normalize else None
        return gated_readout(self.phi.query(q_t).to(self.dtype), tensors[0], z, eps=self.eps, normalize=self.normalize)

    def _attend(self, q, k, v, log_decay, *, chunk_size):
        return gated_linear_attention(q, k, v, log_decay, feature_map=self.phi, normalize=self.normalize,
                                      form="chunkwise", chunk_size=chunk_size, eps=self.eps,
                                      initial_state=self.state, return_state=True)

    def prefill(self, q, k, v, log_decay, *, chunk_size=64):
        """Absorb N tokens with the chunkwise form from the current state -> out (*batch_shape, N, d_v)."""
        return super().prefill(q, k, v, log_decay, chunk_size=chunk_size)

    def __repr__(self) -> str:
        return f"GatedState({self.phi.name!r}, S={tuple(self.S.shape)}, t={self.t})"


def _scalar_gates(lead, d, generator, dtype, device) -> dict:
    """One log-decay per step, g ∈ [−0.5, −0.01] (decays 0.61 … 0.99)."""
    g = -(0.01 + 0.49 * torch.rand(*lead, generator=generator, dtype=torch.float64))  # (..., N)
    return {"log_decay": g.to(dtype=dtype, device=device)}


def _channel_gates(lead, d, generator, dtype, device) -> dict:
    """One log-decay per step and key channel (identity map: d_φ = d)."""
    g = -(0.01 + 0.49 * torch.rand(*lead, d, generator=generator, dtype=torch.float64))  # (..., N, d)
    return {"log_decay": g.to(dtype=dtype, device=device)}


register_rule(Rule("gated", "gated, one gate per step (RetNet, Mamba-2)", gated_linear_attention, GatedState,
                   ("recurrent", "parallel", "chunkwise"), _scalar_gates))
register_rule(Rule("gla", "GLA, one gate per key channel", gated_linear_attention, GatedState,
                   ("recurrent", "parallel", "chunkwise"), _channel_gates))
