"""Every exercise checker accepts a right answer and rejects the typical wrong ones with a useful hint.

Quizzes are tested in test_quiz.py; the notebooks' exercise cells in test_exercise_notebooks.py.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from linattn_edu import exercises as ex

# --------------------------------------------------------------------------- right answers


def scores_ok(q, k):
    return q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])


def softmax_ok(s):
    e = torch.exp(s - s.amax(-1, keepdim=True))
    return e / e.sum(-1, keepdim=True)


def mask_ok(n):
    return torch.ones(n, n, dtype=torch.bool).tril()


def attention_ok(q, k, v, causal):
    s = scores_ok(q, k)
    if causal:
        s = s.masked_fill(~mask_ok(s.shape[-1]), -math.inf)
    return softmax_ok(s) @ v


def gaussian_ok(q, k, h):
    return torch.exp(-torch.cdist(q, k).pow(2) / (2 * h**2))


def nw_ok(xq, xt, yt, h):
    w = torch.exp(-(xq[:, None] - xt[None, :]) ** 2 / (2 * h**2))
    return (w @ yt) / w.sum(-1)


def exp_kernel_ok(q, k):
    return torch.exp(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]))


def kv_ok(k, v, phi):
    fk = phi(k)
    return fk.transpose(-2, -1) @ v, fk.sum(-2)


def linear_ok(q, k, v, phi):
    s, z = kv_ok(k, v, phi)
    fq = phi(q)
    return (fq @ s) / (fq @ z.unsqueeze(-1))


def weights_ok(q, k, phi):
    a = phi(q) @ phi(k).transpose(-2, -1)
    return a / a.sum(-1, keepdim=True)


def prefix_ok(k, v, phi):
    fk = phi(k)
    return (fk.unsqueeze(-1) * v.unsqueeze(-2)).cumsum(-3), fk.cumsum(-2)


def step_ok(s, z, q_t, k_t, v_t, phi):
    fk, fq = phi(k_t), phi(q_t)
    s = s + fk.unsqueeze(-1) * v_t.unsqueeze(-2)
    z = z + fk
    return (fq.unsqueeze(-2) @ s).squeeze(-2) / (fq * z).sum(-1, keepdim=True), s, z


def chunkwise_ok(q, k, v, phi, c):
    fq, fk = phi(q), phi(k)
    s = fq.new_zeros(*fq.shape[:-2], fq.shape[-1], v.shape[-1])
    z = fq.new_zeros(*fq.shape[:-2], fq.shape[-1])
    outs = []
    for i in range(0, q.shape[-2], c):
        qc, kc, vc = fq[..., i:i + c, :], fk[..., i:i + c, :], v[..., i:i + c, :]
        a = (qc @ kc.transpose(-2, -1)).tril()
        num = qc @ s + a @ vc
        den = qc @ z.unsqueeze(-1) + a.sum(-1, keepdim=True)
        outs.append(num / den)
        s = s + kc.transpose(-2, -1) @ vc
        z = z + kc.sum(-2)
    return torch.cat(outs, dim=-2)


def _scan(q, k, v):  # causal unnormalised: Σ_{j<=i} (q_i·k_j) v_j
    return ((q @ k.transpose(-2, -1)).tril()) @ v


def _rscan(q, k, v):  # the same, backwards in time: Σ_{j>=i}
    return _scan(q.flip(-2), k.flip(-2), v.flip(-2)).flip(-2)


def backward_ok(q, k, v, g):
    return _scan(g, v, k), _rscan(v, g, q), _rscan(k, q, g)


def elu1_ok(x):
    return F.elu(x) + 1


def taylor_ok(x):
    xs = x * x.shape[-1] ** -0.25
    outer = (xs.unsqueeze(-1) * xs.unsqueeze(-2)).flatten(-2) / math.sqrt(2)
    return torch.cat([torch.ones_like(xs[..., :1]), xs, outer], -1)


def taylor_other_layout(x):  # same kernel, features in a different order: must also pass
    f = taylor_ok(x)
    return f.flip(-1)


def favor_ok(x, omega):
    xs = x * x.shape[-1] ** -0.25
    return torch.exp(xs @ omega.T - xs.pow(2).sum(-1, keepdim=True) / 2) / math.sqrt(omega.shape[0])


RIGHT = [
    (ex.check_scaled_scores, scores_ok),
    (ex.check_stable_softmax, softmax_ok),
    (ex.check_causal_mask, mask_ok),
    (ex.check_softmax_attention, attention_ok),
    (ex.check_gaussian_kernel, gaussian_ok),
    (ex.check_nadaraya_watson, nw_ok),
    (ex.check_exp_kernel, exp_kernel_ok),
    (ex.check_kv_summary, kv_ok),
    (ex.check_linear_attention, linear_ok),
    (ex.check_linear_weights, weights_ok),
    (ex.check_prefix_states, prefix_ok),
    (ex.check_recurrent_step, step_ok),
    (ex.check_chunkwise, chunkwise_ok),
    (ex.check_causal_backward, backward_ok),
    (ex.check_elu_plus_one, elu1_ok),
    (ex.check_taylor_features, taylor_ok),
    (ex.check_taylor_features, taylor_other_layout),
    (ex.check_favor_features, favor_ok),
]


def cross_ok(q, k, v, key_mask, phi):  # notebook 03, section 7 (its wrong answers: test_exercises_seed_topics.py)
    fk = phi(k) * key_mask.unsqueeze(-1).to(k.dtype)  # (..., M, d_φ)
    fq = phi(q)  # (..., N, d_φ)
    return (fq @ (fk.transpose(-2, -1) @ v)) / (fq @ fk.sum(-2).unsqueeze(-1))


def denominators_ok(fq, fk):  # notebook 05, section 6
    return (fq * fk.cumsum(-2)).sum(-1)  # (..., N)


RIGHT += [(ex.check_cross_attention, cross_ok), (ex.check_causal_denominators, denominators_ok)]


@pytest.mark.parametrize("checker, fn", RIGHT, ids=[f"{c.__name__}-{f.__name__}" for c, f in RIGHT])
def test_checker_accepts_right_answer(checker, fn, capsys):
    assert checker(fn) is True
    out = capsys.readouterr().out
    assert out.startswith("✓") and "✗" not in out


def test_checkers_do_not_touch_global_rng():
    torch.manual_seed(0)
    before = torch.rand(3)
    torch.manual_seed(0)
    ex.check_softmax_attention(attention_ok)
    assert torch.equal(torch.rand(3), before)


NOT_FUNCTION_CHECKERS = {"check_order", "check_choice", "check_hand_output"}  # tested in their own tests
MODULES = [ex.nb01_softmax, ex.nb02_kernels, ex.nb03_linear, ex.nb04_recurrent, ex.nb05_feature_maps]


def test_all_checkers_are_tested():
    names = {c.__name__ for c, _ in RIGHT}
    public = {n for m in MODULES for n in m.__all__ if n.startswith("check_")} - NOT_FUNCTION_CHECKERS
    assert names == public


def test_package_reexports_every_notebook_module():
    assert ex._notebook_modules()[:5] == [m.__name__.rsplit(".", 1)[1] for m in MODULES]
    for m in MODULES:
        for name in m.__all__:
            assert getattr(ex, name) is getattr(m, name) and name in ex.__all__


# --------------------------------------------------------------------------- typical wrong answers
# (checker, wrong function, a phrase the hint must contain)


WRONG = [
    # 01
    (ex.check_scaled_scores, lambda q, k: q @ k.transpose(-2, -1), "√d"),
    (ex.check_scaled_scores, lambda q, k: q @ k.transpose(-2, -1) / q.shape[-1], "divided by d"),
    (ex.check_scaled_scores, lambda q, k: k @ q.transpose(-2, -1) / math.sqrt(q.shape[-1]), "shape"),
    (ex.check_stable_softmax, lambda s: torch.exp(s) / torch.exp(s).sum(-1, keepdim=True), "row's max"),
    (ex.check_stable_softmax, lambda s: softmax_ok(s.transpose(-2, -1)).transpose(-2, -1), "columns"),
    (ex.check_stable_softmax, lambda s: torch.exp(s - s.amax(-1, keepdim=True)), "sum to 1"),
    (ex.check_causal_mask, lambda n: torch.ones(n, n, dtype=torch.bool).tril(-1), "diagonal"),
    (ex.check_causal_mask, lambda n: torch.ones(n, n, dtype=torch.bool).triu(), "upper triangle"),
    (ex.check_causal_mask, lambda n: torch.ones(n, n).tril(), "bool"),
    (ex.check_causal_mask, lambda n: ~torch.ones(n, n, dtype=torch.bool).tril(), "forbidden"),
    (ex.check_softmax_attention, lambda q, k, v, c: attention_ok(q, k, v, False), "causal=True"),
    (ex.check_softmax_attention,
     lambda q, k, v, c: attention_ok(q * q.shape[-1] ** 0.25, k * q.shape[-1] ** 0.25, v, c), "1/√d"),
    # 02
    (ex.check_gaussian_kernel, lambda q, k, h: torch.exp(-torch.cdist(q, k).pow(2) / h**2), "2h²"),
    (ex.check_gaussian_kernel, lambda q, k, h: torch.exp(-torch.cdist(q, k) / (2 * h**2)), "squared distance"),
    (ex.check_gaussian_kernel, lambda q, k, h: torch.exp(-torch.cdist(q, k).pow(2) / (2 * h)), "h squared"),
    (ex.check_nadaraya_watson,
     lambda xq, xt, yt, h: torch.exp(-(xq[:, None] - xt[None, :]) ** 2 / (2 * h**2)) @ yt, "Σ_j κ"),
    (ex.check_nadaraya_watson,
     lambda xq, xt, yt, h: (lambda w: (w / w.sum(0, keepdim=True)) @ yt)(
         torch.exp(-(xq[:, None] - xt[None, :]) ** 2 / (2 * h**2))), "over the queries"),
    (ex.check_exp_kernel, lambda q, k: torch.exp(q @ k.transpose(-2, -1)), "1/√d"),
    (ex.check_exp_kernel, lambda q, k: torch.exp(q @ k.transpose(-2, -1) / q.shape[-1]), "divided by d"),
    # 03
    (ex.check_kv_summary, lambda k, v, phi: (v.transpose(-2, -1) @ phi(k), phi(k).sum(-2)), "transposed"),
    (ex.check_kv_summary, lambda k, v, phi: (k.transpose(-2, -1) @ v, k.sum(-2)), "apply φ"),
    (ex.check_kv_summary, lambda k, v, phi: (phi(k).transpose(-2, -1) @ v, phi(k).sum(-1)), "z"),
    (ex.check_linear_attention, lambda q, k, v, phi: phi(q) @ (phi(k).transpose(-2, -1) @ v), "denominator"),
    (ex.check_linear_attention, lambda q, k, v, phi: weights_ok(q, k, phi) @ v, "N×N"),
    (ex.check_linear_attention, lambda q, k, v, phi: torch.softmax(
        q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), -1) @ v, "softmax attention"),
    (ex.check_linear_weights, lambda q, k, phi: phi(q) @ phi(k).transpose(-2, -1), "row"),
    (ex.check_linear_weights,
     lambda q, k, phi: (lambda a: a / a.sum(-2, keepdim=True))(phi(q) @ phi(k).transpose(-2, -1)), "columns"),
    (ex.check_linear_weights, lambda q, k, phi: torch.softmax(phi(q) @ phi(k).transpose(-2, -1), -1), "softmax"),
    # 04
    (ex.check_prefix_states,
     lambda k, v, phi: ((phi(k).unsqueeze(-1) * v.unsqueeze(-2)).sum(-3, keepdim=True).expand(
         *k.shape[:-1], k.shape[-1], v.shape[-1]), phi(k).sum(-2, keepdim=True).expand_as(k)), "non-causal"),
    (ex.check_prefix_states,
     lambda k, v, phi: tuple(x - y for x, y in zip(prefix_ok(k, v, phi),
                                                   (phi(k).unsqueeze(-1) * v.unsqueeze(-2), phi(k)))), "j < i"),
    (ex.check_recurrent_step,
     lambda s, z, q, k, v, phi: ((phi(q).unsqueeze(-2) @ s).squeeze(-2) / (phi(q) * z).sum(-1, keepdim=True),
                                 *step_ok(s, z, q, k, v, phi)[1:]), "before adding token t"),
    (ex.check_recurrent_step,
     lambda s, z, q, k, v, phi: (step_ok(s, z, q, k, v, phi)[0], s + phi(k).unsqueeze(-1) * v.unsqueeze(-2) * 2,
                                 z + phi(k)), "largest difference"),
    (ex.check_chunkwise,
     lambda q, k, v, phi, c: torch.cat([chunkwise_ok(q[..., i:i + c, :], k[..., i:i + c, :], v[..., i:i + c, :],
                                                     phi, c) for i in range(0, q.shape[-2], c)], -2),
     "carried state"),
    (ex.check_chunkwise, lambda q, k, v, phi, c: linear_ok(q, k, v, phi), "largest difference"),
    (ex.check_chunkwise,
     lambda q, k, v, phi, c: chunkwise_ok(q[..., :q.shape[-2] // c * c, :], k[..., :q.shape[-2] // c * c, :],
                                          v[..., :q.shape[-2] // c * c, :], phi, c), "shape"),
    (ex.check_causal_backward, lambda q, k, v, g: (_scan(g, v, k), _scan(v, g, q), _rscan(k, q, g)), "backwards"),
    (ex.check_causal_backward, lambda q, k, v, g: (_scan(g, v, k), _rscan(v, g, q), _scan(k, q, g)), "backwards"),
    (ex.check_causal_backward,
     lambda q, k, v, g: ((g @ v.transpose(-2, -1)) @ k, _rscan(v, g, q), _rscan(k, q, g)), "mask"),
    # 05
    (ex.check_elu_plus_one, F.elu, "+ 1"),
    (ex.check_elu_plus_one, F.relu, "relu"),
    (ex.check_elu_plus_one, lambda x: F.relu(x) + 1, "exp(x)"),
    (ex.check_taylor_features,
     lambda x: (lambda xs: torch.cat([torch.ones_like(xs[..., :1]), xs,
                                      (xs.unsqueeze(-1) * xs.unsqueeze(-2)).flatten(-2)], -1))(
         x * x.shape[-1] ** -0.25), "√2"),
    (ex.check_taylor_features,
     lambda x: torch.cat([torch.ones_like(x[..., :1]), x, (x.unsqueeze(-1) * x.unsqueeze(-2)).flatten(-2)
                          / math.sqrt(2)], -1), "d^(-1/4)"),
    (ex.check_taylor_features,
     lambda x: torch.cat([torch.ones_like(x[..., :1]), x * x.shape[-1] ** -0.25], -1), "s²/2"),
    (ex.check_favor_features,
     lambda x, w: torch.exp(x * x.shape[-1] ** -0.25 @ w.T) / math.sqrt(w.shape[0]), "‖x'‖²/2"),
    (ex.check_favor_features,
     lambda x, w: torch.exp(x @ w.T - x.pow(2).sum(-1, keepdim=True) / 2) / math.sqrt(w.shape[0]), "d^(-1/4)"),
    (ex.check_favor_features, lambda x, w: favor_ok(x, w) * math.sqrt(w.shape[0]), "√m"),
    (ex.check_favor_features,
     lambda x, w: torch.cat([torch.sin(x @ w.T), torch.cos(x @ w.T)], -1) / math.sqrt(w.shape[0]), "shape"),
]


@pytest.mark.parametrize("checker, fn, phrase", WRONG,
                         ids=[f"{i}-{c.__name__}" for i, (c, _, _) in enumerate(WRONG)])
def test_checker_rejects_wrong_answer_with_hint(checker, fn, phrase, capsys):
    assert checker(fn) is False
    out = capsys.readouterr().out
    assert out.startswith("✗"), out
    assert "hint:" in out
    assert phrase in out, out


def test_wrong_answer_message_shows_expected_and_got(capsys):
    assert ex.check_scaled_scores(lambda q, k: q @ k.transpose(-2, -1)) is False
    out = capsys.readouterr().out
    assert "expected [" in out and "got      [" in out and "largest difference" in out


def test_checker_reports_exceptions_instead_of_raising(capsys):
    def broken(q, k):
        raise RuntimeError("boom")

    assert ex.check_scaled_scores(broken) is False
    assert "raised RuntimeError: boom" in capsys.readouterr().out


def test_checker_reports_wrong_number_of_outputs(capsys):
    assert ex.check_kv_summary(lambda k, v, phi: phi(k).transpose(-2, -1) @ v) is False
    assert "expected 2 output(s)" in capsys.readouterr().out


def test_checker_rejects_non_callable(capsys):
    assert ex.check_elu_plus_one(42) is False
    assert "expected a function" in capsys.readouterr().out


# --------------------------------------------------------------------------- known weaknesses, fixed


def _inverted_keep_later(q, k, v, causal):  # masks j <= i: the future is kept, the diagonal too is lost
    s = scores_ok(q, k)
    if causal:
        s = s.masked_fill(mask_ok(s.shape[-1]), -math.inf)
    return softmax_ok(s) @ v


def _inverted_triu(q, k, v, causal):  # keeps j >= i
    s = scores_ok(q, k)
    if causal:
        s = s.masked_fill(~torch.ones(s.shape[-1], s.shape[-1], dtype=torch.bool).triu(), -math.inf)
    return softmax_ok(s) @ v


@pytest.mark.parametrize("fn", [_inverted_keep_later, _inverted_triu])
def test_inverted_causal_mask_gets_its_own_diagnosis(fn, capsys):
    # before: "inf/NaN in your output: use a stable softmax" (the last row is all −∞ -> NaN)
    assert ex.check_softmax_attention(fn) is False
    out = capsys.readouterr().out
    assert "your mask is inverted: future positions are kept and past ones masked" in out, out
    assert "stable softmax" not in out


def test_nan_from_a_real_overflow_still_says_stable_softmax(capsys):
    def unstable(q, k, v, causal):
        s = scores_ok(q, k)
        if causal:
            s = s.masked_fill(~mask_ok(s.shape[-1]), -math.inf)
        e = torch.exp(s)
        return (e / e.sum(-1, keepdim=True)) @ v

    assert ex.check_softmax_attention(unstable) is False
    assert "use a stable softmax" in capsys.readouterr().out


LIBRARY_SOFTMAXES = [
    lambda s: torch.softmax(s, dim=-1),
    lambda s: F.softmax(s, dim=-1),
    lambda s: s.softmax(-1),
    lambda s: torch.nn.Softmax(dim=-1)(s),
    lambda s: torch.special.softmax(s, -1),
    lambda s: torch.exp(F.log_softmax(s, dim=-1)),
]


@pytest.mark.parametrize("fn", LIBRARY_SOFTMAXES, ids=["torch", "F", "Tensor", "module", "special", "log_softmax"])
def test_library_softmax_does_not_pass_write_a_softmax(fn, capsys):
    # before: torch.softmax passed "write a stable softmax"
    assert ex.check_stable_softmax(fn) is False
    out = capsys.readouterr().out
    assert "write it yourself: subtract the row max, exp, divide" in out, out


def test_the_librarys_own_stable_softmax_does_not_pass(capsys):
    from linattn_edu.softmax import stable_softmax

    assert ex.check_stable_softmax(stable_softmax) is False
    assert "write it yourself" in capsys.readouterr().out


def test_softmax_attention_may_use_torch_softmax(capsys):  # only the "write a softmax" exercise forbids it
    def with_torch(q, k, v, causal):
        s = scores_ok(q, k)
        if causal:
            s = s.masked_fill(~mask_ok(s.shape[-1]), -math.inf)
        return torch.softmax(s, -1) @ v

    assert ex.check_softmax_attention(with_torch) is True


# --------------------------------------------------------------------------- the hand computation (04)

HAND_RIGHT = ([[2, 2], [1, 4]], [3, 3], [5 / 9, 8 / 9])


def test_hand_example_by_hand_matches_the_library(capsys):
    # φ(k) = k + 1: φ(k_1) = [2, 1], φ(k_2) = [1, 2]; S_2 = [2,1]ᵀ[1,0] + [1,2]ᵀ[0,2]; φ(q_2) = [2, 1]
    assert ex.check_hand_output(*HAND_RIGHT) is True
    assert ex.check_hand_output([[2.0, 2.0], [1.0, 4.0]], [3.0, 3.0], [0.556, 0.889]) is True  # 3 decimals
    assert ex.check_hand_output(torch.tensor(HAND_RIGHT[0]), torch.tensor(HAND_RIGHT[1]),
                                torch.tensor(HAND_RIGHT[2])) is True
    assert capsys.readouterr().out.count("✓") == 3


@pytest.mark.parametrize("answer, phrase", [
    (([[4, 4], [3, 6]], [5, 5], [11 / 15, 14 / 15]), "summed all three tokens"),
    (([[2, 0], [1, 0]], [2, 1], [1, 0]), "include token 2 itself"),
    (([[2, 1], [2, 4]], [3, 3], [5 / 9, 8 / 9]), "transposed"),
    (([[1, 0], [0, 2]], [1, 1], [1, 0]), "apply φ to the keys"),
    (([[2, 2], [1, 4]], [3, 3], [2 / 3, 2 / 3]), "apply φ to the query"),
    (([[2, 2], [1, 4]], [3, 3], [5, 8]), "denominator"),
    (([[2, 2], [1, 4]], [3, 3], [0.5, 0.9]), "out_2: not right yet"),
    (("two", [3, 3], [5, 8]), "nested lists"),
])
def test_hand_example_wrong_answers(answer, phrase, capsys):
    assert ex.check_hand_output(*answer) is False
    out = capsys.readouterr().out
    assert out.startswith("✗") and phrase in out, out


def test_show_hand_example_prints_the_problem_not_the_answer(capsys):
    ex.show_hand_example()
    out = capsys.readouterr().out
    assert "token 3:" in out and "check_hand_output" in out
    assert "0.556" not in out and "0.889" not in out


def test_hand_example_never_prints_the_expected_numbers_on_a_miss(capsys):
    assert ex.check_hand_output([[0, 0], [0, 0]], [0, 0], [0, 0]) is False
    out = capsys.readouterr().out
    for number in ("0.556", "0.889", "0.5556", "0.8889", "[2, 2", "[3, 3"):
        assert number not in out, out
    assert "reveal_hand_example()" in out
    ex.reveal_hand_example()
    shown = capsys.readouterr().out
    assert "0.556" in shown and "0.889" in shown and "[[2.0, 2.0], [1.0, 4.0]]" in shown


# --------------------------------------------------------------------------- teaching on the first try

from linattn_edu.exercises import nb01_softmax, nb02_kernels, nb03_linear, nb04_recurrent, nb05_feature_maps  # noqa: E402
from linattn_edu.exercises import runner  # noqa: E402

HINT_MODULES = (nb01_softmax, nb02_kernels, nb03_linear, nb04_recurrent, nb05_feature_maps)
ALL_HINTS = [(m, name) for m in HINT_MODULES for name in m.HINTS]


def _hint_function(hint):
    namespace = {"torch": torch, "math": math}
    exec(hint.code, namespace)
    (fn,) = [v for k, v in namespace.items() if k.startswith("my_")]
    return fn


@pytest.mark.parametrize("module, name", ALL_HINTS, ids=[n for _, n in ALL_HINTS])
def test_every_hints_code_passes_its_checker_and_the_hidden_test(module, name, capsys):
    fn = _hint_function(module.HINTS[name])
    assert getattr(module, name)(fn) is True, capsys.readouterr().out
    assert ex.guard(name, fn) is True, capsys.readouterr().out


def test_every_code_exercise_of_01_to_05_has_a_two_tier_hint():
    checkers = [n for m in HINT_MODULES for n in m.__all__ if n.startswith("check_") and n != "check_hand_output"]
    assert sorted(checkers) == sorted(n for _, n in ALL_HINTS)
    for module, name in ALL_HINTS:
        hint = module.HINTS[name]
        assert hint.idea and hint.code and "def my_" in hint.code
        assert not any(token in hint.idea for token in ("def ", "return ")), f"{name}: the first tier is code"


def test_first_miss_gives_the_idea_second_miss_the_code(capsys, monkeypatch):
    monkeypatch.setattr(runner, "_MISSES", {})

    def wrong(q, k):
        return q @ k.transpose(-2, -1) * 0 + 1.0  # no diagnosis matches: the general hint

    ex.check_scaled_scores(wrong)
    first = capsys.readouterr().out
    ex.check_scaled_scores(wrong)
    second = capsys.readouterr().out
    code = nb01_softmax.HINTS["check_scaled_scores"].code
    assert nb01_softmax.HINTS["check_scaled_scores"].idea in first and "def my_scaled_scores" not in first
    assert "def my_scaled_scores" in second and code.splitlines()[1].strip() in second


def test_linear_attention_hint_works_on_the_batched_case(capsys):
    # The old hint (φ(Q) @ z)[..., None] fails on batch dims; the new one unsqueezes z.
    assert "z.unsqueeze(-1)" in nb03_linear.HINTS["check_linear_attention"].code
    assert "[..., None]" not in nb03_linear.HINTS["check_linear_attention"].code


def test_a_broadcast_error_on_the_batched_case_is_explained(capsys):
    def old_hint(q, k, v, phi):  # the wrong hint students were given: (φ(Q) @ z)[..., None]
        fq, fk = phi(q), phi(k)
        S, z = fk.transpose(-2, -1) @ v, fk.sum(-2)
        return (fq @ S) / (fq @ z)[..., None]

    assert ex.check_linear_attention(old_hint) is False
    out = capsys.readouterr().out
    assert "shape error" in out and "on your line: return (fq @ S) / (fq @ z)[..., None]" in out
    assert "batch dims (2, 3)" in out and "unsqueeze(-1)" in out
    assert "expected: out of shape (2, 3, 37, 5)" in out


def test_a_missing_unsqueeze_in_the_step_names_the_arguments(capsys):
    def step(S, z, q_t, k_t, v_t, phi):
        fk, fq = phi(k_t), phi(q_t)
        S = S + fk.unsqueeze(-1) * v_t.unsqueeze(-2)
        z = z + fk
        out = (fq @ S) / (fq * z).sum(-1, keepdim=True)  # fq (..., d_φ) @ S (..., d_φ, d_v): wrong for batches
        return out, S, z

    assert ex.check_recurrent_step(step) is False
    out = capsys.readouterr().out
    assert "shape error" in out and "on your line:" in out and "batch dims" in out
    assert "S (" in out  # the argument named, with its shape


def test_normalised_exp_kernel_is_refused(capsys):
    def normalised(q, k):
        w = torch.exp(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]))
        return w / w.sum(-1, keepdim=True)

    assert ex.check_exp_kernel(normalised) is False
    assert "your kernel is normalised" in capsys.readouterr().out


def test_a_python_loop_over_queries_does_not_pass_the_o_n_exercise(capsys):
    def per_query(q, k, v, phi):
        fk = phi(k)
        S, z = fk.transpose(-2, -1) @ v, fk.sum(-2)
        rows = []
        for i in range(q.shape[-2]):
            fq = phi(q[..., i, :])  # (..., d_φ)
            rows.append((fq.unsqueeze(-2) @ S).squeeze(-2) / (fq * z).sum(-1, keepdim=True))
        return torch.stack(rows, dim=-2)

    assert ex.check_linear_attention(per_query) is False
    assert "loops over the tokens in Python" in capsys.readouterr().out


def test_global_max_softmax_is_diagnosed_as_underflow(capsys):
    def global_max(s):
        e = torch.exp(s - s.max())
        return e / e.sum(-1, keepdim=True)

    assert ex.check_stable_softmax(global_max) is False
    out = capsys.readouterr().out
    assert "one max for the whole tensor" in out and "0/0" in out and "overflows" not in out


# --------------------------------------------------------------------------- graded mode and hidden tests


def test_graded_mode_raises_with_the_diagnosis():
    def no_sqrt(q, k):
        return q @ k.transpose(-2, -1)

    with pytest.raises(ex.ExerciseFailed, match="you did not divide by √d"):
        with ex.graded():
            ex.check_scaled_scores(no_sqrt)
    assert ex.check_scaled_scores(no_sqrt) is False  # outside graded(): a bool again


from linattn_edu import LinearAttentionState, linear_attention, softmax_attention  # noqa: E402
from linattn_edu.feature_maps import elu_plus_one  # noqa: E402

SHORTCUTS = [
    ("check_softmax_attention", lambda q, k, v, causal: softmax_attention(q, k, v, causal=causal)),
    ("check_softmax_attention",
     lambda q, k, v, causal: F.scaled_dot_product_attention(q, k, v, is_causal=causal)),
    ("check_stable_softmax", lambda s: __import__("linattn_edu.softmax", fromlist=["x"]).stable_softmax(s)),
    ("check_linear_attention", lambda q, k, v, phi: linear_attention(q, k, v, phi)),
    ("check_linear_attention", lambda q, k, v, phi: (lambda a: a @ v / a.sum(-1, keepdim=True))(
        phi(q) @ phi(k).transpose(-2, -1))),  # right values through an N×N matrix
    ("check_linear_attention", lambda q, k, v, phi: linear_ok(q, k, v, phi) + 0 * (
        phi(q).unsqueeze(-2) * phi(k).unsqueeze(-3)).flatten(-3).sum()),  # N²·d_φ elements in another shape
    ("check_chunkwise", lambda q, k, v, phi, c: linear_attention(q, k, v, phi, causal=True, form="chunkwise",
                                                                   chunk_size=c)),
    ("check_recurrent_step", None),  # built below: LinearAttentionState.step
    ("check_causal_backward", None),  # built below: autograd
    ("check_elu_plus_one", lambda x: elu_plus_one(x)),
]


def _state_step(S, z, q_t, k_t, v_t, phi):
    state = LinearAttentionState(q_t.shape[-1], v_t.shape[-1], feature_map=phi, batch_shape=tuple(q_t.shape[:-1]))
    state.S, state.z = S.clone(), z.clone()
    out = state.step(q_t, k_t, v_t)
    return (out, *state.snapshot())


def _autograd_backward(q, k, v, g):
    q, k, v = (x.clone().requires_grad_(True) for x in (q, k, v))
    out = ((q @ k.transpose(-2, -1)) * torch.ones(q.shape[-2], q.shape[-2]).tril()) @ v
    return torch.autograd.grad(out, (q, k, v), g)


@pytest.mark.parametrize("i", range(len(SHORTCUTS)), ids=[f"{n}-{i}" for i, (n, _) in enumerate(SHORTCUTS)])
def test_hidden_tests_refuse_shortcuts_without_saying_how(i, capsys):
    name, fn = SHORTCUTS[i]
    fn = fn or {"check_recurrent_step": _state_step, "check_causal_backward": _autograd_backward}[name]
    assert ex.guard(name, fn) is False
    out = capsys.readouterr().out
    assert "scores 0 here" in out
    out = out.split("\n", 1)[1]  # the verdict after its title line
    for word in ("linattn_edu", "autograd", "N×N", "torch.", "softmax_attention", "library", "spy"):
        assert word not in out, f"the hidden test's verdict says how: {word!r}"


def test_hidden_tests_accept_the_readers_own_work_with_the_feature_map_handed_in():
    assert ex.guard("check_linear_attention", linear_ok) is True
    assert ex.guard("check_softmax_attention", attention_ok) is True
