"""Metadynamics reweighting from HILLS (cyfes fes --hills --reweight ct): the bias of the hills deposited before
each sample, and c(t), for many samples and hills, against a plain numpy sum on a subset, in the same run.

    python bench/bench_metad_reweight.py [--samples 1e7] [--hills 1e5] [--device gpu] [--subset 2000]

2-D periodic CVs, well-tempered hills deposited along the samples (one every samples/hills rows); the numpy
baseline adds the hills one at a time (vectorised over the subset's samples) and is scaled to the whole run.
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np

from cyfes.workflows import metad_reweight, sum_hills

CUT = 6.25


def make_run(n: int, m: int, seed: int = 4):
    rng = np.random.default_rng(seed)
    x = (np.cumsum(rng.normal(0, 0.05, (n, 2)), axis=0) + math.pi) % (2 * math.pi) - math.pi
    t = np.arange(n, dtype=np.float64)
    every = max(1, n // m)
    hill_t = (np.arange(m) * every + 0.5).astype(np.float64)
    centers = x[np.minimum(np.arange(m) * every, n - 1)]
    return x, t, centers, np.full((m, 2), 0.3), 1.2 * np.exp(-np.arange(m) / m), hill_t


def numpy_bias(x, counts, centers, sigma, heights) -> np.ndarray:
    """sum_{i < counts[j]} h_i (A e^-s + B) for s < 6.25, one hill at a time (periodic, period 2 pi)."""
    a = 1.0 / (1.0 - math.exp(-CUT))
    b = -math.exp(-CUT) * a
    out = np.zeros(len(x))
    for i in range(int(counts.max(initial=0))):
        d = x - centers[i]
        d -= 2 * math.pi * np.round(d / (2 * math.pi))
        s = 0.5 * ((d / sigma[i]) ** 2).sum(axis=1)
        out += np.where((s < CUT) & (i < counts), heights[i] * (a * np.exp(-s) + b), 0.0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=float, default=1e7)
    ap.add_argument("--hills", type=float, default=1e5)
    ap.add_argument("--subset", type=int, default=2000, help="samples the numpy baseline sums")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--rct-bin", type=int, default=150)
    a = ap.parse_args()
    n, m = int(a.samples), int(a.hills)
    x, t, centers, sigma, heights, hill_t = make_run(n, m)
    hills = sum_hills._hills_from_arrays(centers, sigma, heights, None, None, [("-pi", "pi")] * 2)
    timed = metad_reweight.sort_by_time(hills, hill_t, 8.0)
    device = sum_hills.hills_device(a.device, None, 2)
    counts = np.searchsorted(timed.times, t, side="left")
    pairs = float(counts.sum())
    dep = metad_reweight.bias_heights(timed.hills, 8.0)
    metad_reweight.bias_at_points(x[:1000], timed.hills, dep, counts[:1000], True, device)  # start the device

    pick = np.linspace(0, n - 1, min(a.subset, n)).astype(np.int64)
    start = time.perf_counter()
    want = numpy_bias(x[pick], counts[pick], timed.hills.centers, timed.hills.widths, dep)
    t_np = time.perf_counter() - start
    np_rate = float(counts[pick].sum()) / t_np

    start = time.perf_counter()
    v = metad_reweight.bias_at_points(x, timed.hills, dep, counts, True, device)
    t_v = time.perf_counter() - start
    err = float(np.abs(v[pick] - want).max())
    grid = metad_reweight.rct_grid(timed.hills, None, None, [str(a.rct_bin)] * 2)
    start = time.perf_counter()
    got = metad_reweight.compute(x, t, timed, 2.494, "ct", grid, device=device)
    t_all = time.perf_counter() - start
    print(f"{n:.3g} samples x {m:.3g} hills (2-D periodic), device {device.describe()}: "
          f"{pairs:.3g} sample-hill pairs")
    print(f"numpy, one hill at a time over {len(pick)} samples: {t_np:.2f} s, {np_rate:.3g} pairs/s")
    print(f"cyfes bias at the samples: {t_v:.3f} s, {pairs / t_v:.3g} pairs/s: ratio {pairs / t_v / np_rate:.0f}x "
          f"numpy; max |dV| on the subset {err:.1e} (V up to {np.abs(want).max():.3g})")
    print(f"cyfes whole ct run (bias + c(t) on a {a.rct_bin}^2 grid at {len(np.unique(counts))} hill counts): "
          f"{t_all:.3f} s; numpy would take {pairs / np_rate:.0f} s for the bias alone; "
          f"c(t) range {got.c.min():.3g}..{got.c.max():.3g}")


if __name__ == "__main__":
    main()
