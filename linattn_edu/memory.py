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
    linear-attention state     = layers · heads · d_φ · d_v · batch · b      (+ layers · heads · d_φ · batch · b for z)

Hand-computed check (Llama-2-7B shape, fp16): 2 · 32 · 32 · 128 · 2 B = 524 288 B = 512 KiB per
token, so 32 768 tokens need 16 GiB; a same-shaped linear state (d_φ = d_v = 128) is
32 · 32 · 128 · 128 · 2 B = 32 MiB at any length.

Only arithmetic here: no torch import, so the numbers can be checked anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

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
]

#: Bytes per element of the storage dtypes people use for caches.
DTYPE_BYTES = {
    "fp64": 8, "float64": 8,
    "fp32": 4, "float32": 4,
    "fp16": 2, "float16": 2,
    "bf16": 2, "bfloat16": 2,
    "fp8": 1, "float8": 1,
    "int8": 1,
}

KINDS = ("MHA", "GQA", "MQA", "MLA")


def _positive_int(name: str, value, *, allow_zero: bool = False) -> int:
    """Return ``value`` as an int, or raise naming the expected range and the received value."""
    lower = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= {lower}; got {value!r} ({type(value).__name__})")
    if value < lower:
        raise ValueError(f"{name} must be an int >= {lower}; got {value}")
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

    S = Σ_j φ(k_j) v_jᵀ is (d_φ, d_v) per head; the normaliser z = Σ_j φ(k_j) adds d_φ more
    elements per head when ``include_z``.  Independent of the number of tokens.

    >>> linear_state_bytes(layers=32, heads=32, d_phi=128, d_v=128, dtype="fp16") // 2**20  # MiB
    32
    """
    layers = _positive_int("layers", layers)
    heads = _positive_int("heads", heads)
    d_phi = _positive_int("d_phi", d_phi)
    d_v = _positive_int("d_v", d_v)
    batch = _positive_int("batch", batch)
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

    def with_(self, **changes) -> "AttentionShape":
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)


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
    """Bytes of a linear-attention state for a model of this shape: one (d_φ, head_dim) S per query head.

    d_φ defaults to head_dim (elu+1, relu, identity keep the dimension); FAVOR+ uses its m,
    Taylor-2 uses 1 + d + d².
    """
    if not isinstance(shape, AttentionShape):
        raise TypeError(f"shape must be an AttentionShape; got {type(shape).__name__}")
    return linear_state_bytes(layers=shape.layers, heads=shape.heads, d_phi=d_phi or shape.head_dim,
                              d_v=shape.head_dim, batch=batch, dtype=dtype, include_z=include_z)


def crossover_tokens(shape: AttentionShape, *, d_phi: int | None = None, include_z: bool = False) -> int:
    """Smallest token count at which the KV cache is at least as large as the linear state.

    N* = ceil(state_bytes / cache_bytes_per_token); batch and dtype cancel.
    """
    per_token = cache_bytes(shape, 1)
    state = state_bytes(shape, d_phi=d_phi, include_z=include_z)
    return -(-state // per_token)


def format_bytes(n: int | float) -> str:
    """Human-readable binary size: 524288 -> '512.0 KiB', 17179869184 -> '16.0 GiB'."""
    if isinstance(n, bool) or not isinstance(n, (int, float)) or n < 0:
        raise ValueError(f"n must be a non-negative number of bytes; got {n!r}")
    return _format_bytes(n)
