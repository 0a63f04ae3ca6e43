"""The full recall experiment: every mixer × (seq_len, KV pairs) ∈ {(64, 8), (64, 16), (128, 32)}.

Writes assets/recall_sweep.json after every finished run (so an interrupted sweep still ships what
finished, and says which runs are in it) and, with --render, the PNGs beside it.

    python scripts/recall_sweep.py                      # all mixers the library has, 1 CPU thread
    python scripts/recall_sweep.py --mixers gla delta   # add runs to an existing JSON (merged by key)
    python scripts/recall_sweep.py --device cuda --out assets/recall_sweep_h200.json --seeds 0 1 2
    python scripts/recall_sweep.py --render --out assets/recall_sweep_h200.json   # the two PNGs
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
            module = {"gla": "gated", "delta": "delta"}.get(name)
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
    ap.add_argument("--mixers", nargs="*", default=None)
    ap.add_argument("--out", default=str(ROOT / "assets" / "recall_sweep.json"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--train-examples", type=int, default=20000)
    ap.add_argument("--render", action="store_true", help="only draw the PNGs of --out (needs kaleido)")
    ap.add_argument("--seeds", type=int, nargs="*", default=[0], help="one run per seed (data, init, order)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    mixers = args.mixers or available_mixers()
    out = Path(args.out)
    if args.render:
        return render(out)
    record = json.loads(out.read_text()) if out.exists() else {"runs": []}
    done = {(r["mixer"], r["settings"]["seq_len"], r["settings"]["num_kv_pairs"], r["settings"]["seed"])
            for r in record["runs"]}
    todo = [(s, L, n, m) for s in args.seeds for L, n in SETTINGS for m in mixers if (m, L, n, s) not in done]
    for seed, seq_len, pairs, mixer in todo:
        r = recall.run_mqar(mixer, num_kv_pairs=pairs, seq_len=seq_len, device=args.device, progress=False,
                            epochs=args.epochs, train_examples=args.train_examples, seed=seed)
        r["loadavg_1min"] = round(os.getloadavg()[0], 2)
        record["runs"].append(r)
        record["meta"] = {
            "what": "MQAR test accuracy of a 2-layer model (conv block + mixer) per mixer and (seq_len, KV pairs)",
            "device": device_name(args.device), "torch": torch.__version__,
            "python": platform.python_version(), "git_revision": git_revision(),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "threads": args.threads, "settings_grid": SETTINGS, "mixers_requested": sorted(
                set(record.get("meta", {}).get("mixers_requested", [])) | set(mixers)),
            "runs_included": sorted(f"{x['mixer']}@L={x['settings']['seq_len']},n={x['settings']['num_kv_pairs']}"
                                    f",seed={x['settings']['seed']}" for x in record["runs"]),
            "total_seconds": round(sum(x["seconds"] for x in record["runs"]), 1),
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=1))
        print(f"{mixer:8s} L={seq_len:4d} n={pairs:3d} seed={seed} acc={r['accuracy']:.3f} "
              f"{r['seconds']:.1f}s load={r['loadavg_1min']}", flush=True)


if __name__ == "__main__":
    main()
