"""Delta F between regions (boxes, basins, functions of the CVs, masks) and against time, against numpy sums over
the same points and the running surfaces written from the formula here."""
from __future__ import annotations

import math

import numpy as np
import pytest

import cyfes
from cyfes import analysis


@pytest.fixture(scope="module")
def two_d():
    rng = np.random.default_rng(5)
    x = np.column_stack([np.concatenate([rng.normal(-1, 0.3, 4000), rng.normal(1, 0.4, 2000)]),
                         rng.normal(0, 0.5, 6000)])
    rng.shuffle(x)
    return cyfes.fes(x, 0.15, bins=(60, 40), ranges=[(-2.5, 2.5), (-2, 2)], blocks=4, device="cpu")


def numpy_delta(values, a, b, kT):
    return -kT * np.log(np.exp(-values[b] / kT).sum()) + kT * np.log(np.exp(-values[a] / kT).sum())


def test_box_function_and_mask_regions_against_numpy(two_d):
    res, kT = two_d, two_d.kT
    X, Y = np.meshgrid(*res.axes, indexing="ij")
    a = (X >= -2) & (X <= -0.5) & (Y >= -1) & (Y <= 1)
    b = (X >= 0.5) & (Y <= 1)
    want = numpy_delta(res.values, a, b, kT)
    box = res.delta_f_regions({0: (-2, -0.5), 1: (-1, 1)}, {"cv1" if res.names else 0: (0.5, None), 1: (None, 1)})
    assert box.value == pytest.approx(want, abs=1e-10)
    fn = res.delta_f_regions(lambda x, y: (x >= -2) & (x <= -0.5) & (abs(y) <= 1), lambda x, y: (x >= 0.5) & (y <= 1))
    assert fn.value == pytest.approx(want, abs=1e-10)
    assert res.delta_f_regions(a, b).value == pytest.approx(want, abs=1e-10)
    per = [numpy_delta(f, a, b, kT) for f in res.block_values]
    assert box.blocks == pytest.approx(per, abs=1e-10)
    assert box.error == pytest.approx(np.std(per, ddof=1) / 2, rel=1e-9)


def test_basin_regions_give_the_basins_delta_f(two_d):
    res = two_d
    basins = res.basins()
    assert len(basins) == 2
    got = res.delta_f_regions(0, 1)
    # basins' F include the cell volume, which cancels in a difference
    assert got.value == pytest.approx(basins[1].delta_f, abs=1e-10)
    assert got.error == pytest.approx(basins[1].delta_f_error, rel=1e-9)


def test_the_threshold_delta_f_is_the_half_space_case(two_d):
    res = two_d
    value, err = res.delta_f(0, 0.1)
    regions = res.delta_f_regions(lambda x, y: x < 0.1, lambda x, y: x > 0.1)
    assert regions.value == value  # the same sums over the same points
    assert regions.error == pytest.approx(err, rel=1e-12)


def test_delta_f_against_time_uses_the_running_surfaces(two_d):
    res, kT = two_d, two_d.kT
    a, b = {0: (None, 0.0)}, {0: (0.0, None)}
    trace = res.delta_f_trace(a, b)
    X = np.meshgrid(*res.axes, indexing="ij")[0]
    lw = res.block_log_weights
    want = []
    for k in range(1, res.blocks + 1):
        rel = np.exp(lw[:k] - lw[:k].max())
        rel /= rel.sum()
        dens = np.tensordot(rel, np.exp(-res.block_values[:k] / kT), axes=1)
        f = -kT * np.log(dens)
        want.append(numpy_delta(f, X <= 0.0, X >= 0.0, kT))
    assert trace.delta_f == pytest.approx(want, abs=1e-8)
    assert trace.samples == tuple(np.cumsum([len(c) for c in np.array_split(np.arange(6000), 4)]))
    assert trace.delta_f[-1] == pytest.approx(res.delta_f_regions(a, b).value, abs=1e-8)


def test_bad_regions_are_refused(two_d):
    res = two_d
    with pytest.raises(cyfes.InputError, match="region b: holds no grid point"):
        res.delta_f_regions({0: (None, 0)}, {0: (10, 11)})
    with pytest.raises(cyfes.InputError, match="basin 5 does not exist"):
        res.delta_f_regions(0, 5)
    with pytest.raises(cyfes.InputError, match="region a: expected a box"):
        res.delta_f_regions("left", 0)
    with pytest.raises(cyfes.InputError, match="low > high"):
        res.delta_f_regions({0: (1, -1)}, 0)
    with pytest.raises(cyfes.InputError, match="not one of the CVs"):
        res.delta_f_regions({"psi": (0, 1)}, 0)
    with pytest.raises(cyfes.InputError, match="blocks > 1"):
        cyfes.fes(np.random.default_rng(0).normal(size=500), 0.2, bins=30, device="cpu").delta_f_trace(
            {0: (None, 0)}, {0: (0, None)})


def test_periodic_box_wraps():
    n = 40
    a = np.arange(n) * 2 * np.pi / n - np.pi
    f = -3 * np.cos(a)
    res = cyfes.FESResult(values=f - f.min(), axes=[a], grid=None, error=None, kT=2.5, units="kJ/mol",
                          temperature=300.0, backend="t", precision="float64", sigma=np.array([0.1]),
                          periodic=[2 * np.pi], n_samples=0)
    wrap = (a >= 2.5) | (a <= -2.5)
    got = res.delta_f_regions({0: (-0.5, 0.5)}, {0: (2.5, -2.5)})
    assert got.value == pytest.approx(numpy_delta(res.values, np.abs(a) <= 0.5, wrap, 2.5), abs=1e-12)
    assert math.isnan(got.error) and got.blocks == ()
    assert analysis.region_mask(res, {0: (2.5, -2.5)}).sum() == wrap.sum()
