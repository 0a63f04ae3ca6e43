"""Timing explorer: time and peak memory of attention forms vs sequence length N, on this machine.

    time(N): median of torch.utils.benchmark samples (IQR bars)   log-log, one line per method
    theory:  c·N²d fitted to SDPA, c·Nd² fitted to chunkwise      dashed
    memory:  peak extra bytes of one call (profiler on CPU, max_memory_allocated on CUDA)

Live mode (no ``records``) measures on first use of each (method, N, mode, chunk size) and caches
the result, so toggling methods or panels costs nothing; raising ``n_max`` measures only the new
points.  Pass ``records`` (a :class:`~linattn_edu.bench.Results` or a path to saved records) to
browse shipped results instead.  Honest box: timings on a shared machine are noisy; compare
methods measured in the same run, and expect the crossover N to move with the hardware.
"""

from __future__ import annotations

from pathlib import Path

import ipywidgets as widgets
import plotly.graph_objects as go

from .. import bench
from ..bench import METHODS, MODES, Results
from ..viz import timing_figure
from ._base import Explorer

__all__ = ["TimingExplorer", "timing_explorer", "N_MAX_CHOICES", "CHUNK_CHOICES"]

N_MAX_CHOICES = (256, 512, 1024, 2048, 4096, 8192)
CHUNK_CHOICES = (16, 32, 64, 128, 256)
N_MIN = 128


class TimingExplorer(Explorer):
    """Controls: one checkbox per method, mode, theory, memory (and, live: n_max, chunk_size).

    Readouts: ``results`` (every record measured or loaded so far), ``crossover`` (N where
    chunkwise overtakes SDPA in the current view, or None), ``slopes`` ({method: log-log slope}).
    """

    limits = {"n_max": "live sweeps stay small so a CPU finishes in seconds"}
    try_this = ("Try this → tick linear_quadratic and recurrent, then switch mode → you should see the quadratic "
                "methods (softmax, SDPA, linear_quadratic) rise with slope ≈ 2 on these log-log axes and chunkwise "
                "with slope ≈ 1, so the SDPA and chunkwise lines cross (the dotted vertical line marks where, when "
                "both are ticked); the recurrent token loop is the slowest line at every N it reaches.")

    def __init__(self, *, records=None, methods=("softmax", "sdpa", "chunkwise"), mode: str = "forward",
                 n_max: int = 1024, chunk_size: int = 64, theory: bool = True, memory: bool = True,
                 device: str = "cpu", dtype: str = "float32", min_run_time: float = 0.05):
        if isinstance(records, (str, Path)):
            records = Results.load(records)
        if records is not None and not isinstance(records, Results):
            raise TypeError(f"records must be a bench.Results, a path to saved records or None; "
                            f"got {type(records).__name__}")
        self.live = records is None
        self.results = records if records is not None else Results()
        self.device, self.dtype, self.min_run_time = device, dtype, min_run_time
        self.crossover, self.slopes = None, {}
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            raise ValueError(f"methods must be among {list(METHODS)}; got {unknown}")
        available = list(METHODS) if self.live else self.results.methods()
        modes = list(MODES) if self.live else [m for m in MODES if self.results.select(mode=m)]
        controls: dict[str, widgets.Widget] = {
            m: widgets.Checkbox(description=m, indent=False, layout=widgets.Layout(width="150px"))
            for m in available
        }
        controls["mode"] = widgets.ToggleButtons(options=modes, description="mode")
        if self.live:
            controls["n_max"] = widgets.Dropdown(options=N_MAX_CHOICES, description="largest N")
            controls["chunk_size"] = widgets.Dropdown(options=CHUNK_CHOICES, description="chunk C")
        controls["theory"] = widgets.Checkbox(description="theory fits", indent=False)
        controls["memory"] = widgets.Checkbox(description="memory panel", indent=False)
        values = {m: m in methods for m in available}
        values.update(mode=mode, theory=theory, memory=memory)
        if self.live:
            values.update(n_max=n_max, chunk_size=chunk_size)
        super().__init__(controls, values)

    def _measure(self, methods: list[str], mode: str, n_max: int, chunk_size: int) -> None:
        """Measure the (method, N) points not yet in ``self.results`` (live mode only)."""
        for method in methods:
            have = {r["n"] for r in self._rows(method, mode, chunk_size)}
            missing = [n for n in bench.log_grid(N_MIN, n_max) if n not in have]
            if not missing:
                continue
            new = bench.sweep((method,), missing, modes=(mode,), device=self.device, dtype=self.dtype,
                              chunk_size=chunk_size, min_repeats=3, min_run_time=self.min_run_time,
                              time_budget_s=5.0, progress=False)
            self.results.records.extend(new.records)
            self.results.metadata = self.results.metadata or new.metadata

    def _rows(self, method: str, mode: str, chunk_size: int | None) -> list[dict]:
        rows = self.results.select(method=method, mode=mode)
        if chunk_size is not None and method == "chunkwise":
            rows = [r for r in rows if r.get("chunk_size") in (None, chunk_size)]
        return rows

    def compute(self, *, mode: str, theory: bool, memory: bool, n_max: int | None = None,
                chunk_size: int | None = None, **checked: bool) -> go.Figure:
        methods = [m for m, on in checked.items() if on]
        if not methods:
            raise ValueError("tick at least one method")
        if self.live:
            self._measure(methods, mode, n_max, chunk_size)
        rows = [r for m in methods for r in self._rows(m, mode, chunk_size)
                if n_max is None or r["n"] <= n_max]
        view = Results(records=rows, metadata=self.results.metadata)
        self.crossover = bench.crossover_n(view, mode=mode) if {"sdpa", "chunkwise"} <= set(methods) else None
        self.slopes = bench.slopes(view, mode=mode, n_min=0, n_max=10**9)
        return timing_figure(view, mode=mode, methods=methods, theory=theory, memory=memory)


def timing_explorer(**defaults) -> TimingExplorer:
    """Time and memory vs N, live on this machine or from saved records.

    >>> ex = timing_explorer(methods=("sdpa", "chunkwise"), n_max=1024)   # measures ~10 points
    >>> ex.crossover, ex.slopes
    >>> timing_explorer(records="assets/cpu_sweep.json")                   # shipped results
    """
    return TimingExplorer(**defaults)
