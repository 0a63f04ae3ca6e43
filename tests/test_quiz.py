"""Quiz questions: marking, no explanation before an answer, shuffled ordering questions, design numbers."""
from __future__ import annotations

import pytest

from linattn_edu import exercises as ex
from linattn_edu import memory
from linattn_edu.exercises import questions as qs
from linattn_edu.exercises.runner import displayed_options

# Right answers in the letters the reader sees (ordering questions are shown shuffled).
RIGHT_ORDERS = {
    "softmax_steps": ["f", "b", "a", "d", "c", "e"],
    "linear_steps": ["c", "e", "b", "f", "d", "a"],  # S/z and num/den may swap
    "chunkwise_steps": ["c", "b", "d", "a"],         # intra/inter may swap
}
RIGHT_CHOICES = {
    "finite_features": "c", "bandwidth_limit": "b", "denominator_role": "b", "reorder_buys": "c",
    "identity_kernel": "c", "aggregated_state": "b", "trig_negative": "b", "expressive_power": "b",
    "long_context_latency": "d", "kv_budget": "a", "device_60k": "cde", "multi_tenant": "cd",
    "gqa_states": "b", "kv_crossover": "a", "mla_rope": "c",
}
MINE = set(qs.CORE_QUESTIONS) | set(qs.DESIGN_QUESTIONS) | set(qs.MEMORY_QUESTIONS)


def test_every_question_is_tested():
    assert set(RIGHT_ORDERS) | set(RIGHT_CHOICES) == MINE
    assert MINE <= set(ex.QUESTIONS)


@pytest.mark.parametrize("name", sorted(RIGHT_ORDERS))
def test_check_order_accepts_right_order(name, capsys):
    assert ex.check_order(name, RIGHT_ORDERS[name]) is True
    assert ex.check_order(name, [x.upper() for x in RIGHT_ORDERS[name]]) is True
    assert capsys.readouterr().out.startswith("✓")


@pytest.mark.parametrize("name", sorted(RIGHT_ORDERS))
def test_ordering_questions_are_never_shown_in_the_right_order(name, capsys):
    shown = list(displayed_options(name))
    assert shown == sorted(shown)  # letters a, b, c, … in the order listed
    with pytest.raises(AssertionError):
        assert ex.check_order(name, shown) is True
    assert displayed_options(name) == displayed_options(name)  # fixed seed: the same every call


@pytest.mark.parametrize("name", sorted(RIGHT_ORDERS))
def test_check_order_rejects_swapped_and_incomplete(name, capsys):
    right = RIGHT_ORDERS[name]
    assert ex.check_order(name, right[::-1]) is False
    assert ex.check_order(name, right[:-1]) is False
    assert ex.check_order(name, right[:-1] + right[:1]) is False
    out = capsys.readouterr().out
    assert "not a right order" in out and "exactly once" in out


# Every order the question allows, in shown letters (the question text says which steps commute).
ALSO_RIGHT = {
    "softmax_steps": [["f", "a", "b", "d", "c", "e"]],  # mask before scale: the same for a −∞/0 mask
    "linear_steps": [["c", "b", "d", "e", "f", "a"],     # S, its numerator, then z, its denominator
                     ["c", "e", "f", "b", "d", "a"]],
    "chunkwise_steps": [["c", "b", "a", "d"],            # the state may be updated once it has been read
                        ["b", "c", "a", "d"], ["c", "a", "b", "d"]],
}
ALWAYS_WRONG = {
    "softmax_steps": ["a", "f", "b", "d", "c", "e"],    # mask before the scores exist
    "linear_steps": ["c", "d", "b", "e", "f", "a"],      # numerator before S
    "chunkwise_steps": ["a", "c", "b", "d"],             # update before the state is read: counts keys twice
}


@pytest.mark.parametrize("name", sorted(ALSO_RIGHT))
def test_check_order_accepts_every_order_the_question_allows(name, capsys):
    for order in ALSO_RIGHT[name]:
        assert ex.check_order(name, order) is True, order
    assert ex.check_order(name, ALWAYS_WRONG[name]) is False


@pytest.mark.parametrize("name", sorted(ALSO_RIGHT))
def test_check_order_never_reveals_a_step(name, capsys):
    ex.check_order(name, ALWAYS_WRONG[name])
    out = capsys.readouterr().out
    assert "should be" not in out and "are right" not in out
    for letter, key in displayed_options(name).items():  # no step named, by letter or by text
        assert f"'{letter}'" not in out and ex.QUESTIONS[name].options[key] not in out


CORE_CHOICES = [n for n in RIGHT_CHOICES if n in qs.CORE_QUESTIONS or n in qs.DESIGN_QUESTIONS]


@pytest.mark.parametrize("name", CORE_CHOICES)
def test_each_wrong_option_gets_its_own_feedback(name, capsys):
    q = ex.QUESTIONS[name]
    seen = set()
    for letter in q.options:
        if letter in RIGHT_CHOICES[name]:
            continue
        assert letter in q.feedback, f"{name}: option {letter} has no feedback"
        ex.check_choice(name, letter if len(RIGHT_CHOICES[name]) == 1 else letter)
        out = capsys.readouterr().out
        assert q.feedback[letter] in out
        assert q.explain()[:60] not in out
        seen.add(q.feedback[letter])
    assert len(seen) == len(q.options) - len(RIGHT_CHOICES[name]), f"{name}: two options share one feedback"


@pytest.mark.parametrize("name", sorted(RIGHT_CHOICES))
def test_check_choice(name, capsys):
    right = RIGHT_CHOICES[name]
    assert ex.check_choice(name, right) is True
    assert ex.check_choice(name, right.upper()) is True
    wrong = next(x for x in ex.QUESTIONS[name].options if x not in right)
    assert ex.check_choice(name, wrong) is False
    assert ex.check_choice(name, "z") is False
    out = capsys.readouterr().out
    assert "✓" in out and "expected" in out
    assert ("not this one" in out) if len(right) == 1 else ("does not hold" in out)


@pytest.mark.parametrize("name", sorted(RIGHT_ORDERS) + sorted(RIGHT_CHOICES))
def test_explanation_only_after_the_right_answer(name, capsys):
    explanation = ex.QUESTIONS[name].explain()
    ex.show_question(name)
    shown = capsys.readouterr().out
    assert explanation not in shown and "Why:" not in shown
    if name in RIGHT_ORDERS:
        ex.check_order(name, RIGHT_ORDERS[name][::-1])
    else:
        ex.check_choice(name, next(x for x in ex.QUESTIONS[name].options if x not in RIGHT_CHOICES[name]))
    assert explanation not in capsys.readouterr().out  # a wrong answer gets the hint, not the explanation
    if name in RIGHT_ORDERS:
        ex.check_order(name, RIGHT_ORDERS[name])
    else:
        ex.check_choice(name, RIGHT_CHOICES[name])
    assert explanation in capsys.readouterr().out


def test_select_all_that_apply(capsys):
    assert ex.check_choice("device_60k", ["c", "d", "e"]) is True
    assert ex.check_choice("device_60k", "c, e, d") is True
    assert ex.check_choice("device_60k", "ce") is False
    assert "1 right option(s) are missing" in capsys.readouterr().out
    assert ex.check_choice("device_60k", "cdef") is False
    assert "f) MLA" in capsys.readouterr().out
    assert ex.check_choice("kv_budget", "ab") is False  # single-answer question: one letter
    assert "expected one letter" in capsys.readouterr().out


def test_question_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown question"):
        ex.check_order("nope", [])
    with pytest.raises(ValueError, match="use check_choice"):
        ex.check_order("trig_negative", ["b"])
    with pytest.raises(ValueError, match="use check_order"):
        ex.check_choice("softmax_steps", "a")
    with pytest.raises(ValueError, match="already registered"):
        ex.runner.add_questions({"kv_budget": qs.CORE_QUESTIONS["trig_negative"]})


def test_show_question_lists_options(capsys):
    ex.show_question("softmax_steps")
    out = capsys.readouterr().out
    assert "divide each row by its sum" in out and "check_order" in out
    ex.show_question("device_60k")
    assert "select all that apply" in capsys.readouterr().out


# --------------------------------------------------------------------------- the numbers behind the answers


def test_identity_kernel_example_is_what_the_library_computes():
    num, den, out = qs.identity_kernel_example()
    assert (num, den, out) == pytest.approx((-1.0, 1.0, -1.0), abs=1e-12)
    assert "−1, outside the range" in ex.QUESTIONS["identity_kernel"].options["c"]


def test_kv_budget_answer_follows_from_the_memory_calculator():
    per_conv = [memory.cache_bytes(memory.get_preset(p), 8192) for p in ("llama-2-7b", "llama-3-8b")]
    fits = [40 * 2**30 // b for b in per_conv]
    assert ex.QUESTIONS["kv_budget"].options["a"] == f"{fits[0]} and {fits[1]}"
    assert f"{fits[0]} and {fits[1]} conversations fit" in ex.QUESTIONS["kv_budget"].explain()


def test_device_60k_answer_is_exactly_the_designs_that_fit():
    s, n, budget = memory.get_preset("llama-2-7b"), 60000, 2 * 2**30
    sizes = {
        "a": memory.cache_bytes(s, n),
        "b": memory.cache_bytes(s.with_(kv_heads=8, kind="GQA"), n),
        "c": memory.cache_bytes(s.with_(kv_heads=1, kind="MQA"), n),
        "d": memory.cache_bytes(s, 2048),
        "e": memory.state_bytes(s),
        "f": memory.cache_bytes(s.with_(kind="MLA", latent_dim=512, rope_dim=64), n),
    }
    assert {x for x, b in sizes.items() if b <= budget} == set(ex.QUESTIONS["device_60k"].answer)
    text = ex.QUESTIONS["device_60k"].explain()
    assert all(memory.format_bytes(b) in text for b in sizes.values())


def test_long_context_answer_is_the_only_design_that_fits_and_recalls():
    s, n, budget = memory.get_preset("llama-3-8b"), 131072, 1.5 * 2**30
    assert memory.cache_bytes(s, n) > budget                                      # a) GQA
    assert memory.cache_bytes(s.with_(kv_heads=1, kind="MQA"), n) > budget        # b) MQA
    assert memory.cache_bytes(s, 4096) <= budget                                  # c) fits, but forgets
    hybrid = memory.cache_bytes(s.with_(layers=2), n) + memory.state_bytes(s.with_(layers=30))
    assert hybrid <= budget                                                       # d) fits and recalls
    assert memory.format_bytes(hybrid) in ex.QUESTIONS["long_context_latency"].explain()


def test_multi_tenant_answer_is_exactly_the_bounded_designs():
    s = memory.get_preset("llama-2-7b")
    grows = {
        "a": memory.cache_bytes(s, 100_000) > memory.cache_bytes(s, 1024),
        "b": memory.cache_bytes(s.with_(kv_heads=8, kind="GQA"), 100_000) > memory.cache_bytes(
            s.with_(kv_heads=8, kind="GQA"), 1024),
        "c": False,  # state_bytes takes no token count
        "d": False,  # a window caches at most 4096 tokens
        "e": memory.cache_bytes(s.with_(layers=4), 100_000) > memory.cache_bytes(s.with_(layers=4), 1024),
    }
    assert {x for x, g in grows.items() if not g} == set(ex.QUESTIONS["multi_tenant"].answer)


def test_gqa_states_answer_follows_from_state_bytes():
    s = memory.get_preset("llama-3-8b")
    one = memory.linear_state_bytes(layers=1, heads=1, d_phi=128, d_v=128, dtype="fp16")
    assert memory.state_bytes(s) == s.layers * s.kv_heads * one  # one state per KV head: answer b
    assert ex.QUESTIONS["gqa_states"].options["b"].startswith(f"{s.kv_heads}:")


def test_kv_crossover_answer_is_the_calculators():
    n = memory.crossover_tokens(memory.get_preset("llama-2-7b"))
    assert ex.QUESTIONS["kv_crossover"].options["a"] == f"{n:,}"
    assert f"after {n} tokens" in ex.QUESTIONS["kv_crossover"].explain()


def test_expressive_power_numbers_come_from_the_library():
    r = qs.self_attention_gap()
    assert r["linear_rank"] <= r["d"] < r["n"] == r["softmax_rank"]
    assert r["softmax_gap"] < 0.1 < r["bound"] <= r["linear_gap"] + 1e-9  # Eckart–Young holds for elu+1 too
    text = ex.QUESTIONS["expressive_power"].explain()
    assert f"{r['linear_gap']:.2f}" in text and f"{r['bound']:.2f}" in text
