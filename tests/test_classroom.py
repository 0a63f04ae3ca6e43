"""What an instructor runs for a class: the 90-minute path's budget, the hub values, the students' repository.

- the lab path (scripts/lab_budget.py) fits 85 minutes by its own rule (words at 200/min, 4 min per code
  exercise, 1 per quiz, measured cell run times), and every exercise of 01–04 says whether it is on the
  path, in the read-along notebook and in the student edition (whose nbgrader cells carry the tag);
- classroom/hub/values.yaml parses, and its memory and CPU are the ones classroom/make_hub_values.py
  derives from the measured record classroom/resources.json (nothing typed in by hand);
- classroom/publish_student_edition.py writes a students' repository without a worked solution, and the
  nbgitpuller links and the student edition's launch badges open that repository, never the course's.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return sys.modules[name]


budget = _load("lab_budget", ROOT / "scripts" / "lab_budget.py")
editions = _load("editions", ROOT / "scripts" / "editions.py")
hub = _load("make_hub_values", ROOT / "classroom" / "make_hub_values.py")
publish = _load("publish_student_edition", ROOT / "classroom" / "publish_student_edition.py")

PATH_NOTEBOOKS = ["01", "02", "03", "04"]  # the notebooks whose exercises are on the path


# --------------------------------------------------------------------------- the 90-minute path


def test_lab_path_fits_85_minutes(capsys):
    budgets = budget.lab_budget()
    total = sum(b.minutes for b in budgets)
    assert total <= budget.LIMIT_MINUTES, [b.as_dict() for b in budgets]
    assert budget.main([]) == 0
    out = capsys.readouterr().out
    assert "total" in out and all(b.name in out for b in budgets)


def test_budget_rule_is_the_stated_one():
    b = budget.Budget("x", words=400, code_exercises=["a", "b"], quizzes=["c"], run_seconds=90, fixed_minutes=1)
    assert b.minutes == pytest.approx(400 / 200 + 2 * 4 + 1 + 1.5 + 1)


def test_every_segment_reads_existing_sections_and_runs_measured_cells():
    for segment in budget.PATH:
        if segment.notebook is None:
            continue
        cells = json.loads(budget.notebook_path(segment.notebook).read_text(encoding="utf-8"))["cells"]
        numbers = {int(m) for c in cells if c["cell_type"] == "markdown"
                   for m in re.findall(r"^##\s+(\d+)\.", "".join(c["source"]), re.M)}
        assert set(segment.sections) <= numbers, f"{segment.name}: no section {set(segment.sections) - numbers}"
        timed = [c for c in cells if c["cell_type"] == "code" and budget.cell_seconds(c) > 0]
        assert timed, f"{segment.name}: the executed notebook carries no cell timings"
        priced = budget.price(segment)
        assert priced.words > 100 and priced.run_seconds > 0


def test_path_exercises_are_code_and_quizzes_of_01_to_04():
    budgets = {b.name: b for b in budget.lab_budget()}
    exercises = [e for b in budgets.values() for e in b.code_exercises + b.quizzes]
    assert {e.split()[0] for e in exercises} == set(PATH_NOTEBOOKS)
    assert sum(len(b.code_exercises) for b in budgets.values()) >= 8


@pytest.mark.parametrize("number", PATH_NOTEBOOKS)
def test_every_exercise_is_marked_in_both_editions(number):
    (md,) = (ROOT / "notebooks").glob(f"{number}_*.md")
    source = md.read_text(encoding="utf-8")
    headings = re.findall(r"\*\*Exercise \d+[^*]*\*\*", source)
    assert headings and all(budget.PATH_MARK.search(h) for h in headings), headings
    for path in (md.with_suffix(".ipynb"), editions.STUDENT / f"{md.stem}.ipynb"):
        nb = nbformat.read(path, as_version=4)
        text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        assert len(budget.PATH_MARK.findall(text)) == len(headings), path.name
    student = nbformat.read(editions.STUDENT / f"{md.stem}.ipynb", as_version=4)
    tagged = {c.metadata["nbgrader"]["grade_id"]: c.metadata.get("tags", []) for c in student.cells
              if "nbgrader" in c.metadata}
    assert tagged and all(("lab-path" in t) != ("homework" in t) for t in tagged.values()), tagged
    on_path = sum("lab-path" in t for gid, t in tagged.items() if gid.startswith("test_"))
    assert on_path == len(re.findall(r"\((?:[^)]*; )?lab path\)\.\*\*", source))  # one test cell per mark


# --------------------------------------------------------------------------- the hub


def _record() -> dict:
    return json.loads(hub.RECORD.read_text(encoding="utf-8"))


def test_resource_record_covers_every_notebook_and_the_server():
    record = _record()
    stems = {p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    assert set(record["notebooks"]) == stems, "run classroom/measure_resources.py for the notebooks missing"
    for stem, n in record["notebooks"].items():
        assert 100 < n["peak_rss_mib"] < 16384 and n["cpu_s"] > 0 and n["wall_s"] > 0, stem
    assert record["server"]["peak_rss_mib"] > 20
    assert record["machine"]["cpus"] >= 1


def test_values_file_parses_and_its_numbers_come_from_the_record():
    values = yaml.safe_load(hub.VALUES.read_text(encoding="utf-8"))
    expected = hub.resources(_record())
    single = values["singleuser"]
    assert single["memory"]["limit"] == f"{expected['memory_limit_mib']}M"
    assert single["memory"]["guarantee"] == f"{expected['memory_guarantee_mib']}M"
    assert single["cpu"]["limit"] == expected["cpu_limit"]
    assert single["cpu"]["guarantee"] == pytest.approx(expected["cpu_guarantee"])
    assert hub.main(["--check"]) == 0, "values.yaml is stale: run classroom/make_hub_values.py"
    # the rule itself, recomputed here from the record
    record = _record()
    peaks = [n["peak_rss_mib"] for n in record["notebooks"].values()]
    assert expected["memory_limit_mib"] >= 2 * max(peaks) + record["server"]["peak_rss_mib"]
    assert expected["memory_limit_mib"] % 256 == 0 and expected["memory_guarantee_mib"] % 128 == 0
    assert expected["memory_guarantee_mib"] <= expected["memory_limit_mib"]
    assert values["cull"]["enabled"] and values["cull"]["timeout"] == hub.CULL_SECONDS
    assert "save" in values["hub"]["extraConfig"]["save-your-work"]
    mounts = {m["mountPath"] for m in single["storage"]["extraVolumeMounts"]}
    assert hub.EXCHANGE in mounts
    exchange_config = single["extraFiles"]["nbgrader-config"]["stringData"]
    ast.parse(exchange_config)
    assert f'c.Exchange.root = "{hub.EXCHANGE}"' in exchange_config


def test_values_change_with_the_record():
    record = _record()
    bigger = json.loads(json.dumps(record))
    first = next(iter(bigger["notebooks"].values()))
    first["peak_rss_mib"] = 4000.0
    assert hub.resources(bigger)["memory_limit_mib"] > hub.resources(record)["memory_limit_mib"]


def test_nbgrader_config_parses_and_sets_the_editions_stub():
    config = (ROOT / "classroom" / "nbgrader_config.py").read_text(encoding="utf-8")
    ast.parse(config)
    namespace = {}

    class _Config(dict):
        def __getattr__(self, name):
            return self.setdefault(name, _Config())

        def __setattr__(self, name, value):
            self[name] = value

    exec(compile(config, "nbgrader_config.py", "exec"), {"get_config": lambda: namespace.setdefault("c", _Config())})
    c = namespace["c"]
    assert c.ClearSolutions.code_stub["python"] == editions.CODE_STUB
    assert "nbgrader.preprocessors.ClearHiddenTests" in c.GenerateFeedback.preprocessors


# --------------------------------------------------------------------------- the students' repository


def test_published_students_repository_holds_no_solution(tmp_path):
    out = tmp_path / "students"
    written = publish.publish(out)
    names = {p.name for p in out.iterdir()}
    assert {p.name for p in editions.STUDENT.glob("*.ipynb")} <= names
    assert "notebooks" not in names and "tests" not in names and "classroom" not in names
    assert {"linattn_edu", "assets", "environment.yml", "postBuild", "pyproject.toml", "README.md"} <= names
    for nb in out.glob("*.ipynb"):
        text = nb.read_text(encoding="utf-8")
        assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text, nb.name
    assert (out / "linattn_edu" / "exercises" / "runner.py").exists()
    assert not list(out.rglob("__pycache__"))
    assert "Save your work" in (out / "README.md").read_text(encoding="utf-8")
    assert len(written) >= 9


def test_nbgitpuller_links_and_badges_open_the_students_repository():
    repo, branch = editions.student_repository()
    course, _ = editions.repository()
    assert repo != course
    link = publish.nbgitpuller_link("https://hub.example.edu/", "01_softmax_attention.ipynb")
    assert link.startswith("https://hub.example.edu/hub/user-redirect/git-pull?repo=")
    assert "linattn_edu-student" in link and "urlpath=lab%2Ftree%2Flinattn_edu-student%2F01_softmax_attention.ipynb" in link
    slug = repo.removeprefix("https://github.com/")
    for nb_path in editions.STUDENT.glob("*.ipynb"):
        first = nbformat.read(nb_path, as_version=4).cells[0].source
        assert f"mybinder.org/v2/gh/{slug}/{branch}?labpath={nb_path.name}" in first, nb_path.name
        assert f"colab.research.google.com/github/{slug}/blob/{branch}/{nb_path.name}" in first
        assert "editions/student" not in first  # never the course repository, where solutions are one click away


def test_instructor_guide_quotes_the_budget_script():
    guide = (ROOT / "notebooks" / "INSTRUCTORS.md").read_text(encoding="utf-8")
    budgets = {b.name[:2]: b for b in budget.lab_budget()}
    for number in ("01", "02", "03", "04", "07"):
        row = re.search(rf"^\| \*\*{number}\*\*.*$", guide, re.M)
        assert row, f"the guide's path table has no row for {number}"
        cells = [c.strip() for c in row.group(0).strip("|").split("|")]
        b = budgets[number]
        assert float(cells[1]) == pytest.approx(b.words / budget.WORDS_PER_MINUTE, abs=0.15)
        assert float(cells[5]) == pytest.approx(b.minutes, abs=1.0)  # run times move a little per execution
    total = re.search(r"\*\*total\*\*.*\*\*([\d.]+)\*\*", guide)
    assert total and float(total.group(1)) == pytest.approx(sum(b.minutes for b in budget.lab_budget()), abs=2.0)
