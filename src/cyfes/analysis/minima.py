"""Local minima of a surface and their depths.

A local minimum is a grid point lower than each of its face neighbours (2 per CV, wrapping along a periodic CV;
ties in F broken by grid index). Its depth is the F of the lowest saddle on any path to a lower minimum, minus its
own F (infinite for the lowest minimum, and for one no finite path leaves). Minima shallower than `min_depth`
(default DEFAULT_DEPTH_KT = 2 kT, in the result's units) are noise: they are left out here and merged into the
basin across their lowest saddle by basins(). min_depth=0 keeps every strict local minimum.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _grid

DEFAULT_DEPTH_KT = _grid.DEFAULT_DEPTH_KT


@dataclass(frozen=True)
class Minimum:
    """A local minimum: its grid coordinates, F there, its depth (inf for the lowest) and the lowest saddle that
    leaves it (coordinates, or None), all energies in the result's units; index: the grid index."""

    coordinates: tuple[float, ...]
    free_energy: float
    depth: float
    saddle: tuple[float, ...] | None
    index: tuple[int, ...]


def minima(result: Any, min_depth: float | None = None) -> list[Minimum]:
    """The local minima at least `min_depth` deep, lowest F first."""
    ws = _grid.watershed_of(result, "minima")
    threshold = _grid.noise_threshold(result, min_depth)
    _, kept = _grid.kept_labels(ws, threshold)
    out = []
    for k in kept.tolist():
        point = int(ws.minima[k])
        saddle = int(ws.saddle[k])
        out.append(Minimum(_grid.coordinates(result, point), float(ws.values[point]), float(ws.depth[k]),
                           _grid.coordinates(result, saddle) if saddle >= 0 else None,
                           tuple(int(i) for i in np.unravel_index(point, ws.shape))))
    return out
