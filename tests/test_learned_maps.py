"""Learned feature maps and the distillation lab of notebook 05: what each kind's failure looks like."""
from __future__ import annotations

import math

import pytest
import torch

from linattn_edu import linear_attention
from linattn_edu.learned_maps import (FP16_EXP_LIMIT, LEARNED_KINDS, LearnedFeatureMap, causal_denominators,
                                      distill_run, distillation_kl)


def test_causal_denominators_are_the_causal_row_sums():
    fq, fk = torch.rand(2, 9, 5, dtype=torch.float64), torch.rand(2, 9, 5, dtype=torch.float64)
    rows = (fq @ fk.transpose(-2, -1)).tril().sum(-1)  # (2, 9)
    assert torch.allclose(causal_denominators(fq, fk), rows)
    with pytest.raises(ValueError, match="fk must have fq's shape"):
        causal_denominators(fq, fk[:, :3])


@pytest.mark.parametrize("kind", LEARNED_KINDS)
def test_each_kind_is_a_nonnegative_feature_map_the_library_accepts(kind):
    phi = LearnedFeatureMap(6, kind, generator=torch.Generator().manual_seed(0))
    x = torch.randn(2, 7, 6)
    assert phi(x).shape == (2, 7, phi.d_out) and bool((phi(x) >= 0).all())
    out = linear_attention(x, x, torch.randn(2, 7, 3), phi.as_feature_map(), causal=True)
    assert out.shape == (2, 7, 3)


def test_kl_is_zero_for_the_teacher_and_infinite_for_a_zero_weight():
    p = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    assert distillation_kl(p, p).item() == 0.0
    assert math.isinf(distillation_kl(p, torch.tensor([[1.0, 0.0], [1.0, 0.0]])).item())


def test_runs_are_reproducible_and_show_each_failure():
    small = {"steps": 3, "batch": 4, "n": 16}
    a, b = distill_run("hedgehog", seed=1, **small), distill_run("hedgehog", seed=1, **small)
    assert {k: v for k, v in a.items() if k != "cpu_s"} == {k: v for k, v in b.items() if k != "cpu_s"}
    trained = distill_run("hedgehog", seed=1, steps=30, batch=8)
    assert trained["kl_end"] < trained["kl_start"] - 0.05 and trained["nonfinite_steps"] == 0
    fixed = distill_run("elu+1", seed=0, batch=4)
    assert fixed["steps"] == 0 and fixed["kl_end"] == fixed["kl_start"]
    relu = distill_run("relu", seed=0, steps=5, batch=4)
    assert relu["zero_kernel_start"] > 0 and math.isinf(relu["kl_start"]) and relu["nonfinite_steps"] == 5
    big = distill_run("hedgehog softmax", seed=0, steps=5, batch=4, input_scale=4.0)
    assert big["max_exponent"] > FP16_EXP_LIMIT and big["nonfinite_steps"] == 0


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="kind must be one of"):
        distill_run("gelu")
    with pytest.raises(ValueError, match=r"x must be \(\.\.\., 4\)"):
        LearnedFeatureMap(4, "relu")(torch.randn(3, 5))
