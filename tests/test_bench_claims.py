"""Claims with noise (per device and shape), the optional FLA methods, and the compile switch."""

from __future__ import annotations

import functools
import types

import pytest
import torch
import torch.nn.functional as F

from linattn_edu import bench, linear_attention
from linattn_edu.bench import Results, Target, decode_targets, headline_targets, slope_targets
from linattn_edu.bench import fla as bench_fla


def _t(ms: float, iqr_ms: float = 0.0, **extra) -> dict:
    return {"median_s": ms / 1e3, "iqr_s": iqr_ms / 1e3, "repeats": 5, **extra}


@pytest.mark.parametrize(("value", "noise", "verdict"), [(18.0, 0.05, "holds"), (15.5, 0.1, "within noise"),
                                                         (14.0, 0.05, "does not hold"), (15.0, 0.0, "holds")])
def test_a_claim_holds_only_beyond_its_noise(value, noise, verdict):
    t = Target("speed-up", value, ">=", 15, "×", noise, "CPU")
    assert t.verdict == verdict and t.holds == (verdict == "holds")
    assert t.line().startswith("  CPU claim: speed-up ≥ 15×; measured") and t.line().endswith(verdict)
    assert Target("time", 50.0, "<=", 40, " ms").margin == pytest.approx(-0.2)
    assert Target("time", 41.0, "<=", 40, " ms", 0.05).verdict == "within noise"


def _headline(device="cpu", n=16384, batch=1, heads=4, dtype="float32", **timings):
    h = {"n": n, "batch": batch, "heads": heads, "d": 64, "chunk_size": 64, "dtype": dtype, "device": device,
         "metadata": {"device": device}, "matmul_gflops_before": 160.0, "matmul_gflops_after": 150.0,
         "matmul_gflops": 160.0, "chunkwise_gflops": 100.0}
    h.update({tuple(k.split("__")): v for k, v in timings.items()})
    return h


def test_cpu_headline_claims_are_ratios_with_noise_and_say_cpu():
    h = _headline(**{"chunkwise__forward": _t(50, 2), "sdpa__forward": _t(900, 18),
                     "chunkwise__forward+backward": _t(200, 4), "sdpa__forward+backward": _t(3200, 64)})
    got = {t.name: t for t in headline_targets(h)}
    fwd = got["chunkwise speed-up over SDPA, forward, N = 16384"]
    assert fwd.value == pytest.approx(18.0) and fwd.noise == pytest.approx(0.01 + 0.02) and fwd.scope == "CPU"
    assert fwd.verdict == "holds"
    gf = got["chunkwise GFLOP/s ÷ dense float32 matmul GFLOP/s"]
    assert gf.value == pytest.approx(100 / 160) and gf.verdict == "holds"
    assert all("issue" not in t.line() for t in got.values())


def test_no_claims_for_a_shape_they_were_not_stated_for():
    h = _headline(n=4096, **{"chunkwise__forward": _t(5), "sdpa__forward": _t(50)})
    assert headline_targets(h) == []
    assert "claims: none stated" in bench.format_claims([])


def test_gpu_headline_never_shows_cpu_claims_and_compares_with_fla():
    small = _headline(device="cuda", **{"chunkwise__forward": _t(1.2, 0.01), "sdpa__forward": _t(5.0)})
    (t,) = headline_targets(small)
    assert (t.name, t.scope, t.op, t.threshold, t.verdict) == ("chunkwise forward time, N = 16384", "GPU", "<=", 1.5,
                                                               "holds")
    big = _headline(device="cuda", batch=4, heads=16, dtype="bfloat16",
                    **{"chunkwise__forward": _t(2.0), "sdpa__forward": _t(4.7), "fla_chunk__forward": _t(1.5),
                       "chunkwise__forward+backward": _t(13.4, peak_bytes=3e9),
                       "sdpa__forward+backward": _t(17.8), "fla_chunk__forward+backward": _t(4.2, peak_bytes=1.66e9)})
    got = {t.name: t for t in headline_targets(big)}
    assert all(t.scope == "GPU" for t in got.values()) and not any("N = 16384, forward" in n for n in got)
    assert got["chunkwise (eager) time ÷ FLA chunk kernel time, forward"].threshold == 2.0
    assert got["chunkwise (eager) time ÷ FLA chunk kernel time, forward+backward"].verdict == "does not hold"
    assert got["chunkwise speed-up over SDPA, forward"].value == pytest.approx(2.35)
    assert got["chunkwise peak memory ÷ FLA's, forward+backward"].value == pytest.approx(3e9 / 1.66e9)
    big["compiled"] = True
    compiled = {t.name: t for t in headline_targets(big)}
    assert compiled["chunkwise (compiled) time ÷ FLA chunk kernel time, forward"].threshold == 1.5


def _decode(device, kv, rec, ns=(1024, 16384)):
    rows = [{"method": m, "n": n, "mode": "decode", "status": "ok", "device": device, **_t(t, 0.02 * t)}
            for m, ts in (("kv_cache", kv), ("recurrent", rec)) for n, t in zip(ns, ts)]
    return Results(records=rows, metadata={"device": device})


def test_decode_claims_per_device():
    cpu = {t.name: t for t in decode_targets(_decode("cpu", (0.36, 2.9), (0.18, 0.19)))}
    kv = cpu["KV-cache step time N = 16384 ÷ N = 1024 (context ×16)"]
    assert (kv.threshold, kv.scope, kv.verdict) == (4.0, "CPU", "holds")  # ×16 context: the step grows >= 4×
    assert cpu["recurrent step time N = 16384 ÷ N = 1024"].verdict == "holds"
    gpu = {t.name: t for t in decode_targets(_decode("cuda", (0.24, 0.30), (0.18, 0.16)))}
    assert set(gpu) == {"recurrent step time N = 16384 ÷ N = 1024", "KV-cache step ÷ recurrent step at N = 16384"}
    assert gpu["KV-cache step ÷ recurrent step at N = 16384"].verdict == "does not hold"  # 1.9×: launch-bound
    assert decode_targets(Results(records=[], metadata={})) == []


def test_slope_claims_leave_sdpa_out_on_a_gpu():
    rows = [{"method": m, "n": n, "mode": "forward", "status": "ok", **_t(c * n ** p, 0.01 * c * n ** p)}
            for m, c, p in (("chunkwise", 1e-3, 1.0), ("sdpa", 1e-7, 2.0)) for n in (2048, 4096, 8192, 16384, 32768)]
    res = Results(records=rows, metadata={"device": "cpu"})
    sl = bench.slopes(res)
    got = {t.name.split()[0]: t for t in slope_targets(sl, res)}
    assert got["chunkwise"].verdict == "holds" and got["sdpa"].verdict == "holds" and got["sdpa"].scope == "CPU"
    assert 0 < got["sdpa"].noise < 0.01
    res.metadata["device"] = "cuda"
    assert [t.name.split()[0] for t in slope_targets(sl, res)] == ["chunkwise"]


# FLA: optional, never a hard dependency ----------------------------------------------------------------
def test_fla_methods_are_unavailable_on_a_cpu_and_without_the_package(monkeypatch):
    assert "need a CUDA device" in bench_fla.unavailable_reason("cpu")
    optional = ["hf_gated_delta"] if bench.hf.available() else []  # transformers' CPU fallback, where installed
    assert bench.default_methods("cpu") == list(bench.METHODS) + optional
    assert "fla_chunk" not in bench.METHODS and "fla_chunk" in bench.ALL_METHODS
    monkeypatch.setattr(bench_fla, "_module", lambda: None)
    assert "pip install fla-core" in bench_fla.unavailable_reason("cuda")
    rec = bench.measure_point("fla_chunk", 64)  # recorded as an error, the sweep goes on
    assert rec["status"].startswith("error: ValueError: the FLA methods need a CUDA device")


def _fake_fla(wrong: bool = False):
    """A stand-in for fla.ops.linear_attn in FLA's (B, N, H, d) layout and normalisation (pure torch)."""
    def chunk_linear_attn(q, k, v, scale=None, normalize=True):
        qh, kh, vh = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, N, d)
        w = torch.tril(qh @ kh.transpose(-2, -1))  # (B, H, N, N)
        out = (w @ vh) / (w.sum(-1, keepdim=True) + 1e-10)  # (B, H, N, d)
        return (out.flip(-1) if wrong else out).transpose(1, 2), None  # (B, N, H, d)
    return types.SimpleNamespace(chunk_linear_attn=chunk_linear_attn, fused_chunk_linear_attn=chunk_linear_attn)


def test_fla_adapter_matches_ours_and_a_wrong_kernel_is_never_timed(monkeypatch):
    q, k, v = bench.make_inputs(40, heads=2, d=8)  # (1, 2, 40, 8) each
    monkeypatch.setattr(bench_fla, "_module", lambda: _fake_fla())
    f = bench_fla.attention_fn("fla_chunk")
    ours = linear_attention(q, k, v, "elu+1", causal=True, form="quadratic")  # (1, 2, 40, 8)
    torch.testing.assert_close(f(q, k, v), ours, rtol=1e-5, atol=1e-5)
    assert bench_fla.check_agrees(f, q, k, v, chunk_size=16) < 1e-5
    monkeypatch.setattr(bench_fla, "_module", lambda: _fake_fla(wrong=True))
    with pytest.raises(ValueError, match="FLA output differs from ours: relative error .* not timed"):
        bench_fla.check_agrees(bench_fla.attention_fn("fla_chunk"), q, k, v)


# torch.compile ------------------------------------------------------------------------------------------
def test_compile_falls_back_to_graph_breaks_and_warms_up_before_timing(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))  # no C++ build here

    def with_break(q, k, v):
        calls.append(1)
        torch._dynamo.graph_break()  # fullgraph=True refuses this; the fallback accepts it
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    monkeypatch.setattr(bench.methods, "attention_fn", lambda *a, **kw: with_break)
    fn = bench.build_call("sdpa", 16, heads=1, d=8, compile=True)
    assert len(calls) >= 1  # compiled (and run) inside build_call, before any timed call
    q, k, v = bench.make_inputs(16, heads=1, d=8)
    torch.testing.assert_close(fn(), F.scaled_dot_product_attention(q, k, v, is_causal=True))


@pytest.mark.slow
def test_compiled_chunkwise_equals_eager_forward_and_backward():
    torch._dynamo.reset()
    for mode in bench.MODES:
        kw = dict(mode=mode, heads=2, d=8, chunk_size=16)
        eager, compiled = bench.build_call("chunkwise", 40, **kw)(), bench.build_call("chunkwise", 40, compile=True, **kw)()
        for a, b in zip(eager if mode != "forward" else [eager], compiled if mode != "forward" else [compiled]):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    rec = bench.measure_point("chunkwise", 64, heads=1, d=8, min_repeats=2, min_run_time=0.01, measure_memory=False,
                              compile=True)
    assert rec["status"] == "ok" and rec["compiled"] is True


@pytest.mark.cuda
def test_cuda_headline_runs_both_paths_with_events_and_peak_memory():
    h = bench.headline(n=1024, batch=1, heads=2, d=32, dtype="bfloat16", device="cuda", min_repeats=3,
                       methods=["chunkwise", "sdpa"])
    for mode in bench.MODES:
        t = h[("chunkwise", mode)]
        assert t["median_s"] > 0 and t["peak_bytes"] > 0
    assert "dense bfloat16 matmul" in bench.format_headline(h)
    res = bench.decode_sweep((256, 1024), batch=2, heads=2, d=32, dtype="bfloat16", device="cuda", min_repeats=3,
                             min_run_time=0.01, progress=False)
    assert len(res.records) == 4 and all(r["median_s"] > 0 for r in res.records)


@pytest.mark.cuda
@pytest.mark.slow
def test_fla_kernels_agree_with_ours_on_the_gpu():
    if not bench_fla.available("cuda"):
        pytest.skip(bench_fla.unavailable_reason("cuda"))
    for method in ("fla_chunk", "fla_fused_chunk"):
        for dtype in ("float32", "bfloat16"):
            fn = bench.build_call(method, 300, heads=2, d=64, dtype=dtype, device="cuda")  # checks before returning
            assert fn().shape == (1, 2, 300, 64)


def test_no_verdict_when_the_machine_was_busy(monkeypatch):
    import os
    t = Target("speed-up", 18.0, ">=", 15, "×", 0.05, "CPU")
    busy = bench.format_claims([t], load=float(os.cpu_count()))
    assert "measured 18× (noise ±5%): not judged (machine busy)" in busy and "rerun on a quiet machine" in busy
    quiet = bench.format_claims([t], load=0.0)
    assert quiet.endswith(": holds") and "note" not in quiet
    assert bench.report("", [t], metadata={"load_average_1m_end": float(os.cpu_count())}) == 3
    assert bench.report("", [t], metadata={"load_average_1m_end": 0.0}) == 0
