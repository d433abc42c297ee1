"""cyfes.io.formats: sample readers (COLVAR, text, CSV, npy) and grid writers, each read back and checked."""
from __future__ import annotations

import math
from pathlib import Path
from typing import List

import numpy as np
import pytest

import cyfes
from cyfes._errors import InputError
from cyfes.io import formats


def _write_colvar(path: Path, parts: List[np.ndarray], fields: List[List[str]], sets: str = "") -> None:
    with open(path, "w") as out:
        for names, part in zip(fields, parts):
            out.write("#! FIELDS " + " ".join(names) + "\n" + sets)
            out.write("# a comment line\n")
            np.savetxt(out, part, fmt="%.8f")


# ----------------------------------------------------------------------------------------------- numbers
@pytest.mark.parametrize("text, value", [("-pi", -math.pi), ("2*pi", 2 * math.pi), ("pi/2", math.pi / 2),
                                         ("1e-3", 1e-3), (" 3 ", 3.0), ("-(1+1)*pi", -2 * math.pi)])
def test_parse_number_accepts_numbers_and_pi_expressions(text: str, value: float) -> None:
    assert formats.parse_number(text) == pytest.approx(value, rel=1e-15)


@pytest.mark.parametrize("text", ["abc", "__import__('os')", "pi(", "1/0", "", "2**2000.0"])
def test_parse_number_rejects_anything_else(text: str) -> None:
    with pytest.raises(InputError):
        formats.parse_number(text)


# ----------------------------------------------------------------------------------------------- readers
def test_colvar_with_restarts_sets_and_comments(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(7, 4)), rng.normal(size=(5, 4))
    names = ["time", "phi", "psi", "metad.bias"]
    _write_colvar(tmp_path / "COLVAR", [a, b], [names, names], "#! SET min_phi -pi\n#! SET max_phi pi\n")
    table = formats.read_table(tmp_path / "COLVAR")
    assert table.names == names
    assert table.segments == 2
    np.testing.assert_allclose(table.data, np.round(np.vstack([a, b]), 8), atol=1e-12)
    assert table.periodic == {"phi": pytest.approx((-math.pi, math.pi))}
    np.testing.assert_allclose(table.column("psi"), np.round(np.vstack([a, b])[:, 2], 8))
    assert table.column_index("3") == 3


def test_colvar_restarts_with_different_fields_keep_common_columns(tmp_path: Path) -> None:
    a, b = np.arange(12.0).reshape(4, 3), np.arange(8.0).reshape(2, 4) + 100
    _write_colvar(tmp_path / "COLVAR", [a, b], [["time", "x", "bias"], ["time", "y", "x", "bias"]])
    table = formats.read_table(tmp_path / "COLVAR")
    assert table.names == ["time", "x", "bias"]
    np.testing.assert_array_equal(table.data, np.vstack([a, b[:, [0, 2, 3]]]))


@pytest.mark.parametrize("header, delimiter", [(True, ","), (False, ","), (True, " "), (False, "\t")])
def test_plain_text_and_csv(tmp_path: Path, header: bool, delimiter: str) -> None:
    data = np.random.default_rng(1).normal(size=(20, 3))
    path = tmp_path / "samples.txt"
    np.savetxt(path, data, delimiter=delimiter, header=delimiter.join(["d1", "d2", "w"]) if header else "",
               comments="", fmt="%.12g")
    table = formats.read_table(path)
    assert table.names == (["d1", "d2", "w"] if header else ["col0", "col1", "col2"])
    np.testing.assert_allclose(table.data, data, rtol=1e-11)


def test_npy_one_and_two_dimensional(tmp_path: Path) -> None:
    data = np.random.default_rng(2).normal(size=(9, 2))
    np.save(tmp_path / "a.npy", data)
    np.save(tmp_path / "b.npy", data[:, 0])
    np.testing.assert_array_equal(formats.read_table(tmp_path / "a.npy").data, data)
    np.testing.assert_array_equal(formats.read_table(tmp_path / "b.npy").data, data[:, :1])


@pytest.mark.parametrize("text, message", [
    ("", "is empty"),
    ("   \n\n", "is empty"),
    ("#! FIELDS time x\n#! SET min_x 0\n", "no data rows"),
    ("#! FIELDS time x\n0 1\n1 oops\n", "line 3, column 2: 'oops' is not a number"),
    ("1 2 3\n4 5 6\n7 8\n", "line 3: 2 columns, expected 3"),
    ("a,b\n1,2\n3,x\n", "line 3, column 2: 'x' is not a number"),
    ("#! FIELDS time x y\n0 1\n", "line 2: 2 columns but the header names 3"),
    ("x y\n", "header line but no data rows"),
])
def test_bad_tables_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.dat"
    path.write_text(text)
    with pytest.raises(InputError, match=message.replace("(", r"\(")) as info:
        formats.read_table(path)
    assert str(path) in str(info.value)


def test_unknown_column_lists_the_available_ones(tmp_path: Path) -> None:
    (tmp_path / "c").write_text("#! FIELDS time phi\n0 1\n")
    table = formats.read_table(tmp_path / "c")
    with pytest.raises(InputError, match="no column named 'psi'; available columns: time, phi"):
        table.column("psi")
    with pytest.raises(InputError, match="out of range"):
        table.column("5")


def test_unreadable_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        formats.read_table(tmp_path / "missing")
    with pytest.raises(InputError, match="is a directory"):
        formats.read_table(tmp_path)
    (tmp_path / "bin").write_bytes(b"\x89PNG\x00\xff\xfe")
    with pytest.raises(InputError, match="not a text file"):
        formats.read_table(tmp_path / "bin")


@pytest.mark.slow
def test_million_row_colvar_reads_fast(tmp_path: Path) -> None:
    import time
    n = 1_000_000
    rng = np.random.default_rng(3)
    data = np.column_stack([np.arange(n) * 0.002, rng.uniform(-3, 3, (n, 2)), rng.normal(size=n)])
    _write_colvar(tmp_path / "COLVAR", [data[: n // 2], data[n // 2:]], [["time", "a", "b", "bias"]] * 2)
    start = time.perf_counter()
    table = formats.read_table(tmp_path / "COLVAR")
    elapsed = time.perf_counter() - start
    assert table.data.shape == (n, 4)
    np.testing.assert_allclose(table.data, np.round(data, 8), atol=1e-12)
    assert elapsed < 10.0, f"reading 1e6 rows took {elapsed:.1f} s"  # ~1.2 s measured; a Python loop takes ~10x


# ----------------------------------------------------------------------------------------------- writers
def _result(dim: int, blocks: int = 1, periodic: bool = False) -> cyfes.FESResult:
    rng = np.random.default_rng(10 + dim)
    samples = rng.normal(size=(400, dim))
    bins = [7, 5, 4][:dim]
    if periodic:
        n = bins[0]
        per = [2 * math.pi] + [None] * (dim - 1)
        ranges = [(-math.pi, math.pi - 2 * math.pi / n)] + [(-2.0, 2.0)] * (dim - 1)
        return cyfes.fes(samples, 0.4, bins=bins, ranges=ranges, periodic=per, device="cpu",
                         names=[f"v{d}" for d in range(dim)])
    return cyfes.fes(samples, 0.4, bias=rng.uniform(0, 3, 400), bins=bins, blocks=blocks, device="cpu",
                     names=[f"v{d}" for d in range(dim)])


@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("ext", [".grid", ".dat", ".csv", ".npz"])
def test_grids_round_trip(tmp_path: Path, dim: int, ext: str) -> None:
    result = _result(dim, blocks=4 if ext in (".dat", ".npz") else 1)
    path = result.save(tmp_path / f"fes{ext}")
    grid = formats.read_grid(path)
    assert grid.names == [f"v{d}" for d in range(dim)]
    for got, want in zip(grid.axes, result.axes):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(grid.values, result.values, rtol=1e-9, atol=1e-8)
    if result.error is not None:
        np.testing.assert_allclose(grid.error, result.error, rtol=1e-9, atol=1e-8)
    assert [p.name for p in tmp_path.iterdir()] == [f"fes{ext}"]  # no temporary file left


def test_plumed_grid_layout_matches_sum_hills(tmp_path: Path) -> None:
    result = _result(2)
    text = formats.plumed_grid_text(result)
    lines = text.splitlines()
    assert lines[0] == "#! FIELDS v0 v1 file.free der_v0 der_v1"
    x, y = result.axes
    # nbins is the number of points, as PLUMED's Grid::writeToFile writes it (its reader takes one off again)
    assert lines[1:9] == [f"#! SET min_v0 {x[0]:.17g}", f"#! SET max_v0 {x[-1]:.17g}", f"#! SET nbins_v0 {len(x)}",
                          "#! SET periodic_v0 false", f"#! SET min_v1 {y[0]:.17g}", f"#! SET max_v1 {y[-1]:.17g}",
                          f"#! SET nbins_v1 {len(y)}", "#! SET periodic_v1 false"]
    body = lines[9:]
    assert body.count("") == len(y) - 1  # a blank line between rows, none at the end
    rows = np.array([[float(t) for t in line.split()] for line in body if line])
    np.testing.assert_allclose(rows[:len(x), 0], x, atol=1e-9)  # first CV fastest
    np.testing.assert_allclose(rows[:len(x), 1], y[0], atol=1e-9)
    np.testing.assert_allclose(rows[:, 2], result.values.ravel(order="F"), atol=1e-9)
    dfdx = np.gradient(result.values, x, axis=0)
    np.testing.assert_allclose(rows[:, 3], dfdx.ravel(order="F"), atol=1e-8)


def test_plumed_grid_of_a_periodic_cv(tmp_path: Path) -> None:
    result = _result(1, periodic=True)
    lines = formats.plumed_grid_text(result).splitlines()
    assert lines[1:5] == [f"#! SET min_v0 {-math.pi:.17g}", f"#! SET max_v0 {math.pi:.17g}",
                          "#! SET nbins_v0 7", "#! SET periodic_v0 true"]
    rows = np.array([[float(t) for t in line.split()] for line in lines[5:]])
    f, h = result.values, 2 * math.pi / 7
    np.testing.assert_allclose(rows[:, 2], (np.roll(f, -1) - np.roll(f, 1)) / (2 * h), atol=1e-8)
    grid = formats.read_grid(result.save(tmp_path / "fes.grid"))
    assert grid.periodic == [True]
    np.testing.assert_allclose(grid.axes[0], -math.pi + h * np.arange(7), atol=1e-9)


def test_cube_layout_x_slowest(tmp_path: Path) -> None:
    result = _result(3)
    path = result.save(tmp_path / "fes.cube")
    lines = path.read_text().splitlines()
    natoms = int(lines[2].split()[0])
    counts = [int(lines[3 + d].split()[0]) for d in range(3)]
    assert counts == [len(a) for a in result.axes]
    np.testing.assert_allclose([float(t) for t in lines[2].split()[1:4]], [a[0] for a in result.axes], atol=1e-6)
    values = np.array(" ".join(lines[6 + natoms:]).split(), dtype=float)
    np.testing.assert_allclose(values, result.values.ravel(order="C"), rtol=1e-5, atol=1e-6)


def test_cube_needs_three_cvs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="3-D"):
        _result(2).save(tmp_path / "fes.cube")
    assert not list(tmp_path.iterdir())


def test_format_by_extension_or_name(tmp_path: Path) -> None:
    assert formats.output_format("a.fes") == "plumed"
    assert formats.output_format("a.TXT") == "dat"
    assert formats.output_format("a.bin", "npz") == "npz"
    with pytest.raises(InputError, match="unknown output extension '.bin'"):
        formats.output_format("a.bin")
    with pytest.raises(InputError, match="unknown format"):
        formats.output_format("a.dat", "hdf5")


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    def explode(handle):  # type: ignore[no-untyped-def]
        handle.write(b"half a file")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        formats.atomic_write(tmp_path / "out.dat", explode)
    assert not list(tmp_path.iterdir())
    (tmp_path / "out.dat").write_text("old")
    with pytest.raises(RuntimeError):
        formats.atomic_write(tmp_path / "out.dat", explode)
    assert (tmp_path / "out.dat").read_text() == "old"  # the previous file survives


def test_missing_output_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        _result(1).save(tmp_path / "no" / "fes.dat")


def test_row_cut_short_before_a_restart_is_dropped_with_a_note(tmp_path: Path) -> None:
    text = ("#! FIELDS time x bias\n0 1.5 0.1\n1 1.6 0.2\n2 1.7\n"  # killed while writing row 3
            "#! FIELDS time x bias\n2 1.7 0.3\n3 1.8 0.4\n")
    (tmp_path / "COLVAR").write_text(text)
    table = formats.read_table(tmp_path / "COLVAR")
    np.testing.assert_array_equal(table.data, [[0, 1.5, 0.1], [1, 1.6, 0.2], [2, 1.7, 0.3], [3, 1.8, 0.4]])
    assert table.notes == [f"{tmp_path / 'COLVAR'}: line 4: dropped a row cut short: 2 columns, expected 3 "
                           "(rows of different lengths)"]
    (tmp_path / "mid").write_text("#! FIELDS time x bias\n0 1.5 0.1\n1 1.6\n2 1.7 0.3\n")
    with pytest.raises(InputError, match="line 3: 2 columns, expected 3"):  # not the last row: an error
        formats.read_table(tmp_path / "mid")


def test_gzipped_colvar(tmp_path: Path) -> None:
    import gzip
    text = "#! FIELDS time x\n0 1.5\n1 2.5\n"
    (tmp_path / "COLVAR.gz").write_bytes(gzip.compress(text.encode()))
    np.testing.assert_array_equal(formats.read_table(tmp_path / "COLVAR.gz").data, [[0, 1.5], [1, 2.5]])
    (tmp_path / "bad.gz").write_bytes(b"not gzip at all")
    with pytest.raises(InputError, match="bad.gz: cannot read"):
        formats.read_table(tmp_path / "bad.gz")


def test_plumed_grid_reader_takes_points_and_the_old_bins_count(tmp_path: Path) -> None:
    """PLUMED writes nbins = points on a non-periodic CV; cyfes 1.0.0 wrote one less: both read back."""
    result = _result(2)
    text = formats.plumed_grid_text(result)
    x, y = result.axes
    old = text.replace(f"#! SET nbins_v0 {len(x)}", f"#! SET nbins_v0 {len(x) - 1}").replace(
        f"#! SET nbins_v1 {len(y)}", f"#! SET nbins_v1 {len(y) - 1}")
    for body in (text, old):
        grid = formats.parse_plumed_grid(body)
        assert grid.values.shape == (len(x), len(y))
        np.testing.assert_allclose(grid.values, result.values, atol=1e-9)


@pytest.mark.parametrize("ext", [".grid", ".dat", ".csv", ".npz", ".cube"])
def test_read_grid_reads_back_every_format_write_result_writes(tmp_path: Path, ext: str) -> None:
    """read_grid (public API) gives back the axes and values write_result wrote, in every format."""
    dim = 3 if ext == ".cube" else 2
    result = cyfes.fes(np.random.default_rng(3).normal(size=(300, dim)), 0.5, bins=[5, 6, 4][:dim], device="cpu")
    grid = formats.read_grid(result.save(tmp_path / f"fes{ext}"))
    assert len(grid.axes) == dim and grid.values.shape == result.values.shape
    for got, want in zip(grid.axes, result.axes):  # a cube stores its origin and steps with 6 decimals
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-5 if ext == ".cube" else 1e-9)
    np.testing.assert_allclose(grid.values, result.values, rtol=1e-5, atol=1e-6)
