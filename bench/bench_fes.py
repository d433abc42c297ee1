"""Sample-grid pairs per second of cyfes's kernels, with baselines measured in the same run.

    python bench/bench_fes.py [--quick] [--json out.json] [--cyfes45-lib PATH]

Rows: the CPU backend and (when usable) the GPU backend in float32 and float64; a chunked float64 numpy
implementation on the CPU; a chunked torch cdist + logsumexp on the GPU (when torch sees a GPU); CyFES 4.5's own
GPU kernel (one launch per grid point, as its wrapper drives it) when --cyfes45-lib names its libcufes.so. Ratios
are printed against those baselines. The kernels are timed through cyfes.engine.backends.log_density (host
arrays in, host results out: the copies and the device merge are included, Python validation is not).
Each rate is the median of several timed runs after a warm-up; inputs are random, never zeros.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable, List, Optional

import numpy as np

import cyfes
from cyfes.engine import backends as _backends


@dataclass
class Row:
    name: str
    precision: str
    dim: int
    periodic: bool
    n: int
    m: int
    seconds: float
    pairs_per_s: float


def median_time(fn: Callable[[], object], repeats: int, sync: Callable[[], None] = lambda: None) -> float:
    fn()  # warm-up: module load, context creation, first-touch of buffers
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def problem(rng: np.random.Generator, n: int, m: int, dim: int, periodic: bool, dtype: type):
    samples = rng.normal(size=(n, dim))
    grid = rng.uniform(-3, 3, size=(m, dim))
    logw = rng.normal(scale=2.0, size=n)
    logw -= logw.max()
    scale = 1.0 / rng.uniform(0.1, 0.3, size=dim)
    period = np.full(dim, 2 * np.pi) if periodic else np.zeros(dim)
    cast = lambda a: np.ascontiguousarray(a, dtype=dtype)  # noqa: E731
    return cast(samples), cast(logw), cast(grid), cast(scale), cast(period)


def bench_cyfes(rng, device: _backends.Device, name: str, precision: str, dim: int, periodic: bool, n: int,
                m: int, repeats: int) -> Row:
    args = problem(rng, n, m, dim, periodic, np.float32 if precision == "float32" else np.float64)
    sec = median_time(lambda: _backends.log_density(*args, device), repeats)
    return Row(name, precision, dim, periodic, n, m, sec, n * m / sec)


def numpy_reference(samples, logw, grid, scale, chunk: int = 64) -> np.ndarray:
    """The textbook float64 computation: a (chunk, N) exponent matrix per grid chunk, then log-sum-exp."""
    s = samples * scale
    out = np.empty(len(grid))
    for lo in range(0, len(grid), chunk):
        g = grid[lo:lo + chunk] * scale
        expo = logw - 0.5 * ((g[:, None, :] - s[None, :, :]) ** 2).sum(axis=2)
        top = expo.max(axis=1, keepdims=True)
        out[lo:lo + chunk] = top[:, 0] + np.log(np.exp(expo - top).sum(axis=1))
    return out


def bench_numpy(rng, dim: int, n: int, m: int, repeats: int) -> Row:
    samples, logw, grid, scale, _ = problem(rng, n, m, dim, False, np.float64)
    sec = median_time(lambda: numpy_reference(samples, logw, grid, scale), repeats)
    return Row("numpy (CPU, chunked)", "float64", dim, False, n, m, sec, n * m / sec)


def bench_torch(rng, precision: str, dim: int, n: int, m: int, repeats: int, chunk: int = 1024) -> Optional[Row]:
    """Chunked torch.cdist + logsumexp on the GPU, data already on the device (flattering to torch)."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    dtype = torch.float32 if precision == "float32" else torch.float64
    samples, logw, grid, scale, _ = problem(rng, n, m, dim, False, np.float64)
    s = torch.tensor(samples * scale, dtype=dtype, device="cuda")
    g = torch.tensor(grid * scale, dtype=dtype, device="cuda")
    lw = torch.tensor(logw, dtype=dtype, device="cuda")
    out = torch.empty(m, dtype=dtype, device="cuda")

    def run() -> None:
        for lo in range(0, m, chunk):
            d2 = torch.cdist(g[lo:lo + chunk], s).square_()
            out[lo:lo + chunk] = torch.logsumexp(lw - 0.5 * d2, dim=1)

    sec = median_time(run, repeats, torch.cuda.synchronize)
    return Row("torch cdist+logsumexp (GPU)", precision, dim, False, n, m, sec, n * m / sec)


def bench_cyfes45(lib_path: str, n: int, m: int, repeats: int) -> Row:
    """CyFES 4.5's float64 kernel (its libcufes.so, with the libcudart beside it), driven through ctypes as its
    Cython wrapper drives it: weights once, samples uploaded once, then one launch and one copy back per point."""
    import ctypes
    import glob

    for rt in sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(lib_path)), "libcudart*"))):
        ctypes.CDLL(rt, mode=ctypes.RTLD_GLOBAL)
    lib = ctypes.CDLL(lib_path, mode=ctypes.RTLD_GLOBAL)
    P, I, D = ctypes.c_void_p, ctypes.c_int, ctypes.c_double
    lib.GetWeight.argtypes = [I, P, D, P]
    lib.StickCv.argtypes, lib.StickCv.restype = [I, P, I], P
    lib.ReleaseCv.argtypes = [P, I]
    lib.GaussGetDistHeightStream.argtypes = [I, P, P, P, P, P]
    lib.cudaStreamCreate.argtypes = [P]
    rng = np.random.default_rng()
    samples, logw, grid, scale, _ = problem(rng, n, m, 3, False, np.float64)
    bias = np.ascontiguousarray(logw)
    ptr = lambda a: a.ctypes.data_as(P)  # noqa: E731
    streams = [P(), P()]
    for st in streams:
        lib.cudaStreamCreate(ctypes.byref(st))

    def run() -> None:
        weight, dis = np.zeros(n), np.zeros(n)
        lib.GetWeight(n, ptr(bias), 0.0, ptr(weight))
        dev = lib.StickCv(n, ptr(samples), 0)
        for i in range(m):
            point = np.ascontiguousarray(grid[i])
            lib.GaussGetDistHeightStream(n, ptr(point), dev, ptr(dis), ptr(weight), streams[i % 2])
            np.log(dis.sum())
        lib.ReleaseCv(dev, 0)

    sec = median_time(run, repeats)
    return Row("CyFES 4.5 (its libcufes, GPU)", "float64", 3, False, n, m, sec, n * m / sec)


def card() -> str:
    devices = _backends.gpu_devices()
    if not devices:
        return "no GPU"
    d = devices[0]
    return f"{d['name']} ({d['memory'] / 2**30:.0f} GiB, cc {d['compute_capability']}) x{len(devices)}"


def run_all(quick: bool, gpu_only: bool = False, cyfes45_lib: Optional[str] = None) -> List[Row]:
    rng = np.random.default_rng()
    reps = 3 if quick else 5
    rows: List[Row] = []
    cpu = _backends.Device("cpu", threads=cyfes.backends()["cpu"]["threads"])
    k = 4 if quick else 1  # --quick: a quarter of the sizes
    if not gpu_only:
        for precision in ("float32", "float64"):
            rows.append(bench_cyfes(rng, cpu, "cyfes CPU", precision, 3, False, 200_000 // k, 4096 // k, reps))
        rows.append(bench_cyfes(rng, cpu, "cyfes CPU", "float32", 3, True, 200_000 // k, 4096 // k, reps))
        rows.append(bench_numpy(rng, 3, 20_000 // k, 512 // k, reps))
    if _backends.gpu_devices():
        gpu = _backends.Device("cuda", (0,))
        rows.append(bench_cyfes(rng, gpu, "cyfes GPU", "float32", 3, False, 1 << 20, (1 << 20) // k, reps))
        rows.append(bench_cyfes(rng, gpu, "cyfes GPU", "float32", 3, True, 1 << 20, (1 << 20) // k, reps))
        rows.append(bench_cyfes(rng, gpu, "cyfes GPU", "float32", 1, False, 1 << 20, (1 << 20) // k, reps))
        rows.append(bench_cyfes(rng, gpu, "cyfes GPU", "float32", 6, False, 1 << 20, (1 << 18) // k, reps))
        rows.append(bench_cyfes(rng, gpu, "cyfes GPU", "float64", 3, False, 1 << 20, (1 << 16) // k, reps))
        for precision in ("float32", "float64") if not gpu_only else ():
            row = bench_torch(rng, precision, 3, 1 << 18, (1 << 14) // k, reps)
            if row:
                rows.append(row)
        if cyfes45_lib:
            rows.append(bench_cyfes45(cyfes45_lib, 1 << 18, 256 // k, reps))
    return rows


def baseline(rows: List[Row], name: str, precision: Optional[str] = None) -> Optional[Row]:
    found = [r for r in rows if r.name.startswith(name) and (precision is None or r.precision == precision)]
    return found[0] if found else None


def report(rows: List[Row]) -> str:
    lines = [f"cyfes {cyfes.__version__} benchmark, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
             f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
             f"({cyfes.backends()['cpu']['threads']} OpenMP threads); GPU: {card()}", "",
             f"{'kernel':30s} {'prec':8s} {'D':>2s} {'per':>4s} {'N':>9s} {'M':>9s} {'pairs/s':>10s}  ratios"]
    numpy_row = baseline(rows, "numpy")
    for r in rows:
        ratios = []
        if numpy_row and r is not numpy_row:
            ratios.append(f"{r.pairs_per_s / numpy_row.pairs_per_s:8.1f}x numpy")
        torch_row = baseline(rows, "torch", r.precision)
        if torch_row and r.name == "cyfes GPU":
            ratios.append(f"{r.pairs_per_s / torch_row.pairs_per_s:6.1f}x torch")
        cyfes45 = baseline(rows, "CyFES 4.5")
        if cyfes45 and r.name == "cyfes GPU":
            ratios.append(f"{r.pairs_per_s / cyfes45.pairs_per_s:6.0f}x CyFES 4.5")
        lines.append(f"{r.name:30s} {r.precision:8s} {r.dim:2d} {'yes' if r.periodic else 'no':>4s} {r.n:9d} "
                     f"{r.m:9d} {r.pairs_per_s:10.3e}  {'; '.join(ratios)}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--gpu-only", action="store_true", help="only the cyfes GPU rows (kernel tuning)")
    parser.add_argument("--cyfes45-lib", metavar="PATH", help="CyFES 4.5's libcufes.so: time its kernel too")
    args = parser.parse_args()
    rows = run_all(args.quick, args.gpu_only, args.cyfes45_lib)
    print(report(rows))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"card": card(), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                       "rows": [asdict(r) for r in rows]}, fh, indent=1)


if __name__ == "__main__":
    main()
