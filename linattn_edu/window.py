"""Sliding-window attention with optional global tokens (Longformer), O(N·w) memory.

Query i attends, with softmax, to
  * the band: keys i − w < j <= i (causal) or |i − j| < w (non-causal);
  * global tokens g: every query sees them (causal: if g <= i), and a global
    query sees every key (causal: every j <= g).

Instead of an N×N mask, queries are cut into blocks of w; block b only needs
keys from blocks b−1, b (and b+1 when non-causal), so scores are (N/w, w, 3w):
O(N·w) memory, like Longformer's "sliding chunks".
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ._checks import (check_bool, check_dense_budget, check_initial_state, check_number, check_positive_int, check_qkv,
                      check_tensor, compute_dtype, weighted_sum)
from .chunked import chunkwise_form
from .feature_maps import featurize, resolve_feature_map
from .softmax import _check_scale, softmax_attention, stable_softmax

__all__ = ["sliding_window_attention", "window_mask", "window_linear_attention"]


def _check_globals(global_tokens, n: int) -> list[int]:
    try:
        toks = list(global_tokens)
    except TypeError:
        raise TypeError(f"global_tokens must be a sequence of ints; got {type(global_tokens).__name__}") from None
    for g in toks:
        if isinstance(g, bool) or not isinstance(g, int):
            raise TypeError(f"global_tokens must be ints; got {g!r} ({type(g).__name__})")
        if not 0 <= g < n:
            raise ValueError(f"global_tokens must be positions in [0, N) = [0, {n}); got {g}")
    return sorted(set(toks))


def window_mask(n, window, global_tokens=(), causal=False, device=None) -> torch.Tensor:
    """Dense boolean (n, n) mask of who attends to whom (True = attend); for pictures and tests."""
    check_positive_int(n, "n")
    check_positive_int(window, "window")
    check_bool(causal, "causal")
    globals_ = _check_globals(global_tokens, n)
    check_dense_budget((n, n), torch.bool, "window_mask's (N, N) mask", "use sliding_window_attention")
    i = torch.arange(n, device=device).unsqueeze(-1)  # (n, 1) query positions
    j = torch.arange(n, device=device).unsqueeze(0)  # (1, n) key positions
    band = (i - j < window) & (j - i < (1 if causal else window))  # (n, n)
    if globals_:
        g = torch.zeros(n, dtype=torch.bool, device=device)
        g[globals_] = True
        band = band | g.unsqueeze(0) | g.unsqueeze(-1)  # (n, n): global columns and rows
    return band & (j <= i) if causal else band  # (n, n)


def _blocks_with_context(x: torch.Tensor, w: int, causal: bool) -> torch.Tensor:
    """Keys/values each query block needs: (..., N_pad, e) -> (..., n_blocks, 2w or 3w, e)."""
    xb = x.unflatten(-2, (x.shape[-2] // w, w))  # (..., nb, w, e)
    xp = F.pad(xb, (0, 0, 0, 0, 1, 0 if causal else 1))  # (..., nb + 1 (+1), w, e): zero blocks at the ends
    nb = xb.shape[-3]
    parts = [xp[..., 0:nb, :, :], xp[..., 1:nb + 1, :, :]]  # previous block, own block
    if not causal:
        parts.append(xp[..., 2:nb + 2, :, :])  # next block
    return torch.cat(parts, dim=-2)  # (..., nb, 2w | 3w, e)


def _band_allowed(n: int, n_pad: int, w: int, causal: bool, is_global: torch.Tensor) -> torch.Tensor:
    """Which (query, context key) pairs are in the band: (nb, w, 2w | 3w) bool."""
    nb, width = n_pad // w, (2 if causal else 3) * w
    qpos = torch.arange(n_pad, device=is_global.device).view(nb, w, 1)  # (nb, w, 1)
    kpos = (torch.arange(nb, device=is_global.device).view(nb, 1, 1) - 1) * w + torch.arange(
        width, device=is_global.device).view(1, 1, width)  # (nb, 1, width)
    inside = (kpos >= 0) & (kpos < n)  # (nb, 1, width)
    band = (qpos - kpos < w) & (kpos - qpos < (1 if causal else w))  # (nb, w, width)
    key_global = is_global[kpos.clamp(0, n - 1)]  # (nb, 1, width): counted in the global columns
    return inside & band & ~key_global  # (nb, w, width)


def sliding_window_attention(q, k, v, *, window, global_tokens=(), causal=False, scale=None,
                             return_weights=False):
    """Softmax attention restricted to a band of width ``window`` plus global tokens.

    Args:
        q, k: (..., N, d); v: (..., N, d_v) (self-attention: one N).
        window: w >= 1; causal band i − w < j <= i, non-causal |i − j| < w.
        global_tokens: positions that attend to / are attended by all (Longformer's [CLS]).
        scale: score scale, default 1/√d.
        return_weights: also return the dense (..., N, N) weights (guarded; small N only).

    Memory O(N·w + N·G) for G global tokens; equals masked softmax with ``window_mask``.
    A window wider than N is the same as w = N (full attention). A NaN at token t reaches only the
    rows whose band (or global columns) contain t: masks are masked_fill, and a weight of 0 never
    multiplies a NaN value.
    """
    check_bool(causal, "causal")
    check_bool(return_weights, "return_weights")
    check_qkv(q, k, v, causal=True)  # needs N == M as self-attention
    check_positive_int(window, "window")
    n = q.shape[-2]
    w = min(window, n)  # a band wider than the sequence is the whole sequence
    globals_ = _check_globals(global_tokens, n)
    scale = _check_scale(scale, q.shape[-1])
    work = compute_dtype(q.dtype)
    qw, kw, vw = q.to(work), k.to(work), v.to(work)
    n_pad = -(-n // w) * w
    pad = lambda x: F.pad(x, (0, 0, 0, n_pad - n))  # noqa: E731  (..., N_pad, e)
    is_global = torch.zeros(n, dtype=torch.bool, device=q.device)
    is_global[globals_] = True

    qb = pad(qw).unflatten(-2, (n_pad // w, w))  # (..., nb, w, d)
    kc = _blocks_with_context(pad(kw), w, causal)  # (..., nb, 2w|3w, d)
    vc = _blocks_with_context(pad(vw), w, causal)  # (..., nb, 2w|3w, d_v)
    band = qb @ kc.transpose(-2, -1) * scale  # (..., nb, w, d) @ (..., nb, d, 2w|3w) -> (..., nb, w, 2w|3w)
    band = band.masked_fill(~_band_allowed(n, n_pad, w, causal, is_global), float("-inf"))
    band = band.flatten(-3, -2)  # (..., N_pad, 2w|3w)

    kg, vg = kw[..., globals_, :], vw[..., globals_, :]  # (..., G, d), (..., G, d_v)
    glob = pad(qw) @ kg.transpose(-2, -1) * scale  # (..., N_pad, d) @ (..., d, G) -> (..., N_pad, G)
    if causal:
        qpos = torch.arange(n_pad, device=q.device).unsqueeze(-1)  # (N_pad, 1)
        gpos = torch.tensor(globals_, device=q.device, dtype=torch.long).unsqueeze(0)  # (1, G)
        glob = glob.masked_fill(gpos > qpos, float("-inf"))  # (..., N_pad, G)

    p = stable_softmax(torch.cat([band, glob], dim=-1))  # (..., N_pad, 2w|3w + G)
    pb, pg = p[..., : band.shape[-1]], p[..., band.shape[-1]:]
    out = weighted_sum(pb.unflatten(-2, (n_pad // w, w)), vc).flatten(-3, -2)  # (..., nb, w, 2w|3w) @ (..., nb, 2w|3w, d_v) -> (..., N_pad, d_v)
    out = (out + weighted_sum(pg, vg))[..., :n, :]  # (..., N_pad, G) @ (..., G, d_v) -> (..., N, d_v)
    if globals_:  # global queries see every (allowed) key: G full rows, O(N·G)
        full = torch.ones(len(globals_), n, dtype=torch.bool, device=q.device)  # (G, N)
        if causal:
            full = full & (torch.arange(n, device=q.device) <= gpos.T)  # (G, N)
        out[..., globals_, :] = softmax_attention(qw[..., globals_, :], kw, vw, mask=full, scale=scale)
    out = out.to(q.dtype)
    if not return_weights:
        return out
    mask = window_mask(n, w, globals_, causal, device=q.device)  # (N, N)
    _, weights = softmax_attention(q, k, v, mask=mask, scale=scale, return_weights=True)
    return out, weights


# A window + linear hybrid ---------------------------------------------------------------------------
def window_linear_attention(q, k, v, *, window, feature_map="taylor", scale=None, chunk_size=64, eps=1e-6,
                            initial_state=None, return_state=False):
    """Causal hybrid (Based-style): sliding-window softmax (width ``window``) + normalised causal linear attention.

    Linear attention keeps a fixed-size summary of the whole past but blurs exact recall;
    sliding-window softmax is exact but forgets everything older than w tokens. Based uses both:
    a Taylor-feature linear attention (φ(q)ᵀφ(k) = 1 + s + s²/2 ≈ exp(s), s = qᵀk/√d) for the
    long range, and exact softmax attention over a short sliding window for the local detail.

    Definition used here (the two branches read the same q, k, v and their outputs add):

        out_i =  Σ_{i−w<j<=i} softmax_j(q_iᵀk_j/√d) v_j                       window branch
               + Σ_{j<=i} φ(q_i)ᵀφ(k_j) v_j / (Σ_{j<=i} φ(q_i)ᵀφ(k_j) + eps)    linear branch

    Each branch is normalised over its own keys (they do not share a denominator), so the sum is
    two convex combinations of values added together. Based (Arora et al., 2024) stacks its linear
    and window layers in depth, each reading the residual stream the layer before wrote; here the
    two are parallel branches of one layer reading the same input — a simpler hybrid, not the same
    computation as two stacked layers. Memory per token at decode: the window's w keys and values
    plus the linear state (d_φ·d_v + d_φ) — constant in the sequence length.

    Args:
        q, k: (..., N, d); v: (..., N, d_v).
        window: w >= 1, the softmax band i − w < j <= i.
        feature_map: φ of the linear branch ("taylor" as in Based, or any positive-kernel map).
        scale: the window's score scale, default 1/√d.
        chunk_size, eps: the linear branch's chunkwise form.
        initial_state: what return_state=True returned for the tokens before: (S (..., d_φ, d_v), z (..., d_φ),
            K_tail (..., m, d), V_tail (..., m, d_v)) — the linear state and the last m <= w − 1 keys and values
            the window still sees. Its size never grows with the sequence.
        return_state: also return that state after these tokens.

    Returns (..., N, d_v) = sliding_window_attention(..., causal=True) + linear_attention(..., causal=True),
    or (out, state).
    """
    check_bool(return_state, "return_state")
    check_positive_int(window, "window")
    check_qkv(q, k, v, causal=True)
    phi = resolve_feature_map(feature_map, q.shape[-1], normalize=True)
    check_positive_int(chunk_size, "chunk_size")
    check_number(eps, "eps", minimum=0)
    s0, k_prev, v_prev = _check_hybrid_state(initial_state, q, v, phi.d_out(q.shape[-1]), window)
    m = 0 if k_prev is None else k_prev.shape[-2]
    keys = k if m == 0 else torch.cat([k_prev.to(k.dtype), k], dim=-2)  # (..., m + N, d)
    values = v if m == 0 else torch.cat([v_prev.to(v.dtype), v], dim=-2)  # (..., m + N, d_v)
    queries = q if m == 0 else torch.cat([q.new_zeros(*q.shape[:-2], m, q.shape[-1]), q], dim=-2)  # rows < m unused
    local = sliding_window_attention(queries, keys, values, window=window, causal=True, scale=scale)[..., m:, :]
    fq, fk = featurize(q, k, phi)  # (..., N, d_φ)
    s0 = None if s0 is None else tuple(x.to(fq.dtype) for x in s0)
    far, (s, z) = chunkwise_form(fq, fk, v.to(fq.dtype), chunk_size=chunk_size, eps=eps, initial_state=s0)
    out = local + far.to(q.dtype)  # (..., N, d_v)
    if not return_state:
        return out
    tail = max(window - 1, 0)
    return out, (s, z, keys[..., keys.shape[-2] - min(tail, keys.shape[-2]):, :],
                 values[..., values.shape[-2] - min(tail, values.shape[-2]):, :])


def _check_hybrid_state(state, q, v, d_phi: int, window: int):
    """window_linear_attention's initial_state: None, or (S, z, K_tail, V_tail) with at most w − 1 tail tokens."""
    if state is None:
        return None, None, None
    if not (isinstance(state, (tuple, list)) and len(state) == 4):
        raise TypeError("initial_state must be a tuple (S, z, K_tail, V_tail) (what return_state=True returns); "
                        f"got {type(state).__name__}")
    lead = q.shape[:-2]
    s0 = check_initial_state(tuple(state[:2]), {"S": (*lead, d_phi, v.shape[-1]), "z": (*lead, d_phi)}, q.device)
    k_prev, v_prev = state[2], state[3]
    for x, name, dim in ((k_prev, "K_tail", q.shape[-1]), (v_prev, "V_tail", v.shape[-1])):
        check_tensor(x, f"initial_state's {name}")
        if tuple(x.shape[:-2]) != tuple(lead) or x.shape[-1] != dim or x.shape[-2] > max(window - 1, 0):
            raise ValueError(f"initial_state's {name} must be (*{tuple(lead)}, m, {dim}) with m <= window − 1 = "
                             f"{max(window - 1, 0)}; got {tuple(x.shape)}")
        if x.device != q.device:
            raise ValueError(f"initial_state's {name} must be on {q.device}; got {x.device}")
    if k_prev.shape[-2] != v_prev.shape[-2]:
        raise ValueError(f"initial_state's K_tail and V_tail must hold as many tokens; got {k_prev.shape[-2]} and "
                         f"{v_prev.shape[-2]}")
    return s0, k_prev, v_prev
