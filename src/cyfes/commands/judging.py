"""Options of `cyfes fes` that judge a surface rather than compute it: --kt, --sigma auto, --delta-f,
--error-method, --running, --plot-convergence, and the effective sample sizes in the summary (the flags are
flags.add_judging_arguments). fes.py (and options.py) call the hooks below (check, temperature, sigma, finish,
extra_outputs, report)."""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO, Any, Callable

import numpy as np

from .. import _units, analysis
from .._errors import InputError
from ..engine import streamed
from ..io import formats, plot
from . import answer_tables


def temperature(args: argparse.Namespace) -> float:
    """-T, or the temperature whose kT in --units is --kt."""
    if args.kt is None:
        return args.temperature
    if not args.kt > 0:
        raise InputError(f"--kt: must be > 0, got {args.kt}")
    if args.temperature != 300.0:
        raise InputError("--kt and -T/--temperature: give one of them")
    return args.kt / _units.BOLTZMANN[args.units]


def sigma(args: argparse.Namespace, samples: Any, periods: Sequence[float | None], parse: Any) -> list[float]:
    """--sigma as given, or `auto`: Silverman's rule per CV with Kish's effective sample size (printed). Streamed
    samples (a Stream) are read once more for it, chunk by chunk, their spreads merged exactly."""
    if args.sigma.strip().lower() != "auto":
        return parse(args.sigma, samples.names)
    kT = _units.kT(temperature(args), args.units)
    parts = samples.values if isinstance(samples.values, streamed.Stream) else [
        (samples.values, samples.bias, samples.weights)]
    spread = None
    for values, bias, weights in parts:
        spread = analysis.merge_spreads(spread, analysis.spread_of(values, _log_weights(len(values), bias, weights,
                                                                                        kT), periods))
    chosen, n_eff = analysis.silverman_of(spread, periods)
    if not args.quiet:
        print("cyfes: sigma auto (Silverman, n_eff {:.6g}): {}".format(n_eff, ", ".join(
            f"{n}={s:.6g}" for n, s in zip(samples.names, chosen))))
    return [float(s) for s in chosen]


def _log_weights(n: int, bias: np.ndarray | None, weights: np.ndarray | None, kT: float) -> np.ndarray:
    """log of each sample's weight: V/kT for its bias V, plus log of its weight."""
    logw = np.zeros(n)
    if bias is not None:
        logw = logw + bias / kT
    if weights is not None:
        with np.errstate(divide="ignore"):
            logw = logw + np.log(weights)
    return logw


def _delta_specs(specs: Sequence[str]) -> list[tuple[str, float]]:
    out = []
    for spec in specs:
        key, eq, value = spec.partition("=")
        if not eq:
            raise InputError(f"--delta-f {spec}: expected CV=VALUE, e.g. phi=0")
        out.append((key.strip(), formats.parse_number(value, f"--delta-f {key}")))
    return out


def check(args: argparse.Namespace) -> None:
    """Fail early; --running K makes the K chunks the blocks."""
    _delta_specs(args.delta_f)
    if args.kt is not None and not (args.kt > 0 and np.isfinite(args.kt)):
        raise InputError(f"--kt: must be a finite number > 0, got {args.kt}")
    if args.min_depth is not None and not (args.min_depth >= 0 and np.isfinite(args.min_depth)):
        raise InputError(f"--min-depth: expected a number >= 0, got {args.min_depth}")
    if args.running is not None:
        if args.running < 2:
            raise InputError(f"--running: needs at least 2 estimates, got {args.running}")
        if args.blocks not in (1, args.running):
            raise InputError("--running K and --blocks N: the running chunks are the blocks; give N = K or one")
        args.blocks = args.running
    if args.plot_convergence:
        if args.blocks < 2:
            raise InputError("--plot-convergence: needs --running K or --blocks N")
        plot.image_format(args.plot_convergence)
        plot.require_matplotlib()


def check_delta_cvs(args: argparse.Namespace, names: Sequence[str]) -> None:
    """Each --delta-f names a CV of the run, checked once the CVs are known and before any work (quiet runs
    too, though they print no Delta F)."""
    for cv, _ in _delta_specs(args.delta_f):
        if cv not in names:
            raise InputError(f"--delta-f {cv}: not one of the CVs ({', '.join(names)})")


def finish(args: argparse.Namespace, result: Any) -> Any:
    if args.error_method == "weighted" and result.block_values is not None:
        return replace(result, error=analysis.weighted_block_error(result))
    return result


def _running_name(path: str, k: int) -> str:
    p = Path(path)
    return str(p.with_name(f"{p.stem}_{k}{p.suffix}"))


#: Most --running estimates: each is a file per -o, and their names are all checked before the inputs are read.
MAX_RUNNING = 100_000


def output_names(args: argparse.Namespace) -> list[str]:
    """The files these options add to the run's -o files: each running estimate's, then the convergence plot
    (checked by the one writer's rules with the others, before any work)."""
    if args.running is not None and args.running > MAX_RUNNING:
        raise InputError(f"--running: at most {MAX_RUNNING} estimates (a file each), got {args.running}")
    names = [_running_name(path, k) for k in range(1, (args.running or 0) + 1) for path in args.output]
    return names + ([args.plot_convergence] if args.plot_convergence else [])


def _chunk_counts(result: Any) -> np.ndarray:
    return np.cumsum([len(c) for c in np.array_split(np.arange(result.n_samples), result.blocks)])


def extra_outputs(args: argparse.Namespace, result: Any) -> list[tuple[Path, Callable[[IO[bytes]], None]]]:
    """(path, writer) of each running estimate and the convergence plot, staged with the run's other outputs."""
    outputs: list[tuple[Path, Callable[[IO[bytes]], None]]] = []
    if args.running is None and not args.plot_convergence:
        return outputs
    surfaces = analysis.running(result)
    counts = _chunk_counts(result)
    if args.running is not None:
        for k, (values, n) in enumerate(zip(surfaces, counts), start=1):
            step = replace(result, values=values, error=None, n_samples=int(n), ess=None, blocks_effective=None,
                           block_values=None, block_log_weights=None)
            outputs += [(_running_name(path, k), formats.result_writer(step, path, args.format))
                        for path in args.output]
    if args.plot_convergence:
        outputs.append((Path(args.plot_convergence), _plot_convergence(args, result, surfaces, counts)))
    return outputs


def _plot_convergence(args: argparse.Namespace, result: Any, surfaces: list[np.ndarray],
                      counts: np.ndarray) -> Callable[[IO[bytes]], None]:
    """F at the final minimum and at its 25% and 50% quantile points, and each --delta-f, against samples."""
    plot.require_matplotlib()
    final = surfaces[-1].ravel()
    finite = np.flatnonzero(np.isfinite(final))
    order = finite[np.argsort(final[finite])]
    picks = [order[0], order[len(order) // 4], order[len(order) // 2]]
    specs = _delta_specs(args.delta_f)
    fig = plot._figure((10.0 if specs else 5.5, 4.0))
    ax = fig.add_subplot(1, 2 if specs else 1, 1)
    names, pts = formats.cv_names(result), result.points()
    for j in picks:
        ax.plot(counts, [s.ravel()[j] for s in surfaces], marker="o",
                label=", ".join(f"{n}={v:.3g}" for n, v in zip(names, pts[j])))
    ax.set(xlabel="samples", ylabel=f"F ({result.units})", title="F at fixed points")
    ax.legend(fontsize=8)
    if specs:
        ax2 = fig.add_subplot(1, 2, 2)
        for cv, at in specs:
            d = analysis.cv_index(result, cv)
            ax2.plot(counts, [analysis.delta_f_of(s, result.axes[d], d, at, result.kT) for s in surfaces],
                     marker="o", label=f"{cv} = {at:g}")
        ax2.set(xlabel="samples", ylabel=f"Delta F ({result.units})", title="Delta F")
        ax2.legend(fontsize=8)
    fig.tight_layout()
    fmt = plot.image_format(args.plot_convergence)
    return lambda fh: fig.savefig(fh, format=fmt, dpi=120)


def report(args: argparse.Namespace, result: Any) -> list[str]:
    """Lines for the summary: effective sample sizes and each --delta-f."""
    lines = []
    if result.ess is not None:
        lines.append(f"cyfes: effective sample size {result.ess:.6g} of {result.n_samples}"
                     + (f"; effective number of blocks {result.blocks_effective:.6g} of {result.blocks}"
                        if result.blocks_effective is not None else ""))
    for cv, at in _delta_specs(args.delta_f):
        value, err = result.delta_f(cv, at)
        lines.append(f"cyfes: DeltaF({cv} > {at:g}) - ({cv} < {at:g}) = {value:.6g}"
                     + (f" +- {err:.2g}" if err is not None else "") + f" {result.units}")
    if args.basins:
        lines.append(answer_tables.basins_table(result, result.basins(args.min_depth)))
    return lines
