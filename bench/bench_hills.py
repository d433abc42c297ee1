"""Benchmark of sum_hills: cyfes.hills on N hills against a direct float64 numpy sum measured in the same run,
and optionally against PLUMED's own `plumed sum_hills` on the same HILLS file.

    python bench/bench_hills.py [--hills 3e6] [--bins 200] [--sigma 0.35] [--subset 2000] [--threads N]
                                [--device cpu|gpu|auto] [--read] [--plumed PATH [--plumed-hills 1e5]]

Hills are 2-D (phi, psi periodic on [-pi, pi)), per-hill sigmas around --sigma, on a --bins^2 grid (PLUMED's
--bin B on a periodic CV: B points). The numpy baseline sums the same stretched Gaussians over the whole grid for
--subset hills (vectorised over grid points, one hill at a time); its time is scaled to N hills to give the
ratio, and the largest difference from it on the subset is printed. --read also writes N hills to a HILLS file
and times reading it. --plumed PATH (the plumed executable, its environment set, e.g. by sourceme.sh) writes
--plumed-hills hills to a HILLS file and times `plumed sum_hills` and `cyfes sum_hills` on it, same flags,
each as its own process (reading, summing and writing the file), and compares the two files.
"""
from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import cyfes
from cyfes.io import hills as hills_io
from cyfes.workflows import sum_hills as hillsum

A = 1.0 / (1.0 - math.exp(-6.25))
B = -math.exp(-6.25) * A
HEADER = ("#! FIELDS time phi psi sigma_phi sigma_psi height biasf\n#! SET multivariate false\n"
          "#! SET kerneltype stretched-gaussian\n#! SET min_phi -pi\n#! SET max_phi pi\n"
          "#! SET min_psi -pi\n#! SET max_psi pi\n")


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


def write_hills(path: Path, centers, widths, heights) -> None:
    with open(path, "w") as fh:
        fh.write(HEADER)
        table = np.column_stack([np.arange(len(heights)) * 0.5, centers, widths, heights,
                                 np.full(len(heights), 10.0)])
        np.savetxt(fh, table, fmt="%.9g")


def _timed(cmd, cwd: Path) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def compare_with_plumed(plumed: str, n: int, bins: int, sigma: float, device: str) -> None:
    """Both tools on one HILLS file of n hills, each as its own process; their files compared."""
    centers, widths, heights = make_hills(n, sigma, seed=11)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_hills(work / "HILLS", centers, widths, heights)
        flags = ["sum_hills", "--hills", "HILLS", "--bin", f"{bins},{bins}"]
        t_plumed = _timed([plumed] + flags + ["--outfile", "plumed.dat"], work)
        t_cyfes = _timed([sys.executable, "-m", "cyfes"] + flags + ["--outfile", "cyfes.dat", "--device", device,
                                                                   "-q"], work)
        theirs = (work / "plumed.dat").read_text().splitlines()
        mine = (work / "cyfes.dat").read_text().splitlines()
        rows = [(a, b) for a, b in zip(mine, theirs) if b and not b.startswith("#")]
        diff = max(max(abs(float(x) - float(y)) for x, y in zip(a.split(), b.split())) for a, b in rows)
        same = sum(a == b for a, b in rows) / len(rows)
    print(f"plumed sum_hills vs cyfes sum_hills ({device}), {n:.3g} hills, --bin {bins},{bins}: plumed "
          f"{t_plumed:.2f} s, cyfes {t_cyfes:.2f} s: ratio {t_plumed / t_cyfes:.1f}x; files: {len(mine)} vs "
          f"{len(theirs)} lines, {100 * same:.3f}% identical, max |difference| {diff:.1e}")


def time_the_sum_itself(centers, widths, heights, bins: int, device: str, threads, repeat: int) -> float:
    """Best time of the kernel call alone (sum_hills.add_hills on a checked run), as cyfes.hills makes it."""
    hills = hillsum._hills_from_arrays(centers, widths, heights, None, ["phi", "psi"], [("-pi", "pi")] * 2)
    run = hillsum.hills_run(hills, bins=[str(bins)] * 2, device=device, threads=threads)
    best = math.inf
    for _ in range(max(1, repeat)):
        total = hillsum.empty_sum(run.grid, derivatives=False)
        t = time.perf_counter()
        hillsum.add_hills(total, run.hills, run.grid, run.heights, run.extent, run.kernel, run.device)
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hills", type=float, default=3e6)
    ap.add_argument("--bins", type=int, default=200)
    ap.add_argument("--sigma", type=float, default=0.35)
    ap.add_argument("--subset", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu (default), gpu, cuda:N or auto")
    ap.add_argument("--read", action="store_true")
    ap.add_argument("--repeat", type=int, default=1, help="time the full sum this many times, report the best")
    ap.add_argument("--plumed", metavar="PATH", help="the plumed executable: time plumed sum_hills too")
    ap.add_argument("--plumed-hills", type=float, default=1e5)
    a = ap.parse_args()
    n = int(a.hills)
    centers, widths, heights = make_hills(n, a.sigma)
    period = 2 * math.pi
    kw = dict(periodic=[("-pi", "pi")] * 2, bins=[a.bins, a.bins], names=["phi", "psi"], threads=a.threads or None,
              device=a.device)

    t = time.perf_counter()
    sub = cyfes.hills(centers[:a.subset], sigma=widths[:a.subset], height=heights[:a.subset], **kw)
    t_sub = time.perf_counter() - t   # on a GPU this includes starting CUDA
    pts = np.stack([m.ravel() for m in np.meshgrid(*sub.axes, indexing="ij")], axis=1)
    t = time.perf_counter()
    ref = numpy_sum(centers[:a.subset], widths[:a.subset], heights[:a.subset], pts, period)
    t_np = time.perf_counter() - t
    err = float(np.abs(sub.values.ravel() - ref).max())

    t_all = c_all = math.inf
    for _ in range(max(1, a.repeat)):
        t, c = time.perf_counter(), time.process_time()
        res = cyfes.hills(centers, sigma=widths, height=heights, **kw)
        t_all, c_all = min(t_all, time.perf_counter() - t), min(c_all, time.process_time() - c)
    box = (2 * np.ceil(math.sqrt(12.5) * a.sigma / (period / a.bins)) + 1) ** 2
    print(f"grid {a.bins}x{a.bins} periodic, sigma ~{a.sigma} (box ~{box:.0f} points per hill), "
          f"backend {res.backend}")
    print(f"numpy direct sum, {a.subset} hills: {t_np:.2f} s  ->  {t_np / a.subset * 1e6:.1f} us/hill; "
          f"cyfes on the same subset {t_sub:.3f} s; max |dF| {err:.1e} (|F| up to {np.abs(ref).max():.3g})")
    print(f"cyfes.hills, {n:.3g} hills: {t_all:.2f} s  ({t_all / n * 1e6:.3f} us/hill; CPU time of all threads "
          f"{c_all:.2f} s); numpy would take {t_np / a.subset * n:.0f} s: ratio {t_np / a.subset * n / t_all:.0f}x")
    print(f"kernel evaluations (box points x hills) per second of the whole call: {box * n / t_all:.3g}")
    t_sum = time_the_sum_itself(centers, widths, heights, a.bins, a.device, a.threads or None, a.repeat)
    print(f"the sum itself (the kernel call after the checks, transfers included): {t_sum:.3f} s, "
          f"{box * n / t_sum:.3g} evaluations/s; the checks and set-up took {t_all - t_sum:.3f} s of the call")
    if a.read:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "HILLS"
            t = time.perf_counter()
            write_hills(path, centers, widths, heights)
            t_write = time.perf_counter() - t
            t = time.perf_counter()
            read = hills_io.read_hills([str(path)])
            t_read = time.perf_counter() - t
            print(f"HILLS file of {len(read):.3g} hills ({path.stat().st_size / 2**20:.0f} MiB): read in {t_read:.2f} s "
                  f"(written in {t_write:.1f} s)")
    if a.plumed:
        compare_with_plumed(a.plumed, int(a.plumed_hills), a.bins, a.sigma, a.device)


if __name__ == "__main__":
    main()
