#!/usr/bin/env bash
# Regenerate assets/ — the ONE command for the shipped CPU timing/memory results and their PNGs:
#
#     scripts/make_assets.sh            (about 12 minutes on a quiet 2-core CPU)
#
#   assets/cpu_sweep.json   every method x N x {forward, forward+backward}: median/IQR time, peak memory,
#                           guard skips, metadata (device, torch, dtype, threads, date, git revision, load)
#   assets/cpu_slopes.json  SDPA vs chunkwise forward, N = 256 ... 32768: log-log slopes and the crossover
#   assets/cpu_decode.json  per-token decode step, KV-cache softmax vs recurrent state, N up to 65536
#   assets/*.png            the figures (plotly + kaleido; needs a Chromium, e.g. Debian's `chromium`)
#
# Run it on a quiet machine (the load average is recorded in the metadata). PYTHON overrides the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
"$PY" -m linattn_edu.bench sweep \
    --methods softmax,sdpa,linear_quadratic,chunkwise,recurrent,window \
    --ns 256,512,1024,2048,4096,8192,16384 --modes forward,forward+backward \
    --memory-budget-gib 4 --time-budget-s 15 --repeats 5 --no-progress --out assets/cpu_sweep.json
"$PY" -m linattn_edu.bench slopes --no-progress --out assets/cpu_slopes.json || [ $? -eq 3 ]  # 3: a target missed
"$PY" -m linattn_edu.bench decode --contexts 1024,4096,16384,65536 --no-progress --out assets/cpu_decode.json || [ $? -eq 3 ]
"$PY" -m linattn_edu.viz_timing assets
