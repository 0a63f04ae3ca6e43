"""Transitions beyond the diagonal: DeltaProduct (products of Householders) and DPLR (RWKV-7's rule).

Every recurrent rule in this library is S_t = A_t S_{t−1} + (write)_t with out_t = S_tᵀ q_t; what
changed from 2020 to 2025 is the transition A_t:

    diagonal decay (RetNet, GLA, Mamba-2)     A_t = Diag(e^{g_t})
    identity minus rank one (DeltaNet)        A_t = I − β_t k_t k_tᵀ           (eigenvalue 1 − β_t along k_t)
    … with a decay (Gated DeltaNet, KDA)      A_t = Diag(e^{g_t}) (I − β_t k_t k_tᵀ)
    products of Householders (DeltaProduct)   A_t = Π_{j=n_h..1} (I − β_{t,j} k_{t,j} k_{t,j}ᵀ) · e^{g_t}
    diagonal plus low rank (RWKV-7, DPLR)     A_t = Diag(e^{g_t}) + a_t b_tᵀ

**DeltaProduct** (Siems et al., 2025) takes n_h delta-rule steps per token: decay once, then

    S ← S + β_{t,j} k_{t,j} (v_{t,j} − Sᵀ k_{t,j})ᵀ,   j = 1..n_h,        out_t = S_tᵀ q_t  (after the last)

The product of n_h Householder-like factors can rotate the state (complex eigenvalues), which a
single rank-one step cannot: with β ∈ (0, 1] from three factors on (two positive semi-definite factors
have a product with real eigenvalues in [0, 1]), with β up to 2 from two (two reflections make a rotation). Its chunkwise form is the delta rule's: the N·n_h micro-steps are one
delta-rule sequence with the decay on each token's first micro-step, read at every n_h-th step
(``delta_rule_attention(form="chunkwise")`` does the work).

**DPLR** (the generalised delta rule of RWKV-7, Peng et al., 2025; FLA's ``generalized_delta_rule/dplr``):

    S_t = (Diag(e^{g_t}) + a_t b_tᵀ) S_{t−1} + k_t v_tᵀ,   out_t = S_tᵀ q_t,   g_t (d_k,) <= 0

both terms acting on S_{t−1}. With a = −βk, b = k, g = 0 and βk written in place of k it is the
delta rule; with a = −βk, b = e^{g} ⊙ k and βk in place of k it is Kimi Delta Attention (KDA: per-channel
decay, then a delta step, S = (I − βkkᵀ) Diag(e^{g}) S + βkvᵀ), and with one g on every channel, Gated
DeltaNet. :func:`dplr_transition` and :func:`delta_product_transition` build the d_k × d_k matrix A_t
(S_t = A_t S_{t−1} + write), whose eigenvalues say what the rule can track (|λ| <= 1 keeps the state
bounded; λ < 0 or complex λ let it flip or rotate, which parity and permutation tracking need).

Chunkwise DPLR (a WY form): inside a chunk with entry state S₀, chunk-local cumulative log-decays
B_t = Σ_{r<=t} g_r and u_t = S_{t−1}ᵀ b_t (what the low-rank term reads),

    S_t = Λ_t S₀ + Σ_{s<=t} Λ_t Λ_s⁻¹ (k_s v_sᵀ + a_s u_sᵀ),     Λ_t = Diag(e^{B_t})
    U = T⁻¹ (A_bk V + B̃ S₀),   T = I − A_ba (unit lower triangular),  B̃_t = Λ_{t−1} b_t
    A_bx[t, s] = b_tᵀ Λ_{t−1} Λ_s⁻¹ x_s  (s < t),    A_qx[t, s] = q_tᵀ Λ_t Λ_s⁻¹ x_s  (s <= t)
    O = (Q ⊙ e^{B}) S₀ + A_qk V + A_qa U,    S_C = Λ_C S₀ + (K ⊙ e^{B_C − B})ᵀ V + (A ⊙ e^{B_C − B})ᵀ U

with every pairwise decay factored through a point between t and s (all exponents <= 0). U = Ū + W S₀ with
Ū = T⁻¹ A_bk V and W = T⁻¹ B̃ independent of S₀, so the loop over chunks holds only the state.

Conventions in the field's reference code (flash-linear-attention, ``fla/ops/*/naive.py``) and ours:

- State orientation: FLA's naive references hold S as [K, V] (d_k × d_v) and read o = Sᵀq (einsum
  ``'bhk,bhkv->bhv'``), the same as this library. FLA's docstring comments write the transposed
  [V, K] view ("S_t = S_t (I + α βᵀ) + v kᵀ").
- Scale: FLA's references multiply q by d_k^−1/2 (``scale``); this library never scales q in the
  recurrent rules (pass ``q * d**-0.5`` for FLA's numbers). ``naive_recurrent_gated_delta_product``
  takes a ``scale`` argument but does not apply it.
- Decay: before the write, once per token, in both (KDA's ``S = S * exp(g)`` precedes the delta step;
  gated_delta_product decays before the first Householder).
- DeltaProduct layout: FLA stacks the micro-steps along time, k [B, T·n_h, H, K] with token i's
  j-th step at i·n_h + j; ours is k (..., N, n_h, d), which flattens to exactly that order.
- DPLR names: FLA's ``dplr_recurrence(q, k, v, alpha, beta, gk)`` computes
  S ← Diag(e^{gk}) S + β (αᵀ S) + k vᵀ, i.e. **our a is FLA's ``beta`` and our b is FLA's ``alpha``**
  (RWKV-7 uses alpha = −κ̂, beta = κ̂ ⊙ a). Both terms act on the undecayed S_{t−1} there too.
- Keys: FLA's naive references never normalise keys (the layers do, or the kernels with
  ``use_qk_l2norm_in_kernel``); our ``delta_product_attention`` L2-normalises each micro-step key by
  default (``normalize_keys=True``, as ``delta_rule_attention``); ``dplr_attention`` takes a, b, k as
  given.
- β: FLA allows β ∈ [0, 2] for DeltaProduct (negative eigenvalues); here β ∈ (0, 1], as the delta rule.
"""
from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F

from ._blocks import channel_decayed_scores, chunks_first, floor_log_decay, tril_product, unit_tril_inverse
from ._checks import (check_bool, check_dense_budget, check_gate_values, check_initial_state, check_positive_int,
                      check_tensor, compute_dtype)
from ._state import RecurrentState, Rule, check_token, register_rule
from .delta import delta_rule_attention

__all__ = [
    "TRANSITION_FORMS",
    "delta_product_attention", "delta_product_step", "delta_product_recurrent_form",
    "delta_product_chunkwise_form",
    "dplr_attention", "dplr_step", "dplr_recurrent_form", "dplr_chunkwise_form",
    "delta_product_transition", "dplr_transition", "DeltaProductState", "DPLRState",
]

TRANSITION_FORMS = ("auto", "recurrent", "chunkwise")
# whether the delta rule takes a starting state (the library's state protocol); see delta_product_chunkwise_form
_DELTA_TAKES_STATE = "initial_state" in inspect.signature(delta_rule_attention).parameters


# -- shared checks ---------------------------------------------------------------------------
def _check_same(x, q, name: str) -> None:
    """x must share q's dtype and device."""
    if x.dtype != q.dtype:
        raise TypeError(f"{name} must have q's dtype {q.dtype}; got {x.dtype}")
    if x.device != q.device:
        raise ValueError(f"{name} must be on {q.device}; got {x.device}")


def _check_shape(x, shape: tuple, name: str, what: str) -> None:
    if tuple(x.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} ({what}); got {tuple(x.shape)}")


def _check_log_decay(g, shape: tuple, q, what: str) -> None:
    """log_decay must be a floating tensor of ``shape`` on q's device, finite and <= 0 (one fused value check)."""
    check_tensor(g, "log_decay", min_rank=1)
    _check_shape(g, shape, "log_decay", what)
    if g.device != q.device:
        raise ValueError(f"log_decay must be on {q.device}; got {g.device}")
    check_gate_values(log_decay=(g, "log_decay"))


def _check_form(form, chunk_size, return_state) -> None:
    if form not in TRANSITION_FORMS:
        raise ValueError(f"form must be one of {TRANSITION_FORMS}; got {form!r}")
    check_positive_int(chunk_size, "chunk_size")
    check_bool(return_state, "return_state")


# -- DeltaProduct --------------------------------------------------------------------------------
def delta_product_step(s, k_t, v_t, beta_t, g_t=None):
    """One DeltaProduct token: S ← e^{g_t} S, then for j = 1..n_h: S ← S + β_j k_j (v_j − Sᵀk_j)ᵀ.

    s (..., d, d_v), k_t (..., n_h, d), v_t (..., n_h, d_v), beta_t (..., n_h), g_t (...) or None
    -> new S (..., d, d_v). The transition is e^{g_t} Π_j (I − β_j k_j k_jᵀ) (last micro-step leftmost).
    """
    if g_t is not None:
        s = g_t.exp()[..., None, None] * s  # (..., d, d_v): decay once per token, before the writes
    for j in range(k_t.shape[-2]):
        k, v, b = k_t[..., j, :], v_t[..., j, :], beta_t[..., j]  # (..., d), (..., d_v), (...)
        recalled = (k.unsqueeze(-2) @ s).squeeze(-2)  # (..., 1, d) @ (..., d, d_v) -> (..., d_v): Sᵀk
        s = s + k.unsqueeze(-1) * (b.unsqueeze(-1) * (v - recalled)).unsqueeze(-2)  # (..., d, d_v)
    return s


def delta_product_recurrent_form(q, k, v, beta, g=None, s0=None):
    """The reference: a loop over tokens of :func:`delta_product_step`, out_t = S_tᵀ q_t.

    q (..., N, d), k (..., N, n_h, d), v (..., N, n_h, d_v), beta (..., N, n_h), g (..., N) or None,
    s0 (..., d, d_v) or None -> out (..., N, d_v), S (..., d, d_v).
    """
    s = q.new_zeros(*q.shape[:-2], q.shape[-1], v.shape[-1]) if s0 is None else s0  # (..., d, d_v)
    outs = []
    for t in range(q.shape[-2]):
        s = delta_product_step(s, k[..., t, :, :], v[..., t, :, :], beta[..., t, :],
                               None if g is None else g[..., t])
        outs.append((q[..., t, :].unsqueeze(-2) @ s).squeeze(-2))  # (..., 1, d) @ (..., d, d_v) -> (..., d_v)
    return torch.stack(outs, dim=-2), s  # (..., N, d_v), (..., d, d_v)


def delta_product_chunkwise_form(q, k, v, beta, g=None, s0=None, *, chunk_size=64):
    """DeltaProduct as one delta-rule sequence of N·n_h micro-steps, run by the delta rule's chunkwise form.

    Micro-step (t, j) writes (k_{t,j}, v_{t,j}, β_{t,j}); its log-decay is g_t for j = 1 and 0 after;
    its query is q_t for j = n_h and 0 before, and out_t is the output of micro-step (t, n_h).
    A chunk holds chunk_size tokens (chunk_size·n_h micro-steps). Keys are used as given (normalise
    them first). An initial state S₀ goes to ``delta_rule_attention(initial_state=S₀)``; where that
    argument does not exist, S₀ is written by d leading micro-steps with k = e_i, β = 1 and v = row i of
    S₀ (each sets row i of a zero state: exact). Shapes as :func:`delta_product_recurrent_form`.
    """
    *lead, n, d = q.shape
    n_h, d_v = k.shape[-2], v.shape[-1]
    q_steps = torch.cat([q.new_zeros(*lead, n, n_h - 1, d), q.unsqueeze(-2)], dim=-2)  # (..., N, n_h, d)
    g_steps = None
    if g is not None:
        g_steps = torch.cat([g.unsqueeze(-1), g.new_zeros(*lead, n, n_h - 1)], dim=-1)  # (..., N, n_h)
        g_steps = g_steps.flatten(-2)  # (..., N·n_h)
    q_steps, k_steps, v_steps = q_steps.flatten(-3, -2), k.flatten(-3, -2), v.flatten(-3, -2)  # (..., N·n_h, ·)
    b_steps, state_kw, skip = beta.flatten(-2), {}, 0  # (..., N·n_h)
    if s0 is not None and _DELTA_TAKES_STATE:
        state_kw = {"initial_state": s0}
    elif s0 is not None:  # write S₀ first: d micro-steps k = e_i, β = 1, v = row i of S₀ set S = S₀ exactly
        eye = torch.eye(d, dtype=q.dtype, device=q.device).expand(*lead, d, d)  # (..., d, d)
        q_steps = torch.cat([torch.zeros_like(eye), q_steps], dim=-2)  # (..., d + N·n_h, d)
        k_steps, v_steps = torch.cat([eye, k_steps], dim=-2), torch.cat([s0, v_steps], dim=-2)
        b_steps = torch.cat([b_steps.new_ones(*lead, d), b_steps], dim=-1)  # (..., d + N·n_h)
        if g_steps is not None:
            g_steps = torch.cat([g_steps.new_zeros(*lead, d), g_steps], dim=-1)
        skip = d
    out, s = delta_rule_attention(q_steps, k_steps, v_steps, b_steps, log_decay=g_steps, normalize_keys=False,
                                  form="chunkwise", chunk_size=chunk_size * n_h, return_state=True,
                                  **state_kw)  # (..., [d +] N·n_h, d_v)
    return out[..., skip:, :].unflatten(-2, (n, n_h))[..., -1, :], s  # (..., N, d_v): each token's last micro-step


def _check_delta_product_args(q, k, v, beta, log_decay, normalize_keys, form, chunk_size, return_state,
                              initial_state):
    for x, name in ((q, "q"), (k, "k"), (v, "v"), (beta, "beta")):
        check_tensor(x, name, min_rank={"q": 2, "k": 3, "v": 3, "beta": 2}[name])
        if name != "q":
            _check_same(x, q, name)
    *lead, n, d = q.shape
    if n == 0 or d == 0:
        raise ValueError(f"q must be (..., N, d) with N >= 1 and d >= 1; got {tuple(q.shape)}")
    if k.dim() != q.dim() + 1 or tuple(k.shape[:-2]) != (*lead, n) or k.shape[-1] != d or k.shape[-2] == 0:
        raise ValueError(f"k must be (..., N, n_h, d) with (..., N) == {(*lead, n)} and d == q.shape[-1] == {d}, "
                         f"n_h >= 1; got {tuple(k.shape)}")
    n_h = k.shape[-2]
    if v.dim() != k.dim() or tuple(v.shape[:-1]) != tuple(k.shape[:-1]) or v.shape[-1] == 0:
        raise ValueError(f"v must be (..., N, n_h, d_v) with (..., N, n_h) == {tuple(k.shape[:-1])}; "
                         f"got {tuple(v.shape)}")
    _check_shape(beta, (*lead, n, n_h), "beta", "one β per token and micro-step")
    check_gate_values(beta=(beta, "beta", 1.0))  # in (0, 1]; NaN fails; a meta tensor has no values
    if log_decay is not None:
        _check_log_decay(log_decay, (*lead, n), q, "q.shape[:-1], one log-decay per token")
    check_bool(normalize_keys, "normalize_keys")
    _check_form(form, chunk_size, return_state)
    check_initial_state(initial_state, {"S": (*lead, d, v.shape[-1])}, q.device)


def delta_product_attention(q, k, v, beta, *, log_decay=None, normalize_keys=True, form="auto", chunk_size=64,
                            return_state=False, initial_state=None):
    """DeltaProduct: per token, decay once, then n_h delta-rule micro-steps; out_t = S_tᵀ q_t.

        S ← e^{g_t} S;   S ← S + β_{t,j} k_{t,j} (v_{t,j} − Sᵀ k_{t,j})ᵀ, j = 1..n_h;   out_t = Sᵀ q_t

    Args:
        q: (..., N, d); k: (..., N, n_h, d); v: (..., N, n_h, d_v): n_h key/value pairs per token.
        beta: (..., N, n_h), each in (0, 1].
        log_decay: None or (..., N), finite and <= 0 (Gated DeltaProduct), applied once per token.
        normalize_keys: L2-normalise every micro-step key (as ``delta_rule_attention``).
        form: "recurrent" (the reference loop), "chunkwise" (the N·n_h micro-steps through the delta
            rule's chunkwise form), or "auto" (chunkwise).
        chunk_size: tokens per chunk (C·n_h micro-steps), clamped to N.
        return_state: also return the final S (..., d, d_v) (float32 for half inputs).
        initial_state: S₀ (..., d, d_v) to start from (e.g. a previous call's state), or None (zeros).

    Returns out (..., N, d_v) in q's dtype, or (out, S). n_h = 1 is the delta rule. A NaN or inf in
    q, k or v at token t never reaches rows < t, in both forms (the delta rule's chunkwise form keeps a
    NaN at micro-step (t, j) in rows >= (t, j)).
    """
    _check_delta_product_args(q, k, v, beta, log_decay, normalize_keys, form, chunk_size, return_state,
                              initial_state)
    work = compute_dtype(q.dtype)
    qw, kw, vw, bw = q.to(work), k.to(work), v.to(work), beta.to(work)
    if normalize_keys:
        kw = F.normalize(kw, dim=-1)  # (..., N, n_h, d): each micro-step key unit length (0 stays 0)
    g = None if log_decay is None else floor_log_decay(log_decay.to(work))  # (..., N)
    s0 = None if initial_state is None else initial_state.to(work)  # (..., d, d_v)
    if form == "recurrent":
        out, s = delta_product_recurrent_form(qw, kw, vw, bw, g, s0)
    else:
        out, s = delta_product_chunkwise_form(qw, kw, vw, bw, g, s0, chunk_size=min(chunk_size, q.shape[-2]))
    out = out.to(q.dtype)
    return (out, s) if return_state else out


def delta_product_transition(k_t, beta_t, g_t=None):
    """A_t = e^{g_t} Π_{j=n_h..1} (I − β_j k_j k_jᵀ) (last micro-step leftmost), so that one token of
    :func:`delta_product_step` is S_t = A_t S_{t−1} + (what the writes add).

    k_t (..., n_h, d) (used as given: normalise first, as the attention does), beta_t (..., n_h),
    g_t (...) or None -> (..., d, d). With unit keys and β ∈ (0, 1] each factor has eigenvalues 1 (d − 1
    times) and 1 − β ∈ [0, 1); a product of two such factors still has real eigenvalues in [0, 1] (both
    are positive semi-definite), of three or more it can have complex ones (a rotation); with β up to 2
    (reflections) two factors already rotate.
    """
    check_tensor(k_t, "k_t")
    check_tensor(beta_t, "beta_t", min_rank=1)
    _check_shape(beta_t, k_t.shape[:-1], "beta_t", "k_t.shape[:-1], one β per micro-step")
    d = k_t.shape[-1]
    a = torch.eye(d, dtype=k_t.dtype, device=k_t.device).expand(*k_t.shape[:-2], d, d)  # (..., d, d)
    for j in range(k_t.shape[-2]):
        k = k_t[..., j, :]  # (..., d)
        a = a - beta_t[..., j, None, None] * k.unsqueeze(-1) * (k.unsqueeze(-2) @ a)  # (I − βkkᵀ) A
    return a if g_t is None else g_t.exp()[..., None, None] * a  # (..., d, d)


def dplr_transition(a_t, b_t, g_t=None):
    """A_t = Diag(e^{g_t}) + a_t b_tᵀ, so that :func:`dplr_step` is S_t = A_t S_{t−1} + k_t v_tᵀ.

    a_t, b_t (..., d_k), g_t (..., d_k) or None -> (..., d_k, d_k).
    """
    check_tensor(a_t, "a_t", min_rank=1)
    check_tensor(b_t, "b_t", min_rank=1)
    _check_shape(b_t, a_t.shape, "b_t", "a_t's shape")
    diag = torch.ones_like(a_t) if g_t is None else g_t.exp()  # (..., d_k)
    return torch.diag_embed(diag) + a_t.unsqueeze(-1) * b_t.unsqueeze(-2)  # (..., d_k, d_k)


# -- DPLR ----------------------------------------------------------------------------------------
def dplr_step(s, k_t, v_t, a_t, b_t, g_t=None):
    """One DPLR step: S ← Diag(e^{g_t}) S + a_t (b_tᵀ S) + k_t v_tᵀ (both terms read the old S).

    s (..., d_k, d_v), k_t, a_t, b_t (..., d_k), v_t (..., d_v), g_t (..., d_k) or None -> new S.
    """
    read = (b_t.unsqueeze(-2) @ s).squeeze(-2)  # (..., 1, d_k) @ (..., d_k, d_v) -> (..., d_v): Sᵀb
    kept = s if g_t is None else g_t.exp().unsqueeze(-1) * s  # (..., d_k, d_v): row c decays by e^{g_c}
    return kept + a_t.unsqueeze(-1) * read.unsqueeze(-2) + k_t.unsqueeze(-1) * v_t.unsqueeze(-2)  # (..., d_k, d_v)


def dplr_recurrent_form(q, k, v, a, b, g=None, s0=None):
    """The reference: a loop over tokens of :func:`dplr_step`, out_t = S_tᵀ q_t.

    q, k, a, b (..., N, d_k), v (..., N, d_v), g (..., N, d_k) or None, s0 (..., d_k, d_v) or None
    -> out (..., N, d_v), S (..., d_k, d_v).
    """
    s = q.new_zeros(*q.shape[:-2], q.shape[-1], v.shape[-1]) if s0 is None else s0  # (..., d_k, d_v)
    outs = []
    for t in range(q.shape[-2]):
        s = dplr_step(s, k[..., t, :], v[..., t, :], a[..., t, :], b[..., t, :], None if g is None else g[..., t, :])
        outs.append((q[..., t, :].unsqueeze(-2) @ s).squeeze(-2))  # (..., 1, d_k) @ (..., d_k, d_v) -> (..., d_v)
    return torch.stack(outs, dim=-2), s  # (..., N, d_v), (..., d_k, d_v)


def dplr_chunkwise_form(q, k, v, a, b, g=None, s0=None, *, chunk_size=64):
    """Chunkwise DPLR (the WY form in the module docstring); all chunks' intra-chunk work at once,
    then a loop over chunks that carries only S:

        U = Ū + W S,   O_c = (Q ⊙ e^{B}) S + A_qk V + A_qa U,
        S ← e^{B_C} ⊙ S + (K ⊙ e^{B_C − B})ᵀ V + (A ⊙ e^{B_C − B})ᵀ U

    The C×C blocks A_qk, A_qa (s <= t, decay e^{B_t − B_s}) and A_bk, A_ba (s < t, e^{B_{t−1} − B_s}) carry a
    per-channel decay; each is the binary block tree :func:`linattn_edu._blocks.channel_decayed_scores`
    (C·d_k work a weight, no (C, C, d_k) tensor), memory ≈ N·C per batch row for the four blocks.
    All exponents are <= 0. C is clamped to N. The blocks are masked with ``where`` and multiplied with
    ``tril_product``, so a NaN at token t stays in rows >= t. Shapes as :func:`dplr_recurrent_form`.
    """
    lead, n = q.shape[:-2], q.shape[-2]
    d_k, d_v = q.shape[-1], v.shape[-1]
    c = min(chunk_size, n)
    if g is None:
        g = q.new_zeros(q.shape)
    qc, kc, vc, ac, bc, gc = (chunks_first(x, c) for x in (q, k, v, a, b, g))  # (n, B, C, ·)
    check_dense_budget((gc.shape[1], gc.shape[0] * c, 4 * c), q.dtype,
                       "dplr_attention's four C×C blocks per chunk (B, N, 4·C)", "use fewer heads per call")
    cum = gc.cumsum(-2)  # (n, B, C, d_k): B_t, chunk-local
    cum_prev = F.pad(cum, (0, 0, 1, 0))[..., :-1, :]  # (n, B, C, d_k): B_{t−1} (0 at the chunk's start), exact
    a_qk, a_qa = (channel_decayed_scores(qc, y, cum) for y in (kc, ac))  # (n, B, C, C): e^{B_t − B_s}, s <= t
    a_bk, a_ba = (channel_decayed_scores(bc, y, cum, bx=cum_prev, strict=True)
                  for y in (kc, ac))  # (n, B, C, C): e^{B_{t−1} − B_s}, s < t
    to_end = (cum[..., -1:, :] - cum).exp()  # (n, B, C, d_k): e^{B_C − B_s} <= 1
    t_inv = unit_tril_inverse(a_ba.neg())  # (n, B, C, C): T⁻¹ for T = I − A_ba, unit lower triangular
    u_bar = tril_product(t_inv, tril_product(a_bk, vc))  # (n, B, C, d_v): Ū = T⁻¹ A_bk V
    w = tril_product(t_inv, bc * cum_prev.exp())  # (n, B, C, d_k): W = T⁻¹ B̃, B̃_t = Λ_{t−1} b_t
    k_end, a_end = kc * to_end, ac * to_end  # (n, B, C, d_k): keys and a's decayed to the chunk's end
    keep = cum[..., -1, :].exp().unsqueeze(-1)  # (n, B, d_k, 1): the chunk's total decay per row of S
    s = q.new_zeros(qc.shape[1], d_k, d_v) if s0 is None else s0.reshape(-1, d_k, d_v)  # (B, d_k, d_v)
    starts, us = [], []
    for u_bar_i, w_i, keep_i, k_end_i, v_i, a_end_i in zip(u_bar.unbind(0), w.unbind(0), keep.unbind(0),
                                                          k_end.unbind(0), vc.unbind(0), a_end.unbind(0)):
        # only the state recursion is sequential; unbind views keep the backward linear in N
        u = torch.baddbmm(u_bar_i, w_i, s)  # Ū + W S: (B, C, d_k) @ (B, d_k, d_v) -> (B, C, d_v)
        starts.append(s)
        us.append(u)
        s = keep_i * s + k_end_i.transpose(-2, -1) @ v_i + a_end_i.transpose(-2, -1) @ u  # (B, d_k, d_v)
    out = (qc * cum.exp()) @ torch.stack(starts)  # through the state: (n, B, C, d_k) @ (n, B, d_k, d_v) -> (n, B, C, d_v)
    out = out + tril_product(a_qk, vc) + tril_product(a_qa, torch.stack(us))  # + this chunk: (n, B, C, d_v)
    out = out.transpose(0, 1).flatten(1, 2)[:, :n]  # (B, N, d_v)
    return out.reshape(*lead, n, d_v), s.reshape(*lead, d_k, d_v)  # (..., N, d_v), (..., d_k, d_v)


def _check_dplr_args(q, k, v, a, b, log_decay, form, chunk_size, return_state, initial_state):
    for x, name in ((q, "q"), (k, "k"), (v, "v"), (a, "a"), (b, "b")):
        check_tensor(x, name)
        if name != "q":
            _check_same(x, q, name)
    *lead, n, d_k = q.shape
    if n == 0 or d_k == 0:
        raise ValueError(f"q must be (..., N, d_k) with N >= 1 and d_k >= 1; got {tuple(q.shape)}")
    for x, name in ((k, "k"), (a, "a"), (b, "b")):
        _check_shape(x, q.shape, name, "q's shape (..., N, d_k)")
    if v.dim() != q.dim() or tuple(v.shape[:-1]) != tuple(q.shape[:-1]) or v.shape[-1] == 0:
        raise ValueError(f"v must be (..., N, d_v) with (..., N) == {tuple(q.shape[:-1])}; got {tuple(v.shape)}")
    if log_decay is not None:
        _check_log_decay(log_decay, q.shape, q, "q's shape (..., N, d_k): one log-decay per token and key channel")
    _check_form(form, chunk_size, return_state)
    check_initial_state(initial_state, {"S": (*lead, d_k, v.shape[-1])}, q.device)


def dplr_attention(q, k, v, a, b, log_decay, *, form="auto", chunk_size=64, return_state=False,
                   initial_state=None):
    """Diagonal plus low rank (RWKV-7's generalised delta rule): S_t = (Diag(e^{g_t}) + a_t b_tᵀ) S_{t−1} + k_t v_tᵀ.

    out_t = S_tᵀ q_t. Both the decay and the rank-one term act on S_{t−1}.

    Args:
        q, k: (..., N, d_k); v: (..., N, d_v).
        a, b: (..., N, d_k): the low-rank term a_t b_tᵀ: b reads S (u = Sᵀb), a is where it is written
            (RWKV-7, whose state is our Sᵀ: a = κ̂ ⊙ a_rwkv, b = −κ̂; the delta rule: a = −βk, b = k). No constraint is imposed: with ‖I + a bᵀ‖ > 1 the state can grow.
        log_decay: (..., N, d_k), finite and <= 0 (one decay per key channel), or None (no decay).
        form: "recurrent" (the reference loop), "chunkwise" (the WY form), or "auto" (chunkwise).
        chunk_size: C for the chunkwise form, clamped to N.
        return_state: also return the final S (..., d_k, d_v) (float32 for half inputs).
        initial_state: S₀ (..., d_k, d_v), or None (zeros).

    Returns out (..., N, d_v) in q's dtype, or (out, S). A NaN at token t reaches only rows >= t.
    """
    _check_dplr_args(q, k, v, a, b, log_decay, form, chunk_size, return_state, initial_state)
    work = compute_dtype(q.dtype)
    qw, kw, vw, aw, bw = (x.to(work) for x in (q, k, v, a, b))
    g = None if log_decay is None else floor_log_decay(log_decay.to(work))  # (..., N, d_k); below log(tiny): 0
    s0 = None if initial_state is None else initial_state.to(work)  # (..., d_k, d_v)
    if form == "recurrent":
        out, s = dplr_recurrent_form(qw, kw, vw, aw, bw, g, s0)
    else:
        out, s = dplr_chunkwise_form(qw, kw, vw, aw, bw, g, s0, chunk_size=chunk_size)
    out = out.to(q.dtype)
    return (out, s) if return_state else out


# -- running states (the protocol of linattn_edu._state) -------------------------------------------
class DeltaProductState(RecurrentState):
    """Running DeltaProduct state S (*batch_shape, d, d_v), one token (n_h micro-steps) at a time.

    ``step(q_t, k_t, v_t, beta_t, g_t=None)`` with k_t (*batch_shape, n_h, d), v_t (*batch_shape, n_h, d_v),
    beta_t (*batch_shape, n_h), g_t (*batch_shape,) or None: decay once, n_h delta writes, read S_tᵀ q_t.
    ``prefill(q, k, v, beta, log_decay=None)`` runs the chunkwise form from the current state. A call that
    fails its checks leaves the state untouched.
    """

    def __init__(self, d, d_v, *, n_h, normalize_keys=True, batch_shape=(), dtype=torch.float32, device=None,
                 record=False):
        check_positive_int(n_h, "n_h")
        check_bool(normalize_keys, "normalize_keys")
        self.n_h, self.normalize_keys = n_h, normalize_keys
        super().__init__(d, d_v, batch_shape=batch_shape, dtype=dtype, device=device, record=record)

    def _field_shapes(self):
        return {"S": (self.d, self.d_v)}

    def _check_tokens(self, q_t, k_t, v_t):
        check_token(self, q_t, "q_t", self.d)
        for x, name, dim in ((k_t, "k_t", self.d), (v_t, "v_t", self.d_v)):
            check_tensor(x, name, min_rank=2)
            want = (*self.batch_shape, self.n_h, dim)
            if tuple(x.shape) != want:
                raise ValueError(f"{name} must be {want} (batch_shape + (n_h, {dim})); got {tuple(x.shape)}")
            if x.device != self.device:
                raise ValueError(f"{name} must be on {self.device}; got {x.device}")

    def _check_prefix(self, q, k, v):
        check_tensor(q, "q")
        if tuple(q.shape[:-2]) != self.batch_shape or q.shape[-1] != self.d:
            raise ValueError(f"q must be (*{self.batch_shape}, N, {self.d}); got {tuple(q.shape)}")
        for x, name, dim in ((k, "k", self.d), (v, "v", self.d_v)):
            check_tensor(x, name, min_rank=3)
            if tuple(x.shape[:-3]) != self.batch_shape or tuple(x.shape[-2:]) != (self.n_h, dim):
                raise ValueError(f"{name} must be (*{self.batch_shape}, N, {self.n_h}, {dim}); got {tuple(x.shape)}")

    def _check_gates(self, beta_t, g_t=None):
        check_tensor(beta_t, "beta_t", min_rank=1)
        _check_shape(beta_t, (*self.batch_shape, self.n_h), "beta_t", "batch_shape + (n_h,), one β per micro-step")
        if beta_t.device != self.device:
            raise ValueError(f"beta_t must be on {self.device}; got {beta_t.device}")
        if g_t is not None:
            check_tensor(g_t, "g_t", min_rank=0)
            _check_shape(g_t, self.batch_shape, "g_t", "batch_shape, one log-decay per token")
            if g_t.device != self.device:
                raise ValueError(f"g_t must be on {self.device}; got {g_t.device}")
        check_gate_values(beta=(beta_t, "beta_t", 1.0), log_decay=None if g_t is None else (g_t, "g_t"))
        return (beta_t, g_t)

    def _update(self, tensors, q_t, k_t, v_t, beta_t, g_t):
        k_t = F.normalize(k_t, dim=-1) if self.normalize_keys else k_t  # (..., n_h, d)
        return (delta_product_step(tensors[0], k_t, v_t, beta_t, None if g_t is None else floor_log_decay(g_t)),)

    def _read(self, tensors, q_t):
        return (q_t.unsqueeze(-2) @ tensors[0]).squeeze(-2)  # (..., 1, d) @ (..., d, d_v) -> (..., d_v)

    def _attend(self, q, k, v, beta, log_decay=None, *, chunk_size):
        return delta_product_attention(q, k, v, beta, log_decay=log_decay, normalize_keys=self.normalize_keys,
                                       form="chunkwise", chunk_size=chunk_size, initial_state=self.S,
                                       return_state=True)

    def step(self, q_t, k_t, v_t, beta_t, g_t=None):
        """Decay once, write the token's n_h pairs, read S_tᵀ q_t -> (*batch_shape, d_v)."""
        return super().step(q_t, k_t, v_t, beta_t, g_t)

    def prefill(self, q, k, v, beta, *, log_decay=None, chunk_size=64):
        """Absorb N tokens with the chunkwise form from the current state -> out (*batch_shape, N, d_v)."""
        return super().prefill(q, k, v, beta, log_decay, chunk_size=chunk_size)


class DPLRState(RecurrentState):
    """Running DPLR state S (*batch_shape, d_k, d_v), one token at a time.

    ``step(q_t, k_t, v_t, a_t, b_t, g_t=None)`` with a_t, b_t, g_t (*batch_shape, d_k):
    S ← Diag(e^{g_t}) S + a_t (b_tᵀ S) + k_t v_tᵀ, then S_tᵀ q_t. ``prefill(q, k, v, a, b, log_decay)`` runs
    the chunkwise form from the current state. A call that fails its checks leaves the state untouched.
    """

    def _field_shapes(self):
        return {"S": (self.d, self.d_v)}

    def _check_gates(self, a_t, b_t, g_t=None):
        for x, name in ((a_t, "a_t"), (b_t, "b_t")):
            check_token(self, x, name, self.d)
        if g_t is not None:
            check_token(self, g_t, "g_t", self.d)
            check_gate_values(log_decay=(g_t, "g_t"))
        return (a_t, b_t, g_t)

    def _update(self, tensors, q_t, k_t, v_t, a_t, b_t, g_t):
        return (dplr_step(tensors[0], k_t, v_t, a_t, b_t, None if g_t is None else floor_log_decay(g_t)),)

    def _read(self, tensors, q_t):
        return (q_t.unsqueeze(-2) @ tensors[0]).squeeze(-2)  # (..., 1, d_k) @ (..., d_k, d_v) -> (..., d_v)

    def _attend(self, q, k, v, a, b, log_decay=None, *, chunk_size):
        return dplr_attention(q, k, v, a, b, log_decay, form="chunkwise", chunk_size=chunk_size, initial_state=self.S,
                              return_state=True)

    def step(self, q_t, k_t, v_t, a_t, b_t, g_t=None):
        """One DPLR step, then S_tᵀ q_t -> (*batch_shape, d_v)."""
        return super().step(q_t, k_t, v_t, a_t, b_t, g_t)

    def prefill(self, q, k, v, *, a, b, log_decay=None, chunk_size=64):
        """Absorb N tokens with the chunkwise form from the current state -> out (*batch_shape, N, d_v)."""
        return super().prefill(q, k, v, a, b, log_decay, chunk_size=chunk_size)


# -- the registry's views ----------------------------------------------------------------------------
# The registry (tests, bench) calls every rule as f(q, k, v, **gates) with k (..., N, d). DeltaProduct takes
# n_h keys and values per token; its registered view builds them from the token's own k and v with the
# channels cyclically shifted by j = 0..n_h−1 (micro-step projections W_j = P^j W, P a cyclic shift):
# distinct keys, so the protocol tests exercise a genuine product of Householders, and every micro-step of
# token t depends on token t alone (NaN causality and two calls = one call mean what they mean for the
# public function).
def shifted_micro_steps(x, n_h: int):
    """(..., N, e) -> (..., N, n_h, e): micro-step j holds x with its channels rolled by j."""
    return torch.stack([x.roll(j, dims=-1) for j in range(n_h)], dim=-2)  # (..., N, n_h, e)


def _delta_product_shifted(q, k, v, beta, *, log_decay=None, **kwargs):
    """delta_product_attention with n_h = beta.shape[-1] micro-steps built by :func:`shifted_micro_steps`."""
    if not isinstance(beta, torch.Tensor) or beta.dim() < 1:
        return delta_product_attention(q, k, v, beta, log_decay=log_decay, **kwargs)  # its own error message
    n_h = beta.shape[-1]
    return delta_product_attention(q, shifted_micro_steps(k, n_h), shifted_micro_steps(v, n_h), beta,
                                   log_decay=log_decay, **kwargs)


class _ShiftedDeltaProductState(DeltaProductState):
    """DeltaProductState fed one k_t, v_t per token, expanded as :func:`_delta_product_shifted` does (n_h = 2)."""

    def __init__(self, d, d_v, *, n_h=2, **kwargs):
        super().__init__(d, d_v, n_h=n_h, **kwargs)

    def _expand(self, x):
        return shifted_micro_steps(x.unsqueeze(-2), self.n_h).squeeze(-3) if isinstance(x, torch.Tensor) else x

    def step(self, q_t, k_t, v_t, beta_t, g_t=None):
        return super().step(q_t, self._expand(k_t), self._expand(v_t), beta_t, g_t)

    def prefill(self, q, k, v, beta, *, log_decay=None, chunk_size=64):
        k, v = (shifted_micro_steps(x, self.n_h) if isinstance(x, torch.Tensor) else x for x in (k, v))
        return super().prefill(q, k, v, beta, log_decay=log_decay, chunk_size=chunk_size)


def _delta_product_gates(lead, d, generator, dtype, device) -> dict:
    """β ∈ [0.1, 1] per token and micro-step (n_h = 2), one log-decay g ∈ [−0.5, −0.01] per token."""
    beta = 0.1 + 0.9 * torch.rand(*lead, 2, generator=generator, dtype=torch.float64)  # (..., N, 2)
    g = -(0.01 + 0.49 * torch.rand(*lead, generator=generator, dtype=torch.float64))  # (..., N)
    return {"beta": beta.to(dtype=dtype, device=device), "log_decay": g.to(dtype=dtype, device=device)}


def _dplr_gates(lead, d, generator, dtype, device) -> dict:
    """RWKV-7's terms: a unit κ̂ and an in-context rate α ∈ [0.1, 1] per channel, a = κ̂ ⊙ α, b = −κ̂
    (A = Diag(e^g) − (κ̂ ⊙ α) κ̂ᵀ), and one log-decay g ∈ [−0.5, −0.01] per token and key channel."""
    kappa = F.normalize(torch.randn(*lead, d, generator=generator, dtype=torch.float64), dim=-1)  # (..., N, d)
    alpha = 0.1 + 0.9 * torch.rand(*lead, d, generator=generator, dtype=torch.float64)  # (..., N, d)
    g = -(0.01 + 0.49 * torch.rand(*lead, d, generator=generator, dtype=torch.float64))  # (..., N, d)
    return {name: x.to(dtype=dtype, device=device) for name, x in (("a", kappa * alpha), ("b", -kappa), ("log_decay", g))}


register_rule(Rule("gated_delta_product", "Gated DeltaProduct, n_h = 2", _delta_product_shifted,
                   _ShiftedDeltaProductState, ("recurrent", "chunkwise"), _delta_product_gates))
register_rule(Rule("dplr", "DPLR, diagonal plus low rank (RWKV-7)", dplr_attention, DPLRState,
                   ("recurrent", "chunkwise"), _dplr_gates))
