"""Read and write wheels safely and deterministically.

Reading (through archive.py, the reader .conda packages share) validates everything first and raises once
(ArchiveError): not a zip, truncated, CRC errors, limits, unsafe names and links, duplicates; then WHEEL and
METADATA present and UTF-8, and RECORD complete: every file listed once with a matching hash and size. Writing sorts entries (dist-info last, RECORD
last of all), stamps SOURCE_DATE_EPOCH, fixes permissions and rewrites RECORD, so the same input gives the same
bytes; tags and WHEEL are kept as they are.
"""
from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import posixpath
import re
import stat
import tempfile
import time
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..archive import METADATA_MAX_BYTES, ZIP_EPOCH_MIN, Blob, Member, shown, source_date_epoch, zip_members
from ..elf.model import ElfFile, check_machine, looks_like_shared_object, read_elf
from ..errors import ArchiveError, ElfError, Problem, raise_if_any

COMPRESS_LEVEL = 6
FILENAME_RE = re.compile(r"^(?P<dist>[^-]+)-(?P<version>[^-]+)(-(?P<build>\d[^-]*))?-(?P<py>[^-]+)-(?P<abi>[^-]+)"
                         r"-(?P<plat>[^-]+)\.whl$")
SIGNATURE_FILES = ("RECORD.jws", "RECORD.p7s")


@dataclass(frozen=True)
class Wheel:
    """A validated wheel held in memory."""

    path: str
    dist: str
    version: str
    tags: str
    """python-abi-platform part of the file name, e.g. cp311-cp311-manylinux_2_34_x86_64."""
    members: dict[str, Member] = field(hash=False)
    date_time: tuple[int, int, int, int, int, int] = (1980, 1, 1, 0, 0, 0)

    @property
    def filename(self) -> str:
        return os.path.basename(self.path)

    @property
    def dist_info(self) -> str:
        return f"{self.dist}-{self.version}.dist-info"

    @property
    def data_dir(self) -> str:
        return f"{self.dist}-{self.version}.data"

    def text(self, name: str) -> str:
        return self.members[f"{self.dist_info}/{name}"].data.decode("utf-8")

    @property
    def requires_dist(self) -> list[str]:
        return [ln.split(":", 1)[1].strip() for ln in self.text("METADATA").splitlines()
                if ln.startswith("Requires-Dist:")]

    @property
    def pythons(self) -> list[str]:
        """Python "X.Y" versions named by cpXY tags (empty for py3/abi3-only wheels: the caller decides)."""
        out = []
        for py in self.tags.split("-")[0].split("."):
            m = re.fullmatch(r"cp(\d)(\d+)", py)
            if m and "abi3" not in self.tags:
                out.append(f"{m.group(1)}.{m.group(2)}")
        return out


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _metadata_text(label: str, members: dict[str, Member], name: str) -> tuple[str, list[Problem]]:
    """A dist-info text file, present, bounded and UTF-8 (installers and `fix` parse it)."""
    if name not in members:
        return "", [Problem(label, name, "missing")]
    if members[name].blob.size > METADATA_MAX_BYTES:
        return "", [Problem(label, name, f"larger than {METADATA_MAX_BYTES} bytes")]
    try:
        return members[name].data.decode("utf-8"), []
    except UnicodeDecodeError as exc:
        return "", [Problem(label, name, f"not UTF-8 (byte {exc.start})")]


def _record_rows(label: str, record_name: str, text: str) -> tuple[list[list[str]], list[Problem]]:
    try:
        return list(csv.reader(io.StringIO(text))), []
    except csv.Error as exc:  # e.g. a field over csv's 128 kB limit: no honest RECORD has one
        return [], [Problem(label, record_name, f"not a valid RECORD ({exc})")]


def _record_problems(label: str, members: dict[str, Member], record_name: str) -> list[Problem]:
    """Every file listed once with its hash and size, and the hash right (RECORD and its signatures alone may
    go without one: the wheel spec's rule)."""
    text, problems = _metadata_text(label, members, record_name)
    rows, bad = _record_rows(label, record_name, text) if not problems else ([], [])
    if problems or bad:  # without a readable RECORD, "not listed" for every file would only bury the cause
        return problems + bad
    unhashed = {record_name} | {f"{posixpath.dirname(record_name)}/{s}" for s in SIGNATURE_FILES}
    listed: set[str] = set()
    for row in (r for r in rows if r):
        name, digest, size = (row + ["", "", ""])[:3]
        if name in listed:
            problems.append(Problem(label, shown(name), "listed twice in RECORD"))
        listed.add(name)
        if name not in members:
            problems.append(Problem(label, shown(name), "listed in RECORD but not in the archive"))
        elif not digest and name not in unhashed:
            problems.append(Problem(label, shown(name), "listed in RECORD without a hash"))
        elif digest and (_blob_hash(members[name].blob) != digest or str(members[name].blob.size) != size):
            problems.append(Problem(label, shown(name), "RECORD hash or size does not match the file"))
    problems += [Problem(label, shown(n), "not listed in RECORD") for n in members
                 if n not in listed and n not in unhashed]
    return problems


def _blob_hash(blob: Blob) -> str:
    return "sha256=" + base64.urlsafe_b64encode(blob.sha256).rstrip(b"=").decode()


def read_wheel(path: str | Path) -> Wheel:
    """Open and validate a wheel; raise ArchiveError listing every problem (archive.py reads the members)."""
    path = Path(path)
    label = path.name
    m = FILENAME_RE.match(label)
    if not m:
        raise ArchiveError([Problem(label, "", "file name is not <dist>-<version>-<python>-<abi>-<platform>.whl")])
    if not path.is_file():
        raise ArchiveError([Problem(label, "", "no such file")])
    listing = zip_members(path, label)
    members = {member.name: member for member in listing.members}
    wheel = Wheel(str(path), m["dist"], m["version"], f"{m['py']}-{m['abi']}-{m['plat']}", members, listing.newest)
    problems = []
    for name in ("WHEEL", "METADATA"):
        problems += _metadata_text(label, members, f"{wheel.dist_info}/{name}")[1]
    problems += _record_problems(label, members, f"{wheel.dist_info}/RECORD")
    raise_if_any(problems, ArchiveError)
    return wheel


def record_text(members: dict[str, Member], record_name: str) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for name in _ordered(members, record_name):
        if name != record_name:
            writer.writerow([name, _blob_hash(members[name].blob), members[name].blob.size])
    writer.writerow([record_name, "", ""])
    return out.getvalue().encode("utf-8")


def _ordered(members, record_name: str) -> list[str]:
    """Package files sorted, then .dist-info sorted, RECORD last (the order the wheel spec recommends)."""
    dist_info = posixpath.dirname(record_name) + "/"
    names = sorted(n for n in members if n != record_name)
    return ([n for n in names if not n.startswith(dist_info)] + [n for n in names if n.startswith(dist_info)]
            + [record_name])


def source_date(default: tuple[int, ...]) -> tuple[int, int, int, int, int, int]:
    """Entry timestamp: SOURCE_DATE_EPOCH (reproducible-builds.org) when set, else the input's newest entry."""
    epoch = source_date_epoch()
    if epoch is None:
        return tuple(default)  # type: ignore[return-value]
    return time.gmtime(max(epoch, ZIP_EPOCH_MIN))[:6]


def write_wheel(wheel: Wheel, out_path: str | Path) -> Path:
    """Write `wheel` with a fresh RECORD, deterministically; atomic (temp file, then rename)."""
    out_path = Path(out_path)
    record_name = f"{wheel.dist_info}/RECORD"
    members = dict(wheel.members)
    members[record_name] = Member(record_name, record_text(members, record_name))
    stamp = source_date(wheel.date_time)
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=".tmp-", suffix=".whl")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w") as zf:
            for name in _ordered(members, record_name):
                _write_member(zf, members[name], stamp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a wheel is a public artifact
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out_path


def _write_member(zf: zipfile.ZipFile, member: Member, stamp) -> None:
    """What zf.writestr(info, data, compresslevel=...) does, streamed from the blob so a large member is never
    held in memory (same bytes: writestr sets these two fields and writes through open(info, "w") too)."""
    info = _zipinfo(member, stamp)
    info.file_size = member.blob.size
    info._compresslevel = COMPRESS_LEVEL  # type: ignore[attr-defined]  # no public setter before Python 3.13
    with zf.open(info, "w") as out:
        member.blob.write_to(out)


def _zipinfo(member: Member, stamp) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(member.name, date_time=stamp)
    info.create_system = 3  # unix, so external_attr carries the mode
    if member.link is not None:
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
    else:
        info.external_attr = (stat.S_IFREG | (0o755 if member.executable else 0o644)) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def with_members(wheel: Wheel, changed: dict[str, bytes]) -> Wheel:
    members = dict(wheel.members)
    for name, data in changed.items():
        old = members[name]
        members[name] = Member(name, data, old.executable, old.link)
    return replace(wheel, members=members)


def extract(wheel: Wheel, dest: str | Path, names: list[str] | None = None) -> Path:
    """Write members under `dest`; every path is checked to stay inside it (names were validated on read)."""
    dest = Path(dest).resolve()
    for name in names if names is not None else list(wheel.members):
        target = (dest / name).resolve()
        if dest not in target.parents:
            raise ArchiveError([Problem(wheel.filename, name, "would be written outside the destination")])
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as out:
            wheel.members[name].blob.write_to(out)
        target.chmod(0o755 if wheel.members[name].executable else 0o644)
    return dest


def shared_objects(wheel: Wheel) -> list[str]:
    return sorted(n for n, m in wheel.members.items() if looks_like_shared_object(n) and m.link is None)


def load_elfs(wheel: Wheel, workdir: str | Path) -> dict[str, ElfFile]:
    """Extract and model every shared object; ElfError lists non-ELF `.so` files and foreign machines."""
    workdir = Path(workdir)
    names = shared_objects(wheel)
    extract(wheel, workdir, names)
    elfs, problems = {}, []
    for name in names:
        try:
            elf = read_elf(workdir / name, label=name)
        except ElfError as exc:
            problems += [Problem(wheel.filename, name, p.message) if isinstance(p, Problem) else p
                         for p in exc.problems]
            continue
        problems += check_machine(elf, wheel.filename)
        elfs[name] = elf
    raise_if_any(problems, ElfError)
    return elfs
