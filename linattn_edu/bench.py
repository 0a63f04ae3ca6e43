"""Timing and peak memory of attention forms as the sequence grows; ``python -m linattn_edu.bench``.

What one measured point is (method m at length N, forward or forward+backward):

1. **Guard.**  Predict the method's peak extra memory from its formula (:func:`predict_peak_bytes`;
   e.g. naive softmax holds ~3 dense (B, H, N, N) tensors) and skip the point, recorded as
   ``"skipped: would need X GiB > budget Y GiB"``, instead of crashing.  Predict its time from the
   method's previous point, t(N) ≈ t(N₀)·(N/N₀)^p (p = 2 for quadratic forms, 1 for linear ones),
   and skip when the point would not fit the per-point time budget.
2. **Warm-up.**  Call once (first calls pay for allocation, thread-pool start-up, dispatch caches).
3. **Time.**  ``torch.utils.benchmark.Timer`` (it synchronises CUDA before reading the clock),
   blocked_autorange for fast calls, one call per sample for slow ones, at least ``min_repeats``
   samples when the budget allows; report the **median** and the **IQR** (p75 − p25) of the samples.
4. **Peak memory** (one more call): CUDA: ``torch.cuda.max_memory_allocated`` after
   ``reset_peak_memory_stats``, minus what was allocated before.  CPU: torch has no allocator
   statistics, so the call runs under ``torch.profiler.profile(profile_memory=True)`` and the peak
   of the running sum of its allocation/free events is taken.  Limits of the CPU method: it sees
   tensor storages allocated by torch's CPU allocator during the call only (not Python objects,
   not allocator caching or fragmentation, not the OS view: an untouched ``torch.empty`` counts
   here but not in RSS); the profiler slows the call (which is why it is a separate call) and its
   first use costs a few seconds of start-up.

Records are tidy dicts (one per method × N × mode) inside a :class:`Results` with the run's
metadata (device name, torch version, dtype, threads, date, git revision, load average), saved
as JSON or CSV and read back by :meth:`Results.load`.

CLI (each prints the issue's targets as met/missed with numbers)::

    python -m linattn_edu.bench            # = headline
    python -m linattn_edu.bench headline   # chunkwise vs SDPA at N=16384, forward and forward+backward
    python -m linattn_edu.bench sweep --out artifacts/sweep.json
    python -m linattn_edu.bench slopes     # log-log slopes over N in [2k, 32k] and the crossover N
    python -m linattn_edu.bench decode     # per-token step: KV-cache softmax vs recurrent state
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as _dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch.utils import benchmark

from . import __version__
from ._checks import MemoryBudgetError
from .linear import linear_attention
from .memory import format_bytes, kv_cache_bytes, linear_state_bytes
from .recurrent import LinearAttentionState
from .softmax import softmax_attention
from .window import sliding_window_attention

__all__ = [
    "METHODS", "MODES", "Method", "Results", "Target",
    "log_grid", "make_inputs", "build_call", "predict_peak_bytes", "predict_seconds",
    "time_call", "peak_memory", "measure_point", "sweep", "decode_sweep",
    "fit_loglog_slope", "slopes", "fit_theory_constant", "crossover_n",
    "chunkwise_flops", "matmul_gflops", "headline", "run_metadata", "main",
]

GiB = 2**30
MODES = ("forward", "forward+backward")
FEATURE_MAP = "elu+1"


# 1. The methods ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Method:
    """One attention implementation under test (all causal, SDPA tensor convention).

    exponent: theoretical growth of time with N (2: quadratic, 1: linear) used to extrapolate
    the time of the next point.  max_n: largest N worth running (the recurrent token loop is
    a Python loop: short N only).
    """

    name: str
    label: str
    exponent: int
    max_n: int | None = None


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("softmax", "naive softmax (dense N×N)", 2),
        Method("sdpa", "torch SDPA (flash, fused)", 2),
        Method("linear_quadratic", "linear, quadratic form", 2),
        Method("chunkwise", "linear, chunkwise", 1),
        Method("recurrent", "linear, recurrent (token loop)", 1, max_n=1024),
        Method("window", "sliding window", 1),
    )
}


def _check_method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}; got {name!r}")
    return METHODS[name]


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
    return mode


def _dtype(dtype) -> torch.dtype:
    """torch.dtype from a dtype or a name ('float32', 'fp16', 'bf16', ...)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"float32": torch.float32, "fp32": torch.float32, "float64": torch.float64,
             "fp64": torch.float64, "float16": torch.float16, "fp16": torch.float16,
             "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if not isinstance(dtype, str) or dtype.lower() not in names:
        raise ValueError(f"dtype must be a torch floating dtype or one of {sorted(names)}; got {dtype!r}")
    return names[dtype.lower()]


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def log_grid(n_min: int, n_max: int, points_per_octave: int = 1) -> list[int]:
    """Sequence lengths n_min·2^(i/p) up to n_max, rounded to multiples of 16 (all powers of two when p = 1).

    >>> log_grid(256, 2048)
    [256, 512, 1024, 2048]
    """
    for name, value in (("n_min", n_min), ("n_max", n_max), ("points_per_octave", points_per_octave)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1; got {value!r}")
    if n_max < n_min:
        raise ValueError(f"n_max must be >= n_min = {n_min}; got {n_max}")
    steps = int(math.floor(points_per_octave * math.log2(n_max / n_min) + 1e-9))
    grid = {n_min}
    for i in range(1, steps + 1):
        n = n_min * 2 ** (i / points_per_octave)
        grid.add(int(round(n)) if n < 64 else int(16 * round(n / 16)))
    return sorted(g for g in grid if g <= n_max)


def make_inputs(n: int, *, batch: int = 1, heads: int = 4, d: int = 64, dtype=torch.float32,
                device="cpu", requires_grad: bool = False, seed: int = 0):
    """q, k, v ~ N(0, 1) of shape (batch, heads, n, d), seeded, optionally requiring grad."""
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, heads, n, d)
    dt = _dtype(dtype)
    qkv = [torch.randn(shape, generator=gen).to(device=device, dtype=dt) for _ in range(3)]  # 3 × (B, H, N, d)
    for t in qkv:
        t.requires_grad_(requires_grad)
    return tuple(qkv)


def _attention(method: str, *, chunk_size: int, window: int) -> Callable:
    """The forward function ``f(q, k, v) -> out`` of a method, causal."""
    if method == "softmax":
        return lambda q, k, v: softmax_attention(q, k, v, causal=True)
    if method == "sdpa":
        return lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)
    if method == "linear_quadratic":
        return lambda q, k, v: linear_attention(q, k, v, FEATURE_MAP, causal=True, form="quadratic")
    if method == "chunkwise":
        return lambda q, k, v: linear_attention(q, k, v, FEATURE_MAP, causal=True, form="chunkwise",
                                                chunk_size=chunk_size)
    if method == "recurrent":
        return lambda q, k, v: linear_attention(q, k, v, FEATURE_MAP, causal=True, form="recurrent")
    if method == "window":
        return lambda q, k, v: sliding_window_attention(q, k, v, window=window, causal=True)
    raise ValueError(f"method must be one of {list(METHODS)}; got {method!r}")


def build_call(method: str, n: int, *, mode: str = "forward", batch: int = 1, heads: int = 4, d: int = 64,
               dtype=torch.float32, device="cpu", chunk_size: int = 64, window: int = 256,
               seed: int = 0) -> Callable[[], object]:
    """A zero-argument callable running one forward (under no_grad) or one forward+backward.

    forward+backward = out = f(q, k, v); torch.autograd.grad(out, (q, k, v), g) with a fixed
    random g of out's shape (no .grad accumulation between calls).
    """
    _check_method(method)
    _check_mode(mode)
    f = _attention(method, chunk_size=chunk_size, window=window)
    q, k, v = make_inputs(n, batch=batch, heads=heads, d=d, dtype=dtype, device=device,
                          requires_grad=mode != "forward", seed=seed)  # (B, H, N, d) each
    if mode == "forward":
        def forward():
            with torch.no_grad():
                return f(q, k, v)  # (B, H, N, d)
        return forward
    gen = torch.Generator().manual_seed(seed + 1)
    grad_out = torch.randn(v.shape, generator=gen).to(v)  # (B, H, N, d), seeded like the inputs

    def forward_backward():
        out = f(q, k, v)  # (B, H, N, d)
        return torch.autograd.grad(out, (q, k, v), grad_out)  # 3 × (B, H, N, d)
    return forward_backward


# 2. Guards: predicted memory and time -----------------------------------------------------------
def predict_peak_bytes(method: str, n: int, *, mode: str = "forward", batch: int = 1, heads: int = 4,
                       d: int = 64, dtype=torch.float32, chunk_size: int = 64, window: int = 256) -> int:
    """Predicted peak extra bytes of one call (inputs excluded), from each method's formula.

    With bh = batch·heads, e = bytes per element (float32 compute for half inputs):
      softmax, linear_quadratic: dense (bh, N, N) scores / weights: k·bh·N²·e (k = 4 / 3 forward,
          7 / 6 with backward) plus a bool N×N mask;
      sdpa (flash): O(bh·N·d) (output, log-sum-exp; gradients with backward);
      chunkwise: O(bh·N·(d + C)) (chunked features, the (N/C)·C×C intra-chunk scores) +
          (N/C)·d² chunk states;  recurrent: O(bh·N·d) forward, bh·N·d² states saved for backward;
      window: O(bh·N·w) band of scores (N rounded up to a multiple of w).
    The coefficients are upper-ish fits to profiler measurements at small N (tests keep the
    prediction within 0.5–3× of the measurement).
    """
    _check_method(method)
    back = _check_mode(mode) != "forward"
    e = max(torch.empty((), dtype=_dtype(dtype)).element_size(), 4)  # forms compute in float32 for halves
    bh, nd = batch * heads, batch * heads * n * d
    io = (4 if back else 1) * nd * e  # output (and three input gradients)
    if method in ("softmax", "linear_quadratic"):
        k = {"softmax": (4, 7), "linear_quadratic": (3, 6)}[method][back]
        return k * bh * n * n * e + n * n + io + 4 * nd * e
    if method == "sdpa":
        return io + (3 if back else 1) * nd * e + 2 * bh * n * e
    if method == "chunkwise":
        c = min(chunk_size, n)
        chunks = -(-n // c)
        per = (10 if back else 6) * nd * e + (3 if back else 2) * bh * chunks * c * c * e
        return io + per + (2 if back else 1) * bh * chunks * d * d * e
    if method == "recurrent":
        return io + (6 * nd + (bh * n * d * d if back else 0)) * e
    n_pad = -(-n // window) * window  # the band is computed in blocks of w: N rounds up to a multiple of w
    return io + (7 if back else 4) * bh * n_pad * 2 * window * e + 6 * nd * e  # window


def predict_seconds(method: str, n: int, previous: tuple[int, float] | None) -> float | None:
    """t(N) ≈ t(N₀)·(N/N₀)^p from the previous measured point (N₀, t₀); None without one."""
    if previous is None:
        return None
    n0, t0 = previous
    return t0 * (n / n0) ** METHODS[method].exponent


# 3. Measuring: time and peak memory --------------------------------------------------------------
def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_call(fn: Callable[[], object], *, device="cpu", warmup: int = 1, min_repeats: int = 5,
              min_run_time: float = 0.2, budget_s: float | None = None) -> dict:
    """Median and IQR (seconds) of ``fn`` after ``warmup`` calls.

    Fast calls: ``Timer.blocked_autorange(min_run_time)`` (blocks of many calls, each sample is
    a block's mean).  Slow calls (one call × min_repeats > min_run_time): one call per sample,
    ``min_repeats`` samples, fewer if ``budget_s`` would be exceeded (never fewer than one).
    Returns {"median_s", "iqr_s", "repeats", "first_call_s", "samples"}.
    """
    for _ in range(max(0, warmup - 1)):
        fn()
    _sync(device)
    start = time.perf_counter()
    fn()  # the last warm-up call, timed to plan the measurement
    _sync(device)
    first = time.perf_counter() - start
    # Timer runs on ONE thread unless told otherwise: time with the threads the caller set up.
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    if first * min_repeats > min_run_time:
        fits = min_repeats if budget_s is None else int(max(budget_s - first * warmup, 0.0) // first)
        count = max(1, min(min_repeats, fits))
        samples = [timer.timeit(1).times[0] for _ in range(count)]
    else:
        samples = list(timer.blocked_autorange(min_run_time=min_run_time).times)
        while len(samples) < min_repeats:
            samples += list(timer.blocked_autorange(min_run_time=min_run_time).times)
    q1, q2, q3 = statistics.quantiles(samples, n=4) if len(samples) > 1 else (samples[0],) * 3
    return {"median_s": statistics.median(samples), "iqr_s": q3 - q1, "repeats": len(samples),
            "first_call_s": first, "samples": samples}


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 (the profiler's C++ start/stop log lines), restore it after."""
    try:
        saved = os.dup(2)
    except OSError:  # pragma: no cover - no fd 2
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            sys.stderr.flush()
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _cpu_peak_bytes(fn: Callable[[], object]) -> int:
    """Peak of the running sum of CPU allocator events recorded by torch.profiler during fn()."""
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr():
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"
              and e.device_type() == torch.autograd.DeviceType.CPU]
    live = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        live += e.nbytes()  # allocation > 0, free < 0
        peak = max(peak, live)
    return peak


def peak_memory(fn: Callable[[], object], *, device="cpu") -> int:
    """Peak extra bytes allocated during one call of ``fn`` (see the module docstring for the method)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    return _cpu_peak_bytes(fn)


def measure_point(method: str, n: int, *, mode: str = "forward", batch: int = 1, heads: int = 4, d: int = 64,
                  dtype=torch.float32, device="cpu", chunk_size: int = 64, window: int = 256,
                  memory_budget: int = 4 * GiB, time_budget_s: float | None = 20.0,
                  previous: tuple[int, float] | None = None, warmup: int = 1, min_repeats: int = 5,
                  min_run_time: float = 0.2, measure_memory: bool = True) -> dict:
    """One tidy record: guard, warm up, time, then (optionally) measure peak memory.

    status is "ok", "skipped: would need X > budget Y", "skipped: predicted ...", "skipped: N > max_n"
    or "error: ..." (the point's failure is recorded, the sweep goes on).
    """
    spec = _check_method(method)
    _check_mode(mode)
    dt = _dtype(dtype)
    record = {"method": method, "n": n, "mode": mode, "batch": batch, "heads": heads, "d": d,
              "dtype": _dtype_name(dt), "device": str(torch.device(device)), "causal": True,
              "chunk_size": chunk_size if method == "chunkwise" else None,
              "window": window if method == "window" else None,
              "status": "ok", "median_s": None, "iqr_s": None, "repeats": 0, "peak_bytes": None}
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
                        chunk_size=chunk_size, window=window)
        timing = time_call(fn, device=device, warmup=warmup, min_repeats=min_repeats,
                           min_run_time=min_run_time, budget_s=time_budget_s)
        record.update({k: timing[k] for k in ("median_s", "iqr_s", "repeats")})
        if measure_memory:
            record["peak_bytes"] = peak_memory(fn, device=device)
    except MemoryBudgetError as exc:  # the core's own dense-tensor guard
        record["status"] = f"skipped: {exc}"
    except (RuntimeError, ValueError, TypeError) as exc:  # e.g. out of memory: record and go on
        record["status"] = f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return record


# 4. Records with metadata ------------------------------------------------------------------------
def _device_name(device) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_revision() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def run_metadata(*, device="cpu", dtype=torch.float32, **extra) -> dict:
    """Where and when a measurement ran: device name, torch version, dtype, threads, date (UTC), git revision."""
    meta = {
        "device": str(torch.device(device)),
        "device_name": _device_name(device),
        "torch_version": torch.__version__,
        "linattn_edu_version": __version__,
        "python_version": platform.python_version(),
        "dtype": _dtype_name(_dtype(dtype)),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git_revision": _git_revision(),
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "memory_method": ("torch.cuda.max_memory_allocated" if torch.device(device).type == "cuda"
                          else "torch.profiler profile_memory: peak of CPU allocator events"),
        "timer": "torch.utils.benchmark.Timer, median and IQR",
    }
    meta.update(extra)
    return meta


@dataclass
class Results:
    """Tidy records (one dict per method × N × mode) and the run's metadata; save/load as JSON or CSV."""

    records: list[dict] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)

    def select(self, *, ok: bool = False, **match) -> list[dict]:
        """Records whose fields equal ``match`` (e.g. method="sdpa", mode="forward"); ok=True keeps measured ones."""
        rows = [r for r in self.records if all(r.get(k) == v for k, v in match.items())]
        return [r for r in rows if r.get("status") == "ok"] if ok else rows

    def series(self, method: str, mode: str = "forward", key: str = "median_s") -> tuple[list[int], list[float]]:
        """(N values, ``key`` values) of the measured points of one method and mode, sorted by N."""
        rows = sorted(self.select(ok=True, method=method, mode=mode), key=lambda r: r["n"])
        rows = [r for r in rows if r.get(key) is not None]
        return [r["n"] for r in rows], [float(r[key]) for r in rows]

    def methods(self) -> list[str]:
        return list(dict.fromkeys(r["method"] for r in self.records))

    def save(self, path) -> Path:
        """Write ``.json`` ({"metadata", "records"}) or ``.csv`` (records, metadata as ``meta_*`` columns)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".json":
            path.write_text(json.dumps({"metadata": self.metadata, "records": self.records}, indent=1) + "\n")
        elif path.suffix == ".csv":
            keys = list(dict.fromkeys(k for r in self.records for k in r))
            meta = {f"meta_{k}": v for k, v in self.metadata.items()}
            with path.open("w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=keys + list(meta))
                writer.writeheader()
                for r in self.records:
                    writer.writerow({**{k: ("" if r.get(k) is None else r.get(k)) for k in keys}, **meta})
        else:
            raise ValueError(f"path must end in .json or .csv; got {path.name!r}")
        return path

    @classmethod
    def load(cls, path) -> "Results":
        """Read what :meth:`save` wrote (numbers come back as int/float, empty CSV cells as None)."""
        path = Path(path)
        if path.suffix == ".json":
            data = json.loads(path.read_text())
            return cls(records=data["records"], metadata=data["metadata"])
        if path.suffix != ".csv":
            raise ValueError(f"path must end in .json or .csv; got {path.name!r}")
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        meta = {k[5:]: _parse_cell(v) for k, v in rows[0].items() if k.startswith("meta_")} if rows else {}
        records = [{k: _parse_cell(v) for k, v in r.items() if not k.startswith("meta_")} for r in rows]
        return cls(records=records, metadata=meta)


def _parse_cell(text: str):
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


# 5. Sweeps --------------------------------------------------------------------------------------
def _progress(items: list, enabled: bool, desc: str):
    if not enabled:
        return items
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is in the [bench] extra; without it, no bar
        return items
    return tqdm(items, desc=desc)


def sweep(methods: Sequence[str] = ("softmax", "sdpa", "linear_quadratic", "chunkwise", "recurrent", "window"),
          ns: Iterable[int] = (256, 512, 1024, 2048), *, modes: Sequence[str] = ("forward",),
          batch: int = 1, heads: int = 4, d: int = 64, dtype=torch.float32, device="cpu",
          chunk_size: int = 64, window: int = 256, memory_budget: int = 4 * GiB,
          time_budget_s: float | None = 20.0, min_repeats: int = 5, min_run_time: float = 0.2,
          measure_memory: bool = True, progress: bool = True) -> Results:
    """Measure every method × N × mode; N is the outer loop so that methods at one N run back to back.

    Each method's previous measured point (per mode) feeds the time guard of its next one.
    """
    methods = [_check_method(m).name for m in methods]
    modes = [_check_mode(m) for m in modes]
    ns = sorted(set(int(n) for n in ns))
    meta = run_metadata(device=device, dtype=dtype, batch=batch, heads=heads, d=d, chunk_size=chunk_size,
                        window=window, memory_budget_bytes=memory_budget, time_budget_s=time_budget_s,
                        feature_map=FEATURE_MAP, causal=True)
    previous: dict[tuple[str, str], tuple[int, float]] = {}
    points = [(n, mode, m) for n in ns for mode in modes for m in methods]
    records = []
    for n, mode, method in _progress(points, progress, "sweep"):
        rec = measure_point(method, n, mode=mode, batch=batch, heads=heads, d=d, dtype=dtype, device=device,
                            chunk_size=chunk_size, window=window, memory_budget=memory_budget,
                            time_budget_s=time_budget_s, previous=previous.get((method, mode)),
                            min_repeats=min_repeats, min_run_time=min_run_time, measure_memory=measure_memory)
        if rec["status"] == "ok":
            previous[(method, mode)] = (n, rec["median_s"])
        records.append(rec)
    meta["load_average_1m_end"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    return Results(records=records, metadata=meta)


# 6. Analysis: slopes, theory constants, crossover -----------------------------------------------
def fit_loglog_slope(ns: Sequence[float], ts: Sequence[float]) -> tuple[float, float]:
    """Least-squares fit log t = slope · log N + intercept; returns (slope, intercept). Needs >= 2 points."""
    if len(ns) != len(ts) or len(ns) < 2:
        raise ValueError(f"need >= 2 (N, t) pairs of equal length; got {len(ns)} N and {len(ts)} t")
    if min(ns) <= 0 or min(ts) <= 0:
        raise ValueError("N and t must be positive for a log-log fit")
    x = [math.log(n) for n in ns]
    y = [math.log(t) for t in ts]
    mx, my = statistics.fmean(x), statistics.fmean(y)
    sxx = sum((a - mx) ** 2 for a in x)
    if sxx == 0:
        raise ValueError("need at least two distinct N for a slope")
    slope = sum((a - mx) * (b - my) for a, b in zip(x, y)) / sxx
    return slope, my - slope * mx


def slopes(results: Results, *, mode: str = "forward", n_min: int = 2048, n_max: int = 32768) -> dict[str, float]:
    """Log-log slope of median time vs N per method, over measured points with n_min <= N <= n_max."""
    out = {}
    for method in results.methods():
        ns, ts = results.series(method, mode)
        pairs = [(n, t) for n, t in zip(ns, ts) if n_min <= n <= n_max]
        if len({n for n, _ in pairs}) >= 2:
            out[method] = fit_loglog_slope([n for n, _ in pairs], [t for _, t in pairs])[0]
    return out


def fit_theory_constant(ns: Sequence[float], ts: Sequence[float], exponent: float) -> float:
    """c in t ≈ c·N^exponent, fitted in log space (geometric mean of t / N^exponent)."""
    if not ns or len(ns) != len(ts):
        raise ValueError(f"need >= 1 (N, t) pairs of equal length; got {len(ns)} N and {len(ts)} t")
    return math.exp(statistics.fmean(math.log(t) - exponent * math.log(n) for n, t in zip(ns, ts)))


def crossover_n(results: Results, *, fast: str = "chunkwise", slow: str = "sdpa",
                mode: str = "forward") -> float | None:
    """N at which ``fast`` becomes and stays faster than ``slow`` (log-linear interpolation).

    Over the N both measured: the last sign change of log(t_fast / t_slow) from >= 0 to < 0.
    Returns the smallest N if ``fast`` is faster everywhere, None if it never ends faster.
    """
    nf, tf = results.series(fast, mode)
    ns_, ts_ = results.series(slow, mode)
    common = sorted(set(nf) & set(ns_))
    if not common:
        return None
    diff = [math.log(tf[nf.index(n)] / ts_[ns_.index(n)]) for n in common]
    if diff[-1] >= 0:
        return None
    i = len(diff) - 1
    while i > 0 and diff[i - 1] < 0:
        i -= 1
    if i == 0:
        return float(common[0])
    x0, x1 = math.log(common[i - 1]), math.log(common[i])
    x = x0 + (0 - diff[i - 1]) * (x1 - x0) / (diff[i] - diff[i - 1])
    return math.exp(x)


# 7. The headline: chunkwise vs SDPA at 16k, FLOP rates, targets ----------------------------------
@dataclass(frozen=True)
class Target:
    """A measured value against a threshold: value >= threshold (op '>=') or value <= threshold."""

    name: str
    value: float
    op: str
    threshold: float
    unit: str = ""

    @property
    def met(self) -> bool:
        return self.value >= self.threshold if self.op == ">=" else self.value <= self.threshold

    @property
    def margin(self) -> float:
        """Relative slack: +0.2 = 20 % better than needed, -0.2 = 20 % short."""
        if self.op == ">=":
            return self.value / self.threshold - 1
        return self.threshold / self.value - 1

    def line(self) -> str:
        verdict = "met   " if self.met else "MISSED"
        return (f"  [{verdict}] {self.name}: {self.value:.3g}{self.unit} (target {self.op} "
                f"{self.threshold:g}{self.unit}, margin {self.margin:+.0%})")


def chunkwise_flops(n: int, d: int, chunk_size: int, *, heads: int = 1, batch: int = 1) -> int:
    """FLOPs of the causal chunkwise forward counted as N(4d² + 4Cd) per head.

    Per chunk of C tokens: K_cᵀV_c and Q_c S_c are 2Cd² each (4Cd² → 4d² per token), Q_cK_cᵀ and
    tril(·)V_c are 2C²d each (4C²d → 4Cd per token).
    """
    return batch * heads * n * (4 * d * d + 4 * chunk_size * d)


def matmul_gflops(size: int = 2048, *, device="cpu", dtype=torch.float32, min_run_time: float = 0.5) -> float:
    """Dense (size × size) @ (size × size) GFLOP/s (2·size³ FLOPs per product): the machine's yardstick."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device=device, dtype=_dtype(dtype))  # (s, s)
    b = torch.randn(size, size, generator=gen).to(device=device, dtype=_dtype(dtype))  # (s, s)
    t = time_call(lambda: a @ b, device=device, min_repeats=5, min_run_time=min_run_time)["median_s"]  # (s, s)
    return 2 * size**3 / t / 1e9


def headline(*, n: int = 16384, batch: int = 1, heads: int = 4, d: int = 64, chunk_size: int = 64,
             dtype=torch.float32, device="cpu", min_repeats: int = 5, progress: bool = False) -> dict:
    """Causal chunkwise vs SDPA at one N, forward and forward+backward, plus dense-matmul GFLOP/s, one run.

    Order: matmul, chunkwise fwd, SDPA fwd, chunkwise fwd+bwd, SDPA fwd+bwd, matmul again (the
    two matmul rates show how much the machine's speed drifted during the run).
    """
    out = {"n": n, "batch": batch, "heads": heads, "d": d, "chunk_size": chunk_size,
           "metadata": run_metadata(device=device, dtype=dtype)}
    out["matmul_gflops_before"] = matmul_gflops(device=device, dtype=dtype)
    kw = dict(batch=batch, heads=heads, d=d, dtype=dtype, device=device, chunk_size=chunk_size)
    steps = [(m, mode) for mode in MODES for m in ("chunkwise", "sdpa")]
    for method, mode in _progress(steps, progress, "headline"):
        fn = build_call(method, n, mode=mode, **kw)
        repeats = min_repeats if method == "chunkwise" else max(3, min_repeats // 2)  # SDPA calls take seconds
        out[(method, mode)] = time_call(fn, device=device, min_repeats=repeats, min_run_time=1.0)
    out["matmul_gflops_after"] = matmul_gflops(device=device, dtype=dtype)
    out["matmul_gflops"] = max(out["matmul_gflops_before"], out["matmul_gflops_after"])
    flops = chunkwise_flops(n, d, chunk_size, heads=heads, batch=batch)
    out["chunkwise_gflops"] = flops / out[("chunkwise", "forward")]["median_s"] / 1e9
    out["metadata"]["load_average_1m_end"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    return out


def headline_targets(h: dict) -> list[Target]:
    """The issue-2 and issue-5 targets evaluated on a :func:`headline` result."""
    cf, sf = h[("chunkwise", "forward")]["median_s"], h[("sdpa", "forward")]["median_s"]
    cb, sb = h[("chunkwise", "forward+backward")]["median_s"], h[("sdpa", "forward+backward")]["median_s"]
    return [
        Target("issue 2: chunkwise vs SDPA forward speed-up", sf / cf, ">=", 10, "×"),
        Target("chunkwise vs SDPA forward speed-up", sf / cf, ">=", 15, "×"),
        Target("chunkwise vs SDPA forward+backward speed-up", sb / cb, ">=", 15, "×"),
        Target("chunkwise forward time", cf * 1e3, "<=", 40, " ms"),
        Target("chunkwise forward+backward time", cb * 1e3, "<=", 110, " ms"),
        Target("chunkwise GFLOP/s ÷ dense matmul GFLOP/s", h["chunkwise_gflops"] / h["matmul_gflops"], ">=", 0.5),
    ]


# 8. Decode: one token at context N --------------------------------------------------------------
def _kv_cache_step(context: int, *, batch, heads, d, dtype, device, seed=0):
    """A softmax decoder step at context N: write k_t, v_t into slot N of the cache, attend over N + 1 keys."""
    gen = torch.Generator().manual_seed(seed)
    rand = lambda *s: torch.randn(s, generator=gen).to(device=device, dtype=dtype)  # noqa: E731
    cache_k, cache_v = rand(batch, heads, context + 1, d), rand(batch, heads, context + 1, d)  # (B, H, N+1, d)
    q_t, k_t, v_t = rand(batch, heads, 1, d), rand(batch, heads, 1, d), rand(batch, heads, 1, d)  # (B, H, 1, d)

    def step():
        with torch.no_grad():
            cache_k[:, :, context:] = k_t  # append: (B, H, 1, d) into slot N
            cache_v[:, :, context:] = v_t
            return softmax_attention(q_t, cache_k, cache_v)  # (B, H, 1, d) over (B, H, N+1, d) -> (B, H, 1, d)
    nbytes = kv_cache_bytes(layers=1, kv_heads=heads, head_dim=d, tokens=context + 1, batch=batch, dtype=dtype)
    return step, nbytes


def _recurrent_step(context: int, *, batch, heads, d, dtype, device, seed=0):
    """A linear-attention decoder step after prefilling N tokens: S += φ(k_t)v_tᵀ, out = φ(q_t)ᵀS / φ(q_t)ᵀz."""
    gen = torch.Generator().manual_seed(seed)
    rand = lambda *s: torch.randn(s, generator=gen).to(device=device, dtype=dtype)  # noqa: E731
    state = LinearAttentionState(FEATURE_MAP, d, d, batch_shape=(batch, heads), dtype=dtype, device=device)
    with torch.no_grad():
        state.prefill(rand(batch, heads, context, d), rand(batch, heads, context, d),
                      rand(batch, heads, context, d))  # 3 × (B, H, N, d): S, z after N tokens
    q_t, k_t, v_t = rand(batch, heads, d), rand(batch, heads, d), rand(batch, heads, d)  # (B, H, d)

    def step():
        with torch.no_grad():
            return state.step(q_t, k_t, v_t)  # (B, H, d)
    nbytes = linear_state_bytes(layers=1, heads=heads, d_phi=state.S.shape[-2], d_v=d, batch=batch,
                                dtype=dtype, include_z=True)
    return step, nbytes


DECODERS = {"kv_cache": _kv_cache_step, "recurrent": _recurrent_step}


def decode_sweep(contexts: Iterable[int] = (1024, 4096, 16384, 65536), *, batch: int = 1, heads: int = 4,
                 d: int = 64, dtype=torch.float32, device="cpu", min_repeats: int = 20,
                 min_run_time: float = 0.3, measure_memory: bool = True, progress: bool = True) -> Results:
    """Per-token decode step time and memory at each context N: KV-cache softmax vs recurrent state.

    Records: method ("kv_cache" | "recurrent"), n = context, mode "decode", median_s / iqr_s per
    step, state_bytes (the cache 2·B·H·(N+1)·d·e, or S and z: B·H·d_φ·(d_v + 1)·e) and peak_bytes
    (extra allocation of one step).
    """
    dt = _dtype(dtype)
    meta = run_metadata(device=device, dtype=dt, batch=batch, heads=heads, d=d, feature_map=FEATURE_MAP,
                        benchmark="decode")
    records = []
    points = [(n, m) for n in sorted(set(int(c) for c in contexts)) for m in DECODERS]
    for n, method in _progress(points, progress, "decode"):
        step, nbytes = DECODERS[method](n, batch=batch, heads=heads, d=d, dtype=dt, device=device)
        timing = time_call(step, device=device, warmup=3, min_repeats=min_repeats, min_run_time=min_run_time)
        records.append({"method": method, "n": n, "mode": "decode", "batch": batch, "heads": heads, "d": d,
                        "dtype": _dtype_name(dt), "device": str(torch.device(device)), "status": "ok",
                        "median_s": timing["median_s"], "iqr_s": timing["iqr_s"], "repeats": timing["repeats"],
                        "state_bytes": nbytes,
                        "peak_bytes": peak_memory(step, device=device) if measure_memory else None})
    return Results(records=records, metadata=meta)


def decode_targets(results: Results) -> list[Target]:
    """Recurrent step at the largest ÷ smallest context <= 1.2, KV-cache step grows >= 20×."""
    out = []
    for method, op, thr in (("recurrent", "<=", 1.2), ("kv_cache", ">=", 20)):
        ns, ts = results.series(method, "decode")
        if len(ns) >= 2:
            out.append(Target(f"{method} step time N={ns[-1]} ÷ N={ns[0]}", ts[-1] / ts[0], op, thr, "×"))
    return out


def slope_targets(sl: dict[str, float]) -> list[Target]:
    """Chunkwise log-log slope <= 1.15 and SDPA >= 1.8 (over N in [2k, 32k])."""
    out = []
    if "chunkwise" in sl:
        out.append(Target("chunkwise log-log slope over N in [2k, 32k]", sl["chunkwise"], "<=", 1.15))
    if "sdpa" in sl:
        out.append(Target("SDPA log-log slope over N in [2k, 32k]", sl["sdpa"], ">=", 1.8))
    return out


# 9. Printing and the command line ---------------------------------------------------------------
def _ms(t: float | None) -> str:
    return "-" if t is None else f"{t * 1e3:.3f}"


def format_metadata(meta: dict) -> str:
    keys = ("device_name", "torch_version", "dtype", "threads", "date", "git_revision", "load_average_1m",
            "load_average_1m_end")
    return "  ".join(f"{k}={meta[k]}" for k in keys if k in meta)


def format_table(results: Results) -> str:
    """Plain-text table of a sweep: method, N, mode, median ± IQR ms, peak and predicted memory, status."""
    lines = [f"{'method':18s} {'N':>7s} {'mode':17s} {'median ms':>11s} {'IQR ms':>9s} {'peak':>10s} "
             f"{'predicted':>10s}  status"]
    for r in results.records:
        peak = "-" if r.get("peak_bytes") is None else format_bytes(r["peak_bytes"])
        pred = "-" if r.get("predicted_bytes") is None else format_bytes(r["predicted_bytes"])
        lines.append(f"{r['method']:18s} {r['n']:>7d} {r['mode']:17s} {_ms(r.get('median_s')):>11s} "
                     f"{_ms(r.get('iqr_s')):>9s} {peak:>10s} {pred:>10s}  {r['status']}")
    return "\n".join(lines)


def print_headline(h: dict) -> list[Target]:
    print(f"# headline: causal, B={h['batch']}, H={h['heads']}, N={h['n']}, d={h['d']}, C={h['chunk_size']}, "
          f"feature map {FEATURE_MAP}")
    print("# " + format_metadata(h["metadata"]))
    for mode in MODES:
        c, s = h[("chunkwise", mode)], h[("sdpa", mode)]
        print(f"{mode:17s} chunkwise {_ms(c['median_s'])} ms (IQR {_ms(c['iqr_s'])}, n={c['repeats']})  "
              f"SDPA {_ms(s['median_s'])} ms (IQR {_ms(s['iqr_s'])}, n={s['repeats']})  "
              f"ratio {s['median_s'] / c['median_s']:.1f}×")
    print(f"dense fp32 matmul: {h['matmul_gflops_before']:.1f} GFLOP/s before, {h['matmul_gflops_after']:.1f} after; "
          f"chunkwise forward {h['chunkwise_gflops']:.1f} GFLOP/s (FLOPs = N(4d²+4Cd) per head)")
    targets = headline_targets(h)
    print("targets:")
    for t in targets:
        print(t.line())
    return targets


def _parse_ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: headline (default), sweep, slopes, decode.

    Exit status 0 when every target printed was met, 3 when one was missed (1 stays Python's
    status for an uncaught error, 2 argparse's for bad arguments).
    """
    parser = argparse.ArgumentParser(prog="python -m linattn_edu.bench", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    p_head = sub.add_parser("headline", help="chunkwise vs SDPA at N=16384 (forward, forward+backward)")
    _add_common(p_head)
    p_head.add_argument("--n", type=int, default=16384)
    p_head.add_argument("--chunk-size", type=int, default=64)
    p_head.add_argument("--repeats", type=int, default=5)
    p_sweep = sub.add_parser("sweep", help="time and memory of every method over a log grid of N")
    _add_common(p_sweep)
    p_sweep.add_argument("--methods", default=",".join(METHODS))
    p_sweep.add_argument("--ns", default="256,512,1024,2048,4096,8192")
    p_sweep.add_argument("--modes", default="forward,forward+backward")
    p_sweep.add_argument("--chunk-size", type=int, default=64)
    p_sweep.add_argument("--window", type=int, default=256)
    p_sweep.add_argument("--memory-budget-gib", type=float, default=4.0)
    p_sweep.add_argument("--time-budget-s", type=float, default=20.0)
    p_sweep.add_argument("--repeats", type=int, default=5)
    p_sweep.add_argument("--out", default=None, help=".json or .csv path for the records")
    p_slopes = sub.add_parser("slopes", help="log-log slopes over N in [2k, 32k] and the chunkwise/SDPA crossover")
    _add_common(p_slopes)
    p_slopes.add_argument("--ns", default="256,512,1024,2048,4096,8192,16384,32768")
    p_slopes.add_argument("--chunk-size", type=int, default=64)
    p_slopes.add_argument("--repeats", type=int, default=3)
    p_slopes.add_argument("--from", dest="source", default=None, help="analyse saved records instead of measuring")
    p_slopes.add_argument("--out", default=None)
    p_dec = sub.add_parser("decode", help="per-token decode step: KV-cache softmax vs recurrent state")
    _add_common(p_dec)
    p_dec.add_argument("--contexts", default="1024,4096,16384,65536")
    p_dec.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    command = args.command or "headline"
    if args.command is None:
        args = parser.parse_args(["headline", *(argv or [])])
    if args.threads:
        torch.set_num_threads(args.threads)
    progress = not args.no_progress
    if command == "headline":
        h = headline(n=args.n, batch=args.batch, heads=args.heads, d=args.d, chunk_size=args.chunk_size,
                     dtype=args.dtype, device=args.device, min_repeats=args.repeats, progress=progress)
        targets = print_headline(h)
    elif command == "sweep":
        res = sweep(args.methods.split(","), _parse_ints(args.ns), modes=args.modes.split(","), batch=args.batch,
                    heads=args.heads, d=args.d, dtype=args.dtype, device=args.device, chunk_size=args.chunk_size,
                    window=args.window, memory_budget=int(args.memory_budget_gib * GiB),
                    time_budget_s=args.time_budget_s, min_repeats=args.repeats, progress=progress)
        print("# " + format_metadata(res.metadata))
        print(format_table(res))
        sl = slopes(res, n_min=0, n_max=10**9)
        print("log-log slopes (forward, all N): " + ", ".join(f"{m} {s:.2f}" for m, s in sl.items()))
        cross = crossover_n(res)
        print(f"crossover (chunkwise faster than SDPA from N ≈): {'none' if cross is None else round(cross)}")
        targets = []
        if args.out:
            print(f"wrote {res.save(args.out)}")
    elif command == "slopes":
        if args.source:
            res = Results.load(args.source)
        else:
            res = sweep(("sdpa", "chunkwise"), _parse_ints(args.ns), batch=args.batch, heads=args.heads, d=args.d,
                        dtype=args.dtype, device=args.device, chunk_size=args.chunk_size, time_budget_s=None,
                        min_repeats=args.repeats, measure_memory=False, progress=progress)
        print("# " + format_metadata(res.metadata))
        print(format_table(res))
        sl = slopes(res)
        for m, s in sl.items():
            print(f"{m}: log-log slope {s:.3f} over N in [2048, 32768]")
        cross = crossover_n(res)
        print(f"crossover: chunkwise faster than SDPA from N ≈ {'none' if cross is None else round(cross)}")
        targets = slope_targets(sl)
        for t in targets:
            print(t.line())
        if args.out:
            print(f"wrote {res.save(args.out)}")
    else:
        res = decode_sweep(_parse_ints(args.contexts), batch=args.batch, heads=args.heads, d=args.d,
                           dtype=args.dtype, device=args.device, progress=progress)
        print("# " + format_metadata(res.metadata))
        for r in res.records:
            print(f"{r['method']:9s} context {r['n']:>6d}: {r['median_s'] * 1e3:.4f} ms/token "
                  f"(IQR {r['iqr_s'] * 1e3:.4f}), state {format_bytes(r['state_bytes'])}")
        targets = decode_targets(res)
        for t in targets:
            print(t.line())
        if args.out:
            print(f"wrote {res.save(args.out)}")
    return 0 if all(t.met for t in targets) else 3


if __name__ == "__main__":
    sys.exit(main())
