"""Every notebooks/*.ipynb is committed executed, clean and checkable by nbval.

nbval (``pytest --nbval-lax``) re-runs the notebooks and compares the cells tagged
``nbval-check-output`` (a cell tag, so a reader never sees it); these tests check the committed files
themselves, without a kernel:

- a python3 kernelspec;
- every non-empty code cell was executed, in order: execution counts 1, 2, …, n;
- no error outputs (and no traceback printed to stderr);
- a code cell whose last statement is an expression, or that prints at top level, has outputs
  (a cell that may legitimately show nothing says so with a ``# output optional`` comment);
- at least 3 cells tagged ``nbval-check-output``, each with outputs to compare;
- widget outputs only in cells tagged ``nbval-ignore-output`` (widget state is not reproducible);
- no ``# NBVAL_*`` comment line in any code cell (nbval reads the tags; a comment is noise to a reader);
- a launch badge (Colab, Binder, as in README.md) on the line under the title that opens the notebook
  itself (``scripts/editions.py`` writes it from the one repository URL in pyproject.toml);
- no absolute paths (/work, /root, /home, /tmp, /Users) or this machine's name in any output;
- each ``NN_topic.ipynb`` has its MyST text source ``NN_topic.md`` and the two agree (jupytext pairs
  them: same cells, types, sources and nbval tags);
- readable without a kernel: every plotly output carries an ``image/png`` beside its JSON, and no
  output is only a widget's text repr (``VBox(children=(…``): an explorer is stored as a snapshot PNG
  and the note "Run this cell to use the explorer" (``scripts/execute_notebooks.py`` does both).
"""
from __future__ import annotations

import ast
import difflib
import json
import re
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
SOURCES = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.md"))
PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_REPR = re.compile(r"^(VBox|HBox|Box|GridBox|Tab|Accordion|FigureWidget)\(")
EXPLORER_NOTE = "Run this cell to use the explorer"
CHECK, IGNORE = "nbval-check-output", "nbval-ignore-output"  # nbval cell tags
NBVAL_COMMENT = re.compile(r"^\s*#\s*(NBVAL_[A-Z_]+|PYTEST_VALIDATE_IGNORE_OUTPUT)\b", re.M)
OPTIONAL = "# output optional"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/(?:work|root|home|tmp|Users)/")


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code" and _source(c).strip()]


def _first_line(cell: dict) -> str:
    return _source(cell).strip().splitlines()[0].strip()


def _tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def _output_text(output: dict) -> str:
    """All text an output carries (stream text, every mime type, traceback), as one string."""
    parts = []
    if "text" in output:
        parts.append("".join(output["text"]) if isinstance(output["text"], list) else output["text"])
    for value in output.get("data", {}).values():
        parts.append(value if isinstance(value, str) else json.dumps(value))
    parts.extend(output.get("traceback", []))
    return "\n".join(parts)


def _python_only(source: str) -> str:
    """Drop IPython magics and shell escapes (lines starting with % or !) so ast can parse the rest."""
    lines = []
    for line in source.splitlines():
        stripped = line.lstrip()
        lines.append(line[: len(line) - len(stripped)] + "pass" if stripped.startswith(("%", "!")) else line)
    return "\n".join(lines)


def should_have_output(source: str) -> bool:
    """True when a cell ends in a displayed expression or calls print() at top level."""
    if OPTIONAL in source:
        return False
    try:
        tree = ast.parse(_python_only(source))
    except SyntaxError:
        return False
    if not tree.body:
        return False
    last = tree.body[-1]
    if isinstance(last, ast.Expr) and not source.rstrip().endswith(";"):
        return True
    top_level = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    return any(isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
               for stmt in top_level for node in ast.walk(stmt))


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOK_DIR}"


def test_every_notebook_has_its_text_source_and_back():
    """NN_topic.ipynb <-> NN_topic.md, both ways (jupytext.toml: formats "ipynb,md:myst")."""
    ipynb = {p.stem for p in NOTEBOOKS}
    md = {p.stem for p in SOURCES}
    assert ipynb == md, (f"unpaired notebooks: .ipynb without .md {sorted(ipynb - md)}, "
                         f".md without .ipynb {sorted(md - ipynb)}; pair them with "
                         "`jupytext --sync notebooks/NN_topic.md` (or scripts/execute_notebooks.py NN)")


_NBVAL_TAGS = ("nbval-ignore-output", "nbval-check-output", "nbval-skip", "nbval-raises-exception", "raises-exception")


def _cell_signature(cell) -> tuple:
    """What must agree between a pair: the cell's type, source and the tags nbval/editions read."""
    tags = tuple(t for t in cell.get("metadata", {}).get("tags", []) if t in _NBVAL_TAGS or t.startswith("solution"))
    return cell["cell_type"], _source(cell).rstrip("\n"), tags


@pytest.mark.parametrize("source", SOURCES, ids=[p.name for p in SOURCES])
def test_text_source_and_notebook_agree(source):
    jupytext = pytest.importorskip("jupytext")
    ipynb = source.with_suffix(".ipynb")
    if not ipynb.exists():
        pytest.fail(f"{source.name} has no {ipynb.name}: run `jupytext --sync notebooks/{source.name}`")
    from_md = [_cell_signature(c) for c in jupytext.read(source).cells]
    from_ipynb = [_cell_signature(c) for c in jupytext.read(ipynb).cells]
    if from_md == from_ipynb:
        return
    for i, (a, b) in enumerate(zip(from_md, from_ipynb)):
        if a != b:
            diff = "\n".join(list(difflib.unified_diff(b[1].splitlines(), a[1].splitlines(), ".ipynb", ".md",
                                                        lineterm="", n=0))[:12])
            pytest.fail(f"{source.name} and {ipynb.name} differ at cell {i} ({a[0]} vs {b[0]}, tags {a[2]} vs "
                        f"{b[2]}):\n{diff}\nEdit one side and run "
                        f"`jupytext --sync notebooks/{source.name}` (newest wins), then re-execute: "
                        f"`.venv/bin/python scripts/execute_notebooks.py {source.name[:2]}`")
    pytest.fail(f"{source.name} has {len(from_md)} cells, {ipynb.name} has {len(from_ipynb)}: "
                f"run `jupytext --sync notebooks/{source.name}`")


def test_cell_signature_sees_a_changed_source_type_or_tag():
    base = {"cell_type": "code", "source": "x = 1\n", "metadata": {"tags": ["nbval-ignore-output", "other"]}}
    same = {"cell_type": "code", "source": "x = 1", "metadata": {"tags": ["nbval-ignore-output"]}}
    assert _cell_signature(base) == _cell_signature(same)
    assert _cell_signature(base) != _cell_signature({**same, "source": "x = 2"})
    assert _cell_signature(base) != _cell_signature({**same, "cell_type": "markdown"})
    assert _cell_signature(base) != _cell_signature({**same, "metadata": {}})


@pytest.fixture(params=NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def notebook(request) -> tuple[str, dict]:
    return request.param.name, _load(request.param)


def test_python3_kernelspec(notebook):
    name, nb = notebook
    spec = nb.get("metadata", {}).get("kernelspec", {})
    assert spec.get("name") == "python3" and spec.get("language", "python") == "python", \
        f"{name}: expected a python3 kernelspec; got {spec}"


def test_executed_in_order(notebook):
    name, nb = notebook
    counts = [c.get("execution_count") for c in _code_cells(nb)]
    assert counts == list(range(1, len(counts) + 1)), \
        f"{name}: execution counts must be 1..{len(counts)} (run all, top to bottom); got {counts}"


def test_no_errors(notebook):
    name, nb = notebook
    for i, cell in enumerate(_code_cells(nb)):
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", \
                f"{name}, code cell {i} ({_first_line(cell)!r}): {out.get('ename')}: {out.get('evalue')}"
            if out["output_type"] == "stream" and out.get("name") == "stderr":
                assert "Traceback" not in _output_text(out), f"{name}, code cell {i}: traceback on stderr"


def test_cells_that_should_show_something_do(notebook):
    name, nb = notebook
    missing = [f"cell {i}: {_first_line(c)!r}" for i, c in enumerate(_code_cells(nb))
               if should_have_output(_source(c)) and not c.get("outputs")]
    assert not missing, f"{name}: code cells without outputs (not executed, or cleared): {missing}"


def test_nbval_checked_cells(notebook):
    name, nb = notebook
    checked = [c for c in _code_cells(nb) if CHECK in _tags(c)]
    assert len(checked) >= 3, f"{name}: expected >= 3 cells tagged {CHECK!r}; got {len(checked)}"
    empty = [_first_line(c) for c in checked if not c.get("outputs")]
    assert not empty, f"{name}: cells tagged {CHECK} with nothing to compare: {empty}"
    both = [_first_line(c) for c in checked if IGNORE in _tags(c)]
    assert not both, f"{name}: cells tagged both {CHECK} and {IGNORE}: {both}"


def test_widget_cells_are_ignored_by_nbval(notebook):
    name, nb = notebook
    for i, cell in enumerate(_code_cells(nb)):
        if any(WIDGET_MIME in out.get("data", {}) for out in cell.get("outputs", [])):
            assert IGNORE in _tags(cell), \
                f"{name}, code cell {i} ({_first_line(cell)!r}): a widget output needs the cell tag {IGNORE!r}"


def test_nbval_tags_are_ones_nbval_reads(notebook):
    """A misspelt tag (``nbval-check-outputs``) would leave a cell silently unchecked."""
    name, nb = notebook
    bad = [f"code cell {i}: {t!r}" for i, c in enumerate(_code_cells(nb)) for t in _tags(c)
           if (t.startswith("nbval") or "exception" in t) and t not in _NBVAL_TAGS]
    assert not bad, f"{name}: tags nbval does not read: {bad}; it reads {', '.join(_NBVAL_TAGS)}"


def test_nbval_reads_these_tags():
    plugin = pytest.importorskip("nbval.plugin")
    assert set(_NBVAL_TAGS) <= set(plugin.metadata_tags), sorted(plugin.metadata_tags)
    assert plugin.metadata_tags[CHECK] == "check" and plugin.metadata_tags[IGNORE] == ("check", False)


def test_no_nbval_comments_in_code(notebook):
    """nbval reads cell tags; a ``# NBVAL_*`` line would be the first thing a reader sees in the cell."""
    name, nb = notebook
    found = [f"code cell {i}: {m.group(0).strip()!r}" for i, c in enumerate(_code_cells(nb))
             for m in NBVAL_COMMENT.finditer(_source(c))]
    assert not found, (f"{name}: {found[:5]}; tag the cell instead (`:tags: [nbval-check-output]` under the "
                       "```{code-cell} line of the .md source)")


def test_no_absolute_paths_or_machine_name_in_outputs(notebook):
    name, nb = notebook
    host = socket.gethostname().split(".")[0]
    host_re = re.compile(rf"\b{re.escape(host)}\b") if len(host) >= 4 else None
    for i, cell in enumerate(_code_cells(nb)):
        for out in cell.get("outputs", []):
            text = _output_text(out)
            match = ABSOLUTE_PATH.search(text)
            if match:
                context = text[max(0, match.start() - 40):match.end() + 40]
                pytest.fail(f"{name}, code cell {i}: absolute path in output: …{context}…")
            assert not (host_re and host_re.search(text)), f"{name}, code cell {i}: machine name {host!r} in output"


def test_plotly_outputs_carry_a_png(notebook):
    """GitHub and nbviewer cannot run plotly.js from a notebook: each figure also needs its PNG."""
    name, nb = notebook
    missing = [f"code cell {i} ({_first_line(c)!r})" for i, c in enumerate(_code_cells(nb))
               for out in c.get("outputs", []) if PLOTLY_MIME in out.get("data", {})
               and "image/png" not in out["data"]]
    assert not missing, (f"{name}: plotly outputs without image/png: {missing}; "
                         f"re-execute with scripts/execute_notebooks.py {name[:2]}")


def _shows_only_a_widget_repr(output: dict) -> bool:
    data = output.get("data", {})
    text = data.get("text/plain", "")
    text = "".join(text) if isinstance(text, list) else text
    return set(data) <= {"text/plain"} and bool(WIDGET_REPR.match(text.strip()))


def test_no_output_is_only_a_widget_repr(notebook):
    """An explorer is stored as its snapshot (PNG) and the note to run the cell, not ``VBox(children=(…``."""
    name, nb = notebook
    for i, cell in enumerate(_code_cells(nb)):
        outputs = cell.get("outputs", [])
        bad = [out for out in outputs if _shows_only_a_widget_repr(out) or WIDGET_MIME in out.get("data", {})]
        assert not bad, (f"{name}, code cell {i} ({_first_line(cell)!r}): a widget view/repr is stored; "
                         f"re-execute with scripts/execute_notebooks.py {name[:2]}")
        notes = [j for j, out in enumerate(outputs) if EXPLORER_NOTE in _output_text(out)]
        for j in notes:
            assert any("image/png" in out.get("data", {}) for out in outputs[j:]), \
                f"{name}, code cell {i}: the explorer note has no snapshot image after it"


def test_explorer_cells_show_their_snapshot(notebook):
    """A cell whose last line builds an explorer stores the note and a PNG snapshot."""
    name, nb = notebook
    for i, cell in enumerate(_code_cells(nb)):
        last = _source(cell).strip().splitlines()[-1]
        if not re.match(r"^\w*(explorer|stepper|calculator)\w*\(", last):
            continue
        text = "\n".join(_output_text(out) for out in cell.get("outputs", []))
        assert EXPLORER_NOTE in text, f"{name}, code cell {i} ({last!r}): no explorer note stored"
        assert any("image/png" in out.get("data", {}) for out in cell.get("outputs", [])), \
            f"{name}, code cell {i} ({last!r}): no snapshot image stored"


def _repository() -> tuple[str, str]:
    """(owner/name, branch) of ``[tool.linattn_edu]`` in pyproject.toml, read here without scripts/editions.py."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["linattn_edu"]
    return config["repository"].rstrip("/").removeprefix("https://github.com/"), config.get("branch", "main")


LAUNCH_LINK = re.compile(r"\[!\[([^\]]*)\]\(([^()\s]+)\)\]\(([^()\s]+)\)")


def test_launch_badge_under_the_title_opens_this_notebook(notebook):
    """The line under the title: Colab and Binder badges (as in README.md) that open this very notebook."""
    name, nb = notebook
    slug, branch = _repository()
    path = f"notebooks/{name}"
    expected = [("Open in Colab", "https://colab.research.google.com/assets/colab-badge.svg",
                 f"https://colab.research.google.com/github/{slug}/blob/{branch}/{path}"),
                ("Launch Binder", "https://mybinder.org/badge_logo.svg",
                 f"https://mybinder.org/v2/gh/{slug}/{branch}?labpath={path}")]
    first = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    lines = [line for line in _source(first).split("\n") if line.strip()]
    assert lines[0].startswith("# "), f"{name}: the first markdown cell must open with the title; got {lines[0]!r}"
    assert len(lines) > 1 and LAUNCH_LINK.findall(lines[1]) == expected, (
        f"{name}: the line under the title must be the launch badges of {path} "
        f"(run `.venv/bin/python scripts/editions.py`); got {lines[1] if len(lines) > 1 else None!r}")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for alt, image, link in expected:  # the README's badges, same images, same links
        assert f"[![{alt}]({image})]({link})" in readme, f"README.md has no {alt} badge for {path}"
    elsewhere = [link for c in nb["cells"] if c["cell_type"] == "markdown"
                 for link in re.findall(r"https://(?:colab\.research\.google\.com/github|mybinder\.org/v2)/[^)\s]+",
                                        _source(c))
                 if link not in {e[2] for e in expected}]
    assert not elsewhere, f"{name}: launch links to another notebook: {elsewhere}"


def test_widget_repr_rule():
    assert _shows_only_a_widget_repr({"data": {"text/plain": "VBox(children=(HBox(children=(IntSlider(…"}})
    assert not _shows_only_a_widget_repr({"data": {"text/plain": "VBox(…", "image/png": "iVBOR"}})
    assert not _shows_only_a_widget_repr({"data": {"text/plain": "AttentionMapExplorer(n=24)"}})


# --------------------------------------------------------------------------- the checker's own rules


@pytest.mark.parametrize("source, expected", [
    ("x = 1", False),
    ("x = 1\nx", True),
    ("x;", False),
    ("print(1)", True),
    ("def f():\n    print(1)", False),
    ("for i in range(2):\n    print(i)", True),
    ("import sys\nif 'google.colab' in sys.modules:\n    %pip install x\nimport torch", False),
    ("%timeit f()", False),
    ("show_question('a')", True),
    ("# output optional\nfig if fig else None", False),
])
def test_should_have_output_rule(source, expected):
    assert should_have_output(source) is expected


def test_absolute_path_pattern():
    assert ABSOLUTE_PATH.search("File /work/main/x.py, line 3")
    assert ABSOLUTE_PATH.search("'/root/.cache'")
    assert not ABSOLUTE_PATH.search("relative notebooks/work/x and https://example.org/work/x")
