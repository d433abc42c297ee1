"""Metadynamics reweighting from HILLS: against PLUMED's own metad.bias / metad.rct / metad.rbias columns
(regtest/basic/rt67-mpi of plumed/plumed2) and against a float64 numpy reference written here."""
from __future__ import annotations

import math
from pathlib import Path
from typing import List

import numpy as np
import pytest

import reference as ref
from cyfes._errors import InputError
from cyfes.commands.main import main
from cyfes.engine.backends import Device
from cyfes.io import formats
from cyfes.workflows import metad_reweight

DATA = Path(__file__).parents[1] / "data" / "plumed-reweight"
COLVAR, HILLS = DATA / "COLVAR.reference", DATA / "HILLS.reference"
KT = 2.494339  # TEMP=300 in plumed.dat, in kJ/mol as PLUMED's kB
GAMMA = 10.0
#: PLUMED prints %8.4f: half a unit of the last digit
PRINTED = 5e-5


def _plumed() -> np.ndarray:
    return np.loadtxt(COLVAR)  # time phi psi metad.bias metad.rbias metad.rct


def _ours(bins: str = "150,150", mode: str = "ct") -> metad_reweight.MetadBias:
    """c(t) on PLUMED's own grid of the run (GRID_BIN=150,150 over the periodic domain)."""
    rows = _plumed()
    timed = metad_reweight.read_timed_hills([str(HILLS)], None)
    grid = metad_reweight.rct_grid(timed.hills, None, None, bins.split(","))
    return metad_reweight.compute(rows[:, 1:3], rows[:, 0], timed, KT, mode, grid)


def test_bias_at_samples_equals_plumeds_metad_bias() -> None:
    rows, got = _plumed(), _ours()
    # PLUMED evaluates the bias from its 150x150 grid by spline interpolation; we sum the hills exactly at the
    # sample. Measured: at most 1.0e-3 kJ/mol apart (last row), the bias itself reaching 4.2 kJ/mol.
    assert np.abs(got.v - rows[:, 3]).max() < 1.5e-3
    assert got.v[:2].tolist() == [0.0, 0.0]  # no hill before t = 1: the hill of step t is not in its bias


def test_rct_equals_plumeds_metad_rct_on_its_grid() -> None:
    rows, got = _plumed(), _ours()
    # PLUMED prints rct after depositing the hill of that step, so the c(t) of row j (hills before t_j) is the
    # rct printed on row j-1. Same grid and formula: equal within the printed precision.
    assert np.abs(got.c[1:] - rows[:-1, 5]).max() <= PRINTED + 1e-9
    assert got.c[0] == 0.0


def test_rbias_equals_plumeds_metad_rbias() -> None:
    rows, got = _plumed(), _ours()
    assert np.abs(got.bias - rows[:, 4]).max() < 1.5e-3  # the bias term's grid interpolation, as above


def test_rct_on_the_default_grid_is_close_to_plumeds() -> None:
    # the default grid (a tenth of the narrowest hill support per bin: 89 bins here) against PLUMED's 150
    rows, got = _plumed(), metad_reweight.compute(
        _plumed()[:, 1:3], _plumed()[:, 0], metad_reweight.read_timed_hills([str(HILLS)], None), KT, "ct")
    assert np.abs(got.c[1:] - rows[:-1, 5]).max() < 1e-3


# ----------------------------------------------------------------------------------------------- float64 reference
def _stretched(s: np.ndarray) -> np.ndarray:
    cut = 6.25
    a = 1.0 / (1.0 - math.exp(-cut))
    return np.where(s < cut, a * np.exp(-s) - a * math.exp(-cut), 0.0)


def _reference_v(x: np.ndarray, centers: np.ndarray, sigma: np.ndarray, heights: np.ndarray,
                 period: float) -> np.ndarray:
    """Sum of hills at each x, one hill at a time (1-D, minimum image on `period`)."""
    total = np.zeros(len(x))
    for c, s, h in zip(centers, sigma, heights):
        d = x - c
        d -= period * np.round(d / period)
        total += h * _stretched(0.5 * (d / s) ** 2)
    return total


def _reference_c(v: np.ndarray, kt: float, gamma: float) -> float:
    """kT ln(int exp(g/(g-1) V/kT) / int exp(V/((g-1) kT))) by direct quadrature on a uniform periodic grid,
    each integrand shifted by its own maximum (the exponent reaches thousands)."""
    a, b = v * gamma / (gamma - 1) / kt, v / ((gamma - 1) * kt)
    return kt * (a.max() + math.log(np.mean(np.exp(a - a.max())))
                 - b.max() - math.log(np.mean(np.exp(b - b.max()))))


def _synthetic(scale: float = 1.0, seed: int = 3):
    rng = np.random.default_rng(seed)
    m, n = 60, 400
    hill_t = np.sort(rng.uniform(0, 100, m))
    centers = rng.uniform(-math.pi, math.pi, m)  # hills across the boundary: the minimum image matters
    sigma = rng.uniform(0.15, 0.3, m)
    heights = scale * rng.uniform(0.5, 2.0, m)
    t = np.sort(rng.uniform(0, 100, n))
    t[-1] = 100.0
    x = rng.uniform(-math.pi, math.pi, n)
    return x, t, centers, sigma, heights, hill_t


@pytest.mark.parametrize("scale", [1.0, 2000.0])
def test_ct_against_a_float64_reference(scale: float) -> None:
    """Random 1-D periodic run; scale 2000 puts the bias at thousands of kT, where exp(V/kT) overflows."""
    x, t, centers, sigma, heights, hill_t = _synthetic(scale)
    kt, gamma, period = 2.5, 8.0, 2 * math.pi
    got = metad_reweight.metad_weights(x, t, centers, sigma, heights, hill_t, kt=kt, biasfactor=gamma,
                                       periodic=[("-pi", "pi")], bins=[2000])
    deposited = heights * (gamma - 1) / gamma
    fine = -math.pi + np.arange(20000) * period / 20000
    for j in range(0, len(x), 7):
        before = hill_t < t[j]
        v = _reference_v(x[j:j + 1], centers[before], sigma[before], deposited[before], period)[0]
        assert got.v[j] == pytest.approx(v, rel=1e-12, abs=1e-12 * scale)
        c = _reference_c(_reference_v(fine, centers[before], sigma[before], deposited[before], period), kt,
                         gamma) if before.any() else 0.0
        # 2000 bins against 20000: both quadratures of a smooth periodic integrand (the kernel's kink at the cut
        # is the only error), measured 1e-9 relative
        assert got.c[j] == pytest.approx(c, rel=1e-6, abs=1e-9)
    assert np.isfinite(got.bias).all()


def test_final_against_a_float64_reference() -> None:
    x, t, centers, sigma, heights, hill_t = _synthetic()
    got = metad_reweight.metad_weights(x, t, centers, sigma, heights, hill_t, kt=2.5, biasfactor=8.0,
                                       mode="final", periodic=[("-pi", "pi")])
    want = _reference_v(x, centers, sigma, heights * 7 / 8, 2 * math.pi)
    np.testing.assert_allclose(got.v, want, rtol=1e-12, atol=1e-12)
    assert (got.c == 0).all() and np.array_equal(got.bias, got.v)


def _hills_case(rng: np.random.Generator, dim: int, multivariate: bool, n: int = 700, m: int = 90):
    """Random hills on CVs that alternate periodic / not, points across the boundaries, random counts."""
    period = np.array([2 * math.pi if d % 2 == 0 else 0.0 for d in range(dim)])
    centers = rng.uniform(-math.pi, math.pi, (m, dim))
    points = rng.uniform(-math.pi - 0.5, math.pi + 0.5, (n, dim))
    heights = rng.uniform(0.5, 2.0, m)
    counts = rng.integers(0, m + 1, n)
    widths = rng.uniform(0.2, 0.9, (m, dim))
    metrics = None
    if multivariate:
        lower = np.tril(rng.uniform(-0.2, 0.2, (m, dim, dim))) + np.eye(dim) * widths[:, :, None]
        metrics = np.linalg.inv(lower @ np.transpose(lower, (0, 2, 1)))
    domains = [("-pi", "pi") if p > 0 else None for p in period]
    hills = metad_reweight.Hills([f"cv{d}" for d in range(dim)], centers, None if multivariate else widths,
                                 metrics, heights, np.ones(m), domains)
    return hills, points, counts, period, widths, metrics


@pytest.mark.parametrize("dim,multivariate", [(1, False), (2, False), (3, False), (2, True), (3, True)])
@pytest.mark.parametrize("stretched", [True, False])
def test_compiled_kernel_with_hill_counts_against_a_float64_reference(rng, dim: int, multivariate: bool,
                                                                     stretched: bool) -> None:
    hills, points, counts, period, widths, metrics = _hills_case(rng, dim, multivariate)
    want = ref.hills_at_points(points, counts, hills.centers, hills.heights, period,
                               None if multivariate else widths, metrics, stretched)
    got = metad_reweight.bias_at_points(points, hills, hills.heights, counts, stretched)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert (got[counts == 0] == 0).all() and (want > 1).sum() > 50  # the sums are not mostly empty


def test_compiled_kernel_gives_the_same_bits_on_any_number_of_threads(rng) -> None:
    hills, points, counts, *_ = _hills_case(rng, 2, False, n=3000)
    one = metad_reweight.bias_at_points(points, hills, hills.heights, counts, True, Device("cpu", threads=1))
    many = metad_reweight.bias_at_points(points, hills, hills.heights, counts, True, Device("cpu", threads=7))
    np.testing.assert_array_equal(one, many)  # each point adds its hills alone, in hill order


@pytest.mark.gpu
@pytest.mark.parametrize("dim,multivariate", [(1, False), (2, False), (3, False), (4, False), (2, True), (3, True)])
def test_gpu_bias_at_points_equals_the_cpu_kernel(rng, dim: int, multivariate: bool) -> None:
    hills, points, counts, *_ = _hills_case(rng, dim, multivariate, n=20000, m=700)
    cpu = metad_reweight.bias_at_points(points, hills, hills.heights, counts)
    gpu = metad_reweight.bias_at_points(points, hills, hills.heights, counts, True, Device("cuda", (0,)))
    np.testing.assert_allclose(gpu, cpu, rtol=1e-12, atol=1e-12)  # the same function; FMA contraction aside


@pytest.mark.gpu
def test_gpu_bias_at_points_over_several_transfers(rng) -> None:
    """More points than one transfer holds (2^22): each chunk keeps its points' counts."""
    hills, _, _, *_ = _hills_case(rng, 2, False, m=40)
    points = rng.uniform(-math.pi, math.pi, (5_000_000, 2))
    counts = rng.integers(0, 41, len(points))
    gpu = metad_reweight.bias_at_points(points, hills, hills.heights, counts, True, Device("cuda", (0,)))
    pick = rng.choice(len(points), 3000, replace=False)
    want = ref.hills_at_points(points[pick], counts[pick], hills.centers, hills.heights, [2 * math.pi, 0.0],
                               hills.widths)
    np.testing.assert_allclose(gpu[pick], want, rtol=1e-12, atol=1e-12)


@pytest.mark.gpu
def test_gpu_ct_run_equals_the_cpu_run() -> None:
    rows = _plumed()
    timed = metad_reweight.read_timed_hills([str(HILLS)], None)
    grid = metad_reweight.rct_grid(timed.hills, None, None, ["150", "150"])
    cpu = metad_reweight.compute(rows[:, 1:3], rows[:, 0], timed, KT, "ct", grid)
    gpu = metad_reweight.compute(rows[:, 1:3], rows[:, 0], timed, KT, "ct", grid, device=Device("cuda", (0,)))
    np.testing.assert_allclose(gpu.v, cpu.v, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gpu.c, cpu.c, rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------------------------- command line
def _fes(tmp_path: Path, name: str, extra: List[str]) -> formats.Grid:
    out = tmp_path / name
    argv = ["fes", str(COLVAR), "--cv", "phi,psi", "--sigma", "0.3", "--bins", "40,40", "--kt", str(KT),
            "--quiet", "-o", str(out)] + extra
    assert main(argv) == 0
    return formats.read_grid(str(out))


def test_cli_ct_surface_equals_the_one_from_plumeds_rbias(tmp_path: Path) -> None:
    ours = _fes(tmp_path, "ct.dat", ["--hills", str(HILLS), "--reweight", "ct", "--rct-bin", "150,150"])
    plumed = _fes(tmp_path, "rbias.dat", ["--bias", "metad.rbias"])
    ok = np.isfinite(plumed.values)
    assert ok.sum() > 100 and np.array_equal(ok, np.isfinite(ours.values))
    # the per-sample biases differ by <= 1.0e-3 kJ/mol (PLUMED's grid interpolation, printed at 4 decimals),
    # so F can move by at most about twice that
    assert np.abs(ours.values[ok] - plumed.values[ok]).max() < 2e-3


def test_cli_walkers_merged_by_time_equal_one_file(tmp_path: Path) -> None:
    lines = HILLS.read_text().splitlines(keepends=True)
    head = [l for l in lines if l.startswith("#")]
    rows = [l for l in lines if not l.startswith("#")]
    a, b = tmp_path / "HILLS.0", tmp_path / "HILLS.1"
    a.write_text("".join(head + rows[1::2]))  # later hills first in the list: the merge must sort
    b.write_text("".join(head + rows[0::2]))
    one = _fes(tmp_path, "one.dat", ["--hills", str(HILLS)])
    two = _fes(tmp_path, "two.dat", ["--hills", str(a), str(b)])
    np.testing.assert_allclose(two.values, one.values, rtol=0, atol=1e-12)


def test_cli_final_uses_every_hill(tmp_path: Path) -> None:
    rows = _plumed()
    got = _fes(tmp_path, "final.dat", ["--hills", str(HILLS), "--reweight", "final"])
    timed = metad_reweight.read_timed_hills([str(HILLS)], None)
    v = metad_reweight.bias_at_points(rows[:, 1:3], timed.hills, timed.hills.heights * 0.9)
    colvar = tmp_path / "COLVAR.v"
    with open(colvar, "w") as f:
        f.write("#! FIELDS time phi psi vfinal\n#! SET min_phi -pi\n#! SET max_phi pi\n"
                "#! SET min_psi -pi\n#! SET max_psi pi\n")
        np.savetxt(f, np.column_stack([rows[:, :3], v]), fmt="%.17g")
    out = tmp_path / "ref.dat"
    assert main(["fes", str(colvar), "--cv", "phi,psi", "--bias", "vfinal", "--sigma", "0.3", "--bins", "40,40",
                 "--kt", str(KT), "--quiet", "-o", str(out)]) == 0
    ref = formats.read_grid(str(out))
    np.testing.assert_allclose(got.values, ref.values, rtol=0, atol=1e-9)


def _refuse(tmp_path: Path, capsys: pytest.CaptureFixture, argv: List[str], words: str) -> None:
    out = tmp_path / "never.dat"
    code = main(["fes"] + argv + ["--sigma", "0.3", "--kt", str(KT), "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and words in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_refuses_hills_of_other_cvs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    other = tmp_path / "HILLS.other"
    other.write_text(HILLS.read_text().replace("phi", "chi"))
    _refuse(tmp_path, capsys, [str(COLVAR), "--cv", "phi,psi", "--hills", str(other)], "do not match the chosen")


def test_refuses_other_periodicity(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    other = tmp_path / "HILLS.flat"
    other.write_text("".join(l for l in HILLS.read_text().splitlines(True) if "_psi" not in l or "FIELDS" in l))
    _refuse(tmp_path, capsys, [str(COLVAR), "--cv", "phi,psi", "--hills", str(other)], "periodicity of psi")


def test_refuses_hills_later_than_the_last_sample(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    short = tmp_path / "COLVAR.short"
    short.write_text("".join(COLVAR.read_text().splitlines(True)[:15]))
    _refuse(tmp_path, capsys, [str(short), "--cv", "phi,psi", "--hills", str(HILLS)], "later than the last sample")


def test_refuses_reweight_without_hills(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _refuse(tmp_path, capsys, [str(COLVAR), "--cv", "phi,psi", "--reweight", "ct"], "--reweight: needs --hills")


def test_refuses_a_biasfactor_other_than_the_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _refuse(tmp_path, capsys, [str(COLVAR), "--cv", "phi,psi", "--hills", str(HILLS), "--biasfactor", "6"],
            "differs from the biasf column")


def test_api_refuses_mismatched_arrays() -> None:
    with pytest.raises(InputError, match="one time per sample"):
        metad_reweight.metad_weights(np.zeros((3, 1)), np.zeros(2), [[0.0]], 0.2, [1.0], [0.0], kt=2.5,
                                     biasfactor=5.0)


# ------------------------------------------------------------------------------------------ against the grid kernel
def _grid_points(res) -> np.ndarray:
    mesh = np.meshgrid(*res.axes, indexing="ij")
    return np.column_stack([m.ravel() for m in mesh])


def test_points_equal_cyfes_hills_grid_sum_2d_flat() -> None:
    """Non-periodic 2-D diagonal hills: the point sum at the grid points of cyfes.hills (its own kernel)."""
    import cyfes
    rng = np.random.default_rng(5)
    centers, sigma, heights = rng.normal(0, 1, (40, 2)), rng.uniform(0.2, 0.5, (40, 2)), rng.uniform(0.5, 2, 40)
    res = cyfes.hills(centers, sigma=sigma, height=heights, grid_min=[-3, -3], grid_max=[3, 3], bins=[30, 24],
                      device="cpu")
    hills = metad_reweight.hillsum._hills_from_arrays(centers, sigma, heights, None, None, None)
    v = metad_reweight.bias_at_points(_grid_points(res), hills, heights)
    np.testing.assert_allclose(v, -res.values.ravel(), rtol=1e-12, atol=1e-12)


def test_points_multivariate_against_a_float64_reference(tmp_path: Path) -> None:
    """A multivariate HILLS file (lower Cholesky factors of the covariance, as PLUMED writes them), periodic in
    phi: each hill summed directly, without the grid box sum_hills puts around it."""
    rng = np.random.default_rng(6)
    n = 30
    rows = np.column_stack([np.arange(n), rng.uniform(-math.pi, math.pi, n), rng.normal(0, 1, n),
                            rng.uniform(0.2, 0.4, n), rng.uniform(-0.1, 0.1, n), rng.uniform(0.2, 0.4, n),
                            rng.uniform(0.5, 2, n), np.full(n, 5.0)])
    path = tmp_path / "HILLS.mv"
    with open(path, "w") as f:
        f.write("#! FIELDS time phi x sigma_phi_phi sigma_x_phi sigma_x_x height biasf\n"
                "#! SET multivariate true\n#! SET min_phi -pi\n#! SET max_phi pi\n")
        np.savetxt(f, rows, fmt="%.12f")
    rows = np.loadtxt(path)
    points = np.column_stack([rng.uniform(-math.pi, math.pi, 500), rng.normal(0, 1.2, 500)])
    want = np.zeros(len(points))
    for r in rows:
        lower = np.array([[r[3], 0.0], [r[4], r[5]]])
        metric = np.linalg.inv(lower @ lower.T)
        d = points - r[1:3]
        d[:, 0] -= 2 * math.pi * np.round(d[:, 0] / (2 * math.pi))
        want += r[6] * _stretched(0.5 * np.einsum("pi,ij,pj->p", d, metric, d))
    timed = metad_reweight.read_timed_hills([str(path)], None)
    v = metad_reweight.bias_at_points(points, timed.hills, timed.hills.heights)
    np.testing.assert_allclose(v, want, rtol=1e-11, atol=1e-11)


def test_cli_stride_keeps_times_aligned_with_samples(tmp_path: Path) -> None:
    """--skip/--stride drop rows (the last among them): each kept sample keeps its own time and bias."""
    rows = ["--skip", "2", "--stride", "3"]
    ours = _fes(tmp_path, "ct.dat", ["--hills", str(HILLS), "--rct-bin", "150,150"] + rows)
    plumed = _fes(tmp_path, "rbias.dat", ["--bias", "metad.rbias"] + rows)
    ok = np.isfinite(plumed.values)
    assert np.abs(ours.values[ok] - plumed.values[ok]).max() < 2e-3


def test_refuses_a_ct_grid_with_final(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _refuse(tmp_path, capsys, [str(COLVAR), "--cv", "phi,psi", "--hills", str(HILLS), "--reweight", "final",
                               "--rct-bin", "50,50"], "only with --reweight ct")


def test_plain_metadynamics_ct_against_a_float64_reference() -> None:
    """biasf -1 (PLUMED's mark of a run without well-tempering): heights as written, c = kT ln mean exp(V/kT)."""
    x, t, centers, sigma, heights, hill_t = _synthetic()
    kt, period = 2.5, 2 * math.pi
    got = metad_reweight.metad_weights(x, t, centers, sigma, heights, hill_t, kt=kt, biasfactor=-1,
                                       periodic=[("-pi", "pi")], bins=[2000])
    fine = -math.pi + np.arange(20000) * period / 20000
    j = len(x) - 1
    v = _reference_v(x[j:j + 1], centers[hill_t < t[j]], sigma[hill_t < t[j]], heights[hill_t < t[j]], period)[0]
    grid_v = _reference_v(fine, centers[hill_t < t[j]], sigma[hill_t < t[j]], heights[hill_t < t[j]], period)
    c = kt * math.log(np.mean(np.exp(grid_v / kt)))
    assert got.v[j] == pytest.approx(v, rel=1e-12) and got.c[j] == pytest.approx(c, rel=1e-6)
