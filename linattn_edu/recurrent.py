"""The RNN view of causal linear attention: a fixed-size state read by each query.

    S_t = S_{t−1} + φ(k_t) v_tᵀ      (d_φ, d_v)
    z_t = z_{t−1} + φ(k_t)           (d_φ,)
    out_t = φ(q_t)ᵀ S_t / (φ(q_t)ᵀ z_t + eps)

(The course's seed formula writes the same readout as q'_i μ_i / q'_i ν_i, with μ = S and ν = z.)

Decoding token t costs O(d_φ·d_v) time and memory whatever t is; a softmax
decoder instead re-reads a KV cache that grows with t.
"""
from __future__ import annotations

import torch

from ._checks import (check_bool, check_dense_budget, check_device, check_eps, check_positive_int, check_shape,
                      check_tensor)
from .feature_maps import get_feature_map
from .linear import linear_attention_with_state, readout, recurrent_step

__all__ = ["LinearAttentionState"]


def check_token(state, x, name: str, dim: int) -> None:
    """x must be one token for ``state``: (*state.batch_shape, dim), on the device of state.S."""
    check_tensor(x, name, min_rank=1)
    want = (*state.batch_shape, dim)
    if tuple(x.shape) != want:
        raise ValueError(f"{name} must be {want} (batch_shape + ({dim},)); got {tuple(x.shape)}")
    if x.device != state.S.device:
        raise ValueError(f"{name} must be on {state.S.device}; got {x.device}")


def check_prefill(state, q, k, v) -> None:
    """prefill starts a sequence (state.t == 0): q, k (*batch_shape, N, d), v (*batch_shape, N, d_v)."""
    if state.t != 0:
        raise ValueError(f"prefill starts a sequence: the state must be empty (t == 0); got t = {state.t}")
    for x, name, dim in ((q, "q", state.d), (k, "k", state.d), (v, "v", state.d_v)):
        check_tensor(x, name)
        if tuple(x.shape[:-2]) != state.batch_shape or x.shape[-1] != dim:
            raise ValueError(f"{name} must be (*{state.batch_shape}, N, {dim}); got {tuple(x.shape)}")


class LinearAttentionState:
    """Running state (S, z) of causal linear attention.

    Args:
        feature_map: a FeatureMap or registered name; d: key/query dim; d_v: value dim.
        batch_shape: leading dims of every input (e.g. (B, H)).
        dtype: dtype of the state (float32 for half-precision models).
        record: keep a snapshot of (S, z) after every token in ``.history`` (for plots).

    Attributes: S (*batch_shape, d_φ, d_v), z (*batch_shape, d_φ), t (tokens absorbed).

    ``prefill(q[..., :t, :], …)`` followed by ``step`` over the remaining tokens
    reproduces the full causal output exactly (up to rounding).
    """

    def __init__(self, feature_map, d, d_v, *, batch_shape=(), dtype=torch.float32, device=None,
                 eps=1e-6, record=False):
        check_positive_int(d, "d")
        check_positive_int(d_v, "d_v")
        check_eps(eps)
        check_bool(record, "record")
        batch_shape = check_shape(batch_shape, "batch_shape")
        device = check_device(device)
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"state dtype must be float32 or float64; got {dtype}")
        self.phi = get_feature_map(feature_map, d)
        if self.phi.d is not None and self.phi.d != d:
            raise ValueError(f"feature map {self.phi.name!r} was built for d = {self.phi.d}; the state "
                             f"has d = {d}: build it with the state's d")
        if not self.phi.positive_kernel:
            raise ValueError(f"feature map {self.phi.name!r} can give negative kernel values; the state's "
                             "denominator φ(q)ᵀz needs positive_kernel=True")
        d_phi = self.phi.d_out(d)
        check_dense_budget((*batch_shape, d_phi, d_v), dtype, "the state S (*batch_shape, d_φ, d_v)",
                           "use a smaller batch_shape, d_φ or d_v")
        self.d, self.d_v, self.eps, self.record = d, d_v, eps, record
        self.batch_shape = batch_shape
        self.S = torch.zeros(*self.batch_shape, d_phi, d_v, dtype=dtype, device=device)  # (..., d_φ, d_v)
        self.z = torch.zeros(*self.batch_shape, d_phi, dtype=dtype, device=device)  # (..., d_φ)
        self.t = 0
        self.history: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __repr__(self) -> str:
        return (f"LinearAttentionState({self.phi.name!r}, S={tuple(self.S.shape)}, "
                f"z={tuple(self.z.shape)}, t={self.t})")

    def _features(self, x, query: bool):
        f = self.phi.query(x) if query else self.phi.key(x)
        return f.to(self.S.dtype)  # (..., d_φ)

    def readout(self, q_t):
        """out = φ(q_t)ᵀS / (φ(q_t)ᵀz + eps) without changing the state: q_t (..., d) -> (..., d_v)."""
        check_token(self, q_t, "q_t", self.d)
        out = readout(self._features(q_t, True), self.S, self.z, eps=self.eps)  # (..., d_v)
        return out.to(q_t.dtype)

    def step(self, q_t, k_t, v_t):
        """Absorb token t (S += φ(k_t)v_tᵀ, z += φ(k_t)), then read it out with q_t -> (..., d_v).

        Everything is checked and computed before the state changes: a failed step leaves S, z, t
        and the history as they were.
        """
        check_token(self, q_t, "q_t", self.d)
        check_token(self, k_t, "k_t", self.d)
        check_token(self, v_t, "v_t", self.d_v)
        fq, fk = self._features(q_t, True), self._features(k_t, False)  # (..., d_φ) each
        s, z = recurrent_step(self.S, self.z, fk, v_t.to(self.S.dtype))  # (..., d_φ, d_v), (..., d_φ)
        out = readout(fq, s, z, eps=self.eps).to(q_t.dtype)  # (..., d_v)
        self.S, self.z = s, z
        self.t += 1
        if self.record:
            self.history.append(self.snapshot())
        return out

    def prefill(self, q, k, v, *, chunk_size=64):
        """Absorb a whole prefix at once with the chunkwise form; returns its outputs (..., N, d_v).

        q, k (*batch_shape, N, d), v (*batch_shape, N, d_v). Prefill starts a sequence,
        so the state must be empty (t == 0).
        """
        check_prefill(self, q, k, v)
        out, (s, z) = linear_attention_with_state(q, k, v, self.phi, form="chunkwise",
                                                  chunk_size=chunk_size, eps=self.eps)
        self.S, self.z = s.to(self.S.dtype), z.to(self.z.dtype)
        self.t = q.shape[-2]
        if self.record:
            self.history.append(self.snapshot())
        return out

    def snapshot(self):
        """A copy of (S, z) to keep or plot."""
        return self.S.detach().clone(), self.z.detach().clone()

    def nbytes(self) -> int:
        """Bytes held by the state: (d_φ·d_v + d_φ)·batch·element size — constant in t."""
        return self.S.numel() * self.S.element_size() + self.z.numel() * self.z.element_size()

