#!/usr/bin/env python3
"""Time the chunkwise form on a CUDA GPU against torch SDPA and FLA's Triton kernels; write a JSON record.

    python scripts/gpu_chunk_check.py --out gpu_chunk_check.json [--rev abc1234] [--budget-s 170]
    python scripts/gpu_chunk_check.py --out smoke.json --smoke      # one tiny shape, on a CPU too

Shapes (causal, d = 64, φ = elu+1): B=4, H=16, bfloat16 at N = 4096 and 16384; B=1, H=4, float32 at
N = 16384. Methods: our chunkwise form (one-cumsum carry, eager and under torch.compile; the loop carry,
eager, for comparison; compiled at N = 16384 only), torch SDPA (causal), and FLA's ``chunk_linear_attn`` /
``fused_chunk_linear_attn`` through the bench's wrapper (:mod:`linattn_edu.bench.fla`: same inputs,
checked against ours first; a kernel that disagrees is not timed). Each is timed forward (no grad) and
forward+backward with the bench's timer (:func:`linattn_edu.bench.timer.time_call`: CUDA events around
blocks of calls, median and IQR) and its peak memory read with :func:`linattn_edu.bench.timer.peak_memory`.
A method that fails is reported and skipped; the run goes on. Past ``--budget-s`` seconds the remaining
compiled runs are skipped. The revision comes from --rev, else $LINATTN_EDU_REVISION, else git.
``--smoke`` runs one tiny shape without torch.compile on whatever device there is (a CPU included):
a check that the script works, not a measurement.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
import traceback
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from linattn_edu import carry as carry_mode  # noqa: E402
from linattn_edu import linear_attention  # noqa: E402
from linattn_edu.bench import fla  # noqa: E402
from linattn_edu.bench.records import check_records_path, run_metadata  # noqa: E402
from linattn_edu.bench.timer import peak_memory, time_call  # noqa: E402

SHAPES = [  # (batch, heads, n, d, dtype)
    (4, 16, 4096, 64, torch.bfloat16),
    (4, 16, 16384, 64, torch.bfloat16),
    (1, 4, 16384, 64, torch.float32),
]
SMOKE_SHAPES = [(1, 2, 256, 16, torch.float32)]
COMPILE_NS = (16384,)  # torch.compile only at these N (each compile costs tens of seconds)
WARMUP, REPEATS = 3, 10
GiB = 2**30
FLA_METHODS = ("fla_chunk", "fla_fused_chunk")  # the bench's names for chunk_linear_attn, fused_chunk_linear_attn


# -- methods: f(q, k, v) -> out, all in (B, H, N, d) ------------------------------------------------------
def ours(carry: str):
    """Our chunkwise form with the carry fixed to ``carry`` ('cumsum' or 'loop') for the call."""
    def run(q, k, v):
        with carry_mode(carry):
            return linear_attention(q, k, v, "elu+1", causal=True, form="chunkwise", chunk_size=64)
    return run


def ours_auto(q, k, v):
    """The library as a user calls it (the carry chosen by device: one cumsum on a GPU)."""
    return linear_attention(q, k, v, "elu+1", causal=True, form="chunkwise", chunk_size=64)


def sdpa(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


# -- timing: the bench's timer and peak-memory reading -----------------------------------------------------
def timed(step, device) -> dict:
    """ms (median), IQR, repeats and the noise flag of step() after WARMUP calls (bench.timer.time_call)."""
    t = time_call(step, device=device, warmup=WARMUP, min_repeats=REPEATS)
    return {"ms": t["median_s"] * 1e3, "iqr_ms": t["iqr_s"] * 1e3, "repeats": t["repeats"], "noisy": t["noisy"]}


def peak_gib(step, device) -> tuple[float, float]:
    """(peak allocated during one step(), of which above what was allocated before it), in GiB."""
    before = torch.cuda.memory_allocated(device) if torch.device(device).type == "cuda" else 0
    above = peak_memory(step, device=device)
    return (before + above) / GiB, above / GiB


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
def make_inputs(b, h, n, d, dtype, device):
    gen = torch.Generator(device=device).manual_seed(0)
    return [torch.randn((b, h, n, d), device=device, dtype=dtype, generator=gen) for _ in range(3)]


def measure(name, f, inputs, rows, meta, device, *, check_against=None):
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
                gen = torch.Generator(device=device).manual_seed(1)
                grad_out = torch.randn(out_shape, device=device, dtype=inputs[0].dtype, generator=gen)
                step = train_step(f, grad_in, grad_out)
            row.update(timed(step, device))  # warm-ups first: a compiled step has compiled by the peak reading
            row["peak_gib"], row["peak_above_inputs_gib"] = peak_gib(step, device)
        except Exception as exc:  # noqa: BLE001 - report and go on
            row["error"] = f"{type(exc).__name__}: {exc}"[:500]
            print(f"  ! {name} {mode}: {row['error']}", flush=True)
            traceback.print_exc(limit=2)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        if check_against is not None:
            row["rel_err_vs_ours"] = check_against
        rows.append(row)
        if "ms" in row:
            print(f"  {name:22s} {mode:8s} {row['ms']:9.3f} ms (IQR {row['iqr_ms']:.3f}, n={row['repeats']}"
                  f"{', noisy' if row['noisy'] else ''})   peak {row['peak_gib']:6.2f} GiB", flush=True)


def run_fla(name, q, k, v, rows, meta, device):
    """FLA's kernel through the bench's wrapper: checked against ours (bench.fla.check_agrees), then timed."""
    reason = fla.unavailable_reason(device)
    if reason is not None:
        rows.append(dict(meta, method=name, mode="fwd", error=reason))
        print(f"  - {name}: {reason}", flush=True)
        return
    f = fla.attention_fn(name)
    try:
        err = fla.check_agrees(f, q, k, v)
    except Exception as exc:  # noqa: BLE001 - a disagreeing kernel (ValueError) or a failing one
        rows.append(dict(meta, method=name, mode="fwd", error=f"{type(exc).__name__}: {exc}"[:500]))
        print(f"  ! {name} not timed: {exc}", flush=True)
        return
    print(f"  {name} vs ours: rel err {err:.2e} (ok)", flush=True)
    measure(name, f, [q, k, v], rows, meta, device, check_against=err)


def run_shape(b, h, n, d, dtype, rows, t_start, budget_s, device, compile_ns=COMPILE_NS):
    meta = dict(batch=b, heads=h, n=n, d=d, dtype=str(dtype).replace("torch.", ""))
    print(f"== B={b} H={h} N={n} d={d} {meta['dtype']} on {device}", flush=True)
    q, k, v = make_inputs(b, h, n, d, dtype, device)
    with torch.no_grad():
        ref = ours("cumsum")(q, k, v).float()  # our eager output: what the compiled form is checked against
        err = rel_err(ref, ours("loop")(q, k, v).float())
    print(f"  loop carry vs cumsum carry: rel err {err:.2e}", flush=True)
    measure("chunkwise", ours("cumsum"), [q, k, v], rows, meta, device)
    measure("chunkwise_loop_carry", ours("loop"), [q, k, v], rows, meta, device)
    measure("sdpa", sdpa, [q, k, v], rows, meta, device)
    if n not in compile_ns:
        pass
    elif time.time() - t_start < budget_s:
        try:
            compiled = torch.compile(ours_auto, fullgraph=True, dynamic=False)
            with torch.no_grad():
                err = rel_err(ref, compiled(q, k, v).float())
            print(f"  compiled vs eager: rel err {err:.2e}", flush=True)
            measure("chunkwise_compiled", compiled, [q, k, v], rows, meta, device, check_against=err)
        except Exception as exc:  # noqa: BLE001
            rows.append(dict(meta, method="chunkwise_compiled", mode="fwd", error=f"{type(exc).__name__}: {exc}"[:500]))
            print(f"  ! compile failed: {exc}", flush=True)
    else:
        rows.append(dict(meta, method="chunkwise_compiled", mode="fwd", error="skipped: time budget spent"))
        print("  (compiled run skipped: time budget spent)", flush=True)
    for name in FLA_METHODS:
        run_fla(name, q, k, v, rows, meta, device)
    del q, k, v, ref
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


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


def _records_out(text: str) -> Path:
    """A .json path this process can write (its folder is tried now, before anything is measured)."""
    if not text.endswith(".json"):
        raise argparse.ArgumentTypeError(f"expected a path ending in .json; got {text!r}")
    try:
        return check_records_path(text, writable=True)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0; got {text!r}") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0; got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python scripts/gpu_chunk_check.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=_records_out, help="path of the JSON record to write (.json)")
    p.add_argument("--rev", default=None, help="git revision to record (default: $LINATTN_EDU_REVISION or git)")
    p.add_argument("--budget-s", type=_positive_seconds, default=120.0,
                   help="skip compiled runs after this many seconds")
    p.add_argument("--smoke", action="store_true",
                   help="one tiny shape, no torch.compile, on the GPU or else the CPU: checks the script runs")
    return p


def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if not torch.cuda.is_available() and not args.smoke:
        p.error("needs a CUDA GPU (torch.cuda.is_available() is False); --smoke runs a tiny shape on the CPU")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    t_start = time.time()
    versions = {}
    for module in ("fla", "triton"):
        try:
            versions[module] = getattr(__import__(module), "__version__", "unknown")
        except Exception as exc:  # noqa: BLE001
            versions[module] = f"not importable ({type(exc).__name__})"
    meta = run_metadata(device=device, dtype=torch.float32, cuda=torch.version.cuda, **versions,
                        repeats=f"linattn_edu.bench.timer.time_call: {WARMUP} warm-ups, >= {REPEATS} samples",
                        peak=("peak_above_inputs_gib: linattn_edu.bench.timer.peak_memory over one call; "
                              "peak_gib adds what was allocated before it (the inputs)"),
                        settings="causal, feature map elu+1, chunk_size 64; FLA through linattn_edu.bench.fla "
                                 "(same φ(q), φ(k), scale 1, normalize=True)",
                        smoke=args.smoke)
    del meta["dtype"]  # each row has its own
    if args.rev:
        meta["git_revision"] = args.rev
    print(json.dumps(meta, indent=1), flush=True)
    rows = []
    for shape in SMOKE_SHAPES if args.smoke else SHAPES:
        try:
            run_shape(*shape, rows, t_start, args.budget_s, device, compile_ns=() if args.smoke else COMPILE_NS)
        except Exception as exc:  # noqa: BLE001 - one shape failing never stops the others
            print(f"! shape {shape} failed: {exc}", flush=True)
            traceback.print_exc(limit=3)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    print(table(rows))
    meta["wall_s"] = round(time.time() - t_start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": rows}, indent=1))
    print(f"wrote {args.out} ({meta['wall_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
