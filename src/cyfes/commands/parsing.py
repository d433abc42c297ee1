"""The argument parser every command uses (errors in one line), its error type and the program's name: what
the `cyfes` start-up needs before it knows the command, so nothing here imports numpy or the engine."""
from __future__ import annotations

import argparse
import re

PROG = "cyfes"

#: Command-line words that start with '-' but are values (-1.5, -.5, -pi/2, -pi,pi), not options: argparse alone
#: knows only plain negative numbers.
NEGATIVE_VALUE = re.compile(r"^-(\.?\d|pi)", re.IGNORECASE)


class UsageError(Exception):
    """A command line argparse could not parse; reported in one line like every other error."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see `{self.prog} --help`)")
