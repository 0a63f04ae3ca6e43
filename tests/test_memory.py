"""KV-cache and linear-state byte counts against hand-computed cases (linattn_edu.memory)."""

from __future__ import annotations

import pytest
import torch

from linattn_edu import memory
from linattn_edu.memory import (
    HYBRID_PRESETS,
    PRESETS,
    AttentionShape,
    HybridShape,
    get_hybrid_preset,
    hybrid_bytes,
    hybridize,
    bytes_per_element,
    cache_bytes,
    crossover_tokens,
    format_bytes,
    kv_cache_bytes,
    linear_state_bytes,
    mla_cache_bytes,
    state_bytes,
)

KiB, MiB, GiB = 2**10, 2**20, 2**30


def test_llama2_7b_fp16_is_512_kib_per_token_and_16_gib_at_32k():
    # 2 (k and v) * 32 layers * 32 kv heads * 128 dims * 2 bytes = 524288 B
    llama = PRESETS["llama-2-7b"]
    assert cache_bytes(llama, 1, dtype="fp16") == 512 * KiB
    assert cache_bytes(llama, 32 * 1024, dtype="fp16") == 16 * GiB
    assert kv_cache_bytes(layers=32, kv_heads=32, head_dim=128, tokens=32768, dtype=torch.float16) == 16 * GiB


def test_same_shaped_linear_state_is_32_mib_whatever_the_length():
    llama = PRESETS["llama-2-7b"]
    assert state_bytes(llama, dtype="fp16") == 32 * MiB  # 32*32*128*128*2
    # z adds d_phi elements per head: 32*32*128*2 B = 256 KiB
    assert state_bytes(llama, dtype="fp16", include_z=True) == 32 * MiB + 256 * KiB
    # the cache reaches the state's size at 32 MiB / 512 KiB = 64 tokens
    assert crossover_tokens(llama) == 64


def test_gqa_and_mqa_divide_the_cache_by_heads_over_kv_heads():
    llama3 = PRESETS["llama-3-8b"]  # 8 kv heads for 32 query heads -> 4x smaller than Llama-2-7B
    assert cache_bytes(llama3, 1, dtype="bf16") == 2 * 32 * 8 * 128 * 2 == 128 * KiB
    assert cache_bytes(PRESETS["mistral-7b"], 8192, dtype="fp16") == 1 * GiB  # 128 KiB * 8192
    falcon = PRESETS["falcon-7b"]  # MQA: one kv head of 64 dims
    assert falcon.kind == "MQA" and falcon.kv_heads == 1
    assert cache_bytes(falcon, 1, dtype="fp16") == 2 * 32 * 1 * 64 * 2 == 8 * KiB


def test_mla_caches_latent_plus_rope_key_per_layer():
    ds = PRESETS["deepseek-v2"]
    # (512 + 64) * 60 layers * 2 bytes = 69120 B/token (the paper's (d_c + d_h^R) * l elements)
    assert cache_bytes(ds, 1, dtype="bf16") == 576 * 60 * 2 == 69120
    assert mla_cache_bytes(layers=60, latent_dim=512, rope_dim=64, tokens=1000, batch=2, dtype=1) == 576 * 60 * 2000
    # versus an MHA cache of the same 128 heads x 128 dims: 2*128*128 / 576 = 56.9x more
    mha = kv_cache_bytes(layers=60, kv_heads=128, head_dim=128, tokens=1, dtype="bf16")
    assert round(mha / cache_bytes(ds, 1, dtype="bf16"), 1) == 56.9


def test_cache_is_linear_in_tokens_and_batch_state_is_constant():
    shape = PRESETS["llama-3-8b"]
    one = cache_bytes(shape, 1000)
    assert cache_bytes(shape, 4000) == 4 * one
    assert cache_bytes(shape, 1000, batch=3) == 3 * one
    assert cache_bytes(shape, 0) == 0
    assert state_bytes(shape, batch=3) == 3 * state_bytes(shape)
    assert linear_state_bytes(layers=2, heads=3, d_phi=5, d_v=7, dtype=4) == 2 * 3 * 5 * 7 * 4
    assert linear_state_bytes(layers=2, heads=3, d_phi=5, d_v=7, dtype=4, include_z=True) == 2 * 3 * (35 + 5) * 4


def test_gqa_and_mqa_keep_one_state_per_kv_head():
    """S = Σ φ(k_j) v_jᵀ depends on keys and values only: query heads that share a kv head share its state."""
    llama3 = PRESETS["llama-3-8b"]  # 32 query heads, 8 kv heads
    assert state_bytes(llama3, dtype="bf16") == 32 * 8 * 128 * 128 * 2 == 8 * MiB
    assert state_bytes(llama3, dtype="bf16") * 4 == state_bytes(llama3.with_(kv_heads=32, kind="MHA"), dtype="bf16")
    falcon = PRESETS["falcon-7b"]  # MQA: 71 query heads, one kv head of 64 dims
    assert state_bytes(falcon, dtype="fp16", include_z=True) == 32 * 1 * (64 * 64 + 64) * 2
    # the crossover moves with it: 8 MiB / 128 KiB per token = 64 tokens, as for Llama-2-7B
    assert crossover_tokens(llama3) == 64


def test_state_d_phi_follows_the_feature_map():
    gpt2 = PRESETS["gpt2"]
    taylor_dim = 1 + 64 + 64 * 64
    assert state_bytes(gpt2, d_phi=taylor_dim, dtype=4) == 12 * 12 * taylor_dim * 64 * 4


@pytest.mark.parametrize(("dtype", "expected"), [("fp32", 4), ("bfloat16", 2), (torch.float16, 2),
                                                  (torch.float64, 8), ("int8", 1), (3, 3)])
def test_bytes_per_element(dtype, expected):
    assert bytes_per_element(dtype) == expected


def test_format_bytes():
    assert format_bytes(512 * KiB) == "512.0 KiB"
    assert format_bytes(16 * GiB) == "16.0 GiB"
    assert format_bytes(100) == "100 B"


def test_presets_match_their_kind_and_cite_a_source():
    for key, shape in PRESETS.items():
        assert shape.source, key
        if shape.kind == "MHA":
            assert shape.kv_heads == shape.heads
        if shape.kind == "GQA":
            assert 1 < shape.kv_heads < shape.heads
    assert memory.get_preset("Llama-2-7B") is PRESETS["llama-2-7b"]


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: kv_cache_bytes(layers=0, kv_heads=1, head_dim=1, tokens=1), ValueError, "layers must be an int >= 1; got 0"),
        (lambda: kv_cache_bytes(layers=1, kv_heads=1, head_dim=1, tokens=-1), ValueError, "tokens must be an int >= 0; got -1"),
        (lambda: kv_cache_bytes(layers=1.5, kv_heads=1, head_dim=1, tokens=1), TypeError, "layers must be an int"),
        (lambda: kv_cache_bytes(layers=1, kv_heads=True, head_dim=1, tokens=1), TypeError, "kv_heads must be an int"),
        (lambda: bytes_per_element("fp12"), ValueError, "'fp12'"),
        (lambda: bytes_per_element(object()), TypeError, "dtype must be"),
        (lambda: AttentionShape("x", layers=2, heads=4, kv_heads=8, head_dim=4), ValueError, "kv_heads must be <= heads = 4"),
        (lambda: AttentionShape("x", layers=2, heads=4, kv_heads=2, head_dim=4, kind="MHA"), ValueError, "does not match"),
        (lambda: AttentionShape("x", layers=2, heads=4, kv_heads=4, head_dim=4, kind="MLA"), TypeError, "latent_dim"),
        (lambda: AttentionShape("x", layers=2, heads=4, kv_heads=4, head_dim=4, kind="XYZ"), ValueError, "kind must be one of"),
        (lambda: memory.get_preset("llama-9"), ValueError, "preset must be one of"),
        (lambda: cache_bytes("llama-2-7b", 10), TypeError, "AttentionShape"),
        (lambda: format_bytes(-1), ValueError, "a byte count must be a finite number >= 0; got -1"),
        (lambda: format_bytes(float("nan")), ValueError, "got nan"),
        (lambda: format_bytes(float("inf")), ValueError, "got inf"),
    ],
)
def test_bad_input_names_expected_and_received(call, error, words):
    with pytest.raises(error, match=None) as info:
        call()
    assert words in str(info.value)


def test_hybrid_three_linear_to_one_attention_shrinks_the_cache_by_three_quarters():
    llama = PRESETS["llama-2-7b"]
    h = hybridize(llama, 24)  # 24 linear : 8 attention layers = 3 : 1
    assert (h.layers, h.attention_layers, h.ratio) == (32, 8, "24:8")
    full = cache_bytes(llama, 32768, dtype="fp16")  # 16 GiB
    b = hybrid_bytes(h, 32768, dtype="fp16")
    assert b.kv_cache == full // 4 == 4 * GiB
    assert b.state == 24 * 32 * 128 * 128 * 2 == 24 * MiB  # 24 layers' constant states
    assert b.total == b.kv_cache + b.state
    assert hybrid_bytes(h, 65536, dtype="fp16").state == b.state  # constant in tokens
    # the ends of the knob: no linear layer is the plain model, all linear is the plain state
    assert hybrid_bytes(hybridize(llama, 0), 1000).kv_cache == cache_bytes(llama, 1000)
    all_linear = hybrid_bytes(hybridize(llama, 32, include_z=True), 1000)
    assert all_linear == (0, state_bytes(llama, include_z=True))
    # a GQA model's linear layers keep one state per kv head; state_dtype can differ from the cache's
    h3 = hybridize(PRESETS["llama-3-8b"], 24, d_phi=256)
    assert hybrid_bytes(h3, 1, dtype="bf16", state_dtype="fp32").state == 24 * 8 * 256 * 128 * 4


def test_hybrid_presets_match_their_published_numbers():
    jamba = HYBRID_PRESETS["jamba-v0.1"]  # 1 attention : 7 Mamba over 32 layers
    assert (jamba.attention_layers, jamba.linear_layers) == (4, 28)
    # the Jamba paper (Table 1): 4 GB of KV cache at 256K tokens, 16-bit
    assert hybrid_bytes(jamba, 256 * 1024, dtype="bf16").kv_cache == 4 * GiB
    assert hybrid_bytes(jamba, 1, dtype="bf16").state == 28 * 8192 * 16 * 2  # Mamba: d_inner · d_state
    qwen = get_hybrid_preset("Qwen3-Next-80B-A3B")  # 3 Gated DeltaNet : 1 gated attention over 48 layers
    assert qwen.ratio == "36:12"
    assert hybrid_bytes(qwen, 1, dtype="bf16").kv_cache == 12 * 2 * 2 * 256 * 2 == 24 * KiB  # per token
    assert hybrid_bytes(qwen, 1, dtype="bf16").state == 36 * 32 * 128 * 128 * 2 == 36 * MiB
    kimi = HYBRID_PRESETS["kimi-linear-48b-a3b"]  # 20 KDA : 7 MLA layers (about 3 : 1)
    per_token = hybrid_bytes(kimi, 1, dtype="bf16").kv_cache
    assert per_token == 7 * (512 + 64) * 2
    full_mla = cache_bytes(kimi.attention, 1, dtype="bf16")  # all 27 layers MLA
    assert round(1 - per_token / full_mla, 2) == 0.74  # "up to 75 % less KV cache" (Kimi Linear report)
    for key, h in HYBRID_PRESETS.items():
        assert isinstance(h, HybridShape) and h.source and 0 < h.linear_layers < h.layers, key


def test_released_hybrids_2025_2026_match_their_configs():
    """Qwen3.5, MiniMax-01, Nemotron-H and Granite 4.0: layer ratios and per-token caches from their config.json."""
    qwen35 = HYBRID_PRESETS["qwen3.5-9b"]  # (3 Gated DeltaNet, 1 gated attention) × 8
    assert qwen35.ratio == "24:8" and qwen35.linear_kind == "Gated DeltaNet"
    assert hybrid_bytes(qwen35, 1, dtype="bf16").kv_cache == 8 * 2 * 4 * 256 * 2 == 32 * KiB
    assert hybrid_bytes(qwen35, 1, dtype="bf16").state == 24 * 32 * 128 * 128 * 2 == 24 * MiB
    minimax = HYBRID_PRESETS["minimax-text-01"]  # (7 lightning, 1 softmax) × 10
    assert minimax.ratio == "70:10" and minimax.linear_layers == 7 * minimax.attention_layers
    assert hybrid_bytes(minimax, 1, dtype="bf16").kv_cache == 10 * 2 * 8 * 128 * 2 == 40 * KiB
    assert hybrid_bytes(minimax, 1, dtype="bf16").state == 70 * 64 * 128 * 128 * 2 == 140 * MiB
    nemotron = HYBRID_PRESETS["nemotron-h-8b"]  # 24 M + 4 * in the 52-character pattern (24 MLP-only '-')
    pattern = "M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M-"
    assert len(pattern) == 52 and (nemotron.linear_layers, nemotron.attention_layers) == (
        pattern.count("M"), pattern.count("*"))
    assert nemotron.state_elements == 8192 * 128  # d_inner = 128 heads × 64, ssm_state_size 128
    granite = HYBRID_PRESETS["granite-4.0-h-micro"]  # 9 Mamba-2 : 1 attention over 40 layers
    assert (granite.linear_layers, granite.attention_layers) == (36, 4)
    assert hybrid_bytes(granite, 128 * 1024, dtype="bf16").kv_cache == 4 * 2 * 8 * 64 * 128 * 1024 * 2 == GiB
    m2 = PRESETS["minimax-m2"]  # back to full attention: a plain KV cache in all 62 layers
    assert cache_bytes(m2, 1, dtype="bf16") == 2 * 62 * 8 * 128 * 2 == 248 * KiB
    # each of the released configs is cited, and what could not be read from the vendor's own file is said
    for key in ("qwen3.5-9b", "minimax-text-01", "nemotron-h-8b", "granite-4.0-h-micro"):
        assert "https://huggingface.co/" in HYBRID_PRESETS[key].source, key
    assert "https://huggingface.co/MiniMaxAI/" in m2.source
    for key in ("qwen3.5-9b", "minimax-text-01", "granite-4.0-h-micro"):
        assert "Note:" in HYBRID_PRESETS[key].source, key
    # the 3:1 hybrids keep a quarter of an all-attention cache; 7:1 an eighth; 9:1 a tenth
    for key, fraction in (("qwen3.5-9b", 4), ("qwen3-next-80b-a3b", 4), ("minimax-text-01", 8),
                          ("granite-4.0-h-micro", 10)):
        h = HYBRID_PRESETS[key]
        assert cache_bytes(h.attention, 1000) == fraction * hybrid_bytes(h, 1000).kv_cache, key


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: hybridize(PRESETS["gpt2"], -1), ValueError, "linear_layers must be an int >= 0 and <= 12; got -1"),
        (lambda: hybridize(PRESETS["gpt2"], True), TypeError, "linear_layers must be an int"),
        (lambda: hybridize("gpt2", 3), TypeError, "shape must be an AttentionShape"),
        (lambda: hybridize(PRESETS["gpt2"], 3, d_phi=0), ValueError, "d_phi must be an int >= 1; got 0"),
        (lambda: hybrid_bytes(hybridize(PRESETS["gpt2"], 3), -5), ValueError, "tokens must be an int >= 0; got -5"),
        (lambda: hybrid_bytes(hybridize(PRESETS["gpt2"], 3), 5, state_dtype="fp12"), ValueError, "'fp12'"),
        (lambda: HybridShape("x", PRESETS["gpt2"], 3, 0), ValueError, "state_elements must be an int >= 1; got 0"),
        (lambda: HYBRID_PRESETS["jamba-v0.1"].with_(linear_layers=33), ValueError, "<= 32; got 33"),
        (lambda: get_hybrid_preset(None), ValueError, "hybrid preset must be one of"),
    ],
)
def test_hybrid_bad_input(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)


def test_docstring_examples_run():
    import doctest

    assert doctest.testmod(memory).failed == 0
