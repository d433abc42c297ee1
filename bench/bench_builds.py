"""CPU kernel speed of two or more builds of cyfes, measured in the same run, as ratios against the first.

    python bench/bench_builds.py base=/path/to/site-packages new=/other/site-packages [--rounds 5] [--quick]
    python bench/bench_builds.py cp312=DIR1@/venv312/bin/python abi3=DIR2@/venv312/bin/python

Each NAME=DIR[@PYTHON] names a directory holding a `cyfes` package (put first on PYTHONPATH) and optionally the
interpreter to run it with (it needs numpy). The builds run in alternating order, one fresh process per build
and round, so drifting machine load hits every build alike; the rate of a case is the median over the rounds.
Cases: the CPU backend's float32 and float64 kernels at D=3, float32 with periodic CVs (pairs/s), and calls/s
of a tiny problem on one thread (per-call overhead).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass

CHILD = r"""
import json, sys, time
import numpy as np
import cyfes
from cyfes.engine import backends as _backends
n, m, repeats = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
cpu = _backends.Device("cpu", threads=cyfes.backends()["cpu"]["threads"])
rng = np.random.default_rng(1)
out = {"module": cyfes.engine._cpu.__file__}
for name, dtype, periodic in (("float32", np.float32, False), ("float64", np.float64, False),
                              ("float32 periodic", np.float32, True)):
    dim = 3
    samples = rng.normal(size=(n, dim)).astype(dtype)
    grid = rng.uniform(-3, 3, size=(m, dim)).astype(dtype)
    logw = rng.normal(scale=2.0, size=n)
    logw = (logw - logw.max()).astype(dtype)
    scale = (1.0 / rng.uniform(0.1, 0.3, size=dim)).astype(dtype)
    period = (np.full(dim, 2 * np.pi) if periodic else np.zeros(dim)).astype(dtype)
    _backends.log_density(samples, logw, grid, scale, period, cpu)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        _backends.log_density(samples, logw, grid, scale, period, cpu)
        times.append(time.perf_counter() - t0)
    out[name] = n * m / min(times)
# Per-call overhead (argument checks, buffer acquisition: where a Limited API build could differ): tiny
# calls on one thread.
args = [np.ascontiguousarray(a) for a in (rng.normal(size=(256, 2)), np.zeros(256), rng.normal(size=(16, 2)),
                                          np.ones(2), np.zeros(2))]
calls, one_thread = 2000, _backends.Device("cpu", threads=1)  # no thread wake-ups in the measurement
best = float("inf")
for _ in range(repeats):
    t0 = time.perf_counter()
    for _ in range(calls):
        _backends.log_density(*args, one_thread)
    best = min(best, time.perf_counter() - t0)
out["calls/s (N=256, M=16)"] = calls / best
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Build:
    name: str
    path: str
    python: str


def parse_build(text: str) -> Build:
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=DIR or NAME=DIR@PYTHON")
    path, _, python = rest.partition("@")
    if not os.path.isdir(os.path.join(path, "cyfes")):
        raise argparse.ArgumentTypeError(f"{text!r}: {path} holds no cyfes package")
    return Build(name, os.path.abspath(path), python or sys.executable)


def run_once(build: Build, n: int, m: int, repeats: int) -> dict:
    env = dict(os.environ, PYTHONPATH=build.path)
    proc = subprocess.run([build.python, "-c", CHILD, str(n), str(m), str(repeats)], env=env, cwd="/",
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"bench_builds: {build.name} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("builds", nargs="+", type=parse_build, metavar="NAME=DIR[@PYTHON]")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="a quarter of the problem size")
    args = parser.parse_args()
    n, m = (50_000, 1024) if args.quick else (200_000, 4096)
    results: dict[str, list[dict]] = {b.name: [] for b in args.builds}
    for r in range(args.rounds):
        order = args.builds if r % 2 == 0 else list(reversed(args.builds))
        for b in order:
            results[b.name].append(run_once(b, n, m, 3))
    cases = [k for k in results[args.builds[0].name][0] if k != "module"]
    base = args.builds[0].name
    print(f"CPU kernel, {os.cpu_count()} cores, N={n} samples x M={m} points, D=3, median of {args.rounds} rounds")
    for b in args.builds:
        print(f"  {b.name}: {results[b.name][0]['module']} ({b.python})")
    print(f"{'build':12s} {'case':22s} {'rate':>10s}  vs {base}")
    for case in cases:
        ref = statistics.median(x[case] for x in results[base])
        for b in args.builds:
            rate = statistics.median(x[case] for x in results[b.name])
            print(f"{b.name:12s} {case:22s} {rate:10.3e}  {rate / ref:6.3f}x")


if __name__ == "__main__":
    main()
