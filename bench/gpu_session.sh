#!/bin/bash
# One GPU-machine session: build cyfes with the machine's nvcc, run the engine tests (GPU ones included),
# the full suite, the benchmark and the build checks; everything is logged under $OUT (or ./gpu-out).
# Usage (repo root): bash bench/gpu_session.sh [--quick]
set -u
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PY=${PY:-python3}
log() { echo "== $*" | tee -a "$OUT/summary.txt"; }

log "$(date -u) $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1)"
log "python $($PY -V 2>&1); nvcc $(nvcc --version | tail -1); cmake $(cmake --version | head -1)"
# Build tools the machine may lack, given as wheels in $WHEELS (default ./wheels), go into /tmp/buildtools.
WHEELS=${WHEELS:-wheels}
if [ -d "$WHEELS" ] && ! $PY -c "import Cython, scikit_build_core, pathspec, elftools" 2>/dev/null; then
  log "installing build tools from $WHEELS"
  $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/buildtools "$WHEELS"/*.whl \
    && export PYTHONPATH=/tmp/buildtools
fi
log "build"
t0=$(date +%s)
$PY -m pip install --no-build-isolation --no-deps -q --target /tmp/cy . -Cbuild-dir=/tmp/cybuild \
  >"$OUT/build.log" 2>&1 || { log "BUILD FAILED"; tail -40 "$OUT/build.log"; exit 1; }
log "build took $(( $(date +%s) - t0 )) s"
export PYTHONPATH=/tmp/cy${PYTHONPATH:+:$PYTHONPATH}

log "engine tests (GPU included, slow included)"
timeout 300 $PY -m pytest -q -rs tests/engine/test_api.py tests/engine/test_backends.py tests/engine/test_inputs.py tests/test_build.py \
  tests/engine/test_truncated.py \
  -p no:cacheprovider >"$OUT/engine-tests.log" 2>&1
log "engine tests rc=$?: $(tail -1 "$OUT/engine-tests.log")"
grep -E "FAILED|Error" "$OUT/engine-tests.log" | head -20

log "benchmark"
timeout 240 $PY bench/bench_fes.py ${1:-} --json "$OUT/bench.json" >"$OUT/bench.txt" 2>&1
cat "$OUT/bench.txt"
log "time to a surface"
timeout 400 $PY bench/bench_surface.py --gpu --cpu ${1:-} --json "$OUT/surface.json" >"$OUT/surface.txt" 2>&1
cat "$OUT/surface.txt"
if [ "$($PY -c 'from cyfes.engine import backends; print(len(backends.gpu_devices()))')" -ge 2 ]; then
  log "method=binned on one GPU against two"
  timeout 300 $PY bench/bench_binned_gpus.py 2>&1 | tee -a "$OUT/summary.txt"
fi
log "tuning: 8 grid points per thread (float32)"
CUFES_PPT=8 timeout 60 $PY bench/bench_fes.py --gpu-only --quick 2>&1 | tail -6 | tee -a "$OUT/summary.txt"

lib=/tmp/cy/cyfes/engine/libcufes.so
cuobjdump --list-elf --list-ptx "$lib" >"$OUT/cuobjdump.txt" 2>&1
cuobjdump -sass -arch sm_90 "$lib" 2>/dev/null | awk '/Function : .*kde_kernelIfLi3ELb0ELi4/{p=1} p&&/Function : /&&!/kde_kernelIfLi3ELb0ELi4/{p=0} p' \
  >"$OUT/sass-f32-d3-ppt4.txt"
log "SASS of float32 D=3: $(grep -c MUFU.EX2 "$OUT/sass-f32-d3-ppt4.txt") MUFU.EX2, $(wc -l <"$OUT/sass-f32-d3-ppt4.txt") lines"

[ -n "${SKIP_FULL:-}" ] && { cat "$OUT/summary.txt"; exit 0; }
log "full suite"
timeout 200 $PY -m pytest -q tests -p no:cacheprovider --continue-on-collection-errors >"$OUT/full-suite.log" 2>&1
log "full suite rc=$?: $(tail -1 "$OUT/full-suite.log")"
cat "$OUT/summary.txt"
