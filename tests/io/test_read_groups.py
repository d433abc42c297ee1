"""formats.read_groups (the samples of `cyfes fes --cv` parsed straight into the engine's arrays) against numpy's
own text reader, and the newline count the reader's line numbers rest on."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from cyfes._errors import InputError
from cyfes.io import _tableparse, formats
from cyfes.io import tables as _tables

NAMES = ["time", "phi", "psi", "metad.bias", "w"]


def _colvar(path: Path, rows: int, seed: int = 0, restart: bool = False) -> np.ndarray:
    """TEST FIXTURE: a COLVAR of random rows (a restart with the same FIELDS halfway when asked); the values as
    numpy reads them back."""
    rng = np.random.default_rng(seed)
    data = np.column_stack([np.arange(rows) * 0.5, rng.uniform(-3, 3, (rows, 2)), rng.normal(size=(rows, 2))])
    parts = [data[: rows // 2], data[rows // 2:]] if restart else [data]
    with open(path, "w") as out:
        for part in parts:
            out.write("#! FIELDS " + " ".join(NAMES) + "\n#! SET min_phi -pi\n#! SET max_phi pi\n")
            np.savetxt(out, part, fmt=" %.9f")
    return np.loadtxt(path, ndmin=2)


@pytest.mark.parametrize("restart", [False, True])
def test_groups_are_c_ordered_arrays_of_the_asked_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          restart: bool) -> None:
    monkeypatch.setattr(_tables, "BLOCK_BYTES", 5000)  # many blocks: the arrays grow while they are filled
    want = _colvar(tmp_path / "COLVAR", 3000, restart=restart)
    table, arrays = formats.read_groups(tmp_path / "COLVAR", (["psi", "1"], ["metad.bias", "w"], ["phi"]))
    assert arrays is not None and len(table.data) == 0
    for got, cols in zip(arrays, ([2, 1], [3, 4], [1])):
        assert got.flags.c_contiguous and got.dtype == np.float64
        np.testing.assert_array_equal(got, want[:, cols])
    assert table.periodic["phi"] == pytest.approx((-np.pi, np.pi))


def test_gzip_and_one_column_in_two_groups(tmp_path: Path) -> None:
    want = _colvar(tmp_path / "COLVAR", 500)
    (tmp_path / "COLVAR.gz").write_bytes(gzip.compress((tmp_path / "COLVAR").read_bytes()))
    _, arrays = formats.read_groups(tmp_path / "COLVAR.gz", (["phi"], ["phi", "psi"], []))
    np.testing.assert_array_equal(arrays[0][:, 0], want[:, 1])
    np.testing.assert_array_equal(arrays[1], want[:, [1, 2]])
    assert arrays[2].shape == (500, 0)


def test_restarts_with_other_columns_and_npy_give_the_table(tmp_path: Path) -> None:
    """Parts whose columns differ are joined as read_table joins them; the rows are then the table's."""
    p = tmp_path / "COLVAR"
    p.write_text("#! FIELDS time phi psi\n0 1 2\n1 3 4\n#! FIELDS time psi phi extra\n2 5 6 7\n")
    table, arrays = formats.read_groups(p, (["phi"], ["psi"], []))
    assert arrays is None
    np.testing.assert_array_equal(table.data, formats.read_table(p, columns=["phi", "psi"]).data)
    np.save(tmp_path / "a.npy", np.arange(6.0).reshape(3, 2))
    table, arrays = formats.read_groups(tmp_path / "a.npy", (["col1"], [], []))
    assert arrays is None and table.data.shape == (3, 2)


def test_errors_are_the_readers(tmp_path: Path) -> None:
    _colvar(tmp_path / "COLVAR", 20)
    with pytest.raises(InputError, match=r"COLVAR: no column named 'chi'"):
        formats.read_groups(tmp_path / "COLVAR", (["chi"], [], []))
    (tmp_path / "bad").write_text("#! FIELDS a b\n1 2\n3 x\n")
    with pytest.raises(InputError, match=r"bad: line 3, column 2: 'x' is not a number"):
        formats.read_groups(tmp_path / "bad", (["a"], ["b"], []))


@pytest.mark.parametrize("seed", range(4))
def test_newlines_count_as_bytes_count(seed: int) -> None:
    """The SSE2 count sums byte counters every 255 steps: lengths around 16 x 255 and odd starts."""
    rng = np.random.default_rng(seed)
    text = bytearray(rng.choice(np.frombuffer(b"\n1 .", dtype=np.uint8), 20000, p=[0.3, 0.4, 0.2, 0.1]).tobytes())
    for start, stop in [(0, 20000), (1, 4081), (7, 4096), (3, 3), (5, 20), (15, 16 * 255 * 3 + 2)]:
        assert _tableparse.newlines(text, start, stop) == text.count(b"\n", start, stop)
    text = bytearray(b"\n" * 9000)  # every byte: a counter reaches 255 before it is summed
    assert _tableparse.newlines(text, 0, len(text)) == 9000
