"""ChunkedTable: the chunks of a file read with a small buffer, joined, are read_table's rows, and what it says
after the last chunk (names, domains, notes, dropped columns, restarts) is read_table's too."""
from __future__ import annotations

import gzip

import numpy as np
import pytest

from cyfes import InputError
from cyfes.io import tables


def _file(path):
    """TEST FIXTURE: three segments; the first ends in a row cut short (a crash before the restart), the third
    reorders its FIELDS and drops psi; SET lines give phi a domain."""
    rng = np.random.default_rng(2)
    with open(path, "w") as out:
        out.write("#! FIELDS time phi psi b\n#! SET min_phi -pi\n#! SET max_phi pi\n")
        np.savetxt(out, rng.normal(size=(700, 4)), fmt="%.5f")
        out.write("1.0 2.0\n")
        out.write("#! FIELDS time phi psi b\n#! SET min_phi -pi\n#! SET max_phi pi\n")
        np.savetxt(out, rng.normal(size=(900, 4)), fmt="%.5f")
        out.write("#! FIELDS b time phi\n")
        np.savetxt(out, rng.normal(size=(400, 3)), fmt="%.5f")


@pytest.mark.parametrize("columns", [None, ["phi", "b"], ["2", "0"]])
@pytest.mark.parametrize("gz", [False, True])
def test_chunks_joined_are_the_whole_table(tmp_path, monkeypatch, columns, gz):
    monkeypatch.setattr(tables, "BLOCK_BYTES", 4096)
    path = tmp_path / "COLVAR"
    _file(path)
    if gz:
        path = tmp_path / "COLVAR.gz"
        path.write_bytes(gzip.compress((tmp_path / "COLVAR").read_bytes()))
    whole = tables.read_table(path, columns=columns)
    reader = tables.ChunkedTable(path, columns=columns, rows=64)
    chunks = list(reader)
    assert max(len(d) for _, d in chunks) == 64 and len(chunks) > 30
    joined = np.concatenate([d[:, [n.index(c) for c in whole.names]] for n, d in chunks])
    assert np.array_equal(joined, whole.data)
    got = reader.table
    assert (got.names, got.periodic, got.notes, got.dropped, got.segments, got.file_names) == \
        (whole.names, whole.periodic, whole.notes, whole.dropped, whole.segments, whole.file_names)
    assert got.data.shape == (0, len(whole.names))
    assert "line 704: dropped a row cut short" in " ".join(got.notes)


def test_a_bad_line_fails_where_read_table_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "BLOCK_BYTES", 4096)
    path = tmp_path / "COLVAR"
    _file(path)
    lines = path.read_text().splitlines(keepends=True)
    lines[1500] = "0.1 0.2 0.3\n"
    path.write_text("".join(lines))
    with pytest.raises(InputError) as whole:
        tables.read_table(path)
    with pytest.raises(InputError) as chunked:
        list(tables.ChunkedTable(path, rows=100))
    assert str(chunked.value) == str(whole.value) and "line 1501" in str(whole.value)


def _colvars(path):
    """TEST FIXTURE: a Colvars trajectory of a vector variable with two restarts (each writes its step twice),
    the second with another variable set (`e` added), a row cut short before it, comments and blank lines."""
    rng = np.random.default_rng(7)
    with open(path, "w") as out:
        step = 0
        for k, extra in enumerate((False, True, False)):
            out.write("# step x v E" + (" e" if extra else "") + "\n")
            for _ in range(300 + 100 * k):
                x, a, b, e = rng.normal(size=4)
                out.write(f"{step} {x:.5f} ( {a:.5f} , {b:.5f} ) {e:.5f}" + (" 2.5" if extra else "") + "\n")
                step += 1
            if k < 2:
                out.write(f"{step} 9 ( 9 , 9 ) 9" + (" 9" if extra else "") + "\n")  # the restart's step, again
            if k == 0:
                out.write("# a comment\n\n" + f"{step} 0.1 ( 0.2 ,\n")  # cut short by a crash


def _xvg(path):
    """TEST FIXTURE: an xvg of three columns, legends and comments first, as GROMACS writes it."""
    rng = np.random.default_rng(8)
    with open(path, "w") as out:
        out.write('# gmx energy\n@    xaxis  label "Time (ps)"\n@ s0 legend "Potential"\n@ s1 legend "Pressure"\n')
        np.savetxt(out, np.column_stack([np.arange(900.0), rng.normal(size=(900, 2))]), fmt="%.5f")
        out.write("&\n")


@pytest.mark.parametrize("write, name", [(_colvars, "run.colvars.traj"), (_xvg, "ener.xvg")])
def test_colvars_and_xvg_chunks_joined_are_the_whole_table(tmp_path, monkeypatch, write, name):
    monkeypatch.setattr(tables, "BLOCK_BYTES", 2048)
    path = tmp_path / name
    write(path)
    whole = tables.read_table(path)
    reader = tables.ChunkedTable(path, rows=16)
    chunks = list(reader)
    assert max(len(d) for _, d in chunks) == 16 and len(chunks) > 40
    joined = np.concatenate([d[:, [n.index(c) for c in whole.names]] for n, d in chunks])
    assert np.array_equal(joined, whole.data)
    got = reader.table
    assert (got.names, got.notes, got.dropped, got.segments) == (whole.names, whole.notes, whole.dropped,
                                                                 whole.segments)
    if name.endswith(".traj"):  # each step once: the repeats at the restarts dropped, the row cut short too
        assert np.array_equal(joined[:, 0], np.arange(1200.0)) and len(whole.notes) == 2
        assert whole.names == ["step", "x", "v_1", "v_2", "E"] and "line 305: dropped a row cut short" in whole.notes[0]


def test_a_colvars_file_without_a_header_fails_as_read_table_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "BLOCK_BYTES", 2048)
    path = tmp_path / "run.colvars.traj"
    _colvars(path)
    path.write_text(path.read_text().replace("# step", "# time"))
    with pytest.raises(InputError) as whole:
        tables.read_table(path, fmt="colvars")
    with pytest.raises(InputError) as chunked:
        list(tables.ChunkedTable(path, fmt="colvars", rows=100))
    assert str(chunked.value) == str(whole.value)
    assert str(whole.value) == (f"{path}: no '# step ...' header line; not a Colvars trajectory (read as a Colvars "
                                "trajectory, as --input-format colvars asks)")
