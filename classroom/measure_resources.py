#!/usr/bin/env python
"""Measure what one student's session needs: each notebook's peak memory and CPU time, run here.

    .venv/bin/python classroom/measure_resources.py              # every notebook; writes classroom/resources.json
    .venv/bin/python classroom/measure_resources.py 01 02 03     # some notebooks (merged into the record)
    .venv/bin/python classroom/measure_resources.py --server 01  # ... and the idle JupyterLab server

Each notebook of the student edition's source (``notebooks/NN_topic.ipynb``, solutions in place, so
every cell runs as a finished student's would) is executed in a fresh kernel, as on a hub. The record
keeps, per notebook, the kernel's peak resident memory (``VmHWM`` of the kernel process, the high-water
mark the kernel reached), its CPU time (user + system, threads and children included) and wall time,
plus the machine it ran on. ``classroom/make_hub_values.py`` turns the record into a JupyterHub's
per-user memory and CPU; nothing there is typed in by hand.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "classroom" / "resources.json"


def _peak_rss_bytes(pid: int) -> int:
    """VmHWM (peak resident set size) of a live process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def measure(path: Path) -> dict:
    """Run one notebook in a fresh kernel; its peak RSS, CPU seconds and wall seconds."""
    import nbformat
    import psutil
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    with client.setup_kernel():
        pid = client.km.provisioner.pid
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        proc = psutil.Process(pid)
        cpu = proc.cpu_times()
        peak = _peak_rss_bytes(pid)
        for child in proc.children(recursive=True):  # a worker a notebook started, if any
            peak += _peak_rss_bytes(child.pid)
    wall = time.perf_counter() - start
    cpu_s = cpu.user + cpu.system + cpu.children_user + cpu.children_system
    return {"peak_rss_mib": round(peak / 2**20, 1), "cpu_s": round(cpu_s, 1), "wall_s": round(wall, 1)}


def measure_server(seconds: float = 240.0) -> dict:
    """Peak RSS of an idle JupyterLab server (what a session holds besides its kernels), once it answers."""
    import socket
    import subprocess
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exe = Path(sys.executable).with_name("jupyter-lab")
    proc = subprocess.Popen([str(exe), "--no-browser", f"--port={port}", "--ServerApp.token=", "--ServerApp.password=",
                             "--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={ROOT / 'notebooks'}"]
                            + (["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + seconds
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/lab", timeout=5).read()
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents", timeout=5).read()
                break
            except OSError:
                time.sleep(0.5)
            if proc.poll() is not None:
                raise RuntimeError(f"jupyter-lab exited with {proc.returncode}")
        else:
            raise RuntimeError("jupyter-lab did not answer")
        return {"peak_rss_mib": round(_peak_rss_bytes(proc.pid) / 2**20, 1)}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def machine() -> dict:
    import torch

    return {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "torch": torch.__version__,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="notebook numbers (default: all, and the server)")
    parser.add_argument("--server", action="store_true", help="also measure an idle JupyterLab server")
    args = parser.parse_args(argv)
    paths = [p for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
             if not args.notebooks or p.name[:2] in args.notebooks]
    record = json.loads(RECORD.read_text()) if RECORD.exists() else {"notebooks": {}}
    record["machine"] = machine()
    record["how"] = ("classroom/measure_resources.py: each notebook executed in a fresh python3 kernel; "
                     "peak_rss_mib = the kernel's VmHWM, cpu_s = its user+system CPU time")
    if not args.notebooks or args.server:
        record["server"] = measure_server()
        print(f"jupyter-lab server: peak {record['server']['peak_rss_mib']} MiB", flush=True)
        RECORD.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    failed = []
    for path in paths:
        try:
            result = measure(path)
        except Exception as err:  # a notebook that does not run is reported, not recorded
            failed.append(path.stem)
            print(f"{path.stem}: FAILED ({type(err).__name__}: {str(err).strip().splitlines()[-1][:200]})", flush=True)
            continue
        record["notebooks"][path.stem] = result
        print(f"{path.stem}: peak {result['peak_rss_mib']} MiB, CPU {result['cpu_s']} s, wall {result['wall_s']} s",
              flush=True)
        RECORD.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
