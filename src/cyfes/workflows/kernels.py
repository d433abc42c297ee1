"""The OPES state PLUMED rebuilds from a KERNELS file when it restarts from one (OPESmetad.cpp, RESTART without
STATE_RFILE): the route OPES' State_from_Kernels.py takes through `plumed driver` before FES_from_State.py.

Kernels are added in file order. Each new kernel merges into the compressed kernel nearest to it (distance in
units of that kernel's sigma, minimum image on periodic CVs) when that distance is below compression_threshold;
with recursive merging (PLUMED's default) the merged kernel then merges with its own nearest neighbour, and so on.
A merge keeps the total height and the height-weighted mean and variance per CV. Then

    sum_weights = epsilon^p + sum_n exp(logweight_n)   (p = 1 - 1/biasfactor, 1 for biasfactor inf; OPES_METAD)
    counter     = 1 + N                                (N deposited kernels; OPES_METAD_EXPLORE's norm)
    zed         = sum_k sum_j G_j(c_k) / norm / K      (G_j truncated at kernel_cutoff, over the K compressed)

so zed * norm, the normalisation FES_from_State.py divides by, is the mean of the compressed KDE at its centers.
"""
from __future__ import annotations

import numpy as np

from ..io.opes import OpesKernels, OpesState

#: Kernel pairs evaluated at once in the zed sum (float64 temporaries of this many values).
BLOCK_PAIRS = 1 << 22


def _wrap(diff: np.ndarray, periods: np.ndarray) -> np.ndarray:
    """The minimum image of each difference on periodic CVs (period 0: not periodic), as PLUMED's difference()."""
    p = np.where(periods > 0, periods, 1.0)
    return np.where(periods > 0, diff - p * np.floor(diff / p + 0.5), diff)


class Compressed:
    """The compressed kernels, grown as OPESmetad::addKernel does (same merge choice, same arithmetic), in
    buffers that double when full (a run deposits up to millions of kernels; each is one numpy pass)."""

    def __init__(self, dim: int, periods: np.ndarray, lows: np.ndarray, threshold: float) -> None:
        self.n = 0
        self._c, self._s, self._h = np.empty((64, dim)), np.empty((64, dim)), np.empty(64)
        self.periods, self.lows, self.threshold2 = periods, lows, threshold * threshold
        self.pcols = np.flatnonzero(periods > 0)  # the periodic CVs: only they need the minimum image
        self.pp = periods[self.pcols]

    centers = property(lambda self: self._c[:self.n])
    sigmas = property(lambda self: self._s[:self.n])
    heights = property(lambda self: self._h[:self.n])

    def nearest(self, x: np.ndarray, skip: int) -> int:
        """The first kernel at the smallest squared distance below threshold^2 from x (not `skip`), else -1."""
        if not self.n:
            return -1
        diff = x - self.centers
        if len(self.pcols):
            d = diff[:, self.pcols]
            diff[:, self.pcols] = d - self.pp * np.floor(d / self.pp + 0.5)
        diff /= self.sigmas
        norm2 = np.einsum("ij,ij->i", diff, diff)
        if skip >= 0:
            norm2[skip] = np.inf
        k = int(np.argmin(norm2))
        return k if norm2[k] < self.threshold2 else -1

    def merge(self, k: int, height: float, center: np.ndarray, sigma: np.ndarray) -> None:
        """Kernel (height, center, sigma) into kernel k (mergeKernels: k is moved next to it first on PBC)."""
        periodic = self.periods > 0
        c1 = np.where(periodic, center + _wrap(self._c[k] - center, self.periods), self._c[k])
        h1, s1 = self._h[k], self._s[k]
        h = h1 + height
        c = (h1 * c1 + height * center) / h
        ss = (h1 * (s1 * s1 + c1 * c1) + height * (sigma * sigma + center * center)) / h - c * c
        half = self.lows + self.periods / 2
        self._c[k] = np.where(periodic, half + _wrap(c - half, self.periods), c)
        self._s[k], self._h[k] = np.sqrt(ss), h

    def _append(self, height: float, center: np.ndarray, sigma: np.ndarray) -> None:
        if self.n == len(self._h):
            self._c, self._s = np.concatenate([self._c, self._c]), np.concatenate([self._s, self._s])
            self._h = np.concatenate([self._h, self._h])
        self._c[self.n], self._s[self.n], self._h[self.n] = center, sigma, height
        self.n += 1

    def _erase(self, k: int) -> None:
        """Remove kernel k, keeping the order of the rest (as std::vector::erase: indices matter for ties)."""
        for a in (self._c, self._s, self._h):
            a[k:self.n - 1] = a[k + 1:self.n].copy()
        self.n -= 1

    def add(self, height: float, center: np.ndarray, sigma: np.ndarray, recursive: bool) -> None:
        taker = self.nearest(center, -1) if self.threshold2 else -1
        if taker < 0:
            self._append(height, center, sigma)
            return
        self.merge(taker, height, center, sigma)
        giver = taker
        taker = self.nearest(self._c[giver], giver) if recursive else -1
        while taker >= 0:
            taker, giver = min(taker, giver), max(taker, giver)  # the lower index takes (saves time erasing)
            self.merge(taker, self._h[giver], self._c[giver].copy(), self._s[giver].copy())
            self._erase(giver)
            giver = taker
            taker = self.nearest(self._c[giver], giver)


def mean_density(c: Compressed, cutoff: float) -> float:
    """sum_k sum_j G_j(c_k) / K: the compressed KDE (truncated kernels, no norm) averaged over its centers."""
    at_cutoff = np.exp(-0.5 * cutoff * cutoff)
    block = max(1, BLOCK_PAIRS // len(c.heights))
    total = 0.0
    for start in range(0, len(c.heights), block):
        x = c.centers[start:start + block]
        d2 = np.sum((_wrap(x[:, None, :] - c.centers[None], c.periods) / c.sigmas[None]) ** 2, axis=2)
        total += float(np.sum(np.where(d2 < cutoff * cutoff, c.heights * (np.exp(-0.5 * d2) - at_cutoff), 0.0)))
    return total / len(c.heights)


def _prefactor(kernels: OpesKernels) -> float:
    if kernels.sets["biasfactor"].lower() == "inf":
        return 1.0
    gamma = kernels.number("biasfactor")
    return gamma - 1 if kernels.explore else 1 - 1 / gamma


def to_state(kernels: OpesKernels, recursive: bool = True) -> OpesState:
    """The state PLUMED writes right after restarting from these kernels (STATE_WFILE of that restart)."""
    dim = len(kernels.names)
    periods = np.array([d[1] - d[0] if d else 0.0 for d in kernels.domains])
    lows = np.array([d[0] if d else 0.0 for d in kernels.domains])
    c = Compressed(dim, periods, lows, kernels.number("compression_threshold"))
    for n in range(len(kernels.heights)):
        c.add(float(kernels.heights[n]), kernels.centers[n].copy(), kernels.sigmas[n].copy(), recursive)
    epsilon = kernels.number("epsilon")
    sum_weights = epsilon ** _prefactor(kernels) + float(np.sum(np.exp(kernels.logweights)))
    counter = 1 + len(kernels.heights)
    norm = counter if kernels.explore else sum_weights
    zed = mean_density(c, kernels.number("kernel_cutoff")) / norm
    sets = dict(kernels.sets, action=kernels.sets["action"].replace("_kernels", "_state"), zed=repr(zed),
                sum_weights=repr(sum_weights), counter=str(counter))
    times = np.full(len(c.heights), kernels.times[-1])
    return OpesState(list(kernels.names), c.centers.copy(), c.sigmas.copy(), c.heights.copy(), sets,
                     list(kernels.domains), 1, kernels.source, times)
