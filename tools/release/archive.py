"""One streaming reader for the members of wheels (zip) and .conda packages (zip of two tar.zst).

Both formats go through the same checks, in one pass, before anything is kept:
- count, per-member size and total size are bounded (release.yaml `limits`); sizes a header declares are checked
  before reading, and the bytes actually read are counted again;
- every name is a plain relative POSIX path of bounded length, without `..`, control characters or a drive;
- a name appears once, and never both as a file and as a directory;
- only regular files, directories and symlinks; no encrypted zip entries, no set-uid bits;
- every symlink is resolved component by component inside the archive's own tree, following the other links of
  the archive (`a -> ..` then `b -> a/../x` leaves the tree, although the text `a/../x` does not);
- content is hashed (SHA-256) while it streams, so RECORD and paths.json are checked without reading twice.
Small members stay in memory up to a budget; the rest is spooled to anonymous temporary files (nothing is left on
disk, even after SIGKILL), so reading a wheel of several GiB needs little memory.
"""
from __future__ import annotations

import contextvars
import hashlib
import io
import os
import stat
import tarfile
import tempfile
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import IO, BinaryIO, Iterator

from .config import ArchiveLimits
from .errors import ArchiveError, Problem

CHUNK = 1 << 20
# A component longer than NAME_MAX (255 bytes on Linux filesystems) cannot be created at all; a whole name is
# capped so that it still fits PATH_MAX (4096) under a deep install prefix.
NAME_MAX_BYTES = 255
PATH_MAX_BYTES = 1024
# Metadata files (RECORD, METADATA, index.json, paths.json) are parsed in memory: this bounds them.
METADATA_MAX_BYTES = 64 << 20
# Members up to this size are kept in memory while the in-memory total stays under MEMORY_BUDGET.
SMALL_BYTES = 1 << 20
MEMORY_BUDGET = 128 << 20
# The loader's own limit on symlinks followed while resolving one path (Linux MAXSYMLINKS).
MAX_LINK_HOPS = 40

LIMITS: contextvars.ContextVar[ArchiveLimits] = contextvars.ContextVar("archive_limits", default=ArchiveLimits())
"""The limits readers apply; the CLI sets release.yaml's once, so every reader of one run agrees."""


def shown(name: str) -> str:
    """A member name fit for a one-line message: control characters escaped, very long names shortened."""
    text = name.encode("unicode_escape", "backslashreplace").decode("ascii") if not name.isprintable() else name
    return text if len(text) <= 120 else f"{text[:60]}...{text[-40:]} ({len(name.encode('utf-8', 'replace'))} bytes)"


class Blob:
    """A member's bytes, SHA-256 and size: in memory when small, else in an anonymous temporary file."""

    def __init__(self, data: bytes | None = None, spool: IO[bytes] | None = None, size: int = 0,
                 sha256: bytes = b"") -> None:
        self._data, self._spool = data, spool
        self.size = len(data) if data is not None else size
        self.sha256 = sha256 or (hashlib.sha256(data).digest() if data is not None else b"")

    @classmethod
    def of(cls, data: bytes) -> "Blob":
        return cls(bytes(data))

    def read(self) -> bytes:
        if self._data is not None:
            return self._data
        assert self._spool is not None
        self._spool.seek(0)
        return self._spool.read()

    def chunks(self) -> Iterator[bytes]:
        if self._data is not None:
            yield self._data
            return
        assert self._spool is not None
        self._spool.seek(0)
        while chunk := self._spool.read(CHUNK):
            yield chunk

    def write_to(self, out: BinaryIO) -> None:
        for chunk in self.chunks():
            out.write(chunk)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Blob) and (self.size, self.sha256) == (other.size, other.sha256)

    def __hash__(self) -> int:
        return hash((self.size, self.sha256))

    def __repr__(self) -> str:
        return f"Blob({self.size} bytes, sha256={self.sha256.hex()[:12]}...)"


@dataclass(frozen=True, init=False)
class Member:
    """One file or symlink of a wheel or a .conda, its name relative to the archive's root (a .conda's: to $PREFIX).

    The one member type of both formats: the readers below make them, wheel/archive.py and conda/archive.py write
    them; the bytes live in a Blob (in memory, or spooled to disk when large)."""

    name: str
    blob: Blob = field(repr=False)
    executable: bool = False
    link: str | None = None
    """For a symlink: its target as stored (relative to the link's directory; checked to stay in the tree)."""

    def __init__(self, name: str, data: bytes | Blob = b"", executable: bool = False, link: str | None = None) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "blob", data if isinstance(data, Blob) else Blob.of(data))
        object.__setattr__(self, "executable", executable)
        object.__setattr__(self, "link", link)

    @property
    def data(self) -> bytes:
        return self.blob.read()


@dataclass
class Listing:
    """What a reader found in one archive: its members, the directories it names, its newest zip timestamp."""

    members: list[Member] = field(default_factory=list)
    dirs: set[str] = field(default_factory=set)
    newest: tuple[int, int, int, int, int, int] = (1980, 1, 1, 0, 0, 0)
    """The latest zip entry time (tar members carry none: the epoch of zip time)."""

    def add(self, other: "Listing") -> None:
        self.members += other.members
        self.dirs |= other.dirs
        self.newest = max(self.newest, other.newest)


class Budget:
    """Counts members and bytes of one archive against the limits, and decides what may stay in memory."""

    def __init__(self, label: str, limits: ArchiveLimits) -> None:
        self.label, self.limits = label, limits
        self.count = self.total = self.in_memory = 0

    def fail(self, name: str, message: str) -> ArchiveError:
        return ArchiveError([Problem(self.label, shown(name), message)])

    def admit(self, name: str, size: int) -> None:
        """Before reading a member: refuse it when it would pass a limit."""
        lim = self.limits
        self.count += 1
        if self.count > lim.members:
            raise self.fail("", f"more than {lim.members} members (limits.members)")
        if size > lim.member_bytes:
            raise self.fail(name, f"{size} bytes uncompressed, more than limits.member_bytes ({lim.member_bytes})")
        if self.total + size > lim.total_bytes:
            raise self.fail(name, f"the members add up to more than limits.total_bytes ({lim.total_bytes})")
        self.total += size

    def spool(self, name: str, stream: IO[bytes], size: int) -> Blob:
        """Copy exactly `size` bytes of `stream`, hashing them; refuse a stream that is shorter or longer."""
        small = size <= SMALL_BYTES and self.in_memory + size <= MEMORY_BUDGET
        out: IO[bytes] = io.BytesIO() if small else tempfile.TemporaryFile(prefix="cyfes-member-")
        digest, seen = hashlib.sha256(), 0
        while chunk := stream.read(min(CHUNK, size - seen + 1)):
            seen += len(chunk)
            if seen > size:
                raise self.fail(name, f"holds more bytes than its header declares ({size})")
            digest.update(chunk)
            out.write(chunk)
        if seen != size:
            raise self.fail(name, f"truncated: {seen} of {size} bytes")
        if small:
            self.in_memory += size
            return Blob(out.getvalue())  # type: ignore[attr-defined]
        return Blob(spool=out, size=size, sha256=digest.digest())


# --- names and trees ---------------------------------------------------------------------------------------------

def name_problem(name: str) -> str | None:
    """Why `name` may not be a member (it would leave the tree, cannot be created, or hides characters)."""
    if not name:
        return "empty member name"
    if name.startswith("/") or "\\" in name or (len(name) > 1 and name[1] == ":" and name[0].isalpha()):
        return "absolute or non-POSIX path: would be written outside the install (zip slip)"
    parts = name.split("/")
    if ".." in parts:
        return "path contains '..': would be written outside the install (zip slip)"
    if any(p in ("", ".") for p in parts):
        return "path with an empty or '.' component"
    if any(unicodedata.category(c) == "Cc" for c in name):
        return "control character in the member name"
    try:
        encoded = [p.encode("utf-8") for p in parts]
    except UnicodeEncodeError:
        return "member name is not valid UTF-8"
    if sum(len(p) + 1 for p in encoded) - 1 > PATH_MAX_BYTES:
        return f"member name longer than {PATH_MAX_BYTES} bytes"
    if any(len(p) > NAME_MAX_BYTES for p in encoded):
        return f"a component of the member name is longer than {NAME_MAX_BYTES} bytes"
    return None


class LinkLoop(Exception):
    pass


def _walk(base: list[str], target: str, links: dict[str, str], hops: list[int]) -> list[str] | None:
    """Components of `target` resolved from directory `base` as the kernel would, following the archive's
    links; None when the path goes above the archive's root or is absolute."""
    if target.startswith("/"):
        return None
    parts = list(base)
    for comp in target.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if not parts:
                return None
            parts.pop()
            continue
        parts.append(comp)
        link = links.get("/".join(parts))
        if link is not None:
            hops[0] += 1
            if hops[0] > MAX_LINK_HOPS:
                raise LinkLoop
            resolved = _walk(parts[:-1], link, links, hops)
            if resolved is None:
                return None
            parts = resolved
    return parts


def link_problem(name: str, links: dict[str, str]) -> str | None:
    """Why symlink `name` is unsafe: it resolves (through the archive's other links) outside the tree, or loops."""
    target = links[name]
    try:
        inside = _walk(name.split("/")[:-1], target, links, [0])
    except LinkLoop:
        return f"symlink to {target!r} loops (more than {MAX_LINK_HOPS} links followed)"
    return None if inside is not None else f"symlink to {target!r} leaves the archive's tree"


def tree_problems(label: str, listing: Listing) -> list[Problem]:
    """Whole-tree rules: no name both a file and a directory; every symlink resolves inside the tree."""
    members, dirs = listing.members, set(listing.dirs)
    for m in members:
        parts = m.name.split("/")
        dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
    problems = [Problem(label, shown(m.name), "is both a file and a directory")
                for m in members if m.name in dirs]
    links = {m.name: m.link for m in members if m.link is not None}
    for name in sorted(links):
        why = link_problem(name, links)
        if why:
            problems.append(Problem(label, shown(name), why))
    return problems


def link_leaves_tree(member: str, target: str, links: dict[str, str] | None = None) -> bool:
    """Whether symlink `member` -> `target` resolves outside the tree (given the archive's other links)."""
    return link_problem(member, {**(links or {}), member: target}) is not None


# --- zip ---------------------------------------------------------------------------------------------------------

def _zip_entry_count(fp: BinaryIO) -> int | None:
    """Entries the end-of-central-directory record announces, read before zipfile parses every header."""
    try:
        end = zipfile._EndRecData(fp)  # type: ignore[attr-defined]  # stable since Python 2; no public API
    except (OSError, ValueError):
        return None
    return None if end is None else end[zipfile._ECD_ENTRIES_TOTAL]  # type: ignore[attr-defined]


def open_zip(path, label: str, limits: ArchiveLimits) -> zipfile.ZipFile:
    """Open a zip after checking the member count it announces (a central directory of millions of entries would
    otherwise be parsed into memory first)."""
    try:
        with open(path, "rb") as fp:
            head = fp.read(4)
            count = _zip_entry_count(fp)
    except OSError as exc:
        raise ArchiveError([Problem(label, "", f"cannot be read ({exc.strerror or exc})")]) from exc
    if count is None:
        what = ("truncated zip archive (no end-of-central-directory record)" if head == b"PK\x03\x04"
                else "not a zip archive")
        raise ArchiveError([Problem(label, "", what)])
    if count > limits.members:
        raise ArchiveError([Problem(label, "", f"more than {limits.members} members (limits.members)")])
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise ArchiveError([Problem(label, "", f"corrupt zip archive ({exc})")]) from exc


def _zip_header_problems(label: str, infos: list[zipfile.ZipInfo]) -> list[Problem]:
    """Everything the central directory alone shows: names, duplicates, encryption, modes."""
    problems, seen = [], {}
    for info in infos:
        name = info.filename[:-1] if info.is_dir() else info.filename
        why = name_problem(name)
        mode = info.external_attr >> 16
        if why is None and name in seen:
            why = ("appears more than once in the archive" if seen[name] == info.is_dir()
                   else "is both a file and a directory")
        elif why is None and info.flag_bits & 0x1:
            why = "encrypted entry (zip flag bit 0): cannot be checked"
        elif why is None and mode and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
            why = "only regular files, directories and symlinks are allowed"
        elif why is None and mode & 0o7000:
            why = "set-uid, set-gid or sticky bit"
        if why:
            problems.append(Problem(label, shown(info.filename), why))
        seen[name] = info.is_dir()
    return problems


def zip_members(path, label: str, limits: ArchiveLimits | None = None) -> Listing:
    """Every member of a zip, checked and hashed while streaming; ArchiveError names every problem found."""
    limits = limits or LIMITS.get()
    budget = Budget(label, limits)
    with open_zip(path, label, limits) as zf:
        infos = zf.infolist()
        problems = _zip_header_problems(label, infos)
        if problems:
            raise ArchiveError(problems)
        out = Listing()
        for info in infos:
            out.newest = max(out.newest, info.date_time)
            if info.is_dir():
                out.dirs.add(info.filename[:-1])
            else:
                out.members.append(_zip_member(zf, info, budget))
    problems = tree_problems(label, out)
    if problems:
        raise ArchiveError(problems)
    return out


def _zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: Budget) -> Member:
    budget.admit(info.filename, info.file_size)
    mode = info.external_attr >> 16
    try:
        with zf.open(info) as stream:
            blob = budget.spool(info.filename, stream, info.file_size)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as exc:
        raise budget.fail(info.filename, f"cannot be read: truncated or corrupt ({exc})") from exc
    if stat.S_ISLNK(mode):
        return Member(info.filename, blob, link=_link_target(budget, info.filename, blob))
    return Member(info.filename, blob, bool(mode & 0o111))


def _link_target(budget: Budget, name: str, blob: Blob) -> str:
    if blob.size > PATH_MAX_BYTES:
        raise budget.fail(name, f"symlink target longer than {PATH_MAX_BYTES} bytes")
    try:
        return blob.read().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise budget.fail(name, "symlink target is not UTF-8") from exc


# --- tar (the two halves of a .conda) ----------------------------------------------------------------------------

class _Bounded(io.RawIOBase):
    """A read-only stream that refuses to yield more than `limit` bytes (a decompression bomb stops here)."""

    def __init__(self, raw: IO[bytes], limit: int, budget: Budget, what: str) -> None:
        self.raw, self.left, self.budget, self.what = raw, limit, budget, what

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self.raw.read(min(len(b), self.left + 1))
        if len(data) > self.left:
            raise self.budget.fail(self.what, "decompresses to more than limits.total_bytes")
        self.left -= len(data)
        b[:len(data)] = data
        return len(data)


def tar_members(stream: IO[bytes], budget: Budget, what: str, seen: set[str]) -> Listing:
    """Every member of an uncompressed tar stream, read once in order (tarfile's stream mode)."""
    bounded = io.BufferedReader(_Bounded(stream, budget.limits.total_bytes + (64 << 20), budget, what), CHUNK)
    out = Listing()
    with tarfile.open(fileobj=bounded, mode="r|") as tar:
        for m in tar:
            member = _tar_member(tar, m, budget, seen)
            if isinstance(member, str):
                out.dirs.add(member)
            else:
                out.members.append(member)
    return out


def _tar_member(tar: tarfile.TarFile, m: tarfile.TarInfo, budget: Budget, seen: set[str]) -> Member | str:
    """A file or symlink as a Member; a directory as its name."""
    name = m.name[:-1] if m.isdir() and m.name.endswith("/") else m.name
    why = name_problem(name)
    if why is None and name in seen:
        why = "appears more than once in the package"
    elif why is None and not (m.isfile() or m.issym() or m.isdir()):
        why = "only regular files, directories and symlinks are allowed"
    elif why is None and m.mode & 0o7000:
        why = "set-uid, set-gid or sticky bit"
    if why:
        raise budget.fail(name, why)
    seen.add(name)
    if m.isdir():
        return name
    if m.issym():
        budget.admit(name, 0)
        link = m.linkname
        if len(link.encode("utf-8", "surrogateescape")) > PATH_MAX_BYTES:
            raise budget.fail(name, f"symlink target longer than {PATH_MAX_BYTES} bytes")
        return Member(name, b"", link=link)
    budget.admit(name, m.size)
    data = tar.extractfile(m)
    assert data is not None
    return Member(name, budget.spool(name, data, m.size), bool(m.mode & 0o111))


ZIP_EPOCH_MIN = 315532800
"""1980-01-01: the earliest time a zip entry can carry."""


def source_date_epoch() -> int | None:
    """SOURCE_DATE_EPOCH (reproducible-builds.org), the one timestamp every archive the release writes carries;
    None when unset or empty (each writer then says what it falls back to)."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise ArchiveError([f"SOURCE_DATE_EPOCH={value!r}: expected a whole number of seconds since 1970"])
    return int(value)
