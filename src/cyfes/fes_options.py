"""Options of `cyfes fes` that judge a surface rather than compute it: --kt, --sigma auto, --delta-f, and the
effective sample sizes in the summary. cli.py calls the three hooks below."""
from __future__ import annotations

import argparse
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from . import _units, analysis, formats
from ._errors import InputError


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("judging the estimate")
    g.add_argument("--kt", type=float, metavar="KT", help="kT in --units instead of -T/--temperature")
    g.add_argument("--delta-f", action="append", default=[], metavar="CV=VALUE", dest="delta_f",
                   help="print F(CV > VALUE) - F(CV < VALUE) (with its block error when --blocks > 1); repeatable")


def temperature(args: argparse.Namespace) -> float:
    """-T, or the temperature whose kT in --units is --kt."""
    if args.kt is None:
        return args.temperature
    if not args.kt > 0:
        raise InputError(f"--kt: must be > 0, got {args.kt}")
    if args.temperature != 300.0:
        raise InputError("--kt and -T/--temperature: give one of them")
    return args.kt / _units.BOLTZMANN[args.units]


def sigma(args: argparse.Namespace, samples: Any, periods: Sequence[Optional[float]], parse: Any) -> List[float]:
    """--sigma as given, or `auto`: Silverman's rule per CV with Kish's effective sample size (printed)."""
    if args.sigma.strip().lower() != "auto":
        return parse(args.sigma, samples.names)
    kT = _units.kT(temperature(args), args.units)
    logw = np.zeros(len(samples.values))
    if samples.bias is not None:
        logw = logw + samples.bias / kT
    if samples.weights is not None:
        with np.errstate(divide="ignore"):
            logw = logw + np.log(samples.weights)
    chosen = analysis.silverman(samples.values, logw, periods)
    if not args.quiet:
        print("cyfes: sigma auto (Silverman, n_eff %.6g): %s" % (analysis.kish(logw), ", ".join(
            f"{n}={s:.6g}" for n, s in zip(samples.names, chosen))))
    return [float(s) for s in chosen]


def _delta_specs(specs: Sequence[str]) -> List[Tuple[str, float]]:
    out = []
    for spec in specs:
        key, eq, value = spec.partition("=")
        if not eq:
            raise InputError(f"--delta-f {spec}: expected CV=VALUE, e.g. phi=0")
        out.append((key.strip(), formats.parse_number(value, f"--delta-f {key}")))
    return out


def check(args: argparse.Namespace) -> None:
    _delta_specs(args.delta_f)


def report(args: argparse.Namespace, result: Any) -> List[str]:
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
    return lines
