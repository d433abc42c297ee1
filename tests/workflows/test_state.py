"""`cyfes state` (cyfes.io.opes, cyfes.workflows.state, cyfes.commands.state) against FES_from_State.py's own output on real
OPES state files (tests/data/opes/README.md says how it was made), and against a float64 loop for 3 CVs."""
from __future__ import annotations

import itertools
import shutil
from pathlib import Path
from typing import List

import numpy as np
import pytest

from cyfes._errors import InputError
from cyfes.commands import main as cli
from cyfes.io import opes as opes_io
from cyfes.workflows import state

OPES = Path(__file__).parents[1] / "data" / "opes"
REF = OPES / "fes_from_state"
KB = 0.0083144621


def sets_of(path: Path) -> dict:
    return {w[2]: w[3] for w in (line.split() for line in path.read_text().splitlines())
            if len(w) >= 4 and w[:2] == ["#!", "SET"]}


def run(tmp_path: Path, capsys: pytest.CaptureFixture, *argv: str) -> int:
    code = cli.main(["state", *argv])
    capsys.readouterr()
    return code


CASES = [  # (reference file, state file, flags as the README's commands)
    ("metad-bis.fes-full.dat", "metad-bis.State.data", ["--temp", "300", "--bin", "30,20", "--fmt", "%.17g",
                                                        "--deltaFat", "0"]),
    ("metad-bis.fes.dat", "metad-bis.State.data", ["--temp", "300", "--bin", "30,20"]),
    ("nonperiodic.fes.dat", "metad-bis-nonperiodic.State.data", ["--temp", "300", "--bin", "25,20", "--der",
                                                                 "--nomintozero", "--fmt", "%.17g"]),
    ("phi.fes.dat", "metad-bis-phi.State.data", ["--temp", "300", "--bin", "60", "--min", "-2.5", "--max", "2",
                                                 "--fmt", "%.17g", "--deltaFat", "-1"]),
]


@pytest.mark.parametrize("ref, source, flags", CASES)
def test_same_file_and_numbers_as_fes_from_state(tmp_path: Path, capsys: pytest.CaptureFixture, ref: str,
                                                 source: str, flags: List[str]) -> None:
    out = tmp_path / ref
    assert run(tmp_path, capsys, "--state", str(OPES / source), "-o", str(out), *flags) == 0
    ours, theirs = np.loadtxt(out), np.loadtxt(REF / ref)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)
    assert sets_of(out) == sets_of(REF / ref)
    assert out.read_text().splitlines()[0] == (REF / ref).read_text().splitlines()[0]
    assert out.read_text().count("\n\n") == (REF / ref).read_text().count("\n\n")  # the blank line after each row


def test_all_stored_explore_writes_one_file_per_state(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "explore-mw.fes.dat"
    assert run(tmp_path, capsys, "--state", str(OPES / "explore-mw.State.data"), "--kt", "2.5", "--bin", "20,15",
               "--all_stored", "--fmt", "%.17g", "-o", str(out)) == 0
    for n in (1, 2):
        ours, theirs = tmp_path / f"explore-mw.fes_{n}.dat", REF / f"explore-mw.fes_{n}.dat"
        np.testing.assert_allclose(np.loadtxt(ours), np.loadtxt(theirs), rtol=1e-10, atol=1e-12)
    assert not out.exists()


def test_last_state_only_without_all_stored(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "fes.dat"
    assert run(tmp_path, capsys, "-f", str(OPES / "explore-mw.State.data"), "--kt", "2.5", "--bin", "20,15",
               "--fmt", "%.17g", "-o", str(out)) == 0
    np.testing.assert_allclose(np.loadtxt(out), np.loadtxt(REF / "explore-mw.fes_2.dat"), rtol=1e-10, atol=1e-12)


def test_three_cvs_against_a_float64_loop() -> None:
    """A 3-CV state (the script stops at 2): every grid point summed kernel by kernel in Python."""
    rng = np.random.default_rng(7)
    k = 5
    centers, sigmas, heights = rng.uniform(-1, 1, (k, 3)), rng.uniform(0.2, 0.5, (k, 3)), rng.uniform(0.5, 2, k)
    rows = "\n".join(" ".join(f"{v:.9f}" for v in [10.0, *c, *s, h]) for c, s, h in zip(centers, sigmas, heights))
    text = ("#! FIELDS time a b c sigma_a sigma_b sigma_c height\n#! SET action OPES_METAD_EXPLORE_state\n"
            "#! SET biasfactor 10\n#! SET epsilon 0.001\n#! SET kernel_cutoff 3.5\n#! SET compression_threshold 1\n"
            "#! SET zed 1.5\n#! SET sum_weights 20\n#! SET sum_weights2 30\n#! SET counter 4\n"
            "#! SET min_c -pi\n#! SET max_c pi\n" + rows + "\n")
    st = opes_io.parse_states(text, "three.State")[0]
    result = state.compute(st, state.Options(kbt=2.5, grid_bin="4,3,5"), [])
    c, s, h = st.centers, st.sigmas, st.heights  # as the file holds them (9 digits)
    axes = [np.linspace(c[:, 0].min(), c[:, 0].max(), 5), np.linspace(c[:, 1].min(), c[:, 1].max(), 4),
            np.linspace(-np.pi, np.pi, 6)[:-1]]
    prob = np.zeros((5, 4, 5))
    for i, j, m in itertools.product(range(5), range(4), range(5)):
        total = 0.0
        for q in range(k):
            d0 = (axes[0][i] - c[q, 0]) / s[q, 0]
            d1 = (axes[1][j] - c[q, 1]) / s[q, 1]
            dc = abs(axes[2][m] - c[q, 2])
            d2 = min(dc, 2 * np.pi - dc) / s[q, 2]
            total += h[q] * max(np.exp(-0.5 * (d0 * d0 + d1 * d1 + d2 * d2)) - np.exp(-0.5 * 3.5 ** 2), 0.0)
        prob[i, j, m] = total / (1.5 * 4) + 0.001
    expected = -2.5 * 10 * np.log(prob / prob.max())
    for ours, theirs in zip(result.grid.axes, axes):
        np.testing.assert_allclose(ours, theirs, rtol=1e-14)
    np.testing.assert_allclose(result.fes, expected, rtol=1e-12, atol=1e-12)
    text_out = state.file_text(result, "%.17g")
    body = np.loadtxt(text_out.splitlines())
    assert body.shape == (100, 4)
    np.testing.assert_allclose(body[:5, 0], axes[0], rtol=1e-15)  # the first CV runs fastest
    np.testing.assert_allclose(body[:, 3], expected.transpose(2, 1, 0).ravel(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("OPES_METAD_state", "OPES_EXPANDED_state"), "line 1: action 'OPES_EXPANDED_state'"),
    (lambda t: t.replace("#! SET zed  0.897305\n", ""), "line 1: the state has no '#! SET zed' line"),
    (lambda t: t.replace("79.079946", "79.07x946"), "line 22, value 6 (height): '79.07x946' is not a number"),
    (lambda t: t.replace("sigma_psi", "sigma_chi"), "line 1: FIELDS 'time phi psi sigma_phi sigma_chi height'"),
    (lambda t: t.replace("-1.498879", "-1.49\x008879"), "line 22, value 2 (phi)"),
    (lambda t: t.replace("79.079946", "-79.079946"), "line 22, value 6 (height): '-79.079946' is not > 0"),
    (lambda t: t.split("#! FIELDS")[0] + "", "no '#! FIELDS' line; not an OPES state (STATE_WFILE) or KERNELS (FILE=) file"),
])
def test_bad_state_files_are_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture, edit,
                                             message: str) -> None:
    bad = tmp_path / "State.data"
    bad.write_text(edit((OPES / "metad-bis.State.data").read_text()))
    out = tmp_path / "fes.dat"
    assert cli.main(["state", "-f", str(bad), "--temp", "300", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: {message}" in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_refusals(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    copy = tmp_path / "State.data"
    shutil.copy(OPES / "metad-bis.State.data", copy)
    before = copy.read_bytes()
    assert cli.main(["state", "-f", str(copy), "--temp", "300", "-o", str(copy)]) == 2
    assert "is an input of this run" in capsys.readouterr().err
    assert copy.read_bytes() == before
    assert cli.main(["state", "-f", str(copy), "--temp", "300", "--der", "-o", str(tmp_path / "f")]) == 2
    assert "--der: derivatives are not supported with periodic CVs" in capsys.readouterr().err
    assert cli.main(["state", "-f", str(copy), "--temp", "300", "--bin", "10,10,10", "-o", str(tmp_path / "f")]) == 2
    assert "--bin 10,10,10: expected 2 comma-separated values" in capsys.readouterr().err
    assert cli.main(["state", "-f", str(copy), "--temp", "300", "--fmt", "%s %s", "-o", str(tmp_path / "f")]) == 2
    assert "--fmt '%s %s': not a format for one number" in capsys.readouterr().err
    assert not (tmp_path / "f").exists()


def test_stored_names_follow_the_script() -> None:
    assert state.stored_names("fes.dat", 2) == ["fes_1.dat", "fes_2.dat"]
    assert state.stored_names("out/fes", 1) == ["out/fes_1"]
    assert state.stored_names("a.b/fes", 1) == ["a.b/fes_1"]
    assert state.stored_names("out/", 1) == ["out/fes_1.dat"]


def test_temperature_gives_kt_as_the_script(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out_t, out_k = tmp_path / "t.dat", tmp_path / "k.dat"
    f = str(OPES / "metad-bis.State.data")
    assert run(tmp_path, capsys, "-f", f, "--temp", "300", "--fmt", "%.17g", "--bin", "8,8", "-o", str(out_t)) == 0
    assert run(tmp_path, capsys, "-f", f, "--kt", repr(300 * KB), "--fmt", "%.17g", "--bin", "8,8",
               "-o", str(out_k)) == 0
    assert out_t.read_text() == out_k.read_text()
    with pytest.raises(InputError, match="no kernels"):
        opes_io.parse_states("#! FIELDS time x sigma_x height\n#! SET action OPES_METAD_state\n#! SET biasfactor 1\n"
                             "#! SET epsilon 1\n#! SET kernel_cutoff 1\n#! SET zed 1\n#! SET sum_weights 1\n", "s")


def test_default_format_gives_the_scripts_file_byte_for_byte(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "fes.dat"
    assert run(tmp_path, capsys, "--state", str(OPES / "metad-bis.State.data"), "--temp", "300", "--bin", "30,20",
               "-o", str(out)) == 0
    assert out.read_bytes() == (REF / "metad-bis.fes.dat").read_bytes()
