"""cyfes sum_hills / cyfes.hills against files written by PLUMED's own sum_hills (tests/data/plumed/, the
commands in commands.txt) and against float64 numpy sums of stretched Gaussians written here from the formula."""
from __future__ import annotations

import math
import re
import shlex
import shutil
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import pytest

import cyfes
from cyfes.commands import main as cli
from cyfes.io import hills as hills_io
from cyfes.workflows import sum_hills as hillsum

DATA = Path(__file__).parents[1] / "data" / "plumed"
A = 1.0 / (1.0 - math.exp(-6.25))
B = -math.exp(-6.25) * A


def stretched_sum(centers, sigmas, heights, points, period=None, cut=True):
    """V and dV/dx at `points` (M, D) of hills with per-hill diagonal sigmas: h (A e^-s + B) for s < 6.25."""
    centers, sigmas, points = (np.asarray(a, float) for a in (centers, sigmas, points))
    v = np.zeros(len(points))
    der = np.zeros(points.shape)
    for c, s, h in zip(centers, sigmas, heights):
        dx = points - c
        if period is not None:
            p = np.asarray(period, float)
            dx = np.where(p > 0, dx - p * np.round(dx / np.where(p > 0, p, 1)), dx)
        u = dx / s
        ss = 0.5 * (u ** 2).sum(axis=1)
        inside = ss < 6.25 if cut else np.ones(len(ss), bool)
        e = np.exp(-ss)
        v += np.where(inside, h * (A * e + B) if cut else h * e, 0.0)
        der += np.where(inside[:, None], -(h * (A if cut else 1.0)) * e[:, None] * u / s, 0.0)
    return v, der


def read_plumed_grid(path: Path):
    """(fields, {SET key: value}, numeric rows, raw text) of a sum_hills output."""
    text = path.read_text()
    fields = text.splitlines()[0].split()[2:]
    sets = {line.split()[2]: line.split(None, 3)[3] for line in text.splitlines() if line.startswith("#! SET")}
    rows = np.array([[float(t) for t in line.split()] for line in text.splitlines()
                     if line.strip() and not line.startswith("#")])
    return fields, sets, rows, text


def run_cli(args: List[str], cwd: Path) -> int:
    import os
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return cli.main(args)
    finally:
        os.chdir(old)


# ----------------------------------------------------------------------------------------------- numpy references
def test_1d_grid_values_and_derivatives_match_a_direct_numpy_sum(tmp_path):
    shutil.copy(DATA / "h1d.hills", tmp_path)
    assert run_cli(["sum_hills", "--hills", "h1d.hills", "--bin", "60", "--min", "-1", "--max", "2.5",
                    "--outfile", "out.dat", "-q"], tmp_path) == 0
    fields, sets, rows, _ = read_plumed_grid(tmp_path / "out.dat")
    assert fields == ["d", "file.free", "der_d"]
    assert sets["nbins_d"].strip() == "61" and sets["min_d"] == "-1" and sets["periodic_d"] == "false"
    np.testing.assert_allclose(rows[:, 0], -1 + np.arange(61) * (3.5 / 60), atol=1e-9)
    table = hills_io.read_hills_table(str(DATA / "h1d.hills"))
    v, der = stretched_sum(table.column("d")[:, None], table.column("sigma_d")[:, None], table.column("height"),
                           rows[:, :1])
    np.testing.assert_allclose(rows[:, 1], -v, atol=2e-9)
    np.testing.assert_allclose(rows[:, 2], -der[:, 0], atol=2e-9)


def test_verbose_says_where_the_time_went_and_writes_the_same_file(tmp_path, capsys):
    shutil.copy(DATA / "h1d.hills", tmp_path)
    flags = ["sum_hills", "--hills", "h1d.hills", "--bin", "60", "--min", "-1", "--max", "2.5", "-q"]
    assert run_cli(flags + ["--outfile", "quiet.dat"], tmp_path) == 0
    capsys.readouterr()
    assert run_cli(flags + ["--outfile", "told.dat", "-v"], tmp_path) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    m = re.fullmatch(r"cyfes sum_hills: time: read (\S+) s \((\S+) MB, \d+ MB/s\), sum (\S+) s, write (\S+) s",
                     err[0])
    assert m, err[0]
    assert float(m.group(2)) == round((DATA / "h1d.hills").stat().st_size / 1e6, 1)
    assert all(float(m.group(k)) >= 0 for k in (1, 3, 4))
    assert (tmp_path / "told.dat").read_bytes() == (tmp_path / "quiet.dat").read_bytes()


def test_2d_periodic_per_hill_sigmas_match_numpy(tmp_path):
    h = hills_io.read_hills([str(DATA / "h2d_periodic.hills")])
    res = cyfes.hills(str(DATA / "h2d_periodic.hills"), bins=[36, 30])
    assert res.values.shape == (36, 30) and res.names == ["phi", "psi"]
    assert res.periodic == pytest.approx([2 * math.pi, 2 * math.pi])
    mesh = np.meshgrid(*res.axes, indexing="ij")
    pts = np.stack([m.ravel() for m in mesh], axis=1)
    v, _ = stretched_sum(h.centers, h.widths, h.heights, pts, period=[2 * math.pi] * 2)
    np.testing.assert_allclose(res.values.ravel(), -v, atol=1e-10)
    np.testing.assert_allclose(res.axes[0], -math.pi + np.arange(36) * (2 * math.pi / 36))


def test_arrays_in_untruncated_kernel_and_threads_agree(tmp_path):
    rng = np.random.default_rng(5)
    c = rng.normal(size=(300, 2))
    s = rng.uniform(0.2, 0.4, size=(300, 2))
    h = rng.uniform(0.5, 1.5, 300)
    one = cyfes.hills(c, sigma=s, height=h, grid_min=[-3, -3], grid_max=[3, 3], bins=[40, 50], threads=1)
    two = cyfes.hills(c, sigma=s, height=h, grid_min=[-3, -3], grid_max=[3, 3], bins=[40, 50], threads=2)
    np.testing.assert_array_equal(one.values, two.values)  # each point sums its hills in file order
    full = cyfes.hills(c, sigma=s, height=h, grid_min=[-3, -3], grid_max=[3, 3], bins=[40, 50],
                       kernel="untruncated")
    pts = np.stack([m.ravel() for m in np.meshgrid(*full.axes, indexing="ij")], axis=1)
    v, _ = stretched_sum(c, s, h, pts, cut=False)
    np.testing.assert_allclose(full.values.ravel(), -v, atol=1e-10)
    v_cut, _ = stretched_sum(c, s, h, pts)
    np.testing.assert_allclose(one.values.ravel(), -v_cut, atol=1e-10)


def test_idw_is_minus_kt_log_sum_of_boltzmann_factors():
    full = cyfes.hills(str(DATA / "h2d_mixed.hills"), grid_min=["-pi", "0"], grid_max=["pi", "2.6"], bins=[30, 25])
    proj = cyfes.hills(str(DATA / "h2d_mixed.hills"), grid_min=["-pi", "0"], grid_max=["pi", "2.6"], bins=[30, 25],
                       idw=["dist"], kt=2.5)
    expect = -2.5 * np.log(np.exp(-full.values / 2.5).sum(axis=0))
    np.testing.assert_allclose(proj.values, expect, atol=1e-10)
    assert proj.names == ["dist"]


def test_stride_gives_running_and_nohistory_pieces():
    h = hills_io.read_hills([str(DATA / "h1d.hills")])
    kw = dict(grid_min=[-1], grid_max=[2.5], bins=[40])
    runs = cyfes.hills(str(DATA / "h1d.hills"), stride=40, **kw)
    alone = cyfes.hills(str(DATA / "h1d.hills"), stride=40, nohistory=True, **kw)
    assert len(runs) == 150 // 40 + 1 == len(alone)
    pts = runs[0].axes[0][:, None]
    for k, (r, a) in enumerate(zip(runs, alone)):
        lo, hi = 40 * k, min(40 * (k + 1), 150)
        v_all, _ = stretched_sum(h.centers[:hi], h.widths[:hi], h.heights[:hi], pts)
        v_one, _ = stretched_sum(h.centers[lo:hi], h.widths[lo:hi], h.heights[lo:hi], pts)
        np.testing.assert_allclose(r.values, -v_all, atol=1e-10)
        np.testing.assert_allclose(a.values, -v_one, atol=1e-10)


def test_negbias_scales_by_biasf():
    h = hills_io.read_hills([str(DATA / "h1d.hills")])
    f = cyfes.hills(str(DATA / "h1d.hills"), grid_min=[-1], grid_max=[2.5], bins=[30])
    nb = cyfes.hills(str(DATA / "h1d.hills"), grid_min=[-1], grid_max=[2.5], bins=[30], negbias=True)
    np.testing.assert_allclose(nb.values, f.values * (h.biasf[0] - 1) / h.biasf[0], atol=1e-12)


def test_multivariate_hills_match_a_direct_sum_with_the_metric():
    """Hills wide along a diagonal: the metric form, within PLUMED's box (ceil of the support along the
    principal axis projected per CV)."""
    h = hills_io.read_hills([str(DATA / "h2d_multi.hills")])
    res = cyfes.hills(str(DATA / "h2d_multi.hills"), grid_min=[-2, -2], grid_max=[2, 2], bins=[40, 45])
    pts = np.stack([m.ravel() for m in np.meshgrid(*res.axes, indexing="ij")], axis=1)
    dx = np.array([4 / 40, 4 / 45])
    ext = hillsum.support(h)
    v = np.zeros(len(pts))
    for c, m, ht, e in zip(h.centers, h.metrics, h.heights, ext):
        d = pts - c
        ic = np.floor((c - np.array([-2.0, -2.0])) / dx)
        ip = np.round((pts - np.array([-2.0, -2.0])) / dx)
        in_box = (np.abs(ip - ic) <= np.ceil(e / dx)).all(axis=1)
        s = 0.5 * np.einsum("mi,ij,mj->m", d, m, d)
        v += np.where(in_box & (s < 6.25), ht * (A * np.exp(-s) + B), 0.0)
    np.testing.assert_allclose(res.values.ravel(), -v, atol=1e-10)


# ----------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("args, message", [
    (["--hills", "nosuch.hills"], "nosuch.hills: no such file"),
    (["--hills", "nosigma.hills"], "no 'sigma_d' column"),
    (["--hills", "noheight.hills"], "no 'height' column"),
    (["--hills", "h1d.hills,other.hills"], "differ"),
    (["--hills", "h2d_periodic.hills", "--idw", "chi", "--kt", "2.5"], "--idw chi: not one of the CVs"),
    (["--hills", "h2d_periodic.hills", "--idw", "phi"], "--kt"),
    (["--hills", "h1d.hills", "--stride", "1000"], "--stride 1000: larger than the number"),
    (["--hills", "nowt.hills", "--negbias"], "biasf > 1"),
    (["--hills", "h1d.hills", "--min", "0", "--max", "1"], "--bin or --spacing"),
    (["--hills", "h2d_periodic.hills", "--min", "-4,-3", "--max", "3,3", "--bin", "10,10"], "below the periodic"),
    (["--histo", "colvar1d.dat", "--kt", "2.5"], "--sigma"),
    (["--hills", "h1d.hills", "--fmt", "%d%d"], "--fmt"),
    ([], "--hills"),
])
def test_bad_input_is_one_line_exit_2_and_no_files(tmp_path, capsys, args, message):
    shutil.copy(DATA / "h1d.hills", tmp_path)
    shutil.copy(DATA / "h2d_periodic.hills", tmp_path)
    shutil.copy(DATA / "colvar1d.dat", tmp_path)
    text = (DATA / "h1d.hills").read_text()
    (tmp_path / "nosigma.hills").write_text(text.replace("sigma_d", "width_d"))
    (tmp_path / "noheight.hills").write_text(text.replace(" height", " h"))
    (tmp_path / "other.hills").write_text(text.replace(" d sigma_d", " e sigma_e"))
    (tmp_path / "nowt.hills").write_text(text.replace(" biasf", "").replace(" 10.0000000000\n", "\n"))
    before = set(tmp_path.iterdir())
    assert run_cli(["sum_hills"] + args, tmp_path) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cyfes: error:") and message in err, err
    assert set(tmp_path.iterdir()) == before


def test_untruncated_gaussians_match_numpy_over_the_whole_grid():
    rng = np.random.default_rng(9)
    c = rng.uniform(-math.pi, math.pi, size=(400, 2))
    h = rng.uniform(0.2, 1.0, 400)
    res = cyfes.hills(c, sigma=0.3, height=h, periodic=[("-pi", "pi")] * 2, bins=[30, 24], kernel="untruncated",
                      device="cpu")
    pts = np.stack([m.ravel() for m in np.meshgrid(*res.axes, indexing="ij")], axis=1)
    v, _ = stretched_sum(c, np.full((400, 2), 0.3), h, pts, period=[2 * math.pi] * 2, cut=False)
    np.testing.assert_allclose(res.values.ravel(), -v, atol=1e-10)


def test_sum_hills_files_read_back_with_cyfes_formats(tmp_path):
    shutil.copy(DATA / "h2d_mixed.hills", tmp_path)
    assert run_cli(["sum_hills", "--hills", "h2d_mixed.hills", "--bin", "30,25", "--min", "-pi,0", "--max", "pi,2.6",
                    "--outfile", "f.fes", "-q"], tmp_path) == 0
    from cyfes.io import formats
    grid = formats.read_grid(tmp_path / "f.fes")
    res = cyfes.hills(str(DATA / "h2d_mixed.hills"), grid_min=["-pi", "0"], grid_max=["pi", "2.6"], bins=[30, 25])
    assert grid.names == ["phi", "dist"] and grid.periodic == [True, False]
    assert grid.values.shape == (30, 26)
    np.testing.assert_allclose(grid.values, res.values, atol=1e-9)
    for a, b in zip(grid.axes, res.axes):
        np.testing.assert_allclose(a, b, atol=1e-9)


def test_histo_is_minus_kt_log_of_a_kernel_histogram(tmp_path):
    shutil.copy(DATA / "colvar1d.dat", tmp_path)
    assert run_cli(["sum_hills", "--histo", "colvar1d.dat", "--sigma", "0.1", "--kt", "2.5", "--outhisto", "h.dat",
                    "-q"], tmp_path) == 0
    fields, sets, rows, _ = read_plumed_grid(tmp_path / "h.dat")
    x = hills_io.read_hills_table(str(DATA / "colvar1d.dat")).column("d")
    assert fields == ["d", "file.free", "der_d"]
    assert sets["min_d"] == "%g" % (x.min() - 0.1) and sets["max_d"] == "%g" % (x.max() + 0.1)  # points -/+ sigma
    nbins = math.ceil((x.max() + 0.1 - (x.min() - 0.1)) / 0.01)  # a tenth of sigma per bin
    assert int(sets["nbins_d"]) == nbins + 1
    lo, hi = float(sets["min_d"]), float(sets["max_d"])
    pts = lo + np.arange(nbins + 1)[:, None] * ((hi - lo) / nbins)  # the grid itself, not its printed digits
    np.testing.assert_allclose(rows[:, 0], pts[:, 0], atol=1e-9)
    v, der = stretched_sum(x[:, None], np.full((len(x), 1), 0.1), np.ones(len(x)), pts)
    with np.errstate(divide="ignore"):
        np.testing.assert_allclose(rows[:, 1], -2.5 * np.log(v), atol=2e-9, rtol=1e-9)
        np.testing.assert_allclose(rows[:, 2], -2.5 / der[:, 0], rtol=1e-6)


# ----------------------------------------------------------------------------------------------- PLUMED's files
def plumed_commands() -> List[List[str]]:
    """The arguments of each `plumed sum_hills` line of commands.txt."""
    lines = (DATA / "commands.txt").read_text().splitlines()
    return [shlex.split(line)[2:] for line in lines if line.startswith("plumed sum_hills ")]


def _option(args: List[str], name: str) -> Optional[str]:
    return args[args.index(name) + 1] if name in args else None


def reference_names(args: List[str]) -> List[str]:
    """The files PLUMED wrote for these arguments (with --stride: every <prefix>N.dat, N = 0, 1, ...)."""
    base = _option(args, "--outhisto" if "--histo" in args else "--outfile")
    if "--stride" not in args:
        return [base]
    found = {p.name for p in DATA.glob(base + "*.dat")}
    names = [f"{base}{k}.dat" for k in range(len(found))]
    assert set(names) == found, f"{base}: reference files are not numbered 0..N-1"
    return names


def printed_decimals(args: List[str]) -> int:
    return int(re.search(r"\.(\d+)", _option(args, "--fmt") or hills_io.PLUMED_FMT).group(1))


def compare_with_plumed(mine: str, theirs: str, decimals: int) -> Tuple[float, float]:
    """Same header lines and layout (blank lines included) and the same numbers to the printed digits; returns
    (largest difference in units of the last printed digit, fraction of lines identical to the byte)."""
    m_lines, t_lines = mine.splitlines(), theirs.splitlines()
    assert len(m_lines) == len(t_lines)
    assert [ln for ln in m_lines if ln.startswith("#")] == [ln for ln in t_lines if ln.startswith("#")]
    assert [ln.startswith("#") or ln == "" for ln in m_lines] == [ln.startswith("#") or ln == "" for ln in t_lines]
    body = [(a, b) for a, b in zip(m_lines, t_lines) if b and not b.startswith("#")]
    a = np.array([[float(t) for t in x.split()] for x, _ in body])
    b = np.array([[float(t) for t in y.split()] for _, y in body])
    assert a.shape == b.shape
    assert [len(x) for x, _ in body] == [len(y) for _, y in body]  # same column widths
    ulp = float(np.abs(a - b).max()) * 10.0 ** decimals
    return ulp, sum(x == y for x, y in body) / len(body)


@pytest.mark.parametrize("args", plumed_commands(), ids=lambda a: _option(a, "--outhisto" if "--histo" in a
                                                                          else "--outfile"))
def test_same_files_as_plumed_sum_hills(tmp_path, args):
    for f in DATA.iterdir():
        if not f.name.startswith("ref_"):
            shutil.copy(f, tmp_path)
    assert run_cli(["sum_hills"] + args + ["-q"], tmp_path) == 0
    names = reference_names(args)
    assert sorted(p.name for p in tmp_path.glob("ref_*")) == sorted(names)
    for name in names:
        ulp, same = compare_with_plumed((tmp_path / name).read_text(), (DATA / name).read_text(),
                                        printed_decimals(args))
        # byte for byte, but for a value within rounding of a printed digit's boundary: its last digit may
        # differ by one (the Gaussian is a product of per-CV factors here, one exp in PLUMED)
        assert ulp <= 1.0 + 1e-6, (name, ulp)
        assert same >= 0.999, (name, same)


# ----------------------------------------------------------------------------------------------- GPU
def _grid_points(res) -> np.ndarray:
    return np.stack([m.ravel() for m in np.meshgrid(*res.axes, indexing="ij")], axis=1)


GPU_CASES = {
    "1d": ("h1d.hills", dict(grid_min=[-1], grid_max=[2.5], bins=[300])),
    "2d-periodic": ("h2d_periodic.hills", dict(bins=[90, 80])),
    "2d-mixed": ("h2d_mixed.hills", dict(grid_min=["-pi", "0"], grid_max=["pi", "2.6"], bins=[64, 50])),
    "3d": ("h3d.hills", dict(grid_min=[-1.5] * 3, grid_max=[1.5] * 3, bins=[20, 18, 16])),
}


@pytest.mark.gpu
@pytest.mark.parametrize("case", sorted(GPU_CASES))
def test_gpu_hills_match_numpy_and_the_cpu_kernel(case):
    name, kw = GPU_CASES[case]
    h = hills_io.read_hills([str(DATA / name)])
    gpu = cyfes.hills(str(DATA / name), device="gpu", **kw)
    cpu = cyfes.hills(str(DATA / name), device="cpu", **kw)
    assert gpu.backend.startswith("cuda") and cpu.backend.startswith("cpu")
    period = [0.0 if d is None else 2 * math.pi for d in h.domains]
    v, _ = stretched_sum(h.centers, h.widths, h.heights, _grid_points(gpu), period=period)
    scale = np.abs(v).max()
    np.testing.assert_allclose(gpu.values.ravel(), -v, atol=1e-12 * scale)
    np.testing.assert_allclose(gpu.values, cpu.values, atol=1e-12 * scale)


@pytest.mark.gpu
def test_gpu_multivariate_and_untruncated_hills_match_the_cpu_kernel():
    kw = dict(grid_min=[-2, -2], grid_max=[2, 2], bins=[70, 60])
    gpu = cyfes.hills(str(DATA / "h2d_multi.hills"), device="gpu", **kw)
    cpu = cyfes.hills(str(DATA / "h2d_multi.hills"), device="cpu", **kw)
    np.testing.assert_allclose(gpu.values, cpu.values, atol=1e-12 * np.abs(cpu.values).max())
    rng = np.random.default_rng(11)
    c = rng.uniform(-math.pi, math.pi, size=(3000, 2))
    s = rng.uniform(0.2, 0.5, size=(3000, 2))
    h = rng.uniform(0.1, 1.0, 3000)
    kw = dict(sigma=s, height=h, periodic=[("-pi", "pi"), None], bins=[40, 33], kernel="untruncated")
    gpu = cyfes.hills(c, device="gpu", **kw)
    v, _ = stretched_sum(c, s, h, _grid_points(gpu), period=[2 * math.pi, 0.0], cut=False)
    np.testing.assert_allclose(gpu.values.ravel(), -v, atol=1e-12 * np.abs(v).max())


@pytest.mark.gpu
def test_gpu_boxes_from_one_point_to_more_than_the_axis_agree_with_numpy():
    # widths from a 3-point box to one wider than the periodic axis, through boxes whose gap is narrower than a
    # tile (they leave a tile and come back into it); on the other CV centres beyond the grid's ends
    rng = np.random.default_rng(5)
    n = 600
    c = np.column_stack([rng.uniform(-math.pi, math.pi, n), rng.uniform(-2.0, 2.5, n)])
    s = np.column_stack([rng.uniform(0.01, 0.85, n), rng.uniform(0.01, 0.6, n)])
    h = rng.uniform(0.1, 1.0, n)
    kw = dict(height=h, periodic=[("-pi", "pi"), None], grid_min=["-pi", -1.0], grid_max=["pi", 1.5],
              bins=[100, 70])
    box = 2 * np.ceil(math.sqrt(12.5) * s[:, 0] / (2 * math.pi / 100)) + 1
    assert box.min() <= 3 and np.sum((box < 100) & (box > 100 - 32)) > 50 and box.max() < 100
    gpu = cyfes.hills(c, sigma=s, device="gpu", **kw)
    v, _ = stretched_sum(c, s, h, _grid_points(gpu), period=[2 * math.pi, 0.0])
    scale = np.abs(v).max()
    np.testing.assert_allclose(gpu.values.ravel(), -v, atol=1e-12 * scale)
    # boxes wider than the axis visit points twice, as PLUMED's do: against the CPU kernel
    s[::3, 0] *= 1.8
    gpu = cyfes.hills(c, sigma=s, device="gpu", **kw)
    cpu = cyfes.hills(c, sigma=s, device="cpu", **kw)
    np.testing.assert_allclose(gpu.values, cpu.values, atol=1e-12 * np.abs(cpu.values).max())


@pytest.mark.gpu
def test_gpu_boxes_wider_than_a_periodic_axis_and_chunked_transfers_agree_with_the_cpu(monkeypatch):
    # 4 points per period with sigma 0.5: a box of 5 offsets visits a point twice, as PLUMED's does
    kw = dict(bins=[4, 3])
    cpu = cyfes.hills(str(DATA / "h2d_periodic.hills"), device="cpu", **kw)
    gpu = cyfes.hills(str(DATA / "h2d_periodic.hills"), device="gpu", **kw)
    np.testing.assert_allclose(gpu.values, cpu.values, atol=1e-12 * np.abs(cpu.values).max())
    whole = cyfes.hills(str(DATA / "h2d_periodic.hills"), device="gpu", bins=[50, 40])
    monkeypatch.setenv("CUFES_HILLS_CHUNK", "37")
    chunked = cyfes.hills(str(DATA / "h2d_periodic.hills"), device="gpu", bins=[50, 40])
    np.testing.assert_allclose(chunked.values, whole.values, atol=1e-12 * np.abs(whole.values).max())


@pytest.mark.gpu
@pytest.mark.parametrize("args", plumed_commands(), ids=lambda a: _option(a, "--outhisto" if "--histo" in a
                                                                          else "--outfile"))
def test_gpu_writes_plumeds_files(tmp_path, args):
    for f in DATA.iterdir():
        if not f.name.startswith("ref_"):
            shutil.copy(f, tmp_path)
    assert run_cli(["sum_hills"] + args + ["-q", "--device", "gpu"], tmp_path) == 0
    for name in reference_names(args):
        ulp, same = compare_with_plumed((tmp_path / name).read_text(), (DATA / name).read_text(),
                                        printed_decimals(args))
        assert ulp <= 1.0 + 1e-6, (name, ulp)
        assert same >= 0.99, (name, same)


def _box_rows(centers, extent, gmin, dx, nbin, period):
    """Box half-widths in grid steps, written from the rule: ceil(extent/dx); on a non-periodic axis a box
    reaching past both ends is cut to the farther end, and one that misses the axis is empty (0)."""
    out = np.empty(centers.shape)
    for j, (c, e) in enumerate(zip(centers, extent)):
        for d in range(len(nbin)):
            steps = math.ceil(e[d] / dx[d])
            if period[d] <= 0:
                cell, last = math.floor((c[d] - gmin[d]) / dx[d]), nbin[d] - 1
                steps = min(steps, max(abs(cell), abs(last - cell)) + 1)
                steps = 0 if cell + steps < 0 or cell - steps > last else steps
            out[j, d] = steps
    return out


def _grid_of(centers, sigma, bins, periodic):
    hills = hillsum._hills_from_arrays(centers, sigma, np.ones(len(centers)), None, None, periodic)
    extent = hillsum.support(hills)
    grid = hillsum.plan_grid(hills.names, hills.domains, hills.centers, extent, ["-1", "-2"], ["1", "2"],
                             [str(b) for b in bins], None)
    return hills, extent, grid


def test_box_steps_follow_the_rule_on_and_off_a_flat_axis(rng):
    centers = np.c_[rng.uniform(-6, 6, 400), rng.uniform(-9, 9, 400)]  # many off the grid of CV 2
    sigma = rng.uniform(0.01, 3.0, size=(400, 2))
    hills, extent, grid = _grid_of(centers, sigma, (40, 30), [("-1", "1"), None])
    want = _box_rows(hills.centers, extent, grid.gmin, grid.dx, grid.nbin, grid.period)
    np.testing.assert_array_equal(hillsum._box_steps(extent, grid, hills.centers), want)


@pytest.mark.parametrize("where", [0, 137, 999])
def test_the_first_hill_too_wide_or_too_far_is_named(rng, where):
    centers = np.c_[rng.uniform(-1, 1, 1000), rng.uniform(-2, 2, 1000)]
    sigma = np.full((1000, 2), 0.1)
    wide = sigma.copy()
    wide[where:, 1] = 200.0  # a box of ~350 periods of 10 bins (on a flat axis the box is cut to the grid)
    hills, extent, grid = _grid_of(centers, wide, (10, 10), [None, ("-2", "2")])
    with pytest.raises(cyfes.InputError, match=rf"^hill {where + 1}: its kernel along cv2 "):
        hillsum.check_boxes(hills, grid, extent, "stretched")
    hillsum.check_boxes(hills, grid, extent, "untruncated")  # the whole axis: no box to bound
    far = centers.copy()
    far[where:, 0] = 1e16  # 5e16 grid steps away: past 2^52, where cell indices stop being integers
    hills, extent, grid = _grid_of(far, sigma, (10, 10), [None, None])
    with pytest.raises(cyfes.InputError, match=rf"^hill {where + 1}: its centre .* grid steps from the grid"):
        hillsum.check_boxes(hills, grid, extent, "untruncated")
    hills, extent, grid = _grid_of(centers, sigma, (10, 10), [None, None])
    hillsum.check_boxes(hills, grid, extent, "stretched")
