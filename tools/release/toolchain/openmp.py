"""The OpenMP runtime the wheels vendor: Debian 11's libgomp (gcc 10), which needs only glibc 2.17.

auditwheel grafts the libgomp.so.1 the loader would find for the extension. This host's (gcc 12) needs
GLIBC_2.34, which would make every wheel manylinux_2_34; Debian 11's needs GLIBC_2.17 and defines every GOMP_/OMP_
version gcc 12 emits for our loops (checked at repair time by `unsatisfied_versions`). The package is fetched
once from Debian's mirror, checked against the SHA256 of Debian's (signed) Packages index, and cached outside the
repository. Unpacking is done here (a .deb is an `ar` archive holding data.tar.*), so no dpkg is needed.
"""
from __future__ import annotations

import hashlib
import io
import os
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import ToolError

DOWNLOAD_TIMEOUT_S = 120


@dataclass(frozen=True)
class DebianLibrary:
    """One shared library taken from a pinned Debian package."""

    url: str
    sha256: str
    """Of the .deb, as Debian's Packages index lists it."""
    member: str
    """The library's path inside the package's data archive."""
    soname: str


# bullseye's final gcc-10 (dists/bullseye/main/binary-amd64/Packages: libgomp1 10.2.1-6).
LIBGOMP = DebianLibrary(
    url="http://deb.debian.org/debian/pool/main/g/gcc-10/libgomp1_10.2.1-6_amd64.deb",
    sha256="4530c95aefa48e33fd8cf4acbe5c4b559dbe7bdf4c56469986c83a203982cef1",
    member="./usr/lib/x86_64-linux-gnu/libgomp.so.1.0.0",
    soname="libgomp.so.1",
)


def debian_version(lib: DebianLibrary) -> tuple[str, str]:
    """(package, version) from a pool file name such as libgomp1_10.2.1-6_amd64.deb."""
    package, version, _ = Path(lib.url).name.split("_", 2)
    return package, version


def cache_dir() -> Path:
    """CYFES_CACHE, else $XDG_CACHE_HOME/cyfes, else ~/.cache/cyfes."""
    if os.environ.get("CYFES_CACHE"):
        return Path(os.environ["CYFES_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cyfes"


def _download(lib: DebianLibrary, dest: Path) -> bytes:
    try:
        with urllib.request.urlopen(lib.url, timeout=DOWNLOAD_TIMEOUT_S) as resp:
            data = resp.read()
    except OSError as exc:
        raise ToolError([f"cannot download {lib.url} ({exc}); the wheels vendor Debian 11's {lib.soname} (it needs "
                         f"only glibc 2.17): put {lib.member.lstrip('./')} from that package at {dest}"]) from exc
    if hashlib.sha256(data).hexdigest() != lib.sha256:
        raise ToolError([f"{lib.url}: SHA256 differs from Debian's Packages index ({lib.sha256})"])
    return data


def ar_members(data: bytes) -> dict[str, bytes]:
    """The members of a System V `ar` archive (a .deb's outer layer)."""
    if not data.startswith(b"!<arch>\n"):
        raise ToolError(["not an ar archive (a .deb starts with !<arch>)"])
    out, pos = {}, 8
    while pos + 60 <= len(data):
        header = data[pos:pos + 60]
        name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58].decode().strip())
        out[name] = data[pos + 60:pos + 60 + size]
        pos += 60 + size + (size % 2)
    return out


def extract_library(deb: bytes, lib: DebianLibrary) -> bytes:
    data = next((v for k, v in ar_members(deb).items() if k.startswith("data.tar")), None)
    if data is None:
        raise ToolError([f"{lib.url}: no data.tar.* member"])
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.extractfile(lib.member)
        if member is None:
            raise ToolError([f"{lib.url}: {lib.member} missing"])
        return member.read()


def library_dir(lib: DebianLibrary = LIBGOMP, cache: Path | None = None) -> Path:
    """A directory holding only `lib.soname` from the pinned package (downloaded on first use)."""
    base = (cache or cache_dir()) / "libs" / Path(lib.url).stem
    target = base / lib.soname
    if target.is_file():
        return base
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".{lib.soname}.{os.getpid()}"
    tmp.write_bytes(extract_library(_download(lib, target), lib))
    os.replace(tmp, target)  # atomic: a concurrent release sees the whole file or none
    return base
