"""Render a PNG beside each timing record file named on the command line (plotly + kaleido + a Chromium).

    python scripts/render_assets.py assets/cpu_sweep.json assets/gpu_h200_a29e95a_decode.json ...

``*decode.json`` -> ``*decode.png`` (decode step time and bytes kept); any other record file ->
one PNG per mode it holds (``*_forward.png``, ``*_forward_backward.png``).  The title names the device.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

from linattn_edu.bench import Results


def figures(path: Path) -> dict:
    """{png path: figure} for one record file."""
    from linattn_edu.viz import decode_figure, timing_figure

    res = Results.load(path)
    meta = res.metadata
    where = meta.get("device_name", meta.get("device", ""))
    shape = f"B={meta.get('batch')}, H={meta.get('heads')}, d={meta.get('d')}, {meta.get('dtype')}"
    if path.stem.endswith("decode"):
        return {path.with_suffix(".png"): decode_figure(res, title=f"Decoding one token at context N on {where} ({shape})")}
    modes = [m for m in ("forward", "forward+backward") if res.select(mode=m)]
    return {path.with_name(f"{path.stem}_{m.replace('+', '_')}.png"):
            timing_figure(res, mode=m, title=f"Causal attention, {m}, on {where} ({shape})") for m in modes}


def main(paths: list[str]) -> int:
    try:
        import kaleido
        import plotly  # noqa: F401
    except ImportError:  # e.g. a GPU machine without the [notebooks] extra: render elsewhere
        print("kaleido/plotly are not installed: no PNGs written; render them on a machine with the [notebooks] extra:\n"
              f"    python scripts/render_assets.py {' '.join(paths)}")
        return 0

    kaleido.start_sync_server()
    try:
        for path in map(Path, paths):
            for out, fig in figures(path).items():
                with warnings.catch_warnings():  # plotly passes kaleido options a running server ignores
                    warnings.filterwarnings("ignore", message="The kopts argument is ignored")
                    fig.write_image(out, width=1100, height=480, scale=1)
                print(f"wrote {out}")
    finally:
        kaleido.stop_sync_server()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
