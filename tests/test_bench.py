"""The benchmark harness (linattn_edu.bench): methods, guards, timing, memory, records, analysis.

No timing *targets* here (those are printed by ``python -m linattn_edu.bench``); these tests
check that the harness measures what it says, on tiny sizes. The CLI is tested in test_bench_cli.py,
the claims, FLA and compile paths in test_bench_claims.py.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time

import pytest
import torch

from linattn_edu import bench
from linattn_edu.bench import (
    METHODS,
    Results,
    build_call,
    chunkwise_flops,
    crossover_n,
    decode_sweep,
    fit_loglog_slope,
    fit_theory_constant,
    log_grid,
    measure_point,
    peak_memory,
    predict_peak_bytes,
    slopes,
    sweep,
    time_call,
)

MiB = 2**20


def test_log_grid_is_powers_of_two_or_finer():
    assert log_grid(256, 4096) == [256, 512, 1024, 2048, 4096]
    assert log_grid(1024, 4096, points_per_octave=2) == [1024, 1456, 2048, 2896, 4096]
    assert log_grid(100, 100) == [100]


@pytest.mark.parametrize("method", list(METHODS))
def test_build_call_wires_the_right_attention(method):
    n, d = 40, 8
    q, k, v = bench.make_inputs(n, batch=1, heads=2, d=d, dtype=torch.float64)  # (1, 2, n, d)
    out = build_call(method, n, heads=2, d=d, dtype=torch.float64, chunk_size=16, window=n)()
    assert out.shape == (1, 2, n, d)
    if method in ("softmax", "sdpa", "window"):  # window = N: plain causal softmax
        expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    elif method in bench.GATED_METHODS:  # against the recurrent reference with the same seeded gates
        expected = _gated_reference(method, q, k, v, bench.make_gates(n, heads=2, dtype=torch.float64))
    else:
        from linattn_edu import linear_attention
        expected = linear_attention(q, k, v, "elu+1", causal=True, form="quadratic")
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)


def _gated_reference(method, q, k, v, gates):
    from linattn_edu import delta_rule_attention, gated_linear_attention
    log_decay, beta = gates
    if method == "gated_chunkwise":
        return gated_linear_attention(q, k, v, log_decay, form="recurrent")
    if method == "gla_chunkwise":
        return gated_linear_attention(q, k, v, bench.channel_gates(log_decay, q.shape[-1]), form="recurrent")
    if method in ("delta_chunkwise", "gated_delta_chunkwise", "delta_recurrent"):
        g = log_decay if method == "gated_delta_chunkwise" else None
        return delta_rule_attention(q, k, v, beta, log_decay=g, form="recurrent")
    from linattn_edu import RULES  # any other registered rule: its own seeded gates, as the bench draws them
    spec = RULES[bench.RULE_METHODS[method][0]]
    kw = spec.gates(q.shape[:-1], q.shape[-1], torch.Generator().manual_seed(0), q.dtype, q.device)
    return spec.attention(q, k, v, form="recurrent", **kw, **spec.state_kwargs)


def test_gates_are_seeded_in_range_and_built_once_per_call_setup(monkeypatch):
    log_decay, beta = bench.make_gates(50, batch=2, heads=3, seed=4)
    assert log_decay.shape == beta.shape == (2, 3, 50)
    assert bool((log_decay < 0).all()) and bool(((beta > 0) & (beta < 1)).all())
    again = bench.make_gates(50, batch=2, heads=3, seed=4)
    torch.testing.assert_close(again[0], log_decay, rtol=0, atol=0)  # same seed, same code path
    built = []
    real = bench.methods.make_gates
    monkeypatch.setattr(bench.methods, "make_gates", lambda *a, **kw: built.append(1) or real(*a, **kw))
    for method in bench.GATED_METHODS:
        fn = build_call(method, 40, heads=2, d=8, chunk_size=16)
        outs = [fn() for _ in range(3)]
        assert all(o.shape == (1, 2, 40, 8) for o in outs)
    assert len(built) == len(bench.GATED_METHODS)  # once per build_call, never inside a timed call
    with pytest.raises(ValueError, match="needs gates"):
        bench.attention_fn("delta_chunkwise")


@pytest.mark.parametrize("method", ["gated_chunkwise", "gla_chunkwise", "delta_chunkwise", "gated_delta_chunkwise"])
def test_gated_chunkwise_methods_backward_matches_their_recurrent_reference(method):
    kw = dict(mode="forward+backward", heads=2, d=8, dtype=torch.float64, chunk_size=8)
    grads = build_call(method, 37, **kw)()
    q, k, v = bench.make_inputs(37, heads=2, d=8, dtype=torch.float64, requires_grad=True)
    out = _gated_reference(method, q, k, v, bench.make_gates(37, heads=2, dtype=torch.float64))
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(out.dtype)
    for g, r in zip(grads, torch.autograd.grad(out, (q, k, v), grad_out)):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-10)


def test_new_methods_are_cli_choices_and_the_token_loop_is_capped():
    args = bench.cli.build_parser().parse_args(["sweep", "--methods", ",".join(bench.GATED_METHODS)])
    assert args.methods == list(bench.GATED_METHODS)
    assert set(bench.GATED_METHODS) <= set(bench.default_methods("cpu"))
    assert measure_point("delta_recurrent", 8192)["status"] == "skipped: N = 8192 > max_n = 4096 for delta_recurrent"
    rec = measure_point("delta_chunkwise", 64, heads=2, d=8, chunk_size=16, min_repeats=3, min_run_time=0.01,
                        measure_memory=False)
    assert rec["status"] == "ok" and rec["chunk_size"] == 16


def test_forward_backward_returns_the_three_input_gradients():
    grads = build_call("chunkwise", 33, mode="forward+backward", heads=2, d=8, dtype=torch.float64, chunk_size=8)()
    assert len(grads) == 3 and all(g.shape == (1, 2, 33, 8) for g in grads)
    ref = build_call("linear_quadratic", 33, mode="forward+backward", heads=2, d=8, dtype=torch.float64)()
    for g, r in zip(grads, ref):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-10)


def test_cpu_peak_memory_sees_a_known_allocation():
    def fn():
        a = torch.ones(1024, 1024)  # 4 MiB
        b = a * 2  # 4 MiB more while a lives
        del a
        return b.sum()

    peak = peak_memory(fn)
    assert 8 * MiB <= peak < 8 * MiB + 64 * 1024


@pytest.mark.parametrize("mode", bench.MODES)
@pytest.mark.parametrize("method", list(METHODS))
def test_guard_prediction_is_close_to_measured_peak(method, mode):
    n = 128 if method in ("recurrent", "delta_recurrent") else 512
    kw = dict(mode=mode, heads=4, d=32, chunk_size=64, window=64)
    measured = peak_memory(build_call(method, n, **kw))
    predicted = predict_peak_bytes(method, n, **kw)
    assert 0.8 * measured <= predicted <= 3 * measured, (method, mode, measured, predicted)


def test_dense_forms_predict_quadratic_memory_linear_forms_do_not():
    ratio = lambda m: predict_peak_bytes(m, 8192) / predict_peak_bytes(m, 4096)  # noqa: E731
    assert ratio("softmax") > 3.5 and ratio("linear_quadratic") > 3.5
    assert ratio("sdpa") < 2.1 and ratio("chunkwise") < 2.1 and ratio("window") < 2.1
    # naive softmax at N = 65536, B=1, H=4, fp32: 4 dense (4, N, N) float32 tensors = 256 GiB + a bool N×N mask 4 GiB
    assert predict_peak_bytes("softmax", 65536) // 2**30 == 260


def test_time_call_measures_a_sleep():
    res = time_call(lambda: time.sleep(0.002), min_repeats=5, min_run_time=0.05)
    assert 0.0019 <= res["median_s"] < 0.02
    assert res["repeats"] >= 5 and res["iqr_s"] >= 0


def test_time_call_respects_the_time_budget_for_slow_calls():
    res = time_call(lambda: time.sleep(0.05), warmup=1, min_repeats=10, min_run_time=0.01, budget_s=0.22)
    first = res["first_call_s"]  # ~0.05 s; more on a loaded machine, so the plan is checked against it
    assert res["repeats"] == max(1, min(10, int((0.22 - first) // first)))  # (budget - warm-up) // one call
    assert res["repeats"] <= 3
    assert res["median_s"] >= 0.049


def test_memory_guard_skips_with_the_predicted_size():
    rec = measure_point("softmax", 65536, memory_budget=2**30)
    assert rec["status"] == "skipped: would need 260.31 GiB > budget 1.00 GiB"
    assert rec["median_s"] is None and rec["predicted_bytes"] > 2**30


def test_time_guard_extrapolates_the_previous_point():
    rec = measure_point("sdpa", 4096, time_budget_s=5.0, previous=(1024, 0.2))  # 0.2 s * 4² = 3.2 s per call
    assert rec["status"] == "skipped: predicted 2 × 3.20 s > time budget 5 s"
    assert measure_point("recurrent", 4096)["status"].startswith("skipped: N = 4096 > max_n")


def test_measured_record_is_tidy():
    rec = measure_point("chunkwise", 256, heads=2, d=16, min_repeats=3, min_run_time=0.01)
    assert rec["status"] == "ok"
    assert rec["median_s"] > 0 and rec["iqr_s"] >= 0 and rec["repeats"] >= 3 and rec["peak_bytes"] > 0
    assert {k: rec[k] for k in ("method", "n", "mode", "dtype", "device", "chunk_size")} == {
        "method": "chunkwise", "n": 256, "mode": "forward", "dtype": "float32", "device": "cpu", "chunk_size": 64}


@pytest.fixture(scope="module")
def tiny_sweep() -> Results:
    return sweep(("sdpa", "chunkwise", "softmax"), (64, 128), modes=("forward", "forward+backward"), heads=2, d=16,
                 min_repeats=3, min_run_time=0.01, memory_budget=64 * 2**20, measure_memory=False, progress=False)


def test_sweep_records_every_point_with_metadata(tiny_sweep):
    assert len(tiny_sweep.records) == 2 * 2 * 3
    assert all(r["status"] == "ok" for r in tiny_sweep.records)
    meta = tiny_sweep.metadata
    for key in ("device_name", "torch_version", "dtype", "threads", "date", "git_revision", "memory_method"):
        assert meta[key] not in (None, ""), key
    assert meta["torch_version"] == torch.__version__ and meta["threads"] == torch.get_num_threads()


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_records_round_trip(tiny_sweep, tmp_path, suffix):
    path = tiny_sweep.save(tmp_path / f"records{suffix}")
    back = Results.load(path)
    assert back.metadata == tiny_sweep.metadata
    assert back.records == tiny_sweep.records
    assert back.series("sdpa") == tiny_sweep.series("sdpa")


@pytest.mark.parametrize("revision", ["6854045", "12e4567", "a46602f"])
def test_a_revision_that_reads_as_a_number_stays_text_in_csv(tmp_path, revision):
    rec = {"method": "sdpa", "n": 64, "mode": "forward", "median_s": 0.5, "status": "ok"}
    meta = {"git_revision": revision, "transformers": "4.57", "threads": 2}
    back = Results.load(Results(records=[rec], metadata=meta).save(tmp_path / "r.csv"))
    assert back.metadata == meta and back.records == [rec]


def test_save_refuses_unknown_format(tiny_sweep, tmp_path):
    with pytest.raises(ValueError, match=r"\.json or \.csv; got 'x\.txt'"):
        tiny_sweep.save(tmp_path / "x.txt")


def _synthetic(**curves) -> Results:
    """Records with t(N) given by functions, for the analysis helpers."""
    ns = [256, 512, 1024, 2048, 4096, 8192]
    return Results(records=[{"method": m, "n": n, "mode": "forward", "status": "ok", "median_s": f(n)}
                            for m, f in curves.items() for n in ns])


def test_loglog_slope_and_theory_constant_recover_a_power_law():
    ns = [1000, 2000, 4000, 8000]
    slope, intercept = fit_loglog_slope(ns, [3e-9 * n**1.5 for n in ns])
    assert slope == pytest.approx(1.5, abs=1e-12) and math.exp(intercept) == pytest.approx(3e-9)
    assert fit_theory_constant(ns, [5e-7 * n**2 for n in ns], 2) == pytest.approx(5e-7)
    sl = slopes(_synthetic(chunkwise=lambda n: 1e-6 * n, sdpa=lambda n: 1e-9 * n**2), n_min=512, n_max=8192)
    assert sl == {"chunkwise": pytest.approx(1.0), "sdpa": pytest.approx(2.0)}


def test_crossover_interpolates_where_fast_overtakes_slow():
    # 1e-6 N == 1e-9 N^2 at N = 1000: between the grid points 512 and 1024
    res = _synthetic(chunkwise=lambda n: 1e-6 * n, sdpa=lambda n: 1e-9 * n**2)
    assert crossover_n(res) == pytest.approx(1000, rel=1e-9)
    assert crossover_n(_synthetic(chunkwise=lambda n: 1.0, sdpa=lambda n: 2.0)) == 256  # always faster
    assert crossover_n(_synthetic(chunkwise=lambda n: 2.0, sdpa=lambda n: 1.0)) is None  # never


def test_chunkwise_flops_formula():
    # N(4d² + 4Cd) per head: 16384 · (16384 + 16384) · 4 heads = 2^31
    assert chunkwise_flops(16384, 64, 64, heads=4) == 2**31


def test_decode_records_cache_growing_and_state_constant():
    res = decode_sweep((16, 64), heads=2, d=8, min_repeats=3, min_run_time=0.01, measure_memory=False,
                       progress=False)
    _, cache = res.series("kv_cache", "decode", key="state_bytes")
    _, state = res.series("recurrent", "decode", key="state_bytes")
    assert cache == [2 * 2 * 17 * 8 * 4, 2 * 2 * 65 * 8 * 4]  # 2·H·(N+1)·d·4 bytes
    assert state == [2 * 8 * (8 + 1) * 4] * 2  # H·d_φ·(d_v + 1)·4 bytes, whatever N
    assert all(r["median_s"] > 0 for r in res.records)


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: build_call("flash", 8), "method must be one of"),
        (lambda: build_call("sdpa", 8, mode="backward"), "mode must be one of"),
        (lambda: build_call("sdpa", 8, dtype="fp12"), "dtype must be"),
        (lambda: log_grid(0, 8), "n_min must be an int >= 1; got 0"),
        (lambda: log_grid(16, 8), "n_max must be >= n_min = 16; got 8"),
        (lambda: fit_loglog_slope([1], [1]), "need >= 2"),
        (lambda: fit_loglog_slope([1, 2], [1, -1]), "positive"),
        (lambda: Results.load("records.txt"), "path must end in .json or .csv"),
    ],
)
def test_bad_input_raises_value_error_naming_what_was_expected(call, words):
    with pytest.raises(ValueError) as info:
        call()
    assert words in str(info.value)


def test_time_call_flags_noise_from_the_spread():
    calls = iter([0.001, 0.001] + [0.001, 0.010] * 20)  # warm-up, then alternating fast and slow calls
    res = time_call(lambda: time.sleep(next(calls)), min_repeats=6, min_run_time=0.0)
    assert res["noise"] == pytest.approx(res["iqr_s"] / res["median_s"])
    assert res["noise"] > bench.NOISE_RATIO and res["noisy"] is True
    assert isinstance(res["load_average"], float)


def test_time_call_flags_a_busy_machine(monkeypatch):
    import os
    monkeypatch.setattr(os, "getloadavg", lambda: (float(os.cpu_count()), 0.0, 0.0))
    assert bench.machine_busy() is True
    res = time_call(lambda: time.sleep(0.002), min_repeats=3, min_run_time=0.01)
    assert res["noisy"] is True  # whatever the spread: other programs compete for the cores
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert bench.machine_busy() is False


def test_format_timing_reads_median_iqr_repeats_and_flag():
    t = {"median_s": 0.0123, "iqr_s": 0.0004, "repeats": 9, "noisy": True}
    assert bench.format_timing(t) == "12.3 ms (IQR 0.400, 9 repeats, noisy)"


@pytest.mark.parametrize("bad", [{"warmup": 0}, {"min_repeats": 0}, {"min_run_time": -1.0}, {"budget_s": -1.0}])
def test_time_call_rejects_bad_settings(bad):
    with pytest.raises(ValueError):
        time_call(lambda: None, **bad)


def test_matmul_yardstick_runs_in_the_asked_dtype():
    assert bench.matmul_gflops(64, dtype="bfloat16", min_run_time=0.01) > 0


def test_compact_grid_has_one_row_per_method_and_mode(tiny_sweep):
    grid = bench.format_grid(tiny_sweep)
    lines = grid.splitlines()
    assert len(lines) == 2 * (1 + 3)  # per mode: a header and three methods
    assert max(len(line) for line in lines) <= 80
    assert lines[0].split()[-2:] == ["64", "128"]


def test_grid_marks_guard_skips():
    res = Results(records=[{"method": "softmax", "n": 64, "mode": "forward", "status": "skipped: would need"},
                           {"method": "softmax", "n": 128, "mode": "forward", "status": "error: x"}])
    assert bench.format_grid(res).splitlines()[1].split()[1:] == ["skip", "err"]


def test_revision_comes_from_the_environment_outside_git(monkeypatch):
    monkeypatch.setenv("LINATTN_EDU_REVISION", "abc1234")
    assert bench.run_metadata()["git_revision"] == "abc1234"


def test_every_public_name_the_explorers_and_viz_use_is_importable():
    from linattn_edu.bench import (METHODS, MODES, Results, crossover_n, fit_theory_constant,  # noqa: F401
                                   log_grid, slopes, sweep)


def test_decode_in_bfloat16_keeps_a_float32_state():
    res = decode_sweep((16,), heads=2, d=8, dtype="bfloat16", min_repeats=2, min_run_time=0.01, measure_memory=False,
                       progress=False)
    (cache,) = res.series("kv_cache", "decode", key="state_bytes")[1]
    (state,) = res.series("recurrent", "decode", key="state_bytes")[1]
    assert cache == 2 * 2 * 17 * 8 * 2  # the cache is stored in bfloat16
    assert state == 2 * 8 * (8 + 1) * 4  # the state accumulates in float32
