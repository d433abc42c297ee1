"""CyFES 4.5 command lines: checked against the 4.5 math written out here in plain numpy, and against reference
files written by CyFES 4.5's own command line code (tests/data/cyfes45/make_reference.py)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest

from cyfes import fes as cyfes_fes
from cyfes.commands import cyfes45 as legacy_cli
from cyfes.commands.main import main
from cyfes.workflows import cyfes45 as compat

DATA = Path(__file__).parents[1] / "data" / "cyfes45"
KT = 0.596128107  # CyFES 4.5's kT, kcal/mol
SQRT2PI3 = 15.74961
A_TO_BOHR = 1.889716164632
BOHR_TO_A = 0.5291772083
LOG2E_F32 = np.float32(1.44269502162933349609375)


# ----------------------------------------------------------------------------------------------- 4.5 math
def _exp45(t: np.ndarray) -> np.ndarray:
    """exp(t) with CyFES 4.5's float32 device exp's zeros (trunc(float32(t) * log2e) <= -150) and infinities."""
    t = np.asarray(t, dtype=np.float64)
    t32 = t.astype(np.float32)
    k = np.trunc(t32 * LOG2E_F32)
    with np.errstate(over="ignore"):
        out = np.exp(t)
    out[(k <= -150) | (t32 < -105)] = 0.0
    out[(k >= 128) | (t32 > 105)] = np.inf
    return out


def _fes45(points: np.ndarray, cv: np.ndarray, bias: np.ndarray, sigma: float) -> np.ndarray:
    """CyFES 4.5's FastPathFES as a float64 direct sum: -kT ln(sum_j h_j exp(-|x - s_j|^2 / 2 sigma^2) / N) - min."""
    height = _exp45(bias / KT) / (SQRT2PI3 * sigma ** 3)
    d2 = (((points[:, None, :] - cv[None, :, :]) / sigma) ** 2).sum(axis=2)
    with np.errstate(divide="ignore"):
        res = -KT * np.log((height[None, :] * _exp45(-0.5 * d2)).sum(axis=1) / len(cv))
    return res - res.min()


def _bias45(points: np.ndarray, cv: np.ndarray, sigma: float) -> np.ndarray:
    """CyFES 4.5's FastBias: kT sum_j prod_d exp(-(x_d - s_jd)^2 / 2 sigma^2)."""
    e = _exp45(-0.5 * ((points[:, None, :] - cv[None, :, :]) / sigma) ** 2)
    return KT * e.prod(axis=2).sum(axis=1)


def _axes45(cv: np.ndarray, g: List[int], edge: float = 0.0, cmin=None, cmax=None, intg=False) -> List[np.ndarray]:
    lo = cv.min(axis=0) - edge if cmin is None else np.array(cmin, dtype=np.float32) - edge
    hi = cv.max(axis=0) + edge if cmax is None else np.array(cmax, dtype=np.float32) + edge
    if intg:
        lo, hi = np.floor(lo), np.ceil(hi)
    return [np.linspace(lo[d], hi[d], g[d] + 1) for d in range(3)]


def _points(axes: List[np.ndarray]) -> np.ndarray:
    mesh = np.meshgrid(*axes, indexing="ij")  # x slowest, z fastest
    return np.stack([m.ravel() for m in mesh], axis=1).astype(np.float64)


def _data(tmp: Path, n: int = 200, name: str = "data.txt", sep: str = " ") -> np.ndarray:
    rng = np.random.default_rng(45)
    data = np.column_stack([rng.normal(0, 1.0, (n, 3)), rng.uniform(0, 3, n), rng.uniform(-1, 0, n)])
    with open(tmp / name, "w") as fh:
        for row in data:
            fh.write(sep.join(f"{v:.9f}" for v in row) + "\n")
    return np.array([[float(f"{v:.9f}") for v in row] for row in data])


# ----------------------------------------------------------------------------------------------- reading files
def _read_cube(path: Path) -> Tuple[np.ndarray, List[int], np.ndarray, np.ndarray]:
    lines = path.read_text().splitlines()
    head = lines[2].split()
    natoms, origin = int(head[0]), np.array([float(t) for t in head[1:4]])
    counts = [int(lines[3 + d].split()[0]) for d in range(3)]
    steps = np.array([float(lines[3 + d].split()[1 + d]) for d in range(3)])
    values = np.array(" ".join(lines[6 + natoms:]).split(), dtype=float)
    return values, counts, origin, steps


def _dat_values(path: Path) -> np.ndarray:
    return np.loadtxt(path, comments="#")


def _run(argv: List[str], capsys: pytest.CaptureFixture) -> Tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _compare_text(ours: str, ref: str, rtol: float = 0.0, atol: float = 0.0, loose_above: float = np.inf,
                  loose_atol: float = 0.0) -> int:
    """Same lines and tokens; numbers equal, or within the tolerances. Returns how many tokens differ."""
    a, b = ours.split("\n"), ref.split("\n")
    assert len(a) == len(b)
    differ = 0
    for la, lb in zip(a, b):
        ta, tb = la.split("\t"), lb.split("\t")
        assert len(ta) == len(tb), (la, lb)
        for x, y in zip(ta, tb):
            if x == y:
                continue
            differ += 1
            fx, fy = float(x), float(y)
            tol = loose_atol if abs(fy) >= loose_above else atol + rtol * abs(fy)
            assert abs(fx - fy) <= tol, (la, lb)
    return differ


# ----------------------------------------------------------------------------------------------- reference files
def _run_case(name: str, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    sys.path.insert(0, str(DATA))
    try:
        import make_reference  # noqa: F401  (the command lines of the reference files)
    finally:
        sys.path.remove(str(DATA))
    for f in ("xyz_bias.txt", "xyz_bias.csv"):
        (tmp_path / f).write_bytes((DATA / f).read_bytes())
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(make_reference.CASES[name].split(), capsys)
    assert code == 0, err


def test_reference_gx_ne_gy_csv_rbias_s_cmin_cmax_e_intg_a_b_byte_identical(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """case2: csv, -ic 2,0,1, -no_rbias false (rbias replaces the bias), -s 45, float32 -cmin/-cmax, -e, -intg,
    -a 2 -b -1, -g 3,5,4 (gx != gy: the reference has the correct order, see make_reference.py)."""
    _run_case("case2", tmp_path, capsys, monkeypatch)
    for f in ("case2.cub", "case2.dat"):
        assert (tmp_path / f).read_bytes() == (DATA / f).read_bytes(), f


def test_reference_sink_outputs_byte_identical(tmp_path: Path, capsys: pytest.CaptureFixture,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    _run_case("case4", tmp_path, capsys, monkeypatch)
    for f in ("case4_V.dat", "case4_F.dat"):
        assert (tmp_path / f).read_bytes() == (DATA / f).read_bytes(), f


def test_reference_default_range_edge_void_points(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """case1: the data range plus -e 1.5, sigma 0.3: corners farther than 14.42 sigma from every sample are 450
    (4.5's float32 Gaussians are 0 there) in both. Every value below 50 kcal/mol is the same text; a few just
    short of the void differ by < 0.1 kcal/mol, because 4.5 drops each Gaussian beyond 14.42 sigma while cyfes
    sums all of them (see docs/cli.md)."""
    _run_case("case1", tmp_path, capsys, monkeypatch)
    for f in ("case1.cub", "case1.dat"):
        ours, ref = (tmp_path / f).read_text(), (DATA / f).read_text()
        differ = _compare_text(ours, ref, loose_above=50.0, loose_atol=0.1)
        assert differ <= 8, (f, differ)
    ours, ref = _read_cube(tmp_path / "case1.cub")[0], _read_cube(DATA / "case1.cub")[0]
    assert ((ours == 450) == (ref == 450)).all() and (ref == 450).sum() > 20


def test_reference_float32_no_bias_dat_only(tmp_path: Path, capsys: pytest.CaptureFixture,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """case3: -f32 true: float32 values and grid; the last of the 6 digits may differ (float32 sums)."""
    _run_case("case3", tmp_path, capsys, monkeypatch)
    _compare_text((tmp_path / "case3.dat").read_text(), (DATA / "case3.dat").read_text(), rtol=3e-6, atol=3e-6)


def _last_digit_unit(text: str) -> float:
    value = abs(float(text))
    return 0.0 if value == 0 else 10.0 ** (np.floor(np.log10(value)) - 5)


@pytest.mark.parametrize("case, files", [
    ("case1", ("case1.cub", "case1.dat")), ("case2", ("case2.cub", "case2.dat")), ("case3", ("case3.dat",)),
    ("case4", ("case4_V.dat", "case4_F.dat")),
])
def test_matches_45s_own_gpu_kernels(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch,
                                     case: str, files: Tuple[str, ...]) -> None:
    """tests/data/cyfes45/gpu: CyFES 4.5's command line with its real CUDA kernels (H200). Same text, except
    one unit of the last digit below 50 kcal/mol (two with -f32), < 0.15 kcal/mol just short of the 450 region."""
    _run_case(case, tmp_path, capsys, monkeypatch)
    for f in files:
        ours, ref = (tmp_path / f).read_text().split("\n"), (DATA / "gpu" / f).read_text().split("\n")
        assert len(ours) == len(ref)
        for la, lb in zip(ours, ref):
            for x, y in zip(la.split("\t"), lb.split("\t")):
                if x == y:
                    continue
                if abs(float(y)) >= 50:
                    assert abs(float(x) - float(y)) < 0.15, (f, la, lb)
                else:
                    assert abs(float(x) - float(y)) <= (2 if case == "case3" else 1) * _last_digit_unit(y) * 1.001, \
                        (f, la, lb)


def test_45s_own_order_is_scrambled_for_gx_ne_gy(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """gpu/order45_case2.*: what CyFES 4.5 itself writes for -g 3,5,4. cyfes's values put through 4.5's
    reordering give 4.5's file; cyfes's own file has them in the right place."""
    _run_case("case2", tmp_path, capsys, monkeypatch)
    ours = _read_cube(tmp_path / "case2.cub")[0]
    theirs = _read_cube(DATA / "gpu" / "order45_case2.cub")[0]
    gx, gy, gz = 4, 6, 5
    right = ours.reshape(gx, gy, gz)
    on_meshgrid = right.swapaxes(0, 1).reshape(-1)  # 4.5's kernel order: meshgrid(x, y, z), y slowest
    as_45_writes = on_meshgrid.reshape(gx, gy, gz).swapaxes(0, 1).flatten()
    np.testing.assert_allclose(as_45_writes, theirs, rtol=5.1e-6, atol=1e-9)
    assert np.abs(ours - theirs).max() > 10
    dat45 = _dat_values(DATA / "gpu" / "order45_case2.dat")
    np.testing.assert_allclose(dat45[:, 3], theirs)  # its .dat has the cube's (scrambled) values on x-slowest rows


def test_reference_cube_header_and_line_breaking_are_4_5s() -> None:
    text = (DATA / "case2.cub").read_text()
    lines = text.split("\n")
    assert lines[0] == "Generated by CyFES" and lines[1] == "Total\t120\tgrids"
    assert lines[3].split("\t")[0] == "4" and lines[4].split("\t")[0] == "6" and lines[5].split("\t")[0] == "5"
    assert lines[6].startswith("1\t1.000000\t")
    assert all(line.endswith("\t") for line in lines[7:-1])


def test_45_grid_order_is_wrong_only_when_gx_differs_from_gy() -> None:
    """What 4.5 does: values computed on meshgrid(x, y, z) (y slowest), then reshape((gx, gy, gz)).swapaxes(0, 1)."""
    for counts, right in (((4, 4, 3), True), ((4, 6, 5), False)):
        axes = [np.arange(n) + 10.0 * d for d, n in enumerate(counts)]
        f = lambda p: p[:, 0] * 1e4 + p[:, 1] * 1e2 + p[:, 2]  # noqa: E731
        xy = np.stack([m.reshape(-1) for m in np.meshgrid(*axes)], axis=1)
        written45 = f(xy).reshape(counts).swapaxes(0, 1).flatten()
        assert np.array_equal(written45, f(_points(axes))) is right


# ----------------------------------------------------------------------------------------------- 4.5 math
@pytest.mark.parametrize("flags, use, rows", [
    ([], "bias", None),
    (["-no_bias", "true"], None, None),
    (["-no_rbias", "false"], "rbias", None),
    (["-no_bias", "true", "-no_rbias", "false", "-s", "150"], "rbias", 150),
    (["-no_bias", "TRUE", "-s", "-20"], None, -20),
])
def test_values_match_45_math(tmp_path: Path, capsys: pytest.CaptureFixture, flags: List[str], use: str,
                              rows: int) -> None:
    data = _data(tmp_path)
    code, _, err = _run(["-i", str(tmp_path / "data.txt"), "-g", "5,3,4", "-sigma", "0.4", "-e", "0.5",
                         "-o", str(tmp_path / "f.cub"), "-odat", str(tmp_path / "f.dat"), *flags], capsys)
    assert (code, err) == (0, "")
    part = data[:rows]
    cv = part[:, :3]
    bias = {"bias": part[:, 3], "rbias": part[:, 4], None: np.zeros(len(part))}[use]
    axes = _axes45(cv, [5, 3, 4], edge=0.5)
    want = np.clip(_fes45(_points(axes), cv, bias, 0.4), -450, 450)
    values, counts, origin, steps = _read_cube(tmp_path / "f.cub")
    assert counts == [6, 4, 5]
    np.testing.assert_allclose(origin, np.array([a[0] for a in axes]) * A_TO_BOHR, rtol=1e-5)
    np.testing.assert_allclose(steps, np.array([a[1] - a[0] for a in axes]) * A_TO_BOHR, rtol=1e-5)
    np.testing.assert_allclose(values, want, rtol=5.1e-6, atol=1e-9)  # %.6g
    dat = _dat_values(tmp_path / "f.dat")
    np.testing.assert_allclose(dat[:, :3], _points(axes), rtol=1e-5, atol=1e-5)  # x slowest, Angstrom
    np.testing.assert_allclose(dat[:, 3], values)


def test_cmin_cmax_intg_a_b_csv_and_column_order(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = _data(tmp_path, name="data.csv", sep=",")
    code, _, err = _run(["-i", str(tmp_path / "data.csv"), "-ic", "1,2,0", "-ib", "4", "-g", "4,4,2",
                         "-cmin=-2.2,-1.7,-2.9", "-cmax", "2.1,1.6,2.2", "-intg", "true", "-e", "0.3",
                         "-sigma", "0.7", "-a", "-1.5", "-b", "3", "-odat", str(tmp_path / "f.dat")], capsys)
    assert (code, err) == (0, "")
    cv = data[:, [1, 2, 0]]
    axes = _axes45(cv, [4, 4, 2], edge=0.3, cmin=[-2.2, -1.7, -2.9], cmax=[2.1, 1.6, 2.2], intg=True)
    assert [a[0] for a in axes] == [-3, -2, -4] and [a[-1] for a in axes] == [3, 2, 3]
    want = np.clip(-1.5 * _fes45(_points(axes), cv, data[:, 4], 0.7) + 3, -450, 450)
    np.testing.assert_allclose(_dat_values(tmp_path / "f.dat")[:, 3], want, rtol=5.1e-6, atol=1e-9)


def test_void_points_are_450_and_their_neighbours_close(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = _data(tmp_path)
    code, _, err = _run(["-i", str(tmp_path / "data.txt"), "-g", "8,8,8", "-e", "3", "-sigma", "0.25",
                         "-no_bias", "true", "-a", "1", "-b", "0", "-odat", str(tmp_path / "f.dat")], capsys)
    assert (code, err) == (0, "")
    axes = _axes45(data[:, :3], [8, 8, 8], edge=3.0)
    want = np.clip(_fes45(_points(axes), data[:, :3], np.zeros(len(data)), 0.25), -450, 450)
    got = _dat_values(tmp_path / "f.dat")[:, 3]
    assert ((got == 450) == (want == 450)).all() and 50 < (want == 450).sum() < len(want)
    low = want < 50
    np.testing.assert_allclose(got[low], want[low], rtol=5.1e-6, atol=1e-9)
    np.testing.assert_allclose(got, want, atol=0.1)


def test_float32_close_to_45_math(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = _data(tmp_path)
    code, _, err = _run(["-i", str(tmp_path / "data.txt"), "-f32", "true", "-g", "4,4,4", "-sigma", "0.5",
                         "-odat", str(tmp_path / "f.dat")], capsys)
    assert (code, err) == (0, "")
    cv = data[:, :3].astype(np.float32)
    axes = _axes45(cv, [4, 4, 4])
    want = _fes45(_points(axes), cv.astype(np.float64), data[:, 3].astype(np.float32).astype(np.float64), 0.5)
    np.testing.assert_allclose(_dat_values(tmp_path / "f.dat")[:, 3], want, rtol=1e-5, atol=1e-5)


def test_sink_bias_and_free_energy(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = _data(tmp_path)
    code, _, err = _run(["-i", str(tmp_path / "data.txt"), "-g", "3,4,5", "-sigma", "0.6",
                         "-oV", str(tmp_path / "v.dat"), "-oF", str(tmp_path / "f.dat")], capsys)
    assert (code, err) == (0, "")
    v = _bias45(_points(_axes45(data[:, :3], [3, 4, 5])), data[:, :3], 0.6)
    np.testing.assert_allclose(_dat_values(tmp_path / "v.dat")[:, 3], v, rtol=5.1e-6)
    np.testing.assert_allclose(_dat_values(tmp_path / "f.dat")[:, 3], v.max() - v, rtol=5.1e-6, atol=1e-9)


def test_bias_overflowing_45s_float32_weights_warns(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = _data(tmp_path)
    data[:, 3] += 60.0  # > 52.89 kcal/mol: 4.5's exp(V/kT) is inf in float32, it writes NaN
    np.savetxt(tmp_path / "big.txt", data, fmt="%.9f")
    code, _, err = _run(["-i", str(tmp_path / "big.txt"), "-g", "3,3,3", "-odat", str(tmp_path / "f.dat")], capsys)
    assert code == 0 and err.count("\n") == 1 and "52.89" in err
    dat = _dat_values(tmp_path / "f.dat")[:, 3]
    ref = _fes45(_points(_axes45(data[:, :3], [3, 3, 3])), data[:, :3], data[:, 3] - 60.0, 1.0)
    np.testing.assert_allclose(dat, ref, rtol=5.1e-6, atol=1e-9)  # a constant bias shift changes nothing


def test_underflowing_weights_are_dropped_as_45_drops_them(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A sample with V/kT <= -103.97 (V = -70 kcal/mol) has weight 0 in 4.5: far from the others it leaves 450."""
    data = _data(tmp_path, n=60)
    data = np.vstack([data, [12.0, 12.0, 12.0, -70.0, 0.0]])
    np.savetxt(tmp_path / "w.txt", data, fmt="%.9f")
    code, _, err = _run(["-i", str(tmp_path / "w.txt"), "-g", "4,4,4", "-sigma", "0.5",
                         "-odat", str(tmp_path / "f.dat")], capsys)
    assert (code, err) == (0, "")
    got = _dat_values(tmp_path / "f.dat")[:, 3]
    want = np.clip(_fes45(_points(_axes45(data[:, :3], [4, 4, 4])), data[:, :3], data[:, 3], 0.5), -450, 450)
    assert got[-1] == 450 == want[-1]
    np.testing.assert_allclose(got, want, rtol=5.1e-6, atol=1e-9)
    np.savetxt(tmp_path / "w.txt", data[-1:].repeat(2, axis=0), fmt="%.9f")
    code, _, err = _run(["-i", str(tmp_path / "w.txt"), "-odat", str(tmp_path / "f.dat")], capsys)
    assert code == 2 and "underflows" in err


# ----------------------------------------------------------------------------------------------- flags, errors
def test_ignored_flags_warn(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _data(tmp_path)
    code, out, err = _run(["-i", str(tmp_path / "data.txt"), "-device", "1", "-sink", "true",
                           "-odat", str(tmp_path / "f.dat")], capsys)
    assert code == 0
    lines = err.splitlines()
    assert len(lines) == 2 and all(line.startswith("cyfes: warning: -") for line in lines)
    assert "-device" in err and "-sink" in err
    assert (tmp_path / "f.dat").exists() and "f.dat" in out


def test_switch_values_read_as_45_reads_them(tmp_path: Path) -> None:
    argv = ["-i", str(tmp_path / "d.txt"), "-odat", str(tmp_path / "f.dat")]
    opts = legacy_cli.parse_legacy(argv + ["-no_bias", "1", "-f32", "0"])
    assert opts.no_bias is False and opts.float32 is True  # 4.5: == 'true' / != 'false'
    assert len(opts.warnings) == 2
    opts = legacy_cli.parse_legacy(argv)
    assert (opts.no_bias, opts.no_rbias, opts.float32, opts.intg, opts.sigma, opts.edge, opts.intervals,
            opts.a, opts.b, opts.rows) == (False, True, False, False, 1.0, 0.0, [10, 10, 10], 1.0, 0.0, None)


@pytest.mark.parametrize("argv, legacy", [
    (["-i", "x"], True), (["-g", "3", "-i", "x"], True), (["-i=x"], True), (["-oV", "v"], True),
    (["fes", "x"], False), (["--help"], False), (["-h"], False), (["info"], False), ([], False),
])
def test_legacy_detection(argv: List[str], legacy: bool) -> None:
    assert legacy_cli.is_legacy(argv) is legacy


@pytest.mark.parametrize("extra, message", [
    ([], "give an output"),
    (["-odat", "{tmp}/f.dat", "-ib", "9"], "no bias (-ib; -no_bias true to run without) column 9"),
    (["-odat", "{tmp}/f.dat", "-g", "a"], "-g: expected an integer"),
    (["-odat", "{tmp}/f.dat", "-g", "0,2,2"], "-g: grid intervals must be >= 1"),
    (["-odat", "{tmp}/f.dat", "-sigma", "0"], "-sigma: must be > 0"),
    (["-odat", "{tmp}/f.dat", "-cmin", "1,2"], "-cmin: expected 3 comma-separated values"),
    (["-odat", "{tmp}/f.dat", "-ic", "0,1"], "exactly 3 CV columns"),
    (["-o", "{tmp}/none/f.cub"], "does not exist"),
    (["-odat", "{tmp}/f.dat", "-zz", "1"], "unrecognized arguments"),
    (["-oV", "{tmp}/v.dat", "-oF", "{tmp}/f.dat", "-s", "0"], "no data lines"),
    (["-oF", "{tmp}/f.dat"], "-oF: needs -oV"),
    (["-odat", "{tmp}/f.dat", "-cmin", "100,100,100", "-cmax", "101,101,101"], "every grid point is farther"),
])
def test_bad_legacy_command_lines(tmp_path: Path, capsys: pytest.CaptureFixture, extra: List[str],
                                  message: str) -> None:
    _data(tmp_path)
    argv = ["-i", str(tmp_path / "data.txt")] + [e.format(tmp=tmp_path) for e in extra]
    code, out, err = _run(argv, capsys)
    assert code == 2 and err.startswith("cyfes: error: ") and err.count("\n") == 1, err
    assert message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.txt"]


@pytest.mark.parametrize("name, text, message", [
    ("d.dat", "1 2 3 4 5\n", "reads .txt, .xyz"),
    ("d.txt", "x y z bias rbias\n1 2 3 4 5\n", "line 1, column 0: 'x' is not a number"),
    ("d.txt", "1 2 3 4 5\n1 2 3\n", "line 2 has 3 fields: no bias"),
    ("d.csv", "1 2 3 4 5\n", "line 1, column 0: '1 2 3 4 5' is not a number"),
])
def test_bad_inputs(tmp_path: Path, capsys: pytest.CaptureFixture, name: str, text: str, message: str) -> None:
    (tmp_path / name).write_text(text)
    code, _, err = _run(["-i", str(tmp_path / name), "-odat", str(tmp_path / "f.dat")], capsys)
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "f.dat").exists()


def test_xyz_input_and_default_grid(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = _data(tmp_path, name="d.xyz")
    code, _, err = _run(["-i", str(tmp_path / "d.xyz"), "-o", str(tmp_path / "f.cub")], capsys)
    assert (code, err) == (0, "")
    values, counts, _, _ = _read_cube(tmp_path / "f.cub")
    assert counts == [11, 11, 11]
    want = _fes45(_points(_axes45(data[:, :3], [10, 10, 10])), data[:, :3], data[:, 3], 1.0)
    np.testing.assert_allclose(values, want, rtol=5.1e-6, atol=1e-9)


def test_python_m_cyfes_legacy_process(tmp_path: Path) -> None:
    data = _data(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "cyfes", "-i", "data.txt", "-g", "3,3,3", "-o", "fes.cub"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    values, counts, _, _ = _read_cube(tmp_path / "fes.cub")
    assert counts == [4, 4, 4]
    want = _fes45(_points(_axes45(data[:, :3], [3, 3, 3])), data[:, :3], data[:, 3], 1.0)
    np.testing.assert_allclose(values, want, rtol=5.1e-6, atol=1e-9)


@pytest.mark.parametrize("tolerance", [0.0, 1e-6])
def test_log_kernel_sum_is_the_weighted_kernel_sum_fes_normalises(tolerance: float) -> None:
    """The one log kernel sum (fes() and CyFES 4.5's mode share it) against a float64 numpy sum, and fes() as its
    normalisation: F = -kT (L - log sum_j w_j + log N(0; sigma)), F not shifted."""
    from cyfes.engine.fes import log_kernel_sum

    rng = np.random.default_rng(7)
    samples, bias = rng.normal(size=(400, 2)), rng.uniform(-3.0, 3.0, 400)
    points = rng.uniform(-3.0, 3.0, size=(60, 2))
    sigma, kT = 0.4, KT
    temperature = kT / compat.BOLTZMANN[compat.LEGACY_UNITS]
    got = log_kernel_sum(samples, sigma, grid=points, bias=bias, units=compat.LEGACY_UNITS, temperature=temperature,
                         tolerance=tolerance)
    d2 = (((points[:, None, :] - samples[None, :, :]) / sigma) ** 2).sum(-1)
    terms = bias[None, :] / kT - 0.5 * d2
    top = terms.max(axis=1)
    ref = top + np.log(np.exp(terms - top[:, None]).sum(axis=1))
    assert np.max(np.abs(got - ref)) <= (1e-12 * np.abs(ref).max() if tolerance == 0 else tolerance)
    res = cyfes_fes(samples, sigma, grid=points, bias=bias, units=compat.LEGACY_UNITS, temperature=temperature,
                    tolerance=tolerance, shift=False)
    log_total = np.log(np.exp(bias / kT - (bias / kT).max()).sum()) + (bias / kT).max()
    np.testing.assert_allclose(res.values, -kT * (got - log_total - 2 * np.log(sigma * np.sqrt(2 * np.pi))),
                               rtol=0, atol=1e-12)
