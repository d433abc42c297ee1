"""`cyfes fes --windows FILE.yaml`: umbrella windows (cyfes.umbrella) as the samples of `cyfes fes`, weighted by
MBAR (the flag is flags.add_windows_arguments). fes.py (and options.py) call check and load."""
from __future__ import annotations

import argparse
from typing import Any, Callable

import numpy as np

from .. import _units
from .._errors import InputError
from ..workflows import umbrella
from . import judging


def check(args: argparse.Namespace) -> None:
    """INPUT files or --windows, not both; read the windows file, whose window files become the run's inputs."""
    if not args.windows:
        if not args.inputs:
            raise InputError("fes: give INPUT file(s) or --windows FILE.yaml")
        return
    if args.inputs:
        raise InputError("--windows: the window files come from the windows file; give no INPUT files")
    for flag, value in (("--cv", args.cv), ("--bias", args.bias), ("--weights", args.weights),
                        ("--scheduler", args.scheduler)):
        if value:
            raise InputError(f"--windows and {flag}: the windows file names the CVs; MBAR gives the weights")
    args.window_set = umbrella.read_windows(args.windows, getattr(args, "input_format", None))
    args.inputs = [args.windows] + args.window_set.files


def load(args: argparse.Namespace, make_samples: Callable[..., Any], plan_grid: Callable[..., Any]) -> Any:
    """The concatenated windows (after --skip/--stride in each) with their MBAR weights, as cli.Samples."""
    ws = args.window_set
    if args.skip < 0 or args.stride < 1:
        raise InputError("--skip must be >= 0 and --stride >= 1")
    windows = [umbrella.Window(w.samples[args.skip::args.stride], w.centre, w.kappa, w.source,
                               None if w.biases is None else w.biases[args.skip::args.stride]) for w in ws.windows]
    empty = [w.source for w in windows if len(w.samples) == 0]
    if empty:
        raise InputError(f"{empty[0]}: no samples left after --skip {args.skip}")
    samples = make_samples(list(ws.names), np.concatenate([w.samples for w in windows]), None, None, {})
    kT = _units.kT(judging.temperature(args), args.units)
    logw, f_k = umbrella.mbar_log_weights(windows, kT, plan_grid(args, samples).periods)
    samples.weights = np.exp(logw - logw.max())
    if not args.quiet:
        print(f"cyfes: MBAR over {len(windows)} windows; window free energies (kT, first = 0): "
              + " ".join(f"{f:.4g}" for f in f_k))
    return samples
