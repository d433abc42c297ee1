"""CyFES 4.5 command lines, checked against the CyFES 4.5 math written out here in plain numpy."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest

from cyfes import compat
from cyfes.cli import main

#: The gas constant in kcal/(mol K): 8.314462618 J/(mol K) / 4184 J/kcal.
R_KCAL = 8.314462618 / 4184.0
KT = R_KCAL * 300.0  # CyFES 4.5: kcal/mol at 300 K
BOHR_PER_ANGSTROM = 1.0 / 0.529177210903


def _reference(samples: np.ndarray, bias: np.ndarray, axes: List[np.ndarray], sigma: float) -> np.ndarray:
    """F(x) = -kT ln sum_j exp(V_j/kT) exp(-|x - s_j|^2 / (2 sigma^2)) on the grid, x slowest."""
    mesh = np.meshgrid(*axes, indexing="ij")
    points = np.stack([m.ravel() for m in mesh], axis=1)
    d2 = ((points[:, None, :] - samples[None, :, :]) ** 2).sum(axis=2)
    log_terms = bias[None, :] / KT - d2 / (2 * sigma ** 2)
    top = log_terms.max(axis=1, keepdims=True)
    log_sum = top[:, 0] + np.log(np.exp(log_terms - top).sum(axis=1))
    return -KT * log_sum


def _data(tmp: Path, n: int = 300) -> np.ndarray:
    rng = np.random.default_rng(45)
    data = np.column_stack([rng.normal(0, 1.0, (n, 3)), rng.uniform(0, 3, n), rng.uniform(-1, 0, n)])
    np.savetxt(tmp / "data.txt", data, fmt="%.12g", header="x y z bias rbias")
    return data


def _read_cube(path: Path) -> Tuple[np.ndarray, List[int], np.ndarray, np.ndarray]:
    lines = path.read_text().splitlines()
    head = lines[2].split()
    natoms, origin = int(head[0]), np.array([float(t) for t in head[1:4]])
    counts = [int(lines[3 + d].split()[0]) for d in range(3)]
    steps = np.array([float(lines[3 + d].split()[1 + d]) for d in range(3)])
    values = np.array(" ".join(lines[6 + natoms:]).split(), dtype=float)
    return values, counts, origin, steps


def _run(argv: List[str], capsys: pytest.CaptureFixture) -> Tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_cube_and_dat_with_unequal_point_counts(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = _data(tmp_path)
    code, _, err = _run(["-i", str(tmp_path / "data.txt"), "-g", "4,5,6", "-cmin", "-2,-2.5,-3", "-cmax",
                         "2,2.5,3", "-sigma", "0.4", "-o", str(tmp_path / "fes.cub"),
                         "-odat", str(tmp_path / "fes.dat")], capsys)
    assert (code, err) == (0, "")
    axes = [np.linspace(-2, 2, 5), np.linspace(-2.5, 2.5, 6), np.linspace(-3, 3, 7)]  # g+1 points per axis
    want = _reference(data[:, :3], data[:, 3] + data[:, 4], axes, 0.4)
    values, counts, origin, steps = _read_cube(tmp_path / "fes.cub")
    assert counts == [5, 6, 7]
    np.testing.assert_allclose(origin, np.array([-2, -2.5, -3]) * BOHR_PER_ANGSTROM, atol=1e-6)
    np.testing.assert_allclose(steps, np.array([1.0, 1.0, 1.0]) * BOHR_PER_ANGSTROM, atol=1e-6)
    np.testing.assert_allclose(values, want, rtol=1e-5, atol=1e-5)
    dat = np.loadtxt(tmp_path / "fes.dat")
    mesh = np.meshgrid(*axes, indexing="ij")  # x slowest, in Angstrom
    np.testing.assert_allclose(dat[:, :3], np.stack([m.ravel() for m in mesh], axis=1), atol=1e-9)
    np.testing.assert_allclose(dat[:, 3], want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("flags, use_bias, use_rbias, rows", [
    ([], True, True, slice(None)),
    (["-no_bias", "true"], False, True, slice(None)),
    (["-no_rbias"], True, False, slice(None)),
    (["-no_bias", "1", "-no_rbias", "true", "-s", "20", "-e", "250"], False, False, slice(20, 250)),
])
def test_bias_switches_and_row_window(tmp_path: Path, capsys: pytest.CaptureFixture, flags: List[str],
                                      use_bias: bool, use_rbias: bool, rows: slice) -> None:
    data = _data(tmp_path)
    code, _, err = _run(["-i", str(tmp_path / "data.txt"), "-ic", "1,2", "-g", "7", "-sigma", "0.3",
                         "-odat", str(tmp_path / "f.dat"), *flags], capsys)
    assert (code, err) == (0, "")
    part = data[rows]
    samples = part[:, 1:3]
    bias = part[:, 3] * use_bias + part[:, 4] * use_rbias
    axes = [np.linspace(samples[:, d].min(), samples[:, d].max(), 8) for d in range(2)]  # default: data range
    np.testing.assert_allclose(np.loadtxt(tmp_path / "f.dat")[:, 2], _reference(samples, bias, axes, 0.3),
                               rtol=1e-9, atol=1e-9)


def test_bias_columns_by_index_and_grid_spacing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = _data(tmp_path)
    code, _, err = _run(["-i", str(tmp_path / "data.txt"), "-ic", "0", "-ib", "4", "-ir", "3", "-cmin", "-1",
                         "-cmax", "1", "-intg", "0.25", "-sigma", "0.2", "-odat", str(tmp_path / "f.dat")], capsys)
    assert (code, err) == (0, "")
    axis = -1 + 0.25 * np.arange(9)
    dat = np.loadtxt(tmp_path / "f.dat")
    np.testing.assert_allclose(dat[:, 0], axis, atol=1e-12)
    np.testing.assert_allclose(dat[:, 1], _reference(data[:, :1], data[:, 3] + data[:, 4], [axis], 0.2),
                               rtol=1e-9, atol=1e-9)


def test_float32_is_close_to_float64(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = _data(tmp_path)
    base = ["-i", str(tmp_path / "data.txt"), "-g", "5,5,5", "-sigma", "0.5"]
    assert _run(base + ["-odat", str(tmp_path / "a.dat")], capsys)[0] == 0
    assert _run(base + ["-f32", "true", "-odat", str(tmp_path / "b.dat")], capsys)[0] == 0
    a, b = np.loadtxt(tmp_path / "a.dat")[:, 3], np.loadtxt(tmp_path / "b.dat")[:, 3]
    np.testing.assert_allclose(b, a, atol=1e-3 * np.abs(a).max())


def test_ignored_flags_warn(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _data(tmp_path)
    code, out, err = _run(["-i", str(tmp_path / "data.txt"), "-device", "1", "-sink", "true", "-a", "3",
                           "-odat", str(tmp_path / "f.dat")], capsys)
    assert code == 0
    lines = err.splitlines()
    assert len(lines) == 3 and all(line.startswith("cyfes: warning: -") for line in lines)
    assert "-device" in err and "-sink" in err and "-a" in err
    assert (tmp_path / "f.dat").exists() and "f.dat" in out


@pytest.mark.parametrize("argv, legacy", [
    (["-i", "x"], True), (["-g", "3", "-i", "x"], True), (["-i=x"], True), (["fes", "x"], False),
    (["--help"], False), (["-h"], False), (["info"], False), ([], False),
])
def test_legacy_detection(argv: List[str], legacy: bool) -> None:
    assert compat.is_legacy(argv) is legacy


@pytest.mark.parametrize("extra, message", [
    ([], "give an output"),
    (["-odat", "{tmp}/f.dat", "-ib", "9"], "bias (-ib; -no_bias true to run without) column 9 does not exist"),
    (["-odat", "{tmp}/f.dat", "-g", "a"], "-g: expected comma-separated integers"),
    (["-odat", "{tmp}/f.dat", "-sigma", "0"], "-sigma: must be > 0"),
    (["-odat", "{tmp}/f.dat", "-cmin", "1,2"], "-cmin: expected 1 or 3 values"),
    (["-o", "{tmp}/f.cub", "-ic", "0,1"], "a cube file needs 3 CVs"),
    (["-o", "{tmp}/none/f.cub"], "does not exist"),
    (["-odat", "{tmp}/f.dat", "-zz", "1"], "unrecognized arguments"),
])
def test_bad_legacy_command_lines(tmp_path: Path, capsys: pytest.CaptureFixture, extra: List[str],
                                  message: str) -> None:
    _data(tmp_path)
    argv = ["-i", str(tmp_path / "data.txt")] + [e.format(tmp=tmp_path) for e in extra]
    code, out, err = _run(argv, capsys)
    assert code == 2 and err.startswith("cyfes: error: ") and err.count("\n") == 1, err
    assert message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.txt"]


def test_python_m_cyfes_legacy_process(tmp_path: Path) -> None:
    data = _data(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "cyfes", "-i", "data.txt", "-g", "3,3,3", "-o", "fes.cub"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    values, counts, _, _ = _read_cube(tmp_path / "fes.cub")
    axes = [np.linspace(data[:, d].min(), data[:, d].max(), 4) for d in range(3)]
    assert counts == [4, 4, 4]
    np.testing.assert_allclose(values, _reference(data[:, :3], data[:, 3] + data[:, 4], axes, 0.3), rtol=1e-5,
                               atol=1e-5)
