"""What people judge a reweighted free energy surface by: effective sample sizes, free energy differences,
marginal surfaces, and a bandwidth from the data.

    Kish's effective sample size       n_eff = (sum_j w_j)^2 / sum_j w_j^2
    effective number of blocks         the same over the blocks' total weights W_b = sum_{j in b} w_j
    Delta F at x_d = a                 (regions.py) -kT ln sum_{x_d > a} e^{-F/kT} + kT ln sum_{x_d < a} e^{-F/kT}
    marginal on CVs K                  -kT ln sum_{other CVs} e^{-F/kT}   (then shifted like F)
    weighted block error               kT sqrt( sum_b W_b expm1(-(F_b - F)/kT)^2 / sum_b W_b / (N_eff - 1) )
                                       (FES_from_Reweighting.py's), F_b each block's surface
    running surfaces                   after blocks 1..k: -kT ln sum_{b<=k} W_b e^{-F_b/kT} / sum_{b<=k} W_b
    Silverman's bandwidth per CV       sigma_d = s_d (4 / ((D + 2) n_eff))^(1/(D + 4)),  s_d the weighted standard
                                       deviation (circular for a periodic CV)
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .._errors import InputError
from ..engine.stats import logsumexp


@dataclass(frozen=True)
class Spread:
    """What Silverman's rule needs from a set of weighted samples, kept so that two disjoint sets merge exactly
    (Chan's update): the weights w_j = exp(logw_j - shift), their sum and sum of squares, per CV the weighted
    mean and sum of squared deviations, and per CV the weighted sums of cos and sin of 2 pi x / period (the
    circular spread of a periodic CV; 0 for the others)."""

    shift: float
    total: float
    squares: float
    mean: np.ndarray
    deviations: np.ndarray
    cos: np.ndarray
    sin: np.ndarray


def spread_of(samples: np.ndarray, logw: np.ndarray, periods: Sequence[float | None]) -> Spread | None:
    """The Spread of one set of samples (logw: log weights; -inf or not finite: left out); None when none counts."""
    x = np.asarray(samples, dtype=np.float64).reshape(len(samples), -1)
    keep = np.isfinite(logw)
    x, lw = x[keep], np.asarray(logw)[keep]
    if lw.size == 0:
        return None
    shift = float(lw.max())
    w = np.exp(lw - shift)
    total = float(w.sum())
    mean = (w @ x) / total
    angles = [2 * math.pi * x[:, d] / p if p else None for d, p in enumerate(_per_cv(periods, x.shape[1]))]
    trig = lambda f: np.array([float(w @ f(a)) if a is not None else 0.0 for a in angles])  # noqa: E731
    return Spread(shift, total, float(w @ w), mean, w @ (x - mean) ** 2, trig(np.cos), trig(np.sin))


def _per_cv(periods: Sequence[float | None], dim: int) -> list[float | None]:
    return [periods[d] if d < len(periods) else None for d in range(dim)]


def merge_spreads(a: Spread | None, b: Spread | None) -> Spread | None:
    """The Spread of the union of two disjoint sets (either may be None: no sample counts)."""
    if a is None or b is None:
        return a if b is None else b
    shift = max(a.shift, b.shift)
    fa, fb = math.exp(a.shift - shift), math.exp(b.shift - shift)
    wa, wb = a.total * fa, b.total * fb
    total = wa + wb
    delta = b.mean - a.mean
    return Spread(shift, total, a.squares * fa * fa + b.squares * fb * fb, a.mean + delta * (wb / total),
                  a.deviations * fa + b.deviations * fb + delta ** 2 * (wa * wb / total),
                  a.cos * fa + b.cos * fb, a.sin * fa + b.sin * fb)


def silverman_of(spread: Spread | None, periods: Sequence[float | None]) -> tuple[np.ndarray, float]:
    """(Silverman's bandwidth per CV, Kish's n_eff) from the Spread of every sample."""
    if spread is None:
        raise InputError("sigma auto: every sample has weight 0 (or a bias past float64); no bandwidth to choose")
    dim = len(spread.mean)
    n_eff = spread.total ** 2 / spread.squares
    values = []
    for d, p in enumerate(_per_cv(periods, dim)):
        if p:
            r = math.hypot(spread.cos[d], spread.sin[d]) / spread.total
            values.append(p / (2 * math.pi) * math.sqrt(-2 * math.log(max(r, 1e-300))))
        else:
            values.append(math.sqrt(max(float(spread.deviations[d]) / spread.total, 0.0)))
    sig = np.array(values) * (4.0 / ((dim + 2) * n_eff)) ** (1.0 / (dim + 4))
    if not (sig > 0).all():
        raise InputError("sigma auto: a CV does not vary over the samples; give --sigma explicitly")
    return sig, n_eff


def silverman(samples: np.ndarray, logw: np.ndarray, periods: Sequence[float | None]) -> np.ndarray:
    """Silverman's rule-of-thumb bandwidth per CV, with the weighted spread and Kish's n_eff."""
    return silverman_of(spread_of(samples, logw, periods), periods)[0]


def cv_index(result: Any, cv: Any) -> int:
    names = list(result.names or [f"cv{d + 1}" for d in range(result.dim)])
    if isinstance(cv, str) and cv in names:
        return names.index(cv)
    if isinstance(cv, (int, np.integer)) and not isinstance(cv, bool) and 0 <= int(cv) < result.dim:
        return int(cv)
    raise InputError(f"delta_f: {cv!r} is not one of the CVs ({', '.join(names)})")


def marginal(result: Any, keep: Sequence[Any]) -> Any:
    """The FES of the CVs in `keep` (names or indices), the others integrated out: -kT ln sum e^{-F/kT}."""
    if result.axes is None:
        raise InputError("marginal: needs a regular grid (bins), not explicit points")
    if not isinstance(keep, (str, int, np.integer, list, tuple, np.ndarray)) or isinstance(keep, bool):
        raise InputError(f"marginal: expected CV names or indices to keep, got {keep!r}")
    dims = [cv_index(result, k) for k in ([keep] if isinstance(keep, (str, int, np.integer)) else list(keep))]
    if not dims or len(set(dims)) != len(dims):
        raise InputError(f"marginal: name each CV to keep once, got {keep!r}")
    other = tuple(d for d in range(result.dim) if d not in dims)
    values = -result.kT * logsumexp(-result.values / result.kT, axis=other) if other else result.values
    order = [sorted(dims).index(d) for d in dims]
    values = np.transpose(values, order)
    if np.isfinite(values).any():
        values = values - np.nanmin(values)
    names = result.names or [f"cv{d + 1}" for d in range(result.dim)]
    return replace(result, values=values, axes=[result.axes[d] for d in dims], error=None,
                   sigma=np.asarray(result.sigma)[dims], periodic=[result.periodic[d] for d in dims],
                   names=[names[d] for d in dims], block_values=None, block_log_weights=None)


def _blocks_of(result: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    if getattr(result, "block_values", None) is None:
        raise InputError(f"{what}: needs a surface computed with blocks > 1")
    return np.asarray(result.block_values), np.asarray(result.block_log_weights)


def weighted_block_error(result: Any) -> np.ndarray:
    """FES_from_Reweighting.py's uncertainty from the weighted blocks (instead of the plain standard error)."""
    blocks, lw = _blocks_of(result, "weighted block error")
    kT = result.kT
    w = np.exp(lw - lw.max())
    n_eff = float(w.sum() ** 2 / (w ** 2).sum())
    shape = (-1,) + (1,) * (blocks.ndim - 1)
    with np.errstate(divide="ignore"):  # a block of negligible weight: log 0 = -inf counts for nothing
        f = -kT * logsumexp(np.log(w / w.sum()).reshape(shape) - blocks / kT, axis=0)
    if not n_eff > 1:  # one effective block: the formula divides by zero; the uncertainty is unbounded
        return np.full(blocks.shape[1:], np.inf)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        sq = np.expm1(-(blocks - f) / kT) ** 2
        err = kT * np.sqrt((w.reshape(shape) * sq).sum(axis=0) / w.sum() / (n_eff - 1))
    return np.where(np.isnan(err), np.inf, err)  # inf - inf where no block reaches a point


def running(result: Any) -> list:
    """The surfaces from blocks 1..k, k = 1..blocks (each shifted as the result is: min 0)."""
    blocks, lw = _blocks_of(result, "running surfaces")
    kT = result.kT
    out = []
    shape = (-1,) + (1,) * (blocks.ndim - 1)
    for k in range(1, len(blocks) + 1):
        rel = (lw[:k] - logsumexp(lw[:k])).reshape(shape)
        f = -kT * logsumexp(rel - blocks[:k] / kT, axis=0)
        out.append(f - np.nanmin(f))
    return out
