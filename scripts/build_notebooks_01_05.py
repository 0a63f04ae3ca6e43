"""Build the read-along notebooks 01–05 from reviewable Python, then (optionally) execute them.

    .venv/bin/python scripts/build_notebooks_01_05.py            # write notebooks/0[1-5]_*.ipynb
    .venv/bin/python scripts/build_notebooks_01_05.py --execute  # ... and execute each in place

Each notebook is a list of cells: ``md(text)`` for prose, ``code(text)`` for code. Code cells that
start with ``# NBVAL_CHECK_OUTPUT`` are compared by nbval (``pytest --nbval-lax``); widget cells start
with ``# NBVAL_IGNORE_OUTPUT``. The notebooks import linattn_edu and never redefine its math.
"""
from __future__ import annotations

from nbbuild import CHECK, IGNORE, REPO_URL, code, main, md  # noqa: F401  (shared builder pieces)


def setup(imports: str):
    """The first code cell of every notebook: (Colab-only install), imports, version, seed, device."""
    return code(f'''
import sys
if "google.colab" in sys.modules:  # only on Colab (opened from the badge): install the course package
    %pip install -q "linattn-edu[viz] @ {REPO_URL}"

{imports.strip()}
import torch
import linattn_edu

torch.manual_seed(0)  # the one seeding call: every random tensor below follows from it
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # the notebook is small: CPU is fine
print(f"linattn_edu {{linattn_edu.__version__}} | torch {{torch.__version__}} | device {{device}}")
''')


def exercise_intro(names: str) -> list:
    return [
        md(f"""
## Self-check exercises

Each exercise asks for one small function. The checker calls it on random inputs (batch dims,
ragged sizes, N = 1), compares it with `linattn_edu` and prints what it expected, what came and a
hint. **The cells below hold a worked solution, labelled as such, so that the committed notebook
shows the checks passing: replace the body with your own attempt and re-run the cell.**
"""),
        code(f"from linattn_edu.exercises import {names}"),
    ]


# ============================================================================ 01 softmax attention

NB01 = [
    md(r"""
# 01 · Softmax attention, written out

**You will:** compute attention from scores to outputs by hand with the library; see *why* the
scores are divided by $\sqrt d$ (a variance you can measure); see the overflow that the max
subtraction in a stable softmax prevents; use padding and causal masks; and check that the
library's softmax attention equals PyTorch's fused `scaled_dot_product_attention`.

**You need:** matrix products and the softmax function. Everything else is defined below.
"""),
    setup("""
import inspect
import math

import torch.nn.functional as F

from linattn_edu import softmax_attention
from linattn_edu.softmax import attention_scores, causal_mask, stable_softmax
from linattn_edu import viz
"""),
    md(r"""
## 1. Queries, keys, values

A sequence has $N$ positions. Each position $i$ asks a question with a **query** $q_i \in \mathbb{R}^d$;
each of $M$ positions $j$ offers a **key** $k_j \in \mathbb{R}^d$ (what it can be found by) and a
**value** $v_j \in \mathbb{R}^{d_v}$ (what it hands over). Stacked as rows: $Q$ is $N \times d$,
$K$ is $M \times d$, $V$ is $M \times d_v$. Softmax attention computes

$$
s_{ij} = \frac{q_i^\top k_j}{\sqrt d}, \qquad
P_{ij} = \frac{\exp(s_{ij})}{\sum_{l=1}^{M} \exp(s_{il})}, \qquad
o_i = \sum_{j=1}^{M} P_{ij}\, v_j ,
$$

i.e. $O = \operatorname{softmax}(QK^\top/\sqrt d)\,V$ with the softmax over each row. $s_{ij}$ is the
**score** of key $j$ for query $i$, $P$ the $N \times M$ **attention matrix** (each row sums to 1) and
$o_i \in \mathbb{R}^{d_v}$ the output: a weighted average of the values.

The library follows PyTorch's convention: `q (..., N, d)`, `k (..., M, d)`, `v (..., M, d_v)`, with any
number of leading batch/head dims. Here is the function that makes the scores:
"""),
    code("print(inspect.getsource(attention_scores))"),
    code("""
N, d, d_v = 6, 8, 4
q = torch.randn(N, d).to(device)    # (N, d)
k = torch.randn(N, d).to(device)    # (N, d)
v = torch.randn(N, d_v).to(device)  # (N, d_v)

out, P = softmax_attention(q, k, v, return_weights=True)  # (N, d_v), (N, N)
print("scores  ", tuple(attention_scores(q, k, 1 / math.sqrt(d)).shape))
print("weights ", tuple(P.shape), "| output", tuple(out.shape))
"""),
    code(CHECK + """
print("every row of P sums to 1:", torch.allclose(P.sum(-1), torch.ones(N, device=device)))
print("every weight is in [0, 1]:", bool(((P >= 0) & (P <= 1)).all()))
print("o_i is the P-weighted average of the values:", torch.allclose(out, P @ v, atol=1e-6))
"""),
    code("viz.attention_map(P.cpu(), title=\"Softmax attention P for 6 random tokens (rows: queries)\")"),
    md(r"""
## 2. Why divide by $\sqrt d$?

Suppose the entries of $q$ and $k$ are independent with mean 0 and variance 1 (roughly what
normalised layers produce). Then $q^\top k = \sum_{r=1}^{d} q_r k_r$ is a sum of $d$ independent terms,
each with mean 0 and variance $\mathbb{E}[q_r^2]\,\mathbb{E}[k_r^2] = 1$, so

$$\operatorname{Var}(q^\top k) = d, \qquad \operatorname{Var}\!\left(\frac{q^\top k}{\sqrt d}\right) = 1 .$$

Without the scale, the scores' spread grows like $\sqrt d$; the softmax of widely spread scores is
nearly one-hot (it *saturates*), and its gradient $\partial P_{ij}/\partial s_{il} = P_{ij}(\delta_{jl} - P_{il})$
is then nearly 0 everywhere. Measured on 20 000 random pairs:
"""),
    code(CHECK + """
for dim in (4, 64, 1024):
    qq, kk = torch.randn(20_000, dim), torch.randn(20_000, dim)  # (pairs, dim)
    dots = (qq * kk).sum(-1)                                      # (pairs,) = q·k per pair
    print(f"d = {dim:4d}:  Var(q·k)/d = {dots.var().item() / dim:.2f}   "
          f"Var(q·k/√d) = {(dots / math.sqrt(dim)).var().item():.2f}")
"""),
    md(r"""
What the scale does to the attention weights: with $d = 1024$ and 16 keys, compare the largest weight
in each row (1.0 means one-hot) with and without the $1/\sqrt d$ (the `scale` argument):
"""),
    code(CHECK + """
qq, kk, vv = torch.randn(64, 1024), torch.randn(16, 1024), torch.randn(16, 1)  # (64, d), (16, d), (16, 1)
_, P_scaled = softmax_attention(qq, kk, vv, return_weights=True)            # scale 1/√d
_, P_raw = softmax_attention(qq, kk, vv, scale=1.0, return_weights=True)    # no scale
print("mean largest weight per row, scaled:  ", round(P_scaled.amax(-1).mean().item(), 2))
print("mean largest weight per row, unscaled:", round(P_raw.amax(-1).mean().item(), 2))
"""),
    md(r"""
## 3. A stable softmax: subtract the row max

$\exp$ overflows float32 above $\approx 88.7$ ($e^{88.7} \approx 3.4\times10^{38}$, the largest float32).
Scores that large are normal in trained models (and in float16 the limit is $\approx 11$). The cure is
free: for any constant $c$,

$$\frac{e^{s_j - c}}{\sum_l e^{s_l - c}} = \frac{e^{-c}\,e^{s_j}}{e^{-c}\sum_l e^{s_l}} = \frac{e^{s_j}}{\sum_l e^{s_l}},$$

so with $c = m_i = \max_l s_{il}$ every exponent is $\le 0$ and nothing overflows. The naive formula
first (shown only to fail), then the library's `stable_softmax`:
"""),
    code(CHECK + """
s = torch.tensor([1000.0, 999.0, 998.0])
naive = torch.exp(s) / torch.exp(s).sum()  # exp(1000) = inf in float32, inf / inf = nan
print("naive :", naive.tolist())
print("stable:", [round(p, 4) for p in stable_softmax(s).tolist()])
print("same as for s - 1000:", [round(p, 4) for p in stable_softmax(s - 1000).tolist()])
"""),
    code("print(inspect.getsource(stable_softmax))"),
    md(r"""
## 4. Masks: padding and causality

A **mask** says which (query, key) pairs may interact. The library takes a boolean mask
(`True` = may attend) or an additive float mask (0 = keep, $-\infty$ = drop), broadcastable to
`(..., N, M)`. A masked score becomes $-\infty$, so $e^{-\infty} = 0$: the key gets weight 0 and the
remaining weights are renormalised.

*Padding*: in a batch of sequences of different lengths the short ones are padded; padded keys must
get no weight. Here the last two of 6 keys are padding:
"""),
    code(CHECK + """
key_is_real = torch.tensor([True, True, True, True, False, False])  # (M,) broadcasts to (N, M)
out_pad, P_pad = softmax_attention(q, k, v, mask=key_is_real.to(device), return_weights=True)
print("weight on padded keys:", P_pad[:, ~key_is_real].abs().max().item())
print("rows still sum to 1:", torch.allclose(P_pad.sum(-1), torch.ones(N, device=device)))
print("same as dropping the padded keys:",
      torch.allclose(out_pad, softmax_attention(q, k[:4], v[:4]), atol=1e-6))
"""),
    md(r"""
*Causality*: a language model predicting token $i+1$ must not look at tokens after $i$. The **causal
mask** keeps key $j$ for query $i$ only when $j \le i$: the lower triangle, diagonal included
(a token may attend to itself).

$$o_i = \sum_{j \le i} \frac{\exp(s_{ij})}{\sum_{l \le i}\exp(s_{il})}\, v_j$$
"""),
    code("print(causal_mask(5).int())"),
    code(CHECK + """
out_c, P_c = softmax_attention(q, k, v, causal=True, return_weights=True)  # (N, d_v), (N, N)
print("upper triangle of P is zero:", bool((P_c.triu(1) == 0).all()))
print("row 0 attends only to itself:", P_c[0].tolist()[:2])

# changing the last token (its key and value) must not change any earlier output
k2, v2 = k.clone(), v.clone()
k2[-1] += 10.0
v2[-1] -= 10.0
out_c2 = softmax_attention(q, k2, v2, causal=True)
print("outputs 0..N-2 unchanged after editing token N-1:", torch.equal(out_c[:-1], out_c2[:-1]))
"""),
    code("viz.attention_map(P_c.cpu(), title=\"Causal softmax attention: query i sees keys j ≤ i\")"),
    md(r"""
A row with *every* key masked has no defined softmax ($0/0$): a plain `torch.softmax` returns NaN there
and the NaN spreads into everything computed from it. This library returns output 0 and weights 0 for
such a row (a documented choice, tested; recent versions of PyTorch's SDPA do the same on CPU):
"""),
    code(CHECK + """
nobody = torch.zeros(N, N, dtype=torch.bool, device=device)
nobody[1:] = True  # query 0 may attend to nothing
print("torch.softmax of an all −∞ row:", torch.softmax(torch.full((3,), float("-inf")), dim=-1).tolist())
print("library, output row 0:", softmax_attention(q, k, v, mask=nobody)[0].tolist())
"""),
    md(r"""
## 5. The same as PyTorch's fused attention

`torch.nn.functional.scaled_dot_product_attention` (SDPA) computes the same thing without storing
the $N \times M$ matrix (a *flash* kernel: it streams over keys with an online softmax). On random
inputs with batch and head dims, with and without masks, the two agree to float32 rounding:
"""),
    code(CHECK + """
B, H, N2 = 2, 4, 50
q4, k4, v4 = (torch.randn(B, H, N2, 16).to(device) for _ in range(3))  # (B, H, N, d)
pad = torch.rand(B, 1, 1, N2, device=device) > 0.2  # (B, 1, 1, M): random padding per sequence
pad[..., 0] = True                                   # keep one key per row
for name, kw, sdpa_kw in [("no mask", {}, {}),
                          ("causal", {"causal": True}, {"is_causal": True}),
                          ("padding", {"mask": pad}, {"attn_mask": pad})]:
    err = (softmax_attention(q4, k4, v4, **kw) - F.scaled_dot_product_attention(q4, k4, v4, **sdpa_kw)).abs().max()
    print(f"{name:8s} max |library − SDPA| < 1e-5: {err.item() < 1e-5}")
"""),
    md(r"""
## 6. Explore

Move the sliders: the number of tokens, the head dim, a temperature that multiplies $\sqrt d$, causal
or not, and the kind of inputs (random, clustered, or a sentence). The left panel is softmax attention;
the others compare it with *linear* attention, which notebook 03 builds.
"""),
    code(IGNORE + """
from linattn_edu.explorers import attention_map_explorer

attention_map_explorer(n=24, d=16, inputs="clustered")
"""),
    md(r"""
> **Limits of this notebook.**
> * `softmax_attention` is the *teaching* form: it stores the $N \times M$ score matrix, so memory grows
>   like $N^2$ (a budget guard raises `MemoryBudgetError` before a huge allocation). Real code uses a
>   fused kernel (SDPA / FlashAttention) with $O(N)$ extra memory — but the same $O(N^2 d)$ time.
> * The $\sqrt d$ argument assumes independent unit-variance entries. Trained $q, k$ are neither, which is
>   why models add learned temperatures or normalise $q$ and $k$.
> * An attention map shows where weight goes, not *why* a model decided anything.
"""),
    *exercise_intro("check_scaled_scores, check_stable_softmax, check_causal_mask, "
                    "check_softmax_attention, show_question, check_order"),
    md(r"""
**Exercise 1.** Write `my_scaled_scores(q, k)` returning the scores $QK^\top/\sqrt d$, shape `(..., N, M)`,
for inputs `q (..., N, d)` and `k (..., M, d)`.
"""),
    code(CHECK + """
# Worked solution (replace the body with yours and re-run)
def my_scaled_scores(q, k):
    return q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., N, d) @ (..., d, M) -> (..., N, M)

check_scaled_scores(my_scaled_scores)
"""),
    md(r"""
**Exercise 2.** Write `my_softmax(scores)`: a softmax over the last dim that survives scores of size
±1000 and $-\infty$ entries (masked keys).
"""),
    code(CHECK + """
# Worked solution (replace the body with yours and re-run)
def my_softmax(scores):
    e = torch.exp(scores - scores.amax(dim=-1, keepdim=True))  # every exponent <= 0
    return e / e.sum(dim=-1, keepdim=True)

check_stable_softmax(my_softmax)
"""),
    md(r"""
**Exercise 3.** Write `my_causal_mask(n)`: a boolean `(n, n)` tensor, `True` where query $i$ may attend
key $j$.
"""),
    code(CHECK + """
# Worked solution (replace the body with yours and re-run)
def my_causal_mask(n):
    return torch.ones(n, n, dtype=torch.bool).tril()  # j <= i, diagonal included

check_causal_mask(my_causal_mask)
"""),
    md(r"""
**Exercise 4.** Put it together: `my_attention(q, k, v, causal)` returns softmax attention, causal when
asked. (Use your functions from exercises 1–3.)
"""),
    code(CHECK + """
# Worked solution (replace the body with yours and re-run)
def my_attention(q, k, v, causal):
    s = my_scaled_scores(q, k)                                  # (..., N, M)
    if causal:
        s = s.masked_fill(~my_causal_mask(s.shape[-1]), float("-inf"))
    return my_softmax(s) @ v                                    # (..., N, M) @ (..., M, d_v)

check_softmax_attention(my_attention)
"""),
    md("**Exercise 5.** Order the steps of masked softmax attention."),
    code('show_question("softmax_steps")'),
    code(CHECK + """
# Worked solution (replace with your order and re-run)
check_order("softmax_steps", ["b", "f", "d", "e", "a", "c"])
"""),
    md("**Next:** [02 · Attention as kernel smoothing](02_attention_as_kernel_smoothing.ipynb) — the weights "
       "$P_{ij}$ as a Nadaraya–Watson smoother, and what changes when the kernel factorises."),
]


# ============================================================================ 02 kernel smoothing

NB02 = [
    md(r"""
# 02 · Attention as kernel smoothing

**You will:** build a Nadaraya–Watson smoother for 1-D data, see what the kernel and its bandwidth do,
recognise softmax attention as the same smoother with the kernel $\exp(q^\top k/\sqrt d)$, and see what
changes when a kernel *factorises* as $\varphi(q)^\top\varphi(k)$ — the step that makes attention linear.

**You need:** notebook 01 (softmax attention).
"""),
    setup("""
import inspect
import math

import plotly.graph_objects as go

from linattn_edu import kernel_smoother, linear_attention, softmax_attention
from linattn_edu.feature_maps import elu_plus_one
from linattn_edu.kernel import boxcar_kernel, exp_kernel, feature_map_kernel, gaussian_kernel
from linattn_edu import viz
"""),
    md(r"""
## 1. Predicting with a weighted average

Take $M$ noisy observations $(x_j, y_j)$ of an unknown function, $y_j = f(x_j) + \text{noise}$. To predict
$f$ at a new point $x^*$, average the observed $y_j$, giving more weight to points $x_j$ near $x^*$.
The **Nadaraya–Watson** estimator (1964) does exactly this:

$$
\hat f(x^*) = \sum_{j=1}^{M} w_j(x^*)\, y_j, \qquad
w_j(x^*) = \frac{\kappa(x^*, x_j)}{\sum_{l=1}^{M} \kappa(x^*, x_l)} .
$$

The **kernel** $\kappa(x, x') \ge 0$ measures similarity; dividing by the sum makes the weights sum to 1.
The classic choice is the Gaussian kernel with **bandwidth** $h > 0$ (how far "near" reaches):

$$\kappa_h(x, x') = \exp\!\left(-\frac{\lVert x - x' \rVert^2}{2h^2}\right).$$

The library's `kernel_smoother(q, k, v, kernel)` computes $\hat f$ for many query points at once, with
attention's names: queries $q$ (the $x^*$), keys $k$ (the $x_j$), values $v$ (the $y_j$):
"""),
    code("print(inspect.getsource(kernel_smoother))"),
    code("""
M = 40
x = torch.rand(M, dtype=torch.float64) * 6 - 3                  # (M,) inputs in [-3, 3]
y = torch.sin(x) + 0.3 * torch.randn(M, dtype=torch.float64)     # (M,) noisy observations of sin
grid = torch.linspace(-3, 3, 121, dtype=torch.float64)           # (G,) where we predict

def smooth(kernel, query_points=grid):
    \"\"\"Nadaraya–Watson fit at query_points (G,) from the data above: 1-D points are (…, 1) vectors.\"\"\"
    return kernel_smoother(query_points[:, None], x[:, None], y[:, None], kernel, return_weights=True)

fit, W = smooth(gaussian_kernel(0.3))   # fit (G, 1), W (G, M): row g holds the weights of query grid[g]
print("fit", tuple(fit.shape), "| weights", tuple(W.shape))
"""),
    code(CHECK + """
print("each query's weights sum to 1:", torch.allclose(W.sum(-1), torch.ones(len(grid), dtype=torch.float64)))
x_star = torch.tensor([0.5], dtype=torch.float64)
pred, w_star = smooth(gaussian_kernel(0.3), x_star)   # (1, 1), (1, M)
print("prediction at x* = 0.5:", round(pred.item(), 3), "| sin(0.5) =", round(math.sin(0.5), 3))
print("the prediction is the weighted average Σ_j w_j y_j:", torch.allclose(pred[0, 0], w_star[0] @ y))
"""),
    code("""
viz.kernel_smoother_1d(x, y, grid, fit[:, 0], w_star[0], 0.5, truth=torch.sin(grid), kernel_name="Gaussian (h = 0.3)")
"""),
    md(r"""
## 2. Kernels and bandwidth

The bandwidth trades noise for blur. Small $h$: each prediction leans on the one or two nearest points
and copies their noise (high variance). Large $h$: every prediction averages almost all points and the
curve flattens towards the global mean (high bias). The mean squared error against the true $\sin$:
"""),
    code(CHECK + """
for h in (0.05, 0.1, 0.3, 1.0, 3.0):
    fit_h, _ = smooth(gaussian_kernel(h))
    mse = ((fit_h[:, 0] - torch.sin(grid)) ** 2).mean().item()
    print(f"h = {h:4.2f}: mean squared error {mse:.3f}")
"""),
    code("""
fig = go.Figure()
fig.add_trace(go.Scatter(x=x, y=y, mode="markers", name="data", marker=dict(color="#444")))
fig.add_trace(go.Scatter(x=grid, y=torch.sin(grid), mode="lines", name="sin (truth)", line=dict(dash="dot")))
for h in (0.05, 0.3, 3.0):
    fig.add_trace(go.Scatter(x=grid, y=smooth(gaussian_kernel(h))[0][:, 0], mode="lines", name=f"h = {h}"))
fig.update_layout(title="Nadaraya–Watson with a Gaussian kernel: too small, about right, too large h",
                  xaxis_title="x", yaxis_title="y", height=380, template="plotly_white")
fig
"""),
    md(r"""
Other kernels give other smoothers. The **boxcar** kernel $\kappa(x, x') = \mathbf{1}[\lVert x - x'\rVert \le w]$
is a plain moving average over a window of half-width $w$. Where the window holds no data point, every
weight is 0 and the ratio is $0/0$; the library returns 0 there:
"""),
    code(CHECK + """
for width in (0.05, 0.3):
    fit_b, W_b = smooth(boxcar_kernel(width))
    empty = int((W_b.sum(-1) == 0).sum())
    mse = ((fit_b[:, 0] - torch.sin(grid)) ** 2).mean().item()
    print(f"boxcar w = {width}: {empty:3d} of {len(grid)} query points see no data; mean squared error {mse:.3f}")
"""),
    md(r"""
## 3. Softmax attention *is* a Nadaraya–Watson smoother

Now let the points be vectors: keys $k_j \in \mathbb{R}^d$ play the $x_j$, values $v_j \in \mathbb{R}^{d_v}$
the $y_j$, and each query $q_i$ is a point $x^*$ where we predict. With the **exponential kernel**

$$\kappa(q, k) = \exp\!\left(\frac{q^\top k}{\sqrt d}\right)$$

the Nadaraya–Watson weights are $\exp(s_{ij}) / \sum_l \exp(s_{il})$ with $s_{ij} = q_i^\top k_j/\sqrt d$:
exactly the softmax weights $P_{ij}$ of notebook 01. Attention predicts, for each query, a
similarity-weighted average of the values.
"""),
    code(CHECK + """
q = torch.randn(2, 3, 10, 16).to(device)  # (B, H, N, d)
k = torch.randn(2, 3, 12, 16).to(device)  # (B, H, M, d)
v = torch.randn(2, 3, 12, 5).to(device)   # (B, H, M, d_v)
out_nw, W_nw = kernel_smoother(q, k, v, exp_kernel(), return_weights=True)
out_sm, P_sm = softmax_attention(q, k, v, return_weights=True)
print("outputs agree  (max |Δ| < 1e-6):", (out_nw - out_sm).abs().max().item() < 1e-6)
print("weights agree  (max |Δ| < 1e-6):", (W_nw - P_sm).abs().max().item() < 1e-6)
"""),
    md(r"""
How does the exponential kernel relate to the Gaussian one? Expand the square:

$$\exp\!\left(-\frac{\lVert q - k\rVert^2}{2h^2}\right)
= \exp\!\left(-\frac{\lVert q\rVert^2}{2h^2}\right)\exp\!\left(\frac{q^\top k}{h^2}\right)\exp\!\left(-\frac{\lVert k\rVert^2}{2h^2}\right).$$

The first factor is the same for every key of a query, so it cancels in the ratio. If all keys have
the same norm, the last factor cancels too, and with $h^2 = \sqrt d$ the Gaussian smoother *equals*
softmax attention. (With keys of different norms, softmax favours long keys: it is not a local smoother.)
"""),
    code(CHECK + """
k_unit = k / k.norm(dim=-1, keepdim=True) * 3.0   # (B, H, M, d): every key has norm 3
gauss = kernel_smoother(q, k_unit, v, gaussian_kernel(bandwidth=16 ** 0.25))   # h² = √d
print("Gaussian (h² = √d) == softmax when keys share a norm:",
      (gauss - softmax_attention(q, k_unit, v)).abs().max().item() < 1e-5)
print("... and not when they don't:", (kernel_smoother(q, k, v, gaussian_kernel(16 ** 0.25))
                                      - softmax_attention(q, k, v)).abs().max().item() > 0.01)
"""),
    md(r"""
## 4. What if the kernel factorises?

Suppose $\kappa(q, k) = \varphi(q)^\top \varphi(k)$ for some **feature map** $\varphi: \mathbb{R}^d \to \mathbb{R}^{d_\varphi}$
with finitely many features $d_\varphi$. Then the sum over keys can be pulled apart:

$$
\hat f(q) = \frac{\sum_j \varphi(q)^\top\varphi(k_j)\, v_j^\top}{\sum_j \varphi(q)^\top\varphi(k_j)}
= \frac{\varphi(q)^\top \overbrace{\textstyle\sum_j \varphi(k_j) v_j^\top}^{S\ (d_\varphi \times d_v)}}
       {\varphi(q)^\top \underbrace{\textstyle\sum_j \varphi(k_j)}_{z\ (d_\varphi)}} .
$$

$S$ and $z$ do not depend on the query: build them once from the $M$ keys and values, then each query
costs $O(d_\varphi d_v)$ instead of $O(M d)$. This is **linear attention** (notebook 03). The library's
`feature_map_kernel(φ)` is the kernel $\varphi(q)^\top\varphi(k)$; smoothing with it equals
`linear_attention` in its associative form, which never forms the $N \times M$ matrix:
"""),
    code(CHECK + """
phi = elu_plus_one  # φ(x) = elu(x) + 1 > 0 (notebook 05 compares feature maps)
smoothed = kernel_smoother(q, k, v, feature_map_kernel(phi))    # builds the (N, M) Gram matrix
linear = linear_attention(q, k, v, phi, form="linear")          # builds S (d_φ, d_v) and z (d_φ) only
print("kernel smoother with φ(q)ᵀφ(k) == linear attention:", (smoothed - linear).abs().max().item() < 1e-5)
"""),
    code(CHECK + """
N = M_keys = 4096
d = d_v = 64
print(f"N = M = {N}, d = d_v = d_φ = {d}:")
print(f"  the smoother evaluates N·M = {N * M_keys:,} kernel values")
print(f"  the factorised form keeps S and z: d_φ·d_v + d_φ = {d * d_v + d:,} numbers, whatever M is")
"""),
    md(r"""
Which kernels factorise with *finitely* many features? A polynomial one does:
$(1 + q^\top k)^2 = 1 + 2q^\top k + (q^\top k)^2$ is a sum of products of monomials, so
$\varphi(x) = [1, \sqrt2\,x, \operatorname{vec}(x x^\top)]$ works with $1 + d + d^2$ features. The exponential
and Gaussian kernels do not: their Taylor series never stops. Linear attention therefore either picks a
different kernel (e.g. $\varphi = \text{elu}+1$) or approximates $\exp$ with random or truncated features —
notebook 05.

## 5. Explore

Pick a kernel (Gaussian, boxcar, exp = softmax, elu+1 = linear attention, FAVOR+), move the bandwidth
and the query point, and watch the weights and the fit; switch to 2-D inputs.
"""),
    code(IGNORE + """
from linattn_edu.explorers import kernel_smoother_explorer

kernel_smoother_explorer(kernel="gaussian", bandwidth=0.4)
"""),
    md(r"""
> **Limits of this notebook.**
> * A 1-D smoother with a fixed kernel is a picture of the *mechanism*. In a transformer the keys, values
>   and queries are produced by learned projections, so the "data" change with every input and layer.
> * The exponential kernel is local only when key norms are controlled (section 3); unnormalised keys
>   with large norms draw weight regardless of direction.
> * Nadaraya–Watson has well-known biases (flattening at the edges of the data, at peaks); the bandwidth
>   that is best here says nothing about the temperature a trained model uses.
"""),
    *exercise_intro("check_gaussian_kernel, check_nadaraya_watson, check_exp_kernel, "
                    "show_question, check_choice"),
    md(r"""
**Exercise 1.** Write `my_gaussian_kernel(q, k, bandwidth)`: the Gram matrix
$\kappa_{ij} = \exp(-\lVert q_i - k_j\rVert^2 / 2h^2)$, shape `(..., N, M)`, for `q (..., N, d)`, `k (..., M, d)`.
"""),
    code(CHECK + """
# Worked solution (replace the body with yours and re-run)
def my_gaussian_kernel(q, k, bandwidth):
    sq_dist = (q.unsqueeze(-2) - k.unsqueeze(-3)).pow(2).sum(-1)   # (..., N, 1, d) - (..., 1, M, d) -> (..., N, M)
    return torch.exp(-sq_dist / (2 * bandwidth**2))

check_gaussian_kernel(my_gaussian_kernel)
"""),
    md(r"""
**Exercise 2.** Write `my_nadaraya_watson(x_query, x_train, y_train, bandwidth)` for 1-D data: inputs of
shape `(n,)`, `(m,)`, `(m,)`; return the `(n,)` predictions with the Gaussian kernel.
"""),
    code(CHECK + """
# Worked solution (replace the body with yours and re-run)
def my_nadaraya_watson(x_query, x_train, y_train, bandwidth):
    w = torch.exp(-(x_query[:, None] - x_train[None, :]) ** 2 / (2 * bandwidth**2))  # (n, m)
    return (w @ y_train) / w.sum(-1)                                                # (n,)

check_nadaraya_watson(my_nadaraya_watson)
"""),
    md(r"""
**Exercise 3.** Write the kernel `my_exp_kernel(q, k)` (a `(..., N, M)` matrix) that turns
`kernel_smoother` into softmax attention. The checker runs `kernel_smoother(q, k, v, my_exp_kernel)`
and compares with `softmax_attention(q, k, v)`.
"""),
    code(CHECK + """
# Worked solution (replace the body with yours and re-run)
def my_exp_kernel(q, k):
    return torch.exp(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]))  # (..., N, M), not normalised

check_exp_kernel(my_exp_kernel)
"""),
    md("**Exercise 4.** Multiple choice."),
    code('show_question("finite_features")'),
    code(CHECK + """
# Worked solution (replace with your letter and re-run)
check_choice("finite_features", "c")
"""),
    md("**Exercise 5.** Multiple choice."),
    code('show_question("bandwidth_limit")'),
    code(CHECK + """
# Worked solution (replace with your letter and re-run)
check_choice("bandwidth_limit", "b")
"""),
    md("**Next:** [03 · Linear attention](03_linear_attention.ipynb) — drop the softmax, keep a factorised kernel, "
       "and reorder the matrix products."),
]

# ============================================================================ 03 linear attention

NB03 = [
    md(r"""
# 03 · Linear attention: drop the softmax, keep a kernel

**You will:** replace softmax's kernel by a factorised one, $\varphi(q)^\top\varphi(k)$; reorder the matrix
products so the $N \times N$ matrix never exists; count the cost before and after (FLOPs, memory, a
timing); see what the denominator does; and compare the attention maps of softmax and linear attention.

**You need:** notebooks 01 and 02.
"""),
    setup("""
import inspect
import math
import time

from linattn_edu import linear_attention, softmax_attention
from linattn_edu.feature_maps import elu_plus_one, identity
from linattn_edu.linear import associative_form, quadratic_form
from linattn_edu import viz
"""),
    md(r"""
## 1. The formula

Notebook 02 ended with a Nadaraya–Watson smoother whose kernel factorises, $\kappa(q, k) = \varphi(q)^\top\varphi(k)$,
with a **feature map** $\varphi: \mathbb{R}^d \to \mathbb{R}^{d_\varphi}$. Here $\varphi(x) = \operatorname{elu}(x) + 1$
(applied entrywise, so $d_\varphi = d$; every feature is $> 0$, so every kernel value is $> 0$). Write
$\varphi(Q)$ for the $N \times d_\varphi$ matrix whose rows are $\varphi(q_i)$, and likewise $\varphi(K)$ ($M \times d_\varphi$).
**Linear attention** is

$$
o_i = \frac{\sum_{j} \varphi(q_i)^\top\varphi(k_j)\; v_j}{\sum_{j} \varphi(q_i)^\top\varphi(k_j)},
\qquad\text{in matrices}\qquad
O = \frac{\big(\varphi(Q)\varphi(K)^\top\big) V}{\big(\varphi(Q)\varphi(K)^\top\big)\mathbf 1}
$$

(the division is row by row; $\mathbf 1$ is the all-ones vector of length $M$). Computed in this order it is
the **quadratic form**: the $N \times M$ matrix $A = \varphi(Q)\varphi(K)^\top$ first, exactly like softmax
attention, only with a different kernel.
"""),
    code("print(inspect.getsource(quadratic_form))"),
    md(r"""
## 2. Associativity: $(\varphi(Q)\varphi(K)^\top)\,V = \varphi(Q)\,(\varphi(K)^\top V)$

Matrix products associate. Multiplying the right pair first gives

$$
S = \varphi(K)^\top V \in \mathbb{R}^{d_\varphi \times d_v}, \qquad
z = \varphi(K)^\top \mathbf 1 = \sum_j \varphi(k_j) \in \mathbb{R}^{d_\varphi}, \qquad
o_i = \frac{\varphi(q_i)^\top S}{\varphi(q_i)^\top z} .
$$

$S$ and $z$ summarise all keys and values in a size that does not depend on $N$; the $N \times M$
matrix is never formed. This is the **associative** (or "linear") form:
"""),
    code("print(inspect.getsource(associative_form))"),
    code(CHECK + """
q = torch.randn(2, 4, 300, 32, dtype=torch.float64).to(device)  # (B, H, N, d)
k = torch.randn(2, 4, 300, 32, dtype=torch.float64).to(device)  # (B, H, N, d)
v = torch.randn(2, 4, 300, 16, dtype=torch.float64).to(device)  # (B, H, N, d_v)
quad = linear_attention(q, k, v, elu_plus_one, form="quadratic")   # (φ(Q)φ(K)ᵀ) V / …
assoc = linear_attention(q, k, v, elu_plus_one, form="linear")     # φ(Q) (φ(K)ᵀ V) / …
print("same result in float64, max |Δ| < 1e-12:", (quad - assoc).abs().max().item() < 1e-12)
"""),
    md(r"""
## 3. What it costs: $O(N^2 d)$ becomes $O(N d^2)$

Count multiply–adds as 2 FLOPs, for one head with $N = M$ tokens:

| | compute | FLOPs | extra memory |
|---|---|---|---|
| quadratic | $A = \varphi(Q)\varphi(K)^\top$, then $AV$ | $2N^2 d_\varphi + 2N^2 d_v$ | $N^2$ (the matrix $A$) |
| associative | $S = \varphi(K)^\top V$, then $\varphi(Q)S$ | $2N d_\varphi d_v + 2N d_\varphi d_v$ | $d_\varphi d_v$ (the state $S$) |

(the denominators add lower-order terms). The quadratic form grows like $N^2$, the associative one like
$N$. With $d_\varphi = d_v = d$ the associative form needs fewer FLOPs once
$2N^2 \cdot 2d > 4N d^2$, i.e. $N > d$. For a typical head, $d = 64$:
"""),
    code(CHECK + """
d_phi = d_v = 64
print(f"{'N':>7} | {'quadratic FLOPs':>17} | {'associative FLOPs':>17} | {'ratio':>6} | "
      f"{'A (N×N) fp32':>13} | {'S fp32':>7}")
for n in (256, 1024, 4096, 16384, 65536):
    quad_flops = 2 * n * n * d_phi + 2 * n * n * d_v
    assoc_flops = 4 * n * d_phi * d_v
    print(f"{n:>7} | {quad_flops:>17,} | {assoc_flops:>17,} | {quad_flops // assoc_flops:>6} | "
          f"{n * n * 4 / 2**20:>9,.0f} MiB | {d_phi * d_v * 4 / 2**10:>3.0f} KiB")
"""),
    md(r"""
A timing on this machine (one head, $d = d_v = 64$, float32, best of 5; your numbers will differ, the
trend will not):
"""),
    code("""
def best_ms(fn, repeats=5):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)

for n in (1024, 4096):
    qt, kt, vt = (torch.randn(1, n, 64).to(device) for _ in range(3))  # (1, N, 64)
    t_quad = best_ms(lambda: linear_attention(qt, kt, vt, elu_plus_one, form="quadratic"))
    t_lin = best_ms(lambda: linear_attention(qt, kt, vt, elu_plus_one, form="linear"))
    print(f"N = {n:5d}: quadratic {t_quad:8.1f} ms | associative {t_lin:6.1f} ms | {t_quad / t_lin:5.0f}× faster")
"""),
    md(r"""
## 4. The denominator: what does $\varphi(q)^\top\nu$ do?

In the recurrent notation of the next notebook the key summary $z$ is called $\nu$; with $q' = \varphi(q)$
the question is what $q'^\top\nu$ does. Expand it:

$$q_i'^\top \nu = \varphi(q_i)^\top \sum_j \varphi(k_j) = \sum_j \varphi(q_i)^\top\varphi(k_j) = \sum_j A_{ij}.$$

It is the **row sum** of the (never built) matrix $A$. Dividing by it turns the kernel values of query $i$
into weights that sum to 1 — the same job as the softmax's denominator $\sum_l \exp(s_{il})$. So the output
is a *weighted average* of the values: constant values come out unchanged, and the output's size does not
grow with the number of tokens. Without it (`normalize=False`) the output is a weighted *sum*:
"""),
    code(CHECK + """
mean_total = {}
for n in (64, 1024):
    qn, kn = torch.randn(n, 16).to(device), torch.randn(n, 16).to(device)  # (N, d)
    ones = torch.ones(n, 3, device=device)                                  # (N, d_v): every value = 1
    avg = linear_attention(qn, kn, ones, elu_plus_one)                      # weighted average
    total = linear_attention(qn, kn, ones, elu_plus_one, normalize=False)   # weighted sum
    mean_total[n] = total.mean().item()
    print(f"N = {n:4d}: normalised output of all-ones values is exactly 1: {torch.allclose(avg, torch.ones_like(avg))}")
print("unnormalised output grows like N (ratio for 1024 vs 64 tokens is 16 ± 25 %):",
      12 < mean_total[1024] / mean_total[64] < 20)
"""),
    md(r"""
The weights implied by linear attention, $A_{ij}/\sum_l A_{il}$, can be returned for pictures
(`return_weights=True`): each row sums to 1. For the ratio to be a weighted average the kernel must be
**non-negative**; with $\varphi = $ identity the kernel $q^\top k$ can be negative, the denominator can cross
0, and the library refuses the normalised form:
"""),
    code(CHECK + """
_, A_w = linear_attention(q, k, v, elu_plus_one, return_weights=True)  # (B, H, N, N)
print("implied weights: rows sum to 1:", torch.allclose(A_w.sum(-1), torch.ones_like(A_w.sum(-1))),
      "| all >= 0:", bool((A_w >= 0).all()))
try:
    linear_attention(q, k, v, identity)
except ValueError as err:
    print("ValueError:", err)
"""),
    md(r"""
## 5. Softmax and linear attention side by side

Same $Q$, $K$ (64 random tokens, $d = 16$): softmax attention $P$, linear attention's implied weights $A$
with $\varphi = \operatorname{elu}+1$, and their difference. The row error $\lVert A_i - P_i\rVert_1$ is between 0
(identical) and 2 (disjoint). Notice also the **rank**: $\varphi(Q)\varphi(K)^\top$ is a product through
$d_\varphi$ dimensions, so $A$ has rank at most $d_\varphi = 16$, while $P$ is full rank. A low-rank matrix
cannot be sharply peaked on many different keys at once.
"""),
    code(CHECK + """
qs = torch.randn(64, 16, dtype=torch.float64)  # (N, d)
ks = torch.randn(64, 16, dtype=torch.float64)  # (N, d)
vs = torch.randn(64, 4, dtype=torch.float64)   # (N, d_v)
_, P = softmax_attention(qs, ks, vs, return_weights=True)                            # (N, N)
_, A = linear_attention(qs, ks, vs, elu_plus_one, form="quadratic", return_weights=True)  # (N, N)
row_err = (A - P).abs().sum(-1)  # (N,)
print(f"row error ‖A_i − P_i‖₁: mean {row_err.mean().item():.2f}, max {row_err.max().item():.2f}")
print("rank of P:", torch.linalg.matrix_rank(P).item(), "| rank of A:", torch.linalg.matrix_rank(A).item())
print("largest weight per row, mean: softmax", round(P.amax(-1).mean().item(), 2),
      "| elu+1", round(A.amax(-1).mean().item(), 2))
"""),
    code('viz.attention_comparison(P, A, linear_name="elu+1")'),
    md(r"""
Explore: change the feature map (elu+1, relu, FAVOR+, Taylor), the number of tokens, clustered inputs
(where softmax is sharp), causal masking, and the temperature.
"""),
    code(IGNORE + """
from linattn_edu.explorers import attention_map_explorer

attention_map_explorer(n=32, d=16, feature_map="elu+1", inputs="clustered")
"""),
    md(r"""
> **Limits of this notebook.**
> * elu+1 is *a* kernel, not the softmax kernel: linear attention with it is a different model, not an
>   approximation of a softmax transformer (notebook 05 approximates softmax with random features).
> * The implied attention matrix has rank $\le d_\varphi$: it cannot focus sharply on many keys at once,
>   which limits how many distinct key–value associations it can recall.
> * The associative form here is **non-causal** (every query sees every key). A causal mask sits *between*
>   the two products and breaks the reordering — the subject of notebook 04.
> * FLOP counts ignore memory traffic and kernel efficiency. Against a fused softmax kernel (SDPA) and with
>   a causal mask, linear attention breaks even only at much larger $N$ than $N = d$ (notebook 06 measures it).
"""),
    *exercise_intro("check_kv_summary, check_linear_attention, check_linear_weights, "
                    "show_question, check_choice, check_order"),
    md(r"""
**Exercise 1.** Write `my_kv_summary(k, v, phi)` returning $S = \varphi(K)^\top V$ `(..., d_φ, d_v)` and
$z = \sum_j \varphi(k_j)$ `(..., d_φ)`, for `k (..., N, d)`, `v (..., N, d_v)`; `phi` is a feature map (call it).
"""),
    code(CHECK + """
# Worked solution (replace the body with yours and re-run)
def my_kv_summary(k, v, phi):
    fk = phi(k)                                   # (..., N, d_φ)
    return fk.transpose(-2, -1) @ v, fk.sum(-2)   # (..., d_φ, d_v), (..., d_φ)

check_kv_summary(my_kv_summary)
"""),
    md(r"""
**Exercise 2.** Write `my_linear_attention(q, k, v, phi)`: non-causal linear attention in $O(N)$.
The checker also watches for any $N \times N$ tensor your function creates.
"""),
    code(CHECK + """
# Worked solution (replace the body with yours and re-run)
def my_linear_attention(q, k, v, phi):
    S, z = my_kv_summary(k, v, phi)                  # (..., d_φ, d_v), (..., d_φ)
    fq = phi(q)                                      # (..., N, d_φ)
    return (fq @ S) / (fq @ z.unsqueeze(-1))         # (..., N, d_v) / (..., N, 1)

check_linear_attention(my_linear_attention)
"""),
    md(r"""
**Exercise 3.** For pictures only: write `my_linear_weights(q, k, phi)`, the `(..., N, N)` matrix of weights
that linear attention implies (rows sum to 1).
"""),
    code(CHECK + """
# Worked solution (replace the body with yours and re-run)
def my_linear_weights(q, k, phi):
    A = phi(q) @ phi(k).transpose(-2, -1)   # (..., N, N)
    return A / A.sum(-1, keepdim=True)

check_linear_weights(my_linear_weights)
"""),
    md("**Exercise 4.** The seed question, as a multiple choice."),
    code('show_question("denominator_role")'),
    code(CHECK + """
# Worked solution (replace with your letter and re-run)
check_choice("denominator_role", "b")
"""),
    md("**Exercise 5.** Order the steps of the modified (linear) attention computation."),
    code('show_question("linear_steps")'),
    code(CHECK + """
# Worked solution (replace with your order and re-run)
check_order("linear_steps", ["a", "b", "c", "d", "e", "f"])
"""),
    md("**Next:** [04 · Causal linear attention is an RNN](04_causal_linear_attention_is_an_rnn.ipynb) — "
       "a causal mask breaks the reordering; prefix sums and a recurrent state rescue it."),
]

# ============================================================================ 04 causal linear attention = RNN

NB04 = [
    md(r"""
# 04 · Causal linear attention is an RNN

**You will:** see why a causal mask breaks notebook 03's reordering; rescue it with prefix sums, which
turn causal linear attention into a recurrent network with a *matrix* state; step that state token by
token; meet the memory trap of materialising every prefix state and the chunkwise form that avoids it;
check that all forms agree; derive the backward pass as two more scans; and decode with constant memory.

**You need:** notebook 03.
"""),
    setup("""
import inspect
import time

from linattn_edu import LinearAttentionState, MemoryBudgetError, linear_attention, set_memory_budget, softmax_attention
from linattn_edu import linear as linear_module
from linattn_edu.feature_maps import elu_plus_one, identity
"""),
    md(r"""
## 1. A causal mask breaks the trick

Causal linear attention lets query $i$ see only keys $j \le i$:

$$o_i = \frac{\sum_{j \le i} \varphi(q_i)^\top\varphi(k_j)\, v_j}{\sum_{j \le i} \varphi(q_i)^\top\varphi(k_j)},
\qquad O = \frac{\big((\varphi(Q)\varphi(K)^\top) \odot L\big) V}{\big((\varphi(Q)\varphi(K)^\top) \odot L\big)\mathbf 1},$$

where $L$ is the lower-triangular $N \times N$ matrix of ones and $\odot$ the entrywise product. The mask sits
*between* the two products: $((\varphi(Q)\varphi(K)^\top) \odot L)\,V \ne \varphi(Q)\,(\varphi(K)^\top V)$, because
$\odot L$ does not associate with matrix products. The non-causal associative form lets the past see the future:
"""),
    code(CHECK + """
N, d, d_v = 100, 8, 5
q = torch.randn(2, 3, N, d, dtype=torch.float64).to(device)    # (B, H, N, d)
k = torch.randn(2, 3, N, d, dtype=torch.float64).to(device)    # (B, H, N, d)
v = torch.randn(2, 3, N, d_v, dtype=torch.float64).to(device)  # (B, H, N, d_v)
causal_ref = linear_attention(q, k, v, elu_plus_one, causal=True, form="quadratic")  # masked, O(N²)
noncausal = linear_attention(q, k, v, elu_plus_one, form="linear")                   # reordered, no mask
print("reordering without the mask gives another answer (max |Δ| > 0.1):",
      (causal_ref - noncausal).abs().max().item() > 0.1)
"""),
    md(r"""
## 2. Prefix sums: a recurrent state

Look at one query. Its numerator and denominator only involve sums over the prefix $j \le i$:

$$\mu_i = \sum_{j \le i} \varphi(k_j)\, v_j^\top \in \mathbb{R}^{d_\varphi \times d_v}, \qquad
\nu_i = \sum_{j \le i} \varphi(k_j) \in \mathbb{R}^{d_\varphi}, \qquad
o_i = \frac{\varphi(q_i)^\top \mu_i}{\varphi(q_i)^\top \nu_i} .$$

Each prefix sum extends the previous one by one term:

$$\mu_i = \mu_{i-1} + \varphi(k_i)\, v_i^\top, \qquad \nu_i = \nu_{i-1} + \varphi(k_i), \qquad \mu_0 = 0,\ \nu_0 = 0 .$$

That is a **recurrent neural network** whose hidden state is the pair $(\mu_i, \nu_i)$, of fixed size
$d_\varphi d_v + d_\varphi$, whatever $i$ is. (The library calls them `S` and `z`.) One step of it:
"""),
    code("""
print(inspect.getsource(linear_module.recurrent_step))
print(inspect.getsource(linear_module.readout))
"""),
    md(r"""
`LinearAttentionState` wraps this: `step(q_t, k_t, v_t)` adds token $t$ to the state, then reads it out with
$q_t$. Stepping through all $N$ tokens reproduces the masked quadratic form:
"""),
    code(CHECK + """
state = LinearAttentionState(elu_plus_one, d, d_v, batch_shape=(2, 3), dtype=torch.float64, device=device)
outs = [state.step(q[..., t, :], k[..., t, :], v[..., t, :]) for t in range(N)]  # N × (B, H, d_v)
stepped = torch.stack(outs, dim=-2)                                             # (B, H, N, d_v)
err = (stepped - causal_ref).abs().max().item()
print("token-by-token RNN == masked quadratic form (max |Δ| < 1e-12):", err < 1e-12)
print("state after", state.t, "tokens: S", tuple(state.S.shape), "z", tuple(state.z.shape))
"""),
    md(r"""
Step through it yourself: the state $S_t$, the normaliser $z_t$, the outputs so far, and row $t$ of the
recurrent form beside the quadratic one.
"""),
    code(IGNORE + """
from linattn_edu.explorers import state_stepper

state_stepper(n=12, d=4, d_v=4, feature_map="elu+1", t=5)
"""),
    md(r"""
## 3. The trap: materialising every prefix state

A Python loop over tokens is slow. The tempting vectorised version computes all $\mu_i$ at once with a
cumulative sum, `(φ(K)[..., :, None] * V[..., None, :]).cumsum(dim=-3)` — correct, and the `"prefix"` form
of the library. But it stores **one $d_\varphi \times d_v$ matrix per token**: $N d_\varphi d_v$ numbers, per head.
Softmax attention's matrix is $N^2$; this is $N d^2$ — no better until $N > d^2$:
"""),
    code("print(inspect.getsource(linear_module.prefix_form))"),
    code(CHECK + """
d_phi = d_v64 = 64
for n in (1024, 16384, 131072):
    prefix_bytes = n * d_phi * d_v64 * 4          # every μ_i, float32
    state_bytes = (d_phi * d_v64 + d_phi) * 4     # one (μ, ν)
    print(f"N = {n:6d}: prefix form holds {prefix_bytes / 2**20:7,.0f} MiB per head; one state is "
          f"{state_bytes / 2**10:.2f} KiB")
"""),
    md(r"""
The library guards dense allocations with a memory budget and says what to do instead (here the budget
is lowered to 1 MiB to show the message without allocating much):
"""),
    code(CHECK + """
old_budget = set_memory_budget(2**20)  # 1 MiB, just for this demonstration
try:
    x = torch.randn(1, 4096, 64)
    linear_attention(x, x, x, elu_plus_one, causal=True, form="prefix")
except MemoryBudgetError as err:
    print("MemoryBudgetError:", err)
finally:
    set_memory_budget(old_budget)
"""),
    md(r"""
## 4. The fix: chunkwise

Split the sequence into chunks of $C$ tokens. For chunk $c$ with rows $Q_c, K_c, V_c$ (at most $C$ each) and
the state $S_c = \sum_{\text{earlier chunks}} \varphi(K)^\top V$ carried in from all earlier chunks:

$$O_c^{\text{num}} = \underbrace{\varphi(Q_c)\,S_c}_{\text{inter-chunk: the past}} +
\underbrace{\big((\varphi(Q_c)\varphi(K_c)^\top) \odot L_C\big)\, V_c}_{\text{intra-chunk: masked, } C\times C},
\qquad S_{c+1} = S_c + \varphi(K_c)^\top V_c ,$$

and the denominator likewise with $V$ replaced by ones ($z_c$ instead of $S_c$). Inside a chunk it is the
quadratic form ($C^2$, small); across chunks it is the recurrence, one step per chunk. Time
$O(N(C d + d_\varphi d_v))$; memory: a $C \times C$ block per chunk and the carried state — never $N d_\varphi d_v$.
The library's version (with its backward, section 6) and the normalised wrapper:
"""),
    code("""
print(inspect.getsource(linear_module._CausalProduct.forward))
print(inspect.getsource(linear_module.chunkwise_form))
"""),
    md(r"""
*A note on this implementation:* to use one batched matrix product for all chunks, it keeps the
state entering *each* chunk, $(N/C)\, d_\varphi d_v$ numbers — $C$ times less than the prefix form (a loop over
chunks would keep one). Notebooks 06 (time) and 07 (memory) measure the forms against softmax attention.

## 5. All forms agree

Quadratic (masked), recurrent (token loop), prefix (cumsum) and chunkwise, in float64, with a length
$N = 100$ that is not a multiple of the chunk size 16 (the last chunk is ragged), batch and head dims:
"""),
    code(CHECK + """
for form in ("recurrent", "prefix", "chunkwise"):
    out = linear_attention(q, k, v, elu_plus_one, causal=True, form=form, chunk_size=16)
    err = (out - causal_ref).abs().max().item()
    print(f"{form:9s} vs quadratic, float64: max |Δ| < 1e-12: {err < 1e-12}")
out32 = linear_attention(q.float(), k.float(), v.float(), elu_plus_one, causal=True, form="chunkwise", chunk_size=16)
err32 = (out32.double() - causal_ref).abs().max().item()
print("chunkwise float32 vs float64 reference: max |Δ| < 1e-5:", err32 < 1e-5)
"""),
    code(CHECK + """
# causality: editing token 60 leaves outputs 0..59 untouched
k_edit, v_edit = k.clone(), v.clone()
k_edit[..., 60, :] += 5.0
v_edit[..., 60, :] -= 5.0
edited = linear_attention(q, k_edit, v_edit, elu_plus_one, causal=True, chunk_size=16)
print("outputs before the edited token unchanged:", torch.equal(edited[..., :60, :],
      linear_attention(q, k, v, elu_plus_one, causal=True, chunk_size=16)[..., :60, :]))
"""),
    md(r"""
## 6. The backward pass is two more scans

Training needs gradients. Take the unnormalised causal product with features already applied
(write $q_i, k_i$ for $\varphi(q_i), \varphi(k_i)$): $o_i = \sum_{j \le i} (q_i^\top k_j)\, v_j$. Let $g_i = \partial \mathcal L / \partial o_i$
be the incoming gradient for a scalar loss $\mathcal L$. Differentiating term by term:

$$
\frac{\partial \mathcal L}{\partial q_i} = \sum_{j \le i} (g_i^\top v_j)\, k_j, \qquad
\frac{\partial \mathcal L}{\partial k_j} = \sum_{i \ge j} (g_i^\top v_j)\, q_i, \qquad
\frac{\partial \mathcal L}{\partial v_j} = \sum_{i \ge j} (q_i^\top k_j)\, g_i .
$$

Each is a causal product again. $dQ$ is causal linear attention with queries $G$, keys $V$, values $K$ — a
forward scan. $dK$ and $dV$ sum over *later* positions $i \ge j$: the same scan **run backwards in time**
(flip the sequence, scan, flip back), with (queries $V$, keys $G$, values $Q$) and (queries $K$, keys $Q$,
values $G$). So the backward pass costs the same as the forward, with a carried state running from the end.
Checked against autograd through the quadratic form:
"""),
    code(CHECK + """
def causal(a, b, c):
    \"\"\"Σ_{j<=i} (a_i·b_j) c_j: the library's unnormalised causal product (features already applied).\"\"\"
    return linear_attention(a, b, c, identity, causal=True, normalize=False)

def causal_backwards(a, b, c):
    \"\"\"Σ_{j>=i} (a_i·b_j) c_j: the same scan run from the end of the sequence.\"\"\"
    return causal(a.flip(-2), b.flip(-2), c.flip(-2)).flip(-2)

fq, fk, vv = (x.clone().requires_grad_(True) for x in (elu_plus_one(q), elu_plus_one(k), v))  # (B, H, N, ·)
out = linear_attention(fq, fk, vv, identity, causal=True, normalize=False, form="quadratic")
G = torch.randn_like(out)                                  # (B, H, N, d_v): dL/dO
dq_auto, dk_auto, dv_auto = torch.autograd.grad(out, (fq, fk, vv), G)

fq0, fk0 = fq.detach(), fk.detach()
dq_scan = causal(G, v, fk0)                 # forward scan:   queries G, keys V, values K
dk_scan = causal_backwards(v, G, fq0)       # backward scan:  queries V, keys G, values Q
dv_scan = causal_backwards(fk0, fq0, G)     # backward scan:  queries K, keys Q, values G
for name, a, b in (("dQ", dq_scan, dq_auto), ("dK", dk_scan, dk_auto), ("dV", dv_scan, dv_auto)):
    print(f"{name}: scans == autograd (max |Δ| < 1e-10): {(a - b).abs().max().item() < 1e-10}")
"""),
    md(r"""
The library's chunkwise form implements exactly this as a hand-written backward (`_CausalProduct.backward`,
chunked like the forward, with a reversed carried state $dS$). Its gradients, through the normalised
output, match plain autograd through the quadratic form:
"""),
    code("print(inspect.getsource(linear_module._CausalProduct.backward))"),
    code(CHECK + """
grads = {}
for form in ("quadratic", "chunkwise"):
    qg, kg, vg = (x.clone().requires_grad_(True) for x in (q, k, v))
    linear_attention(qg, kg, vg, elu_plus_one, causal=True, form=form, chunk_size=16).pow(2).sum().backward()
    grads[form] = (qg.grad, kg.grad, vg.grad)
print("chunkwise gradients == quadratic-form autograd (max |Δ| < 1e-10):",
      all((a - b).abs().max().item() < 1e-10 for a, b in zip(grads["chunkwise"], grads["quadratic"])))
"""),
    md(r"""
## 7. Decoding with constant memory

Generating text means one new token at a time. Softmax attention must re-read every earlier key and value:
its **KV cache** grows by $2d$ numbers per token per head, and each step costs $O(t\,d)$. Linear attention
reads only its state: $O(d_\varphi d_v)$ memory and time per token, whatever $t$ is. `prefill` absorbs a prompt
at once (chunkwise), then `step` continues it:
"""),
    code(CHECK + """
T, prompt = 1024, 1000
qd, kd, vd = (torch.randn(T, 64).to(device) for _ in range(3))   # one head, d = d_v = 64, float32
full = linear_attention(qd, kd, vd, elu_plus_one, causal=True)   # (T, 64) all at once

dec = LinearAttentionState(elu_plus_one, 64, 64, device=device)
first = dec.prefill(qd[:prompt], kd[:prompt], vd[:prompt])       # (prompt, 64)
bytes_after_prompt = dec.nbytes()
rest = torch.stack([dec.step(qd[t], kd[t], vd[t]) for t in range(prompt, T)])  # (T - prompt, 64)
print("prefill + step == full causal output (max |Δ| < 1e-5):",
      (torch.cat([first, rest]) - full).abs().max().item() < 1e-5)
print(f"state bytes after {prompt} tokens: {bytes_after_prompt:,}; after {T}: {dec.nbytes():,}")
print(f"a KV cache (K and V, float32) after {T} tokens: {2 * T * 64 * 4:,} bytes, and growing")
"""),
    md("Per-token time on this machine (one thread, best of 20; unchecked: it depends on the machine):"),
    code("""
def best_us(fn, repeats=20):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e6 * min(times)

threads = torch.get_num_threads()
torch.set_num_threads(1)  # one token's work is too small to split across threads (and a busy CPU stalls them)
try:
    for t in (1024, 4096, 16384):
        K_cache, V_cache = torch.randn(t, 64).to(device), torch.randn(t, 64).to(device)   # (t, 64)
        q_t = torch.randn(1, 64).to(device)                                               # (1, 64)
        st = LinearAttentionState(elu_plus_one, 64, 64, device=device)
        st.prefill(K_cache, K_cache, V_cache)
        softmax_attention(q_t, K_cache, V_cache), st.readout(q_t[0])  # warm-up
        t_soft = best_us(lambda: softmax_attention(q_t, K_cache, V_cache))
        t_lin = best_us(lambda: st.readout(q_t[0]))
        print(f"context {t:6d}: softmax over the KV cache {t_soft:6.0f} µs | "
              f"linear-attention readout {t_lin:4.0f} µs")
finally:
    torch.set_num_threads(threads)
"""),
    md(r"""
> **Limits of this notebook.**
> * The token loop (`form="recurrent"`, `step`) is the clearest statement and the slowest: Python overhead
>   per token. The chunkwise form here is plain PyTorch; fused GPU kernels (flash-linear-attention) are faster.
> * A fixed-size state is a lossy summary: it cannot store arbitrarily many key–value pairs. What that costs
>   is recall: retrieving the value of a key seen long ago gets harder as more pairs share the state.
> * In float16 the denominator $\varphi(q)^\top\nu$ grows like $N$ and overflows near $N \approx 1$k; the library
>   accumulates $S$ and $z$ in float32 for half-precision inputs.
"""),
    *exercise_intro("check_prefix_states, check_recurrent_step, check_chunkwise, check_causal_backward, "
                    "show_question, check_order"),
    md(r"""
**Exercise 1.** Write `my_prefix_states(k, v, phi)` returning every $\mu_i$ `(..., N, d_φ, d_v)` and $\nu_i$
`(..., N, d_φ)` (inclusive: $j \le i$). The prefix form — fine for small $N$.
"""),
    code(CHECK + """
# Worked solution (replace the body with yours and re-run)
def my_prefix_states(k, v, phi):
    fk = phi(k)                                              # (..., N, d_φ)
    outer = fk.unsqueeze(-1) * v.unsqueeze(-2)               # (..., N, d_φ, 1) * (..., N, 1, d_v)
                                                             #   -> (..., N, d_φ, d_v)
    return outer.cumsum(dim=-3), fk.cumsum(dim=-2)

check_prefix_states(my_prefix_states)
"""),
    md(r"""
**Exercise 2.** Write one RNN step `my_step(S, z, q_t, k_t, v_t, phi)` returning `(out_t, S_new, z_new)`
for `S (..., d_φ, d_v)`, `z (..., d_φ)` and one token `q_t, k_t (..., d)`, `v_t (..., d_v)`.
"""),
    code(CHECK + """
# Worked solution (replace the body with yours and re-run)
def my_step(S, z, q_t, k_t, v_t, phi):
    fk, fq = phi(k_t), phi(q_t)                               # (..., d_φ)
    S = S + fk.unsqueeze(-1) * v_t.unsqueeze(-2)              # (..., d_φ, d_v): add token t first
    z = z + fk                                                # (..., d_φ)
    out = (fq.unsqueeze(-2) @ S).squeeze(-2) / (fq * z).sum(-1, keepdim=True)  # (..., d_v)
    return out, S, z

check_recurrent_step(my_step)
"""),
    md(r"""
**Exercise 3.** Write the chunkwise form `my_chunkwise(q, k, v, phi, chunk_size)` — causal, normalised, any
$N$ (the last chunk may be shorter).
"""),
    code(CHECK + """
# Worked solution (replace the body with yours and re-run)
def my_chunkwise(q, k, v, phi, chunk_size):
    fq, fk = phi(q), phi(k)                                                    # (..., N, d_φ)
    S = fq.new_zeros(*fq.shape[:-2], fq.shape[-1], v.shape[-1])                # (..., d_φ, d_v)
    z = fq.new_zeros(*fq.shape[:-2], fq.shape[-1])                             # (..., d_φ)
    outs = []
    for start in range(0, q.shape[-2], chunk_size):
        qc, kc, vc = (x[..., start:start + chunk_size, :] for x in (fq, fk, v))  # (..., C, ·)
        A = (qc @ kc.transpose(-2, -1)).tril()                                 # (..., C, C) intra-chunk, masked
        num = qc @ S + A @ vc                                                  # (..., C, d_v)
        den = qc @ z.unsqueeze(-1) + A.sum(-1, keepdim=True)                   # (..., C, 1)
        outs.append(num / den)
        S = S + kc.transpose(-2, -1) @ vc                                      # then carry the chunk forward
        z = z + kc.sum(-2)
    return torch.cat(outs, dim=-2)                                             # (..., N, d_v)

check_chunkwise(my_chunkwise)
"""),
    md(r"""
**Exercise 4.** The backward pass: for $o_i = \sum_{j \le i}(q_i^\top k_j) v_j$ (features already applied),
write `my_backward(q, k, v, grad_out)` returning `(dq, dk, dv)`. Use a causal scan and a reversed one.
"""),
    code(CHECK + """
# Worked solution (replace the body with yours and re-run)
def my_backward(q, k, v, grad_out):
    return (causal(grad_out, v, k),              # dq_i = Σ_{j<=i} (g_i·v_j) k_j
            causal_backwards(v, grad_out, q),    # dk_j = Σ_{i>=j} (g_i·v_j) q_i
            causal_backwards(k, q, grad_out))    # dv_j = Σ_{i>=j} (q_i·k_j) g_i

check_causal_backward(my_backward)
"""),
    md("**Exercise 5.** Order the steps of the chunkwise form for one chunk."),
    code('show_question("chunkwise_steps")'),
    code(CHECK + """
# Worked solution (replace with your order and re-run)
check_order("chunkwise_steps", ["a", "b", "c", "d"])
"""),
    md("**Next:** [05 · Feature maps and the Performer](05_feature_maps_and_performer.ipynb) — which φ, and "
       "what kernel each implies."),
]

# ============================================================================ 05 feature maps and the Performer

NB05 = [
    md(r"""
# 05 · Feature maps and the Performer

**You will:** see which kernel each common feature map $\varphi$ implies (elu+1, relu, Taylor, FAVOR+); derive
FAVOR+ as an *unbiased* random-feature estimate of softmax's kernel and measure its error against the number
of features $m$, with and without orthogonal projections; and see why positivity and numerical stabilisation
matter — including why trigonometric random features give negative denominators.

**You need:** notebooks 02–04.
"""),
    setup("""
import inspect
import math

from linattn_edu import linear_attention, softmax_attention
from linattn_edu import feature_maps
from linattn_edu.feature_maps import elu_plus_one, favor_plus, relu, taylor, trig_random_features
from linattn_edu import viz
"""),
    md(r"""
## 1. Every feature map is a kernel

Linear attention with feature map $\varphi: \mathbb{R}^d \to \mathbb{R}^{d_\varphi}$ is a Nadaraya–Watson smoother with
kernel $\kappa(q, k) = \varphi(q)^\top\varphi(k)$ (notebook 02). Softmax attention's kernel is
$\kappa_{\exp}(q, k) = \exp(q^\top k/\sqrt d)$. The library's maps (the table is from `feature_maps`' docstring;
$x' = x/d^{1/4}$ so that $q'^\top k' = q^\top k/\sqrt d$):
"""),
    code("print(feature_maps.__doc__.split('``query(x)``')[0])"),
    md(r"""
* **elu+1** and **relu** are cheap ($d_\varphi = d$) and non-negative, but their kernels are *not* $\kappa_{\exp}$:
  a model using them is a different model.
* **Taylor** keeps the first three terms of $e^s = 1 + s + s^2/2 + \dots$ with $s = q^\top k/\sqrt d$, exactly:
  $\varphi(x) = [1,\ x',\ \operatorname{vec}(x' x'^\top)/\sqrt2]$, since $\operatorname{vec}(q'q'^\top)^\top\operatorname{vec}(k'k'^\top) = (q'^\top k')^2$.
  Its features can be negative, but the kernel $1 + s + s^2/2 = \tfrac12\big((1+s)^2 + 1\big) \ge \tfrac12$ never is.
  The price: $d_\varphi = 1 + d + d^2$.
* **FAVOR+** (Performer) estimates $\kappa_{\exp}$ with $m$ random positive features (section 2).
"""),
    code(CHECK + """
d = 16
q = torch.randn(64, d, dtype=torch.float64)   # (N, d)
k = torch.randn(64, d, dtype=torch.float64)   # (N, d)
v = torch.randn(64, 4, dtype=torch.float64)   # (N, d_v)
s = q @ k.T / math.sqrt(d)                    # (N, N) scaled scores
print("Taylor: φ(q)ᵀφ(k) == 1 + s + s²/2 (max |Δ| < 1e-10):",
      (taylor(q) @ taylor(k).T - (1 + s + s**2 / 2)).abs().max().item() < 1e-10)
print("Taylor feature count for d = 16:", taylor.d_out(16), "| for d = 64:", taylor.d_out(64))
print("every Taylor kernel value here is >= 1/2:", bool((taylor(q) @ taylor(k).T >= 0.5 - 1e-12).all()))
"""),
    md(r"""
How close is each map's attention to softmax attention on the same $q, k$? The mean row error
$\lVert A_i - P_i\rVert_1$ between its implied weights $A$ and the softmax weights $P$ (0 = identical, 2 = disjoint):
"""),
    code(CHECK + """
_, P = softmax_attention(q, k, v, return_weights=True)  # (N, N)
for name, phi in [("elu+1", elu_plus_one), ("relu", relu), ("taylor", taylor),
                  ("favor+ m=256", favor_plus(d, m=256, seed=0)), ("favor+ m=4096", favor_plus(d, m=4096, seed=0))]:
    _, A = linear_attention(q, k, v, phi, form="quadratic", return_weights=True)
    print(f"{name:14s} d_φ = {phi.d_out(d):5d}   mean row error {(A - P).abs().sum(-1).mean().item():.2f}")
"""),
    md(r"""
With unit-variance inputs the scores $s$ stay near $[-3, 3]$, where the Taylor series is already good; FAVOR+
needs thousands of features to get close, and elu+1/relu are simply other kernels.

## 2. FAVOR+: positive random features, unbiased for $\exp(q^\top k)$

For a Gaussian vector $\omega \sim \mathcal N(0, I_d)$, the moment generating function gives
$\mathbb E[\exp(\omega^\top x)] = \exp(\lVert x\rVert^2/2)$. With $x = q' + k'$:

$$
\mathbb E_\omega\!\left[e^{\omega^\top q' - \lVert q'\rVert^2/2}\; e^{\omega^\top k' - \lVert k'\rVert^2/2}\right]
= e^{\lVert q'+k'\rVert^2/2 - \lVert q'\rVert^2/2 - \lVert k'\rVert^2/2} = e^{q'^\top k'} = \kappa_{\exp}(q, k).
$$

So with $m$ draws $\omega_1, \dots, \omega_m$ (rows of $\Omega$, $m \times d$),

$$\varphi(x) = \frac{1}{\sqrt m}\Big[e^{\omega_r^\top x' - \lVert x'\rVert^2/2}\Big]_{r=1}^{m}, \qquad
\varphi(q)^\top\varphi(k) = \frac1m \sum_{r=1}^m e^{\omega_r^\top q' - \lVert q'\rVert^2/2} e^{\omega_r^\top k' - \lVert k'\rVert^2/2}$$

is an average of $m$ unbiased estimates: **unbiased**, with variance falling like $1/m$ (error like $1/\sqrt m$),
and every feature **positive**. The library's `favor_plus(d, m, orthogonal, seed)`:
"""),
    code("print(inspect.getsource(favor_plus).split('    omega = random_projection')[0])"),
    md(r"""
*Unbiasedness*, checked: 2000 independent draws of $\Omega$ with $m = 16$ features each, for one $(q, k)$ pair.
The mean of the estimates should sit within a few standard errors of the exact value:
"""),
    code(CHECK + """
q1, k1 = 0.7 * q[:1], 0.7 * k[:1]                               # (1, d) one pair, moderate norm
exact = torch.exp(q1 @ k1.T / math.sqrt(d)).item()
draws = torch.tensor([(lambda phi: (phi(q1) @ phi(k1).T).item())(favor_plus(d, m=16, orthogonal=False, seed=s))
                      for s in range(2000)], dtype=torch.float64)  # (2000,)
std_err = draws.std().item() / math.sqrt(len(draws))
print(f"exact {exact:.3f} | mean of 2000 estimates {draws.mean().item():.3f} | "
      f"within 3 standard errors: {abs(draws.mean().item() - exact) < 3 * std_err}")
print("every single estimate is positive:", bool((draws > 0).all()))
"""),
    md(r"""
## 3. Error against $m$, and orthogonal features

The relative error $\operatorname{mean}|\hat\kappa - \kappa| / \operatorname{mean}\kappa$ over 64 × 64 pairs (inputs scaled
by 0.7), averaged over 5 draws of $\Omega$. **Orthogonal** features draw the rows of $\Omega$ in blocks of $d$
mutually orthogonal directions (each row still marginally $\mathcal N(0, I)$): the estimates in a block are
negatively correlated, so the same $m$ gives a lower variance (Choromanski et al., 2021).
"""),
    code(CHECK + """
qs, ks = 0.7 * q, 0.7 * k                                        # (N, d)
exact_gram = torch.exp(qs @ ks.T / math.sqrt(d))                 # (N, N)
ms = (16, 64, 256, 1024, 4096)
errors = {}
for label, orthogonal in (("iid", False), ("orthogonal", True)):
    errors[label] = []
    for m in ms:
        errs = []
        for seed in range(5):
            phi = favor_plus(d, m=m, orthogonal=orthogonal, seed=seed)
            est = phi(qs) @ phi(ks).T                            # (N, N) estimated kernel
            errs.append(((est - exact_gram).abs().mean() / exact_gram.mean()).item())
        errors[label].append(sum(errs) / len(errs))
    print(f"{label:10s}", "  ".join(f"m={m}: {e:.2g}" for m, e in zip(ms, errors[label])))
print("orthogonal beats iid at every m:", all(o < i for o, i in zip(errors["orthogonal"], errors["iid"])))
"""),
    code("""
phi = favor_plus(d, m=256, orthogonal=True, seed=0)
viz.feature_map_approximation(exact_gram, phi(qs) @ phi(ks).T, ms, errors, 256, method="FAVOR+")
"""),
    md(r"""
Two things to read off: at small $m$ the iid estimate is far worse than $1/\sqrt m$ suggests — the
estimator is a product of exponentials of Gaussians, heavy-tailed: its relative mean squared error is
$(e^{\lVert q'+k'\rVert^2} - 1)/m$ (Choromanski et al., 2021, Lemma 1), growing fast with the input norms. Orthogonal blocks tame it. And even at $m = 4096$ the error is a
few percent: softmax attention with *sharp* weights (large scores) is expensive to imitate.

Explore: the estimate against the exact kernel for every pair, the error curve, FAVOR+ against trig
features, the input scale and the seed.
"""),
    code(IGNORE + """
from linattn_edu.explorers import feature_map_explorer

feature_map_explorer(kind="favor+", d=16, m=64)
"""),
    md(r"""
## 4. Why positive features: trigonometric features give negative denominators

The classic random Fourier features use $\mathbb E[\cos(\omega^\top(q'-k'))] = e^{-\lVert q'-k'\rVert^2/2}$:
$\varphi(x) = e^{\lVert x'\rVert^2/2}[\sin(\Omega x'), \cos(\Omega x')]/\sqrt m$ is also unbiased for $\kappa_{\exp}$ — but its
single estimates can be **negative**. Normalised attention divides by a sum of estimates,
$\sum_{j \le i}\hat\kappa(q_i, k_j)$; with few keys (early positions of a causal sequence) that sum can be near 0 or
below, and the output explodes or flips sign. The library refuses trig features in the normalised form; the
unnormalised form (values = ones) shows the denominators:
"""),
    code(CHECK + """
trig = trig_random_features(d, m=64, seed=0)
est = trig(q) @ trig(k).T                                                     # (N, N) kernel estimates
print(f"negative kernel estimates: {(est < 0).double().mean().item():.0%} (FAVOR+: none, by construction)")
den = linear_attention(q, k, torch.ones(64, 1, dtype=torch.float64), trig, causal=True, normalize=False)  # (N, 1)
print("causal denominators <= 0:", int((den <= 0).sum()), "of", den.numel())
try:
    linear_attention(q, k, v, trig, causal=True)
except ValueError as err:
    print("ValueError:", err)
"""),
    md(r"""
## 5. Stabilisation: keeping exp in range, without looking at the future

FAVOR+'s features $e^{\omega^\top x' - \lVert x'\rVert^2/2}$ underflow for inputs of large norm: the exponent is
about $-\lVert x'\rVert^2/2$. When every feature of a query is 0, its output is $0/0$. Since any factor that is
constant across a query's features cancels in $\varphi(q)^\top S/\varphi(q)^\top z$, the library's attention-time
features subtract **stabilisers**: for a query, its own $\max_r \omega_r^\top q'$ (so its largest feature is
exactly $1/\sqrt m$); for keys, one constant fixed by $\Omega$ alone. Neither looks at another token — a
stabiliser taken over the whole sequence (a common implementation) would let the future leak into the past in
causal use. Inputs with standard deviation 6, $d = 64$, float32:
"""),
    code(CHECK + """
x = torch.randn(32, 64) * 6                                # (N, d) large-norm inputs, float32
phi64 = favor_plus(64, m=256, seed=0)
plain = phi64(x)                                           # (N, m) unstabilised φ(x)
print("more than 80 % of the plain features underflow to 0:", (plain == 0).float().mean().item() > 0.8)
print("some queries have every plain feature 0 (output 0/0):", bool((plain.sum(-1) == 0).any()))
print("stabilised query features: largest per query = 1/√m for all:",
      torch.allclose(phi64.query(x).amax(-1), torch.full((32,), 1 / math.sqrt(256))))
out = linear_attention(x, x, torch.randn(32, 8), phi64, causal=True)
print("attention output finite:", bool(torch.isfinite(out).all()))
"""),
    code(CHECK + """
# causal FAVOR+ never lets token 20 change outputs 0..19
xq, xk, xv = torch.randn(32, 64), torch.randn(32, 64), torch.randn(32, 8)
base = linear_attention(xq, xk, xv, phi64, causal=True)
xk2 = xk.clone()
xk2[20] *= 10.0                                            # a huge future key
edited = linear_attention(xq, xk2, xv, phi64, causal=True)
print("outputs before token 20 unchanged:", torch.equal(base[:20], edited[:20]))
# half precision: features and states are computed in float32, so no 0/0 from fp16 underflow
xh = (torch.randn(32, 64) * 3).half()
print("float16 inputs (std 3) give a finite output:", bool(torch.isfinite(linear_attention(xh, xh, xh, phi64)).all()))
"""),
    md(r"""
> **Limits of this notebook.**
> * Finite is not accurate: at large input norms FAVOR+'s variance explodes, and a stabilised output can be
>   finite yet far from softmax attention. Keys of very large norm underflow even with the key stabiliser
>   (the library's eps then gives output 0).
> * Random features are redrawn per model (or per step in some implementations); a trained model adapts to
>   its $\Omega$. The error numbers here are for random inputs, not trained $q, k$.
> * Matching the kernel is not the goal in itself: elu+1, Taylor and others are trained as models of their own,
>   and what they lose against softmax is mostly recall of exact key–value pairs, not smoothness.
"""),
    *exercise_intro("check_elu_plus_one, check_taylor_features, check_favor_features, show_question, check_choice"),
    md(r"""
**Exercise 1.** Write `my_elu_plus_one(x)`: $\operatorname{elu}(x) + 1$ entrywise, where $\operatorname{elu}(x) = x$ for $x > 0$
and $e^x - 1$ for $x \le 0$.
"""),
    code(CHECK + """
# Worked solution (replace the body with yours and re-run)
def my_elu_plus_one(x):
    return torch.where(x > 0, x + 1, torch.exp(x))   # elu(x) + 1: x + 1 above 0, e^x below

check_elu_plus_one(my_elu_plus_one)
"""),
    md(r"""
**Exercise 2.** Write Taylor features `my_taylor(x)` `(..., d) -> (..., d_φ)` with
$\varphi(q)^\top\varphi(k) = 1 + s + s^2/2$, $s = q^\top k/\sqrt d$. The checker compares kernels, so any order of
features works.
"""),
    code(CHECK + """
# Worked solution (replace the body with yours and re-run)
def my_taylor(x):
    xs = x * x.shape[-1] ** -0.25                                              # (..., d): q'·k' = s
    outer = (xs.unsqueeze(-1) * xs.unsqueeze(-2)).flatten(-2) / math.sqrt(2)   # (..., d²)
    return torch.cat([torch.ones_like(xs[..., :1]), xs, outer], dim=-1)        # (..., 1 + d + d²)

check_taylor_features(my_taylor)
"""),
    md(r"""
**Exercise 3.** Write FAVOR+ features `my_favor(x, omega)` for inputs `x (..., d)` and a projection
`omega (m, d)`: $\varphi(x) = e^{\Omega x' - \lVert x'\rVert^2/2}/\sqrt m$ with $x' = x/d^{1/4}$ (unstabilised).
"""),
    code(CHECK + """
# Worked solution (replace the body with yours and re-run)
def my_favor(x, omega):
    xs = x * x.shape[-1] ** -0.25                                             # (..., d)
    wx = xs @ omega.T                                                         # (..., m)
    return torch.exp(wx - xs.pow(2).sum(-1, keepdim=True) / 2) / math.sqrt(omega.shape[0])

check_favor_features(my_favor)
"""),
    md("**Exercise 4.** Multiple choice."),
    code('show_question("trig_negative")'),
    code(CHECK + """
# Worked solution (replace with your letter and re-run)
check_choice("trig_negative", "b")
"""),
    md("**Next:** [06 · Timing as the sequence grows](06_timing_as_sequence_grows.ipynb) and "
       "[07 · Memory: KV cache vs state](07_memory_kv_cache_vs_state.ipynb) measure what linear attention "
       "costs against softmax attention."),
]


NOTEBOOK_CELLS = {
    "01_softmax_attention": NB01,
    "02_attention_as_kernel_smoothing": NB02,
    "03_linear_attention": NB03,
    "04_causal_linear_attention_is_an_rnn": NB04,
    "05_feature_maps_and_performer": NB05,
}


if __name__ == "__main__":
    main(NOTEBOOK_CELLS, __doc__.splitlines()[0])
