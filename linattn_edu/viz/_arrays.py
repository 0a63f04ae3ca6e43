"""Input helpers shared by the figure modules: tensors / arrays / nested lists -> checked numpy arrays."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def as_array(x, name: str, ndim: int | None = None) -> np.ndarray:
    """Tensor / array / nested list -> float64 numpy array, checking its rank."""
    if hasattr(x, "detach"):
        x = x.detach().to("cpu").double().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dims; got shape {tuple(arr.shape)}")
    return arr


def position_labels(labels: Sequence[str] | None, n: int, name: str) -> list | None:
    """``labels`` as distinct category names ``"i:label"`` (plotly merges equal categories), or None."""
    if labels is None:
        return None
    labels = [str(s) for s in labels]
    if len(labels) != n:
        raise ValueError(f"{name} must have {n} entries (one per position); got {len(labels)}")
    return [f"{i}:{s}" for i, s in enumerate(labels)]


def max_abs(*arrays: np.ndarray) -> float:
    """Largest finite |value| over arrays (1.0 when there is none), for symmetric scales."""
    vals = [np.nanmax(np.abs(a[np.isfinite(a)])) for a in arrays if a.size and np.isfinite(a).any()]
    m = float(max(vals)) if vals else 0.0
    return m if m > 0 else 1.0
