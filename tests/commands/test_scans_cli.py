"""cyfes fes --block-scan / --sigma-scan / --plot-scan, against cyfes.analysis.scans on the same samples."""
from __future__ import annotations

import numpy as np
import pytest

from cyfes.analysis import scans
from cyfes.commands import main as cli


@pytest.fixture()
def colvar(tmp_path):
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(-1.5, 0.3, 700), rng.normal(1.5, 0.3, 300)])
    rng.shuffle(x)
    path = tmp_path / "COLVAR"
    path.write_text("#! FIELDS time x\n" + "".join(f"{i} {v:.8f}\n" for i, v in enumerate(x)))
    return path, np.round(x, 8)[:, None]


BASE = ["--sigma", "0.2", "--bins", "61", "--range", "x=-3,3", "--device", "cpu", "--tolerance", "0"]
OPTS = dict(bins=[61], ranges=[(-3.0, 3.0)], device="cpu", tolerance=0.0)


def test_block_and_sigma_scans_print_the_api_values_and_plot(colvar, tmp_path, capsys):
    path, x = colvar
    image = tmp_path / "scan.png"
    rc = cli.main(["fes", str(path), *BASE, "--cv", "x", "--block-scan", "2,5,10", "--sigma-scan", "0.1,0.3",
                   "--plot-scan", str(image)])
    out = capsys.readouterr().out
    assert rc == 0, out
    rows = {int(line.split()[0]): line.split() for line in out.splitlines()
            if line.split() and line.split()[0] in ("2", "5", "10")}
    for p in scans.block_scan(x, 0.2, counts=[2, 5, 10], **OPTS):
        row = rows[p.blocks]
        assert int(row[1]) == p.block_size
        assert float(row[2].rstrip("*")) == pytest.approx(p.f_error, rel=1e-3)
        assert float(row[3]) == pytest.approx(p.delta_f, rel=1e-3)
    sig = {line.split()[0]: line.split() for line in out.splitlines() if line.split()[:1] in (["0.1"], ["0.3"])}
    for p in scans.sigma_scan(x, [0.1, 0.3], **OPTS):
        row = sig[f"{p.sigma[0]:.4g}"]
        assert float(row[2]) == pytest.approx(p.delta_f, rel=1e-3)
        assert float(row[3]) == pytest.approx(p.barrier, rel=1e-3)
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("extra, message", [
    (["--plot-scan", "s.png"], "--plot-scan: give --block-scan"),
    (["--block-scan", "1,4"], "--block-scan: block counts must be >= 2"),
    (["--sigma-scan", "0.1,-2"], "--sigma-scan"),
    (["--block-scan", "", "--plot-scan", "s.xyz"], "unknown image extension"),
])
def test_bad_scan_options_are_one_line_and_write_nothing(colvar, tmp_path, capsys, extra, message, monkeypatch):
    path, _ = colvar
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert cli.main(["fes", str(path), *BASE, "-o", "f.dat", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before
