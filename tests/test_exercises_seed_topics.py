"""Checkers of the seed-topic sections: causal denominators (05), linear cross-attention with padding (03),
GQA from an MHA checkpoint and MLA's absorbed scores (07). Each accepts a right answer, refuses a hand-off
to the library in its hidden test, and names at least two typical wrong answers."""
from __future__ import annotations

import math

import pytest
import torch

from linattn_edu import exercises as ex
from linattn_edu.kv_sharing import mean_pool_kv_heads


# --------------------------------------------------------------------------- right answers
def denominators_ok(fq, fk):
    return (fq * fk.cumsum(-2)).sum(-1)  # (..., N)


def cross_ok(q, k, v, key_mask, phi):
    fk = phi(k) * key_mask.unsqueeze(-1).to(k.dtype)  # (..., M, d_φ)
    S, z = fk.transpose(-2, -1) @ v, fk.sum(-2)
    fq = phi(q)
    return (fq @ S) / (fq @ z.unsqueeze(-1))


def pool_ok(w, heads, groups):
    hd = w.shape[0] // heads
    return w.reshape(groups, heads // groups, hd, w.shape[1]).mean(1).reshape(groups * hd, w.shape[1])


def mla_ok(q_c, q_r, latent, k_r, w_uk):
    q_lat = torch.einsum("hec,he->hc", w_uk, q_c)  # (H, d_c)
    return (q_lat @ latent.T + q_r @ k_r.T) / math.sqrt(q_c.shape[-1] + q_r.shape[-1])


RIGHT = [(ex.check_causal_denominators, denominators_ok), (ex.check_cross_attention, cross_ok),
         (ex.check_mean_pool_kv, pool_ok), (ex.check_mla_scores, mla_ok)]


@pytest.mark.parametrize("checker, fn", RIGHT, ids=[c.__name__ for c, _ in RIGHT])
def test_checker_accepts_right_answer_and_its_hidden_test_too(checker, fn, capsys):
    assert checker(fn) is True
    assert ex.guard(checker, fn) is True
    out = capsys.readouterr().out
    assert out.startswith("✓") and "✗" not in out


@pytest.mark.parametrize("checker", [c for c, _ in RIGHT], ids=[c.__name__ for c, _ in RIGHT])
def test_hint_code_passes_its_checker(checker, capsys):
    module = __import__(checker.__module__, fromlist=["HINTS"])
    namespace = {"torch": torch, "math": math}
    exec(module.HINTS[checker.__name__].code, namespace)  # noqa: S102 - the hint's own code
    fn = next(v for k, v in namespace.items() if k.startswith("my_"))
    assert checker(fn) is True


# --------------------------------------------------------------------------- typical wrong answers
def _masked(mask_s, mask_z):
    def fn(q, k, v, key_mask, phi):
        fk = phi(k)
        col = key_mask.unsqueeze(-1).to(fk.dtype)
        fs, fz = (fk * col if mask_s else fk), (fk * col if mask_z else fk)
        fq = phi(q)
        return (fq @ (fs.transpose(-2, -1) @ v)) / (fq @ fz.sum(-2).unsqueeze(-1))
    return fn


def _cross_causal(q, k, v, key_mask, phi):
    a = (phi(q) @ phi(k).transpose(-2, -1)) * key_mask.unsqueeze(-2)
    a = a * torch.ones(a.shape[-2:], dtype=torch.bool).tril()
    return (a @ v) / a.sum(-1, keepdim=True)


def _interleaved(w, heads, groups):
    hd = w.shape[0] // heads
    return w.reshape(heads // groups, groups, hd, w.shape[1]).mean(0).reshape(groups * hd, w.shape[1])


def _first(w, heads, groups):
    hd = w.shape[0] // heads
    return w.reshape(groups, heads // groups, hd, w.shape[1])[:, 0].reshape(groups * hd, w.shape[1])


def _mla_naive(q_c, q_r, latent, k_r, w_uk):
    keys = torch.einsum("hec,mc->hme", w_uk, latent)  # (H, M, d_h): the up-projection the exercise avoids
    return (torch.einsum("he,hme->hm", q_c, keys) + q_r @ k_r.T) / math.sqrt(q_c.shape[-1] + q_r.shape[-1])


WRONG = [
    (ex.check_causal_denominators, lambda fq, fk: (fq * fk.sum(-2, keepdim=True)).sum(-1), "future ones included"),
    (ex.check_causal_denominators, lambda fq, fk: (fq * (fk.cumsum(-2) - fk)).sum(-1), "left key i out"),
    (ex.check_causal_denominators, lambda fq, fk: (fq * fk.flip(-2).cumsum(-2).flip(-2)).sum(-1), "j >= i"),
    (ex.check_causal_denominators, lambda fq, fk: fk.cumsum(-2).sum(-1), "with the query's features"),
    (ex.check_causal_denominators, lambda fq, fk: (fq @ fk.transpose(-2, -1)).tril().sum(-1), "N×N tensor"),
    (ex.check_causal_denominators,
     lambda fq, fk: torch.stack([(fq[..., i, :] * fk[..., :i + 1, :].sum(-2)).sum(-1) for i in range(fq.shape[-2])],
                                -1), "loops over the tokens"),
    (ex.check_cross_attention, _masked(False, False), "padding keys got into S and z"),
    (ex.check_cross_attention, _masked(True, False), "masked S but not z"),
    (ex.check_cross_attention, _masked(False, True), "masked z but not S"),
    (ex.check_cross_attention, _cross_causal, "no causal mask"),
    (ex.check_mean_pool_kv, _interleaved, "*consecutive* heads"),
    (ex.check_mean_pool_kv, lambda w, h, g: pool_ok(w, h, g) * (h // g), "summed the heads"),
    (ex.check_mean_pool_kv, _first, "kept the first head"),
    (ex.check_mean_pool_kv,
     lambda w, h, g: w.reshape(w.shape[0] // h, h, w.shape[1]).reshape(w.shape[0] // h, g, h // g, w.shape[1])
     .mean(2).reshape(-1, w.shape[1]), "not (head_dim, heads, d_model)"),
    (ex.check_mla_scores, _mla_naive, "fold W_UK into the query"),
    (ex.check_mla_scores, lambda *a: mla_ok(*a) * math.sqrt(a[0].shape[-1] + a[1].shape[-1]) / math.sqrt(a[0].shape[-1]),
     "content *and* the rotary dims"),
    (ex.check_mla_scores, lambda q_c, q_r, lat, k_r, w: torch.einsum("hec,he->hc", w, q_c) @ lat.T
     / math.sqrt(q_c.shape[-1] + q_r.shape[-1]), "left out the rotary part"),
    (ex.check_mla_scores, lambda q_c, q_r, lat, k_r, w: torch.einsum("hec,he->hc", w, q_c) @ lat.T
     / math.sqrt(q_c.shape[-1] + q_r.shape[-1]) + q_r @ k_r.T, "only the content part is scaled"),
    (ex.check_mla_scores, lambda *a: mla_ok(*a) * math.sqrt(a[0].shape[-1] + a[1].shape[-1]), "as attention does"),
]


@pytest.mark.parametrize("checker, fn, phrase", WRONG, ids=[f"{c.__name__}-{p}" for c, _, p in WRONG])
def test_checker_rejects_wrong_answer_with_its_diagnosis(checker, fn, phrase, capsys):
    assert checker(fn) is False
    out = capsys.readouterr().out
    assert out.startswith("✗") and phrase in out, out


@pytest.mark.parametrize("checker", [c for c, _ in RIGHT], ids=[c.__name__ for c, _ in RIGHT])
def test_each_checker_names_at_least_two_wrong_answers(checker):
    assert sum(c is checker for c, _, _ in WRONG) >= 2


def test_hidden_tests_refuse_the_library_and_the_up_projection(capsys):
    assert ex.guard(ex.check_mean_pool_kv, lambda w, h, g: mean_pool_kv_heads(w, h, g)) is False
    assert ex.check_mean_pool_kv(lambda w, h, g: mean_pool_kv_heads(w, h, g)) is False
    assert ex.guard(ex.check_mla_scores, _mla_naive) is False
    assert ex.guard(ex.check_causal_denominators,
                    lambda fq, fk: (fq @ fk.transpose(-2, -1)).tril().sum(-1)) is False
    capsys.readouterr()


def test_checkers_leave_the_global_rng_alone(capsys):
    torch.manual_seed(0)
    before = torch.rand(3)
    torch.manual_seed(0)
    for checker, fn in RIGHT:
        checker(fn)
    assert torch.equal(torch.rand(3), before)
    capsys.readouterr()
