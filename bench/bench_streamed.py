"""Samples in chunks against samples in memory, in one run: cyfes.fes on an in-memory (N, 2) array against the
same call on a Dask array of many more rows that is generated chunk by chunk and never held whole (Dask's
threaded scheduler in this process; on a cluster the chunks live on the workers). Prints time per row and the
peak resident memory of each (measured in a child process each, so one does not inherit the other's peak).

    python bench/bench_streamed.py [--memory-rows 1e7] [--streamed-rows 2e8] [--chunk 5e6] [--bins 100]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import numpy as np
import cyfes
kind, rows, chunk, bins = sys.argv[1], int(float(sys.argv[2])), int(float(sys.argv[3])), int(sys.argv[4])
kw = dict(bins=bins, ranges=[(-4.0, 4.0), (-4.0, 4.0)], device="cpu")
if kind == "memory":
    x = np.random.default_rng(1).normal(size=(rows, 2))
    t = time.perf_counter(); r = cyfes.fes(x, 0.2, **kw); t = time.perf_counter() - t
else:
    import dask, dask.array as da
    x = da.random.default_rng(1).normal(size=(rows, 2), chunks=(chunk, 2))
    with dask.config.set(scheduler="threads", num_workers=1):
        t = time.perf_counter(); r = cyfes.fes(x, 0.2, **kw); t = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps(dict(kind=kind, rows=rows, seconds=t, peak_bytes=peak, fmin=float(r.values.min()))))
"""


def run(kind: str, rows: float, chunk: float, bins: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, kind, str(rows), str(chunk), str(bins)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--memory-rows", type=float, default=1e7)
    ap.add_argument("--streamed-rows", type=float, default=2e8)
    ap.add_argument("--chunk", type=float, default=5e6)
    ap.add_argument("--bins", type=int, default=100)
    a = ap.parse_args()
    mem = run("memory", a.memory_rows, a.chunk, a.bins)
    st = run("streamed", a.streamed_rows, a.chunk, a.bins)
    for r in (mem, st):
        print(f"{r['kind']:>8}: {r['rows']:.3g} rows in {r['seconds']:.2f} s ({1e9 * r['seconds'] / r['rows']:.1f} "
              f"ns/row), peak RSS {r['peak_bytes'] / 2**20:.0f} MiB (data {16 * r['rows'] / 2**20:.0f} MiB)")
    ratio = (st["seconds"] / st["rows"]) / (mem["seconds"] / mem["rows"])
    print(f"time per row, streamed / in memory: {ratio:.2f}; peak memory streamed / in memory: "
          f"{st['peak_bytes'] / mem['peak_bytes']:.2f}")


if __name__ == "__main__":
    main()
