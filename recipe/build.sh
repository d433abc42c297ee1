#!/usr/bin/env bash
# conda-build runs this in $SRC_DIR with the host environment at $PREFIX.
# The variant decides the backend: cuda_compiler_version None builds the CPU backend only.
set -euxo pipefail

if [[ "${cuda_compiler_version:-None}" == "None" ]]; then
  export CYFES_CUDA=OFF
else
  export CYFES_CUDA=ON
  # conda's CUDA >= 12 packages put the toolkit under $PREFIX/targets; CMake finds it through CUDAToolkit_ROOT.
  export CUDAToolkit_ROOT="${PREFIX}"
fi
# A shared CUDA runtime: libcudart comes from the environment's cuda-cudart (or cudatoolkit for 11.8).
export CYFES_CUDA_RUNTIME=Shared

# No build isolation: the host environment already has scikit-build-core, cython and numpy.
"${PYTHON}" -m pip install . -vv --no-deps --no-build-isolation \
  -Cbuild-dir=build/conda \
  -Ccmake.define.CMAKE_INSTALL_RPATH_USE_LINK_PATH=OFF
