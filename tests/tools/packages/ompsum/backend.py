"""A PEP 517 backend with no dependencies (so an isolated build needs no index): compiles libompsum.so with
OpenMP into the wheel's .data/data/lib/ and the extension ompsum._core linking it.

Config setting `scale=N` is compiled into the library (-DSCALE=N), so a test can tell the settings arrived.
The extension's RPATH points where the library sits in the unpacked wheel (so auditwheel finds it), which is not
where an installer puts it: the case the release tool's RPATH plan exists for.
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
import tempfile
import zipfile
from pathlib import Path

NAME, VERSION = "ompsum", "0.1"
HERE = Path(__file__).resolve().parent


def get_requires_for_build_wheel(config_settings=None):
    return []


def _tag() -> str:
    py = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    return f"{py}-{py}-{sysconfig.get_platform().replace('-', '_').replace('.', '_')}"


def _gcc(*args: str) -> None:
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", *args], check=True)


def _hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    scale = int((config_settings or {}).get("scale", "1"))
    data_lib = f"{NAME}-{VERSION}.data/data/lib"
    ext = f"_core{sysconfig.get_config_var('EXT_SUFFIX')}"
    with tempfile.TemporaryDirectory() as tmp:
        lib, core = Path(tmp) / "libompsum.so", Path(tmp) / ext
        _gcc("-fopenmp", f"-DSCALE={scale}", "-Wl,-soname,libompsum.so", "-o", str(lib), str(HERE / "src/ompsum.c"))
        _gcc(f"-I{sysconfig.get_paths()['include']}", "-o", str(core), str(HERE / "src/core.c"), f"-L{tmp}",
             "-lompsum", f"-Wl,--enable-new-dtags,-rpath,$ORIGIN/../{data_lib}")
        files = {f"{NAME}/__init__.py": (HERE / NAME / "__init__.py").read_bytes(), f"{NAME}/{ext}": core.read_bytes(),
                 f"{data_lib}/libompsum.so": lib.read_bytes()}
    di = f"{NAME}-{VERSION}.dist-info"
    files[f"{di}/METADATA"] = f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {VERSION}\n".encode()
    files[f"{di}/WHEEL"] = (f"Wheel-Version: 1.0\nGenerator: ompsum-backend\nRoot-Is-Purelib: false\n"
                            f"Tag: {_tag()}\n").encode()
    rec = io.StringIO()
    writer = csv.writer(rec, lineterminator="\n")
    for n, d in files.items():
        writer.writerow([n, _hash(d), len(d)])
    writer.writerow([f"{di}/RECORD", "", ""])
    files[f"{di}/RECORD"] = rec.getvalue().encode()
    name = f"{NAME}-{VERSION}-{_tag()}.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w", zipfile.ZIP_DEFLATED) as zf:
        for n, d in files.items():
            info = zipfile.ZipInfo(n, (2020, 1, 1, 0, 0, 0))
            info.external_attr = (0o100755 if n.endswith(".so") else 0o100644) << 16
            zf.writestr(info, d)
    return name
