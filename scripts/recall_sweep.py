"""The recall experiments: the main sweep, the capacity/ablation sweep and the layer-wise hybrid.

* ``--experiment main`` (default): every mixer × (seq_len, KV pairs) ∈ {(64, 8), (64, 16), (128, 32)},
  d = 64 → assets/recall_sweep.json.
* ``--experiment capacity``: the one-change ablation (softmax, linear, linear_nodenom, additive, delta)
  with a narrow key, d_k = 8, d = 32, V = 128, L = 64, pairs n ∈ {2, 4, 8, 16} (n/d_k = 1/4 … 2),
  8 000 training sequences, 6 epochs (750 steps), seeds 0 1 2 → assets/recall_capacity.json.
* ``--experiment layers``: 4-layer models (conv, mixer, conv, mixer) at the capacity sweep's size and
  n = 8 = d_k, trained twice as long (12 epochs, 1 500 steps): two linear layers, linear + softmax (a
  layer-wise hybrid), two in-layer window + linear hybrids, seeds 0 1 2 → assets/recall_layers.json.

Writes the JSON after every finished run (so an interrupted sweep still ships what finished, and says
which runs are in it, with CPU seconds) and, with --render, the PNGs beside it.

    python scripts/recall_sweep.py                      # all mixers the library has, 1 CPU thread
    python scripts/recall_sweep.py --mixers gated delta # add runs to an existing JSON (merged by key)
    python scripts/recall_sweep.py --device cuda --out assets/recall_sweep_h200.json --seeds 0 1 2
    python scripts/recall_sweep.py --render --out assets/recall_sweep_h200.json   # the two PNGs
    OMP_NUM_THREADS=1 python scripts/recall_sweep.py --experiment capacity          # ~17 CPU minutes (60 runs)
    OMP_NUM_THREADS=1 python scripts/recall_sweep.py --experiment layers            # ~9 CPU minutes
    OMP_NUM_THREADS=1 python scripts/recall_sweep.py --experiment layers --epochs 24 --out assets/recall_layers_long.json
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from linattn_edu import recall  # noqa: E402

SETTINGS = [(64, 8), (64, 16), (128, 32)]  # (seq_len, num_kv_pairs)
# The capacity / ablation sweep and the layer-wise hybrid: small enough for a 2-core CPU (20-60 s a run).
SMALL = dict(vocab_size=128, d_model=32, d_key=8, train_examples=8000)
EXPERIMENTS = {
    "main": dict(settings=SETTINGS, mixers=["softmax", "linear", "taylor", "window", "hybrid", "gated", "delta"],
                 model={}, out="recall_sweep.json",
                 what="MQAR test accuracy of a 2-layer model (conv block + mixer) per mixer and (seq_len, KV pairs)"),
    "capacity": dict(settings=[(64, 16), (64, 2), (64, 4), (64, 8)],
                     mixers=["softmax", "linear", "linear_nodenom", "additive", "delta"], model=SMALL,
                     out="recall_capacity.json", seeds=[0, 1, 2],
                     what="one-change ablation (normaliser, feature map, write rule) across n/d_k: "
                          "2-layer MQAR models with d_k = 8, d = 32, V = 128"),
    "layers": dict(settings=[(64, 8)],
                   mixers=["linear+linear", "linear+softmax", "window_linear+window_linear"], model=SMALL,
                   out="recall_layers.json", seeds=[0, 1, 2], epochs=12,
                   what="4-layer MQAR models (conv, mixer, conv, mixer): layer-wise vs in-layer hybrid, "
                        "d_k = 8, d = 32, V = 128"),
}


def git_revision() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "linattn_edu/recall.py"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + ("+uncommitted recall.py" if dirty else "")
    except OSError:
        return "unknown"


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} thread(s)"


def available_mixers() -> list[str]:
    """Every mixer whose library function imports (gla / delta only once the library has them)."""
    names = []
    for name in recall.MIXERS:
        try:
            module = {"gated": "gated", "delta": "delta"}.get(name)
            if module:
                __import__(f"linattn_edu.{module}")
            names.append(name)
        except ImportError:
            pass
    return names


def render(path: Path) -> None:
    """<name>_accuracy.png and <name>_frontier.png beside the JSON (plotly + kaleido)."""
    import warnings

    import kaleido
    from linattn_edu.viz.recall import recall_accuracy_figure, recall_frontier_figure
    record = json.loads(path.read_text())
    where = record["meta"]["device"]
    kaleido.start_sync_server()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # plotly passes kaleido options a running server ignores
            recall_accuracy_figure(record["runs"], title=f"MQAR accuracy vs key–value pairs ({where})").write_image(
                path.with_name(path.stem + "_accuracy.png"), width=900, height=420)
            recall_frontier_figure(record["runs"], title=f"Recall vs the memory a decoder keeps ({where})").write_image(
                path.with_name(path.stem + "_frontier.png"), width=1100, height=420)
    finally:
        kaleido.stop_sync_server()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", choices=sorted(EXPERIMENTS), default="main")
    ap.add_argument("--mixers", nargs="*", default=None, help="names; a+b is one mixer per layer")
    ap.add_argument("--out", default=None, help="default: assets/<the experiment's file>")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--epochs", type=int, default=None, help="default: the experiment's (6; layers: 12)")
    ap.add_argument("--train-examples", type=int, default=None, help="default: the experiment's (main: 20000)")
    ap.add_argument("--render", action="store_true", help="only draw the PNGs of --out (needs kaleido)")
    ap.add_argument("--seeds", type=int, nargs="*", default=None, help="one run per seed (data, init, order)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    exp = EXPERIMENTS[args.experiment]
    mixers = args.mixers or exp["mixers"] or available_mixers()
    seeds = args.seeds if args.seeds is not None else exp.get("seeds", [0])
    out = Path(args.out) if args.out else ROOT / "assets" / exp["out"]
    if args.render:
        return render(out)
    record = json.loads(out.read_text()) if out.exists() else {"runs": []}
    done = {(r["mixer"], r["settings"]["seq_len"], r["settings"]["num_kv_pairs"], r["settings"]["seed"])
            for r in record["runs"]}
    todo = [(s, L, n, m) for s in seeds for L, n in exp["settings"] for m in mixers if (m, L, n, s) not in done]
    for seed, seq_len, pairs, mixer in todo:
        r = recall.run_mqar(tuple(mixer.split("+")), num_kv_pairs=pairs, seq_len=seq_len, device=args.device,
                            progress=False, epochs=args.epochs or exp.get("epochs", 6), seed=seed,
                            **{**exp["model"], **({"train_examples": args.train_examples} if args.train_examples else {})})
        r["loadavg_1min"] = round(os.getloadavg()[0], 2)
        record["runs"].append(r)
        record["meta"] = {
            "what": exp["what"], "experiment": args.experiment, "model": exp["model"],
            "device": device_name(args.device), "torch": torch.__version__,
            "python": platform.python_version(), "git_revision": git_revision(),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "threads": args.threads, "settings_grid": exp["settings"], "mixers_requested": sorted(
                set(record.get("meta", {}).get("mixers_requested", [])) | set(mixers)),
            "runs_included": sorted(f"{x['mixer']}@L={x['settings']['seq_len']},n={x['settings']['num_kv_pairs']}"
                                    f",seed={x['settings']['seed']}" for x in record["runs"]),
            "total_seconds": round(sum(x["seconds"] for x in record["runs"]), 1),
            "total_cpu_seconds": round(sum(x.get("cpu_seconds", 0.0) for x in record["runs"]), 1),
            "command": "OMP_NUM_THREADS=1 python scripts/recall_sweep.py --experiment " + args.experiment
                       + (f" --epochs {args.epochs}" if args.epochs else "")
                       + f" --device {args.device} --threads {args.threads}",
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=1))
        print(f"{mixer:8s} L={seq_len:4d} n={pairs:3d} seed={seed} acc={r['accuracy']:.3f} "
              f"{r['seconds']:.1f}s ({r['cpu_seconds']:.1f} CPU s) load={r['loadavg_1min']}", flush=True)


if __name__ == "__main__":
    main()
