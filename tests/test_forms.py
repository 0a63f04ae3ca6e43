"""Every form of linear attention computes the same thing: outputs, final state, gradients."""
import pytest
import torch
from conftest import assert_close, rand

from linattn_edu import linear_attention
from linattn_edu.feature_maps import favor_plus
from linattn_edu.feature_maps import featurize
from linattn_edu.linear import causal_product, quadratic_form

NS = [1, 7, 64, 129]
CHUNKS = [1, 5, 64, 200]
LEADING = [(), (3,), (2, 3)]
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def make_qkv(lead, n, d=8, d_v=5, dtype=torch.float64, seed=0, grad=False):
    q, k = rand(*lead, n, d, dtype=dtype, seed=seed), rand(*lead, n, d, dtype=dtype, seed=seed + 1)
    v = rand(*lead, n, d_v, dtype=dtype, seed=seed + 2)
    if grad:
        for x in (q, k, v):
            x.requires_grad_(True)
    return q, k, v


def reference_state(q, k, v, fmap):
    """S = Σ_j φ(k_j) v_jᵀ, z = Σ_j φ(k_j) in float64, straight from the definition."""
    _, fk = featurize(q.double(), k.double(), fmap)
    return fk.transpose(-2, -1) @ v.double(), fk.sum(-2)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("lead", LEADING)
@pytest.mark.parametrize("n", NS)
def test_causal_forms_agree(dtype, lead, n):
    q, k, v = make_qkv(lead, n, dtype=dtype)
    ref64 = linear_attention(q.double(), k.double(), v.double(), "elu+1", causal=True, form="quadratic")
    s_ref, z_ref = reference_state(q, k, v, "elu+1")
    results = {"quadratic": (linear_attention(q, k, v, "elu+1", causal=True, form="quadratic"), None)}
    for form in ("recurrent", "prefix"):
        results[form] = linear_attention(q, k, v, "elu+1", form=form, causal=True, return_state=True)
    for c in CHUNKS:
        results[f"chunkwise C={c}"] = linear_attention(q, k, v, "elu+1", chunk_size=c, causal=True, return_state=True)
    for name, (out, state) in results.items():
        assert out.dtype == dtype and out.shape == (*lead, n, 5)
        assert_close(name, ref64, out, TOL[dtype])
        if state is not None:
            assert_close(f"{name}: S", s_ref, state[0], TOL[dtype])
            assert_close(f"{name}: z", z_ref, state[1], TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("n", [1, 7, 64, 129])
def test_noncausal_forms_agree(dtype, n):
    q, k, v = make_qkv((2, 3), n, dtype=dtype)
    ref = linear_attention(q.double(), k.double(), v.double(), "elu+1", form="quadratic")
    for form in ("linear", "chunkwise", "auto"):
        out = linear_attention(q, k, v, "elu+1", form=form)
        assert_close(form, ref, out, TOL[dtype])


def test_cross_attention_noncausal_n_ne_m():
    q, k, v = rand(2, 5, 4), rand(2, 9, 4, seed=1), rand(2, 9, 3, seed=2)
    a = linear_attention(q, k, v, "relu", form="quadratic")
    b = linear_attention(q, k, v, "relu", form="linear")
    assert a.shape == (2, 5, 3)
    assert_close("linear vs quadratic", a, b, 1e-12)


def grads(fn, q, k, v, seed=1):
    out = fn(q, k, v)
    w = rand(*out.shape, seed=seed, dtype=out.dtype)
    return torch.autograd.grad((out * w).sum(), (q, k, v))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("n,c", [(1, 4), (7, 3), (64, 16), (129, 64), (129, 200)])
@pytest.mark.parametrize("fmap", ["elu+1", "favor+", "taylor"])
def test_gradients_agree(dtype, n, c, fmap):
    q, k, v = make_qkv((2,), n, d=4, d_v=6, dtype=dtype, grad=True)
    if fmap == "favor+":
        fmap = favor_plus(4, m=16, seed=3)
    ref = grads(lambda *a: linear_attention(*a, fmap, causal=True, form="quadratic"),
                *(x.detach().double().requires_grad_() for x in (q, k, v)))
    for form in ("recurrent", "prefix", "chunkwise"):
        got = grads(lambda *a: linear_attention(*a, fmap, causal=True, form=form, chunk_size=c), q, k, v)
        scale = max(r.abs().max().item() for r in ref)  # dq is ~0 at N = 1: compare on one scale
        for name, g, r in zip("qkv", got, ref):
            assert (g.double() - r).abs().max().item() <= 10 * TOL[dtype] * scale, f"{form} d{name}"


def test_final_state_gradient_through_causal_product():
    fq, fk = rand(2, 13, 4).abs(), rand(2, 13, 4, seed=1).abs()
    v = rand(2, 13, 3, seed=2)
    inputs = tuple(x.requires_grad_() for x in (fq, fk, v))
    assert torch.autograd.gradcheck(lambda a, b, c: causal_product(a, b, c, 5), inputs)


@pytest.mark.parametrize("c", [1, 3, 11])
def test_gradcheck_chunkwise_end_to_end(c):
    q, k, v = make_qkv((2,), 11, d=3, d_v=2, grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b, x: linear_attention(a, b, x, "elu+1", causal=True, form="chunkwise", chunk_size=c),
        (q, k, v))


@pytest.mark.parametrize("form", ["quadratic", "recurrent", "prefix", "chunkwise"])
@pytest.mark.parametrize("fmap", ["elu+1", "favor+"])
def test_causality_outputs_and_gradients(form, fmap):
    """Perturbing token j changes no output, and no gradient, at positions i < j."""
    q, k, v = make_qkv((2,), 20, d=4, d_v=3, grad=True)
    fmap = favor_plus(4, m=32) if fmap == "favor+" else fmap
    run = lambda a, b, x: linear_attention(a, b, x, fmap, causal=True, form=form, chunk_size=6)  # noqa: E731
    j = 13
    q2, k2, v2 = (x.detach().clone() for x in (q, k, v))
    q2[..., j:, :] += 5.0
    k2[..., j:, :] -= 3.0
    v2[..., j:, :] *= -7.0
    out1, out2 = run(q, k, v), run(*(x.requires_grad_() for x in (q2, k2, v2)))
    assert_close("rows before the perturbed token", out1[..., :j, :], out2[..., :j, :], 1e-12)  # a leak is O(1)
    assert not torch.allclose(out1[..., j:, :], out2[..., j:, :])
    # the loss only reads positions < j: gradients there must not depend on the future
    g1 = torch.autograd.grad(out1[..., :j, :].sum(), (q, k, v))
    g2 = torch.autograd.grad(out2[..., :j, :].sum(), (q2, k2, v2))
    for a, b in zip(g1, g2):
        assert torch.allclose(a[..., :j, :], b[..., :j, :], atol=1e-12)
        assert torch.count_nonzero(a[..., j:, :]) == 0


def test_hand_computable_case():
    """q = k = 1, v = e_1 over three tokens, causal: uniform weights over each prefix -> 1, 1/2, 1/3."""
    q = k = torch.ones(3, 1, dtype=torch.float64)
    v = torch.tensor([[1.0], [0.0], [0.0]], dtype=torch.float64)
    for form in ("quadratic", "recurrent", "prefix", "chunkwise"):
        out = linear_attention(q, k, v, "elu+1", causal=True, form=form, eps=0.0, chunk_size=2)
        assert torch.allclose(out.flatten(), torch.tensor([1, 1 / 2, 1 / 3], dtype=torch.float64))


def test_return_weights_are_the_quadratic_form():
    q, k, v = make_qkv((2,), 9)
    for form in ("quadratic", "chunkwise", "recurrent"):
        out, w = linear_attention(q, k, v, "elu+1", causal=True, form=form, return_weights=True)
        assert w.shape == (2, 9, 9)
        assert torch.allclose(w.sum(-1), torch.ones(2, 9, dtype=torch.float64), atol=1e-5)
        assert torch.count_nonzero(w.triu(1)) == 0
        assert torch.allclose(w @ v, out, atol=1e-12)


def test_unnormalised_forms_agree():
    q, k, v = make_qkv((3,), 33)
    fq, fk = featurize(q, k, "identity")
    ref, _ = quadratic_form(fq, fk, v, causal=True, normalize=False)
    for form in ("recurrent", "prefix", "chunkwise"):
        out = linear_attention(q, k, v, "identity", causal=True, form=form, normalize=False, chunk_size=8)
        assert_close(form, ref, out, 1e-10)


def test_auto_picks_chunkwise_for_causal_and_associative_otherwise():
    q, k, v = make_qkv((), 10)
    assert_close("auto (causal) vs chunkwise", linear_attention(q, k, v, "elu+1", causal=True, form="chunkwise"),
                 linear_attention(q, k, v, "elu+1", causal=True), 1e-12)
    assert_close("auto vs associative", linear_attention(q, k, v, "elu+1", form="linear"),
                 linear_attention(q, k, v, "elu+1"), 1e-12)
