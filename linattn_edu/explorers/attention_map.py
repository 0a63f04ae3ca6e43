"""Attention map explorer: softmax attention beside the matrix linear attention implies, same Q, K.

    P = softmax(QKᵀ / (τ√d))                     (N, N)   softmax attention (masked if causal)
    A = (φ(Q')φ(K')ᵀ ⊙ M) / row sums,  X' = X/√τ  (N, N)   linear attention's implied weights
    row error_i = ‖A_i − P_i‖₁ ∈ [0, 2]                      shown as max and mean over i

Both panels share one colour axis (0 … the larger maximum) so they can be compared by eye.
Honest box: an attention map shows where weight goes, not why a model decided anything.
"""

from __future__ import annotations

import math

import ipywidgets as widgets
import plotly.graph_objects as go
import torch

from ..feature_maps import feature_map_names, get_feature_map
from ..linear import linear_attention
from ..softmax import softmax_attention
from .. import viz
from ._base import Explorer, seed_box

__all__ = ["AttentionMapExplorer", "attention_map_explorer", "make_inputs", "INPUT_KINDS", "SENTENCE"]

INPUT_KINDS = ("random", "clustered", "tokens")
FEATURE_MAP_CHOICES = feature_map_names(positive_kernel=True)  # the registry's maps a normalised form accepts
SENTENCE = ("the cat sat on the mat because the cat was tired and the dog sat by the door "
            "while the bird sang on the roof of the house").split()
MAX_N = 256


def _word_vector(word: str, d: int) -> torch.Tensor:
    """A fixed random embedding per word (same word -> same vector), float64 (d,)."""
    seed = sum((i + 1) * ord(c) for i, c in enumerate(word))
    return torch.randn(d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)  # (d,)


def make_inputs(kind: str, n: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list[str] | None]:
    """Queries and keys ``(n, d)`` float64 for one input kind, plus token labels for "tokens".

    random: q, k ~ N(0, I).  clustered: 4 centres ~ N(0, 2²I), keys and queries = a centre + N(0, 0.3²I),
    both sorted by cluster (queries concentrate on their cluster's keys: the map shows square blocks).  tokens: the first n words of :data:`SENTENCE`
    (cycled) embedded by a fixed random vector per word plus a sinusoidal position code; q = k.
    """
    if kind not in INPUT_KINDS:
        raise ValueError(f"inputs must be one of {INPUT_KINDS}; got {kind!r}")
    gen = torch.Generator().manual_seed(seed)
    if kind == "random":
        q = torch.randn(n, d, generator=gen, dtype=torch.float64)  # (n, d)
        k = torch.randn(n, d, generator=gen, dtype=torch.float64)  # (n, d)
        return q, k, None
    if kind == "clustered":
        centres = 2.0 * torch.randn(4, d, generator=gen, dtype=torch.float64)  # (4, d)
        k_id = torch.arange(n) * 4 // n  # (n,) keys in 4 contiguous blocks: the map shows blocks
        q_id = torch.randint(0, 4, (n,), generator=gen).sort().values  # (n,) queries sorted by cluster
        k = centres[k_id] + 0.3 * torch.randn(n, d, generator=gen, dtype=torch.float64)  # (n, d)
        q = centres[q_id] + 0.3 * torch.randn(n, d, generator=gen, dtype=torch.float64)  # (n, d)
        return q, k, None
    words = [SENTENCE[i % len(SENTENCE)] for i in range(n)]
    emb = torch.stack([_word_vector(w, d) for w in words])  # (n, d)
    pos = torch.arange(n, dtype=torch.float64)[:, None]  # (n, 1)
    freq = torch.exp(-math.log(100.0) * torch.arange(d, dtype=torch.float64) / d)  # (d,)
    code = torch.where(torch.arange(d) % 2 == 0, torch.sin(pos * freq), torch.cos(pos * freq))  # (n, d)
    x = emb + 0.5 * code  # (n, d)
    return x, x.clone(), words


class AttentionMapExplorer(Explorer):
    """Softmax vs linear attention maps for the same Q, K; readouts ``max_row_error``, ``mean_row_error``."""

    limits = {"n": "the explorer draws dense N × N maps"}
    compute_threads = 1  # tiny tensors: threads only add overhead
    try_this = ("Try this → set inputs to “clustered”, φ to favor+ and move FAVOR+ m from 4 to 1024 → you should "
                "see the linear map's four blocks sharpen toward softmax's and the mean row error in the title fall "
                "from about 1.4 to under 0.9 (not at every step: each m is a new random draw); for a flat-looking "
                "map pick view “row profiles”.")

    def __init__(self, *, n: int = 32, d: int = 16, feature_map: str = "elu+1", m: int = 64,
                 causal: bool = False, temperature: float = 1.0, inputs: str = "random", view: str = "maps",
                 seed: int = 0):
        self.max_row_error = float("nan")
        self.mean_row_error = float("nan")
        self.softmax_weights = self.linear_weights = None
        style = {"description_width": "initial"}
        controls = {
            "n": widgets.IntSlider(min=2, max=MAX_N, description="N (tokens)", style=style),
            "d": widgets.IntSlider(min=1, max=64, description="head dim d", style=style),
            "feature_map": widgets.Dropdown(options=FEATURE_MAP_CHOICES, description="φ"),
            "m": widgets.SelectionSlider(options=[2 ** i for i in range(2, 11)], description="FAVOR+ m",
                                         style=style),
            "causal": widgets.Checkbox(description="causal"),
            "temperature": widgets.FloatSlider(min=0.1, max=4.0, step=0.05, description="temperature τ",
                                               style=style),
            "inputs": widgets.Dropdown(options=INPUT_KINDS, description="inputs"),
            "view": widgets.ToggleButtons(options=(("maps", "maps"), ("row profiles", "rows")), description="view",
                                          style={"button_width": "96px"}),
            "seed": seed_box(),
        }
        super().__init__(controls, dict(n=n, d=d, feature_map=feature_map, m=m, causal=causal,
                                        temperature=temperature, inputs=inputs, view=view, seed=seed))

    def adjust(self) -> None:
        self.controls["m"].disabled = self.controls["feature_map"].value != "favor+"

    def compute(self, *, n, d, feature_map, m, causal, temperature, inputs, view, seed) -> go.Figure:
        q, k, labels = make_inputs(inputs, n, d, seed)  # (n, d), (n, d)
        q, k = q / math.sqrt(temperature), k / math.sqrt(temperature)  # q'ᵀk' = qᵀk / τ
        v = torch.zeros(n, 1, dtype=torch.float64)  # (n, 1): only the weights are drawn
        kw = {"m": m, "seed": seed} if feature_map == "favor+" else {}
        phi = get_feature_map(feature_map, d, **kw)
        _, p = softmax_attention(q, k, v, causal=causal, return_weights=True)  # (n, n)
        _, a = linear_attention(q, k, v, phi, causal=causal, form="quadratic", return_weights=True)  # (n, n)
        row_err = (a - p).abs().sum(-1)  # (n,)
        self.softmax_weights, self.linear_weights = p, a
        self.max_row_error, self.mean_row_error = float(row_err.max()), float(row_err.mean())
        name = f"favor+ (m={m})" if feature_map == "favor+" else feature_map
        if view == "rows":
            return viz.attention_rows(p, a, linear_name=name)
        return viz.attention_comparison(p, a, linear_name=name, labels=labels if n <= 48 else None)


def attention_map_explorer(**defaults) -> AttentionMapExplorer:
    """Softmax vs linear attention maps; controls N, d, φ, FAVOR+ m, causal, τ, input kind, view, seed.

    >>> ex = attention_map_explorer(n=32, feature_map="favor+", m=256)
    >>> ex.max_row_error, ex.mean_row_error
    """
    return AttentionMapExplorer(**defaults)
