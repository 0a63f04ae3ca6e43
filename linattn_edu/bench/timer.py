"""Timing and peak memory of one callable: the one timing helper the notebooks and the CLI use.

:func:`time_call` (median, IQR and a noise flag of repeated calls):

1. **Warm-up.**  ``warmup`` calls first (allocation, thread-pool start-up, dispatch caches,
   autotuning, ``torch.compile``); the last one is timed to plan the measurement.
2. **Time.**  CPU: ``torch.utils.benchmark.Timer`` on the caller's thread count,
   ``blocked_autorange`` for fast calls, one call per sample for slow ones.  CUDA: CUDA events
   around blocks of calls (no host clock, no synchronisation inside a block); each sample is a
   block's mean.  At least ``min_repeats`` samples when the budget allows.
3. **Report** the median and the IQR (p75 − p25) of the samples, and ``noisy`` when
   IQR / median > :data:`NOISE_RATIO` or the 1-minute load average is at or above the core count
   (other programs compete for the cores: treat the number as a rough one).

:func:`peak_memory` (one more call): CUDA: ``torch.cuda.max_memory_allocated`` after
``reset_peak_memory_stats``, minus what was allocated before.  CPU: torch has no allocator
statistics, so the call runs under ``torch.profiler.profile(profile_memory=True)`` and the peak
of the running sum of its allocation/free events is taken.  Limits of the CPU method: it sees
tensor storages allocated by torch's CPU allocator during the call only (not Python objects,
not allocator caching or fragmentation, not the OS view: an untouched ``torch.empty`` counts
here but not in RSS); the profiler slows the call (which is why it is a separate call) and its
first use costs a few seconds of start-up.
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import sys
import time
from typing import Callable

import torch
from torch.utils import benchmark

from .._checks import check_number, parse_dtype

__all__ = ["NOISE_RATIO", "load_average", "machine_busy", "minor_faults", "keep_freed_memory", "allocator_setting",
           "preloaded_allocator", "time_call", "peak_memory", "matmul_gflops", "format_timing", "short_number"]

#: IQR / median above which a timing is flagged noisy
NOISE_RATIO = 0.10


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none)."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def minor_faults() -> int | None:
    """This process's minor page faults so far (None where the OS does not count them).

    A minor fault is the kernel handing the process a fresh, zeroed page on its first touch: a tensor
    allocated where freed memory went back to the kernel pays one per 4 KiB before any arithmetic.
    """
    try:
        import resource
    except ImportError:  # Windows
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


#: glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
#: how this process's malloc treats freed memory (a record's metadata says it)
_ALLOCATOR = ["the C library's defaults"]
#: allocators that replace malloc when preloaded (LD_PRELOAD): a piece of the library's file name -> its name
_REPLACEMENTS = {"libtcmalloc": "tcmalloc", "libjemalloc": "jemalloc", "libmimalloc": "mimalloc"}


def allocator_setting() -> str:
    """How this process's malloc treats freed memory: a preloaded replacement (tcmalloc, jemalloc, mimalloc,
    found among the libraries mapped into this process), else the C library's defaults or
    :func:`keep_freed_memory`'s setting."""
    replacement = preloaded_allocator()
    return f"{replacement[0]}, preloaded ({replacement[1]})" if replacement else _ALLOCATOR[0]


def preloaded_allocator(maps: str | None = None) -> tuple[str, str] | None:
    """(name, path) of a malloc replacement mapped into this process (Linux: /proc/self/maps), or None.

    maps: the text of a maps file (for tests); default this process's, or None where there is none.
    """
    if maps is None:
        try:
            with open("/proc/self/maps") as f:
                maps = f.read()
        except OSError:  # not Linux
            return None
    for line in maps.splitlines():
        fields = line.split()  # address, perms, offset, device, inode[, path]
        path = fields[-1] if fields else ""
        for piece, name in _REPLACEMENTS.items():
            if os.path.basename(path).startswith(piece):
                return name, path
    return None


def keep_freed_memory() -> str:
    """Make glibc's malloc keep freed memory for the next allocation instead of returning it to the kernel.

    By default glibc serves a block above its mmap threshold (128 KiB, adapting up to 32 MiB) with a fresh
    mmap and unmaps it when freed, and trims the heap's free top: every long-sequence call then faults
    its big tensors in again, page by page. Here: M_MMAP_MAX = 0 (every block from the heap) and
    M_TRIM_THRESHOLD = 2 GiB − 1 (the heap is not trimmed), as a caching allocator (tcmalloc, PyTorch's CUDA
    allocator) does (Debian's jemalloc 5.3 with its defaults faulted every 64 MiB block in again, as glibc
    does). The process keeps its peak memory. For this process only, from now on.
    -> the setting, in words (for a record's metadata). Raises RuntimeError where the C library is not glibc
    or another malloc is preloaded.
    """
    import ctypes
    import ctypes.util
    replacement = preloaded_allocator()
    if replacement:
        raise RuntimeError(f"malloc here is {replacement[0]} ({replacement[1]}), not glibc's: mallopt would change "
                           "nothing; leave out keep_freed_memory")
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError) as exc:
        raise RuntimeError(f"keep_freed_memory needs glibc's mallopt; this C library has none ({exc})") from None
    if not (mallopt(_M_MMAP_MAX, 0) and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)):
        raise RuntimeError("glibc's mallopt refused M_MMAP_MAX = 0 or M_TRIM_THRESHOLD = 2 GiB − 1")
    _ALLOCATOR[0] = "glibc malloc keeping freed memory (mallopt M_MMAP_MAX = 0, M_TRIM_THRESHOLD = 2 GiB − 1)"
    return _ALLOCATOR[0]


def machine_busy(load: float | None = None) -> bool:
    """True when the load average is at or above the number of cores: other work competes for them."""
    load = load_average() if load is None else load
    return load is not None and load >= (os.cpu_count() or 1)


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(torch.device(device))


def _cuda_samples(fn: Callable[[], object], first: float, *, min_repeats: int, min_run_time: float,
                  budget_s: float | None) -> list[float]:
    """Per-call seconds from CUDA events around blocks of calls (each block lasts >= ~1 ms)."""
    number = max(1, math.ceil(1e-3 / max(first, 1e-7)))
    block = first * number
    count = max(min_repeats, math.ceil(min_run_time / block))
    if budget_s is not None:
        count = max(1, min(count, int(budget_s // block)))
    count = min(count, max(min_repeats, 200))
    samples = []
    for _ in range(count):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(number):
            fn()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / 1e3 / number)
    return samples


def _cpu_samples(fn: Callable[[], object], first: float, *, warmup: int, min_repeats: int,
                 min_run_time: float, budget_s: float | None) -> list[float]:
    """Per-call seconds from torch's Timer (on the caller's thread count; it defaults to one)."""
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    if first * min_repeats > min_run_time:  # slow calls: one call per sample
        fits = min_repeats if budget_s is None else int(max(budget_s - first * warmup, 0.0) // first)
        return [timer.timeit(1).times[0] for _ in range(max(1, min(min_repeats, fits)))]
    samples = list(timer.blocked_autorange(min_run_time=min_run_time).times)
    while len(samples) < min_repeats:
        samples += list(timer.blocked_autorange(min_run_time=min_run_time).times)
    return samples


def time_call(fn: Callable[[], object], *, device="cpu", warmup: int = 1, min_repeats: int = 5,
              min_run_time: float = 0.2, budget_s: float | None = None) -> dict:
    """Median and IQR (seconds) of ``fn()`` after ``warmup`` calls, with a noise flag.

    Fast calls are timed in blocks (each sample a block's mean); slow ones (one call ×
    min_repeats > min_run_time) one call per sample, ``min_repeats`` samples, fewer if
    ``budget_s`` would be exceeded (never fewer than one).
    Returns {"median_s", "iqr_s", "repeats", "first_call_s", "samples", "noise", "noisy",
    "load_average"}; noise = IQR / median.
    """
    check_number(warmup, "warmup", integer=True, minimum=1)
    check_number(min_repeats, "min_repeats", integer=True, minimum=1)
    check_number(min_run_time, "min_run_time", minimum=0)
    if budget_s is not None:
        check_number(budget_s, "budget_s", minimum=0)
    for _ in range(warmup - 1):
        fn()
    _sync(device)
    start = time.perf_counter()
    fn()  # the last warm-up call, timed to plan the measurement
    _sync(device)
    first = time.perf_counter() - start
    if torch.device(device).type == "cuda":
        samples = _cuda_samples(fn, first, min_repeats=min_repeats, min_run_time=min_run_time, budget_s=budget_s)
    else:
        samples = _cpu_samples(fn, first, warmup=warmup, min_repeats=min_repeats, min_run_time=min_run_time,
                               budget_s=budget_s)
    q1, _, q3 = statistics.quantiles(samples, n=4) if len(samples) > 1 else (samples[0],) * 3
    median = statistics.median(samples)
    noise = (q3 - q1) / median if median > 0 else math.inf
    load = load_average()
    return {"median_s": median, "iqr_s": q3 - q1, "repeats": len(samples), "first_call_s": first,
            "samples": samples, "noise": noise, "noisy": noise > NOISE_RATIO or machine_busy(load),
            "load_average": load}


def short_number(x: float) -> str:
    """At most 4 significant digits, no exponent: 1234, 56.7, 8.90, 0.123."""
    a = abs(x)
    return f"{x:.0f}" if a >= 100 else f"{x:.1f}" if a >= 10 else f"{x:.2f}" if a >= 1 else f"{x:.3f}"


def format_timing(t: dict, unit: str = "ms") -> str:
    """'12.3 ms (IQR 0.400, 9 repeats)' plus ', noisy' when the timing is flagged."""
    scale = {"s": 1.0, "ms": 1e3, "us": 1e6, "µs": 1e6}[unit]
    text = (f"{short_number(t['median_s'] * scale)} {unit} (IQR {short_number(t['iqr_s'] * scale)}, "
            f"{t['repeats']} repeats")
    return text + (", noisy)" if t.get("noisy") else ")")


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


def matmul_gflops(size: int = 2048, *, device="cpu", dtype=torch.float32, min_run_time: float = 0.5) -> float:
    """Dense (size × size) @ (size × size) GFLOP/s (2·size³ FLOPs per product) in ``dtype``: the machine's yardstick."""
    dt = parse_dtype(dtype)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device=device, dtype=dt)  # (s, s)
    b = torch.randn(size, size, generator=gen).to(device=device, dtype=dt)  # (s, s)
    t = time_call(lambda: a @ b, device=device, warmup=2, min_repeats=5, min_run_time=min_run_time)["median_s"]
    return 2 * size**3 / t / 1e9
