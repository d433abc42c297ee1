"""FESResult: a free energy surface and what it was computed from, as `cyfes.fes` and `cyfes.hills` return it.

The engine's one output type. Its methods that save, read, plot or analyse a surface hand it to the rooms above the
engine (cyfes.io, cyfes.analysis), imported inside each method as pandas' DataFrame.to_csv imports its writer: the
engine itself never loads them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import _units
from .._errors import InputError
from . import truncated


@dataclass
class FESResult:
    """A free energy surface, as `cyfes.fes` and `cyfes.hills` return it.

    Attributes
    ----------
    values : numpy.ndarray
        F on the grid, shape `bins` (regular grid, matrix indexing) or (M,) (explicit grid).
    axes : list of numpy.ndarray or None
        Per CV the grid coordinates of a regular grid, else None.
    grid : numpy.ndarray or None
        The (M, D) query points of an explicit grid, else None.
    error : numpy.ndarray or None
        Standard error of F per point from block averaging (blocks > 1), else None.
    kT : float
        The thermal energy, in `units`.
    units : str
        The energy unit of `values`, `error` and `kT`.
    temperature : float
        The temperature in K.
    backend : str
        Where it ran, e.g. ``"cuda:0"`` or ``"cpu (2 threads)"``.
    precision : str
        The kernel's float type, ``"float64"`` or ``"float32"``.
    sigma : numpy.ndarray
        The kernel width per CV.
    periodic : list of float or None
        Per CV its period, or None.
    n_samples : int
        Samples summed (those of weight zero left out).
    blocks : int
        Blocks the samples were split into.
    names : list of str or None
        CV names, when given.
    ess, blocks_effective : float or None
        Kish's effective sample size (sum w)^2 / sum w^2, and the same over the blocks' total weights.
    block_values : numpy.ndarray or None
        F of each block (blocks > 1), each normalised on its own: shape (blocks,) + values.shape.
    block_log_weights : numpy.ndarray or None
        The log of each block's total weight sum_j w_j.
    bound : float
        The largest change of any F (kT) the samples left out of the sum could cause (0: every pair summed).
    pairs : int
        Sample-point pairs evaluated by the kernels.
    method : str
        ``"direct"`` (kernel sums) or ``"binned"`` (binning + FFT convolution).
    error_estimate : float or None
        With ``method="binned"``, the estimated largest abs(dF) (kT) against the direct sum; None otherwise.
    """

    values: np.ndarray
    axes: list[np.ndarray] | None
    grid: np.ndarray | None
    error: np.ndarray | None
    kT: float
    units: str
    temperature: float
    backend: str
    precision: str
    sigma: np.ndarray
    periodic: list[float | None]
    n_samples: int
    blocks: int = 1
    names: list[str] | None = None
    #: Kish's effective sample size (sum w)^2 / sum w^2 and the same over the blocks' total weights.
    ess: float | None = None
    blocks_effective: float | None = None
    #: F of each block (blocks > 1), each normalised on its own: shape (blocks,) + values.shape; and the log of
    #: each block's total weight sum_j w_j.
    block_values: np.ndarray | None = None
    block_log_weights: np.ndarray | None = None
    #: The largest change of any F (kT) that the samples left out of the sum could cause (0: every pair summed).
    bound: float = 0.0
    #: Sample-point pairs evaluated by the kernels.
    pairs: int = 0
    #: "direct" (kernel sums) or "binned" (binning + FFT convolution).
    method: str = "direct"
    #: method="binned": estimated largest |dF| (kT) against the direct sum on the grid; None otherwise.
    error_estimate: float | None = None

    @property
    def dim(self) -> int:
        """The number of CVs."""
        return len(self.axes) if self.axes is not None else int(self.grid.shape[1])

    def points(self) -> np.ndarray:
        """All grid points as one array.

        Returns
        -------
        numpy.ndarray
            The (M, D) grid points, in the order of ``values.ravel()``.

        Examples
        --------
        >>> import numpy as np
        >>> import cyfes
        >>> res = cyfes.fes(np.zeros((1, 2)), 1.0, bins=(2, 3), ranges=[(0, 1), (0, 2)], device="cpu")
        >>> res.points()
        array([[0., 0.],
               [0., 1.],
               [0., 2.],
               [1., 0.],
               [1., 1.],
               [1., 2.]])
        """
        if self.grid is not None:
            return self.grid
        return truncated.grid_rows(self.axes)

    def save(self, path: str | Path, fmt: str | None = None) -> Path:
        """Write the surface to a file.

        Parameters
        ----------
        path : str or pathlib.Path
            The file to write. It is written under a temporary name and renamed, so it is complete or absent.
        fmt : str, optional
            The format: ``"grid"`` (PLUMED grid, as ``.grid``/``.fes``), ``"dat"`` (columns, as ``.dat``/``.txt``),
            ``"csv"``, ``"cube"`` (3 CVs) or ``"npz"``. Default: from the extension of `path`.

        Returns
        -------
        pathlib.Path
            The file written.

        Raises
        ------
        InputError
            An unknown format or extension, or a surface the format cannot hold.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> import numpy as np
        >>> import cyfes
        >>> res = cyfes.fes(np.zeros((1, 1)), 1.0, bins=3, ranges=[(-1, 1)], device="cpu")
        >>> out = res.save(pathlib.Path(tempfile.mkdtemp()) / "fes.csv")
        >>> np.loadtxt(out, delimiter=",", skiprows=1, usecols=1).round(4)
        array([1.2472, 0.    , 1.2472])
        """
        from ..io import formats  # deferred: a room above the engine (module docstring)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, (str, os.PathLike)) or isinstance(path, bytes):
            raise InputError(f"path: expected a file name (str or os.PathLike), got {path!r}")
        return formats.write_result(self, os.fspath(path), fmt)

    def delta_f(self, cv: Any, at: float) -> tuple[float, float | None]:
        """The free energy difference across a dividing value of one CV.

        Parameters
        ----------
        cv : str or int
            The CV, by name (`names`) or index.
        at : float
            The dividing value: grid points above it are one state, points below it the other.

        Returns
        -------
        delta : float
            -kT ln sum exp(-F/kT) over the points above `at` minus the same over the points below it.
        error : float or None
            Its standard error over the blocks (``blocks > 1``), else None.

        Raises
        ------
        InputError
            An explicit grid, an unknown CV, or `at` outside the grid.

        Examples
        --------
        Samples four times as dense right of zero as left of it: F differs by kT ln 4.

        >>> import math
        >>> import numpy as np
        >>> import cyfes
        >>> samples = np.r_[np.full(1, -1.0), np.full(4, 1.0)][:, None]
        >>> res = cyfes.fes(samples, 0.05, bins=41, ranges=[(-2, 2)], device="cpu")
        >>> delta, error = res.delta_f(0, 0.0)
        >>> round(delta / res.kT, 4), round(-math.log(4), 4), error
        (-1.3863, -1.3863, None)
        """
        from .. import analysis  # deferred: a room above the engine (module docstring)
        return analysis.delta_f(self, cv, at)

    def marginal(self, keep: Any) -> FESResult:
        """The surface of some CVs, the others integrated out.

        Parameters
        ----------
        keep : str, int or sequence of them
            The CVs to keep (names or indices), in the order wanted.

        Returns
        -------
        FESResult
            F = -kT ln sum exp(-F/kT) over the other CVs' grid points, shifted to a minimum of 0, without error
            bars.

        Raises
        ------
        InputError
            An explicit grid, an unknown CV, or a CV named twice.

        Examples
        --------
        >>> import numpy as np
        >>> import cyfes
        >>> samples = np.random.default_rng(0).normal(size=(500, 2))
        >>> res = cyfes.fes(samples, 0.3, bins=(20, 30), names=["x", "y"], device="cpu")
        >>> res.marginal("y").values.shape
        (30,)
        """
        from .. import analysis  # deferred: a room above the engine (module docstring)
        return analysis.marginal(self, keep)

    def plot(self, path: str | Path, **options: Any) -> Path:
        """Draw the surface into an image file: a curve (with its error band) in 1-D, filled contours in 2-D,
        slices in 3-D.

        Parameters
        ----------
        path : str or pathlib.Path
            The image file; its extension gives the format (``.png``, ``.pdf``, ``.svg``).
        **options
            ``title``, ``vmax`` (top of the colour scale, in `units`), ``levels`` (contour bands, 24),
            ``cmap`` (``"viridis"``), ``dpi`` (150) and ``size`` (inches).

        Returns
        -------
        pathlib.Path
            The file written.

        Raises
        ------
        CyfesError
            matplotlib is not installed (``pip install 'cyfes[plot]'``).
        InputError
            An explicit grid, more than 3 CVs, or an unknown image format.
        """
        from ..io import plot  # deferred: a room above the engine (module docstring)
        return plot.plot_result(self, path, **options)

    # Answers from the surface (cyfes.analysis; energies in the result's units, min_depth default 2 kT)
    def minima(self, min_depth: float | None = None) -> list:
        """The local minima of the surface, lowest first.

        Parameters
        ----------
        min_depth : float, optional
            A minimum counts only if its lowest saddle is at least this far above it (in `units`); default 2 kT.

        Returns
        -------
        list of cyfes.analysis.Minimum
            Per minimum its grid `coordinates`, `free_energy`, `depth` (inf for the lowest), the lowest `saddle`
            that leaves it and its grid `index`.

        Raises
        ------
        InputError
            An explicit grid, or a bad `min_depth`.

        Examples
        --------
        >>> import numpy as np
        >>> import cyfes
        >>> samples = np.r_[np.full(1, -1.0), np.full(4, 1.0)][:, None]  # four times as many at +1 as at -1
        >>> res = cyfes.fes(samples, 0.3, bins=41, ranges=[(-2, 2)], device="cpu")
        >>> [(m.coordinates, round(m.free_energy / res.kT, 4)) for m in res.minima()]
        [((1.0,), 0.0), ((-1.0,), 1.3863)]
        """
        from .. import analysis  # deferred: a room above the engine (module docstring)
        return analysis.minima(self, min_depth)

    def basins(self, min_depth: float | None = None) -> Any:
        """Every grid point assigned to the basin of a minimum, and each basin's free energy.

        Parameters
        ----------
        min_depth : float, optional
            A minimum counts only if its lowest saddle is at least this far above it (in `units`); default 2 kT.

        Returns
        -------
        cyfes.analysis.Basins
            `records`, lowest basin free energy first: per basin its `label`, `minimum`, `free_energy` with its
            block `error`, `delta_f` to basin 0 with its error, `population`, `points` and `depth`; and `labels`,
            each grid point's basin (-1 where F is not finite).

        Raises
        ------
        InputError
            An explicit grid, or a bad `min_depth`.

        Examples
        --------
        >>> import numpy as np
        >>> import cyfes
        >>> samples = np.r_[np.full(1, -1.0), np.full(4, 1.0)][:, None]  # four times as many at +1 as at -1
        >>> res = cyfes.fes(samples, 0.3, bins=41, ranges=[(-2, 2)], device="cpu")
        >>> [(b.label, b.minimum, round(b.delta_f / res.kT, 2), round(b.population, 2)) for b in res.basins()]
        [(0, (1.0,), 0.0, 0.8), (1, (-1.0,), 1.39, 0.2)]
        """
        from .. import analysis  # deferred: a room above the engine (module docstring)
        return analysis.basins(self, min_depth)

    def basin_of(self, samples: Any, min_depth: float | None = None) -> np.ndarray:
        """The basin of each sample, by its nearest grid point.

        Parameters
        ----------
        samples : array_like
            (N, D) CV values, or (N,) for one CV.
        min_depth : float, optional
            As for `basins`.

        Returns
        -------
        numpy.ndarray
            (N,) basin labels of `basins`; -1 off the grid or in no basin.
        """
        from .. import analysis  # deferred: a room above the engine (module docstring)
        return analysis.basin_of(self, samples, min_depth)

    def delta_f_regions(self, a: Any, b: Any, min_depth: float | None = None) -> Any:
        """The free energy difference between two regions of the surface.

        Delta F = -kT ln sum over b of exp(-F/kT) + kT ln sum over a of exp(-F/kT).

        Parameters
        ----------
        a, b : dict, int, callable or numpy.ndarray
            A region: a box ``{cv: (low, high)}`` (None leaves a side open; on a periodic CV low > high wraps),
            a basin label of `basins`, a function of the CVs' grid coordinates returning a boolean array, or a
            boolean array shaped like the surface.
        min_depth : float, optional
            As for `basins`, for basin labels.

        Returns
        -------
        cyfes.analysis.RegionDeltaF
            `value` in `units`, its block standard `error` (NaN without blocks) and the value on each block.

        Raises
        ------
        InputError
            An explicit grid, a region of no grid point of finite F, or a region in none of the forms above.

        Examples
        --------
        >>> import numpy as np
        >>> import cyfes
        >>> samples = np.r_[np.full(1, -1.0), np.full(4, 1.0)][:, None]  # four times as many at +1 as at -1
        >>> res = cyfes.fes(samples, 0.3, bins=41, ranges=[(-2, 2)], device="cpu")
        >>> round(res.delta_f_regions({0: (None, 0.0)}, {0: (0.0, None)}).value / res.kT, 2)  # about -ln 4
        -1.38
        """
        from .. import analysis  # deferred: a room above the engine (module docstring)
        return analysis.delta_f_regions(self, a, b, min_depth)

    def delta_f_trace(self, a: Any, b: Any, min_depth: float | None = None) -> Any:
        """The free energy difference between two regions from the first k blocks of samples, k = 1..blocks.

        Parameters
        ----------
        a, b : dict, int, callable or numpy.ndarray
            Regions, as for `delta_f_regions`.
        min_depth : float, optional
            As for `basins`.

        Returns
        -------
        cyfes.analysis.DeltaFTrace
            `samples` (how many samples the first k blocks hold) and `delta_f` (one value each): the convergence
            of Delta F with simulation time.

        Raises
        ------
        InputError
            A surface computed without ``blocks > 1``, or a bad region.
        """
        from .. import analysis  # deferred: a room above the engine (module docstring)
        return analysis.delta_f_trace(self, a, b, min_depth)

    def path(self, a: Any, b: Any, min_depth: float | None = None, refine: bool = False) -> Any:
        """The minimum free energy path between two minima, and the barrier along it.

        Parameters
        ----------
        a, b : int, cyfes.analysis.Minimum or sequence of float
            The ends: basin labels of `basins`, minima of `minima`, or coordinates (the basin they lie in).
        min_depth : float, optional
            As for `basins`.
        refine : bool, default False
            Relax the grid path with the string method.

        Returns
        -------
        cyfes.analysis.Path
            `points` (K, D) from `a` to `b` and `free_energy` along them, the `saddle` and its F, `barrier` =
            F(saddle) - F(a) and `barrier_reverse` = F(saddle) - F(b) with their block errors (NaN without
            blocks), the two ends' `basins`, and whether it was `refined`.

        Raises
        ------
        InputError
            An explicit grid, a basin that does not exist, an end in no basin, both ends in one basin, or no path
            of finite F between them.

        Examples
        --------
        >>> import numpy as np
        >>> import cyfes
        >>> samples = np.r_[np.full(1, -1.0), np.full(4, 1.0)][:, None]  # four times as many at +1 as at -1
        >>> res = cyfes.fes(samples, 0.3, bins=41, ranges=[(-2, 2)], device="cpu")
        >>> p = res.path(1, 0)
        >>> p.basins, round(p.barrier_reverse - p.barrier, 4), round(res.minima()[1].free_energy, 4)
        ((1, 0), 3.4579, 3.4579)
        """
        from .. import analysis  # deferred: a room above the engine (module docstring)
        return analysis.path(self, a, b, min_depth, refine)

    @classmethod
    def read(cls, path: str | Path, temperature: float | None = None, units: str | None = None,
             fmt: str | None = None) -> FESResult:
        """A surface from a grid file, for the analyses.

        Parameters
        ----------
        path : str or pathlib.Path
            A file in any format `save` writes (PLUMED grid, dat, csv, cube, npz).
        temperature : float, optional
            In K; default: what a ``.npz`` recorded, else 300.
        units : str, optional
            The energy unit of the file's values; default: what a ``.npz`` recorded, else ``"kJ/mol"``.
        fmt : str, optional
            The format, as for `save`; default: from the extension.

        Returns
        -------
        FESResult
            The surface on the file's regular grid (no samples: `n_samples` is 0); a PLUMED grid's periodic CV has
            the period of its points (no end point repeated).

        Raises
        ------
        InputError
            A file that is missing, unreadable or not a grid of the format.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> import numpy as np
        >>> import cyfes
        >>> samples = np.r_[np.full(1, -1.0), np.full(4, 1.0)][:, None]  # four times as many at +1 as at -1
        >>> res = cyfes.fes(samples, 0.3, bins=41, ranges=[(-2, 2)], device="cpu")
        >>> back = cyfes.FESResult.read(res.save(pathlib.Path(tempfile.mkdtemp()) / "fes.npz"))
        >>> bool(np.array_equal(back.values, res.values)), back.units, back.temperature
        (True, 'kJ/mol', 300.0)
        """
        from .. import analysis  # deferred: a room above the engine (module docstring)
        from ..io import formats  # deferred: a room above the engine (module docstring)
        grid = formats.read_grid(path, fmt)
        saved = grid.recorded
        temp = float(temperature if temperature is not None else saved.get("temperature", 300.0))
        unit = units if units is not None else saved.get("units", "kJ/mol")
        periods = saved.get("periods") or [len(a) * analysis._grid.spacing(a) if per else None
                                           for a, per in zip(grid.axes, grid.periodic or [False] * len(grid.axes))]
        return cls(values=np.asarray(grid.values, dtype=np.float64), axes=[np.asarray(a) for a in grid.axes],
                   grid=None, error=grid.error, kT=_units.kT(temp, unit), units=unit, temperature=temp,
                   backend="file", precision="float64", sigma=np.full(len(grid.axes), np.nan),
                   periodic=list(periods), n_samples=0, names=list(grid.names))


