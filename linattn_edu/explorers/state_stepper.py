"""Recurrent state stepper: causal linear attention token by token, checked against the quadratic form.

    S_t = S_{t−1} + φ(k_t) v_tᵀ   (d_φ, d_v)        z_t = z_{t−1} + φ(k_t)   (d_φ,)
    out_t = φ(q_t)ᵀ S_t / φ(q_t)ᵀ z_t            (d_v,)

The readout must equal row t of the quadratic form  (φ(Q)φ(K)ᵀ ⊙ tril) V / row sums;  the explorer
shows the difference (``readout_error``, float64: ~1e-16).  Moving t only re-draws: the whole
trajectory (S_t, z_t, out_t for every t) is computed once per setting with a recorded
:class:`~linattn_edu.LinearAttentionState`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import ipywidgets as widgets
import plotly.graph_objects as go
import torch

from ..feature_maps import FeatureMap, feature_map_names, get_feature_map
from ..linear import LinearAttentionState, linear_attention
from .. import viz
from ._base import Explorer, seed_box

__all__ = ["StateStepper", "state_stepper", "trajectory", "Trajectory", "FEATURE_MAP_CHOICES"]

FEATURE_MAP_CHOICES = feature_map_names(positive_kernel=True)  # the registry's maps a normalised form accepts
FAVOR_M = 16  # FAVOR+ features in the stepper: d_φ = 16 keeps the state heatmap readable


class Trajectory(NamedTuple):
    """Inputs and every intermediate of one run; index t = after absorbing tokens 0…t."""

    q: torch.Tensor  # (n, d)
    k: torch.Tensor  # (n, d)
    v: torch.Tensor  # (n, d_v)
    phi: FeatureMap
    S: torch.Tensor  # (n, d_φ, d_v)
    z: torch.Tensor  # (n, d_φ)
    outputs: torch.Tensor  # (n, d_v) recurrent readouts
    reference: torch.Tensor  # (n, d_v) quadratic form


@lru_cache(maxsize=16)
def trajectory(n: int, d: int, d_v: int, feature_map: str, seed: int) -> Trajectory:
    """Run the recurrence over n random tokens (float64) and the quadratic form on the same inputs.

    Cached: moving the t slider only indexes the result.
    """
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(n, d, generator=gen, dtype=torch.float64)  # (n, d)
    k = torch.randn(n, d, generator=gen, dtype=torch.float64)  # (n, d)
    v = torch.randn(n, d_v, generator=gen, dtype=torch.float64)  # (n, d_v)
    kw = {"m": FAVOR_M, "seed": seed} if feature_map == "favor+" else {}
    phi = get_feature_map(feature_map, d, **kw)
    state = LinearAttentionState(d, d_v, feature_map=phi, dtype=torch.float64, record=True)
    outs = torch.stack([state.step(q[t], k[t], v[t]) for t in range(n)])  # n × (d_v,) -> (n, d_v)
    S = torch.stack([s for s, _ in state.history])  # (n, d_φ, d_v)
    z = torch.stack([zz for _, zz in state.history])  # (n, d_φ)
    reference = linear_attention(q, k, v, phi, causal=True, form="quadratic")  # (n, d_v)
    return Trajectory(q, k, v, phi, S, z, outs, reference)


class StateStepper(Explorer):
    """Step t through the recurrence; readouts ``t``, ``readout_error``, ``S``, ``z``, ``readout``,
    ``reference_row`` and ``run`` (the whole :class:`Trajectory`: inputs, φ, every state)."""

    limits = {"t": "t is a 0-based token index < N", "n": "the stepper draws one row per token"}
    apply_order = ("n",)  # t's range depends on N
    compute_threads = 1  # tiny tensors: threads only add overhead
    try_this = ("Try this → press play (or drag token t from 0 to N − 1) → you should see S_t and z_t change by "
                "one outer product φ(k_t)v_tᵀ per step, one more output row appear, and the readout − quadratic "
                "difference in the title stay near 1e-16.")

    def __init__(self, *, n: int = 12, d: int = 4, d_v: int = 4, feature_map: str = "elu+1", t: int = 5,
                 seed: int = 0):
        self.t = t
        self.readout_error = float("nan")
        self.S = self.z = self.readout = self.reference_row = self.run = None
        style = {"description_width": "initial"}
        controls = {
            "t": widgets.IntSlider(min=0, max=63, description="token t", style=style,
                                   continuous_update=True),
            "feature_map": widgets.Dropdown(options=FEATURE_MAP_CHOICES, description="φ"),
            "d": widgets.IntSlider(min=1, max=16, description="d (q, k dim)", style=style),
            "d_v": widgets.IntSlider(min=1, max=16, description="d_v", style=style),
            "n": widgets.IntSlider(min=1, max=64, description="N (tokens)", style=style),
            "seed": seed_box(),
        }
        self.play = widgets.Play(min=0, max=63, interval=400, description="play")
        widgets.jslink((self.play, "value"), (controls["t"], "value"))
        super().__init__(controls, dict(n=n, d=d, d_v=d_v, feature_map=feature_map, t=t, seed=seed),
                         extra=[self.play])

    def adjust(self) -> None:
        n = self.controls["n"].value
        self.controls["t"].max = n - 1
        self.play.max = n - 1

    def compute(self, *, t, feature_map, d, d_v, n, seed) -> go.Figure:
        run = trajectory(n, d, d_v, feature_map, seed)
        S, z, outs, reference = run.S, run.z, run.outputs, run.reference
        self.run, self.t = run, t
        self.S, self.z = S[t], z[t]  # (d_φ, d_v), (d_φ,)
        self.readout, self.reference_row = outs[t], reference[t]  # (d_v,), (d_v,)
        self.readout_error = float((outs[t] - reference[t]).abs().max())
        return viz.state_step(S[t], z[t], outs, reference, t, s_range=float(S.abs().max()),
                              z_range=float(z.max()) * 1.05, feature_name=feature_map)


def state_stepper(**defaults) -> StateStepper:
    """Token-by-token recurrent linear attention; controls t (with play), φ, d, d_v, N, seed.

    >>> st = state_stepper(feature_map="taylor", d=3)
    >>> st.update(t=7); st.readout_error   # readout − quadratic row 7
    """
    return StateStepper(**defaults)
