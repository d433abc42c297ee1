"""Writing the outputs of one run safely: refusal rules, staging, one commit for all files, signal cleanup.

A run's outputs are first written to temporary files beside their targets (`.NAME.XXXXXX.part`), then renamed
into place together with SIGINT/SIGTERM held back, so a run either replaces all of its outputs or none: a target
that existed before is restored when a later rename fails. A signal while writing removes every temporary file
before the process exits (only SIGKILL or a power cut can leave one behind).

Refused targets (InputError, before any work): an empty name; a name ending in '/'; a directory, a FIFO, a socket
or a device node; a symbolic link or a read-only file (unless `force`, which replaces the link or file itself,
never what a link points to); a file the run reads, through whatever path, symbolic or hard link names it (same
device and inode; `force` does not change this); two outputs that are the same file (same directory and name, or
same inode); a directory where no file can be created (/proc, /sys, read-only mounts). Only regular files are ever
written, and the commit checks again that no target has become an input.
"""
from __future__ import annotations

import contextlib
import errno
import os
import resource
import signal
import stat
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Union

from .._errors import InputError

PathLike = Union[str, "os.PathLike[str]"]
Writer = Callable[[IO[bytes]], None]
#: Signals that end a run cleanly (temporary files removed); SIGINT arrives as KeyboardInterrupt.
TERMINATING = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s)
_HELD = tuple(s for s in (signal.SIGINT,) + TERMINATING)
#: Temporary files alive in this process, removed by `discard_all` whatever interrupts the run.
_LIVE: set[str] = set()


class Terminated(BaseException):
    """The process got SIGTERM or SIGHUP; raised in the main thread so that cleanup code runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


def install_signal_handlers() -> dict[int, Any]:
    """SIGTERM/SIGHUP raise Terminated (SIGINT already raises KeyboardInterrupt), so `finally` blocks run.
    Returns the handlers replaced, for restore_signal_handlers."""
    old: dict[int, Any] = {}
    with contextlib.suppress(ValueError):  # not the main thread: leave the handlers alone
        for sig in TERMINATING:
            if signal.getsignal(sig) is not signal.SIG_IGN:
                old[sig] = signal.signal(sig, _raise_terminated)
    return old


def restore_signal_handlers(old: dict[int, Any]) -> None:
    for sig, handler in old.items():
        signal.signal(sig, handler)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP back until the block ends: a commit or a cleanup is never cut in half.

    Blocking them in the kernel is not enough: a signal that arrived just before is already queued for Python's
    handler, which would raise KeyboardInterrupt at the next bytecode of the block. So the block also runs with
    handlers that only record a signal, and each recorded one is raised again, to the real handler, at the end."""
    try:
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
    except (AttributeError, ValueError):  # not the main thread, or no pthread_sigmask: nothing to hold
        yield
        return
    caught: list[int] = []
    handlers: dict[int, Any] = {}
    main = threading.current_thread() is threading.main_thread()  # only there can handlers be set (or run)
    try:
        for sig in _HELD if main else ():
            if signal.getsignal(sig) is not None:  # None: a handler not set from Python, left alone
                handlers[sig] = signal.signal(sig, lambda signum, frame: caught.append(signum))
        yield
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        for sig in dict.fromkeys(caught):
            if handlers[sig] is not signal.SIG_IGN:
                signal.raise_signal(sig)


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
    _LIVE.discard(path)


def discard_all() -> None:
    """Remove every temporary file this process still has (the CLI calls it on any way out)."""
    with signals_held():
        for path in list(_LIVE):
            _unlink(path)


# ----------------------------------------------------------------------------------------------- refusals
def _kind(mode: int) -> str | None:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return None


Identity = tuple[int, int]


def input_identities(inputs: Iterable[PathLike]) -> dict[Identity, str]:
    """(device, inode) of each input that exists, followed through links, to the name it was given as."""
    out: dict[Identity, str] = {}
    for src in inputs:
        with contextlib.suppress(OSError, ValueError):
            st = os.stat(src)
            out.setdefault((st.st_dev, st.st_ino), str(src))
    return out


def _input_named(p: Path, st: os.stat_result, inputs: dict[Identity, str]) -> str | None:
    """The input that `p` is (its own inode, or what a link at `p` points to), else None."""
    found = inputs.get((st.st_dev, st.st_ino))
    if found is None and stat.S_ISLNK(st.st_mode):
        with contextlib.suppress(OSError):
            target = os.stat(p)
            found = inputs.get((target.st_dev, target.st_ino))
    return found


def _refuse_input(p: Path, st: os.stat_result, inputs: dict[Identity, str]) -> None:
    source = _input_named(p, st, inputs)
    if source is not None:
        raise InputError(f"{p}: is an input of this run ({source}); cyfes never writes over its inputs, "
                         "not even with --force")


def _probe_directory(p: Path) -> None:
    """Create and remove a temporary file where `p` will be written: /proc, /sys and read-only places fail
    here, before any work, instead of after the computation."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".part", dir=str(p.parent))
    except OSError as exc:
        raise InputError(f"{p}: cannot create files in {str(p.parent)!r}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(tmp)


def check_target(path: PathLike, inputs: Sequence[PathLike] = (), force: bool = False) -> Path:
    """`path` as a Path after the refusal rules of this module's docstring; raises InputError naming it."""
    return check_targets([path], inputs, force)[0]


def check_name(path: PathLike) -> None:
    """The rules on an output's name alone (no file system access): not empty, not ending in '/'."""
    if not os.fspath(path).strip():
        raise InputError(f"{os.fspath(path)!r}: an empty output file name")
    if os.fspath(path).endswith(("/", os.sep)):  # Path() drops the slash: `newdir/` would be written as a file
        raise InputError(f"{os.fspath(path)}: names a directory (it ends in '/'); give a file name, e.g. "
                         f"{os.fspath(path)}fes.dat")


def _lstat_target(path: PathLike) -> tuple[Path, os.stat_result | None]:
    """`path` as a Path and its lstat (None when nothing is there), after the name and directory rules."""
    check_name(path)
    p = Path(path)
    if not p.name or p.name in (".", ".."):
        raise InputError(f"{path}: not a file name")
    if not p.parent.is_dir():
        raise InputError(f"{p}: output directory {str(p.parent)!r} does not exist")
    try:
        return p, os.lstat(p)
    except FileNotFoundError:
        return p, None
    except OSError as exc:
        raise InputError(f"{p}: cannot check the output path: {exc.strerror or exc}") from None


def _refuse_existing(p: Path, st: os.stat_result, inputs: dict[Identity, str], force: bool) -> None:
    kind = _kind(st.st_mode)
    if kind:
        raise InputError(f"{p}: is {kind}; cyfes writes regular files only")
    _refuse_input(p, st, inputs)
    hint = "; pass --force to replace it"
    if stat.S_ISLNK(st.st_mode):
        if not force:
            raise InputError(f"{p}: is a symbolic link (to {os.readlink(p)!r}); cyfes does not write through links"
                             f"{hint} (the link itself is replaced, not what it points to)")
        return
    if not st.st_mode & 0o222 and not force:
        raise InputError(f"{p}: is read-only{hint}")


def _identity(p: Path) -> tuple[str, str]:
    return os.path.realpath(p.parent), p.name


def check_targets(paths: Sequence[PathLike], inputs: Sequence[PathLike] = (), force: bool = False) -> list[Path]:
    """The refusal rules of this module's docstring for every path, and no file named twice (by directory and
    name, or by inode); each output directory is probed once."""
    known = input_identities(inputs)
    by_name: dict[tuple[str, str], str] = {}
    by_inode: dict[Identity, str] = {}
    out = []
    for path in paths:
        p, st = _lstat_target(path)
        if st is not None:
            _refuse_existing(p, st, known, force)
        key = _identity(p)
        twin = by_name.get(key) or (by_inode.get((st.st_dev, st.st_ino)) if st is not None else None)
        if twin is not None:
            same = "named twice as an output" if twin == str(path) else f"the same output file as {twin}"
            raise InputError(f"{path}: {same}; name each output once")
        by_name[key] = str(path)
        if st is not None:
            by_inode[(st.st_dev, st.st_ino)] = str(path)
        out.append(p)
    for first in {str(p.parent): p for p in out}.values():  # one probe per directory: --stride writes thousands
        _probe_directory(first)
    return out


# ----------------------------------------------------------------------------------------------- budgets
def free_bytes(directory: PathLike) -> int | None:
    """Bytes an unprivileged writer may still use on the filesystem of `directory` (None if unknown)."""
    try:
        st = os.statvfs(directory)
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize


def file_size_limit() -> int | None:
    """The process's file size limit (RLIMIT_FSIZE), None when unlimited."""
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def check_sizes(sizes: Sequence[tuple[Path, int]]) -> None:
    """Refuse before any work when the estimated outputs exceed the file size limit or the free disk space."""
    limit = file_size_limit()
    per_device: dict[int, tuple[int, Path]] = {}
    for p, size in sizes:
        if limit is not None and size > limit:
            raise InputError(f"{p}: needs about {_human(size)}, more than this process's file size limit "
                             f"({_human(limit)}, ulimit -f); use fewer bins or another format")
        dev = os.stat(p.parent).st_dev
        total, _ = per_device.get(dev, (0, p))
        per_device[dev] = (total + size, p)
    for total, p in per_device.values():
        free = free_bytes(p.parent)
        if free is not None and total > free:
            raise InputError(f"{p}: the outputs need about {_human(total)} but only {_human(free)} are free in "
                             f"{str(p.parent)!r}")


def _human(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


# ----------------------------------------------------------------------------------------------- staging
@dataclass
class _Staged:
    target: Path
    temp: str


class Staging:
    """The outputs of one run: `add` writes each to a temporary file, `commit` renames them all into place.

    Used as a context manager: leaving the block without `commit` (an error, a signal) removes the temporary
    files and leaves every target as it was."""

    def __init__(self, inputs: Sequence[PathLike] = ()) -> None:
        self._staged: list[_Staged] = []
        self._inputs = list(inputs)

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()

    def add(self, path: PathLike, write: Writer) -> Path:
        """Write one output to a temporary file beside `path` (mode as a new file under the umask)."""
        p = Path(path)
        with signals_held():
            try:
                fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".part", dir=str(p.parent))
            except OSError as exc:
                raise InputError(f"{p}: cannot create a file in {str(p.parent)!r}: {exc.strerror or exc}") from None
            _LIVE.add(tmp)
            self._staged.append(_Staged(p, tmp))
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
            os.chmod(tmp, 0o666 & ~_umask())
        except OSError as exc:  # a full disk, the file size limit (EFBIG), an I/O error
            why = " (this process's file size limit, ulimit -f)" if exc.errno == errno.EFBIG else ""
            raise InputError(f"{p}: cannot write: {exc.strerror or exc}{why}") from None
        return p

    def _refuse_inputs(self) -> None:
        try:
            _refuse_inputs_of(self._staged, self._inputs)
        except InputError:
            self.discard()
            raise

    def discard(self) -> None:
        with signals_held():
            for item in self._staged:
                _unlink(item.temp)
            self._staged.clear()

    def commit(self) -> list[Path]:
        """Rename every staged file into place, all or none (earlier targets restored when one rename fails)."""
        done: list[tuple[_Staged, str | None]] = []
        with signals_held():
            self._refuse_inputs()
            try:
                for item in self._staged:
                    done.append((item, _backup(item.target)))
                    os.replace(item.temp, item.target)
                    _LIVE.discard(item.temp)
            except OSError as exc:
                _roll_back(done)
                self.discard()
                raise InputError(f"{done[-1][0].target}: cannot put the output in place: "
                                 f"{exc.strerror or exc}") from None
            except BaseException:  # MemoryError and the like: the set still goes back as it was
                _roll_back(done)
                self.discard()
                raise
            for _, backup in done:
                if backup:
                    _unlink(backup)
            targets = [item.target for item in self._staged]
            self._staged.clear()
        return targets


def _refuse_inputs_of(staged: Sequence[_Staged], inputs: Sequence[PathLike]) -> None:
    """Before the first rename: no target has become one of the inputs since the checks before the work."""
    known = input_identities(inputs)
    for item in staged if known else ():
        with contextlib.suppress(FileNotFoundError):
            _refuse_input(item.target, os.lstat(item.target), known)


def _backup(target: Path) -> str | None:
    """A hard link to the file now at `target`, to put back if the commit fails; None when there is none."""
    if not os.path.lexists(target):
        return None
    name = tempfile.mktemp(prefix=f".{target.name}.", suffix=".old", dir=str(target.parent))
    try:
        os.link(target, name, follow_symlinks=False)
    except OSError:  # a filesystem without hard links: the old file cannot be kept
        return None
    _LIVE.add(name)
    return name


def _roll_back(done: list[tuple[_Staged, str | None]]) -> None:
    for item, backup in reversed(done):
        with contextlib.suppress(OSError):
            if backup:
                os.replace(backup, item.target)
                _unlink(backup)  # rename onto a link of the same file does nothing (POSIX)
            elif not os.path.lexists(item.temp):  # renamed in, and nothing was there before
                os.unlink(item.target)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_all(outputs: Sequence[tuple[PathLike, Writer]], inputs: Sequence[PathLike] = ()) -> list[Path]:
    """Stage every (path, writer) and commit them together (refused if a target is now one of `inputs`)."""
    with Staging(inputs) as staging:
        for path, write in outputs:
            staging.add(path, write)
        return staging.commit()
