"""Checkers for notebook 01 (softmax attention): scores, a stable softmax, the causal mask, attention."""
from __future__ import annotations

import math

import torch

from ..softmax import attention_scores, softmax_attention, stable_softmax
from .runner import LIBRARY_SOFTMAX, Case, Guard, Hint, add_guard, close, fail, gen, qkv_cases, randn, run_cases, shape_of

__all__ = ["check_scaled_scores", "check_stable_softmax", "check_causal_mask", "check_softmax_attention"]

#: Two-tier hints: the idea on a first miss, then code that passes the checker (tests run it).
HINTS = {
    "check_scaled_scores": Hint(
        "scores_ij = q_i·k_j / √d with d = q.shape[-1]; transpose only k's last two dims, so batch dims work.",
        "def my_scaled_scores(q, k):\n"
        "    return q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., N, d) @ (..., d, M)"),
    "check_stable_softmax": Hint(
        "subtract each row's own max (every exponent is then <= 0), exponentiate, divide by the row sum.",
        "def my_softmax(scores):\n"
        "    e = torch.exp(scores - scores.amax(dim=-1, keepdim=True))  # (..., N, M), row max kept as (..., N, 1)\n"
        "    return e / e.sum(dim=-1, keepdim=True)"),
    "check_causal_mask": Hint(
        "row i is the query, column j the key: allow j <= i, the lower triangle with its diagonal.",
        "def my_causal_mask(n):\n"
        "    return torch.ones(n, n, dtype=torch.bool).tril()"),
    "check_softmax_attention": Hint(
        "scaled scores; when causal, −∞ where key j > query i; a stable softmax over each row; then @ V.",
        "def my_attention(q, k, v, causal):\n"
        "    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])              # (..., N, M)\n"
        "    if causal:\n"
        "        keep = torch.ones(s.shape[-2], s.shape[-1], dtype=torch.bool).tril()\n"
        "        s = s.masked_fill(~keep, float('-inf'))\n"
        "    e = torch.exp(s - s.amax(dim=-1, keepdim=True))\n"
        "    return (e / e.sum(dim=-1, keepdim=True)) @ v                     # (..., N, M) @ (..., M, d_v)"),
}

_SHAPES = [((), 5, 5, 4, 3), ((2, 3), 7, 7, 16, 5), ((2,), 1, 1, 8, 2), ((3,), 9, 9, 64, 4)]


def check_scaled_scores(your_fn) -> bool:
    """your_fn(q (..., N, d), k (..., M, d)) -> scores (..., N, M) = Q Kᵀ / √d."""
    g, cases = gen(), []
    for q, k, _ in qkv_cases(g, [((), 4, 6, 9, 1), ((2, 3), 5, 7, 16, 1), ((2,), 1, 3, 64, 1)]):
        cases.append(Case((q, k), attention_scores(q, k, 1 / math.sqrt(q.shape[-1])),
                          f"q {shape_of(q)}, k {shape_of(k)}"))
    sqrt_d = lambda c: math.sqrt(c.args[0].shape[-1])  # noqa: E731
    return run_cases(
        "check_scaled_scores", your_fn, cases, names=["scores"],
        hint=HINTS["check_scaled_scores"],
        diagnoses=[
            (lambda e, g, c: close(g, e * sqrt_d(c)), "you did not divide by √d (d = q.shape[-1])."),
            (lambda e, g, c: close(g, e / sqrt_d(c)), "you divided by d; divide by √d."),
            (lambda e, g, c: close(g, e * math.sqrt(sqrt_d(c))), "you divided by d^¼; divide by √d."),
            (lambda e, g, c: close(g, e.transpose(-2, -1)), "your scores are transposed: rows are queries."),
        ])


def check_stable_softmax(your_fn) -> bool:
    """your_fn(scores (..., N, M)) -> row softmax (..., N, M), stable for huge scores and −∞ entries.

    Written by hand: calling torch's softmax (torch.softmax, F.softmax, Tensor.softmax) fails.
    """
    g = gen()
    small = randn(g, 3, 5)  # (N, M)
    huge = randn(g, 2, 4, 6, scale=400.0)  # (B, N, M): exp overflows without max subtraction
    masked = randn(g, 4, 4, scale=3.0).masked_fill(~torch.ones(4, 4, dtype=torch.bool).tril(), -math.inf)
    cases = [Case((x,), stable_softmax(x), about)
             for x, about in [(small, "ordinary scores (3, 5)"),
                              (huge, "scores of size ~±1000, shape (2, 4, 6)"),
                              (masked, "causally masked scores with −∞ above the diagonal")]]
    write_it = "write it yourself: subtract the row max, exp, divide by the row sum."
    if your_fn is stable_softmax:
        return fail("check_stable_softmax", ["  that is linattn_edu's own stable_softmax"], write_it)
    return run_cases(
        "check_stable_softmax", your_fn, cases, names=["softmax"],
        hint=HINTS["check_stable_softmax"],
        forbidden={name: write_it for name in LIBRARY_SOFTMAX},
        diagnoses=[
            (lambda e, g, c: _same_with_nan(g, _global_max_softmax(c.args[0])) and not torch.isfinite(g).all(),
             "you subtracted one max for the whole tensor: in a row far below that max every exp(s − max) "
             "underflows to 0, and 0/0 = NaN (underflow, not overflow). Subtract each row's own max: "
             "amax(dim=-1, keepdim=True)."),
            (lambda e, g, c: not torch.isfinite(g).all(),
             "your output has inf/NaN: exp(s) overflows float32 past s ≈ 88. Subtract each row's max first."),
            (lambda e, g, c: close(g, torch.softmax(c.args[0], dim=-2)),
             "you normalised columns; normalise each row (dim=-1: over the keys)."),
            (lambda e, g, c: not close(g.sum(-1), torch.ones_like(g.sum(-1))),
             "each row must sum to 1: divide by the row sum (dim=-1, keepdim=True)."),
        ])


def _global_max_softmax(x: torch.Tensor) -> torch.Tensor:
    """The softmax with one max over the whole tensor (the mistake): rows far below it are 0/0."""
    e = torch.exp(x - x.max())  # (..., N, M)
    return e / e.sum(dim=-1, keepdim=True)


def _same_with_nan(a, b) -> bool:
    return (isinstance(a, torch.Tensor) and a.shape == b.shape and
            bool(torch.allclose(a.double(), b.double(), atol=1e-4, rtol=1e-4, equal_nan=True)))


def check_causal_mask(your_fn) -> bool:
    """your_fn(n) -> bool (n, n): True where query i may attend key j, i.e. j <= i."""
    cases = [Case((n,), torch.ones(n, n, dtype=torch.bool).tril(), f"n = {n}") for n in (4, 7, 1)]

    def dtype_ok(case, got):
        return None if got.dtype == torch.bool else f"return a bool tensor (True = attend); got {got.dtype}"

    return run_cases(
        "check_causal_mask", your_fn, cases, names=["mask"], after=dtype_ok,
        hint=HINTS["check_causal_mask"],
        diagnoses=[
            (lambda e, g, c: close(g.bool().to(torch.float), e.tril(-1).float()),
             "you left out the diagonal: a token may attend to itself (j = i)."),
            (lambda e, g, c: close(g.bool().to(torch.float), e.T.float()),
             "that is the upper triangle: query i must see keys j <= i, the past."),
            (lambda e, g, c: close(g.bool().to(torch.float), (~e).float()),
             "True means 'may attend' here; you marked the forbidden entries."),
        ])


_INVERTED = ("your mask is inverted: future positions are kept and past ones masked. "
             "Query i may attend keys j <= i: mask the entries *above* the diagonal (j > i).")


def _inverted(c, *, diagonal: int) -> torch.Tensor:
    """The output with the causal mask turned around: keys j >= i (diagonal=0) or j > i (diagonal=1) kept."""
    q, k, v, _ = c.args
    n = q.shape[-2]
    keep = torch.ones(n, n, dtype=torch.bool).triu(diagonal)  # (N, N)
    return softmax_attention(q, k, v, mask=keep)  # rows with no key left come out 0


def check_softmax_attention(your_fn) -> bool:
    """your_fn(q, k, v, causal) -> out (..., N, d_v) = softmax(QKᵀ/√d + mask) V."""
    g, cases = gen(), []
    for i, (q, k, v) in enumerate(qkv_cases(g, _SHAPES)):
        causal = i % 2 == 1
        cases.append(Case((q, k, v, causal), softmax_attention(q, k, v, causal=causal),
                          f"q {shape_of(q)}, v {shape_of(v)}, causal={causal}"))
    q, k, v = (x * 30 for x in next(qkv_cases(g, [((2,), 6, 6, 8, 3)])))
    cases.append(Case((q, k, v, True), softmax_attention(q, k, v, causal=True), "large scores, causal"))
    # A fully masked row is 0/0 = NaN in a plain softmax: compare the other rows (NaN read as 0).
    finite = lambda x: torch.nan_to_num(x, nan=0.0)  # noqa: E731
    return run_cases(
        "check_softmax_attention", your_fn, cases, names=["out"],
        hint=HINTS["check_softmax_attention"],
        diagnoses=[
            (lambda e, g, c: c.args[3] and c.args[0].shape[-2] > 1 and (
                close(finite(g), _inverted(c, diagonal=0)) or close(finite(g), _inverted(c, diagonal=1))),
             _INVERTED),
            (lambda e, g, c: not torch.isfinite(g).all(), "inf/NaN in your output: use a stable softmax."),
            (lambda e, g, c: close(g, softmax_attention(*c.args[:3], causal=c.args[3], scale=1.0)),
             "you forgot the 1/√d scale."),
            (lambda e, g, c: c.args[3] and close(g, softmax_attention(*c.args[:3])),
             "with causal=True query i may only see keys j <= i: mask the upper triangle."),
        ])


# --------------------------------------------------------------------------- hidden tests (graded edition)

def _qk():
    q, k, _ = next(qkv_cases(gen(), [((2,), 6, 6, 8, 3)]))
    return q, k


def _qkv_causal():
    q, k, v = next(qkv_cases(gen(), [((2,), 6, 6, 8, 3)]))
    return q, k, v, True


_NO_SDPA = frozenset({"scaled_dot_product_attention"})
add_guard("check_scaled_scores", Guard(_qk, allowed=(), torch_names=_NO_SDPA))
add_guard("check_stable_softmax", Guard(lambda: (randn(gen(), 2, 4, 6, scale=50.0),), allowed=(),
                                        torch_names=LIBRARY_SOFTMAX))
add_guard("check_causal_mask", Guard(lambda: (6,), allowed=()))
add_guard("check_softmax_attention", Guard(_qkv_causal, allowed=(), torch_names=_NO_SDPA))
