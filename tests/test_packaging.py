"""Packaging checks: pyproject.toml, constraints.txt, environment.yml, README quick start, .ci/run.

These files describe one install several ways; the tests keep them saying the same thing.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the [test] extra installs tomli
    import tomli as tomllib

yaml = pytest.importorskip("yaml")

REPO = Path(__file__).resolve().parents[1]
DIST_NAME = "linattn-edu"

# Every pip requirement of the project -> its conda-forge package in environment.yml.
# None means: not on conda-forge under a name we trust; listed in environment.yml's `pip:` section.
PIP_TO_CONDA = {
    "torch": "pytorch-cpu",
    "numpy": "numpy",
    "plotly": "plotly",
    "ipywidgets": "ipywidgets",
    "anywidget": "anywidget",
    "jupyterlab": "jupyterlab",
    "tqdm": "tqdm",
    "kaleido": "python-kaleido",
    "jupytext": "jupytext",
    "nbclient": "nbclient",
    "nbconvert": "nbconvert",
    "pytest": "pytest",
    "hypothesis": "hypothesis",
    "nbval": "nbval",
    "nbformat": "nbformat",
    "ipykernel": "ipykernel",
    "pyyaml": "pyyaml",
    "nbgrader": "nbgrader",
    "sphinx": "sphinx",
    "sphinx-book-theme": "sphinx-book-theme",
    "pydata-sphinx-theme": "pydata-sphinx-theme",
    "myst-nb": "myst-nb",
    "playwright": None,
    "tomli": None,  # only for Python < 3.11; environment.yml pins python 3.11
}
CONDA_ONLY = {"python", "pip"}  # conda packages with no pip requirement behind them
GPU_ONLY_EXTRAS = {"fla"}  # extras for a CUDA machine: pinned in constraints.txt, not in the CPU conda env

CORE_MODULES = ("_checks", "_blocks", "_state", "softmax", "kernel", "feature_maps", "linear", "chunked", "window",
                "gated", "delta", "mesa", "transitions", "forgetting", "capacity")
# Top-level names the core must not need: the blocker refuses them in a fresh interpreter.
BLOCKED_IMPORTS = ("plotly", "ipywidgets", "anywidget", "IPython", "ipykernel", "comm",
                   "traitlets", "tqdm", "kaleido", "jupyter*")


# ---------------------------------------------------------------------------------------------
# helpers

def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _environment() -> dict:
    return yaml.safe_load((REPO / "environment.yml").read_text(encoding="utf-8"))


def _lower_bound(specifier) -> Version | None:
    """The version in the specifier's `>=` clause (or `==`), or None if it has none."""
    bounds = [Version(s.version) for s in specifier if s.operator in (">=", "==", "~=")]
    return max(bounds) if bounds else None


def _project_requirements(*, gpu_extras: bool = False) -> dict[str, Requirement]:
    """name -> Requirement over core deps and every extra (self-references to [extras] left out).

    The GPU-only extras are left out unless ``gpu_extras`` (the CPU conda env does not carry them).
    """
    project = _pyproject()["project"]
    reqs: dict[str, Requirement] = {}
    extras = [deps for name, deps in project["optional-dependencies"].items()
              if gpu_extras or name not in GPU_ONLY_EXTRAS]
    lists = [project["dependencies"], *extras]
    for line in (item for group in lists for item in group):
        req = Requirement(line)
        name = canonicalize_name(req.name)
        if name == DIST_NAME:
            continue
        if name in reqs:
            assert str(reqs[name].specifier) == str(req.specifier), (
                f"{name} has two different bounds in pyproject.toml: "
                f"{reqs[name].specifier} and {req.specifier}"
            )
        reqs[name] = req
    return reqs


def _conda_requirements() -> tuple[dict[str, str], list[str]]:
    """(conda name -> version spec string, pip-section lines) from environment.yml."""
    conda: dict[str, str] = {}
    pip_lines: list[str] = []
    for dep in _environment()["dependencies"]:
        if isinstance(dep, dict):
            pip_lines.extend(dep["pip"])
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(.*)", dep.strip())
        assert match, f"cannot parse conda dependency {dep!r}"
        conda[match.group(1).lower()] = match.group(2).strip()
    return conda, pip_lines


def _constraints() -> dict[str, str]:
    """name -> pinned version from constraints.txt (every non-comment line must be `name==version`)."""
    pins: dict[str, str] = {}
    for raw in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        assert match, f"constraints.txt line is not an exact pin `name==version`: {raw!r}"
        pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def _quick_start_lines() -> list[str]:
    """The lines of the first fenced code block under the README's '## Quick start' heading."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Quick start\s*$(.*?)(?=^## )", readme, re.M | re.S)
    assert section, "README.md has no '## Quick start' section"
    block = re.search(r"^```[a-z]*\n(.*?)^```", section.group(1), re.M | re.S)
    assert block, "README.md's Quick start has no fenced code block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def _ci_test_line() -> str:
    """The line after the 'README quick start, line 2' marker comment in .ci/run."""
    lines = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if line.startswith("# README quick start, line 2"):
            return lines[i + 1]
    raise AssertionError(".ci/run has no '# README quick start, line 2' marker line")


# ---------------------------------------------------------------------------------------------
# pyproject.toml

def test_core_dependencies_are_torch_and_numpy_only():
    deps = {canonicalize_name(Requirement(d).name): Requirement(d) for d in _pyproject()["project"]["dependencies"]}
    assert set(deps) == {"torch", "numpy"}
    assert _lower_bound(deps["torch"].specifier) == Version("2.1")
    assert _lower_bound(deps["numpy"].specifier) == Version("1.24")


def test_extras_hold_what_each_use_needs():
    extras = _pyproject()["project"]["optional-dependencies"]
    names = {k: {canonicalize_name(Requirement(r).name) for r in v} for k, v in extras.items()}
    assert {"plotly", "ipywidgets"} <= names["viz"]
    assert {"jupyterlab", "ipywidgets", "plotly", "tqdm", "kaleido"} <= names["notebooks"]
    assert {"tqdm"} <= names["bench"]
    assert {"pytest", "hypothesis", "nbval", "playwright", "pyyaml", "nbformat"} <= names["test"]
    for umbrella in ("all", "dev"):
        (req,) = [Requirement(r) for r in extras[umbrella]]
        assert canonicalize_name(req.name) == DIST_NAME
        assert req.extras == {"viz", "notebooks", "bench", "test"}, f"[{umbrella}] must pull every extra"
    jupyterlab = next(Requirement(r) for r in extras["notebooks"] if r.startswith("jupyterlab"))
    assert _lower_bound(jupyterlab.specifier) == Version("4")


def test_every_requirement_has_a_lower_bound():
    for name, req in _project_requirements().items():
        assert _lower_bound(req.specifier) is not None, f"{name} in pyproject.toml needs a >= lower bound"


def test_packages_found_are_linattn_edu_and_explorers():
    setuptools = pytest.importorskip("setuptools")
    find = _pyproject()["tool"]["setuptools"]["packages"]["find"]
    found = set(setuptools.find_packages(where=str(REPO), include=find["include"]))
    assert {"linattn_edu", "linattn_edu.explorers"} <= found, f"found {sorted(found)}"
    assert all(p == "linattn_edu" or p.startswith("linattn_edu.") for p in found)


def test_pytest_config_declares_markers_and_paths():
    config = _pyproject()["tool"]["pytest"]["ini_options"]
    assert config["testpaths"] == ["tests", "notebooks"]
    declared = {m.split(":", 1)[0] for m in config["markers"]}
    assert declared == {"cuda", "browser", "slow"}
    assert "--strict-markers" in config["addopts"]


def test_version_matches_installed_metadata_and_source():
    init = (REPO / "linattn_edu" / "__init__.py").read_text(encoding="utf-8")
    assigned = [
        node.value.value
        for node in ast.parse(init).body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets)
        and isinstance(node.value, ast.Constant)
    ]
    assert len(assigned) == 1, "linattn_edu/__init__.py must assign __version__ = '<literal>' once"
    import linattn_edu

    assert linattn_edu.__version__ == assigned[0]
    Version(assigned[0])  # a valid PEP 440 version
    try:
        installed = metadata.version(DIST_NAME)
    except metadata.PackageNotFoundError:
        pytest.fail(f"{DIST_NAME} is not installed: run `pip install -e .` (README quick start)")
    assert installed == linattn_edu.__version__, (
        f"installed metadata says {installed}, linattn_edu.__version__ is {linattn_edu.__version__}: "
        "reinstall with `pip install -e .`"
    )


# ---------------------------------------------------------------------------------------------
# the core imports with torch + numpy only

def test_core_imports_without_viz_or_jupyter_packages():
    modules = [f"linattn_edu.{m}" for m in CORE_MODULES]
    script = textwrap.dedent(
        f"""
        import fnmatch, importlib, sys

        BLOCKED = {BLOCKED_IMPORTS!r}

        class Blocker:
            def find_spec(self, name, path=None, target=None):
                top = name.partition(".")[0]
                if any(fnmatch.fnmatchcase(top, pattern) for pattern in BLOCKED):
                    raise ImportError(f"blocked for this test: {{name}}")
                return None

        sys.meta_path.insert(0, Blocker())
        import linattn_edu
        for name in {modules!r}:
            importlib.import_module(name)
        leaked = sorted(m for m in sys.modules
                        if any(fnmatch.fnmatchcase(m.partition(".")[0], p) for p in BLOCKED))
        assert not leaked, leaked
        print("ok", linattn_edu.__version__)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"core import failed without viz/jupyter packages:\n{result.stderr[-3000:]}"
    assert result.stdout.startswith("ok ")


# ---------------------------------------------------------------------------------------------
# constraints.txt

def test_constraints_pin_every_requirement_within_its_bounds():
    pins = _constraints()
    assert DIST_NAME not in pins, "constraints.txt must not pin the project itself"
    assert pins.get("torch") == "2.13.0", "constraints.txt must pin torch==2.13.0 (CPU wheel on disk)"
    for name, req in _project_requirements(gpu_extras=True).items():
        if req.marker is not None and not req.marker.evaluate():
            continue
        assert name in pins, f"{name} (pyproject.toml) has no pin in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside pyproject's {req.specifier}"
        )


def test_constraints_have_no_local_version_labels():
    for name, version in _constraints().items():
        assert "+" not in version, f"{name}=={version}: drop the local label (+cpu) so the pin matches any build"


# ---------------------------------------------------------------------------------------------
# environment.yml

def test_environment_yml_matches_pyproject():
    env = _environment()
    assert env["name"] == "linattn-edu"
    assert env["channels"] == ["conda-forge"]
    conda, pip_lines = _conda_requirements()
    assert conda.get("python", "").startswith("=3.")
    python = conda["python"].lstrip("=")
    requirements = _project_requirements()
    assert set(requirements) == set(PIP_TO_CONDA), (
        "update PIP_TO_CONDA for pyproject changes: "
        f"new {sorted(set(requirements) - set(PIP_TO_CONDA))}, gone {sorted(set(PIP_TO_CONDA) - set(requirements))}"
    )
    pip_section = {canonicalize_name(Requirement(line).name): Requirement(line) for line in pip_lines}
    expected_conda = set(CONDA_ONLY)
    for name, req in requirements.items():
        if req.marker is not None and not req.marker.evaluate({"python_version": python, "python_full_version": python + ".0"}):
            continue
        want = _lower_bound(req.specifier)
        conda_name = PIP_TO_CONDA[name]
        if conda_name is None:
            assert name in pip_section, f"{name} must be in environment.yml's pip: section"
            assert _lower_bound(pip_section[name].specifier) == want, f"{name}: pip bound differs"
            continue
        expected_conda.add(conda_name)
        assert conda_name in conda, f"{name} -> conda-forge {conda_name} missing from environment.yml"
        spec = conda[conda_name]
        match = re.fullmatch(r">=\s*([0-9][0-9A-Za-z.]*)", spec)
        assert match and Version(match.group(1)) == want, (
            f"environment.yml has {conda_name}{spec}, pyproject.toml says {name}>={want}"
        )
    assert set(conda) == expected_conda, f"unexpected conda packages: {sorted(set(conda) - expected_conda)}"
    assert set(pip_section) <= {n for n, c in PIP_TO_CONDA.items() if c is None}


def test_environment_yml_python_is_allowed_by_requires_python():
    conda, _ = _conda_requirements()
    python = conda["python"].lstrip("=")
    requires = Requirement(f"python{_pyproject()['project']['requires-python']}").specifier
    assert requires.contains(python)


# ---------------------------------------------------------------------------------------------
# README quick start, .ci/run, JupyterLab settings, .gitignore

def test_readme_quick_start_is_two_lines():
    lines = _quick_start_lines()
    assert len(lines) == 2, f"README quick start must be exactly two lines, found {len(lines)}: {lines}"


def test_readme_line_1_opens_notebooks_in_jupyterlab_safely():
    line = _quick_start_lines()[0]
    assert "-c constraints.txt" in line
    assert "jupyter lab" in line and " notebooks" in line
    assert "--ip=127.0.0.1" in line
    assert not re.search(r"token\s*=|--no-token|password\s*=", line, re.I), "never disable the token"
    assert line.count("--allow-root") == 1
    assert '$( [ "$(id -u)" = 0 ] && echo --allow-root )' in line, "--allow-root only when root"
    overrides = "jupyter/overrides.json"
    assert f"cp {overrides} .venv/share/jupyter/lab/settings/" in line
    assert line.index("settings/") < line.index("jupyter lab"), "settings must be in place before lab starts"


def test_readme_line_2_is_what_ci_runs():
    readme_line = _quick_start_lines()[1]
    assert readme_line == _ci_test_line()
    assert '-e ".[dev]"' in readme_line and "-c constraints.txt" in readme_line
    assert "pytest" in readme_line and "--nbval-lax" in readme_line


def test_ci_script_is_strict_bash_and_installs_chromium():
    text = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/env bash\n") or text.startswith("#!/bin/bash\n")
    assert "set -euo pipefail" in text
    assert "apt-get install -y chromium" in text and "/usr/bin/chromium" in text
    bash = shutil.which("bash")
    if bash:
        check = subprocess.run([bash, "-n", str(REPO / ".ci" / "run")], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr


def test_ci_script_installs_npm_for_the_static_site():
    text = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "command -v npm" in text and "apt-get install -y nodejs npm" in text
    lock = json.loads((REPO / "site" / "package-lock.json").read_text(encoding="utf-8"))
    package = json.loads((REPO / "site" / "package.json").read_text(encoding="utf-8"))
    for name, version in package["dependencies"].items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"site/package.json: pin {name} exactly; got {version!r}"
        assert lock["packages"][f"node_modules/{name}"]["version"] == version, f"site/package-lock.json: {name}"


def test_jupyterlab_overrides_turn_news_off():
    settings = json.loads((REPO / "jupyter" / "overrides.json").read_text(encoding="utf-8"))
    notification = settings["@jupyterlab/apputils-extension:notification"]
    assert notification["fetchNews"] == "false"  # a string enum in JupyterLab's schema, not a bool


def test_gitignore_covers_generated_files():
    entries = {line.strip().rstrip("/") for line in (REPO / ".gitignore").read_text().splitlines()}
    for needed in (".venv", "__pycache__", "*.egg-info", ".pytest_cache", ".hypothesis",
                   "artifacts", ".ipynb_checkpoints", "build"):
        assert needed in entries, f".gitignore lacks {needed}"

