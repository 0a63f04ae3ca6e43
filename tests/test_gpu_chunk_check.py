"""scripts/gpu_chunk_check.py, the GPU visit's chunkwise-vs-SDPA-vs-FLA check, without a GPU: it imports, uses
the bench's timer and FLA wrapper (not copies), checks its options before measuring, and its --smoke run
writes a record with a row per method and mode (timings stubbed here: the plumbing is what is tested)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from linattn_edu.bench import fla, timer

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_chunk_check.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("gpu_chunk_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reuses_the_bench_timer_and_fla_wrapper(script):
    assert script.time_call is timer.time_call and script.peak_memory is timer.peak_memory
    assert script.fla is fla and set(script.FLA_METHODS) <= {"fla_chunk", "fla_fused_chunk"}
    for copy in ("cuda_time_ms", "fla_kernel", "revision"):  # the hand-written versions it used to carry
        assert not hasattr(script, copy)


def test_help_and_bad_options(script, capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        script.main(["--help"])
    assert info.value.code == 0 and "--smoke" in capsys.readouterr().out
    for argv, words in [(["--out", str(tmp_path / "x.csv"), "--smoke"], "expected a path ending in .json"),
                        (["--out", str(SCRIPT / "x.json"), "--smoke"], "is a file"),
                        (["--out", str(tmp_path / "x.json"), "--budget-s", "0"], "expected a finite number > 0"),
                        (["--smoke"], "the following arguments are required: --out")]:
        with pytest.raises(SystemExit) as info:
            script.main(argv)
        assert info.value.code == 2 and words in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the answer given without a GPU")
def test_without_a_gpu_it_says_so_before_measuring(script, capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(script, "run_shape", lambda *a, **k: pytest.fail("measured without a GPU"))
    with pytest.raises(SystemExit) as info:
        script.main(["--out", str(tmp_path / "x.json")])
    assert info.value.code == 2 and "needs a CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_smoke_run_writes_a_row_per_method_and_mode(script, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(script, "timed", lambda step, device: (step(), {"ms": 1.0, "iqr_ms": 0.1, "repeats": 10,
                                                                       "noisy": False})[1])
    monkeypatch.setattr(script, "peak_gib", lambda step, device: (0.5, 0.25))
    out = tmp_path / "deeper" / "smoke.json"
    assert script.main(["--out", str(out), "--smoke", "--rev", "abc1234"]) == 0
    data = json.loads(out.read_text())
    assert data["meta"]["git_revision"] == "abc1234" and data["meta"]["smoke"] is True
    timed_rows = {(r["method"], r["mode"]) for r in data["results"] if "ms" in r}
    methods = ("chunkwise", "chunkwise_loop_carry", "sdpa")
    assert timed_rows == {(m, mode) for m in methods for mode in ("fwd", "fwd+bwd")}
    if not fla.available("cuda" if torch.cuda.is_available() else "cpu"):  # reported with the reason, not timed
        fla_rows = [r for r in data["results"] if r["method"] in script.FLA_METHODS]
        assert len(fla_rows) == 2 and all("error" in r for r in fla_rows)
    text = capsys.readouterr().out
    assert "loop carry vs cumsum carry: rel err" in text and f"wrote {out}" in text
