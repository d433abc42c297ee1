#!/usr/bin/env bash
# On a GPU host (Python 3.12, no network): install a released cp312 wheel into a fresh venv, compute an FES on the
# GPU and on the CPU from it, compare them with each other and with a float64 numpy reference, list the GPU code
# its libcufes carries (cuobjdump), and show from the loader's trace where libcudart and libgomp came from.
#
#   bash tools/release/gpu_check_wheel.sh WHEEL_DIR
#
# WHEEL_DIR holds the cyfes cp312 wheel, and may hold wheels the host lacks: numpy (unless the system Python has
# it: the venv sees system site-packages), nvidia-cuda-cuobjdump (when no cuobjdump is on PATH or in
# /usr/local/cuda/bin), pytest and its dependencies (for TESTS=DIR: run those engine tests against the wheel).
# VENV=... keeps the venv where a later step can use it; TESTS_LOG=FILE keeps the full test report.
set -euo pipefail
WHEELS=$(cd "${1:?usage: gpu_check_wheel.sh WHEEL_DIR}" && pwd)
PY=${PYTHON:-python3}
VENV=${VENV:-$(mktemp -d)/venv}
TESTS=${TESTS:-}
[ -n "$TESTS" ] && TESTS=$(cd "$TESTS" && pwd)
echo "== host: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1 | head -1); $($PY -V)"
# --without-pip + the outer pip: works where the image's Python has no ensurepip.
"$PY" -m venv --system-site-packages --without-pip "$VENV"
# Where $PY is itself a venv (the GPU image's python3 is), --system-site-packages shows the base interpreter's
# packages, not $PY's: a .pth file shows the folder that holds $PY's numpy.
if ! "$VENV/bin/python" -c "import numpy" 2>/dev/null; then
  "$PY" -c "import numpy, os; print(os.path.dirname(os.path.dirname(numpy.__file__)))" \
    > "$(echo "$VENV"/lib/python3*/site-packages)/host-numpy.pth" || true
fi
# numpy from the system site-packages satisfies cyfes's one dependency; pip does not look there by itself.
NODEPS=$("$VENV/bin/python" -c "import numpy" 2>/dev/null && echo --no-deps || true)
"$PY" -m pip --python "$VENV/bin/python" install -q --no-index $NODEPS --find-links "$WHEELS" cyfes
echo "== installed: $(ls "$VENV"/lib/python3*/site-packages | tr '\n' ' ')"
SITE=$(echo "$VENV"/lib/python3*/site-packages)
cd "$(mktemp -d)"   # away from the source tree, so `import cyfes` can only be the installed one

echo "== GPU code in the wheel's libcufes (cuobjdump --list-elf --list-ptx)"
CUOBJDUMP=$(command -v cuobjdump || ls /usr/local/cuda/bin/cuobjdump 2>/dev/null || true)
if [ -z "$CUOBJDUMP" ] && ls "$WHEELS"/nvidia_cuda_cuobjdump-*.whl >/dev/null 2>&1; then
  "$PY" -m zipfile -e "$(ls "$WHEELS"/nvidia_cuda_cuobjdump-*.whl | head -1)" cuobjdump-wheel
  CUOBJDUMP=$(find "$PWD/cuobjdump-wheel" -name cuobjdump -type f | head -1); chmod +x "$CUOBJDUMP"
fi
echo "cuobjdump: ${CUOBJDUMP:-none}"
[ -n "$CUOBJDUMP" ] && "$CUOBJDUMP" --list-elf --list-ptx "$SITE/cyfes/engine/libcufes.so"
echo "DT_NEEDED of libcufes: $(readelf -d "$SITE/cyfes/engine/libcufes.so" | grep NEEDED | sed 's/.*\[\(.*\)\]/\1/' | tr '\n' ' ')"

LD_DEBUG=libs LD_DEBUG_OUTPUT=$PWD/trace "$VENV/bin/python" - <<'PYEOF'
import json, time
import numpy as np
import cyfes, cyfes._build_info as info
print("cyfes", cyfes.__version__, "from", cyfes.__file__)
print("build: CUDA", info.CUDA_VERSION, "needs driver CUDA >=", info.CUDA_DRIVER_CUDA, "driver >=", info.CUDA_DRIVER_MIN)
print(json.dumps(cyfes.backends(), indent=1))
rng = np.random.default_rng(7)
samples = np.concatenate([rng.normal(-1, 0.4, (150_000, 2)), rng.normal(1, 0.6, (150_000, 2))])
bias = rng.uniform(0, 20, len(samples))
kw = dict(bias=bias, bins=(200, 200), periodic=[None, 8.0], blocks=4)
cpu = cyfes.fes(samples, 0.1, device="cpu", **kw)
for precision in ("float64", "float32"):
    t = time.perf_counter()
    gpu = cyfes.fes(samples, 0.1, device="gpu", precision=precision, **kw)
    dt = time.perf_counter() - t
    low = cpu.values < 20 * cpu.kT
    print(f"GPU {precision}: backend {gpu.backend}, {dt:.3f} s for {len(samples) * 40000:.2e} sample-grid pairs; "
          f"max |F_gpu - F_cpu| where F < 20 kT: {np.abs(gpu.values - cpu.values)[low].max():.3e} kJ/mol; "
          f"max |err_gpu - err_cpu|: {np.nanmax(np.abs(gpu.error - cpu.error)[low]):.3e}")
    assert gpu.backend.startswith("cuda"), gpu.backend
    # each backend leaves out what moves F by < 1e-6 kT (the default tolerance), and so may the shift to min F
    tol = 2e-6 * cpu.kT if precision == "float64" else 5e-3 * cpu.kT
    assert np.abs(gpu.values - cpu.values)[low].max() < tol
# A float64 numpy reference on a few points, independent of both backends.
pts = cpu.points()[::4001]
d = pts[:, None, :] - samples[None, :, :]
d[..., 1] -= 8.0 * np.round(d[..., 1] / 8.0)
logk = (bias / cpu.kT)[None, :] - 0.5 * (d ** 2).sum(-1) / 0.01
top = logk.max(1, keepdims=True)
f = -cpu.kT * (top[:, 0] + np.log(np.exp(logk - top).sum(1)))
# tolerance=0: every pair summed (the default leaves out what changes F by < 1e-6 kT, 2.5e-6 kJ/mol here)
gpu = cyfes.fes(samples, 0.1, bias=bias, grid=pts, periodic=[None, 8.0], device="gpu", shift=False, tolerance=0)
ref_norm = cpu.kT * (np.log(np.exp(bias / cpu.kT - (bias / cpu.kT).max()).sum()) + (bias / cpu.kT).max()) \
    + cpu.kT * np.log(2 * np.pi * 0.01)
print("max |F_gpu - F_numpy| on", len(pts), "points:", np.abs(gpu.values - (f + ref_norm)).max())
assert np.abs(gpu.values - (f + ref_norm)).max() < 1e-8
print("WHEEL GPU CHECK OK")
PYEOF
echo "== where the loader found the libraries (LD_DEBUG=libs)"
grep -h "calling init:" trace.* | grep -E "cudart|gomp|cufes|_gpu|_cpu|libcuda" | sed 's/^ *[0-9]*: *//' | sort -u
grep -h "calling init:" trace.* | grep -E "cudart|gomp" | grep -v "$VENV" && { echo "FAIL: a library from outside the venv"; exit 1; }
echo "== cyfes info (console script)"
"$VENV/bin/cyfes" info
if [ -n "$TESTS" ]; then
  echo "== engine tests in $TESTS against the installed wheel"
  "$PY" -m pip --python "$VENV/bin/python" install -q --no-index --find-links "$WHEELS" pytest pyelftools || true
  # The full report goes to TESTS_LOG; source-build tests (test_build's pip-wheel cases) need the source tree.
  LOG=${TESTS_LOG:-$PWD/pytest.log}
  (cd "$TESTS" && "$VENV/bin/python" -m pytest -q -rfs -p no:cacheprovider -o addopts="" . > "$LOG" 2>&1; tail -40 "$LOG")
fi
