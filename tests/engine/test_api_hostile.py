"""cyfes.fes under hostile arguments: every one is an InputError naming it, and no surface holds NaN."""
from __future__ import annotations

import math
import os
import warnings
from typing import Any, Dict

import numpy as np
import pytest

import cyfes
from cyfes.engine import fes as _api

OK: Dict[str, Any] = dict(samples=[0.0, 0.5, 1.0], sigma=0.3, bins=5, device="cpu")


@pytest.mark.parametrize("change, name", [
    (dict(samples=[[1.0, 2.0], [3.0]]), "samples"),
    (dict(samples=[[1.0, 2.0], [3.0, [4.0]]]), "samples"),
    (dict(samples=np.array([1 + 1j, 2.0, 3.0])), "samples"),
    (dict(temperature="abc"), "temperature"),
    (dict(temperature=None), "temperature"),
    (dict(temperature=1j), "temperature"),
    (dict(units=["kJ/mol"]), "units"),
    (dict(units={"kJ/mol": 1}), "units"),
    (dict(device=None), "device"),
    (dict(device=1.5), "device"),
    (dict(threads=2**31), "threads"),
    (dict(threads=0), "threads"),
    (dict(threads=2.0), "threads"),
    (dict(sigma=[[0.1], [0.1, 0.2]]), "sigma"),
    (dict(bins=[[3], [3, 4]]), "bins"),
    (dict(bins=None, grid=[[0.1], [0.2, 0.3]]), "grid"),
    (dict(bias=[[1.0], [2.0, 3.0], [4.0]]), "bias"),
    (dict(names=5), "names"),
    (dict(samples=[0.0, 1e308, -1e308]), "samples"),
    (dict(ranges=[(-1e308, 1e308)]), "ranges"),
    (dict(sigma=1e-300), "sigma"),
    (dict(samples=[1e300, 1.1e300], sigma=1e-10), "sigma"),
])
def test_bad_arguments_are_input_errors_naming_them(change: Dict[str, Any], name: str) -> None:
    with pytest.raises(cyfes.InputError) as info:
        cyfes.fes(**{**OK, **change})
    assert str(info.value).startswith(f"{name}: ")
    assert "\n" not in str(info.value)


def test_threads_above_the_cpus_are_clamped_with_a_warning() -> None:
    cpus = len(os.sched_getaffinity(0))
    with pytest.warns(RuntimeWarning, match=f"threads: 100000 threads requested .* using {cpus}"):
        res = cyfes.fes(**{**OK, "threads": 100000})
    assert res.backend == f"cpu ({cpus} threads)"
    np.testing.assert_allclose(res.values, cyfes.fes(**OK).values, atol=1e-12)


def _reference(samples: np.ndarray, sigma: float, grid: np.ndarray, kT: float) -> np.ndarray:
    """Float64 log-sum-exp of Gaussians over D dimensions; F not shifted."""
    q = -0.5 * (((grid[:, None, :] - samples[None, :, :]) / sigma) ** 2).sum(axis=2)
    top = q.max(axis=1, keepdims=True)
    norm = samples.shape[1] * math.log(sigma * math.sqrt(2 * math.pi)) + math.log(len(samples))
    return -kT * (top[:, 0] + np.log(np.exp(q - top).sum(axis=1)) - norm)


@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("sigma", [1e-6, 1e-7])
def test_tiny_sigma_is_finite_and_right(precision: str, sigma: float) -> None:
    x = np.random.default_rng(6).normal(size=(200, 2))
    res = cyfes.fes(x, sigma, bins=8, device="cpu", precision=precision, shift=False)
    want = _reference(x, sigma, res.points(), res.kT)
    assert np.isfinite(res.values).all()
    np.testing.assert_allclose(res.values.ravel(), want, rtol=1e-9)


def test_points_past_float64_reach_are_inf_never_nan() -> None:
    x = np.random.default_rng(7).normal(size=(200, 2))
    with pytest.warns(RuntimeWarning, match="grid points are more than about 6.7e7 sigma from every sample"):
        res = cyfes.fes(x, 1e-9, bins=8, device="cpu", blocks=2)
    assert not np.isnan(res.values).any() and not np.isnan(res.error).any()
    far = np.isinf(res.values)
    assert 0 < far.sum() < far.size
    assert np.isinf(res.error[far]).all()
    # the finite points are within float64's reach: compare with the reference, shifted the same way
    want = _reference(x, 1e-9, res.points(), res.kT).reshape(res.values.shape)
    top = np.nanmin(np.where(far, np.nan, want))
    assert (want[far] / res.kT > 2.0**52 * 0.99).all()  # inf only past float64 reach
    np.testing.assert_allclose(res.values[~far], want[~far] - top, rtol=1e-6)


def test_no_point_within_reach_is_an_error() -> None:
    x = np.random.default_rng(8).normal(size=(200, 2))
    with pytest.raises(cyfes.InputError, match="sigma: every grid point is more than about 6.7e7 sigma"):
        cyfes.fes(x, 1e-10, bins=8, device="cpu")


def test_work_is_split_into_bounded_near_square_tiles() -> None:
    from cyfes.engine.backends import Device
    for points, samples in ((160_000, 400_000), (1_600, 2_000_000), (40_000, 1_000_000)):
        grid_parts, sample_parts = _api._kernel_tiles(points, samples, 1, None, Device("cpu", threads=2))
        assert sum(p.stop - p.start for p in grid_parts) == points
        assert sum(p.stop - p.start for p in sample_parts) == samples
        pairs = max(p.stop - p.start for p in grid_parts) * max(p.stop - p.start for p in sample_parts)
        assert pairs <= _api.CHUNK_PAIRS["cpu"] * 2 * 1.01
        assert min(p.stop - p.start for p in grid_parts + sample_parts) >= 1_000  # no thin tiles
    assert _api._kernel_tiles(10, 5, 1, None, Device("cpu", threads=2)) == ([slice(0, 10)], [slice(0, 5)])


def test_tiled_sum_equals_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(13)
    x, bias = rng.normal(size=(3000, 2)), rng.uniform(0, 20, 3000)
    whole = cyfes.fes(x, 0.2, bias=bias, bins=40, device="cpu", blocks=3)
    monkeypatch.setitem(_api.CHUNK_PAIRS, "cpu", 2e4)  # tiles of about 200 x 200
    tiled = cyfes.fes(x, 0.2, bias=bias, bins=40, device="cpu", blocks=3)
    np.testing.assert_allclose(tiled.values, whole.values, atol=1e-10)
    np.testing.assert_allclose(tiled.error, whole.error, atol=1e-10)


@pytest.mark.gpu
def test_far_clusters_float32_on_the_gpu_are_finite() -> None:
    rng = np.random.default_rng(9)
    x = np.concatenate([rng.normal(0, 0.01, 300), rng.normal(1000, 0.01, 300)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is +inf here: every point is within float64's reach
        got = cyfes.fes(x, 0.01, bins=101, device="gpu", precision="float32")
    want = cyfes.fes(x, 0.01, bins=101, device="cpu", precision="float64")
    assert np.isfinite(got.values).all()
    near = want.values < 1e3
    np.testing.assert_allclose(got.values[near], want.values[near], atol=0.02)
    np.testing.assert_allclose(got.values[~near], want.values[~near], rtol=1e-4)


@pytest.mark.gpu
def test_tiny_sigma_on_the_gpu_matches_the_cpu() -> None:
    x = np.random.default_rng(10).normal(size=(200, 2))
    for precision in ("float32", "float64"):
        got = cyfes.fes(x, 1e-7, bins=8, device="gpu", precision=precision)
        want = cyfes.fes(x, 1e-7, bins=8, device="cpu", precision="float64")
        np.testing.assert_allclose(got.values, want.values, rtol=1e-6)
