"""What people judge and ask of a free energy surface. Pure functions of an FESResult: nothing here reads or
writes files or prints.

    _estimates   effective sample sizes, Silverman's bandwidth, marginals, weighted block errors, running surfaces
    minima       local minima and their depths (lowest saddle to a lower minimum), shallow ones as noise
    basins       every grid point in a basin; per basin its minimum, -kT ln(population), Delta F, block errors
    regions      Delta F between boxes, basins or any boolean function of the CVs; Delta F against time
    path         the minimum free energy path and barrier between two minima (grid minimax + string method)
    scans        convergence: F error, Delta F and barrier against the block count and against sigma

The functions minima, basins and path are named like their modules and, imported here, take those names in this
package: `cyfes.analysis.basins` is the function; import a module's other names from it directly
(`from cyfes.analysis.basins import point_labels`).
"""
from __future__ import annotations

from ..engine.stats import kish
from ._estimates import cv_index as cv_index  # for the commands (not in __all__: an internal helper)
from ._estimates import logsumexp, marginal, running, silverman, weighted_block_error
from ._estimates import merge_spreads as merge_spreads  # --sigma auto over chunks (internal, as cv_index)
from ._estimates import silverman_of as silverman_of
from ._estimates import spread_of as spread_of
from ._grid import wraps as wraps  # for the commands: which CVs of a grid wrap (not in __all__)
from .basins import Basin, Basins, basin_of, basins
from .minima import DEFAULT_DEPTH_KT, Minimum, minima
from .path import Path, path
from .regions import DeltaFTrace, RegionDeltaF, delta_f, delta_f_of, delta_f_regions, delta_f_trace, region_mask
from .scans import BlockScanPoint, SigmaScanPoint, block_scan, sigma_scan

__all__ = ["logsumexp", "kish", "silverman", "marginal", "weighted_block_error", "running", "delta_f", "delta_f_of",
           "delta_f_regions", "delta_f_trace", "region_mask", "RegionDeltaF", "DeltaFTrace", "minima", "Minimum",
           "DEFAULT_DEPTH_KT", "basins", "Basins", "Basin", "basin_of", "path", "Path", "block_scan", "sigma_scan",
           "BlockScanPoint", "SigmaScanPoint"]
