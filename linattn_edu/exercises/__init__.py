"""Auto-checkers for the read-along notebooks' self-check exercises, and their quizzes.

Every ``check_<name>(your_fn)`` calls the reader's function on a few random inputs (a fixed
private seed, so the verdict reads the same on every run and the global RNG is left alone),
compares the result with the library, prints a verdict and returns ``True`` or ``False``. On a
miss it prints what was expected, what came, the largest difference and a hint; common mistakes
(a missing √d, no max subtraction, an inverted mask, a non-causal prefix, …) get a hint that
names them.

Grading: inside ``with graded():`` a checker that misses raises :class:`ExerciseFailed` (an nbgrader
test cell then scores 0); ``guard(checker, your_fn)`` is the hidden test that refuses an answer which
hands off the computation the exercise asks for (see ``classroom/README.md``).

Quizzes: ``show_question(name)`` prints a question (never its answer), ``check_order(name,
[...])`` and ``check_choice(name, "b")`` mark an answer and explain it once it is right.

Checkers per notebook: one module each, ``nb01_softmax`` … ``nb11_transitions`` (``__all__`` lists its
``check_*`` names; every one is re-exported here); the quiz questions live in ``questions``.

Layout: ``runner`` (cases, comparison, diagnoses, the call spies, quiz marking), ``questions``
(the question data), and one checker module per notebook, ``nbNN_<topic>.py``.

Adding a notebook's checkers: create ``linattn_edu/exercises/nbNN_<topic>.py`` that imports what it
needs with ``from .runner import Case, run_cases, gen, qkv_cases, close, ...`` (and
``Question, add_questions`` for quiz questions, registered at import), and lists its public
``check_*`` names in ``__all__``. Nothing else: this package imports every ``nbNN_*`` module it
finds at import time and re-exports its ``__all__`` as ``linattn_edu.exercises.<name>``.
"""
from __future__ import annotations

import importlib
import pkgutil
import re

from . import questions as _questions  # noqa: F401  (registers the questions)
from .runner import QUESTIONS, ExerciseFailed, check_choice, check_order, graded, guard, show_question

__all__ = ["QUESTIONS", "show_question", "check_order", "check_choice", "graded", "guard", "ExerciseFailed"]


def _notebook_modules() -> list[str]:
    """Names of the nbNN_* checker modules in this package, in notebook order."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if re.fullmatch(r"nb\d\d_\w+", m.name))


for _name in _notebook_modules():
    _module = importlib.import_module(f"{__name__}.{_name}")
    for _public in _module.__all__:
        globals()[_public] = getattr(_module, _public)
        __all__.append(_public)
del _name, _module, _public
