"""CyFES 4.5's command line (`python -m cyfes -i data.txt -g 20,20,20 -o fes.cub`), told apart from the
subcommands by main.py; the work is cyfes.workflows.cyfes45's."""
from __future__ import annotations

import sys
from collections.abc import Sequence

from ..workflows import cyfes45


def is_legacy(argv: Sequence[str]) -> bool:
    """Whether argv is a CyFES 4.5 command line."""
    return cyfes45.is_legacy(argv)


def run(argv: Sequence[str]) -> int:
    opts = cyfes45.parse_legacy(argv)
    for warning in opts.warnings:
        print(f"cyfes: warning: {warning}", file=sys.stderr)
    shown = len(opts.warnings)
    written = cyfes45.run_legacy(opts)
    for warning in opts.warnings[shown:]:  # found in the data (a bias CyFES 4.5's float32 weights overflow)
        print(f"cyfes: warning: {warning}", file=sys.stderr)
    print("cyfes (CyFES 4.5 mode): wrote " + ", ".join(str(p) for p in written))
    return 0
