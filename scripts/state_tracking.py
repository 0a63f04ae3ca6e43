"""The state-tracking lab: which transitions let a one-layer model track parity, a count mod 3 (and S3).

Every run trains one tiny model (embedding, conv block, one mixer, tied head; d = 32) at length 32 with
``linattn_edu.recall.run_state_tracking`` and tests it at lengths 32, 128 and 512 (length generalisation).
The mixers differ in their state transition:

* gated            S ← e^{g} S + k vᵀ                      eigenvalue e^{g} ∈ (0, 1)
* delta            S ← (I − β k kᵀ) S + β k vᵀ, β ∈ (0, 1)  eigenvalues 1 − β ∈ (0, 1) and 1
* delta_neg        the same with β ∈ (0, 2) — the one change — eigenvalue 1 − β ∈ (−1, 1)
* deltaproduct     two delta micro-steps per token, β ∈ (0, 1): a product of two symmetric matrices with
                   eigenvalues in [0, 1] — real, in [0, 1]
* deltaproduct_neg two micro-steps with β ∈ (0, 2): two reflections make a rotation
* softmax          no recurrence (the causal softmax over the whole prefix)

Default sweep (parity, mod3 and the S3 word problem, six mixers, seeds 0 1 2; S3 trained at length 16;
a few CPU minutes) → assets/state_tracking.json. Full sweep (``--full`` or LINATTN_FULL=1: seeds 0-4 and
two-layer delta_neg; starts from the default record's runs) → assets/state_tracking_full.json. The JSON is written after every run (an interrupted
sweep ships what finished and lists it) with the CPU seconds of every run and in all.

    OMP_NUM_THREADS=1 python scripts/state_tracking.py             # the shipped record
    OMP_NUM_THREADS=1 python scripts/state_tracking.py --full      # more seeds, two layers
    OMP_NUM_THREADS=1 python scripts/state_tracking.py --tasks parity --mixers gated delta deltaproduct delta_neg \
        --epochs 32 --out assets/state_tracking_long.json          # the [0, 1] rules trained 4× as long
    python scripts/state_tracking.py --table                       # print the record's table
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from linattn_edu import recall  # noqa: E402
from linattn_edu.bench.records import run_metadata  # noqa: E402

MIXERS = ["gated", "delta", "delta_neg", "deltaproduct", "deltaproduct_neg", "softmax"]
MODEL = dict(seq_len=32, test_lengths=(32, 128, 512), d_model=32, train_examples=2048, test_examples=512,
             epochs=8)  # 256 AdamW steps of batch 64: 2-7 CPU seconds a run on one thread
# S3 is trained at length 16 for 1 024 steps: at length 32 (d = 32, seed 0) deltaproduct_neg stalled at
# cross-entropy 1.66 after 256 steps and 1.04 after 1 024 (last-position accuracy 0.29; chance is 1/6)
TASK_MODEL = {"s3": dict(seq_len=16, test_lengths=(16, 64, 256), train_examples=4096, epochs=16)}
SWEEPS = {
    "default": dict(tasks=["parity", "mod3", "s3"], mixers=MIXERS, seeds=[0, 1, 2], model=MODEL,
                    task_model=TASK_MODEL, out="state_tracking.json"),
    "full": dict(tasks=["parity", "mod3", "s3"], mixers=MIXERS + ["delta_neg+delta_neg"], seeds=[0, 1, 2, 3, 4],
                 model=MODEL, task_model=TASK_MODEL, out="state_tracking_full.json", start_from="state_tracking.json"),
}
WHAT = ("state tracking with one tiny model per mixer (embedding, conv block, mixer, tied head; d = 32): trained "
        "at length 32, tested at 32, 128 and 512 (S3: trained at 16, tested at 16, 64, 256); accuracy = per-position test accuracy averaged over the "
        "sequence, last_accuracy = at the last position (chance 1/2 parity, 1/3 mod3, 1/6 s3)")


def git_revision() -> str:
    """The checkout's revision (the library's records helper), marked when recall.py differs from it."""
    from linattn_edu.bench.records import git_revision as revision
    try:
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "linattn_edu/recall.py"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        dirty = ""
    return revision() + ("+uncommitted recall.py" if dirty else "")


def dumps(record) -> str:
    """JSON with one key per line, but every list of numbers (a position curve) on one line."""
    text = json.dumps(record, indent=1)
    return re.sub(r"\[\s*([-0-9.eE,\s]+?)\s*\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text)


def _plain(settings: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="more seeds, S3 and two layers (also LINATTN_FULL=1)")
    ap.add_argument("--out", default=None, help="default: assets/state_tracking.json (full: _full.json)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--table", action="store_true", help="only print the table of --out")
    ap.add_argument("--tasks", nargs="*", default=None, help="a subset of the sweep's tasks")
    ap.add_argument("--mixers", nargs="*", default=None, help="a subset (or others: a+b is one mixer per layer)")
    ap.add_argument("--epochs", type=int, default=None, help="train every task this many epochs (needs --out)")
    args = ap.parse_args(argv)
    full = args.full or os.environ.get("LINATTN_FULL", "") not in ("", "0")
    name = "full" if full else "default"
    sweep = dict(SWEEPS[name])
    if args.epochs is not None:
        if not args.out:
            ap.error("--epochs changes the runs: give them their own --out")
        sweep["model"] = {**sweep["model"], "epochs": args.epochs}
        sweep["task_model"] = {t: {**m, "epochs": args.epochs} for t, m in sweep["task_model"].items()}
        sweep.pop("start_from", None)
    sweep["tasks"], sweep["mixers"] = args.tasks or sweep["tasks"], args.mixers or sweep["mixers"]
    out = Path(args.out) if args.out else ROOT / "assets" / sweep["out"]
    if args.table:
        rows = recall.state_tracking_table(json.loads(out.read_text()))
        for metric in recall.STATE_METRICS:
            print(recall.format_state_tracking_table(rows, metric), end="\n\n")
        return
    torch.set_num_threads(args.threads)
    start = ROOT / "assets" / sweep["start_from"] if "start_from" in sweep else None
    record = json.loads(out.read_text()) if out.exists() else {"runs": []}
    started = record.get("meta", {}).get("started_from")
    if start and not out.exists() and start.exists() and start != out:  # the same runs need not run twice
        record = {"runs": json.loads(start.read_text())["runs"]}
        started = f"{start.name} (its runs are this sweep's seeds {sorted({r['settings']['seed'] for r in record['runs']})})"
    done = {(r["task"], r["mixer"], r["settings"]["seed"]) for r in record["runs"]}
    todo = [(s, t, m) for s in sweep["seeds"] for t in sweep["tasks"] for m in sweep["mixers"] if (t, m, s) not in done]
    wall = time.perf_counter()
    for seed, task, mixer in todo:
        r = recall.run_state_tracking(tuple(mixer.split("+")), task=task, seed=seed, progress=False, device="cpu",
                                      **{**sweep["model"], **sweep["task_model"].get(task, {})})
        r["loadavg_1min"] = round(os.getloadavg()[0], 2)
        record["runs"].append(r)
        meta = run_metadata(device="cpu")
        for key in ("memory_method", "timer", "dtype"):  # a timing record's fields; not this one's
            meta.pop(key, None)
        meta.update({
            "what": WHAT, "sweep": name, "tasks": sweep["tasks"], "mixers": sweep["mixers"],
            "seeds": sweep["seeds"], "model": _plain(sweep["model"]),
            "task_model": {task: _plain(m) for task, m in sweep["task_model"].items()},
            **({"started_from": started} if started else {}),
            "git_revision": git_revision(),
            "runs_included": sorted(f"{x['task']}/{x['mixer']}/seed={x['settings']['seed']}" for x in record["runs"]),
            "total_seconds": round(sum(x["seconds"] for x in record["runs"]), 1),
            "total_cpu_seconds": round(sum(x["cpu_seconds"] for x in record["runs"]), 1),
            "command": "OMP_NUM_THREADS=1 python scripts/state_tracking.py" + (" --full" if full else "")
                       + (f" --tasks {' '.join(args.tasks)}" if args.tasks else "")
                       + (f" --mixers {' '.join(args.mixers)}" if args.mixers else "")
                       + (f" --epochs {args.epochs} --out {os.path.relpath(out, ROOT)}" if args.epochs else "")
                       + f" --threads {args.threads}",
        })
        record["meta"] = meta
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(dumps(record) + "\n")
        tests = " ".join(f"L={t['seq_len']}: {t['accuracy']:.3f}/{t['last_accuracy']:.3f}" for t in r["tests"])
        print(f"{task:6s} {mixer:16s} seed={seed} {tests} ({r['cpu_seconds']:.1f} CPU s) "
              f"load={r['loadavg_1min']}", flush=True)
    if todo:
        print(f"{len(todo)} runs, {time.perf_counter() - wall:.0f} s wall; record: "
              f"{record['meta']['total_cpu_seconds']} CPU s in all → {out}")


if __name__ == "__main__":
    main()
