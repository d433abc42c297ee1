"""cyfes.analysis.scans against float64 numpy computations written here (tests/reference.py's free_energy)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import cyfes
from cyfes.analysis import scans
from reference import KB, free_energy

KT = KB["kJ/mol"] * 300.0
GRID = np.linspace(-3.0, 3.0, 121)
OPTS = dict(bins=121, ranges=[(-3.0, 3.0)], device="cpu", tolerance=0.0)


def two_wells(n_left: int, n_right: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(-1.5, 0.3, n_left), rng.normal(1.5, 0.3, n_right)])
    rng.shuffle(x)
    return x[:, None]


def basin_delta_f(f: np.ndarray, split: int, right: bool) -> float:
    """-kT ln of the right basin's weight over the left's, split at grid index `split` (in the right basin when
    `right`: steepest descent from the saddle goes to its lower neighbour)."""
    w = np.exp(-(f - f.min()) / KT)
    cut = split if right else split + 1
    return -KT * math.log(w[cut:].sum() / w[:cut].sum())


def test_each_block_scan_point_matches_numpy_block_surfaces():
    x = two_wells(1400, 600, seed=11)
    sigma = 0.2
    full = free_energy(x, [sigma], GRID[:, None])
    inner = (GRID > -1.5) & (GRID < 1.5)
    split = int(np.flatnonzero(inner)[np.argmax(full[inner])])
    right = full[split + 1] < full[split - 1]
    points = scans.block_scan(x, sigma, counts=[2, 4, 8, 16], **OPTS)
    assert [p.blocks for p in points] == [2, 4, 8, 16]
    for p in points:
        blocks = [free_energy(b, [sigma], GRID[:, None], shift=False) for b in np.array_split(x, p.blocks)]
        fb = np.array(blocks)
        se = fb.std(axis=0, ddof=1) / math.sqrt(p.blocks)
        assert p.f_error == pytest.approx(float(np.median(se[np.isfinite(se)])), rel=1e-7)
        dfs = np.array([basin_delta_f(b, split, right) for b in fb])
        assert p.delta_f == pytest.approx(basin_delta_f(full, split, right), abs=1e-6)
        assert p.delta_f_error == pytest.approx(dfs.std(ddof=1) / math.sqrt(p.blocks), rel=1e-5)
        assert p.block_size == len(x) // p.blocks
        assert p.barrier == pytest.approx(full[split] - full.min(), abs=1e-6)
    # independent samples: the median error of F barely moves with the block size (SE ~ spread / sqrt(N))
    errs = np.array([p.f_error for p in points])
    assert errs.max() / errs.min() < 1.5


def test_plateau_flags_by_hand():
    # block counts 32, 16, 8, 4 (sizes growing): the error grows, then levels off from 8 blocks on
    counts = [4, 8, 16, 32]
    errors = [1.00, 0.98, 0.70, 0.40]
    flags = scans.plateau_flags(counts, errors)
    # 8 blocks: |1.00 - 0.98| = 0.02 <= 1.00 / sqrt(6) = 0.41, so on the plateau; 16: |1.00 - 0.70| > 0.41
    assert flags == [True, True, False, False]


def test_too_few_samples_and_bad_counts_are_input_errors():
    with pytest.raises(cyfes.InputError, match="too few"):
        scans.block_scan(np.zeros((3, 1)), 0.1, counts=[2, 4], **OPTS)
    with pytest.raises(cyfes.InputError, match=">= 2"):
        scans.block_scan(two_wells(50, 50, 1), 0.1, counts=[1], **OPTS)


def test_sigma_scan_matches_separate_fes_calls_and_the_analytic_double_well():
    x = two_wells(14000, 6000, seed=5)  # exactly 7:3, so Delta F -> kT ln(7/3) as sigma -> 0
    sigmas = [0.05, 0.1, 0.2]
    points = scans.sigma_scan(x, sigmas, **OPTS)
    for s, p in zip(sigmas, points):
        res = cyfes.fes(x, s, **OPTS)
        b = res.basins()
        assert p.sigma == (s,)
        assert p.basins == len(b) == 2
        assert p.delta_f == pytest.approx(b[1].delta_f, abs=1e-12)
        assert p.barrier == pytest.approx(res.path(0, 1).barrier, abs=1e-12)
        # the wells are 10 sd apart: the kernels move no weight across the saddle worth 0.01 kT
        assert p.delta_f == pytest.approx(KT * math.log(7 / 3), abs=0.01 * KT)
    # the barrier of the smoothed surface falls as sigma grows
    assert points[0].barrier > points[1].barrier > points[2].barrier


def test_block_scan_of_reweighted_samples_matches_numpy():
    rng = np.random.default_rng(8)
    x = rng.normal(0.0, 1.0, 1500)[:, None]
    bias = 0.8 * KT * x[:, 0] ** 2 / 2  # reweights N(0, 1) towards a wider Gaussian
    for p in scans.block_scan(x, 0.25, counts=[3, 6], bias=bias, **OPTS):
        fb = np.array([free_energy(b, [0.25], GRID[:, None], bias=v, shift=False)
                       for b, v in zip(np.array_split(x, p.blocks), np.array_split(bias, p.blocks))])
        se = fb.std(axis=0, ddof=1) / math.sqrt(p.blocks)
        assert p.f_error == pytest.approx(float(np.median(se[np.isfinite(se)])), rel=1e-7)
        assert math.isnan(p.delta_f)  # one basin: no Delta F or barrier to report
