"""The bench command line: every bad option is a usage error (exit 2) before anything is measured;
the good paths print metadata, tables and claims and save records."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from linattn_edu import bench
from linattn_edu.bench import cli

BAD = [
    (["headline", "--n", "0"], "--n: expected an int >= 1; got 0"),
    (["headline", "--n", "-5"], "--n: expected an int >= 1; got -5"),
    (["headline", "--dtype", "int8"], "--dtype: dtype must be one of"),
    (["headline", "--chunk-size", "-1"], "--chunk-size: expected an int >= 1; got -1"),
    (["headline", "--chunk-size", "0"], "--chunk-size: expected an int >= 1; got 0"),
    (["sweep", "--window", "0"], "--window: expected an int >= 1; got 0"),
    (["headline", "--heads", "-1"], "--heads: expected an int >= 1; got -1"),
    (["headline", "--threads", "-1"], "--threads: expected an int >= 1; got -1"),
    (["headline", "--device", "xyz"], "--device: expected a torch device such as 'cpu' or 'cuda'; got 'xyz'"),
    (["headline", "--device", "meta"], "--device: expected device 'cpu' or 'cuda[:i]'; got 'meta'"),
    (["sweep", "--ns", "a,b"], "--ns: expected a comma-separated list of ints >= 1; got 'a,b'"),
    (["sweep", "--ns", ""], "--ns: expected a comma-separated list of ints >= 1; got ''"),
    (["decode", "--contexts", "16,abc"], "--contexts: expected a comma-separated list of ints >= 1; got '16,abc'"),
    (["decode", "--contexts", "0"], "--contexts: expected a comma-separated list of ints >= 1; got '0'"),
    (["sweep", "--methods", "bogus"], "--methods: expected methods from softmax, sdpa"),
    (["sweep", "--methods", ""], "--methods: expected methods from"),
    (["sweep", "--modes", "backward"], "--modes: expected modes from forward, forward+backward; got 'backward'"),
    (["sweep", "--batch", "0"], "--batch: expected an int >= 1; got 0"),
    (["sweep", "--memory-budget-gib", "-1"], "--memory-budget-gib: expected a finite number > 0; got '-1'"),
    (["sweep", "--memory-budget-gib", "nan"], "--memory-budget-gib: expected a finite number > 0; got 'nan'"),
    (["sweep", "--time-budget-s", "0"], "--time-budget-s: expected a finite number > 0; got '0'"),
    (["sweep", "--out", "x.txt"], "--out: path must end in .json or .csv; got 'x.txt'"),
    (["decode", "--out", "x.txt"], "--out: path must end in .json or .csv; got 'x.txt'"),
    (["slopes", "--from", "/missing.json"], "--from: no records file at '/missing.json'"),
    (["slopes", "--from", "/missing.txt"], "--from: path must end in .json or .csv; got 'missing.txt'"),
    (["--n", "0"], "--n: expected an int >= 1; got 0"),  # the bare command takes the headline's options
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["sweep", "--methods", "fla_chunk", "--device", "cpu"], "the FLA methods need a CUDA device"),
]


@pytest.mark.parametrize(("argv", "words"), BAD, ids=[" ".join(a) or "''" for a, _ in BAD])
def test_bad_option_is_a_usage_error_before_measuring(argv, words, capsys, monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("measured before the options were checked")
    for name in ("headline", "sweep", "decode_sweep"):
        monkeypatch.setattr(cli, name, must_not_run)
    with pytest.raises(SystemExit) as info:
        bench.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: python -m linattn_edu.bench" in err and words in err, err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given without a GPU")
def test_cuda_without_a_gpu_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        bench.main(["headline", "--device", "cuda"])
    assert info.value.code == 2
    assert "--device: device 'cuda' asked for, but torch.cuda.is_available() is False" in capsys.readouterr().err


def test_fla_methods_without_the_package_say_how_to_get_it(monkeypatch, capsys):
    monkeypatch.setattr(bench.fla, "_module", lambda: None)  # as if flash-linear-attention were not installed
    monkeypatch.setattr(cli, "_device", lambda text: text)  # pretend the device exists
    with pytest.raises(SystemExit) as info:
        bench.main(["sweep", "--methods", "chunkwise,fla_chunk", "--device", "cuda"])
    assert info.value.code == 2
    assert "pip install fla-core" in capsys.readouterr().err


def test_bare_command_is_the_headline_with_its_options(monkeypatch, capsys):
    seen = {}

    def fake_headline(**kw):
        seen.update(kw)
        t = {"median_s": 1e-3, "iqr_s": 1e-5, "repeats": 5, "noisy": False}
        return {"n": kw["n"], "batch": kw["batch"], "heads": kw["heads"], "d": kw["d"], "chunk_size": kw["chunk_size"],
                "dtype": kw["dtype"], "device": kw["device"], "methods": ["chunkwise", "sdpa"], "errors": {},
                ("chunkwise", "forward"): t, ("sdpa", "forward"): t, "metadata": {"device": "cpu"},
                "matmul_gflops_before": 10.0, "matmul_gflops_after": 10.0, "matmul_gflops": 10.0}
    monkeypatch.setattr(cli, "headline", fake_headline)
    assert bench.main(["--n", "4096", "--chunk-size", "32", "--device", "cpu"]) == 0
    assert (seen["n"], seen["chunk_size"], seen["batch"], seen["heads"], seen["dtype"]) == (4096, 32, 1, 4, "float32")
    out = capsys.readouterr().out
    assert "claims: none stated for this device and shape" in out  # N = 4096: no claim is stated there
    assert "dense float32 matmul" in out


def test_cli_sweep_writes_records_and_slopes_reads_them(tmp_path, capsys):
    out = tmp_path / "sweep.json"
    code = bench.main(["sweep", "--methods", "sdpa,chunkwise", "--ns", "2048,4096", "--modes", "forward",
                       "--heads", "1", "--d", "8", "--repeats", "2", "--no-progress", "--out", str(out),
                       "--device", "cpu"])
    assert code == 0
    text = capsys.readouterr().out
    assert "torch_version=" in text and "chunkwise" in text and "wrote" in text
    assert "forward (ms)" in text  # the compact grid
    data = json.loads(out.read_text())
    assert len(data["records"]) == 4 and data["metadata"]["dtype"] == "float32"
    assert bench.main(["slopes", "--from", str(out)]) in (0, 3)  # 3: a claim missed, or a busy machine
    text = capsys.readouterr().out
    assert "chunkwise: log-log slope" in text and "sdpa: log-log slope" in text and "crossover" in text


def test_cli_decode_prints_claims_with_noise(capsys):
    code = bench.main(["decode", "--contexts", "16,64", "--heads", "2", "--d", "8", "--no-progress",
                       "--device", "cpu"])
    text = capsys.readouterr().out
    assert "claim: recurrent step time N = 64 ÷ N = 16 ≤ 1.2×; measured" in text and "kv_cache" in text
    assert "CPU claim: KV-cache step time N = 64 ÷ N = 16 (context ×4) ≥ 1×" in text
    assert "noise ±" in text and "[met" not in text and "MISSED" not in text
    assert code in (0, 3)


def test_module_runs_as_a_script():
    proc = subprocess.run([sys.executable, "-m", "linattn_edu.bench", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0
    for command in ("headline", "sweep", "slopes", "decode"):
        assert command in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "linattn_edu.bench", "--n", "0"], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and "--n: expected an int >= 1; got 0" in bad.stderr
