"""The truncated sum (tolerance > 0) against the independent float64 reference, for weights built to defeat a fixed
cutoff: a far cluster with +150 kT of bias, clusters across a periodic boundary, one heavy sample, and every weight
but one underflowing. Unshifted F from a truncated sum can only be too high (mass is left out), by at most the
reported bound: reference <= F <= reference + bound, up to the precision's rounding."""
from __future__ import annotations

import math
from typing import Any, Dict

import numpy as np
import pytest

import cyfes
import reference as ref

KT = ref.KB["kJ/mol"] * 300.0
BACKENDS = [pytest.param("cpu", id="cpu"), pytest.param("gpu", id="gpu", marks=pytest.mark.gpu)]
ROUNDING = {"float64": (1e-7, 1e-9), "float32": (2e-3, 1e-4)}  # as tests/engine/test_api.py, in kT


def far_heavy_cluster(rng: np.random.Generator) -> Dict[str, Any]:
    """Most samples near the origin; 20 samples 3 units away carry +150 kT and dominate where they sit."""
    main = rng.normal(scale=0.4, size=(1500, 2))
    far = rng.normal(loc=(3.0, 0.0), scale=0.05, size=(20, 2))
    bias = np.r_[rng.normal(scale=2.0, size=1500) * KT, np.full(20, 150.0 * KT)]
    return {"samples": np.r_[main, far], "bias": bias, "sigma": [0.1, 0.1], "period": None,
            "grid": rng.uniform(-1.5, 3.5, size=(300, 2))}


def periodic_straddle(rng: np.random.Generator) -> Dict[str, Any]:
    """Two clusters on both sides of the +-pi boundary of an angle; grid points near the boundary too."""
    a = rng.normal(loc=(math.pi - 0.1, 0.0), scale=0.15, size=(800, 2))
    b = rng.normal(loc=(-math.pi + 0.1, 1.0), scale=0.15, size=(800, 2))
    samples = np.r_[a, b]
    samples[:, 0] = (samples[:, 0] + math.pi) % (2 * math.pi) - math.pi
    grid = np.c_[rng.uniform(-math.pi, math.pi, 300), rng.uniform(-1, 2, 300)]
    grid[:60, 0] = rng.uniform(math.pi - 0.3, math.pi, 60)
    return {"samples": samples, "bias": rng.normal(scale=3.0, size=1600) * KT, "sigma": [0.12, 0.2],
            "period": [2 * math.pi, None], "grid": grid}


def single_heavy_sample(rng: np.random.Generator) -> Dict[str, Any]:
    """One sample with 60 kT more weight than the other 2000 together, 2 units from them."""
    samples = np.r_[rng.normal(scale=0.5, size=(2000, 2)), [[2.0, 1.0]]]
    bias = np.r_[np.zeros(2000), [60.0 * KT]]
    return {"samples": samples, "bias": bias, "sigma": [0.15, 0.15], "period": None,
            "grid": rng.uniform(-2, 3, size=(300, 2))}


def all_but_one_underflow(rng: np.random.Generator) -> Dict[str, Any]:
    """Every weight but one is exp(-800) relative to it (underflows in float64); far from the heavy sample the
    light ones are all there is."""
    samples = np.r_[[[0.0, 0.0]], rng.normal(loc=(3.0, 3.0), scale=0.5, size=(1500, 2))]
    bias = np.r_[[0.0], np.full(1500, -800.0 * KT) + rng.normal(scale=1.0, size=1500) * KT]
    return {"samples": samples, "bias": bias, "sigma": [0.2, 0.2], "period": None,
            "grid": rng.uniform(-1, 5, size=(300, 2))}


CASES = {"far_heavy_cluster": far_heavy_cluster, "periodic_straddle": periodic_straddle,
         "single_heavy_sample": single_heavy_sample, "all_but_one_underflow": all_but_one_underflow}


def check(res: cyfes.FESResult, expected: np.ndarray, precision: str, tolerance: float) -> None:
    atol, rtol = ROUNDING[precision]
    assert 0 <= res.bound <= tolerance
    slack = atol + rtol * np.abs(expected) / KT
    diff = (res.values.ravel() - expected.ravel()) / KT
    assert (diff >= -slack).all(), f"F below the reference by {-diff.min():.3g} kT: mass counted twice?"
    assert (diff <= res.bound + slack).all(), f"|dF| {diff.max():.3g} kT above the bound {res.bound:.3g}"


def regular_axes(grid: np.ndarray, n: int = 23) -> list:
    return [np.linspace(grid[:, d].min(), grid[:, d].max(), n) for d in range(grid.shape[1])]


@pytest.mark.parametrize("device", BACKENDS)
@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("tolerance", [1e-6, 1e-2])
def test_truncated_within_bound(rng, device: str, precision: str, case: str, tolerance: float) -> None:
    pb = CASES[case](rng)
    kw = dict(bias=pb["bias"], periodic=pb["period"], precision=precision, device=device, tolerance=tolerance,
              shift=False)
    res = cyfes.fes(pb["samples"], pb["sigma"], grid=pb["grid"], **kw)
    expected = ref.free_energy(pb["samples"], pb["sigma"], pb["grid"], bias=pb["bias"], period=pb["period"],
                               shift=False)
    check(res, expected, precision, tolerance)
    assert 0 < res.pairs < len(pb["samples"]) * len(pb["grid"])  # something was left out
    axes = regular_axes(pb["grid"])
    if pb["period"]:
        axes[0] = -math.pi + 2 * math.pi * np.arange(23) / 23
    res = cyfes.fes(pb["samples"], pb["sigma"], bins=23, ranges=[(a[0], a[-1]) for a in axes], **kw)
    expected = ref.free_energy(pb["samples"], pb["sigma"], ref.regular_grid(res.axes), bias=pb["bias"],
                               period=pb["period"], shift=False)
    check(res, expected, precision, tolerance)


@pytest.mark.parametrize("device", BACKENDS)
@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_truncated_blocks(rng, device: str, precision: str) -> None:
    pb = far_heavy_cluster(rng)
    order = rng.permutation(len(pb["samples"]))  # the heavy samples spread over the blocks
    samples, bias = pb["samples"][order], pb["bias"][order]
    res = cyfes.fes(samples, pb["sigma"], grid=pb["grid"], bias=bias, blocks=3, precision=precision,
                    device=device, shift=False)
    expected = ref.free_energy(samples, pb["sigma"], pb["grid"], bias=bias, shift=False)
    check(res, expected, precision, cyfes.engine.fes.TOLERANCE)
    err = ref.block_error(samples, pb["sigma"], pb["grid"], 3, bias=bias)
    atol = (1e-7 if precision == "float64" else 3e-3) * KT + 2 * res.bound * KT
    np.testing.assert_allclose(res.error, err, rtol=1e-3, atol=atol)


@pytest.mark.parametrize("device", BACKENDS)
@pytest.mark.parametrize("dim", [1, 3, 4])
def test_truncated_other_dimensions(rng, device: str, dim: int) -> None:
    """1 CV and 4 CVs use the per-point kernel on tiles, 3 CVs the separable one (regular grid) on the CPU; the
    GPU has kernels for 1, 2 and 3 CVs and a generic one."""
    samples = rng.normal(scale=1.0, size=(1500, dim))
    bias = rng.normal(scale=3.0, size=1500) * KT
    bins = {1: 200, 3: 14, 4: 7}[dim]
    res = cyfes.fes(samples, 0.1, bins=bins, bias=bias, device=device, shift=False)
    expected = ref.free_energy(samples, [0.1] * dim, ref.regular_grid(res.axes), bias=bias, shift=False)
    check(res, expected, "float64", cyfes.engine.fes.TOLERANCE)
    assert 0 < res.pairs < len(samples) * res.values.size


@pytest.mark.parametrize("periodic", [False, True])
@pytest.mark.parametrize("width", [1, 3, 8, 10, 16])
def test_truncated_2d_tile_widths(rng, width: int, periodic: bool) -> None:
    """2 CVs on the CPU: tiles about truncated.TILE_SIDE across, so sigma sets their width in points; the
    multiply-adds have one register layout per width (1 to 16) and the edge tiles of 37 points are narrower still.
    Every width against the float64 reference, inside the bound."""
    from cyfes.engine import truncated as _truncated

    bins, lo, hi = 37, -1.5, 1.5
    step = (hi - lo) / (bins - (0 if periodic else 1))
    sigma = width * step / (_truncated.TILE_SIDE * math.sqrt(2.0))
    samples = rng.normal(scale=0.6, size=(1200, 2))
    period = [hi - lo, None] if periodic else None
    if periodic:
        samples[:, 0] = (samples[:, 0] - lo) % (hi - lo) + lo
    bias = rng.normal(scale=2.0, size=1200) * KT
    res = cyfes.fes(samples, [sigma, 1.3 * sigma], bins=bins, ranges=[(lo, hi)] * 2, bias=bias, periodic=period,
                    device="cpu", shift=False)
    assert _truncated.regular_tiles([bins, bins], steps=[step / (sigma * math.sqrt(2.0))] * 2).shape[0][0] == width
    expected = ref.free_energy(samples, [sigma, 1.3 * sigma], ref.regular_grid(res.axes), bias=bias, period=period,
                               shift=False)
    check(res, expected, "float64", cyfes.engine.fes.TOLERANCE)


def test_tolerance_zero_sums_every_pair(rng) -> None:
    samples = rng.normal(size=(400, 2))
    res = cyfes.fes(samples, 0.2, bins=(15, 12), device="cpu", tolerance=0)
    assert res.bound == 0.0 and res.pairs == 400 * 15 * 12


@pytest.mark.parametrize("bad", [-1e-3, 1.5, float("nan"), "x"])
def test_bad_tolerance_is_refused(bad: Any) -> None:
    with pytest.raises(cyfes.InputError, match="tolerance"):
        cyfes.fes(np.zeros((5, 1)), 0.1, bins=3, tolerance=bad)


@pytest.mark.parametrize("device", BACKENDS)
@pytest.mark.parametrize("case", list(CASES))
def test_binned_within_its_estimate(rng, device: str, case: str) -> None:
    """method="binned": every point within the reported error estimate of the float64 reference; points of very
    low density (far from the heavy samples) are handed to the direct sum."""
    pb = CASES[case](rng)
    res = cyfes.fes(pb["samples"], pb["sigma"], grid=pb["grid"], bias=pb["bias"], periodic=pb["period"],
                    method="binned", device=device, shift=False)
    expected = ref.free_energy(pb["samples"], pb["sigma"], pb["grid"], bias=pb["bias"], period=pb["period"],
                               shift=False)
    assert res.method == "binned" and 0 < res.error_estimate < 0.5
    err = np.abs(res.values - expected) / KT
    assert err.max() <= res.error_estimate, f"|dF| {err.max():.3g} kT above the estimate {res.error_estimate:.3g}"


@pytest.mark.parametrize("device", BACKENDS)
def test_binned_regular_grid_and_blocks(rng, device: str) -> None:
    samples = rng.normal(scale=[1.0, 0.6], size=(6000, 2))
    bias = rng.normal(scale=2.0, size=6000) * KT
    res = cyfes.fes(samples, 0.1, bins=(40, 30), bias=bias, method="binned", blocks=2, device=device, shift=False)
    expected = ref.free_energy(samples, [0.1, 0.1], ref.regular_grid(res.axes), bias=bias, shift=False)
    err = np.abs(res.values.ravel() - expected) / KT
    assert err.max() <= res.error_estimate < 0.1
    blocks = ref.block_error(samples, [0.1, 0.1], ref.regular_grid(res.axes), 2, bias=bias)
    np.testing.assert_allclose(res.error.ravel(), blocks, atol=2 * res.error_estimate * KT)


@pytest.mark.parametrize("period", [(0.0, 0.0, 0.0), (2 * math.pi, 0.0, 3.0)], ids=["plain", "periodic"])
def test_bin_linear_matches_numpy_bincount(rng, period) -> None:
    """The C binning against numpy: each sample's weight spread over its cell's corners by np.bincount (periodic
    samples given outside [0, P) too, so the wrap is exercised)."""
    import cyfes.engine._cpu as cpu
    from cyfes.engine import binned as _binned
    from cyfes.engine import inputs as _inputs

    data = rng.normal(scale=[1.0, 0.5, 0.7], size=(5000, 3))
    per = np.asarray(period)
    logw = rng.normal(scale=3.0, size=len(data))
    sigma = np.array([0.25, 0.2, 0.3])
    fine = _binned._fine_grid(_inputs.column_range(data), sigma, per, sigma / 2)
    total = int(np.prod(fine.shape))
    got = np.zeros(total)
    cpu.bin_linear(data, logw, float(logw.max()), np.asarray(fine.shape, dtype=np.int64), fine.origin, fine.spacing,
                   fine.periodic.astype(np.intc), got)
    weights = np.exp(logw - logw.max())
    i0, frac = _binned._positions(data, fine)
    want = sum(np.bincount(flat, weights=w * weights, minlength=total) for flat, w in _binned._corners(i0, frac, fine))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-13)
    assert got.sum() == pytest.approx(weights.sum(), rel=1e-12)


@pytest.mark.gpu
@pytest.mark.parametrize("gpus", [1, 2])
@pytest.mark.parametrize("period", [(0.0, 0.0, 0.0), (2 * math.pi, 0.0, 3.0)], ids=["plain", "periodic"])
def test_binned_gpu_node_sums_match_the_fft(rng, period, gpus: int) -> None:
    """The GPUs' node sums (atomic binning, direct convolution per CV; on two GPUs half the samples each, the
    shares added) against the CPU's (binning in C, FFT) on the same fine grid: two different convolutions for the
    same sums, equal up to the FFT's round-off."""
    from cyfes.engine import backends as _backends
    from cyfes.engine import binned as _binned
    from cyfes.engine import inputs as _inputs

    ids = [d["id"] for d in _backends.gpu_devices()]
    if len(ids) < gpus:
        pytest.skip(f"needs {gpus} GPUs, found {len(ids)}")

    data = rng.normal(scale=[1.0, 0.5, 0.7], size=(30000, 3))
    per = np.asarray(period)
    for d in np.flatnonzero(per > 0):
        data[:, d] = np.mod(data[:, d], per[d])
    logw = rng.normal(scale=3.0, size=len(data))
    sigma = np.array([0.25, 0.2, 0.3])
    fine = _binned._fine_grid(_inputs.column_range(data), sigma, per, sigma / 4)
    want = _binned._CpuNodes(data, logw, sigma)(fine)
    got = _binned._GpuNodes(data, logw, sigma, ids[:gpus])(fine)
    assert got.shape == want.shape == fine.shape
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12 * want.max())


@pytest.mark.parametrize("device", BACKENDS)
@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("dim", [2, 3])
def test_truncated_grid_far_beyond_the_data(rng, device: str, precision: str, dim: int) -> None:
    """A regular grid reaching ~20 sigma beyond the samples: the density changes by hundreds of nats over one
    tile there, so those tiles are summed point by point (each point's own bounds; on the GPU after a first pass
    whose sums left the exp range), near ones separably on the CPU; a far
    cluster with +150 kT sits at one edge. F reaches hundreds of kT at the far corners and must still be within the
    bound there."""
    main = rng.normal(scale=0.3, size=(3000, dim))
    far = rng.normal(loc=[1.5] + [0.0] * (dim - 1), scale=0.05, size=(10, dim))
    bias = np.r_[rng.normal(scale=2.0, size=3000) * KT, np.full(10, 150.0 * KT)]
    samples = np.r_[main, far]
    bins = {2: 41, 3: 15}[dim]
    res = cyfes.fes(samples, 0.1, bins=bins, ranges=[(-2.5, 2.5)] * dim, bias=bias, precision=precision,
                    device=device, shift=False)
    expected = ref.free_energy(samples, [0.1] * dim, ref.regular_grid(res.axes), bias=bias, shift=False)
    assert (expected - expected.min()).max() / KT > 300  # the corners are far indeed
    check(res, expected, precision, cyfes.engine.fes.TOLERANCE)
    assert 0 < res.pairs < len(samples) * res.values.size


@pytest.mark.gpu
def test_gpu_settles_far_points_in_float64(rng, monkeypatch) -> None:
    """float32 on the GPU with a 3-D grid reaching ~60 sigma beyond the samples: there a point's cell bounds
    overstate its density by more than float32's exp range, so the float32 point pass cannot settle it. Those
    points are summed again on the GPU in float64 (the CPU is never asked) and are within the bound of the float64
    reference."""
    from cyfes.engine import gpu_truncated as _gpu_truncated
    passes = []
    again = _gpu_truncated._float64_points

    def counted(*args: Any) -> np.ndarray:
        passes.append(len(args[5]))  # the tiles sent to the float64 pass
        return again(*args)

    def refused(*args: Any) -> None:
        raise AssertionError("points were sent to the CPU")

    monkeypatch.setattr(_gpu_truncated, "_float64_points", counted)
    monkeypatch.setattr(_gpu_truncated, "_host_points", refused)
    samples = rng.normal(scale=0.3, size=(3000, 3))
    bias = rng.normal(scale=2.0, size=3000) * KT
    res = cyfes.fes(samples, 0.1, bins=15, ranges=[(-6.0, 6.0)] * 3, bias=bias, precision="float32",
                    device="gpu", shift=False)
    expected = ref.free_energy(samples, [0.1] * 3, ref.regular_grid(res.axes), bias=bias, shift=False)
    assert passes and passes[0] > 0
    check(res, expected, "float32", cyfes.engine.fes.TOLERANCE)


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_cells_match_a_numpy_stable_sort(rng, precision: str) -> None:
    """The threaded counting sort of the cell build against numpy: cell ids from the returned geometry, a stable
    argsort, and each cell's log-sum of weights and bounding box computed here in float64."""
    import cyfes.engine._cpu as cpu
    from cyfes.engine import truncated as _truncated

    n = 200_000  # above the size where the build uses every core
    x = np.c_[rng.normal(size=n), rng.uniform(-np.pi, np.pi, size=n)]
    logw = rng.normal(scale=4.0, size=n)
    logw[::97] = -np.inf  # zero weights are left out
    sigma, period = np.array([0.2, 0.3]), np.array([0.0, 2 * np.pi])
    factor = _truncated.scaled_factor(sigma)
    per = period * factor
    dtype = np.float64 if precision == "float64" else np.float32
    lo, hi = 1000, n - 500
    top = float(logw[lo:hi][np.isfinite(logw[lo:hi])].max())
    samples_t, lw, start, lmass, box, (shape, origin, width, _), dense = cpu.build_cells(
        x, logw, lo, hi, factor, per, top, 2.0, 16, 4096, dtype)
    keep = np.flatnonzero(np.isfinite(logw[lo:hi])) + lo
    u = x[keep] * factor
    u[:, 1] -= per[1] * np.floor(u[:, 1] / per[1])  # wrapped as the C code does, to the last bit
    u[:, 1] = np.where(u[:, 1] >= per[1], u[:, 1] - per[1], u[:, 1])
    idx = np.clip(((u - origin) / width).astype(np.int64), 0, shape - 1)
    ids = np.ravel_multi_index(tuple(idx.T), tuple(shape))
    order = np.argsort(ids, kind="stable")
    np.testing.assert_array_equal(samples_t, u[order].T.astype(dtype))
    np.testing.assert_array_equal(lw, (logw[keep][order] - top).astype(dtype))
    used, first = np.unique(ids[order], return_index=True)
    np.testing.assert_array_equal(start, np.r_[first, len(keep)])
    np.testing.assert_array_equal(dense[used], np.arange(len(used)))
    assert (np.delete(dense, used) == -1).all()
    for k in rng.choice(len(used), size=50, replace=False):
        rows = slice(start[k], start[k + 1])
        w = lw[rows].astype(np.float64)
        np.testing.assert_allclose(lmass[k], np.logaddexp.reduce(w), rtol=0, atol=1e-12)
        seg = samples_t[:, rows].astype(np.float64)
        np.testing.assert_array_equal(box[k].reshape(2, 2).T, [seg.min(axis=1), seg.max(axis=1)])


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("case", ["periodic", "3-D", "one cell", "few"])
def test_gpu_cells_match_the_cpu_build(rng, precision: str, case: str) -> None:
    """The GPU's cell build (cuda/cells.cuh: range, count, stable scatter by warps, summaries) against the CPU's,
    itself checked against numpy above: the same geometry, the same samples in the same order, the same cells and
    boxes to the bit, log masses to 1e-12. "one cell": every sample in one cell, so the order within a cell spans
    every chunk; "few": fewer samples than a warp's chunk."""
    import cyfes.engine._cpu as cpu
    import cyfes.engine._gpu as gpu
    from cyfes.engine import truncated as _truncated

    n = {"periodic": 300_000, "3-D": 200_000, "one cell": 50_000, "few": 37}[case]
    dim = 3 if case == "3-D" else 2
    x = rng.normal(size=(n, dim)) * (0.001 if case == "one cell" else 1.0)
    if case == "periodic":
        x[:, 1] = rng.uniform(-np.pi, np.pi, size=n)
    logw = rng.normal(scale=4.0, size=n)
    logw[::97] = -np.inf
    sigma = np.full(dim, 0.2)
    period = np.zeros(dim)
    if case == "periodic":
        period[1] = 2 * np.pi
    factor = _truncated.scaled_factor(sigma)
    per = period * factor
    dtype = np.float64 if precision == "float64" else np.float32
    lo, hi = (3, n - 2) if n > 10 else (0, n)
    top = float(logw[lo:hi][np.isfinite(logw[lo:hi])].max())
    side, cap = (2.0, 4096) if case != "one cell" else (50.0, 4096)
    want = cpu.build_cells(x, logw, lo, hi, factor, per, top, side, 16, cap, dtype)
    got = gpu.build_cells(x, logw, lo, hi, factor, per, top, side, 16, cap, dtype)
    for name, a, b in zip(["samples_t", "lw", "start"], got[:3], want[:3]):
        np.testing.assert_array_equal(a, b, err_msg=name)
    np.testing.assert_allclose(got[3], want[3], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(got[4], want[4])
    for a, b in zip(got[5], want[5]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got[6], want[6])
    if case == "one cell":
        assert len(got[2]) == 2  # one non-empty cell


def test_truncated_periodic_regular_tiles_across_the_wrap(rng) -> None:
    """Both CVs periodic, the grid one period from the data minimum (PLUMED's layout), clusters on both sides of
    0 in the first CV (where the kernels wrap coordinates into [0, P)) and of +-pi in the second: tiles of the
    separable sums straddle the wrap (their points are g0 + i h unwrapped) and meet cells across it."""
    a = rng.normal(loc=(0.1, -math.pi + 0.1), scale=0.1, size=(1500, 2))
    b = rng.normal(loc=(-0.1, math.pi - 0.2), scale=0.1, size=(1500, 2))
    samples = (np.r_[a, b] + math.pi) % (2 * math.pi) - math.pi
    bias = rng.normal(scale=3.0, size=3000) * KT
    period = [2 * math.pi, 2 * math.pi]
    res = cyfes.fes(samples, 0.25, bins=61, bias=bias, periodic=period, device="cpu", shift=False)
    expected = ref.free_energy(samples, [0.25, 0.25], ref.regular_grid(res.axes), bias=bias, period=period,
                               shift=False)
    check(res, expected, "float64", cyfes.engine.fes.TOLERANCE)
    assert 0 < res.pairs < len(samples) * res.values.size


def test_timed_parts_cover_every_tile_once_in_order() -> None:
    """The parts run without a progress callback: consecutive, each tile once, the first a 64th of the work and
    none more than PART_GROWTH times the one before."""
    seen = []
    truncated_mod = cyfes.engine.truncated
    truncated_mod.timed_parts(1000, lambda lo, hi: seen.append((lo, hi)), seconds=1e-9)
    assert seen[0] == (0, 1000 // 64) and seen[-1][1] == 1000
    assert all(a[1] == b[0] for a, b in zip(seen, seen[1:]))
    sizes = [hi - lo for lo, hi in seen]
    assert all(1 <= b <= truncated_mod.PART_GROWTH * a for a, b in zip(sizes, sizes[1:]))
    seen.clear()
    truncated_mod.timed_parts(1000, lambda lo, hi: seen.append((lo, hi)), seconds=1e9)
    assert [hi - lo for lo, hi in seen] == [15, 60, 240, 685]


@pytest.mark.parametrize("n", [0, 1, 1000, 200_003])  # 200,003: past the one-thread limit, an odd split
def test_affine_range_against_numpy(rng, n) -> None:
    """The surface's passes (one threaded loop: v = a + b v in place, the finite range, the others counted)
    against numpy, with NaN and infinities among the values."""
    from cyfes.engine import _cpu

    values = rng.normal(scale=50.0, size=n)
    if n > 3:
        values[rng.choice(n, size=3, replace=False)] = [np.nan, np.inf, -np.inf]
    want = 2.5 + -0.75 * values
    finite = want[np.isfinite(want)]
    got = values.copy()
    lo, hi, other = _cpu.affine_range(got, 2.5, -0.75)
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=0)  # NaN where NaN (a fused multiply-add may round once)
    assert other == len(want) - len(finite)
    big = np.finfo(float).max
    assert (lo, hi) == pytest.approx((finite.min(), finite.max()) if len(finite) else (big, -big), rel=1e-15)
    same = values.copy()
    kept = values[np.isfinite(values)]
    assert _cpu.affine_range(same, 2.5, -0.75, apply=False) == \
        ((kept.min(), kept.max(), other) if len(kept) else (big, -big, 0))
    np.testing.assert_array_equal(same, values)  # a range pass leaves the values as they are


@pytest.mark.parametrize("shape, points", [((10, 7), 16), ((9, 10, 11), 8), ((6, 6, 5), None), ((5, 4, 3, 2), None),
                                           ((13,), None), ((8, 12), 16), ((4, 6, 8), 8)])
def test_regular_tiles_against_a_stable_sort(rng, shape, points) -> None:
    """Tiles of a regular grid (built by reshaping) against a stable argsort of each point's tile, and the grid in
    tile order (written by broadcasting) against the scaled points gathered in that order."""
    from cyfes.engine import truncated as _truncated

    tiles = _truncated.regular_tiles(shape, points)
    sides = tiles.shape[0]
    idx = np.indices(shape).reshape(len(shape), -1)
    key = np.ravel_multi_index(tuple(i // s for i, s in zip(idx, sides)), [-(-n // s) for n, s in zip(shape, sides)])
    order = np.argsort(key, kind="stable")
    np.testing.assert_array_equal(tiles.order, order)
    counts = np.bincount(key)
    np.testing.assert_array_equal(tiles.start, np.r_[0, np.cumsum(counts)])
    np.testing.assert_array_equal(np.prod(tiles.shape, axis=1), counts)
    first = idx[:, order[tiles.start[:-1]]].T  # each tile's lowest corner: a box of its extents from there
    for t in rng.choice(len(counts), size=min(20, len(counts)), replace=False):
        box = np.indices(tiles.shape[t]).reshape(len(shape), -1).T + first[t]
        np.testing.assert_array_equal(idx[:, order[tiles.start[t]:tiles.start[t + 1]]].T, box)
    values = rng.normal(size=len(order))  # per point in tile order, back to matrix order: a scatter by `order`
    scattered = np.empty_like(values)
    scattered[order] = values
    np.testing.assert_array_equal(_truncated.from_tile_order(values, tiles), scattered)
    axes = [np.sort(rng.uniform(-4, 4, n)) for n in shape]
    period = np.array([2.5 if d % 2 == 0 else 0.0 for d in range(len(shape))])
    factor = _truncated.scaled_factor(rng.uniform(0.1, 0.5, len(shape)))
    points_ = np.stack([m.ravel() for m in np.meshgrid(*axes, indexing="ij")], axis=1)
    for dtype in (np.float32, np.float64):
        want = _truncated.in_tile_order(_truncated.scaled_points(points_, factor, period), tiles, dtype)
        got = _truncated.grid_in_tile_order(axes, tiles, factor, period, dtype)
        assert got.dtype == dtype and got.flags.c_contiguous
        np.testing.assert_array_equal(got, want)
