#!/usr/bin/env python
"""Measure what every update rule costs on this CPU, forward and forward+backward, and ship the records.

    .venv/bin/python scripts/rule_costs.py                 # writes assets/cpu_rules*.json (three files)
    .venv/bin/python scripts/rule_costs.py --quick         # N = 1024 and 4096 (a smoke run, not shipped)
    .venv/bin/python scripts/rule_costs.py --part paired   # only the alternating-pair records (a few minutes)
    .venv/bin/python scripts/rule_costs.py --part paired --keep-freed-memory   # the same, malloc keeping freed memory

* every rule's chunkwise form (linear, gated, GLA, delta, gated delta, KDA, DeltaProduct, DPLR, MesaNet) at
  N = 4k and 16k, d = 64, and the linear, delta and gated delta rules at d = 128 (Qwen3-Next's head size),
  forward and forward+backward (B = 1, H = 4, float32): the log-log slopes come from these records;
* the same three rules at d = 128 and N = 64k, where every tensor is far past the CPU's last-level cache:
  the slope from 16k to 64k separates the algorithm's growth from the cache's bend between 4k and 16k;
* the delta rule's recurrent form at 4k (forward) against its chunkwise form, and SDPA against the linear rule's
  chunkwise form at 16k (forward and forward+backward), timed in alternating pairs (``bench.sweeps.paired_ratio``)
  so that load drifting during the run reaches both sides of each ratio;
* every rule's forward+backward slope from 4k to 16k timed the same way, 4k and 16k back to back
  (``bench.sweeps.paired_slope``): one slope per pair, the median and quartiles of seven pairs at d = 64
  and of five at d = 128, in wall-clock and in this process's CPU seconds;
* where Hugging Face transformers imports: its pure-PyTorch Gated DeltaNet (what Qwen3-Next runs on a CPU)
  on the same inputs, checked equal before timing; and its recurrent decode step beside DeltaState.step.
Each record file carries device, torch, date, revision and the machine's load (linattn_edu.bench.records).
Files: cpu_rules.json (the sweeps), cpu_rules_decode.json, cpu_rules_paired.json (ratios and slopes in pairs).
Every pair also counts the minor page faults of each call: the fresh pages the kernel zeroes when glibc's
malloc has returned a freed block to it. ``--keep-freed-memory`` (glibc only, ``bench.timer.keep_freed_memory``)
makes malloc keep freed memory, as a caching allocator does, and writes the files with a ``_kept`` suffix;
``--suffix`` names another copy of a run (cpu_rules_paired_repeat.json and cpu_rules_paired_kept_repeat.json: second
runs of the same revision, which notebook 06 compares with the first to show how far a slope, and the page faults
behind it, move between runs on one machine).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from linattn_edu import bench  # noqa: E402
from linattn_edu.bench import hf  # noqa: E402
from linattn_edu.bench.records import Results, run_metadata  # noqa: E402
from linattn_edu.bench.sweeps import GiB, decode_sweep, paired_ratio, paired_slope, sweep  # noqa: E402

#: the linear rule's chunkwise form and every registered rule's (linattn_edu.RULES: gated, GLA, delta, gated
#: delta, KDA, DeltaProduct, DPLR, MesaNet, ...)
RULE_METHODS = ["chunkwise"] + [m for m, (_, form) in bench.RULE_METHODS.items() if form == "chunkwise"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 1024 and 4096; writes under artifacts/")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--part", choices=("all", "sweep", "paired"), default="all",
                        help="sweep: cpu_rules.json and the decode record; paired: cpu_rules_paired.json")
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="glibc: keep freed memory in the process (no page faults on the next call); "
                             "files get a _kept suffix")
    parser.add_argument("--suffix", default="", help="appended to the file names (e.g. _repeat)")
    args = parser.parse_args()
    if args.threads is not None and not 1 <= args.threads <= (os.cpu_count() or 1):
        parser.error(f"--threads must be between 1 and this machine's {os.cpu_count()} CPUs; got {args.threads}")
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    if args.keep_freed_memory:
        print(bench.timer.keep_freed_memory())
    suffix = ("_kept" if args.keep_freed_memory else "") + args.suffix
    ns = [1024, 4096] if args.quick else [4096, 16384]
    out = ROOT / ("artifacts" if args.quick else "assets")
    out.mkdir(exist_ok=True)
    if args.part in ("all", "sweep"):
        _sweeps(ns, out, suffix)
    if args.part in ("all", "paired"):
        _paired(ns, out, suffix, quick=args.quick)
    return 0


def _sweeps(ns: list[int], out: Path, suffix: str) -> None:
    """Every rule's sweep over N (forward, forward+backward), d = 128 past the cache, the decode step."""
    hf_methods = ["hf_gated_delta"] if hf.available() else []
    timing = dict(modes=("forward", "forward+backward"), min_repeats=3, min_run_time=0.0, time_budget_s=300.0,
                  measure_memory=False)
    parts = [sweep(RULE_METHODS, ns, d=64, memory_budget=8 * GiB, **timing),  # every rule at d = 64
             sweep(["chunkwise", "delta_chunkwise", "gated_delta_chunkwise"] + hf_methods, ns, d=128, **timing),
             sweep(["chunkwise", "delta_chunkwise", "gated_delta_chunkwise"], [ns[-1] * 4], d=128,
                   memory_budget=12 * GiB, **timing),  # past the cache: the algorithm's own slope
             sweep(["delta_recurrent", "delta_chunkwise"], [ns[0]], modes=("forward",),
                   d=64, min_repeats=3, min_run_time=0.0, time_budget_s=300.0, measure_memory=False)]
    records = [r for p in parts for r in p.records]
    meta = dict(parts[0].metadata, benchmark="rule costs", transformers=hf.version(), d="64 and 128 (per record)")
    Results(records=records, metadata=meta).save(out / f"cpu_rules{suffix}.json")
    decoders = ["recurrent", "gated_delta"] + (["hf_gated_delta"] if hf.available() else [])
    dec = decode_sweep([1024], d=128, decoders=decoders)
    dec.metadata["transformers"] = hf.version()
    dec.save(out / f"cpu_rules_decode{suffix}.json")
    print(f"wrote {out / f'cpu_rules{suffix}.json'} and {out / f'cpu_rules_decode{suffix}.json'}")


def _paired(ns: list[int], out: Path, suffix: str, *, quick: bool) -> None:
    """Ratios and slopes timed in alternating pairs: load drift reaches both sides of each."""
    n_small, n_large = ns
    records = [paired_ratio("delta_recurrent", "delta_chunkwise", n_small, pairs=9)]
    records += [paired_ratio("sdpa", "chunkwise", n_large, mode=mode, pairs=7) for mode in ("forward", "forward+backward")]
    records += [paired_slope(m, n_small, n_large, d=64) for m in RULE_METHODS]
    records += [paired_slope(m, n_small, n_large, d=128, pairs=5) for m in RULE_METHODS]  # Qwen3-Next's head size
    meta = dict(run_metadata(), benchmark="rule costs in alternating pairs: the delta rule's chunkwise form vs its token "
                                          "loop, SDPA vs the linear rule, every rule's slope from 4k to 16k",
                quick=quick)
    path = out / f"cpu_rules_paired{suffix}.json"
    Results(records=records, metadata=meta).save(path)
    print(f"wrote {path}")


if __name__ == "__main__":
    raise SystemExit(main())
