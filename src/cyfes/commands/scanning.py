"""`cyfes fes --block-scan`, `--sigma-scan` and `--plot-scan`: the convergence scans of cyfes.analysis.scans on
the run's samples, grid and options, printed after the summary and drawn into one image (the flags are
flags.add_scan_arguments). fes.py (and options.py) call output_names, check and run."""
from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Callable

from .._errors import InputError
from ..analysis import scans
from ..io import formats, plot
from . import judging

Writer = Callable[[IO[bytes]], None]


def output_names(args: argparse.Namespace) -> list[str]:
    return [args.plot_scan] if args.plot_scan else []


def _counts(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    if not text.strip():
        return scans.DEFAULT_BLOCK_COUNTS
    counts = tuple(formats.parse_positive_int(v.strip(), "--block-scan") for v in text.split(","))
    if min(counts) < 2:
        raise InputError(f"--block-scan: block counts must be >= 2, got {min(counts)}")
    return counts


def _sigmas(text: str | None) -> list[float] | None:
    if text is None:
        return None
    values = [formats.parse_number(v.strip(), "--sigma-scan") for v in text.split(",") if v.strip()]
    if not values or not all(v > 0 and math.isfinite(v) for v in values):
        raise InputError(f"--sigma-scan: expected bandwidths > 0 separated by commas, got {text!r}")
    return values


def check(args: argparse.Namespace) -> None:
    """Fail before reading: parse the lists; --plot-scan needs a scan, an image name and matplotlib."""
    counts, sigmas = _counts(args.block_scan), _sigmas(args.sigma_scan)
    if (counts or sigmas) and args.scheduler:
        raise InputError("--block-scan/--sigma-scan: not with --scheduler (they recompute from every sample here)")
    if args.plot_scan:
        if counts is None and sigmas is None:
            raise InputError("--plot-scan: give --block-scan and/or --sigma-scan")
        plot.image_format(args.plot_scan)
        plot.require_matplotlib()


def _options(args: argparse.Namespace, samples: Any, plan: Any) -> dict[str, Any]:
    return dict(bias=samples.bias, weights=samples.weights, temperature=judging.temperature(args),
                units=args.units, bins=plan.bins, ranges=plan.ranges, periodic=plan.periods, device=args.device,
                precision=args.precision, threads=args.threads, names=samples.names, tolerance=args.tolerance,
                method=args.method)


def run(args: argparse.Namespace, samples: Any, plan_grid: Callable[..., Any],
        result: Any) -> tuple[list[str], list[tuple[Path, Writer]]]:
    """(summary lines, [(plot path, writer)]) of the scans asked for, on the main surface's grid (plan_grid(args,
    samples), cli's) and bandwidth."""
    counts, sigmas = _counts(args.block_scan), _sigmas(args.sigma_scan)
    if counts is None and sigmas is None:
        return [], []
    opts = _options(args, samples, plan_grid(args, samples))
    block = scans.block_scan(samples.values, list(result.sigma), counts, args.min_depth, **opts) \
        if counts is not None else None
    sigma = scans.sigma_scan(samples.values, sigmas, args.min_depth, **opts) if sigmas is not None else None
    lines = ([block_table(block, result.units)] if block else []) + ([sigma_table(sigma, result.units)]
                                                                      if sigma else [])
    extra = [(Path(args.plot_scan), plot_writer(block, sigma, result.units, args.plot_scan))] \
        if args.plot_scan else []
    return lines, extra


def _pm(value: float, err: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.4g} +- {err:.2g}"


def block_table(points: Sequence[scans.BlockScanPoint], units: str) -> str:
    lines = [f"cyfes: block scan ({units}; '*': on the plateau of the F error)",
             f"{'blocks':>6} {'size':>8} {'F error':>10}  {'DeltaF 0->1':>18} {'barrier 0->1':>18}"]
    for p in points:
        lines.append(f"{p.blocks:>6} {p.block_size:>8} {p.f_error:>10.4g}{'*' if p.on_plateau else ' '} "
                     f"{_pm(p.delta_f, p.delta_f_error):>18} {_pm(p.barrier, p.barrier_error):>18}")
    return "\n".join(lines)


def sigma_table(points: Sequence[scans.SigmaScanPoint], units: str) -> str:
    lines = [f"cyfes: sigma scan ({units})", f"{'sigma':>18} {'basins':>6} {'DeltaF 0->1':>12} {'barrier':>12}"]
    for p in points:
        s = ",".join(f"{v:.4g}" for v in p.sigma)
        lines.append(f"{s:>18} {p.basins:>6} {p.delta_f:>12.4g} {p.barrier:>12.4g}")
    return "\n".join(lines)


def plot_writer(block: Any, sigma: Any, units: str, path: str) -> Writer:
    """One figure: the F error against block size, Delta F and barrier against block size, against sigma."""
    panels = (2 if block else 0) + (1 if sigma else 0)
    fig = plot._figure((4.5 * panels, 4.0))
    k = 1
    if block:
        size = [p.block_size for p in block]
        ax = fig.add_subplot(1, panels, k)
        ax.plot(size, [p.f_error for p in block], marker="o")
        ax.plot([p.block_size for p in block if p.on_plateau], [p.f_error for p in block if p.on_plateau],
                "s", mfc="none", ms=10, label="plateau")
        ax.set(xscale="log", xlabel="block size (samples)", ylabel=f"median SE of F ({units})",
               title="block scan")
        ax.legend(fontsize=8)
        ax2 = fig.add_subplot(1, panels, k + 1)
        ax2.errorbar(size, [p.delta_f for p in block], [p.delta_f_error for p in block], marker="o",
                     label="Delta F 0->1", capsize=3)
        ax2.errorbar(size, [p.barrier for p in block], [p.barrier_error for p in block], marker="s",
                     label="barrier 0->1", capsize=3)
        ax2.set(xscale="log", xlabel="block size (samples)", ylabel=units, title="with block errors")
        ax2.legend(fontsize=8)
        k += 2
    if sigma:
        ax3 = fig.add_subplot(1, panels, k)
        s = [p.sigma[0] for p in sigma]
        ax3.plot(s, [p.delta_f for p in sigma], marker="o", label="Delta F 0->1")
        ax3.plot(s, [p.barrier for p in sigma], marker="s", label="barrier 0->1")
        ax3.set(xlabel="sigma", ylabel=units, title="sigma scan")
        ax3.legend(fontsize=8)
    fig.tight_layout()
    fmt = plot.image_format(path)
    return lambda fh: fig.savefig(fh, format=fmt, dpi=120)
