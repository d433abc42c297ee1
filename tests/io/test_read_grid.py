"""cyfes.read_grid: a grid file read back as an FESResult, checked against the numbers written by hand."""
from __future__ import annotations

import numpy as np
import pytest

import cyfes

KB_KJ = 0.0083144626181532


def test_hand_written_dat_grid_reads_back_with_its_values_and_kT(tmp_path):
    x = np.linspace(-1.0, 1.0, 5)
    y = np.linspace(0.0, 2.0, 4)
    f = (x[:, None] ** 2 + 0.5 * y[None, :]).round(6)
    lines = ["# x y free_energy"]
    for i, xi in enumerate(x):  # first CV slowest, a blank line between blocks
        lines += [f"{xi:.6f} {yj:.6f} {f[i, j]:.6f}" for j, yj in enumerate(y)] + [""]
    path = tmp_path / "f.dat"
    path.write_text("\n".join(lines) + "\n")
    res = cyfes.read_grid(path, temperature=250.0)
    assert isinstance(res, cyfes.FESResult)
    np.testing.assert_allclose(res.values, f, atol=1e-12)
    np.testing.assert_allclose(res.axes[0], x)
    np.testing.assert_allclose(res.axes[1], y, atol=1e-6)  # written with 6 decimals
    assert res.kT == pytest.approx(KB_KJ * 250.0, rel=1e-12)
    assert res.names == ["x", "y"]
    assert res.minima(min_depth=0)[0].coordinates == pytest.approx((0.0, 0.0))


def test_npz_keeps_temperature_and_units(tmp_path):
    rng = np.random.default_rng(3)
    res = cyfes.fes(rng.normal(size=(400, 1)), 0.3, bins=30, temperature=310.0, units="kcal/mol", device="cpu")
    back = cyfes.read_grid(res.save(tmp_path / "f.npz"))
    assert back.temperature == 310.0 and back.units == "kcal/mol"
    np.testing.assert_allclose(back.values, res.values)
    assert "read_grid" in cyfes.__all__


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(cyfes.InputError, match="nope.dat"):
        cyfes.read_grid(tmp_path / "nope.dat")


def test_dat_records_periods_units_and_temperature_and_reads_them_back(tmp_path):
    rng = np.random.default_rng(5)
    phi = (rng.normal(3.0, 0.3, 3000) + np.pi) % (2 * np.pi) - np.pi  # a basin through the periodic boundary
    res = cyfes.fes(np.c_[phi, rng.normal(size=3000)], 0.2, bins=[36, 20], ranges=[(-np.pi, np.pi - np.pi / 18),
                    (-2, 2)], periodic=[2 * np.pi, None], temperature=350.0, units="kcal/mol", device="cpu")
    back = cyfes.read_grid(res.save(tmp_path / "f.dat"))
    assert back.periodic == [2 * np.pi, None]  # exactly: written with repr
    assert back.units == "kcal/mol" and back.temperature == 350.0 and back.kT == pytest.approx(res.kT, rel=1e-12)
    np.testing.assert_allclose(back.values, res.values, rtol=1e-9, atol=1e-9)  # %.10g text
    assert [b.population for b in back.basins()] == pytest.approx([b.population for b in res.basins()], rel=1e-6)


@pytest.mark.parametrize("line, message", [
    ("# periodic y=6.28", "bad 'periodic' header entry 'y=6.28'"),
    ("# periodic x=-1", "bad 'periodic' header entry 'x=-1'"),
])
def test_bad_periodic_header_names_the_entry(tmp_path, line, message):
    path = tmp_path / "f.dat"
    path.write_text(f"{line}\n# x free_energy\n0 1\n1 0\n")
    with pytest.raises(cyfes.InputError, match=message):
        cyfes.read_grid(path)


def test_a_word_in_a_dat_grid_names_its_line(tmp_path):
    path = tmp_path / "f.dat"
    path.write_text("# x free_energy\n0 1\n1 zero\n")
    with pytest.raises(cyfes.InputError, match=r"f\.dat: line 3, column 2: 'zero' is not a number"):
        cyfes.read_grid(path)
