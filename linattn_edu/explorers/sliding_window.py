"""Sliding-window explorer: a band of width w plus global tokens, and what it costs.

    causal:      query i sees keys  i − w < j ≤ i              ≈ N·w scores
    two-sided:   query i sees keys  |i − j| < w                 ≈ N·(2w − 1) scores
    global g:    row g and column g are full (Longformer's [CLS]) + 2·N per global token
    dense:       N² scores

Panels: the allowed pattern (``window_mask``), the attention weights that
``sliding_window_attention`` computes under it, and scores stored against N (log-log).
"""

from __future__ import annotations

import ipywidgets as widgets
import plotly.graph_objects as go
import torch

from ..window import sliding_window_attention, window_mask
from .. import viz
from ._base import Explorer, seed_box

__all__ = ["SlidingWindowExplorer", "sliding_window_explorer", "parse_positions"]

MAX_N = 256


def parse_positions(text: str) -> tuple[int, ...]:
    """"0, 5 9" -> (0, 5, 9); raises ValueError naming the bad entry."""
    if not isinstance(text, str):
        raise TypeError(f"global_tokens must be a string like '0, 5'; got {type(text).__name__}")
    out = []
    for part in text.replace(",", " ").split():
        try:
            out.append(int(part))
        except ValueError:
            raise ValueError(f"global_tokens must be whole numbers separated by commas, e.g. '0, 5'; "
                             f"got {part!r}") from None
    return tuple(sorted(set(out)))


class SlidingWindowExplorer(Explorer):
    """Band + global mask and weights; readouts ``attended_pairs``, ``dense_pairs``, ``memory_ratio``."""

    limits = {"n": "the explorer draws dense N × N maps"}
    compute_threads = 1  # tiny tensors: threads only add overhead
    try_this = ("Try this → type “0, 20” into global tokens → you should see row 20 and column 20 fill in (token 20 "
                "reads every key it may see, and every query may read it); then raise N from 48 to 256 → you should "
                "see the share of pairs stored in the title fall like (w + g)/N for causal (w keys per query plus one "
                "column per global token g; (2w − 1 + 2g)/N two-sided) while dense grows as N².")

    def __init__(self, *, n: int = 48, window: int = 4, global_tokens: str = "0", causal: bool = False,
                 seed: int = 0):
        self.attended_pairs = self.dense_pairs = 0
        self.memory_ratio = float("nan")
        self.weights = self.mask = None
        style = {"description_width": "initial"}
        controls = {
            "n": widgets.IntSlider(min=2, max=MAX_N, description="N (tokens)", style=style),
            "window": widgets.IntSlider(min=1, max=64, description="window w", style=style),
            "global_tokens": widgets.Text(description="global tokens", placeholder="e.g. 0, 5", style=style,
                                          continuous_update=False),
            "causal": widgets.Checkbox(description="causal"),
            "seed": seed_box(),
        }
        super().__init__(controls, dict(n=n, window=window, global_tokens=global_tokens, causal=causal, seed=seed))

    def compute(self, *, n, window, global_tokens, causal, seed) -> go.Figure:
        globals_ = parse_positions(global_tokens)
        gen = torch.Generator().manual_seed(seed)
        q = torch.randn(n, 16, generator=gen, dtype=torch.float64)  # (n, 16)
        k = torch.randn(n, 16, generator=gen, dtype=torch.float64)  # (n, 16)
        v = torch.zeros(n, 1, dtype=torch.float64)  # (n, 1): only the weights are drawn
        mask = window_mask(n, window, globals_, causal)  # (n, n) bool
        _, weights = sliding_window_attention(q, k, v, window=window, global_tokens=globals_, causal=causal,
                                              return_weights=True)  # (n, n)
        self.mask, self.weights = mask, weights
        self.attended_pairs, self.dense_pairs = int(mask.sum()), n * n
        self.memory_ratio = self.attended_pairs / self.dense_pairs
        return viz.window_pattern(mask, weights, window=window, causal=causal, global_tokens=globals_)


def sliding_window_explorer(**defaults) -> SlidingWindowExplorer:
    """Band + global-token attention; controls N, window w, global tokens ("0, 5"), causal, seed.

    >>> sw = sliding_window_explorer(n=64, window=8, global_tokens="0")
    >>> sw.memory_ratio
    """
    return SlidingWindowExplorer(**defaults)
