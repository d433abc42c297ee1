"""Sums of weights in log space, the one place cyfes computes them: log-sum-exp and Kish's effective sample size.

Used by the engine (normalisation, block weights) and re-exported by cyfes.analysis (`cyfes.analysis.logsumexp`,
`cyfes.analysis.kish`) and the workflows."""
from __future__ import annotations

from typing import Any

import numpy as np


def logsumexp(a: Any, axis: Any = None) -> Any:
    """log(sum(exp(a))) along `axis` (None: over all of `a`, a float), without overflow; all -inf gives -inf.

    Examples
    --------
    >>> float(logsumexp(np.array([1000.0, 1000.0])) - 1000.0)  # doctest: +ELLIPSIS
    0.693147...
    """
    a = np.asarray(a, dtype=np.float64)
    if isinstance(axis, int) and a.shape[axis] == 1:  # one term: itself (exp and log of every point cost ~10 ms at 1e6)
        return np.squeeze(a, axis)
    top = np.max(a, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)  # all -inf: the sum is 0, its log -inf (not -inf - -inf = nan)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(a - top), axis=axis, keepdims=True)) + top
    return np.squeeze(out, axis=axis) if axis is not None else float(out.ravel()[0])


def kish(logw: Any) -> float:
    """Kish's effective sample size (sum w)^2 / sum w^2 of weights exp(logw) (logw = -inf counts for nothing).

    Examples
    --------
    >>> kish(np.log([1.0, 1.0, 2.0]))  # (1 + 1 + 2)^2 / (1 + 1 + 4)
    2.6666666666666665
    """
    lw = np.asarray(logw, dtype=np.float64)
    lw = lw[np.isfinite(lw)]
    if lw.size == 0:  # no sample has weight: nothing counts
        return 0.0
    w = np.exp(lw - lw.max())
    return float(w.sum() ** 2 / (w ** 2).sum())


def kish_of_sums(log_z: Any, log_z2: Any) -> float:
    """Kish's effective sample size from per-part sums: log_z[k] = log sum w, log_z2[k] = log sum w^2 of part k."""
    return float(np.exp(2 * logsumexp(log_z) - logsumexp(log_z2)))
