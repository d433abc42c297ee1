"""Kernels as wide as the data (nothing can be left out): the default (tolerance=1e-6) against tolerance=0.

    python bench/bench_wide_kernels.py [--repeats 7]

The two calls alternate, each timed `repeats` times after a warm-up, best of each: on a shared machine a load
spike then hits both alike (sequential blocks of timings swung the ratio between 0.5x and 1.1x here).
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

import cyfes
from bench_surface import Case


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7)
    a = p.parse_args()
    case = Case("2-D 1e5 x 50^2 s3 (wide)", 2, 100_000, 50, 3.0)
    x, bias = case.data(np.random.default_rng(7))
    load = os.getloadavg()[0]
    print(f"{case.name}, 2 CVs, sigma {case.sigma}; load average {load:.1f}")
    for precision in ("float64", "float32"):
        calls = {"default": {}, "tolerance=0": {"tolerance": 0}}
        best = {k: float("inf") for k in calls}
        out = {}
        for k, kw in calls.items():
            out[k] = cyfes.fes(x, case.sigma, bias=bias, bins=case.bins, device="cpu", precision=precision, **kw)
        for _ in range(a.repeats):
            for k, kw in calls.items():
                t0 = time.perf_counter()
                cyfes.fes(x, case.sigma, bias=bias, bins=case.bins, device="cpu", precision=precision, **kw)
                best[k] = min(best[k], time.perf_counter() - t0)
        diff = float(np.abs(out["default"].values - out["tolerance=0"].values).max() / out["default"].kT)
        print(f"{precision}: default {best['default']:.3f} s (bound {out['default'].bound:.1e} kT, pairs "
              f"{out['default'].pairs:.3g}), tolerance=0 {best['tolerance=0']:.3f} s: default at "
              f"{best['tolerance=0'] / best['default']:.3f}x the speed of tolerance=0; max |dF| {diff:.1e} kT")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
