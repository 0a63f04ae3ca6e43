"""The recall lab's figures: interference in a linear state, MQAR accuracy per mixer, the recall–memory frontier.

Inputs are plain numbers or the run records of :func:`linattn_edu.recall.run_mqar` (the ``runs`` list of
``assets/recall_sweep.json``); every function returns a ``go.Figure`` and shows nothing.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import plotly.graph_objects as go

from ._style import FONT, OKABE_ITO, THEORY_COLOUR, Style, colour, distinct_styles, finish, subplots

__all__ = ["recall_capacity_figure", "recall_accuracy_figure", "recall_frontier_figure", "recall_pairs_figure",
           "mixer_label"]

MIXER_LABELS = {"softmax": "softmax", "linear": "linear (elu+1, denominator)", "taylor": "linear (Taylor, 273 features)",
                "window": "sliding window", "hybrid": "window + Taylor", "gated": "gated (one gate per step)",
                "delta": "delta rule", "linear_nodenom": "elu+1, no denominator",
                "additive": "identity on unit keys, additive", "window_linear": "window + elu+1 (in-layer hybrid)"}


def mixer_label(mixer: str) -> str:
    """The legend label of a mixer record name; "a+b" (one mixer per layer) reads "a → b"."""
    return " → ".join(MIXER_LABELS.get(m, m) for m in mixer.split("+"))


def _mixer_colour(mixer: str, index: int) -> str:
    return colour(mixer, index)


def _palette(mixers) -> dict[str, Style]:
    """One style per mixer of a figure: a named rule's own, else a spare one; no two lines alike in dash and
    marker, and no two in one colour while the palette has a free one (:func:`._style.distinct_styles`)."""
    return distinct_styles(mixers, unique_colours=True)


def _check_runs(runs) -> list[dict]:
    if not isinstance(runs, (list, tuple)) or not runs:
        raise TypeError("runs must be a non-empty list of run_mqar records (dicts)")
    for r in runs:
        if not isinstance(r, dict) or not {"mixer", "accuracy", "state_bytes", "settings"} <= set(r):
            raise ValueError("each run must be a run_mqar record with mixer, accuracy, state_bytes, settings")
    return list(runs)


def _group(runs) -> dict:
    """{mixer: {(seq_len, pairs): [accuracy per seed, seed 0 first]}} in the order runs first appear."""
    table: dict = defaultdict(lambda: defaultdict(list))
    for r in sorted(runs, key=lambda r: r["settings"].get("seed", 0)):
        table[r["mixer"]][(r["settings"]["seq_len"], r["settings"]["num_kv_pairs"])].append(r["accuracy"])
    order = list(dict.fromkeys(r["mixer"] for r in runs))
    return {m: dict(table[m]) for m in order}


def recall_capacity_figure(ns: Sequence[int], errors: Sequence[float], *, d: int,
                           title: str = "Reading one pair back out of S = Σ k_i v_iᵀ", height: int = 400):
    """Relative readout error ‖Sᵀk_j − v_j‖/‖v_j‖ against the number of stored pairs n, with n = d marked.

    For random unit keys the interference term Σ_{i≠j}(k_iᵀk_j)v_i has relative size ≈ √((n − 1)/d)
    (drawn grey), so the error passes 1 — noise as large as the signal — near n = d.
    """
    if len(ns) != len(errors) or not len(ns):
        raise ValueError(f"ns and errors must be non-empty and equally long; got {len(ns)} and {len(errors)}")
    fig = subplots(1, 1)
    fig.add_trace(go.Scatter(x=list(ns), y=list(errors), mode="lines+markers", name="measured (mean over j)",
                             line=dict(color=colour("linear")), marker=dict(color=colour("linear"))))
    fig.add_trace(go.Scatter(x=list(ns), y=[((n - 1) / d) ** 0.5 for n in ns], mode="lines",
                             name="√((n − 1)/d)", line=dict(color=THEORY_COLOUR, dash="dash")))
    fig.add_vline(x=d, line=dict(color=OKABE_ITO["black"], dash="dot", width=1))
    fig.update_xaxes(type="log", title_text="stored pairs n")
    fig.update_yaxes(title_text="relative readout error")
    fig.update_layout(font=FONT)
    return finish(fig, f"{title} (d = {d})", height)


def recall_accuracy_figure(runs, *, title: str = "MQAR accuracy vs number of key–value pairs",
                           height: int = 420) -> go.Figure:
    """Test accuracy vs KV pairs, one line per mixer through the mean over seeds; a bar spans min to max."""
    table = _group(_check_runs(runs))
    palette = _palette(table)
    fig = subplots(1, 1)
    for i, (mixer, cells) in enumerate(table.items()):
        keys = sorted(cells, key=lambda k: k[1])
        first = [sum(cells[k]) / len(cells[k]) for k in keys]
        lo = [first[j] - min(cells[k]) for j, k in enumerate(keys)]
        hi = [max(cells[k]) - first[j] for j, k in enumerate(keys)]
        spread = any(len(cells[k]) > 1 for k in keys)
        fig.add_trace(go.Scatter(
            x=[k[1] for k in keys], y=first, mode="lines+markers", name=mixer_label(mixer),
            line=dict(color=palette[mixer].colour, dash=palette[mixer].dash),
            marker=dict(color=palette[mixer].colour, symbol=palette[mixer].marker, size=9),
            error_y=dict(type="data", symmetric=False, array=hi, arrayminus=lo, visible=spread),
            customdata=[f"L = {k[0]}, seeds: {', '.join(f'{a:.3f}' for a in cells[k])}" for k in keys],
            hovertemplate=f"{mixer}<br>%{{x}} pairs, %{{customdata}}<extra></extra>"))
    lengths = ", ".join(str(L) for L in sorted({k[0] for c in table.values() for k in c}))
    fig.update_xaxes(type="log", tickvals=sorted({k[1] for c in table.values() for k in c}),
                     title_text=f"key–value pairs (sequence length {lengths}; mean over seeds, bars: min–max)")
    fig.update_yaxes(range=[-0.03, 1.03], title_text="test accuracy (scored positions)")
    fig.update_layout(font=FONT)
    return finish(fig, title, height)


def recall_frontier_figure(runs, *, title: str = "Recall vs the memory a decoder keeps", height: int = 420):
    """Accuracy vs state bytes (log), one panel per (sequence length, pairs), one marker per mixer (seed 0)."""
    runs = _check_runs(runs)
    table = _group(runs)
    size = {(r["mixer"], r["settings"]["seq_len"], r["settings"]["num_kv_pairs"]): r["state_bytes"] for r in runs}
    settings = sorted({k for c in table.values() for k in c}, key=lambda k: k[1])
    palette = distinct_styles(table, markers_only=True)  # points only: the markers alone tell mixers apart
    fig = subplots(1, len(settings), [f"L = {L}, {n} pairs" for L, n in settings], shared_yaxes=True)
    for i, (mixer, cells) in enumerate(table.items()):
        for col, key in enumerate(settings, start=1):
            if key not in cells:
                continue
            fig.add_trace(go.Scatter(
                x=[size[(mixer, *key)] / 1024], y=[cells[key][0]], mode="markers",
                name=mixer_label(mixer), legendgroup=mixer, showlegend=col == 1,
                marker=dict(color=palette[mixer].colour, symbol=palette[mixer].marker, size=11),
                hovertemplate=f"{mixer}<br>%{{x:.1f}} KiB<br>accuracy %{{y:.3f}}<extra></extra>"), row=1, col=col)
        fig.update_xaxes(type="log", tickvals=[4, 8, 16, 32, 64, 128], title_text="state bytes (KiB, float32)")
    fig.update_yaxes(range=[-0.03, 1.03])
    fig.update_yaxes(title_text="test accuracy", row=1, col=1)
    fig.update_layout(font=FONT)
    return finish(fig, title, height)


def recall_pairs_figure(runs, *, title: str = "MQAR accuracy as the pairs pass the key width",
                        height: int = 420) -> go.Figure:
    """Accuracy against n / d_k (pairs over key width, log x), mean over seeds with min–max bars, n = d_k marked.

    ``runs``: run_mqar records that carry ``settings["d_key"]`` (the capacity sweep of scripts/recall_sweep.py).
    """
    runs = _check_runs(runs)
    if any("d_key" not in r["settings"] for r in runs):
        raise ValueError("each run must carry settings['d_key'] (the key width); re-run it with run_mqar(d_key=...)")
    cells: dict = defaultdict(lambda: defaultdict(list))
    for r in runs:
        cells[r["mixer"]][r["settings"]["num_kv_pairs"] / r["settings"]["d_key"]].append(r["accuracy"])
    fig = subplots(1, 1)
    palette = _palette(dict.fromkeys(r["mixer"] for r in runs))
    for i, mixer in enumerate(dict.fromkeys(r["mixer"] for r in runs)):
        xs = sorted(cells[mixer])
        mean = [sum(cells[mixer][x]) / len(cells[mixer][x]) for x in xs]
        fig.add_trace(go.Scatter(
            x=xs, y=mean, mode="lines+markers", name=mixer_label(mixer),
            line=dict(color=palette[mixer].colour, dash=palette[mixer].dash),
            marker=dict(color=palette[mixer].colour, symbol=palette[mixer].marker, size=9),
            error_y=dict(type="data", symmetric=False, visible=True,
                         array=[max(cells[mixer][x]) - m for x, m in zip(xs, mean)],
                         arrayminus=[m - min(cells[mixer][x]) for x, m in zip(xs, mean)]),
            customdata=[", ".join(f"{a:.3f}" for a in cells[mixer][x]) for x in xs],
            hovertemplate=f"{mixer}<br>n/d_k = %{{x}}<br>mean %{{y:.3f}}; seeds %{{customdata}}<extra></extra>"))
    fig.add_vline(x=1, line=dict(color=OKABE_ITO["black"], dash="dot", width=1))
    fig.update_xaxes(type="log", tickvals=sorted({x for c in cells.values() for x in c}),
                     title_text="pairs n ÷ key width d_k (mean over seeds, bars: min–max)")
    fig.update_yaxes(range=[-0.03, 1.03], title_text="test accuracy (scored positions)")
    fig.update_layout(font=FONT)
    return finish(fig, title, height)
