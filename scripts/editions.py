#!/usr/bin/env python
"""Build the student and instructor editions of the course notebooks, and the launch badges.

    .venv/bin/python scripts/editions.py            # build both editions, refresh badges and install lines
    .venv/bin/python scripts/editions.py --check    # exit 1 if anything committed is out of date

What it writes:

* ``editions/student/NN_topic.ipynb`` (committed, no outputs): nbgrader's release of the notebook, each
  solution replaced by a stub under its ``# TODO:`` line. It is committed so that a launch badge (Colab,
  Binder) and a class's JupyterHub can open it straight from the repository.
* ``build/editions/instructor/NN_topic.ipynb`` (not committed: it is ``notebooks/`` itself, executed,
  with the solutions in place and a badge cell on top): the answer key to hand to co-instructors.
* the launch badges (a ``<!-- launch-badges -->`` block in README.md, the line under the title of each
  read-along notebook ``notebooks/NN_topic.md``, and the first cell of each edition notebook) and the
  Colab install line of each notebook's first code cell, all from ONE repository URL:
  ``[tool.linattn_edu] repository`` (and ``branch``) in pyproject.toml. A changed ``.md`` is synced to
  its ``.ipynb`` by jupytext (markdown only: the stored outputs stay).

The source of each notebook is ``notebooks/NN_topic.md`` (MyST markdown, paired with the executed
``.ipynb`` by jupytext), the one source of truth. A solution block there looks like::

    def my_softmax(x):
        # TODO: subtract the row maximum, exponentiate, divide by the row sum
        ### BEGIN SOLUTION
        m = x.amax(dim=-1, keepdim=True)
        ...
        ### END SOLUTION

    check_stable_softmax(my_softmax)

The student edition is made by nbgrader itself: :func:`nbgrader_source` turns each exercise cell into
an nbgrader *autograded answer* cell (the function, ``solution: true``) and a locked *autograded test*
cell (``grade: true``, points) that runs the checker inside ``linattn_edu.exercises.graded()`` (a miss
raises) plus hidden tests (``### BEGIN HIDDEN TESTS``: ``guard(checker, your_fn)`` refuses an answer
that hands the computation off to the library); then ``nbgrader generate_assignment`` (configured by
``classroom/nbgrader_config.py``) replaces each block with its stub, removes the hidden tests and
outputs, and locks the test cells. ``--course DIR`` writes the same source notebooks into an nbgrader
course folder for a class (``classroom/README.md``).
"""
from __future__ import annotations

import argparse
import ast
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
STUDENT = ROOT / "editions" / "student"
INSTRUCTOR = ROOT / "build" / "editions" / "instructor"
README = ROOT / "README.md"

BEGIN, END, TODO = "### BEGIN SOLUTION", "### END SOLUTION", "# TODO:"
MARKDOWN_STUB = "*Write your answer here.*"
BADGES_START, BADGES_END = "<!-- launch-badges:start -->", "<!-- launch-badges:end -->"
INSTALL_LINE = re.compile(r'(%pip install -q "linattn-edu(?:\[[\w,]+\])? @ git\+)([^"]+)(")')
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
BINDER_BADGE = "https://mybinder.org/badge_logo.svg"


class SolutionMarkerError(ValueError):
    """A solution block that cannot be stripped (unclosed, nested, or without its # TODO hint)."""


# --------------------------------------------------------------------------- configuration


def repository() -> tuple[str, str]:
    """(repository URL, branch) from ``[tool.linattn_edu]`` in pyproject.toml: the one place to change."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["linattn_edu"]
    url = config["repository"].rstrip("/")
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise ValueError(f"[tool.linattn_edu] repository must be https://github.com/OWNER/NAME; got {url!r}")
    return url, config.get("branch", "main")


def student_repository() -> tuple[str, str]:
    """(URL, branch) of the students' repository: the published student edition, no solutions."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["linattn_edu"]
    url = config["student_repository"].rstrip("/")
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise ValueError(f"[tool.linattn_edu] student_repository must be https://github.com/OWNER/NAME; got {url!r}")
    return url, config.get("branch", "main")


def student_badges(name: str, *, images: bool = True) -> str:
    """Badges that open ``name`` (an NN_topic.ipynb) in the students' repository, where it sits at the root."""
    repo, branch = student_repository()
    return badges(name, images=images, repo=repo, branch=branch)


def launch_links(path: str, *, repo: str | None = None, branch: str | None = None) -> dict[str, str]:
    """Colab and Binder URLs that open ``path`` (relative to the repository root)."""
    if repo is None or branch is None:
        repo, branch = repository()
    slug = repo.removeprefix("https://github.com/")
    return {"Colab": f"https://colab.research.google.com/github/{slug}/blob/{branch}/{path}",
            "Binder": f"https://mybinder.org/v2/gh/{slug}/{branch}?labpath={path}"}


def badges(path: str, *, images: bool = True, **kw) -> str:
    """Markdown launch badges for ``path`` (text links when ``images`` is False, e.g. for an offline page)."""
    links = launch_links(path, **kw)
    if not images:
        return " · ".join(f"[Open in {name}]({url})" for name, url in links.items())
    return (f"[![Open in Colab]({COLAB_BADGE})]({links['Colab']}) "
            f"[![Launch Binder]({BINDER_BADGE})]({links['Binder']})")


#: The launch-badge line under a read-along notebook's title, as :func:`badges` writes it.
BADGE_LINE = re.compile(r"\[!\[Open in Colab\]\([^()\s]+\)\]\([^()\s]+\) \[!\[Launch Binder\]\([^()\s]+\)\]\([^()\s]+\)[ \t]*")
TITLE = re.compile(r"^# \S.*$", re.M)
CODE_CELL = re.compile(r"^```\{code-cell\}", re.M)


def with_notebook_badges(text: str, path: str) -> str:
    """``text`` (a notebook's MyST source) with the launch badges of ``path`` on the line under its title.

    An existing badge line is rewritten (the repository may have changed); without one, the line is put
    under the ``# title``, which must come before the first code cell.
    """
    line = badges(path)
    found = [m for m in re.finditer(rf"^{BADGE_LINE.pattern}$", text, re.M)]
    if len(found) > 1:
        raise ValueError(f"{path}: a notebook must have one launch-badge line; got {len(found)}")
    if found:
        return text[:found[0].start()] + line + text[found[0].end():]
    front = re.match(r"---\n.*?\n---\n", text, re.S)  # jupytext's YAML header
    start = front.end() if front else 0
    title = TITLE.search(text, start)
    first_code = CODE_CELL.search(text, start)
    if title is None or (first_code is not None and first_code.start() < title.start()):
        raise ValueError(f"{path}: the notebook must open with a '# title' line before its first code cell")
    return text[:title.end()] + "\n\n" + line + text[title.end():]


def without_notebook_badges(markdown: str) -> str:
    """``markdown`` without the read-along's launch-badge line (and the blank line after it)."""
    out, drop_blank = [], False
    for line in markdown.split("\n"):
        if BADGE_LINE.fullmatch(line):
            drop_blank = True
            continue
        if drop_blank and not line.strip():
            drop_blank = False
            continue
        drop_blank = False
        out.append(line)
    kept = "\n".join(out)
    return kept.rstrip("\n") if kept != markdown else markdown


# --------------------------------------------------------------------------- markers


def check_markers(source: str, cell_type: str = "code") -> list[str]:
    """The ``# TODO:`` hint of each solution block of ``source`` (in order); bad markers raise.

    Unclosed, nested or stray markers, and a code block without a ``# TODO: <what to write>`` line right
    above its ``### BEGIN SOLUTION``, raise :class:`SolutionMarkerError` (nbgrader would strip such a
    block without a word to the student about what to write).
    """
    lines, hints, i = source.splitlines(), [], 0
    while i < len(lines):
        stripped = lines[i].strip()
        if stripped == END:
            raise SolutionMarkerError(f"line {i + 1}: {END!r} without a {BEGIN!r} above it")
        if stripped != BEGIN:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() in (BEGIN, END)), None)
        if end is None or lines[end].strip() != END:
            raise SolutionMarkerError(f"line {i + 1}: {BEGIN!r} is not closed by {END!r} before the next block")
        if cell_type == "code":
            above = lines[i - 1].strip() if i else ""
            if not above.startswith(TODO) or not above[len(TODO):].strip():
                raise SolutionMarkerError(f"line {i + 1}: a solution block needs a '{TODO} <what to write>' "
                                          f"line right above {BEGIN!r}; found {above!r}")
            hints.append(above[len(TODO):].strip())
        else:
            hints.append(MARKDOWN_STUB)
        i = end + 1
    return hints


def solution_lines(source: str) -> list[str]:
    """The stripped, non-blank lines inside the solution blocks of ``source``."""
    found, inside = [], False
    for line in source.splitlines():
        stripped = line.strip()
        if stripped in (BEGIN, END):
            inside = stripped == BEGIN
        elif inside and stripped:
            found.append(stripped)
    return found


#: The cell tags nbval reads (nbval 0.11): which committed outputs ``pytest --nbval-lax`` compares.
NBVAL_TAGS = frozenset({"nbval-check-output", "nbval-ignore-output", "nbval-skip", "nbval-raises-exception",
                        "raises-exception"})


def _without_nbval_tags(cell: nbformat.NotebookNode) -> None:
    """Drop nbval's tags from ``cell`` (test directives for the committed outputs; a student edition has none)."""
    tags = [t for t in cell.metadata.get("tags", []) if t not in NBVAL_TAGS]
    if tags:
        cell.metadata["tags"] = tags
    else:
        cell.metadata.pop("tags", None)


# --------------------------------------------------------------------------- the nbgrader source notebook


#: nbgrader's cell metadata schema (nbgrader 0.9).
SCHEMA_VERSION = 3
#: Points of an autograded code exercise, and of a quiz or prediction (a string or list answer).
CODE_POINTS, QUIZ_POINTS = 2, 1
#: What nbgrader's ClearSolutions puts in place of a solution block (classroom/nbgrader_config.py sets it).
CODE_STUB = 'raise NotImplementedError("write your answer here: the # TODO line above says what")'
CHECK_LINE = re.compile(r"^(check_\w+)\(")
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
#: Lab-path / homework mark of an exercise, in its heading: "**Exercise 3 (lab path).**", "**Exercise 4 (homework).**"
#: (visible in every edition); the answer and test cells get the tag ``lab-path`` or ``homework``.
PATH_MARK = re.compile(r"\*\*Exercise \d+ \((?:[^)]*; )?(lab path|homework)\)\.\*\*")
EXERCISE_HEADING = re.compile(r"\*\*Exercise \d+")


def _nbgrader(cell, *, grade_id: str, solution: bool, grade: bool, points: int | None = None) -> None:
    meta = {"grade": grade, "grade_id": grade_id, "locked": not solution, "schema_version": SCHEMA_VERSION,
            "solution": solution, "task": False}
    if grade:
        meta["points"] = points
    cell.metadata["nbgrader"] = meta


def split_exercise(source: str) -> tuple[str, str | None, list[tuple[str, str]]]:
    """(answer part, check part or None, [(checker, first argument)]) of an exercise cell's source.

    The check part starts at the first top-level ``check_…(`` line after the last ``### END SOLUTION``.
    """
    lines = source.splitlines()
    last_end = max((i for i, line in enumerate(lines) if line.strip() == END), default=-1)
    start = next((i for i in range(last_end + 1, len(lines)) if CHECK_LINE.match(lines[i])), None)
    if start is None:
        return source, None, []
    answer, check = "\n".join(lines[:start]).rstrip(), "\n".join(lines[start:]).strip("\n")
    calls = []
    for node in ast.walk(ast.parse(check)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id.startswith("check_"):
            first = node.args[0] if node.args else None
            arg = first.id if isinstance(first, ast.Name) else (
                first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else "")
            calls.append((node.func.id, arg))
    return answer, check, calls


def _defined_functions(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


def graded_check(check: str, calls: list[tuple[str, str]], functions: set[str]) -> str:
    """The autograded test cell: the visible checks inside ``graded()`` and the hidden shortcut guards."""
    body = "\n".join("    " + line if line.strip() else "" for line in check.splitlines())
    guards = [f"    guard({checker}, {arg})" for checker, arg in calls if arg in functions]
    out = ["# Autograded: this cell scores your answer above (a ✗ is an error here, and 0 points).",
           "from linattn_edu.exercises import graded",
           "with graded():", body]
    if guards:
        out += [HIDDEN_BEGIN, "    from linattn_edu.exercises import guard", *guards, HIDDEN_END]
    return "\n".join(out)


_STUDENT_SENTENCES = [  # read-along prose about the markers, and what the student edition says instead
    (re.compile(r"In each exercise cell,? the worked solution\s+sits between[^.]*?\.(\s+Write your own[^.]*\.)?",
                re.S),
     "In each exercise cell, replace the line that raises `NotImplementedError` with your code (the "
     "`# TODO:` line above it says what to write); the locked cell under it checks your answer."),
]


def student_text(markdown: str) -> str:
    """Markdown for the student edition: sentences about the solution markers say what a student does."""
    for pattern, replacement in _STUDENT_SENTENCES:
        markdown = pattern.sub(replacement, markdown)
    if BEGIN in markdown:
        raise SolutionMarkerError(f"a markdown cell still mentions {BEGIN!r}: {markdown[:200]!r}")
    return markdown


def nbgrader_source(md: Path) -> nbformat.NotebookNode:
    """The nbgrader *source* notebook of ``notebooks/NN_topic.md`` (what ``generate_assignment`` reads).

    Each code cell with a solution block becomes an autograded answer cell (solution, its own
    ``grade_id``) and, when checkers follow the block, a locked autograded test cell (grade, points) that
    runs them inside :func:`linattn_edu.exercises.graded` plus the hidden shortcut guards. Other cells
    are copied; markdown about the markers is rewritten for students; nbval's cell tags are dropped (the
    student edition has no outputs to compare), and so is the read-along's launch badge line (the student
    edition's own badges open the student notebook, see :func:`_badge_cell`).
    """
    nb = read_source(md)
    cells, used, mark = [], set(), None
    for i, cell in enumerate(nb.cells):
        source = _text(cell.source)
        try:
            check_markers(source, cell.cell_type)
        except SolutionMarkerError as exc:
            raise SolutionMarkerError(f"{md.name}, cell {i}: {exc}") from None
        if cell.cell_type == "markdown":
            found = PATH_MARK.search(source)
            if found:
                mark = found.group(1).replace(" ", "-")
            elif EXERCISE_HEADING.search(source):
                mark = None
            cell.source = student_text(without_notebook_badges(source))
            cells.append(cell)
            continue
        if cell.cell_type != "code":
            cells.append(cell)
            continue
        _without_nbval_tags(cell)
        cell.outputs, cell.execution_count = [], None
        if not any(line.strip() == BEGIN for line in source.splitlines()):
            cells.append(cell)
            continue
        answer, check, calls = split_exercise(cell.source)
        functions = _defined_functions(answer)
        named = calls and calls[0][1] and (calls[0][1] in functions or calls[0][0] in ("check_order", "check_choice"))
        key = calls[0][1] if named else (calls[0][0].removeprefix("check_") if calls else f"cell{i}")
        while key in used:
            key += "_"
        used.add(key)
        cell.source = answer
        _nbgrader(cell, grade_id=f"answer_{key}", solution=True, grade=False)
        if mark:
            cell.metadata["tags"] = sorted(set(cell.metadata.get("tags", [])) | {mark})
        cells.append(cell)
        if check is not None:
            test = nbformat.v4.new_code_cell(graded_check(check, calls, functions))
            test.id = f"{cell.id}t"
            points = CODE_POINTS if any(arg in functions for _, arg in calls) else QUIZ_POINTS
            _nbgrader(test, grade_id=f"test_{key}", solution=False, grade=True, points=points)
            if mark:
                test.metadata["tags"] = [mark]
            cells.append(test)
    nb.cells = cells
    _clean_metadata(nb)
    rel = (STUDENT / f"{md.stem}.ipynb").relative_to(ROOT).as_posix()
    nb.cells.insert(0, _badge_cell(rel, STUDENT_NOTE))
    return nb


STUDENT_NOTE = ("*Student edition: write each exercise where a line raises `NotImplementedError` (the `# TODO:` "
                "line above it says what). The locked cell under each exercise checks it: ✓, or what is wrong "
                "and a hint. Exercises marked *lab path* are the 90-minute lab; *homework* ones come after.*")


def _text(src) -> str:
    return "".join(src) if isinstance(src, list) else src


def _clean_metadata(nb: nbformat.NotebookNode) -> None:
    """An edition notebook is a plain .ipynb: no jupytext pairing, a python3 kernelspec."""
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}


def _badge_cell(path: str, note: str) -> nbformat.NotebookNode:
    shown = student_badges(Path(path).name) if path.startswith("editions/student/") else badges(path)
    cell = nbformat.v4.new_markdown_cell(f"{shown}\n\n{note}")
    cell.id = "launch"
    cell.metadata["tags"] = ["launch-badges"]
    return cell


def read_source(md: Path) -> nbformat.NotebookNode:
    import jupytext

    nb = jupytext.read(md)
    for i, cell in enumerate(nb.cells):  # stable ids: a rebuild changes only what changed
        cell.id = f"c{i:02d}"
    return nb


# --------------------------------------------------------------------------- nbgrader: the real pipeline


NBGRADER_CONFIG = ROOT / "classroom" / "nbgrader_config.py"


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    """Run ``nbgrader <args>`` in the course folder ``course`` (its nbgrader_config.py applies)."""
    exe = Path(sys.executable).with_name("nbgrader")
    cmd = [str(exe) if exe.exists() else "nbgrader", *args]
    env = dict(os.environ)  # nbgrader runs `alembic` and the kernel from PATH: the venv's first
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    done = subprocess.run(cmd, cwd=course, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def write_course_source(course: Path, assignment: str, mds: list[Path]) -> Path:
    """``course/source/<assignment>/NN_topic.ipynb`` for each source, and the course's nbgrader_config.py."""
    folder = course / "source" / assignment
    folder.mkdir(parents=True, exist_ok=True)
    if not (course / "nbgrader_config.py").exists():
        shutil.copy(NBGRADER_CONFIG, course / "nbgrader_config.py")
    for md in mds:
        nbformat.write(nbgrader_source(md), folder / f"{md.stem}.ipynb")
    return folder


def student_editions(mds: list[Path]) -> dict[Path, str]:
    """The student edition of each source: what ``nbgrader generate_assignment`` releases (one run)."""
    with tempfile.TemporaryDirectory() as tmp:
        course = Path(tmp)
        write_course_source(course, "editions", mds)
        nbgrader(course, "generate_assignment", "editions", "--force", "--no-db")
        out = {}
        for md in mds:
            nb = nbformat.read(course / "release" / "editions" / f"{md.stem}.ipynb", as_version=4)
            out[STUDENT / f"{md.stem}.ipynb"] = _notebook_text(nb)
        return out


def student_edition(md: Path) -> nbformat.NotebookNode:
    """The student notebook for ``notebooks/NN_topic.md`` (nbgrader's release of its source notebook)."""
    return nbformat.reads(student_editions([md])[STUDENT / f"{md.stem}.ipynb"], as_version=4)


def instructor_edition(md: Path) -> nbformat.NotebookNode:
    """The instructor notebook: the executed ``notebooks/NN_topic.ipynb`` (solutions in place), badges on top."""
    nb = nbformat.read(md.with_suffix(".ipynb"), as_version=4)
    _clean_metadata(nb)
    for cell in nb.cells:  # the badge cell below replaces the read-along's badge line
        if cell.cell_type == "markdown":
            cell.source = without_notebook_badges(cell.source)
    rel = md.with_suffix(".ipynb").relative_to(ROOT).as_posix()
    nb.cells.insert(0, _badge_cell(rel, "*Instructor edition: worked solutions in place, every check run.*"))
    return nb


# --------------------------------------------------------------------------- README badges, install lines


def readme_badges() -> str:
    rows = ["| notebook | read-along (solutions in place) | student edition (exercises to write) |", "|---|---|---|"]
    for md in sources():
        rows.append(f"| `{md.stem}` | {badges(f'notebooks/{md.stem}.ipynb')} | "
                    f"{student_badges(f'{md.stem}.ipynb')} |")
    return "\n".join(rows)


def with_readme_badges(text: str) -> str:
    start, end = text.find(BADGES_START), text.find(BADGES_END)
    if start < 0 or end < start:
        raise ValueError(f"README.md needs a {BADGES_START} … {BADGES_END} block")
    return text[: start + len(BADGES_START)] + "\n" + readme_badges() + "\n" + text[end:]


def with_install_url(text: str) -> str:
    """``text`` with every Colab install line pointing at the configured repository."""
    url, _ = repository()
    return INSTALL_LINE.sub(lambda m: m.group(1) + url + m.group(3), text)


def sources() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.md"))


# --------------------------------------------------------------------------- command line


def _notebook_text(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def plan() -> dict[Path, str]:
    """Every committed file this script owns -> the text it should have."""
    files: dict[Path, str] = {}
    for md in sources():
        rel = md.with_suffix(".ipynb").relative_to(ROOT).as_posix()
        files[md] = with_notebook_badges(with_install_url(md.read_text(encoding="utf-8")), rel)
    files[README] = with_readme_badges(README.read_text(encoding="utf-8"))
    files.update(student_editions(sources()))
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a committed file is stale")
    parser.add_argument("--course", type=Path, metavar="DIR",
                        help="write an nbgrader course folder at DIR instead (source/NN_topic/ per notebook, "
                             "nbgrader_config.py); then run `nbgrader generate_assignment NN_topic` there")
    parser.add_argument("notebooks", nargs="*", help="with --course: notebook numbers (default: all), e.g. 01 02")
    args = parser.parse_args(argv)
    if args.course is not None:
        chosen = [md for md in sources() if not args.notebooks or md.name[:2] in args.notebooks]
        for md in chosen:
            write_course_source(args.course, md.stem, [md])
        print(f"course folder {args.course}: source/ holds {', '.join(md.stem for md in chosen)}; next, in it: "
              f"nbgrader generate_assignment <name>")
        return 0
    files = plan()
    stale = [p for p, text in files.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
    extra = sorted(set(STUDENT.glob("*.ipynb")) - set(files))
    if args.check:
        for p in stale + extra:
            print(f"out of date: {p.relative_to(ROOT)}")
        if stale or extra:
            print("run: .venv/bin/python scripts/editions.py")
        return 1 if stale or extra else 0
    STUDENT.mkdir(parents=True, exist_ok=True)
    for p in extra:
        p.unlink()
        print(f"removed {p.relative_to(ROOT)}")
    for p in stale:
        p.write_text(files[p], encoding="utf-8")
        print(f"wrote {p.relative_to(ROOT)}")
        if p.parent == NOTEBOOKS:  # an install line or badge line changed: keep the pair in step
            jupytext = Path(sys.executable).with_name("jupytext")
            subprocess.run([str(jupytext), "--sync", "--quiet", str(p)], check=True, cwd=ROOT)
    INSTRUCTOR.mkdir(parents=True, exist_ok=True)
    for md in sources():
        if md.with_suffix(".ipynb").exists():
            nbformat.write(instructor_edition(md), INSTRUCTOR / f"{md.stem}.ipynb")
    print(f"student edition: {STUDENT.relative_to(ROOT)}/ ({len(sources())} notebooks); "
          f"instructor edition: {INSTRUCTOR.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
