"""`cyfes demo`: the surface and picture of the example data shipped with cyfes, and the command line that
gives the same."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .._errors import CyfesError, InputError
from ..io import output as _output
from . import flags
from .parsing import Parser

DEMO_FILE = "demo_colvar.dat"


#: The demo's settings (see scripts/make_demo_data.py for the data).
DEMO_SETTINGS = {"cv": "x,y", "bias": "static.bias", "sigma": "0.03", "bins": "120,100",
                 "range": ["x=-1.8,1.8", "y=-1.0,2.0"], "units": "kJ/mol", "temperature": 300.0,
                 "plot_max": "60"}


def configure_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", description="Compute the free energy surface of the example data shipped with cyfes "
                                   "(a biased 2-D simulation of a double-well potential) and plot it.",
                       epilog="example:\n  cyfes demo -o /tmp/cyfes-demo",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output-dir", default="cyfes-demo", metavar="DIR",
                   help="directory for demo_fes.dat, demo_fes.png and a copy of the data (created; "
                        "default: ./cyfes-demo)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, gpu, cuda:N")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(run=run)


def _fes_parser() -> argparse.ArgumentParser:
    """The flags of `cyfes fes`, which the demo runs with its own settings."""
    p = Parser(prog="cyfes demo")
    flags.add_fes_arguments(p)
    return p


def demo_data_path() -> Path:
    from importlib import resources  # deferred: only the demo needs it, and `cyfes --help` runs this module
    path = Path(str(resources.files("cyfes").joinpath("data", DEMO_FILE)))
    if not path.is_file():
        raise CyfesError(f"the demo data {DEMO_FILE} is missing from this installation ({path})")
    return path


def run(args: argparse.Namespace) -> int:
    out = Path(args.output_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a directory")
    data = demo_data_path()
    s = DEMO_SETTINGS
    fes_args = _fes_parser().parse_args(
        [str(data), "--cv", s["cv"], "--bias", s["bias"], "--sigma", s["sigma"], "--bins", s["bins"],
         "--units", s["units"], "-T", str(s["temperature"]), "--device", args.device, "--plot-max", s["plot_max"]]
        + [f"--range={r}" for r in s["range"]])
    made = _make_dirs(out)
    try:
        return _demo_into(args, out, data, fes_args)
    except BaseException:
        for d in reversed(made):  # a refused or failed demo leaves no directory behind
            try:
                d.rmdir()
            except OSError:
                break
        raise


def _make_dirs(out: Path) -> list[Path]:
    """Create `out` and its missing parents; return those created, outermost first."""
    missing = [p for p in [out, *out.parents] if not p.exists()][::-1]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        for d in reversed(missing):
            try:
                d.rmdir()
            except OSError:
                pass
        raise InputError(f"-o {out}: cannot create the directory: {exc.strerror or exc}") from None
    return missing


def _demo_into(args: argparse.Namespace, out: Path, data: Path, fes_args: argparse.Namespace) -> int:
    from ..io import plot  # deferred: numpy and the engine, which `cyfes demo --help` does not need
    from . import options  # deferred: as plot
    s = DEMO_SETTINGS
    fes_args.output = [str(out / "demo_fes.dat")]
    fes_args.force = False
    try:
        plot.require_matplotlib()
        fes_args.plot = str(out / "demo_fes.png")
    except plot.PlotUnavailable as exc:
        print(f"cyfes: warning: no picture: {exc}", file=sys.stderr)
    options.check_outputs(fes_args)
    _output.check_target(out / DEMO_FILE, [data])
    samples = options.load_samples(fes_args)
    result = options.compute(fes_args, samples, options.plan_grid(fes_args, samples))
    copy = data.read_bytes()
    written = options.write_outputs(result, fes_args, [(out / DEMO_FILE, lambda fh: fh.write(copy))])
    if not args.quiet:
        print(options.summary(result, written))
        print(f"cyfes: the same from the command line: cyfes fes {out / DEMO_FILE} --cv {s['cv']} --bias "
              f"{s['bias']} --sigma {s['sigma']} --bins {s['bins']} "
              + " ".join(f"--range {r}" for r in s["range"]) + f" -o fes.dat --plot fes.png --plot-max {s['plot_max']}")
    return 0
