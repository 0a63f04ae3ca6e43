"""The repository's front door: README links and picture, LICENSE, CITATION.cff, CONTRIBUTING.md."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import linattn_edu

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_links_and_picture_resolve():
    targets = re.findall(r"\]\(([^)\s]+)\)", README)
    local = [t.split("#")[0] for t in targets if not re.match(r"^[a-z]+:", t) and t.split("#")[0]]
    assert local, "the README links no file of the repository"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README links missing files: {missing}"
    picture = re.search(r"!\[([^\]]{20,})\]\(([^)]+\.png)\)", README)
    assert picture and (ROOT / picture.group(2)).stat().st_size > 10_000, "the README shows no explorer picture"


def test_readme_names_every_explorer_and_notebook():
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.md")):
        assert f"`{nb.stem}`" in README, f"the README's table lacks {nb.stem}"
    for name in ("sliding window", "decay maps", "gated / delta-rule stepper", "retrieval capacity"):
        assert name in README, f"the README's explorer list lacks {name}"


def test_readme_is_a_front_door_and_maintainer_material_lives_in_contributing():
    headings = re.findall(r"^## (.+)$", README, re.M)
    assert headings[:2] == ["Read it", "Run it"] and "Teach with it" in headings, headings
    assert len(README.split()) < 1500, "the README grew back into a manual"
    contributing = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    for heading in ("## How the code is layered", "## Running the benchmark", "## Tests and CI", "### The course site"):
        assert heading in contributing and heading not in README, heading


def test_license_names_code_and_text_licences():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "MIT License" in text and "Permission is hereby granted" in text
    assert "CC BY 4.0" in text and "creativecommons.org/licenses/by/4.0/legalcode" in text


def test_citation_file_matches_the_package():
    yaml = pytest.importorskip("yaml")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0" and cff["title"] and cff["authors"]
    assert str(cff["version"]) == linattn_edu.__version__
    assert set(cff["license"]) == {"MIT", "CC-BY-4.0"}


def test_jupyter_server_config_hides_the_paired_sources(tmp_path):
    """With jupyter/jupyter_server_config.json the file browser lists 01_x.ipynb, not its source 01_x.md,
    and jupytext still opens the notebook (hiding is a listing rule: the source is still read and saved)."""
    pytest.importorskip("jupyter_server")
    import json
    import os
    import secrets
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    root = tmp_path / "root"
    root.mkdir()
    for name in ("01_softmax_attention.md", "01_softmax_attention.ipynb", "INSTRUCTORS.md"):
        (root / name).write_bytes((ROOT / "notebooks" / name).read_bytes())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(8)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"), JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"),
               JUPYTER_DATA_DIR=str(tmp_path / "data"))
    cmd = [sys.executable, "-m", "jupyter_server", f"--config={ROOT / 'jupyter' / 'jupyter_server_config.json'}",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--no-browser"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        listing = None
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents?token={token}", timeout=2) as r:
                    listing = json.load(r)
                break
            except OSError:
                time.sleep(0.25)  # polling a port that is still opening
        assert listing is not None, "jupyter_server did not answer"
        names = {item["name"] for item in listing["content"]}
        assert "01_softmax_attention.ipynb" in names and "INSTRUCTORS.md" in names
        assert "01_softmax_attention.md" not in names, names
        url = f"http://127.0.0.1:{port}/api/contents/01_softmax_attention.ipynb?token={token}"
        with urllib.request.urlopen(url, timeout=10) as r:
            model = json.load(r)
        assert model["type"] == "notebook" and len(model["content"]["cells"]) > 10
    finally:
        proc.terminate()
        proc.wait(timeout=15)
