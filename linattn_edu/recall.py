"""Multi-query associative recall (MQAR): what a fixed-size state costs.

A sequence first lists n key–value pairs ``k1 v1 … kn vn``; then each key is asked again once, at a
gap drawn from a power law (queries cluster soon after the context). After reading a queried key the
model must output the value that followed it earlier (Zoology, Arora et al. 2023; Based, 2024).
Softmax attention can look the pair up in its KV cache; linear attention must read it out of one
d_φ × d_v state S = Σ_i φ(k_i) v_iᵀ, where the pairs interfere once n grows past what S can hold.

* :func:`mqar` — the seeded data generator (inputs, labels with -100 where not scored).
* :class:`RecallModel` — 2 layers, pre-norm residual: a short causal depthwise conv block
  (BaseConv, ``proj(u) ⊙ conv_k3(u)``) then a sequence mixer; tied embeddings, N(0, 0.02) init.
* :func:`run_mqar` — train one mixer and return test accuracy, seconds, state bytes, loss curve.

Every mixer calls the library's own attention functions (softmax_attention, linear_attention,
sliding_window_attention, window_linear_attention, gated_linear_attention, delta_rule_attention).
"""
from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_bool, check_number, check_positive_int
from .delta import delta_rule_attention
from .gated import gated_linear_attention
from .window import window_linear_attention
from .linear import linear_attention
from .softmax import softmax_attention
from .window import sliding_window_attention

__all__ = ["mqar", "RecallModel", "run_mqar", "MIXERS", "state_bytes", "readout_error", "IGNORE_INDEX", "POWER_A"]

IGNORE_INDEX = -100  # label of every position that is not scored (PyTorch's cross_entropy default)
POWER_A = 0.01  # p(gap = i) ∝ (i + 1)^(a − 1): nearly 1/(i + 1), queries cluster early
BYTES_PER_FLOAT = 4  # the states below are counted in float32
TAYLOR_DIM = 16  # Based's small q/k projection before the Taylor map: 1 + 16 + 16² = 273 features
WINDOW = 16  # the window mixer's (and the hybrid's) band width w


# The data ---------------------------------------------------------------------------------------
def _check_sizes(seq_len, num_kv_pairs, vocab_size):
    check_positive_int(seq_len, "seq_len")
    check_positive_int(num_kv_pairs, "num_kv_pairs")
    check_positive_int(vocab_size, "vocab_size")
    if vocab_size <= seq_len:
        raise ValueError(f"MQAR needs vocab_size > seq_len; got vocab_size={vocab_size}, seq_len={seq_len}")
    if 4 * num_kv_pairs > seq_len:
        raise ValueError(
            f"MQAR needs 4 · num_kv_pairs <= seq_len (2n context tokens and n queries at even gaps); "
            f"got num_kv_pairs={num_kv_pairs}, seq_len={seq_len}"
        )


def _sample_without_replacement(weights: torch.Tensor, rows: int, k: int, g: torch.Generator):
    """k distinct indices per row, drawn with the given (unnormalised) weights: (rows, k)."""
    return torch.multinomial(weights.expand(rows, -1), k, replacement=False, generator=g)  # (rows, k)


def mqar(num_examples, *, seq_len=64, num_kv_pairs=8, vocab_size=256, seed=0):
    """MQAR examples: inputs (n, L) and next-token labels (n, L), -100 where not scored.

    Keys are drawn without replacement from [1, V/2), values from [V/2, V) (per example). Tokens
    0 … 2n−1 are the context k1 v1 … kn vn. The rest of the sequence (the query region, position
    2n + 2·gap for gap = 0, 1, …) holds each key once, at gaps drawn without replacement with
    p(gap = i) ∝ (i + 1)^(a − 1), a = 0.01; every other slot is 0.

    Labels follow next-token prediction: ``labels[b, t]`` is the target of the model's output at t,
    the token that should come after t. Only the output at a queried key is scored, and its label is
    the value that followed that key in the context; every other label is -100.

    Needs vocab_size > seq_len and 4 · num_kv_pairs <= seq_len. Same seed → same tensors.
    """
    check_positive_int(num_examples, "num_examples")
    _check_sizes(seq_len, num_kv_pairs, vocab_size)
    check_number(seed, "seed", integer=True, minimum=0)
    n, half = num_kv_pairs, vocab_size // 2
    g = torch.Generator().manual_seed(seed)
    keys = _sample_without_replacement(torch.ones(half - 1), num_examples, n, g) + 1  # (B, n) in [1, V/2)
    values = _sample_without_replacement(torch.ones(vocab_size - half), num_examples, n, g) + half  # (B, n)
    space = (seq_len - 2 * n) // 2  # query slots at even offsets of the query region
    p = (torch.arange(space, dtype=torch.float64) + 1) ** (POWER_A - 1)  # (space,)
    gaps = _sample_without_replacement(p, num_examples, n, g)  # (B, n)

    inputs = torch.zeros(num_examples, seq_len, dtype=torch.long)  # (B, L)
    inputs[:, 0:2 * n:2], inputs[:, 1:2 * n:2] = keys, values  # context k1 v1 … kn vn
    query_pos = 2 * n + 2 * gaps  # (B, n): where key j is asked again
    inputs.scatter_(1, query_pos, keys)  # (B, L)
    labels = torch.full_like(inputs, IGNORE_INDEX)  # (B, L)
    labels.scatter_(1, query_pos, values)  # the output at a queried key must be its value
    return inputs, labels


def readout_error(num_pairs, d, *, d_v=None, trials=8, seed=0):
    """Store n random pairs in S = Σ_i k_i v_iᵀ (unit keys), read each back with Sᵀk_j: mean ‖Sᵀk_j − v_j‖/‖v_j‖.

    Sᵀk_j = v_j (k_jᵀk_j = 1) + Σ_{i≠j} (k_iᵀk_j) v_i: the second term is interference; for random unit
    keys each k_iᵀk_j has variance 1/d, so the error grows like √((n − 1)/d) and reaches 1 near n = d.
    Keys (n, d) and values (n, d_v) ~ N(0, 1), float64, averaged over ``trials`` draws.
    """
    check_positive_int(num_pairs, "num_pairs")
    check_positive_int(d, "d")
    d_v = d if d_v is None else d_v
    check_positive_int(d_v, "d_v")
    check_positive_int(trials, "trials")
    g = torch.Generator().manual_seed(seed)
    k = F.normalize(torch.randn(trials, num_pairs, d, generator=g, dtype=torch.float64), dim=-1)  # (T, n, d)
    v = torch.randn(trials, num_pairs, d_v, generator=g, dtype=torch.float64)  # (T, n, d_v)
    s = k.transpose(-2, -1) @ v  # (T, d, n) @ (T, n, d_v) -> (T, d, d_v)
    read = k @ s  # (T, n, d) @ (T, d, d_v) -> (T, n, d_v): row j is Sᵀk_j
    return ((read - v).norm(dim=-1) / v.norm(dim=-1)).mean().item()


# The model --------------------------------------------------------------------------------------
class BaseConv(nn.Module):
    """Zoology's BaseConv: proj(u) ⊙ conv_k3(u), a causal depthwise conv (kernel 3) gated by a linear map.

    (B, L, d) -> (B, L, d); position t sees only u_{t−2}, u_{t−1}, u_t.
    """

    def __init__(self, d_model: int, kernel_size: int = 3):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)
        self.conv = nn.Conv1d(d_model, d_model, kernel_size, groups=d_model, padding=kernel_size - 1)

    def forward(self, u):
        conv = self.conv(u.transpose(1, 2))[..., : u.shape[1]].transpose(1, 2)  # (B, d, L + k − 1) -> (B, L, d)
        return self.proj(u) * conv  # (B, L, d)


class Mixer(nn.Module):
    """One attention head over the sequence, through the library's function for ``kind``.

    (B, L, d) -> (B, L, d). q/k are d-dimensional (16 for "taylor" and "hybrid", whose Taylor map
    then has 1 + 16 + 16² = 273 features, as in Based); v and the output are d-dimensional.
    """

    def __init__(self, kind: str, d_model: int, window: int = WINDOW):
        super().__init__()
        self.kind, self.window = kind, window
        d_qk = TAYLOR_DIM if kind in ("taylor", "hybrid") else d_model
        self.qkv = nn.Linear(d_model, 2 * d_qk + d_model)
        self.out = nn.Linear(d_model, d_model)
        self.d_qk = d_qk
        if kind in ("delta", "gla"):  # β_t (delta: write strength) or g_t (gla: forget gate), per token
            self.gate = nn.Linear(d_model, 1)

    def forward(self, x):
        q, k, v = self.qkv(x).split([self.d_qk, self.d_qk, x.shape[-1]], dim=-1)  # (B, L, d_qk) ×2, (B, L, d)
        return self.out(_MIXER_FNS[self.kind](self, x, q, k, v))  # (B, L, d)


def _softmax(m, x, q, k, v):
    return softmax_attention(q, k, v, causal=True)  # (B, L, d)


def _linear(m, x, q, k, v):
    return linear_attention(q, k, v, "elu+1", causal=True)  # (B, L, d)


def _taylor(m, x, q, k, v):
    return linear_attention(q, k, v, "taylor", causal=True)  # (B, L, 16) -> 273 features -> (B, L, d)


def _window(m, x, q, k, v):
    return sliding_window_attention(q, k, v, window=m.window, causal=True)  # (B, L, d)


def _hybrid(m, x, q, k, v):
    """Based's idea in one head: exact softmax over a window + Taylor linear attention over everything."""
    return window_linear_attention(q, k, v, window=m.window, feature_map="taylor")  # (B, L, 16) -> (B, L, d)


def _gla(m, x, q, k, v):
    """Gated linear attention with one data-dependent forget gate per token (FLA's "simple GLA"):

    S_t = exp(g_t) S_{t−1} + k_t v_tᵀ, g_t = logsigmoid(w·x_t + b)/16 (GLA's temperature 16).
    (A gate per key channel, as in GLA proper, makes the library's chunkwise form ~7× slower at the lab's
    shape: forward+backward at B = L = d = 64 took 36 ms vs 5 ms on a 2-core CPU.)
    """
    log_g = F.logsigmoid(m.gate(x)).squeeze(-1) / 16  # (B, L), entries < 0
    return gated_linear_attention(q * m.d_qk ** -0.5, k, v, log_g)  # (B, L, d)


def _delta(m, x, q, k, v):
    """DeltaNet: S_t = (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ with unit keys (and unit queries)."""
    beta = torch.sigmoid(m.gate(x)).squeeze(-1)  # (B, L) in (0, 1)
    return delta_rule_attention(F.normalize(q, dim=-1), k, v, beta, normalize_keys=True)  # (B, L, d)


_MIXER_FNS = {"softmax": _softmax, "linear": _linear, "taylor": _taylor, "window": _window,
              "hybrid": _hybrid, "gla": _gla, "delta": _delta}
MIXERS = tuple(_MIXER_FNS)


def state_bytes(mixer: str, *, seq_len: int, d_model: int, window: int = WINDOW) -> int:
    """Bytes (float32) a decoder keeps per sequence for the mixer layer after ``seq_len`` tokens.

    softmax: KV cache 2·L·d; window: 2·w·d; linear: m·d_v (+ m for z), m = d (elu+1) or 273 (Taylor);
    hybrid: the window's w 16-dim keys and d-dim values + the Taylor state; gla / delta: one d × d_v matrix.
    """
    _check_mixer(mixer)
    d, m_taylor = d_model, 1 + TAYLOR_DIM + TAYLOR_DIM ** 2
    floats = {
        "softmax": 2 * seq_len * d, "window": 2 * window * d,
        "linear": d * d + d, "taylor": m_taylor * d + m_taylor,
        "hybrid": window * (TAYLOR_DIM + d) + m_taylor * d + m_taylor, "gla": d * d, "delta": d * d,
    }[mixer]
    return floats * BYTES_PER_FLOAT


def _check_mixer(mixer):
    if not isinstance(mixer, str):
        raise TypeError(f"mixer must be a string, one of {MIXERS}; got {type(mixer).__name__}")
    if mixer not in MIXERS:
        raise ValueError(f"unknown mixer {mixer!r}; expected one of {MIXERS}")


class RecallModel(nn.Module):
    """Embedding → [conv block, mixer block] (pre-norm residual) → norm → tied head: (B, L) -> (B, L, V)."""

    def __init__(self, mixer: str, *, vocab_size: int = 256, d_model: int = 64, window: int = WINDOW):
        super().__init__()
        _check_mixer(mixer)
        check_positive_int(vocab_size, "vocab_size")
        check_positive_int(d_model, "d_model")
        self.embed = nn.Embedding(vocab_size, d_model)
        nn.init.normal_(self.embed.weight, std=0.02)  # N(0, 1) with a tied head stalls at chance
        self.blocks = nn.ModuleList([BaseConv(d_model), Mixer(mixer, d_model, window)])
        self.norms = nn.ModuleList([nn.LayerNorm(d_model) for _ in range(3)])

    def forward(self, tokens):
        x = self.embed(tokens)  # (B, L) -> (B, L, d)
        for norm, block in zip(self.norms, self.blocks):
            x = x + block(norm(x))  # (B, L, d)
        return self.norms[-1](x) @ self.embed.weight.T  # (B, L, d) @ (d, V) -> (B, L, V)


# Training ---------------------------------------------------------------------------------------
def _accuracy(model, inputs, labels, batch_size):
    """Fraction of scored positions (label != -100) whose argmax equals the label."""
    right = total = 0
    model.eval()
    with torch.no_grad():
        for i in range(0, len(inputs), batch_size):
            x, y = inputs[i:i + batch_size], labels[i:i + batch_size]  # (b, L) ×2
            scored = y != IGNORE_INDEX  # (b, L)
            right += (model(x).argmax(-1)[scored] == y[scored]).sum().item()  # (b, L, V) -> (b, L)
            total += scored.sum().item()
    model.train()
    return right / total


def _check_run_args(mixer, num_kv_pairs, seq_len, vocab_size, d_model, train_examples, test_examples,
                    epochs, seed, progress, batch_size, lr, window):
    _check_mixer(mixer)
    _check_sizes(seq_len, num_kv_pairs, vocab_size)
    for value, name in [(d_model, "d_model"), (train_examples, "train_examples"), (window, "window"),
                        (test_examples, "test_examples"), (epochs, "epochs"), (batch_size, "batch_size")]:
        check_positive_int(value, name)
    check_number(seed, "seed", integer=True, minimum=0)
    check_number(lr, "lr", minimum=0, exclusive_minimum=True)
    check_bool(progress, "progress")


def run_mqar(mixer, *, num_kv_pairs=8, seq_len=64, vocab_size=256, d_model=64, train_examples=20000,
             test_examples=1000, epochs=6, seed=0, progress=True, device=None, batch_size=64, lr=3e-3,
             weight_decay=0.1, window=WINDOW):
    """Train a 2-layer recall model with ``mixer`` on MQAR and measure test accuracy.

    Training: AdamW (lr 3e-3, weight decay 0.1) with a one-cycle schedule (warm up over the first
    30 % of steps to lr, then cosine down), batch 64, cross-entropy on the scored positions only.
    Seeds: train data ``seed``, test data ``seed + 1`` (independent draws), model init and batch order
    ``seed``. ``device`` defaults to CUDA when present, else CPU. ``progress`` shows a tqdm bar (the
    [bench] extra) with the loss and test accuracy after each epoch.

    Returns a dict: accuracy (scored test positions answered right), seconds (training + test),
    state_bytes (see :func:`state_bytes`), steps, losses (mean training loss per epoch), epoch_accuracy
    (test accuracy after each epoch), params, device, and the settings.
    """
    _check_run_args(mixer, num_kv_pairs, seq_len, vocab_size, d_model, train_examples, test_examples,
                    epochs, seed, progress, batch_size, lr, window)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    sizes = dict(seq_len=seq_len, num_kv_pairs=num_kv_pairs, vocab_size=vocab_size)
    x_train, y_train = (t.to(device) for t in mqar(train_examples, seed=seed, **sizes))  # (n, L) ×2
    x_test, y_test = (t.to(device) for t in mqar(test_examples, seed=seed + 1, **sizes))  # (n, L) ×2
    torch.manual_seed(seed)
    model = RecallModel(mixer, vocab_size=vocab_size, d_model=d_model, window=window).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(train_examples / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
    order = torch.Generator().manual_seed(seed)
    losses, epoch_acc, start = [], [], time.perf_counter()
    bar = _progress(epochs * steps_per_epoch, f"{mixer} n={num_kv_pairs}", progress)
    for _ in range(epochs):
        perm, total = torch.randperm(train_examples, generator=order).to(device), 0.0
        for i in range(0, train_examples, batch_size):
            idx = perm[i:i + batch_size]
            logits = model(x_train[idx])  # (b, L, V)
            loss = F.cross_entropy(logits.flatten(0, 1), y_train[idx].flatten(), ignore_index=IGNORE_INDEX)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            bar.update(1)
        losses.append(total / train_examples)
        epoch_acc.append(_accuracy(model, x_test, y_test, 4 * batch_size))
        bar.set_postfix(loss=f"{losses[-1]:.3f}", acc=f"{epoch_acc[-1]:.3f}")
    bar.close()
    return {
        "mixer": mixer, "accuracy": epoch_acc[-1], "seconds": time.perf_counter() - start,
        "state_bytes": state_bytes(mixer, seq_len=seq_len, d_model=d_model, window=window),
        "steps": epochs * steps_per_epoch, "losses": losses, "epoch_accuracy": epoch_acc,
        "params": sum(p.numel() for p in model.parameters()), "device": str(device),
        "settings": dict(sizes, d_model=d_model, train_examples=train_examples, test_examples=test_examples,
                         epochs=epochs, seed=seed, batch_size=batch_size, lr=lr,
                         weight_decay=weight_decay, window=window),
    }


class _NoBar:
    """The silent stand-in for a tqdm bar (progress=False, or tqdm not installed)."""

    def update(self, n=1):
        pass

    def set_postfix(self, **kwargs):
        pass

    def close(self):
        pass


def _progress(total, desc, enabled):
    """A tqdm bar (auto: notebook or terminal; tqdm comes with the [bench] extra), else a silent stand-in."""
    if not enabled:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the core needs only torch: no bar, same results
        return _NoBar()
    return tqdm(total=total, desc=desc, leave=False)
