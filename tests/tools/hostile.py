"""TEST FIXTURE builders: small wheels and .conda packages, honest or hostile, whose code writes a marker file if
it is ever imported or run, and a runner that shows what the release tool left behind.

The archives are written byte by byte here (zipfile, tarfile, zstd), not through the tool's own writers, so a
test can build what the tool would never write: duplicates, lying RECORDs and paths.json, links through links.
"""
from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tools.release.conda.archive import zstd_module

zstd = zstd_module()

ROOT = Path(__file__).resolve().parents[2]
DIST, VERSION = "seedpkg", "1.0"
DIST_INFO = f"{DIST}-{VERSION}.dist-info"
WHEEL_NAME = f"{DIST}-{VERSION}-py3-none-any.whl"
SITE = f"lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages"
PY_DEP = f"python >={sys.version_info[0]}.{sys.version_info[1]},<{sys.version_info[0]}.{sys.version_info[1] + 1}.0a0"


@dataclass(frozen=True)
class Link:
    """A symlink member."""

    target: str


def payload(marker: Path) -> bytes:
    """Module code that proves it ran: it writes `marker`."""
    return f"open({str(marker)!r}, 'w').write('artifact code ran')\n".encode()


def rec_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def wheel_files(marker: Path) -> dict[str, bytes | Link]:
    return {f"{DIST}/__init__.py": payload(marker),
            f"{DIST}/data.txt": b"some data\n",
            f"{DIST_INFO}/METADATA": f"Metadata-Version: 2.1\nName: {DIST}\nVersion: {VERSION}\n".encode(),
            f"{DIST_INFO}/WHEEL": b"Wheel-Version: 1.0\nGenerator: hostile\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}


def record(files: dict[str, bytes | Link], rows: dict[str, tuple[str, str]] | None = None) -> bytes:
    """RECORD for `files`; `rows` overrides the (hash, size) of some names."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    for name, data in files.items():
        raw = data.target.encode() if isinstance(data, Link) else data
        w.writerow([name, *(rows or {}).get(name, (rec_hash(raw), str(len(raw))))])
    w.writerow([f"{DIST_INFO}/RECORD", "", ""])
    return out.getvalue().encode()


def write_zip(path: Path, entries: list[tuple[str, bytes | Link | None]], mode: dict[str, int] | None = None) -> Path:
    """Entries in order (duplicates allowed); None makes a directory entry."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name": wanted here
        for name, data in entries:
            info = zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0))
            info.create_system = 3
            if isinstance(data, Link):
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                data = data.target.encode()
            elif data is None:
                info.external_attr = (stat.S_IFDIR | 0o755) << 16
                data = b""
            else:
                info.external_attr = (stat.S_IFREG | (mode or {}).get(name, 0o644)) << 16
            zf.writestr(info, data)
    return path


def write_wheel(path: Path, files: dict[str, bytes | Link], rows: dict[str, tuple[str, str]] | None = None,
                extra: list[tuple[str, bytes | Link | None]] = (), mode: dict[str, int] | None = None) -> Path:
    """A wheel holding `files` with a RECORD made from them, then `extra` entries RECORD does not know about."""
    entries = list(files.items()) + [(f"{DIST_INFO}/RECORD", record(files, rows))] + list(extra)
    return write_zip(path, entries, mode)


def set_zip_flag(path: Path, name: str, bit: int) -> Path:
    """Set a general-purpose flag bit of `name` in both its local header and its central directory record."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        local = zf.getinfo(name).header_offset
    data[local + 6] |= bit
    pos = data.find(b"PK\x01\x02")
    while pos != -1:
        n = int.from_bytes(data[pos + 28:pos + 30], "little")
        if data[pos + 46:pos + 46 + n] == name.encode():
            data[pos + 8] |= bit
        pos = data.find(b"PK\x01\x02", pos + 4)
    path.write_bytes(bytes(data))
    return path


# --- .conda ------------------------------------------------------------------------------------------------------

def conda_payload(marker: Path) -> dict[str, bytes | Link]:
    return {f"{SITE}/{DIST}/__init__.py": payload(marker),
            "bin/seed": b"#!/bin/sh\n" + f"echo ran > {marker}\n".encode()}


def index_json(name: str = DIST, depends: list | None = None, **extra) -> bytes:
    doc = {"name": name, "version": VERSION, "build": "py_0", "build_number": 0, "subdir": "linux-64",
           "depends": [PY_DEP] if depends is None else depends, **extra}
    return json.dumps(doc).encode()


def paths_json(pkg: dict[str, bytes | Link]) -> bytes:
    rows = []
    for name, data in sorted(pkg.items()):
        if isinstance(data, Link):
            rows.append({"_path": name, "path_type": "softlink"})
        else:
            rows.append({"_path": name, "path_type": "hardlink", "sha256": hashlib.sha256(data).hexdigest(),
                         "size_in_bytes": len(data)})
    return json.dumps({"paths": rows, "paths_version": 1}).encode()


def info_files(pkg: dict[str, bytes | Link], **index) -> dict[str, bytes]:
    return {"info/index.json": index_json(**index), "info/paths.json": paths_json(pkg)}


def tar_zst(entries: list[tuple[str, bytes | Link]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if isinstance(data, Link):
                info.type, info.linkname = tarfile.SYMTYPE, data.target
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o755 if name.startswith("bin/") else 0o644
                tar.addfile(info, io.BytesIO(data))
    return zstd.compress(raw.getvalue())


def write_conda(path: Path, pkg: list[tuple[str, bytes | Link]], info: list[tuple[str, bytes]]) -> Path:
    dist = path.name.removesuffix(".conda")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("metadata.json", json.dumps({"conda_pkg_format_version": 2}))
        zf.writestr(f"pkg-{dist}.tar.zst", tar_zst(pkg))
        zf.writestr(f"info-{dist}.tar.zst", tar_zst(list(info)))
    return path


# --- running the tool and looking at what it left ---------------------------------------------------------------

def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every file, link and directory under root with its mode and content hash (or link target)."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = Path(dirpath) / n
            st = p.lstat()
            what = (os.readlink(p) if stat.S_ISLNK(st.st_mode) else
                    hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else "")
            out[str(p.relative_to(root))] = (st.st_mode, what)
    return out


def tool_env(tmpdir: Path) -> dict[str, str]:
    """Temporary files under `tmpdir`, no bytecode written, nothing of the checkout on the path: the installed tool
    imports only its own package."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return dict(env, TMPDIR=str(tmpdir), PYTHONDONTWRITEBYTECODE="1")


def run_tool(tool: Path, work: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """The installed console script `tool` (conftest's cyfes_release) with ARGS, `work` as the working directory
    and `work/tmp` as TMPDIR."""
    (work / "tmp").mkdir(exist_ok=True)
    return subprocess.run([str(tool), *args], cwd=work, env=tool_env(work / "tmp"), capture_output=True, text=True,
                          timeout=timeout)
