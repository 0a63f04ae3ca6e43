"""Command line: ``python -m linattn_edu.bench [headline|sweep|slopes|decode] [options]``.

The bare command is the headline, with the headline's options (``python -m linattn_edu.bench --n 4096``).
Every option is checked before anything is measured: a bad value is argparse's usage error
(exit status 2, one line) naming what was expected and what came. That includes paths: ``--out``
must be a .json/.csv file this process can write (its folder is tried first), and ``slopes --from``
must be a records file with a slope in it.  Exit status 0: every claim printed holds beyond noise
(or none is stated); 3: one does not, or noise cannot tell; 1: the records could not be written.

Defaults follow the device: a CPU runs B=1, H=4, float32; a GPU runs that shape and the one that
fills a GPU, B=4, H=16, bfloat16 (pass --batch/--heads/--dtype to run one shape of your own).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import torch

from .._checks import dtype_name, parse_dtype
from . import fla
from .analysis import SLOPE_N_MAX, SLOPE_N_MIN, crossover_n, slopes
from .methods import ALL_METHODS, MODES
from .records import Results, check_records_path
from .report import format_decode, format_grid, format_headline, format_table, report
from .sweeps import GiB, decode_sweep, default_methods, headline, sweep
from .targets import decode_targets, headline_targets, slope_targets
from .timer import keep_freed_memory

__all__ = ["main", "build_parser", "DEFAULTS"]

COMMANDS = ("headline", "sweep", "slopes", "decode")
#: per device type: the shapes (batch, heads, dtype) a headline runs, sweep grid, decode shape and contexts
DEFAULTS = {
    "cpu": {"shapes": [(1, 4, "float32")], "ns": "256,512,1024,2048,4096,8192",
            "slope_ns": "256,512,1024,2048,4096,8192,16384,32768",
            "decode": (1, 4, "float32"), "contexts": "1024,4096,16384,65536"},
    "cuda": {"shapes": [(1, 4, "float32"), (4, 16, "bfloat16")], "ns": "1024,2048,4096,8192,16384,32768,65536",
             "slope_ns": "1024,2048,4096,8192,16384,32768,65536",
             "decode": (16, 16, "bfloat16"), "contexts": "1024,4096,16384,65536"},
}


# Argument types: each raises ArgumentTypeError -> argparse prints usage and exits with status 2 --------
def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an int >= {low}; got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an int >= {low}; got {value}")
        return value
    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0; got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0; got {text!r}")
    return value


def _int_list(text: str) -> list[int]:
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of ints >= 1; got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of ints >= 1; got {text!r}")
    return values


def _choices(allowed: Sequence[str], what: str):
    def parse(text: str) -> list[str]:
        values = [p.strip() for p in text.split(",")]
        bad = [v for v in values if v not in allowed]
        if bad or not text.strip():
            raise argparse.ArgumentTypeError(f"expected {what} from {', '.join(allowed)}; got {text!r}")
        return values
    return parse


def _dtype(text: str) -> str:
    try:
        return dtype_name(parse_dtype(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _device(text: str) -> str:
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected a torch device such as 'cpu' or 'cuda'; got {text!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"expected device 'cpu' or 'cuda[:i]'; got {text!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"device {text!r} asked for, but torch.cuda.is_available() is False "
                                         "(no usable GPU or a CPU-only torch)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"device {text!r} asked for, but torch sees {torch.cuda.device_count()} GPU(s)")
    return str(device)


def _out_path(text: str) -> Path:
    """A .json/.csv path this process can write (tried now, before any measuring)."""
    try:
        return check_records_path(text, writable=True)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _records_file(text: str) -> Path:
    try:
        path = check_records_path(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no records file at {text!r}")
    return path


# The parser ---------------------------------------------------------------------------------------------
def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", type=_device, default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", type=_dtype, default=None, help="default: float32 on a CPU (a GPU adds bfloat16)")
    p.add_argument("--batch", type=_int_at_least(1), default=None)
    p.add_argument("--heads", type=_int_at_least(1), default=None)
    p.add_argument("--d", type=_int_at_least(1), default=64)
    p.add_argument("--threads", type=_int_at_least(1), default=None,
                   help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--keep-freed-memory", action="store_true",
                   help="glibc: malloc keeps freed memory, so a call does not fault its big tensors in again "
                        "(as a caching allocator does; the records say which)")
    p.add_argument("--no-progress", action="store_true")


def _add_headline_options(p: argparse.ArgumentParser) -> None:
    _add_common(p)
    p.add_argument("--n", type=_int_at_least(1), default=16384)
    p.add_argument("--chunk-size", type=_int_at_least(1), default=64)
    p.add_argument("--repeats", type=_int_at_least(1), default=5)
    p.add_argument("--compile", action="store_true", help="torch.compile the chunkwise form (compiled before timing)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m linattn_edu.bench", description="Timing and peak memory of attention forms as N grows.",
        epilog="Without a command: the headline (its options work without the word 'headline').")
    sub = parser.add_subparsers(dest="command")
    _add_headline_options(sub.add_parser("headline", help="chunkwise vs SDPA (and FLA) at N=16384, fwd and fwd+bwd"))
    p = sub.add_parser("sweep", help="time and memory of every method over a log grid of N")
    _add_common(p)
    p.add_argument("--methods", type=_choices(list(ALL_METHODS), "methods"), default=None,
                   help="comma-separated; default: every method that runs on the device")
    p.add_argument("--ns", type=_int_list, default=None, help="comma-separated N; default per device")
    p.add_argument("--modes", type=_choices(MODES, "modes"), default=list(MODES))
    p.add_argument("--chunk-size", type=_int_at_least(1), default=64)
    p.add_argument("--window", type=_int_at_least(1), default=256)
    p.add_argument("--memory-budget-gib", type=_positive_float, default=None, help="default: 4 (CPU), 60 (GPU)")
    p.add_argument("--time-budget-s", type=_positive_float, default=20.0)
    p.add_argument("--repeats", type=_int_at_least(1), default=5)
    p.add_argument("--compile", action="store_true", help="torch.compile each method (compiled before timing)")
    p.add_argument("--out", type=_out_path, default=None, help=".json or .csv path for the records")
    p = sub.add_parser("slopes", help="log-log slopes over N in [2k, 32k] and the chunkwise/SDPA crossover")
    _add_common(p)
    p.add_argument("--ns", type=_int_list, default=None)
    p.add_argument("--chunk-size", type=_int_at_least(1), default=64)
    p.add_argument("--repeats", type=_int_at_least(1), default=3)
    p.add_argument("--from", dest="source", type=_records_file, default=None,
                   help="analyse saved records instead of measuring")
    p.add_argument("--out", type=_out_path, default=None)
    p = sub.add_parser("decode", help="per-token decode step: KV-cache softmax vs recurrent state")
    _add_common(p)
    p.add_argument("--contexts", type=_int_list, default=None)
    p.add_argument("--out", type=_out_path, default=None)
    return parser


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    """Parse; a bare command line (no command word) is the headline's."""
    argv = list(argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv = ["headline", *argv]
    parser = build_parser()
    args = parser.parse_args(argv)
    methods = getattr(args, "methods", None) or []
    missing = [m for m in methods if ALL_METHODS[m].optional and not fla.available(args.device)]
    if missing:
        parser.error(f"--methods {','.join(missing)}: {fla.unavailable_reason(args.device)}")
    if args.command == "slopes":
        _check_slopes_args(parser, args)
    return args


def _check_slopes_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """slopes: the --from records load and hold a slope, or the --ns to measure can give one (before measuring)."""
    span = f"N in [{SLOPE_N_MIN}, {SLOPE_N_MAX}]"
    args.loaded = None
    if args.source is None:
        inside = sorted({n for n in args.ns or [] if SLOPE_N_MIN <= n <= SLOPE_N_MAX})
        if args.ns is not None and len(inside) < 2:
            parser.error(f"--ns: slopes are fitted over {span}; expected at least 2 N there; "
                         f"got {','.join(map(str, args.ns))}")
        return
    try:
        res = Results.load(args.source)
    except (ValueError, OSError) as exc:
        parser.error(f"--from: {exc}")
    if not res.records:
        parser.error(f"--from: no records in {args.source}")
    try:
        found = slopes(res)
    except ValueError as exc:
        parser.error(f"--from: no slope in {args.source}: {exc}")
    if not found:
        kinds = sorted({f"{r['method']} ({r['mode']})" for r in res.records})
        parser.error(f"--from: no slope in {args.source}: expected a method with >= 2 measured forward N in "
                     f"[{SLOPE_N_MIN}, {SLOPE_N_MAX}] (a sweep or slopes record); got {', '.join(kinds)[:120]}")
    args.loaded = res


def _shapes(args) -> list[tuple[int, int, str]]:
    """The (batch, heads, dtype) shapes to run: the device's defaults unless one was given."""
    defaults = DEFAULTS[torch.device(args.device).type]["shapes"]
    if args.batch is None and args.heads is None and args.dtype is None:
        return defaults
    b, h, dt = defaults[0]
    return [(args.batch or b, args.heads or h, args.dtype or dt)]


# The commands ---------------------------------------------------------------------------------------
def _headline(args) -> int:
    status = 0
    for batch, heads, dtype in _shapes(args):
        h = headline(n=args.n, batch=batch, heads=heads, d=args.d, chunk_size=args.chunk_size, dtype=dtype,
                     device=args.device, min_repeats=args.repeats, progress=not args.no_progress,
                     compile=args.compile)
        status = max(status, report(format_headline(h), headline_targets(h), metadata=h["metadata"]))
    return status


def _sweep(args) -> int:
    kind = torch.device(args.device).type
    batch, heads, dtype = _shapes(args)[0]
    budget = args.memory_budget_gib or (60.0 if kind == "cuda" else 4.0)
    res = sweep(args.methods, args.ns or _int_list(DEFAULTS[kind]["ns"]), modes=args.modes, batch=batch,
                heads=heads, d=args.d, dtype=dtype, device=args.device, chunk_size=args.chunk_size,
                window=args.window, memory_budget=int(budget * GiB), time_budget_s=args.time_budget_s,
                min_repeats=args.repeats, progress=not args.no_progress, compile=args.compile)
    sl = slopes(res, n_min=0, n_max=10**9)
    cross = crossover_n(res)
    body = "\n".join([format_table(res), "", format_grid(res),
                      "log-log slopes (forward, all N): " + ", ".join(f"{m} {s:.2f}" for m, s in sl.items()),
                      f"crossover (chunkwise faster than SDPA from N ≈): {'none' if cross is None else round(cross)}"])
    return report(body, [], metadata=res.metadata, results=res, out=args.out)


def _slopes(args) -> int:
    kind = torch.device(args.device).type
    if args.loaded is not None:  # read and checked while parsing
        res = args.loaded
    else:
        batch, heads, dtype = _shapes(args)[0]
        res = sweep(("sdpa", "chunkwise"), args.ns or _int_list(DEFAULTS[kind]["slope_ns"]), batch=batch,
                    heads=heads, d=args.d, dtype=dtype, device=args.device, chunk_size=args.chunk_size,
                    time_budget_s=None, min_repeats=args.repeats, measure_memory=False,
                    progress=not args.no_progress)
    sl = slopes(res)
    cross = crossover_n(res)
    span = f"N in [{SLOPE_N_MIN}, {SLOPE_N_MAX}]"
    lines = [f"{m}: log-log slope {s:.3f} over {span}" for m, s in sl.items()]
    if not sl:  # e.g. every point past the guards: no slope to claim anything about
        lines = [f"no slope: no method has 2 measured N in [{SLOPE_N_MIN}, {SLOPE_N_MAX}] (see the status column)"]
    body = "\n".join([format_table(res), *lines,
                      f"crossover: chunkwise faster than SDPA from N ≈ {'none' if cross is None else round(cross)}"])
    status = report(body, slope_targets(sl, res), metadata=res.metadata, results=res, out=args.out)
    return status if sl else max(status, 3)  # 3: the slope claims could not be checked


def _decode(args) -> int:
    kind = torch.device(args.device).type
    b, h, dt = DEFAULTS[kind]["decode"]
    res = decode_sweep(args.contexts or _int_list(DEFAULTS[kind]["contexts"]), batch=args.batch or b,
                       heads=args.heads or h, d=args.d, dtype=args.dtype or dt, device=args.device,
                       progress=not args.no_progress)
    return report(format_decode(res), decode_targets(res), metadata=res.metadata, results=res, out=args.out)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (0 claims hold, 3 one does not or noise cannot tell)."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.keep_freed_memory:
        try:
            keep_freed_memory()
        except RuntimeError as exc:
            print(f"--keep-freed-memory: {exc}", file=sys.stderr)
            return 2
    return {"headline": _headline, "sweep": _sweep, "slopes": _slopes, "decode": _decode}[args.command](args)
