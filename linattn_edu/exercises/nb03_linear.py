"""Checkers for notebook 03 (linear attention): the key–value summary, O(N) attention, implied weights."""
from __future__ import annotations

import torch

from ..feature_maps import elu_plus_one
from ..linear import linear_attention
from ..softmax import softmax_attention
from .runner import (CallSpy, Case, Guard, Hint, add_guard, calls_grow_with_n, close, gen, qkv_cases, run_cases,
                     shape_of, state_after)

__all__ = ["check_kv_summary", "check_linear_attention", "check_linear_weights", "check_cross_attention"]

#: Two-tier hints: the idea on a first miss, then code that passes the checker (tests run it).
HINTS = {
    "check_kv_summary": Hint(
        "apply φ to the keys; S = φ(K)ᵀV sums φ(k_j) v_jᵀ over the tokens (..., d_φ, d_v), and z = Σ_j φ(k_j) "
        "sums φ(K) over the token dim (..., d_φ).",
        "def my_kv_summary(k, v, phi):\n"
        "    fk = phi(k)                                  # (..., N, d_φ)\n"
        "    return fk.transpose(-2, -1) @ v, fk.sum(-2)  # (..., d_φ, d_v), (..., d_φ)"),
    "check_linear_attention": Hint(
        "summarise the keys first (S = φ(K)ᵀV, z = φ(K)ᵀ1), then read the summary for every query at once: "
        "numerator φ(Q)S, denominator φ(Q)z, one per query, kept as a column so it divides each row.",
        "def my_linear_attention(q, k, v, phi):\n"
        "    fq, fk = phi(q), phi(k)                        # (..., N, d_φ)\n"
        "    S, z = fk.transpose(-2, -1) @ v, fk.sum(-2)     # (..., d_φ, d_v), (..., d_φ)\n"
        "    return (fq @ S) / (fq @ z.unsqueeze(-1))        # (..., N, d_v) / (..., N, 1)"),
    "check_linear_weights": Hint(
        "the kernel matrix φ(Q)φ(K)ᵀ, then divide each row by its sum (a query's weights over the keys).",
        "def my_linear_weights(q, k, phi):\n"
        "    a = phi(q) @ phi(k).transpose(-2, -1)   # (..., N, N)\n"
        "    return a / a.sum(-1, keepdim=True)"),
    "check_cross_attention": Hint(
        "cross-attention is non-causal: S and z come from the encoder's keys and values only. Zero the padding "
        "keys' features (multiply φ(K) by the mask as a column) before building S = φ(K)ᵀV *and* z = φ(K)ᵀ1; "
        "then every decoder query reads them: φ(Q)S / φ(Q)z.",
        "def my_cross_attention(q, k, v, key_mask, phi):\n"
        "    fk = phi(k) * key_mask.unsqueeze(-1).to(k.dtype)   # (..., M, d_φ): padding keys -> 0\n"
        "    S, z = fk.transpose(-2, -1) @ v, fk.sum(-2)         # (..., d_φ, d_v), (..., d_φ)\n"
        "    fq = phi(q)                                         # (..., N, d_φ)\n"
        "    return (fq @ S) / (fq @ z.unsqueeze(-1))            # (..., N, d_v)"),
}


def _lin_cases(g, shapes, phi=elu_plus_one, causal=False, form="quadratic"):
    cases = []
    for q, k, v in qkv_cases(g, shapes):
        exp = linear_attention(q, k, v, phi, causal=causal, form=form)
        cases.append(Case((q, k, v, phi), exp, f"q {shape_of(q)}, v {shape_of(v)}, φ = {phi.name}"))
    return cases


def check_kv_summary(your_fn) -> bool:
    """your_fn(k (..., N, d), v (..., N, d_v), phi) -> (S (..., d_φ, d_v), z (..., d_φ)).

    S = Σ_j φ(k_j) v_jᵀ = φ(K)ᵀV and z = Σ_j φ(k_j) = φ(K)ᵀ1: everything linear attention keeps.
    """
    g, cases = gen(), []
    for q, k, v in qkv_cases(g, [((), 6, 6, 4, 3), ((2, 3), 9, 9, 5, 2), ((2,), 1, 1, 8, 4)]):
        cases.append(Case((k, v, elu_plus_one), state_after(elu_plus_one, q, k, v),
                           f"k {shape_of(k)}, v {shape_of(v)}, φ = elu+1"))
    return run_cases(
        "check_kv_summary", your_fn, cases, names=["S", "z"],
        hint=HINTS["check_kv_summary"],
        diagnoses=[
            (lambda e, g, c: close(g[0], e[0].transpose(-2, -1)) or close(g[0].transpose(-2, -1), e[0]),
             "S is transposed: it should be (..., d_φ, d_v) = φ(K)ᵀ V."),
            (lambda e, g, c: close(g[0], c.args[1].transpose(-2, -1) @ c.args[0]) or
             close(g[0], c.args[0].transpose(-2, -1) @ c.args[1]),
             "apply φ to the keys before summing: S = φ(K)ᵀ V."),
            (lambda e, g, c: close(g[0], e[0]), "S is right; z = Σ_j φ(k_j) sums over the tokens (dim=-2)."),
        ])


def check_linear_attention(your_fn) -> bool:
    """your_fn(q, k, v, phi) -> out (..., N, d_v), non-causal, in O(N): never build an N×N matrix.

    out_i = φ(q_i)ᵀ S / φ(q_i)ᵀ z,  S = φ(K)ᵀV (d_φ, d_v),  z = φ(K)ᵀ1 (d_φ).
    """
    g = gen()
    # N = 37 is distinct from every d, d_φ and d_v used, so an (N, N) tensor is unambiguous.
    cases = _lin_cases(g, [((), 37, 37, 4, 3), ((2, 3), 37, 37, 6, 5), ((2,), 1, 1, 8, 2)])
    spy: dict = {}

    def watched(*args):
        n = args[0].shape[-2]
        with CallSpy(n) as mode:
            out = your_fn(*args)
        spy["seen"] = mode.nxn if n > 1 else None
        return out

    def no_nxn(case, got):
        if spy.get("seen"):
            fname, shape = spy["seen"]
            return (f"right values, but your function built an N×N tensor {shape} (in {fname}): compute "
                    f"φ(K)ᵀV first, so that the cost is O(N·d_φ·d_v), not O(N²)")
        n = case.args[0].shape[-2]
        grows = calls_grow_with_n(your_fn, case.args, n_dims=(0, 1, 2)) if n > 1 else None
        if grows:
            return (f"right values, but your function loops over the tokens in Python ({grows[0]} torch calls at "
                    f"N = {n}, {grows[1]} at N = {2 * n}): the O(N) form is a few whole-tensor products, "
                    f"φ(K)ᵀV and φ(Q)S, with no loop over N")
        return None

    def unnormalised(c):
        fq, fk = c.args[3](c.args[0]), c.args[3](c.args[1])
        return fq @ (fk.transpose(-2, -1) @ c.args[2])  # (..., N, d_v)

    return run_cases(
        "check_linear_attention", watched, cases, names=["out"], after=no_nxn,
        hint=HINTS["check_linear_attention"],
        diagnoses=[
            (lambda e, g, c: close(g, unnormalised(c)),
             "you left out the denominator φ(q_i)ᵀz: without it the weights don't sum to 1."),
            (lambda e, g, c: close(g, softmax_attention(*c.args[:3])),
             "that is softmax attention; use the feature map phi instead of exp."),
        ])


def check_linear_weights(your_fn) -> bool:
    """your_fn(q, k, phi) -> A (..., N, N): the attention matrix linear attention implies (non-causal).

    A_ij = φ(q_i)ᵀφ(k_j) / Σ_l φ(q_i)ᵀφ(k_l)  (rows sum to 1; only for pictures: it is O(N²)).
    """
    g, cases = gen(), []
    for q, k, v in qkv_cases(g, [((), 5, 5, 4, 2), ((2, 3), 8, 8, 6, 2), ((2,), 1, 1, 8, 2)]):
        _, weights = linear_attention(q, k, v, elu_plus_one, form="quadratic", return_weights=True)
        cases.append(Case((q, k, elu_plus_one), weights, f"q {shape_of(q)}, φ = elu+1"))

    def gram(c):
        return c.args[2](c.args[0]) @ c.args[2](c.args[1]).transpose(-2, -1)  # (..., N, N)

    return run_cases(
        "check_linear_weights", your_fn, cases, names=["weights"],
        hint=HINTS["check_linear_weights"],
        diagnoses=[
            (lambda e, g, c: close(g, gram(c)), "divide each row by its sum: attention weights sum to 1."),
            (lambda e, g, c: close(g, gram(c) / gram(c).sum(-2, keepdim=True)),
             "you normalised columns; normalise each row (a query's weights over the keys)."),
            (lambda e, g, c: close(g, torch.softmax(gram(c), dim=-1)),
             "no softmax here: the kernel values are already non-negative, just divide by the row sum."),
        ])


def _cross_reference(q, k, v, key_mask, phi):
    """Cross-attention of every batch row over its real keys only (..., N, d_v): the library, row by row."""
    lead = q.shape[:-2]
    qf, kf, vf, mf = (t.reshape(-1, *t.shape[len(lead):]) for t in (q, k, v, key_mask))
    rows = [linear_attention(qb, kb[mb], vb[mb], phi) for qb, kb, vb, mb in zip(qf, kf, vf, mf)]  # (N, d_v) each
    return torch.stack(rows).reshape(*lead, q.shape[-2], v.shape[-1])  # (..., N, d_v)


def check_cross_attention(your_fn) -> bool:
    """your_fn(q (..., N, d), k (..., M, d), v (..., M, d_v), key_mask (..., M) bool, phi) -> (..., N, d_v).

    Linear cross-attention: decoder queries q read a state built once from the encoder's keys and values,
    S = Σ_j m_j φ(k_j) v_jᵀ and z = Σ_j m_j φ(k_j) with m_j = 1 for a real encoder token and 0 for padding;
    out_i = φ(q_i)ᵀS / φ(q_i)ᵀz. N and M differ; there is no causal mask.
    """
    g, cases = gen(), []
    for batch, n, m, d, dv in (((2,), 5, 9, 4, 3), ((2, 3), 7, 4, 6, 2), ((3,), 1, 6, 8, 4)):
        q, k, v = next(qkv_cases(g, [(batch, n, m, d, dv)]))
        lengths = torch.randint(1, m + 1, batch, generator=g)  # (...) real encoder tokens per row
        lengths.view(-1)[0] = max(1, m - 2)  # at least one row with padding
        key_mask = torch.arange(m) < lengths.unsqueeze(-1)  # (..., M) True for real tokens
        cases.append(Case((q, k, v, key_mask, elu_plus_one), _cross_reference(q, k, v, key_mask, elu_plus_one),
                          f"q {shape_of(q)}, k {shape_of(k)}, real keys per row {lengths.flatten().tolist()}"))

    def parts(c, mask_s=True, mask_z=True):
        q, k, v, mask, phi = c.args
        fk, fq = phi(k), phi(q)  # (..., M, d_φ), (..., N, d_φ)
        col = mask.unsqueeze(-1).to(fk.dtype)  # (..., M, 1)
        fs, fz = (fk * col if mask_s else fk), (fk * col if mask_z else fk)
        return (fq @ (fs.transpose(-2, -1) @ v)) / (fq @ fz.sum(-2).unsqueeze(-1))  # (..., N, d_v)

    def causal(c):
        q, k, v, mask, phi = c.args
        a = (phi(q) @ phi(k).transpose(-2, -1)) * mask.unsqueeze(-2)  # (..., N, M)
        a = a * torch.ones(a.shape[-2:], dtype=torch.bool).tril()  # a tril on a non-square matrix
        return (a @ v) / a.sum(-1, keepdim=True)

    return run_cases(
        "check_cross_attention", your_fn, cases, names=["out"], hint=HINTS["check_cross_attention"],
        diagnoses=[
            (lambda e, g, c: close(g, parts(c, False, False)),
             "the padding keys got into S and z: zero φ(k_j) for every padding token (key_mask False) before summing."),
            (lambda e, g, c: close(g, parts(c, True, False)),
             "you masked S but not z: the padding keys still count in the denominator, so the real keys' weights "
             "sum to less than 1."),
            (lambda e, g, c: close(g, parts(c, False, True)),
             "you masked z but not S: the padding tokens' values still reach the numerator."),
            (lambda e, g, c: close(g, causal(c)),
             "cross-attention has no causal mask: every decoder query may read every real encoder token."),
        ])


# --------------------------------------------------------------------------- hidden tests (graded edition)

_BIG_N = 256  # N² = 65 536 elements dwarfs every O(N) intermediate at d = 4, d_v = 3 (<= N·d_φ·d_v = 3 072)


def _qkv(n=8):
    q, k, v = next(qkv_cases(gen(), [((2,), n, n, 4, 3)]))
    return q, k, v


add_guard("check_kv_summary", Guard(lambda: (*_qkv()[1:], elu_plus_one)))
add_guard("check_linear_attention", Guard(lambda: (*_qkv(_BIG_N), elu_plus_one),
                                          max_numel=lambda args: args[0].shape[-2] ** 2 // 4))
add_guard("check_linear_weights", Guard(lambda: (*_qkv()[:2], elu_plus_one)))


def _cross_args(n=_BIG_N):
    q, k, v = next(qkv_cases(gen(), [((2,), n, n + 3, 4, 3)]))
    return q, k, v, torch.arange(n + 3) < torch.tensor([[n], [n - 5]]), elu_plus_one  # (2, M) key mask


add_guard("check_cross_attention", Guard(_cross_args, max_numel=lambda args: args[0].shape[-2] ** 2 // 4))
