"""Find CPython interpreters by version: PATH (python3.X) and pyenv's versions directory."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from ..targets import build_pythons


def _version_of(exe: str) -> str | None:
    try:
        out = subprocess.run([exe, "-c", "import sys, platform; print(platform.python_implementation(), "
                                         "'%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30, check=False).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out[1] if len(out) == 2 and out[0] == "CPython" else None


def _candidates() -> list[str]:
    found = []
    for d in os.environ.get("PATH", "").split(os.pathsep):
        if os.path.isdir(d):
            found += sorted(str(Path(d) / n) for n in os.listdir(d) if re.fullmatch(r"python3\.\d+", n))
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    if root.is_dir():
        found += sorted(str(p / "bin" / "python3") for p in root.iterdir()
                        if re.fullmatch(r"3\.\d+\.\d+", p.name) and (p / "bin" / "python3").exists())
    return found


def find_pythons() -> dict[str, str]:
    """"X.Y" -> interpreter path; pyenv's exact versions win over PATH shims (which may point elsewhere)."""
    out: dict[str, str] = {}
    for exe in reversed(_candidates()):
        if "/.pyenv/shims/" in exe:
            continue
        v = _version_of(exe)
        if v and v not in out:
            out[v] = exe
    return dict(sorted(out.items(), key=lambda kv: tuple(int(x) for x in kv[0].split("."))))


def default_pythons(found: dict[str, str]) -> list[str]:
    """What a release builds when release.yaml lists no versions: targets.py's build Pythons found here."""
    return [v for v in build_pythons() if v in found]


def which_python(version: str, found: dict[str, str] | None = None) -> str | None:
    found = found if found is not None else find_pythons()
    return found.get(version) or shutil.which(f"python{version}")
