"""The command-line flags of metadynamics reweighting from HILLS (metad_reweight.py), and their checks before any
work, with no numpy: the parsers of `cyfes fes`, `basins` and `path` add them without loading the reweighting."""
from __future__ import annotations

import argparse
from typing import Any

from .._errors import InputError

#: The biases to reweight with: V(s,t) - c(t), or the final bias V(s).
MODES = ("ct", "final")


def add_arguments(g: Any) -> None:
    g.add_argument("--hills", nargs="+", metavar="HILLS", help="reweight a metadynamics run from its HILLS "
                   "file(s) (walkers merged by time) instead of an rbias column (docs/metad-reweighting.md)")
    g.add_argument("--reweight", choices=MODES, help="with --hills: ct (V(s,t) - c(t), default) or final "
                   "(the final bias)")
    g.add_argument("--biasfactor", type=float, help="with --hills: the well-tempered bias factor when the "
                   "HILLS files have no biasf column")
    g.add_argument("--rct-min", help="with --reweight ct: grid minimum per CV for c(t) (comma-separated)")
    g.add_argument("--rct-max", help="with --reweight ct: grid maximum per CV for c(t)")
    g.add_argument("--rct-bin", help="with --reweight ct: grid bins per CV for c(t)")


def check_arguments(args: argparse.Namespace) -> None:
    if args.hills is None:
        for flag in ("reweight", "biasfactor", "rct_min", "rct_max", "rct_bin"):
            if getattr(args, flag) is not None:
                raise InputError(f"--{flag.replace('_', '-')}: needs --hills")
    elif args.reweight == "final" and any(getattr(args, f) is not None for f in ("rct_min", "rct_max", "rct_bin")):
        raise InputError("--rct-min/--rct-max/--rct-bin: only with --reweight ct (final has no c(t))")
    elif getattr(args, "scheduler", None):
        raise InputError("--hills: not with --scheduler (the hills are summed at the samples here)")
