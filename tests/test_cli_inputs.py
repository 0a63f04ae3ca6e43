"""Bad paths and files on the command lines (``python -m linattn_edu.bench``, ``python -m linattn_edu.viz``):
one line on stderr and exit status 2 (argparse's usage error), never a traceback, never exit 0 without a
result, and always before anything is measured or drawn.

The real entry points run in subprocesses for one case of each kind of answer (all started at once:
the module costs about one interpreter start-up of wall time on an idle machine); the variants of each
class run in-process, with the measuring and drawing functions replaced by ones that fail if reached.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from linattn_edu import bench
from linattn_edu.bench import cli
from linattn_edu.bench.records import Results, check_records_path
from linattn_edu.bench.report import report

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def _records(ns, methods=("sdpa", "chunkwise"), mode="forward") -> Results:
    return Results(records=[{"method": m, "n": n, "mode": mode, "status": "ok", "iqr_s": 0.0, "repeats": 3,
                             "median_s": 1e-6 * n * (2 if m == "sdpa" else 1)} for m in methods for n in ns],
                   metadata={"device": "cpu", "dtype": "float32", "batch": 1, "heads": 1, "d": 8})


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """One file (or folder) per kind of bad input, and a good record."""
    tmp = tmp_path_factory.mktemp("cli_inputs")
    f = {name: tmp / name for name in ("not_json.json", "list.json", "recall.json", "empty.csv", "header.csv",
                                       "unrelated.csv", "no_n.json", "none.json", "low_n.json", "afile.txt")}
    f["not_json.json"].write_text("hello")
    f["list.json"].write_text("[]")
    f["recall.json"].write_text(json.dumps({"runs": [{"mixer": "softmax", "accuracy": 1.0}]}))
    f["empty.csv"].write_text("")
    f["header.csv"].write_text("method,n,mode\n")
    f["unrelated.csv"].write_text("a,b\n1,2\n")
    f["no_n.json"].write_text(json.dumps({"metadata": {}, "records": [{"method": "sdpa", "mode": "forward"}]}))
    f["none.json"].write_text(json.dumps({"metadata": {}, "records": []}))
    _records([64, 128]).save(f["low_n.json"])  # a sweep below the slope range: no slope
    f["afile.txt"].write_text("x")
    f["decode"] = _records([16, 64], methods=("kv_cache", "recurrent"), mode="decode").save(tmp / "cpu_decode.json")
    f["good"] = _records([2048, 4096, 8192]).save(tmp / "good" / "cpu_sweep.json")
    f["empty_folder"] = tmp / "empty"
    f["empty_folder"].mkdir()
    f["folder.json"] = tmp / "folder.json"
    f["folder.json"].mkdir()
    fake = tmp / "no_kaleido" / "kaleido"  # an importable name that fails like a missing package
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named kaleido')\n")
    f["no_kaleido"] = fake.parent
    f["tmp"] = tmp
    return f


# The real entry points, in subprocesses --------------------------------------------------------
BENCH, VIZ = ["-m", "linattn_edu.bench"], ["-m", "linattn_edu.viz"]
SUBPROCESS = {  # id: (argv from the files, expected exit status, words in the one error line, hide kaleido)
    "bench sweep --out <a file>/x.json": (lambda f: BENCH + ["sweep", "--out", f"{f['afile.txt']}/x.json"], 2,
                                          "is a file", False),
    "bench slopes --from not JSON": (lambda f: BENCH + ["slopes", "--from", str(f["not_json.json"])], 2,
                                     "is not a records file: not JSON", False),
    "bench slopes --from a decode record": (lambda f: BENCH + ["slopes", "--from", str(f["decode"])], 2,
                                            "no slope in", False),
    "viz --bogus": (lambda f: VIZ + ["--bogus"], 2, "unrecognized arguments: --bogus", False),
    "viz an empty folder": (lambda f: VIZ + [str(f["empty_folder"])], 2, "no records in", False),
    "viz without kaleido: a missing file": (lambda f: VIZ + [str(f["tmp"] / "missing.json")], 2,
                                            "which does not exist", True),
    "viz without kaleido: a good record": (lambda f: VIZ + [str(f["good"])], 1, "pip install 'kaleido", True),
    "viz --help": (lambda f: VIZ + ["--help"], 0, None, False),
}


@pytest.fixture(scope="module")
def ran(files) -> dict[str, subprocess.CompletedProcess]:
    """Start every subprocess case at once, then collect them (one start-up of wall time, not eight)."""
    procs = {}
    for name, (argv, _, _, hide_kaleido) in SUBPROCESS.items():
        env = dict(os.environ)
        if hide_kaleido:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(files["no_kaleido"]), env.get("PYTHONPATH")]))
        procs[name] = subprocess.Popen([sys.executable, *argv(files)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True, env=env)
    out = {}
    for name, p in procs.items():
        stdout, stderr = p.communicate(timeout=600)
        out[name] = subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr)
    return out


@pytest.mark.parametrize("case", list(SUBPROCESS))
def test_entry_point_answers_with_one_line(case, ran, files):
    _, code, words, _ = SUBPROCESS[case]
    proc = ran[case]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    if words is None:  # --help: usage on stdout, nothing on stderr
        assert proc.stdout.startswith("usage: python -m linattn_edu.viz") and not proc.stderr
        return
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and words in errors[0], proc.stderr
    assert "wrote" not in proc.stdout


# The bench CLI, in-process -----------------------------------------------------------------------
@pytest.fixture
def no_measuring(monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("measured before the paths were checked")
    for name in ("headline", "sweep", "decode_sweep"):
        monkeypatch.setattr(cli, name, must_not_run)


def _usage_error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as info:
        bench.main(argv)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert info.value.code == 2 and len(errors) == 1, err
    return errors[0]


OUT_BAD = {  # --out: name -> (path from the files, words)
    "a file's child": (lambda f: f"{f['afile.txt']}/x.json", "is a file"),
    "a file's grandchild": (lambda f: f"{f['afile.txt']}/sub/x.csv", "is a file"),
    "an existing folder": (lambda f: str(f["folder.json"]), "which is a folder"),
    "/dev/null's child": (lambda f: "/dev/null/x.json", "'/dev/null' is a file"),
    "a name too long": (lambda f: str(f["tmp"] / ("x" * 300 + ".json")), "File name too long"),
    "an empty path": (lambda f: "", "path must end in .json or .csv"),
}


@pytest.mark.parametrize("command", ["sweep", "slopes", "decode"])
@pytest.mark.parametrize("case", list(OUT_BAD))
def test_out_is_refused_before_measuring(command, case, files, capsys, no_measuring):
    path, words = OUT_BAD[case]
    line = _usage_error([command, "--device", "cpu", "--out", path(files)], capsys)
    assert "--out" in line and words in line


def test_out_in_folders_still_to_make_is_accepted_and_makes_nothing(files):
    out = files["tmp"] / "new" / "deeper" / "x.json"
    assert cli._parse(["sweep", "--out", str(out), "--device", "cpu"]).out == out
    assert not (files["tmp"] / "new").exists()  # the check leaves no trace


FROM_BAD = {  # slopes --from: file -> words
    "not_json.json": "is not a records file: not JSON", "list.json": "expected a JSON object with a 'records' list",
    "recall.json": "expected a JSON object with a 'records' list", "empty.csv": "no records in",
    "header.csv": "no records in", "unrelated.csv": "a records CSV has the columns method, n, mode",
    "no_n.json": "record 0 has no n", "none.json": "no records in", "low_n.json": "no slope in",
    "decode": "no slope in",
}


@pytest.mark.parametrize("name", list(FROM_BAD))
def test_slopes_from_a_bad_file(name, files, capsys, no_measuring):
    line = _usage_error(["slopes", "--from", str(files[name])], capsys)
    assert "--from" in line and FROM_BAD[name] in line


def test_slopes_from_a_good_record_prints_its_slopes(files, capsys):
    assert bench.main(["slopes", "--from", str(files["good"])]) in (0, 3)
    out = capsys.readouterr().out
    assert "chunkwise: log-log slope 1.000" in out and "sdpa: log-log slope 1.000" in out


def test_slopes_from_a_shipped_record(capsys):
    assert bench.main(["slopes", "--from", str(ASSETS / "cpu_slopes.json")]) in (0, 3)
    assert "chunkwise: log-log slope" in capsys.readouterr().out


def test_slopes_ns_without_two_points_in_the_slope_range(capsys, no_measuring):
    line = _usage_error(["slopes", "--ns", "64,128,4096", "--device", "cpu"], capsys)
    assert "--ns: slopes are fitted over N in [2048, 32768]; expected at least 2 N there; got 64,128,4096" in line


def test_a_failed_save_after_measuring_is_one_line_and_status_1(files, capsys, monkeypatch):
    def full_disk(self, path):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Results, "save", full_disk)
    assert report("body", [], metadata={}, results=_records([2048]), out=files["tmp"] / "x.json") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "could not write the records" in err and "No space left" in err


# The library functions behind the checks ---------------------------------------------------------
@pytest.mark.parametrize("name", ["not_json.json", "list.json", "recall.json", "unrelated.csv", "no_n.json"])
def test_results_load_names_what_is_wrong(name, files):
    with pytest.raises(ValueError, match=f"{name.replace('.', '[.]')} is not a records file"):
        Results.load(files[name])


@pytest.mark.parametrize("record,words", [
    ({"method": "sdpa", "n": "abc", "mode": "forward"}, "an int n >= 1; got 'abc'"),
    ({"method": "sdpa", "n": True, "mode": "forward"}, "an int n >= 1; got True"),
    ({"method": "sdpa", "n": 0, "mode": "forward"}, "an int n >= 1; got 0"),
    ({"method": 3, "n": 8, "mode": "forward"}, "a string method and mode"),
    ({"method": "sdpa", "n": 8, "mode": "forward", "median_s": "fast"}, "median_s; got 'fast'"),
    ({"method": "sdpa", "n": 8, "mode": "forward", "median_s": -1.0}, "median_s; got -1.0"),
    ({"method": "sdpa", "n": 8, "mode": "forward", "median_s": 0, "status": "ok"}, "median_s > 0"),
    (7, "must be an object with method, n and mode; got int 7"),
])
def test_results_load_checks_each_record(record, words, tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"metadata": {}, "records": [record]}))
    with pytest.raises(ValueError, match="record 0") as info:
        Results.load(path)
    assert words in str(info.value)


def test_check_writable(files):
    from linattn_edu.bench.records import check_writable
    assert check_records_path(files["tmp"] / "a" / "b.csv", writable=True) == files["tmp"] / "a" / "b.csv"
    assert check_writable(files["good"]) == files["good"]  # an existing file is overwritten
    with pytest.raises(ValueError, match="is a file"):
        check_writable(files["afile.txt"] / "x.json")


# The viz CLI, in-process -------------------------------------------------------------------------
def _viz_error(argv, capsys, code=2) -> str:
    from linattn_edu.viz.assets import main
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert info.value.code == code and len(errors) == 1, err
    return errors[0]


VIZ_BAD = {  # name -> (argv from the files, words)
    "a missing folder": (lambda f: [str(f["tmp"] / "nowhere")], "which does not exist"),
    "a good file and a missing one": (lambda f: [str(f["good"]), str(f["tmp"] / "missing.csv")], "missing.csv"),
    "a .txt file": (lambda f: [str(f["afile.txt"])], "path must end in .json or .csv"),
    "an empty CSV": (lambda f: [str(f["empty.csv"])], "no records in"),
    "a record list with no records": (lambda f: [str(f["none.json"])], "no records in"),
    "a CSV that is not a record": (lambda f: [str(f["unrelated.csv"])], "is not a records file"),
    "a width of 0": (lambda f: ["--width", "0", str(f["good"])], "--width: expected an int >= 16; got 0"),
}


@pytest.mark.parametrize("case", list(VIZ_BAD))
def test_viz_refuses_before_drawing(case, files, capsys, monkeypatch):
    pytest.importorskip("plotly")
    from linattn_edu.viz import assets
    monkeypatch.setattr(assets, "_write", lambda *a, **k: pytest.fail("drew before the paths were checked"))
    argv, words = VIZ_BAD[case]
    assert words in _viz_error(argv(files), capsys)


def test_viz_without_kaleido_says_what_to_install(files, capsys, monkeypatch):
    pytest.importorskip("plotly")
    from linattn_edu.viz.assets import main
    monkeypatch.setitem(sys.modules, "kaleido", None)  # import kaleido now raises ImportError
    assert main([str(files["good"])]) == 1
    captured = capsys.readouterr()
    assert "pip install 'kaleido>=1.0'" in captured.err and "no PNG was written" in captured.err
    assert "wrote" not in captured.out and not list(files["good"].parent.glob("*.png"))
    assert "which does not exist" in _viz_error([str(files["tmp"] / "missing.json")], capsys)


def test_viz_plan_draws_a_decode_record_by_its_modes(files):
    pytest.importorskip("plotly")
    from linattn_edu.viz.assets import plan_assets
    plan = plan_assets([files["decode"], files["good"].parent])
    assert sorted(p.name for p in plan) == ["cpu_decode.png", "cpu_sweep_forward.png"]
    assert not list(files["tmp"].glob("**/*.png"))  # planning writes nothing


def test_slopes_measured_without_a_slope_is_not_exit_0(monkeypatch, capsys):
    """Every point past the guards: no slope to check the claims on, so status 3, never a silent 0."""
    skipped = Results(records=[{"method": m, "n": n, "mode": "forward", "status": "skipped: would need 9 GiB"}
                               for m in ("sdpa", "chunkwise") for n in (2048, 4096)], metadata={"device": "cpu"})
    monkeypatch.setattr(cli, "sweep", lambda *a, **k: skipped)
    assert bench.main(["slopes", "--ns", "2048,4096", "--device", "cpu", "--no-progress"]) == 3
    assert "no slope: no method has 2 measured N in [2048, 32768]" in capsys.readouterr().out
