"""Linear attention in every form, read top to bottom as the derivation.

Replace softmax's exp(qᵀk/√d) by a factorised kernel φ(q)ᵀφ(k). Writing
Q' = φ(Q) (N, d_φ) and K' = φ(K) (N, d_φ), normalised linear attention is

    out_i = Σ_j (q'_i·k'_j) v_j / Σ_j (q'_i·k'_j)       (j <= i when causal)

and every form below computes exactly that (tests hold them equal):

1. quadratic   A = (Q'K'ᵀ)⊙M, out = AV / A1                  time N²,   memory N²
2. associative out = Q'(K'ᵀV) / Q'(K'ᵀ1)   (non-causal)      time N,    memory d_φ·d_v
3. recurrent   S_i = S_{i−1} + k'_i v_iᵀ, z_i = z_{i−1} + k'_i,
               out_i = q'_iᵀS_i / q'_iᵀz_i                    time N (sequential), memory d_φ·d_v
4. prefix      all S_i at once by a cumsum (causal)          memory N·d_φ·d_v: the trap
5. chunkwise   out_c = Q'_c S_c + tril(Q'_c K'_cᵀ) V_c,      time N(4d_φd_v + 4Cd), memory N·C
               S_{c+1} = S_c + K'_cᵀ V_c                      (the denominator likewise)
   chunkwise_reference here is that as a loop over chunks; chunked.py computes the same with
   every chunk at once (the states by one cumsum) and a hand-written backward: form="chunkwise".

The denominator's eps: out = num / (den + eps). With a non-negative kernel the
denominator is >= 0, so the output is always finite (0 when den == 0, e.g. relu
features that never overlap); eps shifts an output by a relative eps/den.
Causal forms mask with where/tril, never by multiplying with 0: a NaN at token t reaches
only the rows i >= t, as in the recurrence.
Half-precision inputs are computed, and S and z accumulated, in float32.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ._blocks import chunk_len, tril_product, zero_state
from ._checks import (check_bool, check_dense_budget, check_eps, check_initial_state, check_positive_int, check_qkv,
                      safe_divide)
from ._state import RecurrentState, Rule, register_rule
from .chunked import causal_product, chunkwise_form
from .feature_maps import featurize, get_feature_map, resolve_feature_map
from .softmax import causal_mask

__all__ = [
    "linear_attention", "FORMS", "quadratic_form", "associative_form",
    "recurrent_step", "readout", "recurrent_form", "prefix_form", "chunkwise_reference",
    "causal_product", "chunkwise_form", "LinearAttentionState",
]

FORMS = ("auto", "quadratic", "linear", "recurrent", "prefix", "chunkwise")


def _ratio(num: torch.Tensor, den: torch.Tensor, eps: float, normalize: bool) -> torch.Tensor:
    """out = num / (den + eps) when normalising, else num: (..., N, d_v), (..., N) -> (..., N, d_v).

    A row with no weight at all (den + eps == 0, only possible with eps = 0) gives 0, not 0/0.
    """
    return safe_divide(num, den.unsqueeze(-1), eps) if normalize else num  # (..., N, d_v)


# 1. Quadratic form ----------------------------------------------------------------------------
def quadratic_form(fq, fk, v, *, causal=False, eps=1e-6, normalize=True, initial_state=None):
    """A = (Q'K'ᵀ)⊙M, out = A V / (A 1 + eps): the reference, O(N²) time and memory.

    Shapes: fq (..., N, d_φ), fk (..., M, d_φ), v (..., M, d_v) -> out (..., N, d_v) and the
    weights A / (A 1 + eps) (..., N, M) that the explorers draw (A itself when not normalising).
    With an initial state (S₀, z₀) (causal only) every row also reads the past:
    out = (A V + Q'S₀) / (A 1 + Q'z₀ + eps), and the weights are A / (A 1 + Q'z₀ + eps).
    """
    a = fq @ fk.transpose(-2, -1)  # (..., N, d_φ) @ (..., d_φ, M) -> (..., N, M)
    if not causal:
        weights = _ratio(a, a.sum(-1), eps, normalize)  # (..., N, M): row-normalised
        return weights @ v, weights  # (..., N, M) @ (..., M, d_v) -> (..., N, d_v)
    a = a.masked_fill(~causal_mask(a.shape[-2], a.shape[-1], a.device), 0)  # (..., N, N), j <= i
    if initial_state is None:
        weights = _ratio(a, a.sum(-1), eps, normalize)  # (..., N, N): row-normalised
        return tril_product(weights, v), weights  # (..., N, N) @ (..., N, d_v) -> (..., N, d_v)
    s0, z0 = initial_state
    num = tril_product(a, v) + fq @ s0  # (..., N, d_v) + (..., N, d_φ) @ (..., d_φ, d_v)
    den = a.sum(-1) + (fq @ z0.unsqueeze(-1)).squeeze(-1)  # (..., N)
    weights = _ratio(a, den, eps, normalize)  # (..., N, N)
    return _ratio(num, den, eps, normalize), weights


# 2. Associative (non-causal) form -------------------------------------------------------------
def associative_form(fq, fk, v, *, eps=1e-6, normalize=True):
    """(Q'K'ᵀ)V = Q'(K'ᵀV): out = Q'S / Q'z with S = K'ᵀV, z = K'ᵀ1. O(N·d_φ·d_v).

    Returns out (..., N, d_v) and the state (S (..., d_φ, d_v), z (..., d_φ)).
    """
    s = fk.transpose(-2, -1) @ v  # (..., d_φ, M) @ (..., M, d_v) -> (..., d_φ, d_v)
    z = fk.sum(-2)  # (..., M, d_φ) -> (..., d_φ)
    num = fq @ s  # (..., N, d_φ) @ (..., d_φ, d_v) -> (..., N, d_v)
    den = fq @ z.unsqueeze(-1)  # (..., N, d_φ) @ (..., d_φ, 1) -> (..., N, 1)
    return _ratio(num, den.squeeze(-1), eps, normalize), (s, z)


# 3. Recurrent form: an RNN with a matrix state ------------------------------------------------
def recurrent_step(s, z, fk_t, v_t):
    """One token into the state: S += k'_t v_tᵀ, z += k'_t.

    s (..., d_φ, d_v), z (..., d_φ), fk_t (..., d_φ), v_t (..., d_v) -> new (S, z).
    """
    s = torch.addcmul(s, fk_t.unsqueeze(-1), v_t.unsqueeze(-2))  # S + (..., d_φ, 1) ⊙ (..., 1, d_v) -> (..., d_φ, d_v)
    return s, z + fk_t  # (..., d_φ)


def readout(fq_t, s, z, *, eps=1e-6, normalize=True):
    """out_t = q'_tᵀ S / (q'_tᵀ z + eps): fq_t (..., d_φ), S (..., d_φ, d_v), z (..., d_φ) -> (..., d_v)."""
    num = (fq_t.unsqueeze(-2) @ s).squeeze(-2)  # (..., 1, d_φ) @ (..., d_φ, d_v) -> (..., d_v)
    den = (fq_t * z).sum(-1)  # (..., d_φ) -> (...)
    return _ratio(num, den, eps, normalize)  # (..., d_v)


def recurrent_form(fq, fk, v, *, eps=1e-6, normalize=True, initial_state=None):
    """Causal linear attention as an RNN: a Python loop over tokens (the clearest statement).

    S_i = S_{i−1} + k'_i v_iᵀ, z_i = z_{i−1} + k'_i, out_i = q'_iᵀS_i / (q'_iᵀz_i + eps),
    from (S₀, z₀) = initial_state, or zeros.
    Shapes: fq, fk (..., N, d_φ), v (..., N, d_v) -> out (..., N, d_v), final (S, z).
    """
    s, z = initial_state or zero_state(fq, v)  # (..., d_φ, d_v), (..., d_φ)
    outs = []
    for t in range(fq.shape[-2]):
        s, z = recurrent_step(s, z, fk[..., t, :], v[..., t, :])  # state after token t
        outs.append(readout(fq[..., t, :], s, z, eps=eps, normalize=normalize))  # (..., d_v)
    return torch.stack(outs, dim=-2), (s, z)  # (..., N, d_v)


# 4. Prefix-materialised form: correct, and a memory trap --------------------------------------
def prefix_form(fq, fk, v, *, eps=1e-6, normalize=True, initial_state=None):
    """All states at once: S_i = S₀ + cumsum_j k'_j v_jᵀ. Memory N·d_φ·d_v — why chunkwise exists.

    Shapes: fq, fk (..., N, d_φ), v (..., N, d_v) -> out (..., N, d_v), final (S, z).
    """
    shape = (*fq.shape[:-1], fq.shape[-1], v.shape[-1])
    check_dense_budget(shape, fq.dtype, "the prefix form's (..., N, d_φ, d_v) states",
                       "use form='chunkwise', which carries one state")
    s0, z0 = initial_state or zero_state(fq, v)
    states = (fk.unsqueeze(-1) * v.unsqueeze(-2)).cumsum(-3) + s0.unsqueeze(-3)  # (..., N, d_φ, d_v)
    zs = fk.cumsum(-2) + z0.unsqueeze(-2)  # (..., N, d_φ)
    num = (fq.unsqueeze(-2) @ states).squeeze(-2)  # (..., N, 1, d_φ) @ (..., N, d_φ, d_v) -> (..., N, d_v)
    den = (fq * zs).sum(-1)  # (..., N)
    return _ratio(num, den, eps, normalize), (states[..., -1, :, :], zs[..., -1, :])


# 5. Chunkwise form: a loop over chunks (the fast version lives in chunked.py) ---------------------
def chunkwise_reference(fq, fk, v, *, chunk_size=64, eps=1e-6, normalize=True, initial_state=None):
    """Causal linear attention as a plain loop over chunks: the statement the fast form is tested against.

    For each chunk c of C tokens (rows Q'_c, K'_c, V_c; the last may be shorter), with the state
    (S, z) carried in from all earlier chunks:
        num_c = Q'_c S + tril(Q'_c K'_cᵀ) V_c,   den_c = Q'_c z + tril(Q'_c K'_cᵀ) 1
        S <- S + K'_cᵀ V_c,                      z <- z + K'_cᵀ 1
    Inside a chunk it is the quadratic form (C², small); across chunks it is the recurrence,
    one step per chunk, from (S₀, z₀) = initial_state or zeros. Shapes: fq, fk (..., N, d_φ), v (..., N, d_v) -> out (..., N, d_v),
    final (S (..., d_φ, d_v), z (..., d_φ)).
    """
    c = chunk_len(fq.shape[-2], chunk_size)
    check_dense_budget((*fq.shape[:-2], c, c), fq.dtype, "a chunk's (..., C, C) block", "use a smaller chunk_size")
    s, z = initial_state or zero_state(fq, v)  # (..., d_φ, d_v), (..., d_φ)
    outs = []
    for start in range(0, fq.shape[-2], c):
        q, k, vc = (x[..., start:start + c, :] for x in (fq, fk, v))  # (..., C, d_φ | d_v)
        a = (q @ k.transpose(-2, -1)).tril()  # (..., C, d_φ) @ (..., d_φ, C) -> (..., C, C), j <= i
        num = q @ s + tril_product(a, vc)  # the past + this chunk: (..., C, d_v)
        den = (q @ z.unsqueeze(-1)).squeeze(-1) + a.sum(-1)  # (..., C)
        outs.append(_ratio(num, den, eps, normalize))
        s = s + k.transpose(-2, -1) @ vc  # carry: (..., d_φ, C) @ (..., C, d_v) -> (..., d_φ, d_v)
        z = z + k.sum(-2)  # (..., d_φ)
    return torch.cat(outs, dim=-2), (s, z)  # (..., N, d_v)


# The public entry point ------------------------------------------------------------------------
def _check_args(q, k, v, feature_map, causal, form, chunk_size, eps, normalize, initial_state, return_state):
    check_bool(causal, "causal")
    check_bool(normalize, "normalize")
    check_bool(return_state, "return_state")
    check_qkv(q, k, v, causal=causal)
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}; got {form!r}")
    check_positive_int(chunk_size, "chunk_size")
    check_eps(eps)
    phi = resolve_feature_map(feature_map, q.shape[-1], normalize=normalize)
    if form in ("recurrent", "prefix") and not causal:
        raise ValueError(f"form={form!r} is a causal form; got causal=False (use 'linear' or 'chunkwise')")
    if form == "linear" and causal:
        raise ValueError("form='linear' is the non-causal associative form; got causal=True "
                         "(use 'chunkwise', 'recurrent' or 'prefix')")
    if (initial_state is not None or return_state) and not causal:
        raise ValueError("initial_state and return_state belong to causal attention (a state summarises a "
                         "prefix); got causal=False")
    d_phi, lead = phi.d_out(q.shape[-1]), q.shape[:-2]
    state = check_initial_state(initial_state, {"S": (*lead, d_phi, v.shape[-1]), "z": (*lead, d_phi)}, q.device)
    return phi, state


def linear_attention(q, k, v, feature_map, *, causal=False, form="auto", chunk_size=64, eps=1e-6,
                     normalize=True, return_weights=False, initial_state=None, return_state=False):
    """Linear attention out_i = Σ_j φ(q_i)ᵀφ(k_j) v_j / Σ_j φ(q_i)ᵀφ(k_j) in the chosen form.

    Args:
        q: (..., N, d); k: (..., M, d); v: (..., M, d_v).
        feature_map: a FeatureMap or a registered name ("elu+1", "relu", "favor+", "taylor", …).
        causal: sum only over j <= i (needs N == M).
        form: "quadratic", "linear" (associative, non-causal), "recurrent" (causal token loop),
            "prefix" (causal, materialised states), "chunkwise", or "auto" (chunkwise if causal,
            else linear). All give the same answer.
        chunk_size: C for the chunkwise form (any N, not only multiples of C).
        eps: added to the denominator (see module docstring).
        normalize: divide by the denominator (True) or return the plain sum Σ_j κ_ij v_j.
        return_weights: also return the (..., N, M) weights of the quadratic form.
        initial_state: causal only: (S₀ (..., d_φ, d_v), z₀ (..., d_φ)), the state after an earlier
            part of the sequence (what return_state=True returned); the sums then start from it.
        return_state: causal only: also return the final state (S, z), in the compute dtype.

    Returns out (..., N, d_v) in q's dtype; (out, weights) with return_weights; (out, (S, z)) with
    return_state; (out, weights, (S, z)) with both. Two calls with the state passed between them
    equal one call over the whole sequence.

    Example (q = k = ones, causal, values 1, 0, 0 -> prefix means 1, 1/2, 1/3)::

        >>> q = k = torch.ones(3, 1); v = torch.tensor([[1.], [0.], [0.]])
        >>> linear_attention(q, k, v, "elu+1", causal=True, eps=0).flatten().tolist()
        [1.0, 0.5, 0.3333333432674408]
    """
    check_bool(return_weights, "return_weights")
    phi, state = _check_args(q, k, v, feature_map, causal, form, chunk_size, eps, normalize, initial_state,
                             return_state)
    fq, fk = featurize(q, k, phi)  # (..., N, d_φ), (..., M, d_φ)
    dense_weights = return_weights and form != "quadratic"  # the quadratic form returns its own weights
    if dense_weights:  # refused before any form runs
        check_dense_budget((*q.shape[:-2], q.shape[-2], k.shape[-2]), fq.dtype,
                           "linear_attention's returned (..., N, M) weights", "use return_weights=False")
    vw = v.to(fq.dtype)  # (..., M, d_v)
    state = None if state is None else tuple(x.to(fq.dtype) for x in state)
    out, extra = _run_form(fq, fk, vw, form=form, causal=causal, chunk_size=chunk_size, eps=eps,
                           normalize=normalize, initial_state=state)  # (..., N, d_v), the form's state or weights
    result = [out.to(q.dtype)]
    if return_weights:
        weights = extra
        if dense_weights:
            _, weights = quadratic_form(fq, fk, vw, causal=causal, eps=eps, normalize=normalize, initial_state=state)
        result.append(weights.to(q.dtype))
    if return_state:
        if form == "quadratic":  # the quadratic form keeps no state: read it off the chunkwise form
            _, extra = chunkwise_form(fq, fk, vw, chunk_size=chunk_size, eps=eps, normalize=normalize,
                                      initial_state=state)
        result.append(extra)
    return result[0] if len(result) == 1 else tuple(result)


def _run_form(fq, fk, v, *, form, causal, chunk_size, eps, normalize, initial_state=None):
    """Dispatch to one form on features; returns (out, state or weights)."""
    if form == "auto":
        form = "chunkwise" if causal else "linear"
    if form == "quadratic":
        check_dense_budget((*fq.shape[:-2], fq.shape[-2], fk.shape[-2]), fq.dtype,
                           "the quadratic form's (..., N, M) matrix", "use form='chunkwise' or 'linear'")
        return quadratic_form(fq, fk, v, causal=causal, eps=eps, normalize=normalize, initial_state=initial_state)
    if form == "linear" or (form == "chunkwise" and not causal):
        return associative_form(fq, fk, v, eps=eps, normalize=normalize)
    kwargs = dict(eps=eps, normalize=normalize, initial_state=initial_state)
    if form == "recurrent":
        return recurrent_form(fq, fk, v, **kwargs)
    if form == "prefix":
        return prefix_form(fq, fk, v, **kwargs)
    return chunkwise_form(fq, fk, v, chunk_size=chunk_size, **kwargs)


# The RNN view: a running state ---------------------------------------------------------------------
class LinearAttentionState(RecurrentState):
    """Running state (S, z) of causal linear attention, one token at a time (the RNN view).

        S_t = S_{t−1} + φ(k_t) v_tᵀ   (d_φ, d_v),   z_t = z_{t−1} + φ(k_t)   (d_φ,)
        out_t = φ(q_t)ᵀ S_t / (φ(q_t)ᵀ z_t + eps)

    (The course's seed formula writes the same readout as q'_i μ_i / q'_i ν_i, with μ = S and ν = z.)
    Decoding token t costs O(d_φ·d_v) time and memory whatever t is; a softmax decoder instead
    re-reads a KV cache that grows with t.

    Args:
        d: key/query dim; d_v: value dim; feature_map: φ (a FeatureMap or registered name, positive kernel).
        batch_shape, dtype, device, record: as every state (see linattn_edu._state); eps: as linear_attention.

    Attributes: S (*batch_shape, d_φ, d_v), z (*batch_shape, d_φ), t (tokens absorbed).
    ``prefill(q, k, v)`` (any t) followed by ``step`` over the remaining tokens reproduces the full
    causal output (up to rounding). A failed call leaves S, z, t and the history as they were.
    """

    fields = ("S", "z")

    def __init__(self, d, d_v, *, feature_map="elu+1", batch_shape=(), dtype=torch.float32, device=None,
                 eps=1e-6, record=False):
        check_positive_int(d, "d")
        check_eps(eps)
        self.phi = resolve_feature_map(feature_map, d, normalize=True, owner="state")
        self.eps = eps
        super().__init__(d, d_v, batch_shape=batch_shape, dtype=dtype, device=device, record=record)

    def _field_shapes(self):
        d_phi = self.phi.d_out(self.d)
        return {"S": (d_phi, self.d_v), "z": (d_phi,)}

    def _update(self, tensors, q_t, k_t, v_t):
        return recurrent_step(*tensors, self.phi.key(k_t).to(self.dtype), v_t)  # (..., d_φ, d_v), (..., d_φ)

    def _read(self, tensors, q_t):
        return readout(self.phi.query(q_t).to(self.dtype), *tensors, eps=self.eps)  # (..., d_v)

    def _attend(self, q, k, v, *, chunk_size):
        return linear_attention(q, k, v, self.phi, causal=True, form="chunkwise", chunk_size=chunk_size, eps=self.eps,
                                initial_state=self.state, return_state=True)

    def __repr__(self) -> str:
        return f"LinearAttentionState({self.phi.name!r}, S={tuple(self.S.shape)}, z={tuple(self.z.shape)}, t={self.t})"


def _linear_gates(lead, d, generator, dtype, device) -> dict:
    return {}


register_rule(Rule("linear", "linear (elu+1)", linear_attention, LinearAttentionState,
                   ("quadratic", "recurrent", "prefix", "chunkwise"), _linear_gates,
                   {"feature_map": "elu+1"}))
