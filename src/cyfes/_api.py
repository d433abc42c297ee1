"""cyfes.fes: the free energy surface from (biased) CV samples by reweighted Gaussian KDE.

    F(x) = -kT ln( sum_j w_j prod_d K(x_d - s_jd; sigma_d) / sum_j w_j ),   w_j = exp(V_j / kT) * weight_j

computed in log space by the backends (log-sum-exp with a running maximum).
"""
from __future__ import annotations

import functools
import math
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _backends, _binned, _gpu_truncated, _inputs, _streamed, _truncated, _units, analysis
from ._errors import BackendError, InputError

#: Kernel calls a run is split into at least when a progress callback is given.
PROGRESS_STEPS = 64
#: Sample-grid pairs per kernel call, per CPU thread or per GPU: a call ends within about a second, and Python
#: acts on SIGINT/SIGTERM between calls, so an interrupted run stops promptly.
CHUNK_PAIRS = {"cpu": 5e7, "cuda": 1e11}
#: |log density| from which a float type no longer resolves 1 kT (its spacing there reaches 1): such points are
#: computed again in float64 on the CPU, and past float64's limit (a grid point more than ~6.7e7 sigma from
#: every sample) F is +inf.
RESOLVED = {np.dtype(np.float32): 2.0**23, np.dtype(np.float64): 2.0**52}
ProgressCallback = Callable[[int, int], None]
PRECISIONS = ("float64", "float32")
METHODS = ("direct", "binned")
#: Default bound on how much the pairs left out of the sum may change any F, in kT.
TOLERANCE = 1e-6


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
    axes: Optional[List[np.ndarray]]
    grid: Optional[np.ndarray]
    error: Optional[np.ndarray]
    kT: float
    units: str
    temperature: float
    backend: str
    precision: str
    sigma: np.ndarray
    periodic: List[Optional[float]]
    n_samples: int
    blocks: int = 1
    names: Optional[List[str]] = None
    #: Kish's effective sample size (sum w)^2 / sum w^2 and the same over the blocks' total weights.
    ess: Optional[float] = None
    blocks_effective: Optional[float] = None
    #: F of each block (blocks > 1), each normalised on its own: shape (blocks,) + values.shape; and the log of
    #: each block's total weight sum_j w_j.
    block_values: Optional[np.ndarray] = None
    block_log_weights: Optional[np.ndarray] = None
    #: The largest change of any F (kT) that the samples left out of the sum could cause (0: every pair summed).
    bound: float = 0.0
    #: Sample-point pairs evaluated by the kernels.
    pairs: int = 0
    #: "direct" (kernel sums) or "binned" (binning + FFT convolution).
    method: str = "direct"
    #: method="binned": estimated largest |dF| (kT) against the direct sum on the grid; None otherwise.
    error_estimate: Optional[float] = None

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
        return _truncated.grid_rows(self.axes)

    def save(self, path: Union[str, Path], fmt: Optional[str] = None) -> Path:
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
        from . import formats
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, (str, os.PathLike)) or isinstance(path, bytes):
            raise InputError(f"path: expected a file name (str or os.PathLike), got {path!r}")
        return formats.write_result(self, os.fspath(path), fmt)

    def delta_f(self, cv: Any, at: float) -> Tuple[float, Optional[float]]:
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
        from . import analysis
        return analysis.delta_f(self, cv, at)

    def marginal(self, keep: Any) -> "FESResult":
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
        from . import analysis
        return analysis.marginal(self, keep)

    def plot(self, path: Union[str, Path], **options: Any) -> Path:
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
        from . import plot
        return plot.plot_result(self, path, **options)

    # Answers from the surface (cyfes.analysis; energies in the result's units, min_depth default 2 kT)
    def minima(self, min_depth: Optional[float] = None) -> list:
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
        from . import analysis
        return analysis.minima(self, min_depth)

    def basins(self, min_depth: Optional[float] = None) -> Any:
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
        from . import analysis
        return analysis.basins(self, min_depth)

    def basin_of(self, samples: Any, min_depth: Optional[float] = None) -> np.ndarray:
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
        from . import analysis
        return analysis.basin_of(self, samples, min_depth)

    def delta_f_regions(self, a: Any, b: Any, min_depth: Optional[float] = None) -> Any:
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
        from . import analysis
        return analysis.delta_f_regions(self, a, b, min_depth)

    def delta_f_trace(self, a: Any, b: Any, min_depth: Optional[float] = None) -> Any:
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
        from . import analysis
        return analysis.delta_f_trace(self, a, b, min_depth)

    def path(self, a: Any, b: Any, min_depth: Optional[float] = None, refine: bool = False) -> Any:
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
        from . import analysis
        return analysis.path(self, a, b, min_depth, refine)

    @classmethod
    def read(cls, path: Union[str, Path], temperature: Optional[float] = None, units: Optional[str] = None,
             fmt: Optional[str] = None) -> "FESResult":
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
        from . import formats
        grid = formats.read_grid(path, fmt)
        saved = _npz_thermal(Path(path)) if formats.output_format(path, fmt) == "npz" else {}
        temp = float(temperature if temperature is not None else saved.get("temperature", 300.0))
        unit = units if units is not None else saved.get("units", "kJ/mol")
        periods = saved.get("periods") or [len(a) * analysis._grid.spacing(a) if per else None
                                           for a, per in zip(grid.axes, grid.periodic or [False] * len(grid.axes))]
        return cls(values=np.asarray(grid.values, dtype=np.float64), axes=[np.asarray(a) for a in grid.axes],
                   grid=None, error=grid.error, kT=_units.kT(temp, unit), units=unit, temperature=temp,
                   backend="file", precision="float64", sigma=np.full(len(grid.axes), np.nan),
                   periodic=list(periods), n_samples=0, names=list(grid.names))


def _npz_thermal(path: Path) -> Dict[str, Any]:
    with np.load(path, allow_pickle=False) as z:
        out: Dict[str, Any] = {}
        if "temperature" in z.files:
            out["temperature"] = float(z["temperature"])
        if "units" in z.files:
            out["units"] = str(z["units"])
        if "periodic" in z.files:
            out["periods"] = [float(p) if np.isfinite(p) else None for p in z["periodic"]]
        return out


def _log_gauss_norm(sigma: np.ndarray) -> float:
    return float(-np.sum(np.log(sigma * math.sqrt(2 * math.pi))))


def _logsumexp(x: np.ndarray, axis: int = 0) -> np.ndarray:
    if x.shape[axis] == 1:  # one block: the sum is its only term (exp and log of every point cost ~10 ms at 1e6)
        return np.squeeze(x, axis)
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)  # all -inf (no mass): the result is -inf, not NaN
    with np.errstate(divide="ignore"):
        return np.squeeze(top, axis) + np.log(np.sum(np.exp(x - top), axis=axis))


@dataclass(frozen=True)
class _Layout:
    """What turns kernel sums into a surface: the thermal energy, the kernel, the grid (explicit points or the
    axes of a regular one), and per block [lo, hi) its weight statistics."""

    kT: float
    sigma: np.ndarray
    period: np.ndarray
    explicit: Optional[np.ndarray]
    axes: Optional[List[np.ndarray]]
    dtype: type
    method: str
    stats: Dict[Tuple[int, int], _inputs.BlockStats]


@dataclass(frozen=True)
class _Problem:
    """Validated inputs of one fes() call: nothing is computed before all of these exist."""

    data: np.ndarray
    sigma: np.ndarray
    #: The log-weights from the host's passes; None where the GPUs computed and keep them (see logw).
    host_logw: Optional[np.ndarray]
    #: bias and weights (float64 arrays or None) and kT, for the host's log-weights when first needed.
    weight_inputs: Tuple[Optional[np.ndarray], Optional[np.ndarray], float]
    period: np.ndarray
    #: Explicit query points (M, D), or None for the regular grid of `axes`.
    explicit: Optional[np.ndarray]
    axes: Optional[List[np.ndarray]]
    block_ranges: List[Tuple[int, int]]
    dtype: type
    kT: float
    tolerance: float
    method: str
    #: Samples of weight zero (log-weight -inf) present: only then do blocks need filtering.
    zero_weights: bool
    #: Per CV the samples' (low, high), and per block [lo, hi) its log-weight statistics: from the passes that
    #: validated them, so no later step reads the samples again for these.
    data_range: Tuple[np.ndarray, np.ndarray]
    #: Per CV the lowest and highest coordinate of the samples and the grid points together.
    joint_range: Tuple[np.ndarray, np.ndarray]
    stats: Dict[Tuple[int, int], _inputs.BlockStats]
    #: The samples and log-weights held on the GPUs for the truncated sum (None: nothing staged).
    staged: Optional[_gpu_truncated.Staged] = None

    def __enter__(self) -> "_Problem":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.staged is not None:
            self.staged.free()

    @functools.cached_property
    def logw(self) -> np.ndarray:
        """log w per sample on the host: from the host's passes, else computed on first use (the GPU's truncated
        sum never asks; the CPU's sums and fallbacks do)."""
        if self.host_logw is not None:
            return self.host_logw
        bias, weights, kT = self.weight_inputs
        return _inputs.log_weights(bias, weights, len(self.data), kT)

    @property
    def layout(self) -> _Layout:
        return _Layout(self.kT, self.sigma, self.period, self.explicit, self.axes, self.dtype, self.method,
                       self.stats)

    @functools.cached_property
    def points(self) -> np.ndarray:
        """The (M, D) query points; a regular grid's are built on first use (its truncated sum needs only the axes)."""
        return self.explicit if self.explicit is not None else _truncated.grid_rows(self.axes)


def _points(grid: Any, bins: Any, ranges: Any, data: np.ndarray, period: np.ndarray,
            data_range: Optional[Tuple[np.ndarray, np.ndarray]] = None
            ) -> Tuple[Optional[np.ndarray], Optional[List[np.ndarray]]]:
    """The (M, D) explicit query points, or the axes of a regular grid."""
    dim = data.shape[1]
    if grid is not None and (bins is not None or ranges is not None):
        raise InputError("grid: give either `grid` or `bins`/`ranges`, not both")
    if grid is None and bins is None:
        raise InputError("bins: give `bins` (regular grid) or `grid` (explicit points)")
    if grid is not None:
        points = _inputs.explicit_grid(grid, dim)
        _inputs.check_grid_fits(len(points), dim, "grid")
        return points, None
    return None, _inputs.regular_axes(bins, ranges, data, period, data_range)


def _block_ranges(n: int, nblocks: int) -> List[Tuple[int, int]]:
    """[lo, hi) of each block: np.array_split's split."""
    sizes = [n // nblocks + (1 if k < n % nblocks else 0) for k in range(nblocks)]
    edges = np.cumsum([0] + sizes).tolist()
    return list(zip(edges[:-1], edges[1:]))


def _block_stats(blocks: List[Tuple[int, int]], arrays: tuple) -> Dict[Tuple[int, int], _inputs.BlockStats]:
    """Each block's statistics; a block with only zero weights is refused up front."""
    stats = _inputs.stats_of(blocks, *arrays)
    if any(st.kept == 0 for st in stats.values()):
        raise InputError(f"blocks: a block of samples has only zero weights; use fewer than {len(blocks)} blocks")
    return stats


def _stage_on(dev: _backends.Device, method: Any, tolerance: Any) -> Sequence[int]:
    """The GPUs that take the passes over the samples and weights and keep them: those of a truncated sum on
    GPUs (the default there; cuda/stage.cu). None (empty) for the CPU, the binned method or every pair, whose
    kernels take cast or binned copies from the host."""
    try:
        truncated = method == "direct" and float(tolerance) > 0
    except (TypeError, ValueError):
        truncated = False  # _validate says what is wrong with it
    return dev.ids if dev.kind != "cpu" and truncated else ()


def _passes(data: np.ndarray, bias: Optional[np.ndarray], weights: Optional[np.ndarray], kT: float,
            edges: np.ndarray, stage_on: Sequence[int]) -> Tuple[_inputs.Passes, Optional[_gpu_truncated.Staged]]:
    """The passes over the per-sample inputs: on the GPUs `stage_on`, which keep the samples and log-weights,
    else on the host."""
    if not stage_on:
        return _inputs.host_passes(data, bias, weights, kT, edges), None
    staged = _gpu_truncated.stage(data, bias, weights, kT, edges, stage_on)
    bad, bad_bias, bad_weight, negative, positive, lo, hi = staged.scan
    return _inputs.Passes(bad, lo, hi, (bad_bias, bad_weight, negative, positive), None, staged.stats), staged


def _tolerance(value: Any) -> float:
    try:
        tol = float(value)
    except (TypeError, ValueError):
        raise InputError(f"tolerance: expected a number >= 0 (kT), got {value!r}") from None
    if not (math.isfinite(tol) and 0 <= tol < 1):
        raise InputError(f"tolerance: expected 0 (every pair) or a bound in kT below 1, got {value!r}")
    return tol


def _validate(samples: Any, sigma: Any, bias: Any, weights: Any, temperature: float, units: str, grid: Any,
              bins: Any, ranges: Any, periodic: Any, blocks: int, precision: str,
              names: Optional[Sequence[str]], tolerance: Any, method: str, stage_on: Sequence[int] = (),
              grid_range: Optional[Tuple[np.ndarray, np.ndarray]] = None) -> _Problem:
    """Every argument checked, the cheap ones before any pass over the samples. stage_on: the GPUs that take
    those passes (_stage_on); the problem then holds their copies (freed when its `with` block ends).
    grid_range: the data range a default grid spans, where it is not these samples' own (a chunk of a larger
    set lays out the whole set's grid)."""
    kT = _units.kT(temperature, units)
    data = _inputs.samples_array(samples)
    n, dim = data.shape
    sig = _inputs.sigma(sigma, dim)
    b, w = _inputs.weight_arrays(bias, weights, n)
    period = _inputs.periods(periodic, dim)
    block_ranges = _block_ranges(n, _inputs.positive_int(blocks, "blocks", upper=n))
    dtype = np.float64 if _inputs.choice(precision, "precision", PRECISIONS) == "float64" else np.float32
    tol = _tolerance(tolerance)
    method = _inputs.choice(method, "method", METHODS)
    if names is not None and (isinstance(names, str) or not hasattr(names, "__len__") or len(names) != dim):
        raise InputError(f"names: expected a list of {dim} CV names, got {names!r}")
    found, staged = _passes(data, b, w, kT, _inputs.block_edges(block_ranges), stage_on)
    try:
        return _checked(found, staged, data, sig, (b, w, kT), period, (grid, bins, ranges), block_ranges, dtype,
                        tol, method, grid_range)
    except BaseException:
        if staged is not None:
            staged.free()
        raise


def _checked(found: _inputs.Passes, staged: Optional[_gpu_truncated.Staged], data: np.ndarray, sig: np.ndarray,
             weighing: tuple, period: np.ndarray, where: tuple, block_ranges: List[Tuple[int, int]], dtype: type,
             tol: float, method: str, grid_range: Optional[Tuple[np.ndarray, np.ndarray]] = None) -> _Problem:
    """The problem from what the passes over the samples and weights found, and the checks that need it: the
    samples' and weights' values, the grid (`where`: grid, bins, ranges; a default range is the data's), the
    scaled range and the blocks' weights."""
    n = len(data)
    scanned = _inputs.checked_samples(data, found.bad_sample, found.lo, found.hi)
    data_range = (scanned.lo, scanned.hi)
    _inputs.check_weights(weighing[1], n, *found.weight_flags)
    explicit, axes = _points(*where, data, period, grid_range or data_range)
    joint = _inputs.joint_range(data_range, _inputs.points_range(explicit, axes))
    _inputs.check_scaled_range(*joint, sig, period, dtype)
    stats = _block_stats(block_ranges, found.block_arrays)
    zero = sum(st.kept for st in stats.values()) < n
    return _Problem(data, sig, found.logw, weighing, period, explicit, axes, block_ranges, dtype, weighing[2],
                    tol, method, zero, data_range, joint, stats, staged)


def _slices(count: int, parts: int) -> List[slice]:
    edges = np.linspace(0, count, max(1, min(count, parts)) + 1).astype(np.int64)
    return [slice(int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:])]


def _grid_parts(count: int, blocks: int) -> List[slice]:
    """Parts of the truncated sum's tiles, one kernel call each: PROGRESS_STEPS calls in all, so a progress bar
    moves and Python acts on SIGINT/SIGTERM between calls."""
    return _slices(count, max(1, PROGRESS_STEPS // blocks))


def _kernel_tiles(points: int, samples: int, blocks: int, progress: Optional[ProgressCallback],
           dev: _backends.Device) -> Tuple[List[slice], List[slice]]:
    """Grid parts and sample parts, each kernel call one (grid part, sample part) tile of about CHUNK_PAIRS pairs
    (and at least PROGRESS_STEPS calls in all when someone watches progress). Each call prepares its samples
    (O(N) work, worth about 50 pairs a sample), so a grid part has at least ~1000 points per thread; the CPU
    kernel is fastest with many samples per call (square tiles measured 25% slower than 1e5 x 2000)."""
    workers = max(1, dev.threads) if dev.kind == "cpu" else len(dev.ids)
    budget = CHUNK_PAIRS[dev.kind] * workers
    per_sample_part = min(samples, max(int(budget // max(1, points)), int(budget // (1024 * workers))))
    per_grid_part = max(64 * max(1, dev.threads) if dev.kind == "cpu" else 1, int(budget // per_sample_part))
    grid_parts = max(-(-points // per_grid_part), 1 if progress is None else PROGRESS_STEPS // blocks)
    return _slices(points, grid_parts), _slices(samples, -(-samples // per_sample_part))


def _log_density(s: np.ndarray, w: np.ndarray, pts: np.ndarray, scale: np.ndarray, per: np.ndarray,
                 dev: _backends.Device, tiles: Tuple[List[slice], List[slice]],
                 tick: Optional[Callable[[], None]] = None) -> np.ndarray:
    """The backend's log density, one tile per call; sample parts combine by log-add-exp. Python runs signal
    handlers between calls, so Ctrl-C stops a long run within about one call."""
    dens = np.full(len(pts), -np.inf)
    for part in tiles[0]:
        for chunk in tiles[1]:
            got = _backends.log_density(s[chunk], w[chunk], pts[part], scale, per, dev)
            dens[part] = np.logaddexp(dens[part], got) if len(tiles[1]) > 1 else got
        if tick is not None:
            tick()
    return dens


def _rows(arrays: List[np.ndarray]) -> np.ndarray:
    """Per-block arrays as the rows of one (blocks, M) array; one block's is a view (no copy of M values)."""
    return arrays[0][None] if len(arrays) == 1 else np.stack(arrays)


@dataclass
class _Densities:
    """Per block: log sum_j w_j K(x - s_j) (unnormalised kernel) on every point, and log sum_j w_j; with the
    truncation bound achieved (kT) and the pairs summed."""

    log_dens: np.ndarray
    log_z: np.ndarray
    bound: float
    pairs: int


def _block_samples(pb: _Problem, lo: int, hi: int) -> Tuple[np.ndarray, np.ndarray]:
    """Samples and log-weights of one block, zero weights left out (a view when there are none)."""
    lw = pb.logw[lo:hi]
    if not pb.zero_weights:
        return pb.data[lo:hi], lw
    keep = np.isfinite(lw)
    return pb.data[lo:hi][keep], lw[keep]


def _direct(pb: _Problem, dev: _backends.Device, progress: Optional[ProgressCallback]) -> _Densities:
    """Every pair (tolerance 0, or nothing to leave out), one tile of about CHUNK_PAIRS pairs per kernel call."""
    cast = lambda a: np.ascontiguousarray(a, dtype=pb.dtype)  # noqa: E731
    scale, per, pts = cast(1.0 / pb.sigma), cast(pb.period), cast(pb.points)
    count = {"done": 0, "total": 0}

    def tick() -> None:
        count["done"] += 1
        if progress is not None:
            progress(min(count["done"], count["total"]), count["total"])

    log_dens, log_z, pairs = [], [], 0
    for lo, hi in pb.block_ranges:
        data, lw = _block_samples(pb, lo, hi)
        top = pb.stats[lo, hi].top  # shift so the kernels see logw <= 0 (float32 keeps its range); added back below
        s, w = cast(data), cast(lw - top)
        tiles = _kernel_tiles(len(pts), len(lw), len(pb.block_ranges), progress, dev)
        count["total"] = count["total"] or len(tiles[0]) * len(pb.block_ranges)
        with np.errstate(invalid="ignore"):  # logaddexp(-inf, -inf)
            dens = _log_density(s, w, pts, scale, per, dev, tiles, tick)
        _resolve(dens, pb, lo, hi, top, dev)
        _affine(dens, top, threads=dev.threads)  # in place: a pass over the points, no copy
        log_dens.append(dens)
        log_z.append(pb.stats[lo, hi].log_z)
        pairs += len(lw) * len(pts)
    return _Densities(_rows(log_dens), np.array(log_z), 0.0, pairs)


def _tiles(pb: _Problem, dev: _backends.Device) -> _truncated.Tiles:
    if pb.axes is not None:
        points = None if dev.kind == "cpu" else _gpu_truncated.tile_points(len(pb.axes))
        return _truncated.regular_tiles([len(a) for a in pb.axes], points)
    return _truncated.point_tiles(_truncated.scaled_points(pb.points, _truncated.scaled_factor(pb.sigma),
                                                           pb.period))


def _truncated_sum(pb: _Problem, dev: _backends.Device, progress: Optional[ProgressCallback]) -> _Densities:
    """Only the cells of samples that can matter, per tile of grid points, within pb.tolerance."""
    tiles = _tiles(pb, dev)
    factor = _truncated.scaled_factor(pb.sigma)
    if pb.axes is not None:
        grid = _truncated.grid_in_tile_order(pb.axes, tiles, factor, pb.period, pb.dtype, dev.threads)
    else:
        grid = _truncated.in_tile_order(_truncated.scaled_points(pb.points, factor, pb.period), tiles, pb.dtype)
    # without a progress callback the parts are sized by time (fewer OpenMP regions, each ending in a barrier)
    parts = _grid_parts(len(tiles.start) - 1, len(pb.block_ranges)) if progress is not None else None
    total, done = len(parts or ()) * len(pb.block_ranges), [0]

    def tick() -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], total)

    log_dens, log_z, bound, pairs = [], [], 0.0, 0
    for lo, hi in pb.block_ranges:
        top = pb.stats[lo, hi].top
        if dev.kind == "cpu":
            res = _truncated.cpu_log_density(pb.data, pb.logw, lo, hi, top, grid, tiles, pb.sigma, pb.period,
                                             pb.dtype, pb.tolerance, dev.threads, parts, tick)
        else:  # one call per block: the GPUs take every tile at once
            res = _gpu_truncated.gpu_log_density(pb.data, lambda: pb.logw, lo, hi, top, grid, tiles, pb.sigma,
                                                 pb.period, pb.dtype, pb.tolerance, dev.ids,
                                                 _backends.cpu_threads(None), pb.staged)
            for _ in parts or ():
                tick()
        dens = _truncated.from_tile_order(res.log_density, tiles, dev.threads)
        _resolve(dens, pb, lo, hi, top, dev)
        _affine(dens, top, threads=dev.threads)  # in place: a pass over the points, no copy
        log_dens.append(dens)
        log_z.append(res.log_z + top)
        bound, pairs = max(bound, res.bound), pairs + res.pairs
    return _Densities(_rows(log_dens), np.array(log_z), bound, pairs)


def _binned_sum(pb: _Problem, dev: _backends.Device) -> Tuple[_Densities, float]:
    """Per block the binned estimate (on the GPUs, else numpy); points where it is unreliable get the direct
    (truncated) sum.
    Returns the densities and the estimated largest |dF| (kT)."""
    log_dens, log_z, bound, pairs, estimate = [], [], 0.0, 0, 0.0
    for lo, hi in pb.block_ranges:
        data, lw = _block_samples(pb, lo, hi)
        top = pb.stats[lo, hi].top
        est = _binned.log_density(data, lw, pb.points, pb.sigma, pb.period, dev.ids if dev.kind != "cpu" else ())
        dens = est.log_density + top
        bad = _binned.unreliable(est)
        if bad.size:
            sub = replace(pb, explicit=pb.points[bad], axes=None, block_ranges=[(lo, hi)], method="direct")
            exact = _block_log_densities(sub, dev)
            dens[bad] = exact.log_dens[0]
            bound, pairs = max(bound, exact.bound), pairs + exact.pairs
        log_dens.append(dens)
        log_z.append(pb.stats[lo, hi].log_z)
        estimate = max(estimate, est.error_estimate)
    return _Densities(_rows(log_dens), np.array(log_z), bound, pairs), max(estimate, bound)


def _block_log_densities(pb: _Problem, dev: _backends.Device,
                         progress: Optional[ProgressCallback] = None) -> _Densities:
    if pb.tolerance > 0 and _truncated.can_truncate(*pb.joint_range, pb.sigma, pb.period, pb.tolerance):
        return _truncated_sum(pb, dev, progress)
    return _direct(pb, dev, progress)


def _kish(stats: Dict[Tuple[int, int], _inputs.BlockStats]) -> float:
    """Kish's effective sample size (sum w)^2 / sum w^2 over all blocks, from their sums."""
    lz = np.array([st.log_z for st in stats.values()])
    lz2 = np.array([st.log_z2 for st in stats.values()])
    return float(np.exp(2 * _logsumexp(lz) - _logsumexp(lz2)))


def _affine(values: np.ndarray, a: float = 0.0, b: float = 1.0, apply: bool = True,
            threads: int = 0) -> Tuple[float, float, int]:
    """values = a + b * values in place (a 1-D float64 array; unless `apply` is False), in one threaded pass that
    also finds (lo, hi, other): the range of the finite values after it and the number of the others. threads: a
    CPU device's (0: OpenMP's default, as for GPU devices)."""
    return _backends._cpu().affine_range(values, a, b, apply, threads)


def _check_mass(values: np.ndarray, empty: int) -> None:
    """+inf points (`empty` of them) are documented (no mass float64 can represent); a surface of nothing else is
    an error."""
    if not empty:
        return
    if empty == len(values):
        raise InputError("sigma: every grid point is more than about 6.7e7 sigma from every sample (no mass in "
                         "float64); use a larger sigma or a grid over the data")
    if empty:
        warnings.warn(f"{empty} of {len(values)} grid points are more than about 6.7e7 sigma from every sample: "
                      "F = +inf there", RuntimeWarning, stacklevel=3)


def _unresolved(dens: np.ndarray, dtype: Any, count: int, threads: int = 0) -> np.ndarray:
    """Points whose log density is NaN, impossibly high (weights are <= 1 after the shift, so at most
    log(count)) or too low for `dtype` to resolve 1 kT."""
    high, low = math.log(count) + 1.0, -RESOLVED[np.dtype(dtype)]
    lo, hi, other = _affine(dens, apply=False, threads=threads)  # one threaded pass, no temporaries
    if not other and low <= lo and hi <= high:
        return np.zeros(0, dtype=np.intp)
    with np.errstate(invalid="ignore"):
        return np.flatnonzero(~((dens <= high) & (dens >= low)))


def _resolve(dens: np.ndarray, pb: _Problem, lo: int, hi: int, top: float, dev: _backends.Device) -> None:
    """Compute again in float64 on the CPU the points the kernel could not resolve (dens: relative to the top
    log-weight `top` of block [lo, hi)); -inf (F = +inf) where float64 cannot either."""
    count = pb.stats[lo, hi].kept
    bad = _unresolved(dens, pb.dtype, count, dev.threads)
    if bad.size and (dev.kind != "cpu" or np.dtype(pb.dtype) != np.float64):
        data, logw = _block_samples(pb, lo, hi)
        cpu = _backends.Device("cpu", threads=_backends.cpu_threads(None))
        f64 = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
        pts = f64(pb.points[bad])
        tiles = _kernel_tiles(len(pts), len(data), 1, None, cpu)
        dens[bad] = _log_density(f64(data), f64(logw - top), pts, f64(1.0 / pb.sigma), f64(pb.period), cpu, tiles)
        bad = _unresolved(dens, np.float64, len(data), dev.threads)
    dens[bad] = -np.inf


def _kernel_sums(pb: _Problem, dev: _backends.Device,
                 progress: Optional[ProgressCallback]) -> Tuple[_Densities, Optional[float]]:
    """Per block, the log kernel sums of a validated problem, and the binned method's error estimate (else None)."""
    if pb.method == "binned":
        return _binned_sum(pb, dev)
    return _block_log_densities(pb, dev, progress), None


def log_kernel_sum(samples: Any, sigma: Any, *, grid: Any, bias: Any = None, weights: Any = None,
                   temperature: float = 300.0, units: str = "kJ/mol",
                   periodic: Optional[Sequence[Optional[float]]] = None, precision: str = "float64",
                   tolerance: float = TOLERANCE, device: Any = "auto") -> np.ndarray:
    """log sum_j w_j exp(-sum_d (x_d - s_jd)^2 / 2 sigma_d^2) on the points of `grid`, w_j = exp(V_j/kT) weight_j:
    the kernel sum that fes() turns into F (it normalises the kernel and divides by sum_j w_j), for callers that
    need the sum itself (CyFES 4.5's mode). Arguments as fes()'s."""
    dev = _backends.parse_device(device, None, None)
    with _validate(samples, sigma, bias, weights, temperature, units, grid, None, None, periodic, 1, precision,
                   None, tolerance, "direct", _stage_on(dev, "direct", tolerance)) as pb:
        return _logsumexp(_kernel_sums(pb, dev, None)[0].log_dens)


def fes(samples: Any, sigma: Any, *, bias: Any = None, weights: Any = None, temperature: float = 300.0,
        units: str = "kJ/mol", grid: Any = None, bins: Any = None, ranges: Any = None,
        periodic: Optional[Sequence[Optional[float]]] = None, blocks: int = 1, device: Any = "auto",
        precision: str = "float64", devices: Optional[Sequence[int]] = None, threads: Optional[int] = None,
        shift: bool = True, names: Optional[Sequence[str]] = None,
        progress: Optional[ProgressCallback] = None, tolerance: float = TOLERANCE,
        method: str = "direct") -> FESResult:
    """Free energy surface of CV samples by reweighted Gaussian kernel density estimation.

    F(x) = -kT ln( sum_j w_j prod_d K(x_d - s_jd; sigma_d) / sum_j w_j ), with w_j = exp(V_j / kT) * weight_j,
    K the normalised Gaussian and periodic CVs taken to the nearest image, computed in log space. Every
    argument is checked before any work starts.

    Parameters
    ----------
    samples : array_like
        The (N, D) CV values, or (N,) for one CV; 1 to 8 CVs.
    sigma : float or sequence of float
        Kernel width, one for all CVs or one per CV.
    bias : array_like, optional
        Per-sample bias potential V_j in `units`; the samples are reweighted by exp(V/kT).
    weights : array_like, optional
        Per-sample weights, on top of the bias.
    temperature : float, default 300.0
        In K.
    units : {"kJ/mol", "kcal/mol"}, default "kJ/mol"
        Energy unit of `bias` and of the result (PLUMED's default is kJ/mol).
    grid : array_like, optional
        Explicit (M, D) query points; the result's `values` then has shape (M,). Give `grid` or `bins`.
    bins : int or sequence of int, optional
        Grid points, for all CVs or one per CV (a regular grid, matrix indexing).
    ranges : sequence of (float, float), optional
        (low, high) per CV for `bins`; default: the data range. A periodic CV's default range is one period
        from the data minimum, without repeating the end point.
    periodic : sequence of float or None, optional
        Per CV its period, or None for a CV that is not periodic.
    blocks : int, default 1
        Split the samples into this many consecutive blocks; above 1 the result has a standard error per point.
    device : str or sequence of int, default "auto"
        ``"auto"`` (the GPU when usable, else the CPU), ``"cpu"``, ``"gpu"``, ``"cuda:N"``, or GPU ids.
    precision : {"float64", "float32"}, default "float64"
        The kernels' float type.
    devices : sequence of int, optional
        GPUs to split the grid over, e.g. ``[0, 1]``.
    threads : int, optional
        CPU threads (default: all CPUs); more than there are CPUs is lowered with a warning.
    shift : bool, default True
        Subtract the minimum of F.
    names : sequence of str, optional
        CV names, used by `FESResult.delta_f`, `FESResult.marginal`, the plots and the files.
    progress : callable, optional
        Called as ``progress(done, total)`` after each kernel call (the grid is then split into parts).
    tolerance : float, default 1e-6
        The samples left out of each grid point's sum change no F by more than this (kT). Samples are grouped
        into cells and a cell is left out only when its summed weight and nearest distance prove it negligible,
        whatever the weights; 0 sums every pair. The result's `bound` is the bound achieved, `pairs` the pairs
        summed.
    method : {"direct", "binned"}, default "direct"
        ``"direct"`` sums kernels (within `tolerance`); ``"binned"`` bins linearly and convolves by FFT, for many
        more samples than grid points, and reports its estimated largest abs(dF) in kT as `error_estimate`
        (points of very low density fall back to the direct sum).

    Returns
    -------
    FESResult
        The surface, its axes or points, its error bars (``blocks > 1``) and how it was computed.

    Raises
    ------
    InputError
        A bad argument (NaN or inf, empty, ragged, complex or mis-shaped arrays, mismatched lengths,
        ``sigma <= 0``, a period <= 0, unknown units, device or precision, a grid too large for memory),
        named in the message.
    BackendError
        The GPU was asked for and is not usable, or CUDA failed (with CUDA's own message).

    Examples
    --------
    One sample at 0 with sigma 1: F rises by kT/2 one sigma away (kT = 2.494 kJ/mol at 300 K).

    >>> import numpy as np
    >>> import cyfes
    >>> res = cyfes.fes(np.zeros((1, 1)), sigma=1.0, grid=[[0.0], [1.0]], device="cpu")
    >>> res.values.round(4)
    array([0.    , 1.2472])
    >>> round(res.kT / 2, 4)
    1.2472

    A biased 2-D run with error bars from 5 blocks:

    >>> rng = np.random.default_rng(1)
    >>> phi_psi = rng.uniform(-np.pi, np.pi, size=(2000, 2))
    >>> bias = rng.uniform(0, 5, size=2000)
    >>> res = cyfes.fes(phi_psi, 0.3, bias=bias, bins=(30, 20), periodic=[2 * np.pi, 2 * np.pi], blocks=5,
    ...                 device="cpu")
    >>> res.values.shape, res.error.shape, float(res.values.min())
    ((30, 20), (30, 20), 0.0)
    """
    if _streamed.is_chunked(samples):
        spec = _ChunkSpec(sigma, temperature, units, grid, bins, ranges, periodic, precision, tolerance, method,
                          device, None if devices is None else tuple(devices), threads)
        return _chunked_fes(samples, bias, weights, spec, blocks, shift, names, progress)
    dev = _backends.parse_device(device, devices, threads)
    args = (samples, sigma, bias, weights, temperature, units, grid, bins, ranges, periodic, blocks, precision,
            names, tolerance, method)
    try:
        sums, estimate, layout = _sums_on(dev, args, progress)
    except BackendError as exc:
        if dev.kind == "cpu" or not _backends.is_auto(device, devices):
            raise
        # device="auto": a GPU that fails (its memory taken by another process, say) leaves the CPU
        warnings.warn(f"the GPU failed ({exc}); computing on the CPU instead", RuntimeWarning, stacklevel=2)
        dev = _backends.parse_device("cpu", None, threads)
        sums, estimate, layout = _sums_on(dev, args, progress)
    return surface(sums, estimate, layout, dev.describe(), units=units, temperature=temperature, shift=shift,
                   names=names, threads=dev.threads)


def _sums_on(dev: _backends.Device, args: tuple, progress: Optional[ProgressCallback]
             ) -> Tuple[_Densities, Optional[float], _Layout]:
    """fes()'s kernel sums on one device: args are fes()'s (samples ... method), validated here."""
    method, tolerance = args[-1], args[-2]
    with _validate(*args, _stage_on(dev, method, tolerance)) as pb:
        if progress is not None and not callable(progress):
            raise InputError(f"progress: expected a callable progress(done, total), got {progress!r}")
        sums, estimate = _kernel_sums(pb, dev, progress)
    return sums, estimate, pb.layout


@dataclass(frozen=True)
class _ChunkSpec:
    """fes()'s arguments that every chunk of chunked samples is summed with; grid_range: the whole set's data
    range (for a default grid), block_ranges: the whole set's blocks."""

    sigma: Any
    temperature: float
    units: str
    grid: Any
    bins: Any
    ranges: Any
    periodic: Any
    precision: str
    tolerance: Any
    method: str
    device: Any
    devices: Optional[Tuple[int, ...]]
    threads: Optional[int]
    grid_range: Optional[Tuple[np.ndarray, np.ndarray]] = None
    block_ranges: Tuple[Tuple[int, int], ...] = ()


def _chunk_range(samples: Any, offset: int) -> Tuple[np.ndarray, np.ndarray]:
    """One chunk's per-CV range, its values checked (an error names the rows: global row `offset` on)."""
    try:
        found = _inputs.scanned_samples(samples)
    except InputError as exc:
        raise InputError(f"samples {offset} to {offset + len(samples) - 1}: {exc}") from None
    return found.lo, found.hi


def _chunk_partial(samples: Any, bias: Any, weights: Any, offset: int, spec: _ChunkSpec) -> _streamed.Partial:
    """The partial sums of one chunk of samples (global rows offset..): per block it meets, the kernel sums of
    its rows there, computed as fes() computes one block's (where the chunk lives: a Dask worker, or here)."""
    data = _inputs.samples_array(samples)
    dev = _backends.parse_device(spec.device, spec.devices, spec.threads)
    out = None
    for b, lo, hi in _streamed.pieces(offset, len(data), spec.block_ranges):
        sub_b = None if bias is None else np.asarray(bias)[lo:hi]
        sub_w = None if weights is None else np.asarray(weights)[lo:hi]
        if sub_w is not None and not np.any(sub_w > 0):
            continue  # no weight here: these rows add nothing (a block with none at all is refused on merging)
        try:
            with _validate(data[lo:hi], spec.sigma, sub_b, sub_w, spec.temperature, spec.units, spec.grid,
                           spec.bins, spec.ranges, spec.periodic, 1, spec.precision, None, spec.tolerance,
                           spec.method, _stage_on(dev, spec.method, spec.tolerance), spec.grid_range) as pb:
                sums, estimate = _kernel_sums(pb, dev, None)
        except InputError as exc:
            raise InputError(f"samples {offset + lo} to {offset + hi - 1}: {exc}") from None
        st = next(iter(pb.stats.values()))
        if out is None:
            out = _streamed.empty(len(spec.block_ranges), sums.log_dens.shape[1])
        out.log_dens[b], out.log_z[b], out.log_z2[b] = sums.log_dens[0], sums.log_z[0], st.log_z2
        out.kept[b] = st.kept
        out = replace(out, bound=max(out.bound, sums.bound), pairs=out.pairs + sums.pairs,
                      estimate=max(out.estimate, estimate or 0.0), backends=(dev.describe(),))
    return out if out is not None else _streamed.empty(len(spec.block_ranges), 0)


def _chunked_fes(samples: Any, bias: Any, weights: Any, spec: _ChunkSpec, blocks: int, shift: bool,
                 names: Optional[Sequence[str]], progress: Optional[ProgressCallback]) -> FESResult:
    """fes() of samples in chunks (a Dask array, a list of arrays): each chunk's sums where it lives, merged
    exactly; the grid is laid out first (from the whole set's range unless `ranges` or `grid` is given)."""
    kT = _units.kT(spec.temperature, spec.units)
    chunks = _streamed.chunks_of(samples, bias, weights)
    sig, period = _inputs.sigma(spec.sigma, chunks.dim), _inputs.periods(spec.periodic, chunks.dim)
    dtype = np.float64 if _inputs.choice(spec.precision, "precision", PRECISIONS) == "float64" else np.float32
    method = _inputs.choice(spec.method, "method", METHODS)
    block_ranges = _block_ranges(chunks.total, _inputs.positive_int(blocks, "blocks", upper=chunks.total))
    if progress is not None and not callable(progress):
        raise InputError(f"progress: expected a callable progress(done, total), got {progress!r}")
    grid_range = None
    if spec.grid is None and spec.ranges is None:
        grid_range = _streamed.data_range(chunks, _chunk_range)
    explicit, axes = _points(spec.grid, spec.bins, spec.ranges, np.empty((0, chunks.dim)), period,
                             grid_range or (np.zeros(chunks.dim), np.ones(chunks.dim)))
    spec = replace(spec, grid_range=grid_range, block_ranges=tuple(block_ranges))
    total = _streamed.reduce(chunks, functools.partial(_chunk_partial, spec=spec), progress)
    if total.log_dens.shape[1] == 0 or np.any(total.kept == 0):
        raise InputError(f"blocks: a block of samples has only zero weights; use fewer than {len(block_ranges)} "
                         "blocks" if len(block_ranges) > 1 else "weights: every sample has weight zero")
    stats = {blk: _inputs.BlockStats(float("nan"), int(k), float(a), float(a2))
             for blk, k, a, a2 in zip(block_ranges, total.kept, total.log_z, total.log_z2)}
    layout = _Layout(kT, sig, period, explicit, axes, dtype, method, stats)
    sums = _Densities(total.log_dens, total.log_z, total.bound, total.pairs)
    backend = f"{len(chunks.parts)} chunks on " + ", ".join(total.backends)
    return surface(sums, total.estimate if method == "binned" else None, layout, backend, units=spec.units,
                   temperature=spec.temperature, shift=shift, names=names, threads=_backends.cpu_threads(None))


def surface(sums: _Densities, estimate: Optional[float], layout: _Layout, backend: str, *, units: str,
            temperature: float, shift: bool, names: Optional[Sequence[str]], threads: int = 0) -> FESResult:
    """The FESResult of per-block kernel sums: F = -kT log of the normalised density, with block errors (one
    process's sums, or partial sums merged from chunks, GPUs or Dask workers: the same arithmetic)."""
    dens, log_z = sums.log_dens, sums.log_z
    norm = _log_gauss_norm(layout.sigma)
    # F = -kT log density, in place over the sum of the blocks (one block: its row, used no more)
    values = _logsumexp(dens)
    low, _, empty = _affine(values, layout.kT * (float(_logsumexp(log_z)) - norm), -layout.kT, threads=threads)
    _check_mass(values, empty)
    error = per_block = None
    nblocks = len(layout.stats)
    if nblocks > 1:
        with np.errstate(invalid="ignore"):
            per_block = -layout.kT * (dens - log_z[:, None] + norm)
            # a block whose weights are all 0 has no density anywhere (-inf - -inf): its F is +inf
            per_block[np.isnan(per_block)] = np.inf
            error = per_block.std(axis=0, ddof=1) / math.sqrt(nblocks)
        error[np.isinf(per_block).any(axis=0)] = np.inf  # a block without mass there: no finite error bar
    if shift:
        _affine(values, -low, threads=threads)
    axes = layout.axes
    shape = tuple(len(a) for a in axes) if axes is not None else (len(layout.explicit),)
    return FESResult(
        values=values.reshape(shape), axes=axes, grid=layout.explicit if axes is None else None,
        error=None if error is None else error.reshape(shape), kT=layout.kT, units=units,
        temperature=float(temperature), backend=backend, precision=str(np.dtype(layout.dtype)),
        sigma=layout.sigma, periodic=[float(p) if p > 0 else None for p in layout.period],
        n_samples=sum(st.kept for st in layout.stats.values()), blocks=nblocks,
        names=list(names) if names is not None else None, ess=_kish(layout.stats),
        blocks_effective=analysis.kish(log_z) if nblocks > 1 else None,
        block_values=None if per_block is None else per_block.reshape((nblocks,) + shape),
        block_log_weights=None if per_block is None else np.asarray(log_z),
        bound=sums.bound, pairs=sums.pairs, method=layout.method, error_estimate=estimate)
