"""Benchmark of sum_hills: cyfes.hills on N hills against a direct float64 numpy sum measured in the same run.

    python bench/bench_hills.py [--hills 3e6] [--bins 200] [--sigma 0.35] [--subset 2000] [--threads N] [--read]

Hills are 2-D (phi, psi periodic on [-pi, pi)), per-hill sigmas around --sigma, on a --bins^2 grid (PLUMED's
--bin B on a periodic CV: B points). The numpy baseline sums the same stretched Gaussians over the whole grid for
--subset hills (vectorised over grid points, one hill at a time); its time is scaled to N hills to give the
ratio. --read also writes N hills to a HILLS file and times reading it (cyfes sum_hills reads files this way).
"""
from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np

import cyfes
from cyfes import hills_io

A = 1.0 / (1.0 - math.exp(-6.25))
B = -math.exp(-6.25) * A


def make_hills(n: int, sigma: float, seed: int = 7):
    rng = np.random.default_rng(seed)
    centers = (rng.normal([-1.3, 2.0], [1.2, 1.0], size=(n, 2)) + math.pi) % (2 * math.pi) - math.pi
    widths = sigma * rng.uniform(0.8, 1.2, size=(n, 2))
    heights = 1.2 * np.exp(-np.arange(n) / max(n / 3.0, 1.0))
    return centers, widths, heights


def numpy_sum(centers, widths, heights, points, period):
    v = np.zeros(len(points))
    for c, s, h in zip(centers, widths, heights):
        d = points - c
        d -= period * np.round(d / period)
        ss = 0.5 * ((d / s) ** 2).sum(axis=1)
        v += np.where(ss < 6.25, h * (A * np.exp(-ss) + B), 0.0)
    return -v


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hills", type=float, default=3e6)
    ap.add_argument("--bins", type=int, default=200)
    ap.add_argument("--sigma", type=float, default=0.35)
    ap.add_argument("--subset", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--read", action="store_true")
    a = ap.parse_args()
    n = int(a.hills)
    centers, widths, heights = make_hills(n, a.sigma)
    period = 2 * math.pi
    kw = dict(periodic=[("-pi", "pi")] * 2, bins=[a.bins, a.bins], names=["phi", "psi"], threads=a.threads or None)

    t = time.perf_counter()
    sub = cyfes.hills(centers[:a.subset], sigma=widths[:a.subset], height=heights[:a.subset], **kw)
    t_sub = time.perf_counter() - t
    pts = np.stack([m.ravel() for m in np.meshgrid(*sub.axes, indexing="ij")], axis=1)
    t = time.perf_counter()
    ref = numpy_sum(centers[:a.subset], widths[:a.subset], heights[:a.subset], pts, period)
    t_np = time.perf_counter() - t
    err = float(np.abs(sub.values.ravel() - ref).max())

    t = time.perf_counter()
    res = cyfes.hills(centers, sigma=widths, height=heights, **kw)
    t_all = time.perf_counter() - t
    box = (2 * np.ceil(math.sqrt(12.5) * a.sigma / (period / a.bins)) + 1) ** 2
    print(f"grid {a.bins}x{a.bins} periodic, sigma ~{a.sigma} (box ~{box:.0f} points per hill), "
          f"threads {a.threads or 'all'} ({res.backend})")
    print(f"numpy direct sum, {a.subset} hills: {t_np:.2f} s  ->  {t_np / a.subset * 1e6:.1f} us/hill; "
          f"cyfes on the same subset {t_sub:.3f} s; max |dF| {err:.1e}")
    print(f"cyfes.hills, {n:.3g} hills: {t_all:.2f} s  ({t_all / n * 1e6:.2f} us/hill); numpy would take "
          f"{t_np / a.subset * n:.0f} s: ratio {t_np / a.subset * n / t_all:.0f}x")
    if a.read:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "HILLS"
            t = time.perf_counter()
            with open(path, "w") as fh:
                fh.write("#! FIELDS time phi psi sigma_phi sigma_psi height biasf\n#! SET multivariate false\n"
                         "#! SET kerneltype stretched-gaussian\n#! SET min_phi -pi\n#! SET max_phi pi\n"
                         "#! SET min_psi -pi\n#! SET max_psi pi\n")
                table = np.column_stack([np.arange(n) * 0.5, centers, widths, heights, np.full(n, 10.0)])
                np.savetxt(fh, table, fmt="%.9g")
            t_write = time.perf_counter() - t
            t = time.perf_counter()
            read = hills_io.read_hills([str(path)])
            t_read = time.perf_counter() - t
            print(f"HILLS file of {len(read):.3g} hills ({path.stat().st_size / 2**20:.0f} MiB): read in {t_read:.2f} s "
                  f"(written in {t_write:.1f} s)")


if __name__ == "__main__":
    main()
