"""Records with metadata: where and when a measurement ran, saved as JSON or CSV and read back.

A record is a tidy dict, one per method × N × mode (``method``, ``n``, ``mode``, ``median_s``,
``iqr_s``, ``repeats``, ``peak_bytes``, ``status`` …).  :class:`Results` holds records and the
run's metadata (device name, torch version, dtype, threads, date, git revision, load average).
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import __version__
from .._checks import dtype_name, parse_dtype
from .timer import load_average

__all__ = ["Results", "run_metadata", "device_name", "git_revision", "check_records_path", "REVISION_ENV"]

#: environment variable that names the revision when the code runs outside a git checkout
REVISION_ENV = "LINATTN_EDU_REVISION"
SUFFIXES = (".json", ".csv")


def check_records_path(path) -> Path:
    """``path`` as a Path ending in .json or .csv; ValueError otherwise (checked before any measuring)."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise ValueError(f"path must end in .json or .csv; got {path.name!r}")
    return path


def device_name(device) -> str:
    """The GPU's name, or the CPU model from /proc/cpuinfo (the processor string elsewhere)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_revision() -> str:
    """Short git revision of this checkout; $LINATTN_EDU_REVISION wins; 'unknown' outside git."""
    if os.environ.get(REVISION_ENV):
        return os.environ[REVISION_ENV]
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def run_metadata(*, device="cpu", dtype=torch.float32, **extra) -> dict:
    """Where and when a measurement ran: device name, torch version, dtype, threads, date (UTC), git revision."""
    cuda = torch.device(device).type == "cuda"
    meta = {
        "device": str(torch.device(device)),
        "device_name": device_name(device),
        "torch_version": torch.__version__,
        "linattn_edu_version": __version__,
        "python_version": platform.python_version(),
        "dtype": dtype_name(parse_dtype(dtype)),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git_revision": git_revision(),
        "load_average_1m": load_average(),
        "memory_method": ("torch.cuda.max_memory_allocated" if cuda
                          else "torch.profiler profile_memory: peak of CPU allocator events"),
        "timer": ("CUDA events around blocks of calls, median and IQR" if cuda
                  else "torch.utils.benchmark.Timer, median and IQR"),
    }
    meta.update(extra)
    return meta


@dataclass
class Results:
    """Tidy records (one dict per method × N × mode) and the run's metadata; save/load as JSON or CSV."""

    records: list[dict] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)

    def select(self, *, ok: bool = False, **match) -> list[dict]:
        """Records whose fields equal ``match`` (e.g. method="sdpa", mode="forward"); ok=True keeps measured ones."""
        rows = [r for r in self.records if all(r.get(k) == v for k, v in match.items())]
        return [r for r in rows if r.get("status") == "ok"] if ok else rows

    def series(self, method: str, mode: str = "forward", key: str = "median_s") -> tuple[list[int], list[float]]:
        """(N values, ``key`` values) of the measured points of one method and mode, sorted by N."""
        rows = sorted(self.select(ok=True, method=method, mode=mode), key=lambda r: r["n"])
        rows = [r for r in rows if r.get(key) is not None]
        return [r["n"] for r in rows], [float(r[key]) for r in rows]

    def methods(self) -> list[str]:
        return list(dict.fromkeys(r["method"] for r in self.records))

    def save(self, path) -> Path:
        """Write ``.json`` ({"metadata", "records"}) or ``.csv`` (records, metadata as ``meta_*`` columns)."""
        path = check_records_path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".json":
            path.write_text(json.dumps({"metadata": self.metadata, "records": self.records}, indent=1) + "\n")
            return path
        keys = list(dict.fromkeys(k for r in self.records for k in r))
        meta = {f"meta_{k}": v for k, v in self.metadata.items()}
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys + list(meta))
            writer.writeheader()
            for r in self.records:
                writer.writerow({**{k: ("" if r.get(k) is None else r.get(k)) for k in keys}, **meta})
        return path

    @classmethod
    def load(cls, path) -> "Results":
        """Read what :meth:`save` wrote (numbers come back as int/float, empty CSV cells as None)."""
        path = check_records_path(path)
        if path.suffix == ".json":
            data = json.loads(path.read_text())
            return cls(records=data["records"], metadata=data["metadata"])
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        meta = {k[5:]: _parse_cell(v) for k, v in rows[0].items() if k.startswith("meta_")} if rows else {}
        records = [{k: _parse_cell(v) for k, v in r.items() if not k.startswith("meta_")} for r in rows]
        return cls(records=records, metadata=meta)


def _parse_cell(text: str):
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
