"""The delta rule: linear attention whose state is an online regression (DeltaNet, Gated DeltaNet).

Additive linear attention writes v_t under key k_t on top of whatever is already there. The
delta rule first reads what the state holds for k_t, then writes only the correction:

    S_t = S_{t−1} + β_t k_t (v_t − S_{t−1}ᵀ k_t)ᵀ = (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ
    out_t = S_tᵀ q_t

one step of gradient descent (learning rate β_t) on ½‖Sᵀk_t − v_t‖²: a repeated key
*overwrites* its value instead of adding to it. Gated DeltaNet decays the state first:

    S_t = exp(g_t) (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ,      g_t <= 0.

Kimi Delta Attention (KDA) gives every key channel its own decay, g_t (d,), applied to the rows of
S before the delta step (the order of flash-linear-attention's ``naive_recurrent_kda``):

    S_t = (I − β_t k_t k_tᵀ) Diag(exp(g_t)) S_{t−1} + β_t k_t v_tᵀ

(with one g on every channel the two factors commute: Gated DeltaNet).

With L2-normalised keys and β ∈ (0, 1], I − β k kᵀ is a contraction, so the state stays
bounded; with raw keys ‖k‖² β > 2 makes it grow without limit (normalize_keys=False shows it).

Chunkwise (the WY/UT form): inside a chunk, S_t = Γ_t S₀ + Σ_{s<=t} exp(b_t − b_s) k_s u_sᵀ with
b the chunk-local cumsum of g, Γ_t = exp(b_t) and "pseudo-values" u_t that solve a small unit
lower-triangular system T U = diag(β)(V − diag(Γ) K S₀), T = I + strict_tril(diag(β) (KKᵀ ⊙ D)),
D_ts = exp(b_t − b_s). So U = Ū − W S₀ with Ū = T⁻¹ diag(β) V and W = T⁻¹ diag(βΓ) K, both
independent of S₀, for every chunk at once through T⁻¹
(:func:`linattn_edu._blocks.unit_tril_inverse`). KDA's per-channel gate changes only the decays:
b_t is a (d,) vector, KKᵀ ⊙ D becomes A_ts = Σ_c k_tc k_sc exp(b_tc − b_sc) (and Q Kᵀ likewise),
Γ_t = Diag(exp(b_t)); the pairwise weights are built by a binary tree of blocks (every exponent
<= 0, :func:`linattn_edu._blocks.channel_decayed_scores`).

Every product with a lower-triangular matrix goes through ``_blocks.tril_product``, so a NaN or inf
at token t reaches only rows i >= t, as in the recurrence; gates are clamped at log(tiny) of the
dtype, so every valid gate (down to the most negative float) stays finite.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ._blocks import (batch_chunks, channel_decayed_scores, chunk_len, floor_log_decay, padded_block_len,
                      segment_sum, tril_product, unit_tril_inverse, zero_state)
from ._checks import (check_beta, check_bool, check_dense_budget, check_gate_values, check_initial_state,
                      check_log_decay, check_positive_int, check_qkv, compute_dtype)
from ._state import RecurrentState, Rule, check_token, register_rule

__all__ = [
    "delta_rule_attention", "DELTA_FORMS", "delta_step", "delta_recurrent_form", "delta_chunkwise_form",
    "DeltaState",
]

DELTA_FORMS = ("auto", "recurrent", "chunkwise")


def delta_step(s, k_t, v_t, beta_t, g_t=None):
    """One delta-rule write: S ← Diag(exp(g_t)) S, then S ← S + β_t k_t (v_t − Sᵀ k_t)ᵀ.

    s (..., d, d_v), k_t (..., d), v_t (..., d_v), beta_t (...), g_t (...) [one gate, Gated DeltaNet] or
    (..., d) [one per key channel, KDA] or None -> new S.
    """
    if g_t is not None and g_t.dim() == k_t.dim():
        s = g_t.exp().unsqueeze(-1) * s  # (..., d, 1) ⊙ (..., d, d_v): row c decays by exp(g_c) first (KDA)
    elif g_t is not None:
        s = g_t.exp()[..., None, None] * s  # (..., d, d_v): decay first (Gated DeltaNet)
    recalled = (k_t.unsqueeze(-2) @ s).squeeze(-2)  # (..., 1, d) @ (..., d, d_v) -> (..., d_v): Sᵀk
    error = beta_t.unsqueeze(-1) * (v_t - recalled)  # (..., d_v): β (v − Sᵀk)
    return torch.addcmul(s, k_t.unsqueeze(-1), error.unsqueeze(-2))  # S + (..., d, 1) ⊙ (..., 1, d_v): one pass


def delta_recurrent_form(q, k, v, beta, g=None, *, initial_state=None):
    """The reference: a loop over tokens of :func:`delta_step`, out_t = S_tᵀ q_t, from S₀ (or zeros).

    q, k (..., N, d), v (..., N, d_v), beta (..., N), g (..., N) or (..., N, d) or None, initial_state
    (..., d, d_v) or None -> out (..., N, d_v), S (..., d, d_v).
    """
    s = zero_state(q, v, z=False)[0] if initial_state is None else initial_state  # (..., d, d_v)
    per_channel = g is not None and g.dim() == q.dim()
    outs = []
    for t in range(q.shape[-2]):
        g_t = None if g is None else (g[..., t, :] if per_channel else g[..., t])  # (..., d) or (...)
        s = delta_step(s, k[..., t, :], v[..., t, :], beta[..., t], g_t)
        outs.append((q[..., t, :].unsqueeze(-2) @ s).squeeze(-2))  # (..., 1, d) @ (..., d, d_v) -> (..., d_v)
    return torch.stack(outs, dim=-2), s  # (..., N, d_v)


def delta_chunkwise_form(q, k, v, beta, g=None, *, chunk_size=64, initial_state=None):
    """Chunkwise delta rule (WY/UT transform), per chunk with incoming state S:

        U = Ū − W S,  out_c = diag(Γ) Q_c S + [(Q_c K_cᵀ) ⊙ D]_{t>=s} U,  S ← Γ_C S + (K_c ⊙ exp(b_C − b))ᵀ U

    Everything that does not need S runs for all chunks at once before the loop: the K Kᵀ and
    Q Kᵀ blocks, T⁻¹ diag(β) (:func:`linattn_edu._blocks.unit_tril_inverse` of T's strict lower part,
    then β scales its columns), Ū and W. The chunks are
    (B, n, C, ·) views of the inputs (:func:`linattn_edu._blocks.batch_chunks`): no copy before the
    batched products. The loop over chunks holds the state recursion and each chunk's output (four
    small matmuls a chunk) over ``unbind(1)`` views, so autograd's backward is linear in N too, and no
    (n, d, d_v) stack of chunk states is built. All exponents are
    <= 0. C is clamped to N. The carry is a loop on every device: its transition, Γ_C (I − K'ᵀW), is a
    d × d matrix per chunk, not a decay that a cumsum could carry.
    Cost per token and head: ≈ 6d² (the state work, as in the recurrent loop) + 10·C·d (the C×C
    blocks, Ū, W) + C (the solve) FLOPs — more than the loop, but in a few large matmuls
    instead of ~10 small ops per token.
    KDA (g per key channel): b_t (d,), the C×C products by :func:`linattn_edu._blocks.channel_decayed_scores`, Γ = Diag(exp(b)),
    and the state's rows decay separately, S ← Diag(exp(b_C)) S + ….
    q, k (..., N, d), v (..., N, d_v), beta (..., N), g (..., N) or (..., N, d) or None, initial_state
    (..., d, d_v) or None -> out (..., N, d_v), S (..., d, d_v).
    """
    lead, n = q.shape[:-2], q.shape[-2]
    c = chunk_len(n, chunk_size)
    per_channel = g is not None and g.dim() == q.dim()
    if per_channel:  # the tree pads each chunk to a power of two: (..., N, 2C) weights at most
        c_blocks = padded_block_len(c)
        check_dense_budget((*lead, -(-n // c) * c_blocks, c_blocks), q.dtype,
                           "the KDA chunkwise form's (..., N, C) intra-chunk blocks", "use a smaller chunk_size")
    qc, kc, vc = (batch_chunks(x, c) for x in (q, k, v))  # (B, n, C, d | d_v); padded k = v = 0
    bc = batch_chunks(beta.unsqueeze(-1), c)  # (B, n, C, 1); padded β = 0: those rows write nothing
    q_in, k_out, kw, keep = qc, kc, kc, None  # ungated: no decay anywhere
    if per_channel:  # KDA: row c of S decays by exp(b_tc − b_sc) <= 1, each channel its own
        gc = batch_chunks(g, c)  # (B, n, C, d); padded g = 0
        b = gc.cumsum(-2)  # (B, n, C, d): chunk-local cumulative log-decay per channel
        kk = channel_decayed_scores(kc, kc, b)  # (B, n, C, C): Σ_c k_tc k_sc exp(b_tc − b_sc), t >= s
        qk = channel_decayed_scores(qc, kc, b)  # (B, n, C, C): Σ_c q_tc k_sc exp(b_tc − b_sc), t >= s
        b_last = b[..., -1:, :]  # (B, n, 1, d)
        q_in = qc * b.exp()  # (B, n, C, d): queries read S decayed to their step, Γ_t q_t
        kw = kc * b.exp()  # (B, n, C, d): Γ_t k_t, the keys W is built from
        k_out = kc * (b_last - b).exp()  # (B, n, C, d): keys written, decayed to the chunk's end
        keep = b_last.transpose(-2, -1).exp()  # (B, n, d, 1): the chunk's total decay, one per row of S
    else:
        kk = kc @ kc.transpose(-2, -1)  # (B, n, C, d) @ (B, n, d, C) -> (B, n, C, C)
        qk = qc @ kc.transpose(-2, -1)  # (B, n, C, d) @ (B, n, d, C) -> (B, n, C, C)
    if g is not None and not per_channel:  # Gated DeltaNet: decay every product by exp(b_t − b_s) <= 1
        gc = batch_chunks(g.unsqueeze(-1), c)  # (B, n, C, 1); padded g = 0
        b = gc.cumsum(-2)  # (B, n, C, 1): chunk-local cumulative log-decay
        dmask = segment_sum(gc.squeeze(-1)).exp()  # (B, n, C, C): D_ts = exp(b_t − b_s), t >= s, else 0
        kk, qk = kk.mul_(dmask), qk.mul_(dmask)  # (B, n, C, C); entries above the diagonal are dropped below
        b_last = b[..., -1:, :]  # (B, n, 1, 1)
        q_in = qc * b.exp()  # (B, n, C, d): queries read S decayed to their step
        kw = kc * b.exp()  # (B, n, C, d): ΓK, the keys W is built from
        k_out = kc * (b_last - b).exp()  # (B, n, C, d): keys written, decayed to the chunk's end
        keep = b_last.exp()  # (B, n, 1, 1): the chunk's total decay
    t_mat = kk.mul_(bc)  # (B, n, C, C): T − I = strict_tril(diag(β) KKᵀ ⊙ D), only its strict lower part read
    t_inv_b = unit_tril_inverse(t_mat) * bc.transpose(-2, -1)  # (B, n, C, C) ⊙ (B, n, 1, C): T⁻¹ diag(β)
    u_bar = tril_product(t_inv_b, vc)  # (B, n, C, C) @ (B, n, C, d_v) -> (B, n, C, d_v): Ū = T⁻¹ βV
    w = tril_product(t_inv_b, kw)  # (B, n, C, C) @ (B, n, C, d) -> (B, n, C, d): W = T⁻¹ βΓK
    s = q.new_zeros(qc.shape[0], q.shape[-1], v.shape[-1]) if initial_state is None else \
        initial_state.reshape(-1, *initial_state.shape[-2:])  # (B, d, d_v)
    keeps = [None] * qc.shape[1] if keep is None else keep.unbind(1)
    outs = []
    for u_bar_i, w_i, k_out_i, keep_i, q_i, qk_i in zip(u_bar.unbind(1), w.unbind(1), k_out.unbind(1), keeps,
                                                         q_in.unbind(1), qk.tril_().unbind(1)):  # the state recursion
        u = torch.baddbmm(u_bar_i, w_i, s, alpha=-1)  # Ū − W S: (B, C, d) @ (B, d, d_v) -> (B, C, d_v)
        outs.append(tril_product(qk_i, u, acc=q_i @ s))  # the past through S + this chunk: (B, C, d_v)
        s = s if keep_i is None else keep_i * s  # (B, 1 | d, 1) ⊙ (B, d, d_v)
        s = torch.baddbmm(s, k_out_i.transpose(-2, -1), u)  # S + K'ᵀU: (B, d, C) @ (B, C, d_v) -> (B, d, d_v)
    out = torch.stack(outs, 1).flatten(1, 2)[:, :n]  # (B, n, C, d_v) -> (B, N, d_v)
    return out.reshape(*lead, n, v.shape[-1]), s.reshape(*lead, *s.shape[-2:])  # (..., N, d_v), (..., d, d_v)


def _check_delta_args(q, k, v, beta, log_decay, normalize_keys, form, chunk_size, return_state, initial_state,
                      allow_negative_eigenvalues):
    check_qkv(q, k, v, causal=True)
    if form not in DELTA_FORMS:
        raise ValueError(f"form must be one of {DELTA_FORMS}; got {form!r}")
    check_positive_int(chunk_size, "chunk_size")
    check_bool(normalize_keys, "normalize_keys")
    check_bool(return_state, "return_state")
    check_bool(allow_negative_eigenvalues, "allow_negative_eigenvalues")
    check_beta(beta, q.shape[:-1], q.device, maximum=2.0 if allow_negative_eigenvalues else 1.0)
    if log_decay is not None:
        check_log_decay(log_decay, q.shape[:-1], q.shape[-1], q.device)
    state = check_initial_state(initial_state, {"S": (*q.shape[:-2], q.shape[-1], v.shape[-1])}, q.device)
    return None if state is None else state[0]


def delta_rule_attention(q, k, v, beta, *, log_decay=None, normalize_keys=True, form="auto", chunk_size=64,
                         return_state=False, initial_state=None, allow_negative_eigenvalues=False):
    """DeltaNet, Gated DeltaNet and KDA: S_t = (I − β_t k_t k_tᵀ) Diag(exp(g_t)) S_{t−1} + β_t k_t v_tᵀ.

    Args:
        q, k: (..., N, d); v: (..., N, d_v).
        beta: (..., N), each in (0, 1] (or (0, 2], see below): the write strength (learning rate) per token.
        log_decay: None (DeltaNet), (..., N) with entries <= 0 (Gated DeltaNet's exp(g_t), one per token), or
            (..., N, d) with entries <= 0 (Kimi Delta Attention: one decay per key channel, the rows of S
            decay separately before the delta step).
        normalize_keys: L2-normalise keys (the state stays bounded); False shows it blow up.
        form: "recurrent" (the reference loop), "chunkwise" (WY/UT), or "auto" (chunkwise).
        chunk_size: C for the chunkwise form (any N; clamped to N).
        return_state: also return the final state S (..., d, d_v) (float32 for half inputs).
        initial_state: S (..., d, d_v) from an earlier call; the recurrence starts from it.
        allow_negative_eigenvalues: admit β ∈ (0, 2]: the transition I − β k kᵀ (unit k) has eigenvalue
            1 − β ∈ [−1, 1) along k, so a state can flip sign — what parity needs (Grazzi et al., 2025).

    Returns out_t = S_tᵀ q_t, (..., N, d_v) in q's dtype, or (out, S).
    """
    s0 = _check_delta_args(q, k, v, beta, log_decay, normalize_keys, form, chunk_size, return_state, initial_state,
                           allow_negative_eigenvalues)
    work = compute_dtype(q.dtype)
    qw, kw, vw, bw = q.to(work), k.to(work), v.to(work), beta.to(work)  # (..., N, ·), (..., N)
    if normalize_keys:
        kw = F.normalize(kw, dim=-1)  # (..., N, d): ‖k_t‖ = 1 (a zero key stays zero)
    g = None if log_decay is None else floor_log_decay(log_decay.to(work))  # (..., N)
    s0 = None if s0 is None else s0.to(work)
    if form == "recurrent":
        out, s = delta_recurrent_form(qw, kw, vw, bw, g, initial_state=s0)
    else:
        out, s = delta_chunkwise_form(qw, kw, vw, bw, g, chunk_size=chunk_size, initial_state=s0)
    out = out.to(q.dtype)
    return (out, s) if return_state else out


class DeltaState(RecurrentState):
    """Running delta-rule state S (*batch_shape, d, d_v), one token at a time (the protocol of linattn_edu._state).

    ``step(q_t, k_t, v_t, beta_t, g_t=None)`` writes β_t k_t (v_t − Sᵀk_t)ᵀ (after decaying by
    exp(g_t): g_t (*batch_shape,) one gate, or (*batch_shape, d) one per key channel, KDA) and returns S_tᵀ q_t; a repeated key overwrites its value. ``prefill(q, k, v, beta,
    log_decay=None)`` runs the chunkwise form from the current state; ``recall(k)`` reads what S
    holds for a key. A call that fails its checks leaves the state untouched.
    """

    def __init__(self, d, d_v, *, normalize_keys=True, batch_shape=(), dtype=torch.float32, device=None,
                 record=False, allow_negative_eigenvalues=False):
        check_bool(normalize_keys, "normalize_keys")
        check_bool(allow_negative_eigenvalues, "allow_negative_eigenvalues")
        self.normalize_keys, self.beta_max = normalize_keys, 2.0 if allow_negative_eigenvalues else 1.0
        super().__init__(d, d_v, batch_shape=batch_shape, dtype=dtype, device=device, record=record)

    def _field_shapes(self):
        return {"S": (self.d, self.d_v)}

    def _check_gates(self, beta_t, g_t=None):
        check_beta(beta_t, self.batch_shape, self.device, "beta_t", values=False)
        if g_t is not None:
            check_log_decay(g_t, self.batch_shape, self.d, self.device, "g_t", values=False)
        check_gate_values(beta=(beta_t, "beta_t", self.beta_max), log_decay=None if g_t is None else (g_t, "g_t"))  # one sync
        return (beta_t, g_t)

    def _key(self, k_t):
        return F.normalize(k_t, dim=-1) if self.normalize_keys else k_t  # (..., d)

    def _update(self, tensors, q_t, k_t, v_t, beta_t, g_t):
        return (delta_step(tensors[0], self._key(k_t), v_t, beta_t, None if g_t is None else floor_log_decay(g_t)),)

    def _read(self, tensors, q_t):
        return (q_t.unsqueeze(-2) @ tensors[0]).squeeze(-2)  # (..., 1, d) @ (..., d, d_v) -> (..., d_v)

    def _attend(self, q, k, v, beta, log_decay=None, *, chunk_size):
        return delta_rule_attention(q, k, v, beta, log_decay=log_decay, normalize_keys=self.normalize_keys,
                                    form="chunkwise", chunk_size=chunk_size, initial_state=self.S, return_state=True,
                                    allow_negative_eigenvalues=self.beta_max > 1)

    def step(self, q_t, k_t, v_t, beta_t, g_t=None):
        """Write token t with the delta rule, then read it out with q_t -> (*batch_shape, d_v)."""
        return super().step(q_t, k_t, v_t, beta_t, g_t)

    def prefill(self, q, k, v, beta, *, log_decay=None, chunk_size=64):
        """Absorb N tokens with the chunkwise form from the current state -> out (*batch_shape, N, d_v)."""
        return super().prefill(q, k, v, beta, log_decay, chunk_size=chunk_size)

    def recall(self, k_t):
        """What the state returns for key k_t (normalised like a written key): Sᵀk -> (*batch_shape, d_v)."""
        check_token(self, k_t, "k_t", self.d)
        return self._read(self.tensors, self._key(k_t.to(self.dtype)))


def _delta_gates(lead, d, generator, dtype, device) -> dict:
    """β ∈ [0.1, 1] per token."""
    beta = 0.1 + 0.9 * torch.rand(*lead, generator=generator, dtype=torch.float64)  # (..., N)
    return {"beta": beta.to(dtype=dtype, device=device)}


def _gated_delta_gates(lead, d, generator, dtype, device) -> dict:
    """β ∈ [0.1, 1] and one log-decay g ∈ [−0.5, −0.01] per token."""
    g = -(0.01 + 0.49 * torch.rand(*lead, generator=generator, dtype=torch.float64))  # (..., N)
    return _delta_gates(lead, d, generator, dtype, device) | {"log_decay": g.to(dtype=dtype, device=device)}


def _kda_gates(lead, d, generator, dtype, device) -> dict:
    """β ∈ [0.1, 1] per token and one log-decay g ∈ [−0.5, −0.01] per token and key channel."""
    g = -(0.01 + 0.49 * torch.rand(*lead, d, generator=generator, dtype=torch.float64))  # (..., N, d)
    return _delta_gates(lead, d, generator, dtype, device) | {"log_decay": g.to(dtype=dtype, device=device)}


register_rule(Rule("delta", "delta rule (DeltaNet)", delta_rule_attention, DeltaState, ("recurrent", "chunkwise"),
                   _delta_gates))
register_rule(Rule("gated_delta", "gated delta rule (Gated DeltaNet)", delta_rule_attention, DeltaState,
                   ("recurrent", "chunkwise"), _gated_delta_gates))
register_rule(Rule("kda", "KDA, gated delta with one gate per key channel", delta_rule_attention, DeltaState,
                   ("recurrent", "chunkwise"), _kda_gates))
