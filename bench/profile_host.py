"""Where one cyfes.fes call spends its time: cProfile of a call, top functions by own time.

    python bench/profile_host.py [--n 1e7] [--dim 2] [--bins 200] [--device gpu] [--precision float32]
                                 [--tolerance 1e-6] [--method direct]

The kernels are single C calls, so whatever is not under _backends.log_density / the Cython entry points is host
work (validation, log-weights, ranges, casts and copies).
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import numpy as np

import cyfes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=float, default=1e7)
    p.add_argument("--dim", type=int, default=2)
    p.add_argument("--bins", type=int, default=200)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="float32")
    p.add_argument("--tolerance", type=float, default=1e-6)
    p.add_argument("--method", default="direct")
    a = p.parse_args()
    rng = np.random.default_rng(3)
    n = int(a.n)
    x = rng.normal(size=(n, a.dim))
    bias = rng.normal(scale=5.0, size=n)
    kw = dict(bias=bias, bins=a.bins, device=a.device, precision=a.precision, tolerance=a.tolerance, method=a.method)
    cyfes.fes(x[:1000], 0.1, **{**kw, "bias": bias[:1000]})  # load modules, create the CUDA context
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    res = cyfes.fes(x, 0.1, **kw)
    prof.disable()
    print(f"{time.perf_counter() - t0:.3f} s on {res.backend}, {res.pairs:.3g} pairs, bound {res.bound:.2g} kT")
    pstats.Stats(prof).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
