"""Umbrella sampling: several windows, each run with its own static harmonic restraint, joined by MBAR.

Window k restrains the CVs with W_k(x) = sum_d kappa_kd / 2 (x_d - c_kd)^2, kappa in the run's energy unit, (nearest periodic image for a periodic
CV). pymbar's MBAR finds the window free energies f_k from the reduced biases u_k(x_j) = W_k(x_j) / kT of every
sample j in every window (the unbiased potential is common to all windows and cancels), and each sample gets the
unbiased weight

    w_j = 1 / sum_k N_k exp(f_k - u_k(x_j))          N_k the samples of window k

that cyfes.fes then reweights the kernel density with. pymbar is the optional dependency `cyfes[mbar]`.

A windows file (YAML) names the window files, their CV columns and each restraint:

    cv: [x]                    # CV column names (or 0-based indices), common to every window
    windows:
      - {file: w0.dat, centre: [-1.0], kappa: [200.0]}
      - {file: w1.dat, centre: [-0.8], kappa: [200.0]}

Instead of centre and kappa a window may list `biases: [col_1, ..., col_K]`, columns of its file holding every
window's bias energy at its samples (as PLUMED prints each restraint's bias), window order. Relative file names
are relative to the windows file. Windows whose samples leave a gap between them (no sample
range of one window meets the next's) have no overlap for MBAR to join, and are refused.
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import _units
from .._errors import InputError
from ..engine import fes as _api
from ..io import formats


@dataclass(frozen=True)
class Window:
    """One window: its samples (N_k, D), restraint centre and spring constant per CV (energy / CV unit^2); or,
    centre and kappa None, `biases` (N_k, K): every window's bias energy at this window's samples."""

    samples: np.ndarray
    centre: np.ndarray | None
    kappa: np.ndarray | None
    source: str = "<window>"
    biases: np.ndarray | None = None


@dataclass(frozen=True)
class WindowSet:
    """The windows of a windows file, their CV names and the window files."""

    windows: tuple[Window, ...]
    names: list[str]
    files: list[str]


def _displacement(x: np.ndarray, centre: np.ndarray, periods: Sequence[float | None]) -> np.ndarray:
    diff = x - centre
    for d, p in enumerate(periods):
        if p:
            diff[:, d] -= p * np.round(diff[:, d] / p)
    return diff


def reduced_biases(windows: Sequence[Window], kT: float, periods: Sequence[float | None] | None = None
                   ) -> np.ndarray:
    """u_kn: window k's restraint over kT at every sample n of every window, (K, N)."""
    if all(w.biases is not None for w in windows):
        table = np.concatenate([w.biases for w in windows])
        if table.shape[1] != len(windows):
            raise InputError(f"windows: each window needs {len(windows)} bias columns (one per window), "
                             f"got {table.shape[1]}")
        return table.T / kT
    if any(w.biases is not None for w in windows):
        raise InputError("windows: give every window centre and kappa, or every window bias columns; not a mix")
    x = np.concatenate([w.samples for w in windows])
    per = list(periods or [None] * x.shape[1])
    return np.array([0.5 * (w.kappa * _displacement(x, w.centre, per) ** 2).sum(axis=1) / kT for w in windows])


def _components(count: int, joined: np.ndarray) -> np.ndarray:
    """The connected group of each window, by union-find over the boolean (K, K) matrix `joined`."""
    group = list(range(count))

    def root(i: int) -> int:
        while group[i] != i:
            i = group[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(joined, 1))):
        group[root(int(i))] = root(int(j))
    return np.array([root(i) for i in range(count)])


def _split_message(windows: Sequence[Window], roots: np.ndarray, why: str) -> str:
    first = np.flatnonzero(roots == roots[0])
    other = int(np.flatnonzero(roots != roots[0])[0])
    return (f"windows: {windows[other].source} has no overlap with {windows[int(first[-1])].source} or any window "
            f"joined to it ({why}); add windows between them")


def check_overlap(windows: Sequence[Window]) -> None:
    """Refuse windows that fall into groups whose sample boxes (per CV min..max) never meet."""
    lo = np.array([w.samples.min(axis=0) for w in windows])
    hi = np.array([w.samples.max(axis=0) for w in windows])
    meet = ((lo[:, None, :] <= hi[None, :, :]) & (lo[None, :, :] <= hi[:, None, :])).all(axis=2)
    roots = _components(len(windows), meet)
    if len(set(roots.tolist())) > 1:
        raise InputError(_split_message(windows, roots, "their samples never meet"))


#: Least MBAR overlap matrix element that joins two windows well; Klimovich, Shirts and Mobley (J. Comput. Aided
#: Mol. Des. 2015) advise at least 0.03 between neighbouring states.
MIN_OVERLAP = 0.03


def warn_weak_overlap(windows: Sequence[Window], overlap: np.ndarray) -> None:
    """Warn (one line) when the windows joined by overlap >= MIN_OVERLAP fall into more than one group."""
    roots = _components(len(windows), np.asarray(overlap) >= MIN_OVERLAP)
    if len(set(roots.tolist())) > 1:
        warnings.warn(_split_message(windows, roots, f"MBAR overlap below {MIN_OVERLAP}").replace(
            "has no overlap", "has little overlap") + "; the weights across the gap are poorly determined",
            stacklevel=2)


def _import_pymbar() -> Any:
    """pymbar, imported without the banners it logs at import (no JAX, the timeseries caveat) on stderr."""
    log = logging.getLogger("pymbar")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        import pymbar  # deferred: pymbar is optional (cyfes[mbar])
    except ImportError:
        raise InputError("windows: MBAR needs pymbar, which is not installed; "
                         "install it with: pip install 'cyfes[mbar]'") from None
    finally:
        log.setLevel(level)
    return pymbar


def mbar_log_weights(windows: Sequence[Window], kT: float,
                     periods: Sequence[float | None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(log w_j for the concatenated samples, window free energies f_k in kT, f_0 = 0) by pymbar's MBAR."""
    if len(windows) < 2:
        raise InputError(f"windows: MBAR needs at least 2 windows, got {len(windows)}")
    check_overlap(windows)
    pymbar = _import_pymbar()
    u_kn = reduced_biases(windows, kT, periods)
    n_k = np.array([len(w.samples) for w in windows])
    try:
        mbar = pymbar.MBAR(u_kn, n_k, solver_protocol="robust")
    except pymbar.utils.ParameterError as exc:
        raise InputError(f"windows: MBAR refused the windows: {' '.join(str(exc).split())}") from None
    warn_weak_overlap(windows, mbar.compute_overlap()["matrix"])
    f_k = np.asarray(mbar.f_k, dtype=np.float64)
    expo = np.log(n_k)[:, None] + f_k[:, None] - u_kn
    top = expo.max(axis=0)
    return -(top + np.log(np.exp(expo - top).sum(axis=0))), f_k - f_k[0]


def fes(windows: Sequence[Window], sigma: Any, *, temperature: float = 300.0, units: str = "kJ/mol",
        periodic: Sequence[float | None] | None = None, **options: Any) -> Any:
    """The unbiased surface of umbrella windows: MBAR weights, then cyfes.fes (`options`: bins, ranges, ...)."""
    logw, _ = mbar_log_weights(windows, _units.kT(temperature, units), periodic)
    samples = np.concatenate([w.samples for w in windows])
    return _api.fes(samples, sigma, weights=np.exp(logw - logw.max()), temperature=temperature, units=units,
                    periodic=periodic, **options)


def _numbers(entry: dict, key: str, dim: int, where: str) -> np.ndarray:
    value = entry.get(key)
    if value is None:
        raise InputError(f"{where}: missing '{key}'")
    arr = np.atleast_1d(np.asarray(value, dtype=object))
    try:
        out = np.array([float(v) for v in arr])
    except (TypeError, ValueError):
        raise InputError(f"{where}: '{key}' must be a number or a list of {dim} numbers, got {value!r}") from None
    if len(out) == 1:
        out = np.full(dim, out[0])
    if len(out) != dim or not np.isfinite(out).all():
        raise InputError(f"{where}: '{key}' must be {dim} finite number(s) (one per CV), got {value!r}")
    return out


def _window(entry: Any, k: int, base: Path, cvs: list[Any], source: str,
            fmt: str | None) -> tuple[Window, list[str], str]:
    where = f"{source}: window {k + 1}"
    if not isinstance(entry, dict) or "file" not in entry:
        raise InputError(f"{where}: expected a mapping with file, centre and kappa")
    unknown = sorted(set(entry) - {"file", "centre", "center", "kappa", "biases"})
    if unknown:
        raise InputError(f"{where}: unknown key '{unknown[0]}' (known: file, centre, kappa, biases)")
    path = base / str(entry["file"])
    table = formats.read_table(path, fmt)
    cols = [table.column_index(str(c)) for c in cvs]
    x = np.asarray(table.data[:, cols], dtype=np.float64)
    if len(x) == 0:
        raise InputError(f"{path}: no samples")
    names = [table.names[c] for c in cols]
    if "biases" in entry:
        if "kappa" in entry or "centre" in entry or "center" in entry:
            raise InputError(f"{where}: give centre and kappa, or biases; not both")
        spec = entry["biases"]
        if not isinstance(spec, list) or not spec:
            raise InputError(f"{where}: 'biases' must list a bias column per window")
        biases = np.asarray(table.data[:, [table.column_index(str(c)) for c in spec]], dtype=np.float64)
        return Window(x, None, None, str(path), biases), names, str(path)
    centre = _numbers({**entry, "centre": entry.get("centre", entry.get("center"))}, "centre", len(cols), where)
    kappa = _numbers(entry, "kappa", len(cols), where)
    if (kappa < 0).any():
        raise InputError(f"{where}: 'kappa' must be >= 0, got {entry['kappa']!r}")
    return Window(x, centre, kappa, str(path)), names, str(path)


def read_windows(path: Any, fmt: str | None = None) -> WindowSet:
    """The windows file of the module docstring (needs pyyaml, part of cyfes[mbar]); `fmt`: the window files'
    table format (read_table's; default: told from each file's content)."""
    try:
        import yaml  # deferred: pyyaml is optional (cyfes[mbar])
    except ImportError:
        raise InputError("windows: reading a windows file needs pyyaml: pip install 'cyfes[mbar]'") from None
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise InputError(f"{p}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{p}: not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("windows"), list) or not doc["windows"]:
        raise InputError(f"{p}: expected a mapping with a non-empty 'windows' list")
    unknown = sorted(set(doc) - {"cv", "windows"})
    if unknown:
        raise InputError(f"{p}: unknown key '{unknown[0]}' (known: cv, windows)")
    cvs = doc.get("cv")
    cvs = [cvs] if isinstance(cvs, (str, int)) else cvs
    if not isinstance(cvs, list) or not cvs:
        raise InputError(f"{p}: 'cv' must name the CV column(s), e.g. cv: [x]")
    made = [_window(e, k, p.parent, cvs, str(p), fmt) for k, e in enumerate(doc["windows"])]
    return WindowSet(tuple(w for w, _, _ in made), made[0][1], [f for _, _, f in made])
