"""Tiny wheels built with gcc for the release tool's tests: a seed-style wheel and variations of it.

The seed wheel reproduces the bug the tool exists for: a library installed through `.data/data/lib/` needs a
library that `auditwheel repair` grafts into `seedpkg.libs/`; auditwheel writes RPATHs relative to where files sit
*in the wheel*, which is not where the installer puts them.
"""
from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
PY = f"{sys.version_info.major}.{sys.version_info.minor}"
TAG = f"cp{sys.version_info.major}{sys.version_info.minor}"
EXT_SUFFIX = sysconfig.get_config_var("EXT_SUFFIX")

GRAFT_C = "int graft_value(void) { return 41; }\n"
SEED_C = "int graft_value(void);\nint seed_value(void) { return graft_value() + 1; }\n"
EXT_C = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
int seed_value(void);
static PyObject *value(PyObject *self, PyObject *args) { return PyLong_FromLong(seed_value()); }
static PyMethodDef methods[] = {{"value", value, METH_NOARGS, "seed_value()"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "_ext", NULL, -1, methods};
PyMODINIT_FUNC PyInit__ext(void) { return PyModule_Create(&mod); }
"""
SMOKE = "import seedpkg._ext as e; assert e.value() == 42, e.value(); print('seed ok')"


def gcc(out: Path, sources: dict[str, str], *flags: str) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    srcs = []
    for name, text in sources.items():
        p = out.parent / name
        p.write_text(text)
        srcs.append(str(p))
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", str(out), *srcs, *flags], check=True)
    return out


def rec_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def write_raw_wheel(path: Path, files: dict[str, bytes], dist: str = "seedpkg", version: str = "1.0",
                    tag: str = f"{TAG}-{TAG}-linux_x86_64", requires: tuple[str, ...] = ()) -> Path:
    """A plain wheel (what a build backend would make), RECORD correct."""
    di = f"{dist}-{version}.dist-info"
    meta = f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires)
    files = dict(files)
    files[f"{di}/METADATA"] = meta.encode()
    files[f"{di}/WHEEL"] = f"Wheel-Version: 1.0\nGenerator: wheelfactory\nRoot-Is-Purelib: false\nTag: {tag}\n".encode()
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    for n, d in files.items():
        w.writerow([n, rec_hash(d), len(d)])
    w.writerow([f"{di}/RECORD", "", ""])
    files[f"{di}/RECORD"] = out.getvalue().encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, d in files.items():
            info = zipfile.ZipInfo(n, (2020, 1, 1, 0, 0, 0))
            info.external_attr = (0o100755 if n.endswith(".so") else 0o100644) << 16
            zf.writestr(info, d)
    return path


def build_seed(tmp: Path) -> tuple[Path, Path]:
    """(raw wheel, directory holding libgraft.so) - libgraft lives outside the wheel, as libcudart does."""
    ext_dir = tmp / "extlib"
    gcc(ext_dir / "libgraft.so", {"graft.c": GRAFT_C}, "-Wl,-soname,libgraft.so")
    seed = gcc(tmp / "b" / "libseed.so", {"seed.c": SEED_C}, "-Wl,-soname,libseed.so", f"-L{ext_dir}", "-lgraft")
    inc = sysconfig.get_paths()["include"]
    ext = gcc(tmp / "b" / f"_ext{EXT_SUFFIX}", {"ext.c": EXT_C}, f"-I{inc}", f"-L{seed.parent}", "-lseed",
              # where libseed sits in the unpacked wheel, so auditwheel can find it; wrong once installed
              "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../seedpkg-1.0.data/data/lib")
    files = {"seedpkg/__init__.py": b"", f"seedpkg/_ext{EXT_SUFFIX}": ext.read_bytes(),
             "seedpkg-1.0.data/data/lib/libseed.so": seed.read_bytes()}
    return write_raw_wheel(tmp / f"seedpkg-1.0-{TAG}-{TAG}-linux_x86_64.whl", files), ext_dir


def auditwheel_repair(raw: Path, libdir: Path, out: Path) -> Path:
    """The real `auditwheel repair`, finding libgraft.so through LD_LIBRARY_PATH like a build host would."""
    env = dict(os.environ, LD_LIBRARY_PATH=str(libdir), PATH=f"{VENV_BIN}:{os.environ['PATH']}")
    subprocess.run([str(VENV_BIN / "auditwheel"), "repair", "-w", str(out), str(raw)], check=True, env=env,
                   capture_output=True)
    (wheel,) = out.glob("*.whl")
    return wheel


def base_python() -> str:
    """The interpreter behind this venv (installs must not see the venv's site-packages; --user needs no venv)."""
    from tools.release.toolchain.pythons import which_python
    return which_python(PY) or getattr(sys, "_base_executable", sys.executable)


def pip_error(stderr: str) -> str:
    """The line of a failed pip run that says why: its first ERROR: line, a build subprocess's included (pip's last
    line is often a generic note)."""
    lines = [ln.strip() for ln in stderr.strip().splitlines()]
    return next((ln for ln in lines if ln.startswith("ERROR:")), lines[-1] if lines else "no output")
