"""The NVIDIA driver as this machine has it, asked through libcuda.so.1 with ctypes before the CUDA runtime runs.

Why ask the driver directly: the CUDA runtime folds "driver too old" and "no GPU" into a device count of zero on
some paths and into cudaErrorInsufficientDriver on others, and never says which CUDA version the driver has. The
driver API answers both in two calls that exist in every driver since CUDA 2.2 (cuDriverGetVersion needs no
initialisation), so cyfes can tell a user exactly what to upgrade, and can skip loading the runtime at all when it
could not work. The runtime loads this same libcuda.so.1 later, so nothing is loaded that would not be anyway.
"""
from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass

from .. import _build_info

LIBCUDA = "libcuda.so.1"

# cuInit results worth a name in a message (cuda.h's CUresult); others are shown by number.
CU_RESULTS = {1: "CUDA_ERROR_INVALID_VALUE", 2: "CUDA_ERROR_OUT_OF_MEMORY", 3: "CUDA_ERROR_NOT_INITIALIZED",
              34: "CUDA_ERROR_STUB_LIBRARY", 46: "CUDA_ERROR_DEVICE_UNAVAILABLE", 100: "CUDA_ERROR_NO_DEVICE",
              101: "CUDA_ERROR_INVALID_DEVICE", 803: "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH",
              804: "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE", 999: "CUDA_ERROR_UNKNOWN"}


def cuda_version_text(number: int) -> str:
    """cuDriverGetVersion's 12020 as "12.2"."""
    return f"{number // 1000}.{number % 1000 // 10}"


def cuda_version_number(text: str) -> int:
    major, minor = (int(x) for x in text.split(".")[:2])
    return 1000 * major + 10 * minor


@dataclass(frozen=True)
class DriverStatus:
    """What libcuda.so.1 said, or why it could not be asked."""

    loaded: bool
    """libcuda.so.1 could be loaded (an NVIDIA driver is installed)."""
    version: int = 0
    """The CUDA version the driver supports, as cuDriverGetVersion encodes it (12020 = CUDA 12.2)."""
    init_result: int | None = None
    """cuInit(0)'s CUresult (0 = a usable driver and at least one GPU); None when not called."""
    detail: str = ""
    """Why the library could not be loaded or asked."""

    @property
    def version_text(self) -> str:
        return cuda_version_text(self.version)


def _init_result(lib: ctypes.CDLL) -> int:
    return int(lib.cuInit(ctypes.c_uint(0)))


@functools.cache
def version_probe() -> DriverStatus:
    """Load libcuda.so.1 and ask the CUDA version it supports, without initialising it (cuInit is most of the
    cost of asking). Cached: a driver does not change under a running process."""
    try:
        lib = ctypes.CDLL(LIBCUDA)
    except OSError as exc:
        return DriverStatus(False, detail=str(exc))
    version = ctypes.c_int(0)
    try:
        rc = lib.cuDriverGetVersion(ctypes.byref(version))
    except AttributeError as exc:  # not NVIDIA's library
        return DriverStatus(True, detail=f"{LIBCUDA} has no cuDriverGetVersion ({exc})")
    if rc != 0:
        return DriverStatus(True, detail=f"cuDriverGetVersion failed with CUresult {rc}")
    return DriverStatus(True, version.value)


@functools.cache
def probe() -> DriverStatus:
    """version_probe(), then cuInit when the version is new enough for this build (an old driver is reported as
    such, not as whatever its initialisation says). Cached as version_probe is."""
    status = version_probe()
    if not status.loaded or status.detail or status.version < required_number():
        return status
    return DriverStatus(True, status.version, _init_result(ctypes.CDLL(LIBCUDA)))


def required_number() -> int:
    """The CUDA version (cuDriverGetVersion encoding) a driver must support for this build; 0 when unknown."""
    need = getattr(_build_info, "CUDA_DRIVER_CUDA", None)
    return cuda_version_number(need) if need else 0


def requirement_text() -> str:
    """ "this build needs >= 11.0 (driver >= 450.80.02)" """
    need, driver = getattr(_build_info, "CUDA_DRIVER_CUDA", None), getattr(_build_info, "CUDA_DRIVER_MIN", None)
    return f"this build needs >= {need} (driver >= {driver})" if need else "this build's driver floor is unknown"


def too_old(status: DriverStatus) -> str | None:
    """The message for a driver older than this build needs, None otherwise."""
    if status.loaded and status.version and status.version < required_number():
        return f"driver supports CUDA {status.version_text}; {requirement_text()}"
    return None


def problem(status: DriverStatus) -> str | None:
    """Why the GPU backend cannot run on this driver, or None when the driver is fine (the runtime decides)."""
    old = too_old(status)
    if old:
        return old
    if not status.loaded:
        return f"no NVIDIA driver ({LIBCUDA} cannot be loaded); {requirement_text()}"
    if status.detail:
        return f"the NVIDIA driver cannot be asked its version: {status.detail}"
    if status.init_result:
        name = CU_RESULTS.get(status.init_result, f"CUresult {status.init_result}")
        return f"the NVIDIA driver (CUDA {status.version_text}) found no usable GPU: cuInit failed with {name}"
    return None
