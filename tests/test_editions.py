"""Student and instructor editions (scripts/editions.py), quizzes, launch badges and install lines.

- the nbgrader source builder: an exercise cell splits into an answer cell and a locked, graded test
  cell (checks inside ``graded()``, hidden shortcut guards), bad markers are refused, markdown about the
  markers is rewritten; nbgrader's stub sits under the exercise's ``# TODO:`` line;
- no solution line or hidden test leaks into the student edition (nbgrader's release);
- the committed student edition, the README badges and the Colab install lines are up to date
  (``scripts/editions.py --check``), and the install line installs the extras the notebook imports;
- the student edition executes up to each exercise and every test cell fails on the stubs, naming
  the stub (one notebook in the quick run, every one under ``-m slow``);
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
check_softmax(my_softmax)
check_order("steps", answer)'''


def test_markers_give_each_blocks_todo_hint():
    assert editions.check_markers(SOLVED) == ["subtract the row maximum, exponentiate, divide by the row sum",
                                              'the "elu+1" feature map, written with torch.nn.functional']
    assert editions.check_markers("Why?\n\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION", "markdown") == \
        [editions.MARKDOWN_STUB]


def test_exercise_cell_splits_into_answer_and_graded_check_with_hidden_guards():
    answer, check, calls = editions.split_exercise(SOLVED)
    assert answer.endswith("### END SOLUTION") and "check_" not in answer
    assert check == 'check_softmax(my_softmax)\ncheck_order("steps", answer)'
    assert calls == [("check_softmax", "my_softmax"), ("check_order", "steps")]
    test = editions.graded_check(check, calls, editions._defined_functions(answer))
    ast.parse(test)
    visible, hidden = test.split(editions.HIDDEN_BEGIN)
    assert "with graded():" in visible and "    check_softmax(my_softmax)" in visible
    assert "guard(check_softmax, my_softmax)" in hidden and "steps" not in hidden  # quizzes have no guard
    assert hidden.strip().endswith(editions.HIDDEN_END)


def test_stub_is_nbgraders_and_the_todo_line_stays(tmp_path):
    md = SOURCES[0]
    student = nbformat.read(editions.STUDENT / f"{md.stem}.ipynb", as_version=4)
    answers = [c for c in student.cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert answers
    for cell in answers:
        lines = _text(cell.source).splitlines()
        stub = next(i for i, line in enumerate(lines) if editions.CODE_STUB in line)
        assert lines[stub - 1].strip().startswith(editions.TODO), lines
        assert lines[stub].strip() == editions.CODE_STUB  # indentation kept, the line is the stub itself
    config = (ROOT / "classroom" / "nbgrader_config.py").read_text(encoding="utf-8")
    assert repr(editions.CODE_STUB)[1:-1] in config or editions.CODE_STUB in config


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
        editions.check_markers(source)


def test_markdown_about_the_markers_is_rewritten_for_students():
    text = ("Each exercise asks for one function. In each exercise cell the worked solution sits between "
            "`### BEGIN SOLUTION` and\n`### END SOLUTION`, under a `# TODO:` line; the student edition "
            "replaces it with a stub. Write your own version in its place and re-run the cell. A quiz follows.")
    out = editions.student_text(text)
    assert "BEGIN SOLUTION" not in out and "worked solution" not in out
    assert out.startswith("Each exercise asks for one function. In each exercise cell, replace")
    assert out.endswith("A quiz follows.")
    with pytest.raises(editions.SolutionMarkerError):
        editions.student_text("see `### BEGIN SOLUTION` below")


def test_student_cells_drop_nbval_tags():
    cell = nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["nbval-check-output", "lab-path"]})
    editions._without_nbval_tags(cell)
    assert cell.metadata["tags"] == ["lab-path"]
    cell = nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["nbval-ignore-output"]})
    editions._without_nbval_tags(cell)
    assert "tags" not in cell.metadata
    nbval = pytest.importorskip("nbval.plugin")
    assert editions.NBVAL_TAGS <= set(nbval.metadata_tags)  # the tags nbval reads, spelt as nbval spells them


@pytest.mark.parametrize("md", SOURCES, ids=[p.name for p in SOURCES])
def test_student_edition_keeps_no_nbval_tags_but_every_other_tag(md):
    """The read-along's nbval tags go (no outputs to compare); its other tags stay on the same cells."""
    student = nbformat.read(editions.STUDENT / f"{md.stem}.ipynb", as_version=4)
    nbval = [(i, t) for i, c in enumerate(student.cells) for t in c.metadata.get("tags", []) if t in editions.NBVAL_TAGS]
    assert not nbval, f"{md.name}: nbval tags left in the student edition: {nbval[:3]}"
    source_tags = {tuple(sorted(set(c.metadata.get("tags", [])) - editions.NBVAL_TAGS))
                   for c in editions.read_source(md).cells} - {()}
    student_tags = {tuple(sorted(set(c.metadata.get("tags", [])) - {"lab-path", "homework", "launch-badges"}))
                    for c in student.cells} - {()}
    assert source_tags <= student_tags, f"{md.name}: tags lost in the student edition: {source_tags - student_tags}"


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
    student = nbformat.read(editions.STUDENT / f"{md.stem}.ipynb", as_version=4)  # nbgrader's release (checked below)
    text = "\n".join(_text(c.source) for c in student.cells)
    markers = [line for line in text.splitlines()
               if any(m in line for m in (editions.BEGIN, editions.END, editions.HIDDEN_BEGIN, "guard("))]
    assert not markers, f"{md.name}: solution markers or hidden tests left in the student edition: {markers[:3]}"
    assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code"), "student edition has outputs"
    inside = set(editions.solution_lines(source))
    outside = "\n".join(line for line in source.splitlines() if line.strip() not in inside)  # the given text
    leaks = [line for line in inside if line not in outside and line in text]
    assert not leaks, f"{md.name}: solution lines in the student edition: {leaks[:5]}"
    blocks = sum(line.strip() == editions.BEGIN for c in editions.read_source(md).cells
                 if c.cell_type == "code" for line in _text(c.source).splitlines())
    assert text.count(editions.CODE_STUB) == blocks, f"{md.name}: {blocks} solution blocks, stubs differ"
    graded = [c.metadata["nbgrader"] for c in student.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert all(m["locked"] and m["points"] > 0 for m in graded), f"{md.name}: a test cell is not locked or scores 0"


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


def test_notebook_badge_line_is_written_under_the_title_and_kept_current():
    path = "notebooks/01_softmax_attention.ipynb"
    line = editions.badges(path)
    text = "---\njupytext:\n  formats: ipynb,md:myst\n---\n\n# 01 · Title\n\n**You will:** x\n\n```{code-cell} ipython3\n# a\n```\n"
    with_line = editions.with_notebook_badges(text, path)
    assert with_line == text.replace("# 01 · Title\n", f"# 01 · Title\n\n{line}\n")
    assert editions.with_notebook_badges(with_line, path) == with_line  # idempotent
    old = with_line.replace("linattn-edu/linattn_edu", "someone/else")
    assert old != with_line and editions.with_notebook_badges(old, path) == with_line  # a moved repository
    with pytest.raises(ValueError, match="one launch-badge line"):
        editions.with_notebook_badges(with_line.replace(line, f"{line}\n\n{line}"), path)
    with pytest.raises(ValueError, match="title"):
        editions.with_notebook_badges("```{code-cell} ipython3\n# not a title\n```\n# 01 · Late\n", path)
    cell = f"# 01 · Title\n\n{line}\n\n**You will:** x"
    assert editions.without_notebook_badges(cell) == "# 01 · Title\n\n**You will:** x"
    assert editions.without_notebook_badges("# T\n\ntext") == "# T\n\ntext"


@pytest.mark.parametrize("md", SOURCES, ids=[p.name for p in SOURCES])
def test_editions_open_their_own_notebook_only(md):
    """The read-along's badge line (solutions in place) is not in the student edition; the instructor
    edition shows one set of badges, its own."""
    course = editions.repository()[0].removeprefix("https://github.com/")
    student = nbformat.read(editions.STUDENT / f"{md.stem}.ipynb", as_version=4)
    text = "\n".join(_text(c.source) for c in student.cells if c.cell_type == "markdown")
    assert f"{course}/" not in text, f"{md.name}: the student edition links to the course repository (solutions)"
    assert text.count("colab.research.google.com/github/") == 1 and text.count("mybinder.org/v2/") == 1
    instructor = editions.instructor_edition(md)
    text = "\n".join(_text(c.source) for c in instructor.cells if c.cell_type == "markdown")
    assert text.count("colab.research.google.com/github/") == 1 and text.count("mybinder.org/v2/") == 1
    assert all(link in text for link in editions.launch_links(f"notebooks/{md.stem}.ipynb").values())


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

    nb = nbformat.read(editions.STUDENT / f"{md.stem}.ipynb", as_version=4)
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
    first_answer = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("solution"))
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("nbgrader", {})
        errors = [o for o in cell.get("outputs", []) if o["output_type"] == "error"]
        text = "".join(_text(o.get("text", "")) for o in cell.get("outputs", []) if o["output_type"] == "stream")
        if i < first_answer:
            assert not errors, f"{md.name}, cell {i} failed before the first exercise: {errors[0]['evalue']}"
        elif meta.get("grade"):
            # A stub fails its test cell: the checker catches the NotImplementedError and names it, or a quiz
            # answer was never assigned because its cell raised the stub.
            assert errors, f"{md.name}, cell {i}: a test cell passed on the stubs"
            assert errors[0]["ename"] in ("ExerciseFailed", "NameError"), errors[0]
            if errors[0]["ename"] == "ExerciseFailed":
                assert "raised NotImplementedError: write your answer here" in text, text[:400]
        elif meta.get("solution") and not re.search(r"^def ", _text(cell.source), re.M):
            assert errors and errors[0]["ename"] == "NotImplementedError", f"{md.name}, cell {i}: stub did not raise"


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
