"""The fast chunkwise form (chunked.py) == the loop over chunks (chunkwise_reference) == the recurrence.

Outputs, final state (S, z) and gradients (through the outputs and the final state), for both ways
of carrying the state between chunks (one cumsum, or a loop), ragged N, N = 1, N < C, several
leading dims, d != d_v; plus the chunk-size clamp and memory guard, and NaN containment.
"""
import pytest
import torch
from conftest import assert_close, rand

from linattn_edu import MemoryBudgetError, linear_attention, set_memory_budget
from linattn_edu import _blocks, chunked
from linattn_edu import carry as carry_mode
from linattn_edu.feature_maps import featurize
from linattn_edu.linear import chunkwise_reference, recurrent_form

TOL = {torch.float64: 1e-12, torch.float32: 1e-5}
CARRIES = ["cumsum", "loop"]


@pytest.fixture(params=CARRIES)
def carry(request):
    """Run the test once with each way of carrying the chunk states."""
    with carry_mode(request.param):
        yield request.param


@pytest.fixture(params=["when v may hold NaN", "always"])
def guard(request, monkeypatch):
    """Run the test with the NaN guard of tril_product as in eager mode, and always on (as under compile)."""
    if request.param == "always":
        monkeypatch.setattr(_blocks, "surely_finite", lambda v: False)
    return request.param


def features(lead, n, d=6, d_v=5, dtype=torch.float64, seed=0):
    """Positive features (elu+1 of normal inputs) and values: fq, fk (..., N, d), v (..., N, d_v)."""
    q, k = rand(*lead, n, d, seed=seed), rand(*lead, n, d, seed=seed + 1)
    fq, fk = featurize(q, k, "elu+1")
    return fq.to(dtype), fk.to(dtype), rand(*lead, n, d_v, seed=seed + 2, dtype=dtype)


def forward_and_grads(form, fq, fk, v, seed=7, **kw):
    """out, (S, z) and d/d(fq, fk, v) of a loss that reads the output and the final state."""
    inputs = [x.detach().clone().requires_grad_() for x in (fq, fk, v)]
    out, (s, z) = form(*inputs, **kw)
    weights = [rand(*x.shape, seed=seed + i, dtype=x.dtype) for i, x in enumerate((out, s, z))]
    loss = sum((x * w).sum() for x, w in zip((out, s, z), weights))
    return (out, s, z), torch.autograd.grad(loss, inputs)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("lead,n,c", [((), 1, 64), ((3,), 7, 3), ((2, 3), 64, 16), ((2,), 130, 64),
                                      ((2, 2), 50, 200), ((1,), 33, 1)])
@pytest.mark.parametrize("normalize", [True, False])
def test_fast_equals_reference_and_recurrence(carry, guard, dtype, lead, n, c, normalize):
    fq, fk, v = features(lead, n, dtype=dtype)
    fast, fast_grads = forward_and_grads(chunked.chunkwise_form, fq, fk, v, chunk_size=c, normalize=normalize)
    fq64, fk64, v64 = (x.double() for x in (fq, fk, v))
    ref, ref_grads = forward_and_grads(chunkwise_reference, fq64, fk64, v64, chunk_size=c, normalize=normalize)
    rnn = recurrent_form(fq64, fk64, v64, normalize=normalize)
    for name, got, r, r2 in zip(("out", "S", "z"), fast, ref, (rnn[0], *rnn[1])):
        assert got.dtype == dtype
        assert_close(f"reference vs recurrence {name}", r2, r, 1e-12)
        assert_close(f"fast {name}", r, got, TOL[dtype])
    scale = max(float(g.abs().max()) for g in ref_grads)  # dq is ~0 at N = 1: one scale for all three
    for name, got, r in zip(("dfq", "dfk", "dv"), fast_grads, ref_grads):
        assert got.shape == r.shape, name
        err = float((got.double() - r).abs().max()) / scale
        assert err <= 10 * TOL[dtype], f"{name}: rel err {err:.2e}"


def test_guarded_tril_product_under_autograd(monkeypatch):
    """With autograd recording, the guard builds its own v − v (the matmul saved the finite copy)."""
    a = rand(2, 9, 9).tril_().requires_grad_()
    v = rand(2, 9, 4, seed=1).requires_grad_()
    plain = a @ v  # (2, 9, 4)
    monkeypatch.setattr(_blocks, "surely_finite", lambda v: False)
    guarded = _blocks.tril_product(a, v)
    assert_close("guarded A V", plain, guarded, 1e-12)
    w = rand(2, 9, 4, seed=2)
    for name, r, got in zip("av", torch.autograd.grad((plain * w).sum(), (a, v)),
                            torch.autograd.grad((guarded * w).sum(), (a, v))):
        assert_close(f"d{name}", r, got, 1e-12)


@pytest.mark.parametrize("n,c", [(1, 4), (5, 2), (7, 3), (6, 6)])
def test_gradcheck_fast_form(carry, n, c):
    """Finite differences through out, den and the final S, z (float64, tiny shapes)."""
    fq, fk, v = (x.requires_grad_() for x in features((2,), n, d=3, d_v=2))

    def run(a, b, x):
        out, (s, z) = chunked.chunkwise_form(a, b, x, chunk_size=c)
        return out, s, z

    assert torch.autograd.gradcheck(run, (fq, fk, v))
    assert torch.autograd.gradcheck(lambda a, b, x: chunked.causal_product(a, b, x, c), (fq, fk, v))


def test_chunk_size_is_clamped_to_n():
    """A chunk longer than the sequence only pads: C = min(chunk_size, N), no C×C allocation."""
    q, k, v = rand(2, 8, 4), rand(2, 8, 4, seed=1), rand(2, 8, 3, seed=2)
    ref = linear_attention(q, k, v, "elu+1", causal=True, form="quadratic")
    old = set_memory_budget(64 * 2**20)
    try:
        for c in (8, 16384, 10**6):
            out = linear_attention(q, k, v, "elu+1", causal=True, chunk_size=c)
            assert_close(f"chunk_size={c}", ref, out, 1e-12)
            fq, fk = featurize(q, k, "elu+1")
            assert_close(f"reference chunk_size={c}", ref, chunkwise_reference(fq, fk, v, chunk_size=c)[0], 1e-12)
    finally:
        set_memory_budget(old)


def test_compiled_graph_does_not_grow_with_the_number_of_chunks(monkeypatch):
    """Under torch.compile the default carry is the cumsum: a loop over chunks would be unrolled into the graph."""
    def nodes_traced(n, carry):
        sizes = []

        def backend(gm, inputs):  # counts the traced graph's nodes, runs it uncompiled
            sizes.append(sum(len(m.graph.nodes) for m in gm.modules() if hasattr(m, "graph")))
            return gm.forward
        torch._dynamo.reset()
        fn = torch.compile(lambda q: linear_attention(q, q, q, "elu+1", causal=True, chunk_size=16),
                           backend=backend, fullgraph=True, dynamic=False)
        with torch.no_grad(), carry_mode(carry):
            fn(torch.randn(1, 2, n, 8))
        torch._dynamo.reset()
        return sizes[0]

    assert nodes_traced(64, "auto") == nodes_traced(256, "auto")  # 4 or 16 chunks: one graph size
    assert nodes_traced(256, "loop") > nodes_traced(64, "loop")  # what the check would catch


def test_shapes_flow_through_meta_tensors():
    """On meta tensors (shapes, no data) the chunkwise form still runs: the finiteness check is skipped."""
    q = torch.empty(2, 3, 200, 8, device="meta", requires_grad=True)
    v = torch.empty(2, 3, 200, 5, device="meta")
    out = linear_attention(q, q, v, "elu+1", causal=True, chunk_size=64)
    assert out.is_meta and out.shape == (2, 3, 200, 5)
    out.sum().backward()
    assert q.grad.is_meta and q.grad.shape == q.shape


def test_memory_guard_names_what_is_too_big():
    old = set_memory_budget(1 * 2**20)
    try:
        q = torch.randn(1024, 16)  # C = 1024 blocks: 1024 × 1024 float32 = 4 MiB > 1 MiB
        with pytest.raises(MemoryBudgetError, match=r"\(\.\.\., N, C\) intra-chunk blocks .*smaller chunk_size"):
            linear_attention(q, q, q, "elu+1", causal=True, chunk_size=1024)
        with pytest.raises(MemoryBudgetError, match=r"\(\.\.\., C, C\) block"):
            fq, fk = featurize(q, q, "elu+1")
            chunkwise_reference(fq, fk, q, chunk_size=1024)
        q = torch.randn(1024, 32)  # C = 1: 1024 states of 32 × 32 float32 = 4 MiB > 1 MiB
        with pytest.raises(MemoryBudgetError, match=r"\(\.\.\., N/C, d_φ, d_v\) chunk states .*larger chunk_size"):
            linear_attention(q, q, q, "elu+1", causal=True, chunk_size=1)
    finally:
        set_memory_budget(old)


@pytest.mark.parametrize("name", ["causal", "normalize", "return_weights"])
@pytest.mark.parametrize("value", ["no", 1, None])
def test_flags_must_be_bool(name, value):
    q = rand(2, 5, 4)
    with pytest.raises(TypeError, match=rf"{name} must be True or False; got"):
        linear_attention(q, q, q, "elu+1", **{name: value})
    if name == "normalize":
        with pytest.raises(TypeError, match=r"normalize must be True or False"):
            linear_attention(q, q, q, "elu+1", normalize=value, causal=True, return_state=True)


# NaN at token t: only the rows i >= t may see it, in every causal form ------------------------------
def _causal_forms():
    """Every causal way to compute the output from (q, k, v): name -> fn."""
    def fast(carry):
        def run(q, k, v):
            with carry_mode(carry):
                return linear_attention(q, k, v, "elu+1", causal=True, form="chunkwise", chunk_size=8)
        return run

    def reference(q, k, v):
        fq, fk = featurize(q, k, "elu+1")
        return chunkwise_reference(fq, fk, v, chunk_size=8)[0]

    forms = {f: (lambda f: lambda q, k, v: linear_attention(q, k, v, "elu+1", causal=True, form=f))(f)
             for f in ("quadratic", "recurrent", "prefix")}
    forms.update({"chunkwise (cumsum carry)": fast("cumsum"), "chunkwise (loop carry)": fast("loop"),
                  "chunkwise_reference": reference})
    return forms


@pytest.mark.parametrize("where", ["q", "k", "v", "v, one column"])
@pytest.mark.parametrize("t", [0, 13, 16, 39])
def test_nan_reaches_only_later_rows(where, t):
    n = 40  # chunks of 8: t = 13 sits mid-chunk, 16 starts one, 39 is the last token
    clean = {"q": rand(2, n, 4), "k": rand(2, n, 4, seed=1), "v": rand(2, n, 3, seed=2)}
    dirty = {name: x.clone() for name, x in clean.items()}
    dirty[where[0]][..., t, : 1 if "column" in where else None] = float("nan")
    nan_rows = {}
    for name, form in _causal_forms().items():
        ref, out = form(*clean.values()), form(*dirty.values())
        assert torch.isfinite(out[..., :t, :]).all(), f"{name}: NaN at token {t} reached an earlier row"
        assert_close(f"{name}: rows before {t}", ref[..., :t, :], out[..., :t, :], 1e-12)
        nan_rows[name] = out.isnan().any(-1)  # (2, N): which rows hold a NaN
    first = next(iter(nan_rows.values()))
    assert first[..., t].all(), "the row of the NaN token itself must be NaN"
    for name, rows in nan_rows.items():
        assert torch.equal(rows, first), f"{name} disagrees on which rows are NaN"


@pytest.mark.parametrize("eps", [0.0, 1e-6])
def test_normalize_backward_equals_autograd_through_safe_divide(eps):
    """The hand-written division backward == autograd's, a weightless row (den + eps = 0) included."""
    from linattn_edu._checks import safe_divide

    num, den = rand(2, 6, 3), rand(2, 6, 1, seed=1).abs()
    num[0, 2], den[0, 2] = 0.0, 0.0  # a row with no weight at all
    g = rand(2, 6, 3, seed=2)
    results = []
    for divide in (lambda a, b: safe_divide(a, b, eps), lambda a, b: chunked._Normalize.apply(a, b, eps)):
        a, b = num.clone().requires_grad_(), den.clone().requires_grad_()
        out = divide(a, b)
        results.append((out, *torch.autograd.grad(out, (a, b), g)))
    for name, r, got in zip(("out", "dnum", "dden"), *results):
        assert_close(name, r, got, 1e-12)
    assert torch.autograd.gradcheck(lambda a, b: chunked._Normalize.apply(a, b, 1e-3),
                                    (num.requires_grad_(), (den + 0.1).requires_grad_()))


# The block tree of per-channel decayed weights (GLA, KDA and DPLR build their C×C blocks with it) ----------------
def _dense_decayed_scores(x, y, b, bx, strict):
    """The definition, one weight at a time: A_ts = Σ_c x_tc y_sc exp(bx_tc − b_sc), s <= t (s < t strict)."""
    c = x.shape[-2]
    a = torch.zeros(*x.shape[:-2], c, c, dtype=x.dtype)
    for t in range(c):
        for s in range(t if strict else t + 1):
            a[..., t, s] = (x[..., t, :] * y[..., s, :] * (bx[..., t, :] - b[..., s, :]).exp()).sum(-1)
    return a


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("c", [1, 5, 8, 13])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_channel_decayed_scores_equal_the_definition(strict, c, dtype):
    """Both variants (bx = b, and DPLR's strict rows with bx_t = b_{t−1}) at power-of-two and ragged C."""
    from linattn_edu._blocks import channel_decayed_scores

    gen = torch.Generator().manual_seed(c)
    x, y = (torch.randn(2, 3, c, 4, generator=gen, dtype=torch.float64) for _ in range(2))
    g = -3 * torch.rand(2, 3, c, 4, generator=gen, dtype=torch.float64)  # (2, 3, C, 4): log-decays <= 0
    b = g.cumsum(-2)  # (2, 3, C, 4)
    bx = torch.nn.functional.pad(b, (0, 0, 1, 0))[..., :-1, :] if strict else b  # b_{t−1} for the strict rows
    want = _dense_decayed_scores(x, y, b, bx, strict)  # (2, 3, C, C)
    got = channel_decayed_scores(*(z.to(dtype) for z in (x, y, b)), bx=None if not strict else bx.to(dtype),
                                 strict=strict)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert got.dtype == dtype and got.shape == want.shape
    assert (got.double() - want).abs().max() <= tol * want.abs().max()


def test_channel_decayed_scores_keep_a_nan_in_its_own_column_and_below():
    """A NaN in y_s reaches A[t, s] for t >= s (t > s when strict) and no other weight; extreme decays stay finite."""
    from linattn_edu._blocks import channel_decayed_scores

    c, s_bad = 12, 5
    x, y = torch.randn(c, 3), torch.randn(c, 3)
    y[s_bad, 1] = float("nan")
    b = torch.full((c, 3), -87.0).cumsum(0).clamp_min(-1e30)  # (C, 3): decays as strong as float32 allows
    for strict, bx in ((False, None), (True, torch.nn.functional.pad(b, (0, 0, 1, 0))[:-1])):
        a = channel_decayed_scores(x, y, b, bx=bx, strict=strict)  # (C, C)
        bad = torch.zeros(c, c, dtype=torch.bool)
        bad[s_bad + int(strict):, s_bad] = True
        assert a[bad].isnan().all() and a[~bad].isfinite().all()


# The delta rules' UT transform: (I + L)⁻¹ of a strictly lower-triangular L, by blocks ------------------------------
def _strict_lower(c, lead=(2, 3), dtype=torch.float64, seed=0):
    """A random L (lead..., C, C) like the delta rule's diag(β) K Kᵀ: unit-norm keys, β in (0, 1]; garbage above."""
    gen = torch.Generator().manual_seed(seed)
    k = torch.nn.functional.normalize(torch.randn(*lead, c, 5, generator=gen, dtype=torch.float64), dim=-1)
    beta = torch.rand(*lead, c, 1, generator=gen, dtype=torch.float64)
    garbage = torch.full((c, c), 1e30, dtype=torch.float64).triu()  # never read: on and above the diagonal
    return ((k @ k.transpose(-2, -1) * beta).tril(-1) + garbage).to(dtype)


@pytest.mark.parametrize("c", [1, 2, 5, 8, 9, 13, 16, 33, 64, 100])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_unit_tril_inverse_equals_the_triangular_solve(c, dtype):
    """Every C (below, at and above the 8 × 8 base blocks, powers of two and ragged): X (I + L) = I, 0 above."""
    l = _strict_lower(c, dtype=dtype)
    x = _blocks.unit_tril_inverse(l)
    eye = torch.eye(c, dtype=torch.float64)
    want = torch.linalg.solve_triangular(l.double(), eye.expand_as(l), upper=False, unitriangular=True)
    assert x.dtype == dtype and x.shape == l.shape
    assert torch.equal(x.triu(1), torch.zeros_like(x)) and torch.equal(x.diagonal(dim1=-2, dim2=-1),
                                                                       torch.ones(2, 3, c, dtype=dtype))
    assert_close(f"(I + L)⁻¹, C = {c}", want, x.double(), TOL[dtype] * 10)


@pytest.mark.parametrize("c", [5, 13, 20])
def test_unit_tril_inverse_gradients(c):
    """The hand-written backward −strict_tril(Xᵀ G Xᵀ) passes gradcheck and gradgradcheck, and equals
    autograd through the triangular solve (which sees the strict lower part only, as the inverse does)."""
    l = _strict_lower(c, lead=(2,), seed=c).tril(-1).requires_grad_()
    assert torch.autograd.gradcheck(_blocks.unit_tril_inverse, (l,))
    assert torch.autograd.gradgradcheck(_blocks.unit_tril_inverse, (l,))
    g = torch.randn(2, c, c, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    eye = torch.eye(c, dtype=torch.float64).expand(2, c, c)
    want = torch.autograd.grad(torch.linalg.solve_triangular(l.tril(-1), eye, upper=False, unitriangular=True), l, g)
    got = torch.autograd.grad(_blocks.unit_tril_inverse(l), l, g)
    assert_close("d(I + L)⁻¹/dL", want[0], got[0], 1e-12)


@pytest.mark.parametrize("j", [0, 3, 8, 21, 31])
def test_unit_tril_inverse_keeps_a_nan_in_its_own_row_and_below(j):
    """A NaN in key j makes row j and column j of L NaN: rows i < j of the inverse stay finite, equal to the clean run."""
    c = 32  # 8 × 8 base blocks merged twice: j = 8 starts a block, 21 sits inside a merged one
    l = _strict_lower(c, lead=(3,))
    bad = l.clone()
    bad[..., j, :] = float("nan")
    bad[..., :, j] = float("nan")
    clean, x = _blocks.unit_tril_inverse(l), _blocks.unit_tril_inverse(bad)
    assert x[..., :j, :].isfinite().all(), f"a NaN in row {j} reached an earlier row"
    assert_close(f"rows before the NaN in row {j}", clean[..., :j, :], x[..., :j, :], 1e-12)
    assert x[..., j, :j].isnan().all() and torch.equal(x[..., j, j:], clean[..., j, j:])  # 1 then exact zeros
