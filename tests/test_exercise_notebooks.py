"""The exercise cells of notebooks 01–05: marked solutions, a hint for the stub, nothing to copy from above.

Reads the MyST-markdown sources (notebooks/NN_*.md), not the executed notebooks: these are the files the
edition builder turns into student stubs (each ``### BEGIN SOLUTION`` … ``### END SOLUTION`` block replaced
by ``raise NotImplementedError(<the # TODO: hint above it>)``).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from linattn_edu import exercises as ex

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
MODULES = {"01": ex.nb01_softmax, "02": ex.nb02_kernels, "03": ex.nb03_linear, "04": ex.nb04_recurrent,
           "05": ex.nb05_feature_maps}
CELL = re.compile(r"```\{code-cell\}[^\n]*\n(.*?)```", re.S)
BLOCK = re.compile(r"^([ \t]*)### BEGIN SOLUTION\n(.*?)^[ \t]*### END SOLUTION\n", re.S | re.M)


def source(number: str) -> str:
    (path,) = NOTEBOOKS.glob(f"{number}_*.md")
    return path.read_text()


def code_cells(number: str) -> list[str]:
    return CELL.findall(source(number))


@pytest.mark.parametrize("number", sorted(MODULES))
def test_every_checker_call_has_a_marked_solution_with_a_todo_hint(number):
    checked = 0
    for cell in code_cells(number):
        if not re.search(r"^check_\w+\(", cell, re.M):
            continue
        checked += 1
        blocks = BLOCK.findall(cell)
        assert len(blocks) == 1, f"one BEGIN/END SOLUTION block per exercise cell:\n{cell}"
        lines = cell.splitlines()
        begin = next(i for i, line in enumerate(lines) if line.strip() == "### BEGIN SOLUTION")
        todo = lines[begin - 1].strip()
        assert re.fullmatch(r"# TODO: \S.+", todo), f"a '# TODO: <what to write>' line must precede BEGIN:\n{cell}"
        assert blocks[0][1].strip(), "the solution block is empty"
    assert checked >= 4


@pytest.mark.parametrize("number", sorted(MODULES))
def test_every_checker_and_question_of_the_notebook_is_used(number):
    text = source(number)
    for name in MODULES[number].__all__:
        if name.startswith("check_"):
            assert f"{name}(" in text, f"{name} is not used in notebook {number}"
    for question in re.findall(r'show_question\("(\w+)"\)', text):
        assert re.search(rf'check_(choice|order)\("{question}", answer\)', text), question


def _code_lines(text: str) -> set[str]:
    """Non-trivial code lines (comments and whitespace stripped) of a piece of source."""
    out = set()
    for line in text.splitlines():
        code = line.split("#", 1)[0].strip()
        if len(code) >= 25 and not code.startswith(("def ", "return (", "check_")):
            out.add(code)
    return out


@pytest.mark.parametrize("number", sorted(MODULES))
def test_no_solution_is_copyable_from_a_cell_above_it(number):
    # The backward exercise of 04 used to repeat the three scans computed a few cells above it.
    cells = code_cells(number)
    for i, cell in enumerate(cells):
        for _, solution in BLOCK.findall(cell):
            above = "\n".join(BLOCK.sub("", c) for c in cells[:i])  # earlier code outside solutions
            copied = {line for line in _code_lines(solution) if line in above}
            assert not copied, f"notebook {number}: solution lines already written above: {copied}"


def test_backward_exercise_is_not_derived_in_full_above_it():
    text = source("04")
    before = text[:text.index("## Self-check exercises")]
    assert "causal_backwards" not in before
    assert "\\frac{\\partial \\mathcal L}{\\partial k_j}" not in before  # dK and dV are the exercise


def test_quiz_answers_are_marked_solutions_not_arguments():
    for number in MODULES:
        text = source(number)
        assert not re.search(r'check_(choice|order)\("\w+", [\["]', text), number
