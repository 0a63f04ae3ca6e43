"""Records with metadata: where and when a measurement ran, saved as JSON or CSV and read back.

A record is a tidy dict, one per method × N × mode (``method``, ``n``, ``mode``, ``median_s``,
``iqr_s``, ``repeats``, ``peak_bytes``, ``status`` …).  :class:`Results` holds records and the
run's metadata (device name, torch version, dtype, threads, date, git revision, load average).
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import math
import os
import platform
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import __version__
from .._checks import dtype_name, parse_dtype
from .timer import allocator_setting, load_average

__all__ = ["Results", "run_metadata", "device_name", "git_revision", "check_records_path", "check_writable",
           "REVISION_ENV"]

#: environment variable that names the revision when the code runs outside a git checkout
REVISION_ENV = "LINATTN_EDU_REVISION"
SUFFIXES = (".json", ".csv")


def check_records_path(path, *, writable: bool = False) -> Path:
    """``path`` as a Path ending in .json or .csv; ValueError otherwise (checked before any measuring).

    ``writable=True`` also checks that the file can be written there (:func:`check_writable`).
    """
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise ValueError(f"path must end in .json or .csv; got {path.name!r}")
    return check_writable(path) if writable else path


def check_writable(path) -> Path:
    """``path`` can be written: it is not a folder, and the nearest existing folder above it is a folder
    this process can create files in (tried with a nameless temporary file, which leaves no trace).
    Missing folders between them are fine (they are created when the file is saved). ValueError otherwise.
    """
    path = Path(path)
    try:
        is_dir = path.is_dir()
        folder, new = path.parent, [path.name]
        while not folder.exists() and folder != folder.parent:
            folder, new = folder.parent, [folder.name, *new]
    except OSError as exc:  # e.g. a name longer than the file system allows
        raise ValueError(f"path must be a file this process can write; got {str(path)[:80]!r}… "
                         f"({exc.strerror or exc})") from None
    if is_dir:
        raise ValueError(f"path must name a file to write; got {str(path)!r}, which is a folder")
    if not folder.is_dir():
        raise ValueError(f"path must lie under a folder; got {str(path)!r}, but {str(folder)!r} is a file")
    try:
        name_max = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        name_max = 255
    long = [n for n in new if len(os.fsencode(n)) > name_max]
    if long:
        raise ValueError(f"path must have names of at most {name_max} bytes; got one of {len(os.fsencode(long[0]))} "
                         f"in {str(path)[:60]!r}…")
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"path must be writable; got {str(path)!r} (no write permission)")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ValueError(f"path must be in a folder this process can write to; got {str(path)!r} "
                         f"({str(folder)!r}: {exc.strerror or exc})") from None
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
        "allocator": allocator_setting(),
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
        """Read what :meth:`save` wrote (numbers come back as int/float, empty CSV cells as None).

        A file that is not a records file (not JSON/CSV, no ``records`` list, a record without a method,
        an N or a mode) raises ValueError naming the file and what is wrong; an unreadable one, OSError.
        """
        path = check_records_path(path)
        if path.suffix == ".json":
            try:
                data = json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ValueError(f"{path} is not a records file: not JSON ({exc})") from None
            if not isinstance(data, dict) or not isinstance(data.get("records"), list):
                raise ValueError(f"{path} is not a records file: expected a JSON object with a 'records' list "
                                 f"(and a 'metadata' object); got {_describe(data)}")
            if not isinstance(data.get("metadata", {}), dict):
                raise ValueError(f"{path} is not a records file: 'metadata' must be an object; got "
                                 f"{_describe(data['metadata'])}")
            records, meta = data["records"], data.get("metadata", {})
        else:
            try:
                with path.open(newline="") as fh:
                    reader = csv.DictReader(fh)
                    rows = list(reader)
                    columns = reader.fieldnames or []
            except (csv.Error, UnicodeDecodeError) as exc:
                raise ValueError(f"{path} is not a records file: not CSV ({exc})") from None
            if columns and not {"method", "n", "mode"} <= set(columns):
                raise ValueError(f"{path} is not a records file: a records CSV has the columns method, n, mode; "
                                 f"got {', '.join(columns)[:120]}")
            meta = {k[5:]: _parse_cell(v, k[5:]) for k, v in rows[0].items() if k.startswith("meta_")} if rows else {}
            records = [{k: _parse_cell(v, k) for k, v in r.items() if not k.startswith("meta_")} for r in rows]
        for i, r in enumerate(records):
            problem = _record_problem(r)
            if problem:
                raise ValueError(f"{path} is not a records file: record {i} {problem}")
        return cls(records=records, metadata=meta)


def _describe(x) -> str:
    text = json.dumps(x) if isinstance(x, (list, dict, str, int, float, bool, type(None))) else repr(x)
    return f"{type(x).__name__} {text[:60]}{'…' if len(text) > 60 else ''}"


def _record_problem(r) -> str | None:
    """What makes ``r`` not a record (None when it is one): a dict with method, n >= 1 and mode, numbers as numbers."""
    if not isinstance(r, dict):
        return f"must be an object with method, n and mode; got {_describe(r)}"
    missing = [k for k in ("method", "n", "mode") if k not in r]
    if missing:
        return f"has no {', '.join(missing)}"
    if not isinstance(r["method"], str) or not isinstance(r["mode"], str):
        return f"must have a string method and mode; got {r['method']!r}, {r['mode']!r}"
    if isinstance(r["n"], bool) or not isinstance(r["n"], int) or r["n"] < 1:
        return f"must have an int n >= 1; got {r['n']!r}"
    for key in ("median_s", "iqr_s", "peak_bytes", "predicted_bytes", "state_bytes"):
        value = r.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            return f"must have a finite number >= 0 (or nothing) as {key}; got {value!r}"
        if key == "median_s" and value == 0 and r.get("status") == "ok":
            return "must have a median_s > 0 when its status is ok; got 0"
    return None


#: CSV columns that hold text even when it reads as a number (a git revision "6854045" or "12e4567", a version "4.57")
_TEXT_COLUMNS = frozenset({"git_revision", "date", "device_name", "torch_version", "linattn_edu_version",
                           "python_version", "transformers", "note"})


def _parse_cell(text: str, column: str):
    """A CSV cell as the value :meth:`Results.save` wrote: None, bool, int, float, or text (always for _TEXT_COLUMNS)."""
    if column in _TEXT_COLUMNS:
        return text or None
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
