"""Student and instructor editions (scripts/editions.py), quizzes, launch badges and install lines.

- the solution stripping itself: stubs raise NotImplementedError with the exercise's hint, indentation
  kept, bad markers refused;
- every notebook source strips cleanly and no solution line leaks into its student edition;
- the committed student edition, the README badges and the Colab install lines are up to date
  (``scripts/editions.py --check``), and the install line installs the extras the notebook imports;
- the student edition executes up to each exercise and the stub fails there, with its hint
  (one notebook in the quick run, every one under ``-m slow``);
- the instructor edition (``notebooks/``, committed executed) passes every checker it runs;
- a quiz question never prints its explanation before an answer, and ordering questions are shown
  shuffled, the same way on every run.
"""
from __future__ import annotations

import ast
import importlib.util
import io
import json
import re
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("jupytext")

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("editions", ROOT / "scripts" / "editions.py")
editions = importlib.util.module_from_spec(_spec)
sys.modules["editions"] = editions
_spec.loader.exec_module(editions)

SOURCES = editions.sources()
WITH_SOLUTIONS = [md for md in SOURCES
                  if any(line.strip() == editions.BEGIN for line in md.read_text(encoding="utf-8").splitlines())]
CHECK_CALL = re.compile(r"^\s*(check_\w+)\(", re.M)
EXPECTED_FAILURE = "# expected to fail"


def _text(src) -> str:
    return "".join(src) if isinstance(src, list) else src


# --------------------------------------------------------------------------- the transformation


SOLVED = '''def my_softmax(x):
    """Row-wise softmax."""
    # TODO: subtract the row maximum, exponentiate, divide by the row sum
    ### BEGIN SOLUTION
    e = (x - x.amax(dim=-1, keepdim=True)).exp()
    return e / e.sum(dim=-1, keepdim=True)
    ### END SOLUTION

# TODO: the "elu+1" feature map, written with torch.nn.functional
### BEGIN SOLUTION
phi = lambda x: F.elu(x) + 1
### END SOLUTION
check_softmax(my_softmax)'''


def test_stub_replaces_each_block_keeps_indentation_and_hint():
    student, hints = editions.strip_solutions(SOLVED)
    assert hints == ["subtract the row maximum, exponentiate, divide by the row sum",
                     'the "elu+1" feature map, written with torch.nn.functional']
    assert "    raise NotImplementedError(\"subtract the row maximum, exponentiate, divide by the row sum\")" in student
    assert "BEGIN SOLUTION" not in student and "END SOLUTION" not in student
    assert "amax" not in student and "F.elu" not in student
    assert student.splitlines()[-1] == "check_softmax(my_softmax)"
    tree = ast.parse(student)  # still valid Python
    assert sum(isinstance(n, ast.Raise) for n in ast.walk(tree)) == 2


def test_stub_raises_not_implemented_with_the_hint():
    student, hints = editions.strip_solutions(SOLVED)
    namespace = {"F": None, "check_softmax": lambda f: f(None)}
    with pytest.raises(NotImplementedError) as info:
        exec(compile(student, "<student>", "exec"), namespace)
    assert str(info.value) == hints[1]  # the module-level stub runs first
    with pytest.raises(NotImplementedError, match="subtract the row maximum"):
        namespace["my_softmax"](None)


def test_markdown_blocks_become_an_answer_prompt():
    md, hints = editions.strip_solutions("Why?\n\n### BEGIN SOLUTION\nBecause the state is d x d.\n"
                                         "### END SOLUTION", "markdown")
    assert md == f"Why?\n\n{editions.MARKDOWN_STUB}" and hints == [editions.MARKDOWN_STUB]


@pytest.mark.parametrize("source, message", [
    ("# TODO: x\n### BEGIN SOLUTION\nx = 1", "not closed"),
    ("# TODO: x\n### BEGIN SOLUTION\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION", "not closed"),
    ("x = 1\n### END SOLUTION", "without a"),
    ("### BEGIN SOLUTION\nx = 1\n### END SOLUTION", "TODO"),
    ("# TODO:\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION", "TODO"),
    ("# a comment\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION", "TODO"),
])
def test_bad_markers_are_refused(source, message):
    with pytest.raises(editions.SolutionMarkerError, match=message):
        editions.strip_solutions(source)


def test_student_cells_drop_nbval_directives():
    assert editions._without_nbval_comments("# NBVAL_CHECK_OUTPUT\n\nx = 1\nprint(x)  # NBVAL_X stays") == \
        "x = 1\nprint(x)  # NBVAL_X stays"


def test_source_without_markers_is_unchanged():
    assert editions.strip_solutions("x = 1\n  y = 2") == ("x = 1\n  y = 2", [])


def test_solution_lines():
    assert editions.solution_lines(SOLVED) == [
        "e = (x - x.amax(dim=-1, keepdim=True)).exp()", "return e / e.sum(dim=-1, keepdim=True)",
        "phi = lambda x: F.elu(x) + 1"]


# --------------------------------------------------------------------------- the real notebooks


def test_there_are_sources():
    assert SOURCES, "no notebooks/NN_*.md"


@pytest.mark.parametrize("md", SOURCES, ids=[p.name for p in SOURCES])
def test_no_solution_text_leaks_into_the_student_edition(md):
    source = md.read_text(encoding="utf-8")
    student = editions.student_edition(md)
    text = "\n".join(_text(c.source) for c in student.cells)
    markers = [line for line in text.splitlines() if line.strip() in (editions.BEGIN, editions.END)]
    assert not markers, f"{md.name}: solution markers left in the student edition"
    assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code"), "student edition has outputs"
    outside = "\n".join(line for line in editions.strip_solutions(source)[0].splitlines())  # the given text
    leaks = [line for line in editions.solution_lines(source) if line not in outside and line in text]
    assert not leaks, f"{md.name}: solution lines in the student edition: {leaks[:5]}"
    blocks = sum(line.strip() == editions.BEGIN for c in editions.read_source(md).cells
                 if c.cell_type == "code" for line in _text(c.source).splitlines())
    stubs = sum(_text(c.source).count("raise NotImplementedError(") for c in student.cells)
    given = sum(_text(c.source).count("raise NotImplementedError(") for c in editions.read_source(md).cells)
    assert stubs == blocks + given, f"{md.name}: {blocks} solution blocks in code cells, {stubs - given} stubs"


def test_committed_editions_badges_and_install_lines_are_up_to_date(capsys):
    code = editions.main(["--check"])
    out = capsys.readouterr().out
    assert code == 0, f"stale files (run `.venv/bin/python scripts/editions.py`):\n{out}"


def _first_code_cell(md: Path) -> str:
    return next(_text(c.source) for c in editions.read_source(md).cells if c.cell_type == "code")


@pytest.mark.parametrize("md", SOURCES, ids=[p.name for p in SOURCES])
def test_colab_install_line_installs_what_the_notebook_imports(md):
    first = _first_code_cell(md)
    match = re.search(r'%pip install -q "linattn-edu(?:\[([\w,]+)\])? @ git\+([^"]+)"', first)
    assert match, f"{md.name}: the first code cell has no Colab install line"
    assert "google.colab" in first.split(match.group(0))[0], f"{md.name}: install only on Colab"
    extras = set((match.group(1) or "").split(",")) - {""}
    assert match.group(2) == editions.repository()[0]
    code = "\n".join(_text(c.source) for c in editions.read_source(md).cells if c.cell_type == "code")
    needed = set()
    if re.search(r"^\s*(import plotly|from plotly|from linattn_edu(\.| import )(viz|explorers))", code, re.M):
        needed.add("viz")
    if "tqdm" in code:  # imported, or a progress bar the reader can switch on: the [bench] extra
        needed.add("bench")
    assert needed <= extras or "all" in extras, f"{md.name}: installs [{','.join(sorted(extras))}], needs {sorted(needed)}"


def test_launch_links_come_from_the_one_configured_repository():
    links = editions.launch_links("editions/student/01_x.ipynb", repo="https://github.com/o/r", branch="b")
    assert links == {"Colab": "https://colab.research.google.com/github/o/r/blob/b/editions/student/01_x.ipynb",
                     "Binder": "https://mybinder.org/v2/gh/o/r/b?labpath=editions/student/01_x.ipynb"}
    url, branch = editions.repository()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"colab.research.google.com/github/{url.removeprefix('https://github.com/')}/blob/{branch}/" in readme
    assert editions.with_install_url('%pip install -q "linattn-edu[viz] @ git+https://github.com/a/b"') == \
        f'%pip install -q "linattn-edu[viz] @ git+{url}"'


# --------------------------------------------------------------------------- student edition runs to each stub


def _execute_student(md: Path, tmp_path: Path) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    nb = editions.student_edition(md)
    workdir = tmp_path / "editions" / "student"  # like the committed location: assets/ is found above
    workdir.mkdir(parents=True)
    (tmp_path / "assets").symlink_to(ROOT / "assets")
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(workdir)}}).execute()
    return nb


def _student_params():
    params = []
    for i, md in enumerate(WITH_SOLUTIONS):
        marks = [pytest.mark.slow] if i > 0 else []  # the quick run executes the first one only
        params.append(pytest.param(md, marks=marks, id=md.name))
    return params or [pytest.param(None, id="no-solution-blocks-yet")]


@pytest.mark.parametrize("md", _student_params())
def test_student_edition_runs_to_each_exercise_and_the_stub_fails_clearly(md, tmp_path):
    if md is None:
        pytest.fail("no notebooks/NN_*.md has a ### BEGIN SOLUTION block: the student edition has no exercises")
    nb = _execute_student(md, tmp_path)
    hints = [h for c in editions.read_source(md).cells if c.cell_type == "code"
             for h in editions.strip_solutions(_text(c.source))[1]]
    # A stub fails either as the cell's error, or inside a checker, which catches it and prints
    # "✗ … your function raised NotImplementedError: <hint>".
    raised, failures = set(), []  # hints seen; (cell, what) for every failure, in order
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out["output_type"] == "error":
                failures.append((i, f"{out['ename']}: {out['evalue']}"))
                if out["ename"] == "NotImplementedError":
                    raised.add(out["evalue"])
            elif out["output_type"] == "stream" and "✗" in _text(out["text"]):
                text = _text(out["text"])
                failures.append((i, text.strip()))
                raised.update(re.findall(r"raised NotImplementedError: (.*)", text))
    assert failures, f"{md.name}: the student edition ran without a failure; its stubs never ran"
    stub_cells = [i for i, c in enumerate(nb.cells) if "raise NotImplementedError(" in _text(c.source)]
    first_cell, first = failures[0]
    assert first_cell >= stub_cells[0], f"{md.name}: cell {first_cell} failed before the first exercise: {first}"
    assert "NotImplementedError" in first, \
        f"{md.name}, cell {first_cell}: the first failure is {first!r}, not a stub's NotImplementedError"
    missing = [h for h in hints if h not in raised]
    assert not missing, f"{md.name}: stubs that never raised their hint (did an earlier error hide them?): {missing}"


# --------------------------------------------------------------------------- instructor edition: checkers pass


NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_instructor_edition_passes_every_checker(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    for i, cell in enumerate(nb["cells"]):
        source = _text(cell["source"])
        if cell["cell_type"] != "code" or not CHECK_CALL.search(source) or EXPECTED_FAILURE in source:
            continue
        text = "".join(_text(o.get("text", "")) for o in cell.get("outputs", []) if o["output_type"] == "stream")
        errors = [o for o in cell.get("outputs", []) if o["output_type"] == "error"]
        assert not errors, f"{path.name}, cell {i}: {errors[0]['ename']}: {errors[0]['evalue']}"
        assert "✗" not in text, f"{path.name}, cell {i}: a checker reported a failure:\n{text[:600]}"
        assert "✓" in text, f"{path.name}, cell {i}: a checker ran but printed no ✓:\n{text[:300]}"


# --------------------------------------------------------------------------- quizzes


def _questions():
    exercises = pytest.importorskip("linattn_edu.exercises")
    from linattn_edu.exercises import runner

    return exercises, runner, dict(runner.QUESTIONS)


def _shown(runner, name: str) -> str:
    buf = io.StringIO()
    with redirect_stdout(buf):
        runner.show_question(name)
    return buf.getvalue()


def test_show_question_never_prints_the_explanation_or_the_answer():
    _, runner, questions = _questions()
    assert questions, "no quiz questions registered"
    for name, q in questions.items():
        shown = _shown(runner, name)
        explanation = q.explain()
        for sentence in filter(None, (s.strip() for s in re.split(r"(?<=[.:;])\s", explanation))):
            if len(sentence) >= 25 and sentence not in q.prompt and all(sentence not in o for o in q.options.values()):
                assert sentence not in shown, f"{name}: show_question prints its explanation: {sentence!r}"
        assert "Why:" not in shown and "✓" not in shown, f"{name}: show_question marks an answer"


def test_ordering_questions_are_shown_shuffled_the_same_way_every_time():
    _, runner, questions = _questions()
    order = {n: q for n, q in questions.items() if q.kind == "order"}
    assert order, "no ordering questions"
    for name, q in order.items():
        shown = runner.displayed_options(name)
        keys = list(shown.values())
        assert sorted(keys) == sorted(q.options), f"{name}: steps lost or duplicated"
        right = [k for group in q.answer for k in group]
        assert keys != right, f"{name}: shown in the right order"
        assert shown == runner.displayed_options(name), f"{name}: the shuffle is not fixed"
        assert _shown(runner, name) == _shown(runner, name)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_quiz_outputs_hold_no_explanation(path):
    _, runner, questions = _questions()
    nb = json.loads(path.read_text(encoding="utf-8"))
    for i, cell in enumerate(nb["cells"]):
        source = _text(cell["source"])
        shown = re.findall(r"^show_question\([\"'](\w+)[\"']\)", source, re.M)
        if cell["cell_type"] != "code" or not shown or CHECK_CALL.search(source):
            continue
        text = "".join(_text(o.get("text", "")) for o in cell.get("outputs", []))
        for name in shown:
            assert name in questions, f"{path.name}, cell {i}: unknown question {name!r}"
            assert "Why:" not in text and questions[name].explain()[:60] not in text, \
                f"{path.name}, cell {i}: the output of show_question({name!r}) holds its explanation"
