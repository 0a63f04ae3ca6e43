"""Transition zoo: one step's transition matrix A_t and its eigenvalues, rule by rule, beside the state.

Every rule of the course is S_t = A_t S_{t−1} + (write)_t (keys on the rows of S, out_t = S_tᵀq_t):

    diagonal decay (GLA)     A_t = Diag(γ^{s})                          eigenvalues γ^{s_c} ∈ (0, 1]
    DeltaNet (+ decay γ)     A_t = γ (I − β k kᵀ)                       1 (d − 1 times) and γ(1 − β) along k
    KDA                      A_t = (I − β k kᵀ) Diag(γ^{s})             per-channel decay, then a delta step
    DeltaProduct (n_h)       A_t = γ Π_{j=n_h..1} (I − β k_j k_jᵀ)       n_h ≥ 2 reflections can rotate (complex λ)
    DPLR (RWKV-7-like)       A_t = Diag(γ^{s}) + a bᵀ, a = −k, b = β r ⊙ k  rank one on a diagonal: λ can leave the disc

β ∈ (0, 2]: past β = 1 the eigenvalue 1 − β along k turns negative (a sign flip per write, what parity
needs), reaching −1 at β = 2.  The per-channel decays are γ^{s_c} with s_c from 0.5 to 1.5 over the d key
channels; r ∈ [0.5, 1]^d is a fixed per-token, per-channel rate (RWKV-7's in-context learning rate).
The matrices come from :func:`linattn_edu.transitions.delta_product_transition` and
:func:`linattn_edu.transitions.dplr_transition`, the eigenvalues from ``torch.linalg.eigvals``, and the
states from the library's attention functions on a fixed stream of N = 12 tokens (d = 4).
"""

from __future__ import annotations

import math

import ipywidgets as widgets
import plotly.graph_objects as go
import torch
import torch.nn.functional as F

from ..delta import delta_rule_attention
from ..gated import gated_linear_attention
from ..transitions import delta_product_recurrent_form, delta_product_transition, dplr_attention, dplr_transition
from ..viz.transitions import eigenvalue_groups, format_eigenvalues, transition_figure
from ._base import Explorer, seed_box

__all__ = ["TransitionZoo", "transition_zoo_explorer", "transition_run", "RULES", "STREAM_N", "STREAM_D", "MAX_NH"]

#: rule key -> label (the dropdown shows the label, the explorer and its frames use the key)
RULES = {
    "gla": "diagonal decay (GLA)",
    "delta": "DeltaNet (γ < 1: Gated DeltaNet)",
    "kda": "KDA (per-channel decay + delta)",
    "delta_product": "DeltaProduct (n_h reflections)",
    "dplr": "DPLR (RWKV-7-like)",
}
STREAM_N, STREAM_D, MAX_NH = 12, 4, 4


def _stream(seed: int, n: int = STREAM_N, d: int = STREAM_D):
    """The fixed stream: q (n, d), keys (n, MAX_NH, d) unit, values (n, MAX_NH, d), rates r (n, d) in [0.5, 1]."""
    gen = torch.Generator().manual_seed(seed)
    q = F.normalize(torch.randn(n, d, generator=gen, dtype=torch.float64), dim=-1)  # (n, d)
    k = F.normalize(torch.randn(n, MAX_NH, d, generator=gen, dtype=torch.float64), dim=-1)  # (n, n_h, d)
    v = torch.randn(n, MAX_NH, d, generator=gen, dtype=torch.float64)  # (n, n_h, d)
    r = 0.5 + 0.5 * torch.rand(n, d, generator=gen, dtype=torch.float64)  # (n, d)
    return q, k, v, r


def transition_run(rule: str, *, beta: float = 1.0, decay: float = 1.0, n_h: int = 2, seed: int = 0) -> dict:
    """Every token's transition, its eigenvalues, and the states of ``rule`` on the fixed stream (float64).

    Returns {"A": (N, d, d) A_t for every token, "eigenvalues": (N, d) complex (torch.linalg.eigvals),
    "states": (N, d, d) S_t after each token, "log_decay": the per-channel (N, d) or per-token (N,) g used}.
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {list(RULES)}; got {rule!r}")
    if not 0 < beta <= 2:
        raise ValueError(f"beta must be in (0, 2]; got {beta!r}")
    if not 0 < decay <= 1:
        raise ValueError(f"decay must be in (0, 1]; got {decay!r}")
    if not 1 <= n_h <= MAX_NH:
        raise ValueError(f"n_h must be in [1, {MAX_NH}]; got {n_h!r}")
    q, keys, vals, r = _stream(seed)
    n, d = q.shape
    k, v = keys[:, 0], vals[:, 0]  # (n, d) each: the one key/value a token writes (n_h = 1 rules)
    spread = torch.linspace(0.5, 1.5, d, dtype=torch.float64)  # (d,): channel c decays by γ^{s_c}
    g_channel = (math.log(decay) * spread).expand(n, d).contiguous()  # (n, d) <= 0
    g_token = torch.full((n,), math.log(decay), dtype=torch.float64)  # (n,) <= 0
    b = torch.full((n,), float(beta), dtype=torch.float64)  # (n,)
    if rule == "gla":
        a_mats = dplr_transition(torch.zeros_like(k), torch.zeros_like(k), g_channel)  # (n, d, d): Diag(γ^s)
        run = lambda m: gated_linear_attention(q[:m], k[:m], v[:m], g_channel[:m], form="recurrent",  # noqa: E731
                                               return_state=True)[1]
        g = g_channel
    elif rule == "delta":
        a_mats = delta_product_transition(k.unsqueeze(-2), b.unsqueeze(-1), g_token)  # (n, d, d): γ(I − βkkᵀ)
        run = lambda m: delta_rule_attention(q[:m], k[:m], v[:m], b[:m], log_decay=g_token[:m],  # noqa: E731
                                             form="recurrent", return_state=True, allow_negative_eigenvalues=True)[1]
        g = g_token
    elif rule == "kda":  # KDA as the library's DPLR: a = −βk, b = e^{g} ⊙ k, βk written in place of k
        a_vec, b_vec = -b[:, None] * k, g_channel.exp() * k  # (n, d) each
        a_mats = dplr_transition(a_vec, b_vec, g_channel)  # (n, d, d): (I − βkkᵀ) Diag(e^{g})
        run = lambda m: dplr_attention(q[:m], b[:m, None] * k[:m], v[:m], a_vec[:m], b_vec[:m],  # noqa: E731
                                       g_channel[:m], form="recurrent", return_state=True)[1]
        g = g_channel
    elif rule == "delta_product":
        bh = b[:, None].expand(n, n_h).contiguous()  # (n, n_h)
        a_mats = delta_product_transition(keys[:, :n_h], bh, g_token)  # (n, d, d): γ Π_j (I − β k_j k_jᵀ)
        run = lambda m: delta_product_recurrent_form(q[:m], keys[:m, :n_h], vals[:m, :n_h], bh[:m],  # noqa: E731
                                                     g_token[:m])[1]
        g = g_token
    else:  # dplr: a = −k, b = β r ⊙ k, the write key is b (r = 1, γ = 1: the delta rule)
        a_vec, b_vec = -k, b[:, None] * r * k  # (n, d) each
        a_mats = dplr_transition(a_vec, b_vec, g_channel)  # (n, d, d): Diag(γ^s) + a bᵀ
        run = lambda m: dplr_attention(q[:m], b_vec[:m], v[:m], a_vec[:m], b_vec[:m], g_channel[:m],  # noqa: E731
                                       form="recurrent", return_state=True)[1]
        g = g_channel
    states = torch.stack([run(m) for m in range(1, n + 1)])  # (n, d, d_v): S_t after token t
    return {"A": a_mats, "eigenvalues": torch.linalg.eigvals(a_mats), "states": states, "log_decay": g}


class TransitionZoo(Explorer):
    """Readouts: ``A`` (d, d) transition of token t, ``eigenvalues`` (d,) complex, ``state`` S_t,
    ``norms`` ‖S_s‖_F for every token, ``groups`` {group: count of eigenvalues}."""

    apply_order = ("rule",)
    compute_threads = 1
    try_this = ("Try this → with DeltaNet drag β from 1 to 2 → you should see the eigenvalue along kₜ move from 0 "
                "to −1 (an orange diamond: each write flips the state's sign along kₜ); then pick DeltaProduct with "
                "n_h = 2 and β = 2 → two reflections make a rotation: a complex pair on the unit circle (|λ| = 1); "
                "then pick DPLR with β = 2, γ = 0.5 and token t = 9 → one eigenvalue leaves the disc (a vermillion "
                "cross, |λ| ≈ 1.2): a diagonal plus a rank-one term need not be a contraction.")

    def __init__(self, *, rule: str = "delta", beta: float = 1.0, decay: float = 1.0, n_h: int = 2, t: int = 6,
                 seed: int = 0):
        self.A = self.eigenvalues = self.state = None
        self.norms: list[float] = []
        self.groups: dict[str, int] = {}
        style = {"description_width": "initial"}
        controls = {
            "rule": widgets.Dropdown(options=[(label, key) for key, label in RULES.items()], description="rule",
                                     style=style),
            "beta": widgets.FloatSlider(min=0.1, max=2.0, step=0.05, description="β (write strength)", style=style),
            "decay": widgets.FloatSlider(min=0.5, max=1.0, step=0.05, description="decay γ", style=style),
            "n_h": widgets.IntSlider(min=1, max=MAX_NH, description="n_h (DeltaProduct)", style=style),
            "t": widgets.IntSlider(min=0, max=STREAM_N - 1, description="token t", style=style),
            "seed": seed_box(),
        }
        super().__init__(controls, dict(rule=rule, beta=beta, decay=decay, n_h=n_h, t=t, seed=seed))

    def adjust(self) -> None:
        rule = self.controls["rule"].value
        self.controls["beta"].disabled = rule == "gla"  # a pure decay writes without a β
        self.controls["n_h"].disabled = rule != "delta_product"

    def compute(self, *, rule, beta, decay, n_h, t, seed) -> go.Figure:
        run = transition_run(rule, beta=beta, decay=decay, n_h=n_h, seed=seed)
        self.A, self.eigenvalues, self.state = run["A"][t], run["eigenvalues"][t], run["states"][t]
        norms = run["states"].flatten(-2).norm(dim=-1)  # (N,)
        self.norms = norms.tolist()
        self.groups = {name: int(len(v)) for name, v in eigenvalue_groups(self.eigenvalues.numpy()).items()}
        span = max(float(run["states"].abs().max()), 1e-12)  # one colour range over the whole stream
        extra = f"n_h = {n_h}, " if rule == "delta_product" else ""
        beta_text = "" if rule == "gla" else f"β = {beta:g}, "
        title = (f"{RULES[rule]}: {beta_text}{extra}γ = {decay:.2f}, token t = {t}<br>"
                 f"<sup>eigenvalues of Aₜ: {format_eigenvalues(self.eigenvalues.numpy())}; "
                 f"‖Sₜ‖ = {self.norms[t]:.3f}, largest ‖Sₛ‖ = {max(self.norms):.3f}</sup>")
        return transition_figure(self.A, self.eigenvalues, self.state, self.norms, t, title=title, s_range=span)


def transition_zoo_explorer(**defaults) -> TransitionZoo:
    """One step's transition A_t of a chosen rule, its eigenvalues on the unit disc, and the state it produces.

    Controls: rule ("gla", "delta", "kda", "delta_product", "dplr"), beta (0.1 … 2), decay γ, n_h, token t, seed.

    >>> z = transition_zoo_explorer(rule="delta", beta=1.5)
    >>> sorted(round(x, 6) for x in z.eigenvalues.real.tolist())     # 1 − β along k, 1 elsewhere
    [-0.5, 1.0, 1.0, 1.0]
    """
    return TransitionZoo(**defaults)
