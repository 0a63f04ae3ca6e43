"""Gated / delta-rule stepper: what each state does when a key comes back with a new value.

Key A is written at step 0 with value v₁ and again at step r with value v₂; every other step writes
a random key orthogonal to A (so only the update rule decides what A recalls). Reading key A back (Sᵀk_A) should give the latest value:

    additive  S += k vᵀ                          after r: v₁ + v₂ (+ noise) — both values pile up
    gated     S = γ S + k vᵀ                      v₁ fades as γ^t — but so does v₂, and everything else
    delta     S += β k (v − Sᵀk)ᵀ                 at r the state's answer for A is corrected: v₁ is overwritten
    gated delta: both (Gated DeltaNet)
"""

from __future__ import annotations

import math

import ipywidgets as widgets
import plotly.graph_objects as go
import torch

from ..delta import DeltaState
from ..gated import GatedState
from ..viz.gates import gated_delta_step
from ._base import Explorer, seed_box

__all__ = ["GatedStepper", "gated_stepper", "repeated_key_run"]

MAX_N = 48


def repeated_key_run(n: int, repeat_at: int, *, gamma: float, beta: float, d: int = 8, seed: int = 0):
    """Step all four rules over a sequence whose key A is written at 0 and at ``repeat_at``.

    The other keys are random unit vectors orthogonal to key A, so any error in recalling A comes
    from the update rule itself, not from other keys overlapping A.
    Returns {"states": {rule: (n, d, d) S after each step}, "recall_error": {rule: (n,) ‖S_sᵀk_A − v_A(s)‖}}.
    """
    if not 1 <= repeat_at < n:
        raise ValueError(f"repeat_at must be in [1, {n - 1}] (a later step of the sequence); got {repeat_at}")
    gen = torch.Generator().manual_seed(seed)
    unit = lambda *s: torch.nn.functional.normalize(torch.randn(*s, d, generator=gen, dtype=torch.float64), dim=-1)  # noqa: E731
    k, v = unit(n), unit(n)  # (n, d) each
    k[1:] = torch.nn.functional.normalize(k[1:] - (k[1:] @ k[0]).unsqueeze(-1) * k[0], dim=-1)  # ⟂ key A
    k[repeat_at] = k[0]  # key A comes back with a new value
    latest = torch.where(torch.arange(n).unsqueeze(-1) >= repeat_at, v[repeat_at], v[0])  # (n, d): v_A(s)
    g = torch.tensor(math.log(gamma), dtype=torch.float64)
    one, b = torch.tensor(0.0, dtype=torch.float64), torch.tensor(beta, dtype=torch.float64)
    rules = {"additive": (GatedState(d, d, dtype=torch.float64, record=True), one),
             "gated": (GatedState(d, d, dtype=torch.float64, record=True), g),
             "delta": (DeltaState(d, d, dtype=torch.float64, record=True), None),
             "gated delta": (DeltaState(d, d, dtype=torch.float64, record=True), g)}
    for t in range(n):
        for state, gate in rules.values():
            if isinstance(state, GatedState):
                state.step(k[t], k[t], v[t], gate)
            else:
                state.step(k[t], k[t], v[t], b, gate)
    states, errors = {}, {}
    for name, (state, _) in rules.items():
        hist = [h[0] if isinstance(h, tuple) else h for h in state.history]
        states[name] = torch.stack(hist)  # (n, d, d)
        recalled = torch.einsum("d,tde->te", k[0], states[name])  # (n, d): S_tᵀk_A
        errors[name] = (recalled - latest).norm(dim=-1)  # (n,)
    return {"states": states, "recall_error": errors}


class GatedStepper(Explorer):
    """Readouts: ``recall_error`` {rule: error for key A at step t}."""

    apply_order = ("n",)
    compute_threads = 1
    try_this = ("Try this → drag step t from 0 to the end (dotted lines: key A written at 0 and again later) → you "
                "should see the additive error jump from 0 to 1 at the repeat (it returns v₁ + v₂), delta stay at 0 "
                "(β = 1 overwrites v₁ exactly) and gated delta fall back to 0 at the repeat; then set γ = 0.7 → you "
                "should see gated and gated delta climb towards 1 between writes (they forget v₁, then v₂); then set "
                "β = 0.5 → you should see delta's error sit at about 0.5 (half of the old value is left).")

    def __init__(self, *, n: int = 16, t: int = 10, repeat_at: int = 8, gamma: float = 0.9, beta: float = 1.0,
                 seed: int = 0):
        self.recall_error: dict[str, float] = {}
        style = {"description_width": "initial"}
        controls = {
            "n": widgets.IntSlider(min=2, max=MAX_N, description="N (tokens)", style=style),
            "t": widgets.IntSlider(min=0, max=MAX_N - 1, description="step t", style=style),
            "repeat_at": widgets.IntSlider(min=1, max=MAX_N - 1, description="key A again at", style=style),
            "gamma": widgets.FloatSlider(min=0.5, max=1.0, step=0.01, description="decay γ", style=style),
            "beta": widgets.FloatSlider(min=0.05, max=1.0, step=0.05, description="delta β", style=style),
            "seed": seed_box(),
        }
        super().__init__(controls, dict(n=n, t=t, repeat_at=repeat_at, gamma=gamma, beta=beta, seed=seed))

    def adjust(self) -> None:
        n = self.controls["n"].value
        self.controls["t"].max = n - 1
        self.controls["repeat_at"].max = max(n - 1, 1)

    def compute(self, *, n, t, repeat_at, gamma, beta, seed) -> go.Figure:
        run = repeated_key_run(n, repeat_at, gamma=gamma, beta=beta, seed=seed)
        self.recall_error = {name: float(e[t]) for name, e in run["recall_error"].items()}
        shown = ("additive", "gated", "delta")
        span = max(float(run["states"][name].abs().max()) for name in shown)
        return gated_delta_step({name: run["states"][name][t] for name in shown},
                                {name: e.tolist() for name, e in run["recall_error"].items()}, t,
                                repeat_at=(0, repeat_at), s_range=span)


def gated_stepper(**defaults) -> GatedStepper:
    """Step additive, gated, delta and gated-delta states over a sequence with a repeated key.

    >>> st = gated_stepper(n=16, t=10, repeat_at=8, beta=1.0)
    >>> st.recall_error["delta"] < st.recall_error["additive"]
    True
    """
    return GatedStepper(**defaults)
