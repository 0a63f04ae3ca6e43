"""Memory as test-time regression, solved exactly at every token (MesaNet-style ridge regression).

Every memory layer in this course fits values on keys. At token t the weighted ridge objective

    ℓ_t(S) = Σ_{s<=t} γ_{t,s} ‖Sᵀk_s − v_s‖² + λ ‖S‖²_F,     γ_{t,s} = β_s Π_{r=s+1..t} e^{g_r}

has one minimiser, S*_t = (H_kk + λI)⁻¹ H_kv, with the two running sufficient statistics

    H_kk ← e^{g_t} H_kk + β_t k_t k_tᵀ   (d, d)        H_kv ← e^{g_t} H_kv + β_t k_t v_tᵀ   (d, d_v)

and the output reads the fitted map with the query:

    o_t = S*_tᵀ q_t = H_kvᵀ (H_kk + λI)⁻¹ q_t.

The other rules are cheaper solvers of the same objective: additive linear attention keeps only
H_kv (it drops the key covariance: o = H_kvᵀ q, which is λ·o_t as λ → ∞), the delta rule takes one
SGD step per token, gated delta adds forgetting, softmax attention is the Nadaraya–Watson smoother.
MesaNet (von Oswald et al., 2025) solves it exactly: the cost is a d×d solve per token.

Forms: ``recurrent`` (the reference: a loop over tokens, ``torch.linalg.solve`` per token) and
``chunkwise`` (no loop over tokens: inside a chunk, every token's H's are the chunk-entry state
decayed by Γ_t = e^{b_t} plus a causal, decay-weighted sum over the chunk's tokens — one
(C × C) @ (C × d·d) product — then one batched solve for the chunk's C tokens). The chunkwise form
still costs O(N·d³) for the solves (and N·d² numbers kept for backward); what it removes is the
Python loop over tokens (only a loop over chunks carries the state).

Conventions in the field's reference code (flash-linear-attention ``fla/ops/mesa_net/naive.py``,
``naive_mesa_net_exact(q, k, v, g, lamb, beta, h_kk_init, h_kv_init)``) and ours:

- Same recursion and read-out: h_kk ← h_kk·e^{g} + (βk) kᵀ, h_kv ← h_kv·e^{g} + (βk) vᵀ (decay before the
  write), o = h_kvᵀ (h_kk + diag(λ))⁻¹ q by ``torch.linalg.solve``; state orientation H_kk (d, d),
  H_kv (d_k, d_v), the same as this library's S (out = Sᵀ q).
- λ: FLA takes one ridge per key channel (``lamb`` [H, K], diag(λ)); ours is a number or a (d,) tensor
  (one per key channel, shared over the leading dims).
- FLA's chunked and one-step decoding references (``naive_mesa_net_CG``, ``naive_mesa_net_decoding_one_step``)
  replace the solve by a fixed number of conjugate-gradient iterations (``max_CG_iteration=30``; the
  decoder starts from the Jacobi guess q / (diag H_kk + λ)): an approximation whose error depends on
  the conditioning. Both our forms solve exactly (LU, ``torch.linalg.solve_ex``).
- No q scale and no key normalisation inside, in both (MesaNet's layer normalises q and k before).
- Layout [B, T, H, D] in FLA, SDPA's (..., N, d) here; FLA returns (o, h_kk, h_kv), we return
  (out, (H_kk, H_kv)) with ``return_state=True``.
"""
from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from ._blocks import chunks_first, floor_log_decay, segment_sum, tril_product
from ._checks import (check_bool, check_dense_budget, check_gate_values, check_number, check_positive_int, check_qkv,
                      check_tensor, compute_dtype)
from ._state import RecurrentState, Rule, register_rule

__all__ = ["mesa_attention", "MESA_FORMS", "mesa_step", "mesa_readout", "mesa_recurrent_form",
           "mesa_chunkwise_form", "MesaState"]

MESA_FORMS = ("auto", "recurrent", "chunkwise")


def mesa_step(h_kk, h_kv, k_t, v_t, beta_t, g_t=None):
    """One write: H ← e^{g_t} H, then H_kk += β_t k_t k_tᵀ, H_kv += β_t k_t v_tᵀ.

    h_kk (..., d, d), h_kv (..., d, d_v), k_t (..., d), v_t (..., d_v), beta_t (...), g_t (...) or None
    -> (h_kk, h_kv).
    """
    if g_t is not None:
        keep = g_t.exp()[..., None, None]  # (..., 1, 1): decay first
        h_kk, h_kv = keep * h_kk, keep * h_kv
    kb = beta_t.unsqueeze(-1) * k_t  # (..., d): β_t k_t
    return (h_kk + kb.unsqueeze(-1) * k_t.unsqueeze(-2),  # (..., d, 1) * (..., 1, d) -> (..., d, d)
            h_kv + kb.unsqueeze(-1) * v_t.unsqueeze(-2))  # (..., d, 1) * (..., 1, d_v) -> (..., d, d_v)


def _solve(a, b):
    """x = a⁻¹ b by LU (``torch.linalg.solve_ex``), never raising: a matrix that is singular in the working
    precision (cond(H_kk + λI) ≳ 1/eps, e.g. β‖k‖² ≫ λ·10⁷ in float32) gives inf/NaN in its own row only."""
    return torch.linalg.solve_ex(a, b, check_errors=False).result


def mesa_readout(h_kk, h_kv, q_t, ridge_diag):
    """o = H_kvᵀ (H_kk + diag(λ))⁻¹ q: h_kk (..., d, d), h_kv (..., d, d_v), q_t (..., d), ridge_diag (d,) -> (..., d_v)."""
    x = _solve(h_kk + torch.diag_embed(ridge_diag), q_t.unsqueeze(-1))  # (..., d, 1): (H_kk + λI)⁻¹ q
    return (h_kv.transpose(-2, -1) @ x).squeeze(-1)  # (..., d_v, d) @ (..., d, 1) -> (..., d_v)


def mesa_recurrent_form(q, k, v, beta, g, ridge_diag, h0=None):
    """The reference: for each token, :func:`mesa_step` then :func:`mesa_readout`.

    q, k (..., N, d), v (..., N, d_v), beta (..., N), g (..., N) or None, ridge_diag (d,),
    h0 = (H_kk (..., d, d), H_kv (..., d, d_v)) or None -> out (..., N, d_v), (H_kk, H_kv).
    """
    lead, d, d_v = q.shape[:-2], q.shape[-1], v.shape[-1]
    if h0 is None:
        h_kk, h_kv = q.new_zeros(*lead, d, d), q.new_zeros(*lead, d, d_v)
    else:
        h_kk, h_kv = h0
    outs = []
    for t in range(q.shape[-2]):
        h_kk, h_kv = mesa_step(h_kk, h_kv, k[..., t, :], v[..., t, :], beta[..., t], None if g is None else g[..., t])
        outs.append(mesa_readout(h_kk, h_kv, q[..., t, :], ridge_diag))  # (..., d_v)
    return torch.stack(outs, dim=-2), (h_kk, h_kv)  # (..., N, d_v)


def _mesa_chunk(q_i, k_i, v_i, w_i, gamma_i, e_kk, e_kv, ridge):
    """One chunk from its entry state: outputs (B, C, d_v) and the chunk's last (H_kk, H_kv).

    q_i, k_i (B, C, d), v_i (B, C, d_v), w_i (B, C, C) the decayed write weights, gamma_i (B, C, 1, 1) the
    entry state's decay at each token, e_kk (B, d, d), e_kv (B, d, d_v), ridge (d, d) = λI.
    """
    d, d_v = k_i.shape[-1], v_i.shape[-1]
    p_kk = (k_i.unsqueeze(-1) * k_i.unsqueeze(-2)).flatten(-2)  # (B, C, d·d): k_s k_sᵀ
    p_kv = (k_i.unsqueeze(-1) * v_i.unsqueeze(-2)).flatten(-2)  # (B, C, d·d_v): k_s v_sᵀ
    h_kk = gamma_i * e_kk.unsqueeze(1) + tril_product(w_i, p_kk).unflatten(-1, (d, d))  # (B, C, d, d)
    h_kv = gamma_i * e_kv.unsqueeze(1) + tril_product(w_i, p_kv).unflatten(-1, (d, d_v))  # (B, C, d, d_v)
    x = _solve(h_kk + ridge, q_i.unsqueeze(-1))  # (B, C, d, 1): (H_kk + λI)⁻¹ q, C systems at once
    out = (h_kv.transpose(-2, -1) @ x).squeeze(-1)  # (B, C, d_v, d) @ (B, C, d, 1) -> (B, C, d_v)
    # the chunk's last token (padded tokens write and decay nothing), copied: a view would keep the whole
    # (B, C, d, d + d_v) chunk alive as the next chunk's input, 32 MiB a chunk at d = 128
    return out, h_kk[:, -1].clone(), h_kv[:, -1].clone()


def mesa_chunkwise_form(q, k, v, beta, g, ridge_diag, h0=None, *, chunk_size=64):
    """Every token's H's without a loop over tokens: a loop over chunks, one batched solve per chunk.

    Inside a chunk with entry state (E_kk, E_kv), chunk-local cumulative log-decay b_t and
    W_ts = e^{b_t − b_s} β_s for s <= t (0 above, a segment sum):

        H_kk,t = e^{b_t} E_kk + Σ_s W_ts k_s k_sᵀ,    H_kv,t = e^{b_t} E_kv + Σ_s W_ts k_s v_sᵀ

    (each sum is one (C, C) @ (C, d·d) product through ``tril_product``, which keeps a NaN at token t out of
    rows < t),
    o_t = H_kv,tᵀ (H_kk,t + λI)⁻¹ q_t for the chunk's C tokens is one batched solve, and the chunk's last
    H's are the next chunk's entry state. C is clamped to N. Cost per token: C·d·(d + d_v) for the sums
    plus d³/3 for the solve. Memory: C·d·(d + d_v) per batch row for the chunk at work. Under autograd
    each chunk is a checkpoint (:func:`torch.utils.checkpoint.checkpoint`): backward keeps only the chunks'
    entry states, (N/C)·d·(d + d_v), and recomputes a chunk's C per-token H's when it reaches it (about a
    quarter more time than keeping all N·d·(d + d_v) of them, whose allocation bent the time curve upward:
    2.1 GB at N = 16k, H = 4, d = 64). Shapes as :func:`mesa_recurrent_form`.
    """
    lead, n = q.shape[:-2], q.shape[-2]
    d, d_v = q.shape[-1], v.shape[-1]
    c = min(chunk_size, n)
    batch = 1
    for s in lead:
        batch *= int(s)
    check_dense_budget((batch, c + -(-n // c), d, d + d_v), q.dtype,
                       "mesa_attention's per-token (B, C, d, d + d_v) statistics and chunk entry states",
                       "use a smaller chunk_size or fewer heads per call")
    qc, kc, vc = (chunks_first(x, c) for x in (q, k, v))  # (n, B, C, d | d_v)
    bc = chunks_first(beta.unsqueeze(-1), c)  # (n, B, C, 1)
    gc = chunks_first((beta.new_zeros(beta.shape) if g is None else g).unsqueeze(-1), c)  # (n, B, C, 1)
    weights = segment_sum(gc.squeeze(-1)).exp() * bc.transpose(-2, -1)  # (n, B, C, C): e^{b_t − b_s} β_s; 0 above
    gamma = gc.cumsum(-2).exp().unsqueeze(-1)  # (n, B, C, 1, 1): e^{b_t} <= 1, the entry state's decay at token t
    ridge = torch.diag_embed(ridge_diag)  # (d, d): λI
    if h0 is None:
        e_kk, e_kv = q.new_zeros(qc.shape[1], d, d), q.new_zeros(qc.shape[1], d, d_v)  # (B, d, d), (B, d, d_v)
    else:
        e_kk, e_kv = h0[0].reshape(-1, d, d), h0[1].reshape(-1, d, d_v)
    recorded = torch.is_grad_enabled() and any(x is not None and x.requires_grad
                                               for x in (q, k, v, beta, g, ridge_diag, *(h0 or ())))
    outs = []
    for q_i, k_i, v_i, w_i, gamma_i in zip(qc.unbind(0), kc.unbind(0), vc.unbind(0), weights.unbind(0),
                                           gamma.unbind(0)):  # a loop over chunks (unbind views: a linear backward)
        parts = (q_i, k_i, v_i, w_i, gamma_i, e_kk, e_kv, ridge)
        out, e_kk, e_kv = (checkpoint(_mesa_chunk, *parts, use_reentrant=False) if recorded
                           else _mesa_chunk(*parts))  # (B, C, d_v), (B, d, d), (B, d, d_v)
        outs.append(out)
    out = torch.stack(outs).transpose(0, 1).flatten(1, 2)[:, :n]  # (n, B, C, d_v) -> (B, N, d_v)
    return out.reshape(*lead, n, d_v), (e_kk.reshape(*lead, d, d), e_kv.reshape(*lead, d, d_v))


def _check_ridge(ridge, d: int, q):
    """ridge: a number > 0, or a (d,) floating tensor of entries > 0 on q's device (one per key channel)."""
    if isinstance(ridge, torch.Tensor):
        check_tensor(ridge, "ridge", min_rank=1)
        if tuple(ridge.shape) != (d,):
            raise ValueError(f"ridge must be a number > 0 or a tensor of shape ({d},) (one λ per key channel); "
                             f"got shape {tuple(ridge.shape)}")
        if ridge.device != q.device:
            raise ValueError(f"ridge must be on {q.device}; got {ridge.device}")
        with torch.no_grad():
            bad = ~(torch.isfinite(ridge) & (ridge > 0))
            if bool(bad.any()):
                raise ValueError(f"ridge must have finite entries > 0; got an entry {ridge[bad].flatten()[0].item()!r}")
        return
    check_number(ridge, "ridge", minimum=0, exclusive_minimum=True)


def _check_gate(x, name: str, what: str) -> None:
    """The values of β (in [0, 1]) or a log-decay (finite, <= 0); a meta tensor has no values to check."""
    if x.is_meta:
        return
    if name.startswith("beta"):
        with torch.no_grad():
            bad = ~((x >= 0) & (x <= 1))  # NaN is bad
            if bool(bad.any()):
                raise ValueError(f"{name} must be in [0, 1] ({what}); got an entry {x[bad].flatten()[0].item()!r}")
    else:
        check_gate_values(log_decay=(x, name))


def _check_mesa_args(q, k, v, ridge, beta, log_decay, form, chunk_size, return_state, initial_state):
    check_qkv(q, k, v, causal=True)
    lead, d, d_v = tuple(q.shape[:-2]), q.shape[-1], v.shape[-1]
    _check_ridge(ridge, d, q)
    for x, name, what in ((beta, "beta", "a write weight in [0, 1]"), (log_decay, "log_decay", "a decay exp(g) in (0, 1]")):
        if x is None:
            continue
        check_tensor(x, name, min_rank=1)
        if tuple(x.shape) != tuple(q.shape[:-1]):
            raise ValueError(f"{name} must have shape {tuple(q.shape[:-1])} (q.shape[:-1], one per token); "
                             f"got {tuple(x.shape)}")
        if x.device != q.device:
            raise ValueError(f"{name} must be on {q.device}; got {x.device}")
        _check_gate(x, name, what)
    if form not in MESA_FORMS:
        raise ValueError(f"form must be one of {MESA_FORMS}; got {form!r}")
    check_positive_int(chunk_size, "chunk_size")
    check_bool(return_state, "return_state")
    if initial_state is not None:
        if not isinstance(initial_state, (tuple, list)) or len(initial_state) != 2:
            raise TypeError("initial_state must be None or a pair (H_kk (..., d, d), H_kv (..., d, d_v)); "
                            f"got {type(initial_state).__name__}")
        for x, name, shape in ((initial_state[0], "initial_state[0] (H_kk)", (*lead, d, d)),
                               (initial_state[1], "initial_state[1] (H_kv)", (*lead, d, d_v))):
            check_tensor(x, name)
            if tuple(x.shape) != shape:
                raise ValueError(f"{name} must have shape {shape}; got {tuple(x.shape)}")
            if x.device != q.device:
                raise ValueError(f"{name} must be on {q.device}; got {x.device}")


def mesa_attention(q, k, v, *, ridge=1.0, beta=None, log_decay=None, form="auto", chunk_size=64,
                   return_state=False, initial_state=None):
    """Exact test-time ridge regression (MesaNet): o_t = H_kvᵀ (H_kk + λI)⁻¹ q_t.

        H_kk ← e^{g_t} H_kk + β_t k_t k_tᵀ,   H_kv ← e^{g_t} H_kv + β_t k_t v_tᵀ

    o_t = S*_tᵀ q_t for S*_t = argmin_S Σ_{s<=t} γ_{t,s} ‖Sᵀk_s − v_s‖² + λ‖S‖², γ_{t,s} = β_s Π_{s<r<=t} e^{g_r}.

    Args:
        q, k: (..., N, d); v: (..., N, d_v).
        ridge: λ > 0, a number or a (d,) tensor (one per key channel); keeps H_kk + λI invertible.
            As λ → ∞, λ·o_t → Σ_s γ_{t,s} (q_tᵀk_s) v_s (un-normalised gated linear attention).
        beta: None (all 1) or (..., N), each in [0, 1]: the weight of each written pair (0 skips it).
        log_decay: None or (..., N), finite and <= 0: forgetting, e^{g_t} on both statistics.
        form: "recurrent" (reference loop, a solve per token), "chunkwise" (a loop over chunks, one
            batched solve per chunk), or "auto" (chunkwise).
        chunk_size: C for the chunkwise form, clamped to N.
        return_state: also return (H_kk (..., d, d), H_kv (..., d, d_v)) after the last token
            (float32 for half inputs).
        initial_state: (H_kk, H_kv) to start from (e.g. a previous call's state), or None (zeros).
            H_kk should be symmetric positive semi-definite (it is for any returned state).

    Returns out (..., N, d_v) in q's dtype, or (out, (H_kk, H_kv)). A NaN at token t reaches only
    rows >= t (a NaN in q_t only row t). Precision: the solve loses log10 cond(H_kk + λI) digits; in
    float32 keep β‖k‖²·N well below λ·10⁷ (normalise the keys), or compute in float64.
    """
    _check_mesa_args(q, k, v, ridge, beta, log_decay, form, chunk_size, return_state, initial_state)
    work = compute_dtype(q.dtype)
    qw, kw, vw = q.to(work), k.to(work), v.to(work)
    bw = qw.new_ones(q.shape[:-1]) if beta is None else beta.to(work)  # (..., N)
    g = None if log_decay is None else floor_log_decay(log_decay.to(work))  # (..., N); a decay below log(tiny) is 0
    lam = ridge.to(work) if isinstance(ridge, torch.Tensor) else qw.new_full((q.shape[-1],), float(ridge))  # (d,)
    h0 = None if initial_state is None else (initial_state[0].to(work), initial_state[1].to(work))
    if form == "recurrent":
        out, h = mesa_recurrent_form(qw, kw, vw, bw, g, lam, h0)
    else:
        out, h = mesa_chunkwise_form(qw, kw, vw, bw, g, lam, h0, chunk_size=chunk_size)
    out = out.to(q.dtype)
    return (out, h) if return_state else out


class MesaState(RecurrentState):
    """Running MesaNet statistics (H_kk (*batch_shape, d, d), H_kv (*batch_shape, d, d_v)), one token at a time.

    ``step(q_t, k_t, v_t, beta_t=None, g_t=None)`` decays both statistics by e^{g_t}, adds β_t k_t k_tᵀ and
    β_t k_t v_tᵀ, and returns H_kvᵀ (H_kk + λI)⁻¹ q_t; ``prefill(q, k, v, beta=None, log_decay=None)``
    runs the chunkwise form from the current statistics; ``state`` is the pair ``mesa_attention`` takes as
    ``initial_state``. ``ridge``: λ > 0, a number or a (d,) tensor, as in :func:`mesa_attention`. A call
    that fails its checks leaves the state untouched.
    """

    fields = ("H_kk", "H_kv")

    def __init__(self, d, d_v, *, ridge=1.0, batch_shape=(), dtype=torch.float32, device=None, record=False):
        super().__init__(d, d_v, batch_shape=batch_shape, dtype=dtype, device=device, record=record)
        _check_ridge(ridge, d, self.H_kk)
        self.ridge = ridge

    def _field_shapes(self):
        return {"H_kk": (self.d, self.d), "H_kv": (self.d, self.d_v)}

    def _ridge_diag(self):
        if isinstance(self.ridge, torch.Tensor):
            return self.ridge.to(self.dtype)  # (d,)
        return self.H_kk.new_full((self.d,), float(self.ridge))  # (d,)

    def _check_gates(self, beta_t=None, g_t=None):
        for x, name, what in ((beta_t, "beta_t", "a write weight in [0, 1]"), (g_t, "g_t", "a decay exp(g) in (0, 1]")):
            if x is None:
                continue
            check_tensor(x, name, min_rank=0)
            if tuple(x.shape) != self.batch_shape:
                raise ValueError(f"{name} must have shape {self.batch_shape} (batch_shape, one per token); "
                                 f"got {tuple(x.shape)}")
            if x.device != self.device:
                raise ValueError(f"{name} must be on {self.device}; got {x.device}")
            _check_gate(x, name, what)
        return (beta_t, g_t)

    def _update(self, tensors, q_t, k_t, v_t, beta_t, g_t):
        beta_t = k_t.new_ones(k_t.shape[:-1]) if beta_t is None else beta_t  # (...)
        return mesa_step(*tensors, k_t, v_t, beta_t, None if g_t is None else floor_log_decay(g_t))

    def _read(self, tensors, q_t):
        return mesa_readout(*tensors, q_t, self._ridge_diag())  # (..., d_v)

    def _attend(self, q, k, v, beta=None, log_decay=None, *, chunk_size):
        return mesa_attention(q, k, v, ridge=self.ridge, beta=beta, log_decay=log_decay, form="chunkwise",
                              chunk_size=chunk_size, initial_state=self.state, return_state=True)

    def step(self, q_t, k_t, v_t, beta_t=None, g_t=None):
        """Write token t, then solve for its read-out -> (*batch_shape, d_v)."""
        return super().step(q_t, k_t, v_t, beta_t, g_t)

    def prefill(self, q, k, v, *, beta=None, log_decay=None, chunk_size=64):
        """Absorb N tokens with the chunkwise form from the current statistics -> out (*batch_shape, N, d_v)."""
        return super().prefill(q, k, v, beta, log_decay, chunk_size=chunk_size)


def _mesa_gates(lead, d, generator, dtype, device) -> dict:
    """β ∈ [0.1, 1] and one log-decay g ∈ [−0.5, −0.01] per token (λ = 1, the default)."""
    beta = 0.1 + 0.9 * torch.rand(*lead, generator=generator, dtype=torch.float64)  # (..., N)
    g = -(0.01 + 0.49 * torch.rand(*lead, generator=generator, dtype=torch.float64))  # (..., N)
    return {"beta": beta.to(dtype=dtype, device=device), "log_decay": g.to(dtype=dtype, device=device)}


register_rule(Rule("mesa", "MesaNet, exact ridge regression", mesa_attention, MesaState, ("recurrent", "chunkwise"),
                   _mesa_gates))
