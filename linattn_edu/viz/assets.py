"""Render the PNGs of timing record files (``python -m linattn_edu.viz [PATH ...]``; needs kaleido).

A PATH is a record file or a folder; a folder means its timing records (``cpu_*.json``, ``gpu_*.json``).
``*decode.json`` (or a file of decode records) → ``*decode.png``; any other record → one PNG per mode it
holds (``*_forward.png``, ``*_forward_backward.png``). Each title names the device and the shape.

Everything is checked before the first PNG is drawn: each path exists, each file is a records file with
something to draw, each folder holds timing records, and each PNG's folder can be written. The command
line answers a bad path with one line and exit status 2 (argparse); without kaleido it says what to
install and exits with status 1.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Sequence

from ..bench import Results
from ..bench.records import check_writable
from .timing import decode_figure, timing_figure

__all__ = ["record_figures", "plan_assets", "render_assets", "build_parser", "main", "KALEIDO_HINT"]

TIMING_RECORDS = ("cpu_*.json", "gpu_*.json")  # what a folder holds that is a timing record
MODES = ("forward", "forward+backward")
KALEIDO_HINT = ("kaleido is not installed, so no PNG was written; install it with: pip install 'kaleido>=1.0' "
                "(or the notebooks extra: pip install 'linattn-edu[notebooks]'), then rerun this command")


def _record_files(paths) -> list[Path]:
    """Files as given; folders expanded to their timing records. ValueError for a missing path or an empty folder."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for pattern in TIMING_RECORDS for p in path.glob(pattern))
            if not found:
                raise ValueError(f"no records in {str(path)!r}: a folder's timing records are "
                                 f"{' and '.join(TIMING_RECORDS)}")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise ValueError(f"PATH must be a record file or a folder; got {str(path)!r}, which does not exist")
    return files


def record_figures(path) -> dict:
    """{png path: figure} for one record file, titled with its device and shape.

    ValueError when the file is not a records file (see :meth:`Results.load`) or holds nothing to draw.
    """
    path = Path(path)
    res = Results.load(path)
    if not res.records:
        raise ValueError(f"no records in {str(path)!r}")
    meta = res.metadata
    where = meta.get("device_name", meta.get("device", ""))
    shape = f"B={meta.get('batch')}, H={meta.get('heads')}, d={meta.get('d')}, {meta.get('dtype')}"
    held = {r["mode"] for r in res.records}
    if path.stem.endswith("decode") or held == {"decode"}:
        title = f"Decoding one token at context N on {where} ({shape})"
        return {path.with_suffix(".png"): decode_figure(res, title=title)}
    modes = [m for m in MODES if m in held]
    if not modes:
        raise ValueError(f"nothing to draw in {str(path)!r}: expected forward or forward+backward records (or a "
                         f"*decode.json of decode records); got modes {', '.join(sorted(held))}")
    return {path.with_name(f"{path.stem}_{m.replace('+', '_')}.png"):
            timing_figure(res, mode=m, title=f"Causal attention, {m}, on {where} ({shape})") for m in modes}


def plan_assets(paths=("assets",)) -> dict:
    """{png path: figure} for every record in ``paths`` (files or folders), with every check done:
    each file loads and has something to draw, each PNG can be written. Draws nothing on disk."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    plan = {}
    for path in _record_files(paths):
        plan.update(record_figures(path))
    for out in plan:
        check_writable(out)
    return plan


def render_assets(paths=("assets",), *, width: int = 1100, height: int = 480) -> list[Path]:
    """Write a PNG beside each record file in ``paths`` (files or folders). Needs kaleido and a Chromium.

    Every path is checked first (:func:`plan_assets`): a bad one raises ValueError before any PNG is written.
    """
    return _write(plan_assets(paths), width=width, height=height)


def _write(plan: dict, *, width: int, height: int) -> list[Path]:
    """Write each figure of ``plan`` ({png path: figure}) with kaleido; returns the paths written."""
    import kaleido

    kaleido.start_sync_server()
    written = []
    try:
        for out, fig in plan.items():
            with warnings.catch_warnings():  # plotly passes kaleido options a running server ignores
                warnings.filterwarnings("ignore", message="The kopts argument is ignored")
                fig.write_image(out, width=width, height=height, scale=1)
            written.append(out)
    finally:
        kaleido.stop_sync_server()
    return written


def _pixels(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int >= 16; got {text!r}") from None
    if value < 16:
        raise argparse.ArgumentTypeError(f"expected an int >= 16; got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m linattn_edu.viz",
        description="Render a PNG beside each timing record file (needs kaleido and a Chrome or Chromium).",
        epilog="A folder means its timing records (cpu_*.json, gpu_*.json). *decode.json gives *decode.png; "
               "any other record one PNG per mode it holds (*_forward.png, *_forward_backward.png).")
    parser.add_argument("paths", nargs="*", default=["assets"], metavar="PATH",
                        help="record files (.json/.csv) or folders (default: assets)")
    parser.add_argument("--width", type=_pixels, default=1100, help="PNG width in pixels (default 1100)")
    parser.add_argument("--height", type=_pixels, default=480, help="PNG height in pixels (default 480)")
    return parser


def _kaleido_missing() -> bool:
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return True
    return False


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m linattn_edu.viz [PATH ...]``: render PNGs of the records (default: the folder assets).

    Exit status 0: every PNG written; 2: a bad option or path (one line, nothing written); 1: kaleido is
    missing or its browser does not start (one line saying what to install, nothing written).
    """
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        plan = plan_assets(args.paths)
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    if _kaleido_missing():
        print(f"{parser.prog}: error: {KALEIDO_HINT}", file=sys.stderr)
        return 1
    try:
        written = _write(plan, width=args.width, height=args.height)
    except (RuntimeError, OSError) as exc:  # no Chrome for kaleido (its message says how to get one), a full disk
        print(f"{parser.prog}: error: the PNGs were not all written: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    return 0
