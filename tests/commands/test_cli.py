"""The `cyfes` command end to end: files written here, outputs read back and compared with cyfes.fes."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest

import cyfes
from cyfes.commands.main import main
from cyfes.io import formats

NAMES = ["time", "phi", "psi", "metad.bias", "uwall.bias"]


def _samples(n: int = 600, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    phi = rng.uniform(-math.pi, math.pi, n)
    psi = rng.normal(0.5, 0.6, n)
    return np.column_stack([np.arange(n) * 0.1, phi, psi, rng.uniform(0, 6, n), rng.uniform(0, 1, n)])


def _colvar(path: Path, data: np.ndarray, periodic_sets: bool = False) -> np.ndarray:
    """Write `data` as a COLVAR with a restart in the middle; returns the values as written (rounded)."""
    half = len(data) // 2
    with open(path, "w") as out:
        for part in (data[:half], data[half:]):
            out.write("#! FIELDS " + " ".join(NAMES) + "\n")
            if periodic_sets:
                out.write("#! SET min_phi -pi\n#! SET max_phi pi\n")
            np.savetxt(out, part, fmt="%.10f")
    return np.round(data, 10)


def _run(argv: List[str], capsys: pytest.CaptureFixture) -> Tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _assert_same(grid: formats.Grid, result: cyfes.FESResult, atol: float = 1e-8) -> None:
    for got, want in zip(grid.axes, result.axes):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=atol)
    np.testing.assert_allclose(grid.values, result.values, rtol=1e-9, atol=atol)


@pytest.mark.parametrize("ext", [".dat", ".grid", ".csv", ".npz"])
def test_colvar_with_restarts_to_every_format(tmp_path: Path, ext: str, capsys: pytest.CaptureFixture) -> None:
    data = _colvar(tmp_path / "COLVAR", _samples())
    out = tmp_path / f"fes{ext}"
    code, stdout, err = _run(["fes", str(tmp_path / "COLVAR"), "--cv", "phi,psi", "--bias", "metad.bias",
                              "--sigma", "0.3,0.2", "--bins", "12,9", "--device", "cpu", "-o", str(out)], capsys)
    assert (code, err) == (0, "")
    assert str(out) in stdout
    want = cyfes.fes(data[:, 1:3], [0.3, 0.2], bias=data[:, 3], bins=[12, 9], device="cpu")
    _assert_same(formats.read_grid(out), want)


def test_periodic_cv_grid_spans_the_period(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = _colvar(tmp_path / "COLVAR", _samples())
    code, _, err = _run(["fes", str(tmp_path / "COLVAR"), "--cv", "phi", "--bias", "metad.bias,uwall.bias",
                         "--sigma", "pi/10", "--periodic", "phi=-pi,pi", "--bins", "36", "--units", "kcal/mol",
                         "-T", "310", "--device", "cpu", "-o", str(tmp_path / "fes.grid")], capsys)
    assert (code, err) == (0, "")
    grid = formats.read_grid(tmp_path / "fes.grid")
    step = 2 * math.pi / 36
    np.testing.assert_allclose(grid.axes[0], -math.pi + step * np.arange(36), atol=1e-9)
    assert grid.periodic == [True]
    want = cyfes.fes(data[:, 1], math.pi / 10, bias=data[:, 3] + data[:, 4], units="kcal/mol", temperature=310,
                     bins=36, ranges=[(-math.pi, math.pi - step)], periodic=[2 * math.pi], device="cpu")
    _assert_same(grid, want)
    text = (tmp_path / "fes.grid").read_text()
    assert "#! SET min_phi -3.14159265358979" in text and "#! SET nbins_phi 36" in text


def test_periodicity_declared_by_the_colvar_is_used(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = _colvar(tmp_path / "COLVAR", _samples(), periodic_sets=True)
    args = ["fes", str(tmp_path / "COLVAR"), "--cv", "phi", "--sigma", "0.3", "--bins", "20", "--device", "cpu"]
    assert _run(args + ["-o", str(tmp_path / "a.npz")], capsys)[0] == 0
    step = 2 * math.pi / 20
    want = cyfes.fes(data[:, 1], 0.3, bins=20, ranges=[(-math.pi, math.pi - step)], periodic=[2 * math.pi],
                     device="cpu")
    _assert_same(formats.read_grid(tmp_path / "a.npz"), want)
    assert _run(args + ["--periodic", "phi=none", "-o", str(tmp_path / "b.npz")], capsys)[0] == 0
    _assert_same(formats.read_grid(tmp_path / "b.npz"), cyfes.fes(data[:, 1], 0.3, bins=20, device="cpu"))


def test_skip_stride_ranges_blocks_and_columns_by_index(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = _colvar(tmp_path / "COLVAR", _samples(900))
    code, _, err = _run(["fes", str(tmp_path / "COLVAR"), "--cv", "1,2", "--bias", "3", "--sigma",
                         "psi=0.25,phi=0.35", "--skip", "100", "--stride", "3", "--range", "psi=-1,2",
                         "--blocks", "4", "--bins", "10,8", "--device", "cpu", "-o", str(tmp_path / "fes.dat")],
                        capsys)
    assert (code, err) == (0, "")
    kept = data[100::3]
    ranges = [(kept[:, 1].min(), kept[:, 1].max()), (-1.0, 2.0)]
    want = cyfes.fes(kept[:, 1:3], [0.35, 0.25], bias=kept[:, 3], bins=[10, 8], ranges=ranges, blocks=4,
                     device="cpu")
    grid = formats.read_grid(tmp_path / "fes.dat")
    _assert_same(grid, want)
    np.testing.assert_allclose(grid.error, want.error, rtol=1e-9, atol=1e-8)


def test_csv_with_header_weights_and_several_inputs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(200, 3)), rng.normal(size=(150, 3))
    for name, part in (("a.csv", a), ("b.csv", b)):
        np.savetxt(tmp_path / name, part, delimiter=",", header="d1,d2,w",
                   comments="", fmt="%.12g")
    code, _, err = _run(["fes", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--cv", "d1", "--weights", "w",
                         "--sigma", "0.2", "--bins", "15", "--device", "cpu", "-o", str(tmp_path / "fes.txt")],
                        capsys)
    assert code == 2 and "weights: must be >= 0" in err  # the API's own InputError, one line
    for name, part in (("a.csv", a), ("b.csv", b)):
        part[:, 2] = np.exp(part[:, 2])
        np.savetxt(tmp_path / name, part, delimiter=",", header="d1,d2,w", comments="", fmt="%.15g")
    code, _, err = _run(["fes", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--cv", "d1", "--weights", "w",
                         "--sigma", "0.2", "--bins", "15", "--device", "cpu", "-o", str(tmp_path / "fes.txt")],
                        capsys)
    assert (code, err) == (0, "")
    both = np.vstack([a, b])
    want = cyfes.fes(both[:, 0], 0.2, weights=both[:, 2], bins=15, device="cpu")
    _assert_same(formats.read_grid(tmp_path / "fes.txt"), want, atol=1e-7)


def test_npy_input_3d_cube_and_format_flag(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = np.random.default_rng(6).normal(size=(300, 3))
    np.save(tmp_path / "x.npy", data)
    code, _, err = _run(["fes", str(tmp_path / "x.npy"), "--sigma", "0.5", "--bins", "6,5,4", "--device", "cpu",
                         "-o", str(tmp_path / "fes.cube"), "-o", str(tmp_path / "fes.out"), "--format", "cube"],
                        capsys)
    assert (code, err) == (0, "")
    want = cyfes.fes(data, 0.5, bins=[6, 5, 4], device="cpu")
    for name in ("fes.cube", "fes.out"):
        grid = formats.read_grid(tmp_path / name, "cube")
        np.testing.assert_allclose(grid.values, want.values, rtol=1e-5, atol=1e-6)  # cube: 6 digits
        for got, axis in zip(grid.axes, want.axes):
            np.testing.assert_allclose(got, axis, atol=1e-5)


def test_info_json(capsys: pytest.CaptureFixture) -> None:
    code, out, _ = _run(["info", "--json"], capsys)
    report = json.loads(out)
    assert code == 0 and report["version"] == cyfes.__version__
    assert report["backends"]["cpu"]["usable"] is True
    assert report["build"]["cuda"] == cyfes.backends()["cuda"]["built"]
    code, out, _ = _run(["info"], capsys)
    assert code == 0 and out.startswith(f"cyfes {cyfes.__version__}") and "cuda:" in out


def test_demo_recovers_the_potential(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, err = _run(["demo", "-o", str(tmp_path / "demo"), "--device", "cpu"], capsys)
    assert (code, err) == (0, "")
    assert {p.name for p in (tmp_path / "demo").iterdir()} == {"demo_fes.dat", "demo_fes.png", "demo_colvar.dat"}
    grid = formats.read_grid(tmp_path / "demo" / "demo_fes.dat")
    sys.path.insert(0, str(Path(__file__).parents[2] / "scripts"))
    try:
        import make_demo_data
    finally:
        sys.path.pop(0)
    x, y = np.meshgrid(*grid.axes, indexing="ij")
    u = make_demo_data.potential(x, y)
    u -= u.min()
    low = u < 10.0  # the wells, in kJ/mol; the biased run samples them well
    rms = np.sqrt(np.mean((grid.values[low] - u[low]) ** 2))
    assert rms < 1.0 * make_demo_data.KT, rms  # ~0.26 kT measured; KDE smoothing and noise


def test_help_reads_like_a_man_page(capsys: pytest.CaptureFixture) -> None:
    code, out, _ = _run(["fes", "--help"], capsys)
    assert code == 0
    for text in ("examples:", "--periodic", "--skip", "--stride", "exit status", "PLUMED"):
        assert text in out


# ----------------------------------------------------------------------------------------------- bad input
def _bad_cases(tmp: Path) -> List[Tuple[List[str], str]]:
    good = tmp / "COLVAR"
    _colvar(good, _samples(50))
    (tmp / "empty.dat").write_text("")
    (tmp / "text.dat").write_text("#! FIELDS a b\n1 2\n3 x\n")
    (tmp / "ragged.dat").write_text("1 2 3\n4 5\n")
    base = ["--sigma", "0.3", "--device", "cpu"]
    out = ["-o", str(tmp / "out.dat")]
    return [
        (["fes", str(tmp / "missing.dat"), *base, *out], "missing.dat: cannot read"),
        (["fes", str(tmp / "sub"), *base, *out], "is a directory"),
        (["fes", str(tmp / "empty.dat"), *base, *out], "is empty"),
        (["fes", str(good), "--cv", "chi", *base, *out], "available columns: time, phi, psi, metad.bias"),
        (["fes", str(tmp / "text.dat"), "--cv", "a", *base, *out], "line 3, column 2: 'x' is not a number"),
        (["fes", str(tmp / "ragged.dat"), "--cv", "0", *base, *out], "line 2: 2 columns, expected 3"),
        (["fes", str(good), "--cv", "phi", *base, "-o", str(tmp / "nodir" / "out.dat")], "does not exist"),
        (["fes", str(good), "--cv", "phi", *base, "-o", str(tmp / "out.xyz")], "unknown output extension"),
        (["fes", str(good), "--cv", "phi", *base, "--plot", str(tmp / "out.bmp")], "unknown image extension"),
        (["fes", str(good), "--cv", "phi", "--sigma", "-1", *out], "sigma: every bandwidth must be > 0"),
        (["fes", str(good), "--cv", "phi", *base, "--bins", "0", *out], "--bins"),
        (["fes", str(good), "--cv", "phi", *base, "--periodic", "phi=1", *out], "expected two bounds"),
        (["fes", str(good), "--cv", "phi", *base, "--periodic", "phi=a,b", *out], "is not a number"),
        (["fes", str(good), "--cv", "phi", *base, "--skip", "1000", *out], "no rows left"),
        (["fes", str(good), "--cv", "phi", *base, "--blocks", "0", *out], "blocks"),
        (["fes", str(good), "--cv", "phi", *base, "--bogus", *out], "unrecognized arguments"),
        (["fes", str(good), "--cv", "phi", "--device", "cpu", *out], "required: --sigma"),
        (["nonsense"], "invalid choice"),
    ]


def test_every_bad_input_is_one_line_exit_2_and_no_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "sub").mkdir()
    for argv, message in _bad_cases(tmp_path):
        before = sorted(p.name for p in tmp_path.iterdir())
        code, out, err = _run(argv, capsys)
        assert code == 2, (argv, err)
        assert err.count("\n") == 1 and err.startswith("cyfes: error: "), (argv, err)
        assert message in err, (argv, err)
        assert "Traceback" not in err and out == ""
        assert sorted(p.name for p in tmp_path.iterdir()) == before, argv  # nothing written, no temp files


# ----------------------------------------------------------------------------------------------- processes
def _script() -> str:
    return str(Path(sys.executable).with_name("cyfes"))


def test_console_script_and_module_run_end_to_end(tmp_path: Path) -> None:
    data = _colvar(tmp_path / "COLVAR", _samples())
    args = ["fes", "COLVAR", "--cv", "phi,psi", "--bias", "metad.bias", "--sigma", "0.3", "--bins", "10",
            "--device", "cpu"]
    env = dict(os.environ, PYTHONPATH="")
    for cmd, out in (([sys.executable, "-m", "cyfes"], "a.grid"), ([_script()], "b.grid")):
        proc = subprocess.run(cmd + args + ["-o", out], cwd=tmp_path, capture_output=True, text=True, env=env,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""  # piped: no progress bar, nothing extra
        want = cyfes.fes(data[:, 1:3], 0.3, bias=data[:, 3], bins=10, device="cpu")
        _assert_same(formats.read_grid(tmp_path / out), want)


def test_error_from_a_process_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.dat").write_text("1 2\n3 four\n")
    proc = subprocess.run([_script(), "fes", "bad.dat", "--sigma", "1", "-o", "x.dat"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == ["cyfes: error: bad.dat: line 2, column 2: 'four' is not a number"]
    assert not (tmp_path / "x.dat").exists()


def test_truncated_row_before_restart_is_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = np.round(_samples(40), 10)
    with open(tmp_path / "COLVAR", "w") as out:
        out.write("#! FIELDS " + " ".join(NAMES) + "\n")
        np.savetxt(out, data[:20], fmt="%.10f")
        out.write("2.0000000000 0.1234\n")  # the run died mid-row
        out.write("#! FIELDS " + " ".join(NAMES) + "\n")
        np.savetxt(out, data[20:], fmt="%.10f")
    code, _, err = _run(["fes", str(tmp_path / "COLVAR"), "--cv", "psi", "--sigma", "0.3", "--bins", "9",
                         "--device", "cpu", "-o", str(tmp_path / "fes.npz")], capsys)
    assert code == 0
    assert err.splitlines() == [f"cyfes: warning: {tmp_path / 'COLVAR'}: line 22: dropped a row cut short: "
                                "2 columns, expected 5 (rows of different lengths)"]
    _assert_same(formats.read_grid(tmp_path / "fes.npz"), cyfes.fes(data[:, 2], 0.3, bins=9, device="cpu"))


def test_default_cvs_skip_time_and_bias_columns(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = np.round(_samples(80), 10)
    with open(tmp_path / "COLVAR", "w") as out:
        out.write("#! FIELDS time phi psi metad.bias\n")
        np.savetxt(out, data[:, :4], fmt="%.10f")
    code, out, err = _run(["fes", str(tmp_path / "COLVAR"), "--sigma", "0.4", "--bins", "6", "--device", "cpu",
                           "-o", str(tmp_path / "fes.npz")], capsys)
    assert (code, err) == (0, "") and "FES of phi, psi" in out
    _assert_same(formats.read_grid(tmp_path / "fes.npz"), cyfes.fes(data[:, 1:3], 0.4, bins=6, device="cpu"))


def test_progress_bar_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from cyfes.commands import progress
    assert progress.wanted(io.StringIO()) is False  # piped: no bar
    with progress.bar("x", enabled=False) as update:
        assert update is None
    pytest.importorskip("tqdm")
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    with progress.bar("cyfes fes", enabled=True) as update:
        update(3, 10)
    assert "cyfes fes" in stream.getvalue() and "3/10" in stream.getvalue()
