"""Feature-map approximation explorer: random features estimating the softmax kernel.

    κ(q, k) = exp(qᵀk / √d)                       exact (softmax's kernel)
    κ̂(q, k) = φ(q)ᵀφ(k),  φ = FAVOR+ or trig     E_ω[κ̂] = κ, error ∝ 1/√m

Left: every (q, k) pair's estimate against the exact value at the chosen m.  Right: relative error
``mean|κ̂ − κ| / mean κ`` against m (log-log), orthogonal vs iid projections, each averaged over
``DRAWS`` fixed draws, with a 1/√m guide; the black cross is the current draw, so "resample"
(new ω: seed + 1) shows the spread around the average.  The (q, k) points depend only on d and the
input std, so only the current draw is recomputed when m, the seed or "orthogonal" change.
Trig features can be negative (the reason FAVOR+ uses positive features): the title shows how often.
"""

from __future__ import annotations

from functools import lru_cache

import ipywidgets as widgets
import plotly.graph_objects as go
import torch

from ..feature_maps import favor_plus, trig_random_features
from .. import viz
from ._base import Explorer, seed_box

__all__ = ["FeatureMapExplorer", "feature_map_explorer", "kernel_estimate", "error_curve", "MS"]

MS = tuple(2 ** i for i in range(2, 11))  # 4 … 1024 features
DRAWS = 3
BUILDERS = {"favor+": favor_plus, "trig": trig_random_features}
N_POINTS = 24


def _points(d: int, n: int, input_scale: float):
    """Queries and keys (n, d) float64 ~ N(0, input_scale²·I), the same for every draw of ω."""
    gen = torch.Generator().manual_seed(10_000 + d)
    q = input_scale * torch.randn(n, d, generator=gen, dtype=torch.float64)  # (n, d)
    k = input_scale * torch.randn(n, d, generator=gen, dtype=torch.float64)  # (n, d)
    return q, k


def kernel_estimate(kind: str, q: torch.Tensor, k: torch.Tensor, m: int, orthogonal: bool, seed: int):
    """(exact exp(qᵀk/√d), estimate φ(q)ᵀφ(k)): q (N, d), k (M, d) -> two (N, M) tensors."""
    if kind not in BUILDERS:
        raise ValueError(f"kind must be one of {sorted(BUILDERS)}; got {kind!r}")
    d = q.shape[-1]
    phi = BUILDERS[kind](d, m, orthogonal=orthogonal, seed=seed)
    exact = torch.exp(q @ k.T / d ** 0.5)  # (N, d) @ (d, M) -> (N, M)
    estimate = phi(q) @ phi(k).T  # (N, d_φ) @ (d_φ, M) -> (N, M)
    return exact, estimate


def relative_error(exact: torch.Tensor, estimate: torch.Tensor) -> float:
    """mean |κ̂ − κ| / mean |κ| over all pairs."""
    return float((estimate - exact).abs().mean() / exact.abs().mean())


@lru_cache(maxsize=32)
def error_curve(kind: str, d: int, input_scale: float, orthogonal: bool) -> tuple[float, ...]:
    """Relative error at each m in :data:`MS`, averaged over ``DRAWS`` draws of ω (seeds 10⁶ + r)."""
    q, k = _points(d, N_POINTS, input_scale)
    out = []
    for m in MS:
        errs = [relative_error(*kernel_estimate(kind, q, k, m, orthogonal, 10 ** 6 + r))
                for r in range(DRAWS)]
        out.append(sum(errs) / DRAWS)
    return tuple(out)


class FeatureMapExplorer(Explorer):
    """Random-feature kernel estimates; readouts ``relative_error``, ``negative_fraction``, ``errors``."""

    compute_threads = 1  # tiny tensors: threads only add overhead
    try_this = ("Try this → move features m from 4 to 1024 → you should see the cloud close in on the diagonal "
                "y = x and both error curves fall: iid along the 1/√m guide, orthogonal below iid at every m "
                "(about 3× below at m = 4) until the two meet at m = 1024; switch to trig to see negative "
                "estimates (the title counts them: 30% at m = 4), which positive FAVOR+ features never give.")

    def __init__(self, *, kind: str = "favor+", d: int = 16, m: int = 64, orthogonal: bool = True,
                 input_scale: float = 0.7, seed: int = 0):
        self.relative_error = self.negative_fraction = float("nan")
        self.errors: dict[str, tuple[float, ...]] = {}
        style = {"description_width": "initial"}
        controls = {
            "kind": widgets.ToggleButtons(options=(("FAVOR+ (positive)", "favor+"), ("trig (sin/cos)", "trig")),
                                          description="features"),
            "m": widgets.SelectionSlider(options=MS, description="features m", style=style),
            "orthogonal": widgets.Checkbox(description="orthogonal ω (left panel)"),
            "d": widgets.IntSlider(min=1, max=64, description="d", style=style),
            "input_scale": widgets.FloatSlider(min=0.1, max=2.0, step=0.05, description="input std",
                                               style=style),
            "seed": seed_box(),
        }
        self.resample = widgets.Button(description="resample ω", icon="refresh")
        self.resample.on_click(lambda _button: self.update(seed=self.controls["seed"].value + 1))
        super().__init__(controls, dict(kind=kind, d=d, m=m, orthogonal=orthogonal, input_scale=input_scale,
                                        seed=seed), extra=[self.resample])

    def compute(self, *, kind, m, orthogonal, d, input_scale, seed) -> go.Figure:
        q, k = _points(d, N_POINTS, input_scale)  # (N, d), (N, d)
        exact, estimate = kernel_estimate(kind, q, k, m, orthogonal, seed)  # (N, N), (N, N)
        self.relative_error = relative_error(exact, estimate)
        self.negative_fraction = float((estimate < 0).double().mean())
        self.errors = {label: error_curve(kind, d, input_scale, orth)
                       for label, orth in (("orthogonal", True), ("iid", False))}
        method = "FAVOR+" if kind == "favor+" else "trigonometric"
        return viz.feature_map_approximation(exact, estimate, MS, self.errors, m, method=method,
                                             this_draw=self.relative_error)


def feature_map_explorer(**defaults) -> FeatureMapExplorer:
    """FAVOR+ / trig random features vs the exact exp kernel; controls kind, m, orthogonal, d, input std, seed.

    >>> fm = feature_map_explorer(m=256); fm.relative_error
    """
    return FeatureMapExplorer(**defaults)
