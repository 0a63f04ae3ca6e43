"""Checkers of notebooks 06–09: each accepts a right answer and names the typical wrong ones."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from linattn_edu import exercises as ex
from linattn_edu.delta import delta_step
from linattn_edu.gated import decay_mask, gated_step
from linattn_edu.memory import PRESETS, cache_bytes


# --------------------------------------------------------------------------- right answers
def flops_ok(n, d, c):
    return n * (4 * d * d + 4 * c * d)


def slope_ok(ns, ts):
    x, y = [math.log(n) for n in ns], [math.log(t) for t in ts]
    mx, my = sum(x) / len(x), sum(y) / len(y)
    return sum((a - mx) * (b - my) for a, b in zip(x, y)) / sum((a - mx) ** 2 for a in x)


def crossover_ok(ns, fast, slow):
    y = [math.log(f / s) for f, s in zip(fast, slow)]
    if y[-1] >= 0:
        return None
    i = len(y) - 1
    while i > 0 and y[i - 1] < 0:
        i -= 1
    if i == 0:
        return ns[0]
    x0, x1 = math.log(ns[i - 1]), math.log(ns[i])
    return math.exp(x0 + (0 - y[i - 1]) * (x1 - x0) / (y[i] - y[i - 1]))


def cache_ok(s, n, b):
    if s.kind == "MLA":
        return s.layers * (s.latent_dim + s.rope_dim) * n * b
    return 2 * s.layers * s.kv_heads * s.head_dim * n * b


def window_cache_ok(s, n, w, b):
    return 2 * s.layers * s.kv_heads * s.head_dim * min(n, w) * b


def hybrid_ok(s, n, a, b):
    return 2 * a * s.kv_heads * s.head_dim * n * b + (s.layers - a) * s.kv_heads * s.head_dim ** 2 * b


def interference_ok(K, V, j):
    o = (K @ K[j]).clone()
    o[j] = 0
    return o @ V


def decay_mask_ok(g):
    """The decays of one chunk: (L, into = exp(b), out = exp(b_C − b)), b = cumsum(g)."""
    b = g.cumsum(-1)
    n = g.shape[-1]
    lower = torch.ones(n, n, dtype=torch.bool).tril()
    L = torch.where(lower, (b[..., :, None] - b[..., None, :]).masked_fill(~lower, 0).exp(), torch.zeros(()))
    return L, b.exp(), (b[..., -1:] - b).exp()


def wy_ok(K, V, beta, g):
    """One Gated DeltaNet chunk: T = I + strict_tril(diag(β)(KKᵀ ⊙ D)), W = T⁻¹β(K ⊙ e^b), Ū = T⁻¹βV."""
    return _gated_wy(K, V, beta, g)


def _gated_wy(K, V, beta, g, *, decay_kk=True, decay_w=True, diag=-1, exclusive=False):
    b = g.cumsum(-1) - (g if exclusive else 0)
    D = (b[:, None] - b[None, :]).tril(-1).exp() if decay_kk else torch.ones(K.shape[0], K.shape[0], dtype=K.dtype)
    T = torch.eye(K.shape[0], dtype=K.dtype) + (beta[:, None] * (K @ K.T) * D).tril(diag)
    kw = K * b.exp()[:, None] if decay_w else K
    X = torch.linalg.solve_triangular(T, beta[:, None] * torch.cat([kw, V], -1), upper=False,
                                      unitriangular=diag < 0)
    return X[:, :K.shape[-1]], X[:, K.shape[-1]:]


def summary_ok(runs, mixer, pairs):
    a = [r["accuracy"] for r in runs if r["mixer"] == mixer and r["settings"]["num_kv_pairs"] == pairs]
    return sum(a) / len(a), min(a), max(a)


RIGHT = [
    (ex.check_chunkwise_flops, flops_ok), (ex.check_loglog_slope, slope_ok), (ex.check_crossover, crossover_ok),
    (ex.check_cache_bytes, cache_ok), (ex.check_window_cache_bytes, window_cache_ok),
    (ex.check_hybrid_bytes, hybrid_ok), (ex.check_interference, interference_ok),
    (ex.check_decay_mask, decay_mask_ok), (ex.check_wy_chunk, wy_ok), (ex.check_seed_summary, summary_ok),
]


@pytest.mark.parametrize("checker, fn", RIGHT, ids=[c.__name__ for c, _ in RIGHT])
def test_checker_accepts_right_answer(checker, fn, capsys):
    assert checker(fn) is True
    out = capsys.readouterr().out
    assert out.startswith("✓") and "✗" not in out


# --------------------------------------------------------------------------- typical wrong answers
def _library_wy(K, V, beta, g):
    """Right values, but the answer calls the library's gated delta_step (the checker must refuse it)."""
    delta_step(torch.zeros(K.shape[-1], V.shape[-1], dtype=K.dtype), K[0], V[0], beta[0], g[0])
    return _gated_wy(K, V, beta, g)


def _first_crossing(ns, fast, slow):
    y = [math.log(f / s) for f, s in zip(fast, slow)]
    for i in range(1, len(y)):
        if y[i - 1] >= 0 > y[i]:
            x0, x1 = math.log(ns[i - 1]), math.log(ns[i])
            return math.exp(x0 + (0 - y[i - 1]) * (x1 - x0) / (y[i] - y[i - 1]))
    return ns[-1]


def _seed0(runs, mixer, pairs):
    (a,) = [r["accuracy"] for r in runs if r["mixer"] == mixer and r["settings"]["num_kv_pairs"] == pairs
            and r["settings"]["seed"] == 0]
    return a, a, a


def _pooled_pairs(runs, mixer, pairs):
    a = [r["accuracy"] for r in runs if r["mixer"] == mixer]
    return sum(a) / len(a), min(a), max(a)


WRONG = [
    (ex.check_chunkwise_flops, lambda n, d, c: n * 4 * d * d, "intra-chunk"),
    (ex.check_chunkwise_flops, lambda n, d, c: n * (2 * d * d + 4 * c * d), "two d² products"),
    (ex.check_chunkwise_flops, lambda n, d, c: 2 * n * n * d, "quadratic in N"),
    (ex.check_loglog_slope, lambda ns, ts: math.log(ts[-1] / ts[0]) / math.log(ns[-1] / ns[0]), "two end points"),
    (ex.check_loglog_slope, lambda ns, ts: slope_ok(ns, ts) / math.log(10), "mixed log bases"),
    (ex.check_crossover, _first_crossing, "*first* crossing"),
    (ex.check_crossover, lambda ns, f, s: next(n for n, a, b in zip(ns, f, s) if a < b), "grid point"),
    (ex.check_cache_bytes, lambda s, n, b: 2 * s.layers * s.heads * s.head_dim * n * b, "*KV* head"),
    (ex.check_cache_bytes, lambda s, n, b: cache_ok(s, n, b) // 2, "the factor 2"),
    (ex.check_cache_bytes, lambda s, n, b: 2 * s.layers * s.kv_heads * s.head_dim * n * b, "MLA caches one latent"),
    (ex.check_cache_bytes, lambda s, n, b: cache_bytes(s, n, dtype=b), "write the formula yourself"),
    (ex.check_window_cache_bytes, lambda s, n, w, b: 2 * s.layers * s.kv_heads * s.head_dim * n * b, "full cache"),
    (ex.check_window_cache_bytes, lambda s, n, w, b: 2 * s.layers * s.kv_heads * s.head_dim * w * b, "min(N, w)"),
    (ex.check_hybrid_bytes, lambda s, n, a, b: 2 * a * s.kv_heads * s.head_dim * n * b, "left out the linear"),
    (ex.check_hybrid_bytes, lambda s, n, a, b: hybrid_ok(s, n, a, b) + a * s.kv_heads * s.head_dim ** 2 * b,
     "gave every layer a state"),
    (ex.check_interference, lambda K, V, j: (K @ K[j]) @ V, "whole readout"),
    (ex.check_interference, lambda K, V, j: (K @ K[j]) @ V - V[j], "only for a unit key"),
    (ex.check_interference, lambda K, V, j: -interference_ok(K, V, j), "sign is flipped"),
    (ex.check_decay_mask, lambda g: (decay_mask_ok(g)[0].transpose(-2, -1), *decay_mask_ok(g)[1:]), "transposed"),
    (ex.check_decay_mask, lambda g: ((g.cumsum(-1)[..., :, None] - g.cumsum(-1)[..., None, :]).exp(),
                                     *decay_mask_ok(g)[1:]), "must be 0"),
    (ex.check_decay_mask, lambda g: (decay_mask_ok(g)[0] * g[..., None, :].exp(), *decay_mask_ok(g)[1:]),
     "L is off by one step"),
    (ex.check_decay_mask, lambda g: (decay_mask_ok(g)[0], (g.cumsum(-1) - g).exp(), decay_mask_ok(g)[2]),
     "into is off by one step"),
    (ex.check_decay_mask, lambda g: (*decay_mask_ok(g)[:2], decay_mask_ok(g)[2] * g.exp()), "out is off by one step"),
    (ex.check_decay_mask, lambda g: (*decay_mask_ok(g)[:2], g.cumsum(-1).exp()), "decay *up to* token j"),
    (ex.check_decay_mask, lambda g: (decay_mask_ok(g)[0].log().nan_to_num(0, 0, 0), *decay_mask_ok(g)[1:]),
     "exponentiate"),
    (ex.check_decay_mask, lambda g: (decay_mask(g), g.cumsum(-1).exp(), decay_mask(g)[..., -1, :]),
     "calls the library's decay_mask()"),
    (ex.check_wy_chunk, lambda K, V, b, g: _gated_wy(K, V, b, g, decay_kk=False, decay_w=False), "ungated chunk"),
    (ex.check_wy_chunk, lambda K, V, b, g: _gated_wy(K, V, b, g, decay_kk=False), "forgot the decay on KKᵀ"),
    (ex.check_wy_chunk, lambda K, V, b, g: _gated_wy(K, V, b, g, decay_w=False), "W needs the decayed keys"),
    (ex.check_wy_chunk, lambda K, V, b, g: _gated_wy(K, V, b, g, diag=0), "*unit* lower-triangular"),
    (ex.check_wy_chunk, lambda K, V, b, g: _gated_wy(K, V, b, g, exclusive=True), "off by one in the cumulative gate"),
    (ex.check_wy_chunk, _library_wy, "calls the library's delta_step()"),
    (ex.check_gated_step, lambda S, k, v, g: gated_step(S, torch.zeros_like(k), k, v, g.unsqueeze(-1))[0],
     "calls the library's gated_step()"),
    (ex.check_delta_step, lambda S, k, v, b: delta_step(S, k, v, b), "calls the library's delta_step()"),
    (ex.check_seed_summary, _seed0, "seed 0 only"),
    (ex.check_seed_summary, _pooled_pairs, "pooled every pair count"),
]


@pytest.mark.parametrize("checker, fn, phrase", WRONG, ids=[f"{c.__name__}-{p}" for c, _, p in WRONG])
def test_checker_rejects_wrong_answer_with_its_diagnosis(checker, fn, phrase, capsys):
    assert checker(fn) is False
    out = capsys.readouterr().out
    assert out.startswith("✗") and phrase in out, out


@pytest.mark.parametrize("checker", [c for c, _ in RIGHT], ids=[c.__name__ for c, _ in RIGHT])
def test_each_checker_names_at_least_two_wrong_answers(checker):
    assert sum(c is checker for c, _, _ in WRONG) >= 2


def test_checkers_leave_the_global_rng_alone():
    torch.manual_seed(0)
    before = torch.rand(3)
    torch.manual_seed(0)
    for checker, fn in RIGHT:
        checker(fn)
    assert torch.equal(torch.rand(3), before)


# --------------------------------------------------------------------------- data-driven verdicts (09)
def _runs(table, key="num_kv_pairs", value=16):
    return [{"mixer": m, "accuracy": a, "settings": {key: value, "seed": s}}
            for m, accs in table.items() for s, a in enumerate(accs)]


def test_biggest_step_reads_the_runs(capsys):
    runs = _runs({"linear": [0.2, 0.3, 0.25], "linear_nodenom": [0.3, 0.3, 0.3], "additive": [0.9, 0.8, 0.85],
                  "delta": [0.95, 0.9, 0.9]})
    assert ex.ablation_gains(runs, 16) == pytest.approx({"normaliser": 0.05, "feature map": 0.55, "write rule": 0.0667},
                                                        abs=1e-3)
    assert ex.check_biggest_step("feature map", runs, 16) is True
    assert ex.check_biggest_step("write rule", runs, 16) is False
    assert "feature map +0.55" in capsys.readouterr().out
    assert ex.check_biggest_step("the map", runs, 16) is False
    assert ex.check_biggest_step("normaliser", runs, 4) is False  # no runs at 4 pairs
    assert "lack the ablation" in capsys.readouterr().out


def test_best_hybrid_reads_the_runs(capsys):
    runs = _runs({"linear+linear": [0.1, 0.2, 0.15], "linear+softmax": [0.9, 1.0, 0.95],
                  "window_linear+window_linear": [0.5, 0.6, 0.4]})
    assert ex.best_model(runs) == ("linear+softmax", pytest.approx(0.95))
    assert ex.check_best_hybrid("linear+softmax", runs) is True
    assert ex.check_best_hybrid("window_linear+window_linear", runs) is False
    assert "0.95" in capsys.readouterr().out
    assert ex.check_best_hybrid("softmax", runs) is False


# --------------------------------------------------------------------------- design scenarios (08)
SCENARIOS = {"platform_team": "d", "debug_inference": "a", "chat_deployment": "b", "regulated_review": "cd",
             "design_doc": "abc"}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_accepts_its_answer_and_explains_with_numbers(name, capsys):
    assert ex.check_choice(name, SCENARIOS[name]) is True
    out = capsys.readouterr().out
    assert out.startswith("✓") and "Why:" in out


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_rejects_every_other_single_answer(name, capsys):
    right = SCENARIOS[name]
    for letter in "abcd":
        if letter != right:
            assert ex.check_choice(name, letter) is False
    assert "✗" in capsys.readouterr().out


def test_design_doc_prices_the_saving():
    from linattn_edu.memory import PRESETS, state_bytes
    s = PRESETS["llama-2-7b"]
    assert cache_bytes(s, 131072) // state_bytes(s) == 2048  # "about 2,000x" in option (a)
    assert "99.95%" in ex.QUESTIONS["design_doc"].explain()


def test_chat_deployment_counts_conversations():
    text = ex.QUESTIONS["chat_deployment"].explain()
    assert "80 conversations" in text and "640 conversations" in text  # GQA vs MQA in 40 GiB at 4k tokens
