"""The GPU under concurrency: threads calling cyfes.fes and cyfes.hills on one GPU at once give the serial
results, and a GPU whose memory another process holds gives BackendError with CUDA's message (device="gpu") or
the CPU's surface with a warning (device="auto"), never a crash."""
from __future__ import annotations

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
free, _ = torch.cuda.mem_get_info()
held = torch.empty(int(free - 48 * 2**20), dtype=torch.uint8, device="cuda")
print("held", flush=True)
time.sleep(300)
"""


@pytest.fixture
def gpu_memory_taken():
    """Another process holding all but ~48 MB of GPU 0 (through PyTorch, where it is installed)."""
    pytest.importorskip("torch")
    holder = subprocess.Popen([sys.executable, "-c", HOLD], stdout=subprocess.PIPE, text=True)
    try:
        if holder.stdout.readline().strip() != "held":
            pytest.skip("could not take the GPU's memory from another process")
        yield
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.gpu
def test_a_gpu_whose_memory_is_taken(rng, gpu_memory_taken) -> None:
    x, v = rng.normal(size=(3_000_000, 3)), rng.normal(size=3_000_000)
    kw = dict(bias=v, bins=30, tolerance=0)
    with pytest.raises(BackendError) as err:
        cyfes.fes(x, 0.3, device="gpu", **kw)
    assert "memory" in str(err.value).lower()
    with pytest.warns(RuntimeWarning, match="the GPU failed"):
        auto = cyfes.fes(x, 0.3, device="auto", **kw)
    assert auto.backend.startswith("cpu")
    want = cyfes.fes(x, 0.3, device="cpu", **kw)
    np.testing.assert_array_equal(auto.values, want.values)
