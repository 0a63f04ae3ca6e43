"""KV-cache calculator: what a softmax decoder must keep at context N, vs a linear-attention state.

    KV cache (MHA/GQA/MQA) = 2 · layers · kv_heads · head_dim · N · batch · bytes
    MLA cache              = layers · (d_c + d_rope) · N · batch · bytes
    linear state           = layers · heads · d_φ · d_v · batch · bytes        (constant in N)
    hybrid (a fraction f of the layers softmax, the rest linear)
                           = KV cache of round(f · layers) layers + the other layers' constant states

Presets carry published config numbers (see :data:`linattn_edu.memory.PRESETS` for sources);
editing any shape field switches the preset to "custom".  Honest box: a linear-attention model
of the same shape is not the same model: its constant state is also why it recalls less.
"""

from __future__ import annotations

import ipywidgets as widgets
import plotly.graph_objects as go

from ..memory import (KINDS, PRESETS, AttentionShape, cache_bytes, crossover_tokens, format_bytes, hybrid_bytes,
                      hybridize, state_bytes)
from ..viz import kv_cache_figure
from ._base import Explorer

__all__ = ["KVCacheCalculator", "kv_cache_calculator", "TOKEN_CHOICES", "DTYPE_CHOICES", "FEATURE_MAP_DIMS",
           "SOFTMAX_FRACTIONS"]

TOKEN_CHOICES = tuple(2**i for i in range(10, 21))  # 1k … 1M tokens
DTYPE_CHOICES = (("fp32 (4 B)", 4), ("fp16 / bf16 (2 B)", 2), ("fp8 / int8 (1 B)", 1))
SHAPE_FIELDS = ("layers", "heads", "kv_heads", "head_dim", "kind", "latent_dim", "rope_dim")
#: d_φ of the linear state as a function of head_dim d
FEATURE_MAP_DIMS = {
    "elu+1": lambda d: d,
    "favor+ (m=256)": lambda d: 256,
    "taylor-2": lambda d: 1 + d + d * d,
}
#: fraction of the layers that keep softmax attention (the rest linear): all, 1 in 2, 1 in 4 (3:1, Qwen3-Next,
#: Qwen3.5, Kimi Linear), 1 in 8 (7:1, MiniMax-01), 1 in 10 (9:1, Granite 4.0), none
SOFTMAX_FRACTIONS = (("all (1)", 1.0), ("1/2", 0.5), ("1/4 (3:1)", 0.25), ("1/8 (7:1)", 0.125),
                     ("1/10 (9:1)", 0.1), ("none (0)", 0.0))
#: the hybrid's line: Okabe–Ito reddish purple, its own dash and marker
HYBRID_STYLE = dict(color="#cc79a7", dash="dashdot", marker="triangle-up")


class KVCacheCalculator(Explorer):
    """Readouts: ``shape`` (AttentionShape), ``cache_bytes`` at ``tokens``, ``state_bytes``, ``crossover``
    (tokens at which the cache reaches the state's size), ``hybrid`` (the HybridShape with the chosen fraction
    of softmax layers), ``hybrid_bytes`` (its KV cache and states at ``tokens``) and ``summary`` (one sentence)."""

    apply_order = ("preset", "kind", "heads")
    try_this = ("Try this → slide context N from 1k to 1M → you should see the KV cache in the summary grow 1024× "
                "while the linear state stays put; then pick falcon-7b (MQA: one KV head) to see how much "
                "sharing KV heads shrinks the cache; then set softmax layers to 1/4 (3:1) → you should see the "
                "hybrid's line (purple triangles) sit at a quarter of the full cache at long N, plus a flat floor "
                "of linear states.")

    def __init__(self, *, preset: str = "llama-2-7b", tokens: int = 32768, dtype: int = 2, batch: int = 1,
                 feature_map: str = "elu+1", softmax_fraction: float = 1.0, **shape_fields):
        unknown = sorted(set(shape_fields) - set(SHAPE_FIELDS))
        if unknown:
            raise TypeError(f"unknown argument(s) {unknown}; shape fields are {list(SHAPE_FIELDS)}")
        self.shape = None
        self.cache_bytes = self.state_bytes = self.crossover = None
        self.hybrid = self.hybrid_bytes = None
        self.summary = ""
        self._preset_shown = None
        self._heads_kind = None  # (query heads, kind) last seen by _follow_kind
        self._readout = widgets.HTML()
        style = {"description_width": "initial"}
        slider = lambda lo, hi, text: widgets.IntSlider(min=lo, max=hi, description=text, style=style)  # noqa: E731
        controls = {
            "preset": widgets.Dropdown(options=[*PRESETS, "custom"], description="preset"),
            "layers": slider(1, 128, "layers"),
            "heads": slider(1, 128, "query heads"),
            "kv_heads": slider(1, 128, "kv heads"),
            "head_dim": slider(16, 256, "head dim"),
            "kind": widgets.Dropdown(options=KINDS, description="kind"),
            "latent_dim": slider(16, 2048, "MLA d_c"),
            "rope_dim": slider(0, 256, "MLA d_rope"),
            "dtype": widgets.Dropdown(options=DTYPE_CHOICES, description="dtype"),
            "batch": slider(1, 256, "batch"),
            "tokens": widgets.SelectionSlider(options=TOKEN_CHOICES, description="context N", style=style),
            "feature_map": widgets.Dropdown(options=list(FEATURE_MAP_DIMS), description="φ (state)"),
            "softmax_fraction": widgets.Dropdown(options=SOFTMAX_FRACTIONS, description="softmax layers",
                                                 style=style),
        }
        values = dict(preset=preset if preset in PRESETS else preset, tokens=tokens, dtype=dtype, batch=batch,
                      feature_map=feature_map, softmax_fraction=softmax_fraction)
        if shape_fields:  # explicit fields mean a custom shape, starting from the preset's numbers
            base = PRESETS.get(preset, PRESETS["llama-2-7b"])
            values.update({f: getattr(base, f) for f in SHAPE_FIELDS if getattr(base, f) is not None})
            values.update(shape_fields, preset="custom")
        super().__init__(controls, values, extra=[self._readout])

    def adjust(self) -> None:
        """Copy a newly chosen preset into the shape fields; edited fields turn the preset into "custom"."""
        previous, self._holding = self._holding, True  # our own assignments must not trigger redraws
        try:
            self._sync_preset()
        finally:
            self._holding = previous

    def _sync_preset(self) -> None:
        c = self.controls
        preset = c["preset"].value
        if preset != "custom" and preset != self._preset_shown:
            shape = PRESETS[preset]
            for f in SHAPE_FIELDS:
                value = getattr(shape, f)
                if value is not None:
                    c[f].value = value
            self._preset_shown = preset
        elif preset != "custom" and any(
                getattr(PRESETS[preset], f) is not None and c[f].value != getattr(PRESETS[preset], f)
                for f in SHAPE_FIELDS):
            c["preset"].value = "custom"
            self._preset_shown = "custom"
        if c["preset"].value == "custom":
            self._preset_shown = "custom"
        self._follow_kind()
        mla = c["kind"].value == "MLA"
        c["latent_dim"].disabled = c["rope_dim"].disabled = not mla

    def _follow_kind(self) -> None:
        """Keep kv heads consistent with the kind, so moving query heads never gives an impossible shape.

        MHA: kv heads = query heads (slider locked); MQA: kv heads = 1 (locked); GQA: kv heads drop to half
        the query heads when they would reach them; MLA: kv heads are not cached, left free.  Only a move of
        query heads or kind drags kv heads along; an explicit kv value that does not fit is explained.
        """
        c = self.controls
        kind, heads, kv = c["kind"].value, c["heads"], c["kv_heads"]
        kv.disabled = kind in ("MHA", "MQA")
        if (heads.value, kind) != self._heads_kind:  # only a move of query heads or kind drags kv heads along
            self._heads_kind = (heads.value, kind)
            target = {"MHA": heads.value, "MQA": 1}.get(kind, kv.value)
            if kind == "GQA" and kv.value >= heads.value:
                target = max(heads.value // 2, 1)
            kv.value = target  # slider ranges stay fixed: a range changed with the value races in the browser

    def compute(self, *, preset, layers, heads, kv_heads, head_dim, kind, latent_dim, rope_dim, dtype, batch,
                tokens, feature_map, softmax_fraction) -> go.Figure:
        self._readout.value = ""  # no stale numbers beside a warning
        name = PRESETS[preset].name if preset in PRESETS else "custom"
        mla = dict(latent_dim=latent_dim, rope_dim=rope_dim) if kind == "MLA" else {}
        shape = AttentionShape(name, layers=layers, heads=heads, kv_heads=kv_heads, head_dim=head_dim,
                               kind=kind, **mla)  # raises ValueError for inconsistent heads / kind
        d_phi = FEATURE_MAP_DIMS[feature_map](head_dim)
        self.shape = shape
        self.cache_bytes = cache_bytes(shape, tokens, batch=batch, dtype=dtype)
        self.state_bytes = state_bytes(shape, d_phi=d_phi, batch=batch, dtype=dtype)
        self.crossover = crossover_tokens(shape, d_phi=d_phi)
        per_token = cache_bytes(shape, 1, batch=batch, dtype=dtype)
        softmax_layers = round(softmax_fraction * layers)  # whole layers: e.g. 1/4 of 32 = 8
        self.hybrid = hybridize(shape, layers - softmax_layers, d_phi=d_phi)
        self.hybrid_bytes = hybrid_bytes(self.hybrid, tokens, batch=batch, dtype=dtype)
        self.summary = (f"{name}: KV cache {format_bytes(per_token)}/token → {format_bytes(self.cache_bytes)} "
                        f"at N = {tokens:,} (batch {batch}); linear state {format_bytes(self.state_bytes)} "
                        f"(d_φ = {d_phi}) at any N; the cache is larger from N ≈ {self.crossover:,}; "
                        f"hybrid with {softmax_layers} of {layers} layers softmax: KV cache "
                        f"{format_bytes(self.hybrid_bytes.kv_cache)} + states {format_bytes(self.hybrid_bytes.state)}")
        self._readout.value = f"<b>{self.summary}</b>"
        fig = kv_cache_figure([shape], tokens=tokens, tokens_max=max(4 * tokens, 2**17), batch=batch,
                              dtype=dtype, d_phi=d_phi)
        grid = list(fig.data[0].x)  # the token counts the cache line is drawn at
        total = [hybrid_bytes(self.hybrid, n, batch=batch, dtype=dtype).total / 2**20 for n in grid]
        fig.add_trace(go.Scatter(
            x=grid, y=total, mode="lines+markers", name=f"hybrid: {softmax_layers} of {layers} layers softmax "
                                                           f"(KV cache + linear states)",
            line=dict(color=HYBRID_STYLE["color"], dash=HYBRID_STYLE["dash"], width=2),
            marker=dict(symbol=HYBRID_STYLE["marker"], size=7, color=HYBRID_STYLE["color"]),
            hovertemplate="hybrid<br>N=%{x}<br>%{y:.4g} MiB<extra></extra>"))
        return fig


def kv_cache_calculator(**defaults) -> KVCacheCalculator:
    """KV cache vs linear state for a real model shape; controls preset, shape fields, dtype, batch, N, φ.

    >>> calc = kv_cache_calculator(preset="llama-2-7b", tokens=32768, dtype=2)
    >>> calc.summary          # '... 512.0 KiB/token → 16.0 GiB at N = 32,768 ...'
    """
    return KVCacheCalculator(**defaults)
