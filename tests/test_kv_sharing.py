"""GQA from an MHA checkpoint (mean-pooled K/V heads) and MLA (latent cache, absorption, decoupled RoPE)."""
from __future__ import annotations

import math

import pytest
import torch

from linattn_edu.kv_sharing import (first_head_kv, grouped_query_attention, mean_pool_kv_heads, mla_attention,
                                    mla_cache, random_mha_checkpoint, random_mla_weights, rope)
from linattn_edu.softmax import softmax_attention

H, DH, D = 8, 4, 12


def test_mean_pool_groups_consecutive_heads():
    w = torch.arange(H * DH * 2, dtype=torch.float64).reshape(H * DH, 2)  # (H·d_h, 2)
    pooled = mean_pool_kv_heads(w, H, 2)  # (2·d_h, 2)
    heads = w.reshape(H, DH, 2)
    assert torch.equal(pooled[:DH], heads[:4].mean(0)) and torch.equal(pooled[DH:], heads[4:].mean(0))
    assert torch.equal(mean_pool_kv_heads(w, H, H), w)
    assert torch.equal(first_head_kv(w, H, 2)[DH:], heads[4])


def test_gqa_with_all_groups_is_mha():
    ck = random_mha_checkpoint(D, H, DH, seed=1)
    x = torch.randn(2, 10, D, dtype=torch.float64)  # (B, N, D)
    out = grouped_query_attention(x, ck["wq"], ck["wk"], ck["wv"], ck["wo"], H)
    split = lambda t: t.unflatten(-1, (H, DH)).transpose(-3, -2)  # noqa: E731
    o = softmax_attention(split(x @ ck["wq"].T), split(x @ ck["wk"].T), split(x @ ck["wv"].T), causal=True)
    assert torch.allclose(out, o.transpose(-3, -2).flatten(-2) @ ck["wo"].T, atol=1e-12)


def test_identical_heads_pool_without_loss_and_distinct_heads_do_not():
    x = torch.randn(3, 16, D, dtype=torch.float64)
    for similarity, lossless in ((1.0, True), (0.0, False)):
        ck = random_mha_checkpoint(D, H, DH, head_similarity=similarity, seed=0)
        ref = grouped_query_attention(x, ck["wq"], ck["wk"], ck["wv"], ck["wo"], H)
        for groups in (1, 2, 4):
            out = grouped_query_attention(x, ck["wq"], mean_pool_kv_heads(ck["wk"], H, groups),
                                          mean_pool_kv_heads(ck["wv"], H, groups), ck["wo"], H)
            assert torch.allclose(out, ref, atol=1e-10) is lossless


def test_gqa_bad_inputs_name_the_problem():
    w = torch.randn(H * DH, D)
    with pytest.raises(ValueError, match="groups must divide heads = 8; got 3"):
        mean_pool_kv_heads(w, H, 3)
    with pytest.raises(ValueError, match=r"w must be \(heads · head_dim, d_model\)"):
        mean_pool_kv_heads(torch.randn(7, D), H, 2)
    with pytest.raises(ValueError, match="head_similarity"):
        random_mha_checkpoint(D, H, DH, head_similarity=1.5)


def test_mla_absorbed_equals_up_projected():
    w = random_mla_weights(32, 4, 8, 12, 6, seed=3)
    h = torch.randn(2, 3, 9, 32, dtype=torch.float64)  # (..., N, D)
    a, b = mla_attention(h, w), mla_attention(h, w, absorbed=True)
    assert a.shape == h.shape and torch.allclose(a, b, atol=1e-12)
    latent, k_rope = mla_cache(h, w)
    assert latent.shape == (2, 3, 9, 12) and k_rope.shape == (2, 3, 9, 6)


def test_mla_is_causal():
    w = random_mla_weights(16, 2, 4, 6, 4, seed=0)
    h = torch.randn(7, 16, dtype=torch.float64)
    h2 = h.clone()
    h2[5] += 10.0
    assert torch.equal(mla_attention(h, w)[:5], mla_attention(h2, w)[:5])


def test_rope_keeps_norms_and_depends_on_the_offset_only():
    x = torch.randn(6, 8, dtype=torch.float64)
    assert torch.allclose(rope(x).norm(dim=-1), x.norm(dim=-1))
    a, b = torch.randn(1, 8, dtype=torch.float64), torch.randn(1, 8, dtype=torch.float64)
    s = lambda t, u: (rope(a, torch.tensor([t])) @ rope(b, torch.tensor([u])).T).item()  # noqa: E731
    assert math.isclose(s(3, 1), s(10, 8), rel_tol=1e-9) and not math.isclose(s(3, 1), s(3, 2), rel_tol=1e-3)
    with pytest.raises(ValueError, match="even last dim"):
        rope(torch.randn(3, 5))
    with pytest.raises(ValueError, match="rope_dim must be even"):
        random_mla_weights(8, 2, 4, 4, 3)
    with pytest.raises(TypeError, match="w must be an MLAWeights"):
        mla_attention(torch.randn(3, 8), {"w": 1})
