"""Every bad input gives exit 2, one clear line naming the file and the problem, and writes nothing
(neither in the output directory nor a staging directory next to it)."""
from __future__ import annotations

import stat
import struct
import zipfile
from pathlib import Path

import pytest

import wheelfactory as wf

NAME = f"seedpkg-1.0-{wf.TAG}-{wf.TAG}-linux_x86_64.whl"
EM_AARCH64 = 183


def members(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as zf:
        return {n: zf.read(n) for n in zf.namelist() if ".dist-info/" not in n and not n.endswith("/")}


def rebuilt(tmp: Path, files: dict[str, bytes], tamper: dict[str, bytes] | None = None, link: str = "") -> Path:
    """A wheel with a correct RECORD for `files`; then `tamper` replaces contents behind RECORD's back."""
    path = wf.write_raw_wheel(tmp / NAME, files)
    if tamper or link:
        with zipfile.ZipFile(path) as zf:
            entries = {i.filename: (i, zf.read(i)) for i in zf.infolist()}
        with zipfile.ZipFile(path, "w") as zf:
            for n, (info, data) in entries.items():
                zf.writestr(info, (tamper or {}).get(n, data))
            if link:
                info = zipfile.ZipInfo("seedpkg/escape")
                info.create_system, info.external_attr = 3, (stat.S_IFLNK | 0o777) << 16
                zf.writestr(info, link)
    return path


def foreign_machine(data: bytes) -> bytes:
    return data[:18] + struct.pack("<H", EM_AARCH64) + data[20:]  # e_machine of an ELF64 little-endian header


def make_bad(kind: str, seed: dict, tmp: Path) -> tuple[Path, str]:
    files = members(seed["repaired"])
    graft = next(n for n in files if "libgraft" in n)
    if kind == "not-a-zip":
        (tmp / NAME).write_bytes(b"this is not a wheel\n")
        return tmp / NAME, f"In {NAME}: not a zip archive"
    if kind == "truncated":
        data = seed["repaired"].read_bytes()
        (tmp / NAME).write_bytes(data[: len(data) // 2])
        return tmp / NAME, f"In {NAME}: truncated zip archive (no end-of-central-directory record)"
    if kind == "record-mismatch":
        return (rebuilt(tmp, files, {"seedpkg/__init__.py": b"print('tampered')\n"}),
                f"In {NAME}, seedpkg/__init__.py: RECORD hash or size does not match the file")
    if kind == "zip-slip":
        return (rebuilt(tmp, {**files, "../evil.py": b"x = 1\n"}),
                f"In {NAME}, ../evil.py: path contains '..': would be written outside the install (zip slip)")
    if kind == "absolute":
        return (rebuilt(tmp, {**files, "/etc/evil.conf": b"x\n"}),
                f"In {NAME}, /etc/evil.conf: absolute or non-POSIX path: would be written outside the install")
    if kind == "symlink":
        return (rebuilt(tmp, files, link="../../../../etc/passwd"),
                f"In {NAME}, seedpkg/escape: symlink to '../../../../etc/passwd' leaves the archive's tree")
    if kind == "foreign-elf":
        return (rebuilt(tmp, {**files, graft: foreign_machine(files[graft])}),
                f"In {NAME}, {graft}: ELF for machine EM_AARCH64, expected EM_X86_64")
    if kind == "not-elf":
        return (rebuilt(tmp, {**files, "seedpkg/fake.so": b"#!/bin/sh\necho not a library\n"}),
                f"In {NAME}, seedpkg/fake.so: named like a shared library but is not an ELF file")
    raise ValueError(kind)


KINDS = ["not-a-zip", "truncated", "record-mismatch", "zip-slip", "absolute", "symlink", "foreign-elf", "not-elf"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", ["fix", "check"])
def test_bad_wheel_exit_2_clear_message_nothing_written(kind, command, seed, run_release, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    wheel, message = make_bad(kind, seed, src)
    out = tmp_path / "out"
    args = [command, str(wheel)] + (["-o", str(out)] if command == "fix" else [])
    proc = run_release(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    # the CLI names the artifact as the user gave it (the path), then the member
    assert f"error: {message.replace(f'In {NAME}', f'In {wheel}')}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists() or not any(out.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"] + (["out"] if out.exists() else [])
    assert sorted(p.name for p in src.iterdir()) == [NAME]


def test_every_bad_input_named_in_one_run(seed, run_release, tmp_path):
    """Validation collects all problems: two bad wheels, one exit, both named, the good one not written either."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    zwheel, zmsg = make_bad("zip-slip", seed, a)
    nwheel, nmsg = make_bad("not-elf", seed, b)
    proc = run_release("fix", str(seed["repaired"]), str(zwheel), str(nwheel), "-o", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert zmsg.replace(f"In {NAME}", f"In {zwheel}") in proc.stderr
    assert nmsg.replace(f"In {NAME}", f"In {nwheel}") in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("text, message", [
    ("pyhton: [3.11]\n", "In {cfg}, pyhton (line 1): unknown key; did you mean 'python'?"),
    ("cuda:\n  strategy: bundled\n", "In {cfg}, cuda.strategy (line 2): 'bundled' is not allowed "
                                     "(allowed: vendor, pip, static)"),
    ("python: [3.11\n", "In {cfg}, line 2: not valid YAML"),
])
def test_malformed_release_yaml(text, message, seed, run_release, tmp_path):
    cfg = tmp_path / "release.yaml"
    cfg.write_text(text)
    out = tmp_path / "out"
    proc = run_release("--config", str(cfg), "fix", str(seed["repaired"]), "-o", str(out))
    assert proc.returncode == 2 and f"error: {message.format(cfg=cfg)}" in proc.stderr, proc.stderr
    assert not out.exists()
