"""The two compute backends behind one call, and what this build and machine can run.

Both backends compute the same function (see cuda/cufes.h):
    out[m] = log sum_j exp(logw[j] - 1/2 sum_d (wrap(grid[m,d] - samples[j,d]) * scale[d])^2)
"""
from __future__ import annotations

import importlib
import numbers
import os
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # numpy is imported where arrays are made: `cyfes info` runs without it
    import numpy as np

from .. import _build_info
from .._errors import BackendError, InputError
from . import driver as _driver
from . import nvml as _nvml

_warned_old_driver = False


@dataclass(frozen=True)
class Device:
    """Where a computation runs: the CPU, or one or more CUDA devices."""

    kind: str  # "cpu" or "cuda"
    ids: tuple = ()
    threads: int = 0

    def describe(self) -> str:
        if self.kind == "cpu":
            return f"cpu ({self.threads} threads)"
        return "cuda:" + ",".join(str(i) for i in self.ids)


# The compiled modules of the engine are loaded here and nowhere else (cpu_module, gpu_module, hills_module):
# importing cyfes loads none of them, and a broken GPU install shows up as a BackendError at the first GPU call.
def gpu_module() -> Any:
    """The GPU extension module (cyfes.engine._gpu), or a BackendError saying why it cannot be used."""
    if not _build_info.CUDA:
        raise BackendError("this cyfes was built without CUDA (CPU backend only); install a CUDA compiler and rebuild for the GPU backend")
    try:
        return importlib.import_module("._gpu", __package__)
    except ImportError as exc:  # libcudart missing, or a broken RPATH
        raise BackendError(f"the CUDA backend is built but cannot be loaded: {exc}") from exc


def cpu_module() -> Any:
    """The CPU kernels (cyfes.engine._cpu: OpenMP), always built."""
    return importlib.import_module("._cpu", __package__)


def hills_module() -> Any:
    """The CPU kernels of hills sums (cyfes.engine._hills: OpenMP, rounding as PLUMED's), always built."""
    return importlib.import_module("._hills", __package__)


def driver_problem() -> str | None:
    """Why this machine's NVIDIA driver cannot run this build's GPU backend (too old, none, no GPU), from the
    driver itself (see _driver.py); None when the driver is fine or this build has no GPU backend."""
    return _driver.problem(_driver.probe()) if _build_info.CUDA else None


def _warn_old_driver() -> None:
    """device="auto" on a machine whose driver is too old: say so once per process, then run on the CPU. No
    warning when there is no driver at all: that is a CPU machine, and "auto" means "the GPU when usable"."""
    global _warned_old_driver
    old = _driver.too_old(_driver.version_probe()) if _build_info.CUDA else None
    if old and not _warned_old_driver:
        _warned_old_driver = True
        warnings.warn(f"cyfes: not using the GPU: the NVIDIA {old}; computing on the CPU", RuntimeWarning,
                      stacklevel=4)


def gpu_devices() -> list[dict[str, Any]]:
    """The usable CUDA devices, as dicts (id, name, memory, compute capability); [] when none."""
    try:
        gpu = gpu_module()
        if driver_problem():
            return []
        return [gpu.device_info(i) for i in range(gpu.device_count())]
    except BackendError:
        return []


def backends(check: bool = True) -> dict[str, Any]:
    """What this build and this machine can run.

    Returns a dict with a "cpu" entry (threads, OpenMP version) and a "cuda" entry (built, usable, runtime and
    driver versions, the devices found, and the reason when not usable). With `check` (the default) the CUDA
    runtime lists the devices, which initialises CUDA (about 0.2 s on a GPU host); without it NVML lists them
    where its numbering is CUDA's (engine/nvml.py), and cuda["listed_by"] says which answered."""
    cuda: dict[str, Any] = {"built": _build_info.CUDA, "version": _build_info.CUDA_VERSION,
                            "runtime_linkage": _build_info.CUDA_RUNTIME if _build_info.CUDA else None,
                            "needs_driver_cuda": getattr(_build_info, "CUDA_DRIVER_CUDA", None),
                            "needs_driver": getattr(_build_info, "CUDA_DRIVER_MIN", None),
                            "usable": False, "devices": [], "reason": None, "listed_by": None}
    try:
        _cuda_backend(cuda, check)
    except BackendError as exc:
        cuda["reason"] = str(exc)
    return {"cpu": {"usable": True, "threads": cpu_module().max_threads(), "openmp": _build_info.OPENMP},
            "cuda": cuda}


def _cuda_backend(cuda: dict[str, Any], check: bool) -> None:
    """Fill backends()'s "cuda" entry, or raise the BackendError that says why the GPU backend cannot run."""
    gpu = gpu_module()  # loads libcufes and libcudart (a broken install shows here); no driver call yet
    listing = None if check else _nvml.listing()
    status = _driver.version_probe() if listing is not None else _driver.probe()
    cuda["driver_cuda"] = status.version_text if status.version else None
    problem = _driver.problem(status)
    if problem:  # the runtime is not asked: it could not work, and its answer would say less
        raise BackendError(problem)
    if listing is not None:  # asking the runtime for the driver's version would initialise CUDA
        cuda["runtime_version"], cuda["driver_version"] = gpu.runtime_version(), status.version
        cuda["devices"], cuda["listed_by"], cuda["driver"] = listing.devices, "nvml", listing.driver
    else:
        cuda["runtime_version"], cuda["driver_version"] = gpu.versions()
        cuda["devices"] = [gpu.device_info(i) for i in range(gpu.device_count())]
        cuda["listed_by"] = "cuda"
    cuda["usable"] = bool(cuda["devices"])
    if not cuda["usable"]:
        cuda["reason"] = "no CUDA device found (no GPU, or no NVIDIA driver)"


#: The largest thread count passed on to OpenMP (a C int); more is an error, not a clamp.
MAX_THREADS = 2**31 - 1


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which taskset and cgroup cpusets narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _check_threads(threads: Any) -> None:
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, numbers.Integral)
                                or not 1 <= threads <= MAX_THREADS):
        raise InputError(f"threads: expected a positive integer of at most {MAX_THREADS}, got {threads!r}")


def cpu_threads(threads: Any) -> int:
    """The thread count for the CPU kernel: `threads` (or OpenMP's default), at most the CPUs available, with a
    warning when clamped (OpenMP aborts or crashes when asked for tens of thousands of threads)."""
    _check_threads(threads)
    wanted = int(threads) if threads is not None else int(cpu_module().max_threads())
    cpus = available_cpus()
    if wanted > cpus:
        source = "threads" if threads is not None else "OMP_NUM_THREADS"
        warnings.warn(f"{source}: {wanted} threads requested but this machine has {cpus} CPU(s) for this process; "
                      f"using {cpus}", RuntimeWarning, stacklevel=4)
        return cpus
    return wanted


def _device_ids(spec: Any, name: str) -> tuple:
    try:
        ids = [spec] if isinstance(spec, numbers.Integral) else list(spec)
    except TypeError:
        raise InputError(f"{name}: expected 'auto', 'cpu', 'gpu', 'cuda:N' or GPU ids, got {spec!r}") from None
    if not ids or not all(isinstance(i, numbers.Integral) and not isinstance(i, bool) and i >= 0 for i in ids):
        raise InputError(f"{name}: expected GPU ids as non-negative integers, got {spec!r}")
    if len(set(ids)) != len(ids):
        raise InputError(f"{name}: GPU id listed twice in {spec!r}")
    return tuple(int(i) for i in ids)


def is_auto(device: Any, devices: Sequence[int] | None = None) -> bool:
    """Whether the user left the choice of device to cyfes (device="auto", no devices list)."""
    return devices is None and isinstance(device, str) and device.strip().lower() == "auto"


def parse_device(device: Any, devices: Sequence[int] | None = None, threads: int | None = None) -> Device:
    """Turn the user's `device` (and `devices`) argument into a Device, checking that it can run here."""
    _check_threads(threads)
    if devices is not None:
        device = _device_ids(devices, "devices")
    if isinstance(device, str):
        text = device.strip().lower()
        if text == "cpu":
            return Device("cpu", threads=cpu_threads(threads))
        if text == "auto":
            found = gpu_devices()
            if found:
                return Device("cuda", (found[0]["id"],))
            _warn_old_driver()
            return Device("cpu", threads=cpu_threads(threads))
        device = _named_gpus(text)
        if device is None:
            raise InputError(f"device: unknown device {device!r}; use 'auto', 'cpu', 'gpu', 'cuda:N' "
                             "or a list of GPU ids")
    ids = _device_ids(device, "device")
    gpu = gpu_module()
    problem = driver_problem()
    if problem:
        raise BackendError(f"device: cannot use the GPU: {problem}")
    count = gpu.device_count()
    missing = [i for i in ids if i >= count]
    if missing:
        raise BackendError(f"device: GPU {missing[0]} requested but {count} CUDA device(s) usable here")
    return Device("cuda", ids)


def _named_gpus(text: str) -> tuple | None:
    """The GPU ids a lower-case device text names ("gpu" and "cuda": GPU 0; "cuda:N" or "cuda:N,M,..."), None
    for any other text."""
    if text in ("gpu", "cuda"):
        return (0,)
    ids = text[5:].split(",") if text.startswith("cuda:") else []
    return tuple(int(t) for t in ids) if ids and all(t.isdigit() for t in ids) else None


def _warm_ids(device: Any) -> tuple:
    """The GPUs a --device text would use ("auto": GPU 0), () for the CPU or a text parse_device refuses."""
    text = device.strip().lower() if isinstance(device, str) else ""
    return (0,) if text == "auto" else _named_gpus(text) or ()


def warm_up(device: Any) -> threading.Thread | None:
    """Start making the CUDA contexts of the GPUs `device` names (a --device text), in a thread, while the
    caller reads its input: a process's first CUDA call costs 0.1-0.3 s, which the read then hides. The thread
    changes nothing the caller sees: any failure (no CUDA build, no driver, no such GPU) is dropped there, and
    parse_device reports it as it always did. Join the thread before computing. None when there is nothing to
    warm up."""
    ids = _warm_ids(device)
    if not ids or not _build_info.CUDA:
        return None

    def run() -> None:
        try:
            gpu = gpu_module()
            if driver_problem() is None:
                for i in ids:
                    gpu.warm_up(i)
        except Exception:  # noqa: BLE001 - the real call says what is wrong, in the caller's thread
            pass

    thread = threading.Thread(target=run, name="cyfes-cuda-warm-up", daemon=True)
    thread.start()
    return thread


def split_grid(m: int, parts: int) -> list[tuple[int, int]]:
    """Contiguous [lo, hi) ranges of m grid points for `parts` devices, sizes differing by at most one;
    empty ranges are left out (more devices than points)."""
    bounds = [m * k // parts for k in range(parts + 1)]
    return [(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]


def each_gpu(ids: Sequence[int], count: int, work: Callable[[int, int, int], None]) -> None:
    """work(device, lo, hi) on contiguous ranges of `count` items, one thread per GPU (the extension releases the
    GIL); the first error is re-raised in the caller's thread."""
    errors: list[BaseException] = []

    def run(dev: int, lo: int, hi: int) -> None:
        try:
            work(dev, lo, hi)
        except BaseException as exc:
            errors.append(exc)

    ranges = split_grid(count, len(ids))
    if len(ranges) == 1:
        run(ids[0], *ranges[0])
    else:
        workers = [threading.Thread(target=run, args=(d, lo, hi)) for d, (lo, hi) in zip(ids, ranges)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    if errors:
        raise errors[0]


def _run_on_gpus(gpu: Any, ids: Sequence[int], args: tuple, grid: np.ndarray, out: np.ndarray) -> None:
    """Each GPU on its own slice of the grid."""
    samples, logw, scale, period = args
    each_gpu(ids, len(grid),
             lambda dev, lo, hi: gpu.log_density(samples, logw, grid[lo:hi], scale, period, out[lo:hi], dev))


def log_density(samples: np.ndarray, logw: np.ndarray, grid: np.ndarray, scale: np.ndarray,
                period: np.ndarray, device: Device) -> np.ndarray:
    """Run the kernel of `device` on arrays already validated and cast to one float dtype."""
    import numpy as np  # deferred: `cyfes info` loads this module without numpy

    out = np.empty(len(grid), dtype=np.float64)
    if device.kind == "cpu":
        cpu_module().log_density(samples, logw, grid, scale, period, out, device.threads)
    else:
        _run_on_gpus(gpu_module(), device.ids, (samples, logw, scale, period), grid, out)
    return out
