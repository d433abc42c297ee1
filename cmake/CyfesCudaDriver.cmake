# The oldest NVIDIA driver a CUDA runtime of this major version runs on (NVIDIA's minor-version-compatibility
# minimums), recorded in _build_info so cyfes can tell a too-old driver from no GPU. The release tool passes both
# values from tools/release/targets.py; this table serves builds from source (pip install ., make install).
# Keep it equal to targets.py's CUDA_FLAVOURS (tests/tools/test_targets.py compares them).
set(CYFES_CUDA_DRIVER_TABLE "11:11.0:450.80.02" "12:12.0:525.60.13" "13:13.0:580.65.06")

function(cyfes_cuda_driver_floor cuda_version)
  if(CYFES_CUDA_DRIVER_CUDA AND CYFES_CUDA_DRIVER_MIN)
    return()
  endif()
  string(REGEX MATCH "^[0-9]+" major "${cuda_version}")
  foreach(row IN LISTS CYFES_CUDA_DRIVER_TABLE)
    string(REPLACE ":" ";" row "${row}")
    list(GET row 0 row_major)
    if(row_major STREQUAL major)
      list(GET row 1 cuda)
      list(GET row 2 driver)
      set(CYFES_CUDA_DRIVER_CUDA "${cuda}" PARENT_SCOPE)
      set(CYFES_CUDA_DRIVER_MIN "${driver}" PARENT_SCOPE)
      return()
    endif()
  endforeach()
  message(WARNING "cyfes: no driver floor known for CUDA ${cuda_version}; cyfes will not check the driver version")
endfunction()
