"""Render the PNGs of timing record files (``python -m linattn_edu.viz [PATH ...]``; needs kaleido).

A PATH is a record file or a folder; a folder means its timing records (``cpu_*.json``, ``gpu_*.json``).
``*decode.json`` → ``*decode.png``; any other record → one PNG per mode it holds
(``*_forward.png``, ``*_forward_backward.png``). Each title names the device and the shape.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Sequence

from ..bench import Results
from .timing import decode_figure, timing_figure

__all__ = ["record_figures", "render_assets", "main"]

TIMING_RECORDS = ("cpu_*.json", "gpu_*.json")  # what a folder holds that is a timing record


def _record_files(paths) -> list[Path]:
    """Files as given; folders expanded to their timing records."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for pattern in TIMING_RECORDS for p in path.glob(pattern))
        else:
            files.append(path)
    return files


def record_figures(path) -> dict:
    """{png path: figure} for one record file, titled with its device and shape."""
    path = Path(path)
    res = Results.load(path)
    meta = res.metadata
    where = meta.get("device_name", meta.get("device", ""))
    shape = f"B={meta.get('batch')}, H={meta.get('heads')}, d={meta.get('d')}, {meta.get('dtype')}"
    if path.stem.endswith("decode"):
        return {path.with_suffix(".png"): decode_figure(res, title=f"Decoding one token at context N on {where} ({shape})")}
    modes = [m for m in ("forward", "forward+backward") if res.select(mode=m)]
    return {path.with_name(f"{path.stem}_{m.replace('+', '_')}.png"):
            timing_figure(res, mode=m, title=f"Causal attention, {m}, on {where} ({shape})") for m in modes}


def render_assets(paths=("assets",), *, width: int = 1100, height: int = 480) -> list[Path]:
    """Write a PNG beside each record file in ``paths`` (files or folders). Needs kaleido and a Chromium."""
    import kaleido

    if isinstance(paths, (str, Path)):
        paths = [paths]
    kaleido.start_sync_server()
    written = []
    try:
        for path in _record_files(paths):
            for out, fig in record_figures(path).items():
                with warnings.catch_warnings():  # plotly passes kaleido options a running server ignores
                    warnings.filterwarnings("ignore", message="The kopts argument is ignored")
                    fig.write_image(out, width=width, height=height, scale=1)
                written.append(out)
    finally:
        kaleido.stop_sync_server()
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m linattn_edu.viz [PATH ...]``: render PNGs of the records (default: the folder assets)."""
    argv = list(sys.argv[1:] if argv is None else argv) or ["assets"]
    try:
        import kaleido  # noqa: F401
    except ImportError:  # e.g. a GPU machine without the [notebooks] extra: render elsewhere
        print("kaleido is not installed: no PNGs written; render them on a machine with the [notebooks] extra:\n"
              f"    python -m linattn_edu.viz {' '.join(argv)}")
        return 0
    for path in render_assets(argv):
        print(f"wrote {path}")
    return 0
