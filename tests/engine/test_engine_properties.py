"""Property-based tests of the CPU engine (hypothesis): random problems against the float64 numpy reference, and
threads against serial runs.

    cyfes.fes, any N, D <= 3, periodic or not, log-weights spanning hundreds of kT, any sigma, small grids:
        |F - F_ref| <= result.bound kT + 1e-9 (1 + |F_ref|)        (tolerance 0: bound = 0, every pair summed)
    8 threads calling cyfes.fes, cyfes.hills and the analyses at once give the bits of a serial run.

A few hundred examples run in `make test`; the `slow` marker runs many more.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cyfes
import reference

KT = reference.KB["kJ/mol"] * 300.0


@st.composite
def problems(draw: Any) -> Dict[str, Any]:
    """One random reweighting problem: samples, sigma, bias, periodicity and an explicit grid."""
    dim = draw(st.integers(1, 3))
    n = draw(st.integers(1, 60))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    periods = [draw(st.sampled_from([None, 2 * math.pi, 5.0])) for _ in range(dim)]
    scale = draw(st.floats(0.05, 10.0))
    x = rng.normal(0.0, scale, (n, dim))
    for d, p in enumerate(periods):
        if p:
            x[:, d] = (x[:, d] + p / 2) % p - p / 2
    sigma = [draw(st.floats(0.02, 3.0)) * scale for _ in range(dim)]
    span = draw(st.floats(0.0, 600.0))  # log-weights over hundreds of kT
    bias = rng.uniform(-span / 2, span / 2, n) * KT
    points = draw(st.integers(1, 40))
    lo, hi = x.min(axis=0) - scale, x.max(axis=0) + scale
    grid = rng.uniform(lo, hi, (points, dim))
    tolerance = draw(st.sampled_from([0.0, 1e-6, 1e-3, 0.1]))
    return dict(x=x, sigma=sigma, bias=bias, periods=periods, grid=grid, tolerance=tolerance)


def check_against_reference(pb: Dict[str, Any]) -> None:
    res = cyfes.fes(pb["x"], pb["sigma"], bias=pb["bias"], grid=pb["grid"], periodic=pb["periods"], shift=False,
                    tolerance=pb["tolerance"], device="cpu", threads=2)
    period = np.array([p or 0.0 for p in pb["periods"]])
    want = reference.free_energy(pb["x"], pb["sigma"], pb["grid"], bias=pb["bias"], period=period, shift=False)
    assert res.bound <= pb["tolerance"] + 1e-15
    assert np.isfinite(res.values).all()
    limit = res.bound * KT + 1e-9 * (1.0 + np.abs(want))
    assert (np.abs(res.values - want) <= limit).all(), np.max(np.abs(res.values - want) - limit)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_fes_is_within_its_bound_of_the_float64_reference(pb: Dict[str, Any]) -> None:
    check_against_reference(pb)


@pytest.mark.slow
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_fes_is_within_its_bound_of_the_float64_reference_many(pb: Dict[str, Any]) -> None:
    check_against_reference(pb)


@st.composite
def hill_sets(draw: Any) -> Dict[str, Any]:
    dim = draw(st.integers(1, 3))
    n = draw(st.integers(1, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    periodic = [draw(st.booleans()) for _ in range(dim)]
    centres = rng.uniform(-3, 3, (n, dim))
    sigma = rng.uniform(0.1, 1.5, (n, dim))
    heights = rng.uniform(-2, 5, n)
    bins = [draw(st.integers(2, 12)) for _ in range(dim)]
    return dict(centres=centres, sigma=sigma, heights=heights, bins=bins,
                periodic=[(-math.pi, math.pi) if p else None for p in periodic])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hill_sets())
def test_untruncated_hills_equal_a_float64_sum_of_gaussians(hs: Dict[str, Any]) -> None:
    """-F = sum_j h_j exp(-1/2 sum_d ((x_d - c_jd) / sigma_jd)^2), periodic differences to the nearest image."""
    dim = len(hs["bins"])
    lo, hi = [-math.pi] * dim, [math.pi] * dim
    res = cyfes.hills(hs["centres"], sigma=hs["sigma"], height=hs["heights"], periodic=hs["periodic"],
                      grid_min=lo, grid_max=hi, bins=hs["bins"], kernel="untruncated", device="cpu", threads=2)
    pts = res.points()
    diff = pts[:, None, :] - hs["centres"][None, :, :]
    for d, p in enumerate(hs["periodic"]):
        if p:
            diff[:, :, d] -= 2 * math.pi * np.round(diff[:, :, d] / (2 * math.pi))
    want = (hs["heights"][None, :] * np.exp(-0.5 * ((diff / hs["sigma"][None]) ** 2).sum(axis=2))).sum(axis=1)
    assert res.values.shape == tuple(b if p else b + 1 for b, p in zip(hs["bins"], hs["periodic"]))
    np.testing.assert_allclose(-res.values.ravel(), want, rtol=1e-12, atol=1e-12 * np.abs(hs["heights"]).sum())


# ----------------------------------------------------------------------------------------------- threads
def _tasks() -> List[Callable[[], List[np.ndarray]]]:
    """Calls whose results are compared bit for bit: direct and truncated sums, blocks, periodic CVs, the
    binned method, hills (diagonal and periodic), marginals and Delta F."""
    rng = np.random.default_rng(11)
    x2 = rng.normal(size=(3000, 2))
    bias = rng.uniform(0, 40, 3000) * KT
    phi = (rng.normal(size=(2000, 1)) * 2 + math.pi) % (2 * math.pi) - math.pi
    centres = rng.uniform(-3, 3, (500, 2))

    def fes_direct() -> List[np.ndarray]:
        r = cyfes.fes(x2, [0.2, 0.3], bias=bias, bins=[40, 30], blocks=4, tolerance=0, device="cpu", threads=2)
        return [r.values, r.error, r.marginal(1).values, np.array(r.delta_f(0, 0.0))]

    def fes_truncated() -> List[np.ndarray]:
        r = cyfes.fes(x2, 0.1, bias=bias, bins=50, device="cpu", threads=2)
        return [r.values, np.array([r.bound, r.pairs])]

    def fes_periodic() -> List[np.ndarray]:
        r = cyfes.fes(phi, 0.3, bins=64, periodic=[2 * math.pi], ranges=[(-math.pi, math.pi)], device="cpu",
                      threads=1)
        return [r.values]

    def fes_binned() -> List[np.ndarray]:
        return [cyfes.fes(x2, 0.2, bias=bias, bins=64, method="binned", device="cpu", threads=2).values]

    def hills_periodic() -> List[np.ndarray]:
        r = cyfes.hills(centres, sigma=[0.3, 0.4], height=1.2, periodic=[(-math.pi, math.pi)] * 2, bins=[80, 80],
                        grid_min=["-pi", "-pi"], grid_max=["pi", "pi"], device="cpu", threads=2)
        return [r.values]

    def hills_projected() -> List[np.ndarray]:
        r = cyfes.hills(centres, sigma=0.25, height=np.linspace(0.5, 1.5, 500), idw=["cv1"], kt=2.5,
                        device="cpu", threads=2)
        return [r.values]

    return [fes_direct, fes_truncated, fes_periodic, fes_binned, hills_periodic, hills_projected]


def _same(a: List[np.ndarray], b: List[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b))


def test_eight_threads_give_the_bits_of_serial_runs() -> None:
    tasks = _tasks()
    serial = [task() for task in tasks]
    order = [i % len(tasks) for i in range(4 * len(tasks))]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda i: (i, tasks[i]()), order))
    for i, got in results:
        assert _same(got, serial[i]), tasks[i].__name__
    assert not any(np.isnan(np.asarray(v, dtype=float)).any() for s in serial for v in s)
