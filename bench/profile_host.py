"""Where one cyfes.fes call spends its time: the kernels' share, then cProfile's top functions by own time.

    python bench/profile_host.py [--n 1e7] [--dim 2] [--bins 200] [--device gpu] [--precision float32]
                                 [--tolerance 1e-6] [--method direct] [--sigma 0.1] [--repeats 3]

The kernels are single C calls: the time inside the CPU extension's entry points (cell build, tile sums, direct
sums) and the GPU's (the passes over the samples and weights with their copies, tile sums) is measured by wrapping
them; everything else is host work (validation, log-weights, ranges, casts and copies). The split is printed for the fastest of `repeats` calls.
"""
from __future__ import annotations

import argparse
import cProfile
import importlib
import pstats
import time
from collections import defaultdict
from typing import Any, Callable, Dict

import numpy as np

import cyfes

#: Entry points of the compiled modules that do the sums (the rest of a call is host work).
KERNELS = {"cyfes.engine._cpu": ("build_cells", "truncated_tiles", "log_density"),
           "cyfes.engine._gpu": ("stage", "log_density", "log_density_multi", "truncated_tiles", "binned_density")}


def _timed(fn: Callable[..., Any], name: str, spent: Dict[str, float]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kw)
        finally:
            spent[name] += time.perf_counter() - t0
    return wrapper


def instrument(spent: Dict[str, float]) -> None:
    """Replace the kernels' entry points by timed wrappers (callers look them up on the module at each call)."""
    for module, names in KERNELS.items():
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        for name in names:
            if hasattr(mod, name):
                setattr(mod, name, _timed(getattr(mod, name), f"{module.split('.')[-1]}.{name}", spent))
    try:
        pinned = importlib.import_module("cyfes.engine._gpu").PinnedHost
    except (ImportError, AttributeError):
        pinned = None
    for method in ("__enter__", "__exit__") if pinned is not None else ():
        # page-locking the samples belongs to their copy to the GPU, which the GPU's entry points time
        setattr(pinned, method, _timed(getattr(pinned, method), "_gpu.PinnedHost (page-locking)", spent))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=float, default=1e7)
    p.add_argument("--dim", type=int, default=2)
    p.add_argument("--bins", type=int, default=200)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="float32")
    p.add_argument("--tolerance", type=float, default=1e-6)
    p.add_argument("--method", default="direct")
    p.add_argument("--sigma", type=float, default=0.1)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    rng = np.random.default_rng(3)
    n = int(a.n)
    x = rng.normal(size=(n, a.dim))
    bias = rng.normal(scale=5.0, size=n)
    kw = dict(bias=bias, bins=a.bins, device=a.device, precision=a.precision, tolerance=a.tolerance, method=a.method)
    cyfes.fes(x[:1000], a.sigma, **{**kw, "bias": bias[:1000]})  # load modules, create the CUDA context
    best: Dict[str, float] = {}
    spent: Dict[str, float] = defaultdict(float)
    instrument(spent)
    for _ in range(max(1, a.repeats)):
        spent.clear()
        t0 = time.perf_counter()
        res = cyfes.fes(x, a.sigma, **kw)
        spent["total"] = time.perf_counter() - t0
        if not best or spent["total"] < best["total"]:
            best = dict(spent)
    kernel = sum(v for k, v in best.items() if k != "total")
    print(f"{best['total']:.3f} s on {res.backend}, {res.pairs:.3g} pairs, bound {res.bound:.2g} kT; "
          f"kernels {kernel:.3f} s, host {best['total'] - kernel:.3f} s "
          f"({100 * (best['total'] - kernel) / best['total']:.1f}% of the call)")
    for k, v in sorted(best.items()):
        if k != "total":
            print(f"  {k:28s} {v:.3f} s")
    prof = cProfile.Profile()
    prof.enable()
    cyfes.fes(x, a.sigma, **kw)
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
