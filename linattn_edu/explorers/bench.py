"""Responsiveness benchmark: how long one control move takes in each explorer (``update`` callback).

    python -m linattn_edu.explorers.bench [--repeats 15] [--target-ms 150]

For each explorer at its default sizes (N <= 128) it moves one control through a cycle of values,
timing ``explorer.update(name=value)``: recompute with the core library, rebuild the figure with
:mod:`linattn_edu.viz`, and send it to the ``FigureWidget`` (one ``batch_update``).  The browser's
own redraw is not included.  Prints the wall-clock median and 90th percentile and the CPU-time median
per control, the load average (other processes inflate wall time), and whether the wall median is
under the target (150 ms on a 2-core CPU).  Exit status 1 if any control misses.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any, Callable, Sequence

__all__ = ["MOVES", "time_moves", "build_parser", "main"]

#: (explorer entry point name, control, values cycled through) — the moves a reader makes most
MOVES: tuple[tuple[str, str, Sequence[Any]], ...] = (
    ("attention_map_explorer", "n", (32, 40, 48, 24)),
    ("attention_map_explorer", "temperature", (1.0, 1.5, 0.5, 2.0)),
    ("attention_map_explorer", "feature_map", ("elu+1", "relu", "favor+", "taylor")),
    ("state_stepper", "t", tuple(range(12))),
    ("state_stepper", "feature_map", ("elu+1", "relu", "taylor", "favor+")),
    ("kernel_smoother_explorer", "bandwidth", (0.4, 0.6, 0.3, 1.0)),
    ("kernel_smoother_explorer", "query", (0.5, -1.0, 1.5, 0.0)),
    ("kernel_smoother_explorer", "kernel", ("gaussian", "boxcar", "exp", "elu+1", "favor+")),
    ("feature_map_explorer", "m", (64, 128, 256, 32)),
    ("feature_map_explorer", "seed", (0, 1, 2, 3)),
    ("sliding_window_explorer", "window", (4, 6, 8, 2)),
    ("sliding_window_explorer", "n", (48, 64, 96, 128)),
)


def time_moves(factory: Callable[[], Any], control: str, values: Sequence[Any],
               repeats: int) -> tuple[list[float], list[float]]:
    """(wall seconds, CPU seconds of this process) per ``update(control=value)`` over ``repeats`` moves,
    after one warm-up cycle.  CPU time is what the move costs even when other processes share the cores."""
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1; got {repeats!r}")
    if not values:
        raise ValueError(f"values must list at least one value for {control}; got {values!r}")
    explorer = factory()
    for value in values:  # warm-up: first calls fill caches and JIT-free torch paths
        explorer.update(**{control: value})
    wall, cpu = [], []
    for i in range(repeats):
        value = values[i % len(values)]
        start, start_cpu = time.perf_counter(), time.process_time()
        explorer.update(**{control: value})
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        if explorer.message:
            raise RuntimeError(f"{control}={value!r} gave a message instead of a view: {explorer.message}")
    return wall, cpu


def _percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int >= 1; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1; got {value}")
    return value


def _positive_ms(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0; got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0; got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m linattn_edu.explorers.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=_positive_int, default=15, help="timed moves per control (default 15)")
    parser.add_argument("--target-ms", type=_positive_ms, default=150.0,
                        help="median target per move (default 150)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Time every move in :data:`MOVES`; exit status 0 when each wall median is under the target, 1 if not,
    2 for a bad option (argparse, before anything is built)."""
    args = build_parser().parse_args(argv)

    import torch

    from linattn_edu import explorers

    load = " / ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    print(f"explorer update callbacks, torch {torch.__version__}, {os.cpu_count()} CPUs, load average {load}; "
          f"median of {args.repeats} moves after a warm-up cycle")
    print("wall = what the reader waits (inflated when other processes share the cores); "
          "CPU = this process's CPU time for the move")
    target = f"< {args.target_ms:.0f} ms"
    header = (f"{'explorer':26s} {'control':12s} {'wall median':>11s} {'wall p90':>9s} {'CPU median':>11s}"
              f"  {target:>8s}")
    print(header)
    print("-" * len(header))
    misses = 0
    for name, control, values in MOVES:
        wall, cpu = time_moves(getattr(explorers, name), control, values, args.repeats)
        median, p90 = statistics.median(wall) * 1e3, _percentile(wall, 0.9) * 1e3
        cpu_median = statistics.median(cpu) * 1e3
        ok = median < args.target_ms
        misses += not ok
        print(f"{name:26s} {control:12s} {median:11.1f} {p90:9.1f} {cpu_median:11.1f}  {'yes' if ok else 'MISS':>8s}")
    print(f"{len(MOVES) - misses} of {len(MOVES)} controls under {args.target_ms:.0f} ms (wall median)")
    return 1 if misses else 0


if __name__ == "__main__":
    raise SystemExit(main())
