"""Kernel smoother explorer: attention is Nadaraya–Watson regression.

    f(x*) = Σ_j κ(x*, x_j) y_j / Σ_j κ(x*, x_j)       keys x_j, values y_j, query x*

Kernels (h = bandwidth, the "temperature"):
    gaussian  exp(−‖x − x'‖² / 2h²)       boxcar  1[‖x − x'‖ ≤ h]
    exp       exp(xᵀx' / h)               — softmax attention's kernel: not local, it favours large xᵀx'
    elu+1     φ(x/√h)ᵀφ(x'/√h)            — a factorised kernel, the one linear attention uses
    favor+    FAVOR+ (m = 64) estimate of exp(xᵀx' / h)
In 1-D the data are y = sin(2x) + noise on [−3, 3]; in 2-D, y = sin(x₁)cos(x₂) + noise on [−2, 2]².
"""

from __future__ import annotations

import math

import ipywidgets as widgets
import plotly.graph_objects as go
import torch

from ..feature_maps import favor_plus
from ..kernel import boxcar_kernel, exp_kernel, feature_map_kernel, gaussian_kernel, kernel_smoother
from .. import viz
from ._base import Explorer, seed_box

__all__ = ["KernelSmootherExplorer", "kernel_smoother_explorer", "make_kernel", "KERNELS"]

KERNELS = (("Gaussian", "gaussian"), ("boxcar", "boxcar"), ("exp (softmax)", "exp"),
           ("φ = elu+1 (linear attn.)", "elu+1"), ("φ = FAVOR+ m=64", "favor+"))
FAVOR_M = 64
GRID_1D = 200
GRID_2D = 41


def make_kernel(name: str, bandwidth: float, dim: int, seed: int = 0):
    """The kernel κ for ``name`` at ``bandwidth`` h, as a callable (q (..., N, dim), k (..., M, dim)) -> (..., N, M)."""
    if name == "gaussian":
        return gaussian_kernel(bandwidth)
    if name == "boxcar":
        return boxcar_kernel(bandwidth)
    if name == "exp":
        return exp_kernel(scale=1.0 / bandwidth)
    if name in ("elu+1", "favor+"):
        # favor+ estimates exp(x'ᵀy'/√dim) on x' = x·dim^¼/√h: i.e. exp(xᵀy/h), like "exp"
        phi = favor_plus(dim, FAVOR_M, seed=seed) if name == "favor+" else "elu+1"
        factor = (dim ** 0.25 if name == "favor+" else 1.0) / math.sqrt(bandwidth)
        inner = feature_map_kernel(phi)
        return lambda q, k: inner(q * factor, k * factor)  # (..., N, M)
    raise ValueError(f"kernel must be one of {[k for _, k in KERNELS]}; got {name!r}")


def _data(dim: int, n_points: int, noise: float, seed: int):
    """Keys x (M, dim) and values y (M, 1), float64, from the explorer's target function."""
    gen = torch.Generator().manual_seed(seed)
    lim = 3.0 if dim == 1 else 2.0
    x = (torch.rand(n_points, dim, generator=gen, dtype=torch.float64) * 2 - 1) * lim  # (M, dim)
    y = _target(x) + noise * torch.randn(n_points, generator=gen, dtype=torch.float64)  # (M,)
    return x, y[:, None], lim  # (M, dim), (M, 1)


def _target(x: torch.Tensor) -> torch.Tensor:
    """sin(2x) in 1-D, sin(x₁)cos(x₂) in 2-D: (M, dim) -> (M,)."""
    return torch.sin(2 * x[:, 0]) if x.shape[1] == 1 else torch.sin(x[:, 0]) * torch.cos(x[:, 1])


class KernelSmootherExplorer(Explorer):
    """Nadaraya–Watson with a chosen kernel; readouts ``weights`` (one query's row) and ``prediction``."""

    compute_threads = 1  # tiny tensors: threads only add overhead
    try_this = ("Try this → with the Gaussian kernel slide the bandwidth h from 1 down to 0.05 → you should see the "
                "fit go from a smooth, flattened curve (its peaks well inside the dotted true function's) to a "
                "jagged one that chases the noise, closer to the points than the true function is; then pick "
                "“exp (softmax)”: its weights pile onto the keys with the largest x·x*, not the nearest ones.")

    def __init__(self, *, kernel: str = "gaussian", bandwidth: float = 0.4, query: float = 0.5,
                 query2: float = 0.0, n_points: int = 40, noise: float = 0.3, dim: int = 1, seed: int = 0):
        self.weights = self.fit = None
        self.prediction = float("nan")
        style = {"description_width": "initial"}
        controls = {
            "kernel": widgets.Dropdown(options=KERNELS, description="kernel"),
            "bandwidth": widgets.FloatLogSlider(base=10, min=-1.5, max=0.7, step=0.02, description="bandwidth h",
                                                style=style, readout_format=".3f"),
            "query": widgets.FloatSlider(min=-3.0, max=3.0, step=0.05, description="query x*", style=style),
            "query2": widgets.FloatSlider(min=-2.0, max=2.0, step=0.05, description="query x₂ (2-D)",
                                          style=style),
            "n_points": widgets.IntSlider(min=2, max=256, description="points M", style=style),
            "noise": widgets.FloatSlider(min=0.0, max=1.0, step=0.05, description="noise", style=style),
            "dim": widgets.ToggleButtons(options=(("1-D", 1), ("2-D", 2)), description="inputs",
                                         style={"button_width": "48px"}),
            "seed": seed_box(),
        }
        super().__init__(controls, dict(kernel=kernel, bandwidth=bandwidth, query=query, query2=query2,
                                        n_points=n_points, noise=noise, dim=dim, seed=seed))

    def adjust(self) -> None:
        self.controls["query2"].disabled = self.controls["dim"].value == 1

    def compute(self, *, kernel, bandwidth, query, query2, n_points, noise, dim, seed) -> go.Figure:
        x, y, lim = _data(dim, n_points, noise, seed)  # (M, dim), (M, 1)
        kappa = make_kernel(kernel, bandwidth, dim, seed)
        name = dict((v, k) for k, v in KERNELS)[kernel]
        q_star = torch.tensor([[query] if dim == 1 else [query, query2]], dtype=torch.float64)  # (1, dim)
        out, w = kernel_smoother(q_star, x, y, kappa, return_weights=True)  # (1, 1), (1, M)
        self.weights, self.prediction = w[0], float(out[0, 0])  # (M,)
        axis = torch.linspace(-lim, lim, GRID_1D if dim == 1 else GRID_2D, dtype=torch.float64)  # (G,)
        if dim == 1:
            self.fit = kernel_smoother(axis[:, None], x, y, kappa)[:, 0]  # (G, 1) -> (G,)
            truth = _target(axis[:, None])  # (G,)
            return viz.kernel_smoother_1d(x[:, 0], y[:, 0], axis, self.fit, w[0], query, truth=truth,
                                          kernel_name=name)
        gx, gy = torch.meshgrid(axis, axis, indexing="xy")  # (G, G) each: gx[r, c] = axis[c]
        grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=-1)  # (G², 2)
        self.fit = kernel_smoother(grid, x, y, kappa)[:, 0].reshape(len(axis), len(axis))  # (G², 1) -> (G, G)
        return viz.kernel_smoother_2d(x, y[:, 0], axis, self.fit, w[0], (query, query2), kernel_name=name)


def kernel_smoother_explorer(**defaults) -> KernelSmootherExplorer:
    """Attention as kernel smoothing; controls kernel, bandwidth h, query, points, noise, 1-D/2-D, seed.

    >>> ks = kernel_smoother_explorer(kernel="exp", bandwidth=1.0)
    """
    return KernelSmootherExplorer(**defaults)
