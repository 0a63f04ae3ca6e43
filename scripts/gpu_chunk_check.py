#!/usr/bin/env python3
"""Time the chunkwise form on a CUDA GPU against torch SDPA and FLA's Triton kernels; write a JSON record.

    python scripts/gpu_chunk_check.py --out gpu_chunk_check.json [--rev abc1234] [--budget-s 170]

Shapes (causal, d = 64, φ = elu+1): B=4, H=16, bfloat16 at N = 4096 and 16384; B=1, H=4, float32 at
N = 16384. Methods: our chunkwise form (one-cumsum carry, eager and under torch.compile; the loop carry,
eager, for comparison; compiled at N = 16384 only), torch SDPA (causal), and FLA's ``chunk_linear_attn`` / ``fused_chunk_linear_attn``
when ``fla`` imports (their output is first checked against ours; a kernel that disagrees is not timed).
Each is timed forward (no grad) and forward+backward with CUDA events (3 warm-ups, median of 10),
and its peak memory read with torch.cuda.max_memory_allocated. A method that fails is reported and
skipped; the run goes on. Past ``--budget-s`` seconds the remaining compiled runs are skipped.
The revision comes from --rev, else $LINATTN_EDU_REVISION, else ``git rev-parse``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import inspect
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from linattn_edu import carry as carry_mode  # noqa: E402
from linattn_edu import linear_attention  # noqa: E402

SHAPES = [  # (batch, heads, n, d, dtype)
    (4, 16, 4096, 64, torch.bfloat16),
    (4, 16, 16384, 64, torch.bfloat16),
    (1, 4, 16384, 64, torch.float32),
]
COMPILE_NS = (16384,)  # torch.compile only at these N (each compile costs tens of seconds)
WARMUP, REPEATS = 3, 10
TOLERANCE = {torch.bfloat16: 3e-2, torch.float32: 1e-2}  # relative (norm) error vs ours: FLA uses bf16/tf32 tiles
GiB = 2**30
DEVICE = "cuda"


# -- methods: f(q, k, v) -> out, all in (B, H, N, d) ------------------------------------------------------
def ours(carry: str):
    def run(q, k, v):
        with carry_mode(carry):
            return linear_attention(q, k, v, "elu+1", causal=True, form="chunkwise", chunk_size=64)
    return run


def ours_auto(q, k, v):
    """The library as a user calls it (the carry chosen by device: one cumsum on a GPU)."""
    return linear_attention(q, k, v, "elu+1", causal=True, form="chunkwise", chunk_size=64)


def sdpa(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def fla_kernel(name: str):
    """FLA's kernel ``name`` on φ(q), φ(k), v in its [B, T, H, K] layout, normalised like ours; or an error string."""
    try:
        import fla.ops.linear_attn as fla_la
        kernel = getattr(fla_la, name)
    except Exception as exc:  # noqa: BLE001 - missing package, missing triton, broken install
        return f"fla not importable: {type(exc).__name__}: {exc}"
    params = inspect.signature(kernel).parameters
    kwargs = {}
    if "scale" in params:
        kwargs["scale"] = 1.0  # φ(q)ᵀφ(k) unscaled (the scale cancels when normalising anyway)
    if "normalize" in params:
        kwargs["normalize"] = True
    else:
        return f"{name} has no 'normalize' argument in this fla version: {list(params)}"
    if "output_final_state" in params:
        kwargs["output_final_state"] = False

    def run(q, k, v):  # q, k, v already (B, N, H, d): FLA's native layout, prepared outside the timed region
        out = kernel(F.elu(q) + 1, F.elu(k) + 1, v, **kwargs)
        return out[0] if isinstance(out, tuple) else out
    run.kwargs = kwargs
    return run


# -- timing ----------------------------------------------------------------------------------------------
def cuda_time_ms(fn) -> float:
    """Median of REPEATS CUDA-event timings of fn() after WARMUP calls."""
    for _ in range(WARMUP):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(REPEATS):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def peak_bytes(fn) -> tuple[int, int]:
    """(peak allocated during one fn(), of which above what was allocated before it)."""
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    return peak, peak - before


def forward_step(f, inputs):
    def step():
        with torch.no_grad():
            f(*inputs)
    return step


def train_step(f, inputs, grad_out):
    def step():
        for x in inputs:
            x.grad = None
        f(*inputs).backward(grad_out)
    return step


def rel_err(ref: torch.Tensor, got: torch.Tensor) -> float:
    ref, got = ref.detach().double(), got.detach().double()
    return float((got - ref).norm() / ref.norm().clamp_min(1e-300))


# -- one shape -------------------------------------------------------------------------------------------
def make_inputs(b, h, n, d, dtype, layout="bhnd"):
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    shape = (b, h, n, d) if layout == "bhnd" else (b, n, h, d)
    return [torch.randn(shape, device=DEVICE, dtype=dtype, generator=gen) for _ in range(3)]


def measure(name, f, inputs, rows, meta, *, check_against=None):
    """Time f forward and forward+backward on inputs; append rows. Never raises."""
    for mode in ("fwd", "fwd+bwd"):
        row = dict(meta, method=name, mode=mode)
        try:
            if mode == "fwd":
                step = forward_step(f, inputs)
            else:
                grad_in = [x.detach().clone().requires_grad_() for x in inputs]
                with torch.no_grad():
                    out_shape = f(*inputs).shape
                gen = torch.Generator(device=DEVICE).manual_seed(1)
                grad_out = torch.randn(out_shape, device=DEVICE, dtype=inputs[0].dtype, generator=gen)
                step = train_step(f, grad_in, grad_out)
            row["ms"] = cuda_time_ms(step)  # warm-ups first: a compiled step has compiled by the peak reading
            row["peak_gib"], row["peak_above_inputs_gib"] = (x / GiB for x in peak_bytes(step))
        except Exception as exc:  # noqa: BLE001 - report and go on
            row["error"] = f"{type(exc).__name__}: {exc}"[:500]
            print(f"  ! {name} {mode}: {row['error']}", flush=True)
            traceback.print_exc(limit=2)
            torch.cuda.empty_cache()
        if check_against is not None:
            row["rel_err_vs_ours"] = check_against
        rows.append(row)
        if "ms" in row:
            print(f"  {name:22s} {mode:8s} {row['ms']:9.3f} ms   peak {row['peak_gib']:6.2f} GiB", flush=True)


def run_shape(b, h, n, d, dtype, rows, t_start, budget_s):
    meta = dict(batch=b, heads=h, n=n, d=d, dtype=str(dtype).replace("torch.", ""))
    print(f"== B={b} H={h} N={n} d={d} {meta['dtype']}", flush=True)
    q, k, v = make_inputs(b, h, n, d, dtype)
    with torch.no_grad():
        ref = ours("cumsum")(q, k, v).float()  # our eager output: what every other method is checked against
        err = rel_err(ref, ours("loop")(q, k, v).float())
    print(f"  loop carry vs cumsum carry: rel err {err:.2e}", flush=True)
    measure("chunkwise", ours("cumsum"), [q, k, v], rows, meta)
    measure("chunkwise_loop_carry", ours("loop"), [q, k, v], rows, meta)
    measure("sdpa", sdpa, [q, k, v], rows, meta)
    if n not in COMPILE_NS:
        pass
    elif time.time() - t_start < budget_s:
        try:
            compiled = torch.compile(ours_auto, fullgraph=True, dynamic=False)
            with torch.no_grad():
                err = rel_err(ref, compiled(q, k, v).float())
            print(f"  compiled vs eager: rel err {err:.2e}", flush=True)
            measure("chunkwise_compiled", compiled, [q, k, v], rows, meta, check_against=err)
        except Exception as exc:  # noqa: BLE001
            rows.append(dict(meta, method="chunkwise_compiled", mode="fwd", error=f"{type(exc).__name__}: {exc}"[:500]))
            print(f"  ! compile failed: {exc}", flush=True)
    else:
        rows.append(dict(meta, method="chunkwise_compiled", mode="fwd", error="skipped: time budget spent"))
        print("  (compiled run skipped: time budget spent)", flush=True)
    layout = [x.transpose(1, 2).contiguous() for x in (q, k, v)]  # (B, N, H, d): FLA's native layout
    for kname in ("chunk_linear_attn", "fused_chunk_linear_attn"):
        f = fla_kernel(kname)
        if isinstance(f, str):
            rows.append(dict(meta, method=f"fla_{kname}", mode="fwd", error=f))
            print(f"  - fla_{kname}: {f}", flush=True)
            continue
        try:
            with torch.no_grad():
                err = rel_err(ref, f(*layout).transpose(1, 2).float())
        except Exception as exc:  # noqa: BLE001
            rows.append(dict(meta, method=f"fla_{kname}", mode="fwd", error=f"{type(exc).__name__}: {exc}"[:500]))
            print(f"  ! fla_{kname} failed: {exc}", flush=True)
            continue
        ok = math.isfinite(err) and err <= TOLERANCE[dtype]
        print(f"  fla_{kname} {f.kwargs} vs ours: rel err {err:.2e} ({'ok' if ok else 'DISAGREES: not timed'})",
              flush=True)
        if ok:
            measure(f"fla_{kname}", f, layout, rows, meta, check_against=err)
        else:
            rows.append(dict(meta, method=f"fla_{kname}", mode="fwd", rel_err_vs_ours=err,
                             error=f"output disagrees with ours (rel err {err:.2e} > {TOLERANCE[dtype]})"))
    del q, k, v, layout, ref
    torch.cuda.empty_cache()


def revision(arg: str | None) -> str:
    if arg:
        return arg
    if os.environ.get("LINATTN_EDU_REVISION"):
        return os.environ["LINATTN_EDU_REVISION"]
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parents[1], check=True).stdout.strip() or "unknown"
    except Exception:  # noqa: BLE001
        return "unknown"


def table(rows) -> str:
    lines = [f"{'shape':28s} {'method':26s} {'fwd ms':>9s} {'fwd GiB':>8s} {'f+b ms':>9s} {'f+b GiB':>8s}"]
    keys = []
    for r in rows:
        key = (r["batch"], r["heads"], r["n"], r["dtype"], r["method"])
        if key not in keys:
            keys.append(key)
    for key in keys:
        cells = {r["mode"]: r for r in rows if (r["batch"], r["heads"], r["n"], r["dtype"], r["method"]) == key}
        fmt = lambda r, k, w: f"{r[k]:{w}.3f}" if r and k in r else f"{'—':>{w}s}"  # noqa: E731
        shape = f"B={key[0]} H={key[1]} N={key[2]} {key[3]}"
        fw, fb = cells.get("fwd"), cells.get("fwd+bwd")
        lines.append(f"{shape:28s} {key[4]:26s} {fmt(fw, 'ms', 9)} {fmt(fw, 'peak_gib', 8)} "
                     f"{fmt(fb, 'ms', 9)} {fmt(fb, 'peak_gib', 8)}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="path of the JSON record to write")
    p.add_argument("--rev", default=None, help="git revision to record (default: $LINATTN_EDU_REVISION or git)")
    p.add_argument("--budget-s", type=float, default=120.0, help="skip compiled runs after this many seconds")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("needs a CUDA GPU (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    t_start = time.time()
    try:
        import fla
        fla_version = getattr(fla, "__version__", "unknown")
    except Exception as exc:  # noqa: BLE001
        fla_version = f"not importable ({type(exc).__name__})"
    try:
        import triton
        triton_version = triton.__version__
    except Exception:  # noqa: BLE001
        triton_version = None
    meta = {
        "device": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
        "triton": triton_version, "fla": fla_version, "python": platform.python_version(),
        "revision": revision(args.rev), "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "timing": f"CUDA events, {WARMUP} warm-ups, median of {REPEATS}",
        "memory": "torch.cuda.max_memory_allocated over one call (inputs included); peak_above_inputs excludes them",
        "settings": "causal, feature map elu+1, chunk_size 64; FLA gets the same φ(q), φ(k) with scale 1, normalize=True",
    }
    print(json.dumps(meta, indent=1), flush=True)
    rows = []
    for shape in SHAPES:
        try:
            run_shape(*shape, rows, t_start, args.budget_s)
        except Exception as exc:  # noqa: BLE001 - one shape failing never stops the others
            print(f"! shape {shape} failed: {exc}", flush=True)
            traceback.print_exc(limit=3)
            torch.cuda.empty_cache()
    print(table(rows))
    meta["wall_s"] = round(time.time() - t_start, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "results": rows}, indent=1))
    print(f"wrote {args.out} ({meta['wall_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
