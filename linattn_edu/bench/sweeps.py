"""Measuring: one guarded point, a sweep over N, the headline at one N, and the per-token decode step.

What one measured point is (method m at length N, forward or forward+backward):

1. **Guard.**  Predict the method's peak extra memory from its formula
   (:func:`~linattn_edu.bench.methods.predict_peak_bytes`) and skip the point, recorded as
   ``"skipped: would need X GiB > budget Y GiB"``, instead of crashing.  Predict its time from
   the method's previous point, t(N) ≈ t(N₀)·(N/N₀)^p, and skip when it would not fit the
   per-point time budget.
2. **Time** with :func:`~linattn_edu.bench.timer.time_call` (warm-up, median, IQR, noise flag).
3. **Peak memory** with one more call (:func:`~linattn_edu.bench.timer.peak_memory`).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from typing import Iterable, Sequence

import torch

from .._checks import MemoryBudgetError, check_number, compute_dtype, dtype_name, parse_dtype
from ..delta import DeltaState
from ..memory import kv_cache_bytes, linear_state_bytes
from ..linear import LinearAttentionState
from ..softmax import softmax_attention
from . import fla, hf
from .analysis import chunkwise_flops
from .methods import ALL_METHODS, FEATURE_MAP, MODES, build_call, check_method, check_mode, predict_peak_bytes, \
    predict_seconds
from .records import Results, run_metadata
from .timer import _sync, load_average, matmul_gflops, minor_faults, peak_memory, time_call

__all__ = ["GiB", "measure_point", "sweep", "default_methods", "headline", "paired_ratio", "paired_slope", "DECODERS", "DEFAULT_DECODERS", "decode_sweep"]

GiB = 2**30
_TIMING_KEYS = ("median_s", "iqr_s", "repeats", "noise", "noisy")


def default_methods(device="cpu") -> list[str]:
    """Every method that can run on ``device`` (FLA's only where FLA imports and a GPU is used, transformers'
    only where transformers imports)."""
    def runs(m):
        return not m.optional or (hf.available(device) if m.name == "hf_gated_delta" else fla.available(device))
    return [m.name for m in ALL_METHODS.values() if runs(m)]


def measure_point(method: str, n: int, *, mode: str = "forward", batch: int = 1, heads: int = 4, d: int = 64,
                  dtype=torch.float32, device="cpu", chunk_size: int = 64, window: int = 256,
                  memory_budget: int = 4 * GiB, time_budget_s: float | None = 20.0,
                  previous: tuple[int, float] | None = None, warmup: int = 1, min_repeats: int = 5,
                  min_run_time: float = 0.2, measure_memory: bool = True, compile: bool = False) -> dict:
    """One tidy record: guard, warm up, time, then (optionally) measure peak memory.

    status is "ok", "skipped: would need X > budget Y", "skipped: predicted ...", "skipped: N > max_n"
    or "error: ..." (the point's failure is recorded, the sweep goes on).
    """
    spec = check_method(method)
    check_mode(mode)
    dt = parse_dtype(dtype)
    record = {"method": method, "n": n, "mode": mode, "batch": batch, "heads": heads, "d": d,
              "dtype": dtype_name(dt), "device": str(torch.device(device)), "causal": True,
              "chunk_size": chunk_size if method.endswith("chunkwise") else None,
              "window": window if method == "window" else None,
              "status": "ok", "median_s": None, "iqr_s": None, "repeats": 0, "peak_bytes": None}
    if compile:
        record["compiled"] = True
    predicted = predict_peak_bytes(method, n, mode=mode, batch=batch, heads=heads, d=d, dtype=dt,
                                   chunk_size=chunk_size, window=window)
    record["predicted_bytes"] = predicted
    if spec.max_n is not None and n > spec.max_n:
        record["status"] = f"skipped: N = {n} > max_n = {spec.max_n} for {method}"
        return record
    if predicted > memory_budget:
        record["status"] = (f"skipped: would need {predicted / GiB:.2f} GiB > budget "
                            f"{memory_budget / GiB:.2f} GiB")
        return record
    guess = predict_seconds(method, n, previous)
    if guess is not None and time_budget_s is not None and guess * (warmup + 1) > time_budget_s:
        record["status"] = (f"skipped: predicted {warmup + 1} × {guess:.2f} s > time budget "
                            f"{time_budget_s:.0f} s")
        return record
    try:
        fn = build_call(method, n, mode=mode, batch=batch, heads=heads, d=d, dtype=dt, device=device,
                        chunk_size=chunk_size, window=window, compile=compile and not spec.optional)
        timing = time_call(fn, device=device, warmup=warmup, min_repeats=min_repeats,
                           min_run_time=min_run_time, budget_s=time_budget_s)
        record.update({k: timing[k] for k in _TIMING_KEYS})
        if measure_memory:
            record["peak_bytes"] = peak_memory(fn, device=device)
    except MemoryBudgetError as exc:  # the core's own dense-tensor guard
        record["status"] = f"skipped: {exc}"
    except (RuntimeError, ValueError, TypeError) as exc:  # e.g. out of memory: record and go on
        record["status"] = f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return record


def _progress(items: list, enabled: bool, desc: str):
    if not enabled:
        return items
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is in the [bench] extra; without it, no bar
        return items
    return tqdm(items, desc=desc)


def sweep(methods: Sequence[str] | None = ("softmax", "sdpa", "linear_quadratic", "chunkwise", "recurrent", "window"),
          ns: Iterable[int] = (256, 512, 1024, 2048), *, modes: Sequence[str] = ("forward",),
          batch: int = 1, heads: int = 4, d: int = 64, dtype=torch.float32, device="cpu",
          chunk_size: int = 64, window: int = 256, memory_budget: int = 4 * GiB,
          time_budget_s: float | None = 20.0, min_repeats: int = 5, min_run_time: float = 0.2,
          measure_memory: bool = True, progress: bool = True, compile: bool = False) -> Results:
    """Measure every method × N × mode; N is the outer loop so that methods at one N run back to back.

    ``methods=None`` takes :func:`default_methods` of the device.  Each method's previous measured
    point (per mode) feeds the time guard of its next one.
    """
    methods = [check_method(m).name for m in (default_methods(device) if methods is None else methods)]
    modes = [check_mode(m) for m in modes]
    ns = sorted(set(int(n) for n in ns))
    meta = run_metadata(device=device, dtype=dtype, batch=batch, heads=heads, d=d, chunk_size=chunk_size,
                        window=window, memory_budget_bytes=memory_budget, time_budget_s=time_budget_s,
                        feature_map=FEATURE_MAP, causal=True, compiled=compile)
    previous: dict[tuple[str, str], tuple[int, float]] = {}
    points = [(n, mode, m) for n in ns for mode in modes for m in methods]
    records = []
    for n, mode, method in _progress(points, progress, "sweep"):
        rec = measure_point(method, n, mode=mode, batch=batch, heads=heads, d=d, dtype=dtype, device=device,
                            chunk_size=chunk_size, window=window, memory_budget=memory_budget,
                            time_budget_s=time_budget_s, previous=previous.get((method, mode)),
                            min_repeats=min_repeats, min_run_time=min_run_time, measure_memory=measure_memory,
                            compile=compile)
        if rec["status"] == "ok":
            previous[(method, mode)] = (n, rec["median_s"])
        records.append(rec)
    meta["load_average_1m_end"] = load_average()
    return Results(records=records, metadata=meta)


def headline(*, n: int = 16384, batch: int = 1, heads: int = 4, d: int = 64, chunk_size: int = 64,
             dtype=torch.float32, device="cpu", min_repeats: int = 5, progress: bool = False,
             compile: bool = False, methods: Sequence[str] | None = None) -> dict:
    """Causal chunkwise vs SDPA (and FLA where present) at one N, forward and forward+backward, one run.

    Order: matmul, then for each mode every method, then matmul again (the two dense-matmul rates,
    in the run's dtype, show how much the machine's speed drifted during the run).  On CUDA each
    point's peak memory is measured too (one more call).  ``compile`` compiles the chunkwise form.
    Returns a dict: (method, mode) -> timing dict; "errors": {method: message} for methods that
    could not run (e.g. FLA disagreeing with ours); the shape; "metadata".
    """
    if methods is None:
        methods = ["chunkwise", "sdpa"] + [m for m in ("fla_chunk", "fla_fused_chunk") if fla.available(device)]
    dt = parse_dtype(dtype)
    cuda = torch.device(device).type == "cuda"
    out = {"n": n, "batch": batch, "heads": heads, "d": d, "chunk_size": chunk_size, "dtype": dtype_name(dt),
           "device": str(torch.device(device)), "compiled": compile, "methods": list(methods), "errors": {},
           "metadata": run_metadata(device=device, dtype=dt, benchmark="headline", compiled=compile)}
    out["matmul_gflops_before"] = matmul_gflops(device=device, dtype=dt)
    kw = dict(batch=batch, heads=heads, d=d, dtype=dt, device=device, chunk_size=chunk_size)
    steps = [(m, mode) for mode in MODES for m in methods]
    for method, mode in _progress(steps, progress, "headline"):
        if method in out["errors"]:
            continue
        try:
            fn = build_call(method, n, mode=mode, compile=compile and method == "chunkwise", **kw)
        except ValueError as exc:  # an optional method missing or disagreeing: say so, go on
            out["errors"][method] = str(exc)
            continue
        repeats = min_repeats if method != "sdpa" or cuda else max(3, min_repeats // 2)  # CPU SDPA calls take s
        timing = time_call(fn, device=device, warmup=3 if cuda else 1, min_repeats=repeats, min_run_time=1.0)
        timing.pop("samples")
        if cuda:
            timing["peak_bytes"] = peak_memory(fn, device=device)
        out[(method, mode)] = timing
    out["matmul_gflops_after"] = matmul_gflops(device=device, dtype=dt)
    out["matmul_gflops"] = max(out["matmul_gflops_before"], out["matmul_gflops_after"])
    if ("chunkwise", "forward") in out:
        flops = chunkwise_flops(n, d, chunk_size, heads=heads, batch=batch)
        out["chunkwise_gflops"] = flops / out[("chunkwise", "forward")]["median_s"] / 1e9
    out["metadata"]["load_average_1m_end"] = load_average()
    return out


def _alternate(fns, pairs: int, device) -> tuple[list[list[float]], list[list[float]], list[list[int]]]:
    """Seconds per call of each of ``fns``, called in turn ``pairs`` times after one warm-up call each.

    -> (wall, cpu, faults): wall-clock seconds; this process's CPU seconds (all its threads, user +
    system; time the machine gave to other processes is not in it, so a busy neighbour shows in wall,
    not in cpu); and the minor page faults of each call (fresh pages the kernel zeroed for it; empty
    lists where the OS does not count them).
    """
    wall: list[list[float]] = [[] for _ in fns]
    cpu: list[list[float]] = [[] for _ in fns]
    faults: list[list[int]] = [[] for _ in fns]
    for fn in fns:  # warm-up: allocator, thread pool, lazy imports
        fn()
    for _ in range(pairs):
        for side, fn in enumerate(fns):
            start, start_cpu, start_faults = time.perf_counter(), time.process_time(), minor_faults()
            fn()
            _sync(device)
            wall[side].append(time.perf_counter() - start)
            cpu[side].append(time.process_time() - start_cpu)
            if start_faults is not None:
                faults[side].append(minor_faults() - start_faults)
    return wall, cpu, faults


def _median(xs):
    """The median of a list, None for an empty one."""
    return statistics.median(xs) if xs else None


def paired_ratio(baseline: str, method: str, n: int, *, mode: str = "forward", pairs: int = 9, batch: int = 1,
                 heads: int = 4, d: int = 64, dtype=torch.float32, device="cpu", chunk_size: int = 64) -> dict:
    """How many times faster ``method`` is than ``baseline`` at one N, timed in alternating pairs.

    Each pair times one call of the baseline, then one of the method, back to back, so a change of the
    machine's load during the run reaches both sides of a ratio alike; the record keeps every pair's
    ratio t_baseline / t_method and their median and quartiles (the spread a reader should quote).
    Returns one record: {"method", "baseline", "n", "mode", "d", …, "ratios", "median_ratio", "q1_ratio",
    "q3_ratio", "median_s" (the method's), "baseline_median_s", "cpu_ratios", "median_cpu_ratio" (the same
    ratios in this process's CPU seconds: what a busy neighbour cannot move), "median_faults",
    "baseline_median_faults" (minor page faults a call), "status", "load_average"}.
    """
    check_number(pairs, "pairs", integer=True, minimum=3)
    kw = dict(mode=check_mode(mode), batch=batch, heads=heads, d=d, dtype=parse_dtype(dtype), device=device,
              chunk_size=chunk_size)
    times, cpu, faults = _alternate([build_call(check_method(m).name, n, **kw) for m in (baseline, method)], pairs,
                                    device)
    ratios = [b / m for b, m in zip(*times)]
    cpu_ratios = [b / m for b, m in zip(*cpu) if m > 0]
    q1, med, q3 = statistics.quantiles(ratios, n=4)
    return {"method": method, "baseline": baseline, "n": n, "mode": mode, "batch": batch, "heads": heads, "d": d,
            "dtype": dtype_name(kw["dtype"]), "device": str(torch.device(device)), "chunk_size": chunk_size,
            "status": "ok", "pairs": pairs, "ratios": ratios, "median_ratio": statistics.median(ratios),
            "q1_ratio": q1, "q3_ratio": q3, "median_s": statistics.median(times[1]),
            "baseline_median_s": statistics.median(times[0]), "cpu_ratios": cpu_ratios,
            "median_cpu_ratio": _median(cpu_ratios), "median_faults": _median(faults[1]),
            "baseline_median_faults": _median(faults[0]), "load_average": load_average()}


def paired_slope(method: str, n_small: int, n_large: int, *, mode: str = "forward+backward", pairs: int = 7,
                 batch: int = 1, heads: int = 4, d: int = 64, dtype=torch.float32, device="cpu",
                 chunk_size: int = 64) -> dict:
    """The log-log slope of ``method``'s time from ``n_small`` to ``n_large``, timed in alternating pairs.

    slope = log(t(n_large) / t(n_small)) / log(n_large / n_small) for each pair of back-to-back calls
    (1: linear, 2: quadratic), so load that drifts during the run reaches both lengths of a pair alike.
    Returns one record: {"method", "n" (= n_large), "n_small", "n_large", "mode", "d", …, "slopes" (one per pair),
    "median_slope", "q1_slope", "q3_slope", "median_s_small", "median_s_large", "cpu_slopes", "median_cpu_slope"
    (the same slopes in this process's CPU seconds), "median_faults_small", "median_faults_large" (minor page
    faults a call: memory the kernel had to hand over again), "status", "load_average"}.
    """
    check_number(pairs, "pairs", integer=True, minimum=3)
    check_number(n_small, "n_small", integer=True, minimum=1)
    check_number(n_large, "n_large", integer=True, minimum=n_small + 1)
    kw = dict(mode=check_mode(mode), batch=batch, heads=heads, d=d, dtype=parse_dtype(dtype), device=device,
              chunk_size=chunk_size)
    name = check_method(method).name
    (small, large), cpu, faults = _alternate([build_call(name, n, **kw) for n in (n_small, n_large)], pairs, device)
    slope = lambda a, b: math.log(b / a) / math.log(n_large / n_small)  # noqa: E731 (1: linear, 2: quadratic)
    slopes = [slope(a, b) for a, b in zip(small, large)]
    cpu_slopes = [slope(a, b) for a, b in zip(*cpu) if a > 0 and b > 0]
    q1, _, q3 = statistics.quantiles(slopes, n=4)
    return {"method": method, "n": n_large, "n_small": n_small, "n_large": n_large, "mode": mode, "batch": batch, "heads": heads,
            "d": d, "dtype": dtype_name(kw["dtype"]), "device": str(torch.device(device)), "chunk_size": chunk_size,
            "status": "ok", "pairs": pairs, "slopes": slopes, "median_slope": statistics.median(slopes),
            "q1_slope": q1, "q3_slope": q3, "median_s_small": statistics.median(small),
            "median_s_large": statistics.median(large), "cpu_slopes": cpu_slopes,
            "median_cpu_slope": _median(cpu_slopes), "median_faults_small": _median(faults[0]),
            "median_faults_large": _median(faults[1]), "load_average": load_average()}


# Decode: one token at context N -----------------------------------------------------------------
def _rand_on(device, seed: int):
    """randn(*shape) on ``device`` from a seeded generator there (CPU generator for a CPU device)."""
    gen = torch.Generator(device=torch.device(device)).manual_seed(seed)
    return lambda dtype, *s: torch.randn(s, generator=gen, device=torch.device(device)).to(dtype)


def _kv_cache_step(context: int, *, batch, heads, d, dtype, device, seed=0):
    """A softmax decoder step at context N: write k_t, v_t into slot N of the cache, attend over N + 1 keys."""
    rand = _rand_on(device, seed)
    cache_k, cache_v = rand(dtype, batch, heads, context + 1, d), rand(dtype, batch, heads, context + 1, d)  # (B, H, N+1, d)
    q_t, k_t, v_t = (rand(dtype, batch, heads, 1, d) for _ in range(3))  # (B, H, 1, d) each

    def step():
        with torch.no_grad():
            cache_k[:, :, context:] = k_t  # append: (B, H, 1, d) into slot N
            cache_v[:, :, context:] = v_t
            return softmax_attention(q_t, cache_k, cache_v)  # (B, H, 1, d) over (B, H, N+1, d) -> (B, H, 1, d)
    nbytes = kv_cache_bytes(layers=1, kv_heads=heads, head_dim=d, tokens=context + 1, batch=batch, dtype=dtype)
    return step, nbytes


def _recurrent_step(context: int, *, batch, heads, d, dtype, device, seed=0):
    """A linear-attention decoder step after prefilling N tokens: S += φ(k_t)v_tᵀ, out = φ(q_t)ᵀS / φ(q_t)ᵀz."""
    rand = _rand_on(device, seed)
    state_dtype = compute_dtype(dtype)  # the state accumulates in float32 for half-precision models
    state = LinearAttentionState(d, d, feature_map=FEATURE_MAP, batch_shape=(batch, heads), dtype=state_dtype, device=device)
    with torch.no_grad():
        state.prefill(*(rand(dtype, batch, heads, context, d) for _ in range(3)))  # 3 × (B, H, N, d): S, z after N
    q_t, k_t, v_t = (rand(dtype, batch, heads, d) for _ in range(3))  # (B, H, d) each

    def step():
        with torch.no_grad():
            return state.step(q_t, k_t, v_t)  # (B, H, d)
    nbytes = linear_state_bytes(layers=1, heads=heads, d_phi=state.S.shape[-2], d_v=d, batch=batch,
                                dtype=state_dtype, include_z=True)
    return step, nbytes


def _gated_delta_step(context: int, *, batch, heads, d, dtype, device, seed=0):
    """A Gated DeltaNet decoder step after prefilling N tokens: DeltaState.step (checks included)."""
    rand = _rand_on(device, seed)
    state_dtype = compute_dtype(dtype)
    state = DeltaState(d, d, batch_shape=(batch, heads), dtype=state_dtype, device=device)
    gate = lambda *shape: torch.full(shape, 0.5, dtype=dtype, device=device)  # noqa: E731  β = 0.5, g = log 0.5
    with torch.no_grad():
        state.prefill(*(rand(dtype, batch, heads, context, d) for _ in range(3)), gate(batch, heads, context),
                      log_decay=gate(batch, heads, context).log())
    q_t, k_t, v_t = (rand(dtype, batch, heads, d) for _ in range(3))  # (B, H, d) each
    beta_t, g_t = gate(batch, heads), gate(batch, heads).log()  # (B, H) each

    def step():
        with torch.no_grad():
            return state.step(q_t, k_t, v_t, beta_t, g_t)  # (B, H, d)
    return step, state.nbytes()


def _hf_gated_delta_step(context: int, *, batch, heads, d, dtype, device, seed=0):
    """transformers' recurrent Gated DeltaNet step (torch_recurrent_gated_delta_rule, one token) from a state."""
    from transformers.models.qwen3_next.modeling_qwen3_next import torch_recurrent_gated_delta_rule

    rand = _rand_on(device, seed)
    s0 = rand(torch.float32, batch, heads, d, d) * d ** -0.5  # (B, H, d, d): some state after N tokens
    q_t, k_t, v_t = (rand(dtype, batch, 1, heads, d) for _ in range(3))  # (B, 1, H, d): its layout
    beta_t, g_t = (torch.full((batch, 1, heads), x, dtype=dtype, device=device) for x in (0.5, -0.69))

    def step():
        with torch.no_grad():
            return torch_recurrent_gated_delta_rule(q_t, k_t, v_t, g_t, beta_t, initial_state=s0,
                                                    output_final_state=True, use_qk_l2norm_in_kernel=True)[0]
    return step, s0.numel() * s0.element_size()


DECODERS = {"kv_cache": _kv_cache_step, "recurrent": _recurrent_step, "gated_delta": _gated_delta_step,
            "hf_gated_delta": _hf_gated_delta_step}
#: measured by default: the softmax cache against the linear state (the other steps on request)
DEFAULT_DECODERS = ("kv_cache", "recurrent")


def decode_sweep(contexts: Iterable[int] = (1024, 4096, 16384, 65536), *, batch: int = 1, heads: int = 4,
                 d: int = 64, dtype=torch.float32, device="cpu", min_repeats: int = 20,
                 min_run_time: float = 0.3, measure_memory: bool = True, progress: bool = True,
                 decoders: Sequence[str] = DEFAULT_DECODERS) -> Results:
    """Per-token decode step time and memory at each context N: KV-cache softmax vs recurrent state.

    decoders: which steps of :data:`DECODERS` to time — "kv_cache", "recurrent" (LinearAttentionState.step),
    "gated_delta" (DeltaState.step with a gate, its checks included) and "hf_gated_delta" (transformers'
    recurrent Gated DeltaNet step; needs the transformers package).
    Records: method (the decoder), n = context, mode "decode", median_s / iqr_s per
    step (and the noise flag), state_bytes (the cache 2·B·H·(N+1)·d·e, or S and z:
    B·H·d_φ·(d_v + 1)·e) and peak_bytes (extra allocation of one step).
    """
    dt = parse_dtype(dtype)
    meta = run_metadata(device=device, dtype=dt, batch=batch, heads=heads, d=d, feature_map=FEATURE_MAP,
                        benchmark="decode")
    records = []
    unknown = [m for m in decoders if m not in DECODERS]
    if unknown or not decoders:
        raise ValueError(f"decoders must be names from {list(DECODERS)}; got {list(decoders)!r}")
    if "hf_gated_delta" in decoders:
        hf.require(device)
    points = [(n, m) for n in sorted(set(int(c) for c in contexts)) for m in decoders]
    for n, method in _progress(points, progress, "decode"):
        step, nbytes = DECODERS[method](n, batch=batch, heads=heads, d=d, dtype=dt, device=device)
        timing = time_call(step, device=device, warmup=3, min_repeats=min_repeats, min_run_time=min_run_time)
        records.append({"method": method, "n": n, "mode": "decode", "batch": batch, "heads": heads, "d": d,
                        "dtype": dtype_name(dt), "device": str(torch.device(device)), "status": "ok",
                        **{k: timing[k] for k in _TIMING_KEYS}, "state_bytes": nbytes,
                        "peak_bytes": peak_memory(step, device=device) if measure_memory else None})
        del step
    meta["load_average_1m_end"] = load_average()
    return Results(records=records, metadata=meta)
