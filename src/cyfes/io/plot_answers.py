"""Pictures of the answers: the surface with its basins' borders, minima and a path, and F along the path (needs
matplotlib). Drawn now, written by the returned function (so a command stages it with its other outputs)."""
from __future__ import annotations

from pathlib import Path
from typing import IO, Any, Callable

import numpy as np

from .._errors import InputError
from . import formats, plot


def _broken(points: np.ndarray, periods: list) -> np.ndarray:
    """The path with NaN rows where it jumps across a periodic boundary, so no line is drawn across the plot."""
    out = [points[0]]
    for prev, cur in zip(points[:-1], points[1:]):
        if any(p and abs(c - q) > p / 2 for p, c, q in zip(periods, cur, prev)):
            out.append(np.full(points.shape[1], np.nan))
        out.append(cur)
    return np.array(out)


def _arc_length(points: np.ndarray, periods: list) -> np.ndarray:
    step = np.diff(points, axis=0)
    for d, p in enumerate(periods):
        if p:
            step[:, d] -= p * np.round(step[:, d] / p)
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(step, axis=1))])


def _surface_panel(ax: Any, result: Any, found: Any, vmax: float | None) -> Any:
    names = formats.cv_names(result)
    x, y = result.axes[0], result.axes[1]
    levels = plot._levels(result.values, vmax, 24)
    filled = plot._contour(ax, x, y, result.values, levels, "viridis")
    middle = 0.5 * (x[0] + x[-1])
    for b in found:
        ax.contour(x, y, (found.labels == b.label).T.astype(float), levels=[0.5], colors="white", linewidths=1.2)
        ax.plot(*b.minimum, marker="o", ms=6, mec="k", mfc="white")
        err = f" ± {b.delta_f_error:.2g}" if np.isfinite(b.delta_f_error) and b.label else ""
        right = b.minimum[0] > middle  # labels point inwards, so none runs off the plot
        ax.annotate(f"{b.label}: {b.delta_f:.3g}{err}", b.minimum, xytext=(-6 if right else 6, 6),
                    textcoords="offset points", ha="right" if right else "left", color="white", fontsize=8,
                    bbox=dict(boxstyle="round,pad=0.2", fc="black", alpha=0.45, lw=0))
    ax.set(xlabel=names[0], ylabel=names[1])
    return filled


def _profile_panel(ax: Any, result: Any, path: Any) -> None:
    s = _arc_length(path.points, result.periodic or [None] * result.dim)
    ax.plot(s, path.free_energy, color="C3", lw=1.5)
    k = int(np.argmax(path.free_energy))
    ax.plot(s[k], path.free_energy[k], marker="^", color="k")
    err = f" ± {path.barrier_error:.2g}" if np.isfinite(path.barrier_error) else ""
    ax.annotate(f"barrier {path.barrier:.3g}{err}\nreverse {path.barrier_reverse:.3g} {result.units}",
                (s[k], path.free_energy[k]), xytext=(0.05, 0.95), textcoords="axes fraction", va="top", fontsize=9)
    ax.set(xlabel="distance along the path (CV units)", ylabel=f"F [{result.units}]",
           title=f"basin {path.basins[0]} → basin {path.basins[1]}")
    ax.grid(alpha=0.3)


def answers_writer(result: Any, image: str | Path, found: Any, path: Any = None,
                   vmax: float | None = None) -> Callable[[IO[bytes]], None]:
    """The figure of a 2-D surface's basins (and `path`, with F along it in a second panel)."""
    fmt = plot.image_format(image)
    plot.require_matplotlib()
    if result.dim != 2:
        raise InputError(f"--plot: draws basins and paths on 2-D surfaces; this one has {result.dim} CVs")
    fig = plot._figure((11.5, 4.8) if path is not None else (6.8, 5.2))
    ax = fig.add_subplot(1, 2 if path is not None else 1, 1)
    filled = _surface_panel(ax, result, found, vmax)
    fig.colorbar(filled, ax=ax, label=f"F [{result.units}]")
    if path is not None:
        line = _broken(path.points, result.periodic or [None, None])
        ax.plot(line[:, 0], line[:, 1], color="C3", lw=2)
        ax.plot(*path.saddle, marker="^", ms=8, mec="k", mfc="C3")
        _profile_panel(fig.add_subplot(1, 2, 2), result, path)
    ax.set_title(f"basins (ΔF to basin 0, {result.units})", fontsize=10)
    fig.tight_layout()
    return lambda fh: fig.savefig(fh, format=fmt, dpi=130)
