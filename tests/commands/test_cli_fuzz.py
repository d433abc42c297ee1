"""A bounded fuzz of `cyfes fes`: mutated COLVAR files and argument lists.

Every case must end with exit status 0, 1 or 2 (no exception escapes `main`, so no traceback), print only
`cyfes: ...` lines on stderr, leave no temporary file, write nothing outside the work directory, and write no
output at all when it fails. The seed is printed; CYFES_TEST_SEED=<seed> replays a run.
"""
from __future__ import annotations

import gzip
import os
import time
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest

from cyfes.commands.main import main
from reference import tree

#: Cases per run and the time bound (CYFES_FUZZ_CASES / CYFES_FUZZ_SECONDS run a longer campaign).
CASES = int(os.environ.get("CYFES_FUZZ_CASES", "300"))
BUDGET_S = float(os.environ.get("CYFES_FUZZ_SECONDS", "60"))
HOSTILE_TOKENS = ["nan", "inf", "-inf", "1e308", "-1e308", "1e-320", "1_000", "0x10", "\u0661", "\x00", "\ufeff",
                  "9" * 400, "--", "#", "#!", "1,2", "\t", "\r", "e5", "1e", "+-1", ".", "pi"]
HOSTILE_LINES = ["#! FIELDS time phi phi metad.bias", "#! FIELDS", "#! FIELDS time psi metad.bias",
                 "#! SET min_phi " + "1*" * 3000 + "1", "#! SET min_phi -pi", "#! SET max_phi nope", "# comment",
                 "1 2", "1 2 3 4 5 6 7", "", "\ufeff#! FIELDS time phi psi metad.bias"]
HOSTILE_VALUES = ["0", "-1", "nan", "inf", "1e308", "1e-300", "", ",", "phi=", "pi/0", "2**31", "abc", "1,2,3,4",
                  "phi=-pi,pi", "x=1,2", "3000000000", "1*" * 5000 + "1", "-pi", "none", "phi", "5", "0.01"]
EXTRA_OPTIONS = [["--periodic", "phi=-pi,pi"], ["--periodic", "phi=none"], ["--range", "phi=0,0"],
                 ["--range", "psi=-1e308,1e308"], ["--blocks", "50"], ["--blocks", "2"], ["--skip", "1000"],
                 ["--stride", "0"], ["--stride", "7"], ["--threads", "100000"], ["--precision", "float32"],
                 ["--format", "cube"], ["-o", "out.cube"], ["-o", "out.npz"], ["-o", "out.grid"], ["-o", "out.dat"],
                 ["--units", "kcal/mol"], ["-T", "0"], ["-T", "1e-300"], ["--weights", "psi"], ["--weights", "time"],
                 ["--cv", "time"], ["--force"], ["-o", "in.dat"], ["-o", "."], ["-o", "nodir/x.dat"]]


def base_colvar(rng: np.random.Generator) -> str:
    n = int(rng.integers(5, 60))
    data = np.column_stack([np.arange(n), rng.uniform(-3, 3, n), rng.normal(0, 1, n), rng.uniform(0, 5, n)])
    head = "#! FIELDS time phi psi metad.bias\n#! SET min_phi -pi\n#! SET max_phi pi\n"
    half = n // 2
    body = [head + "\n".join(" ".join(f"{v:.6f}" for v in row) for row in part) + "\n"
            for part in (data[:half], data[half:])]
    return "".join(body)


def mutate_text(text: str, rng: np.random.Generator) -> str:
    lines = text.split("\n")
    for _ in range(int(rng.integers(1, 4))):
        lines = lines or [""]
        k = int(rng.integers(0, len(lines)))
        choice = int(rng.integers(0, 7))
        if choice == 0:
            words = lines[k].split(" ")
            words[int(rng.integers(0, len(words)))] = str(rng.choice(HOSTILE_TOKENS))
            lines[k] = " ".join(words)
        elif choice == 1:
            lines.insert(k, str(rng.choice(HOSTILE_LINES)))
        elif choice == 2 and len(lines) > 1:
            del lines[k]
        elif choice == 3:
            lines.insert(k, lines[k])
        elif choice == 4:
            lines = lines[:k]
        elif choice == 5:
            lines[k] = lines[k][: int(rng.integers(0, len(lines[k]) + 1))]
        else:
            lines[k] = lines[k].replace(" ", str(rng.choice([",", "\t", "  ", ""])))
    return "\n".join(lines)


def write_input(work: Path, rng: np.random.Generator) -> str:
    text = mutate_text(base_colvar(rng), rng) if rng.random() < 0.9 else base_colvar(rng)
    raw = text.encode("utf-8", "surrogatepass")
    if rng.random() < 0.15:
        raw = gzip.compress(raw)
        if rng.random() < 0.5:
            cut = int(rng.integers(0, len(raw)))
            raw = raw[:cut] + bytes(rng.integers(0, 256, int(rng.integers(0, 8))).astype(np.uint8))
        name = "in.dat.gz"
    else:
        if rng.random() < 0.05:
            raw = bytes(b ^ 0xFF if rng.random() < 0.02 else b for b in raw)
        name = "in.dat"
    (work / name).write_bytes(raw)
    return name


def mutate_args(name: str, rng: np.random.Generator) -> List[str]:
    argv = ["fes", name, "--cv", "phi,psi", "--bias", "metad.bias", "--sigma", "0.3", "--bins", "12", "-o",
            "out.dat", "--device", "cpu", "-q"]
    for _ in range(int(rng.integers(0, 4))):
        choice = int(rng.integers(0, 3))
        if choice == 0:  # replace a value
            k = int(rng.choice([3, 5, 7, 9]))
            argv[k] = str(rng.choice(HOSTILE_VALUES))
        elif choice == 1:
            argv += list(EXTRA_OPTIONS[int(rng.integers(0, len(EXTRA_OPTIONS)))])
        elif len(argv) > 4:  # drop an option and its value
            k = int(rng.choice([2, 4, 6, 8, 10]))
            if k + 1 < len(argv) and argv[k].startswith("-"):
                del argv[k:k + 2]
    return argv


def one_case(work: Path, rng: np.random.Generator, capsys: pytest.CaptureFixture) -> Tuple[int, str]:
    for entry in work.iterdir():
        entry.unlink() if not entry.is_dir() else None
    name = write_input(work, rng)
    argv = mutate_args(name, rng)
    before = tree(work)
    code = main(argv)
    _, err = capsys.readouterr()
    where = f"argv={argv!r} input={(work / name).read_bytes()[:2000]!r}"
    assert code in (0, 1, 2), where
    assert all(line.startswith("cyfes: ") for line in err.splitlines()), (err, where)
    after = tree(work)
    assert not [n for n in after if n.endswith(".part") or n.endswith(".old")], (sorted(after), where)
    if code != 0:
        assert after == before, (sorted(after), where)
    return code, err


@pytest.mark.slow
def test_fuzz_cyfes_fes(tmp_path: Path, rng: np.random.Generator, capsys: pytest.CaptureFixture,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "outside.txt").write_text("untouched")
    monkeypatch.chdir(work)
    outside = {k: v for k, v in tree(tmp_path).items() if not k.startswith("work")}
    codes = {0: 0, 1: 0, 2: 0}
    start = time.perf_counter()
    done = 0
    while done < CASES and time.perf_counter() - start < BUDGET_S:
        code, _ = one_case(work, rng, capsys)
        codes[code] += 1
        done += 1
    assert {k: v for k, v in tree(tmp_path).items() if not k.startswith("work")} == outside
    print(f"{done} cases in {time.perf_counter() - start:.1f} s, exit codes {codes}")
    assert done >= min(100, CASES) and codes[0] > 0 and codes[2] > 0
