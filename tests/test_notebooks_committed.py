"""Every notebooks/*.ipynb is committed executed, clean and checkable by nbval.

nbval (``pytest --nbval-lax``) re-runs the notebooks and compares the cells marked
``# NBVAL_CHECK_OUTPUT``; these tests check the committed files themselves, without a kernel:

- a python3 kernelspec;
- every non-empty code cell was executed, in order: execution counts 1, 2, …, n;
- no error outputs (and no traceback printed to stderr);
- a code cell whose last statement is an expression, or that prints at top level, has outputs
  (a cell that may legitimately show nothing says so with a ``# output optional`` comment);
- at least 3 ``# NBVAL_CHECK_OUTPUT`` cells, each with outputs to compare;
- widget outputs only in cells marked ``# NBVAL_IGNORE_OUTPUT`` (widget state is not reproducible);
- no absolute paths (/work, /root, /home, /tmp, /Users) or this machine's name in any output.
"""
from __future__ import annotations

import ast
import json
import re
import socket
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CHECK, IGNORE = "# NBVAL_CHECK_OUTPUT", "# NBVAL_IGNORE_OUTPUT"
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
    checked = [c for c in _code_cells(nb) if _first_line(c) == CHECK]
    assert len(checked) >= 3, f"{name}: expected >= 3 cells starting with {CHECK!r}; got {len(checked)}"
    empty = [_source(c).splitlines()[1:2] for c in checked if not c.get("outputs")]
    assert not empty, f"{name}: {CHECK} cells with nothing to compare: {empty}"


def test_widget_cells_are_ignored_by_nbval(notebook):
    name, nb = notebook
    for i, cell in enumerate(_code_cells(nb)):
        if any(WIDGET_MIME in out.get("data", {}) for out in cell.get("outputs", [])):
            assert _first_line(cell) == IGNORE, \
                f"{name}, code cell {i}: a widget output needs {IGNORE!r} as the first line"


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
