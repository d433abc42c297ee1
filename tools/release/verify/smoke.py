"""The one smoke program every installed wheel and conda prefix runs, how it runs, and what a run concludes.

It runs under the loader's trace (trace.py); a run concludes in an `InstallResult`, the one result type of `verify`
for wheels and .conda packages.

It imports cyfes (and its GPU module when built with CUDA, so a broken RPATH fails here, GPU or not), asks for
the backends, computes a small FES on the CPU and compares it with an independent float64 numpy reference, and on
a usable GPU compares the GPU's answer with the CPU's. One JSON line carries the facts; the last line says
"fes ok <backend> ..." for people reading a log.
"""
from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import Problem
from ..program import SmokeProgram, as_program
from .trace import LD_DEBUG, LoaderTrace, inside_outside

SMOKE_TIMEOUT_S = 300
"""Longest a smoke run (or an installed entry point's --help) may take."""
REPORT_MARK = "CYFES-SMOKE "
CPU_TOLERANCE = 1e-6
"""Largest |F_cyfes - F_numpy| the smoke accepts (the default truncated sum stays well inside it)."""


def smoke_report(stdout: str, mark: str = REPORT_MARK) -> dict:
    """The facts of the program's report line ({} when a custom program printed none, or its line is no JSON
    object: a project's own convention is its own business)."""
    lines = [ln for ln in stdout.splitlines() if mark and ln.startswith(mark)]
    try:
        facts = json.loads(lines[-1][len(mark):]) if lines else {}
    except ValueError:
        return {}
    return facts if isinstance(facts, dict) else {}


@dataclass
class InstallResult:
    """The outcome of installing one artifact into one place and running the smoke program there."""

    artifact: str
    scheme: str
    """The place: a wheel's install scheme (venv, user, ...) or "conda" (a fresh prefix)."""
    python: str
    status: str = "ok"
    """ok | failed | limitation (the scheme drops files the artifact needs, said plainly)"""
    detail: str = ""
    """The smoke program's last line when ok, else what went wrong."""
    inside: list[str] = field(default_factory=list)
    """The artifact's objects and what they loaded from the install (relative to its root)."""
    outside: list[str] = field(default_factory=list)
    """Libraries the artifact loaded from outside the install that are not system libraries: failures."""
    loaded: dict[str, str] = field(default_factory=dict)
    """File name -> real path of every object the loader initialised."""
    smoke: dict = field(default_factory=dict)
    """The smoke program's report (smoke.smoke_report); {} for a custom program that prints none."""
    root: str = ""
    """The install's root: the venv, the --prefix/--target directory, the conda prefix."""
    entry_point: str = ""
    """The first line of an installed entry-point script, where one was checked (a conda prefix's bin/cyfes)."""
    problems: list[Problem] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def fail(self, *problems: Problem) -> None:
        """Record problems (none: nothing changes)."""
        if not problems:
            return
        self.problems += problems
        self.status, self.detail = "failed", "; ".join(p.message for p in self.problems)


def run_smoke(python: str, code: str | SmokeProgram, env: dict[str, str],
              workdir: Path) -> tuple[int, str, LoaderTrace]:
    """Run the smoke program (a snippet, or release.yaml's command) under the loader's trace: (exit code, stdout,
    trace)."""
    proc = subprocess.run(as_program(code).argv(python), capture_output=True, text=True, env=dict(env, LD_DEBUG=LD_DEBUG),
                          cwd=workdir, timeout=SMOKE_TIMEOUT_S, check=False)
    return proc.returncode, proc.stdout, LoaderTrace.parse(proc.stderr)


def judge_run(result: InstallResult, rc: int, out: str, trace: LoaderTrace, members: set[str], root: Path,
              allowed: frozenset[str], mark: str = REPORT_MARK) -> None:
    """What every verify concludes from a smoke run: it exited 0, and nothing the artifact loaded came from
    outside the install (system libraries aside)."""
    result.loaded = trace.by_name()
    result.smoke = smoke_report(out, mark)
    result.inside, result.outside = inside_outside(trace.closure(members, root), root, allowed)
    result.detail = out.strip().splitlines()[-1] if out.strip() else ""
    if rc != 0:
        result.fail(Problem(result.artifact, "smoke", f"exit {rc}: {' | '.join(trace.messages[-3:])}"))
    elif result.outside:
        result.fail(Problem(result.artifact, "", f"loaded from outside the installed tree: "
                                                f"{', '.join(result.outside)}"))
