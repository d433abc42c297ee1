"""method="binned": linear binning onto a fine grid, a convolution with the Gaussian, and multilinear
interpolation onto the requested points (the approach of KDEpy's FFTKDE; periodic CVs are circular natively). The
CPU bins in C and convolves by FFT (numpy); the GPU bins with atomics and convolves one CV at a time
(cuda/binned.cu).

Its error against the direct sum comes from binning and interpolation, both O(spacing^2): it is estimated by
Richardson's rule from a second pass at twice the spacing, |ln rho_h - ln rho_2h| / 3, doubled for safety, plus the
FFT's round-off. Where the binned density is below RELIABLE of its peak the round-off and the samples whose weights
underflowed could matter: those points are left as NaN for the caller to compute by the direct sum.
"""
from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import backends, inputs

#: Fine-grid spacing: sigma / FINE_PER_SIGMA per CV (coarser when the grid would exceed MAX_FINE_POINTS).
FINE_PER_SIGMA = 16.0
MAX_FINE_POINTS = 1 << 22
#: Padding beyond the data and the requested points, in sigmas (the Gaussian is below e^-32 there).
PAD_SIGMAS = 8.0
#: Points whose binned density is below this fraction of the peak are left to the direct sum.
RELIABLE = 1e-8
SAFETY = 2.0
#: The GPU's convolution sums neighbours within this many sigmas (the rest is below e^-72 of the peak).
GPU_REACH_SIGMAS = 12.0
#: Samples each GPU takes at least before a second one joins: every GPU convolves the whole fine grid and copies
#: its share over its own bus. bench/bench_binned_gpus.py on 2 x H200, 2-D: 1e8 x 500^2 1.19x and 1.18x faster on
#: two GPUs (two runs); 1e7 x 200^2 with the split forced 1.18x and 1.11x, but 0.8x in an earlier one-after-the-
#: other timing. A conservative threshold until more runs settle where the split starts to pay.
GPU_SHARE = 25_000_000


@dataclass
class Binned:
    """log sum_j w_j K(x - s_j) per point (unnormalised, relative to the block's top log-weight; NaN where the
    direct sum must decide) and the estimated largest |dF| in kT over the other points."""

    log_density: np.ndarray
    error_estimate: float


@dataclass
class _FineGrid:
    origin: np.ndarray
    spacing: np.ndarray
    shape: tuple[int, ...]
    periodic: np.ndarray


Range = tuple[np.ndarray, np.ndarray]


def _spacing(span: Range, sigma: np.ndarray, period: np.ndarray) -> np.ndarray:
    """sigma / FINE_PER_SIGMA per CV, widened evenly until the fine grid has at most MAX_FINE_POINTS nodes."""
    spacing = sigma / FINE_PER_SIGMA
    while np.prod(_fine_grid(span, sigma, period, spacing).shape, dtype=np.float64) > MAX_FINE_POINTS:
        spacing = spacing * 1.25
    return spacing


def _fine_grid(span: Range, sigma: np.ndarray, period: np.ndarray, spacing: np.ndarray) -> _FineGrid:
    """span: per CV the lowest and highest coordinate of the samples and the points together."""
    dim = len(sigma)
    origin, shape, step = np.zeros(dim), [], np.zeros(dim)
    for d in range(dim):
        if period[d] > 0:
            n = max(8, int(math.ceil(period[d] / spacing[d])))
            n += n % 2  # even sizes: faster FFTs
            origin[d], step[d] = 0.0, period[d] / n
        else:
            lo = span[0][d] - PAD_SIGMAS * sigma[d]
            hi = span[1][d] + PAD_SIGMAS * sigma[d]
            n = int(math.ceil((hi - lo) / spacing[d])) + 1
            n += n % 2
            origin[d], step[d] = lo, spacing[d]
        shape.append(n)
    return _FineGrid(origin, step, tuple(shape), period > 0)


def _positions(x: np.ndarray, fine: _FineGrid) -> tuple[np.ndarray, np.ndarray]:
    """Lower fine-grid index and fraction of each point per CV (periodic CVs wrapped)."""
    t = (x - fine.origin) / fine.spacing
    shape = np.asarray(fine.shape)
    t = np.where(fine.periodic, np.mod(t, shape), t)
    i0 = np.floor(t).astype(np.int64)
    frac = t - i0
    i0 = np.where(fine.periodic, i0 % shape, np.clip(i0, 0, shape - 2))
    return i0, frac


def _corners(i0: np.ndarray, frac: np.ndarray, fine: _FineGrid):
    """Per corner of the cell around each point: flat fine-grid index and multilinear weight."""
    shape = np.asarray(fine.shape)
    for corner in itertools.product((0, 1), repeat=len(fine.shape)):
        idx = i0 + np.asarray(corner)
        idx = np.where(fine.periodic, idx % shape, idx)
        weight = np.prod(np.where(np.asarray(corner) == 1, frac, 1.0 - frac), axis=1)
        yield np.ravel_multi_index(tuple(idx.T), fine.shape), weight


def _kernel_spectrum(fine: _FineGrid, sigma: np.ndarray) -> np.ndarray:
    """rfftn of the circular, unnormalised Gaussian on the fine grid, as an outer product of per-CV spectra."""
    spec = None
    for d, n in enumerate(fine.shape):
        off = np.minimum(np.arange(n), n - np.arange(n)) * fine.spacing[d]
        if fine.periodic[d]:  # every image within reach of the period
            period = n * fine.spacing[d]
            off = np.abs(off[None, :] + period * np.arange(-3, 4)[:, None])
            k = np.exp(-0.5 * (off / sigma[d]) ** 2).sum(axis=0)
        else:
            k = np.exp(-0.5 * (off / sigma[d]) ** 2)
        f = np.fft.rfft(k).real if d == len(fine.shape) - 1 else np.fft.fft(k).real  # symmetric: real spectrum
        spec = f if spec is None else np.multiply.outer(spec, f)
    return spec


class _CpuNodes:
    """Node sums on the CPU: linear binning in C (cyfes.engine._cpu.bin_linear), then an FFT convolution (numpy)."""

    def __init__(self, data: np.ndarray, logw: np.ndarray, sigma: np.ndarray) -> None:
        self.data = np.ascontiguousarray(data, dtype=np.float64)
        self.logw = np.ascontiguousarray(logw, dtype=np.float64)
        self.top, self.sigma = float(logw.max()), sigma

    def __call__(self, fine: _FineGrid) -> np.ndarray:
        bins = np.zeros(int(np.prod(fine.shape)))
        backends.cpu_module().bin_linear(
            self.data, self.logw, self.top, np.asarray(fine.shape, dtype=np.int64), fine.origin, fine.spacing,
            fine.periodic.astype(np.intc), bins)
        spectrum = _kernel_spectrum(fine, self.sigma)
        return np.fft.irfftn(np.fft.rfftn(bins.reshape(fine.shape)) * spectrum, s=fine.shape,
                             axes=list(range(len(fine.shape))))


class _GpuNodes:
    """Node sums on GPUs (cuda/binned.cu): atomic linear binning, then direct convolutions per CV with the
    Gaussian's taps within GPU_REACH_SIGMAS (periodic CVs wrap; the grid's padding keeps the ends empty). Several
    GPUs take a share of the samples each (binning and convolution are linear: the shares' sums add up)."""

    def __init__(self, data: np.ndarray, logw: np.ndarray, sigma: np.ndarray, devices: Sequence[int]) -> None:
        self.data = np.ascontiguousarray(data, dtype=np.float64)
        self.logw = np.ascontiguousarray(logw, dtype=np.float64)
        self.top, self.sigma, self.devices = float(logw.max()), sigma, list(devices)

    def __call__(self, fine: _FineGrid) -> np.ndarray:
        gpu, shares = backends.gpu_module(), {}

        def work(dev: int, lo: int, hi: int) -> None:
            out = np.empty(fine.shape)
            gpu.binned_density(self.data[lo:hi], self.logw[lo:hi], self.top, np.asarray(fine.shape, dtype=np.int64),
                               fine.origin, fine.spacing, fine.periodic.astype(np.intc), self.sigma,
                               GPU_REACH_SIGMAS, out.reshape(-1), dev)
            shares[lo] = out  # by where the share starts: one device may take two shares

        backends.each_gpu(self.devices, len(self.data), work)
        return functools.reduce(np.add, [shares[lo] for lo in sorted(shares)])  # in sample order


def _density(nodes: Callable[[_FineGrid], np.ndarray], span: Range, points: np.ndarray, sigma: np.ndarray,
             period: np.ndarray, spacing: np.ndarray) -> tuple[np.ndarray, float]:
    """The binned density at `points` and its peak on the fine grid."""
    fine = _fine_grid(span, sigma, period, spacing)
    flat_dens = nodes(fine).reshape(-1)
    i0, frac = _positions(points, fine)
    out = np.zeros(len(points))
    for flat, w in _corners(i0, frac, fine):
        out += w * flat_dens[flat]
    return out, float(flat_dens.max())


def log_density(data: np.ndarray, logw: np.ndarray, points: np.ndarray, sigma: Sequence[float],
                period: np.ndarray, gpus: Sequence[int] = ()) -> Binned:
    """The binned estimate of log sum_j exp(logw_j - max logw) K(x - s_j) at `points` (finite logw only); on
    the GPUs `gpus` when given (the samples split between as many as have GPU_SHARE each), else on the CPU."""
    sigma = np.asarray(sigma, dtype=np.float64)
    gpus = list(gpus)[:max(1, len(data) // GPU_SHARE)]
    nodes = _GpuNodes(data, logw, sigma, gpus) if gpus else _CpuNodes(data, logw, sigma)
    span = inputs.joint_range(inputs.column_range(data), inputs.column_range(points))
    spacing = _spacing(span, sigma, period)
    fine_rho, peak = _density(nodes, span, points, sigma, period, spacing)
    coarse_rho, _ = _density(nodes, span, points, sigma, period, 2.0 * spacing)
    ok = fine_rho > RELIABLE * peak
    with np.errstate(divide="ignore", invalid="ignore"):
        log_fine = np.where(ok, np.log(np.where(ok, fine_rho, 1.0)), np.nan)
        gap = np.abs(log_fine - np.log(np.maximum(coarse_rho, 1e-300)))[ok]
    roundoff = 1e-15 * math.log2(max(2, fine_rho.size)) / RELIABLE
    estimate = SAFETY * float(gap.max(initial=0.0)) / 3.0 + roundoff
    return Binned(log_fine, estimate)


def unreliable(result: Binned) -> np.ndarray:
    return np.flatnonzero(np.isnan(result.log_density))


__all__: list[str] = ["Binned", "log_density", "unreliable"]
