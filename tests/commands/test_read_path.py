"""`cyfes fes` reads --cv columns straight into the engine's arrays and makes the GPU's context while it reads:
the surface is the one cyfes.fes gives for numpy's reading of the same files, and errors are unchanged."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cyfes
from cyfes import _build_info
from cyfes.commands.main import main
from cyfes.engine import backends
from cyfes.io import formats

NAMES = ["time", "phi", "psi", "metad.bias", "uwall.bias", "w"]


def _colvar(path: Path, rows: int, seed: int) -> np.ndarray:
    """TEST FIXTURE: a COLVAR of random rows; the values as numpy reads them back."""
    rng = np.random.default_rng(seed)
    data = np.column_stack([np.arange(rows) * 0.5, rng.uniform(-3, 3, rows), rng.normal(0.5, 0.6, rows),
                            rng.uniform(0, 4, rows), rng.uniform(0, 1, rows), rng.uniform(0.5, 1.5, rows)])
    with open(path, "w") as out:
        out.write("#! FIELDS " + " ".join(NAMES) + "\n")
        np.savetxt(out, data, fmt=" %.8f")
    return np.loadtxt(path, ndmin=2)


def test_summed_biases_weights_skip_stride_and_two_walkers(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a, b = _colvar(tmp_path / "A", 900, 1), _colvar(tmp_path / "B", 700, 2)
    code = main(["fes", str(tmp_path / "A"), str(tmp_path / "B"), "--cv", "psi,1", "--bias", "metad.bias,4",
                 "--weights", "w", "--skip", "10", "--stride", "3", "--sigma", "0.3", "--bins", "21,17",
                 "--device", "cpu", "-o", str(tmp_path / "fes.npz"), "-q"])
    assert code == 0, capsys.readouterr().err
    kept = np.concatenate([a[10::3], b[10::3]])
    got = formats.read_grid(tmp_path / "fes.npz")
    want = cyfes.fes(kept[:, [2, 1]], 0.3, bias=kept[:, 3] + kept[:, 4], weights=kept[:, 5], bins=[21, 17],
                     ranges=[(kept[:, 2].min(), kept[:, 2].max()), (kept[:, 1].min(), kept[:, 1].max())],
                     device="cpu")
    assert got.names == ["psi", "phi"]
    np.testing.assert_allclose(got.values, want.values, rtol=1e-9, atol=1e-9)


def test_skip_past_the_end_is_still_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _colvar(tmp_path / "A", 50, 3)
    code = main(["fes", str(tmp_path / "A"), "--cv", "phi", "--skip", "60", "--sigma", "0.3", "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.endswith("A: no rows left after --skip 60 (the file has 50 rows)")


def test_warm_up_names_the_gpus_parse_device_would_use() -> None:
    assert backends._warm_ids("cpu") == () and backends._warm_ids("cuda:x") == ()
    assert backends._warm_ids(" GPU ") == (0,) and backends._warm_ids("auto") == (0,)
    assert backends._warm_ids("cuda:2,0") == (2, 0) and backends._warm_ids("cuda:0,") == ()  # refused there
    assert backends.warm_up("cpu") is None


@pytest.mark.skipif(_build_info.CUDA, reason="the message of a build without CUDA")
def test_no_cuda_build_reports_as_before(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The warm-up thread does nothing without CUDA; --device gpu fails after the read, in one line."""
    assert backends.warm_up("gpu") is None
    _colvar(tmp_path / "A", 50, 4)
    code = main(["fes", str(tmp_path / "A"), "--cv", "phi", "--sigma", "0.3", "--device", "gpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "built without CUDA" in err[0]


def _surface_seconds(code: str) -> list:
    """The `surface` seconds of each -v line a Python process running `code` printed."""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [float(t) for t in re.findall(r"surface ([0-9.]+) s", run.stderr)]


@pytest.mark.gpu
def test_first_gpu_surface_of_a_process_hides_the_cuda_start(tmp_path: Path) -> None:
    """The CUDA context (0.1-0.5 s) is made while a 6e6-row COLVAR is read: the first surface of a process costs
    less than half of what it costs over a warm one's when the warm-up is switched off; the surfaces agree."""
    _colvar(tmp_path / "block", 100_000, 5)
    text = (tmp_path / "block").read_text().split("\n", 1)[1]
    with open(tmp_path / "A", "w") as out:  # TEST FIXTURE: the block 60 times (quick to write, slow to read)
        out.write("#! FIELDS " + " ".join(NAMES) + "\n" + text * 60)
    argv = ["fes", str(tmp_path / "A"), "--cv", "phi,psi", "--bias", "metad.bias", "--sigma", "0.1", "--bins",
            "200", "--device", "gpu", "-v", "-q", "--force"]
    run = ("from cyfes.commands.main import main\n"
           f"for out in ('one.npz', 'two.npz'): main({argv!r} + ['-o', {str(tmp_path)!r} + '/' + out])")
    first, warm = _surface_seconds(run)
    cold = _surface_seconds("from cyfes.engine import backends; backends.warm_up = lambda device: None\n" + run)[0]
    assert first - warm <= 0.5 * (cold - warm) + 0.02, (first, warm, cold)
    one, two = formats.read_grid(tmp_path / "one.npz"), formats.read_grid(tmp_path / "two.npz")
    np.testing.assert_array_equal(one.values, two.values)
