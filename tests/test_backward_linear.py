"""Every rule's chunkwise form is linear in N in its backward too (no timing: counted, deterministic).

Indexing one chunk of a tensor inside a Python loop makes autograd build, for each chunk, a zero-filled
gradient the size of the whole tensor (select/slice backward): n chunks cost n whole-size buffers, a
backward quadratic in N. Here a dispatch mode adds up the numbers every op of the backward writes, at 8
and at 32 chunks of the same size: four times the tokens must cost at most 4.1 times the numbers (the
old per-chunk indexing wrote 4.9-6.8 times as many).
"""
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import linattn_edu as L


class _CountWrites(TorchDispatchMode):
    """Adds up the elements of every tensor the dispatched ops return."""

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for o in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(o, torch.Tensor):
                self.total += o.numel()
        return out


def backward_writes(rule: str, n_chunks: int, c: int = 16, d: int = 8) -> int:
    """Numbers written by the backward of rule's chunkwise form at N = n_chunks·C (CPU loop carry)."""
    n = n_chunks * c
    r = L.RULES[rule]
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, n, d, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    kwargs = r.gates((2, n), d, g, torch.float64, "cpu") | r.state_kwargs
    if rule == "linear":
        kwargs["causal"] = True
    with L.carry("loop"):  # the CPU's eager carry: the loop over chunks is what this test is about
        out = r.attention(q, k, v, form="chunkwise", chunk_size=c, **kwargs)
    counter = _CountWrites()
    with counter:
        out.square().sum().backward()
    return counter.total


@pytest.mark.parametrize("rule", sorted(L.RULES))
def test_backward_work_is_linear_in_the_number_of_chunks(rule):
    few, many = backward_writes(rule, 8), backward_writes(rule, 32)
    assert many <= 4.1 * few, f"{rule}: 4× the tokens wrote {many / few:.2f}× the numbers in backward ({few} -> {many})"
