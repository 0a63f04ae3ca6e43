"""Checkers for notebook 02 (attention as kernel smoothing): Gaussian kernel, Nadaraya–Watson, exp kernel."""
from __future__ import annotations

import torch

from ..kernel import gaussian_kernel, kernel_smoother
from ..softmax import softmax_attention
import math

from .runner import Case, Guard, Hint, add_guard, close, gen, qkv_cases, randn, run_cases, shape_of

__all__ = ["check_gaussian_kernel", "check_nadaraya_watson", "check_exp_kernel"]

#: Two-tier hints: the idea on a first miss, then code that passes the checker (tests run it).
HINTS = {
    "check_gaussian_kernel": Hint(
        "κ_ij = exp(−‖q_i − k_j‖² / (2h²)): pair every query with every key by broadcasting, and sum the "
        "squared differences over the last dim d.",
        "def my_gaussian_kernel(q, k, bandwidth):\n"
        "    sq = (q.unsqueeze(-2) - k.unsqueeze(-3)).pow(2).sum(-1)  # (..., N, 1, d) - (..., 1, M, d) -> (..., N, M)\n"
        "    return torch.exp(-sq / (2 * bandwidth**2))"),
    "check_nadaraya_watson": Hint(
        "one weight κ(x_i, x_j) per (query, training point); each prediction is the weighted average of "
        "y_train: divide by the sum of that query's weights.",
        "def my_nadaraya_watson(x_query, x_train, y_train, bandwidth):\n"
        "    w = torch.exp(-(x_query[:, None] - x_train[None, :]) ** 2 / (2 * bandwidth**2))  # (n, m)\n"
        "    return (w @ y_train) / w.sum(-1)                                                # (n,)"),
    "check_exp_kernel": Hint(
        "κ(q_i, k_j) = exp(q_i·k_j / √d) for every pair: the (..., N, M) matrix itself; kernel_smoother "
        "divides by the row sums, so do not normalise it.",
        "def my_exp_kernel(q, k):\n"
        "    return torch.exp(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]))  # (..., N, M)"),
}


def check_gaussian_kernel(your_fn) -> bool:
    """your_fn(q (..., N, d), k (..., M, d), bandwidth) -> Gram (..., N, M) = exp(−‖q−k‖²/(2h²)).

    Compared through what a smoother uses: the row-normalised weights κ_ij / Σ_l κ_il (so a kernel
    scaled by a per-query constant, like the library's stabilised one, counts as the same kernel).
    """
    g, cases = gen(), []
    for (q, k, v), h in zip(qkv_cases(g, [((), 6, 4, 1, 1), ((2,), 5, 7, 3, 1), ((2, 2), 3, 3, 8, 1)]),
                            (0.3, 1.0, 2.5)):
        _, weights = kernel_smoother(q, k, v, gaussian_kernel(h), return_weights=True)  # (..., N, M)
        cases.append(Case((q, k, h), weights, f"q {shape_of(q)}, k {shape_of(k)}, h = {h}"))

    def rows(gram):
        return gram / gram.sum(-1, keepdim=True)  # (..., N, M): the smoother's weights

    def weights_of(*args):
        return rows(your_fn(*args))

    dist2 = lambda c: (c.args[0].unsqueeze(-2) - c.args[1].unsqueeze(-3)).pow(2).sum(-1)  # noqa: E731
    return run_cases(
        "check_gaussian_kernel (compared as smoother weights κ_ij / Σ_l κ_il)", weights_of, cases,
        names=["weights"],
        hint=HINTS["check_gaussian_kernel"],
        diagnoses=[
            (lambda e, g, c: close(g, rows(torch.exp(-dist2(c) / c.args[2] ** 2))), "divide by 2h², not h²."),
            (lambda e, g, c: close(g, rows(torch.exp(-dist2(c) / (2 * c.args[2])))), "divide by 2h² (h squared)."),
            (lambda e, g, c: close(g, rows(torch.exp(-dist2(c).sqrt() / (2 * c.args[2] ** 2)))),
             "use the squared distance ‖q − k‖², not the distance."),
        ])


def check_nadaraya_watson(your_fn) -> bool:
    """your_fn(x_query (n,), x_train (m,), y_train (m,), bandwidth) -> predictions (n,).

    ŷ(x) = Σ_j κ(x, x_j) y_j / Σ_j κ(x, x_j) with the Gaussian kernel of bandwidth h.
    """
    g, cases = gen(), []
    for n, m, h in ((5, 8, 0.5), (30, 20, 0.1), (1, 12, 2.0)):
        xq = torch.rand(n, generator=g) * 6 - 3  # (n,)
        xt = torch.rand(m, generator=g) * 6 - 3  # (m,)
        yt = torch.sin(xt) + 0.1 * randn(g, m)  # (m,)
        exp = kernel_smoother(xq[:, None], xt[:, None], yt[:, None], gaussian_kernel(h))[:, 0]  # (n,)
        cases.append(Case((xq, xt, yt, h), exp, f"{n} queries, {m} training points, h = {h}"))

    def gram(c):
        return torch.exp(-(c.args[0][:, None] - c.args[1][None, :]) ** 2 / (2 * c.args[3] ** 2))  # (n, m)

    return run_cases(
        "check_nadaraya_watson", your_fn, cases, names=["prediction"],
        hint=HINTS["check_nadaraya_watson"],
        diagnoses=[
            (lambda e, g, c: close(g, gram(c) @ c.args[2]),
             "you did not divide by Σ_j κ(x_i, x_j): the weights must sum to 1 for each query."),
            (lambda e, g, c: close(g, (gram(c) / gram(c).sum(0, keepdim=True)) @ c.args[2]),
             "you normalised over the queries; normalise over the training points (each row)."),
        ])


def check_exp_kernel(your_fn) -> bool:
    """your_fn(q, k) -> Gram (..., N, M) such that kernel_smoother(q, k, v, your_fn) == softmax attention."""
    g, cases = gen(), []
    for q, k, v in qkv_cases(g, [((), 5, 6, 4, 2), ((2, 3), 7, 7, 16, 3), ((2,), 3, 9, 64, 2)]):
        cases.append(Case((q, k, v), softmax_attention(q, k, v), f"q {shape_of(q)}, k {shape_of(k)}",
                           extra={"d": q.shape[-1]}))

    def via_smoother(q, k, v):
        return kernel_smoother(q, k, v, your_fn)  # (..., N, d_v)

    def raw_values(case, got):  # the smoother hides a per-query factor: look at the kernel itself
        q, k, _ = case.args
        mine = your_fn(q, k)  # (..., N, M)
        want = torch.exp(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]))  # (..., N, M)
        if close(mine, want):
            return None
        if isinstance(mine, torch.Tensor) and close(mine.sum(-1), torch.ones_like(want.sum(-1))):
            return ("right smoother output, but your kernel is normalised (each row sums to 1): return the "
                    "raw values exp(q_i·k_j / √d); kernel_smoother does the dividing")
        return ("right smoother output, but your kernel values are not exp(q_i·k_j / √d) (a factor per query, "
                "such as a subtracted max, cancels in the smoother): return the plain kernel")

    return run_cases(
        "check_exp_kernel (kernel_smoother(q, k, v, your_kernel) vs softmax_attention)", via_smoother,
        cases, names=["out"], after=raw_values,
        hint=HINTS["check_exp_kernel"],
        diagnoses=[
            (lambda e, g, c: close(g, softmax_attention(*c.args, scale=1.0)), "you forgot the 1/√d scale."),
            (lambda e, g, c: close(g, softmax_attention(*c.args, scale=1.0 / c.extra["d"])),
             "you divided by d; divide by √d."),
        ])


# --------------------------------------------------------------------------- hidden tests (graded edition)

def _qk(*extra):
    q, k, _ = next(qkv_cases(gen(), [((2,), 5, 7, 4, 1)]))
    return (q, k, *extra)


def _nw():
    g = gen()
    return torch.rand(6, generator=g) * 6 - 3, torch.rand(9, generator=g) * 6 - 3, randn(g, 9), 0.5


add_guard("check_gaussian_kernel", Guard(lambda: _qk(0.7), allowed=()))
add_guard("check_nadaraya_watson", Guard(_nw, allowed=()))
add_guard("check_exp_kernel", Guard(_qk, allowed=(), torch_names=frozenset({"scaled_dot_product_attention"})))
