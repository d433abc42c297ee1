# Find a CUDA compiler before project(): the system toolkit if CMake finds one, else NVIDIA's CUDA compiler
# wheels from PyPI (nvidia-cuda-nvcc & co., installed under site-packages/nvidia/cu13) in the build's Python.
# Those wheels differ from a toolkit in three ways (see shared toolchain notes): libraries live in lib/ not
# lib64/, there is no unversioned libcudart.so, and the CCCL headers come from nvidia-cuda-cccl.
if(CYFES_CUDA STREQUAL "OFF" OR CYFES_CUFES_LIBRARY OR CMAKE_CUDA_COMPILER OR DEFINED ENV{CUDACXX})
  return()
endif()
# CYFES_NVCC_WHEELS=1 asks for the PyPI compiler even where a system toolkit exists (pyproject.toml adds it).
if(NOT "$ENV{CYFES_NVCC_WHEELS}" MATCHES "^(1|ON|on|true|TRUE|yes)$")
  find_program(_cyfes_system_nvcc nvcc PATHS /usr/local/cuda/bin ENV CUDA_HOME ENV CUDA_PATH PATH_SUFFIXES bin)
  if(_cyfes_system_nvcc)
    return()
  endif()
endif()
find_package(Python QUIET COMPONENTS Interpreter)
if(NOT Python_EXECUTABLE)
  return()
endif()
execute_process(
  COMMAND "${Python_EXECUTABLE}" -c
          "import nvidia, os; print(next(p for p in (os.path.join(d, 'cu13') for d in nvidia.__path__) if os.path.isfile(os.path.join(p, 'bin', 'nvcc'))))"
  OUTPUT_VARIABLE _cu13 OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0 OR NOT _cu13)
  return()
endif()
file(GLOB _cudart "${_cu13}/lib/libcudart.so.*")
list(SORT _cudart)
list(GET _cudart 0 _cudart)
message(STATUS "cyfes: using NVIDIA's PyPI CUDA compiler in ${_cu13}")
set(CMAKE_CUDA_COMPILER "${_cu13}/bin/nvcc" CACHE FILEPATH "" FORCE)
set(CMAKE_CUDA_FLAGS "${CMAKE_CUDA_FLAGS} -L${_cu13}/lib" CACHE STRING "" FORCE)
set(CUDA_CUDART "${_cudart}" CACHE FILEPATH "" FORCE)
set(CUDA_cudart_LIBRARY "${_cudart}" CACHE FILEPATH "" FORCE)
set(CUDAToolkit_ROOT "${_cu13}" CACHE PATH "" FORCE)
