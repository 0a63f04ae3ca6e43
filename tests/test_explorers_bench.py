"""linattn_edu.explorers.bench, the responsiveness benchmark: every move it times is a real control of a
real explorer and changes the figure; the timer counts what it says; the command line reports and
answers bad options with argparse's exit status 2."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("plotly")
pytest.importorskip("ipywidgets")
pytest.importorskip("anywidget")

from linattn_edu import explorers  # noqa: E402
from linattn_edu.explorers import bench  # noqa: E402


def drawn(ex) -> str:
    """What the browser receives: the figure's data and layout, as JSON."""
    return json.dumps(ex.figure.to_dict(), sort_keys=True, default=str)


@pytest.mark.parametrize("name,control,values", bench.MOVES, ids=[f"{n}.{c}" for n, c, _ in bench.MOVES])
def test_each_move_is_a_control_and_the_figure_follows_it(name, control, values):
    ex = getattr(explorers, name)()
    assert control in ex.controls and control in ex.values()
    seen = {}
    for value in values:
        before = ex.redraws
        ex.update(**{control: value})
        assert ex.message == "", (control, value, ex.message)
        assert ex.values()[control] == value and ex.redraws == before + 1  # one redraw per move
        seen[value] = drawn(ex)
    assert len(set(seen.values())) == len(values), f"two values of {control} drew the same figure"
    ex.update(**{control: values[0]})
    assert drawn(ex) == seen[values[0]]  # the same value draws the same figure again


class FakeExplorer:
    def __init__(self, fail_on=None):
        self.calls, self.message, self.fail_on = [], "", fail_on

    def update(self, **changes):
        self.calls.append(changes)
        self.message = "x must be at most 3; got 9" if self.fail_on in changes.values() else ""


def test_time_moves_warms_up_then_times_each_repeat():
    made = []

    def factory():
        made.append(FakeExplorer())
        return made[-1]

    wall, cpu = bench.time_moves(factory, "x", (1, 2, 3), repeats=5)
    assert len(made) == 1 and len(wall) == len(cpu) == 5 and min(wall) >= 0 and min(cpu) >= 0
    assert made[0].calls == [{"x": v} for v in (1, 2, 3, 1, 2, 3, 1, 2)]  # one warm-up cycle, then 5 moves


def test_time_moves_stops_at_a_message():
    with pytest.raises(RuntimeError, match="x=9 gave a message instead of a view: x must be at most 3"):
        bench.time_moves(lambda: FakeExplorer(fail_on=9), "x", (1, 9), repeats=2)


@pytest.mark.parametrize("repeats,values", [(0, (1,)), (True, (1,)), (2.0, (1,)), (2, ())])
def test_time_moves_bad_arguments(repeats, values):
    with pytest.raises(ValueError, match="repeats must be|values must list"):
        bench.time_moves(FakeExplorer, "x", values, repeats=repeats)


def test_main_prints_a_row_per_move_and_the_exit_status(monkeypatch, capsys):
    monkeypatch.setattr(bench, "MOVES", (("state_stepper", "t", (0, 1, 2)),))
    assert bench.main(["--repeats", "2", "--target-ms", "100000"]) == 0
    out = capsys.readouterr().out
    assert "load average" in out and "state_stepper" in out and "1 of 1 controls under 100000 ms" in out
    assert bench.main(["--repeats", "2", "--target-ms", "1e-9"]) == 1  # nothing is that fast
    assert "MISS" in capsys.readouterr().out


@pytest.mark.parametrize("argv,words", [
    (["--repeats", "0"], "--repeats: expected an int >= 1; got 0"),
    (["--repeats", "-3"], "--repeats: expected an int >= 1; got -3"),
    (["--repeats", "two"], "--repeats: expected an int >= 1; got 'two'"),
    (["--target-ms", "0"], "--target-ms: expected a finite number > 0; got '0'"),
    (["--target-ms", "nan"], "--target-ms: expected a finite number > 0; got 'nan'"),
    (["--target-ms", "inf"], "--target-ms: expected a finite number > 0; got 'inf'"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_options_are_usage_errors_before_any_explorer_is_built(argv, words, monkeypatch, capsys):
    monkeypatch.setattr(bench, "time_moves", lambda *a, **k: pytest.fail("built an explorer before the check"))
    with pytest.raises(SystemExit) as info:
        bench.main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and words in err and "usage: python -m linattn_edu.explorers.bench" in err
