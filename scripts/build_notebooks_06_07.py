"""Build notebooks 06 (timing) and 07 (memory) from reviewable Python, then (optionally) execute them.

    .venv/bin/python scripts/build_notebooks_06_07.py            # write notebooks/0[67]_*.ipynb
    .venv/bin/python scripts/build_notebooks_06_07.py --execute  # ... and execute each in place

Code cells that start with ``# NBVAL_CHECK_OUTPUT`` are compared by nbval (``pytest --nbval-lax``);
timing and widget cells start with ``# NBVAL_IGNORE_OUTPUT``.  The notebooks import linattn_edu and
never redefine its math.  Heavy sweeps run only with ``LINATTN_FULL=1``.
"""
from __future__ import annotations

from nbbuild import CHECK, IGNORE, REPO_URL, code, main, md  # noqa: F401  (shared builder pieces)


def setup(imports: str):
    """First code cell: (Colab-only install), imports, version, seed, device, the full-size switch."""
    return code(f'''
{IGNORE.strip()}
import sys
if "google.colab" in sys.modules:  # only on Colab (opened from the badge): install the course package
    %pip install -q "{REPO_URL}"

import os
from pathlib import Path
{imports.strip()}
import torch
import linattn_edu

torch.manual_seed(0)  # the one seeding call: every random tensor below follows from it
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
FULL = os.environ.get("LINATTN_FULL") == "1"  # LINATTN_FULL=1: bigger sweeps (minutes, not seconds)
ASSETS = Path("../assets") if Path("../assets").is_dir() else Path("assets")  # shipped measurements
print(f"linattn_edu {{linattn_edu.__version__}} | torch {{torch.__version__}} | device {{device}} | full size {{FULL}}")
''')


# ------------------------------------------------------------------------------------------ 06
NB06 = [
    md("""
# 06 · Timing as the sequence grows

The promise of linear attention is a cost **linear in N**. This notebook *measures* it, honestly:

1. the cost model (FLOPs) and where the crossover *should* be;
2. how `linattn_edu.bench` times a call (warm-up, synchronisation, repeats, median and IQR) and
   measures peak memory;
3. a small live sweep on your device (seconds on a laptop CPU), on log-log axes with the
   theory curves c·N²d and c·Nd² and the crossover N marked;
4. the common timing mistakes behind "linear attention is slower!";
5. results shipped in `assets/` (measured on a 2-core CPU, with their metadata).

Everything here is causal attention with B = 1, H = 4 heads, d = 64, float32 unless stated.
Set the environment variable `LINATTN_FULL=1` before starting Jupyter for bigger sweeps.
"""),
    setup("""
import time
from linattn_edu import bench, linear_attention
from linattn_edu.bench import Results
from linattn_edu.viz_timing import timing_figure
from linattn_edu.explorers import timing_explorer
"""),
    md("""
## 1. The cost model

Per head, with N tokens, head dim d and chunk size C:

| method | FLOPs (causal) | extra memory |
|---|---|---|
| softmax (naive or flash/SDPA) | ≈ 2N²d (half of 4N²d: the upper triangle is masked) | naive N², flash O(N) |
| linear, chunkwise | N(4d² + 4Cd): per chunk K_cᵀV_c, Q_cS_c (d² each) and tril(Q_cK_cᵀ)V_c (C·d each) | N·C + (N/C)·d² |

The two are equal at **N = 2d + 2C** (256 for d = C = 64). Below it softmax does *less* work;
above it the gap grows like N / (2d + 2C).
"""),
    code(CHECK + """
d, C = 64, 64
for n in (256, 1024, 16384):
    softmax_flops = 2 * n * n * d  # causal: half of the 4N²d of a full attention matrix
    chunk_flops = bench.chunkwise_flops(n, d, C)  # N(4d² + 4Cd)
    print(f"N = {n:>5}: causal softmax {softmax_flops / 1e9:7.3f} GFLOP, chunkwise {chunk_flops / 1e9:6.3f} GFLOP, "
          f"ratio {softmax_flops / chunk_flops:5.2f}")
print("FLOP break-even N = 2d + 2C =", 2 * d + 2 * C)
"""),
    md("""
The timed functions are the library's own: the chunkwise form *is* linear attention (it equals the
quadratic reference), so the race is fair. A quick check on a small input:
"""),
    code(CHECK + """
q, k, v = bench.make_inputs(300, heads=4, d=64, dtype=torch.float64)  # (1, 4, 300, 64) each
fast = linear_attention(q, k, v, "elu+1", causal=True, form="chunkwise", chunk_size=64)  # (1, 4, 300, 64)
ref = linear_attention(q, k, v, "elu+1", causal=True, form="quadratic")  # (1, 4, 300, 64)
print("chunkwise == quadratic reference:", bool(torch.allclose(fast, ref, rtol=1e-10, atol=1e-12)))
"""),
    md("""
## 2. How the harness measures

`bench.time_call(fn)` does what a careful person does by hand:

* **warm-up**: the first call pays for memory allocation, thread-pool start-up and dispatch caches;
  it is run (and timed, to plan the measurement) but not reported;
* **synchronisation**: `torch.utils.benchmark.Timer` calls `torch.cuda.synchronize()` before
  reading the clock, so on a GPU it times the kernels, not just their launch;
* **repeats**: many samples (blocks of calls for fast functions); it reports the **median** and
  the **interquartile range** (IQR = p75 − p25), which a single slow outlier cannot move.

`bench.peak_memory(fn)` reports peak *extra* bytes of one call: on CUDA `max_memory_allocated`;
on CPU torch keeps no allocator statistics, so the call runs under `torch.profiler` with
`profile_memory=True` and we take the peak of the running sum of allocations and frees. That
sees tensor storages only (not Python objects or allocator caching), which is what the formulas
predict.

Before running a point, a **guard** predicts its memory (`bench.predict_peak_bytes`) and its time
(from the previous N), and records a skip instead of crashing. Naive softmax at N = 65536 would
need four dense (4, N, N) float32 tensors:
"""),
    code(CHECK + """
rec = bench.measure_point("softmax", 65536, memory_budget=4 * 2**30)
print(rec["status"])
for method in ("softmax", "sdpa", "chunkwise", "window"):
    small, big = (bench.predict_peak_bytes(method, n) for n in (4096, 65536))
    print(f"{method:9s} predicted peak: {small / 2**20:9.1f} MiB at N=4096, {big / 2**20:11.1f} MiB at N=65536 "
          f"(x{big / small:.0f} for 16x the tokens)")
"""),
    md("""
## 3. A live sweep on your device

Small by default (N ≤ 2048, forward only: about half a minute on a 2-core CPU); `LINATTN_FULL=1`
goes to N = 16384 and adds forward+backward. Methods:

* `softmax`: the library's naive softmax (dense N×N), `sdpa`: `torch.nn.functional.scaled_dot_product_attention`
  (fused flash kernel: the honest baseline), `linear_quadratic`: linear attention's O(N²) form,
  `chunkwise`: the fast causal linear form, `recurrent`: the token-by-token RNN (short N only),
  `window`: sliding-window softmax (w = 256).
"""),
    code(IGNORE + """
ns = bench.log_grid(128, 16384 if FULL else 2048)
modes = ("forward", "forward+backward") if FULL else ("forward",)
live = bench.sweep(ns=ns, modes=modes, device=device, min_repeats=3, min_run_time=0.05 if not FULL else 0.2,
                   time_budget_s=20.0 if FULL else 3.0, progress=False)
print(bench.format_metadata(live.metadata))
print(bench.format_table(live))
"""),
    code(IGNORE + """
timing_figure(live, mode="forward")
"""),
    md("""
Click a legend entry to hide a method (on both panels). Read the slopes on log-log axes:
slope 2 is quadratic, slope 1 linear. At these small N fixed overheads (Python, dispatch, thread
start-up) flatten every curve, so the slopes are *lower* than the asymptotic ones:
"""),
    code(IGNORE + """
for method, slope in bench.slopes(live, n_min=512, n_max=16384).items():
    print(f"{method:17s} log-log slope {slope:.2f}")
n_star = bench.crossover_n(live)
print("chunkwise faster than SDPA from N ≈", "never (in this range)" if n_star is None else f"{n_star:,.0f}")
"""),
    md("""
## 4. Timing mistakes ("linear attention is slower!")

**No warm-up, one sample.** The first call of a fresh shape can pay one-off costs: on a GPU the
CUDA context, cuBLAS handles and kernel selection (or a `torch.compile` compilation) can take
seconds; on a CPU the penalty is usually small (allocations, thread-pool wake-up), as this cell
shows on your machine. Either way one timed call is one sample: it cannot separate the method
from the noise, so the harness warms up, repeats and reports the median with its IQR:
"""),
    code(IGNORE + """
fn = bench.build_call("chunkwise", 2048, device=device)
start = time.perf_counter(); fn(); first = time.perf_counter() - start
steady = bench.time_call(fn, device=device, min_repeats=5, min_run_time=0.1)
print(f"first call {first * 1e3:.2f} ms; steady state median {steady['median_s'] * 1e3:.2f} ms "
      f"(IQR {steady['iqr_s'] * 1e3:.2f} ms, {steady['repeats']} samples)")
"""),
    md("""
**No synchronisation (GPU).** CUDA calls return as soon as the kernel is *queued*. Reading
`time.perf_counter()` right after measures the launch (microseconds) and the next synchronising
call (`.item()`, `print`, a copy to the CPU) silently absorbs the real cost. `torch.utils.benchmark`
synchronises for you; by hand, call `torch.cuda.synchronize()` before each clock read. On a CPU
there is nothing to synchronise, so this cell only shows the difference when a GPU is present:
"""),
    code(IGNORE + """
if device.type == "cuda":
    fn = bench.build_call("sdpa", 8192, device=device)
    fn(); torch.cuda.synchronize()
    start = time.perf_counter(); fn(); launch = time.perf_counter() - start
    torch.cuda.synchronize(); total = time.perf_counter() - start
    print(f"without sync {launch * 1e3:.3f} ms (launch only), with sync {total * 1e3:.3f} ms")
else:
    print("CPU: calls are synchronous; on a GPU this cell compares timing with and without synchronisation")
"""),
    md("""
**Too-short N.** Below the crossover, softmax does fewer FLOPs (section 1) *and* SDPA is one fused
kernel while the chunkwise form is a handful of ordinary tensor ops with their fixed per-call
cost. A benchmark at N = 256 "shows" linear attention losing; it is measuring overheads:
"""),
    code(IGNORE + """
for n in (256, 4096):
    c = bench.time_call(bench.build_call("chunkwise", n, device=device), device=device, min_run_time=0.1)
    s = bench.time_call(bench.build_call("sdpa", n, device=device), device=device, min_run_time=0.1)
    print(f"N = {n:>4}: chunkwise {c['median_s'] * 1e3:7.3f} ms, SDPA {s['median_s'] * 1e3:7.3f} ms, "
          f"SDPA / chunkwise = {s['median_s'] / c['median_s']:.2f}")
"""),
    md("""
Two more traps: **a busy machine** (other processes steal cores; compare methods measured in the
same run, look at the IQR, note the load average in the metadata), and **comparing against a naive
baseline** (beating the dense N×N softmax is easy; the fair opponent is SDPA / FlashAttention).

## 5. Shipped results

`assets/` holds a sweep measured on a 2-core CPU with its metadata (regenerate with
`scripts/make_assets.sh`). A GPU sweep, when someone measures one, lands beside it and is shown too.
"""),
    code(IGNORE + """
shipped = {p.stem: Results.load(p) for p in sorted(ASSETS.glob("*sweep*.json"))}
for name, res in shipped.items():
    print(name, "|", bench.format_metadata(res.metadata))
cpu = shipped.get("cpu_sweep")
print(bench.format_table(cpu) if cpu else "no shipped CPU sweep found")
"""),
    code(IGNORE + """
timing_figure(cpu, mode="forward", title="Shipped CPU sweep, forward") if cpu else None
"""),
    code(IGNORE + """
timing_figure(cpu, mode="forward+backward", title="Shipped CPU sweep, forward+backward") if cpu else None
"""),
    code(IGNORE + """
if cpu:
    for mode in ("forward", "forward+backward"):
        sl = bench.slopes(cpu, mode=mode, n_min=2048, n_max=32768)
        n_star = bench.crossover_n(cpu, mode=mode)
        cross = "never" if n_star is None else f"N ≈ {n_star:,.0f}"
        print(f"{mode:17s} log-log slopes for N >= 2048: " + ", ".join(f"{m} {s:.2f}" for m, s in sl.items())
              + f" | chunkwise overtakes SDPA at {cross}")
"""),
    md("""
SDPA against chunkwise alone, forward, up to N = 32768 (`python -m linattn_edu.bench slopes`), with the
issue's slope targets:
"""),
    code(IGNORE + """
path = ASSETS / "cpu_slopes.json"
long = Results.load(path) if path.exists() else None
if long:
    print(bench.format_metadata(long.metadata))
    sl = bench.slopes(long, n_min=2048, n_max=32768)
    for t in bench.slope_targets(sl):
        print(t.line())
    print(f"chunkwise overtakes SDPA at N ≈ {bench.crossover_n(long):,.0f}")
timing_figure(long, mode="forward", memory=False, title="Shipped: SDPA vs chunkwise to N = 32768") if long else None
"""),
    md("""
### Explore

Toggle methods, switch forward / forward+backward, hide the theory fits. Pass no `records` to
measure live on your device instead (`timing_explorer(n_max=2048)`).
"""),
    code(IGNORE + """
timing_explorer(records=cpu) if cpu else timing_explorer(n_max=1024)
"""),
    md("""
## Take-aways

* Chunkwise linear attention grows ~linearly; SDPA (and every exact softmax) ~quadratically. The
  measured crossover (a few hundred tokens in the shipped CPU sweep, more on a busy machine or a
  GPU: ~1.5k on an A100 in the GLA paper) sits above the FLOP break-even 2d + 2C = 256, because
  SDPA is one fused kernel while the chunkwise form pays a fixed cost per tensor op.
* Measure after a warm-up, synchronise on GPUs, use many repeats and report the median and IQR,
  sweep N far enough to see the asymptote, and compare against SDPA, not naive softmax.
* Honest box: these are single-layer, single-machine numbers on a shared 2-core CPU; the
  absolute times move with hardware and load, the slopes and the crossover's existence do not.
"""),
]


# ------------------------------------------------------------------------------------------ 07
NB07 = [
    md("""
# 07 · Memory: the KV cache vs the linear-attention state

To generate token t + 1, a softmax decoder attends to the keys and values of **all** t previous
tokens, so it keeps them: the **KV cache** grows with the context. A causal linear-attention
decoder keeps one matrix per head, S = Σ φ(k_j) v_jᵀ (and z = Σ φ(k_j)), **whatever the length**.
This notebook prices both for real model shapes and measures one decoding step.
"""),
    setup("""
from linattn_edu import LinearAttentionState, bench, memory
from linattn_edu.memory import PRESETS, cache_bytes, format_bytes, state_bytes
from linattn_edu.bench import Results
from linattn_edu.viz_timing import decode_figure, kv_cache_figure
from linattn_edu.explorers import kv_cache_calculator
"""),
    md("""
## 1. The KV-cache formula

    KV cache bytes = 2 · layers · kv_heads · head_dim · N · batch · bytes_per_element

(2: one key and one value vector per kv head, per layer, per token). For a Llama-2-7B-shaped model
(32 layers, 32 heads of dim 128, fp16): 2 · 32 · 32 · 128 · 2 B = 512 KiB **per token**.

The linear-attention state of the same shape (φ = elu+1 keeps d_φ = head_dim):

    state bytes = layers · heads · d_φ · d_v · batch · bytes_per_element   (+ layers·heads·d_φ for z)
"""),
    code(CHECK + """
llama = PRESETS["llama-2-7b"]
print("per token:", format_bytes(cache_bytes(llama, 1, dtype="fp16")))
for n in (4096, 32768, 131072):
    print(f"KV cache at N = {n:>6}: {format_bytes(cache_bytes(llama, n, dtype='fp16')):>10}")
print("linear state (S):", format_bytes(state_bytes(llama, dtype="fp16")),
      "| with z:", format_bytes(state_bytes(llama, dtype="fp16", include_z=True)))
print("the cache outgrows the state at N =", memory.crossover_tokens(llama), "tokens")
"""),
    md("""
## 2. MHA, GQA, MQA and MLA

* **GQA** (grouped-query attention) shares each key/value head among a group of query heads:
  Llama-3-8B and Mistral-7B have 32 query heads but 8 kv heads, a 4× smaller cache.
* **MQA** (multi-query) keeps one kv head: Falcon-7B.
* **MLA** (multi-head latent attention, DeepSeek-V2) caches one compressed latent c_t of width
  d_c = 512 per layer, plus a 64-dim RoPE key shared by the heads:
  `layers · (d_c + d_rope) · N · batch · bytes`.

Each preset's numbers come from its published config (`memory.PRESETS[...].source`):
"""),
    code(CHECK + """
print(f"{'model':20s} {'kind':4s} {'L':>3s} {'H':>4s} {'kv':>4s} {'hd':>4s} {'per token':>11s} {'at 32k':>10s} "
      f"{'at 128k':>10s} {'linear state':>13s}")
for key, s in PRESETS.items():
    print(f"{s.name:20s} {s.kind:4s} {s.layers:3d} {s.heads:4d} {s.kv_heads:4d} {s.head_dim:4d} "
          f"{format_bytes(cache_bytes(s, 1)):>11s} {format_bytes(cache_bytes(s, 32768)):>10s} "
          f"{format_bytes(cache_bytes(s, 131072)):>10s} {format_bytes(state_bytes(s)):>13s}")
print("(fp16/bf16, batch 1; linear state with d_φ = head_dim)")
"""),
    code(CHECK + """
ds = PRESETS["deepseek-v2"]
mla = cache_bytes(ds, 1, dtype="bf16")
mha = memory.kv_cache_bytes(layers=60, kv_heads=128, head_dim=128, tokens=1, dtype="bf16")
print(f"DeepSeek-V2 MLA: {mla:,} B/token = (512 + 64) · 60 layers · 2 B")
print(f"the same 128 heads x 128 dims as plain MHA: {mha:,} B/token, {mha / mla:.1f}x more")
print(ds.source)
"""),
    md("""
Batch multiplies the cache too: serving 32 sequences of 8k tokens with Llama-3-8B in fp16 needs
32 × 8192 × 128 KiB, more than the model's own weights (~16 GB in fp16):
"""),
    code(CHECK + """
llama3 = PRESETS["llama-3-8b"]
print("Llama-3-8B, batch 32, N = 8192:", format_bytes(cache_bytes(llama3, 8192, batch=32, dtype="fp16")))
print("its linear state, batch 32:    ", format_bytes(state_bytes(llama3, batch=32, dtype="fp16")))
"""),
    md("""
## 3. Calculator

Pick a preset or edit the shape (editing turns the preset into "custom"), the storage dtype, the
batch, the context N and the feature map (FAVOR+ and Taylor-2 enlarge d_φ, hence the state).
"""),
    code(IGNORE + """
kv_cache_calculator(preset="llama-2-7b", tokens=32768)
"""),
    code(IGNORE + """
kv_cache_figure([PRESETS[k] for k in ("llama-2-7b", "llama-3-8b", "falcon-7b", "deepseek-v2")], tokens=32768)
"""),
    md("""
## 4. The state in the library is exactly that size

`LinearAttentionState` holds S (…, d_φ, d_v) and z (…, d_φ); after prefilling any number of
tokens its size is the formula's (one layer, 4 heads, d = 64, float32):
"""),
    code(CHECK + """
for n in (16, 4096):
    state = LinearAttentionState("elu+1", 64, 64, batch_shape=(1, 4))
    q, k, v = bench.make_inputs(n, heads=4, d=64)  # (1, 4, n, 64) each
    state.prefill(q, k, v)
    print(f"after {n:>4} tokens: S {tuple(state.S.shape)}, z {tuple(state.z.shape)}, {state.nbytes():,} bytes "
          f"(formula {memory.linear_state_bytes(layers=1, heads=4, d_phi=64, d_v=64, dtype=4, include_z=True):,})")
"""),
    md("""
## 5. Measured: one decoding step at context N

`bench.decode_sweep` times a single generated token at context N:

* **softmax + KV cache**: write k_t, v_t into the cache, attend the new query over N + 1 keys:
  O(N·d) work and a cache of 2·N·d per head;
* **linear state**: `LinearAttentionState.step`: S += φ(k_t)v_tᵀ, z += φ(k_t),
  out = φ(q_t)ᵀS / φ(q_t)ᵀz: O(d²) work, whatever N.

Small by default (N ≤ 16384; `LINATTN_FULL=1` goes to 65536):
"""),
    code(IGNORE + """
contexts = (1024, 4096, 16384, 65536) if FULL else (1024, 4096, 16384)
live = bench.decode_sweep(contexts, device=device, min_repeats=10, min_run_time=0.1, measure_memory=False,
                          progress=False)
for r in live.records:
    print(f"{r['method']:9s} N = {r['n']:>6}: {r['median_s'] * 1e3:.4f} ms/token, keeps {format_bytes(r['state_bytes'])}")
for t in bench.decode_targets(live):
    print(t.line())
"""),
    code(IGNORE + """
decode_figure(live, title="Decoding one token at context N (live)")
"""),
    md("""
Shipped measurement (N up to 65536, 2-core CPU), with its metadata:
"""),
    code(IGNORE + """
path = ASSETS / "cpu_decode.json"
shipped = Results.load(path) if path.exists() else None
if shipped:
    print(bench.format_metadata(shipped.metadata))
    for t in bench.decode_targets(shipped):
        print(t.line())
decode_figure(shipped, title="Decoding one token at context N (shipped CPU results)") if shipped else None
"""),
    md("""
## Take-aways

* The KV cache is 2 · layers · kv_heads · head_dim bytes-per-element **per token**; GQA, MQA and
  MLA shrink the constant, not the growth.
* A linear-attention state is layers · heads · d_φ · d_v, the same at 1k or 1M tokens, and a
  decoding step costs the same at every context length.
* Honest box: the constant-size state is also the limitation: it must compress the whole past into
  d_φ × d_v numbers per head, which is why linear attention recalls less than softmax (notebook on recall).
"""),
]


NOTEBOOK_CELLS = {
    "06_timing_as_sequence_grows": NB06,
    "07_memory_kv_cache_vs_state": NB07,
}


if __name__ == "__main__":
    main(NOTEBOOK_CELLS, __doc__.splitlines()[0])
