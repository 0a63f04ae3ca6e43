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
