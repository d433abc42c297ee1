"""Benchmark of the text readers: MB/s of each reader on the same generated files, in one run, and the whole
`cyfes fes` command against its parts (-v: read, surface, write).

    python bench/bench_files.py [--rows 1e6] [--wide-rows 2e5] [--hills 5e5] [--repeat 3] [--baseline-python PY]

Files (PLUMED formatting): a 4-column COLVAR (`--rows`, " %f"-style single spaces), a 30-column COLVAR read for
3 columns, a HILLS file (PLUMED's padded "%20.16f"-style columns: several spaces between fields) and the
4-column COLVAR gzipped (MB/s of the inflated text). Readers: cyfes (1 thread and all), numpy.loadtxt,
pandas' C engine (sep=r"\\s+", comment="#"), pyarrow.csv and polars where installed; `ok` says whether a
reader's numbers equal cyfes' (pyarrow and polars split at every single space and have no comment-line rule,
so a PLUMED file's leading and repeated spaces become empty columns). --baseline-python times another
interpreter's cyfes.io.formats.read_table on the same files (an older checkout: the reader this one replaced).
Each time is the best of --repeat.
"""
from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from cyfes.commands import main as cli
from cyfes.io import _tableparse, formats


def write_files(tmp: Path, rows: int, wide_rows: int, hills: int) -> Dict[str, Tuple[Path, List[str]]]:
    rng = np.random.default_rng(0)
    files: Dict[str, Tuple[Path, List[str]]] = {}
    data = np.column_stack([np.arange(rows) * 0.002, rng.uniform(-np.pi, np.pi, (rows, 2)), rng.normal(size=rows)])
    path = tmp / "COLVAR"
    with open(path, "w") as out:
        out.write("#! FIELDS time phi psi metad.bias\n#! SET min_phi -pi\n#! SET max_phi pi\n"
                  "#! SET min_psi -pi\n#! SET max_psi pi\n")
        np.savetxt(out, data, fmt=" %f")
    files["colvar 4 col"] = (path, [])
    wide = tmp / "COLVAR30"
    names = ["time"] + [f"d{i}" for i in range(28)] + ["metad.bias"]
    with open(wide, "w") as out:
        out.write("#! FIELDS " + " ".join(names) + "\n")
        np.savetxt(out, rng.normal(size=(wide_rows, 30)), fmt=" %f")
    files["colvar 30 col, 3 read"] = (wide, ["d3", "d17", "metad.bias"])
    h = tmp / "HILLS"
    hill = np.column_stack([np.arange(hills) * 1.0, rng.uniform(-np.pi, np.pi, (hills, 2)),
                            np.full((hills, 2), 0.35), rng.uniform(0.5, 1.5, hills), np.full(hills, 10.0)])
    with open(h, "w") as out:
        out.write("#! FIELDS time phi psi sigma_phi sigma_psi height biasf\n#! SET multivariate false\n"
                  "#! SET min_phi -pi\n#! SET max_phi pi\n#! SET min_psi -pi\n#! SET max_psi pi\n")
        np.savetxt(out, hill, fmt="%20.16f")
    files["hills"] = (h, [])
    gz = tmp / "COLVAR.gz"
    gz.write_bytes(gzip.compress(path.read_bytes(), compresslevel=6))
    files["colvar 4 col .gz"] = (gz, [])
    return files


def best(fn: Callable[[], object], repeat: int) -> Tuple[float, object]:
    """The best wall time of `repeat` calls and the last result; best_cpu holds the CPU seconds of that call
    (all threads: MB per CPU second is the speed of one core however loaded the machine is)."""
    times, out = [], None
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        out = fn()
        times.append((time.perf_counter() - start, time.process_time() - cpu))
    wall, best_cpu[0] = min(times)
    return wall, out


best_cpu = [0.0]


def others(path: Path, columns: List[str], names: List[str]) -> Dict[str, Callable[[], np.ndarray]]:
    """The other readers, each asked for the same columns (indices into the file's FIELDS)."""
    use = [names.index(c) for c in columns] if columns else None
    skip = sum(1 for line in _head(path) if line.startswith("#"))
    out: Dict[str, Callable[[], np.ndarray]] = {"numpy.loadtxt": lambda: np.loadtxt(path, usecols=use, ndmin=2)}
    try:
        import pandas as pd
        out["pandas (C engine)"] = lambda: pd.read_csv(path, sep=r"\s+", comment="#", header=None, usecols=use,
                                                       engine="c").to_numpy(dtype=float)
    except ImportError:
        pass
    try:
        import pyarrow.csv as pacsv
        ro = pacsv.ReadOptions(skip_rows=skip, autogenerate_column_names=True, block_size=16 << 20)
        out["pyarrow.csv"] = lambda: _arrow(pacsv.read_csv(path, read_options=ro,
                                                           parse_options=pacsv.ParseOptions(delimiter=" ")), use)
    except ImportError:
        pass
    try:
        import polars as pl
        out["polars"] = lambda: pl.read_csv(path, separator=" ", comment_prefix="#", has_header=False,
                                            columns=use).to_numpy().astype(float)
    except ImportError:
        pass
    return out


def _head(path: Path) -> List[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        return [fh.readline() for _ in range(20)]


def _arrow(table, use):  # type: ignore[no-untyped-def]
    arr = np.column_stack([c.to_numpy(zero_copy_only=False) for c in table.columns]).astype(float)
    return arr[:, use] if use else arr


def baseline(py: str, path: Path, repeat: int) -> Optional[float]:
    code = (f"import time; from cyfes.io import formats; t=[]\nfor _ in range({repeat}):\n s=time.perf_counter(); "
            f"formats.read_table({str(path)!r}); t.append(time.perf_counter()-s)\nprint(min(t))")
    run = subprocess.run([py, "-c", code], capture_output=True, text=True)
    return float(run.stdout.split()[-1]) if run.returncode == 0 else None


def text_bytes(path: Path) -> int:
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as fh:
            return sum(len(b) for b in iter(lambda: fh.read(1 << 20), b""))
    return path.stat().st_size


def bench_readers(files: Dict[str, Tuple[Path, List[str]]], repeat: int, base: Optional[str]) -> None:
    print(f"{'file':<24}{'reader':<24}{'MB/s':>9}{'s':>9}{'MB/cpu-s':>10}  ok")
    for label, (path, columns) in files.items():
        size = text_bytes(path)
        names = formats.read_table(path).names
        ours = None
        for threads in (1, 0):
            t, table = best(lambda: formats.read_table(path, columns=columns or None, threads=threads), repeat)
            ours = table.data
            tag = f"cyfes ({threads or _tableparse.max_threads()} thr)"
            print(f"{label:<24}{tag:<24}{size / 1e6 / t:9.0f}{t:9.3f}{size / 1e6 / best_cpu[0]:10.0f}  yes")
        for name, fn in others(path, columns, names).items():
            try:
                t, got = best(fn, repeat)
                ok = "yes" if got.shape == ours.shape and np.array_equal(got, ours) else f"no {got.shape}"
            except Exception as exc:  # the readers refuse these files in their own ways: say which
                print(f"{label:<24}{name:<24}{'-':>9}{'-':>9}{'-':>10}  failed: {' '.join(str(exc).split())[:50]}")
                continue
            print(f"{label:<24}{name:<24}{size / 1e6 / t:9.0f}{t:9.3f}{size / 1e6 / best_cpu[0]:10.0f}  {ok}")
        if base:
            t = baseline(base, path, repeat)
            print(f"{label:<24}{'previous cyfes reader':<24}" + (f"{size / 1e6 / t:9.0f}{t:9.3f}{'':>10}  (all columns)"
                                                               if t else f"{'-':>9}{'-':>9}  failed"))


def _best_command(cmd: List[str], repeat: int) -> Tuple[float, str]:
    """The best wall time of a whole command and the last line it printed on stderr."""
    walls, lines = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        run = subprocess.run(cmd, capture_output=True, text=True)
        walls.append(time.perf_counter() - start)
        lines.append(run.stderr.strip().splitlines()[-1] if run.stderr.strip() else f"rc {run.returncode}")
    k = int(np.argmin(walls))
    return walls[k], lines[k]


def bench_sum_hills(path: Path, tmp: Path, repeat: int, device: str) -> None:
    """The whole `cyfes sum_hills` command on the HILLS file, against the same sum from arrays in this process."""
    cmd = [sys.executable, "-m", "cyfes", "sum_hills", "--hills", str(path), "--bin", "199,199", "--device", device,
           "--outfile", str(tmp / "sum.dat"), "-q"]
    wall, line = _best_command(cmd, repeat)
    read, _ = best(lambda: formats.read_table(path), repeat)
    print(f"cyfes sum_hills {path.name} ({path.stat().st_size / 1e6:.0f} MB) --bin 199,199 --device {device}: wall "
          f"{wall:.3f} s (reading alone {read:.3f} s){'' if line.startswith('rc 0') else '; ' + line}")


def bench_command(path: Path, tmp: Path, repeat: int, device: str = "cpu") -> None:
    cmd = [sys.executable, "-m", "cyfes", "fes", str(path), "--cv", "phi,psi", "--bias", "metad.bias",
           "--sigma", "0.1", "--bins", "200", "--device", device, "-o", str(tmp / "fes.dat"), "-v", "-q", "--force"]
    wall, line = _best_command(cmd, repeat)
    print(f"cyfes fes {path.name} --cv phi,psi --bias metad.bias --bins 200 --device {device}: wall "
          f"{wall:.3f} s; {line}")
    bench_start_up(repeat)


def bench_start_up(repeat: int) -> None:
    """`cyfes --help` and every command's --help (which load no numpy) beside what any start costs, measured in
    the same run: an empty interpreter and `import numpy`."""
    script = Path(sys.executable).with_name("cyfes")
    runs = {"python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import numpy'": [sys.executable, "-c", "import numpy"],
            "cyfes --help": [sys.executable, "-m", "cyfes", "--help"],
            "cyfes info": [sys.executable, "-m", "cyfes", "info"]}
    runs.update({f"cyfes {name} --help": [sys.executable, "-m", "cyfes", name, "--help"]
                 for name, _, _ in cli.COMMANDS})
    if script.is_file():
        runs["console script cyfes --help"] = [str(script), "--help"]
    walls = {label: best(lambda cmd=cmd: subprocess.run(cmd, capture_output=True), repeat)[0]
             for label, cmd in runs.items()}
    for label, t in walls.items():
        print(f"{label}: {t:.3f} s ({t / walls['python -c pass']:.1f}x python -c pass)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=float, default=1e6)
    ap.add_argument("--wide-rows", type=float, default=2e5)
    ap.add_argument("--hills", type=float, default=5e5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline-python", help="an interpreter whose cyfes is the reader to compare against")
    ap.add_argument("--device", default="cpu", help="where the whole commands compute (cpu, gpu, auto)")
    ap.add_argument("--commands-only", action="store_true", help="time only the whole commands and the start-up")
    args = ap.parse_args()
    print(f"{os.cpu_count()} cores, {_tableparse.max_threads()} OpenMP threads, load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        files = write_files(Path(tmp), int(args.rows), int(args.wide_rows), int(args.hills))
        if not args.commands_only:
            bench_readers(files, args.repeat, args.baseline_python)
        bench_command(files["colvar 4 col"][0], Path(tmp), args.repeat, args.device)
        bench_sum_hills(files["hills"][0], Path(tmp), args.repeat, args.device)


if __name__ == "__main__":
    main()
