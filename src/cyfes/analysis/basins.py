"""Basins: every grid point assigned to the basin of a minimum, and each basin's free energy.

A point belongs to the raw basin its steepest descent ends in (the lowest face neighbour, step by step); a raw
basin whose minimum is shallower than `min_depth` (see minima) joins the basin across its lowest saddle. Per
basin:

    free energy        F_B = -kT ln sum_{x in B} e^{-F(x)/kT} dV     dV the grid cell's volume
    population         sum_{x in B} e^{-F/kT} / sum_{all finite x} e^{-F/kT}
    delta_f            F_B - F_B0, B0 the lowest basin (basins are numbered by F_B, lowest first)

With blocks (a surface from samples, blocks > 1) each of these is computed on every block's surface with the
same assignment of points, and `error` / `delta_f_error` are the standard errors of the block values
(std with ddof 1 over sqrt(blocks), as the surface's own error); `population_error` likewise. Without blocks
they are NaN.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _grid


@dataclass(frozen=True)
class Basin:
    """One basin: label (0 = lowest F_B), minimum (coordinates) and F there, free_energy F_B with its block
    error, delta_f to basin 0 with its block error, population (fraction of the surface's weight), points (grid
    points in it) and the depth of its minimum."""

    label: int
    minimum: tuple[float, ...]
    minimum_free_energy: float
    free_energy: float
    error: float
    delta_f: float
    delta_f_error: float
    population: float
    points: int
    depth: float
    #: The population's block standard error (NaN without blocks).
    population_error: float = math.nan


@dataclass(frozen=True)
class Basins:
    """The basins of a surface (`records`, lowest F_B first) and `labels`: each grid point's basin, shaped like the
    surface (-1 where F is not finite)."""

    records: tuple[Basin, ...]
    labels: np.ndarray

    def __iter__(self) -> Any:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, k: int) -> Basin:
        return self.records[k]


def point_labels(result: Any, min_depth: float | None = None) -> tuple[np.ndarray, np.ndarray, _grid.Watershed]:
    """(flat label per grid point, numbered in raw-basin order, -1 outside; the kept raw basins; the watershed)."""
    ws = _grid.watershed_of(result, "basins")
    roots, kept = _grid.kept_labels(ws, _grid.noise_threshold(result, min_depth))
    number = np.full(len(ws.minima), -1, dtype=np.int64)
    number[kept] = np.arange(len(kept))
    labels = np.where(ws.raw >= 0, number[roots[np.maximum(ws.raw, 0)]], -1)
    return labels, kept, ws


def basin_free_energies(flat: np.ndarray, labels: np.ndarray, count: int, kT: float, volume: float) -> np.ndarray:
    """-kT ln sum_{x in B} e^{-F/kT} dV per basin B (inf for a basin with no mass), in log space."""
    inside = (labels >= 0) & np.isfinite(flat)
    if not inside.any():
        return np.full(count, math.inf)
    top = float(flat[inside].min())
    sums = np.bincount(labels[inside], weights=np.exp(-(flat[inside] - top) / kT), minlength=count)
    with np.errstate(divide="ignore"):
        return top - kT * (np.log(sums) + math.log(volume))


def basins(result: Any, min_depth: float | None = None) -> Basins:
    labels, kept, ws = point_labels(result, min_depth)
    kT, volume, count = float(result.kT), _grid.cell_volume(result), len(kept)
    energy = basin_free_energies(ws.values, labels, count, kT, volume)
    order = np.argsort(energy, kind="stable")
    renumber = np.empty(count, dtype=np.int64)
    renumber[order] = np.arange(count)
    labels = np.where(labels >= 0, renumber[np.maximum(labels, 0)], -1)
    energy = energy[order]
    total = energy[0] - kT * math.log(np.exp(-(energy - energy[0]) / kT).sum())  # every basin together
    per_block = _block_energies(result, labels, count)
    sizes = np.bincount(labels[labels >= 0], minlength=count)
    records = []
    for b in range(count):
        raw = int(kept[order[b]])
        point = _lowest(ws.values, labels, b, int(ws.minima[raw]))
        err = dferr = perr = math.nan
        if per_block is not None:
            err = _grid.standard_error(per_block[:, b])
            dferr = _grid.standard_error(per_block[:, b] - per_block[:, 0]) if b else 0.0
            perr = _grid.standard_error(_populations(per_block, kT)[:, b])
        records.append(Basin(b, _grid.coordinates(result, point), float(ws.values[point]), float(energy[b]), err,
                             float(energy[b] - energy[0]), dferr,
                             float(math.exp(-(energy[b] - total) / kT)), int(sizes[b]),
                             float(ws.depth[raw]), perr))
    return Basins(tuple(records), labels.reshape(ws.shape))


def _lowest(flat: np.ndarray, labels: np.ndarray, b: int, guess: int) -> int:
    """The basin's lowest point (its kept minimum; merged noise never lies lower, but a tie may)."""
    return guess if labels[guess] == b else int(np.flatnonzero(labels == b)[np.argmin(flat[labels == b])])


def _populations(energies: np.ndarray, kT: float) -> np.ndarray:
    """Per row (a block) each basin's share of the total weight, from the basins' free energies."""
    with np.errstate(invalid="ignore", over="ignore"):
        rel = np.exp(-(energies - np.nanmin(np.where(np.isfinite(energies), energies, np.nan), axis=1,
                                            keepdims=True)) / kT)
    return rel / rel.sum(axis=1, keepdims=True)


def _block_energies(result: Any, labels: np.ndarray, count: int) -> np.ndarray | None:
    blocks = _grid.block_surfaces(result)
    if blocks is None:
        return None
    kT, volume = float(result.kT), _grid.cell_volume(result)
    return np.array([basin_free_energies(f, labels, count, kT, volume) for f in blocks])


def basin_of(result: Any, samples: Any, min_depth: float | None = None) -> np.ndarray:
    """Each sample's basin label (as basins() numbers them) by its nearest grid point; -1 for a sample outside
    the grid or on a point of no basin."""
    found = basins(result, min_depth)
    cells = _grid.nearest_cells(result, samples)
    flat = found.labels.ravel()
    return np.where(cells >= 0, flat[np.maximum(cells, 0)], -1)
