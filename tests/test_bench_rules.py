"""The bench's rule methods: one per registered rule, and transformers' CPU fallback checked equal before timing."""
import os
import platform
import subprocess
import sys

import pytest
import torch

import linattn_edu as L
from linattn_edu import bench
from linattn_edu.bench.sweeps import DECODERS, decode_sweep


def test_every_registered_rule_with_a_chunkwise_form_has_a_bench_method():
    for name, rule in L.RULES.items():
        if name != "linear" and "chunkwise" in rule.forms:
            assert bench.RULE_METHODS[f"{name}_chunkwise"] == (name, "chunkwise")


def test_decode_sweep_times_the_decoders_asked_for_and_refuses_others():
    res = decode_sweep([16], d=8, decoders=("recurrent", "gated_delta"), min_repeats=2, min_run_time=0.0,
                       measure_memory=False, progress=False)
    assert [r["method"] for r in res.records] == ["recurrent", "gated_delta"]
    with pytest.raises(ValueError, match="decoders must be names from"):
        decode_sweep([16], decoders=("bogus",), progress=False)
    assert set(DECODERS) >= {"kv_cache", "recurrent", "gated_delta", "hf_gated_delta"}


def test_transformers_fallback_computes_our_gated_delta_rule():
    pytest.importorskip("transformers.models.qwen3_next.modeling_qwen3_next")  # an optional yardstick
    q, k, v = bench.make_inputs(150, d=16, dtype=torch.float64)
    log_decay, beta = bench.make_gates(150, dtype=torch.float64)
    f = bench.hf.attention_fn(32, log_decay, beta)
    assert bench.hf.check_agrees(f, q, k, v, log_decay, beta, chunk_size=32) < 1e-5  # it computes in float32
    with pytest.raises(ValueError, match="differs from ours"):
        bench.hf.check_agrees(lambda *a: f(*a) * 1.01, q, k, v, log_decay, beta)
    out = bench.build_call("hf_gated_delta", 150, mode="forward+backward", d=16)()
    assert len(out) == 3


def test_rule_costs_reads_slopes_per_method_and_width():
    from linattn_edu.bench.analysis import rule_costs
    from linattn_edu.bench.records import Results
    rec = lambda m, d, mode, n, t: {"method": m, "d": d, "mode": mode, "n": n, "median_s": t, "status": "ok"}  # noqa: E731
    res = Results(records=[rec("delta_chunkwise", 64, "forward", 4096, 0.1), rec("delta_chunkwise", 64, "forward", 16384, 0.4),
                           rec("delta_chunkwise", 128, "forward+backward", 4096, 1.0),
                           rec("delta_chunkwise", 128, "forward+backward", 16384, 16.0)], metadata={})
    rows = rule_costs(res, n_small=4096, n_large=16384)
    assert [(r["method"], r["d"]) for r in rows] == [("delta_chunkwise", 64), ("delta_chunkwise", 128)]
    assert abs(rows[0]["slope_forward"] - 1.0) < 1e-12 and rows[0]["forward+backward"] is None
    assert abs(rows[1]["slope_forward+backward"] - 2.0) < 1e-12


def test_paired_ratio_times_both_methods_in_alternating_pairs():
    from linattn_edu.bench.sweeps import paired_ratio
    rec = paired_ratio("delta_recurrent", "delta_chunkwise", 64, d=8, pairs=3, chunk_size=16)
    assert (rec["method"], rec["baseline"], rec["status"]) == ("delta_chunkwise", "delta_recurrent", "ok")
    assert len(rec["ratios"]) == 3 and all(r > 0 for r in rec["ratios"])
    assert rec["q1_ratio"] <= rec["median_ratio"] <= rec["q3_ratio"]
    with pytest.raises(ValueError, match="pairs"):
        paired_ratio("delta_recurrent", "delta_chunkwise", 64, pairs=1)
    with pytest.raises(ValueError, match="method"):
        paired_ratio("bogus", "delta_chunkwise", 64)


def test_paired_slope_alternates_the_two_lengths_and_reads_each_pair_as_a_slope(monkeypatch):
    from linattn_edu.bench import sweeps
    calls = []

    def fake_build(name, n, **kw):  # t(N) = N² µs: every pair's slope is exactly 2
        return lambda: calls.append(n)

    clock = iter(x for n in [64, 256] * 3 for x in (0.0, (n * n) * 1e-6))  # (start, end) of each timed call
    monkeypatch.setattr(sweeps, "build_call", fake_build)
    cpu_clock = iter(x for n in [64, 256] * 3 for x in (0.0, n * 1e-6))  # this process's CPU: t(N) = N µs
    monkeypatch.setattr(sweeps.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(sweeps.time, "process_time", lambda: next(cpu_clock))
    fault_counter = iter(x for n in [64, 256] * 3 for x in (1000, 1000 + n // 64))  # t(N): N / 64 faults a call
    monkeypatch.setattr(sweeps, "minor_faults", lambda: next(fault_counter))
    rec = sweeps.paired_slope("delta_chunkwise", 64, 256, pairs=3)
    assert calls == [64, 256, 64, 256, 64, 256, 64, 256]  # one warm-up each, then alternating
    assert (rec["median_faults_small"], rec["median_faults_large"]) == (1, 4)  # each call's own faults
    assert len(rec["slopes"]) == 3 and all(abs(s - 2.0) < 1e-9 for s in rec["slopes"])
    assert len(rec["cpu_slopes"]) == 3 and abs(rec["median_cpu_slope"] - 1.0) < 1e-9  # wall and CPU kept apart
    assert rec["q1_slope"] <= rec["median_slope"] <= rec["q3_slope"]
    with pytest.raises(ValueError, match="n_large"):
        sweeps.paired_slope("delta_chunkwise", 256, 64)
    with pytest.raises(ValueError, match="method"):
        sweeps.paired_slope("bogus", 64, 256)


def test_paired_slope_of_a_real_method_is_a_record():
    from linattn_edu.bench.sweeps import paired_slope
    rec = paired_slope("delta_chunkwise", 64, 128, d=8, pairs=3, chunk_size=16)
    assert rec["status"] == "ok" and (rec["n_small"], rec["n"]) == (64, 128) and len(rec["slopes"]) == 3
    assert rec["median_s_small"] > 0 and rec["median_s_large"] > 0


def test_paired_records_load_as_a_records_file(tmp_path):
    from linattn_edu.bench.records import Results, run_metadata
    from linattn_edu.bench.sweeps import paired_ratio, paired_slope
    recs = [paired_ratio("delta_recurrent", "delta_chunkwise", 64, d=8, pairs=3, chunk_size=16),
            paired_slope("delta_chunkwise", 64, 128, d=8, pairs=3, chunk_size=16)]
    Results(records=recs, metadata=run_metadata()).save(tmp_path / "paired.json")
    assert [r["n"] for r in Results.load(tmp_path / "paired.json").records] == [64, 128]


_FAULTS_OF_A_SECOND_ALLOCATION = """
import sys, torch
from linattn_edu.bench import timer
if sys.argv[1] == "keep":
    print(timer.keep_freed_memory(), file=sys.stderr)
counts = []
for _ in range(6):  # 64 MiB: above glibc's largest mmap threshold (32 MiB), so mmapped by default
    before = timer.minor_faults()
    x = torch.ones(16 * 2**20)  # written: every page touched
    counts.append(timer.minor_faults() - before)
    del x
print(*counts)
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_keep_freed_memory_stops_the_page_faults_of_the_next_allocation():
    """Six 64 MiB tensors one after another. By default every one is a fresh mmap and faults all its
    16384 pages. With freed memory kept, the heap keeps the freed block; the first allocations may still
    grow the heap (torch asks for 64-byte aligned memory, and a freed block with a small allocation
    behind it can be a few bytes short of that: in 30 runs the 2nd tensor faulted in 18 and the 3rd in
    10, the 4th to 6th in none), but from then on a tensor reuses the kept pages without a fault."""
    def faults(mode):
        out = subprocess.run([sys.executable, "-c", _FAULTS_OF_A_SECOND_ALLOCATION, mode], capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return [int(c) for c in out.stdout.split()], out.stderr
    default, _ = faults("default")
    kept, said = faults("keep")
    assert min(default[1:]) > 16000, default  # glibc unmapped each freed 64 MiB: every tensor faults again
    assert min(kept[1:]) == 0 and kept[-1] == 0, f"with freed memory kept, 64 MiB tensors still faulted {kept}"
    assert "M_MMAP_MAX = 0" in said


def test_the_records_say_how_malloc_treats_freed_memory():
    from linattn_edu.bench.records import run_metadata
    assert run_metadata()["allocator"] == bench.timer.allocator_setting() == "the C library's defaults"
    faults = bench.timer.minor_faults()
    assert faults is None or faults >= 0


_MAPS = """55d0c0a00000-55d0c0a21000 rw-p 00000000 00:00 0                          [heap]
7f3a1c000000-7f3a1c021000 r-xp 00000000 08:01 1234   /usr/lib/x86_64-linux-gnu/libc.so.6
7f3a1d000000-7f3a1d040000 r-xp 00000000 08:01 5678   {lib}
7f3a1e000000-7f3a1e001000 rw-p 00000000 00:00 0
"""


@pytest.mark.parametrize("lib,name", [("/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4.5.10", "tcmalloc"),
                                      ("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "jemalloc"),
                                      ("/opt/lib/libmimalloc.so.2.1", "mimalloc"), ("/usr/lib/libm.so.6", None)])
def test_a_preloaded_malloc_is_read_from_the_mapped_libraries(lib, name):
    found = bench.timer.preloaded_allocator(_MAPS.format(lib=lib))
    assert (found is None) if name is None else found == (name, lib)


_TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"


@pytest.mark.skipif(not os.path.exists(_TCMALLOC), reason="Debian's libtcmalloc-minimal4 is not installed")
def test_a_record_names_a_preloaded_tcmalloc_and_keep_freed_memory_refuses_it():
    code = ("from linattn_edu.bench import timer\nfrom linattn_edu.bench.records import run_metadata\n"
            "print(run_metadata()['allocator'])\n"
            "try:\n    timer.keep_freed_memory()\nexcept RuntimeError as e:\n    print('refused:', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "LD_PRELOAD": _TCMALLOC})
    assert out.returncode == 0, out.stderr
    said, refused = out.stdout.splitlines()
    assert said.startswith("tcmalloc, preloaded (") and "libtcmalloc_minimal" in said
    assert refused.startswith("refused: malloc here is tcmalloc")

