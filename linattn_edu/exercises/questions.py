"""The quiz questions of notebooks 01–05 and 07: ordering, multiple choice, design scenarios, memory.

Ordering questions list their steps in the right order here; readers see them shuffled and
relabelled (:func:`~linattn_edu.exercises.runner.displayed_options`). Explanations that quote
sizes compute them with :mod:`linattn_edu.memory` when they are printed, so they always agree
with the library.
"""
from __future__ import annotations

import torch

from .. import memory
from ..feature_maps import identity
from ..linear import linear_attention
from .runner import Question, add_questions

__all__ = ["CORE_QUESTIONS", "DESIGN_QUESTIONS", "MEMORY_QUESTIONS", "identity_kernel_example", "self_attention_gap"]


# --------------------------------------------------------------------------- 01–05: concepts

def _reorder_explanation(n: int = 4096, d: int = 64) -> str:
    quad = 2 * n * n * d + 2 * n * n * d  # (φ(Q)φ(K)ᵀ)V: N×N×d_φ, then N×N×d_v
    assoc = 4 * n * d * d  # φ(K)ᵀV then φ(Q)S
    return (f"the same numbers (matrix products associate), in another cost class. At N = {n}, "
            f"d_φ = d_v = {d}: {quad:,} FLOPs for (φ(Q)φ(K)ᵀ)V against {assoc:,} for φ(Q)(φ(K)ᵀV) — "
            f"{quad // assoc}× fewer (= N/d) — and the largest intermediate is the {d}×{d} S "
            f"({memory.format_bytes(d * d * 4)} in fp32) instead of the {n}×{n} matrix "
            f"({memory.format_bytes(n * n * 4)}). It buys nothing else: not accuracy, not causality "
            f"(a mask sits between the products), and not softmax (exp does not factorise finitely).")


def identity_kernel_example() -> tuple[float, float, float]:
    """(numerator, denominator, output) of out = Σ_j (qᵀk_j) v_j / Σ_j qᵀk_j for the quiz's example.

    q = [1, 0]; k_1 = [2, 0], v_1 = 1; k_2 = [−1, 1], v_2 = 3 (φ = identity: the kernel qᵀk).
    """
    q = torch.tensor([[1.0, 0.0]], dtype=torch.float64)  # (1, d)
    k = torch.tensor([[2.0, 0.0], [-1.0, 1.0]], dtype=torch.float64)  # (2, d)
    v = torch.tensor([[1.0], [3.0]], dtype=torch.float64)  # (2, 1)
    num = linear_attention(q, k, v, identity, normalize=False)  # (1, 1) = Σ_j (qᵀk_j) v_j
    den = linear_attention(q, k, torch.ones_like(v), identity, normalize=False)  # (1, 1) = Σ_j qᵀk_j
    return num.item(), den.item(), num.item() / den.item()


def _identity_explanation() -> str:
    num, den, out = (f"{x:g}".replace("-", "−") for x in identity_kernel_example())
    return (f"the weights are qᵀk_1 = 2 and qᵀk_2 = −1; numerator 2·1 + (−1)·3 = {num}, denominator "
            f"2 + (−1) = {den}, output {out}. That is outside [1, 3], the range of the values: with a "
            f"negative kernel value the 'weights' (2, −1) still sum to 1 but extrapolate instead of "
            f"averaging — and a denominator can reach 0. This is why φ must make φ(q)ᵀφ(k) >= 0 "
            f"(elu+1, FAVOR+) and why the library refuses φ = identity in the normalised form.")


def _aggregated_explanation(t: int = 16384, d: int = 64) -> str:
    cache = 2 * t * d * 4  # K and V of one head, fp32
    state = (d * d + d) * 4  # S and z of one head, fp32
    return (f"S and z have d_φ·d_v + d_φ numbers whatever t is: adding token t is one rank-1 update "
            f"φ(k_t)v_tᵀ, reading is one product φ(q_t)ᵀS — O(d_φ·d_v) per token. For one head with "
            f"d = {d} in fp32 at t = {t}: the KV cache holds {memory.format_bytes(cache)} and a step "
            f"re-reads all of it; the state is {memory.format_bytes(state)}, at any t. It is *not* "
            f"lossless (a): d_φ·d_v numbers cannot store arbitrarily many key–value pairs — the price is "
            f"recall.")


def self_attention_gap(n: int = 64, d: int = 16, scale: float = 16.0, seed: int = 0) -> dict:
    """How close softmax and elu+1 linear attention come to "each token attends only to itself" (I_N).

    n unit-norm tokens x (n, d) from a seeded generator, q = k = x. Softmax with scores scale·xᵢᵀxⱼ puts almost
    all weight on the diagonal; linear attention's weights φ(Q)φ(K)ᵀ (row-normalised) have rank <= d_φ, and
    by Eckart–Young any matrix of rank <= r is at least √(n − r) from I_n in Frobenius norm. Returns the
    distances ‖W − I‖_F, the ranks and that bound (d_φ = d for elu+1).
    """
    from ..feature_maps import elu_plus_one
    from ..softmax import softmax_attention

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)  # (n, d)
    x = x / x.norm(dim=-1, keepdim=True)  # unit rows: xᵢᵀxᵢ = 1 > xᵢᵀxⱼ
    eye = torch.eye(n, dtype=torch.float64)  # (n, n)
    _, p = softmax_attention(x, x, eye, scale=scale, return_weights=True)  # (n, n)
    _, a = linear_attention(x * scale ** 0.5, x * scale ** 0.5, eye, elu_plus_one, form="quadratic",
                            return_weights=True)  # (n, n) the same scores' scale, through elu+1
    return {"softmax_gap": (p - eye).norm().item(), "softmax_rank": int(torch.linalg.matrix_rank(p)),
            "linear_gap": (a - eye).norm().item(), "linear_rank": int(torch.linalg.matrix_rank(a)),
            "bound": (n - d) ** 0.5, "n": n, "d": d}


def _expressive_explanation() -> str:
    r = self_attention_gap()
    return (f"no — not at a finite d_φ. Linear attention's weights are φ(Q)φ(K)ᵀ divided row by row, a matrix of "
            f"rank <= d_φ; softmax's exp(QKᵀ/√d) has no such limit. Asked to let each of n = {r['n']} tokens attend "
            f"only to itself (the identity, rank {r['n']}), softmax comes within ‖P − I‖_F = {r['softmax_gap']:.2f} "
            f"(rank {r['softmax_rank']}); elu+1 (d_φ = {r['d']}) lands at {r['linear_gap']:.2f} (rank "
            f"{r['linear_rank']}), and no feature map with d_φ = {r['d']} can beat √(n − d_φ) = {r['bound']:.2f} "
            f"(Eckart–Young). Causally the same limit reads as memory: a d_φ × d_v state against a cache of every "
            f"key and value (notebook 08 measures what that costs in recall without training, notebook 09 in trained models). The two agree only as d_φ → ∞ "
            f"(the exp kernel needs infinitely many features, notebook 02), and reordering the products (a) "
            f"changes the cost, never the function.")


CORE_QUESTIONS = {
    "softmax_steps": Question(
        "Put the steps of (masked) softmax attention in order.",
        {"scores": "S = Q Kᵀ (all query–key dot products)", "scale": "multiply S by 1/√d",
         "mask": "add the mask (0 where allowed, −∞ where not)",
         "exp": "subtract each row's max and exponentiate", "norm": "divide each row by its sum",
         "values": "multiply the weights by V"},
        (("scores",), ("scale",), ("mask",), ("exp",), ("norm",), ("values",)),
        "scores, scale, mask, stable exp, normalise rows, weighted sum of values. The mask is "
        "added to the *scaled* scores (as in torch's SDPA): a float mask would otherwise be scaled too.",
        hint="the mask acts on scores that are already scaled, and the weights must sum to 1 before "
             "they touch V.",
        # A −∞/0 mask commutes with a positive scale (−∞ · c = −∞): mask-then-scale is right too.
        requires={"scale": ("scores",), "mask": ("scores",), "exp": ("scale", "mask"), "norm": ("exp",),
                  "values": ("norm",)}),
    "finite_features": Question(
        "Which kernel can be written exactly as φ(q)ᵀφ(k) with a finite feature vector φ?",
        {"a": "the Gaussian kernel exp(−‖q − k‖²/2h²)", "b": "the softmax kernel exp(qᵀk/√d)",
         "c": "the polynomial kernel (1 + qᵀk)²", "d": "the boxcar kernel 1[‖q − k‖ ≤ w]"},
        ("c",),
        "(1 + qᵀk)² expands into 1 + 2·qᵀk + (qᵀk)², a sum of products of finitely many "
        "monomials: φ(x) = [1, √2·x, vec(x xᵀ)] (1 + d + d² features). The Gaussian and exp "
        "kernels need infinitely many (their Taylor series never stops); random features only "
        "approximate them.", kind="choice",
        hint="expand each kernel as a power series in qᵀk: which one stops after finitely many terms?",
        feedback={"a": "exp(−‖q−k‖²/2h²) = exp(−‖q‖²/2h²)·exp(−‖k‖²/2h²)·exp(qᵀk/h²), and the last factor's "
                       "power series never stops.",
                  "b": "exp(qᵀk/√d) = Σ_n (qᵀk/√d)ⁿ/n! has a term of every degree: infinitely many features.",
                  "d": "an indicator of a distance is not smooth; no finite set of products of q-features "
                       "and k-features reproduces its sharp edge."}),
    "bandwidth_limit": Question(
        "A Nadaraya–Watson smoother with a Gaussian kernel: what happens as the bandwidth h → 0?",
        {"a": "every prediction becomes the mean of all training values",
         "b": "each prediction copies the value of the nearest training point",
         "c": "predictions become 0", "d": "nothing: the weights are normalised"},
        ("b",),
        "as h → 0 the nearest key's weight dominates every other (the ratio of weights grows "
        "like exp(Δ/2h²)), so the softmax over keys becomes an arg-max. h → ∞ gives answer a.",
        kind="choice", hint="compare the weights of the nearest and the second-nearest point as h shrinks.",
        feedback={"a": "that is the other limit, h → ∞, where every weight tends to the same value.",
                  "c": "the weights are normalised to sum to 1, so the prediction stays a weighted average "
                       "of the training values, never 0 for them all.",
                  "d": "normalising keeps the weights summing to 1, but it does not stop them from "
                       "concentrating on one point."}),
    "denominator_role": Question(
        "In linear attention out_i = φ(q_i)ᵀS / φ(q_i)ᵀz, with z = Σ_j φ(k_j): what does the "
        "denominator φ(q_i)ᵀz do?",
        {"a": "it scales the scores by 1/√d",
         "b": "it is the sum over keys of the kernel weights φ(q_i)ᵀφ(k_j), so dividing makes "
               "the weights of query i sum to 1 (a weighted average of the values)",
         "c": "it is the causal mask", "d": "it stops exp from overflowing"},
        ("b",),
        "φ(q_i)ᵀz = Σ_j φ(q_i)ᵀφ(k_j): the row sum of the (never built) N×N weight matrix. "
        "Softmax divides by Σ_j exp(s_ij); linear attention divides by the same kind of sum.",
        kind="choice", hint="expand φ(q_i)ᵀz with z = Σ_j φ(k_j).",
        feedback={"a": "the 1/√d scale acts inside the kernel; φ(q_i)ᵀz depends on every key, not on d alone.",
                  "c": "non-causal linear attention has no mask at all; a causal one sums z over j <= i.",
                  "d": "there is no exp in linear attention's kernel φ(q)ᵀφ(k) to overflow."}),
    "reorder_buys": Question(
        "Computing φ(Q)(φ(K)ᵀV) instead of (φ(Q)φ(K)ᵀ)V: what does reordering the products buy?",
        {"a": "a more accurate result",
         "b": "causal masking for free",
         "c": "the same result (up to rounding) in O(N·d_φ·d_v) time with a d_φ×d_v intermediate, "
              "instead of O(N²·d) time and an N×N intermediate",
         "d": "exact softmax attention in linear time"},
        ("c",), _reorder_explanation, kind="choice",
        hint="write down the shape of the intermediate product in each order.",
        feedback={"a": "matrix products associate: both orders compute the same numbers (up to rounding).",
                  "b": "a causal mask sits between φ(Q)φ(K)ᵀ and V; reordering removes the place where it "
                       "could go, it does not apply it.",
                  "d": "the kernel is φ(q)ᵀφ(k), not exp(qᵀk/√d); softmax's exp does not factorise finitely."}),
    "identity_kernel": Question(
        "Evaluate a modified formula: drop φ (φ = identity, kernel qᵀk) and compute "
        "out = Σ_j (qᵀk_j) v_j / Σ_j qᵀk_j for q = [1, 0] and two tokens: k_1 = [2, 0], v_1 = 1 and "
        "k_2 = [−1, 1], v_2 = 3. What comes out?",
        {"a": "about 1.67, a weighted average of 1 and 3",
         "b": "2, the plain mean of the values",
         "c": "−1, outside the range of the values",
         "d": "undefined: the denominator is 0"},
        ("c",), _identity_explanation, kind="choice",
        hint="compute the two kernel values qᵀk_1 and qᵀk_2 first; one of them is negative.",
        feedback={"a": "that would need both kernel values to be positive; compute qᵀk_2 for k_2 = [−1, 1].",
                  "b": "the plain mean needs equal weights; here the two kernel values differ.",
                  "d": "compute the denominator qᵀk_1 + qᵀk_2: is it 0?"}),
    "expressive_power": Question(
        "A claim you will meet: \"linear attention has the same expressive power as standard (softmax) "
        "attention — it only reorders the matrix products.\" With a feature map of d_φ features, is it true?",
        {"a": "yes: φ(Q)(φ(K)ᵀV) and (φ(Q)φ(K)ᵀ)V are equal, so it computes what softmax attention computes",
         "b": "no: its weight matrix has rank at most d_φ, so with more than d_φ tokens it cannot form some "
              "patterns softmax forms easily (every token attending only to itself), and a causal decoder keeps a "
              "d_φ × d_v state instead of every key and value",
         "c": "yes, as long as every feature is positive",
         "d": "no: linear attention cannot be causal"},
        ("b",), _expressive_explanation, kind="choice",
        hint="what is the largest rank of φ(Q)φ(K)ᵀ, and the rank of the identity matrix softmax can approach?",
        feedback={"a": "the two orders are equal to each other; neither is softmax attention: the kernel is "
                       "φ(q)ᵀφ(k), not exp(qᵀk/√d).",
                  "c": "positivity makes the weights an average (notebook 03, section 4); it does not lift the "
                       "rank limit of d_φ.",
                  "d": "causal linear attention exists (prefix sums, notebook 04); the limit is the rank, not "
                       "causality."}),
    "linear_steps": Question(
        "Order the steps of (non-causal) linear attention in its O(N) form. Steps that could "
        "run in either order may be given in either order.",
        {"phi": "apply φ to every query and key", "S": "S = φ(K)ᵀV  (d_φ × d_v)",
         "z": "z = φ(K)ᵀ1  (d_φ)", "num": "numerator φ(Q) S  (N × d_v)",
         "den": "denominator φ(Q) z  (N)", "div": "divide numerator rows by the denominator"},
        (("phi",), ("S", "z"), ("num", "den"), ("div",)),
        "features first; then summarise the keys (S and z, independent of N once built); then "
        "read them out for every query; then normalise.",
        hint="the summary of the keys must exist before any query reads it.",
        requires={"S": ("phi",), "z": ("phi",), "num": ("S",), "den": ("z",), "div": ("num", "den")}),
    "aggregated_state": Question(
        "Why is the aggregated state S_t = Σ_{j≤t} φ(k_j)v_jᵀ (with z_t) efficient for generating text?",
        {"a": "it stores every past key and value in compressed form and can return any of them exactly",
         "b": "its size d_φ×d_v does not depend on t: each new token costs one rank-1 update and one "
              "read-out, while softmax attention re-reads a KV cache that grows with t",
         "c": "it makes training faster than softmax attention at every sequence length",
         "d": "it removes the need for a feature map"},
        ("b",), _aggregated_explanation, kind="choice",
        hint="what does one decoding step read, and does its size change with t?",
        feedback={"a": "d_φ·d_v numbers cannot hold arbitrarily many key–value pairs exactly: the state is a "
                       "lossy summary.",
                  "c": "for short sequences softmax attention (and its flash kernels) is as fast or faster; "
                       "the win grows with length.",
                  "d": "the state is built from φ(k); without a feature map there is no positive kernel to "
                       "normalise."}),
    "chunkwise_steps": Question(
        "Order the steps of the chunkwise causal form for one chunk c (state S, z carried in). "
        "Steps that could run in either order may be given in either order.",
        {"intra": "intra-chunk part: tril(φ(Q_c)φ(K_c)ᵀ) V_c and its row sums",
         "inter": "inter-chunk part: φ(Q_c) S and φ(Q_c) z from the carried state",
         "combine": "add the two parts and divide numerator by denominator",
         "update": "update the state: S += φ(K_c)ᵀV_c, z += φ(K_c)ᵀ1"},
        (("intra", "inter"), ("combine",), ("update",)),
        "a chunk reads the state *before* adding its own keys (its own keys enter through the "
        "masked intra-chunk product), so the update comes last; doing it first counts the chunk's "
        "keys twice and lets queries see later keys of their chunk.",
        hint="which part of the chunk's output may already contain the chunk's own keys?",
        # the update may come any time after the carried state was read (inter), even before combining
        requires={"combine": ("intra", "inter"), "update": ("inter",)}),
    "trig_negative": Question(
        "Trigonometric random features are unbiased for exp(qᵀk/√d). Why are they a poor choice "
        "for normalised linear attention?",
        {"a": "they are slower to compute than positive features",
         "b": "single estimates φ(q)ᵀφ(k) can be negative, so the denominator Σ_j φ(q)ᵀφ(k_j) "
              "can be near 0 or negative and the output explodes or flips sign",
         "c": "they are biased", "d": "they need twice as many features"},
        ("b",),
        "sin/cos features can be negative; the softmax kernel is always > 0, and the normalised "
        "form divides by a sum of estimates. FAVOR+'s exp features are > 0, so every estimate is.",
        kind="choice", hint="what sign can a single estimate sin·sin + cos·cos have?",
        feedback={"a": "sin and cos cost about what exp costs; speed is not the problem.",
                  "c": "the question says they are unbiased, and they are.",
                  "d": "the feature count is a choice, the same for both kinds."}),
}


# --------------------------------------------------------------------------- 05: design scenarios

_GIB = 2**30
_fmt = memory.format_bytes


def _llama3():
    return memory.get_preset("llama-3-8b")


def _llama2():
    return memory.get_preset("llama-2-7b")


def _long_context_explanation(tokens: int = 131072, budget: float = 1.5 * _GIB) -> str:
    s = _llama3()
    rows = {
        "a) GQA as is": memory.cache_bytes(s, tokens),
        "b) MQA": memory.cache_bytes(s.with_(kv_heads=1, kind="MQA"), tokens),
        "c) window 4096": memory.cache_bytes(s, 4096),
        "d) hybrid 2 + 30": memory.cache_bytes(s.with_(layers=2), tokens) + memory.state_bytes(s.with_(layers=30)),
    }
    table = "; ".join(f"{k}: {_fmt(b)}{'' if b <= budget else ' (over)'}" for k, b in rows.items())
    return (f"bytes read per generated token at {tokens:,} tokens, fp16 — {table}. The window fits but "
            f"cannot see a fact older than 4096 tokens; only the hybrid fits *and* keeps two layers that "
            f"can look up any token exactly, while its 30 linear layers carry a fixed state "
            f"({_fmt(memory.state_bytes(s.with_(layers=30)))} in all). This is the recipe of "
            f"recent hybrid models: a few exact-recall layers, many constant-memory ones.")


def _kv_budget_explanation(tokens: int = 8192, budget: int = 40 * _GIB) -> str:
    mha, gqa = _llama2(), _llama3()
    a, b = memory.cache_bytes(mha, tokens), memory.cache_bytes(gqa, tokens)
    return (f"one {tokens:,}-token conversation needs 2 · {mha.layers} layers · {mha.kv_heads} KV heads · "
            f"{mha.head_dim} · {tokens:,} tokens · 2 B = {_fmt(a)} with MHA and {_fmt(b)} with "
            f"{gqa.kv_heads} KV heads: {budget // a} and {budget // b} conversations fit in {_fmt(budget)}. "
            f"GQA shares each key/value head among {gqa.heads // gqa.kv_heads} query heads, so the cache "
            f"shrinks by heads / kv_heads = {gqa.heads // gqa.kv_heads} — the reason most recent models use it.")


def _device_explanation(tokens: int = 60000, budget: int = 2 * _GIB) -> str:
    s = _llama2()
    rows = {
        "a) MHA": memory.cache_bytes(s, tokens),
        "b) GQA-8": memory.cache_bytes(s.with_(kv_heads=8, kind="GQA"), tokens),
        "c) MQA": memory.cache_bytes(s.with_(kv_heads=1, kind="MQA"), tokens),
        "d) window 2048": memory.cache_bytes(s, 2048),
        "e) linear": memory.state_bytes(s),
        "f) MLA 512 + 64": memory.cache_bytes(s.with_(kind="MLA", latent_dim=512, rope_dim=64), tokens),
    }
    table = "; ".join(f"{k}: {_fmt(b)} ({'fits' if b <= budget else 'over'})" for k, b in rows.items())
    return (f"at {tokens:,} tokens in fp16 — {table}. What each fitting design gives up: MQA shares one "
            f"key/value head among all 32 query heads (some quality, usually recovered by training); the "
            f"window forgets everything older than 2048 tokens; linear attention keeps a fixed-size, lossy "
            f"summary (weaker exact recall). MLA misses only just: its latent cache still grows with N.")


def _multi_tenant_explanation(short: int = 1024, long: int = 100_000) -> str:
    s = _llama2()
    hybrid = lambda n: memory.cache_bytes(s.with_(layers=4), n) + memory.state_bytes(s.with_(layers=28))  # noqa: E731
    rows = {
        "a) MHA, paged": (memory.cache_bytes(s, short), memory.cache_bytes(s, long)),
        "b) GQA-8": (memory.cache_bytes(s.with_(kv_heads=8, kind="GQA"), short),
                     memory.cache_bytes(s.with_(kv_heads=8, kind="GQA"), long)),
        "c) linear": (memory.state_bytes(s), memory.state_bytes(s)),
        "d) window 4096": (memory.cache_bytes(s, min(short, 4096)), memory.cache_bytes(s, 4096)),
        "e) hybrid 4 + 28": (hybrid(short), hybrid(long)),
    }
    table = "; ".join(f"{k}: {_fmt(x)} → {_fmt(y)}" for k, (x, y) in rows.items())
    return (f"per session at {short:,} → {long:,} tokens (Llama-2-7B shape, fp16) — {table}. Paging "
            f"removes fragmentation, not growth; GQA and the hybrid shrink the slope but still grow with "
            f"N. Only a fixed state (linear attention) or a window caps every session, so the service can "
            f"admit sessions by count — at the price of exact recall beyond the window or the state's "
            f"capacity.")


DESIGN_QUESTIONS = {
    "long_context_latency": Question(
        "A document assistant with the Llama-3-8B shape (32 layers, 32 query heads, 8 KV heads of dim "
        "128, fp16) answers questions about 131,072-token documents; a question may be about any fact "
        "anywhere in the document. Decoding is memory-bound, so each generated token may read at most "
        "1.5 GiB of attention memory. Which design meets both requirements?",
        {"a": "keep GQA as it is", "b": "MQA: one KV head shared by all 32 query heads",
         "c": "a sliding window of 4096 tokens in every layer",
         "d": "a hybrid: 2 of the 32 layers keep full GQA attention, the other 30 use linear attention"},
        ("d",), _long_context_explanation, kind="choice",
        hint="price each option with memory.cache_bytes / memory.state_bytes, then ask which ones can "
             "still retrieve a fact from the first page.",
        feedback={"a": "price it: the full GQA cache at 131,072 tokens is several times the 1.5 GiB a token "
                       "may read.",
                  "b": "price it with memory.cache_bytes: even one KV head per layer, at 131,072 tokens, is "
                       "above the 1.5 GiB budget.",
                  "c": "it fits the budget, but a window of 4096 tokens cannot see a fact on the first page."}),
    "kv_budget": Question(
        "A server has 40 GiB of GPU memory left for KV caches and serves 8,192-token conversations in "
        "fp16. How many conversations fit at once with the Llama-2-7B shape (32 layers, 32 KV heads of "
        "dim 128), and how many with the Llama-3-8B shape (the same but 8 KV heads, GQA)?",
        {"a": "10 and 40", "b": "40 and 10", "c": "80 and 80 (GQA saves compute, not memory)",
         "d": "1 and 4"},
        ("a",), _kv_budget_explanation, kind="choice",
        hint="per token the cache holds 2 · layers · kv_heads · head_dim numbers of 2 bytes.",
        feedback={"b": "fewer KV heads means a smaller cache, so GQA fits more conversations, not fewer.",
                  "c": "GQA shrinks the cache itself: kv_heads enters the bytes per token.",
                  "d": "compute one conversation's cache: 2 · 32 · 32 · 128 · 8,192 · 2 B is far below 40 GiB."}),
    "device_60k": Question(
        "A laptop GPU has 2 GiB free for attention memory; an app needs 60,000 tokens of context with a "
        "model of the Llama-2-7B shape (32 layers, 32 heads of dim 128, fp16). Which designs fit? "
        "(select all that apply)",
        {"a": "the model as it is (MHA)", "b": "GQA with 8 KV heads", "c": "MQA (one KV head)",
         "d": "a sliding window of 2048 tokens in every layer", "e": "linear attention in every layer",
         "f": "MLA: one 512-wide latent plus a 64-wide RoPE key per layer and token"},
        ("c", "d", "e"), _device_explanation, kind="choice",
        hint="compute each option's bytes at 60,000 tokens (memory.cache_bytes, memory.state_bytes); "
             "a window caches at most its width.",
        feedback={"a": "price it with memory.cache_bytes: the MHA cache at 60,000 tokens is many times 2 GiB.",
                  "b": "a quarter of the MHA cache is still several GiB.",
                  "f": "compute it: the latent cache still grows with the 60,000 tokens, and it lands just "
                       "above 2 GiB."}),
    "multi_tenant": Question(
        "A service keeps many users' sessions in memory at once: most are about 1k tokens, a few reach "
        "100k. To admit sessions simply, you want each session's attention memory bounded by a constant "
        "that does not depend on its length. Which designs give that? (select all that apply)",
        {"a": "MHA with a paged KV cache (memory allocated in blocks as the session grows)",
         "b": "GQA with 8 KV heads", "c": "linear attention in every layer",
         "d": "a sliding window of 4096 tokens in every layer",
         "e": "a hybrid: 4 full-attention layers, 28 linear-attention layers"},
        ("c", "d"), _multi_tenant_explanation, kind="choice",
        hint="for each design, does the memory at 100k tokens exceed the memory at 1k?",
        feedback={"a": "paging removes fragmentation, not growth: a 100k session still holds 100k tokens of cache.",
                  "b": "GQA shrinks the slope by heads / kv_heads, but the cache still grows with the length.",
                  "e": "the 4 full-attention layers keep a cache that grows with the session."}),
}

# --------------------------------------------------------------------------- 07: memory (cells for notebook 07)


def _gqa_states_explanation() -> str:
    s = _llama3()
    per_state = memory.state_bytes(s.with_(layers=1, heads=1, kv_heads=1, kind="MHA"))  # one (d_φ, d_v) S, fp16
    return (f"S = Σ_j φ(k_j) v_jᵀ and z = Σ_j φ(k_j) are built from keys and values only; a query only reads "
            f"them. The {s.heads // s.kv_heads} query heads that share a KV head share its state, so a layer "
            f"holds {s.kv_heads} states of {_fmt(per_state)} each (d_φ = d_v = {s.head_dim}, fp16): "
            f"memory.state_bytes gives {_fmt(memory.state_bytes(s))} for all {s.layers} layers, not "
            f"{_fmt(memory.state_bytes(s) * s.heads // s.kv_heads)}.")


def _crossover_explanation() -> str:
    s = _llama2()
    n = memory.crossover_tokens(s)
    return (f"per token the cache grows by {_fmt(memory.cache_bytes(s, 1))}; the whole linear state is "
            f"{_fmt(memory.state_bytes(s))}; so after {n} tokens (memory.crossover_tokens) the cache is "
            f"already the larger — a state of d_φ·d_v numbers per head is the cache of d_φ·d_v / (2·head_dim) "
            f"= {s.head_dim // 2} tokens. Every real context is far past that.")


def _mla_rope_explanation() -> str:
    ds = memory.get_preset("deepseek-v2")
    per_token = ds.latent_dim + ds.rope_dim
    mha = 2 * ds.heads * ds.head_dim
    return (f"with RoPE on the rebuilt key, the score is (R_t q)ᵀ(R_s W_UK,i c_s) = qᵀ R_(s−t) W_UK,i c_s: the matrix "
            f"between q and c_s changes with every cached position s, so no fixed W_UK,iᵀ can be folded into the "
            f"query, and every cached latent would have to be up-projected at every step. A separate rotary key "
            f"k^R_s of {ds.rope_dim} dims, shared by the {ds.heads} heads, carries the position instead; the content "
            f"part stays position-free and absorbable. The cache stays {ds.latent_dim} + {ds.rope_dim} = {per_token} "
            f"numbers per token and layer, against {mha:,} for the same heads as MHA ({mha // per_token}x).")


MEMORY_QUESTIONS = {
    "gqa_states": Question(
        "Llama-3-8B has 32 query heads and 8 KV heads per layer (GQA). Made into linear attention with the "
        "same projections, how many (S, z) states does one layer keep?",
        {"a": "32: one per query head",
         "b": "8: the state is built from keys and values only, so query heads that share a KV head share "
              "its state",
         "c": "1: the heads are summed into one state",
         "d": "40: one per query head and one per KV head"},
        ("b",), _gqa_states_explanation, kind="choice",
        hint="which of q, k, v enter S = Σ_j φ(k_j) v_jᵀ?"),
    "mla_rope": Question(
        "MLA caches a latent c_s per token and gets head i's key as W_UK,i c_s, with W_UK,i folded into the query "
        "at decoding. Why does DeepSeek-V2 add a separate rotary key k^R_s, shared by all heads, instead of "
        "applying RoPE to the keys W_UK,i c_s?",
        {"a": "RoPE cannot rotate a vector that came out of a low-rank projection",
         "b": "the rotary key makes the cache smaller than the latent alone would be",
         "c": "RoPE on W_UK,i c_s would put a rotation that depends on the cached position s between the query and "
              "c_s, so W_UK,i could no longer be folded into the query once: every cached key would have to be "
              "rebuilt at every step",
         "d": "RoPE needs float32, and the latent is stored in bf16"},
        ("c",), _mla_rope_explanation, kind="choice",
        hint="write the score (R_t q)ᵀ(R_s W_UK c_s) and ask which matrix sits between q and c_s.",
        feedback={"a": "RoPE rotates pairs of any vector's dims; where the vector came from does not matter.",
                  "b": "the rotary key adds d_r numbers per token to the cache; it is there for another reason.",
                  "d": "rotations work in any precision; the issue is algebraic, not numerical."}),
    "kv_crossover": Question(
        "Predict, then check with memory.crossover_tokens: at how many tokens does the fp16 KV cache of the "
        "Llama-2-7B shape (32 layers, 32 heads of dim 128) become larger than a same-shaped linear-attention "
        "state (d_φ = d_v = 128)?",
        {"a": "64", "b": "4,096", "c": "131,072", "d": "never: the state is always larger"},
        ("a",), _crossover_explanation, kind="choice",
        hint="divide the state's bytes by the cache's bytes per token."),
}

add_questions(CORE_QUESTIONS)
add_questions(DESIGN_QUESTIONS)
add_questions(MEMORY_QUESTIONS)
