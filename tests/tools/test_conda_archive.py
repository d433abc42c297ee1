"""conda_archive: the .conda writer is reproducible, readable by independent readers, and refuses unsafe input."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest
from conda_package_handling import api as cph_api
from conda_package_streaming.package_streaming import CondaComponent, stream_conda_component

from tools.release.archive import Member
from tools.release.conda.archive import conda_bytes, read_conda, write_conda
from tools.release.errors import ArchiveError

PKG = [Member("lib/libx.so.1", b"\x7fELF fake", executable=True), Member("lib/libx.so", link="libx.so.1"),
       Member("share/x/readme.txt", "héllo\n".encode())]
INFO = [Member("info/index.json", b'{"name": "x"}\n'), Member("info/files", b"lib/libx.so\n")]


def test_same_input_same_bytes_and_epoch_matters() -> None:
    a = conda_bytes("x-1-0", PKG, INFO, 1700000000)
    assert a == conda_bytes("x-1-0", list(reversed(PKG)), INFO, 1700000000)  # member order does not leak
    assert a != conda_bytes("x-1-0", PKG, INFO, 1700000001)


def test_layout_matches_the_conda_v2_format(tmp_path: Path) -> None:
    path = write_conda(tmp_path / "x-1-0.conda", "x-1-0", PKG, INFO, 1700000000)
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        assert [i.filename for i in infos] == ["metadata.json", "pkg-x-1-0.tar.zst", "info-x-1-0.tar.zst"]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)
        assert json.loads(zf.read("metadata.json")) == {"conda_pkg_format_version": 2}


def test_conda_package_streaming_reads_what_we_wrote(tmp_path: Path) -> None:
    """An independent reader (conda's own streaming library) sees the same members, owners and mtime."""
    path = write_conda(tmp_path / "x-1-0.conda", "x-1-0", PKG, INFO, 1700000000)
    seen = {}
    for component in (CondaComponent.pkg, CondaComponent.info):
        with open(path, "rb") as f:
            for tar, member in stream_conda_component("x-1-0.conda", f, component):
                assert (member.uid, member.gid, member.uname, member.mtime) == (0, 0, "", 1700000000)
                seen[member.name] = member.linkname if member.issym() else tar.extractfile(member).read()
    assert seen == {e.name: e.link or e.data for e in PKG + INFO}


def test_conda_package_handling_extracts_it(tmp_path: Path) -> None:
    path = write_conda(tmp_path / "x-1-0.conda", "x-1-0", PKG, INFO, 1700000000)
    cph_api.extract(str(path), dest_dir=str(tmp_path / "out"))
    out = tmp_path / "out"
    assert (out / "lib/libx.so.1").read_bytes() == b"\x7fELF fake"
    assert (out / "lib/libx.so").is_symlink() and (out / "lib/libx.so").readlink() == Path("libx.so.1")
    assert (out / "info/index.json").read_bytes() == INFO[0].data


def test_conda_package_handling_is_not_reproducible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Why we write archives ourselves: cph 2.6 stamps zip members with the wall clock."""
    src = tmp_path / "src"
    (src / "info").mkdir(parents=True)
    (src / "info/index.json").write_text('{"name": "x"}')
    outs = []
    for i, when in enumerate((1700000000.0, 1700003600.0)):  # two runs an hour apart, files unchanged
        monkeypatch.setattr("time.time", lambda: when)
        monkeypatch.setattr("time.localtime", lambda t=None: __import__("time").gmtime(when))
        cph_api.create(str(src), ["info/index.json"], f"x-1-{i}.conda", out_folder=str(tmp_path))
        outs.append(zipfile.ZipFile(tmp_path / f"x-1-{i}.conda").getinfo("metadata.json").date_time)
    assert outs[0] != outs[1]


def test_roundtrip_read(tmp_path: Path) -> None:
    path = write_conda(tmp_path / "x-1-0.conda", "x-1-0", PKG, INFO, 1700000000)
    entries = read_conda(path)
    assert entries["lib/libx.so"].link == "libx.so.1" and entries["lib/libx.so.1"].executable
    assert hashlib.sha256(entries["share/x/readme.txt"].data).hexdigest() == hashlib.sha256("héllo\n".encode()).hexdigest()


@pytest.mark.parametrize("bad,why", [
    (Member("../evil", b""), "leave the package tree"),
    (Member("/etc/evil", b""), "absolute"),
    (Member("lib/a/../../../evil", b""), "leave the package tree"),
    (Member("lib/link", link="../../etc/passwd"), "symlink to ../../etc/passwd leaves the package tree"),
    (Member("lib/link", link="/etc/passwd"), "leaves the package tree"),
])
def test_unsafe_entries_are_refused_and_nothing_is_written(tmp_path: Path, bad: Member, why: str) -> None:
    with pytest.raises(ArchiveError) as err:
        write_conda(tmp_path / "x-1-0.conda", "x-1-0", PKG + [bad], INFO, 0)
    assert why in str(err.value) and bad.name in str(err.value)
    assert list(tmp_path.iterdir()) == []


def _evil_conda(path: Path, name: str) -> Path:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    from tools.release.conda.archive import zstd_module
    zstd = zstd_module()
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", "{}")
        zf.writestr("pkg-e-1-0.tar.zst", zstd.compress(raw.getvalue()))
        zf.writestr("info-e-1-0.tar.zst", zstd.compress(raw.getvalue()))
    return path


def test_reading_refuses_bad_archives(tmp_path: Path) -> None:
    good = write_conda(tmp_path / "x-1-0.conda", "x-1-0", PKG, INFO, 0)
    (tmp_path / "trunc.conda").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (tmp_path / "text.conda").write_text("not a zip")
    for name in ("trunc.conda", "text.conda"):
        with pytest.raises(ArchiveError, match="not a readable .conda"):
            read_conda(tmp_path / name)
    with pytest.raises(ArchiveError, match=r"\.\./slip"):
        read_conda(_evil_conda(tmp_path / "evil.conda", "../slip"))
