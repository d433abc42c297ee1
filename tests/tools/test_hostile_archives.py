"""Hostile wheels and .conda packages: each is refused with exit 2 and one line per problem naming the file and
the problem; nothing is written or left anywhere (work dir, output dir, TMPDIR); the artifact's code never runs."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import hostile as h
from tools.release.archive import shown

W = h.WHEEL_NAME
DI = h.DIST_INFO
ZEROS = bytes(2 << 20)


def _wheel(files=None, **kw):
    def build(d: Path, marker: Path) -> Path:
        base = h.wheel_files(marker)
        return h.write_wheel(d / W, {**base, **(files(base) if callable(files) else files or {})}, **kw)
    return build


def _without(name):
    def build(d: Path, marker: Path) -> Path:
        files = h.wheel_files(marker)
        del files[name]
        return h.write_wheel(d / W, files)
    return build


def _encrypted(d: Path, marker: Path) -> Path:
    return h.set_zip_flag(h.write_wheel(d / W, h.wheel_files(marker)), "seedpkg/data.txt", 0x1)


LONG = "seedpkg/" + "a" * 300 + ".txt"
DEEP = "seedpkg/" + "/".join(["d" * 100] * 11) + "/x.txt"  # 1124 bytes
LIMITS = "limits:\n  member_bytes: 1048576\n  total_bytes: 3000000\n  members: 8\n"

# name: (builder, expected lines after "In in/<artifact>", release.yaml text or None)
WHEEL_CASES = {
    "link-through-link": (_wheel({"seedpkg/a": h.Link(".."), "seedpkg/b": h.Link("a/../escaped")}),
                          [", seedpkg/b: symlink to 'a/../escaped' leaves the archive's tree"], None),
    "link-chain-absolute": (_wheel({"seedpkg/a": h.Link("b"), "seedpkg/b": h.Link("/etc")}),
                            [", seedpkg/a: symlink to 'b' leaves the archive's tree",
                             ", seedpkg/b: symlink to '/etc' leaves the archive's tree"], None),
    "link-loop": (_wheel({"seedpkg/a": h.Link("b"), "seedpkg/b": h.Link("a")}),
                  [", seedpkg/a: symlink to 'b' loops (more than 40 links followed)",
                   ", seedpkg/b: symlink to 'a' loops (more than 40 links followed)"], None),
    "file-under-link": (_wheel({"seedpkg/l": h.Link("."), "seedpkg/l/x.py": b"x = 1\n"}),
                        [", seedpkg/l: is both a file and a directory"], None),
    "empty-hash": (_wheel(rows={"seedpkg/__init__.py": ("", "")}),
                   [", seedpkg/__init__.py: listed in RECORD without a hash"], None),
    "empty-hash-with-size": (_wheel(rows={"seedpkg/data.txt": ("", "10")}),
                             [", seedpkg/data.txt: listed in RECORD without a hash"], None),
    "duplicate-member": (_wheel(extra=[("seedpkg/data.txt", b"second copy, never hashed\n")]),
                         [", seedpkg/data.txt: appears more than once in the archive"], None),
    "file-and-dir-entry": (_wheel(extra=[("seedpkg/data.txt/", None)]),
                           [", seedpkg/data.txt/: is both a file and a directory"], None),
    "file-and-dir-by-path": (_wheel({"seedpkg/data.txt/inner.py": b"x = 1\n"}),
                             [", seedpkg/data.txt: is both a file and a directory"], None),
    "encrypted-flag": (_encrypted, [", seedpkg/data.txt: encrypted entry (zip flag bit 0): cannot be checked"], None),
    "long-component": (_wheel({LONG: b"x"}),
                       [f", {shown(LONG)}: a component of the member name is longer than 255 bytes"], None),
    "long-path": (_wheel({DEEP: b"x"}), [f", {shown(DEEP)}: member name longer than 1024 bytes"], None),
    "control-character": (_wheel({"seedpkg/a\x1bb.py": b"x"}),
                          [", seedpkg/a\\x1bb.py: control character in the member name"], None),
    "set-uid": (_wheel(mode={"seedpkg/data.txt": 0o4755}), [", seedpkg/data.txt: set-uid, set-gid or sticky bit"],
                None),
    "metadata-missing": (_without(f"{DI}/METADATA"), [f", {DI}/METADATA: missing"], None),
    "metadata-not-utf8": (_wheel({f"{DI}/METADATA": b"Metadata-Version: 2.1\nName: seed\xff\n"}),
                          [f", {DI}/METADATA: not UTF-8 (byte {len(b'Metadata-Version: 2.1 Name: seed')})"], None),
    "record-200kB-field": (_wheel(rows={"seedpkg/data.txt": ("sha256=" + "A" * 200_000, "10")}),
                           [f", {DI}/RECORD: not a valid RECORD (field larger than field limit (131072))"], None),
    "member-over-limit": (_wheel({"seedpkg/zeros.bin": ZEROS}),
                          [", seedpkg/zeros.bin: 2097152 bytes uncompressed, more than limits.member_bytes "
                           "(1048576)"], LIMITS),
    "total-over-limit": (_wheel({"seedpkg/z1.bin": ZEROS, "seedpkg/z2.bin": ZEROS}),
                         [", seedpkg/z2.bin: the members add up to more than limits.total_bytes (4000000)"],
                         LIMITS.replace("1048576", "4194304").replace("3000000", "4000000")),
    "count-over-limit": (_wheel({f"seedpkg/m{i}.py": b"" for i in range(8)}),
                         [": more than 8 members (limits.members)"], LIMITS),
}


def assert_refused(proc, lines: list[str], work: Path, before: dict, marker: Path) -> None:
    """Exit 2, exactly the expected lines, no traceback, nothing changed or left, no artifact code run."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.splitlines() == lines, proc.stderr
    assert h.snapshot(work) == before
    assert not marker.exists()


@pytest.mark.parametrize("case", sorted(WHEEL_CASES))
def test_hostile_wheel_check(cyfes_release, case, tmp_path):
    work, marker = tmp_path / "work", tmp_path / "ran"
    (work / "in").mkdir(parents=True)
    (work / "tmp").mkdir()
    build, lines, config = WHEEL_CASES[case]
    wheel = build(work / "in", marker)
    args = ["check", f"in/{wheel.name}"]
    if config:
        (work / "release.yaml").write_text(config)
    before = h.snapshot(work)
    proc = h.run_tool(cyfes_release, work, *args)
    assert_refused(proc, [f"error: In in/{wheel.name}{line}" for line in lines], work, before, marker)


@pytest.mark.parametrize("case", ["link-through-link", "empty-hash", "duplicate-member", "metadata-not-utf8"])
@pytest.mark.parametrize("command", ["fix", "verify"])
def test_hostile_wheel_fix_and_verify_write_and_run_nothing(cyfes_release, case, command, tmp_path):
    """fix publishes nothing; verify installs nothing and so never imports the tampered module."""
    work, marker = tmp_path / "work", tmp_path / "ran"
    (work / "in").mkdir(parents=True)
    (work / "tmp").mkdir()
    build, lines, _ = WHEEL_CASES[case]
    wheel = build(work / "in", marker)
    before = h.snapshot(work)
    proc = h.run_tool(cyfes_release, work, command, f"in/{wheel.name}", *(["-o", "out"] if command == "fix" else []))
    assert_refused(proc, [f"error: In in/{wheel.name}{line}" for line in lines], work, before, marker)


def test_honest_wheel_passes(cyfes_release, tmp_path):
    """The builders make a valid wheel when nothing hostile is added: each refusal above is the one fault's."""
    work, marker = tmp_path / "work", tmp_path / "ran"
    (work / "in").mkdir(parents=True)
    wheel = h.write_wheel(work / "in" / W, {**h.wheel_files(marker), "seedpkg/a": h.Link("data.txt"),
                                           "seedpkg/sub/b": h.Link("../a")})
    proc = h.run_tool(cyfes_release, work, "check", f"in/{wheel.name}")
    assert proc.returncode == 0, proc.stderr
    assert f"{W}: OK" in proc.stdout and not marker.exists()


# --- .conda ------------------------------------------------------------------------------------------------------

C = f"{h.DIST}-{h.VERSION}-py_0.conda"


def _conda(pkg=None, info=None, drop=(), pkg_list=None, **index):
    def build(d: Path, marker: Path) -> Path:
        files = {**h.conda_payload(marker), **(pkg or {})}
        meta = {**h.info_files(files, **index), **(info(files) if callable(info) else info or {})}
        for name in drop:
            del meta[name]
        return h.write_conda(d / C, pkg_list(files) if pkg_list else list(files.items()), list(meta.items()))
    return build


def _lying_paths(files):
    return {"info/paths.json": h.paths_json({**files, "bin/seed": b"#!/bin/sh\necho something else\n"})}


CONDA_CASES = {
    "link-through-link": (_conda({"lib/a": h.Link(".."), "lib/b": h.Link("a/../escaped")}),
                          [", lib/b: symlink to 'a/../escaped' leaves the archive's tree"]),
    "duplicate-in-payload": (_conda(pkg_list=lambda f: list(f.items()) + [("bin/seed", b"#!/bin/sh\nrm -rf ~\n")]),
                             [", bin/seed: appears more than once in the package"]),
    "duplicate-across-tars": (_conda(info=lambda f: {"bin/seed": b"#!/bin/sh\n"}),
                              [", bin/seed: appears more than once in the package"]),
    "index-missing": (_conda(drop=["info/index.json"]), [", info/index.json: missing"]),
    "index-not-json": (_conda(info={"info/index.json": b"{name: seedpkg"}),
                       [", info/index.json: not valid JSON (Expecting property name enclosed in double quotes: "
                        "line 1 column 2 (char 1))"]),
    "index-not-object": (_conda(info={"info/index.json": b"[1, 2]"}), [", info/index.json: not a JSON object"]),
    "name-with-dotdot": (_conda(name="../../escaped"),
                         [", info/index.json: name '../../escaped' is not a valid conda name"]),
    "paths-wrong-hash": (_conda(info=_lying_paths),
                         [", info/paths.json: bin/seed: sha256 or size_in_bytes does not match the file"]),
    "paths-lists-ghost": (_conda(info=lambda f: {"info/paths.json": h.paths_json({**f, "lib/ghost.so": b""})}),
                          [", info/paths.json: lib/ghost.so: listed but not in the package"]),
    "paths-omits-file": (_conda(info=lambda f: {"info/paths.json": h.paths_json(
                                {k: v for k, v in f.items() if k != "bin/seed"})}),
                         [", bin/seed: in the package but not in info/paths.json"]),
    "paths-not-json": (_conda(info={"info/paths.json": b"\xff"}),
                       [", info/paths.json: not valid JSON ('utf-8' codec can't decode byte 0xff in position 0: "
                        "invalid start byte)"]),
}


@pytest.mark.parametrize("case", sorted(CONDA_CASES))
@pytest.mark.parametrize("command", ["check", "verify"])
def test_hostile_conda(cyfes_release, case, command, tmp_path):
    work, marker = tmp_path / "work", tmp_path / "ran"
    (work / "in").mkdir(parents=True)
    (work / "tmp").mkdir()
    build, lines = CONDA_CASES[case]
    pkg = build(work / "in", marker)
    before = h.snapshot(work)
    proc = h.run_tool(cyfes_release, work, command, f"in/{pkg.name}")
    assert_refused(proc, [f"error: In in/{pkg.name}{line}" for line in lines], work, before, marker)


def test_conda_without_python_is_checked_but_not_verified(cyfes_release, tmp_path):
    """A package without a python dependency is a valid package (check: exit 0) that verify cannot run."""
    work, marker = tmp_path / "work", tmp_path / "ran"
    (work / "in").mkdir(parents=True)
    (work / "tmp").mkdir()
    pkg = _conda(depends=["libgcc >=12"])(work / "in", marker)
    assert h.run_tool(cyfes_release, work, "check", f"in/{pkg.name}").returncode == 0
    before = h.snapshot(work)
    proc = h.run_tool(cyfes_release, work, "verify", f"in/{pkg.name}")
    assert_refused(proc, [f"error: In {pkg.name}, info/index.json: depends names no `python >=X.Y,...`: not a "
                          "Python package, nothing to verify it with"], work, before, marker)


def test_honest_conda_passes_check(cyfes_release, tmp_path):
    work, marker = tmp_path / "work", tmp_path / "ran"
    (work / "in").mkdir(parents=True)
    pkg = _conda({"lib/a": h.Link("../bin/seed")})(work / "in", marker)
    proc = h.run_tool(cyfes_release, work, "check", f"in/{pkg.name}")
    assert proc.returncode == 0, proc.stderr
    assert f"{C}: OK" in proc.stdout and not marker.exists()


@pytest.mark.slow
def test_a_large_member_streams_through_little_memory(cyfes_release, tmp_path):
    """A 384 MiB member (within the default limits) is hashed and spooled to disk: `check` stays far below the
    member's size in resident memory (the reader that held every member needed more than the member itself)."""
    work, marker = workdir_with_tmp(tmp_path)
    wheel = h.write_wheel(work / "in" / W, {**h.wheel_files(marker), "seedpkg/zeros.bin": bytes(384 << 20)})
    measure = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:]); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(p.returncode)")
    proc = subprocess.run([sys.executable, "-c", measure, str(cyfes_release), "check", f"in/{wheel.name}"], cwd=work,
                          env=h.tool_env(work / "tmp"), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert f"{W}: OK" in proc.stdout
    max_rss_mib = int(proc.stdout.splitlines()[-1]) / 1024
    assert max_rss_mib < 200, max_rss_mib
    assert not any((work / "tmp").iterdir()) and not marker.exists()


def workdir_with_tmp(tmp_path: Path) -> tuple[Path, Path]:
    work, marker = tmp_path / "work", tmp_path / "ran"
    (work / "in").mkdir(parents=True)
    (work / "tmp").mkdir()
    return work, marker


def test_conda_writer_resolves_links_through_links(tmp_path):
    """The writer applies the same rule: a package whose links escape through another link is never written."""
    from tools.release.archive import Member
    from tools.release.conda.archive import write_conda
    from tools.release.errors import ArchiveError
    pkg = [Member("lib/a", link=".."), Member("lib/b", link="a/../escaped"), Member("lib/c", b"x")]
    with pytest.raises(ArchiveError) as err:
        write_conda(tmp_path / "x-1-0.conda", "x-1-0", pkg, [Member("info/index.json", b"{}")], 0)
    assert [str(p) for p in err.value.problems] == [
        f"In x-1-0.conda, lib/b: symlink to a/../escaped leaves the package tree"]
    assert list(tmp_path.iterdir()) == []
