"""Decay explorer: the effective attention map exp(G_i − G_j) of a fixed and a data-dependent gate.

A gated state S_t = exp(g_t) S_{t−1} + φ(k_t)v_tᵀ weighs key j in query i's output by
L_ij = exp(G_i − G_j) = Π_{j<t<=i} exp(g_t) (G = cumsum g, i >= j):

    RetNet:          g_t = log γ_h, γ_h = 1 − 2^(−5−h)     L_ij = γ_h^(i−j): the same fade everywhere
    data-dependent:  g_t = log σ(b + x_t)  (Mamba-2, GLA)   each token decides how much to keep
"""

from __future__ import annotations

import ipywidgets as widgets
import plotly.graph_objects as go
import torch
import torch.nn.functional as F

from ..gated import decay_mask, retnet_log_decay
from ..viz.gates import decay_maps
from ._base import Explorer, seed_box

__all__ = ["DecayExplorer", "decay_explorer", "data_dependent_gate"]

MAX_N = 128


def data_dependent_gate(n: int, *, bias: float, spread: float, seed: int = 0) -> torch.Tensor:
    """g_t = log σ(bias + spread·x_t), x_t ~ N(0, 1): a log-decay <= 0 per token, (n,) float64."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=gen, dtype=torch.float64)  # (n,)
    return F.logsigmoid(bias + spread * x)  # (n,), < 0


class DecayExplorer(Explorer):
    """Readouts: ``remembered`` {map: Σ_j L_(N−1),j, the tokens the last query still sees}, ``gamma``."""

    limits = {"n": "the explorer draws dense N × N maps"}
    compute_threads = 1
    try_this = ("Try this → move the RetNet head from 0 to 7 → you should see the band widen (γ from 0.969 to "
                "0.9998) and the tokens the last query remembers (the sum of its row, in the title: (1 − γᴺ)/(1 − γ)) "
                "grow from 25 of 48 to nearly all 48; then lower the gate bias to 0 and raise its spread to 4 → you "
                "should see the data-dependent map cut into blocks: a token whose gate is near 0 wipes the memory of "
                "everything before it.")

    def __init__(self, *, n: int = 48, head: int = 0, bias: float = 3.0, spread: float = 2.0, seed: int = 0):
        self.remembered: dict[str, float] = {}
        self.gamma = float("nan")
        self.maps: dict[str, torch.Tensor] = {}
        style = {"description_width": "initial"}
        controls = {
            "n": widgets.IntSlider(min=2, max=MAX_N, description="N (tokens)", style=style),
            "head": widgets.IntSlider(min=0, max=7, description="RetNet head h", style=style),
            "bias": widgets.FloatSlider(min=-2.0, max=8.0, step=0.25, description="gate bias b", style=style),
            "spread": widgets.FloatSlider(min=0.0, max=4.0, step=0.25, description="gate spread", style=style),
            "seed": seed_box(),
        }
        super().__init__(controls, dict(n=n, head=head, bias=bias, spread=spread, seed=seed))

    def compute(self, *, n, head, bias, spread, seed) -> go.Figure:
        log_gamma = retnet_log_decay(head + 1, dtype=torch.float64)[head]  # ()
        self.gamma = float(log_gamma.exp())
        fixed = decay_mask(log_gamma.expand(n))  # (n, n): γ^(i−j)
        data = decay_mask(data_dependent_gate(n, bias=bias, spread=spread, seed=seed))  # (n, n)
        self.maps = {f"RetNet head {head}: γ = {self.gamma:.4f}": fixed,
                     f"data-dependent: σ({bias:g} + {spread:g}·xₜ)": data}
        self.remembered = {name: float(m[-1].sum()) for name, m in self.maps.items()}
        return decay_maps(self.maps)


def decay_explorer(**defaults) -> DecayExplorer:
    """Decay masks of RetNet's per-head γ and of a data-dependent gate; controls N, head, bias, spread, seed.

    >>> ex = decay_explorer(n=64, head=2)
    >>> round(ex.gamma, 4)
    0.9922
    """
    return DecayExplorer(**defaults)
