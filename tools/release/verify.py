"""`verify`: install an artifact into fresh environments, one per scheme, run the smoke code under the loader's
trace (LD_DEBUG=libs) and fail if any library came from outside the installed tree.

Why the trace: the build host has its own CUDA in ld.so.cache (/usr/local/cuda-13.0/lib); a wheel with a broken
RPATH would still import here by picking that up. The trace says where each object really came from.

Schemes: venv (no system site-packages), user (PYTHONUSERBASE), pip --prefix, pip --target, and Debian's
posix_local layout installed with pypa/installer and a custom scheme (installer is what pip uses inside).
Dependencies come from a wheelhouse under build/ so reruns work offline.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .errors import VerifyError
from .layouts import installed_path, layout

WHEELHOUSE = Path("build/release/wheelhouse")
PIP_TIMEOUT_S = 600
SMOKE_TIMEOUT_S = 300
TRACE_RE = re.compile(r"calling init: (\S+)")
NEEDED_RE = re.compile(r"file=(\S+) \[\d+\];\s+needed by (\S+)")


@dataclass
class SchemeResult:
    """The outcome of one install + smoke run."""

    artifact: str
    scheme: str
    python: str
    status: str
    """ok | failed | limitation (the scheme drops files the artifact needs, said plainly)"""
    detail: str = ""
    inside: list[str] = field(default_factory=list)
    """The artifact's objects and what they loaded from the installed tree (relative to its root)."""
    outside: list[str] = field(default_factory=list)
    """Libraries the artifact loaded from outside the installed tree that are not system libraries: failures."""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status != "failed"


@dataclass(frozen=True)
class Installed:
    """A fresh environment holding the artifact."""

    root: Path
    python: str
    env: dict[str, str] = field(hash=False)


def _run(cmd: list[str], what: str, env: dict[str, str] | None = None, timeout: int = PIP_TIMEOUT_S) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-8:]
        raise VerifyError([f"{what} failed: {' '.join(cmd[:6])}...\n    " + "\n    ".join(tail)])
    return proc.stdout


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment minus everything that would let a library or module leak in."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LD_LIBRARY_PATH", "PYTHONHOME",
                                                           "VIRTUAL_ENV", "PYTHONUSERBASE", "LD_PRELOAD")}
    env.update(PYTHONNOUSERSITE="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    env.update(extra)
    return env


def pyver(python: str) -> str:
    return _run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], "python --version").strip()


def _pip(python: str, *args: str, env: dict[str, str] | None = None, wheelhouse: Path = WHEELHOUSE,
         into: str | None = None) -> str:
    """The interpreter's own pip (this tool's pip 26 no longer runs on 3.8), offline from the wheelhouse;
    `into` is another interpreter (a venv) that pip installs for through --python."""
    target = ["--python", into] if into else []
    cmd = [python, "-m", "pip", *target, "install", "--no-index", "--find-links", str(wheelhouse),
           "--no-cache-dir", *args]
    return _run(cmd, "pip install", env or clean_env())


def fill_wheelhouse(requirements: Sequence[str], version: str, wheelhouse: Path = WHEELHOUSE) -> None:
    """Binary wheels of the requirements for Python X.Y: offline from the wheelhouse if it has them, else PyPI."""
    if not requirements:
        return
    wheelhouse.mkdir(parents=True, exist_ok=True)
    base = [sys.executable, "-m", "pip", "download", "--only-binary", ":all:", "--python-version", version,
            "--dest", str(wheelhouse), "--find-links", str(wheelhouse), *requirements]
    offline = subprocess.run(base + ["--no-index"], capture_output=True, text=True, check=False)
    if offline.returncode != 0:
        _run(base, f"pip download for Python {version}", clean_env())


def install(wheel: Path, scheme: str, python: str, root: Path, wheelhouse: Path = WHEELHOUSE) -> Installed:
    """Install `wheel` (and its dependencies) into a fresh `root` with `scheme`; return how to run Python there."""
    v = pyver(python)
    lay = layout(scheme, v)
    if scheme == "venv":
        _run([python, "-m", "venv", "--without-pip", str(root)], "python -m venv")
        _pip(python, str(wheel), wheelhouse=wheelhouse, into=str(root / "bin" / "python"))
        return Installed(root, str(root / "bin" / "python"), clean_env())
    if scheme == "user":
        env = clean_env(PYTHONUSERBASE=str(root))
        env.pop("PYTHONNOUSERSITE")
        _pip(python, "--user", "--ignore-installed", str(wheel), env=env, wheelhouse=wheelhouse)
        return Installed(root, python, env)
    if scheme == "prefix":
        _pip(python, "--prefix", str(root), "--ignore-installed", str(wheel), wheelhouse=wheelhouse)
        return Installed(root, python, clean_env(PYTHONPATH=str(root / lay.site_packages)))
    if scheme == "target":
        _pip(python, "--target", str(root), str(wheel), wheelhouse=wheelhouse)
        return Installed(root, python, clean_env(PYTHONPATH=str(root / lay.site_packages)))
    if scheme == "debian":
        return _install_debian(wheel, python, v, root, wheelhouse)
    raise VerifyError([f"verify: unknown scheme {scheme!r}"])


INSTALLER_SCRIPT = """
import sys
from installer import install
from installer.destinations import SchemeDictionaryDestination
from installer.sources import WheelFile
wheel, python, *pairs = sys.argv[1:]
scheme = dict(p.split("=", 1) for p in pairs)
with WheelFile.open(wheel) as source:
    install(source, SchemeDictionaryDestination(scheme, interpreter=python, script_kind="posix"),
            {"INSTALLER": b"cyfes-release-verify"})
"""


def _install_debian(wheel: Path, python: str, v: str, root: Path, wheelhouse: Path) -> Installed:
    """Debian's posix_local (/usr/local/lib/pythonX.Y/dist-packages) under `root`/usr, through pypa/installer."""
    lay = layout("debian", v)
    usr = root / "usr"
    dist = wheel.name.split("-")[0]
    scheme = {k: str(usr / p.replace("{dist}", dist)) for k, p in lay.paths.items()}
    site = Path(scheme["platlib"])
    deps = _requires(wheel)
    if deps:  # dependencies go to the same dist-packages; only our wheel's placement is under test
        _pip(python, "--target", str(site), *deps, wheelhouse=wheelhouse)
    _run([sys.executable, "-c", INSTALLER_SCRIPT, str(wheel), python, *(f"{k}={p}" for k, p in scheme.items())],
         "installer (Debian scheme)")
    return Installed(root, python, clean_env(PYTHONPATH=str(site)))


def _requires(wheel: Path) -> list[str]:
    from .wheel import read_wheel
    return [r for r in read_wheel(wheel).requires_dist if "extra ==" not in r]


def loaded_objects(trace: str) -> list[str]:
    """Paths of every object the loader initialised (LD_DEBUG=libs prints "calling init: <path>")."""
    return list(dict.fromkeys(m.group(1) for m in TRACE_RE.finditer(trace)))


def needed_edges(trace: str) -> dict[str, list[str]]:
    """Loader trace "file=<lib> [0];  needed by <path> [0]" as path -> [lib names]."""
    edges: dict[str, list[str]] = {}
    for m in NEEDED_RE.finditer(trace):
        edges.setdefault(m.group(2), []).append(m.group(1))
    return edges


def artifact_closure(trace: str, members: set[str], root: Path) -> list[str]:
    """Every object loaded because of the artifact: its own files (by name, under root) and what they needed."""
    loaded = loaded_objects(trace)
    by_name = {os.path.basename(p): p for p in loaded}
    root_s = os.path.realpath(root) + "/"
    todo = [p for p in loaded if os.path.basename(p) in members and os.path.realpath(p).startswith(root_s)]
    seen: list[str] = []
    edges = needed_edges(trace)
    while todo:
        p = todo.pop(0)
        if p in seen:
            continue
        seen.append(p)
        todo += [by_name[n] for n in edges.get(p, []) if n in by_name]
    return seen


def classify(paths: list[str], root: Path, allowed: frozenset[str]) -> tuple[list[str], list[str]]:
    """(inside the installed tree, outside it) - outside is fine only for system libraries (manylinux policy)."""
    root_s, inside, outside = os.path.realpath(root) + "/", [], []
    for p in paths:
        real = os.path.realpath(p)
        if real.startswith(root_s):
            inside.append(os.path.relpath(real, root_s))
        elif os.path.basename(p) not in allowed:
            outside.append(p)
    return inside, outside


def smoke(inst: Installed, code: str, workdir: Path) -> tuple[int, str, str]:
    # libs: where each object was searched and found; files: who needed it ("needed by"), for the closure.
    env = dict(inst.env, LD_DEBUG="libs,files")
    proc = subprocess.run([inst.python, "-c", code], capture_output=True, text=True, env=env, cwd=workdir,
                          timeout=SMOKE_TIMEOUT_S, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def _limitation(wheel: Path, scheme: str, v: str) -> str:
    """The scheme's own reason when it drops members of this wheel (pip --target and .data/data)."""
    from .wheel import read_wheel
    lay = layout(scheme, v)
    w = read_wheel(wheel)
    dropped = [m for m in w.members if installed_path(lay, m, w.dist).path is None]
    return f"{lay.dropped_reason}: {', '.join(dropped)}" if dropped else ""


def verify_scheme(wheel: Path, scheme: str, python: str, code: str, wheelhouse: Path = WHEELHOUSE) -> SchemeResult:
    """Install and smoke-test one wheel in one scheme, in a temp dir removed afterwards."""
    start, v = time.monotonic(), pyver(python)
    with tempfile.TemporaryDirectory(prefix=f"cyfes-verify-{scheme}-") as tmp:
        root, run_dir = Path(tmp) / "root", Path(tmp) / "cwd"
        run_dir.mkdir()
        try:
            inst = install(wheel, scheme, python, root, wheelhouse)
        except VerifyError as exc:
            return SchemeResult(wheel.name, scheme, v, "failed", str(exc), seconds=time.monotonic() - start)
        rc, out, err = smoke(inst, code, run_dir)
        inside, outside = classify(artifact_closure(err, _member_names(wheel), root), root, _system().allowlist)
    result = SchemeResult(wheel.name, scheme, v, "ok", out.strip().splitlines()[-1] if out.strip() else "",
                          inside, outside, time.monotonic() - start)
    if rc != 0 or outside:
        limit = _limitation(wheel, scheme, v)
        errors = [ln for ln in err.splitlines() if not re.match(r"^\s*\d+:", ln)][-3:]
        why = f"loaded from outside the installed tree: {', '.join(outside)}" if outside else " | ".join(errors)
        result.status, result.detail = ("limitation", limit) if limit and rc != 0 else ("failed", why)
    return result


def _member_names(wheel: Path) -> set[str]:
    from .wheel import read_wheel, shared_objects
    return {n.rsplit("/", 1)[-1] for n in shared_objects(read_wheel(wheel))}


_SYSTEM = []


def _system():
    from .resolve import SystemLibraries
    if not _SYSTEM:
        _SYSTEM.append(SystemLibraries.from_host())
    return _SYSTEM[0]


def verify_wheel(wheel: Path, schemes: Sequence[str], python: str, code: str,
                 wheelhouse: Path = WHEELHOUSE) -> list[SchemeResult]:
    fill_wheelhouse(_requires(wheel), pyver(python), wheelhouse)
    return [verify_scheme(wheel, s, python, code, wheelhouse) for s in schemes]
