"""Checkers for notebook 08 (how the field fixed linear attention): the interference term, the decay mask,
the gated step, the delta-rule step and one chunk of the delta rule's WY form."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..delta import delta_step
from ..gated import decay_mask, gated_step
from .runner import Case, Question, add_questions, close, gen, randn, refuse_library, run_cases

__all__ = ["check_interference", "check_decay_mask", "check_gated_step", "check_delta_step", "check_wy_chunk"]

#: The library's implementations of what these exercises ask for (and the notebook imports): an answer
#: that calls one is refused, as in notebooks 06 and 07.
_LIBRARY_NAMES = {"decay_mask", "segment_sum", "gated_step", "gated_recurrent_form", "gated_parallel_form",
                  "gated_chunkwise_form", "gated_linear_attention", "delta_step", "delta_recurrent_form",
                  "delta_chunkwise_form", "delta_rule_attention", "recurrent_step", "readout_error"}
_WHY = "write it yourself from the formula in the exercise: the library's function is what your answer is checked against."

_SHAPES = [((), 4, 3), ((2, 3), 5, 2), ((2,), 3, 6)]  # (batch, d, d_v): d != d_v catches a transposed S


def _gated_cases():
    g, cases = gen(), []
    for batch, d, dv in _SHAPES:
        s, k, v = randn(g, *batch, d, dv), randn(g, *batch, d), randn(g, *batch, dv)
        gate = -torch.rand(batch, generator=g) * 2  # (...): log-decay <= 0
        z = torch.zeros(*batch, d)
        expected, _ = gated_step(s, z, k, v, gate.unsqueeze(-1))  # (..., d, d_v)
        cases.append(Case((s, k, v, gate), expected, f"batch {batch}, d = {d}, d_v = {dv}"))
    return cases


def check_gated_step(your_fn) -> bool:
    """your_fn(S, k_t, v_t, g_t) -> S_new = exp(g_t)·S + k_t v_tᵀ (one log-decay g_t <= 0 per batch entry).

    Shapes: S (..., d, d_v), k_t (..., d), v_t (..., d_v), g_t (...) -> (..., d, d_v).
    """
    refused = refuse_library("check_gated_step", your_fn, _LIBRARY_NAMES, _WHY)
    if refused is not None:
        return refused

    def decay(c):
        return c.args[3].exp()[..., None, None]  # (..., 1, 1)

    def outer(c):
        return c.args[1].unsqueeze(-1) * c.args[2].unsqueeze(-2)  # (..., d, d_v)

    return run_cases(
        "check_gated_step", your_fn, _gated_cases(), names=["S_new"],
        hint="decay first, then write: exp(g_t)[..., None, None] * S + k_t[..., :, None] * v_t[..., None, :].",
        diagnoses=[
            (lambda e, g, c: close(g, c.args[3][..., None, None] * c.args[0] + outer(c)),
             "you multiplied by g_t itself; g_t is the log of the decay — multiply by exp(g_t)."),
            (lambda e, g, c: close(g, decay(c) * (c.args[0] + outer(c))),
             "you decayed after writing: the new token must enter at full strength — decay S, then add k vᵀ."),
            (lambda e, g, c: close(g, c.args[0] + outer(c)),
             "that is plain linear attention's step: the old state must be multiplied by exp(g_t) first."),
        ])


def _delta_cases():
    g, cases = gen(), []
    for batch, d, dv in _SHAPES:
        s, v = randn(g, *batch, d, dv), randn(g, *batch, dv)
        k = F.normalize(randn(g, *batch, d), dim=-1)  # unit keys, as the library uses them
        beta = torch.rand(batch, generator=g) * 0.9 + 0.1  # (...) in (0, 1]
        cases.append(Case((s, k, v, beta), delta_step(s, k, v, beta), f"batch {batch}, d = {d}, d_v = {dv}"))
    return cases


def check_delta_step(your_fn) -> bool:
    """your_fn(S, k_t, v_t, beta_t) -> S_new = S + β_t k_t (v_t − Sᵀk_t)ᵀ  (the delta rule, unit keys).

    Shapes: S (..., d, d_v), k_t (..., d), v_t (..., d_v), beta_t (...) -> (..., d, d_v).
    """
    refused = refuse_library("check_delta_step", your_fn, _LIBRARY_NAMES, _WHY)
    if refused is not None:
        return refused

    def recalled(c):
        return (c.args[1].unsqueeze(-2) @ c.args[0]).squeeze(-2)  # (..., d_v): Sᵀk

    def write(c, value):
        return c.args[0] + c.args[1].unsqueeze(-1) * (c.args[3].unsqueeze(-1) * value).unsqueeze(-2)

    return run_cases(
        "check_delta_step", your_fn, _delta_cases(), names=["S_new"],
        hint="read what S holds for k_t: r = (k_t[..., None, :] @ S).squeeze(-2); then "
             "S + k_t[..., :, None] * (beta_t[..., None] * (v_t − r))[..., None, :].",
        diagnoses=[
            (lambda e, g, c: close(g, write(c, c.args[2])),
             "that is linear attention's additive write (S + β k vᵀ): subtract what S already returns for k_t, "
             "v_t − Sᵀk_t, before writing."),
            (lambda e, g, c: close(g, c.args[0] - (write(c, c.args[2] - recalled(c)) - c.args[0])),
             "the sign of the correction is flipped: S moves towards v_t, S + β k (v − Sᵀk)ᵀ."),
            (lambda e, g, c: close(g, c.args[0] + c.args[1].unsqueeze(-1) * (c.args[2] - recalled(c)).unsqueeze(-2)),
             "you left out β_t: the correction is scaled by the write strength β_t."),
        ])


# The capacity problem: the interference term --------------------------------------------------------
def _interference_cases():
    g, cases = gen(), []
    for n, d, dv in [(5, 4, 3), (12, 8, 2), (3, 6, 6)]:  # n > d once: keys cannot all be orthogonal
        K, V = randn(g, n, d), randn(g, n, dv)  # (n, d), (n, d_v); keys not unit length
        j = int(torch.randint(n, (1,), generator=g))
        overlaps = K @ K[j]  # (n,): k_iᵀk_j
        expected = overlaps @ V - overlaps[j] * V[j]  # (d_v,): Σ_{i≠j} (k_iᵀk_j) v_i
        cases.append(Case((K, V, j), expected, f"n = {n} pairs, d = {d}, d_v = {dv}, j = {j}"))
    return cases


def check_interference(your_fn) -> bool:
    """your_fn(K, V, j) -> Σ_{i≠j} (k_iᵀk_j) v_i: the interference in the readout Sᵀk_j of S = KᵀV.

    Shapes: K (n, d), V (n, d_v), j an int -> (d_v,).
    """
    refused = refuse_library("check_interference", your_fn, _LIBRARY_NAMES, _WHY)
    if refused is not None:
        return refused

    def readout(c):
        K, V, j = c.args
        return (K @ K[j]) @ V  # (d_v,): Sᵀk_j, answer included

    def unit_answer(c):
        K, V, j = c.args
        return readout(c) - V[j]  # subtracted v_j as if k_j had unit length

    def transposed(c):
        K, V, j = c.args
        return (V @ V[j]) @ K if K.shape == V.shape else None

    return run_cases(
        "check_interference", your_fn, _interference_cases(), names=["interference"],
        hint="the readout is (K @ K[j]) @ V; the answer's own term is (K[j] @ K[j]) * V[j] — subtract it.",
        diagnoses=[
            (lambda e, g, c: close(g, readout(c)),
             "that is the whole readout Sᵀk_j: the term i = j, (k_jᵀk_j) v_j, is the answer, not interference."),
            (lambda e, g, c: close(g, unit_answer(c)),
             "you subtracted v_j, which is the answer only for a unit key: subtract (k_jᵀk_j) v_j."),
            (lambda e, g, c: close(g, -e),
             "the sign is flipped: interference is what the other pairs add to the readout."),
        ])


# The decays of one chunk (scalar gate) ------------------------------------------------------------
def _decay_cases():
    g, cases = gen(), []
    for batch, n in [((), 6), ((2, 3), 9), ((2,), 1)]:
        logs = -torch.rand(*batch, n, generator=g, dtype=torch.float64) * 1.5  # (..., C) log-decays <= 0
        L = decay_mask(logs)  # (..., C, C): the library's mask
        with_state = decay_mask(F.pad(logs, (1, 0)))  # (..., C+1, C+1): the entering state as token 0
        expected = (L, with_state[..., 1:, 0], L[..., -1, :])  # into_i = e^{b_i}, out_j = e^{b_C − b_j}
        cases.append(Case((logs,), expected, f"g of shape {(*batch, n)}"))
    return cases


def _one_of(e, g, j, wrong) -> bool:
    """got matches the expected triple/pair except output j, which is ``wrong``."""
    if not (isinstance(g, (tuple, list)) and len(g) == len(e)):
        return False
    return all(close(g[i], wrong if i == j else e[i], 1e-10, 1e-10) for i in range(len(e)))


def check_decay_mask(your_fn) -> bool:
    """your_fn(g) -> (L, into, out) for one chunk of a scalar gate, b = cumsum(g) inside the chunk:

    L_ij = exp(b_i − b_j) for i >= j, 0 above; into_i = exp(b_i) (the entering state as token i reads it);
    out_j = exp(b_C − b_j) (token j's write when the chunk hands its state on).
    Shapes: g (..., C) log-decays <= 0 -> L (..., C, C), into (..., C), out (..., C). Checked in float64
    against the library's decay_mask (to 1e-10).
    """
    refused = refuse_library("check_decay_mask", your_fn, _LIBRARY_NAMES, _WHY)
    if refused is not None:
        return refused

    def b(c):
        return c.args[0].cumsum(-1)  # (..., C)

    def seg(c):
        return b(c)[..., :, None] - b(c)[..., None, :]  # (..., C, C): b_i − b_j

    def lower(c):
        n = c.args[0].shape[-1]
        return torch.ones(n, n, dtype=torch.bool).tril()

    def masked(c, x):
        return torch.where(lower(c), x, torch.zeros((), dtype=x.dtype))

    return run_cases(
        "check_decay_mask", your_fn, _decay_cases(), names=["L", "into", "out"], atol=1e-10, rtol=1e-10,
        hint="b = g.cumsum(-1); L: exp(b_i − b_j) where i >= j, else 0 (mask before exp); into = exp(b); "
             "out = exp(b[..., -1:] − b) — every exponent <= 0.",
        diagnoses=[
            (lambda e, g, c: _one_of(e, g, 0, e[0].transpose(-2, -1)),
             "your L is transposed: row i is the query, so L_ij = exp(b_i − b_j) sits below the diagonal (j <= i)."),
            (lambda e, g, c: _one_of(e, g, 0, seg(c).exp()),
             "the entries of L above the diagonal must be 0 (a query never sees a later key); yours are "
             "exp(b_i − b_j) > 1."),
            (lambda e, g, c: _one_of(e, g, 0, masked(c, (seg(c) + c.args[0][..., None, :]).exp())),
             "L is off by one step: its diagonal must be 1 (a token's own write is not decayed) — the decay from "
             "j to i is the sum of g over j < t <= i, b_i − b_j, not including g_j."),
            (lambda e, g, c: _one_of(e, g, 1, (b(c) - c.args[0]).exp()),
             "into is off by one step: the state decays by exp(g_i) before token i writes and reads, so token i "
             "reads the entering state through exp(b_i) = exp(g_1 + … + g_i), its own gate included (into_1 = exp(g_1), not 1)."),
            (lambda e, g, c: _one_of(e, g, 2, (b(c)[..., -1:] - b(c) + c.args[0]).exp()),
             "out is off by one step: the last token's write leaves the chunk undecayed (out_C = 1) — token j's write "
             "decays by the gates *after* it, exp(b_C − b_j), not including g_j."),
            (lambda e, g, c: _one_of(e, g, 2, b(c).exp()),
             "out is exp(b_j), the decay *up to* token j: a write decays by the gates that come after it, "
             "out_j = exp(b_C − b_j)."),
            (lambda e, g, c: isinstance(g, (tuple, list)) and len(g) == 3 and close(g[0], masked(c, seg(c)), 1e-10, 1e-10),
             "you returned the log-decays b_i − b_j: exponentiate them."),
        ])


# One chunk of Gated DeltaNet's WY form ---------------------------------------------------------------
def _wy_parts(K, V, beta, g, *, decay_kk=True, decay_w=True, diag=-1, cum=None, flip=False):
    """(W, U_bar) of one gated chunk, or one of the typical wrong variants (the keyword switches)."""
    b = g.cumsum(-1) if cum is None else cum  # (C,)
    seg = b[:, None] - b[None, :]  # (C, C): b_t − b_s
    seg = -seg if flip else seg
    D = seg.tril(-1).exp() if decay_kk else torch.ones_like(seg)  # (C, C); above the diagonal dropped below
    T = torch.eye(K.shape[0], dtype=K.dtype) + (beta[:, None] * (K @ K.T) * D).tril(diag)  # (C, C)
    kw = K * b.exp()[:, None] if decay_w else K  # (C, d): Γ K
    return (torch.linalg.solve(T, beta[:, None] * kw), torch.linalg.solve(T, beta[:, None] * V))


def _wy_cases():
    g, cases = gen(), []
    for C, d, dv in [(4, 5, 3), (8, 6, 2), (3, 3, 4)]:
        K = F.normalize(randn(g, C, d).double(), dim=-1)  # (C, d) unit keys
        V = randn(g, C, dv).double()  # (C, d_v)
        beta = (torch.rand(C, generator=g, dtype=torch.float64) * 0.8 + 0.2)  # (C,) in (0.2, 1)
        logs = -torch.rand(C, generator=g, dtype=torch.float64) * 0.8 - 0.05  # (C,) log-decays < 0
        cases.append(Case((K, V, beta, logs), _wy_parts(K, V, beta, logs), f"C = {C}, d = {d}, d_v = {dv}"))
    return cases


def check_wy_chunk(your_fn) -> bool:
    """your_fn(K, V, beta, g) -> (W, U_bar) of one Gated DeltaNet chunk, b = cumsum(g), D_ts = exp(b_t − b_s):

    T = I + strict_tril(diag(β)(KKᵀ ⊙ D)), W = T⁻¹ diag(β)(K ⊙ exp(b)), Ū = T⁻¹ diag(β) V.
    Shapes: K (C, d) unit keys, V (C, d_v), beta (C,), g (C,) log-decays <= 0 -> W (C, d), U_bar (C, d_v).
    Checked in float64 (to 1e-10); the check also replays the chunk: exp(b_C) S + (K ⊙ exp(b_C − b))ᵀ(Ū − W S)
    must equal the library's delta_step, with the gate, applied token by token.
    """
    refused = refuse_library("check_wy_chunk", your_fn, _LIBRARY_NAMES, _WHY)
    if refused is not None:
        return refused

    def is_(g, want):
        return isinstance(g, (tuple, list)) and len(g) == 2 and all(close(a, w, 1e-10, 1e-10) for a, w in zip(g, want))

    def wrong(c, **kw):
        return _wy_parts(*c.args, **kw)

    def exclusive(c):
        logs = c.args[3]
        return logs.cumsum(-1) - logs  # (C,): Σ_{s<t} g_s

    def replay(case, got):
        K, V, beta, logs = case.args
        b = logs.cumsum(-1)  # (C,)
        S = torch.linspace(-1, 1, K.shape[1] * V.shape[1], dtype=K.dtype).reshape(K.shape[1], V.shape[1])
        W, U_bar = got
        S_wy = b[-1].exp() * S + (K * (b[-1] - b).exp()[:, None]).T @ (U_bar - W @ S)  # (d, d_v)
        for t in range(K.shape[0]):
            S = delta_step(S, K[t], V[t], beta[t], logs[t])  # the library's gated step
        return None if torch.allclose(S_wy, S, atol=1e-10, rtol=1e-10) else \
            "W and U_bar do not reproduce the library's Gated DeltaNet state"

    return run_cases(
        "check_wy_chunk", your_fn, _wy_cases(), names=["W", "U_bar"], after=replay, atol=1e-10, rtol=1e-10,
        hint="b = g.cumsum(-1); D = exp(b_t − b_s) below the diagonal; T = I + (beta[:, None] * (K @ K.T) * D).tril(-1); "
             "W = solve(T, beta[:, None] * K * b.exp()[:, None]); U_bar = solve(T, beta[:, None] * V).",
        diagnoses=[
            (lambda e, g, c: is_(g, wrong(c, decay_kk=False, decay_w=False)),
             "that is the ungated chunk (the cell above): with a gate, KKᵀ is decayed by D_ts = exp(b_t − b_s) "
             "and W is built from the decayed keys K ⊙ exp(b)."),
            (lambda e, g, c: is_(g, wrong(c, decay_kk=False)),
             "you forgot the decay on KKᵀ: key s's write has decayed by exp(b_t − b_s) when token t reads it, "
             "so T = I + strict_tril(diag(β)(KKᵀ ⊙ D))."),
            (lambda e, g, c: is_(g, wrong(c, decay_w=False)),
             "W needs the decayed keys: token t reads the entering state S through exp(b_t), so "
             "W = T⁻¹ diag(β)(K ⊙ exp(b)); Ū (no S in it) has no such factor."),
            (lambda e, g, c: is_(g, wrong(c, diag=0)),
             "your T includes the diagonal of diag(β)(KKᵀ ⊙ D): T is *unit* lower-triangular — only the pairs "
             "s < t interact (strict_tril); the diagonal is the identity's 1."),
            (lambda e, g, c: is_(g, wrong(c, cum=exclusive(c))),
             "off by one in the cumulative gate: b_t = g_1 + … + g_t includes token t's own gate (the state "
             "decays before token t reads it); you summed only the gates before t."),
            (lambda e, g, c: is_(g, wrong(c, flip=True)),
             "your decay is flipped: D_ts = exp(b_t − b_s) <= 1 for s < t (the later token sees the earlier "
             "write decayed); exp(b_s − b_t) grows."),
        ])


# Design scenarios: the costs of notebooks 07-08 weighed for one service each --------------------------
def _fmt(n: float) -> str:
    from ..memory import format_bytes
    return format_bytes(int(n))


def _platform_explanation() -> str:
    from ..memory import PRESETS, cache_bytes, state_bytes
    s = PRESETS["llama-3-8b"]
    full = cache_bytes(s, 131072)
    hybrid = cache_bytes(s.with_(layers=4), 131072) + state_bytes(s.with_(layers=28))
    return (f"one design has to serve 131,072-token documents where any fact may be asked: full GQA needs "
            f"{_fmt(full)} per sequence there; a window of 4096 or pure linear attention cannot guarantee an "
            f"exact lookup of an old fact (notebook 08, section 1; notebook 09); a hybrid with 4 GQA layers "
            f"and 28 linear ones keeps {_fmt(hybrid)} — an eighth of the cache — and four layers that can "
            f"look any token up. For 8k chats it costs no more than the cache of those short contexts.")


def _debug_explanation() -> str:
    return ("a linear-attention decoder must carry its state S (and z) from token to token and apply one "
            "recurrent step per new token: O(d_φ·d_v) work whatever the context (notebook 07 measured the "
            "step flat from 1k to 16k tokens). Time per token that grows with the context means the service "
            "recomputes the prefix — a quadratic or chunkwise pass over all t tokens at every step — and "
            "memory stays flat only because nothing is cached. Precision (b) and the feature map (d) change "
            "constants, not the growth; GQA (c) does not apply to a state.")


def _chat_explanation() -> str:
    from ..memory import PRESETS, cache_bytes, state_bytes
    s = PRESETS["llama-3-8b"]
    budget = 40 * 2**30
    per = {"GQA as is": cache_bytes(s, 4096), "window 4096": cache_bytes(s, 4096),
           "MQA": cache_bytes(s.with_(kv_heads=1, kind="MQA"), 4096), "linear": state_bytes(s)}
    counts = "; ".join(f"{k}: {_fmt(b)} each, {budget // b:,} conversations" for k, b in per.items())
    return (f"in 40 GiB at 4,096 tokens, fp16 — {counts}. A 4096-token window changes nothing when the "
            f"conversations are no longer than the window; linear attention fits the most but gives up exact "
            f"lookup of earlier turns; MQA keeps exact attention over the whole conversation with 8× the "
            f"conversations of GQA (after the model is trained or up-trained for one KV head).")


def _regulated_explanation() -> str:
    from ..memory import PRESETS, cache_bytes, state_bytes
    s = PRESETS["llama-3-8b"]
    return (f"a verbatim, traceable citation from anywhere in 200,000 tokens needs a layer that can attend to "
            f"every token exactly: full GQA attention ({_fmt(cache_bytes(s, 200_000))} per document, fp16) "
            f"or a hybrid whose few attention layers do that ({_fmt(cache_bytes(s.with_(layers=4), 200_000))} "
            f"for 4 of 32 layers, plus {_fmt(state_bytes(s.with_(layers=28)))} of states). A window of 8192 "
            f"cannot see a clause 100k tokens back, and a fixed state holds about d_φ pairs per head "
            f"(notebook 08, section 1): neither can promise to retrieve every clause.")


def _design_doc_explanation() -> str:
    from ..memory import PRESETS, cache_bytes, state_bytes
    s = PRESETS["llama-2-7b"]
    cache, state = cache_bytes(s, 131072), state_bytes(s)
    return (f"(a) at 131,072 tokens the fp16 cache is {_fmt(cache)} and the state {_fmt(state)}: "
            f"{1 - state / cache:.2%} saved — right. (b) right: linear attention is *not* softmax attention "
            f"reordered — it replaces exp(qᵀk) by φ(q)ᵀφ(k), and its state of d_φ × d_v numbers per head "
            f"holds about d_φ key–value pairs before they interfere (notebook 08, section 1), while softmax "
            f"keeps every pair; \"same expressive power\" is false for recall (notebook 09). (c) right: the "
            f"saving exists only if decoding steps the state (notebook 07), not if it re-runs the prefix. "
            f"(d) wrong: the reordering (associativity, notebook 03) is exact only for the factorised "
            f"kernel, not for softmax's exp.")


add_questions({
    "platform_team": Question(
        "A platform team must pick ONE attention design for every model it serves: 8k-token chat, 16k-token "
        "code completion, and question answering over 131,072-token documents where any fact may be asked. "
        "Memory per sequence limits how many users a GPU serves. Shapes are Llama-3-8B-like (32 layers, 8 KV "
        "heads of dim 128, fp16). Which design?",
        {"a": "full GQA attention in every layer", "b": "a sliding window of 4096 tokens in every layer",
         "c": "linear attention in every layer",
         "d": "a hybrid: 4 GQA layers, 28 linear-attention layers"},
        ("d",), _platform_explanation, kind="choice",
        hint="price each at 131,072 tokens, then ask which can still look up a fact from the first page.",
        feedback={"a": "it recalls everything, but price it at 131,072 tokens: 16 GiB per document.",
                  "b": "bounded memory, but a 4096-token window cannot see a fact 100k tokens back.",
                  "c": "constant memory, but a fixed state cannot promise exact recall of any one fact."}),
    "debug_inference": Question(
        "An inference service moved a model from softmax to linear attention. Memory per sequence is now "
        "flat, but the time per generated token still grows with the context, just as before. The most "
        "likely cause?",
        {"a": "each step re-runs the quadratic or chunkwise form over the whole prefix instead of one "
              "recurrent step on the carried state",
         "b": "the state is kept in float32 instead of bfloat16",
         "c": "GQA is switched off, so every query head keeps its own state",
         "d": "the feature map is elu+1 instead of the identity"},
        ("a",), _debug_explanation, kind="choice",
        hint="what does one decoding step of linear attention cost, whatever the context?"),
    "chat_deployment": Question(
        "A chat product serves many 4,096-token conversations with a Llama-3-8B-shaped model (fp16) from 40 "
        "GiB of KV memory. Which single change serves the most conversations at once while every reply can "
        "still attend exactly to every earlier token of its conversation?",
        {"a": "a sliding window of 4096 tokens", "b": "MQA: one KV head per layer",
         "c": "linear attention in every layer", "d": "keep GQA and shorten the answers"},
        ("b",), _chat_explanation, kind="choice",
        hint="count conversations per 40 GiB for each; then strike the ones that lose exact attention.",
        feedback={"a": "the conversations are no longer than the window: nothing is saved.",
                  "c": "it fits the most, but a fixed state is not exact attention to every earlier token.",
                  "d": "the cache is priced by the context, not by the answer."}),
    "regulated_review": Question(
        "A bank reviews 200,000-token regulatory filings. Auditors require every cited clause to be "
        "retrieved verbatim from wherever it sits in the filing. Which designs can meet that? (all that apply)",
        {"a": "a sliding window of 8192 tokens in every layer", "b": "linear attention in every layer",
         "c": "full GQA attention in every layer",
         "d": "a hybrid: a few full-attention layers among linear ones"},
        ("c", "d"), _regulated_explanation, kind="choice",
        hint="which layers can attend to a token 150,000 positions back exactly?"),
    "design_doc": Question(
        "A design doc says: \"Switching our Llama-2-7B-shaped model to linear attention cuts decode memory at "
        "128k tokens by over 99% at no cost in quality, because linear attention has the same expressive "
        "power as softmax attention — it only reorders the matmuls.\" Which statements are right? (all that apply)",
        {"a": "the memory figure is right: the fp16 cache at 131,072 tokens is about 2,000× the state",
         "b": "\"same expressive power\" is wrong: a d_φ × d_v state holds about d_φ pairs per head, "
              "softmax's cache holds every pair",
         "c": "the saving holds only if decoding steps the carried state instead of re-running the prefix",
         "d": "reordering the matmuls computes exactly softmax attention, only faster"},
        ("a", "b", "c"), _design_doc_explanation, kind="choice",
        hint="price (a) with memory.cache_bytes / state_bytes; for (b) and (d) recall what φ replaces."),
})
