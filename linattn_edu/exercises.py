"""Auto-checkers for the read-along notebooks' self-check exercises.

Every ``check_<name>(your_fn)`` calls the reader's function on a few random
inputs (a fixed private seed, so the verdict reads the same on every run and
the global RNG is left alone), compares the result with the library, prints a
verdict and returns ``True`` or ``False``. On a miss it prints what was
expected, what came, the largest difference and a hint; common mistakes
(a missing √d, no max subtraction, a non-causal prefix, …) get a hint that
names them.

Questions (ordering and multiple choice) live in :data:`QUESTIONS`:
``show_question(name)`` prints one, ``check_order(name, [...])`` and
``check_choice(name, "b")`` mark an answer.

| notebook | checkers | question |
|---|---|---|
| 01 | check_scaled_scores, check_stable_softmax, check_causal_mask, check_softmax_attention | softmax_steps |
| 02 | check_gaussian_kernel, check_nadaraya_watson, check_exp_kernel | finite_features, bandwidth_limit |
| 03 | check_kv_summary, check_linear_attention, check_linear_weights | denominator_role, linear_steps |
| 04 | check_prefix_states, check_recurrent_step, check_chunkwise, check_causal_backward | chunkwise_steps |
| 05 | check_elu_plus_one, check_taylor_features, check_favor_features | trig_negative |
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch.overrides import TorchFunctionMode

from .feature_maps import elu_plus_one, favor_plus, identity, taylor
from .kernel import feature_map_kernel, gaussian_kernel, kernel_smoother
from .linear import linear_attention
from .recurrent import LinearAttentionState
from .softmax import attention_scores, softmax_attention, stable_softmax

__all__ = [
    "QUESTIONS", "show_question", "check_order", "check_choice",
    "check_scaled_scores", "check_stable_softmax", "check_causal_mask", "check_softmax_attention",
    "check_gaussian_kernel", "check_nadaraya_watson", "check_exp_kernel",
    "check_kv_summary", "check_linear_attention", "check_linear_weights",
    "check_prefix_states", "check_recurrent_step", "check_chunkwise", "check_causal_backward",
    "check_elu_plus_one", "check_taylor_features", "check_favor_features",
]

_SEED = 20240611
_ATOL, _RTOL = 1e-4, 1e-4  # float32 inputs: a right answer is within ~1e-6, a wrong one far off


# --------------------------------------------------------------------------- machinery


@dataclass
class _Case:
    """One random test case: the reader's arguments, the library's answer, a description."""

    args: tuple
    expected: Any  # a tensor or a tuple of tensors
    about: str
    extra: dict = field(default_factory=dict)


# A diagnosis is (test(expected, got, case) -> bool, hint): the first that matches explains the miss.
Diagnosis = tuple[Callable[[Any, Any, _Case], bool], str]


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(_SEED)


def _randn(gen: torch.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=gen) * scale  # float32


def _shape(x) -> str:
    return str(tuple(x.shape)) if isinstance(x, torch.Tensor) else type(x).__name__


def _close(a, b, atol: float = _ATOL, rtol: float = _RTOL) -> bool:
    """Same shape and allclose (in float64); False for anything that is not a tensor."""
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.shape != b.shape:
        return False
    return bool(torch.allclose(a.detach().double(), b.detach().double(), atol=atol, rtol=rtol))


def _preview(x: torch.Tensor, n: int = 4) -> str:
    flat = x.detach().flatten()[:n].tolist()
    body = ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in flat)
    return f"[{body}{', …' if x.numel() > n else ''}]"


def _describe_miss(name: str, exp: torch.Tensor, got) -> list[str]:
    if not isinstance(got, torch.Tensor):
        return [f"  {name}: expected a torch.Tensor of shape {_shape(exp)}; got {type(got).__name__}"]
    if got.shape != exp.shape:
        return [f"  {name}: expected shape {_shape(exp)}; got shape {_shape(got)}"]
    diff = (got.detach().double() - exp.detach().double()).abs()
    diff = torch.where(torch.isnan(diff), torch.full_like(diff, math.inf), diff)
    where = tuple(int(i) for i in torch.unravel_index(diff.argmax(), diff.shape))
    return [
        f"  {name}: expected {_preview(exp)}",
        f"  {' ' * len(name)}  got      {_preview(got)}",
        f"  largest difference {diff.max().item():.3g} at index {where}",
    ]


def _as_tuple(x) -> tuple:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _fail(title: str, lines: list[str], hint: str) -> bool:
    print(f"✗ {title}")
    for line in lines:
        print(line)
    print(f"  hint: {hint}")
    return False


def _run_cases(title: str, fn: Callable, cases: Sequence[_Case], *, names: Sequence[str],
               hint: str, diagnoses: Sequence[Diagnosis] = (), atol: float = _ATOL,
               rtol: float = _RTOL, after: Callable[[_Case, Any], str | None] | None = None) -> bool:
    """Call fn(*case.args) for each case and compare every output with case.expected.

    ``after(case, got)`` may return a failure message for a property that values alone do not
    show (e.g. "built an N×N matrix"). Prints one verdict line (plus details on a miss).
    """
    if not callable(fn):
        return _fail(f"{title}: expected a function; got {type(fn).__name__}", [], hint)
    for i, case in enumerate(cases, 1):
        where = f"{title}: case {i} of {len(cases)} ({case.about})"
        try:
            got = fn(*case.args)
        except Exception as err:  # the reader's code: report, don't crash the notebook
            return _fail(where, [f"  your function raised {type(err).__name__}: {err}"], hint)
        exp_t, got_t = _as_tuple(case.expected), _as_tuple(got)
        if len(got_t) != len(exp_t):
            return _fail(where, [f"  expected {len(exp_t)} output(s) ({', '.join(names)}); "
                                 f"got {len(got_t)}"], hint)
        bad = [j for j, (e, g) in enumerate(zip(exp_t, got_t)) if not _close(e, g, atol, rtol)]
        if bad:
            lines = [line for j in bad for line in _describe_miss(names[j], exp_t[j], got_t[j])]
            reason = next((h for test, h in diagnoses if _safe(test, case.expected, got, case)), hint)
            return _fail(where, lines, reason)
        if after is not None:
            msg = after(case, got)
            if msg:
                return _fail(where, [f"  {msg}"], hint)
    print(f"✓ {title}: your function matches linattn_edu on all {len(cases)} random cases.")
    return True


def _safe(test, expected, got, case) -> bool:
    try:
        return bool(test(expected, got, case))
    except Exception:
        return False


class _NxNSpy(TorchFunctionMode):
    """Records any tensor produced inside the mode whose last two dims are (n, n)."""

    def __init__(self, n: int):
        super().__init__()
        self.n, self.seen = n, None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in _as_tuple(out):
            if isinstance(t, torch.Tensor) and t.dim() >= 2 and t.shape[-2:] == (self.n, self.n):
                self.seen = self.seen or (getattr(func, "__name__", str(func)), tuple(t.shape))
        return out


def _state_after(phi, q, k, v) -> tuple[torch.Tensor, torch.Tensor]:
    """(S, z) of a LinearAttentionState that has read every token of q, k, v (..., N, ·)."""
    state = LinearAttentionState(phi, q.shape[-1], v.shape[-1], batch_shape=tuple(q.shape[:-2]))
    state.prefill(q, k, v)
    return state.snapshot()


# --------------------------------------------------------------------------- questions


@dataclass(frozen=True)
class Question:
    """An ordering question (answer: groups of letters, any order inside a group) or a choice."""

    prompt: str
    options: dict[str, str]
    answer: tuple  # order: tuple of tuples of letters; choice: (letter,)
    explanation: str
    kind: str = "order"


QUESTIONS: dict[str, Question] = {
    "softmax_steps": Question(
        "Put the steps of (masked) softmax attention in order.",
        {"a": "divide each row by its sum", "b": "S = Q Kᵀ (all query–key dot products)",
         "c": "multiply the weights by V", "d": "add the mask (0 where allowed, −∞ where not)",
         "e": "subtract each row's max and exponentiate", "f": "multiply S by 1/√d"},
        (("b",), ("f",), ("d",), ("e",), ("a",), ("c",)),
        "scores, scale, mask, stable exp, normalise rows, weighted sum of values. The mask is "
        "added to the *scaled* scores (as in torch's SDPA): a float mask would otherwise be scaled too."),
    "finite_features": Question(
        "Which kernel can be written exactly as φ(q)ᵀφ(k) with a finite feature vector φ?",
        {"a": "the Gaussian kernel exp(−‖q − k‖²/2h²)", "b": "the softmax kernel exp(qᵀk/√d)",
         "c": "the polynomial kernel (1 + qᵀk)²", "d": "the boxcar kernel 1[‖q − k‖ ≤ w]"},
        (("c",),),
        "(1 + qᵀk)² expands into 1 + 2·qᵀk + (qᵀk)², a sum of products of finitely many "
        "monomials: φ(x) = [1, √2·x, vec(x xᵀ)] (1 + d + d² features). The Gaussian and exp "
        "kernels need infinitely many (their Taylor series never stops); random features only "
        "approximate them.", kind="choice"),
    "bandwidth_limit": Question(
        "A Nadaraya–Watson smoother with a Gaussian kernel: what happens as the bandwidth h → 0?",
        {"a": "every prediction becomes the mean of all training values",
         "b": "each prediction copies the value of the nearest training point",
         "c": "predictions become 0", "d": "nothing: the weights are normalised"},
        (("b",),),
        "as h → 0 the nearest key's weight dominates every other (the ratio of weights grows "
        "like exp(Δ/2h²)), so the softmax over keys becomes an arg-max. h → ∞ gives answer a.",
        kind="choice"),
    "denominator_role": Question(
        "In linear attention out_i = φ(q_i)ᵀS / φ(q_i)ᵀz, with z = Σ_j φ(k_j): what does the "
        "denominator φ(q_i)ᵀz do?",
        {"a": "it scales the scores by 1/√d",
         "b": "it is the sum over keys of the kernel weights φ(q_i)ᵀφ(k_j), so dividing makes "
               "the weights of query i sum to 1 (a weighted average of the values)",
         "c": "it is the causal mask", "d": "it stops exp from overflowing"},
        (("b",),),
        "φ(q_i)ᵀz = Σ_j φ(q_i)ᵀφ(k_j): the row sum of the (never built) N×N weight matrix. "
        "Softmax divides by Σ_j exp(s_ij); linear attention divides by the same kind of sum.",
        kind="choice"),
    "linear_steps": Question(
        "Order the steps of (non-causal) linear attention in its O(N) form. Steps that could "
        "run in either order may be given in either order.",
        {"a": "apply φ to every query and key", "b": "S = φ(K)ᵀV  (d_φ × d_v)",
         "c": "z = φ(K)ᵀ1  (d_φ)", "d": "numerator φ(Q) S  (N × d_v)",
         "e": "denominator φ(Q) z  (N)", "f": "divide numerator rows by the denominator"},
        (("a",), ("b", "c"), ("d", "e"), ("f",)),
        "features first; then summarise the keys (S and z, independent of N once built); then "
        "read them out for every query; then normalise."),
    "chunkwise_steps": Question(
        "Order the steps of the chunkwise causal form for one chunk c (state S, z carried in). "
        "Steps that could run in either order may be given in either order.",
        {"a": "intra-chunk part: tril(φ(Q_c)φ(K_c)ᵀ) V_c and its row sums",
         "b": "inter-chunk part: φ(Q_c) S and φ(Q_c) z from the carried state",
         "c": "add the two parts and divide numerator by denominator",
         "d": "update the state: S += φ(K_c)ᵀV_c, z += φ(K_c)ᵀ1"},
        (("a", "b"), ("c",), ("d",)),
        "a chunk reads the state *before* adding its own keys (its own keys enter through the "
        "masked intra-chunk product), so the update comes last; doing it first counts the chunk's "
        "keys twice and lets queries see later keys of their chunk."),
    "trig_negative": Question(
        "Trigonometric random features are unbiased for exp(qᵀk/√d). Why are they a poor choice "
        "for normalised linear attention?",
        {"a": "they are slower to compute than positive features",
         "b": "single estimates φ(q)ᵀφ(k) can be negative, so the denominator Σ_j φ(q)ᵀφ(k_j) "
               "can be near 0 or negative and the output explodes or flips sign",
         "c": "they are biased", "d": "they need twice as many features"},
        (("b",),),
        "sin/cos features can be negative; the softmax kernel is always > 0, and the normalised "
        "form divides by a sum of estimates. FAVOR+'s exp features are > 0, so every estimate is.",
        kind="choice"),
}


def _question(name: str, kind: str) -> Question:
    if name not in QUESTIONS:
        raise ValueError(f"unknown question {name!r}; expected one of {sorted(QUESTIONS)}")
    q = QUESTIONS[name]
    if q.kind != kind:
        other = "check_choice" if q.kind == "choice" else "check_order"
        raise ValueError(f"question {name!r} is a {q.kind} question: use {other}")
    return q


def show_question(name: str) -> None:
    """Print a question and its lettered options."""
    if name not in QUESTIONS:
        raise ValueError(f"unknown question {name!r}; expected one of {sorted(QUESTIONS)}")
    q = QUESTIONS[name]
    print(q.prompt)
    for letter, text in q.options.items():
        print(f"  {letter}) {text}")
    how = 'check_order(name, ["x", "y", …])' if q.kind == "order" else 'check_choice(name, "x")'
    print(f"answer with {how}")


def check_order(name: str, answer: Sequence[str]) -> bool:
    """Mark an ordering: ``answer`` lists every option letter once, first step first."""
    q = _question(name, "order")
    title = f"check_order({name!r})"
    letters = [str(a).strip().lower() for a in answer] if isinstance(answer, (list, tuple)) else None
    if letters is None or sorted(letters) != sorted(q.options):
        return _fail(title, [f"  expected each of {sorted(q.options)} exactly once; got {answer!r}"],
                     "list every letter once, first step first.")
    pos = 0
    for group in q.answer:
        given = letters[pos:pos + len(group)]
        if sorted(given) != sorted(group):
            step = letters[pos]
            return _fail(title, [f"  the first {pos} step(s) are right; step {pos + 1} should be "
                                 f"{' or '.join(repr(g) for g in group)}, got {step!r} "
                                 f"({q.options[step]})"], q.explanation)
        pos += len(group)
    print(f"✓ {title}: right order. Why: {q.explanation}")
    return True


def check_choice(name: str, answer: str) -> bool:
    """Mark a multiple-choice answer (one letter)."""
    q = _question(name, "choice")
    title = f"check_choice({name!r})"
    letter = str(answer).strip().lower()
    if letter not in q.options:
        return _fail(title, [f"  expected one of {sorted(q.options)}; got {answer!r}"], "answer with one letter.")
    if letter != q.answer[0][0]:
        return _fail(title, [f"  {letter}) {q.options[letter]} — not this one."], q.explanation)
    print(f"✓ {title}: right. Why: {q.explanation}")
    return True


# --------------------------------------------------------------------------- 01 softmax attention


def _qkv_cases(gen, shapes, *, causal_ok=True):
    """Random (q, k, v) triples for the given ((batch...), N, M, d, d_v) shapes."""
    for batch, n, m, d, dv in shapes:
        q = _randn(gen, *batch, n, d)  # (..., N, d)
        k = _randn(gen, *batch, m, d)  # (..., M, d)
        v = _randn(gen, *batch, m, dv)  # (..., M, d_v)
        yield q, k, v


_SHAPES = [((), 5, 5, 4, 3), ((2, 3), 7, 7, 16, 5), ((2,), 1, 1, 8, 2), ((3,), 9, 9, 64, 4)]


def check_scaled_scores(your_fn) -> bool:
    """your_fn(q (..., N, d), k (..., M, d)) -> scores (..., N, M) = Q Kᵀ / √d."""
    gen, cases = _gen(), []
    for q, k, _ in _qkv_cases(gen, [((), 4, 6, 9, 1), ((2, 3), 5, 7, 16, 1), ((2,), 1, 3, 64, 1)]):
        cases.append(_Case((q, k), attention_scores(q, k, 1 / math.sqrt(q.shape[-1])),
                           f"q {_shape(q)}, k {_shape(k)}"))
    sqrt_d = lambda c: math.sqrt(c.args[0].shape[-1])  # noqa: E731
    return _run_cases(
        "check_scaled_scores", your_fn, cases, names=["scores"],
        hint="scores_ij = q_i·k_j / √d with d = q.shape[-1]; use k.transpose(-2, -1) so batch dims work.",
        diagnoses=[
            (lambda e, g, c: _close(g, e * sqrt_d(c)), "you did not divide by √d (d = q.shape[-1])."),
            (lambda e, g, c: _close(g, e / sqrt_d(c)), "you divided by d; divide by √d."),
            (lambda e, g, c: _close(g, e * math.sqrt(sqrt_d(c))), "you divided by d^¼; divide by √d."),
            (lambda e, g, c: _close(g, e.transpose(-2, -1)), "your scores are transposed: rows are queries."),
        ])


def check_stable_softmax(your_fn) -> bool:
    """your_fn(scores (..., N, M)) -> row softmax (..., N, M), stable for huge scores and −∞ entries."""
    gen = _gen()
    small = _randn(gen, 3, 5)  # (N, M)
    huge = _randn(gen, 2, 4, 6, scale=400.0)  # (B, N, M): exp overflows without max subtraction
    masked = _randn(gen, 4, 4, scale=3.0).masked_fill(~torch.ones(4, 4, dtype=torch.bool).tril(), -math.inf)
    cases = [_Case((x,), stable_softmax(x), about)
             for x, about in [(small, "ordinary scores (3, 5)"),
                              (huge, "scores of size ~±1000, shape (2, 4, 6)"),
                              (masked, "causally masked scores with −∞ above the diagonal")]]
    return _run_cases(
        "check_stable_softmax", your_fn, cases, names=["softmax"],
        hint="p_ij = exp(s_ij − m_i) / Σ_j exp(s_ij − m_i) with m_i = max_j s_ij (keepdim=True).",
        diagnoses=[
            (lambda e, g, c: not torch.isfinite(g).all(),
             "your output has inf/NaN: exp(s) overflows float32 past s ≈ 88. Subtract each row's max first."),
            (lambda e, g, c: _close(g, torch.softmax(c.args[0], dim=-2)),
             "you normalised columns; normalise each row (dim=-1: over the keys)."),
            (lambda e, g, c: not _close(g.sum(-1), torch.ones_like(g.sum(-1))),
             "each row must sum to 1: divide by the row sum (dim=-1, keepdim=True)."),
        ])


def check_causal_mask(your_fn) -> bool:
    """your_fn(n) -> bool (n, n): True where query i may attend key j, i.e. j <= i."""
    cases = [_Case((n,), torch.ones(n, n, dtype=torch.bool).tril(), f"n = {n}") for n in (4, 7, 1)]

    def dtype_ok(case, got):
        return None if got.dtype == torch.bool else f"return a bool tensor (True = attend); got {got.dtype}"

    return _run_cases(
        "check_causal_mask", your_fn, cases, names=["mask"], after=dtype_ok,
        hint="row i is the query, column j the key: allow j <= i (torch.tril of a bool ones matrix).",
        diagnoses=[
            (lambda e, g, c: _close(g.bool().to(torch.float), e.tril(-1).float()),
             "you left out the diagonal: a token may attend to itself (j = i)."),
            (lambda e, g, c: _close(g.bool().to(torch.float), e.T.float()),
             "that is the upper triangle: query i must see keys j <= i, the past."),
            (lambda e, g, c: _close(g.bool().to(torch.float), (~e).float()),
             "True means 'may attend' here; you marked the forbidden entries."),
        ])


def check_softmax_attention(your_fn) -> bool:
    """your_fn(q, k, v, causal) -> out (..., N, d_v) = softmax(QKᵀ/√d + mask) V."""
    gen, cases = _gen(), []
    for i, (q, k, v) in enumerate(_qkv_cases(gen, _SHAPES)):
        causal = i % 2 == 1
        cases.append(_Case((q, k, v, causal), softmax_attention(q, k, v, causal=causal),
                           f"q {_shape(q)}, v {_shape(v)}, causal={causal}"))
    q, k, v = (x * 30 for x in next(_qkv_cases(gen, [((2,), 6, 6, 8, 3)])))
    cases.append(_Case((q, k, v, True), softmax_attention(q, k, v, causal=True), "large scores, causal"))
    return _run_cases(
        "check_softmax_attention", your_fn, cases, names=["out"],
        hint="out = softmax(Q Kᵀ/√d, masked with −∞ above the diagonal when causal) @ V.",
        diagnoses=[
            (lambda e, g, c: not torch.isfinite(g).all(), "inf/NaN in your output: use a stable softmax."),
            (lambda e, g, c: _close(g, softmax_attention(*c.args[:3], causal=c.args[3], scale=1.0)),
             "you forgot the 1/√d scale."),
            (lambda e, g, c: c.args[3] and _close(g, softmax_attention(*c.args[:3])),
             "with causal=True query i may only see keys j <= i: mask the upper triangle."),
        ])


# --------------------------------------------------------------------------- 02 kernel smoothing


def check_gaussian_kernel(your_fn) -> bool:
    """your_fn(q (..., N, d), k (..., M, d), bandwidth) -> Gram (..., N, M) = exp(−‖q−k‖²/(2h²)).

    Compared through what a smoother uses: the row-normalised weights κ_ij / Σ_l κ_il (so a kernel
    scaled by a per-query constant, like the library's stabilised one, counts as the same kernel).
    """
    gen, cases = _gen(), []
    for (q, k, v), h in zip(_qkv_cases(gen, [((), 6, 4, 1, 1), ((2,), 5, 7, 3, 1), ((2, 2), 3, 3, 8, 1)]),
                            (0.3, 1.0, 2.5)):
        _, weights = kernel_smoother(q, k, v, gaussian_kernel(h), return_weights=True)  # (..., N, M)
        cases.append(_Case((q, k, h), weights, f"q {_shape(q)}, k {_shape(k)}, h = {h}"))

    def rows(gram):
        return gram / gram.sum(-1, keepdim=True)  # (..., N, M): the smoother's weights

    def weights_of(*args):
        return rows(your_fn(*args))

    dist2 = lambda c: (c.args[0].unsqueeze(-2) - c.args[1].unsqueeze(-3)).pow(2).sum(-1)  # noqa: E731
    return _run_cases(
        "check_gaussian_kernel (compared as smoother weights κ_ij / Σ_l κ_il)", weights_of, cases,
        names=["weights"],
        hint="κ_ij = exp(−‖q_i − k_j‖² / (2h²)); the squared distance sums over the last dim d.",
        diagnoses=[
            (lambda e, g, c: _close(g, rows(torch.exp(-dist2(c) / c.args[2] ** 2))), "divide by 2h², not h²."),
            (lambda e, g, c: _close(g, rows(torch.exp(-dist2(c) / (2 * c.args[2])))), "divide by 2h² (h squared)."),
            (lambda e, g, c: _close(g, rows(torch.exp(-dist2(c).sqrt() / (2 * c.args[2] ** 2)))),
             "use the squared distance ‖q − k‖², not the distance."),
        ])


def check_nadaraya_watson(your_fn) -> bool:
    """your_fn(x_query (n,), x_train (m,), y_train (m,), bandwidth) -> predictions (n,).

    ŷ(x) = Σ_j κ(x, x_j) y_j / Σ_j κ(x, x_j) with the Gaussian kernel of bandwidth h.
    """
    gen, cases = _gen(), []
    for n, m, h in ((5, 8, 0.5), (30, 20, 0.1), (1, 12, 2.0)):
        xq = torch.rand(n, generator=gen) * 6 - 3  # (n,)
        xt = torch.rand(m, generator=gen) * 6 - 3  # (m,)
        yt = torch.sin(xt) + 0.1 * _randn(gen, m)  # (m,)
        exp = kernel_smoother(xq[:, None], xt[:, None], yt[:, None], gaussian_kernel(h))[:, 0]  # (n,)
        cases.append(_Case((xq, xt, yt, h), exp, f"{n} queries, {m} training points, h = {h}"))

    def gram(c):
        return torch.exp(-(c.args[0][:, None] - c.args[1][None, :]) ** 2 / (2 * c.args[3] ** 2))  # (n, m)

    return _run_cases(
        "check_nadaraya_watson", your_fn, cases, names=["prediction"],
        hint="weights w_ij = κ(x_i, x_j); prediction_i = Σ_j w_ij y_j / Σ_j w_ij (normalise over training points).",
        diagnoses=[
            (lambda e, g, c: _close(g, gram(c) @ c.args[2]),
             "you did not divide by Σ_j κ(x_i, x_j): the weights must sum to 1 for each query."),
            (lambda e, g, c: _close(g, (gram(c) / gram(c).sum(0, keepdim=True)) @ c.args[2]),
             "you normalised over the queries; normalise over the training points (each row)."),
        ])


def check_exp_kernel(your_fn) -> bool:
    """your_fn(q, k) -> Gram (..., N, M) such that kernel_smoother(q, k, v, your_fn) == softmax attention."""
    gen, cases = _gen(), []
    for q, k, v in _qkv_cases(gen, [((), 5, 6, 4, 2), ((2, 3), 7, 7, 16, 3), ((2,), 3, 9, 64, 2)]):
        cases.append(_Case((q, k, v), softmax_attention(q, k, v), f"q {_shape(q)}, k {_shape(k)}",
                           extra={"d": q.shape[-1]}))

    def via_smoother(q, k, v):
        return kernel_smoother(q, k, v, your_fn)  # (..., N, d_v)

    return _run_cases(
        "check_exp_kernel (kernel_smoother(q, k, v, your_kernel) vs softmax_attention)", via_smoother,
        cases, names=["out"],
        hint="κ(q_i, k_j) = exp(q_i·k_j / √d): return the (..., N, M) matrix, without normalising it.",
        diagnoses=[
            (lambda e, g, c: _close(g, softmax_attention(*c.args, scale=1.0)), "you forgot the 1/√d scale."),
            (lambda e, g, c: _close(g, softmax_attention(*c.args, scale=1.0 / c.extra["d"])),
             "you divided by d; divide by √d."),
        ])


# --------------------------------------------------------------------------- 03 linear attention


def _lin_cases(gen, shapes, phi=elu_plus_one, causal=False, form="quadratic"):
    cases = []
    for q, k, v in _qkv_cases(gen, shapes):
        exp = linear_attention(q, k, v, phi, causal=causal, form=form)
        cases.append(_Case((q, k, v, phi), exp, f"q {_shape(q)}, v {_shape(v)}, φ = {phi.name}"))
    return cases


def check_kv_summary(your_fn) -> bool:
    """your_fn(k (..., N, d), v (..., N, d_v), phi) -> (S (..., d_φ, d_v), z (..., d_φ)).

    S = Σ_j φ(k_j) v_jᵀ = φ(K)ᵀV and z = Σ_j φ(k_j) = φ(K)ᵀ1: everything linear attention keeps.
    """
    gen, cases = _gen(), []
    for q, k, v in _qkv_cases(gen, [((), 6, 6, 4, 3), ((2, 3), 9, 9, 5, 2), ((2,), 1, 1, 8, 4)]):
        cases.append(_Case((k, v, elu_plus_one), _state_after(elu_plus_one, q, k, v),
                           f"k {_shape(k)}, v {_shape(v)}, φ = elu+1"))
    return _run_cases(
        "check_kv_summary", your_fn, cases, names=["S", "z"],
        hint="S = φ(K).transpose(-2, -1) @ V has shape (..., d_φ, d_v); z = φ(K).sum(dim=-2) has (..., d_φ).",
        diagnoses=[
            (lambda e, g, c: _close(g[0], e[0].transpose(-2, -1)) or _close(g[0].transpose(-2, -1), e[0]),
             "S is transposed: it should be (..., d_φ, d_v) = φ(K)ᵀ V."),
            (lambda e, g, c: _close(g[0], c.args[1].transpose(-2, -1) @ c.args[0]) or
             _close(g[0], c.args[0].transpose(-2, -1) @ c.args[1]),
             "apply φ to the keys before summing: S = φ(K)ᵀ V."),
            (lambda e, g, c: _close(g[0], e[0]), "S is right; z = Σ_j φ(k_j) sums over the tokens (dim=-2)."),
        ])


def check_linear_attention(your_fn) -> bool:
    """your_fn(q, k, v, phi) -> out (..., N, d_v), non-causal, in O(N): never build an N×N matrix.

    out_i = φ(q_i)ᵀ S / φ(q_i)ᵀ z,  S = φ(K)ᵀV (d_φ, d_v),  z = φ(K)ᵀ1 (d_φ).
    """
    gen = _gen()
    # N = 37 is distinct from every d, d_φ and d_v used, so an (N, N) tensor is unambiguous.
    cases = _lin_cases(gen, [((), 37, 37, 4, 3), ((2, 3), 37, 37, 6, 5), ((2,), 1, 1, 8, 2)])
    spy: dict = {}

    def watched(*args):
        n = args[0].shape[-2]
        with _NxNSpy(n) as mode:
            out = your_fn(*args)
        spy["seen"] = mode.seen if n > 1 else None
        return out

    def no_nxn(case, got):
        if spy.get("seen"):
            fname, shape = spy["seen"]
            return (f"right values, but your function built an N×N tensor {shape} (in {fname}): compute "
                    f"φ(K)ᵀV first, so that the cost is O(N·d_φ·d_v), not O(N²)")
        return None

    def unnormalised(c):
        fq, fk = c.args[3](c.args[0]), c.args[3](c.args[1])
        return fq @ (fk.transpose(-2, -1) @ c.args[2])  # (..., N, d_v)

    return _run_cases(
        "check_linear_attention", watched, cases, names=["out"], after=no_nxn,
        hint="S = φ(K)ᵀV, z = φ(K).sum(-2); out = (φ(Q) @ S) / (φ(Q) @ z)[..., None].",
        diagnoses=[
            (lambda e, g, c: _close(g, unnormalised(c)),
             "you left out the denominator φ(q_i)ᵀz: without it the weights don't sum to 1."),
            (lambda e, g, c: _close(g, softmax_attention(*c.args[:3])),
             "that is softmax attention; use the feature map phi instead of exp."),
        ])


def check_linear_weights(your_fn) -> bool:
    """your_fn(q, k, phi) -> A (..., N, N): the attention matrix linear attention implies (non-causal).

    A_ij = φ(q_i)ᵀφ(k_j) / Σ_l φ(q_i)ᵀφ(k_l)  (rows sum to 1; only for pictures: it is O(N²)).
    """
    gen, cases = _gen(), []
    for q, k, v in _qkv_cases(gen, [((), 5, 5, 4, 2), ((2, 3), 8, 8, 6, 2), ((2,), 1, 1, 8, 2)]):
        _, weights = linear_attention(q, k, v, elu_plus_one, form="quadratic", return_weights=True)
        cases.append(_Case((q, k, elu_plus_one), weights, f"q {_shape(q)}, φ = elu+1"))

    def gram(c):
        return c.args[2](c.args[0]) @ c.args[2](c.args[1]).transpose(-2, -1)  # (..., N, N)

    return _run_cases(
        "check_linear_weights", your_fn, cases, names=["weights"],
        hint="A = φ(Q) φ(K)ᵀ, then divide each row by its sum (dim=-1, keepdim=True).",
        diagnoses=[
            (lambda e, g, c: _close(g, gram(c)), "divide each row by its sum: attention weights sum to 1."),
            (lambda e, g, c: _close(g, gram(c) / gram(c).sum(-2, keepdim=True)),
             "you normalised columns; normalise each row (a query's weights over the keys)."),
            (lambda e, g, c: _close(g, torch.softmax(gram(c), dim=-1)),
             "no softmax here: the kernel values are already non-negative, just divide by the row sum."),
        ])


# --------------------------------------------------------------------------- 04 causal / recurrent


def _prefix_states(phi, q, k, v) -> tuple[torch.Tensor, torch.Tensor]:
    """Every μ_i (..., N, d_φ, d_v) and ν_i (..., N, d_φ), read off a stepped LinearAttentionState."""
    state = LinearAttentionState(phi, q.shape[-1], v.shape[-1], batch_shape=tuple(q.shape[:-2]))
    mus, nus = [], []
    for t in range(q.shape[-2]):
        state.step(q[..., t, :], k[..., t, :], v[..., t, :])
        s, z = state.snapshot()  # (..., d_φ, d_v), (..., d_φ)
        mus.append(s)
        nus.append(z)
    return torch.stack(mus, dim=-3), torch.stack(nus, dim=-2)  # (..., N, d_φ, d_v), (..., N, d_φ)


def check_prefix_states(your_fn) -> bool:
    """your_fn(k, v, phi) -> (mu (..., N, d_φ, d_v), nu (..., N, d_φ)), inclusive prefix sums.

    μ_i = Σ_{j<=i} φ(k_j) v_jᵀ,  ν_i = Σ_{j<=i} φ(k_j).
    """
    gen, cases = _gen(), []
    for q, k, v in _qkv_cases(gen, [((), 6, 6, 3, 2), ((2, 2), 5, 5, 4, 3), ((3,), 1, 1, 2, 2)]):
        cases.append(_Case((k, v, elu_plus_one), _prefix_states(elu_plus_one, q, k, v),
                           f"k {_shape(k)}, v {_shape(v)}, φ = elu+1"))

    def shifted(e):  # exclusive prefix sums: μ_i = Σ_{j<i}
        return torch.cat([torch.zeros_like(e[..., :1, :, :]), e[..., :-1, :, :]], dim=-3)

    return _run_cases(
        "check_prefix_states", your_fn, cases, names=["mu", "nu"],
        hint="per token: outer = φ(k)[..., :, None] * v[..., None, :] (..., N, d_φ, d_v); then cumsum over N (dim=-3); "
             "ν = φ(K).cumsum(-2).",
        diagnoses=[
            (lambda e, g, c: _close(g[0], e[0][..., -1:, :, :].expand_as(e[0])),
             "every μ_i equals the total Σ_j over all tokens: that is the non-causal sum. Use a cumulative sum."),
            (lambda e, g, c: c.args[0].shape[-2] > 1 and _close(g[0], shifted(e[0])),
             "your sums stop at j < i; include token i itself (j <= i: a token attends to itself)."),
            (lambda e, g, c: _close(g[0], e[0].transpose(-2, -1)), "μ_i is transposed: (d_φ, d_v) = φ(k) vᵀ."),
        ])


def check_recurrent_step(your_fn) -> bool:
    """your_fn(S, z, q_t, k_t, v_t, phi) -> (out_t, S_new, z_new): one token of the RNN.

    S_new = S + φ(k_t) v_tᵀ, z_new = z + φ(k_t), out_t = φ(q_t)ᵀS_new / φ(q_t)ᵀz_new.
    """
    gen, cases = _gen(), []
    for q, k, v in _qkv_cases(gen, [((), 5, 5, 4, 3), ((2, 3), 8, 8, 6, 2), ((2,), 2, 2, 8, 4)]):
        d, dv, batch = q.shape[-1], v.shape[-1], tuple(q.shape[:-2])
        state = LinearAttentionState(elu_plus_one, d, dv, batch_shape=batch)
        state.prefill(q[..., :-1, :], k[..., :-1, :], v[..., :-1, :])
        s0, z0 = state.snapshot()  # (..., d_φ, d_v), (..., d_φ)
        qt, kt, vt = q[..., -1, :], k[..., -1, :], v[..., -1, :]  # (..., d), (..., d), (..., d_v)
        out = state.step(qt, kt, vt)  # (..., d_v)
        s1, z1 = state.snapshot()
        cases.append(_Case((s0, z0, qt, kt, vt, elu_plus_one), (out, s1, z1),
                           f"state after {q.shape[-2] - 1} tokens, batch {batch}", extra={"old": (s0, z0)}))

    def read_first(c):  # out computed from the state before adding token t
        s0, z0, qt = c.args[0], c.args[1], c.args[2]
        fq = elu_plus_one(qt)  # (..., d_φ)
        return (fq.unsqueeze(-2) @ s0).squeeze(-2) / (fq * z0).sum(-1, keepdim=True)  # (..., d_v)

    return _run_cases(
        "check_recurrent_step", your_fn, cases, names=["out_t", "S_new", "z_new"],
        hint="update first: S += φ(k_t)[..., :, None] * v_t[..., None, :], z += φ(k_t); then "
             "out = (φ(q_t)[..., None, :] @ S).squeeze(-2) / (φ(q_t) * z).sum(-1, keepdim=True).",
        diagnoses=[
            (lambda e, g, c: c.args[0].abs().sum() > 0 and _close(g[0], read_first(c)),
             "you read out before adding token t: update S and z first — token t attends to itself."),
            (lambda e, g, c: _close(g[1], e[1].transpose(-2, -1)), "S is transposed: S += φ(k_t) v_tᵀ is (d_φ, d_v)."),
            (lambda e, g, c: _close(g[1], e[1]) and _close(g[2], e[2]),
             "the state update is right; check the read-out φ(q_t)ᵀS / φ(q_t)ᵀz."),
        ])


def check_chunkwise(your_fn) -> bool:
    """your_fn(q, k, v, phi, chunk_size) -> out (..., N, d_v): causal linear attention, chunk by chunk.

    For chunk c: O_c = [φ(Q_c)S + tril(φ(Q_c)φ(K_c)ᵀ)V_c] / [φ(Q_c)z + tril(φ(Q_c)φ(K_c)ᵀ)1],
    then S += φ(K_c)ᵀV_c, z += φ(K_c)ᵀ1. N need not be a multiple of chunk_size.
    """
    gen, cases = _gen(), []
    for (q, k, v), c in zip(_qkv_cases(gen, [((), 13, 13, 4, 3), ((2, 2), 16, 16, 6, 2),
                                              ((2,), 1, 1, 8, 2), ((), 10, 10, 5, 3)]), (4, 8, 4, 16)):
        cases.append(_Case((q, k, v, elu_plus_one, c),
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

    return _run_cases(
        "check_chunkwise", your_fn, cases, names=["out"],
        hint="loop over chunks (the last may be shorter); use the state *before* the chunk for the inter-chunk "
             "part, a tril-masked φ(Q_c)φ(K_c)ᵀ for the intra-chunk part, then update the state.",
        diagnoses=[
            (lambda e, g, c: _close(g, blockdiag(c)), "you dropped the carried state: add φ(Q_c)S and φ(Q_c)z, "
                                                      "the contribution of all earlier chunks."),
            (lambda e, g, c: _close(g, noncausal_intra(c)),
             "queries see later keys of their own chunk: mask the intra-chunk product with tril."),
            (lambda e, g, c: _close(g[..., :c.args[4], :], e[..., :c.args[4], :]),
             "the first chunk is right and a later one is not: update the state after each chunk, and "
             "read it before the update."),
        ])


def check_causal_backward(your_fn) -> bool:
    """your_fn(q, k, v, grad_out) -> (dq, dk, dv) for O = causal unnormalised linear attention.

    Features already applied (φ = identity): O_i = Σ_{j<=i} (q_iᵀk_j) v_j. Its gradients are
    linear-attention scans: dQ = causal(dO, V, K) forwards; dK, dV run backwards:
    dk_j = Σ_{i>=j} (dO_iᵀv_j) q_i,  dv_j = Σ_{i>=j} (q_iᵀk_j) dO_i.
    """
    gen, cases = _gen(), []
    for q, k, v in _qkv_cases(gen, [((), 6, 6, 3, 2), ((2, 2), 9, 9, 4, 3), ((2,), 1, 1, 5, 2)]):
        g = _randn(gen, *v.shape[:-2], q.shape[-2], v.shape[-1])  # (..., N, d_v)
        qq, kk, vv = (x.clone().requires_grad_(True) for x in (q, k, v))
        out = linear_attention(qq, kk, vv, identity, causal=True, normalize=False, form="quadratic")
        dq, dk, dv = torch.autograd.grad(out, (qq, kk, vv), g)
        cases.append(_Case((q, k, v, g), (dq, dk, dv), f"q {_shape(q)}, v {_shape(v)}"))

    def forward_scans(c):  # dk, dv computed with forward (causal) scans instead of reversed ones
        q, k, v, g = c.args
        tril = torch.ones(q.shape[-2], q.shape[-2]).tril()
        return ((v @ g.transpose(-2, -1)) * tril) @ q, ((k @ q.transpose(-2, -1)) * tril) @ g

    def noncausal(c):
        q, k, v, g = c.args
        return (g @ v.transpose(-2, -1)) @ k

    return _run_cases(
        "check_causal_backward", your_fn, cases, names=["dq", "dk", "dv"],
        hint="dQ = (dO Vᵀ ⊙ tril) K, dK = (V dOᵀ ⊙ triu) Q, dV = (K Qᵀ ⊙ triu) dO; the triu ones are causal "
             "scans run backwards in time (flip the time axis, scan, flip back).",
        diagnoses=[
            (lambda e, g, c: c.args[0].shape[-2] > 1 and _close(g[0], noncausal(c)),
             "dq ignores the mask: dq_i = Σ_{j<=i} (dO_iᵀv_j) k_j only sums over the past."),
            (lambda e, g, c: c.args[0].shape[-2] > 1 and _close(g[1], forward_scans(c)[0]),
             "dk is a sum over *later* queries: dk_j = Σ_{i>=j} (dO_iᵀv_j) q_i — run that scan backwards in time."),
            (lambda e, g, c: c.args[0].shape[-2] > 1 and _close(g[2], forward_scans(c)[1]),
             "dv is a sum over *later* queries: dv_j = Σ_{i>=j} (q_iᵀk_j) dO_i — run that scan backwards in time."),
        ])


# --------------------------------------------------------------------------- 05 feature maps


def check_elu_plus_one(your_fn) -> bool:
    """your_fn(x (..., d)) -> elu(x) + 1 (..., d): positive, ≈ 1 + x near 0, → 0 for very negative x."""
    gen = _gen()
    cases = [_Case((x,), elu_plus_one(x), f"x {_shape(x)}")
             for x in (_randn(gen, 7), _randn(gen, 2, 5, 4, scale=3.0), _randn(gen, 3, 1, 16, scale=10.0))]
    return _run_cases(
        "check_elu_plus_one", your_fn, cases, names=["phi"],
        hint="elu(x) = x for x > 0 and exp(x) − 1 for x <= 0; add 1 (torch.nn.functional.elu(x) + 1).",
        diagnoses=[
            (lambda e, g, c: _close(g, e - 1), "you forgot the + 1: elu(x) is negative for x < 0."),
            (lambda e, g, c: _close(g, torch.relu(c.args[0])), "that is relu; elu+1 is exp(x) for x <= 0."),
            (lambda e, g, c: _close(g, torch.relu(c.args[0]) + 1),
             "relu + 1 is not elu + 1: for x <= 0 use exp(x), which goes to 0 smoothly."),
        ])


def check_taylor_features(your_fn) -> bool:
    """your_fn(x (..., d)) -> φ(x) (..., d_φ) with φ(q)ᵀφ(k) = 1 + s + s²/2, s = qᵀk/√d.

    Only the kernel is checked (φ(Q)φ(K)ᵀ against the library's), so any arrangement of features works.
    """
    gen, cases = _gen(), []
    for q, k, _ in _qkv_cases(gen, [((), 5, 6, 4, 1), ((2, 3), 4, 4, 8, 1), ((2,), 1, 3, 16, 1)]):
        cases.append(_Case((q, k), feature_map_kernel(taylor)(q, k), f"q {_shape(q)}, k {_shape(k)}"))

    def gram(q, k):
        return your_fn(q) @ your_fn(k).transpose(-2, -1)  # (..., N, d_φ) @ (..., d_φ, M) -> (..., N, M)

    def score(c, scale):
        return c.args[0] @ c.args[1].transpose(-2, -1) * scale  # (..., N, M)

    d = lambda c: c.args[0].shape[-1]  # noqa: E731
    return _run_cases(
        "check_taylor_features (your φ(Q) φ(K)ᵀ vs 1 + s + s²/2)", gram, cases, names=["kernel"],
        hint="x' = x / d^¼ so that q'·k' = s; φ(x) = [1, x', vec(x' x'ᵀ)/√2] (outer product flattened: "
             "(x'[..., :, None] * x'[..., None, :]).flatten(-2)).",
        diagnoses=[
            (lambda e, g, c: _close(g, 1 + score(c, d(c) ** -0.5) + score(c, d(c) ** -0.5) ** 2),
             "the quadratic term should be s²/2: divide the outer-product features by √2."),
            (lambda e, g, c: _close(g, 1 + score(c, 1.0) + score(c, 1.0) ** 2 / 2),
             "scale the input by d^(-1/4) first, so the features' dot product is s = qᵀk/√d."),
            (lambda e, g, c: _close(g, 1 + score(c, d(c) ** -0.5)), "you stopped at 1 + s: add the s²/2 term."),
        ])


def check_favor_features(your_fn) -> bool:
    """your_fn(x (..., d), omega (m, d)) -> FAVOR+ features (..., m), for the kernel exp(qᵀk/√d).

    φ(x) = exp(ωᵀx' − ‖x'‖²/2) / √m with x' = x / d^¼. Then E_ω[φ(q)ᵀφ(k)] = exp(qᵀk/√d).
    """
    gen, cases = _gen(), []
    for batch, d, m in (((), 4, 8), ((2, 3), 8, 32), ((2,), 16, 20)):
        phi = favor_plus(d, m, seed=3)
        x = _randn(gen, *batch, 5, d)  # (..., N, d)
        omega = phi.omega.float()  # (m, d)
        cases.append(_Case((x, omega), phi(x), f"x {_shape(x)}, omega {_shape(omega)}"))

    def feats(c, scale=None, norm=True, sqrt_m=True):
        x, omega = c.args
        xs = x * (x.shape[-1] ** -0.25 if scale is None else scale)  # (..., N, d)
        out = torch.exp(xs @ omega.T - (xs.pow(2).sum(-1, keepdim=True) / 2 if norm else 0))  # (..., N, m)
        return out / math.sqrt(omega.shape[0]) if sqrt_m else out

    return _run_cases(
        "check_favor_features", your_fn, cases, names=["phi"],
        hint="x' = x * d**-0.25; wx = x' @ omega.T (..., m); φ = exp(wx − (x'**2).sum(-1, keepdim=True)/2) / √m.",
        diagnoses=[
            (lambda e, g, c: _close(g, feats(c, norm=False)),
             "you left out −‖x'‖²/2: without it E[φ(q)ᵀφ(k)] = exp(q'ᵀk' + ‖q'‖²/2 + ‖k'‖²/2), biased."),
            (lambda e, g, c: _close(g, feats(c, scale=1.0)),
             "scale x by d^(-1/4) first: the target kernel is exp(qᵀk/√d), not exp(qᵀk)."),
            (lambda e, g, c: _close(g, feats(c, sqrt_m=False)),
             "divide by √m, so that φ(q)ᵀφ(k) is the *average* over the m random features."),
        ])
