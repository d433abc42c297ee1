"""cyfes.io.output: refusal rules, staging, one commit for several files, file size limits, signal cleanup."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cyfes._errors import InputError
from cyfes.io import output as _output
from reference import tree


def test_refuses_fifo_device_symlink_read_only_and_input(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.dat")
    (tmp_path / "target.dat").write_text("target")
    (tmp_path / "link.dat").symlink_to(tmp_path / "target.dat")
    (tmp_path / "ro.dat").write_text("read-only")
    (tmp_path / "ro.dat").chmod(0o444)
    (tmp_path / "in.dat").write_text("input")
    (tmp_path / "dir.dat").mkdir()
    before = tree(tmp_path)
    cases = {"pipe.dat": "is a FIFO", "link.dat": "is a symbolic link", "ro.dat": "is read-only",
             "in.dat": "is an input of this run", "dir.dat": "is a directory"}
    for name, message in cases.items():
        with pytest.raises(InputError, match=message) as info:
            _output.check_target(tmp_path / name, [tmp_path / "in.dat"])
        assert str(tmp_path / name) in str(info.value)
    assert tree(tmp_path) == before


def test_device_node_is_refused_even_with_force(tmp_path: Path) -> None:
    try:
        os.mknod(tmp_path / "null.dat", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs root")
    for force in (False, True):
        with pytest.raises(InputError, match="is a character device; cyfes writes regular files only"):
            _output.check_target(tmp_path / "null.dat", force=force)


def test_force_replaces_the_link_itself_never_its_target(tmp_path: Path) -> None:
    (tmp_path / "target.dat").write_text("target")
    (tmp_path / "link.dat").symlink_to("target.dat")
    p = _output.check_target(tmp_path / "link.dat", force=True)
    _output.write_all([(p, lambda fh: fh.write(b"new"))])
    assert (tmp_path / "target.dat").read_text() == "target"
    assert not (tmp_path / "link.dat").is_symlink() and (tmp_path / "link.dat").read_text() == "new"


def test_the_same_file_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="a.dat: named twice as an output"):
        _output.check_targets([tmp_path / "a.dat", tmp_path / "." / "a.dat"])
    (tmp_path / "sub").mkdir()
    (tmp_path / "link").symlink_to("sub")
    with pytest.raises(InputError, match=f"link/a.dat: the same output file as {tmp_path}/sub/a.dat"):
        _output.check_targets([tmp_path / "sub" / "a.dat", tmp_path / "link" / "a.dat"])


@pytest.mark.parametrize("where", ["/proc", "/sys"])
def test_pseudo_filesystems_are_refused_before_any_work(where: str) -> None:
    if not os.path.isdir(where):
        pytest.skip(f"no {where} here")
    with pytest.raises(InputError, match=f"{where}/fes.dat: cannot create files in '{where}'"):
        _output.check_target(f"{where}/fes.dat")


def test_all_outputs_or_none_when_a_writer_fails(tmp_path: Path) -> None:
    (tmp_path / "a.dat").write_text("old a")

    def explode(fh: object) -> None:
        raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError):
        _output.write_all([(tmp_path / "a.dat", lambda fh: fh.write(b"new a")), (tmp_path / "b.dat", explode)])
    assert tree(tmp_path) == {"a.dat": (tree(tmp_path)["a.dat"][0], b"old a")}


def test_a_failed_rename_puts_earlier_outputs_back(tmp_path: Path) -> None:
    (tmp_path / "a.dat").write_text("old a")

    def write_b(fh: object) -> None:  # the target turns into a directory while b is written: its rename fails
        (tmp_path / "b.dat").mkdir()
        (tmp_path / "b.dat" / "x").write_text("x")
        fh.write(b"new b")  # type: ignore[attr-defined]

    with pytest.raises(InputError, match="b.dat: cannot put the output in place"):
        _output.write_all([(tmp_path / "a.dat", lambda fh: fh.write(b"new a")), (tmp_path / "b.dat", write_b)])
    assert (tmp_path / "a.dat").read_text() == "old a"
    assert sorted(tree(tmp_path)) == ["a.dat", "b.dat", "b.dat/x"]  # no temporary or backup file left


def test_a_new_first_output_is_removed_when_the_second_rename_fails(tmp_path: Path) -> None:
    def write_b(fh: object) -> None:
        (tmp_path / "b.dat").mkdir()
        (tmp_path / "b.dat" / "x").write_text("x")

    with pytest.raises(InputError):
        _output.write_all([(tmp_path / "a.dat", lambda fh: fh.write(b"a")), (tmp_path / "b.dat", write_b)])
    assert sorted(tree(tmp_path)) == ["b.dat", "b.dat/x"]


def _run_python(code: str, cwd: Path, fsize: int) -> subprocess.CompletedProcess:
    prelude = f"import resource; resource.setrlimit(resource.RLIMIT_FSIZE, ({fsize}, resource.RLIM_INFINITY))\n"
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], cwd=cwd, capture_output=True,
                          text=True, timeout=60)


def test_file_size_limit_mid_write_is_one_error_and_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "a.dat").write_text("old a")
    proc = _run_python("""
        from cyfes.io import output as _output
        from cyfes._errors import InputError
        try:
            _output.write_all([("a.dat", lambda fh: fh.write(b"a" * 100)),
                               ("b.dat", lambda fh: fh.write(b"b" * 100_000))])
        except InputError as exc:
            print(exc)
        """, tmp_path, 10_000)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "b.dat: cannot write: File too large (this process's file size limit, ulimit -f)"
    assert sorted(tree(tmp_path)) == ["a.dat"] and (tmp_path / "a.dat").read_text() == "old a"


def test_file_size_limit_is_checked_before_work(tmp_path: Path) -> None:
    proc = _run_python("""
        from pathlib import Path
        from cyfes.io import output as _output
        from cyfes._errors import InputError
        try:
            _output.check_sizes([(Path("big.dat"), 50_000)])
        except InputError as exc:
            print(exc)
        """, tmp_path, 10_000)
    assert "big.dat: needs about 48.8 KiB, more than this process's file size limit (9.8 KiB" in proc.stdout


def test_free_space_is_checked(tmp_path: Path) -> None:
    free = _output.free_bytes(tmp_path)
    assert free is not None and free > 0
    with pytest.raises(InputError, match="the outputs need about .* but only .* are free"):
        _output.check_sizes([(tmp_path / "a.dat", free // 2 + 1), (tmp_path / "b.dat", free // 2 + 1)])
