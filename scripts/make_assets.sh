#!/usr/bin/env bash
# Regenerate the shipped timing/memory assets for THIS machine's device — one command:
#
#     scripts/make_assets.sh            CPU machine: about 12 minutes on a quiet 2-core CPU
#                                       GPU machine: about 10 minutes on one H200
#
# CPU (no GPU visible to torch):
#   assets/cpu_sweep.json    every method x N x {forward, forward+backward}, B=1, H=4, float32: median/IQR
#                            time, noise flag, peak memory, guard skips, metadata (device, torch, dtype,
#                            threads, date, git revision, load average)
#   assets/cpu_slopes.json   SDPA vs chunkwise forward, N = 256 ... 32768: log-log slopes and the crossover
#   assets/cpu_decode.json   per-token decode step, KV-cache softmax vs recurrent state, N up to 65536
# GPU (torch.cuda.is_available()), named after the GPU, e.g. gpu_h200_* (the revision is inside each record):
#   ..._sweep.json           the CPU shape (B=1, H=4, float32), N = 1k ... 64k, every method
#   ..._sweep_bf16.json      the shape that fills a GPU (B=4, H=16, bfloat16): chunkwise, SDPA, window
#                            and FLA's kernels where flash-linear-attention is installed ([fla] extra)
#   ..._decode.json          decode at B=16, H=16, bfloat16, where reading the cache shows in the time
# and a PNG beside each record file (plotly + kaleido; needs a Chromium, e.g. Debian's `chromium`).
#
# Run it on a quiet machine (the load average is recorded in the metadata). PYTHON overrides the interpreter;
# DEVICE=cpu forces the CPU assets on a GPU machine; PNG=0 writes the records only (no Chromium needed).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
BENCH=("$PY" -m linattn_edu.bench)
ok3() { "$@" || [ $? -eq 3 ]; }  # exit status 3: a claim did not hold (the records are still written)

DEVICE="${DEVICE:-$("$PY" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')}"
if [ "$DEVICE" = cpu ]; then
    "${BENCH[@]}" sweep --device cpu \
        --methods softmax,sdpa,linear_quadratic,chunkwise,recurrent,window \
        --ns 256,512,1024,2048,4096,8192,16384 --modes forward,forward+backward \
        --memory-budget-gib 4 --time-budget-s 15 --repeats 5 --no-progress --out assets/cpu_sweep.json
    ok3 "${BENCH[@]}" slopes --device cpu --no-progress --out assets/cpu_slopes.json
    ok3 "${BENCH[@]}" decode --device cpu --contexts 1024,4096,16384,65536 --no-progress --out assets/cpu_decode.json
    FILES=(assets/cpu_sweep.json assets/cpu_slopes.json assets/cpu_decode.json)
else
    GPU="$("$PY" -c 'import torch, re; n = torch.cuda.get_device_name(); print((re.findall(r"[A-Z]+\d+\w*", n) or ["gpu"])[-1].lower())')"
    P="assets/gpu_${GPU}"
    "${BENCH[@]}" sweep --device cuda --methods softmax,sdpa,linear_quadratic,chunkwise,window \
        --ns 1024,2048,4096,8192,16384,32768,65536 --batch 1 --heads 4 --dtype float32 \
        --memory-budget-gib 60 --time-budget-s 3 --repeats 5 --no-progress --out "${P}_sweep.json"
    BF16=sdpa,chunkwise,window
    "$PY" -c 'from linattn_edu.bench import fla; raise SystemExit(not fla.available("cuda"))' && BF16="$BF16,fla_chunk"
    "${BENCH[@]}" sweep --device cuda --methods "$BF16" --ns 1024,2048,4096,8192,16384,32768 \
        --batch 4 --heads 16 --dtype bfloat16 --memory-budget-gib 60 --time-budget-s 3 --repeats 5 --no-progress \
        --out "${P}_sweep_bf16.json"
    ok3 "${BENCH[@]}" decode --device cuda --no-progress --out "${P}_decode.json"
    FILES=("${P}_sweep.json" "${P}_sweep_bf16.json" "${P}_decode.json")
fi

# A PNG beside each record file (python -m linattn_edu.viz): *decode.json -> one figure, any other -> one per mode.
if [ "${PNG:-1}" != 0 ]; then
    "$PY" -m linattn_edu.viz "${FILES[@]}"
fi
