"""nbgrader's real pipeline on the lab, in a temporary course folder.

generate_assignment (from the read-along source) -> four synthetic students submit -> autograde ->
export (grades.csv) -> generate_feedback. The students: all correct; all stubs (the release as given);
typical wrong answers; one that calls the library for what the exercises ask. Notebook 01 only: every
notebook's exercises go through the same source builder, checkers, ``graded()`` and hidden guards
(tests/test_exercises.py covers each guard on its own), so one notebook exercises the whole mechanism
and keeps this test near a minute.
"""
from __future__ import annotations

import csv
import importlib.util
import re
import shutil
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbgrader")

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("editions", ROOT / "scripts" / "editions.py")
editions = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("editions", editions)
_spec.loader.exec_module(editions)

MD = ROOT / "notebooks" / "01_softmax_attention.md"
NB = MD.stem
LAB = "lab01"

WRONG = {  # typical first tries, each with the diagnosis its checker names
    "answer_my_scaled_scores": "def my_scaled_scores(q, k):\n    return q @ k.transpose(-2, -1)\n",
    "answer_my_softmax": ("def my_softmax(scores):\n    e = torch.exp(scores - scores.amax(dim=-1, keepdim=True))\n"
                          "    return e / e.sum(dim=-1, keepdim=True)\n"),
    "answer_my_causal_mask": "def my_causal_mask(n):\n    return torch.ones(n, n, dtype=torch.bool).triu()\n",
    "answer_my_attention": ("def my_attention(q, k, v, causal):\n"
                            "    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])\n"
                            "    if causal:\n"
                            "        s = s.masked_fill(~torch.ones(s.shape[-1], s.shape[-1], dtype=torch.bool).tril(), "
                            "float('-inf'))\n"
                            "    return my_softmax(s) @ v\n"),
    "answer_softmax_steps": 'answer = ["a", "b", "c", "d", "e", "f"]\n',
}
DIAGNOSES = ["you did not divide by √d", "that is the upper triangle"]

LIBRARY = {  # right values, handed off to linattn_edu: the hidden tests give 0 on these
    "answer_my_scaled_scores": ("from linattn_edu.softmax import attention_scores\n"
                                "def my_scaled_scores(q, k):\n"
                                "    return attention_scores(q, k, 1 / math.sqrt(q.shape[-1]))\n"),
    "answer_my_softmax": ("from linattn_edu.softmax import stable_softmax\n"
                          "def my_softmax(scores):\n    return stable_softmax(scores)\n"),
    "answer_my_causal_mask": "def my_causal_mask(n):\n    return torch.ones(n, n, dtype=torch.bool).tril()\n",
    "answer_my_attention": ("from linattn_edu import softmax_attention\n"
                            "def my_attention(q, k, v, causal):\n"
                            "    return softmax_attention(q, k, v, causal=causal)\n"),
    "answer_softmax_steps": None,  # the right order, from the source
}
GUARDED = {"test_my_scaled_scores", "test_my_softmax", "test_my_attention"}


def _solutions(source_nb) -> dict[str, str]:
    """grade_id -> the worked solution of each answer cell (markers dropped)."""
    out = {}
    for cell in source_nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            out[meta["grade_id"]] = "\n".join(line for line in cell.source.splitlines()
                                              if line.strip() not in (editions.BEGIN, editions.END))
    return out


def _submit(course: Path, student: str, release, answers: dict[str, str]) -> None:
    nb = nbformat.from_dict(release)
    nb = nbformat.reads(nbformat.writes(nb), as_version=4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell.source = answers[gid]
    folder = course / "submitted" / student / LAB
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / f"{NB}.ipynb")
    (folder / "timestamp.txt").write_text("2026-01-01 10:00:00.000000 UTC")


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = tmp_path_factory.mktemp("course")
    editions.write_course_source(course, LAB, [MD])
    editions.nbgrader(course, "generate_assignment", LAB, "--force")
    release = nbformat.read(course / "release" / LAB / f"{NB}.ipynb", as_version=4)
    solutions = _solutions(nbformat.read(course / "source" / LAB / f"{NB}.ipynb", as_version=4))
    library = {k: (v if v is not None else solutions[k]) for k, v in LIBRARY.items()}
    for student, answers in [("correct", solutions), ("stubs", {}), ("wrong", WRONG), ("library", library)]:
        _submit(course, student, release, answers)
    editions.nbgrader(course, "autograde", LAB, "--force")
    editions.nbgrader(course, "export")
    editions.nbgrader(course, "generate_feedback", LAB, "--force")
    return course


def _scores(course: Path) -> dict[str, tuple[float, float]]:
    with open(course / "grades.csv", newline="") as f:
        return {row["student_id"]: (float(row["score"]), float(row["max_score"])) for row in csv.DictReader(f)}


def _cell_scores(course: Path, student: str) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        nb = gb.find_submission_notebook(NB, LAB, student)
        return {g.name: g.score for g in nb.grades}


def test_source_notebook_carries_nbgrader_metadata_and_hidden_tests(course):
    src = nbformat.read(course / "source" / LAB / f"{NB}.ipynb", as_version=4)
    metas = [c.metadata["nbgrader"] for c in src.cells if "nbgrader" in c.metadata]
    answers = [m for m in metas if m["solution"]]
    tests = [m for m in metas if m["grade"]]
    assert len(answers) == len(tests) == 5
    assert all(m["locked"] and m["points"] > 0 for m in tests)
    assert not any(m["locked"] for m in answers)
    assert len({m["grade_id"] for m in metas}) == len(metas)
    hidden = [c.source for c in src.cells if editions.HIDDEN_BEGIN in c.source]
    assert len(hidden) == 4 and all("guard(" in h for h in hidden)


def test_release_is_the_student_edition_without_solutions_or_hidden_tests(course):
    release = (course / "release" / LAB / f"{NB}.ipynb").read_text(encoding="utf-8")
    assert "BEGIN SOLUTION" not in release and "HIDDEN TESTS" not in release and "guard(" not in release
    assert "# TODO: return the (..., N, M) scores" in release
    committed = (ROOT / "editions" / "student" / f"{NB}.ipynb").read_text(encoding="utf-8")
    strip = lambda text: [c.source for c in nbformat.reads(text, as_version=4).cells]  # noqa: E731
    assert strip(release) == strip(committed), "the committed student edition is not nbgrader's release"


def test_grades_csv_scores_the_four_students(course):
    scores = _scores(course)
    full = scores["correct"][1]
    assert full == 4 * editions.CODE_POINTS + editions.QUIZ_POINTS
    assert scores["correct"][0] == full
    assert scores["stubs"][0] == 0
    assert 0 < scores["wrong"][0] < full
    assert scores["wrong"][0] == 2 * editions.CODE_POINTS  # my_softmax and my_attention are right
    assert scores["library"][0] == editions.CODE_POINTS + editions.QUIZ_POINTS  # own mask, right order


def test_library_caller_scores_zero_on_every_guarded_exercise(course):
    cells = _cell_scores(course, "library")
    assert {g for g in GUARDED if cells[g] == 0} == GUARDED, cells
    assert cells["test_my_causal_mask"] > 0 and cells["test_softmax_steps"] > 0


def test_feedback_names_the_diagnosis_and_not_the_hidden_test(course):
    wrong = (course / "feedback" / "wrong" / LAB / f"{NB}.html").read_text(encoding="utf-8")
    for diagnosis in DIAGNOSES:
        assert diagnosis in wrong, f"feedback lacks {diagnosis!r}"
    library = (course / "feedback" / "library" / LAB / f"{NB}.html").read_text(encoding="utf-8")
    assert "scores 0 here" in library
    assert "HIDDEN TESTS" not in library and "guard(" not in library
