"""cyfes fes --hills --reweight ct end to end against PLUMED 2.11 itself (tests/data/plumed-reweight-fes/): PLUMED
replayed a CV trajectory (a TEST FIXTURE, make_inputs.py), deposited well-tempered hills with CALC_RCT, and wrote
metad.bias, metad.rct, metad.rbias and REWEIGHT_METAD's log-weight per step, and its own reweighted HISTOGRAM as
a free energy grid (CONVERT_TO_FES, DUMPGRID). cyfes gets only the CVs and the HILLS file."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cyfes.commands.main import main
from cyfes.io import formats
from cyfes.workflows import metad_reweight

DATA = Path(__file__).parents[1] / "data" / "plumed-reweight-fes"
KT = 2.494339  # TEMP=300, PLUMED's kB in kJ/mol
PRINTED = 5e-7  # COLVAR's %11.6f: half a unit of the last digit


@pytest.fixture(scope="module")
def plumed() -> np.ndarray:
    return np.loadtxt(DATA / "COLVAR")  # time phi psi metad.bias metad.rbias metad.rct rw


@pytest.fixture(scope="module")
def ours(plumed: np.ndarray) -> metad_reweight.MetadBias:
    timed = metad_reweight.read_timed_hills([str(DATA / "HILLS")], None)
    assert timed.gamma == 8.0 and len(timed.hills) == 999
    grid = metad_reweight.rct_grid(timed.hills, None, None, ["150", "150"])  # METAD's GRID_BIN
    return metad_reweight.compute(plumed[:, 1:3], plumed[:, 0], timed, KT, "ct", grid)


def test_ct_equals_plumeds_rct_to_the_printed_digit(plumed: np.ndarray, ours: metad_reweight.MetadBias) -> None:
    # PLUMED prints rct after the hill of that step is added: row j's c(t) (hills before t_j) is row j-1's rct.
    # Measured: 2.1e-6 kJ/mol at most, c(t) reaching 37 kJ/mol (the print's 5e-7 and summation order)
    assert np.abs(ours.c[1:] - plumed[:-1, 5]).max() <= 10 * PRINTED
    assert plumed[:, 5].max() > 30.0  # c(t) grew to tens of kJ/mol: the comparison is not of zeros


def test_bias_at_samples_equals_plumeds_to_its_grid_interpolation(plumed: np.ndarray,
                                                                  ours: metad_reweight.MetadBias) -> None:
    # PLUMED takes V(s) from its 150x150 grid by splines; cyfes sums the hills at s. Measured: 5.8e-4 kJ/mol at
    # most, over biases up to 42 kJ/mol; REWEIGHT_METAD's log-weight is rbias / kT.
    assert np.abs(ours.v - plumed[:, 3]).max() < 1.5e-3
    assert np.abs(ours.bias - plumed[:, 4]).max() < 1.5e-3
    np.testing.assert_allclose(plumed[:, 6], plumed[:, 4] / KT, atol=1e-5)


def test_reweighted_surface_equals_plumeds_reweight_metad_histogram(tmp_path: Path) -> None:
    out = tmp_path / "ct.dat"
    assert main(["fes", str(DATA / "COLVAR"), "--cv", "phi,psi", "--hills", str(DATA / "HILLS"), "--reweight", "ct",
                 "--rct-bin", "150,150", "--sigma", "0.2,0.2", "--bins", "60,60", "-o", str(out), "-q"]) == 0
    mine, theirs = formats.read_grid(str(out)), formats.read_grid(str(DATA / "fes.dat"))
    for a, b in zip(mine.axes, theirs.axes):
        np.testing.assert_allclose(a, b, atol=1e-9)
    f_mine, f_theirs = mine.values - np.nanmin(mine.values), theirs.values - np.nanmin(theirs.values)
    low = np.isfinite(f_theirs) & (f_theirs < 5 * KT)  # where the histogram holds data
    assert low.sum() > 400  # of 3600 points
    # PLUMED's HISTOGRAM cuts each Gaussian at 6.25 (half its squared distance) and cyfes does not: measured
    # 0.030 kJ/mol (0.012 kT) at most below 5 kT, the same with PLUMED's own rbias as cyfes's --bias
    diff = f_mine[low] - f_theirs[low]
    assert np.abs(diff - diff.mean()).max() < 0.06


def _basins(tmp_path: Path, surface: Path, name: str) -> list:
    out = tmp_path / name
    assert main(["basins", str(surface), "--json", str(out), "-q"]) == 0
    return json.loads(out.read_text())["basins"]


def test_basins_and_delta_f_from_hills_equal_those_of_plumeds_surface(tmp_path: Path) -> None:
    """The trajectory walks V = 5 cos(2 phi) + 3 cos(psi - 1) + 2 cos(phi + psi): two basins, at phi ~ -pi/2 and
    +pi/2. ΔF between them: 1.463 kJ/mol from the HILLS (ct) and from PLUMED's REWEIGHT_METAD surface alike;
    the potential itself gives 1.493 (its Boltzmann weight integrated on each side of phi = 0)."""
    ours = tmp_path / "ct.grid"  # a PLUMED grid: it keeps the CVs' periodicity, which the basins need
    assert main(["fes", str(DATA / "COLVAR"), "--cv", "phi,psi", "--hills", str(DATA / "HILLS"), "--reweight", "ct",
                 "--rct-bin", "150,150", "--sigma", "0.2,0.2", "--bins", "60,60", "-o", str(ours), "-q"]) == 0
    mine, theirs = _basins(tmp_path, ours, "ours.json"), _basins(tmp_path, DATA / "fes.dat", "plumed.json")
    assert len(mine) == len(theirs) == 2
    for a, b in zip(mine, theirs):
        assert (a["phi"], a["psi"]) == pytest.approx((b["phi"], b["psi"]), abs=1e-6)  # the same grid minimum
        assert a["delta_f"] == pytest.approx(b["delta_f"], abs=0.02)
        assert a["population"] == pytest.approx(b["population"], abs=2e-3)
    p = np.linspace(-np.pi, np.pi, 721)[:-1]
    phi, psi = np.meshgrid(p, p, indexing="ij")
    boltzmann = np.exp(-(5 * np.cos(2 * phi) + 3 * np.cos(psi - 1) + 2 * np.cos(phi + psi)) / KT)
    exact = -KT * np.log(boltzmann[phi >= 0].sum() / boltzmann[phi < 0].sum())
    assert mine[1]["delta_f"] == pytest.approx(exact, abs=0.5)  # 24 crossings in 10,000 frames: not converged
