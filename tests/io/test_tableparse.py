"""cyfes.io._tableparse and the streamed text reader: numbers against Python's float(), chunk and block boundaries,
hostile files, columns converted on request, bounded memory."""
from __future__ import annotations

import gzip
import math
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cyfes._errors import InputError
from cyfes.io import _tableparse, formats
from cyfes.io import tables as _tables


def _same(got: float, want: float) -> bool:
    """Bit for bit (signs of zeros included), any NaN equal to any NaN."""
    if math.isnan(want):
        return got is not None and math.isnan(got)
    return got is not None and struct.pack("<d", got) == struct.pack("<d", want)


# ----------------------------------------------------------------------------------------------- numbers
def _formats_of(x: float) -> list:
    return [repr(x), f"{x:.17g}", f"{x:.15e}", f"{x:.6f}", f"{x:.3E}", f"{x:.25g}", f"{x:.40f}", str(x).upper()]


@settings(max_examples=400, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_numbers_round_as_float_does(x: float) -> None:
    for text in _formats_of(x):
        assert _same(_tableparse.parse_number(text.encode()), float(text)), text


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=10 ** 40), st.integers(min_value=-360, max_value=330),
       st.integers(min_value=0, max_value=40), st.sampled_from(["", "+", "-"]))
def test_long_mantissas_and_exponents(digits: int, exp: int, point: int, sign: str) -> None:
    text = str(digits)
    point = min(point, len(text))
    mantissa = text[:len(text) - point] + "." + text[len(text) - point:] if point else text
    for token in (f"{sign}{mantissa}e{exp}", f"{sign}{mantissa}E+{abs(exp)}", f"{sign}{mantissa}"):
        assert _same(_tableparse.parse_number(token.encode()), float(token)), token


@pytest.mark.parametrize("text", ["4.9e-324", "2.4703282292062327e-324", "2.4703282292062328e-324",
                                  "2.2250738585072011e-308", "2.2250738585072014e-308", "1.7976931348623157e308",
                                  "1.7976931348623159e308", "1e999", "-1e999", "1e-999", "-0", "-0.0e10", "0e999",
                                  "9007199254740993", "9007199254740992.5", "0.1", "0." + "0" * 400 + "1",
                                  "1" * 500, ".5", "5.", "+.5e-3", "inf", "-Infinity", "nan", "-nan", "NaN", "INF"])
def test_hostile_numbers(text: str) -> None:
    assert _same(_tableparse.parse_number(text.encode()), float(text))


@pytest.mark.parametrize("text", ["1_000", "0x1p3", "1.5d3", ".", "1e", "1e+", "e5", "+", "-", "", "nan(1)",
                                  "infin", "1e5\x00", "1..2", "1.2.3", "--1", "\u0661".encode().decode("latin-1")])
def test_what_float_or_numpy_refuse_is_refused(text: str) -> None:
    """The grammar the reader always had (numpy's): Python's float() alone takes 1_000 and non-ASCII digits."""
    assert _tableparse.parse_number(text.encode("latin-1")) is None


# ----------------------------------------------------------------------------------------------- files
def _colvar(path: Path, data: np.ndarray, names: list, fmt: str = " %.6f") -> bytes:
    with open(path, "w") as out:
        out.write("#! FIELDS " + " ".join(names) + "\n#! SET min_b -pi\n#! SET max_b pi\n")
        np.savetxt(out, data, fmt=fmt)
    return path.read_bytes()


@pytest.mark.parametrize("threads", [1, 2, 7])
def test_chunks_and_blocks_agree_with_loadtxt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              threads: int) -> None:
    """Blocks of a few kB put row ends at every kind of boundary; the numbers must equal numpy's reading."""
    rng = np.random.default_rng(4)
    data = rng.normal(size=(5000, 3)) * 10.0 ** rng.integers(-5, 6, size=(5000, 3))
    lines = _colvar(tmp_path / "c", data, ["a", "b", "c"], fmt="%.17g").decode().splitlines(keepends=True)
    for k in range(len(lines) - 1, 3, -37):  # comments, blank lines and inline comments between the rows
        lines[k:k] = ["# note\n", "\n", "   \t\n"] if k % 2 else [lines.pop(k).rstrip("\n") + "  # x\r\n"]
    (tmp_path / "c").write_text("".join(lines))
    want = np.loadtxt(tmp_path / "c")
    monkeypatch.setattr(_tables, "BLOCK_BYTES", 4099)
    monkeypatch.setattr(_tableparse, "MIN_CHUNK_BYTES", 333)
    table = formats.read_table(tmp_path / "c", threads=threads)
    np.testing.assert_array_equal(table.data, want)
    np.testing.assert_array_equal(table.data, data)  # %.17g round-trips
    assert table.periodic == {"b": (-math.pi, math.pi)}


def test_only_requested_columns_are_converted(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    data = rng.normal(size=(300, 30))
    names = [f"c{i}" for i in range(30)]
    _colvar(tmp_path / "wide", data, names, fmt="%.17g")
    text = (tmp_path / "wide").read_text().splitlines()
    table = formats.read_table(tmp_path / "wide", columns=["c17", "2", "c29"])
    assert table.names == ["c2", "c17", "c29"]
    np.testing.assert_array_equal(table.column("c17"), data[:, 17])
    np.testing.assert_array_equal(table.column("2"), data[:, 2])
    assert table.data.shape == (300, 3)
    with pytest.raises(InputError, match="no column named 'zz'"):
        formats.read_table(tmp_path / "wide", columns=["zz"])
    text[10] = " ".join(text[10].split()[:5] + ["1_000"] + text[10].split()[6:])  # c5: not a number, not asked for
    (tmp_path / "wide").write_text("\n".join(text) + "\n")
    for columns in (["c5"], ["c17"]):  # every field is checked, as before; only the asked-for are converted
        with pytest.raises(InputError, match="line 11, column 6: '1_000' is not a number"):
            formats.read_table(tmp_path / "wide", columns=columns)


def test_column_turning_to_text_halfway_names_its_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_tables, "BLOCK_BYTES", 1000)
    rows = [f"{i} {i * 0.5}" for i in range(400)] + [f"{i} text" for i in range(400, 800)]
    (tmp_path / "c").write_text("#! FIELDS time x\n" + "\n".join(rows) + "\n")
    with pytest.raises(InputError, match=r"c: line 402, column 2: 'text' is not a number"):
        formats.read_table(tmp_path / "c")


def test_crlf_mixed_nul_and_a_long_line(tmp_path: Path) -> None:
    (tmp_path / "crlf").write_bytes(b"#! FIELDS a b\r\n1 2\r\n3 4\n5 6\r\n")
    np.testing.assert_array_equal(formats.read_table(tmp_path / "crlf").data, [[1, 2], [3, 4], [5, 6]])
    (tmp_path / "nul").write_bytes(b"#! FIELDS a b\n1 2\n3 4\x00\n")
    with pytest.raises(InputError, match=r"nul: line 3, column 2: '4\\x00' is not a number"):
        formats.read_table(tmp_path / "nul")
    long_line = " ".join(["1.5"] * 3_000_000)  # ~10 MB, longer than the buffer
    (tmp_path / "long").write_text("#! FIELDS a b\n1 2\n" + long_line + "\n")
    with pytest.raises(InputError, match="long: line 3: 3000000 columns, expected 2"):
        formats.read_table(tmp_path / "long")
    names = [f"x{i}" for i in range(1_000_000)]
    (tmp_path / "wide").write_text("#! FIELDS " + " ".join(names) + "\n" + " ".join(["2.5"] * 1_000_000) + "\n")
    table = formats.read_table(tmp_path / "wide", columns=["x999999"])
    np.testing.assert_array_equal(table.data, [[2.5]])


def test_cut_short_row_at_a_block_end_is_dropped_before_a_restart(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    head = "#! FIELDS time x bias\n"
    first = "".join(f"{i} {i}.5 0.1\n" for i in range(50))
    text = head + first + "50 50.5\n" + head + "51 51.5 0.3\n"
    (tmp_path / "COLVAR").write_text(text)
    monkeypatch.setattr(_tables, "BLOCK_BYTES", len(head + first) + 9)  # the short row ends the first block
    table = formats.read_table(tmp_path / "COLVAR")
    assert table.data.shape == (51, 3) and table.data[-1, 0] == 51
    assert table.notes == [f"{tmp_path / 'COLVAR'}: line 52: dropped a row cut short: 2 columns, expected 3 "
                           "(rows of different lengths)"]
    (tmp_path / "mid").write_text(head + first + "50 50.5\n" + "51 51.5 0.3\n")
    with pytest.raises(InputError, match="mid: line 52: 2 columns, expected 3"):
        formats.read_table(tmp_path / "mid")


def test_restart_that_changes_a_domain_is_refused(tmp_path: Path) -> None:
    (tmp_path / "c").write_text("#! FIELDS t phi\n#! SET min_phi -pi\n#! SET max_phi pi\n0 1\n"
                                "#! FIELDS t phi\n#! SET min_phi 0\n#! SET max_phi 2*pi\n1 2\n")
    with pytest.raises(InputError, match=r"c: line 6: '#! SET min_phi 0' changes the domain of 'phi'"):
        formats.read_table(tmp_path / "c")
    (tmp_path / "same").write_text("#! FIELDS t phi\n#! SET min_phi -pi\n#! SET max_phi pi\n0 1\n"
                                   "#! FIELDS t phi\n#! SET min_phi -pi\n#! SET max_phi pi\n1 2\n")
    assert formats.read_table(tmp_path / "same").periodic == {"phi": (-math.pi, math.pi)}


def test_gzip_is_streamed_in_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = np.random.default_rng(6).normal(size=(4000, 2))
    raw = _colvar(tmp_path / "c", data, ["a", "b"], fmt="%.17g")
    (tmp_path / "c.gz").write_bytes(gzip.compress(raw))
    monkeypatch.setattr(_tables, "BLOCK_BYTES", 5000)
    monkeypatch.setattr(_tables, "GZIP_READ_BYTES", 777)
    np.testing.assert_array_equal(formats.read_table(tmp_path / "c.gz").data, data)
    (tmp_path / "cut.gz").write_bytes(gzip.compress(raw)[:-20])
    with pytest.raises(InputError, match="cut.gz: cannot read"):
        formats.read_table(tmp_path / "cut.gz")


def test_fes_runs_under_a_two_gigabyte_address_space(tmp_path: Path) -> None:
    """The old reader asked for an eighth of physical memory up front; the buffer is now fixed."""
    rng = np.random.default_rng(7)
    data = np.column_stack([np.arange(2000.0), rng.normal(size=2000), rng.uniform(0, 1, 2000)])
    _colvar(tmp_path / "COLVAR", data, ["time", "a", "bias"])
    script = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (2_000_000 * 1024,) * 2); "
              "from cyfes.commands.main import main; sys.exit(main(sys.argv[1:]))")
    run = subprocess.run([sys.executable, "-c", script, "fes", str(tmp_path / "COLVAR"), "--cv", "a", "--bias",
                          "bias", "--sigma", "0.2", "--bins", "50", "--device", "cpu", "-o",
                          str(tmp_path / "fes.dat"), "-v"], capture_output=True, text=True,
                         env={"OMP_NUM_THREADS": "2", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    assert "time: read" in run.stderr
    grid = np.loadtxt(tmp_path / "fes.dat")
    assert grid.shape[0] == 50 and np.isfinite(grid[:, 1]).any()


@pytest.mark.parametrize("inflate", ["isal", "zlib"])
def test_gzip_with_and_without_isal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inflate: str) -> None:
    if inflate == "zlib":
        monkeypatch.setitem(sys.modules, "isal", None)  # as where python-isal is not installed
    else:
        pytest.importorskip("isal")
    raw = b"\xef\xbb\xbf#! FIELDS t x\n0 1.5\n#! FIELDS t x\n1 2.5\n"  # a byte order mark before a header
    (tmp_path / "c.gz").write_bytes(gzip.compress(raw))
    table = formats.read_table(tmp_path / "c.gz")
    np.testing.assert_array_equal(table.data, [[0, 1.5], [1, 2.5]])
    assert table.segments == 2
    (tmp_path / "bad.gz").write_bytes(gzip.compress(raw)[:12] + b"\xff" * 40)
    with pytest.raises(InputError, match="bad.gz: cannot read"):
        formats.read_table(tmp_path / "bad.gz")


# ----------------------------------------------------------------------------------------------- sum_hills
HILLS_DATA = Path(__file__).parents[1] / "data" / "plumed"


def _sum_hills(tmp_path: Path, hills: str, out: str, capsys: pytest.CaptureFixture) -> int:
    import os

    from cyfes.commands import main as cli
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        return cli.main(["sum_hills", "--hills", hills, "--outfile", out, "--bin", "20,20"])
    finally:
        os.chdir(old)


def test_sum_hills_reads_gzip_and_gives_the_same_bytes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    raw = (HILLS_DATA / "h2d_periodic.hills").read_bytes()
    (tmp_path / "h.hills").write_bytes(raw)
    (tmp_path / "h.hills.gz").write_bytes(gzip.compress(raw))
    assert _sum_hills(tmp_path, "h.hills", "plain.dat", capsys) == 0
    assert _sum_hills(tmp_path, "h.hills.gz", "gz.dat", capsys) == 0
    assert (tmp_path / "gz.dat").read_bytes() == (tmp_path / "plain.dat").read_bytes()
    assert len(np.loadtxt(tmp_path / "plain.dat", comments="#")) == 400


def test_sum_hills_refuses_a_restart_that_changes_a_domain(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    text = (HILLS_DATA / "h2d_periodic.hills").read_text()
    lines = text.splitlines(keepends=True)
    head = [line for line in lines if line.startswith("#!")]
    body = [line for line in lines if not line.startswith("#!")]
    moved = [line.replace("min_phi -pi", "min_phi 0").replace("max_phi pi", "max_phi 2*pi") for line in head]
    (tmp_path / "r.hills").write_text("".join(head + body[:3] + moved + body[3:6]))
    assert _sum_hills(tmp_path, "r.hills", "out.dat", capsys) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "r.hills: line" in err and "changes the domain of 'phi'" in err, err
    assert not (tmp_path / "out.dat").exists()


def test_fes_converts_only_the_columns_it_names(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """--cv/--bias on a wide COLVAR give the surface of the same two columns alone; text in any column is still
    refused with its line and column."""
    from cyfes.commands import main as cli
    rng = np.random.default_rng(8)
    x, bias = rng.normal(size=500), rng.uniform(0, 2, 500)
    wide = np.column_stack([np.arange(500.0)] + [rng.normal(size=500) for _ in range(10)] + [x, bias])
    names = ["time"] + [f"d{i}" for i in range(10)] + ["x", "metad.bias"]
    text = _colvar(tmp_path / "wide", wide, names, fmt="%.17g").decode()
    narrow = tmp_path / "narrow"
    _colvar(narrow, np.column_stack([x, bias]), ["x", "metad.bias"], fmt="%.17g")
    for src, out in ((tmp_path / "wide", "a.dat"), (narrow, "b.dat")):
        assert cli.main(["fes", str(src), "--cv", "x", "--bias", "metad.bias", "--sigma", "0.2", "--bins", "30",
                         "--device", "cpu", "-q", "-o", str(tmp_path / out)]) == 0
    assert (tmp_path / "a.dat").read_bytes() == (tmp_path / "b.dat").read_bytes()
    lines = text.splitlines()
    lines[40] = " ".join(lines[40].split()[:1] + ["oops"] + lines[40].split()[2:])  # column d0
    (tmp_path / "wide").write_text("\n".join(lines) + "\n")
    assert cli.main(["fes", str(tmp_path / "wide"), "--cv", "x", "--sigma", "0.2", "--device", "cpu", "-q", "-o",
                     str(tmp_path / "c.dat")]) == 2
    assert "wide: line 41, column 2: 'oops' is not a number" in capsys.readouterr().err


def test_first_bad_row_is_named_whichever_chunk_holds_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Several chunks fail at once: the error names the earliest bad line of the file."""
    monkeypatch.setattr(_tableparse, "MIN_CHUNK_BYTES", 64)
    rows = [f"{i} {i * 0.25}" for i in range(3000)]
    rows[2500] = "2500 bad"
    rows[1700] = "1700"  # short, with rows after it: an error, and the first one
    (tmp_path / "c").write_text("#! FIELDS time x\n" + "\n".join(rows) + "\n")
    for threads in (1, 3):
        with pytest.raises(InputError, match=r"c: line 1702: 1 columns, expected 2 \(rows of different lengths\)"):
            formats.read_table(tmp_path / "c", threads=threads)


@pytest.mark.parametrize("threads", [1, 2, 7, 0])
def test_byte_scans_split_over_threads_agree_with_python(threads: int) -> None:
    # newline counts and the first non-ASCII byte, on texts below and above the size that is split into pieces
    rng = np.random.default_rng(1)
    for n in (1, 10, _tableparse.MIN_CHUNK_BYTES - 1, 4 * _tableparse.MIN_CHUNK_BYTES + 3):
        text = bytearray(rng.choice(np.frombuffer(b"ab \n9", np.uint8), n).tobytes())
        assert _tableparse.newlines(text, 0, n, threads) == text.count(b"\n")
        assert _tableparse.newlines(text, 3, n, threads) == text.count(b"\n", 3, n)
        assert _tableparse.first_non_ascii(text, 0, n, threads) == -1
        for pos in sorted({0, n // 3, n // 2, n - 1}):
            marked = bytearray(text)
            marked[pos], marked[-1] = 0xC3, 0xA9
            first = int(np.flatnonzero(np.frombuffer(bytes(marked), np.uint8) >= 0x80)[0])
            assert _tableparse.first_non_ascii(marked, 0, n, threads) == first
            assert _tableparse.first_non_ascii(marked, first, n, threads) == first
            assert _tableparse.first_non_ascii(marked, first + 1, n, threads) == (n - 1 if first < n - 1 else -1)
