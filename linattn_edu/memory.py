"""What long context costs in memory: the softmax KV cache versus the linear-attention state.

A softmax decoder must keep every past key and value to attend to them again, so its cache
grows with the number of tokens N.  A (causal) linear-attention decoder keeps one matrix state
per head, ``S = Σ_j φ(k_j) v_jᵀ`` of shape (d_φ, d_v) (plus the normaliser ``z = Σ_j φ(k_j)``),
whatever N is.

Formulas (all results in bytes; ``b`` = bytes per element: 4 fp32, 2 fp16/bf16, 1 fp8/int8)::

    KV cache (MHA, GQA, MQA)   = 2 · layers · kv_heads · head_dim · tokens · batch · b
                                 (2 = one key and one value vector per kv head;
                                  MHA: kv_heads = heads; GQA: 1 < kv_heads < heads; MQA: kv_heads = 1)
    MLA cache (DeepSeek-V2)    = layers · (d_c + d_rope) · tokens · batch · b
                                 (one shared latent c_t of width d_c plus one decoupled RoPE key)
    linear-attention state     = layers · kv_heads · d_φ · d_v · batch · b   (+ layers · kv_heads · d_φ · batch · b for z)
                                 (S = Σ φ(k_j) v_jᵀ depends on keys and values only, so a GQA/MQA
                                  layer keeps one state per kv head, shared by its group of queries)
    hybrid (n_a attention + n_l linear layers of L)
                               = KV cache of the n_a attention layers + n_l constant states
                                 (3 linear : 1 attention layer -> the KV cache shrinks by three quarters)

Hand-computed check (Llama-2-7B shape, fp16): 2 · 32 · 32 · 128 · 2 B = 524 288 B = 512 KiB per
token, so 32 768 tokens need 16 GiB; a same-shaped linear state (d_φ = d_v = 128) is
32 · 32 · 128 · 128 · 2 B = 32 MiB at any length.

Only integer arithmetic here: every number can be checked by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import NamedTuple

from ._checks import DTYPES, check_bool, check_number
from ._checks import format_bytes as _format_bytes

__all__ = [
    "DTYPE_BYTES",
    "AttentionShape",
    "PRESETS",
    "bytes_per_element",
    "kv_cache_bytes",
    "mla_cache_bytes",
    "linear_state_bytes",
    "cache_bytes",
    "state_bytes",
    "crossover_tokens",
    "get_preset",
    "format_bytes",
    "HybridShape",
    "HybridBytes",
    "HYBRID_PRESETS",
    "hybridize",
    "hybrid_bytes",
    "get_hybrid_preset",
]

#: Bytes per element of the storage dtypes people use for caches: the library's one table of float
#: dtype names (``_checks.DTYPES``: 'fp16', 'bfloat16', 'half', ...) plus the 8-bit cache formats.
DTYPE_BYTES = {name: dtype.itemsize for name, dtype in DTYPES.items()} | {"fp8": 1, "float8": 1, "int8": 1}

KINDS = ("MHA", "GQA", "MQA", "MLA")


def _positive_int(name: str, value, *, allow_zero: bool = False) -> int:
    """Return ``value`` (an int >= 1, or >= 0 with allow_zero); else TypeError/ValueError via check_number."""
    check_number(value, name, integer=True, minimum=0 if allow_zero else 1)
    return value


def bytes_per_element(dtype) -> int:
    """Bytes of one element for ``dtype``: an int (itself), a name ('fp16', 'bfloat16', ...) or a torch.dtype.

    >>> bytes_per_element("fp16"), bytes_per_element(4)
    (2, 4)
    """
    expected = f"an int byte count, a name in {sorted(DTYPE_BYTES)} or a torch.dtype"
    if isinstance(dtype, bool):
        raise TypeError(f"dtype must be {expected}; got {dtype!r}")
    if isinstance(dtype, int):
        return _positive_int("bytes_per_element", dtype)
    if isinstance(dtype, str):
        key = dtype.lower().removeprefix("torch.")
        if key not in DTYPE_BYTES:
            raise ValueError(f"dtype name must be one of {sorted(DTYPE_BYTES)}; got {dtype!r}")
        return DTYPE_BYTES[key]
    itemsize = getattr(dtype, "itemsize", None)  # torch.dtype and numpy dtypes carry it
    if isinstance(itemsize, int) and itemsize > 0:
        return itemsize
    raise TypeError(f"dtype must be {expected}; got {dtype!r}")


def kv_cache_bytes(*, layers: int, kv_heads: int, head_dim: int, tokens: int, batch: int = 1,
                   dtype=2) -> int:
    """Softmax KV cache = 2 · layers · kv_heads · head_dim · tokens · batch · bytes.

    Covers MHA (kv_heads = heads), GQA (fewer kv heads shared by groups of query heads) and
    MQA (kv_heads = 1).  ``dtype`` is a byte count, a name ('fp16') or a torch.dtype.

    >>> kv_cache_bytes(layers=32, kv_heads=32, head_dim=128, tokens=1, dtype="fp16") // 1024  # KiB/token
    512
    """
    layers = _positive_int("layers", layers)
    kv_heads = _positive_int("kv_heads", kv_heads)
    head_dim = _positive_int("head_dim", head_dim)
    tokens = _positive_int("tokens", tokens, allow_zero=True)
    batch = _positive_int("batch", batch)
    return 2 * layers * kv_heads * head_dim * tokens * batch * bytes_per_element(dtype)


def mla_cache_bytes(*, layers: int, latent_dim: int, rope_dim: int, tokens: int, batch: int = 1,
                    dtype=2) -> int:
    """Multi-head latent attention cache = layers · (d_c + d_rope) · tokens · batch · bytes.

    MLA (DeepSeek-V2) caches one compressed latent c_t (width d_c = kv_lora_rank) from which
    every head's keys and values are re-projected, plus one decoupled RoPE key (width d_rope)
    shared by all heads.  No factor 2: keys and values come from the same latent.

    >>> mla_cache_bytes(layers=60, latent_dim=512, rope_dim=64, tokens=1, dtype="bf16")
    69120
    """
    layers = _positive_int("layers", layers)
    latent_dim = _positive_int("latent_dim", latent_dim)
    rope_dim = _positive_int("rope_dim", rope_dim, allow_zero=True)
    tokens = _positive_int("tokens", tokens, allow_zero=True)
    batch = _positive_int("batch", batch)
    return layers * (latent_dim + rope_dim) * tokens * batch * bytes_per_element(dtype)


def linear_state_bytes(*, layers: int, heads: int, d_phi: int, d_v: int, batch: int = 1, dtype=2,
                       include_z: bool = False) -> int:
    """Linear-attention state = layers · heads · d_φ · d_v · batch · bytes  (+ d_φ per head for z).

    S = Σ_j φ(k_j) v_jᵀ is (d_φ, d_v) per head (per *kv* head in a GQA/MQA model: pass kv_heads);
    the normaliser z = Σ_j φ(k_j) adds d_φ more
    elements per head when ``include_z``.  Independent of the number of tokens.

    >>> linear_state_bytes(layers=32, heads=32, d_phi=128, d_v=128, dtype="fp16") // 2**20  # MiB
    32
    """
    layers = _positive_int("layers", layers)
    heads = _positive_int("heads", heads)
    d_phi = _positive_int("d_phi", d_phi)
    d_v = _positive_int("d_v", d_v)
    batch = _positive_int("batch", batch)
    check_bool(include_z, "include_z")
    per_head = d_phi * d_v + (d_phi if include_z else 0)       # elements of S (and z)
    return layers * heads * per_head * batch * bytes_per_element(dtype)


@dataclass(frozen=True)
class AttentionShape:
    """The cache-relevant shape of a decoder: enough to price its KV cache and a linear state.

    kind: 'MHA' (kv_heads == heads), 'GQA' (1 < kv_heads < heads), 'MQA' (kv_heads == 1) or
    'MLA' (latent_dim = d_c and rope_dim = d_rope are cached instead of per-head keys/values).
    ``source`` says where the numbers were published.
    """

    name: str
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    kind: str = "MHA"
    latent_dim: int | None = None
    rope_dim: int | None = None
    source: str = ""

    def __post_init__(self):
        for text in ("name", "source"):
            if not isinstance(getattr(self, text), str):
                raise TypeError(f"{text} must be a str; got {type(getattr(self, text)).__name__}")
        for field in ("layers", "heads", "kv_heads", "head_dim"):
            _positive_int(field, getattr(self, field))
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {self.kind!r}")
        if self.kv_heads > self.heads:
            raise ValueError(f"kv_heads must be <= heads = {self.heads}; got kv_heads = {self.kv_heads}")
        expected = {"MHA": self.kv_heads == self.heads, "MQA": self.kv_heads == 1,
                    "GQA": 1 <= self.kv_heads < self.heads, "MLA": True}[self.kind]
        if not expected:
            raise ValueError(f"kind {self.kind!r} does not match heads = {self.heads}, "
                             f"kv_heads = {self.kv_heads} (MHA: kv_heads == heads, MQA: kv_heads == 1, "
                             f"GQA: kv_heads < heads)")
        if self.kind == "MLA":
            _positive_int("latent_dim", self.latent_dim)
            _positive_int("rope_dim", self.rope_dim, allow_zero=True)
        elif self.latent_dim is not None or self.rope_dim is not None:
            raise ValueError(f"latent_dim and rope_dim describe an MLA cache; kind {self.kind!r} needs them "
                             f"None; got latent_dim={self.latent_dim!r}, rope_dim={self.rope_dim!r}")

    def with_(self, **changes) -> "AttentionShape":
        """A copy with some fields changed (validated again)."""
        _check_fields(type(self), changes)
        return replace(self, **changes)


def _check_fields(cls, changes) -> None:
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(changes) - set(names))
    if unknown:
        raise TypeError(f"{cls.__name__} has no field(s) {unknown}; fields are {names}")


#: Real model shapes, numbers copied from each model's published config.json / paper.
PRESETS: dict[str, AttentionShape] = {
    "gpt2": AttentionShape(
        "GPT-2 (124M)", layers=12, heads=12, kv_heads=12, head_dim=64, kind="MHA",
        source="openai-community/gpt2 config.json: n_layer 12, n_head 12, n_embd 768"),
    "llama-2-7b": AttentionShape(
        "Llama-2-7B", layers=32, heads=32, kv_heads=32, head_dim=128, kind="MHA",
        source="meta-llama/Llama-2-7b-hf config.json: num_hidden_layers 32, num_attention_heads 32, "
               "num_key_value_heads 32, hidden_size 4096"),
    "llama-2-70b": AttentionShape(
        "Llama-2-70B", layers=80, heads=64, kv_heads=8, head_dim=128, kind="GQA",
        source="meta-llama/Llama-2-70b-hf config.json: num_hidden_layers 80, num_attention_heads 64, "
               "num_key_value_heads 8, hidden_size 8192"),
    "llama-3-8b": AttentionShape(
        "Llama-3-8B", layers=32, heads=32, kv_heads=8, head_dim=128, kind="GQA",
        source="meta-llama/Meta-Llama-3-8B config.json: num_hidden_layers 32, num_attention_heads 32, "
               "num_key_value_heads 8, hidden_size 4096"),
    "mistral-7b": AttentionShape(
        "Mistral-7B-v0.1", layers=32, heads=32, kv_heads=8, head_dim=128, kind="GQA",
        source="mistralai/Mistral-7B-v0.1 config.json: num_hidden_layers 32, num_attention_heads 32, "
               "num_key_value_heads 8, hidden_size 4096"),
    "falcon-7b": AttentionShape(
        "Falcon-7B", layers=32, heads=71, kv_heads=1, head_dim=64, kind="MQA",
        source="tiiuae/falcon-7b config.json: num_hidden_layers 32, num_attention_heads 71, "
               "hidden_size 4544, multi_query true"),
    "deepseek-v2": AttentionShape(
        "DeepSeek-V2 (MLA)", layers=60, heads=128, kv_heads=128, head_dim=128, kind="MLA",
        latent_dim=512, rope_dim=64,
        source="DeepSeek-V2 paper (arXiv:2405.04434) and config.json: num_hidden_layers 60, "
               "num_attention_heads 128, kv_lora_rank 512, qk_rope_head_dim 64, v_head_dim 128"),
    # MiniMax went back from the 7:1 lightning hybrid (MiniMax-01, HYBRID_PRESETS) to full attention in every
    # layer: attn_type_list is 62 × 1 (softmax) in the MiniMax-M2 family's config.json.
    "minimax-m2": AttentionShape(
        "MiniMax-M2 (full attention)", layers=62, heads=48, kv_heads=8, head_dim=128, kind="GQA",
        source="https://huggingface.co/MiniMaxAI/MiniMax-M2 config.json: num_hidden_layers 62, attn_type_list "
               "all 1 (full attention), num_attention_heads 48, num_key_value_heads 8, head_dim 128 (read from "
               "the M2.1/M2.7 releases' config.json, which share these numbers)"),
}


def get_preset(name: str) -> AttentionShape:
    """Look up a preset by key (case-insensitive), e.g. 'llama-2-7b'."""
    if not isinstance(name, str) or name.lower() not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}; got {name!r}")
    return PRESETS[name.lower()]


def cache_bytes(shape: AttentionShape, tokens: int, *, batch: int = 1, dtype=2) -> int:
    """KV-cache bytes of ``shape`` at ``tokens`` tokens: the MLA latent formula or 2·L·kv_heads·head_dim·N·B·b."""
    if not isinstance(shape, AttentionShape):
        raise TypeError(f"shape must be an AttentionShape; got {type(shape).__name__}")
    if shape.kind == "MLA":
        return mla_cache_bytes(layers=shape.layers, latent_dim=shape.latent_dim, rope_dim=shape.rope_dim,
                               tokens=tokens, batch=batch, dtype=dtype)
    return kv_cache_bytes(layers=shape.layers, kv_heads=shape.kv_heads, head_dim=shape.head_dim,
                          tokens=tokens, batch=batch, dtype=dtype)


def state_bytes(shape: AttentionShape, *, d_phi: int | None = None, batch: int = 1, dtype=2,
                include_z: bool = False) -> int:
    """Bytes of a linear-attention state for a model of this shape: one (d_φ, head_dim) S per kv head.

    S = Σ_j φ(k_j) v_jᵀ is built from keys and values only, so the query heads that share a kv
    head (GQA, MQA) share its state too: layers · kv_heads states (MHA: kv_heads = heads).
    d_φ defaults to head_dim (elu+1, relu, identity keep the dimension); FAVOR+ uses its m,
    Taylor-2 uses 1 + d + d².
    """
    if not isinstance(shape, AttentionShape):
        raise TypeError(f"shape must be an AttentionShape; got {type(shape).__name__}")
    d_phi = shape.head_dim if d_phi is None else d_phi
    return linear_state_bytes(layers=shape.layers, heads=shape.kv_heads, d_phi=d_phi,
                              d_v=shape.head_dim, batch=batch, dtype=dtype, include_z=include_z)


def crossover_tokens(shape: AttentionShape, *, d_phi: int | None = None, include_z: bool = False) -> int:
    """Smallest token count at which the KV cache is at least as large as the linear state.

    N* = ceil(state_bytes / cache_bytes_per_token); batch and dtype cancel.
    """
    per_token = cache_bytes(shape, 1)
    state = state_bytes(shape, d_phi=d_phi, include_z=include_z)
    return -(-state // per_token)


def format_bytes(n: int | float) -> str:
    """Human-readable binary size: 524288 -> '512.0 KiB', 17179869184 -> '16.0 GiB'.

    A byte count is a finite number >= 0: NaN, inf or a negative count raise ValueError, a
    non-number TypeError (the core's ``_checks.format_bytes`` does the formatting).
    """
    check_number(n, "a byte count", minimum=0)
    return _format_bytes(n)


# -- hybrids: some layers keep a KV cache, the others a constant recurrent state -------------------
@dataclass(frozen=True)
class HybridShape:
    """A decoder that mixes softmax-attention layers (a KV cache each) with linear/recurrent layers.

    attention: the shape of the model's attention layers, with ``attention.layers`` = the model's
        *total* depth L; ``linear_layers`` of those L layers are linear (or SSM) layers instead.
    linear_layers: how many layers keep a constant state (0 <= linear_layers <= L).
    state_elements: elements of ONE linear layer's recurrent state for one sequence
        (linear attention: kv_heads · d_φ · d_v, + kv_heads · d_φ for z; Gated DeltaNet / KDA:
        heads · d_k · d_v; Mamba: d_inner · d_state).
    linear_kind: what the linear layers are ('linear attention', 'Mamba', 'Gated DeltaNet', ...).
    source: where the numbers were published.
    """

    name: str
    attention: AttentionShape
    linear_layers: int
    state_elements: int
    linear_kind: str = "linear attention"
    source: str = ""

    def __post_init__(self):
        for text in ("name", "linear_kind", "source"):
            if not isinstance(getattr(self, text), str):
                raise TypeError(f"{text} must be a str; got {type(getattr(self, text)).__name__}")
        if not isinstance(self.attention, AttentionShape):
            raise TypeError(f"attention must be an AttentionShape; got {type(self.attention).__name__}")
        check_number(self.linear_layers, "linear_layers", integer=True, minimum=0, maximum=self.attention.layers)
        _positive_int("state_elements", self.state_elements)

    @property
    def layers(self) -> int:
        """Total depth L = attention layers + linear layers."""
        return self.attention.layers

    @property
    def attention_layers(self) -> int:
        """Layers that keep a KV cache."""
        return self.attention.layers - self.linear_layers

    @property
    def ratio(self) -> str:
        """'linear : attention' layer counts, e.g. '36:12' for Qwen3-Next (3 : 1)."""
        return f"{self.linear_layers}:{self.attention_layers}"

    def with_(self, **changes) -> "HybridShape":
        """A copy with some fields changed (validated again)."""
        _check_fields(type(self), changes)
        return replace(self, **changes)


class HybridBytes(NamedTuple):
    """Decode-time memory of a hybrid: the KV cache grows with tokens, the state does not."""

    kv_cache: int
    state: int

    @property
    def total(self) -> int:
        return self.kv_cache + self.state


def hybridize(shape: AttentionShape, linear_layers: int, *, d_phi: int | None = None,
              include_z: bool = False, name: str | None = None) -> HybridShape:
    """The hybrid knob: replace ``linear_layers`` of ``shape``'s layers by linear attention.

    Each linear layer keeps one S (d_φ, head_dim) per kv head (and z (d_φ,) with include_z);
    d_φ defaults to head_dim. With 3 linear : 1 attention layer (linear_layers = 3/4 · layers)
    the KV cache shrinks by three quarters.

    >>> h = hybridize(PRESETS["llama-2-7b"], 24)
    >>> h.ratio, cache_bytes(PRESETS["llama-2-7b"], 1, dtype="fp16") // hybrid_bytes(h, 1, dtype="fp16").kv_cache
    ('24:8', 4)
    """
    if not isinstance(shape, AttentionShape):
        raise TypeError(f"shape must be an AttentionShape; got {type(shape).__name__}")
    check_number(linear_layers, "linear_layers", integer=True, minimum=0, maximum=shape.layers)
    check_bool(include_z, "include_z")
    d_phi = shape.head_dim if d_phi is None else _positive_int("d_phi", d_phi)
    per_layer = shape.kv_heads * (d_phi * shape.head_dim + (d_phi if include_z else 0))
    label = name if name is not None else f"{shape.name}, {linear_layers} of {shape.layers} layers linear"
    return HybridShape(label, shape, linear_layers, per_layer,
                       source=f"{shape.name} with linear attention in {linear_layers} layers")


def hybrid_bytes(hybrid: HybridShape, tokens: int, *, batch: int = 1, dtype=2, state_dtype=None) -> HybridBytes:
    """Bytes a hybrid keeps while decoding at ``tokens`` tokens: (kv_cache, state), ``.total``.

        kv_cache = attention_layers · (cache bytes of one attention layer at ``tokens``)
        state    = linear_layers · state_elements · batch · bytes(state_dtype)

    ``state_dtype`` defaults to ``dtype`` (recurrent states are often kept in float32: pass 'fp32').

    >>> hybrid_bytes(HYBRID_PRESETS["jamba-v0.1"], 256 * 1024, dtype="bf16").kv_cache / 2**30  # GiB
    4.0
    """
    if not isinstance(hybrid, HybridShape):
        raise TypeError(f"hybrid must be a HybridShape (see hybridize, HYBRID_PRESETS); got {type(hybrid).__name__}")
    _positive_int("batch", batch)
    one_layer = cache_bytes(hybrid.attention.with_(layers=1), tokens, batch=batch, dtype=dtype)
    state_b = bytes_per_element(dtype if state_dtype is None else state_dtype)
    return HybridBytes(kv_cache=hybrid.attention_layers * one_layer,
                       state=hybrid.linear_layers * hybrid.state_elements * batch * state_b)


#: Published hybrids. Layer counts and head shapes are copied from each model's config.json;
#: ``state_elements`` counts only the recurrent state (S, or Mamba's SSM state) and leaves out the
#: small short-convolution buffers (kernel 4) that these layers also keep — an approximation.
HYBRID_PRESETS: dict[str, HybridShape] = {
    # AI21, "Jamba: A Hybrid Transformer-Mamba Language Model" (arXiv:2403.19887) and
    # ai21labs/Jamba-v0.1 config.json: num_hidden_layers 32, attn_layer_period 8 (1 attention : 7 Mamba,
    # so 4 attention layers), num_attention_heads 32, num_key_value_heads 8, hidden_size 4096 (head_dim 128),
    # mamba_expand 2 (d_inner 8192), mamba_d_state 16. The paper's Table 1: 4 GB KV cache at 256K tokens.
    "jamba-v0.1": HybridShape(
        "Jamba-v0.1 (1 attention : 7 Mamba)",
        AttentionShape("Jamba-v0.1 attention", layers=32, heads=32, kv_heads=8, head_dim=128, kind="GQA"),
        linear_layers=28, state_elements=8192 * 16, linear_kind="Mamba",
        source="arXiv:2403.19887 and ai21labs/Jamba-v0.1 config.json"),
    # Qwen team, Qwen/Qwen3-Next-80B-A3B model card and config.json: 48 layers laid out as
    # 12 × (3 × Gated DeltaNet, 1 × gated attention) (full_attention_interval 4); attention:
    # num_attention_heads 16, num_key_value_heads 2, head_dim 256; Gated DeltaNet: linear_num_value_heads 32,
    # linear_key_head_dim 128, linear_value_head_dim 128 (one 128 × 128 state per value head).
    "qwen3-next-80b-a3b": HybridShape(
        "Qwen3-Next-80B-A3B (3 Gated DeltaNet : 1 attention)",
        AttentionShape("Qwen3-Next gated attention", layers=48, heads=16, kv_heads=2, head_dim=256, kind="GQA"),
        linear_layers=36, state_elements=32 * 128 * 128, linear_kind="Gated DeltaNet",
        source="Qwen/Qwen3-Next-80B-A3B-Instruct model card and config.json"),
    # Moonshot AI, "Kimi Linear: An Expressive, Efficient Attention Architecture" (arXiv:2510.26692) and
    # moonshotai/Kimi-Linear-48B-A3B-Instruct config.json: num_hidden_layers 27, full_attn_layers
    # [4, 8, 12, 16, 20, 24, 27] (7 MLA layers, 20 KDA layers: about 3 : 1), num_attention_heads 32,
    # kv_lora_rank 512, qk_rope_head_dim 64, v_head_dim 128; KDA num_heads 32, head_dim 128.
    "kimi-linear-48b-a3b": HybridShape(
        "Kimi-Linear-48B-A3B (3 KDA : 1 MLA)",
        AttentionShape("Kimi Linear MLA", layers=27, heads=32, kv_heads=32, head_dim=128, kind="MLA",
                       latent_dim=512, rope_dim=64),
        linear_layers=20, state_elements=32 * 128 * 128, linear_kind="Kimi Delta Attention",
        source="arXiv:2510.26692 and moonshotai/Kimi-Linear-48B-A3B-Instruct config.json"),
    # Qwen3.5 (2026) keeps Qwen3-Next's layout: layer_types = (3 × linear_attention, full_attention) × 8,
    # full_attention_interval 4, attn_output_gate true (gated attention: a sigmoid gate on each head's output);
    # attention: num_attention_heads 16, num_key_value_heads 4, head_dim 256; Gated DeltaNet:
    # linear_num_key_heads 16, linear_num_value_heads 32, linear_key_head_dim = linear_value_head_dim = 128.
    "qwen3.5-9b": HybridShape(
        "Qwen3.5-9B (3 Gated DeltaNet : 1 gated attention)",
        AttentionShape("Qwen3.5-9B gated attention", layers=32, heads=16, kv_heads=4, head_dim=256, kind="GQA"),
        linear_layers=24, state_elements=32 * 128 * 128, linear_kind="Gated DeltaNet",
        source="https://huggingface.co/Qwen/Qwen3.5-9B config.json (text_config): num_hidden_layers 32, "
               "full_attention_interval 4, attn_output_gate true, num_attention_heads 16, num_key_value_heads 4, "
               "head_dim 256, linear_num_value_heads 32, linear_key/value_head_dim 128. Note: these numbers were "
               "read from public code that checks its inputs against this config, not from Qwen's repository "
               "itself"),
    # MiniMax, "MiniMax-01: Scaling Foundation Models with Lightning Attention" (arXiv:2501.08313) and
    # MiniMaxAI/MiniMax-Text-01 config.json: attn_type_list = (7 × 0, 1) × 10 over num_hidden_layers 80
    # (70 lightning-attention layers, 10 softmax), num_attention_heads 64, head_dim 128, hidden_size 6144.
    "minimax-text-01": HybridShape(
        "MiniMax-Text-01 (7 lightning : 1 softmax)",
        AttentionShape("MiniMax-Text-01 softmax attention", layers=80, heads=64, kv_heads=8, head_dim=128,
                       kind="GQA"),
        linear_layers=70, state_elements=64 * 128 * 128, linear_kind="lightning attention (linear)",
        source="https://huggingface.co/MiniMaxAI/MiniMax-Text-01/blob/main/config.json and arXiv:2501.08313. "
               "Note: num_key_value_heads 8 is the config class's default and the paper's GQA group count; the "
               "excerpt of config.json read here ends before that field"),
    # NVIDIA, "Nemotron-H" (arXiv:2504.03624) and nvidia/Nemotron-H-8B-Base-8K config.json: 52 blocks,
    # hybrid_override_pattern "M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M-" = 24 Mamba-2 (M),
    # 4 attention (*), 24 MLP-only (-); attention 32 heads, 8 kv heads, head_dim 128; Mamba-2
    # mamba_num_heads 128 × mamba_head_dim 64 × ssm_state_size 128. The MLP-only blocks keep no state and
    # are left out of the layer count here (28 = 24 + 4).
    "nemotron-h-8b": HybridShape(
        "Nemotron-H-8B (24 Mamba-2 : 4 attention)",
        AttentionShape("Nemotron-H-8B attention", layers=28, heads=32, kv_heads=8, head_dim=128, kind="GQA"),
        linear_layers=24, state_elements=128 * 64 * 128, linear_kind="Mamba-2",
        source="https://huggingface.co/nvidia/Nemotron-H-8B-Base-8K/blob/main/config.json and arXiv:2504.03624 "
               "(layer count: Mamba-2 and attention blocks only; the 24 MLP-only blocks hold no cache)"),
    # IBM Granite 4.0 hybrids (2025): 9 Mamba-2 blocks to 1 attention block. GraniteMoeHybrid config.json:
    # layer_types with "attention" at 5, 15, 25, 35 of num_hidden_layers 40, num_attention_heads 32,
    # num_key_value_heads 8, hidden_size 2048 (head_dim 64), mamba_n_heads 64, mamba_d_head 64, mamba_d_state 128.
    "granite-4.0-h-micro": HybridShape(
        "Granite-4.0-H-Micro (36 Mamba-2 : 4 attention)",
        AttentionShape("Granite-4.0-H-Micro attention", layers=40, heads=32, kv_heads=8, head_dim=64, kind="GQA"),
        linear_layers=36, state_elements=64 * 64 * 128, linear_kind="Mamba-2",
        source="https://huggingface.co/ibm-granite/granite-4.0-h-micro config.json. Note: read from a public "
               "GraniteMoeHybrid config.json with H-Micro's published shape (3B dense hybrid: 40 layers, 4 attention, "
               "no experts), not from IBM's repository itself; head_dim 64 = hidden_size 2048 / 32 heads"),
}


def get_hybrid_preset(name: str) -> HybridShape:
    """Look up a hybrid preset by key (case-insensitive), e.g. 'qwen3-next-80b-a3b'."""
    if not isinstance(name, str) or name.lower() not in HYBRID_PRESETS:
        raise ValueError(f"hybrid preset must be one of {sorted(HYBRID_PRESETS)}; got {name!r}")
    return HYBRID_PRESETS[name.lower()]
