"""The vendored OpenMP runtime: unpacking a .deb (an `ar` archive made here by binutils' own `ar`, holding a
data.tar.xz made by tarfile) and the cache that makes the download happen once."""
from __future__ import annotations

import functools
import hashlib
import http.server
import io
import shutil
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from tools.release.errors import ToolError
from tools.release.toolchain.openmp import DebianLibrary, ar_members, extract_library, library_dir

pytestmark = pytest.mark.skipif(shutil.which("ar") is None, reason="needs binutils' ar")

PAYLOAD = b"\x7fELF not really a library, but bytes to find again\n" * 3


def make_deb(tmp: Path) -> Path:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:xz") as tar:
        info = tarfile.TarInfo("./usr/lib/x86_64-linux-gnu/libgomp.so.1.0.0")
        info.size = len(PAYLOAD)
        tar.addfile(info, io.BytesIO(PAYLOAD))
    (tmp / "debian-binary").write_bytes(b"2.0\n")
    (tmp / "control.tar.xz").write_bytes(b"odd length")  # odd sizes are padded in ar: the parser must skip it
    (tmp / "data.tar.xz").write_bytes(data.getvalue())
    deb = tmp / "x.deb"
    subprocess.run(["ar", "rc", str(deb), "debian-binary", "control.tar.xz", "data.tar.xz"], cwd=tmp, check=True)
    return deb


def test_unpacks_a_deb_made_by_ar(tmp_path):
    deb = make_deb(tmp_path).read_bytes()
    assert set(ar_members(deb)) == {"debian-binary", "control.tar.xz", "data.tar.xz"}
    assert ar_members(deb)["control.tar.xz"] == b"odd length"
    lib = DebianLibrary("http://example.invalid/x.deb", hashlib.sha256(deb).hexdigest(),
                        "./usr/lib/x86_64-linux-gnu/libgomp.so.1.0.0", "libgomp.so.1")
    assert extract_library(deb, lib) == PAYLOAD
    with pytest.raises(ToolError, match="not an ar archive"):
        ar_members(b"PK\x03\x04 a zip")


@pytest.fixture
def served(tmp_path):
    """A local HTTP server (the standard library's) serving tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_is_checked_and_cached(tmp_path, served):
    www, base = served
    deb = make_deb(tmp_path).read_bytes()
    (www / "libgomp1_0_amd64.deb").write_bytes(deb)
    lib = DebianLibrary(f"{base}/libgomp1_0_amd64.deb", hashlib.sha256(deb).hexdigest(),
                        "./usr/lib/x86_64-linux-gnu/libgomp.so.1.0.0", "libgomp.so.1")
    d = library_dir(lib, tmp_path / "cache")
    assert (d / "libgomp.so.1").read_bytes() == PAYLOAD and [p.name for p in d.iterdir()] == ["libgomp.so.1"]
    (www / "libgomp1_0_amd64.deb").unlink()
    assert library_dir(lib, tmp_path / "cache") == d  # served from the cache: the file is gone from the server
    (www / "libgomp1_0_amd64.deb").write_bytes(deb + b"tampered")
    with pytest.raises(ToolError, match="SHA256 differs"):
        library_dir(lib, tmp_path / "other-cache")
    with pytest.raises(ToolError, match="cannot download"):
        library_dir(DebianLibrary(f"{base}/missing.deb", lib.sha256, lib.member, lib.soname), tmp_path / "c3")


def test_pinned_libgomp_needs_only_glibc_2_17():
    """The real package (downloaded once into the cache): what the wheels vendor."""
    from tools.release.elf.glibc import defined_versions, file_floor
    path = library_dir() / "libgomp.so.1"
    assert file_floor(path).version == (2, 17)
    # what gcc 12 emits for the kernel's prange(schedule="dynamic") and omp_get_max_threads
    assert {"GOMP_1.0", "GOMP_4.0", "GOMP_4.5", "OMP_1.0"} <= defined_versions(path)
