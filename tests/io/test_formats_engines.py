"""Colvars trajectories, GROMACS xvg files, format detection and --input-format (cyfes.io.colvars, xvg_io,
input_formats): values against the files' numbers read independently, names, restarts, bad files."""
from __future__ import annotations

import re
from pathlib import Path
from typing import List

import numpy as np
import pytest

from cyfes._errors import InputError
from cyfes.commands import main as cli
from cyfes.io import colvars as colvars_io
from cyfes.io import formats, input_formats
from cyfes.io import xvg as xvg_io

DATA = Path(__file__).parents[1] / "data"
COLVARS = DATA / "colvars"
XVG = DATA / "xvg"
FLOAT = re.compile(r"[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?")


def numbers_of_lines(path: Path, skip: str = "#") -> List[List[float]]:
    """Every number on each data line, with Python's float(): an independent reading of the file."""
    rows = []
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith(tuple(skip)):
            rows.append([float(t) for t in FLOAT.findall(line)])
    return rows


# ----------------------------------------------------------------------------------------------- Colvars
def test_vector_variables_become_numbered_components() -> None:
    path = COLVARS / "distancevec.colvars.traj"
    table = formats.read_table(path)
    assert table.names == ["step", "one_1", "one_2", "one_3", "fa_one_1", "fa_one_2", "fa_one_3"]
    expected = np.array(numbers_of_lines(path))
    assert expected.shape == (21, 7)
    np.testing.assert_array_equal(table.data, expected)


def test_restart_counts_the_repeated_step_once_and_keeps_the_later_row(tmp_path: Path) -> None:
    first, second = COLVARS / "distancevec.colvars.traj", COLVARS / "distancevec.restart.colvars.traj"
    joined = tmp_path / "run.colvars.traj"
    joined.write_text(first.read_text() + second.read_text())
    table = formats.read_table(joined)
    a, b = np.array(numbers_of_lines(first)), np.array(numbers_of_lines(second))
    assert a[-1, 0] == b[0, 0] == 20  # the step Colvars writes on both sides of the restart
    np.testing.assert_array_equal(table.data, np.concatenate([a[:-1], b]))
    np.testing.assert_array_equal(table.column("step"), np.arange(41))
    assert table.segments == 2


def test_header_change_with_repeated_step_keeps_the_new_columns() -> None:
    path = COLVARS / "fix_modify.restart.colvars.traj"  # `# step one fa_one`, one row, then four columns
    table = formats.read_table(path)
    assert table.names == ["step", "one", "fa_one", "two", "fa_two"]
    rows = numbers_of_lines(path)
    np.testing.assert_array_equal(table.data, np.array(rows[1:]))
    assert table.dropped == {}


def test_reinitialised_atoms_keep_the_values_after_the_new_header() -> None:
    path = COLVARS / "reinitatoms.colvars.traj"  # step 0 twice, then step 40 twice with different values
    table = formats.read_table(path)
    assert table.names == ["step", "rgyr", "ft_rgyr", "fa_rgyr"]
    np.testing.assert_array_equal(table.column("step"), np.arange(81))
    rows = [r for r in numbers_of_lines(path) if len(r) == 4]
    later_40 = [r for r in rows if r[0] == 40][1]
    np.testing.assert_array_equal(table.data[40], later_40)


def test_segments_with_different_variables_keep_the_common_columns() -> None:
    text = ("# step a b\n 0 1.5 ( 1 , 2 )\n 1 2.5 ( 3 , 4 )\n"
            "# step a\n 2 3.5\n 3 4.5\n")
    table = colvars_io.parse(text, "t.traj")
    assert table.names == ["step", "a"]
    np.testing.assert_array_equal(table.data, [[0, 1.5], [1, 2.5], [2, 3.5], [3, 4.5]])
    assert table.dropped == {"b_1": "only under the headers of lines 1", "b_2": "only under the headers of lines 1"}
    with pytest.raises(InputError, match="'b_1' is only under the headers of lines 1"):
        table.column_index("b_1")


def test_last_row_cut_short_is_dropped_with_a_note(tmp_path: Path) -> None:
    src = (COLVARS / "distancevec.colvars.traj").read_text().splitlines()
    cut = tmp_path / "cut.colvars.traj"
    cut.write_text("\n".join(src[:-1] + [src[-1][:60]]) + "\n")
    table = formats.read_table(cut)
    assert len(table.data) == 20
    assert len(table.notes) == 1 and "line 22: dropped a row cut short" in table.notes[0]


@pytest.mark.parametrize("change, where", [
    (lambda lines: lines[:6] + [lines[6].replace("6.87", "abc", 1)] + lines[7:], "line 7, value 3 (one_2)"),
    (lambda lines: lines[:4] + [lines[4][:30] + "\x00" + lines[4][31:]] + lines[5:], "line 5"),
    (lambda lines: lines[:9] + [lines[9].replace(")", "", 1)] + lines[10:],
     "line 10: 2 '(' and 1 ')' where the first row has 2 vectors"),
    (lambda lines: lines[:3] + [lines[3][:50]] + lines[4:],
     "line 4: 1 '(' and 0 ')' where the first row has 2 vectors"),
    (lambda lines: lines[:3] + [re.sub(r",\s+\S+\s+,", ",", lines[3], count=1)] + lines[4:],
     "line 4: 6 values, expected 7"),
])
def test_bad_colvars_rows_name_file_and_line(tmp_path: Path, change, where) -> None:
    lines = (COLVARS / "distancevec.colvars.traj").read_text().splitlines()
    bad = tmp_path / "bad.colvars.traj"
    bad.write_text("\n".join(change(lines)) + "\n")
    with pytest.raises(InputError) as err:
        formats.read_table(bad)
    message = str(err.value)
    assert message.startswith(f"{bad}: {where}"), message
    assert "read as a Colvars trajectory, guessed because its first line is a '# step' header" in message
    assert "\n" not in message


def test_colvars_header_names_must_match_the_values() -> None:
    with pytest.raises(InputError, match=r"t: line 2: 2 values \(scalars or vectors\) but the header on line 1 "
                                         r"names 3"):
        colvars_io.parse("# step a b\n 0 ( 1 , 2 )\n", "t")


# ----------------------------------------------------------------------------------------------- xvg
def test_xvg_columns_are_named_by_axis_label_and_legends() -> None:
    path = XVG / "energy.xvg"
    table = formats.read_table(path)
    assert table.names == ["Time (ps)", "Potential", "Temperature", "Bias"]
    np.testing.assert_array_equal(table.data, np.loadtxt(path, comments=["#", "@"]))


def test_xvg_single_column_takes_the_y_label() -> None:
    path = XVG / "distance.xvg"
    table = formats.read_table(path)
    assert table.names == ["Time (ps)", "Distance (nm)"]
    np.testing.assert_array_equal(table.data, np.loadtxt(path, comments=["#", "@", "&"]))


def test_xvg_second_data_set_is_refused() -> None:
    text = (XVG / "distance.xvg").read_text() + "8.0 0.5\n"
    with pytest.raises(InputError, match=r"d.xvg: line 12: a second data set after the '&' of line 11"):
        xvg_io.parse(text, "d.xvg")


def test_xvg_text_column_names_file_line_and_legend(tmp_path: Path) -> None:
    lines = (XVG / "energy.xvg").read_text().splitlines()
    lines[17] = lines[17].replace("301.554382", "nan?")
    bad = tmp_path / "bad.xvg"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"bad.xvg: line 18, value 3 \(Temperature\): 'nan\?' is not a number "
                                         r"\(read as a GROMACS xvg file, guessed because it has '@' lines"):
        formats.read_table(bad)


# ----------------------------------------------------------------------------------------------- detection
@pytest.mark.parametrize("path, kind", [
    (COLVARS / "distancevec.colvars.traj", "colvars"), (XVG / "energy.xvg", "xvg"),
    (DATA / "plumed" / "colvar2d.dat", "plumed"), (DATA / "opes" / "metad-bis.State.data", "plumed"),
])
def test_detected_by_content(path: Path, kind: str) -> None:
    assert input_formats.detect(path.read_text())[0] == kind


def test_detection_ignores_the_name(tmp_path: Path) -> None:
    renamed = tmp_path / "samples.dat"
    renamed.write_bytes((COLVARS / "distancevec.colvars.traj").read_bytes())
    assert formats.read_table(renamed).names[1] == "one_1"
    arr = np.arange(12.0).reshape(6, 2)
    with open(tmp_path / "samples.bin", "wb") as handle:
        np.save(handle, arr)
    np.testing.assert_array_equal(formats.read_table(tmp_path / "samples.bin").data, arr)
    (tmp_path / "plain.txt").write_text("x,y\n1,2\n3,4\n")
    assert input_formats.detect((tmp_path / "plain.txt").read_text())[0] == "csv"
    (tmp_path / "plain2.txt").write_text("1 2\n3 4\n")
    assert input_formats.detect((tmp_path / "plain2.txt").read_text())[0] == "text"


def test_forced_format_reads_or_says_it_was_forced(tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("0 1.5\n1 2.5\n")
    forced = formats.read_table(plain, "xvg")
    assert forced.names == ["col0", "col1"]
    np.testing.assert_array_equal(forced.data, [[0, 1.5], [1, 2.5]])
    with pytest.raises(InputError, match=r"plain.txt: no '# step \.\.\.' header line; not a Colvars trajectory "
                                         r"\(read as a Colvars trajectory, as --input-format colvars asks\)"):
        formats.read_table(plain, "colvars")
    with pytest.raises(InputError, match=r"plain.txt: no '#! FIELDS' header line \(read as a PLUMED file"):
        formats.read_table(plain, "plumed")
    with pytest.raises(InputError, match="plain.txt: cannot read as a .npy array"):
        formats.read_table(plain, "npy")
    with pytest.raises(InputError, match="--input-format: unknown format 'gro'"):
        formats.read_table(plain, "gro")


# ----------------------------------------------------------------------------------------------- CLI
def test_cli_fes_reads_a_colvars_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "fes.dat"
    code = cli.main(["fes", str(COLVARS / "distancevec.colvars.traj"), "--cv", "one_1,one_2", "--sigma", "0.002",
                     "--bins", "6", "-o", str(out), "-q"])
    assert code == 0
    values = np.loadtxt(out)
    table = formats.read_table(COLVARS / "distancevec.colvars.traj")
    assert values[:, 0].min() == pytest.approx(table.column("one_1").min())
    assert values[:, 1].max() == pytest.approx(table.column("one_2").max())


def test_cli_input_format_forces_the_reader(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "fes.dat"
    code = cli.main(["fes", str(COLVARS / "distancevec.colvars.traj"), "--cv", "1", "--sigma", "0.01",
                     "--input-format", "xvg", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "line 2, value 2 (col1): '(' is not a number (read as a GROMACS xvg file, as --input-format xvg asks)" \
        in err


def test_cli_bad_file_is_one_line_exit_2_nothing_written(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.xvg"
    bad.write_text((XVG / "energy.xvg").read_text().replace("298.662415", "298.66\x002415"))
    out = tmp_path / "fes.dat"
    code = cli.main(["fes", str(bad), "--cv", "Potential", "--sigma", "10", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{bad}: line 22, value 3 (Temperature)" in err


# ----------------------------------------------------------------------------------------------- Colvars hills
HILLS = [COLVARS / "metadynamics-wt.hills.traj", COLVARS / "metadynamics-wt.restart.hills.traj"]


def test_colvars_hills_sum_as_gaussians_of_the_written_sigma() -> None:
    import cyfes
    result = cyfes.hills([str(p) for p in HILLS], kernel="untruncated", grid_min=["2"], grid_max=["4.5"],
                         bins=["25"], device="cpu")
    rows = np.array([r for p in HILLS for r in numbers_of_lines(p)])  # step, center, sigma, W
    assert rows.shape == (8, 4)
    x = np.linspace(2, 4.5, 26)
    bias = (rows[:, 3] * np.exp(-0.5 * ((x[:, None] - rows[:, 1]) / rows[:, 2]) ** 2)).sum(axis=1)
    assert result.names == ["cv1"]
    np.testing.assert_allclose(result.axes[0], x, rtol=1e-12)
    np.testing.assert_allclose(result.values, -bias, rtol=1e-10, atol=1e-12)


def test_cli_sum_hills_reads_colvars_hills(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "fes.dat"
    code = cli.main(["sum_hills", "--hills", str(HILLS[0]), "--min", "2", "--max", "4.5", "--bin", "5",
                     "--outfile", str(out)])
    assert code == 0, capsys.readouterr().err
    table = formats.read_table(out)
    rows = np.array(numbers_of_lines(HILLS[0]))
    x = np.linspace(2, 4.5, 6)
    s = 0.5 * ((x[:, None] - rows[:, 1]) / rows[:, 2]) ** 2
    a = 1 / (1 - np.exp(-6.25))  # PLUMED's stretched Gaussian: zero at s = 6.25, cut there
    bias = (rows[:, 3] * np.where(s < 6.25, a * np.exp(-s) - a * np.exp(-6.25), 0)).sum(axis=1)
    np.testing.assert_allclose(table.column("cv1"), x, rtol=1e-9)
    np.testing.assert_allclose(table.data[:, 1], -bias, atol=2e-9)  # PLUMED's %14.9f


def test_colvars_hills_with_a_deleted_hill_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "x.hills.traj"
    lines = HILLS[0].read_text().splitlines()
    bad.write_text("\n".join(lines + ["# DELETED this hill: " + lines[1]]) + "\n")
    with pytest.raises(InputError, match=r"x.hills.traj: line 5: Colvars removed a hill during the run"):
        colvars_io.parse_hills(bad.read_text(), str(bad))


# ----------------------------------------------------------------------------------------------- grids out
def _surface(bins, periodic=None):
    import cyfes
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, len(bins)))
    return cyfes.fes(x, sigma=0.6, bins=bins, periodic=periodic, device="cpu")


def test_colvars_grid_layout_by_hand(tmp_path: Path) -> None:
    result = _surface((2, 3), periodic=[None, 2 * np.pi])
    out = formats.write_result(result, tmp_path / "fes.pmf")
    (x0, x1), (y0, y1, y2) = result.axes
    dx, dy = x1 - x0, y1 - y0
    f = result.values
    e = "%21.14e"
    expected = ["# 2",
                f"# {e % (x0 - dx / 2)} {e % dx}          2  0",
                f"# {e % (y0 - dy / 2)} {e % dy}          3  1", ""]
    for i, x in enumerate((x0, x1)):
        expected += [f" {e % x} {e % y}  {e % f[i, j]}" for j, y in enumerate((y0, y1, y2))] + [""]
    assert out.read_text().split("\n") == expected[:-1] + [""]
    assert np.isclose(dy * 3, 2 * np.pi)  # a periodic axis covers its period: the bins tile it


def test_dx_layout_and_values(tmp_path: Path) -> None:
    result = _surface((3, 2, 4))
    out = formats.write_result(result, tmp_path / "fes.dx")
    lines = out.read_text().splitlines()
    assert lines[1] == "object 1 class gridpositions counts 3 2 4"
    origin = [float(v) for v in lines[2].split()[1:]]
    np.testing.assert_allclose(origin, [a[0] for a in result.axes], rtol=1e-10)
    deltas = np.array([[float(v) for v in line.split()[1:]] for line in lines[3:6]])
    np.testing.assert_allclose(deltas, np.diag([a[1] - a[0] for a in result.axes]), rtol=1e-10, atol=0)
    assert lines[6] == "object 2 class gridconnections counts 3 2 4"
    assert lines[7] == "object 3 class array type double rank 0 items 24 data follows"
    values = np.array([float(v) for line in lines[8:16] for v in line.split()])
    np.testing.assert_allclose(values.reshape(3, 2, 4), result.values, rtol=1e-10)  # z fastest
    assert all(len(line.split()) == 3 for line in lines[8:16])
    assert lines[16:] == ['attribute "dep" string "positions"', 'object "free energy" class field',
                          'component "positions" value 1', 'component "connections" value 2',
                          'component "data" value 3']


def test_dx_needs_three_cvs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(InputError, match="OpenDX maps here hold 3-D grids; this FES has 2 CVs"):
        formats.write_result(_surface((3, 3)), tmp_path / "fes.dx")
    code = cli.main(["fes", str(XVG / "energy.xvg"), "--cv", "Potential,Temperature", "--sigma", "10,1",
                     "-o", str(tmp_path / "f.dx")])
    assert code == 2 and "the dx format holds 3-D grids; this FES has 2 CVs" in capsys.readouterr().err
    assert not (tmp_path / "f.dx").exists()


# ----------------------------------------------------------------------------------------------- hostile input
@pytest.mark.parametrize("token", ["0x1p3", "1_000", "1.0.0", "--1"])
@pytest.mark.parametrize("kind", ["colvars", "xvg"])
def test_numbers_numpy_and_plumed_refuse_are_refused_with_file_line(tmp_path: Path, token: str, kind: str) -> None:
    head = "# step x y\n" if kind == "colvars" else '@ s0 legend "x"\n@ s1 legend "y"\n'
    path = tmp_path / f"f.{kind}"
    path.write_text(head + " 0 1.0 2.0\n 1 " + token + " 2.5\n 2 1.5 3.0\n")
    line = 3 if kind == "colvars" else 4
    with pytest.raises(InputError, match=rf"f.{kind}: line {line}, value 2 \(\w+\): '{re.escape(token)}' is not a "
                                         "number"):
        formats.read_table(path)


@pytest.mark.parametrize("kind", ["colvars", "xvg"])
def test_overflow_and_nan_read_as_the_plumed_reader_reads_them(tmp_path: Path, kind: str) -> None:
    head = "# step x\n" if kind == "colvars" else '@ s0 legend "x"\n'
    path = tmp_path / f"f.{kind}"
    path.write_text(head + " 0 1e999\n 1 nan\n 2 -1e999\n")
    plumed = formats.parse_table_text("#! FIELDS step x\n 0 1e999\n 1 nan\n 2 -1e999\n", "p")
    np.testing.assert_array_equal(formats.read_table(path).data, plumed.data)


def test_mixed_crlf_and_a_10_mb_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    crlf = tmp_path / "crlf.colvars.traj"
    crlf.write_bytes(b"# step x\r\n 0 1.0\r\n 1 1.25\n 2 1.5\r\n")
    np.testing.assert_array_equal(formats.read_table(crlf).data, [[0, 1.0], [1, 1.25], [2, 1.5]])
    long = tmp_path / "long.xvg"
    long.write_text('@ s0 legend "x"\n0 1.0\n1 ' + "7" * 10_000_000 + "x\n")
    code = cli.main(["fes", str(long), "--cv", "x", "--sigma", "0.1", "-o", str(tmp_path / "f.dat")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and len(err) < 400
    assert "long.xvg: line 3, value 2 (x): '7777" in err and "(10000001 characters)" in err


def test_real_colvars_pmf_reads_at_bin_centres() -> None:
    path = COLVARS / "multiple_walkers.rep1.pmf"
    grid = formats.read_grid(path)
    rows = np.loadtxt(path)
    np.testing.assert_array_equal(grid.axes[0], 0.0 + (np.arange(6) + 0.5) * 0.5)
    np.testing.assert_array_equal(grid.axes[0], rows[:, 0])
    np.testing.assert_array_equal(grid.values, rows[:, 1])
    assert grid.periodic == [False]


def test_colvars_grid_written_reads_back(tmp_path: Path) -> None:
    result = _surface((3, 4), periodic=[None, 2 * np.pi])
    grid = formats.read_grid(formats.write_result(result, tmp_path / "fes.pmf"))
    for ours, theirs in zip(grid.axes, result.axes):
        np.testing.assert_allclose(ours, theirs, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(grid.values, result.values, rtol=1e-13)
    assert grid.periodic == [False, True]
