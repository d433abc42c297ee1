"""The GPU under concurrency: threads calling cyfes.fes and cyfes.hills on one GPU at once give the serial
results, and a GPU with little memory left sums in smaller chunks, and one whose memory another process holds gives
BackendError with CUDA's message (device="gpu") or the CPU's surface with a warning (device="auto"), never a crash."""
from __future__ import annotations

import contextlib
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import cyfes
from cyfes import BackendError

THREADS = 8


@pytest.mark.gpu
def test_threads_on_one_gpu_give_the_serial_surfaces(rng) -> None:
    problems = [(rng.normal(size=(20000 + 1000 * k, 2)), rng.normal(size=20000 + 1000 * k)) for k in range(THREADS)]
    serial = [cyfes.fes(x, 0.2, bias=v, bins=60, blocks=2, device="gpu") for x, v in problems]
    with ThreadPoolExecutor(THREADS) as pool:
        threaded = list(pool.map(lambda p: cyfes.fes(p[0], 0.2, bias=p[1], bins=60, blocks=2, device="gpu"),
                                 problems * 2))
    for k, got in enumerate(threaded):
        want = serial[k % THREADS]
        np.testing.assert_array_equal(got.values, want.values)
        np.testing.assert_array_equal(got.error, want.error)


@pytest.mark.gpu
def test_threads_summing_hills_on_one_gpu(rng) -> None:
    centers = [rng.uniform(-3, 3, size=(5000, 2)) for _ in range(THREADS)]
    kw = dict(sigma=[0.3, 0.3], height=1.2, bins=[80, 80], device="gpu")
    serial = [cyfes.hills(c, **kw).values for c in centers]
    with ThreadPoolExecutor(THREADS) as pool:
        threaded = list(pool.map(lambda c: cyfes.hills(c, **kw).values, centers))
    for got, want in zip(threaded, serial):
        np.testing.assert_array_equal(got, want)


HOLD = """
import sys, time, torch
leave = int(sys.argv[1]) * 2**20
free, _ = torch.cuda.mem_get_info()
held = []
while free > leave + 2**21:
    try:
        held.append(torch.empty(free - leave, dtype=torch.uint8, device="cuda"))
    except RuntimeError:
        leave += 2**21
    free, _ = torch.cuda.mem_get_info()
print("held", free, flush=True)
time.sleep(300)
"""


@contextlib.contextmanager
def gpu_memory_left(mib: int):
    """Another process holds all but about `mib` MiB of GPU 0 (through PyTorch, where it is installed)."""
    pytest.importorskip("torch")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(mib)], stdout=subprocess.PIPE, text=True)
    try:
        line = holder.stdout.readline().split()
        if not line or line[0] != "held":
            pytest.skip("could not take the GPU's memory from another process")
        yield int(line[1])
    finally:
        holder.kill()
        holder.wait()


PROBLEM = dict(bins=30, tolerance=0)


@pytest.mark.gpu
def test_a_gpu_with_little_memory_left_sums_in_smaller_chunks(rng) -> None:
    """The engine plans its chunks from the free memory, so 48 MiB left still gives the surface of a 3e6-sample
    problem whose arrays alone are larger (3e6 x 4 float32 = 48 MB)."""
    x, v = rng.normal(size=(3_000_000, 3)), rng.normal(size=3_000_000)
    roomy = cyfes.fes(x, 0.3, bias=v, device="gpu", **PROBLEM)
    with gpu_memory_left(48) as free:
        assert free < 64 * 2**20
        tight = cyfes.fes(x, 0.3, bias=v, device="gpu", **PROBLEM)
    np.testing.assert_allclose(tight.values, roomy.values, rtol=1e-6, atol=1e-6 * roomy.kT)


@pytest.mark.gpu
def test_a_gpu_whose_memory_is_taken(rng) -> None:
    x, v = rng.normal(size=(200_000, 3)), rng.normal(size=200_000)
    want = cyfes.fes(x, 0.3, bias=v, device="cpu", **PROBLEM)
    with gpu_memory_left(4):
        with pytest.raises(BackendError) as err:
            cyfes.fes(x, 0.3, bias=v, device="gpu", **PROBLEM)
        assert "memory" in str(err.value).lower()
        with pytest.warns(RuntimeWarning, match="the GPU failed"):
            auto = cyfes.fes(x, 0.3, bias=v, device="auto", **PROBLEM)
    assert auto.backend.startswith("cpu")
    np.testing.assert_array_equal(auto.values, want.values)
