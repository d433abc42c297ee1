#!/usr/bin/env bash
# On a GPU host (Python 3.12 with numpy, no network): install the cp312 cyfes conda packages of a local channel with
# py-rattler into fresh prefixes and compute an FES on the GPU from each, under the loader's trace (`verify`).
#
#   bash tools/release/gpu_check_conda.sh TOOL_WHEELS [CHANNEL]
#
# TOOL_WHEELS  a folder of cp312 wheels the release tool needs and the host lacks: py-rattler (abi3),
#              backports.zstd, pyyaml and pyelftools (pip download --no-deps --only-binary=:all:
#              --python-version 3.12 --platform manylinux2014_x86_64 py-rattler==0.28.0 backports.zstd pyyaml
#              pyelftools)
# CHANNEL      the local channel with cyfes-*-py312_cuda*.conda and its repodata.json (default dist/conda)
# Run from the repository root, with build/release/conda-fixtures/ (the TEST FIXTURE channel: NVIDIA's
# libcudart, the vendored libgomp, metadata-only stand-ins; never published) copied from the build host.
set -euo pipefail
PY=${PYTHON:-python3.12}
WHEELS=${1:?usage: gpu_check_conda.sh TOOL_WHEELS [CHANNEL]}
CHANNEL=${2:-dist/conda}
SITE=$(mktemp -d)/site
# Unpack the wheels instead of pip-installing them: a bare host Python may have neither pip nor ensurepip.
"$PY" - "$SITE" "$WHEELS"/*.whl <<'PYEOF'
import sys, zipfile
for wheel in sys.argv[2:]:
    zipfile.ZipFile(wheel).extractall(sys.argv[1])
PYEOF
echo "== host"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || echo "nvidia-smi not available"
"$PY" -c "import sys, numpy; print('python', sys.version.split()[0], 'numpy', numpy.__version__)" || echo "numpy not importable: verify will try to pip-install it (needs network)"
ls /usr/local/cuda*/lib64/libcudart.so* 2>/dev/null | sed 's/^/host CUDA runtime (must NOT be used): /' || true
echo "== verify (py-rattler solve + install into a fresh prefix, import, backends, FES on CPU and GPU, LD_DEBUG=libs)"
for pkg in "$CHANNEL"/linux-64/cyfes-*-py312_cuda*.conda; do
  PYTHONPATH="$SITE" "$PY" -m tools.release verify "$pkg"
done
