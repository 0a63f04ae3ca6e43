#!/usr/bin/env python
"""Build the student and instructor editions of the course notebooks, and the launch badges.

    .venv/bin/python scripts/editions.py            # build both editions, refresh badges and install lines
    .venv/bin/python scripts/editions.py --check    # exit 1 if anything committed is out of date

What it writes:

* ``editions/student/NN_topic.ipynb`` (committed, no outputs): every solution block of the source is
  replaced by a stub that raises ``NotImplementedError("<what to write>")``. It is committed so that a
  launch badge (Colab, Binder) and a class's JupyterHub can open it straight from the repository.
* ``build/editions/instructor/NN_topic.ipynb`` (not committed: it is ``notebooks/`` itself, executed,
  with the solutions in place and a badge cell on top): the answer key to hand to co-instructors.
* the launch badges (a ``<!-- launch-badges -->`` block in README.md and the first cell of each
  edition notebook) and the Colab install line of each notebook's first code cell, all from ONE
  repository URL: ``[tool.linattn_edu] repository`` (and ``branch``) in pyproject.toml.

The source of each notebook is ``notebooks/NN_topic.md`` (MyST markdown, paired with the executed
``.ipynb`` by jupytext). A solution block there looks like::

    # TODO: subtract the row maximum, exponentiate, divide by the row sum
    ### BEGIN SOLUTION
    m = x.amax(dim=-1, keepdim=True)
    ...
    ### END SOLUTION

and becomes, in the student edition (same indentation, the TODO line kept)::

    # TODO: subtract the row maximum, exponentiate, divide by the row sum
    raise NotImplementedError("subtract the row maximum, exponentiate, divide by the row sum")

In a markdown cell the block becomes "*Write your answer here.*". The markers are nbgrader's; nbgrader
itself is not used: its ClearSolutions stub is one fixed text for every exercise, and the stub here
carries each exercise's own hint.
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import subprocess
import sys
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


# --------------------------------------------------------------------------- solutions -> stubs


def strip_solutions(source: str, cell_type: str = "code") -> tuple[str, list[str]]:
    """Replace each ``### BEGIN SOLUTION`` … ``### END SOLUTION`` block; returns (new source, hints).

    Code: the block becomes ``raise NotImplementedError("<hint>")`` at the marker's indentation, the hint
    being the text after ``# TODO:`` on the line right above the block (required). Markdown: the block
    becomes :data:`MARKDOWN_STUB`. Unclosed, nested or stray markers raise :class:`SolutionMarkerError`.
    """
    lines, out, hints, i = source.splitlines(), [], [], 0
    while i < len(lines):
        line, stripped = lines[i], lines[i].strip()
        if stripped == END:
            raise SolutionMarkerError(f"line {i + 1}: {END!r} without a {BEGIN!r} above it")
        if stripped != BEGIN:
            out.append(line)
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() in (BEGIN, END)), None)
        if end is None or lines[end].strip() != END:
            raise SolutionMarkerError(f"line {i + 1}: {BEGIN!r} is not closed by {END!r} before the next block")
        indent = line[: len(line) - len(line.lstrip())]
        if cell_type == "code":
            above = out[-1].strip() if out else ""
            if not above.startswith(TODO) or not above[len(TODO):].strip():
                raise SolutionMarkerError(f"line {i + 1}: a solution block needs a '{TODO} <what to write>' "
                                          f"line right above {BEGIN!r}; found {above!r}")
            hint = above[len(TODO):].strip()
            out.append(f"{indent}raise NotImplementedError({json.dumps(hint, ensure_ascii=False)})")
            hints.append(hint)
        else:
            out.append(f"{indent}{MARKDOWN_STUB}")
            hints.append(MARKDOWN_STUB)
        i = end + 1
    return "\n".join(out), hints


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


def _without_nbval_comments(source: str) -> str:
    """Drop ``# NBVAL_…`` lines (test directives for the committed notebooks, noise for a student)."""
    kept = [line for line in source.splitlines() if not re.fullmatch(r"\s*# NBVAL_[A-Z_]+\s*", line)]
    return "\n".join(kept).strip("\n")


def _clean_metadata(nb: nbformat.NotebookNode) -> None:
    """An edition notebook is a plain .ipynb: no jupytext pairing, a python3 kernelspec."""
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}


def _badge_cell(path: str, note: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_markdown_cell(f"{badges(path)}\n\n{note}")
    cell.id = "launch"
    cell.metadata["tags"] = ["launch-badges"]
    return cell


def read_source(md: Path) -> nbformat.NotebookNode:
    import jupytext

    nb = jupytext.read(md)
    for i, cell in enumerate(nb.cells):  # stable ids: a rebuild changes only what changed
        cell.id = f"c{i:02d}"
    return nb


def student_edition(md: Path) -> nbformat.NotebookNode:
    """The student notebook for ``notebooks/NN_topic.md``: stubs for solutions, no outputs."""
    nb = read_source(md)
    for i, cell in enumerate(nb.cells):
        try:
            cell.source, _ = strip_solutions(cell.source, cell.cell_type)
        except SolutionMarkerError as exc:
            raise SolutionMarkerError(f"{md.name}, cell {i}: {exc}") from None
        if cell.cell_type == "code":
            cell.source = _without_nbval_comments(cell.source)
            cell.outputs, cell.execution_count = [], None
    _clean_metadata(nb)
    rel = (STUDENT / f"{md.stem}.ipynb").relative_to(ROOT).as_posix()
    nb.cells.insert(0, _badge_cell(rel, "*Student edition: each exercise raises `NotImplementedError` "
                                        "until you write it; the checker under it tells you when it is right.*"))
    return nb


def instructor_edition(md: Path) -> nbformat.NotebookNode:
    """The instructor notebook: the executed ``notebooks/NN_topic.ipynb`` (solutions in place), badges on top."""
    nb = nbformat.read(md.with_suffix(".ipynb"), as_version=4)
    _clean_metadata(nb)
    rel = md.with_suffix(".ipynb").relative_to(ROOT).as_posix()
    nb.cells.insert(0, _badge_cell(rel, "*Instructor edition: worked solutions in place, every check run.*"))
    return nb


# --------------------------------------------------------------------------- README badges, install lines


def readme_badges() -> str:
    rows = ["| notebook | read-along (solutions in place) | student edition (exercises to write) |", "|---|---|---|"]
    for md in sources():
        rows.append(f"| `{md.stem}` | {badges(f'notebooks/{md.stem}.ipynb')} | "
                    f"{badges((STUDENT / f'{md.stem}.ipynb').relative_to(ROOT).as_posix())} |")
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
        files[md] = with_install_url(md.read_text(encoding="utf-8"))
    files[README] = with_readme_badges(README.read_text(encoding="utf-8"))
    for md in sources():
        files[STUDENT / f"{md.stem}.ipynb"] = _notebook_text(student_edition(md))
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a committed file is stale")
    args = parser.parse_args(argv)
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
        if p.parent == NOTEBOOKS:  # an install line changed: keep the pair in step
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
