"""`cyfes fes --stream`: a file read in chunks (a small read buffer and --chunk-rows force many) gives the
surface and block errors of the in-memory run, and of the float64 numpy reference; errors name file:line."""
from __future__ import annotations

import gzip
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from cyfes.commands.main import main
from cyfes.io import tables
from reference import block_error, free_energy, regular_grid

KT = 0.0083144626181532 * 300.0


def _colvar(path: Path, n: int = 3000, seed: int = 0) -> np.ndarray:
    """TEST FIXTURE: a COLVAR with two restarts inside the file, the second of which reorders its FIELDS and
    adds a column; returns the rows as (phi, psi, metad.bias), rounded as written."""
    rng = np.random.default_rng(seed)
    rows = np.round(np.column_stack([rng.uniform(-math.pi, math.pi, n), rng.normal(0.3, 0.7, n),
                                     rng.uniform(0, 6, n)]), 6)
    a, b = n // 3, 2 * n // 3
    with open(path, "w") as out:
        out.write("#! FIELDS time phi psi metad.bias\n#! SET min_phi -pi\n#! SET max_phi pi\n")
        np.savetxt(out, np.column_stack([np.arange(a), rows[:a]]), fmt="%.6f")
        out.write("#! FIELDS time phi psi metad.bias\n#! SET min_phi -pi\n#! SET max_phi pi\n")
        np.savetxt(out, np.column_stack([np.arange(a, b), rows[a:b]]), fmt="%.6f")
        out.write("#! FIELDS time metad.bias psi extra phi\n#! SET min_phi -pi\n#! SET max_phi pi\n")
        part = rows[b:]
        np.savetxt(out, np.column_stack([np.arange(b, n), part[:, 2], part[:, 1], np.zeros(len(part)), part[:, 0]]),
                   fmt="%.6f")
    return rows


ARGS = ["--cv", "phi,psi", "--bias", "metad.bias", "--sigma", "0.3,0.25", "--bins", "12,10", "--range", "psi=-2,2.5",
        "--skip", "101", "--stride", "3", "--blocks", "4", "--tolerance", "0", "--device", "cpu", "-q"]


@pytest.fixture
def small_buffer(monkeypatch):
    monkeypatch.setattr(tables, "BLOCK_BYTES", 8192)  # many blocks of text, so restarts fall between and inside


def _run(tmp_path: Path, inp: Path, name: str, *extra: str) -> dict:
    out = tmp_path / name
    assert main(["fes", str(inp), *ARGS, "-o", str(out), *extra]) == 0
    return dict(np.load(out))


def test_streamed_surface_and_block_errors_equal_the_in_memory_run(tmp_path, small_buffer, capsys):
    inp = tmp_path / "COLVAR"
    rows = _colvar(inp)
    mem = _run(tmp_path, inp, "mem.npz")
    got = _run(tmp_path, inp, "stream.npz", "--stream", "--chunk-rows", "97")
    np.testing.assert_allclose(got["values"], mem["values"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(got["error"], mem["error"], rtol=0, atol=1e-10)
    assert np.array_equal(got["axis0"], mem["axis0"]) and np.array_equal(got["axis1"], mem["axis1"])
    kept = rows[101::3]  # the independent reference: numpy, from the rows as written
    grid = regular_grid([got["axis0"], got["axis1"]])
    period = np.array([2 * math.pi, 0.0])
    ref = free_energy(kept[:, :2], [0.3, 0.25], grid, bias=kept[:, 2], period=period).reshape(12, 10)
    np.testing.assert_allclose(got["values"], ref, rtol=0, atol=1e-9)
    err = block_error(kept[:, :2], [0.3, 0.25], grid, 4, bias=kept[:, 2], period=period).reshape(12, 10)
    np.testing.assert_allclose(got["error"], err, rtol=0, atol=1e-9)


def test_streamed_gzip_without_range_takes_the_data_range_from_the_first_pass(tmp_path, small_buffer, capsys):
    inp = tmp_path / "COLVAR"
    _colvar(inp)
    gz = tmp_path / "COLVAR.gz"
    gz.write_bytes(gzip.compress(inp.read_bytes()))
    args = [a for a in ARGS if a not in ("--range", "psi=-2,2.5")]
    outs = []
    for name, extra in (("mem.npz", []), ("stream.npz", ["--stream", "--chunk-rows", "50", "-v"])):
        assert main(["fes", str(gz), *args, "-o", str(tmp_path / name), *extra]) == 0
        outs.append(np.load(tmp_path / name))
    np.testing.assert_allclose(outs[1]["values"], outs[0]["values"], rtol=0, atol=1e-10)
    assert np.array_equal(outs[1]["axis1"], outs[0]["axis1"])
    err = capsys.readouterr().err
    assert "memory bound about" in err and "chunk of 50 rows" in err


def test_a_bad_row_in_the_third_chunk_names_its_file_and_line(tmp_path, small_buffer, capsys):
    inp = tmp_path / "COLVAR"
    _colvar(inp)
    lines = inp.read_text().splitlines(keepends=True)
    lines[2500] = "17 0.5 oops 1.0\n"  # line 2501: past two restarts and many buffers of text
    inp.write_text("".join(lines))
    assert main(["fes", str(inp), *ARGS, "--stream", "--chunk-rows", "400", "-o", str(tmp_path / "x.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"cyfes: error: {inp}: line 2501, column 3: 'oops' is not a number"], err
    assert not (tmp_path / "x.npz").exists()
    chunks = 0
    with pytest.raises(Exception, match="line 2501"):  # the chunked reader itself: rows come first, then the error
        for _ in tables.ChunkedTable(inp, columns=["phi", "psi"], rows=400):
            chunks += 1
    assert chunks >= 3


def test_a_column_only_some_restarts_have_is_refused_as_in_memory(tmp_path, small_buffer, capsys):
    inp = tmp_path / "COLVAR"
    _colvar(inp)
    base = ["fes", str(inp), "--cv", "phi,extra", "--sigma", "0.3", "--device", "cpu", "-q"]
    assert main(base) == 2
    whole = capsys.readouterr().err
    assert main(base + ["--stream", "--chunk-rows", "100"]) == 2
    assert capsys.readouterr().err == whole
    assert "'extra' is only in data segments 3 of 3" in whole


def test_inputs_above_the_in_memory_bound_stream_by_themselves(tmp_path, small_buffer, capsys, monkeypatch):
    inp = tmp_path / "COLVAR"
    _colvar(inp)
    mem = _run(tmp_path, inp, "mem.npz")
    monkeypatch.setenv("CYFES_MAX_INPUT_BYTES", str(inp.stat().st_size - 1))
    out = tmp_path / "auto.npz"
    assert main(["fes", str(inp), *[a for a in ARGS if a != "-q"], "--chunk-rows", "300", "-o", str(out)]) == 0
    assert "cyfes: streamed 1 input(s) in " in capsys.readouterr().out
    np.testing.assert_allclose(np.load(out)["values"], mem["values"], rtol=0, atol=1e-10)
    big = tmp_path / "x.npy"
    np.save(big, np.zeros((50_000, 2)))  # above the bound: the in-memory reader refuses it, and says what to do
    with pytest.raises(tables.InputError) as refused:
        tables.read_table(big)
    assert str(refused.value) == (f"{big}: 50,000 x 2 values are more than {inp.stat().st_size - 1:,} bytes; set "
                                  "CYFES_MAX_INPUT_BYTES to allow more, or read it in chunks: cyfes fes --stream")


def test_options_that_need_every_sample_are_refused_with_stream(tmp_path, capsys):
    inp = tmp_path / "COLVAR"
    _colvar(inp, 300)
    (tmp_path / "w0.dat").write_text("#! FIELDS time x\n0 0.1\n1 0.2\n")  # TEST FIXTURE: one umbrella window
    (tmp_path / "w.yaml").write_text("cv: [x]\nwindows:\n  - {file: w0.dat, centre: [0.0], kappa: [100.0]}\n")
    assert main(["fes", "--windows", str(tmp_path / "w.yaml"), "--sigma", "0.1", "--stream"]) == 2
    assert capsys.readouterr().err.strip() == ("cyfes: error: --windows: needs every sample in memory (MBAR "
                                               "iterates over all windows); not with --stream")
    assert main(["fes", str(inp), "--cv", "phi", "--sigma", "0.1", "--scheduler", "tcp://127.0.0.1:1",
                 "--stream"]) == 2  # refused before any connection is tried
    assert capsys.readouterr().err.strip() == ("cyfes: error: --scheduler: reads and sums the inputs on the Dask "
                                               "workers instead; not with --stream")


def _silverman(x: np.ndarray, logw: np.ndarray, periods: list) -> np.ndarray:
    """The float64 reference of Silverman's rule: weighted (circular for a periodic CV) spread, Kish's n_eff."""
    w = np.exp(logw - logw.max())
    w /= w.sum()
    spread = []
    for d, p in enumerate(periods):
        if p:
            z = np.sum(w * np.exp(2j * np.pi * x[:, d] / p))
            spread.append(p / (2 * np.pi) * np.sqrt(-2 * np.log(abs(z))))
        else:
            spread.append(np.sqrt(np.sum(w * (x[:, d] - np.sum(w * x[:, d])) ** 2)))
    dim = x.shape[1]
    return np.array(spread) * (4 / ((dim + 2) / np.sum(w ** 2))) ** (1 / (dim + 4))


def test_sigma_auto_streamed_equals_in_memory_and_the_reference(tmp_path, small_buffer, capsys):
    inp = tmp_path / "COLVAR"
    rows = _colvar(inp)
    args = ["auto" if a == "0.3,0.25" else a for a in ARGS if a != "-q"]
    outs, lines = [], []
    for name, extra in (("mem.npz", []), ("stream.npz", ["--stream", "--chunk-rows", "7"])):
        assert main(["fes", str(inp), *args, "-o", str(tmp_path / name), *extra]) == 0
        outs.append(np.load(tmp_path / name))
        lines.append([ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("cyfes: sigma auto")])
    assert lines[0] == lines[1] and len(lines[0]) == 1, lines
    finite = np.isfinite(outs[0]["values"])
    np.testing.assert_allclose(outs[1]["values"][finite], outs[0]["values"][finite], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(outs[1]["error"], outs[0]["error"], rtol=1e-10, atol=1e-12)
    kept = rows[101::3]  # phi is periodic (its #! SET lines), psi is not
    period = np.array([2 * math.pi, 0.0])
    want = _silverman(kept[:, :2], kept[:, 2] / KT, [2 * math.pi, None])
    printed = [float(t.split("=")[1]) for t in lines[1][0].split(": ")[-1].split(", ")]
    np.testing.assert_allclose(printed, want, rtol=1e-5)  # printed to 6 digits
    grid = regular_grid([outs[1]["axis0"], outs[1]["axis1"]])
    ref = free_energy(kept[:, :2], want, grid, bias=kept[:, 2], period=period).reshape(12, 10)
    np.testing.assert_allclose(outs[1]["values"], ref, rtol=0, atol=1e-9)  # the bandwidth itself, to rounding


@pytest.mark.slow
def test_a_file_larger_than_the_address_space_limit_streams(tmp_path):
    """Under `ulimit -v` smaller than the file's data: the in-memory run is refused (out of memory), the streamed
    run gives the surface of a reference computed from a few rows repeated (a TEST FIXTURE)."""
    base = np.array([[-1.0, 0.5, 0.0], [1.0, -0.5, 1.0], [0.2, 0.1, 2.0], [2.5, 1.5, 0.5]])
    reps = 7_500_000  # 3e7 rows: 450 MB of text, 720 MB as float64 (the three columns read)
    inp = tmp_path / "COLVAR"
    line = "".join(f"0 {a:.1f} {b:.1f} {c:.1f}\n" for a, b, c in base).encode()
    with open(inp, "wb") as out:
        out.write(b"#! FIELDS time phi psi metad.bias\n")
        for _ in range(reps // 100_000):
            out.write(line * 100_000)
    limit = 500 << 20  # address space: the interpreter, numpy, the engine and a few chunks, not 720 MB of data
    script = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
        from cyfes.commands.main import main
        sys.exit(main(sys.argv[1:]))""")
    args = [str(inp), "--cv", "phi,psi", "--bias", "metad.bias", "--sigma", "0.4", "--bins", "9",
            "--range", "phi=-3,3", "--range", "psi=-2,2", "--device", "cpu", "--threads", "1", "--tolerance", "0",
            "-q"]  # --tolerance 0: every pair summed (the default leaves out up to 1e-6 kT: 2.5e-7 here)
    env = {**os.environ, "CYFES_MAX_INPUT_BYTES": str(1 << 40)}  # the in-memory reader tries, and fails
    mem = subprocess.run([sys.executable, "-c", script, "fes", *args, "-o", str(tmp_path / "m.npz")],
                         capture_output=True, text=True, env=env)
    assert mem.returncode != 0 and not (tmp_path / "m.npz").exists()
    assert "memory" in mem.stderr.lower(), mem.stderr  # it failed for memory, not for another reason
    got = subprocess.run([sys.executable, "-c", script, "fes", *args, "--stream", "-o", str(tmp_path / "s.npz")],
                         capture_output=True, text=True, env=env)
    assert got.returncode == 0, got.stderr
    res = np.load(tmp_path / "s.npz")
    grid = regular_grid([res["axis0"], res["axis1"]])
    ref = free_energy(base[:, :2], [0.4, 0.4], grid, bias=base[:, 2]).reshape(9, 9)  # repeating rows: same F
    np.testing.assert_allclose(res["values"], ref, rtol=0, atol=1e-8)


NPY_ARGS = ["--cv", "1,x", "--bias", "3", "--sigma", "0.3,0.25", "--bins", "12,10", "--skip", "101", "--stride", "3",
            "--blocks", "4", "--tolerance", "0", "--device", "cpu", "-q"]


def _npy(path: Path, n: int = 3000, seed: int = 2) -> np.ndarray:
    """TEST FIXTURE: a .npy of (time, phi, psi, bias) columns, its second and third named col1, col2 by cyfes."""
    rng = np.random.default_rng(seed)
    rows = np.column_stack([np.arange(n), rng.normal(0, 1, n), rng.normal(0.5, 0.7, n), rng.uniform(0, 5, n)])
    np.save(path, rows)
    return rows


def _npy_surface(tmp_path: Path, inp: Path, name: str, args: list, *extra: str) -> dict:
    out = tmp_path / name
    assert main(["fes", str(inp), *args, "-o", str(out), *extra]) == 0
    return dict(np.load(out))


def test_a_streamed_npy_equals_the_in_memory_run_and_numpy(tmp_path, capsys, monkeypatch):
    inp = tmp_path / "s.npy"
    rows = _npy(inp)
    args = [a if a != "1,x" else "1,col2" for a in NPY_ARGS]  # an index and a name, as in memory
    mem = _npy_surface(tmp_path, inp, "mem.npz", args)
    got = _npy_surface(tmp_path, inp, "stream.npz", args, "--stream", "--chunk-rows", "7")
    monkeypatch.setenv("CYFES_MAX_INPUT_BYTES", str(rows.nbytes - 1))  # above the bound: streams by itself
    auto = _npy_surface(tmp_path, inp, "auto.npz", [a for a in args if a != "-q"], "--chunk-rows", "50")
    assert "cyfes: streamed 1 input(s) in 58 chunks" in capsys.readouterr().out  # 3000 / 50, two before --skip
    for other in (got, auto):
        finite = np.isfinite(mem["values"])
        np.testing.assert_allclose(other["values"][finite], mem["values"][finite], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(other["error"], mem["error"], rtol=1e-10, atol=1e-12)
        assert np.array_equal(other["axis0"], mem["axis0"]) and np.array_equal(other["axis1"], mem["axis1"])
    kept = rows[101::3]
    grid = regular_grid([got["axis0"], got["axis1"]])
    ref = free_energy(kept[:, 1:3], [0.3, 0.25], grid, bias=kept[:, 3]).reshape(12, 10)
    np.testing.assert_allclose(got["values"], ref, rtol=0, atol=1e-9)


def test_a_streamed_structured_npy_reads_its_named_fields(tmp_path, capsys):
    rng = np.random.default_rng(5)
    n = 500
    arr = np.zeros(n, dtype=[("time", "<i4"), ("x", "<f8"), ("bias", "<f4")])  # TEST FIXTURE
    arr["time"], arr["x"], arr["bias"] = np.arange(n), rng.normal(size=n), rng.uniform(0, 3, n)
    np.save(tmp_path / "s.npy", arr)
    args = ["--cv", "x", "--bias", "bias", "--sigma", "0.3", "--bins", "25", "--tolerance", "0", "--device", "cpu",
            "-q"]
    mem = _npy_surface(tmp_path, tmp_path / "s.npy", "mem.npz", args)
    got = _npy_surface(tmp_path, tmp_path / "s.npy", "stream.npz", args, "--stream", "--chunk-rows", "9")
    np.testing.assert_allclose(got["values"], mem["values"], rtol=1e-10, atol=1e-12)
    ref = free_energy(arr["x"][:, None], [0.3], regular_grid([got["axis0"]]), bias=arr["bias"].astype(float))
    np.testing.assert_allclose(got["values"], ref, rtol=0, atol=1e-9)


@pytest.mark.parametrize("array, cv, message", [
    (np.array([[1 + 2j, 3], [4, 5]]), "0", "holds complex numbers; cyfes reads real numbers (integer or float"),
    (np.zeros((2, 2, 2)), "0", "expected a non-empty 1-D or 2-D array"),
    (np.zeros((20, 2)), "5", "column index 5 is out of range: the file has 2 columns (0 to 1)"),
    (np.zeros((20, 2)), "phi", "no column named 'phi'; available columns: col0, col1"),
])
def test_a_streamed_npy_that_cannot_be_samples_fails_as_in_memory(tmp_path, capsys, array, cv, message):
    bad = tmp_path / "bad.npy"
    np.save(bad, array)
    base = ["fes", str(bad), "--cv", cv, "--sigma", "0.1", "--device", "cpu", "-o", str(tmp_path / "f.npz")]
    assert main(base) == 2
    whole = capsys.readouterr().err
    assert main(base + ["--stream", "--chunk-rows", "3"]) == 2
    err = capsys.readouterr().err
    assert err == whole and len(err.strip().splitlines()) == 1
    assert err.startswith(f"cyfes: error: {bad}: {message}"), err
    assert not (tmp_path / "f.npz").exists()


def test_a_truncated_npy_fails_before_any_sum(tmp_path, capsys):
    bad = tmp_path / "cut.npy"
    np.save(bad, np.zeros((100, 2)))
    bad.write_bytes(bad.read_bytes()[:-40])  # TEST FIXTURE: the last rows cut off
    assert main(["fes", str(bad), "--sigma", "0.1", "--device", "cpu", "--stream", "-o", str(tmp_path / "f.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"cyfes: error: {bad}: cannot read as a .npy array: "), err
    assert not (tmp_path / "f.npz").exists()


def _colvars_traj(path: Path, n: int = 2400, seed: int = 3) -> np.ndarray:
    """TEST FIXTURE: a Colvars trajectory of `# step phi d ...` with a vector variable d (columns d_1, d_2) and
    metadynamics' bias E_metad, three restarts (each writes its step again), the third with an extra variable, a
    row cut short before the second restart; returns the rows cyfes keeps as (phi, d_1, E_metad)."""
    rng = np.random.default_rng(seed)
    rows = np.round(np.column_stack([rng.normal(0, 1, n), rng.normal(0.5, 0.6, n), rng.uniform(0, 4, n)]), 6)
    cuts = [0, 700, 1500, 1900, n]
    with open(path, "w") as out:
        for k in range(4):
            extra = k == 2
            out.write("# step phi d E_metad" + (" e" if extra else "") + "\n")
            lo, hi = cuts[k], cuts[k + 1]
            for j in range(lo, hi):
                phi, d1, e = rows[j]
                out.write(f"{j} {phi:.6f} ( {d1:.6f} , 0.1 ) {e:.6f}" + (" 1.5" if extra else "") + "\n")
            if k < 3:  # the restart's step, written before the header and again after it: this row is dropped
                out.write(f"{hi} 9.0 ( 9.0 , 0.1 ) 0.0" + (" 0" if extra else "") + "\n")
            if k == 1:
                out.write(f"{hi} 0.5 ( 0.2 , \n")  # cut short by a crash, before the restart
            if k == 3:
                out.write("# a comment\n\n")
    return rows


CV_ARGS = ["--cv", "phi,d_1", "--bias", "E_metad", "--sigma", "0.3,0.25", "--bins", "12,10", "--skip", "33",
           "--stride", "2", "--blocks", "3", "--tolerance", "0", "--device", "cpu", "-q"]


def test_a_streamed_colvars_trajectory_equals_the_in_memory_run_and_numpy(tmp_path, small_buffer, capsys):
    inp = tmp_path / "run.colvars.traj"
    rows = _colvars_traj(inp)
    outs, warnings = [], []
    for name, extra in (("mem.npz", []), ("stream.npz", ["--stream", "--chunk-rows", "7"])):
        outs.append(_npy_surface(tmp_path, inp, name, CV_ARGS, *extra))
        warnings.append(capsys.readouterr().err)
    assert warnings[0] == warnings[1]
    assert "dropped a row cut short" in warnings[0] and "'e' is only under" in warnings[0]
    mem, got = outs
    np.testing.assert_allclose(got["values"], mem["values"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got["error"], mem["error"], rtol=1e-10, atol=1e-12)
    kept = rows[33::2]
    grid = regular_grid([got["axis0"], got["axis1"]])
    ref = free_energy(kept[:, :2], [0.3, 0.25], grid, bias=kept[:, 2]).reshape(12, 10)
    np.testing.assert_allclose(got["values"], ref, rtol=0, atol=1e-9)


def _xvg(path: Path, n: int = 2000, seed: int = 4) -> np.ndarray:
    """TEST FIXTURE: a GROMACS xvg of time and two distances, `#` comments and `@` legends, as gmx writes it."""
    rng = np.random.default_rng(seed)
    rows = np.round(np.column_stack([rng.normal(1, 0.3, n), rng.normal(2, 0.5, n)]), 5)
    with open(path, "w") as out:
        out.write("# This file was created by gmx distance\n# Command line:\n#   gmx distance -f traj.xtc\n")
        out.write('@    title "Distance"\n@    xaxis  label "Time (ps)"\n@    yaxis  label "Distance (nm)"\n'
                  '@TYPE xy\n@ s0 legend "d1"\n@ s1 legend "d2"\n')
        for j, (a, b) in enumerate(rows):
            out.write(f"{j * 2.0:10.3f} {a:10.5f} {b:10.5f}\n")
        out.write("&\n")
    return rows


def test_a_streamed_xvg_equals_the_in_memory_run_and_numpy(tmp_path, small_buffer, capsys):
    inp = tmp_path / "dist.xvg"
    rows = _xvg(inp)
    args = ["--cv", "d1,2", "--sigma", "0.1", "--bins", "15", "--skip", "5", "--tolerance", "0", "--device", "cpu",
            "-q"]
    mem = _npy_surface(tmp_path, inp, "mem.npz", args)
    got = _npy_surface(tmp_path, inp, "stream.npz", args, "--stream", "--chunk-rows", "7")
    np.testing.assert_allclose(got["values"], mem["values"], rtol=1e-10, atol=1e-12)
    ref = free_energy(rows[5:], [0.1, 0.1], regular_grid([got["axis0"], got["axis1"]])).reshape(15, 15)
    np.testing.assert_allclose(got["values"], ref, rtol=0, atol=1e-9)


def _refused_alike(tmp_path, capsys, inp: Path, args: list, streamed_only: bool = False) -> str:
    """The in-memory and the streamed run fail with the same one line (exit 2), and write nothing."""
    out = tmp_path / "f.npz"
    errs = []
    for extra in ([], ["--stream", "--chunk-rows", "5"]):
        if not streamed_only or extra:
            assert main(["fes", str(inp), *args, "-o", str(out), *extra]) == 2
            errs.append(capsys.readouterr().err.strip().splitlines())
    assert len(errs[-1]) == 1 and errs[0] == errs[-1], errs
    assert not out.exists()
    return errs[-1][0]


def test_a_bad_value_deep_in_a_streamed_colvars_trajectory_names_its_line(tmp_path, small_buffer, capsys):
    inp = tmp_path / "run.colvars.traj"
    _colvars_traj(inp)
    lines = inp.read_text().splitlines(keepends=True)
    assert lines[1800].startswith("1794 ")
    lines[1800] = "1794 0.5 ( oops , 0.1 ) 1.0 1.5\n"  # line 1801: past several buffers and two restarts
    inp.write_text("".join(lines))
    err = _refused_alike(tmp_path, capsys, inp, CV_ARGS)
    assert err.startswith(f"cyfes: error: {inp}: line 1801, value 3 (d_1): 'oops' is not a number (read as a "
                          "Colvars trajectory, guessed because"), err


def test_a_streamed_colvars_trajectory_with_data_before_its_header_is_refused(tmp_path, small_buffer, capsys):
    inp = tmp_path / "run.colvars.traj"
    _colvars_traj(inp)
    bad = tmp_path / "bad.traj"
    bad.write_text("1 2 3\n" + inp.read_text())  # TEST FIXTURE
    err = _refused_alike(tmp_path, capsys, bad, CV_ARGS + ["--input-format", "colvars"])
    assert err == (f"cyfes: error: {bad}: line 1: data before the first '# step' header (read as a Colvars "
                   "trajectory, as --input-format colvars asks)")


def test_a_second_xvg_data_set_is_refused_streamed_as_in_memory(tmp_path, small_buffer, capsys):
    inp = tmp_path / "dist.xvg"
    _xvg(inp)
    inp.write_text(inp.read_text() + "0 1 2\n")  # line 2011: after the '&' of line 2010
    err = _refused_alike(tmp_path, capsys, inp, ["--cv", "d1", "--sigma", "0.1", "--device", "cpu"])
    assert err.startswith(f"cyfes: error: {inp}: line 2011: a second data set after the '&' of line 2010"), err


def test_a_legend_after_streamed_rows_is_refused(tmp_path, small_buffer, capsys):
    inp = tmp_path / "dist.xvg"
    _xvg(inp)
    lines = inp.read_text().splitlines(keepends=True)
    lines.insert(1500, '@ s1 legend "late"\n')  # renames d2 after 1000 rows went out under its name
    inp.write_text("".join(lines))
    err = _refused_alike(tmp_path, capsys, inp, ["--cv", "d1", "--sigma", "0.1", "--device", "cpu"],
                         streamed_only=True)  # in memory the legends are read before the rows
    assert err.startswith(f"cyfes: error: {inp}: line 1501: renames a column after data rows"), err


REWEIGHT = Path(__file__).parents[1] / "data" / "plumed-reweight"  # a PLUMED run: its COLVAR (with rbias), HILLS


@pytest.mark.parametrize("mode", ["ct", "final"])
def test_hills_streamed_equal_the_in_memory_run_and_plumeds_rbias(tmp_path, small_buffer, capsys, mode):
    colvar, hills = REWEIGHT / "COLVAR.reference", REWEIGHT / "HILLS.reference"
    base = ["--cv", "phi,psi", "--sigma", "0.3", "--bins", "40,40", "--kt", "2.494339", "--skip", "3",
            "--tolerance", "0", "--device", "cpu", "-q"]
    args = base + ["--hills", str(hills), "--reweight", mode] + (["--rct-bin", "150,150"] if mode == "ct" else [])
    mem = _npy_surface(tmp_path, colvar, "mem.npz", args)
    got = _npy_surface(tmp_path, colvar, "stream.npz", args, "--stream", "--chunk-rows", "7")
    finite = np.isfinite(mem["values"])
    assert np.array_equal(finite, np.isfinite(got["values"])) and finite.sum() > 100
    np.testing.assert_allclose(got["values"][finite], mem["values"][finite], rtol=1e-10, atol=1e-12)
    if mode == "ct":  # PLUMED's own reweighting bias of the run: per sample within 1e-3 kJ/mol (see
        plumed = _npy_surface(tmp_path, colvar, "rbias.npz", base + ["--bias", "metad.rbias"])  # test_metad_reweight)
        assert np.abs(got["values"][finite] - plumed["values"][finite]).max() < 2e-3


def test_hills_streamed_without_a_time_column_is_refused(tmp_path, capsys):
    inp = tmp_path / "COLVAR"
    text = (REWEIGHT / "COLVAR.reference").read_text()
    inp.write_text(text.replace("#! FIELDS time ", "#! FIELDS step "))  # TEST FIXTURE: the run, no time column
    args = ["--cv", "phi,psi", "--sigma", "0.3", "--hills", str(REWEIGHT / "HILLS.reference"), "--device", "cpu"]
    err = _refused_alike(tmp_path, capsys, inp, args)
    assert err == (f"cyfes: error: {inp}: no column named 'time'; available columns: step, phi, psi, metad.bias, "
                   "metad.rbias, metad.rct")


def test_two_streamed_walkers_with_sigma_auto_and_weights_equal_the_in_memory_run(tmp_path, capsys):
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    rows = np.concatenate([_npy(a, 900, seed=6), _npy(b, 700, seed=7)])
    args = ["--cv", "1,2", "--weights", "3", "--sigma", "auto", "--bins", "9,11", "--skip", "50", "--tolerance", "0",
            "--device", "cpu"]
    outs, said = [], []
    for name, extra in (("mem.npz", []), ("stream.npz", ["--stream", "--chunk-rows", "13"])):
        assert main(["fes", str(a), str(b), *args, "-o", str(tmp_path / name), *extra]) == 0
        outs.append(np.load(tmp_path / name))
        said.append([ln for ln in capsys.readouterr().out.splitlines() if "sigma auto" in ln])
    assert said[0] == said[1] and len(said[0]) == 1
    np.testing.assert_allclose(outs[1]["values"], outs[0]["values"], rtol=1e-10, atol=1e-12)
    kept = np.concatenate([rows[50:900], rows[950:]])  # --skip per file
    sigma = _silverman(kept[:, 1:3], np.log(kept[:, 3]), [None, None])
    ref = free_energy(kept[:, 1:3], sigma, regular_grid([outs[1]["axis0"], outs[1]["axis1"]]),
                      weights=kept[:, 3]).reshape(9, 11)
    np.testing.assert_allclose(outs[1]["values"], ref, rtol=0, atol=1e-9)


def test_block_and_sigma_scans_of_a_stream_equal_the_in_memory_scans(tmp_path, small_buffer, capsys):
    inp = tmp_path / "COLVAR"
    _colvar(inp)
    args = [a for a in ARGS if a not in ("-q", "--blocks", "4")] + ["--block-scan", "2,3,5", "--sigma-scan",
                                                                    "0.2,0.4"]
    said = []
    for name, extra in (("mem.npz", []), ("stream.npz", ["--stream", "--chunk-rows", "111"])):
        assert main(["fes", str(inp), *args, "-o", str(tmp_path / name), *extra]) == 0
        out = capsys.readouterr().out.splitlines()
        said.append(out[out.index(next(ln for ln in out if ln.startswith("cyfes: block scan"))):])
    assert said[0] == said[1], said
    assert len(said[0]) == 2 + 3 + 2 + 2 and said[0][5].startswith("cyfes: sigma scan")  # 3 counts, 2 sigmas
    rows = [ln.split() for ln in said[0][2:5]]
    n = len(range(101, 3000, 3))  # the rows --skip 101 --stride 3 keep
    assert [int(r[0]) for r in rows] == [2, 3, 5] and [int(r[1]) for r in rows] == [n // c for c in (2, 3, 5)]
