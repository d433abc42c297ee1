"""Nothing a user owns is ever lost: every command (`fes`, `sum_hills`, `reweight`) run as a user runs it, in a
fresh process, against outputs that are its inputs (by any path or link), the same file named twice, empty names,
special files named like --stride/--blocks/--running members, and the file size limit. Each refusal must be exit
status 2, one line on stderr, no traceback, and the directory exactly as it was (names, modes and bytes).

Then the commit itself: a rename that fails rolls the whole set back, SIGINT while the set is renamed leaves all
new files or none, and two processes writing one output leave one complete file."""
from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import pytest

import reference as ref
from cyfes._errors import InputError
from cyfes.commands import sum_hills as sumhills_cli
from cyfes.io import output as _output
from reference import tree

DATA = Path(__file__).parents[1] / "data" / "plumed"
CPU = ["--device", "cpu"]
SUM = ["sum_hills"] + CPU
REW = ["reweight", "--cv", "d", "--bias", "NO", "--sigma", "0.1", "--kt", "2.5", "--bin", "20"] + CPU
FES = ["fes", "--cv", "d", "--sigma", "0.1", "--bins", "20"] + CPU


def cyfes(argv: List[str], cwd: Path, fsize: Optional[int] = None,
          timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m cyfes ARGV` in `cwd`, optionally under a file size limit (ulimit -f) in bytes."""
    def limit() -> None:
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, resource.RLIM_INFINITY))
    return subprocess.run([sys.executable, "-m", "cyfes"] + argv, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, preexec_fn=limit)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A directory holding a HILLS file and a COLVAR (PLUMED's own test inputs)."""
    shutil.copy(DATA / "h1d.hills", tmp_path / "HILLS")
    shutil.copy(DATA / "colvar1d.dat", tmp_path / "COLVAR")
    return tmp_path


def refused(work: Path, argv: List[str], *expected: str, fsize: Optional[int] = None) -> str:
    """Run argv: exit 2, exactly one `cyfes: error:` line holding every `expected` text, nothing changed."""
    before = tree(work)
    proc = cyfes(argv, work, fsize)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("cyfes: error: "), proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    for text in expected:
        assert text in lines[0], (text, lines[0])
    assert tree(work) == before
    return lines[0]


def as_input(out: str, source: str) -> Tuple[str, ...]:
    """The refusal of an output that is an input names both."""
    return (f"{out}: is an input of this run ({source})", "not even with --force")


# ----------------------------------------------------------------------------------------------- sum_hills
def test_sum_hills_never_writes_its_hills(work: Path) -> None:
    os.link(work / "HILLS", work / "hard")
    (work / "soft").symlink_to("HILLS")
    for out, force in (("HILLS", []), ("./././HILLS", ["--force"]), ("hard", []), ("hard", ["--force"]),
                       ("soft", ["--force"]), (str(work / "HILLS"), [])):
        refused(work, SUM + ["--hills", "HILLS", "--outfile", out] + force,
                *as_input(os.path.normpath(out), "HILLS"))
    # the input named through a link is found too
    refused(work, SUM + ["--hills", "soft", "--outfile", "HILLS"], *as_input("HILLS", "soft"))


def test_sum_hills_never_writes_its_histogram_input(work: Path) -> None:
    refused(work, SUM + ["--histo", "COLVAR", "--outhisto", "COLVAR", "--sigma", "0.1", "--kt", "2.5", "--force"],
            *as_input("COLVAR", "COLVAR"))
    refused(work, SUM + ["--hills", "HILLS", "--histo", "COLVAR", "--outhisto", "HILLS", "--sigma", "0.1",
                         "--kt", "2.5"], *as_input("HILLS", "HILLS"))


def test_sum_hills_stride_member_named_like_the_input(work: Path) -> None:
    (work / "HILLS").rename(work / "run2.dat")
    refused(work, SUM + ["--hills", "run2.dat", "--stride", "50", "--outfile", "run"], *as_input("run2.dat",
                                                                                                  "run2.dat"))


def test_sum_hills_refuses_names_twice_and_empty(work: Path) -> None:
    refused(work, SUM + ["--hills", "HILLS", "--outfile", "s.dat", "--histo", "COLVAR", "--outhisto", "./s.dat",
                         "--sigma", "0.1", "--kt", "2.5"], "s.dat: the same output file as s.dat")
    for flag in ("--outfile", "--outhisto"):
        refused(work, SUM + ["--hills", "HILLS", "--histo", "COLVAR", "--sigma", "0.1", "--kt", "2.5", flag, ""],
                f"{flag}: an empty file name")
        refused(work, SUM + ["--hills", "HILLS", "--histo", "COLVAR", "--sigma", "0.1", "--kt", "2.5",
                             "--stride", "50", flag, ""], f"{flag}: an empty file name")


def special(work: Path, name: str, kind: str) -> None:
    """Put a FIFO, a symbolic link, a read-only file or a directory at work/name."""
    if kind == "fifo":
        os.mkfifo(work / name)
    elif kind == "link":
        (work / "elsewhere.dat").write_text("not mine")
        (work / name).symlink_to("elsewhere.dat")
    elif kind == "readonly":
        (work / name).write_text("read-only")
        (work / name).chmod(0o444)
    else:
        (work / name).mkdir()


KINDS = {"fifo": "is a FIFO", "link": "is a symbolic link", "readonly": "is read-only", "dir": "is a directory"}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_sum_hills_members_follow_the_rules_of_fes(work: Path, kind: str) -> None:
    special(work, "fes_2.dat", kind)
    argv = SUM + ["--hills", "HILLS", "--stride", "50"]
    refused(work, argv, f"fes_2.dat: {KINDS[kind]}")
    if kind in ("fifo", "dir"):  # never written, whatever --force says
        refused(work, argv + ["--force"], f"fes_2.dat: {KINDS[kind]}")
    else:
        proc = cyfes(argv + ["--force", "-q"], work)
        assert (proc.returncode, proc.stderr) == (0, "")
        assert not (work / "fes_2.dat").is_symlink() and (work / "fes_2.dat").read_text().startswith("#! FIELDS")
        if kind == "link":
            assert (work / "elsewhere.dat").read_text() == "not mine"


def test_sum_hills_refuses_a_grid_over_the_file_size_limit_before_work(work: Path) -> None:
    refused(work, SUM + ["--hills", "HILLS", "--bin", "20000", "--outfile", "big.dat"],
            "big.dat: needs about", "file size limit", fsize=100_000)
    refused(work, SUM + ["--hills", "HILLS", "--bin", "5000", "--stride", "50"],
            "fes_0.dat: needs about", "file size limit", fsize=100_000)


@pytest.mark.parametrize("command", ["sum_hills", "reweight"])
def test_a_file_growing_past_the_file_size_limit_is_one_error(work: Path, command: str) -> None:
    """A limit just under the file's real size passes the estimate before the work; the write then fails."""
    argv = (SUM + ["--hills", "HILLS", "--bin", "2000", "--outfile", "out.dat"] if command == "sum_hills"
            else REW[:-4] + ["--bin", "2000", "-f", "COLVAR", "-o", "out.dat"] + CPU)
    assert cyfes(argv + ["-q"], work).returncode == 0
    size = (work / "out.dat").stat().st_size
    os.unlink(work / "out.dat")
    (work / "out.dat").write_text("old")
    refused(work, argv, "out.dat: ", "file size limit", fsize=size - 1)


# ----------------------------------------------------------------------------------------------- reweight
def test_reweight_never_writes_its_colvar(work: Path) -> None:
    for out, force in (("COLVAR", []), ("./COLVAR", ["--force"])):
        refused(work, REW + ["-f", "COLVAR", "-o", out] + force, *as_input("COLVAR", "COLVAR"))
    shutil.copy(work / "COLVAR", work / "fes-rew.dat")
    refused(work, REW + ["-f", "fes-rew.dat"], *as_input("fes-rew.dat", "fes-rew.dat"))


@pytest.mark.parametrize("split", [["--blocks", "3"], ["--stride", "100"]])
def test_reweight_member_named_like_the_colvar(work: Path, split: List[str]) -> None:
    (work / "COLVAR").rename(work / "c_2.dat")
    refused(work, REW + ["-f", "c_2.dat", "-o", "c.dat"] + split, *as_input("c_2.dat", "c_2.dat"))


def test_reweight_refuses_an_empty_name_and_special_members(work: Path) -> None:
    refused(work, REW + ["-f", "COLVAR", "-o", ""], "--outfile: an empty file name")
    os.mkfifo(work / "fes-rew_2.dat")
    refused(work, REW + ["-f", "COLVAR", "--blocks", "3", "--force"], "fes-rew_2.dat: is a FIFO")
    os.unlink(work / "fes-rew_2.dat")
    special(work, "fes-rew_1.dat", "readonly")
    refused(work, REW + ["-f", "COLVAR", "--stride", "100"], "fes-rew_1.dat: is read-only")


def test_reweight_refuses_a_grid_over_the_file_size_limit(work: Path) -> None:
    refused(work, REW[:-4] + ["--bin", "20000", "-f", "COLVAR", "-o", "big.dat"] + CPU,
            "big.dat: needs about", "file size limit", fsize=100_000)


# ----------------------------------------------------------------------------------------------- fes
def test_fes_running_member_named_like_the_input(work: Path) -> None:
    (work / "COLVAR").rename(work / "c_1.dat")
    refused(work, FES + ["c_1.dat", "-o", "c.dat", "--running", "2"], *as_input("c_1.dat", "c_1.dat"))
    refused(work, FES + ["c_1.dat", "-o", "c.dat", "--running", "2", "--force"], *as_input("c_1.dat", "c_1.dat"))


@pytest.mark.parametrize("name, kind", [("fes_2.dat", "link"), ("fes_1.dat", "fifo"), ("fes_3.dat", "readonly")])
def test_fes_running_members_follow_the_rules(work: Path, name: str, kind: str) -> None:
    special(work, name, kind)
    refused(work, FES + ["COLVAR", "-o", "fes.dat", "--running", "3"], f"{name}: {KINDS[kind]}")


def test_fes_names_twice_and_empty(work: Path) -> None:
    refused(work, FES + ["COLVAR", "-o", "fes.dat", "-o", "fes_1.dat", "--running", "2"],
            "fes_1.dat: named twice as an output")
    refused(work, FES + ["COLVAR", "-o", ""], "-o: an empty file name")
    refused(work, FES + ["COLVAR", "-o", "fes.dat", "--running", "100000000"],
            "--running: at most 100000 estimates")
    (work / "a.dat").write_text("old")
    os.link(work / "a.dat", work / "b.dat")
    refused(work, FES + ["COLVAR", "-o", "a.dat", "-o", "b.dat"], "b.dat: the same output file as a.dat")


def test_fes_plot_convergence_is_checked_like_every_output(work: Path) -> None:
    pytest.importorskip("matplotlib")
    shutil.copy(work / "COLVAR", work / "c.svg")
    refused(work, FES + ["c.svg", "-o", "f.dat", "--running", "2", "--plot-convergence", "c.svg"],
            *as_input("c.svg", "c.svg"))
    refused(work, FES + ["COLVAR", "-o", "f.dat", "--running", "2", "--plot", "a.png", "--plot-convergence",
                         "a.png"], "a.png: named twice as an output")
    refused(work, FES + ["COLVAR", "-o", "f.dat", "--running", "2", "--plot-convergence", ""],
            "--plot-convergence: an empty file name")


# ----------------------------------------------------------------------------------------------- the commit
def _members(work: Path) -> Dict[str, bytes]:
    """The regular files named fes_*, with their bytes."""
    return {p.name: p.read_bytes() for p in work.iterdir() if p.name.startswith("fes_") and p.is_file()}


def test_a_failed_rename_rolls_every_member_back(work: Path) -> None:
    """sum_hills --stride: staged in full, then the last member's name turns into a directory before the commit;
    its rename fails, and every member renamed before it goes back to what was there."""
    for k in range(3):
        (work / f"fes_{k}.dat").write_text(f"old {k}")
    args = sumhills_cli.configure_parser(_subparsers()).parse_args(
        ["--hills", str(work / "HILLS"), "--stride", "50", "--outfile", str(work / "fes_")] + CPU)
    jobs = sumhills_cli.plan(args)
    assert [Path(n).name for n in jobs[0][0]] == [f"fes_{k}.dat" for k in range(4)]

    staged = _output.Staging([work / "HILLS"])
    with staged:
        for name, grid_file in zip(jobs[0][0], jobs[0][1].files()):
            staged.add(name, lambda fh, t=grid_file.text().encode(): fh.write(t))
        (work / "fes_3.dat").mkdir()
        (work / "fes_3.dat" / "x").write_text("x")
        with pytest.raises(InputError, match="fes_3.dat: cannot put the output in place"):
            staged.commit()
    assert _members(work) == {f"fes_{k}.dat": f"old {k}".encode() for k in range(3)}
    assert sorted(p.name for p in work.iterdir()) == ["COLVAR", "HILLS", "fes_0.dat", "fes_1.dat", "fes_2.dat",
                                                      "fes_3.dat"]


def _subparsers() -> "object":
    import argparse
    return argparse.ArgumentParser().add_subparsers()


def test_the_commit_refuses_a_target_that_became_an_input(tmp_path: Path) -> None:
    (tmp_path / "in.dat").write_text("input")
    with _output.Staging([tmp_path / "in.dat"]) as staged:
        staged.add(tmp_path / "a.dat", lambda fh: fh.write(b"new"))
        staged.add(tmp_path / "b.dat", lambda fh: fh.write(b"new"))
        os.link(tmp_path / "in.dat", tmp_path / "b.dat")  # after the checks, before the commit
        with pytest.raises(InputError, match="b.dat: is an input of this run"):
            staged.commit()
    assert sorted(tree(tmp_path)) == ["b.dat", "in.dat"] and (tmp_path / "in.dat").read_text() == "input"


def test_a_worker_thread_writes_a_set_too(tmp_path: Path) -> None:
    """Signal handlers can only be swapped in the main thread; elsewhere the commit still runs, all or none."""
    import threading
    errors: List[BaseException] = []

    def work() -> None:
        try:
            _output.write_all([(tmp_path / "a.dat", lambda fh: fh.write(b"a")),
                               (tmp_path / "b.dat", lambda fh: fh.write(b"b"))])
        except BaseException as exc:  # reported to the main thread below
            errors.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert errors == [] and tree(tmp_path) == {"a.dat": (tree(tmp_path)["a.dat"][0], b"a"),
                                               "b.dat": (tree(tmp_path)["b.dat"][0], b"b")}


def many_hills(path: Path, n: int) -> None:
    rows = [f"{0.5 * (i + 1):.4f} {(i * 0.37) % 2.0:.6f} 0.1 {1.0 + (i % 7) * 0.1:.4f} 10.0" for i in range(n)]
    path.write_text("#! FIELDS time d sigma_d height biasf\n#! SET multivariate false\n"
                    "#! SET kerneltype stretched-gaussian\n" + "\n".join(rows) + "\n")


def _count(work: Path, suffix: str) -> int:
    return sum(1 for name in os.listdir(work) if name.endswith(suffix))


def _interrupt_when(work: Path, proc: subprocess.Popen, ready: Callable[[int, int], bool], sig: int) -> None:
    """Send `sig` once ready(staged so far, most staged seen) holds, polling the directory's temporary files."""
    most = 0
    while proc.poll() is None:
        staged = _count(work, ".part")
        most = max(most, staged)
        if ready(staged, most):
            proc.send_signal(sig)
            return
        time.sleep(0.0005)


@pytest.mark.parametrize("when, sig", [("staging", signal.SIGINT), ("commit", signal.SIGINT),
                                       ("commit", signal.SIGTERM)])
def test_a_signal_leaves_every_new_member_or_none(tmp_path: Path, when: str, sig: int) -> None:
    n = 1000
    many_hills(tmp_path / "HILLS", n)
    for k in range(n + 1):
        (tmp_path / f"fes_{k}.dat").write_text("old")
    before = tree(tmp_path)
    proc = ref.foreground([sys.executable, "-m", "cyfes"] + SUM + ["--hills", "HILLS", "--stride", "1", "--bin", "8",
                           "-q"], tmp_path)
    if when == "staging":  # half the members staged
        _interrupt_when(tmp_path, proc, lambda staged, most: staged >= n // 2, sig)
    else:  # the renames have begun: fewer temporary files than at the most
        _interrupt_when(tmp_path, proc, lambda staged, most: most > n // 2 and staged < most, sig)
    _, err = proc.communicate(timeout=120)
    members = _members(tmp_path)
    assert _count(tmp_path, ".part") == 0 and _count(tmp_path, ".old") == 0
    new = [name for name, body in members.items() if body != b"old"]
    assert len(members) == n + 1 and len(new) in (0, n + 1), (len(new), proc.returncode, err)
    code = 128 + sig
    if when == "staging":
        assert proc.returncode == code and err.strip() == "cyfes: error: interrupted", err
        assert tree(tmp_path) == before
    elif proc.returncode == code:  # the signal came while the renames ran: held until all were done
        assert len(new) == n + 1 and len(err.splitlines()) == 1, err
    else:  # the run had finished before the signal
        assert (proc.returncode, err, len(new)) == (0, "", n + 1)


def test_two_processes_writing_one_output_leave_one_complete_file(work: Path) -> None:
    want = {}
    for fmt in ("%14.9f", "%20.12f"):
        assert cyfes(SUM + ["--hills", "HILLS", "--bin", "3000", "--fmt", fmt, "--outfile", "ref.dat", "-q"],
                     work).returncode == 0
        want[fmt] = (work / "ref.dat").read_bytes()
    assert want["%14.9f"] != want["%20.12f"]
    for _ in range(3):
        procs = [subprocess.Popen([sys.executable, "-m", "cyfes"] + SUM + ["--hills", "HILLS", "--bin", "3000",
                                  "--fmt", fmt, "--outfile", "out.dat", "-q"], cwd=work, stderr=subprocess.PIPE)
                 for fmt in want]
        assert [p.wait(timeout=120) for p in procs] == [0, 0], [p.stderr.read() for p in procs]  # type: ignore
        for p in procs:
            p.stderr.close()  # type: ignore[union-attr]
        assert (work / "out.dat").read_bytes() in want.values()
        assert sorted(os.listdir(work)) == ["COLVAR", "HILLS", "out.dat", "ref.dat"]


@pytest.mark.parametrize("argv", [SUM + ["--hills", "HILLS", "--outfile", "{name}"],
                                  SUM + ["--histo", "COLVAR", "--sigma", "0.1", "--kt", "2.5", "--outhisto", "{name}"],
                                  REW + ["-f", "COLVAR", "-o", "{name}"],
                                  FES + ["COLVAR", "-o", "{name}"]],
                         ids=["sum_hills", "histo", "reweight", "fes"])
@pytest.mark.parametrize("name", ["newdir/", "sub/"])
def test_a_name_ending_in_a_slash_is_refused_not_written_as_a_file(work: Path, argv: List[str], name: str) -> None:
    """`-o newdir/` names a directory: refused (whether it exists or not), never written as a file `newdir`."""
    (work / "sub").mkdir()
    refused(work, [a.format(name=name) for a in argv], f"{name}: names a directory (it ends in '/')")


# ----------------------------------------------------------------------------------------------- fes --hills
def test_fes_never_writes_its_hills_files(tmp_path: Path) -> None:
    """The HILLS files of `--hills` are inputs of the run as much as the COLVAR: named as an output, itself or through
    a symbolic or a hard link, with or without --force, they are refused and nothing changes."""
    rew = Path(__file__).parents[1] / "data" / "plumed-reweight"
    shutil.copy(rew / "COLVAR.reference", tmp_path / "COLVAR")
    shutil.copy(rew / "HILLS.reference", tmp_path / "HILLS")
    (tmp_path / "soft").symlink_to("HILLS")
    os.link(tmp_path / "HILLS", tmp_path / "hard")
    fes = ["fes", "COLVAR", "--cv", "phi,psi", "--sigma", "0.3", "--bins", "20,20", "--device", "cpu", "--format",
           "dat", "--hills"]
    for hills, out in (("HILLS", "HILLS"), ("soft", "HILLS"), ("HILLS", "soft"), ("HILLS", "hard")):
        for force in ([], ["--force"]):
            refused(tmp_path, fes + [hills, "-o", out] + force, *as_input(out, hills))
