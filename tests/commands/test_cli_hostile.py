"""`cyfes fes` and the CyFES 4.5 command line under hostile inputs, arguments, paths and signals.

Every bad case must give exit status 2, exactly one line on stderr (`cyfes: error: ...`) naming the problem and
the file or argument, no traceback, and leave every file as it was. Each test builds its hostile input itself.
"""
from __future__ import annotations

import gzip
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest

import cyfes
import reference as ref
from cyfes.commands.main import main
from cyfes.io import formats
from reference import tree

CPU = ["--device", "cpu"]


def run(argv: List[str], capsys: pytest.CaptureFixture) -> Tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def refused(tmp_path: Path, argv: List[str], capsys: pytest.CaptureFixture, *message: str, warnings: int = 0) -> str:
    """Run argv and check: exit 2, one error line (after `warnings` warning lines) containing every `message`,
    no file changed."""
    before = tree(tmp_path)
    code, out, err = run(argv, capsys)
    assert code == 2, (code, out, err)
    lines = err.splitlines()
    assert len(lines) == warnings + 1 and all(w.startswith("cyfes: warning: ") for w in lines[:-1]), err
    lines = lines[-1:]
    assert lines[0].startswith("cyfes: error: "), err
    for text in message:
        assert text in lines[0], (text, lines[0])
    assert tree(tmp_path) == before
    return lines[0]


def colvar(path: Path, n: int = 200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = np.column_stack([np.arange(n), rng.normal(0, 1, n), rng.normal(1, 0.5, n), rng.uniform(0, 2, n)])
    with open(path, "w") as out:
        out.write("#! FIELDS time x y bias\n")
        np.savetxt(out, data, fmt="%.8f")
    return np.round(data, 8)


# ----------------------------------------------------------------------------------------------- NaN / inf
def test_far_clusters_float32_give_a_finite_surface(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 0.01, 300), rng.normal(1000, 0.01, 300)])
    np.savetxt(tmp_path / "two.dat", x[:, None], header="x", comments="", fmt="%.10f")
    code, _, err = run(["fes", str(tmp_path / "two.dat"), "--sigma", "0.01", "--bins", "101", "--precision",
                        "float32", "-o", str(tmp_path / "f.npz")] + CPU, capsys)
    assert (code, err) == (0, "")
    got = formats.read_grid(tmp_path / "f.npz").values
    assert np.isfinite(got).all()
    want = reference_fes(np.round(x, 10), 0.01, np.linspace(x.round(10).min(), x.round(10).max(), 101))
    near = want < 1e3
    np.testing.assert_allclose(got[near], want[near], atol=0.02)  # float32 coordinates of 1e5 sigma: 0.004 sigma apart
    np.testing.assert_allclose(got[~near], want[~near], rtol=1e-4)


def reference_fes(samples: np.ndarray, sigma: float, grid: np.ndarray,
                  kT: float = 0.0083144626181532 * 300) -> np.ndarray:
    """F on a 1-D grid by a float64 numpy log-sum-exp, min 0."""
    q = -0.5 * ((grid[:, None] - samples[None, :]) / sigma) ** 2
    top = q.max(axis=1, keepdims=True)
    f = -kT * (top[:, 0] + np.log(np.exp(q - top).sum(axis=1)))
    return f - f.min()


def test_sigma_far_below_the_data_spacing_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rng = np.random.default_rng(2)
    np.savetxt(tmp_path / "d.dat", rng.normal(size=(200, 2)), fmt="%.10f")
    refused(tmp_path, ["fes", str(tmp_path / "d.dat"), "--sigma", "1e-10", "--bins", "8", "-o",
                       str(tmp_path / "f.dat")] + CPU, capsys, "sigma: every grid point is more than about 6.7e7 sigma")


@pytest.mark.parametrize("rows, extra", [
    ("1e308\n-1e308\n0\n", []),
    ("0\n1\n2\n", ["--range", "col0=-1e308,1e308"]),
])
def test_data_or_ranges_near_the_float_limit(tmp_path: Path, capsys: pytest.CaptureFixture, rows: str,
                                             extra: List[str]) -> None:
    (tmp_path / "big.dat").write_text(rows)
    refused(tmp_path, ["fes", str(tmp_path / "big.dat"), "--sigma", "1", "--bins", "5", "-o", str(tmp_path / "f.dat")]
            + extra + CPU, capsys, "spans more than the largest float64")


def test_points_beyond_float64_reach_are_inf_with_a_warning_and_plot(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "d.dat").write_text("0\n1e-9\n1\n")
    code, _, err = run(["fes", str(tmp_path / "d.dat"), "--sigma", "1e-9", "--bins", "3", "-o",
                        str(tmp_path / "f.npz"), "--plot", str(tmp_path / "f.png")] + CPU, capsys)
    assert code == 0
    assert err == ("cyfes: warning: 1 of 3 grid points are more than about 6.7e7 sigma from every sample: "
                   "F = +inf there\n")
    values = formats.read_grid(tmp_path / "f.npz").values
    assert np.isinf(values[1]) and np.isfinite(values[[0, 2]]).all()
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


# ----------------------------------------------------------------------------------------------- threads
def test_threads_are_clamped_with_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = colvar(tmp_path / "COLVAR")
    code, _, err = run(["fes", str(tmp_path / "COLVAR"), "--cv", "x", "--sigma", "0.2", "--bins", "30", "--threads",
                        "100000", "-o", str(tmp_path / "f.npz")] + CPU, capsys)
    cpus = len(os.sched_getaffinity(0))
    assert code == 0
    assert err == (f"cyfes: warning: threads: 100000 threads requested but this machine has {cpus} CPU(s) for this "
                   f"process; using {cpus}\n")
    want = reference_fes(data[:, 1], 0.2, np.linspace(data[:, 1].min(), data[:, 1].max(), 30))
    np.testing.assert_allclose(formats.read_grid(tmp_path / "f.npz").values, want, atol=1e-9)


def test_threads_beyond_a_c_int_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    colvar(tmp_path / "COLVAR")
    refused(tmp_path, ["fes", str(tmp_path / "COLVAR"), "--cv", "x", "--sigma", "0.2", "--threads", str(2**31), "-o",
                       str(tmp_path / "f.dat")] + CPU, capsys, "threads: expected a positive integer of at most")


# ----------------------------------------------------------------------------------------------- file contents
@pytest.mark.parametrize("name, body, message", [
    ("comment.dat", b"# only a comment\n", "has only comment lines, no data rows"),
    ("under.dat", b"x y\n1 2\n1_000 3\n", "line 3, column 1: '1_000' is not a number"),
    ("digits.dat", "x y\n1 2\n\u0661 3\n".encode(), "line 3, column 1"),
    ("nested.dat", b"#! FIELDS time phi\n#! SET min_phi " + b"1*" * 20000 + b"1\n#! SET max_phi 2\n0 1\n",
     "#! SET min_phi: '1*1*1*"),
    ("deep.dat", b"#! FIELDS time phi\n#! SET min_phi " + b"(" * 150 + b"1" + b")" * 150 + b"\n#! SET max_phi 2\n0 1\n",
     "#! SET min_phi"),
    ("dup.dat", b"#! FIELDS time x x\n0 1 2\n", "line 1: column name 'x' appears twice"),
    ("duph.csv", b"a,b,a\n1,2,3\n", "line 1: column name 'a' appears twice"),
    ("corrupt.gz", gzip.compress(b"#! FIELDS time x\n" + b"0 1\n" * 1000)[:30] + b"\xff" * 40, "cannot read"),
])
def test_hostile_file_contents(tmp_path: Path, capsys: pytest.CaptureFixture, name: str, body: bytes,
                               message: str) -> None:
    (tmp_path / name).write_bytes(body)
    refused(tmp_path, ["fes", str(tmp_path / name), "--sigma", "0.1", "-o", str(tmp_path / "f.dat")] + CPU, capsys,
            str(tmp_path / name), message)


def test_gzip_bomb_stops_at_the_bound(tmp_path: Path, capsys: pytest.CaptureFixture,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import tracemalloc
    (tmp_path / "bomb.gz").write_bytes(gzip.compress(b"0" * (64 << 20)))  # 64 MiB of zeros in ~64 kB
    monkeypatch.setenv("CYFES_MAX_INPUT_BYTES", str(4 << 20))
    tracemalloc.start()
    try:
        refused(tmp_path, ["fes", str(tmp_path / "bomb.gz"), "--sigma", "0.1", "-o", str(tmp_path / "f.dat")] + CPU,
                capsys, "bomb.gz: is larger than 4,194,304 bytes decompressed")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20


def test_structured_and_record_npy_give_named_columns(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rng = np.random.default_rng(3)
    x, b = rng.normal(size=150), rng.uniform(0, 3, 150)
    structured = np.zeros(150, dtype=[("time", "<i4"), ("x", "<f8"), ("bias", "<f4")])
    structured["time"], structured["x"], structured["bias"] = np.arange(150), x, b
    np.save(tmp_path / "s.npy", structured)
    np.save(tmp_path / "r.npy", np.rec.fromarrays([np.arange(150), x, b], names="time,x,bias"))
    want = cyfes.fes(x, 0.3, bias=b.astype(np.float32).astype(float), bins=25, device="cpu")
    for name in ("s.npy", "r.npy"):
        code, _, err = run(["fes", str(tmp_path / name), "--cv", "x", "--bias", "bias", "--sigma", "0.3", "--bins",
                            "25", "-o", str(tmp_path / f"{name}.npz")] + CPU, capsys)
        assert (code, err) == (0, "")
        got = formats.read_grid(tmp_path / f"{name}.npz").values
        np.testing.assert_allclose(got, want.values if name == "s.npy" else
                                   cyfes.fes(x, 0.3, bias=b, bins=25, device="cpu").values, atol=1e-9)


@pytest.mark.parametrize("array, message", [
    (np.array([[1 + 2j, 3], [4, 5]]), "holds complex numbers"),
    (np.zeros(3, dtype=[("x", "<f8"), ("v", "<f8", (2,))]), "field 'v' holds an array"),
    (np.array([["a", "b"]]), "holds dtype <U1"),
    (np.zeros((2, 2, 2)), "expected a non-empty 1-D or 2-D array"),
])
def test_npy_that_cannot_be_samples(tmp_path: Path, capsys: pytest.CaptureFixture, array: np.ndarray,
                                    message: str) -> None:
    np.save(tmp_path / "bad.npy", array)
    refused(tmp_path, ["fes", str(tmp_path / "bad.npy"), "--sigma", "0.1", "-o", str(tmp_path / "f.dat")] + CPU,
            capsys, "bad.npy", message)


def test_utf8_bom_is_stripped(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbfphi,bias\n0.1,0\n0.5,1\n0.9,0.5\n")
    code, _, err = run(["fes", str(tmp_path / "bom.csv"), "--cv", "phi", "--bias", "bias", "--sigma", "0.2", "--bins",
                        "5", "-o", str(tmp_path / "f.npz")] + CPU, capsys)
    assert (code, err) == (0, "")
    want = cyfes.fes([0.1, 0.5, 0.9], 0.2, bias=[0, 1, 0.5], bins=5, device="cpu")
    np.testing.assert_allclose(formats.read_grid(tmp_path / "f.npz").values, want.values, atol=1e-12)


def test_restart_with_other_fields_says_which_columns_are_left_out(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "COLVAR").write_text("#! FIELDS time x bias\n0 0.1 0\n1 0.4 1\n"
                                     "#! FIELDS time x y bias\n2 0.5 7 0\n3 0.8 8 1\n")
    refused(tmp_path, ["fes", str(tmp_path / "COLVAR"), "--cv", "y", "--sigma", "0.2", "-o", str(tmp_path / "f.dat")]
            + CPU, capsys, "column 'y' is only in data segments 2 of 2, so it was left out", warnings=1)
    code, _, err = run(["fes", str(tmp_path / "COLVAR"), "--cv", "x", "--bias", "bias", "--sigma", "0.2", "--bins", "4",
                        "-o", str(tmp_path / "f.npz")] + CPU, capsys)
    assert code == 0
    assert err == f"cyfes: warning: {tmp_path / 'COLVAR'}: column 'y' is only in data segments 2 of 2; it is left out\n"
    want = cyfes.fes([0.1, 0.4, 0.5, 0.8], 0.2, bias=[0, 1, 0, 1], bins=4, device="cpu")
    np.testing.assert_allclose(formats.read_grid(tmp_path / "f.npz").values, want.values, atol=1e-12)


# ----------------------------------------------------------------------------------------------- arguments and paths
def test_huge_sigma_expression(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    colvar(tmp_path / "COLVAR")
    refused(tmp_path, ["fes", str(tmp_path / "COLVAR"), "--cv", "x", "--sigma", "*".join(["1"] * 20000), "-o",
                       str(tmp_path / "f.dat")] + CPU, capsys, "--sigma", "is too long for a number")


@pytest.mark.parametrize("flag, where", [("-o", "/proc/fes.dat"), ("--plot", "/sys/fes.png"),
                                         ("-o", "/proc/self/fes.dat")])
def test_outputs_into_pseudo_filesystems(tmp_path: Path, capsys: pytest.CaptureFixture, flag: str, where: str) -> None:
    colvar(tmp_path / "COLVAR")
    refused(tmp_path, ["fes", str(tmp_path / "COLVAR"), "--cv", "x", "--sigma", "0.2", flag, where] + CPU, capsys,
            where, "cannot create files in")


def test_plot_of_one_bin_in_2d_is_refused_before_computing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    colvar(tmp_path / "COLVAR")
    refused(tmp_path, ["fes", str(tmp_path / "COLVAR"), "--cv", "x,y", "--sigma", "0.2", "--bins", "1", "-o",
                       str(tmp_path / "f.dat"), "--plot", str(tmp_path / "f.png")] + CPU, capsys,
            "--plot: a 2-D plot draws contours over the first two CVs, which need at least 2 grid points")


def test_plot_of_four_cvs_and_cube_of_two_leave_no_first_output(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rng = np.random.default_rng(4)
    np.savetxt(tmp_path / "d4.dat", rng.normal(size=(50, 4)), fmt="%.6f")
    refused(tmp_path, ["fes", str(tmp_path / "d4.dat"), "--cv", "0,1,2,3", "--sigma", "0.5", "--bins", "3", "-o",
                       str(tmp_path / "f.dat"), "--plot", str(tmp_path / "f.png")] + CPU, capsys,
            "--plot: draws 1-D, 2-D and 3-D surfaces; this one has 4 CVs")
    refused(tmp_path, ["fes", str(tmp_path / "d4.dat"), "--cv", "0,1", "--sigma", "0.5", "--bins", "3", "-o",
                       str(tmp_path / "f.dat"), "-o", str(tmp_path / "f.cube")] + CPU, capsys,
            "f.cube: the cube format holds 3-D grids; this FES has 2 CVs")


def test_nan_surface_plot_is_an_input_error(tmp_path: Path) -> None:
    res = cyfes.fes([0.0, 1.0], 0.5, bins=4, device="cpu")
    res.values[:] = np.nan
    with pytest.raises(cyfes.InputError, match="plot: the surface has no finite value to draw"):
        res.plot(tmp_path / "f.png")
    assert list(tmp_path.iterdir()) == []


def test_grid_too_large_for_the_outputs_is_refused_before_computing(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    colvar(tmp_path / "COLVAR")
    start = time.perf_counter()
    refused(tmp_path, ["fes", str(tmp_path / "COLVAR"), "--cv", "x,y", "--sigma", "0.2", "--bins", "200000", "-o",
                       str(tmp_path / "f.grid")] + CPU, capsys, "--bins: a grid of 40,000,000,000 points needs about")
    assert time.perf_counter() - start < 5


def test_legacy_grid_is_checked_before_reading_or_allocating(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "d.txt").write_text("0 0 0 0\n1 1 1 0\n")
    start = time.perf_counter()
    refused(tmp_path, ["-i", str(tmp_path / "d.txt"), "-g", "5000", "-o", str(tmp_path / "f.cub")], capsys,
            "-g 5000: a grid of 125,075,015,001 points needs about")
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("extra, message", [
    (["-sigma", "1e-300"], "sigma: the samples and grid span"),
    (["-cmin=-1e38", "-cmax", "1e38"], "-cmin/-cmax/-e: the grid from"),
])
def test_legacy_values_that_overflow(tmp_path: Path, capsys: pytest.CaptureFixture, extra: List[str],
                                     message: str) -> None:
    (tmp_path / "d.txt").write_text("0 0 0 0\n1 1 1 0.5\n0.5 0.2 0.1 0\n")
    refused(tmp_path, ["-i", str(tmp_path / "d.txt"), "-o", str(tmp_path / "f.cub")] + extra, capsys, message)


def test_legacy_second_output_unwritable_leaves_no_first(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "d.txt").write_text("0 0 0 0\n1 1 1 0.5\n0.5 0.2 0.1 0\n")
    (tmp_path / "ro.dat").write_text("keep")
    (tmp_path / "ro.dat").chmod(0o444)
    refused(tmp_path, ["-i", str(tmp_path / "d.txt"), "-o", str(tmp_path / "ok.cub"), "-odat",
                       str(tmp_path / "ro.dat")],
            capsys, "ro.dat: is read-only")
    refused(tmp_path, ["-i", str(tmp_path / "d.txt"), "-o", str(tmp_path / "ok.cub"), "-odat", "/proc/x.dat"],
            capsys, "/proc/x.dat: cannot create files in")


# ----------------------------------------------------------------------------------------------- output paths
def _special(tmp_path: Path, kind: str) -> Path:
    p = tmp_path / f"{kind}.dat"
    if kind == "fifo":
        os.mkfifo(p)
    elif kind == "link":
        (tmp_path / "elsewhere.dat").write_text("not mine")
        p.symlink_to(tmp_path / "elsewhere.dat")
    elif kind == "readonly":
        p.write_text("read-only")
        p.chmod(0o444)
    elif kind == "device":
        try:
            os.mknod(p, stat_chr() | 0o666, os.makedev(1, 3))
        except PermissionError:
            pytest.skip("creating a device node needs root")
    return p


def stat_chr() -> int:
    import stat
    return stat.S_IFCHR


@pytest.mark.parametrize("kind, message", [("fifo", "is a FIFO"), ("link", "is a symbolic link"),
                                           ("readonly", "is read-only"), ("device", "is a character device")])
def test_output_onto_special_files_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture, kind: str,
                                              message: str) -> None:
    colvar(tmp_path / "COLVAR")
    target = _special(tmp_path, kind)
    refused(tmp_path, ["fes", str(tmp_path / "COLVAR"), "--cv", "x", "--sigma", "0.2", "-o", str(tmp_path / "ok.dat"),
                       "-o", str(target)] + CPU, capsys, str(target), message)


def test_output_onto_the_input_is_refused_even_with_force(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    colvar(tmp_path / "COLVAR.dat")
    argv = ["fes", str(tmp_path / "COLVAR.dat"), "--cv", "x", "--sigma", "0.2", "--bins", "7", "-o",
            str(tmp_path / "COLVAR.dat")] + CPU
    for force in ([], ["--force"]):
        refused(tmp_path, argv + force, capsys, "COLVAR.dat: is an input of this run", "not even with --force")


def test_force_replaces_a_link_not_its_target(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    colvar(tmp_path / "COLVAR")
    link = _special(tmp_path, "link")
    code, _, err = run(["fes", str(tmp_path / "COLVAR"), "--cv", "x", "--sigma", "0.2", "--bins", "5", "-o", str(link),
                        "--force"] + CPU, capsys)
    assert (code, err) == (0, "")
    assert (tmp_path / "elsewhere.dat").read_text() == "not mine"
    assert not link.is_symlink() and "free_energy" in link.read_text()


def test_file_size_limit_refuses_before_computing(tmp_path: Path) -> None:
    colvar(tmp_path / "COLVAR")
    (tmp_path / "old.grid").write_text("old")
    before = tree(tmp_path)
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, resource.RLIM_INFINITY)); "
            "from cyfes.commands.main import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, "fes", "COLVAR", "--cv", "x,y", "--sigma", "0.2", "--bins",
                           "300", "-o", "small.npz", "-o", "old.grid"] + CPU, cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("cyfes: error: old.grid: needs about") and "file size limit" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1
    assert tree(tmp_path) == before


# ----------------------------------------------------------------------------------------------- signals
def _long_run(tmp_path: Path, *outputs: str) -> subprocess.Popen:
    rng = np.random.default_rng(5)
    np.save(tmp_path / "big.npy", rng.normal(size=(400_000, 2)))
    # --tolerance 0: every pair, minutes of work (the default truncated sum would finish in seconds)
    argv = [sys.executable, "-m", "cyfes", "fes", "big.npy", "--sigma", "0.05", "--bins", "400", "--threads", "1",
            "--tolerance", "0", "-q"] + CPU
    for out in outputs:
        argv += ["-o", out]
    return ref.foreground(argv, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_a_long_kernel_promptly_and_leaves_nothing(tmp_path: Path, sig: int, code: int) -> None:
    proc = _long_run(tmp_path, "f.npz", "f.grid")  # 400,000 samples x 160,000 points: minutes of work
    time.sleep(3.0)  # inside the kernel by now
    assert proc.poll() is None
    sent = time.perf_counter()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    took = time.perf_counter() - sent
    assert proc.returncode == code, err
    assert err.splitlines()[-1] in ("cyfes: error: interrupted", "cyfes: error: terminated by SIGTERM")
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.npy"]
    assert took < 2.5, f"stopped {took:.2f} s after the signal"  # one kernel call is 5e7 pairs, ~0.2 s on one core


@pytest.mark.slow
def test_sigterm_while_writing_leaves_all_outputs_or_none(tmp_path: Path) -> None:
    (tmp_path / "d.dat").write_text("\n".join(f"{math.sin(k)} {math.cos(3 * k)}" for k in range(200)) + "\n")
    argv = [sys.executable, "-m", "cyfes", "fes", "d.dat", "--sigma", "0.05", "--bins", "1500", "-q", "-o", "a.grid",
            "-o", "b.dat", "-o", "c.npz"] + CPU
    codes = set()
    for delay in (0.8, 1.2, 1.6, 2.0, 2.6, 3.4):
        for name in ("a.grid", "b.dat", "c.npz"):
            (tmp_path / name).unlink(missing_ok=True)
        proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        codes.add(proc.returncode)
        assert proc.returncode in (0, 143) and "Traceback" not in err, err
        names = sorted(p.name for p in tmp_path.iterdir())
        assert names in (["d.dat"], ["a.grid", "b.dat", "c.npz", "d.dat"]), names
    assert 143 in codes


@pytest.mark.gpu
@pytest.mark.slow
def test_sigint_stops_a_long_gpu_kernel_promptly(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    np.save(tmp_path / "big.npy", rng.normal(size=(4_000_000, 2)))
    # --tolerance 0: 4e6 samples x 1e6 points in float64, every pair: about 9 s on an H100, in calls of about 0.25 s
    # (the default truncated sum finishes in well under the 4 s waited below)
    proc = ref.foreground([sys.executable, "-m", "cyfes", "fes", "big.npy", "--sigma", "0.05", "--bins", "1000",
                        "--tolerance", "0", "--device", "gpu", "-q", "-o", "f.npz"], tmp_path)
    time.sleep(4.0)
    assert proc.poll() is None
    sent = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    took = time.perf_counter() - sent
    assert proc.returncode == 130 and err.splitlines()[-1] == "cyfes: error: interrupted", err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.npy"]
    assert took < 2.5, f"stopped {took:.2f} s after the signal"


@pytest.mark.slow
@pytest.mark.parametrize("ext", [".grid", ".dat", ".cube"])
def test_text_writers_stream_in_bounded_memory(tmp_path: Path, ext: str) -> None:
    import tracemalloc
    rng = np.random.default_rng(12)
    shape = (80, 80, 80) if ext == ".cube" else (400, 400)
    axes = [np.linspace(0, 1, n) for n in shape]
    res = cyfes.FESResult(values=rng.uniform(0, 50, shape), axes=axes, grid=None, error=None, kT=2.494, units="kJ/mol",
                          temperature=300.0, backend="cpu", precision="float64", sigma=np.ones(len(shape)),
                          periodic=[None] * len(shape), n_samples=1)
    tracemalloc.start()
    try:
        res.save(tmp_path / f"f{ext}")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    size = (tmp_path / f"f{ext}").stat().st_size
    derivatives = 2 * res.values.nbytes * len(shape) if ext == ".grid" else 0  # with np.gradient's temporaries
    assert peak < derivatives + (3 << 20), (peak, size)  # the whole text would be `size` bytes, more as str
    assert size > 5 << 20
    back = formats.read_grid(tmp_path / f"f{ext}")
    atol = 1e-9 if ext == ".grid" else (5e-5 * 50 if ext == ".cube" else 1e-8 * 50)
    np.testing.assert_allclose(back.values, res.values, atol=atol)
