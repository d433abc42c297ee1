"""The `cyfes` command (also `python -m cyfes`): the subcommands of cyfes.commands, and CyFES 4.5's command line.

Every expected failure is one line on stderr, `cyfes: error: ...`, with exit code 2 for bad input and 1 for anything
else cyfes reports (no GPU, no matplotlib); nothing is written when a run fails."""
from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from .._errors import CyfesError, InputError
from ..io import output as _output
from . import basins, cyfes45, demo, fes, info, options, path, reweight, state, sum_hills

MAIN_DESCRIPTION = """\
cyfes: free energy surfaces from biased molecular dynamics by reweighted Gaussian kernel density
estimation, on GPUs (CUDA) and CPUs (OpenMP).

CyFES 4.5 command lines (python -m cyfes -i data.txt -g 20,20,20 -o fes.cub) are still understood."""


MAIN_EPILOG = """\
commands:
  cyfes fes INPUT ...     compute a free energy surface (cyfes fes --help)
  cyfes info [--json]     version, build options, backends and GPUs
  cyfes demo [-o DIR]     compute and plot the FES of the bundled example data
  cyfes sum_hills ...     plumed sum_hills, flag for flag (cyfes sum_hills --help)
  cyfes reweight ...      FES_from_Reweighting.py, flag for flag (cyfes reweight --help)
  cyfes state ...         FES_from_State.py (OPES state files), flag for flag (cyfes state --help)
  cyfes basins | path     basins, Delta F and barriers of a surface (cyfes basins --help)"""

#: The subcommands, in the order --help lists them; each module has configure_parser(sub) and run(args).
COMMANDS = (fes, info, demo, sum_hills, reweight, state, basins, path)


class _Version(argparse.Action):
    """--version, the version looked up only when asked (importlib.metadata costs a third of `cyfes --help`)."""

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        from .. import __version__  # deferred: its lookup (importlib.metadata) costs a third of --help
        print(f"cyfes {__version__}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = options.Parser(prog=options.PROG, description=MAIN_DESCRIPTION, epilog=MAIN_EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=options.Parser)
    for command in COMMANDS:
        command.configure_parser(sub)
    return parser


def _error(message: str) -> None:
    text = " ".join(str(message).split())  # one line, whatever the message held
    print(f"{options.PROG}: error: {text}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` (default sys.argv[1:]); returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    handlers = _output.install_signal_handlers()
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning  # one line each, like the errors
            return _main(args)
    finally:
        _output.restore_signal_handlers(handlers)


def _show_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
                  line: str | None = None) -> None:
    print(f"{options.PROG}: warning: {' '.join(str(message).split())}", file=sys.stderr)


def _main(args: list[str]) -> int:
    try:
        if cyfes45.is_legacy(args):
            return cyfes45.run(args)
        parser = build_parser()
        ns = parser.parse_args(args)
        if not hasattr(ns, "run"):
            parser.print_help(sys.stderr)
            return 2
        return int(ns.run(ns))
    except (options.UsageError, InputError) as exc:
        _error(str(exc))
        return 2
    except CyfesError as exc:
        _error(str(exc))
        return 1
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except _output.Terminated as exc:
        _error(f"terminated by {exc}")
        return 128 + exc.signum
    except MemoryError:
        _error("out of memory; use fewer bins, fewer samples (--stride) or --precision float32")
        return 1
    finally:
        _output.discard_all()
