"""The GPUs as NVIDIA's management library lists them (libnvidia-ml.so.1, the library behind nvidia-smi), asked
through ctypes.

Why: listing GPUs through the CUDA runtime initialises CUDA first (cuInit), which takes 0.18-0.21 s on an H100
host, most of what `cyfes info` costs there; NVML gives the same names, memory sizes and compute capabilities in
about 0.02 s and makes no CUDA context. It ships with every NVIDIA driver, so nothing is installed for it.

NVML's answer stands in for the runtime's only where the two must agree, and `listing()` returns None otherwise
(the caller then asks the runtime):
* CUDA_VISIBLE_DEVICES is set: CUDA hides or renumbers devices, NVML does not;
* a GPU is in MIG mode: CUDA sees its instances, NVML the whole GPU;
* the GPUs differ and CUDA_DEVICE_ORDER is not PCI_BUS_ID: CUDA numbers the fastest first, NVML by PCI bus (for
  GPUs of one model CUDA falls back to the PCI bus order too, so the numbers are the same).
"""
from __future__ import annotations

import ctypes
import functools
import os
from dataclasses import dataclass
from typing import Any

LIBNVML = "libnvidia-ml.so.1"

NAME_LEN = 96  # NVML_DEVICE_NAME_V2_BUFFER_SIZE
VERSION_LEN = 80  # NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE


class _Memory(ctypes.Structure):  # nvmlMemory_t
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]


@dataclass(frozen=True)
class Listing:
    """What NVML said: the driver's version (e.g. "580.159.04") and the GPUs, numbered as CUDA numbers them. (The
    CUDA version the driver supports comes from libcuda itself, driver.version_probe, as on every other path.)"""

    driver: str
    devices: list[dict[str, Any]]


class _Unanswered(Exception):
    """NVML failed a call, or its numbering may not be CUDA's: the runtime must answer instead."""


def _call(lib: ctypes.CDLL, name: str, *args: Any) -> None:
    if int(getattr(lib, name)(*args)) != 0:
        raise _Unanswered(name)


def _device(lib: ctypes.CDLL, index: int) -> dict[str, Any]:
    handle = ctypes.c_void_p()
    _call(lib, "nvmlDeviceGetHandleByIndex_v2", ctypes.c_uint(index), ctypes.byref(handle))
    current, pending = ctypes.c_uint(0), ctypes.c_uint(0)
    if int(lib.nvmlDeviceGetMigMode(handle, ctypes.byref(current), ctypes.byref(pending))) == 0 and current.value:
        raise _Unanswered("MIG")  # a failed call means a GPU without MIG (NVML_ERROR_NOT_SUPPORTED)
    name, memory = ctypes.create_string_buffer(NAME_LEN), _Memory()
    major, minor = ctypes.c_int(0), ctypes.c_int(0)
    _call(lib, "nvmlDeviceGetName", handle, name, ctypes.c_uint(NAME_LEN))
    _call(lib, "nvmlDeviceGetMemoryInfo", handle, ctypes.byref(memory))
    _call(lib, "nvmlDeviceGetCudaComputeCapability", handle, ctypes.byref(major), ctypes.byref(minor))
    return {"id": index, "name": name.value.decode("utf-8", "replace"), "memory": int(memory.total),
            "compute_capability": f"{major.value}.{minor.value}"}


def _numbered_as_cuda(devices: list[dict[str, Any]]) -> bool:
    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        return False
    models = {(d["name"], d["compute_capability"]) for d in devices}
    return len(models) <= 1 or os.environ.get("CUDA_DEVICE_ORDER") == "PCI_BUS_ID"


def _ask(lib: ctypes.CDLL) -> Listing:
    version, count = ctypes.create_string_buffer(VERSION_LEN), ctypes.c_uint(0)
    _call(lib, "nvmlSystemGetDriverVersion", version, ctypes.c_uint(VERSION_LEN))
    _call(lib, "nvmlDeviceGetCount_v2", ctypes.byref(count))
    devices = [_device(lib, i) for i in range(count.value)]
    if not _numbered_as_cuda(devices):
        raise _Unanswered("numbering")
    return Listing(version.value.decode("ascii", "replace"), devices)


@functools.cache
def listing() -> Listing | None:
    """The driver and GPUs as NVML lists them, or None when it cannot be asked, a call fails, or its numbering
    may differ from CUDA's (see the module's text). Cached: the GPUs do not change under a running process."""
    try:
        lib = ctypes.CDLL(LIBNVML)
    except OSError:
        return None
    try:
        _call(lib, "nvmlInit_v2")
    except (AttributeError, _Unanswered):
        return None
    try:
        return _ask(lib)
    except (AttributeError, _Unanswered):
        return None
    finally:
        lib.nvmlShutdown()
