"""Minima, depths, basins and their free energies against hand-worked cases and independent numpy/Python
computations (a brute-force steepest descent written here, float64 sums over the basins' points)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import cyfes
from cyfes.engine.result import FESResult

KT = 2.5
DATA = Path(__file__).parents[1] / "data" / "plumed"


def surface(values, axes, periodic=None, blocks=None, kT=KT):
    axes = [np.asarray(a, dtype=float) for a in axes]
    return FESResult(values=np.asarray(values, dtype=float), axes=axes, grid=None, error=None, kT=kT,
                     units="kJ/mol", temperature=300.0, backend="test", precision="float64",
                     sigma=np.full(len(axes), 0.1), periodic=list(periodic or [None] * len(axes)), n_samples=0,
                     blocks=1 if blocks is None else len(blocks), block_values=blocks)


def double_well(n=401, bump=0.0):
    x = np.linspace(-2, 2, n)
    f = 12 * (x ** 2 - 1) ** 2 + 0.5 * x - bump * np.exp(-((x - 1.3) / 0.03) ** 2)
    return x, f


def local_minima_1d(f):
    i = np.arange(1, len(f) - 1)
    return i[(f[i] < f[i - 1]) & (f[i] < f[i + 1])]


def descent_labels(values, periodic):
    """Brute force: follow the lowest face neighbour point by point (ties by flat index), label by the minimum."""
    shape, flat = values.shape, values.ravel()
    key = lambda k: (flat[k], k)  # noqa: E731

    def neighbours(k):
        idx = list(np.unravel_index(k, shape))
        for d in range(len(shape)):
            for step in (-1, 1):
                j = idx[d] + step
                if periodic[d]:
                    j %= shape[d]
                elif not 0 <= j < shape[d]:
                    continue
                nb = idx.copy()
                nb[d] = j
                yield int(np.ravel_multi_index(nb, shape))

    end = {}
    out = np.empty(len(flat), dtype=int)
    for k in range(len(flat)):
        walk = [k]
        while walk[-1] not in end:
            best = min([walk[-1]] + list(neighbours(walk[-1])), key=key)
            if best == walk[-1]:
                end[best] = best
                break
            walk.append(best)
        root = end[walk[-1]]
        for w in walk:
            end[w] = root
        out[k] = root
    return out.reshape(shape)


def test_double_well_minima_depths_and_basin_integrals():
    x, f = double_well()
    res = surface(f, [x])
    lo, hi = local_minima_1d(f)
    saddle = lo + int(np.argmax(f[lo:hi + 1]))
    found = res.minima()
    assert [m.index for m in found] == [(lo,), (hi,)]
    assert found[0].depth == math.inf and found[0].saddle is None
    assert found[1].depth == pytest.approx(f[saddle] - f[hi], abs=1e-12)
    assert found[1].saddle == pytest.approx((x[saddle],))
    # the saddle point descends to its lower neighbour
    left_end = saddle + 1 if f[saddle - 1] < f[saddle + 1] else saddle
    dx = x[1] - x[0]
    fl = -KT * np.log(np.sum(np.exp(-f[:left_end] / KT)) * dx)
    fr = -KT * np.log(np.sum(np.exp(-f[left_end:] / KT)) * dx)
    b = res.basins()
    assert len(b) == 2
    assert b[0].minimum == pytest.approx((x[lo],)) and b[1].minimum == pytest.approx((x[hi],))
    assert b[0].free_energy == pytest.approx(fl, abs=1e-10)
    assert b[1].free_energy == pytest.approx(fr, abs=1e-10)
    assert b[1].delta_f == pytest.approx(fr - fl, abs=1e-10)
    pl = 1 / (1 + np.exp(-(fr - fl) / KT))
    assert b[0].population == pytest.approx(pl, rel=1e-12)
    assert b[0].points == left_end and b[1].points == len(x) - left_end
    np.testing.assert_array_equal(b.labels, np.where(np.arange(len(x)) < left_end, 0, 1))
    assert math.isnan(b[0].error) and math.isnan(b[1].delta_f_error)


def test_a_deep_second_minimum_is_kept_only_above_min_depth():
    x, f = double_well()
    res = surface(f, [x])
    depth = res.minima(min_depth=0)[1].depth
    assert len(res.minima(min_depth=depth - 1e-9)) == 2
    assert len(res.minima(min_depth=depth + 1e-9)) == 1
    assert len(res.basins(min_depth=depth + 1e-9)) == 1


def test_shallow_noise_minimum_is_merged_into_the_basin_across_its_saddle():
    x, f = double_well(bump=3.0)  # a dimple on the right well's wall: a minimum less than 2 kT deep
    res = surface(f, [x])
    mins = local_minima_1d(f)
    assert len(mins) == 3
    everything = res.minima(min_depth=0)
    assert [m.index[0] for m in everything] == sorted(mins.tolist(), key=lambda i: f[i])
    noise = everything[-1]
    k = noise.index[0]
    # its lowest saddle: the lower of the two maxima beside it, toward lower minima on both sides
    left_top = f[mins[1]:k].max() if mins[1] < k else np.inf
    right_top = f[k:].max()
    assert noise.depth == pytest.approx(min(left_top, right_top) - f[k], abs=1e-12)
    assert noise.depth < 2 * KT
    kept = res.minima()
    assert [m.index[0] for m in kept] == [mins[0], mins[1]]
    b = res.basins()
    assert len(b) == 2
    assert b.labels[k] == b.labels[mins[1]]  # merged into the right well, across the bump's saddle
    # the basin's integral includes the noise minimum's points: everything right of the main saddle
    saddle = mins[0] + int(np.argmax(f[mins[0]:mins[1]]))
    end = saddle + 1 if f[saddle - 1] < f[saddle + 1] else saddle
    dx = x[1] - x[0]
    assert b[1].free_energy == pytest.approx(-KT * np.log(np.exp(-f[end:] / KT).sum() * dx), abs=1e-10)


def periodic_surface(n=60):
    a = np.arange(n) * 2 * np.pi / n  # [0, 2 pi) without the end point: x = 0 is a minimum on the boundary
    X, Y = np.meshgrid(a, a, indexing="ij")
    return a, -8 * np.cos(X) - 6 * np.cos(2 * Y) + 1.5 * np.sin(Y)


def test_periodic_basin_wraps_across_the_boundary():
    a, f = periodic_surface()
    res = surface(f, [a, a], periodic=[2 * np.pi, 2 * np.pi])
    b = res.basins(min_depth=0)
    ref = descent_labels(f, [True, True])
    roots = np.unique(ref)
    assert len(b) == len(roots) == 2
    # same partition as the brute-force descent
    for r in roots:
        got = np.unique(b.labels[ref == r])
        assert len(got) == 1
    wrapped = b.labels[0, 0]
    assert (b.labels[-1, :] == b.labels[0, :]).all()  # first and last x columns in the same basins
    assert (b.labels[:, 0] == wrapped).all() or (b.labels[:, -1] == b.labels[:, 0]).all()
    dv = (a[1] - a[0]) ** 2
    for rec in b:
        mask = b.labels == rec.label
        assert rec.free_energy == pytest.approx(-KT * np.log(np.exp(-f[mask] / KT).sum() * dv), abs=1e-10)
    # without the wrap the boundary columns are separate minima
    flat = surface(f, [a, a])
    assert len(flat.minima(min_depth=0)) > len(res.minima(min_depth=0))


def test_plumed_grid_basins_match_the_brute_force_descent(tmp_path):
    res = FESResult.read(DATA / "ref_h2d_periodic_bin.dat")
    assert res.periodic == pytest.approx([2 * np.pi, 2 * np.pi])
    b = res.basins(min_depth=0)
    ref = descent_labels(res.values, [True, True])
    assert len(b) == len(np.unique(ref))
    for r in np.unique(ref):
        assert len(np.unique(b.labels[ref == r])) == 1
    # the same surface written by cyfes and read back gives the same basins
    again = FESResult.read(res.save(tmp_path / "f.npz"))
    np.testing.assert_array_equal(again.basins(min_depth=0).labels, b.labels)


def test_block_errors_are_the_standard_error_of_the_per_block_basin_values():
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.normal(-1, 0.25, 6000), rng.normal(1, 0.3, 3000)])
    rng.shuffle(x)
    res = cyfes.fes(x, 0.1, bins=161, ranges=[(-2, 2)], blocks=5, device="cpu")
    b = res.basins()
    assert len(b) == 2
    labels = b.labels
    dx = res.axes[0][1] - res.axes[0][0]
    kT = res.kT
    per = np.array([[-kT * np.log(np.exp(-blk[labels == k] / kT).sum() * dx) for k in range(2)]
                    for blk in res.block_values])
    se = lambda v: np.std(v, ddof=1) / np.sqrt(len(v))  # noqa: E731
    assert b[0].error == pytest.approx(se(per[:, 0]), rel=1e-9)
    assert b[1].error == pytest.approx(se(per[:, 1]), rel=1e-9)
    assert b[1].delta_f_error == pytest.approx(se(per[:, 1] - per[:, 0]), rel=1e-9)
    share = 1 / (1 + np.exp(-(per[:, 0] - per[:, 1]) / kT))  # basin 1's population in each block
    assert b[1].population_error == pytest.approx(se(share), rel=1e-9)
    # the populations sampled: 2 to 1, so Delta F = kT ln 2 up to the kernel's smoothing and noise
    assert b[1].delta_f == pytest.approx(kT * math.log(2), abs=4 * b[1].delta_f_error + 0.05)


def test_basin_of_labels_samples_by_their_nearest_grid_cell():
    a, f = periodic_surface(40)
    res = surface(f, [a, a], periodic=[2 * np.pi, 2 * np.pi])
    labels = res.basins().labels
    rng = np.random.default_rng(3)
    s = rng.uniform(-3 * np.pi, 3 * np.pi, size=(500, 2))
    got = res.basin_of(s)
    for (u, v), g in zip(s, got):
        per = 2 * np.pi
        du = np.abs((u - a + per / 2) % per - per / 2)
        dv = np.abs((v - a + per / 2) % per - per / 2)
        assert g == labels[int(np.argmin(du)), int(np.argmin(dv))]
    # a bounded grid: samples beyond half a spacing outside it are in no basin
    x, f1 = double_well()
    one = surface(f1, [x])
    h = x[1] - x[0]
    got = one.basin_of(np.array([-2 - 0.6 * h, -2 - 0.4 * h, 0.7, 2 + 0.6 * h]))
    lab = one.basins().labels
    assert got.tolist() == [-1, lab[0], lab[int(np.argmin(np.abs(x - 0.7)))], -1]


def test_bad_surfaces_are_refused_in_one_line(tmp_path):
    x, f = double_well()
    with pytest.raises(cyfes.InputError, match="no finite free energy"):
        surface(np.full(10, np.inf), [np.arange(10)]).basins()
    with pytest.raises(cyfes.InputError, match="min_depth"):
        surface(f, [x]).minima(min_depth=-1)
    bad = tmp_path / "f.dat"
    bad.write_text("# x y\n1 2\n3 4\n")
    with pytest.raises(cyfes.InputError, match=str(bad)):
        FESResult.read(bad)
    with pytest.raises(cyfes.InputError, match="2 CVs"):
        surface(f.reshape(1, -1), [[0.0], x]).basin_of(np.zeros((3, 3)))


def test_a_grid_over_part_of_a_period_does_not_wrap():
    a = np.linspace(-1.0, 1.0, 41)  # a periodic CV (period 2 pi) gridded over [-1, 1] only
    f = 10 * (a ** 2 - 0.5) ** 2  # minima at +-0.71, and a rise at both ends of the grid
    f[0] = f[-1] = -1.0  # the ends are low: joined by the wrap they would be one basin
    res = surface(f, [a], periodic=[2 * np.pi])
    labels = res.basins(min_depth=0).labels
    assert labels[0] != labels[-1]
    # samples: the period's images fold onto the grid; beyond half a spacing past its ends they are outside
    h = a[1] - a[0]
    got = res.basin_of(np.array([-1 - 0.4 * h, -1 - 0.6 * h, 1 + 2 * np.pi - 0.4 * h, 0.0 + 4 * np.pi]), min_depth=0)
    assert got.tolist() == [labels[0], -1, labels[-1], labels[20]]
