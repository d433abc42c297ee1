"""cyfes.fes on every backend against the independent float64 numpy reference (tests/reference.py).

Tolerances, on F in units of kT (the kernels' own scale):
- float64: |dF| <= 1e-7 kT + 1e-9 |F|. Every step is float64; the only error beyond rounding (~1e-16 times
  exponents of at most a few hundred) is the vector exp of libmvec (<= 4 ulp) or CUDA's exp2 (<= 2 ulp).
- float32: |dF| <= 2e-3 kT + 1e-4 |F|. Coordinates and exponents are float32 (eps 6e-8): an exponent of
  magnitude E built from pre-scaled coordinates of magnitude C carries ~eps * (E + 2 C sqrt(E)), at most ~1e-4
  for these inputs; the GPU's ex2.approx adds 2^-22 relative per term; sums are float only within a tile
  of <= 512 terms and double beyond. The relative term covers far points, where F itself is hundreds of kT.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
from typing import Any, Dict

import numpy as np
import pytest

import cyfes
import reference as ref
from cyfes.engine import backends as _b


def gpu_ids() -> list:
    """Usable CUDA device ids (a tests/conftest.py helper could be shadowed by tests/tools/conftest.py)."""
    return [d["id"] for d in _b.gpu_devices()]

BACKENDS = [pytest.param("cpu", id="cpu"), pytest.param("gpu", id="gpu", marks=pytest.mark.gpu)]
TOL = {"float64": (1e-7, 1e-9), "float32": (2e-3, 1e-4)}


def assert_close_f(values: np.ndarray, expected: np.ndarray, kT: float, precision: str, bound: float = 0.0) -> None:
    """bound: the truncation bound the result reports (kT), allowed on top of the precision's tolerance."""
    assert 0 <= bound <= cyfes.engine.fes.TOLERANCE
    atol, rtol = TOL[precision]
    atol += bound
    assert values.shape == expected.shape
    assert np.isfinite(values).all()
    err = np.abs(values - expected) / kT
    bound = atol + rtol * np.abs(expected) / kT
    worst = int(np.argmax(err - bound))
    assert (err <= bound).all(), f"|dF| = {err[worst]:.3g} kT > {bound[worst]:.3g} kT at point {worst}"


def make_problem(rng: np.random.Generator, dim: int, n: int, m: int, periodic: bool, bias: bool) -> Dict[str, Any]:
    """Clustered samples, per-CV widths, query points partly outside the data; angles in [-pi, pi)."""
    centres = rng.uniform(-1.5, 1.5, size=(3, dim))
    samples = centres[rng.integers(0, 3, n)] + rng.normal(scale=0.5, size=(n, dim))
    grid = rng.uniform(-2.5, 2.5, size=(m, dim))
    period = None
    if periodic:  # every other CV is an angle, the first always
        period = [2 * math.pi if d % 2 == 0 else None for d in range(dim)]
        for d in range(0, dim, 2):
            samples[:, d] = (samples[:, d] + math.pi) % (2 * math.pi) - math.pi
            grid[:, d] = rng.uniform(-math.pi, math.pi, m)
    sigma = rng.uniform(0.2, 0.5, size=dim)
    v = rng.normal(scale=4.0, size=n) if bias else None  # kJ/mol: a few kT of bias
    return {"samples": samples, "sigma": sigma, "grid": grid, "period": period, "bias": v}


def run_both(pb: Dict[str, Any], device: str, precision: str, **extra: Any):
    res = cyfes.fes(pb["samples"], pb["sigma"], grid=pb["grid"], periodic=pb["period"], bias=pb["bias"],
                    device=device, precision=precision, **extra)
    expected = ref.free_energy(pb["samples"], pb["sigma"], pb["grid"], bias=pb["bias"], period=pb["period"],
                               **{k: v for k, v in extra.items() if k in ("weights", "temperature", "units")})
    return res, expected


@pytest.mark.parametrize("device", BACKENDS)
@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("dim", [1, 2, 3, 6])
@pytest.mark.parametrize("periodic", [False, True], ids=["flat", "periodic"])
@pytest.mark.parametrize("bias", [False, True], ids=["kde", "biased"])
def test_matches_reference(rng, device: str, precision: str, dim: int, periodic: bool, bias: bool) -> None:
    pb = make_problem(rng, dim, n=500 if dim < 6 else 300, m=160, periodic=periodic, bias=bias)
    res, expected = run_both(pb, device, precision)
    assert_close_f(res.values, expected, res.kT, precision, res.bound)
    assert res.values.min() == 0.0
    assert res.precision == precision and res.backend.startswith("cpu" if device == "cpu" else "cuda")


@pytest.mark.parametrize("device", BACKENDS)
@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_weights_with_and_without_bias(rng, device: str, precision: str) -> None:
    pb = make_problem(rng, 2, 400, 120, periodic=False, bias=True)
    w = rng.uniform(0.0, 3.0, size=400)
    w[:40] = 0.0  # zero weights: those samples do not count at all
    res, expected = run_both(pb, device, precision, weights=w)
    assert_close_f(res.values, expected, res.kT, precision, res.bound)
    assert res.n_samples == 360
    pb["bias"] = None
    res, expected = run_both(pb, device, precision, weights=w)
    assert_close_f(res.values, expected, res.kT, precision, res.bound)


@pytest.mark.parametrize("device", BACKENDS)
def test_unshifted_values_are_absolute(rng, device: str) -> None:
    pb = make_problem(rng, 3, 300, 50, periodic=False, bias=True)
    res, _ = run_both(pb, device, "float64", shift=False)
    expected = ref.free_energy(pb["samples"], pb["sigma"], pb["grid"], bias=pb["bias"], shift=False)
    assert_close_f(res.values, expected, res.kT, "float64", res.bound)


@pytest.mark.parametrize("device", BACKENDS)
def test_bins_use_matrix_indexing_and_data_range(rng, device: str) -> None:
    samples = rng.normal(size=(400, 2)) * [1.0, 3.0]
    res = cyfes.fes(samples, [0.3, 0.6], bins=(7, 11), device=device)
    assert res.values.shape == (7, 11) and [len(a) for a in res.axes] == [7, 11]
    np.testing.assert_allclose([res.axes[0][0], res.axes[0][-1]], [samples[:, 0].min(), samples[:, 0].max()])
    np.testing.assert_allclose([res.axes[1][0], res.axes[1][-1]], [samples[:, 1].min(), samples[:, 1].max()])
    expected = ref.free_energy(samples, [0.3, 0.6], ref.regular_grid(res.axes)).reshape(7, 11)
    assert_close_f(res.values, expected, res.kT, "float64", res.bound)
    i, j = 2, 9  # values[i, j] sits at (axes[0][i], axes[1][j])
    point = ref.free_energy(samples, [0.3, 0.6], np.array([[res.axes[0][i], res.axes[1][j]], [0.0, 0.0]]),
                            shift=False)
    full = ref.free_energy(samples, [0.3, 0.6], ref.regular_grid(res.axes), shift=False)
    assert math.isclose(res.values[i, j], point[0] - full.min(), abs_tol=1e-7 * res.kT)


def test_periodic_default_axis_is_one_period_without_end_point(rng) -> None:
    samples = rng.uniform(-math.pi, math.pi, size=(500, 2))
    res = cyfes.fes(samples, [0.3, 0.4], bins=(12, 7), periodic=[2 * math.pi, None], device="cpu")
    lo = samples[:, 0].min()
    np.testing.assert_allclose(res.axes[0], lo + 2 * math.pi * np.arange(12) / 12)
    np.testing.assert_allclose(res.axes[1][[0, -1]], [samples[:, 1].min(), samples[:, 1].max()])
    expected = ref.free_energy(samples, [0.3, 0.4], ref.regular_grid(res.axes), period=[2 * math.pi, 0.0])
    assert_close_f(res.values, expected.reshape(12, 7), res.kT, "float64", res.bound)


@pytest.mark.parametrize("tolerance", [0.0, 1e-6])
def test_progress_callback_counts_every_kernel_call(rng, tolerance: float) -> None:
    samples = rng.normal(size=(300, 2))
    calls = []
    # 80 x 60 points: more tiles of the truncated sum (8 x 8 points each) than progress steps per block
    res = cyfes.fes(samples, 0.3, bins=(80, 60), blocks=2, device="cpu", progress=lambda d, t: calls.append((d, t)),
                    tolerance=tolerance)
    total = calls[-1][1]
    assert calls == [(i + 1, total) for i in range(total)] and total == 2 * (cyfes.engine.fes.PROGRESS_STEPS // 2)
    plain = cyfes.fes(samples, 0.3, bins=(80, 60), blocks=2, device="cpu", tolerance=tolerance)
    np.testing.assert_allclose(res.values, plain.values, atol=1e-12)
    np.testing.assert_allclose(res.error, plain.error, atol=1e-12)
    with pytest.raises(cyfes.InputError, match="progress"):
        cyfes.fes(samples, 0.3, bins=5, device="cpu", progress=3)


@pytest.mark.parametrize("device", BACKENDS)
def test_explicit_ranges_and_grid_order(rng, device: str) -> None:
    samples = rng.normal(size=(300, 1))
    res = cyfes.fes(samples[:, 0], 0.25, bins=9, ranges=[(-3.0, 2.0)], device=device, tolerance=0)
    np.testing.assert_allclose(res.axes[0], np.linspace(-3.0, 2.0, 9))
    grid = rng.permutation(res.axes[0])  # an explicit grid keeps the caller's order
    explicit = cyfes.fes(samples, 0.25, grid=grid, device=device, tolerance=0)
    lookup = dict(zip(res.axes[0].tolist(), res.values.tolist()))
    np.testing.assert_allclose(explicit.values, [lookup[g] for g in grid.tolist()], atol=1e-9)
    np.testing.assert_array_equal(explicit.grid[:, 0], grid)


@pytest.mark.parametrize("device", BACKENDS)
@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_block_error_matches_numpy_blocks(rng, device: str, precision: str) -> None:
    pb = make_problem(rng, 2, 600, 80, periodic=True, bias=True)
    res, expected = run_both(pb, device, precision, blocks=4)
    assert_close_f(res.values, expected, res.kT, precision, res.bound)
    err = ref.block_error(pb["samples"], pb["sigma"], pb["grid"], 4, bias=pb["bias"], period=pb["period"])
    # Each block's F may move by up to res.bound kT (the truncated sum), which moves the standard error of 4 blocks
    # by at most res.bound / sqrt(4 - 1) kT (the sample standard deviation is 1/sqrt(n-1)-Lipschitz in the l2 norm).
    atol = ((1e-7 if precision == "float64" else 3e-3) + res.bound / math.sqrt(3)) * res.kT
    np.testing.assert_allclose(res.error, err, rtol=TOL[precision][1] * 10, atol=atol)
    assert res.blocks == 4 and (res.error > 0).all()


@pytest.mark.parametrize("device", BACKENDS)
@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_extreme_bias_range_is_finite_and_correct(rng, device: str, precision: str) -> None:
    pb = make_problem(rng, 3, 500, 100, periodic=False, bias=False)
    kT = ref.KB["kJ/mol"] * 300.0
    pb["bias"] = rng.uniform(0.0, 800.0, size=500) * kT  # 800 kT of range: exp() of it overflows float64
    pb["bias"][:5] = -700 * kT
    res, expected = run_both(pb, device, precision)
    assert_close_f(res.values, expected, res.kT, precision, res.bound)


@pytest.mark.parametrize("units", ["kJ/mol", "kcal/mol"])
@pytest.mark.parametrize("temperature", [300.0, 451.5])
def test_kT_from_temperature_and_units(rng, units: str, temperature: float) -> None:
    pb = make_problem(rng, 2, 300, 60, periodic=False, bias=True)
    res, expected = run_both(pb, "cpu", "float64", units=units, temperature=temperature)
    assert math.isclose(res.kT, ref.KB[units] * temperature, rel_tol=1e-12)
    assert res.units == units and res.temperature == temperature
    assert_close_f(res.values, expected, res.kT, "float64", res.bound)


def test_kcal_is_kJ_over_4184(rng) -> None:
    samples = rng.normal(size=(200, 1))
    kj = cyfes.fes(samples, 0.3, bins=20, device="cpu")
    kcal = cyfes.fes(samples, 0.3, bins=20, device="cpu", units="kcal/mol")
    np.testing.assert_allclose(kj.values, kcal.values * 4.184, rtol=1e-6, atol=1e-9)


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("dim", [1, 3, 5, 8])
def test_gpu_agrees_with_cpu(rng, precision: str, dim: int) -> None:
    pb = make_problem(rng, dim, 2000, 700, periodic=dim % 2 == 1, bias=True)
    kw = dict(grid=pb["grid"], periodic=pb["period"], bias=pb["bias"], precision=precision)
    gpu = cyfes.fes(pb["samples"], pb["sigma"], device="gpu", **kw)
    cpu = cyfes.fes(pb["samples"], pb["sigma"], device="cpu", **kw)
    assert_close_f(gpu.values, cpu.values, gpu.kT, precision, max(cpu.bound, gpu.bound))  # both only upwards


@pytest.mark.gpu
@pytest.mark.parametrize("ppt", ["4", "8"])
@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_gpu_chunked_merge_path(rng, monkeypatch, ppt: str, precision: str) -> None:
    """Small chunk limits force many sample chunks and grid chunks (merged on the device); each
    points-per-thread variant of the kernel runs."""
    monkeypatch.setenv("CUFES_MAX_SAMPLES", "777")
    monkeypatch.setenv("CUFES_MAX_GRID", "301")
    monkeypatch.setenv("CUFES_PPT", ppt)
    pb = make_problem(rng, 3, 5000, 1000, periodic=True, bias=True)
    res, expected = run_both(pb, "gpu", precision)
    assert_close_f(res.values, expected, res.kT, precision, res.bound)


@pytest.mark.gpu
@pytest.mark.slow
def test_gpu_float32_keeps_accuracy_for_large_n(rng) -> None:
    """2e6 samples: float partial sums would lose ~N*eps; the double accumulator per tile keeps 1e-3 kT."""
    pb = make_problem(rng, 3, 2_000_000, 24, periodic=False, bias=True)
    res, expected = run_both(pb, "gpu", "float32")
    assert_close_f(res.values, expected, res.kT, "float32")


@pytest.mark.gpu
def test_multi_gpu_split_matches_one_gpu(rng) -> None:
    ids = gpu_ids()
    if len(ids) < 2:
        pytest.skip(f"needs 2 GPUs, found {len(ids)}")
    pb = make_problem(rng, 2, 3000, 1001, periodic=False, bias=True)
    kw = dict(grid=pb["grid"], bias=pb["bias"])
    split = cyfes.fes(pb["samples"], pb["sigma"], devices=ids[:2], **kw)
    one = cyfes.fes(pb["samples"], pb["sigma"], device=ids[0], **kw)
    assert split.backend == f"cuda:{ids[0]},{ids[1]}"
    np.testing.assert_allclose(split.values, one.values, atol=1e-9 * one.kT)


@pytest.mark.gpu
def test_multi_gpu_truncated_far_grid_matches_one_gpu_and_the_reference(rng) -> None:
    """A regular grid reaching far beyond the data in float32: tiles there are summed again point by point on
    each GPU; the split, one GPU and the float64 reference agree within the bound and float32's rounding."""
    ids = gpu_ids()
    if len(ids) < 2:
        pytest.skip(f"needs 2 GPUs, found {len(ids)}")
    samples = rng.normal(scale=0.5, size=(20000, 2))
    bias = rng.normal(scale=2.0, size=20000) * ref.KB["kJ/mol"] * 300.0
    kw = dict(bias=bias, bins=(60, 50), ranges=[(-6, 6), (-5, 5)], precision="float32", shift=False)
    split = cyfes.fes(samples, 0.1, devices=ids[:2], **kw)
    one = cyfes.fes(samples, 0.1, device=ids[0], **kw)
    np.testing.assert_allclose(split.values, one.values, rtol=1e-6, atol=1e-6 * one.kT)
    expected = ref.free_energy(samples, [0.1, 0.1], ref.regular_grid(split.axes), bias=bias, shift=False)
    finite = np.isfinite(expected)
    got = split.values.ravel()
    assert np.array_equal(np.isfinite(got), finite)
    assert_close_f(got[finite], expected[finite], split.kT, "float32", bound=split.bound)


@pytest.mark.gpu
def test_multi_gpu_binned_matches_one_gpu_and_the_reference(rng, monkeypatch: pytest.MonkeyPatch) -> None:
    """method="binned" on two GPUs (half the samples each, however few): within its estimate of the float64
    reference, and the same surface as one GPU up to the order of the shares' sums."""
    from cyfes.engine import binned as _binned
    ids = gpu_ids()
    if len(ids) < 2:
        pytest.skip(f"needs 2 GPUs, found {len(ids)}")
    monkeypatch.setattr(_binned, "GPU_SHARE", 1000)
    shares = []

    class Recorded(_binned._GpuNodes):  # the GPUs each block's node sums run on
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            shares.append(len(self.devices))

    monkeypatch.setattr(_binned, "_GpuNodes", Recorded)
    samples = rng.normal(scale=[1.0, 0.6], size=(40000, 2))
    bias = rng.normal(scale=2.0, size=40000) * ref.KB["kJ/mol"] * 300.0
    kw = dict(bias=bias, bins=(50, 40), method="binned", blocks=2, shift=False)
    split = cyfes.fes(samples, 0.1, devices=ids[:2], **kw)
    one = cyfes.fes(samples, 0.1, device=ids[0], **kw)
    assert split.backend == f"cuda:{ids[0]},{ids[1]}"
    assert shares == [2, 2, 1, 1]  # per block: both GPUs, then one
    np.testing.assert_allclose(split.values, one.values, rtol=1e-12, atol=1e-9 * one.kT)
    expected = ref.free_energy(samples, [0.1, 0.1], ref.regular_grid(split.axes), bias=bias, shift=False)
    err = np.abs(split.values.ravel() - expected) / split.kT
    assert err.max() <= split.error_estimate < 0.1


def test_auto_device_picks_what_is_usable() -> None:
    res = cyfes.fes(np.linspace(0, 1, 50), 0.1, bins=5)
    assert res.backend.startswith("cuda" if gpu_ids() else "cpu")


def test_effective_sample_size_from_the_block_sums(rng) -> None:
    """Kish's n_eff from the per-block sums of the host pass, against numpy on the whole sample."""
    samples = rng.normal(size=(4000, 2))
    bias = rng.normal(scale=8.0, size=4000)
    res = cyfes.fes(samples, 0.5, bins=5, bias=bias, blocks=4, device="cpu", tolerance=0)
    w = np.exp((bias - bias.max()) / res.kT)
    assert res.ess == pytest.approx(w.sum() ** 2 / (w ** 2).sum(), rel=1e-12)


@pytest.mark.skipif(not os.path.isdir("/proc/self/task") or _b.available_cpus() < 2,
                    reason="needs Linux's /proc/self/task and two CPUs")
def test_threads_one_starts_no_thread() -> None:
    """threads=1 on the CPU: no pass of the call (the samples', the grid's, the kernel's, the surface's) starts an
    OpenMP thread; counted in a fresh process, whose threads before the call include numpy's own."""
    code = ("import os, numpy as np, cyfes\n"
            "x = np.random.default_rng(1).normal(size=(2000, 2))\n"
            "before = len(os.listdir('/proc/self/task'))\n"
            "res = cyfes.fes(x, 0.1, bins=300, device='cpu', threads=1)\n"  # 90,000 points: past one-thread limits
            "assert np.isfinite(res.values).any()\n"
            "print(before, len(os.listdir('/proc/self/task')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert out.returncode == 0, out.stderr
    before, after = map(int, out.stdout.split())
    assert after == before
