"""Checkers of notebooks 10–11: each accepts a right answer and names the typical wrong ones; the exercise
cells of the notebooks carry marked solutions that no cell above them gives away."""
from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch

from linattn_edu import exercises as ex
from linattn_edu.mesa import mesa_step

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CELL = re.compile(r"```\{code-cell\}[^\n]*\n(.*?)```", re.S)
BLOCK = re.compile(r"^([ \t]*)### BEGIN SOLUTION\n(.*?)^[ \t]*### END SOLUTION\n", re.S | re.M)


# --------------------------------------------------------------------------- right answers (10)
def grad_ok(S, K, V, gamma, lam):
    return K.T @ (gamma[:, None] * (K @ S - V)) + lam * S


def readout_ok(K, V, gamma, lam, q):
    Kw = gamma[:, None] * K
    return (Kw.T @ V).T @ torch.linalg.solve(Kw.T @ K + lam * torch.eye(K.shape[1], dtype=K.dtype), q)


def mesa_step_ok(H_kk, H_kv, k, v, beta, g):
    keep, bk = g.exp()[..., None, None], (beta[..., None] * k)[..., :, None]
    return keep * H_kk + bk * k[..., None, :], keep * H_kv + bk * v[..., None, :]


RIGHT = [(ex.check_regression_grad, grad_ok), (ex.check_ridge_readout, readout_ok),
         (ex.check_mesa_step, mesa_step_ok)]


@pytest.mark.parametrize("checker, fn", RIGHT, ids=[c.__name__ for c, _ in RIGHT])
def test_checker_accepts_right_answer(checker, fn, capsys):
    assert checker(fn) is True
    out = capsys.readouterr().out
    assert out.startswith("✓") and "✗" not in out


def test_ridge_readout_accepts_the_kernel_form():
    # the push-through identity: Vᵀ Γ (K Kᵀ Γ + λI)⁻¹ K q is the same read-out from the n × n side
    def dual(K, V, gamma, lam, q):
        G = torch.diag(gamma)
        return V.T @ G @ torch.linalg.solve(K @ K.T @ G + lam * torch.eye(K.shape[0], dtype=K.dtype), K @ q)
    assert ex.check_ridge_readout(dual) is True


# --------------------------------------------------------------------------- typical wrong answers (10)
def _step_with(*, after=False, raw_g=False, beta=True, only_kv=False):
    def fn(H_kk, H_kv, k, v, b, g):
        keep = (g if raw_g else g.exp())[..., None, None]
        bb = (b if beta else torch.ones_like(b))[..., None, None]
        add_kk, add_kv = bb * k[..., :, None] * k[..., None, :], bb * k[..., :, None] * v[..., None, :]
        if after:
            return keep * (H_kk + add_kk), keep * (H_kv + add_kv)
        return (H_kk if only_kv else keep * H_kk) + add_kk, keep * H_kv + add_kv
    return fn


WRONG = [
    (ex.check_regression_grad, lambda S, K, V, gm, lam: -grad_ok(S, K, V, gm, lam), "sign is flipped"),
    (ex.check_regression_grad, lambda S, K, V, gm, lam: K.T @ (gm[:, None] * (K @ S - V)), "ridge term"),
    (ex.check_regression_grad, lambda S, K, V, gm, lam: K.T @ (K @ S - V) + lam * S, "weighs 1"),
    (ex.check_regression_grad, lambda S, K, V, gm, lam: 2 * grad_ok(S, K, V, gm, lam), "twice the gradient"),
    (ex.check_regression_grad, lambda S, K, V, gm, lam: grad_ok(S, K, V, gm, lam).T, "transposed"),
    (ex.check_ridge_readout, lambda K, V, gm, lam, q: (gm[:, None] * K).T.matmul(V).T @ q, "additive linear attention"),
    (ex.check_ridge_readout, lambda K, V, gm, lam, q: (gm[:, None] * K).T.matmul(V).T @ q / lam,
     "drops the key covariance"),
    (ex.check_ridge_readout, lambda K, V, gm, lam, q: readout_ok(K, V, gm, 0.0, q), "left out λI"),
    (ex.check_ridge_readout, lambda K, V, gm, lam, q: readout_ok(K, V, torch.ones_like(gm), lam, q), "weighs 1"),
    (ex.check_mesa_step, _step_with(after=True), "decayed after writing"),
    (ex.check_mesa_step, _step_with(raw_g=True), "g_t itself"),
    (ex.check_mesa_step, _step_with(beta=False), "left out β_t"),
    (ex.check_mesa_step, _step_with(only_kv=True), "only one statistic decays"),
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


def test_mesa_step_checker_compares_with_the_library():
    g = torch.Generator().manual_seed(0)
    h_kk, h_kv = torch.eye(3), torch.zeros(3, 2)
    k, v = torch.randn(3, generator=g), torch.randn(2, generator=g)
    b, lg = torch.tensor(0.5), torch.tensor(-0.3)
    for got, want in zip(mesa_step_ok(h_kk, h_kv, k, v, b, lg), mesa_step(h_kk, h_kv, k, v, b, lg)):
        assert torch.allclose(got, want)


def test_guards_refuse_the_library_shortcut():
    from linattn_edu.exercises import guard

    def library_step(H_kk, H_kv, k, v, b, g):
        return mesa_step(H_kk, H_kv, k, v, b, g)

    assert guard(ex.check_mesa_step, library_step) is False
    assert guard(ex.check_mesa_step, mesa_step_ok) is True


# --------------------------------------------------------------------------- the data-reading verdict (10)
TABLE = {"softmax": {2.0: [0.02, 0.03]}, "additive": {2.0: [1.4, 1.5]}, "delta": {2.0: [0.95, 0.99]},
         "gated delta": {2.0: [0.9, 0.94]}, "exact ridge": {2.0: [0.7, 0.74]}}


def test_best_solver_reads_the_table(capsys):
    assert ex.solver_means(TABLE, 2.0)["exact ridge"] == pytest.approx(0.72)
    assert ex.check_best_solver("exact ridge", TABLE) is True
    assert "exact ridge 0.72" in capsys.readouterr().out
    for wrong, phrase in (("softmax", "not a fixed-size state"), ("additive", "interference"),
                          ("delta", "newest pair only"), ("gated delta", "newest pair only")):
        assert ex.check_best_solver(wrong, TABLE) is False
        out = capsys.readouterr().out
        assert out.startswith("✗") and phrase in out, out
    assert ex.check_best_solver("ridge", TABLE) is False
    assert "expected one of" in capsys.readouterr().out
    assert ex.check_best_solver("exact ridge", TABLE, ratio=8.0) is False  # nothing measured there
    assert "no fixed-size solver" in capsys.readouterr().out


def test_best_solver_follows_the_data_not_a_fixed_answer():
    flipped = {**TABLE, "delta": {2.0: [0.5, 0.6]}}
    assert ex.check_best_solver("delta", flipped) is True
    assert ex.check_best_solver("exact ridge", flipped) is False


# --------------------------------------------------------------------------- transitions (11)
def _I(k):
    return torch.eye(k.shape[-1], dtype=k.dtype)


def _outer(k):
    return k[..., :, None] * k[..., None, :]


def delta_transition_ok(k, beta):
    return _I(k) - beta[..., None, None] * _outer(k)


def kda_ok(k, beta, g):
    return delta_transition_ok(k, beta) @ torch.diag_embed(g.exp())


def product_ok(K, beta):
    A = _I(K)
    for k, b in zip(K, beta):
        A = (_I(K) - b * torch.outer(k, k)) @ A
    return A


def _product_reversed(K, beta):
    A = _I(K)
    for k, b in zip(K, beta):
        A = A @ (_I(K) - b * torch.outer(k, k))
    return A


def _mod3(angle_deg, *, scale=1.0):
    def fn(d):
        K = torch.zeros(2, d, dtype=torch.float64)
        K[0, 0] = scale
        t = math.radians(angle_deg)
        K[1, 0], K[1, 1] = math.cos(t), math.sin(t)
        return K
    return fn


RIGHT_11 = [(ex.check_delta_transition, delta_transition_ok), (ex.check_kda_transition, kda_ok),
            (ex.check_product_transition, product_ok)]

WRONG_11 = [
    (ex.check_delta_transition, lambda k, b: _I(k) - _outer(k), "left out β"),
    (ex.check_delta_transition, lambda k, b: _I(k) + b[..., None, None] * _outer(k), "sign is flipped"),
    (ex.check_delta_transition, lambda k, b: -b[..., None, None] * _outer(k), "identity is missing"),
    (ex.check_kda_transition, lambda k, b, g: torch.diag_embed(g.exp()) @ delta_transition_ok(k, b),
     "decayed after the delta step"),
    (ex.check_kda_transition, lambda k, b, g: delta_transition_ok(k, b) @ torch.diag_embed(g), "log-decays g"),
    (ex.check_kda_transition, lambda k, b, g: delta_transition_ok(k, b) * g.exp().mean(-1)[..., None, None],
     "Gated DeltaNet"),
    (ex.check_product_transition, _product_reversed, "reverse order"),
    (ex.check_product_transition, lambda K, b: _I(K) - sum(bj * torch.outer(k, k) for k, bj in zip(K, b)),
     "first order"),
    (ex.check_product_transition, lambda K, b: product_ok(K, torch.ones_like(b)), "left out β_j"),
]


@pytest.mark.parametrize("checker, fn", RIGHT_11, ids=[c.__name__ for c, _ in RIGHT_11])
def test_transition_checker_accepts_right_answer(checker, fn, capsys):
    assert checker(fn) is True
    assert capsys.readouterr().out.startswith("✓")


def test_kda_checker_accepts_column_scaling():
    # H * e^g over the last axis scales H's columns: the same matrix as H @ Diag(e^g)
    assert ex.check_kda_transition(lambda k, b, g: delta_transition_ok(k, b) * g.exp()[..., None, :]) is True


@pytest.mark.parametrize("checker, fn, phrase", WRONG_11, ids=[f"{c.__name__}-{p}" for c, _, p in WRONG_11])
def test_transition_checker_rejects_wrong_answer_with_its_diagnosis(checker, fn, phrase, capsys):
    assert checker(fn) is False
    out = capsys.readouterr().out
    assert out.startswith("✗") and phrase in out, out


@pytest.mark.parametrize("checker", [c for c, _ in RIGHT_11], ids=[c.__name__ for c, _ in RIGHT_11])
def test_each_transition_checker_names_at_least_two_wrong_answers(checker):
    assert sum(c is checker for c, _, _ in WRONG_11) >= 2


@pytest.mark.parametrize("angle", [60.0, 120.0, -60.0])
def test_mod3_keys_accepts_any_rotation_by_a_third(angle, capsys):
    assert ex.check_mod3_keys(_mod3(angle)) is True
    assert capsys.readouterr().out.startswith("✓")


@pytest.mark.parametrize("fn, phrase", [(_mod3(0.0), "undo each other"), (_mod3(90.0), "mod 2"),
                                        (_mod3(30.0), "rotates by 60.0°"), (_mod3(60.0, scale=2.0), "unit key"),
                                        (lambda d: torch.zeros(3, d), "shape (2,")])
def test_mod3_keys_names_the_wrong_rotation(fn, phrase, capsys):
    assert ex.check_mod3_keys(fn) is False
    out = capsys.readouterr().out
    assert out.startswith("✗") and phrase in out, out


def test_transition_checkers_refuse_the_library_and_leave_the_rng_alone():
    from linattn_edu.exercises import guard
    from linattn_edu.transitions import delta_product_transition

    assert guard(ex.check_product_transition, lambda K, b: delta_product_transition(K, b)) is False
    assert guard(ex.check_product_transition, product_ok) is True
    torch.manual_seed(0)
    before = torch.rand(3)
    torch.manual_seed(0)
    for checker, fn in RIGHT_11:
        checker(fn)
    ex.check_mod3_keys(_mod3(60.0))
    assert torch.equal(torch.rand(3), before)


# --------------------------------------------------------------------------- the notebooks' exercise cells
def _source(number: str) -> str:
    (path,) = NOTEBOOKS.glob(f"{number}_*.md")
    return path.read_text(encoding="utf-8")


def _code_lines(text: str) -> set[str]:
    out = set()
    for line in text.splitlines():
        code = line.split("#", 1)[0].strip()
        if len(code) >= 25 and not code.startswith(("def ", "return (", "check_")):
            out.add(code)
    return out


NUMBERS = [p.name[:2] for p in sorted(NOTEBOOKS.glob("1[01]_*.md"))]
MODULES = {"10": "nb10_regression", "11": "nb11_transitions"}


@pytest.mark.parametrize("number", NUMBERS)
def test_at_least_three_checked_code_exercises_with_todo_hints(number):
    code = 0
    for cell in CELL.findall(_source(number)):
        if not re.search(r"^check_\w+\(", cell, re.M):
            continue
        blocks = BLOCK.findall(cell)
        assert len(blocks) == 1, f"one BEGIN/END SOLUTION block per exercise cell:\n{cell}"
        lines = cell.splitlines()
        begin = next(i for i, line in enumerate(lines) if line.strip() == "### BEGIN SOLUTION")
        assert re.fullmatch(r"# TODO: \S.+", lines[begin - 1].strip()), cell
        if re.search(r"^\s*def my_\w+\(", cell, re.M):
            code += 1
    assert code >= 3, f"notebook {number}: {code} checked code exercises"


@pytest.mark.parametrize("number", NUMBERS)
def test_no_solution_is_copyable_from_a_cell_above_it(number):
    cells = CELL.findall(_source(number))
    for i, cell in enumerate(cells):
        for _, solution in BLOCK.findall(cell):
            above = "\n".join(BLOCK.sub("", c) for c in cells[:i])
            copied = {line for line in _code_lines(solution) if line in above}
            assert not copied, f"notebook {number}: solution lines already written above: {copied}"


@pytest.mark.parametrize("number", NUMBERS)
def test_every_checker_of_the_notebook_is_used(number):
    module = getattr(ex, MODULES[number])
    text = _source(number)
    for name in module.__all__:
        if name.startswith("check_"):
            assert f"{name}(" in text, f"{name} is not used in notebook {number}"
