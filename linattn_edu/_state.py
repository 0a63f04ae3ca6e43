"""One protocol for every rule's running state: the RNN view, one token (or one prefix) at a time.

Every rule of this library is a recurrence over a fixed-size state; its attention function runs a
whole sequence and its state class runs it token by token. They speak one protocol:

    out, state = rule_attention(q, k, v, ..., initial_state=None, return_state=True)
    rule_attention(q2, k2, v2, ..., initial_state=state)      # == the second half of one long call

    st = RuleState(d, d_v, *, batch_shape=(), dtype=torch.float32, device=None, record=False, ...)
    st.step(q_t, k_t, v_t, *gates)   -> out_t (*batch_shape, d_v)   one token: write, then read
    st.prefill(q, k, v, *gates)      -> out (*batch_shape, N, d_v)  a whole prefix, any t (chunkwise form)
    st.readout(q_t)                  -> out_t without changing the state
    st.state                         the tensors, in the attention function's initial_state format
    st.snapshot()                    a tuple of copies, (S,) or (S, z); ``record=True`` keeps one per token
    st.nbytes()                      bytes held: constant in t

A subclass names its tensors (``fields``) with their shapes and gives three functions: how one token
changes them (``_update``), how a query reads them (``_read``) and which attention function runs a
prefix (``_attend``). Every check runs before the state changes: a failed step or prefill leaves
the tensors, t and the history as they were.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from ._checks import (check_bool, check_dense_budget, check_device, check_positive_int, check_shape,
                      check_state_dtype, check_tensor)

__all__ = ["RecurrentState", "check_token", "Rule", "RULES", "register_rule"]


def check_token(state: "RecurrentState", x, name: str, dim: int) -> None:
    """x must be one token for ``state``: (*state.batch_shape, dim), on the state's device."""
    check_tensor(x, name, min_rank=1)
    want = (*state.batch_shape, dim)
    if tuple(x.shape) != want:
        raise ValueError(f"{name} must be {want} (batch_shape + ({dim},)); got {tuple(x.shape)}")
    if x.device != state.device:
        raise ValueError(f"{name} must be on {state.device}; got {x.device}")


class RecurrentState:
    """Base of every rule's running state (see the module docstring for the protocol).

    Args:
        d: key/query dim; d_v: value dim.
        batch_shape: leading dims of every input, e.g. (B, H).
        dtype: float32 or float64 (a half-precision model keeps its state in float32).
        device: where the state lives (None: the default device).
        record: keep a snapshot after every token (or prefill) in ``.history``.
    """

    fields: tuple[str, ...] = ("S",)

    def __init__(self, d, d_v, *, batch_shape=(), dtype=torch.float32, device=None, record=False):
        check_positive_int(d, "d")
        check_positive_int(d_v, "d_v")
        check_bool(record, "record")
        self.batch_shape = check_shape(batch_shape, "batch_shape")
        dtype = check_state_dtype(dtype)
        device = check_device(device)
        self.d, self.d_v, self.record = d, d_v, record
        shapes = self._field_shapes()
        for name in self.fields:
            check_dense_budget((*self.batch_shape, *shapes[name]), dtype, f"the state {name} "
                               f"(*batch_shape, {', '.join(map(str, shapes[name]))})",
                               "use a smaller batch_shape, d or d_v")
        for name in self.fields:
            setattr(self, name, torch.zeros(*self.batch_shape, *shapes[name], dtype=dtype, device=device))
        self.t = 0
        self.history: list[tuple[torch.Tensor, ...]] = []

    # What a subclass provides -------------------------------------------------------------------------
    def _field_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of each field without the batch dims, e.g. {"S": (d, d_v)}."""
        raise NotImplementedError

    def _update(self, tensors: tuple, q_t, k_t, v_t, *gates) -> tuple:
        """The state after one token (new tensors; never in place). Inputs in the state's dtype."""
        raise NotImplementedError

    def _read(self, tensors: tuple, q_t) -> torch.Tensor:
        """out_t (*batch_shape, d_v) read by q_t (state dtype) from ``tensors``."""
        raise NotImplementedError

    def _check_gates(self, *gates) -> tuple:
        """Validate this rule's per-token gates for one token; return them (or raise)."""
        return gates

    def _attend(self, q, k, v, *gates, chunk_size: int):
        """Run the rule's attention function from the current state: -> (out, state in function format)."""
        raise NotImplementedError

    def _check_tokens(self, q_t, k_t, v_t) -> None:
        """One token's q_t, k_t (*batch_shape, d) and v_t (*batch_shape, d_v); a rule with several keys per
        token (DeltaProduct) overrides this."""
        for x, name, dim in ((q_t, "q_t", self.d), (k_t, "k_t", self.d), (v_t, "v_t", self.d_v)):
            check_token(self, x, name, dim)

    def _check_prefix(self, q, k, v) -> None:
        """A prefix's q, k (*batch_shape, N, d) and v (*batch_shape, N, d_v) (the attention function checks
        that the N's agree)."""
        for x, name, dim in ((q, "q", self.d), (k, "k", self.d), (v, "v", self.d_v)):
            check_tensor(x, name)
            if tuple(x.shape[:-2]) != self.batch_shape or x.shape[-1] != dim:
                raise ValueError(f"{name} must be (*{self.batch_shape}, N, {dim}); got {tuple(x.shape)}")

    # The protocol -------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return getattr(self, self.fields[0]).device

    @property
    def dtype(self) -> torch.dtype:
        return getattr(self, self.fields[0]).dtype

    @property
    def tensors(self) -> tuple[torch.Tensor, ...]:
        """The state's tensors in ``fields`` order."""
        return tuple(getattr(self, name) for name in self.fields)

    @property
    def state(self):
        """The state in its attention function's ``initial_state`` format: S, or (S, z)."""
        t = self.tensors
        return t[0] if len(t) == 1 else t

    def _commit(self, tensors, tokens: int) -> None:
        for name, x in zip(self.fields, tensors):
            setattr(self, name, x if x.dtype == self.dtype else x.to(self.dtype))
        self.t += tokens
        if self.record:
            self.history.append(self.snapshot())

    def step(self, q_t, k_t, v_t, *gates):
        """Write token t (k_t, v_t and the rule's gates), then read it with q_t -> (*batch_shape, d_v)."""
        self._check_tokens(q_t, k_t, v_t)
        gates = self._check_gates(*gates)
        dt = self.dtype
        cast = [x.to(dt) if isinstance(x, torch.Tensor) and x.dtype != dt else x for x in (q_t, k_t, v_t, *gates)]
        new = self._update(self.tensors, *cast)
        out = self._read(new, cast[0])  # (*batch_shape, d_v)
        self._commit(new, 1)
        return out.to(q_t.dtype)

    def readout(self, q_t):
        """out_t read by q_t without changing the state: (*batch_shape, d) -> (*batch_shape, d_v)."""
        check_token(self, q_t, "q_t", self.d)
        return self._read(self.tensors, q_t.to(self.dtype)).to(q_t.dtype)

    def prefill(self, q, k, v, *gates, chunk_size=64):
        """Absorb N tokens at once with the chunkwise form, continuing from the current state.

        q, k (*batch_shape, N, d), v (*batch_shape, N, d_v) -> out (*batch_shape, N, d_v); the
        state then equals N calls of ``step``.
        """
        self._check_prefix(q, k, v)
        out, state = self._attend(q, k, v, *gates, chunk_size=chunk_size)
        self._commit(state if isinstance(state, tuple) else (state,), q.shape[-2])
        return out

    def snapshot(self) -> tuple[torch.Tensor, ...]:
        """Copies of the state's tensors, in ``fields`` order: (S,) or (S, z)."""
        return tuple(x.detach().clone() for x in self.tensors)

    def nbytes(self) -> int:
        """Bytes held by the state: constant in t."""
        return sum(x.numel() * x.element_size() for x in self.tensors)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{name}={tuple(x.shape)}" for name, x in zip(self.fields, self.tensors))
        return f"{type(self).__name__}({shapes}, t={self.t})"


# The one registry of update rules ---------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """An update rule: its attention function, its state class, its forms and how to draw its gates.

    name: the one name used everywhere (library, bench, recall, figures); label: how figures print it;
    gates(lead, d, generator, dtype, device) -> the keyword arguments beyond q, k, v that one call needs
    (log_decay, beta, …), drawn from ``generator`` — tests, the bench and the recall lab call it.
    """

    name: str
    label: str
    attention: Callable
    state: type
    forms: tuple[str, ...]
    gates: Callable[..., dict]
    state_kwargs: dict = field(default_factory=dict)


RULES: dict[str, Rule] = {}


def register_rule(rule: Rule) -> Rule:
    """Add a rule to :data:`RULES` (each rule module registers itself when imported)."""
    if not isinstance(rule, Rule):
        raise TypeError(f"register_rule takes a Rule; got {type(rule).__name__}")
    RULES[rule.name] = rule
    return rule
