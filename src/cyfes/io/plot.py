"""Pictures of a free energy surface: a 1-D curve, 2-D filled contours, a 3-D set of slices.

matplotlib is an optional extra (`pip install 'cyfes[plot]'`). Figures are drawn with the Agg canvas directly
(no pyplot, no global backend switch), and written to a temporary file that is renamed into place.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Callable

import numpy as np

from .._errors import CyfesError, InputError
from . import formats

#: Image formats the Agg canvas writes, by extension.
IMAGE_FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg", ".jpg": "jpg", ".jpeg": "jpg"}
#: How many slices of a 3-D surface to draw.
MAX_SLICES = 6


class PlotUnavailable(CyfesError, ImportError):
    """matplotlib is not installed."""


def require_matplotlib() -> None:
    """Raise PlotUnavailable with the install command when matplotlib cannot be imported."""
    try:
        import matplotlib  # noqa: F401  # deferred: matplotlib is optional
    except ImportError:
        raise PlotUnavailable("plotting needs matplotlib, which is not installed; "
                              "install it with: pip install 'cyfes[plot]'") from None


def image_format(path: str | Path) -> str:
    """The image format for `path` from its extension."""
    suffix = Path(path).suffix.lower()
    if suffix not in IMAGE_FORMATS:
        raise InputError(f"{path}: unknown image extension {suffix or '(none)'!r}; use one of "
                         f"{', '.join(IMAGE_FORMATS)}")
    return IMAGE_FORMATS[suffix]


def check_plot_path(path: str | Path, inputs: Sequence[str | Path] = (), force: bool = False) -> Path:
    """Check everything about a plot request that can fail, before any computing."""
    image_format(path)
    require_matplotlib()
    return formats.check_output_path(path, inputs, force)


def check_plot_shape(shape: Sequence[int]) -> None:
    """Refuse, before any computing, a grid the plots cannot draw: more than 3 CVs, or a contour axis with
    fewer than 2 points."""
    if len(shape) > 3:
        raise InputError(f"--plot: draws 1-D, 2-D and 3-D surfaces; this one has {len(shape)} CVs")
    if len(shape) > 1 and min(shape[:2]) < 2:
        raise InputError(f"--plot: a {len(shape)}-D plot draws contours over the first two CVs, which need at "
                         f"least 2 grid points each (bins {','.join(map(str, shape))})")


def _figure(size: tuple[float, float]) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # deferred: matplotlib is optional
    from matplotlib.figure import Figure  # deferred: matplotlib is optional

    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig


def _levels(values: np.ndarray, vmax: float | None, count: int) -> np.ndarray:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise InputError("plot: the surface has no finite value to draw")
    lo = float(finite.min())
    hi = float(finite.max()) if vmax is None else float(vmax)
    if not hi > lo:
        hi = lo + 1.0
    return np.linspace(lo, hi, count + 1)


def _energy_label(result: Any) -> str:
    return f"F [{result.units}]"


def _plot_1d(fig: Any, result: Any, names: list[str]) -> None:
    ax = fig.add_subplot(1, 1, 1)
    x, f = result.axes[0], result.values
    ax.plot(x, f, color="C0", lw=1.5)
    if result.error is not None:
        ax.fill_between(x, f - result.error, f + result.error, color="C0", alpha=0.25, lw=0,
                        label="± standard error")
        ax.legend(loc="best")
    ax.set_xlabel(names[0])
    ax.set_ylabel(_energy_label(result))
    ax.grid(alpha=0.3)


def _contour(ax: Any, x: np.ndarray, y: np.ndarray, values: np.ndarray, levels: np.ndarray, cmap: str) -> Any:
    values = np.ma.masked_invalid(values)  # +inf (no mass) is left blank
    extend = "max" if values.max() > levels[-1] else "neither"
    filled = ax.contourf(x, y, values.T, levels=levels, cmap=cmap, extend=extend)
    ax.contour(x, y, values.T, levels=levels[::2], colors="k", linewidths=0.3, alpha=0.5)
    return filled


def _plot_2d(fig: Any, result: Any, names: list[str], levels: np.ndarray, cmap: str) -> None:
    ax = fig.add_subplot(1, 1, 1)
    filled = _contour(ax, result.axes[0], result.axes[1], result.values, levels, cmap)
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    fig.colorbar(filled, ax=ax, label=_energy_label(result))


def _plot_3d(fig: Any, result: Any, names: list[str], levels: np.ndarray, cmap: str) -> None:
    nz = len(result.axes[2])
    picks = np.unique(np.linspace(0, nz - 1, min(MAX_SLICES, nz)).round().astype(int))
    cols = min(3, len(picks))
    rows = -(-len(picks) // cols)
    axes = [fig.add_subplot(rows, cols, k + 1) for k in range(len(picks))]
    filled = None
    for ax, k in zip(axes, picks):
        filled = _contour(ax, result.axes[0], result.axes[1], result.values[:, :, k], levels, cmap)
        ax.set_title(f"{names[2]} = {result.axes[2][k]:.4g}", fontsize=9)
        ax.set_xlabel(names[0], fontsize=8)
        ax.set_ylabel(names[1], fontsize=8)
        ax.tick_params(labelsize=7)
    fig.colorbar(filled, ax=axes, label=_energy_label(result))


def plot_result(result: Any, path: str | Path, *, title: str | None = None, vmax: float | None = None,
                levels: int = 24, cmap: str = "viridis", dpi: int = 150,
                size: Sequence[float] | None = None) -> Path:
    """Draw `result` (a FESResult on a regular 1-, 2- or 3-D grid) into the image file `path`.

    vmax: top of the colour scale in the energy unit (default: the largest value); levels: number of contour
    bands; size: figure size in inches (default 6.4 x 4.8, 3-D: 10 x 6)."""
    write = plot_writer(result, path, title=title, vmax=vmax, levels=levels, cmap=cmap, dpi=dpi, size=size)
    return formats.atomic_write(path, write)


def plot_writer(result: Any, path: str | Path, *, title: str | None = None, vmax: float | None = None,
                levels: int = 24, cmap: str = "viridis", dpi: int = 150,
                size: Sequence[float] | None = None) -> Callable[[IO[bytes]], None]:
    """The figure of plot_result, drawn now, and a function that writes it to a binary file."""
    fmt = image_format(path)
    require_matplotlib()
    if result.axes is None:
        raise InputError("plot: needs a regular grid (bins), not explicit grid points")
    check_plot_shape(result.values.shape)
    names = formats.cv_names(result)
    fig = _figure(tuple(size) if size else ((10.0, 6.0) if result.dim == 3 else (6.4, 4.8)))
    scale = _levels(result.values, vmax, levels)
    if result.dim == 1:
        _plot_1d(fig, result, names)
    elif result.dim == 2:
        _plot_2d(fig, result, names, scale, cmap)
    else:
        _plot_3d(fig, result, names, scale, cmap)
    fig.suptitle(title or f"Free energy surface at {result.temperature:g} K ({result.n_samples} samples)")
    return lambda fh: fig.savefig(fh, format=fmt, dpi=dpi)
