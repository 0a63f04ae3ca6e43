"""Checkers for notebook 04 (causal linear attention is an RNN): prefix states, one step, chunkwise, backward."""
from __future__ import annotations

import torch

from ..feature_maps import elu_plus_one, identity
from ..linear import linear_attention
from .. import LinearAttentionState
from .runner import Case, Guard, Hint, add_guard, as_tensor, close, fail, gen, qkv_cases, randn, run_cases, shape_of

__all__ = ["HAND_EXAMPLE", "show_hand_example", "reveal_hand_example", "check_hand_output", "check_prefix_states", "check_recurrent_step", "check_chunkwise", "check_causal_backward"]


#: Two-tier hints: the idea on a first miss, then code that passes the checker (tests run it).
HINTS = {
    "check_prefix_states": Hint(
        "one outer product φ(k_j) v_jᵀ per token (..., N, d_φ, d_v), then a running (inclusive) sum over the "
        "token dim; z is the running sum of φ(k_j).",
        "def my_prefix_states(k, v, phi):\n"
        "    fk = phi(k)                                   # (..., N, d_φ)\n"
        "    outer = fk.unsqueeze(-1) * v.unsqueeze(-2)    # (..., N, d_φ, 1) * (..., N, 1, d_v)\n"
        "    return outer.cumsum(-3), fk.cumsum(-2)        # (..., N, d_φ, d_v), (..., N, d_φ)"),
    "check_recurrent_step": Hint(
        "write first (S += φ(k_t) v_tᵀ, z += φ(k_t)), then read: φ(q_t)ᵀS / φ(q_t)ᵀz. Every tensor has "
        "batch dims in front: make φ(k_t) a column and v_t a row for the outer product.",
        "def my_step(S, z, q_t, k_t, v_t, phi):\n"
        "    fk, fq = phi(k_t), phi(q_t)                              # (..., d_φ)\n"
        "    S = S + fk.unsqueeze(-1) * v_t.unsqueeze(-2)              # (..., d_φ, d_v)\n"
        "    z = z + fk                                               # (..., d_φ)\n"
        "    out = (fq.unsqueeze(-2) @ S).squeeze(-2) / (fq * z).sum(-1, keepdim=True)  # (..., d_v)\n"
        "    return out, S, z"),
    "check_chunkwise": Hint(
        "loop over chunks (the last may be shorter): read the carried state before the chunk (inter part), "
        "add a tril-masked φ(Q_c)φ(K_c)ᵀ for the chunk's own keys (intra part), divide, then update the state.",
        "def my_chunkwise(q, k, v, phi, chunk_size):\n"
        "    fq, fk = phi(q), phi(k)                                              # (..., N, d_φ)\n"
        "    S = fk.new_zeros(*fk.shape[:-2], fk.shape[-1], v.shape[-1])          # (..., d_φ, d_v)\n"
        "    z = fk.new_zeros(*fk.shape[:-2], fk.shape[-1])                       # (..., d_φ)\n"
        "    outs = []\n"
        "    for i in range(0, q.shape[-2], chunk_size):\n"
        "        qc, kc, vc = fq[..., i:i + chunk_size, :], fk[..., i:i + chunk_size, :], v[..., i:i + chunk_size, :]\n"
        "        a = (qc @ kc.transpose(-2, -1)).tril()                           # (..., C, C)\n"
        "        num = qc @ S + a @ vc                                            # (..., C, d_v)\n"
        "        den = qc @ z.unsqueeze(-1) + a.sum(-1, keepdim=True)             # (..., C, 1)\n"
        "        outs.append(num / den)\n"
        "        S, z = S + kc.transpose(-2, -1) @ vc, z + kc.sum(-2)\n"
        "    return torch.cat(outs, dim=-2)"),
    "check_causal_backward": Hint(
        "dQ is a forward (causal) scan; dK and dV sum over *later* queries: the same masked products with the "
        "mask transposed (or: flip time, scan, flip back).",
        "def my_backward(q, k, v, grad_out):\n"
        "    n = q.shape[-2]\n"
        "    tril = torch.ones(n, n, dtype=q.dtype).tril()                         # (N, N): j <= i\n"
        "    dq = ((grad_out @ v.transpose(-2, -1)) * tril) @ k                    # (..., N, d)\n"
        "    dk = ((v @ grad_out.transpose(-2, -1)) * tril.T) @ q                  # (..., N, d)\n"
        "    dv = ((k @ q.transpose(-2, -1)) * tril.T) @ grad_out                  # (..., N, d_v)\n"
        "    return dq, dk, dv"),
}


#: A 3-token, 2-d example small enough to do by hand (φ = elu+1, which is x + 1 for x >= 0).
HAND_EXAMPLE = {
    "q": [[0.0, 1.0], [1.0, 0.0], [1.0, 2.0]],
    "k": [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]],
    "v": [[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]],
    "i": 2,  # the token to compute, counting from 1
}


def _hand_tensors():
    q, k, v = (torch.tensor(HAND_EXAMPLE[x], dtype=torch.float64) for x in "qkv")  # (3, 2) each
    return q, k, v, HAND_EXAMPLE["i"]


def show_hand_example() -> None:
    """Print the hand-computation problem: the tokens, φ, and what to compute."""
    q, k, v, i = _hand_tensors()
    print("φ(x) = elu(x) + 1, entrywise; every input here is >= 0, so φ(x) = x + 1.")
    for t in range(q.shape[0]):
        print(f"  token {t + 1}:  q = {q[t].tolist()}   k = {k[t].tolist()}   v = {v[t].tolist()}")
    print(f"Compute, for token i = {i} (causal: keys j <= {i}):")
    print(f"  S_{i} = Σ_(j<={i}) φ(k_j) v_jᵀ  (2×2),  z_{i} = Σ_(j<={i}) φ(k_j)  (2),  "
          f"out_{i} = φ(q_{i})ᵀS_{i} / φ(q_{i})ᵀz_{i}  (2)")
    print("and pass them as nested lists of numbers: check_hand_output(S, z, out)  (3 decimals are enough)")


def _hand_expected(q, k, v, i, *, upto=None, phi=elu_plus_one):
    """(S, z, out) of token i (1-based) from a state that has read tokens 1..upto (default i)."""
    upto = i if upto is None else upto
    fk, fq = phi(k[:upto]), phi(q[i - 1])  # (upto, 2), (2,)
    S = fk.T @ v[:upto]  # (2, upto) @ (upto, 2) -> (2, 2)
    z = fk.sum(0)  # (2,)
    return S, z, (fq @ S) / (fq @ z)  # (2,)


def reveal_hand_example() -> None:
    """Print the expected S_i, z_i and out_i of :data:`HAND_EXAMPLE` (the checker shows them only when asked)."""
    q, k, v, i = _hand_tensors()
    S, z, out = _hand_expected(q, k, v, i)
    print(f"S_{i} = {[[round(x, 3) for x in row] for row in S.tolist()]}")
    print(f"z_{i} = {[round(x, 3) for x in z.tolist()]}")
    print(f"out_{i} = {[round(x, 3) for x in out.tolist()]}")


def check_hand_output(S, z, out) -> bool:
    """Mark a hand computation of S_i, z_i and out_i = φ(q_i)ᵀS_i / φ(q_i)ᵀz_i for :data:`HAND_EXAMPLE`.

    The expected numbers come from the library (a LinearAttentionState stepped through tokens 1..i).
    """
    q, k, v, i = _hand_tensors()
    state = LinearAttentionState(2, 2, feature_map=elu_plus_one, dtype=torch.float64)
    for t in range(i):
        out_i = state.step(q[t], k[t], v[t])  # (2,)
    S_i, z_i = state.snapshot()  # (2, 2), (2,)
    got = [as_tensor(x) for x in (S, z, out)]
    title = "check_hand_output"
    if any(x is None for x in got):
        return fail(title, [f"  expected numbers (nested lists or tensors); got {[type(x).__name__ for x in (S, z, out)]}"],
                    "pass S as [[s11, s12], [s21, s22]], z as [z1, z2], out as [o1, o2].")

    def variant(**kw):
        return _hand_expected(q, k, v, i, **kw)

    def unnormalised(e, g, c):
        return close(g[2], elu_plus_one(q[i - 1]) @ e[0], atol=5e-3, rtol=0)

    ident = lambda x: x  # noqa: E731
    return run_cases(
        title, lambda: tuple(got), [Case((), (S_i, z_i, out_i), f"token {i} of 3")],
        names=[f"S_{i}", f"z_{i}", f"out_{i}"], atol=5e-3, rtol=0, reveal=False,
        success=f"S_{i}, z_{i} and out_{i} = {[round(x, 3) for x in out_i.tolist()]} match the library's state "
                f"after tokens 1..{i}.",
        hint=f"S_{i} adds φ(k_j) v_jᵀ (a 2×2 outer product) for j = 1..{i}; z_{i} adds φ(k_j); "
             f"then out = (φ(q_{i})ᵀS_{i}) / (φ(q_{i})ᵀz_{i}). (To see the numbers: reveal_hand_example().)",
        diagnoses=[
            (lambda e, g, c: close(g[0], e[0].T, atol=5e-3, rtol=0),
             "S is transposed: S = Σ φ(k_j) v_jᵀ has rows for the features of φ(k), columns for v."),
            (lambda e, g, c: close(g[0], variant(upto=3)[0], atol=5e-3, rtol=0),
             f"you summed all three tokens: causal S_{i} holds keys j <= {i} only."),
            (lambda e, g, c: close(g[0], variant(upto=i - 1)[0], atol=5e-3, rtol=0),
             f"you stopped at j < {i}: include token {i} itself (a token attends to itself)."),
            (lambda e, g, c: close(g[0], variant(phi=ident)[0], atol=5e-3, rtol=0),
             "apply φ to the keys first: φ(k) = k + 1 here."),
            (lambda e, g, c: close(g[2], (q[i - 1] @ e[0]) / (q[i - 1] @ e[1]), atol=5e-3, rtol=0),
             "S is right; apply φ to the query as well: φ(q) = q + 1 here."),
            (unnormalised, f"you left out the denominator: divide by φ(q_{i})ᵀz_{i}."),
        ])


def _prefix_states(phi, q, k, v) -> tuple[torch.Tensor, torch.Tensor]:
    """Every S_i (..., N, d_φ, d_v) and z_i (..., N, d_φ), read off a stepped LinearAttentionState."""
    state = LinearAttentionState(q.shape[-1], v.shape[-1], feature_map=phi, batch_shape=tuple(q.shape[:-2]))
    states, norms = [], []
    for t in range(q.shape[-2]):
        state.step(q[..., t, :], k[..., t, :], v[..., t, :])
        s, z = state.snapshot()  # (..., d_φ, d_v), (..., d_φ)
        states.append(s)
        norms.append(z)
    return torch.stack(states, dim=-3), torch.stack(norms, dim=-2)  # (..., N, d_φ, d_v), (..., N, d_φ)


def check_prefix_states(your_fn) -> bool:
    """your_fn(k, v, phi) -> (S (..., N, d_φ, d_v), z (..., N, d_φ)), inclusive prefix sums.

    S_i = Σ_{j<=i} φ(k_j) v_jᵀ,  z_i = Σ_{j<=i} φ(k_j).
    """
    g, cases = gen(), []
    for q, k, v in qkv_cases(g, [((), 6, 6, 3, 2), ((2, 2), 5, 5, 4, 3), ((3,), 1, 1, 2, 2)]):
        cases.append(Case((k, v, elu_plus_one), _prefix_states(elu_plus_one, q, k, v),
                           f"k {shape_of(k)}, v {shape_of(v)}, φ = elu+1"))

    def shifted(e):  # exclusive prefix sums: S_i = Σ_{j<i}
        return torch.cat([torch.zeros_like(e[..., :1, :, :]), e[..., :-1, :, :]], dim=-3)

    return run_cases(
        "check_prefix_states", your_fn, cases, names=["S", "z"],
        hint=HINTS["check_prefix_states"],
        diagnoses=[
            (lambda e, g, c: close(g[0], e[0][..., -1:, :, :].expand_as(e[0])),
             "every S_i equals the total Σ_j over all tokens: that is the non-causal sum. Use a cumulative sum."),
            (lambda e, g, c: c.args[0].shape[-2] > 1 and close(g[0], shifted(e[0])),
             "your sums stop at j < i; include token i itself (j <= i: a token attends to itself)."),
            (lambda e, g, c: close(g[0], e[0].transpose(-2, -1)), "S_i is transposed: (d_φ, d_v) = φ(k) vᵀ."),
        ])


def check_recurrent_step(your_fn) -> bool:
    """your_fn(S, z, q_t, k_t, v_t, phi) -> (out_t, S_new, z_new): one token of the RNN.

    S_new = S + φ(k_t) v_tᵀ, z_new = z + φ(k_t), out_t = φ(q_t)ᵀS_new / φ(q_t)ᵀz_new.
    """
    g, cases = gen(), []
    for q, k, v in qkv_cases(g, [((), 5, 5, 4, 3), ((2, 3), 8, 8, 6, 2), ((2,), 2, 2, 8, 4)]):
        d, dv, batch = q.shape[-1], v.shape[-1], tuple(q.shape[:-2])
        state = LinearAttentionState(d, dv, feature_map=elu_plus_one, batch_shape=batch)
        state.prefill(q[..., :-1, :], k[..., :-1, :], v[..., :-1, :])
        s0, z0 = state.snapshot()  # (..., d_φ, d_v), (..., d_φ)
        qt, kt, vt = q[..., -1, :], k[..., -1, :], v[..., -1, :]  # (..., d), (..., d), (..., d_v)
        out = state.step(qt, kt, vt)  # (..., d_v)
        s1, z1 = state.snapshot()
        cases.append(Case((s0, z0, qt, kt, vt, elu_plus_one), (out, s1, z1),
                           f"state after {q.shape[-2] - 1} tokens, batch {batch}", extra={"old": (s0, z0)}))

    def read_first(c):  # out computed from the state before adding token t
        s0, z0, qt = c.args[0], c.args[1], c.args[2]
        fq = elu_plus_one(qt)  # (..., d_φ)
        return (fq.unsqueeze(-2) @ s0).squeeze(-2) / (fq * z0).sum(-1, keepdim=True)  # (..., d_v)

    return run_cases(
        "check_recurrent_step", your_fn, cases, names=["out_t", "S_new", "z_new"],
        hint=HINTS["check_recurrent_step"],
        diagnoses=[
            (lambda e, g, c: c.args[0].abs().sum() > 0 and close(g[0], read_first(c)),
             "you read out before adding token t: update S and z first — token t attends to itself."),
            (lambda e, g, c: close(g[1], e[1].transpose(-2, -1)), "S is transposed: S += φ(k_t) v_tᵀ is (d_φ, d_v)."),
            (lambda e, g, c: close(g[1], e[1]) and close(g[2], e[2]),
             "the state update is right; check the read-out φ(q_t)ᵀS / φ(q_t)ᵀz."),
        ])


def check_chunkwise(your_fn) -> bool:
    """your_fn(q, k, v, phi, chunk_size) -> out (..., N, d_v): causal linear attention, chunk by chunk.

    For chunk c: O_c = [φ(Q_c)S + tril(φ(Q_c)φ(K_c)ᵀ)V_c] / [φ(Q_c)z + tril(φ(Q_c)φ(K_c)ᵀ)1],
    then S += φ(K_c)ᵀV_c, z += φ(K_c)ᵀ1. N need not be a multiple of chunk_size.
    """
    g, cases = gen(), []
    for (q, k, v), c in zip(qkv_cases(g, [((), 13, 13, 4, 3), ((2, 2), 16, 16, 6, 2),
                                              ((2,), 1, 1, 8, 2), ((), 10, 10, 5, 3)]), (4, 8, 4, 16)):
        cases.append(Case((q, k, v, elu_plus_one, c),
                           linear_attention(q, k, v, elu_plus_one, causal=True, form="quadratic"),
                           f"N = {q.shape[-2]}, chunk_size = {c}, batch {tuple(q.shape[:-2])}"))

    def blockdiag(c):  # causal inside each chunk, no carried state
        q, k, v, phi, size = c.args
        return torch.cat([linear_attention(q[..., i:i + size, :], k[..., i:i + size, :], v[..., i:i + size, :],
                                           phi, causal=True, form="quadratic")
                          for i in range(0, q.shape[-2], size)], dim=-2)

    def noncausal_intra(c):
        q, k, v, phi, size = c.args
        n = q.shape[-2]
        block = torch.arange(n) // size  # (N,)
        allowed = block[None, :] <= block[:, None]  # (N, N): every key of the same or an earlier chunk
        gram = phi(q) @ phi(k).transpose(-2, -1) * allowed  # (..., N, N)
        return (gram / gram.sum(-1, keepdim=True)) @ v

    return run_cases(
        "check_chunkwise", your_fn, cases, names=["out"],
        hint=HINTS["check_chunkwise"],
        diagnoses=[
            (lambda e, g, c: close(g, blockdiag(c)), "you dropped the carried state: add φ(Q_c)S and φ(Q_c)z, "
                                                      "the contribution of all earlier chunks."),
            (lambda e, g, c: close(g, noncausal_intra(c)),
             "queries see later keys of their own chunk: mask the intra-chunk product with tril."),
            (lambda e, g, c: close(g[..., :c.args[4], :], e[..., :c.args[4], :]),
             "the first chunk is right and a later one is not: update the state after each chunk, and "
             "read it before the update."),
        ])


def check_causal_backward(your_fn) -> bool:
    """your_fn(q, k, v, grad_out) -> (dq, dk, dv) for O = causal unnormalised linear attention.

    Features already applied (φ = identity): O_i = Σ_{j<=i} (q_iᵀk_j) v_j. Its gradients are
    linear-attention scans: dQ = causal(dO, V, K) forwards; dK, dV run backwards:
    dk_j = Σ_{i>=j} (dO_iᵀv_j) q_i,  dv_j = Σ_{i>=j} (q_iᵀk_j) dO_i.
    """
    g, cases = gen(), []
    for q, k, v in qkv_cases(g, [((), 6, 6, 3, 2), ((2, 2), 9, 9, 4, 3), ((2,), 1, 1, 5, 2)]):
        grad_out = randn(g, *v.shape[:-2], q.shape[-2], v.shape[-1])  # (..., N, d_v)
        qq, kk, vv = (x.clone().requires_grad_(True) for x in (q, k, v))
        out = linear_attention(qq, kk, vv, identity, causal=True, normalize=False, form="quadratic")
        dq, dk, dv = torch.autograd.grad(out, (qq, kk, vv), grad_out)
        cases.append(Case((q, k, v, grad_out), (dq, dk, dv), f"q {shape_of(q)}, v {shape_of(v)}"))

    def forward_scans(c):  # dk, dv computed with forward (causal) scans instead of reversed ones
        q, k, v, g = c.args
        tril = torch.ones(q.shape[-2], q.shape[-2]).tril()
        return ((v @ g.transpose(-2, -1)) * tril) @ q, ((k @ q.transpose(-2, -1)) * tril) @ g

    def noncausal(c):
        q, k, v, g = c.args
        return (g @ v.transpose(-2, -1)) @ k

    return run_cases(
        "check_causal_backward", your_fn, cases, names=["dq", "dk", "dv"],
        hint=HINTS["check_causal_backward"],
        diagnoses=[
            (lambda e, g, c: c.args[0].shape[-2] > 1 and close(g[0], noncausal(c)),
             "dq ignores the mask: dq_i = Σ_{j<=i} (dO_iᵀv_j) k_j only sums over the past."),
            (lambda e, g, c: c.args[0].shape[-2] > 1 and close(g[1], forward_scans(c)[0]),
             "dk is a sum over *later* queries: dk_j = Σ_{i>=j} (dO_iᵀv_j) q_i — run that scan backwards in time."),
            (lambda e, g, c: c.args[0].shape[-2] > 1 and close(g[2], forward_scans(c)[1]),
             "dv is a sum over *later* queries: dv_j = Σ_{i>=j} (q_iᵀk_j) dO_i — run that scan backwards in time."),
        ])


# --------------------------------------------------------------------------- hidden tests (graded edition)

def _qkv(n=8, batch=(2,)):
    return next(qkv_cases(gen(), [(batch, n, n, 4, 3)]))


def _step_args():
    q, k, v = _qkv()
    s, z = LinearAttentionState(4, 3, feature_map=elu_plus_one, batch_shape=(2,)).snapshot()  # (2, 4, 3), (2, 4)
    return s + 1.0, z + 1.0, q[..., 0, :], k[..., 0, :], v[..., 0, :], elu_plus_one


_AUTOGRAD = frozenset({"grad", "backward", "requires_grad_", "enable_grad"})
add_guard("check_prefix_states", Guard(lambda: (*_qkv()[1:], elu_plus_one)))
add_guard("check_recurrent_step", Guard(_step_args))
add_guard("check_chunkwise", Guard(lambda: (*_qkv(256), elu_plus_one, 16),
                                   max_numel=lambda args: args[0].shape[-2] ** 2 // 4))
add_guard("check_causal_backward", Guard(lambda: (*_qkv(), randn(gen(), 2, 8, 3)), allowed=(),
                                         torch_names=_AUTOGRAD))
