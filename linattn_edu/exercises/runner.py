"""The case machinery every checker module uses: random cases, comparison, diagnoses, spies, quizzes.

A checker builds a few :class:`Case` objects (the reader's arguments and the library's answer),
then calls :func:`run_cases`, which calls the reader's function on each case, compares every
output with the library's, and on a miss prints what was expected, what came, the largest
difference and the first matching *diagnosis* — a named common mistake — or the general hint.

A miss prints the general hint in two tiers (:class:`Hint`: the idea first, its code from the second
miss on); a shape or broadcast error raised inside the reader's function is explained
(:func:`explain_shape_error`: the reader's line, the arguments on it with their shapes, the expected
output, and how to index batched tensors from the end). Inside :func:`graded` a miss raises
:class:`ExerciseFailed`, so that an nbgrader test cell scores it 0; :func:`guard` is the hidden test that
refuses an answer handing the computation off (a :class:`Guard` per checker, in :data:`GUARDS`).

Quizzes: :class:`Question` objects live in one registry (:data:`QUESTIONS`, filled with
:func:`add_questions`); :func:`show_question` prints the question only, :func:`check_order` and
:func:`check_choice` mark an answer and print the explanation once the right answer is given.
Ordering questions are written with their steps in the right order and shown relabelled in a
shuffled order (fixed seed per question, never the right order); ``requires`` lets every order the
question allows count, and a wrong order never names the next step. A wrong choice gets the feedback
written for that option.
"""
from __future__ import annotations

import contextlib
import inspect
import math
import random
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch.overrides import TorchFunctionMode

from .. import LinearAttentionState

__all__ = [
    "SEED", "ATOL", "RTOL", "Case", "Diagnosis", "gen", "randn", "shape_of", "close", "fail",
    "run_cases", "qkv_cases", "state_after", "CallSpy", "LIBRARY_SOFTMAX", "as_tensor",
    "Question", "QUESTIONS", "add_questions", "show_question", "check_order", "check_choice",
    "displayed_options", "ExerciseFailed", "graded", "Hint", "Guard", "add_guard", "GUARDS", "guard",
    "explain_shape_error", "calls_grow_with_n", "refuse_library",
]

SEED = 20240611
ATOL, RTOL = 1e-4, 1e-4  # float32 inputs: a right answer is within ~1e-6, a wrong one far off


# --------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One random test case: the reader's arguments, the library's answer, a description."""

    args: tuple
    expected: Any  # a tensor or a tuple of tensors
    about: str
    extra: dict = field(default_factory=dict)


# A diagnosis is (test(expected, got, case) -> bool, hint): the first that matches explains the miss.
Diagnosis = tuple[Callable[[Any, Any, Case], bool], str]


def gen() -> torch.Generator:
    """A private generator with the fixed seed: verdicts read the same every run; the global RNG is untouched."""
    return torch.Generator().manual_seed(SEED)


def randn(g: torch.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=g) * scale  # float32


def shape_of(x) -> str:
    return str(tuple(x.shape)) if isinstance(x, torch.Tensor) else type(x).__name__


def close(a, b, atol: float = ATOL, rtol: float = RTOL) -> bool:
    """Same shape and allclose (in float64); False for anything that is not a tensor."""
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.shape != b.shape:
        return False
    return bool(torch.allclose(a.detach().double(), b.detach().double(), atol=atol, rtol=rtol))


def as_tensor(x) -> torch.Tensor | None:
    """A float64 tensor from a tensor, number or nested list of numbers; None if it is none of these."""
    try:
        return torch.as_tensor(x, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        return None


def _preview(x: torch.Tensor, n: int = 4) -> str:
    flat = x.detach().flatten()[:n].tolist()
    body = ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in flat)
    return f"[{body}{', …' if x.numel() > n else ''}]"


def _describe_miss(name: str, exp: torch.Tensor, got, reveal: bool = True) -> list[str]:
    if not isinstance(got, torch.Tensor):
        return [f"  {name}: expected a torch.Tensor of shape {shape_of(exp)}; got {type(got).__name__}"]
    if got.shape != exp.shape:
        return [f"  {name}: expected shape {shape_of(exp)}; got shape {shape_of(got)}"]
    if not reveal:  # a hand computation: say which output is off, never the numbers
        return [f"  {name}: not right yet (you gave {_preview(got)})"]
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


class ExerciseFailed(AssertionError):
    """Raised by a checker that misses inside :func:`graded` (an autograded test cell scores it 0)."""


_STRICT = [False]


@contextlib.contextmanager
def graded():
    """Inside this block a checker that misses raises :class:`ExerciseFailed` (after printing why).

    The autograded test cells of the nbgrader edition call their checker inside ``with graded():``,
    so a miss is an error and scores 0; outside it a checker prints its verdict and returns a bool.
    """
    before = _STRICT[0]
    _STRICT[0] = True
    try:
        yield
    finally:
        _STRICT[0] = before


@dataclass(frozen=True)
class Hint:
    """A two-tier hint: ``idea`` on the first miss of an exercise, ``idea`` and ``code`` from the second on.

    ``code`` is a complete answer in a few lines (tests run it through its checker).
    """

    idea: str
    code: str = ""

    def __str__(self) -> str:
        return self.idea


#: misses per checker title (its first word): the second miss of an exercise shows the code tier.
_MISSES: dict[str, int] = {}


def _tier(title: str, hint) -> str:
    if not isinstance(hint, Hint):
        return str(hint)
    key = title.split(":")[0].split(" ")[0]
    _MISSES[key] = _MISSES.get(key, 0) + 1
    if _MISSES[key] < 2 or not hint.code:
        return hint.idea + ("  (miss again and the hint shows code)" if hint.code else "")
    code = "\n".join("      " + line for line in hint.code.strip("\n").splitlines())
    return f"{hint.idea}\n    in code:\n{code}"


def fail(title: str, lines: list[str], hint) -> bool:
    """Print a miss (title, detail lines, hint) and return False; raise :class:`ExerciseFailed` inside :func:`graded`."""
    text = _tier(title, hint)
    print(f"✗ {title}")
    for line in lines:
        print(line)
    print(f"  hint: {text}")
    if _STRICT[0]:
        _short_traceback()
        raise ExerciseFailed(f"{title}: {text}")
    return False


def _short_traceback() -> None:
    """Under IPython, show the next traceback as its one message line (the verdict above says the rest).

    A graded miss then reads "ExerciseFailed: <diagnosis>" and never quotes the test cell's code (so
    feedback does not show the hidden tests); the previous traceback mode is back for the next cell.
    """
    try:
        ip = get_ipython()  # type: ignore[name-defined]  # noqa: F821
    except NameError:
        return
    tb = getattr(ip, "InteractiveTB", None)
    if tb is None or getattr(tb, "mode", None) == "Minimal":
        return
    before = tb.mode

    def restore(*_):
        tb.set_mode(before)
        ip.events.unregister("post_run_cell", restore)

    tb.set_mode("Minimal")
    ip.events.register("post_run_cell", restore)


def _safe(test, expected, got, case) -> bool:
    try:
        return bool(test(expected, got, case))
    except Exception:
        return False


# --------------------------------------------------------------------------- spies


#: torch functions that compute a softmax for the caller (by ``__name__``); an exercise that asks the
#: reader to *write* a softmax forbids them.
LIBRARY_SOFTMAX = frozenset({"softmax", "_softmax", "log_softmax", "_log_softmax", "special_softmax",
                             "special_log_softmax"})


class CallSpy(TorchFunctionMode):
    """Watches the torch calls made inside the mode.

    Records the first tensor produced whose last two dims are (n, n) (when ``n`` is given) and the
    first call of a function whose ``__name__`` is in ``forbidden``.
    """

    def __init__(self, n: int | None = None, forbidden: frozenset = frozenset()):
        super().__init__()
        self.n, self.forbidden = n, forbidden
        self.nxn, self.called = None, None
        self.calls, self.max_numel = 0, 0  # torch calls made; the largest tensor any of them returned

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", str(func))
        if self.called is None and name in self.forbidden:
            self.called = name
        out = func(*args, **(kwargs or {}))
        self.calls += 1
        for t in _as_tuple(out):
            if isinstance(t, torch.Tensor):
                self.max_numel = max(self.max_numel, t.numel())
        if self.n is not None and self.nxn is None:
            for t in _as_tuple(out):
                if isinstance(t, torch.Tensor) and t.dim() >= 2 and t.shape[-2:] == (self.n, self.n):
                    self.nxn = (name, tuple(t.shape))
        return out


# --------------------------------------------------------------------------- shape errors


_SHAPE_WORDS = ("must match the size", "shapes cannot be multiplied", "mat1 and mat2", "expanded size",
                "Dimension out of range", "not broadcastable", "size mismatch", "Expected size",
                "invalid for input of size", "number of dimensions", "batch1", "inconsistent tensor size",
                "too many indices", "does not match the broadcast shape", "Expected all tensors",
                "dimension specified as", "but got", "cannot be broadcast")


def _arg_names(fn, n: int) -> list[str]:
    try:
        params = [p.name for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    return (params + [f"argument {i + 1}" for i in range(len(params), n)])[:n]


def _reader_line(err: BaseException) -> str | None:
    """The last line of the traceback written by the reader (not torch's, not this package's)."""
    frames = [f for f in traceback.extract_tb(err.__traceback__)
              if "site-packages" not in f.filename and "/linattn_edu/" not in f.filename.replace("\\", "/")
              and not f.filename.startswith("<frozen")]
    return frames[-1].line.strip() if frames and frames[-1].line else None


def explain_shape_error(fn, case: "Case", err: BaseException, names: Sequence[str] = ()) -> tuple[list[str], str] | None:
    """(detail lines, diagnosis) for a shape or broadcast error raised inside the reader's function; else None.

    Names the reader's line that raised, the arguments on that line with their shapes, the output
    shape expected, and, for a case with leading batch dims, how to index and broadcast from the end.
    """
    msg = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if not isinstance(err, (RuntimeError, IndexError, ValueError)) or not any(w in msg for w in _SHAPE_WORDS):
        return None
    arg_names = _arg_names(fn, len(case.args))
    line = _reader_line(err)
    lines = [f"  your function raised a shape error: {msg}"]
    if line:
        lines.append(f"  on your line: {line}")
    tensors = [(n, a) for n, a in zip(arg_names, case.args) if isinstance(a, torch.Tensor)]
    on_line = [(n, a) for n, a in tensors if line and _mentions(line, n)]
    shown = on_line or tensors
    if shown:
        lines.append("  " + ("arguments on that line: " if on_line else "arguments: ")
                     + ", ".join(f"{n} {shape_of(a)}" for n, a in shown))
    outs = [(n, e) for n, e in zip(names or ["output"], _as_tuple(case.expected)) if isinstance(e, torch.Tensor)]
    if outs:
        lines.append("  expected: " + ", ".join(f"{n} of shape {shape_of(e)}" for n, e in outs))
    first = tensors[0][1] if tensors else None
    batch = tuple(first.shape[:-2]) if first is not None and first.dim() > 2 else ()
    if batch:
        why = (f"this case has leading batch dims {batch}: write every step for (..., N, d) tensors. Index and "
               "broadcast from the end: x.transpose(-2, -1) (not x.T), x.unsqueeze(-1) / x[..., :, None] for a "
               "column, x.unsqueeze(-2) / x[..., None, :] for a row, and .sum(dim=-1, keepdim=True) so the "
               "dims still line up.")
    else:
        why = ("the shapes on that line do not fit together: write each tensor's shape next to it "
               "(# (N, d) @ (d, M) -> (N, M)) and check which dim the operation pairs up.")
    return lines, why


def _mentions(line: str, name: str) -> bool:
    import re
    return re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", line) is not None


# --------------------------------------------------------------------------- hidden tests: shortcuts


@dataclass(frozen=True)
class Guard:
    """What an exercise's answer may not hand off, checked by a hidden test of the graded edition.

    ``args()`` builds sample arguments. The answer fails when, called on them, it calls a function of
    ``linattn_edu`` outside ``allowed`` (module-name prefixes; the feature maps handed in as arguments
    are allowed by default) or a torch function named in ``torch_names``, or when any tensor it makes
    has ``max_numel(args)`` elements or more (an N×N matrix in an O(N) exercise, in any shape).
    """

    args: Callable[[], tuple]
    allowed: tuple = ("linattn_edu.feature_maps",)
    torch_names: frozenset = frozenset()
    max_numel: Callable[[tuple], int] | None = None


#: Guards by checker name (``check_linear_attention`` …); checker modules add theirs with :func:`add_guard`.
GUARDS: dict[str, Guard] = {}


def add_guard(checker: str, g: Guard) -> None:
    """Register the hidden-test guard of the exercise that ``checker`` marks."""
    GUARDS[checker] = g


def _library_calls(fn: Callable, args: tuple, allowed: tuple) -> tuple[Any, list[str]]:
    """fn(*args) and the linattn_edu functions it called directly (outside ``allowed`` and the checkers)."""
    seen: list[str] = []

    def profile(frame, event, arg):
        if event != "call":
            return
        mod = frame.f_globals.get("__name__", "")
        if not mod.startswith("linattn_edu") or mod.startswith("linattn_edu.exercises"):
            return
        if any(mod == a or mod.startswith(a + ".") for a in allowed):
            return
        caller = frame.f_back.f_globals.get("__name__", "") if frame.f_back is not None else ""
        if not caller.startswith("linattn_edu"):
            seen.append(f"{mod}.{frame.f_code.co_name}")

    before = sys.getprofile()
    sys.setprofile(profile)
    try:
        out = fn(*args)
    finally:
        sys.setprofile(before)
    return out, seen


def guard(checker, fn) -> bool:
    """The hidden test of an exercise: refuse an answer that hands off what the exercise asks for.

    ``checker`` is the exercise's checker (or its name). Prints nothing and returns True when the answer
    is the reader's own work (or the exercise has no guard); otherwise prints a short verdict and
    fails like a checker (raises inside :func:`graded`). The verdict does not say what was looked for.
    """
    name = checker if isinstance(checker, str) else getattr(checker, "__name__", str(checker))
    g = GUARDS.get(name)
    if g is None or not callable(fn):
        return True
    args = g.args()
    spy = CallSpy(forbidden=frozenset(g.torch_names))
    try:
        with spy:
            _, called = _library_calls(fn, args, g.allowed)
    except ExerciseFailed:
        raise
    except Exception:  # the visible checker reports errors; the hidden test marks only shortcuts
        return True
    limit = g.max_numel(args) if g.max_numel is not None else None
    if called or spy.called or (limit is not None and spy.max_numel >= limit):
        return fail(f"{name} (hidden test)",
                    ["  this exercise is marked on a computation you write yourself, in the form the exercise "
                     "asks for; this answer does not do that, so it scores 0 here."],
                    "re-read the exercise text and write the formula it states with plain tensor operations.")
    return True


def refuse_library(title: str, fn: Callable, names, why: str) -> bool | None:
    """The visible checkers' refusal of an answer that calls the library's own implementation.

    ``names`` are the library's functions for the exercise; an answer whose code names one of them
    (``fn.__code__.co_names``: a global such as ``decay_mask`` or an attribute such as ``gated.decay_mask``)
    fails with ``why`` before any case is run. Returns ``fail(...)`` (False) or None when the answer is its own.
    """
    code = getattr(fn, "__code__", None)
    hit = sorted(set(code.co_names if code is not None else ()) & set(names))
    if not hit:
        return None
    return fail(title, [f"  your function calls the library's {hit[0]}()"], why)


def calls_grow_with_n(fn: Callable, args: tuple, n_dims: Sequence[int], slack: int = 4) -> tuple[int, int] | None:
    """(torch calls at N, at 2N) when fn makes more calls as the sequence doubles (a Python loop over N).

    ``n_dims`` lists the positions in ``args`` of the tensors whose dim -2 is N; each is doubled along it.
    """
    doubled = tuple(torch.cat([a, a], dim=-2) if i in n_dims else a for i, a in enumerate(args))
    counts = []
    for a in (args, doubled):
        spy = CallSpy()
        with spy:
            fn(*a)
        counts.append(spy.calls)
    return (counts[0], counts[1]) if counts[1] > counts[0] + slack else None


# --------------------------------------------------------------------------- the runner


def _check_one(title: str, fn: Callable, case: Case, names: Sequence[str], hint: str,
               diagnoses: Sequence[Diagnosis], atol: float, rtol: float, forbidden: dict[str, str],
               after: Callable[[Case, Any], str | None] | None, reveal: bool = True) -> tuple[bool, Any]:
    """Run one case; print and return (False, None) on a miss, (True, got) on a match."""
    spy = CallSpy(forbidden=frozenset(forbidden))
    try:
        if forbidden:
            with spy:
                got = fn(*case.args)
        else:
            got = fn(*case.args)
    except ExerciseFailed:
        raise
    except Exception as err:  # the reader's code: report, don't crash the notebook
        explained = explain_shape_error(fn, case, err, names)
        if explained:
            lines, why = explained
            return fail(title, lines, why), None
        return fail(title, [f"  your function raised {type(err).__name__}: {err}"], hint), None
    exp_t, got_t = _as_tuple(case.expected), _as_tuple(got)
    if len(got_t) != len(exp_t):
        return fail(title, [f"  expected {len(exp_t)} output(s) ({', '.join(names)}); got {len(got_t)}"],
                    hint), None
    bad = [j for j, (e, g) in enumerate(zip(exp_t, got_t)) if not close(e, g, atol, rtol)]
    if bad:
        lines = [line for j in bad for line in _describe_miss(names[j], exp_t[j], got_t[j], reveal)]
        reason = next((h for test, h in diagnoses if _safe(test, case.expected, got, case)), hint)
        return fail(title, lines, reason), None
    if spy.called:
        return fail(title, [f"  right values, but your function called torch's {spy.called}()"],
                    forbidden[spy.called]), None
    msg = after(case, got) if after is not None else None
    if msg:
        return fail(title, [f"  {msg}"], hint), None
    return True, got


def run_cases(title: str, fn: Callable, cases: Sequence[Case], *, names: Sequence[str], hint: str,
              diagnoses: Sequence[Diagnosis] = (), atol: float = ATOL, rtol: float = RTOL,
              forbidden: dict[str, str] | None = None,
              after: Callable[[Case, Any], str | None] | None = None, success: str | None = None,
              reveal: bool = True) -> bool:
    """Call fn(*case.args) for each case and compare every output with case.expected.

    ``diagnoses`` explain a miss (the first whose test matches wins, else ``hint``).
    ``forbidden`` maps torch function names to a message: calling one fails even with right values
    (e.g. ``torch.softmax`` in "write a softmax"). ``after(case, got)`` may return a failure message
    for a property that values alone do not show (e.g. "built an N×N matrix"). ``success`` replaces
    the verdict line printed when every case matches. ``reveal=False`` never prints the expected values
    (a hand computation). ``hint`` may be a :class:`Hint`: its idea on the first miss, its code after.
    Prints one verdict line (plus details on a miss) and returns True or False.
    """
    if not callable(fn):
        return fail(f"{title}: expected a function; got {type(fn).__name__}", [], hint)
    for i, case in enumerate(cases, 1):
        where = f"{title}: case {i} of {len(cases)} ({case.about})"
        ok, _ = _check_one(where, fn, case, names, hint, diagnoses, atol, rtol, forbidden or {}, after, reveal)
        if not ok:
            return False
    print(f"✓ {title}: " + (success or f"your function matches linattn_edu on all {len(cases)} random cases."))
    return True


def qkv_cases(g: torch.Generator, shapes):
    """Random (q, k, v) triples for the given ((batch...), N, M, d, d_v) shapes."""
    for batch, n, m, d, dv in shapes:
        q = randn(g, *batch, n, d)  # (..., N, d)
        k = randn(g, *batch, m, d)  # (..., M, d)
        v = randn(g, *batch, m, dv)  # (..., M, d_v)
        yield q, k, v


def state_after(phi, q, k, v) -> tuple[torch.Tensor, torch.Tensor]:
    """(S, z) of a LinearAttentionState that has read every token of q, k, v (..., N, ·)."""
    state = LinearAttentionState(q.shape[-1], v.shape[-1], feature_map=phi, batch_shape=tuple(q.shape[:-2]))
    state.prefill(q, k, v)
    return state.snapshot()


# --------------------------------------------------------------------------- quizzes


@dataclass(frozen=True)
class Question:
    """A quiz question.

    kind "order": ``options`` lists the steps *in the right order* (keys are internal labels);
    ``answer`` groups the keys, any order inside a group (steps that commute). The reader sees
    the steps relabelled a, b, c, … in a shuffled order (see :func:`displayed_options`).
    kind "choice": ``options`` are lettered as shown; ``answer`` holds the right letter(s) —
    several letters make it a "select all that apply" question.
    ``explanation`` (a string, or a function returning one, e.g. to compute numbers with the
    library) is printed only once the right answer is given; ``hint`` after a wrong one.
    ``requires`` (ordering questions, optional) maps a step to the steps it needs first: then *every*
    order that respects it is right (it replaces the groups of ``answer``, which still lists one right
    order). ``feedback`` (choice questions) maps a wrong option to why it is wrong, printed when it is
    picked.
    """

    prompt: str
    options: dict[str, str]
    answer: tuple
    explanation: str | Callable[[], str]
    kind: str = "order"
    hint: str = "re-read the section above and try again."
    requires: dict | None = None
    feedback: dict = field(default_factory=dict)

    def explain(self) -> str:
        return self.explanation() if callable(self.explanation) else self.explanation


#: Every registered question by name; checker modules add theirs with :func:`add_questions`.
QUESTIONS: dict[str, Question] = {}


def add_questions(questions: dict[str, Question]) -> None:
    """Register questions (a name may be registered once)."""
    for name, q in questions.items():
        if name in QUESTIONS and QUESTIONS[name] is not q:
            raise ValueError(f"question {name!r} is already registered")
        if q.kind not in ("order", "choice"):
            raise ValueError(f"question {name!r}: kind must be 'order' or 'choice'; got {q.kind!r}")
        QUESTIONS[name] = q


def _get(name: str, kind: str | None = None) -> Question:
    if name not in QUESTIONS:
        raise ValueError(f"unknown question {name!r}; expected one of {sorted(QUESTIONS)}")
    q = QUESTIONS[name]
    if kind is not None and q.kind != kind:
        other = "check_choice" if q.kind == "choice" else "check_order"
        raise ValueError(f"question {name!r} is a {q.kind} question: use {other}")
    return q


def _in_right_order(q: Question, keys: Sequence[str]) -> bool:
    if q.requires is not None:
        place = {k: i for i, k in enumerate(keys)}
        return sorted(keys) == sorted(q.options) and all(
            place[before] < place[step] for step, needs in q.requires.items() for before in needs)
    pos = 0
    for group in q.answer:
        if sorted(keys[pos:pos + len(group)]) != sorted(group):
            return False
        pos += len(group)
    return True


def displayed_options(name: str) -> dict[str, str]:
    """The letters the reader sees -> internal option keys.

    Choice questions: unchanged. Ordering questions: the steps shuffled with a fixed seed (the
    same on every run and machine), redrawn until the listed order is not a right order.
    """
    q = _get(name)
    keys = list(q.options)
    if q.kind == "choice":
        return {k: k for k in keys}
    rng = random.Random(f"{SEED}:{name}")
    shuffled = keys[:]
    while len(keys) > 1 and _in_right_order(q, shuffled):
        rng.shuffle(shuffled)
    return {chr(ord("a") + i): key for i, key in enumerate(shuffled)}


def show_question(name: str) -> None:
    """Print a question and its lettered options (never the answer or its explanation)."""
    q = _get(name)
    print(q.prompt)
    for letter, key in displayed_options(name).items():
        print(f"  {letter}) {q.options[key]}")
    if q.kind == "order":
        how = 'check_order(name, ["x", "y", …])'
    elif len(q.answer) > 1:
        how = 'check_choice(name, "xy…")  (select all that apply)'
    else:
        how = 'check_choice(name, "x")'
    print(f"answer with {how}")


def _letters(answer) -> list[str] | None:
    if isinstance(answer, str):
        return [c for c in answer.lower() if c.isalpha()]
    if isinstance(answer, (list, tuple)) and all(isinstance(a, str) for a in answer):
        return [str(a).strip().lower() for a in answer]
    return None


def check_order(name: str, answer: Sequence[str]) -> bool:
    """Mark an ordering: ``answer`` lists every shown letter once, first step first."""
    q = _get(name, "order")
    title = f"check_order({name!r})"
    shown = displayed_options(name)
    letters = _letters(answer) if isinstance(answer, (list, tuple)) else None
    if letters is None or sorted(letters) != sorted(shown):
        return fail(title, [f"  expected each of {sorted(shown)} exactly once; got {answer!r}"],
                    "list every letter once, first step first.")
    keys = [shown[x] for x in letters]
    if not _in_right_order(q, keys):  # never says which step is next: that would solve it in n tries
        return fail(title, [f"  {', '.join(letters)} is not a right order yet: some step comes before a step "
                            f"it needs."], q.hint)
    print(f"✓ {title}: right order. Why: {q.explain()}")
    return True


def check_choice(name: str, answer) -> bool:
    """Mark a multiple-choice answer: one letter, or every right letter ("ce", ["c", "e"]) where several are."""
    q = _get(name, "choice")
    title = f"check_choice({name!r})"
    letters = _letters(answer)
    many = len(q.answer) > 1
    if not letters or any(x not in q.options for x in letters) or (not many and len(letters) != 1):
        what = "one or more letters" if many else "one letter"
        return fail(title, [f"  expected {what} from {sorted(q.options)}; got {answer!r}"],
                    f"answer with {what}.")
    picked, right = set(letters), set(q.answer)
    if picked != right:
        if not many:
            x = letters[0]
            why = q.feedback.get(x)
            return fail(title, [f"  {x}) {q.options[x]} — not this one" + (f": {why}" if why else ".")], q.hint)
        lines = [f"  {x}) {q.options[x]} — does not hold" + (f": {q.feedback[x]}" if x in q.feedback else ".")
                 for x in sorted(picked - right)]
        if right - picked:
            lines.append(f"  and {len(right - picked)} right option(s) are missing.")
        return fail(title, lines, q.hint)
    print(f"✓ {title}: right. Why: {q.explain()}")
    return True
