"""How much a fixed-size state can recall: capacity, interference and the delta rule's fix, computed once.

A state S (d × d_v) holding n key→value pairs is read back with Sᵀk_i:

    additive (linear attention):  S = Σ_j k_j v_jᵀ,  Sᵀk_i = v_i + Σ_{j≠i} (k_jᵀk_i) v_j
                                                              └─ interference: 0 only for orthogonal keys
    delta rule:                    S_t = S_{t−1} + β k_t (v_t − S_{t−1}ᵀk_t)ᵀ   (overwrites what k_t recalls)

At most d keys can be mutually orthogonal, so past n = d pairs every rule must interfere. These are the
numbers the course prints and the explorers and figures draw (viz draws them; nothing here plots).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ._checks import check_dense_budget, check_number, check_positive_int
from .delta import DeltaState

__all__ = ["readout_error", "store_pairs"]


def readout_error(num_pairs, d, *, d_v=None, trials=8, seed=0):
    """Store n random pairs in S = Σ_i k_i v_iᵀ (unit keys), read each back with Sᵀk_j: mean ‖Sᵀk_j − v_j‖/‖v_j‖.

    Sᵀk_j = v_j (k_jᵀk_j = 1) + Σ_{i≠j} (k_iᵀk_j) v_i: the second term is interference; for random unit
    keys each k_iᵀk_j has variance 1/d, so the error grows like √((n − 1)/d) and reaches 1 near n = d.
    Keys (n, d) and values (n, d_v) ~ N(0, 1), float64, averaged over ``trials`` draws.
    """
    check_positive_int(num_pairs, "num_pairs")
    check_positive_int(d, "d")
    d_v = d if d_v is None else d_v
    check_positive_int(d_v, "d_v")
    check_positive_int(trials, "trials")
    check_number(seed, "seed", integer=True, minimum=0, maximum=2**63 - 1)
    hint = "lower trials, num_pairs, d or d_v"
    for shape, what in [((trials, num_pairs, d), "readout_error's keys (trials, num_pairs, d)"),
                        ((trials, num_pairs, d_v), "readout_error's values (trials, num_pairs, d_v)"),
                        ((trials, d, d_v), "readout_error's states (trials, d, d_v)")]:
        check_dense_budget(shape, torch.float64, what, hint)
    g = torch.Generator().manual_seed(seed)
    k = F.normalize(torch.randn(trials, num_pairs, d, generator=g, dtype=torch.float64), dim=-1)  # (T, n, d)
    v = torch.randn(trials, num_pairs, d_v, generator=g, dtype=torch.float64)  # (T, n, d_v)
    s = k.transpose(-2, -1) @ v  # (T, d, n) @ (T, n, d_v) -> (T, d, d_v)
    read = k @ s  # (T, n, d) @ (T, d, d_v) -> (T, n, d_v): row j is Sᵀk_j
    return ((read - v).norm(dim=-1) / v.norm(dim=-1)).mean().item()


def store_pairs(n: int, d: int, *, keys: str = "orthogonal first", beta: float = 1.0, seed: int = 0):
    """Write n pairs into a d × d state with both rules; returns the recall errors.

    Returns {"curve": {rule: mean error after 1…n pairs}, "per_pair": {rule: error of each pair at n},
    "interference": (n, d) the additive interference Σ_{j≠i}(k_jᵀk_i)v_j at n}.
    keys: "orthogonal first" (the first min(n, d) keys orthonormal, the rest random) or "random".
    """
    check_positive_int(n, "n")
    check_positive_int(d, "d")
    check_number(beta, "beta", minimum=0, exclusive_minimum=True, maximum=1)
    gen = torch.Generator().manual_seed(seed)
    k = torch.nn.functional.normalize(torch.randn(n, d, generator=gen, dtype=torch.float64), dim=-1)  # (n, d)
    if keys == "orthogonal first":
        m = min(n, d)
        k[:m] = torch.linalg.qr(torch.randn(d, m, generator=gen, dtype=torch.float64))[0].T  # (m, d) orthonormal
    elif keys != "random":
        raise ValueError(f"keys must be 'orthogonal first' or 'random'; got {keys!r}")
    v = torch.nn.functional.normalize(torch.randn(n, d, generator=gen, dtype=torch.float64), dim=-1)  # (n, d)
    delta = DeltaState(d, d, dtype=torch.float64, record=True)
    b = torch.tensor(beta, dtype=torch.float64)
    for i in range(n):
        delta.step(k[i], k[i], v[i], b)
    additive = (k.unsqueeze(-1) * v.unsqueeze(-2)).cumsum(0)  # (n, d, d): S after each write
    states = {"additive": additive, "delta": torch.stack([h[0] for h in delta.history])}  # rule -> (n, d, d)
    curve, per_pair = {}, {}
    for name, s in states.items():
        recalled = torch.einsum("tid,tde->tie", k.expand(n, n, d), s)  # (t, i, d): S_tᵀk_i
        err = (recalled - v).norm(dim=-1)  # (t, i); ‖v_i‖ = 1
        stored = torch.ones(n, n, dtype=torch.bool).tril()  # pair i is stored after write t when i <= t
        curve[name] = (err.masked_fill(~stored, 0).sum(-1) / stored.sum(-1)).tolist()  # mean over i <= t
        per_pair[name] = err[-1].tolist()
    gram = (k @ k.T).fill_diagonal_(0)  # (n, n): k_jᵀk_i, j ≠ i
    return {"curve": curve, "per_pair": per_pair, "interference": gram @ v}  # (n, d)
