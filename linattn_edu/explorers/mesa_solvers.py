"""Memory as test-time regression: one stream of (k, v) pairs, five solvers of the same objective.

Every memory layer fits values on keys.  After t pairs the weighted ridge objective is

    ℓ_t(S) = Σ_{i<=t} γ^{t−i} ‖Sᵀk_i − v_i‖² + λ‖S‖²_F

and the solvers differ in how far they go towards its minimiser:

    softmax (Nadaraya–Watson)   keeps every pair; read(q) = Σ_i softmax_i(τ qᵀk_i) v_i       (no S: memory ∝ t)
    additive linear attention   S = Σ_i k_i v_iᵀ                 drops the key covariance H_kk
    delta rule                  S ← S + β k_t (v_t − Sᵀk_t)ᵀ      one SGD step per pair (learning rate β)
    gated delta                 S ← γ S, then the delta step       forgetting: old pairs fade as γ^{t−i}
    ridge (exact, MesaNet)      S* = (H_kk + λI)⁻¹ H_kv           the minimiser itself (γ = 1 here)

Read every stored pair back with its own key: read(k_i) vs v_i.  Keys are unit vectors in d dimensions and
values unit vectors (the stream of :func:`linattn_edu.capacity.store_pairs`, the first ``MAX_N`` pairs, so
moving n only extends the curves).  With t <= d random keys the exact solver interpolates (error ≈ 0 for a
tiny λ); past t = d no linear map can hold them all and every S-solver interferes, while softmax, whose
memory grows with t, keeps recalling.  The numbers come from the library: ``GatedState`` (additive),
``DeltaState`` (delta, gated delta), ``mesa_step`` (the ridge statistics H_kk, H_kv of
:func:`linattn_edu.mesa_attention`) and :func:`linattn_edu.softmax_attention`.
"""

from __future__ import annotations

import math

import ipywidgets as widgets
import plotly.graph_objects as go
import torch
import torch.nn.functional as F

from ..delta import DeltaState
from ..gated import GatedState
from ..mesa import mesa_step
from ..softmax import softmax_attention
from ..viz.regression import regression_figure
from ._base import Explorer, seed_box

__all__ = ["MesaSolvers", "mesa_solvers_explorer", "solver_run", "pair_stream", "SOLVERS", "MAX_N"]

MAX_N = 64
SOLVERS = ("softmax", "additive", "delta", "gated delta", "ridge (exact)")
KEY_CHOICES = ("random", "orthogonal first")


def pair_stream(n: int, d: int, *, keys: str = "random", seed: int = 0):
    """n unit keys (n, d) and unit values (n, d), float64, drawn as :func:`linattn_edu.capacity.store_pairs` draws
    them (keys "random", or "orthogonal first": the first min(n, d) keys orthonormal)."""
    if keys not in KEY_CHOICES:
        raise ValueError(f"keys must be one of {list(KEY_CHOICES)}; got {keys!r}")
    gen = torch.Generator().manual_seed(seed)
    k = F.normalize(torch.randn(n, d, generator=gen, dtype=torch.float64), dim=-1)  # (n, d)
    if keys == "orthogonal first":
        m = min(n, d)
        k[:m] = torch.linalg.qr(torch.randn(d, m, generator=gen, dtype=torch.float64))[0].T  # (m, d) orthonormal
    v = F.normalize(torch.randn(n, d, generator=gen, dtype=torch.float64), dim=-1)  # (n, d)
    return k, v


def _mean_errors(k, v, states):
    """states (n, d, d_v) S_t after each pair -> (n,) mean over i <= t of ‖S_tᵀk_i − v_i‖."""
    n = k.shape[0]
    read = torch.einsum("id,tde->tie", k, states)  # (t, i, d_v): S_tᵀk_i
    err = (read - v).norm(dim=-1)  # (t, i)
    stored = torch.ones(n, n, dtype=torch.bool).tril()  # pair i is stored after write t when i <= t
    return torch.where(stored, err, 0.0).sum(-1) / stored.sum(-1)  # (n,)


def solver_run(d: int, *, keys: str = "random", beta: float = 1.0, gamma: float = 0.9, ridge: float = 1e-3,
               sharpness: float = 8.0, seed: int = 0, n: int = MAX_N) -> dict:
    """Every solver on the first n pairs of the stream: mean recall error after each pair, and the maps S.

    Returns {"curves": {solver: (n,) mean error over the pairs stored after 1 … n writes},
    "states": {solver: (n, d, d) S_t after each write} (not softmax), "keys": (n, d), "values": (n, d)}.
    """
    k, v = pair_stream(n, d, keys=keys, seed=seed)
    b = torch.tensor(float(beta), dtype=torch.float64)
    g = torch.tensor(math.log(gamma), dtype=torch.float64)
    zero = torch.tensor(0.0, dtype=torch.float64)
    additive = GatedState(d, d, dtype=torch.float64, record=True)
    delta = DeltaState(d, d, dtype=torch.float64, record=True)
    gated = DeltaState(d, d, dtype=torch.float64, record=True)
    h_kk, h_kv = k.new_zeros(d, d), k.new_zeros(d, d)
    ridge_s = []
    lam = torch.eye(d, dtype=torch.float64) * ridge  # (d, d)
    for t in range(n):
        additive.step(k[t], k[t], v[t], zero)
        delta.step(k[t], k[t], v[t], b)
        gated.step(k[t], k[t], v[t], b, g)
        h_kk, h_kv = mesa_step(h_kk, h_kv, k[t], v[t], k.new_ones(()))  # H_kk += k kᵀ, H_kv += k vᵀ
        ridge_s.append(torch.linalg.solve(h_kk + lam, h_kv))  # (d, d): S* = (H_kk + λI)⁻¹ H_kv
    first = lambda h: h[0] if isinstance(h, tuple) else h  # noqa: E731  (GatedState may record (S, z))
    states = {"additive": torch.stack([first(h) for h in additive.history]),
              "delta": torch.stack([first(h) for h in delta.history]),
              "gated delta": torch.stack([first(h) for h in gated.history]),
              "ridge (exact)": torch.stack(ridge_s)}  # solver -> (n, d, d)
    # Nadaraya–Watson over the t pairs stored, queried with each stored key, for every t in one call:
    # batch row t attends from queries k_i to keys k_j with j <= t
    seen = torch.ones(n, n, dtype=torch.bool).tril().unsqueeze(-2)  # (t, 1, j): key j stored after write t
    read = softmax_attention(k.expand(n, n, d), k.expand(n, n, d), v.expand(n, n, d), mask=seen,
                             scale=float(sharpness))  # (t, i, d_v)
    err = (read - v).norm(dim=-1)  # (t, i)
    stored = torch.ones(n, n, dtype=torch.bool).tril()  # (t, i): pair i is stored after write t when i <= t
    curves = {"softmax": torch.where(stored, err, 0.0).sum(-1) / stored.sum(-1)}  # (n,)
    curves.update({name: _mean_errors(k, v, s) for name, s in states.items()})
    return {"curves": {name: curves[name] for name in SOLVERS}, "states": states, "keys": k, "values": v}


class MesaSolvers(Explorer):
    """Readouts: ``error`` {solver: mean recall error after n pairs}, ``S`` {solver: (d, d) fitted map at n}."""

    apply_order = ("n", "d")
    compute_threads = 1
    limits = {"n": "the explorer replays every prefix of the stream"}
    try_this = ("Try this → with d = 8 and random keys slide n from 4 to 32 → you should see the exact ridge "
                "solver's error stay near 0 up to t = d (t/d = 1) and rise after it, additive linear attention "
                "interfere from the second pair on, and softmax (which keeps every pair) stay lowest past t = d; "
                "then set λ = 1 → you should see ridge's error at t = d rise (the ridge trades fit for a smaller S).")

    def __init__(self, *, n: int = 24, d: int = 8, keys: str = "random", beta: float = 1.0, gamma: float = 0.9,
                 ridge: float = 1e-3, sharpness: float = 8.0, seed: int = 0):
        self.error: dict[str, float] = {}
        self.S: dict[str, torch.Tensor] = {}
        self._run_key, self._run = None, None  # the last stream's solver_run: moving n only re-slices it
        style = {"description_width": "initial"}
        controls = {
            "n": widgets.IntSlider(min=1, max=MAX_N, description="pairs n", style=style),
            "d": widgets.IntSlider(min=2, max=16, description="key dim d", style=style),
            "keys": widgets.Dropdown(options=list(KEY_CHOICES), description="keys", style=style),
            "beta": widgets.FloatSlider(min=0.1, max=1.0, step=0.1, description="delta β", style=style),
            "gamma": widgets.FloatSlider(min=0.5, max=1.0, step=0.05, description="gated delta γ", style=style),
            "ridge": widgets.FloatLogSlider(min=-6, max=1, step=1, base=10, description="ridge λ", style=style),
            "sharpness": widgets.FloatSlider(min=1.0, max=32.0, step=1.0, description="softmax τ", style=style),
            "seed": seed_box(),
        }
        super().__init__(controls, dict(n=n, d=d, keys=keys, beta=beta, gamma=gamma, ridge=ridge,
                                        sharpness=sharpness, seed=seed))

    def compute(self, *, n, d, keys, beta, gamma, ridge, sharpness, seed) -> go.Figure:
        key = (d, keys, beta, gamma, ridge, sharpness, seed)
        if key != self._run_key:
            self._run = solver_run(d, keys=keys, beta=beta, gamma=gamma, ridge=ridge, sharpness=sharpness, seed=seed)
            self._run_key = key
        run = self._run
        curves = {name: c[:n] for name, c in run["curves"].items()}
        self.error = {name: float(c[-1]) for name, c in curves.items()}
        self.S = {name: s[n - 1] for name, s in run["states"].items()}
        summary = ", ".join(f"{name} {e:.3f}" for name, e in self.error.items())
        title = (f"One objective, five solvers: n = {n} pairs in d = {d} (n/d = {n / d:.2f}), {keys} keys, "
                 f"λ = {ridge:.0e}<br><sup>mean recall error at n: {summary}</sup>")
        return regression_figure({k: c.tolist() for k, c in curves.items()}, self.S, d=d, n=n, title=title)


def mesa_solvers_explorer(**defaults) -> MesaSolvers:
    """Softmax, additive, delta, gated delta and exact ridge regression on one stream of pairs: error vs n/d, fitted S.

    Controls: n (pairs), d, keys ("random", "orthogonal first"), beta, gamma, ridge λ, softmax sharpness τ, seed.

    >>> m = mesa_solvers_explorer(n=8, d=8, ridge=1e-6)
    >>> m.error["ridge (exact)"] < 1e-4 < m.error["additive"]
    True
    """
    return MesaSolvers(**defaults)
