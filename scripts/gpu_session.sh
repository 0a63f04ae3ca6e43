#!/usr/bin/env bash
# Everything a GPU visit has to measure, in one command, on a bare CUDA machine that has python3 with
# torch (no internet needed):
#
#     OUT=/some/folder scripts/gpu_session.sh          about 8-10 minutes on one H200
#
# 1. the CUDA tests and the forms' tests on the GPU's torch  -> $OUT/gpu_tests.log (needs pytest and
#    hypothesis importable; skipped with a message if they are not)
# 2. scripts/gpu_chunk_check.py: chunkwise (both carries, eager and compiled) vs torch SDPA vs FLA's
#    Triton kernels when `fla` imports, time and peak memory      -> $OUT/gpu_chunk_check.json
# 3. scripts/make_assets.sh's GPU records (PNG=0: no PNGs there; render them afterwards on a machine
#    with Chromium: python -m linattn_edu.viz assets/gpu_*.json) -> assets/gpu_<gpu>_*.json, copied to $OUT
#
# A step that fails is reported and the next one still runs; the exit status is the number of failed
# steps. WHEELS=dir installs extra wheels (e.g. fla-core) into a scratch folder on PYTHONPATH first.
# The git revision is read from git, else from $LINATTN_EDU_REVISION (a copy without .git).
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder the results go to}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
REV="$(git rev-parse --short HEAD 2>/dev/null || echo "${LINATTN_EDU_REVISION:-unknown}")"
export LINATTN_EDU_REVISION="$REV"
failed=0
step() { echo "== $1 ($(date -u +%H:%M:%S))"; }

if [ -n "${WHEELS:-}" ]; then
    "$PY" -m pip install --quiet --no-index --no-deps --target /tmp/linattn_site "$WHEELS"/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/linattn_site"
fi
"$PY" -c 'import torch; assert torch.cuda.is_available(), "no CUDA GPU"; print(torch.__version__, torch.cuda.get_device_name())' \
    || { echo "needs a CUDA GPU"; exit 1; }

step "1. tests on the GPU"
if "$PY" -c 'import pytest, hypothesis' 2>/dev/null; then
    "$PY" -m pytest -q -p no:cacheprovider -o addopts="" tests/test_cuda.py tests/test_chunked.py tests/test_forms.py \
        tests/test_gated.py 2>&1 | tee "$OUT/gpu_tests.log" || failed=$((failed + 1))
else
    echo "pytest or hypothesis missing: tests skipped" | tee "$OUT/gpu_tests.log"
fi

step "2. chunkwise vs SDPA vs FLA"
timeout 300 "$PY" scripts/gpu_chunk_check.py --out "$OUT/gpu_chunk_check.json" --rev "$REV" --budget-s 150 \
    || failed=$((failed + 1))

step "3. GPU assets"
if PNG=0 PYTHON="$PY" timeout 420 scripts/make_assets.sh; then
    cp assets/gpu_*_"$REV"_*.json "$OUT"/ 2>/dev/null
else
    failed=$((failed + 1))
fi
step "done: $failed step(s) failed"
exit "$failed"
