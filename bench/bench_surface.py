"""Time to an accurate free energy surface: cyfes.fes end to end against baselines timed in the same run.

    python bench/bench_surface.py [--cpu] [--gpu] [--quick] [--json out.json]

Every row is one whole call (validation, grid, kernels, result) with its max |dF| (kT) against a float64 direct
sum (cyfes, tolerance=0) on grid points sampled from the surface, over all of them and over those within 20 kJ/mol
of the minimum. Baselines: the brute-force sum (tolerance=0; on big grids timed on a slab of grid rows and scaled
by the number of points, which is exact for a sum that costs the same per point), KDEpy's FFTKDE (linear binning
+ FFT, 1024 points per CV in 2-D) on the CPU, a chunked torch cdist + logsumexp on the GPU (data already there).
Timings are the best of `repeats` runs after a warm-up.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

import cyfes
from cyfes.engine import backends as _backends

KT = 0.0083144626181532 * 300.0


@dataclass
class Case:
    name: str
    dim: int
    n: int
    bins: int
    sigma: float

    def data(self, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
        """Two Gaussian basins spanning about 9 x 6.5 (x 6.5) units, biases of a few kT."""
        c = np.array([[-2.0, 1.0, 0.0], [3.0, -1.0, 1.0]])[:, :self.dim]
        s = np.array([[1.0, 0.7, 0.8], [1.2, 1.0, 0.7]])[:, :self.dim]
        half = self.n // 2
        x = np.concatenate([rng.normal(c[0], s[0], size=(half, self.dim)),
                            rng.normal(c[1], s[1], size=(self.n - half, self.dim))])
        return x, rng.normal(scale=3.0 * KT, size=self.n)


@dataclass
class Row:
    case: str
    method: str
    device: str
    seconds: float
    max_df: float
    max_df_low: float
    note: str = ""
    ratios: Dict[str, float] = field(default_factory=dict)
    #: the kernel's float type ("" for other tools): brute-force ratios compare rows of the same precision
    precision: str = ""


def best_time(fn: Callable[[], object], repeats: int, warm: bool = True) -> Tuple[float, object]:
    """The shortest of `repeats` runs, after a warm-up run unless warm is False (then one timed run)."""
    out = fn() if warm else None
    best = float("inf")
    for _ in range(max(repeats, 1)):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


class Reference:
    """A float64 direct sum at sampled points of the case's regular grid, to score every row."""

    def __init__(self, x: np.ndarray, bias: np.ndarray, case: Case, device: str, rng: np.random.Generator):
        self.axes = [np.linspace(x[:, d].min(), x[:, d].max(), case.bins) for d in range(case.dim)]
        shape = (case.bins,) * case.dim
        self.index = rng.choice(case.bins ** case.dim, size=min(400, case.bins ** case.dim), replace=False)
        mesh = np.unravel_index(self.index, shape)
        self.points = np.stack([self.axes[d][mesh[d]] for d in range(case.dim)], axis=1)
        res = cyfes.fes(x, case.sigma, bias=bias, grid=self.points, device=device, tolerance=0, shift=False)
        self.f = res.values

    def score(self, values_at_points: np.ndarray) -> Tuple[float, float]:
        d = values_at_points - self.f
        d = d - np.median(d)  # surfaces are shifted by their own minimum
        low = self.f - self.f.min() < 20.0
        return float(np.abs(d).max() / KT), float(np.abs(d[low]).max() / KT)


def cyfes_row(case: Case, x, bias, ref: Reference, repeats: int, label: str, **kw) -> Row:
    sec, res = best_time(lambda: cyfes.fes(x, case.sigma, bias=bias, bins=case.bins, **kw), repeats)
    precision = res.precision
    assert np.allclose([a[0] for a in res.axes], [a[0] for a in ref.axes])
    err = ref.score(res.values.ravel()[ref.index])
    note = f"bound {res.bound:.1e} kT, pairs {res.pairs:.2e}"
    if res.error_estimate is not None:
        note += f", estimate {res.error_estimate:.2g} kT"
    return Row(case.name, label, res.backend, sec, *err, note, precision=precision)


def brute_row(case: Case, x, bias, ref: Reference, device: str, precision: str, rows: int, repeats: int = 1) -> Row:
    """tolerance=0 on the first `rows` rows of the grid (all of it when rows >= bins), scaled to the whole grid.
    The whole grid is timed as the cyfes rows are (best of `repeats` after a warm-up), a slab once."""
    rows = min(rows, case.bins)
    slab = [np.asarray(a) for a in ref.axes]
    slab[0] = slab[0][:rows]
    pts = np.stack([m.ravel() for m in np.meshgrid(*slab, indexing="ij")], axis=1)
    sec, res = best_time(lambda: cyfes.fes(x, case.sigma, bias=bias, grid=pts, device=device, precision=precision,
                                           tolerance=0, shift=False),
                         repeats if rows == case.bins else 1, warm=rows == case.bins)
    total = sec * case.bins / rows
    note = "whole grid" if rows == case.bins else f"timed on {rows}/{case.bins} grid rows, scaled"
    return Row(case.name, f"brute force (tolerance=0) {precision}", res.backend, total, 0.0, 0.0, note,
               precision=precision)


def kdepy_row(case: Case, x, bias, ref: Reference, repeats: int) -> Optional[Row]:
    try:
        from KDEpy import FFTKDE
    except ImportError:
        return None
    w = np.exp((bias - bias.max()) / KT)
    per = 1024 if case.dim == 2 else 128

    def run():
        grid, y = FFTKDE(kernel="gaussian", bw=case.sigma).fit(x, weights=w).evaluate(per)
        return grid, y

    sec, (grid, y) = best_time(run, repeats)
    axes = [np.unique(grid[:, d]) for d in range(case.dim)]
    dens = y.reshape([len(a) for a in axes])
    vals = -KT * np.log(np.maximum(_interp(axes, dens, ref.points), 1e-300))
    err = ref.score(vals)
    return Row(case.name, f"KDEpy FFTKDE ({per}^{case.dim} grid)", "cpu (1 thread)", sec, *err)


def _interp(axes: List[np.ndarray], values: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Multilinear interpolation on a regular grid (for KDEpy's own grid)."""
    out = np.zeros(len(points))
    idx, frac = [], []
    for d, a in enumerate(axes):
        t = np.clip((points[:, d] - a[0]) / (a[1] - a[0]), 0, len(a) - 1.000001)
        i = np.floor(t).astype(int)
        idx.append(i)
        frac.append(t - i)
    for corner in np.ndindex(*(2,) * len(axes)):
        w = np.prod([f if c else 1 - f for c, f in zip(corner, frac)], axis=0)
        out += w * values[tuple(i + c for i, c in zip(idx, corner))]
    return out


def torch_row(case: Case, x, bias, ref: Reference, repeats: int, rows: int) -> Optional[Row]:
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    rows = min(rows, case.bins)
    slab = [np.asarray(a) for a in ref.axes]
    slab[0] = slab[0][:rows]
    pts = np.stack([m.ravel() for m in np.meshgrid(*slab, indexing="ij")], axis=1) / case.sigma
    s = torch.tensor(x / case.sigma, dtype=torch.float32, device="cuda")
    g = torch.tensor(pts, dtype=torch.float32, device="cuda")
    lw = torch.tensor(bias / KT, dtype=torch.float32, device="cuda")
    out = torch.empty(len(pts), dtype=torch.float32, device="cuda")
    chunk = max(1, (1 << 28) // len(x))

    def run():
        for lo in range(0, len(pts), chunk):
            d2 = torch.cdist(g[lo:lo + chunk], s).square_()
            out[lo:lo + chunk] = torch.logsumexp(lw - 0.5 * d2, dim=1)
        torch.cuda.synchronize()

    sec, _ = best_time(run, repeats)
    note = "whole grid" if rows == case.bins else f"timed on {rows}/{case.bins} grid rows, scaled"
    return Row(case.name, "torch cdist+logsumexp float32", "cuda (data on GPU)", sec * case.bins / rows, float("nan"),
               float("nan"), note)


def run_case(case: Case, device: str, rng, repeats: int, brute_rows: int, torch_rows: int = 0,
             cpu_too: bool = False) -> List[Row]:
    x, bias = case.data(rng)
    ref = Reference(x, bias, case, device, rng)
    rows: List[Row] = []
    if device == "cpu":
        rows.append(cyfes_row(case, x, bias, ref, repeats, "cyfes default (tolerance 1e-6, float64)", device="cpu"))
    rows.append(cyfes_row(case, x, bias, ref, repeats, "cyfes tolerance 1e-6, float32", precision="float32",
                          device=device))
    if device == "cpu" or case.dim == 2:  # in 3-D the fine grid's size cap makes the GPU's binning coarse
        rows.append(cyfes_row(case, x, bias, ref, repeats, "cyfes method='binned'", method="binned", device=device))
    if cpu_too:
        rows.append(cyfes_row(case, x, bias, ref, repeats, "cyfes CPU, tolerance 1e-6, float32", device="cpu",
                              precision="float32"))
    if device == "cpu":  # the default's own precision: the sum it replaces
        rows.append(brute_row(case, x, bias, ref, device, "float64", brute_rows, repeats))
    rows.append(brute_row(case, x, bias, ref, device, "float32", brute_rows, repeats))
    if device == "cpu" and case.dim == 2:
        row = kdepy_row(case, x, bias, ref, repeats)
        if row:
            rows.append(row)
    if device != "cpu" and torch_rows:
        row = torch_row(case, x, bias, ref, repeats, torch_rows)
        if row:
            rows.append(row)
    set_ratios(rows)
    return rows


def set_ratios(rows: List[Row]) -> None:
    """Each row against the brute-force sum of its own precision and the other tools' rows."""
    brute = {r.precision: r.seconds for r in rows if r.method.startswith("brute")}
    tools = {r.method.split(" (")[0].split(" float")[0]: r.seconds for r in rows
             if r.method.startswith(("KDEpy", "torch"))}
    for r in rows:
        if r.precision in brute:
            r.ratios[f"brute force {r.precision}"] = brute[r.precision] / r.seconds
        r.ratios.update({k: v / r.seconds for k, v in tools.items()})


def report(rows: List[Row], header: str) -> str:
    lines = [header, "", f"{'case':24s} {'method':42s} {'device':18s} {'seconds':>9s} {'max|dF|':>9s} "
             f"{'<20kJ':>9s}  speed-up vs baselines; notes"]
    for r in rows:
        ratios = ", ".join(f"{v:.3g}x {k}" for k, v in r.ratios.items())
        lines.append(f"{r.case:24s} {r.method:42s} {r.device:18s} {r.seconds:9.3f} {r.max_df:9.2e} "
                     f"{r.max_df_low:9.2e}  {ratios}; {r.note}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="the CPU cases (default when no GPU)")
    parser.add_argument("--gpu", action="store_true", help="the GPU cases")
    parser.add_argument("--quick", action="store_true", help="a tenth of the samples")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", metavar="TEXT", help="only the cases whose name contains TEXT (e.g. 2-D)")
    parser.add_argument("--json")
    args = parser.parse_args()
    gpu = bool(_backends.gpu_devices())
    want_cpu = args.cpu or not (args.gpu and gpu)
    k = 10 if args.quick else 1
    load_before = os.getloadavg()[0]
    rng = np.random.default_rng(7)
    rows: List[Row] = []
    plan = []
    if want_cpu:
        plan += [(Case("2-D 1e6 x 200^2 s0.1", 2, 1_000_000 // k, 200, 0.1), "cpu", args.repeats, 4, 0, False),
                 (Case("3-D 1e6 x 64^3 s0.1", 3, 1_000_000 // k, 64, 0.1), "cpu", args.repeats, 1, 0, False),
                 # sub-second rows on a shared machine: more repeats, so load spikes do not decide the ratio
                 (Case("2-D 1e5 x 50^2 s3 (wide)", 2, 100_000 // k, 50, 3.0), "cpu", max(args.repeats, 7), 50, 0,
                  False)]
    if args.gpu and gpu:  # one timed run each: the brute-force GPU sums take seconds here
        plan += [(Case("2-D 1e7 x 200^2 s0.1", 2, 10_000_000 // k, 200, 0.1), "gpu", 1, 200, 20, True),
                 (Case("3-D 1e7 x 100^3 s0.1", 3, 10_000_000 // k, 100, 0.1), "gpu", 1, 10, 1, False),
                 (Case("2-D 1e8 x 500^2 s0.1", 2, 100_000_000 // k, 500, 0.1), "gpu", 1, 25, 0, False)]
    for case, device, repeats, brute, torch_rows, cpu_too in plan:
        if args.only is None or args.only in case.name:
            got = run_case(case, device, rng, repeats, brute, torch_rows, cpu_too)
            print(report(got, f"(done: {case.name})"), flush=True)  # a long run shows its rows as it goes
            rows += got
    devices = _backends.gpu_devices()
    header = (f"cyfes {cyfes.__version__}, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
              f"CPU {platform.processor() or platform.machine()} x{os.cpu_count()} "
              f"(load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after); "
              f"GPU {devices[0]['name'] if devices else 'none'}")
    print(report(rows, header))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"header": header, "rows": [asdict(r) for r in rows]}, fh, indent=1)


if __name__ == "__main__":
    main()
