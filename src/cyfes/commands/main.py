"""The `cyfes` command (also `python -m cyfes`): the subcommands of cyfes.commands, and CyFES 4.5's command line.

Every expected failure is one line on stderr, `cyfes: error: ...`, with exit code 2 for bad input and 1 for anything
else cyfes reports (no GPU, no matplotlib); nothing is written when a run fails."""
from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from .._errors import CyfesError, InputError
from ..io import output as _output
from . import cyfes45
from .parsing import PROG, Parser, UsageError

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

#: The subcommands, in the order --help lists them: (name, module, the line --help shows). Each module has
#: configure_parser(sub) and run(args) and is imported only when its command is parsed: the modules import numpy
#: and the engine, which `cyfes --help` does not need (they cost it most of its time).
COMMANDS = (
    ("fes", "fes", "compute a free energy surface"),
    ("info", "info", "version, build options, backends and GPUs"),
    ("demo", "demo", "compute and plot the FES of the bundled example data"),
    ("sum_hills", "sum_hills", "sum metadynamics hills as plumed sum_hills does"),
    ("reweight", "reweight", "FES by reweighting, as FES_from_Reweighting.py"),
    ("state", "state", "FES of an OPES state file, as FES_from_State.py"),
    ("basins", "basins", "basins, their free energies and Delta F"),
    ("path", "path", "minimum free energy path and barrier"),
)
_MODULES = {name: module for name, module, _ in COMMANDS}


class _Version(argparse.Action):
    """--version, the version looked up only when asked (importlib.metadata costs a third of `cyfes --help`)."""

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        from .. import __version__  # deferred: its lookup (importlib.metadata) costs a third of --help
        print(f"cyfes {__version__}")
        parser.exit()


def command_parser(name: str) -> argparse.ArgumentParser:
    """The parser of the command `name`, built by its module's configure_parser (the module is imported here)."""
    module = importlib.import_module(f"{__package__}.{_MODULES[name]}")
    scratch = argparse.ArgumentParser(add_help=False).add_subparsers(prog=PROG, parser_class=Parser)
    module.configure_parser(scratch)
    return scratch.choices[name]


class _Commands(argparse._SubParsersAction):
    """The COMMAND argument: each command starts as a placeholder parser (its name and help line, all that
    `cyfes --help` shows) and gets its own parser when its name is parsed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.built: set[str] = set()  # the commands whose own parser replaced the placeholder

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        name = values[0]
        if name in _MODULES and name not in self.built:
            self.choices[name] = command_parser(name)
            self.built.add(name)
        super().__call__(parser, namespace, values, option_string)


def build_parser(lazy: bool = False) -> argparse.ArgumentParser:
    """The `cyfes` parser with every command's parser, or with `lazy` only the one a command line names (what
    main() parses with: `cyfes --help` then imports no command module)."""
    parser = Parser(prog=PROG, description=MAIN_DESCRIPTION, epilog=MAIN_EPILOG,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    sub = parser.add_subparsers(action=_Commands, dest="command", metavar="COMMAND", parser_class=Parser, prog=PROG)
    for name, _, line in COMMANDS:
        sub.add_parser(name, help=line)
        if not lazy:
            sub.choices[name] = command_parser(name)
            sub.built.add(name)
    return parser


def _error(message: str) -> None:
    text = " ".join(str(message).split())  # one line, whatever the message held
    print(f"{PROG}: error: {text}", file=sys.stderr)


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
    print(f"{PROG}: warning: {' '.join(str(message).split())}", file=sys.stderr)


def _main(args: list[str]) -> int:
    try:
        if cyfes45.is_legacy(args):
            return cyfes45.run(args)
        parser = build_parser(lazy=True)
        ns = parser.parse_args(args)
        if not hasattr(ns, "run"):
            parser.print_help(sys.stderr)
            return 2
        return int(ns.run(ns))
    except (UsageError, InputError) as exc:
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
