"""Do Python threads run cyfes calls at once? N calls one after the other against the same N calls from N threads
started together, in the same run, for cyfes.fes, cyfes.hills and FESResult.basins.

    python bench/bench_threads.py [--samples 2e5] [--hills 4e4] [--bins 160] [--repeats 3] [--ns 1,2,4,8]
                                  [--threads-per-call 1]

N runs over --ns, capped by the cores this process may use (os.sched_getaffinity). Each call asks for
--threads-per-call OpenMP threads (default 1, so N threads use N cores). Printed per function and N: the best of
--repeats wall times of both ways, and speed-up = serial / threaded (N when the calls overlap fully, 1 when they
hold the GIL throughout). Every threaded result is compared bit for bit with the serial one of the same input.

basins caches the watershed of the last two surfaces it saw (by their bytes), so each call gets a surface of its
own: the same samples with bias offsets of a few 1e-9 kT, a pool larger than the cache.
"""
from __future__ import annotations

import argparse
import os
import platform
import threading
import time
from typing import Any, Callable

import numpy as np

import cyfes

KT = 0.0083144626 * 300.0  # kJ/mol


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def threaded(calls: list[Callable[[], Any]]) -> tuple[float, list[Any]]:
    """Wall time of all calls, one thread each, released together; their results in order."""
    out: list[Any] = [None] * len(calls)
    start = threading.Barrier(len(calls) + 1)

    def worker(i: int) -> None:
        start.wait()
        out[i] = calls[i]()

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(len(calls))]
    for t in pool:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in pool:
        t.join()
    return time.perf_counter() - t0, out


def serial(calls: list[Callable[[], Any]]) -> tuple[float, list[Any]]:
    t0 = time.perf_counter()
    out = [c() for c in calls]
    return time.perf_counter() - t0, out


def same(a: Any, b: Any) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b)) and len(a) == len(b)


def workloads(args: argparse.Namespace, pool_size: int) -> dict[str, list[Callable[[], Any]]]:
    """name -> calls; call k of a workload and call k of another run of it have the same input."""
    rng = np.random.default_rng(5)
    n, tpc = int(args.samples), args.threads_per_call
    x = np.r_[rng.normal([-1, 0], 0.4, (n // 2, 2)), rng.normal([1, 0.5], 0.5, (n - n // 2, 2))]
    bias = rng.uniform(0, 4, n) * KT
    centres = rng.uniform(-3, 3, (int(args.hills), 2))
    b = args.bins

    def fes() -> Any:
        return (cyfes.fes(x, 0.1, bias=bias, bins=b, device="cpu", threads=tpc).values,)

    def hills() -> Any:
        r = cyfes.hills(centres, sigma=[0.3, 0.4], height=1.2, periodic=[(-np.pi, np.pi)] * 2, bins=[b, b],
                        grid_min=["-pi", "-pi"], grid_max=["pi", "pi"], device="cpu", threads=tpc)
        return (r.values,)

    surfaces = [cyfes.fes(x, 0.1, bias=bias + 1e-9 * k * KT, bins=b, device="cpu", threads=cores())
                for k in range(pool_size)]
    assert len({s.values.tobytes() for s in surfaces}) == pool_size, "offsets too small to change the surface"

    def basins(k: int) -> Callable[[], Any]:
        def call() -> Any:
            bs = surfaces[k].basins()
            return bs.labels, np.array([(r.free_energy, r.delta_f, r.population) for r in bs.records])
        return call

    return {"cyfes.fes": [fes] * pool_size, "cyfes.hills": [hills] * pool_size,
            "FESResult.basins": [basins(k) for k in range(pool_size)]}


def measure(calls: list[Callable[[], Any]], n: int, repeats: int) -> tuple[float, float, bool]:
    """Best serial and threaded time of n calls, and whether every threaded result equals its serial one.
    Calls rotate through the pool so that no call repeats one of the last 2n (the basins cache never hits)."""
    best_s = best_t = float("inf")
    equal, at = True, 0
    reference = {}
    calls[-1]()  # warm-up: first-call imports and allocations are not what is measured
    for _ in range(repeats):
        for way in (serial, threaded):
            idx = [(at + i) % len(calls) for i in range(n)]
            at += n
            t, res = way([calls[i] for i in idx])
            for i, r in zip(idx, res):
                if i not in reference:
                    reference[i] = serial([calls[i]])[1][0]
                equal &= same(r, reference[i])
            if way is serial:
                best_s = min(best_s, t)
            else:
                best_t = min(best_t, t)
    return best_s, best_t, equal


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=float, default=2e5)
    ap.add_argument("--hills", type=float, default=4e4)
    ap.add_argument("--bins", type=int, default=160)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ns", default="1,2,4,8")
    ap.add_argument("--threads-per-call", type=int, default=1)
    args = ap.parse_args()
    ns = [n for n in (int(v) for v in args.ns.split(",")) if n <= cores()] or [1]
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.processor() or platform.machine()}, "
          f"{cores()} cores usable, load {os.getloadavg()[0]:.2f}, cyfes {cyfes.__version__}, "
          f"{args.threads_per_call} OpenMP thread(s) per call, N = {ns}")
    calls = workloads(args, 2 * max(ns) + 3)
    print(f"{'function':18} {'N':>2} {'serial s':>9} {'threads s':>9} {'speed-up':>8}  results")
    for name, fs in calls.items():
        for n in ns:
            ts, tt, equal = measure(fs, n, args.repeats)
            print(f"{name:18} {n:>2} {ts:9.3f} {tt:9.3f} {ts / tt:8.2f}  {'equal' if equal else 'DIFFER'}")
    print(f"load after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
