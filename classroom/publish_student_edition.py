#!/usr/bin/env python
"""Publish the student edition with the library into a folder ready to push as the students' repository.

    .venv/bin/python classroom/publish_student_edition.py OUT            # write OUT/ (then git init, push)
    .venv/bin/python classroom/publish_student_edition.py OUT --links https://hub.example.edu
                                                                         # ... and print nbgitpuller links

The students' repository holds what a student may see and nothing else: the student edition's
notebooks at its root (nbgrader's release: stubs, no worked solutions, no hidden tests), the
library (``linattn_edu/``, which the notebooks import and the checkers compare with), the shipped
measurements in ``assets/``, and what Binder, repo2docker and pip need to build the environment
(``environment.yml``, ``postBuild``, ``pyproject.toml``, ``constraints.txt``). The read-along
notebooks, whose cells hold the worked solutions, are left out: that is why an nbgitpuller link or a
Binder badge points at this repository and never at the course repository.
``[tool.linattn_edu] student_repository`` in pyproject.toml names it; the student edition's Binder and
Colab badges already point there.
"""
from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
from pathlib import Path
from urllib.parse import quote, urlencode

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("editions", ROOT / "scripts" / "editions.py")
editions = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("editions", editions)
_spec.loader.exec_module(editions)

#: Copied as they are (files or folders, relative to the course repository).
COPIED = ["linattn_edu", "assets", "environment.yml", "postBuild", "pyproject.toml", "constraints.txt",
          "jupyter", "LICENSE"]
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")

STUDENT_README = """# Linear attention: the lab (student edition)

Open a notebook, run its first cell, and work through it. Each exercise raises `NotImplementedError`
until you write it (the `# TODO:` line above says what); the locked cell under it checks your answer:
✓, or what is wrong and a hint. Exercises marked *lab path* are the 90-minute lab; *homework* ones
come after.

**Save your work.** On a JupyterHub idle servers are stopped after {cull_minutes} minutes; on Binder
after about 10 minutes without activity, and Binder keeps nothing: download your notebook
(File → Download) before you leave. Colab keeps nothing either unless you save a copy to Drive.

Notebooks: {notebooks}
"""


def publish(out: Path, *, cull_minutes: int = 60) -> list[Path]:
    """Write the students' repository into ``out`` (emptied first, except a .git folder); the files written."""
    out.mkdir(parents=True, exist_ok=True)
    for child in out.iterdir():
        if child.name == ".git":
            continue
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    written = []
    for nb in sorted(editions.STUDENT.glob("[0-9][0-9]_*.ipynb")):
        shutil.copy(nb, out / nb.name)
        written.append(out / nb.name)
    for name in COPIED:
        src = ROOT / name
        if not src.exists():
            continue
        if src.is_dir():
            shutil.copytree(src, out / name, ignore=IGNORED)
        else:
            shutil.copy(src, out / name)
        written.append(out / name)
    readme = STUDENT_README.format(cull_minutes=cull_minutes,
                                   notebooks=", ".join(f"`{p.name}`" for p in written if p.suffix == ".ipynb"))
    (out / "README.md").write_text(readme, encoding="utf-8")
    written.append(out / "README.md")
    return written


def nbgitpuller_link(hub: str, notebook: str) -> str:
    """A link that clones (or updates) the students' repository into the student's home and opens ``notebook``."""
    repo, branch = editions.student_repository()
    folder = repo.rsplit("/", 1)[1]
    query = urlencode({"repo": repo, "branch": branch, "urlpath": f"lab/tree/{folder}/{notebook}"}, quote_via=quote)
    return f"{hub.rstrip('/')}/hub/user-redirect/git-pull?{query}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the folder to write (its .git, if any, is kept)")
    parser.add_argument("--links", metavar="HUB_URL", help="also print an nbgitpuller link per notebook for this hub")
    args = parser.parse_args(argv)
    if args.out.resolve() == ROOT or ROOT in args.out.resolve().parents:
        parser.error("write the students' repository outside the course repository")
    written = publish(args.out)
    print(f"wrote {len(written)} entries to {args.out}; next: cd {args.out} && git add -A && git commit && "
          f"git push {editions.student_repository()[0]}")
    if args.links:
        for path in written:
            if path.suffix == ".ipynb":
                print(nbgitpuller_link(args.links, path.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
