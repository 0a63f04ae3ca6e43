"""Render the PNGs of the shipped timing records (``python -m linattn_edu.viz [FOLDER]``; needs kaleido)."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Sequence

from ..bench import Results
from .timing import decode_figure, timing_figure

__all__ = ["render_assets", "main"]


def render_assets(folder="assets", *, width: int = 1100, height: int = 480) -> list[Path]:
    """Write a PNG beside each shipped record file in ``folder``: *sweep*.json → two PNGs (forward,
    forward+backward), *decode*.json → one PNG.  Needs kaleido and a Chromium."""
    import kaleido

    kaleido.start_sync_server()
    folder = Path(folder)
    written = []
    try:
        for path in sorted(folder.glob("*.json")):
            res = Results.load(path)
            if path.stem.endswith("decode"):
                figs = {path.with_suffix(".png"): decode_figure(res)}
            else:
                modes = [m for m in ("forward", "forward+backward") if res.select(mode=m)]
                figs = {path.with_name(f"{path.stem}_{m.replace('+', '_')}.png"): timing_figure(res, mode=m)
                        for m in modes}
            for out, fig in figs.items():
                with warnings.catch_warnings():  # plotly passes kaleido options a running server ignores
                    warnings.filterwarnings("ignore", message="The kopts argument is ignored")
                    fig.write_image(out, width=width, height=height, scale=1)
                written.append(out)
    finally:
        kaleido.stop_sync_server()
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m linattn_edu.viz [FOLDER]``: render PNGs of the records in FOLDER (default assets)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    for path in render_assets(argv[0] if argv else "assets"):
        print(f"wrote {path}")
    return 0
