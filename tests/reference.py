"""An independent float64 numpy reference for cyfes, written from the math alone (no cyfes code).

    F(x) = -kT ln( sum_j w_j prod_d N(x_d - s_jd; sigma_d) / sum_j w_j ),  w_j = weight_j * exp(V_j / kT)

with the nearest periodic image for periodic CVs. Grid points are processed in chunks so the (M, N)
exponent matrix stays small; the log-sum-exp is taken with the exact maximum of each row.
"""
from __future__ import annotations

import os
import signal
import stat
import subprocess
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

KB = {"kJ/mol": 0.0083144626181532, "kcal/mol": 0.0019872042586408316}  # CODATA 2018 k_B * N_A per K


def log_kernel_sum(samples: np.ndarray, logw: np.ndarray, grid: np.ndarray, sigma: np.ndarray,
                   period: Optional[np.ndarray] = None, chunk: int = 256) -> np.ndarray:
    """log sum_j exp(logw_j) prod_d N(grid_d - s_jd; sigma_d), for every grid row (float64)."""
    samples, grid = np.asarray(samples, float), np.asarray(grid, float)
    sigma = np.broadcast_to(np.asarray(sigma, float), (samples.shape[1],))
    log_norm = -np.sum(np.log(sigma * np.sqrt(2 * np.pi)))
    out = np.empty(len(grid))
    for lo in range(0, len(grid), chunk):
        diff = grid[lo:lo + chunk, None, :] - samples[None, :, :]
        if period is not None:
            p = np.asarray(period, float)
            wrapped = diff - p * np.round(diff / np.where(p > 0, p, 1.0))
            diff = np.where(p > 0, wrapped, diff)
        expo = logw[None, :] - 0.5 * np.sum((diff / sigma) ** 2, axis=2)
        top = expo.max(axis=1, keepdims=True)
        out[lo:lo + chunk] = top[:, 0] + np.log(np.exp(expo - top).sum(axis=1))
    return out + log_norm


def log_weights(n: int, bias: Optional[np.ndarray], weights: Optional[np.ndarray], kT: float) -> np.ndarray:
    logw = np.zeros(n)
    if bias is not None:
        logw = logw + np.asarray(bias, float) / kT
    if weights is not None:
        with np.errstate(divide="ignore"):
            logw = logw + np.log(np.asarray(weights, float))
    return logw


def free_energy(samples: np.ndarray, sigma: Sequence[float], grid: np.ndarray, *, bias=None, weights=None,
                temperature: float = 300.0, units: str = "kJ/mol", period=None, shift: bool = True) -> np.ndarray:
    """F on the explicit grid, in `units`; shifted so min F = 0 when `shift`."""
    samples = np.asarray(samples, float).reshape(len(samples), -1)
    kT = KB[units] * temperature
    logw = log_weights(len(samples), bias, weights, kT)
    keep = np.isfinite(logw)
    samples, logw = samples[keep], logw[keep]
    top = logw.max()
    log_z = top + np.log(np.exp(logw - top).sum())
    f = -kT * (log_kernel_sum(samples, logw, np.asarray(grid, float).reshape(len(grid), -1), np.asarray(sigma),
                              period) - log_z)
    return f - f.min() if shift else f


def block_error(samples, sigma, grid, nblocks: int, **kw) -> np.ndarray:
    """Standard error of F over `nblocks` contiguous blocks of samples (np.array_split), each block's F
    unshifted: std(ddof=1) / sqrt(nblocks)."""
    n = len(samples)
    parts = np.array_split(np.arange(n), nblocks)
    per = []
    for ids in parts:
        sub = {k: (v[ids] if k in ("bias", "weights") and v is not None else v) for k, v in kw.items()}
        per.append(free_energy(np.asarray(samples)[ids], sigma, grid, shift=False, **sub))
    return np.std(per, axis=0, ddof=1) / np.sqrt(nblocks)


def regular_grid(axes: Sequence[np.ndarray]) -> np.ndarray:
    """(M, D) points of a regular grid in matrix ('ij') order."""
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)

def tree(root: Path) -> Dict[str, Tuple[int, bytes]]:
    """Every entry under `root`, hidden ones too: path -> (mode, content or link target)."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            body = os.readlink(path).encode()
        elif stat.S_ISREG(st.st_mode):
            body = path.read_bytes()
        else:
            body = b""
        out[str(path.relative_to(root))] = (st.st_mode, body)
    return out


def hills_at_points(points, counts, centers, heights, period, widths=None, metrics=None, stretched=True):
    """float64: sum over hills i < counts[j] of h_i k_i(points[j]), one hill at a time; k = A e^-s + B (stretched,
    PLUMED's) or e^-s, cut at s = 6.25, s = 1/2 |d / sigma|^2 or 1/2 d^T M d, d the minimum image."""
    cut = 6.25
    a = 1.0 / (1.0 - np.exp(-cut)) if stretched else 1.0
    b = -np.exp(-cut) * a if stretched else 0.0
    points = np.asarray(points, dtype=np.float64)
    period = np.asarray(period, dtype=np.float64)
    out = np.zeros(len(points))
    for i in range(len(centers)):
        d = points - centers[i]
        wrap = period > 0
        d[:, wrap] -= period[wrap] * np.round(d[:, wrap] / period[wrap])
        s = 0.5 * (np.einsum("pi,ij,pj->p", d, metrics[i], d) if metrics is not None
                   else ((d / widths[i]) ** 2).sum(axis=1))
        k = np.where(s < cut, a * np.exp(-s) + b, 0.0)
        out += np.where(i < np.asarray(counts), heights[i] * k, 0.0)
    return out


def foreground(argv: list, cwd: Path) -> subprocess.Popen:
    """`argv` started as a terminal's foreground job would be: SIGINT at its default, which Python turns into
    KeyboardInterrupt. A test runner started in the background of a non-interactive shell has SIGINT ignored and
    its children inherit that (POSIX; nohup and `cmd &` rely on it), so cyfes would rightly never see the signal."""
    return subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
