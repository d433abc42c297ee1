#!/usr/bin/env bash
# Issue 4 item 10: on the GPU host (Python 3.12, no network), install the released cp312 wheel into a fresh venv
# (no system site-packages), compute an FES on the GPU and on the CPU from it, compare them with each other and
# with a float64 numpy reference, and show from the loader's trace where libcudart and libgomp came from.
#
# Carry (relative to the repository root): the wheel and numpy's cp312 wheel in .carry/gpu/
#   cp dist/cyfes-*-cp312-*.whl .carry/gpu/
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 numpy -d .carry/gpu
# Then: bash tools/release/gpu_check_wheel.sh
set -euo pipefail
PY=${PYTHON:-python3}
WHEELS=${WHEELS:-.carry/gpu}
VENV=${VENV:-$(mktemp -d)/venv}   # VENV=... keeps it where a later step (the GPU tests) can use it
echo "== host: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1 | head -1); $($PY -V)"
# The image's python3 lives in a venv; --without-pip + the outer pip keeps this working without ensurepip.
"$PY" -m venv --without-pip "$VENV"
"$PY" -m pip --python "$VENV/bin/python" install -q --no-index --find-links "$WHEELS" cyfes numpy
echo "== installed: $(ls "$VENV"/lib/python3*/site-packages | tr '\n' ' ')"
cd "$(mktemp -d)"   # away from the source tree, so `import cyfes` can only be the installed one
LD_DEBUG=libs LD_DEBUG_OUTPUT=$PWD/trace "$VENV/bin/python" - <<'PYEOF'
import json, time
import numpy as np
import cyfes
print("cyfes", cyfes.__version__, "from", cyfes.__file__)
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
    tol = 1e-6 if precision == "float64" else 5e-3 * cpu.kT
    assert np.abs(gpu.values - cpu.values)[low].max() < tol
# A float64 numpy reference on a few points, independent of both backends.
pts = cpu.points()[::4001]
d = pts[:, None, :] - samples[None, :, :]
d[..., 1] -= 8.0 * np.round(d[..., 1] / 8.0)
logk = (bias / cpu.kT)[None, :] - 0.5 * (d ** 2).sum(-1) / 0.01
top = logk.max(1, keepdims=True)
f = -cpu.kT * (top[:, 0] + np.log(np.exp(logk - top).sum(1)))
gpu = cyfes.fes(samples, 0.1, bias=bias, grid=pts, periodic=[None, 8.0], device="gpu", shift=False)
ref_norm = cpu.kT * (np.log(np.exp(bias / cpu.kT - (bias / cpu.kT).max()).sum()) + (bias / cpu.kT).max()) \
    + cpu.kT * np.log(2 * np.pi * 0.01)
print("max |F_gpu - F_numpy| on", len(pts), "points:", np.abs(gpu.values - (f + ref_norm)).max())
assert np.abs(gpu.values - (f + ref_norm)).max() < 1e-6
print("WHEEL GPU CHECK OK")
PYEOF
echo "== where the loader found the libraries (LD_DEBUG=libs)"
grep -h "calling init:" trace.* | grep -E "cudart|gomp|cufes|_gpu|_cpu" | sed 's/^ *[0-9]*: *//' | sort -u
grep -h "calling init:" trace.* | grep -E "cudart|gomp" | grep -v "$VENV" && { echo "FAIL: a library from outside the venv"; exit 1; }
echo "== cyfes info (console script)"
"$VENV/bin/cyfes" info
