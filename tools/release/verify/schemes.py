"""`verify WHEEL`: install a wheel into one fresh environment per install scheme and run the smoke program there.

The one smoke program (smoke.py) runs under the loader's trace (trace.py); a scheme fails if it does not compute
or if any library came from outside the install.

A wheel goes into one fresh environment per scheme: venv (no system site-packages), user (PYTHONUSERBASE),
pip --prefix, pip --target, and Debian's posix_local layout installed with pypa/installer and a custom scheme
(installer is what pip uses inside). Dependencies come from a wheelhouse under build/ so reruns work offline.
A .conda goes into a fresh prefix through py-rattler (prefix.py). Both answer with smoke.py's `InstallResult`.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..elf.loader import SystemLibraries
from ..errors import Problem, VerifyError
from ..layouts import installed_path, layout
from ..program import SmokeProgram, as_program
from ..wheel.archive import read_wheel, shared_objects
from .smoke import InstallResult, judge_run, run_smoke

WHEELHOUSE = Path("build/release/wheelhouse")
PIP_TIMEOUT_S = 600


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
    return [r for r in read_wheel(wheel).requires_dist if "extra ==" not in r]


def _limitation(wheel: Path, scheme: str, v: str) -> str:
    """The scheme's own reason when it drops members of this wheel (pip --target and .data/data)."""
    lay = layout(scheme, v)
    w = read_wheel(wheel)
    dropped = [m for m in w.members if installed_path(lay, m, w.dist).path is None]
    return f"{lay.dropped_reason}: {', '.join(dropped)}" if dropped else ""


def verify_scheme(wheel: Path, scheme: str, python: str, code: str | SmokeProgram, wheelhouse: Path = WHEELHOUSE) -> InstallResult:
    """Install and smoke-test one wheel in one scheme, in a temp dir removed afterwards."""
    start, v = time.monotonic(), pyver(python)
    result = InstallResult(wheel.name, scheme, v)
    with tempfile.TemporaryDirectory(prefix=f"cyfes-verify-{scheme}-") as tmp:
        root, run_dir = Path(tmp) / "root", Path(tmp) / "cwd"
        run_dir.mkdir()
        try:
            inst = install(wheel, scheme, python, root, wheelhouse)
        except VerifyError as exc:
            result.fail(*(p if isinstance(p, Problem) else Problem(wheel.name, scheme, p) for p in exc.problems))
            result.seconds = time.monotonic() - start
            return result
        rc, out, trace = run_smoke(inst.python, code, inst.env, run_dir)
        result.root = str(root)
        judge_run(result, rc, out, trace, _member_names(wheel), root, _system().allowlist, as_program(code).mark)
    limit = _limitation(wheel, scheme, v)
    if rc != 0 and limit:
        result.status, result.detail, result.problems = "limitation", limit, []
    result.seconds = time.monotonic() - start
    return result


def _member_names(wheel: Path) -> set[str]:
    return {n.rsplit("/", 1)[-1] for n in shared_objects(read_wheel(wheel))}


_SYSTEM = []


def _system():
    if not _SYSTEM:
        _SYSTEM.append(SystemLibraries.from_host())
    return _SYSTEM[0]


def verify_wheel(wheel: Path, schemes: Sequence[str], python: str, code: str | SmokeProgram,
                 wheelhouse: Path = WHEELHOUSE) -> list[InstallResult]:
    fill_wheelhouse(_requires(wheel), pyver(python), wheelhouse)
    return [verify_scheme(wheel, s, python, code, wheelhouse) for s in schemes]
