"""Fuzzing the release tool: mutated wheels (the auditwheel-repaired seed wheel with real ELF files, and a wheel
whose module writes a marker if imported), a mutated .conda and mutated release.yaml files go through `check` and
`fix`. Every run must end with exit 0, 1 or 2 and no traceback, an exit 2 must say why in `error:` lines, nothing
may be written outside the work dir (TMPDIR included) and no code from an artifact may run.

Bounded: at most MUTATIONS runs and TIME_BUDGET_S seconds, from a fixed seed so a failure can be replayed. Each
run is the installed `cyfes-release` console script (conftest's cyfes_release), so its entry point's handling of
what escapes main() is under test too, at about 0.2 s a run.
"""
from __future__ import annotations

import io
import os
import random
import shutil
import time
import zipfile

import pytest

import hostile as h
from tools.release.conda.archive import zstd_module

zstd = zstd_module()

MUTATIONS = 200
TIME_BUDGET_S = 120
SEED = int(os.environ.get("CYFES_FUZZ_SEED", "20261127"))  # set it to replay or to explore
pytestmark = pytest.mark.slow


def flip(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out)


def splice(rng: random.Random, data: bytes) -> bytes:
    """Truncate, cut a slice out, repeat one, or insert random bytes."""
    i, j = sorted(rng.randrange(len(data) + 1) for _ in range(2))
    choice = rng.randrange(4)
    if choice == 0:
        return data[:i]
    if choice == 1:
        return data[:i] + data[j:]
    if choice == 2:
        return data[:j] + data[i:j] + data[j:]
    return data[:i] + rng.randbytes(rng.randint(1, 64)) + data[i:]


def mutate_member(rng: random.Random, data: bytes, inner: bool) -> bytes:
    """Rewrite the zip with one member mutated (CRC right, so the damage reaches the parsers behind the zip);
    for a .conda (`inner`) the tar inside the zstd stream is mutated and recompressed."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        entries = [(i, zf.read(i)) for i in zf.infolist()]
    k = rng.randrange(len(entries))
    info, blob = entries[k]
    if inner and info.filename.endswith(".tar.zst"):
        blob = zstd.compress(flip(rng, zstd.decompress(blob)) if rng.random() < 0.5 else
                             splice(rng, zstd.decompress(blob)))
    else:
        blob = flip(rng, blob) if blob and rng.random() < 0.5 else splice(rng, blob)
    entries[k] = (info, blob)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for i, b in entries:
            zf.writestr(i, b)
    return out.getvalue()


def mutate_bytes(rng: random.Random, data: bytes, inner: bool) -> bytes:
    r = rng.random()
    return flip(rng, data) if r < 0.3 else splice(rng, data) if r < 0.5 else mutate_member(rng, data, inner)


YAML_NOISE = ["[", "]", "{", "}", ":", ",", "-", "?", "&a", "*a", "!!python/object:os.system", "|", ">", "'", '"',
              "#", "%YAML 1.1", "@", "\n", "  ", "0x10", "1e400", "~", "<<: *a", "\t", "\x00", "\ufeff", "3.1" * 50]


def mutate_yaml(rng: random.Random, text: str) -> str:
    lines = text.splitlines(keepends=True)
    for _ in range(rng.randint(1, 4)):
        r, i = rng.random(), rng.randrange(len(lines))
        if r < 0.3:
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif r < 0.5:
            del lines[i]
        else:
            pos = rng.randrange(len(lines[i]) + 1)
            lines[i] = lines[i][:pos] + rng.choice(YAML_NOISE) + lines[i][pos:]
        lines = lines or ["\n"]
    return "".join(lines)


@pytest.fixture
def corpus(seed, tmp_path) -> dict[str, bytes]:
    marker = tmp_path / "ran"
    d = tmp_path / "corpus"
    d.mkdir()
    wheel = h.write_wheel(d / h.WHEEL_NAME, {**h.wheel_files(marker), "seedpkg/l": h.Link("data.txt")})
    files = {**h.conda_payload(marker), "lib/l": h.Link("../bin/seed")}
    conda = h.write_conda(d / f"{h.DIST}-{h.VERSION}-py_0.conda", list(files.items()),
                          list(h.info_files(files).items()))
    return {seed["repaired"].name: seed["repaired"].read_bytes(), wheel.name: wheel.read_bytes(),
            conda.name: conda.read_bytes(), "release.yaml": (h.ROOT / "release.yaml").read_bytes()}


def test_fuzz_check_and_fix(cyfes_release, corpus, tmp_path):
    rng = random.Random(SEED)
    work, marker = tmp_path / "work", tmp_path / "ran"
    work.mkdir()
    tmp = work / "tmp"
    tmp.mkdir()
    artifacts = [n for n in corpus if n != "release.yaml"]
    start, codes = time.monotonic(), {0: 0, 1: 0, 2: 0}
    for n in range(MUTATIONS):
        if time.monotonic() - start > TIME_BUDGET_S:
            break
        name = rng.choice(artifacts)
        config = work / "release.yaml"
        config.write_bytes(corpus["release.yaml"])
        if rng.random() < 0.25:  # a mutated config with an intact artifact
            config.write_text(mutate_yaml(rng, corpus["release.yaml"].decode()), encoding="utf-8", errors="replace")
            (work / name).write_bytes(corpus[name])
        else:
            (work / name).write_bytes(mutate_bytes(rng, corpus[name], name.endswith(".conda")))
        command = ["check", name] if name.endswith(".conda") or rng.random() < 0.5 else ["fix", name, "-o", "out"]
        before = h.snapshot(work)
        proc = h.run_tool(cyfes_release, work, "--config", str(config), *command, timeout=120)
        code, err = proc.returncode, proc.stderr
        assert code in (0, 1, 2), (n, name, command, err)
        assert "Traceback" not in err, (n, err)
        if code == 2:
            assert err and all(ln.startswith("error: ") for ln in err.splitlines()), (n, err)
        after = h.snapshot(work)
        written = {k for k in after if k.startswith("out")}
        assert {k: v for k, v in after.items() if k not in written} == before, (n, name, command)
        assert written <= {"out", f"out/{name}"} and (code != 2 or not written), (n, written, err)
        assert not any(tmp.iterdir()), (n, list(tmp.iterdir()))
        assert not marker.exists(), n
        shutil.rmtree(work / "out", ignore_errors=True)
        (work / name).unlink()
        codes[code] += 1
    assert sum(codes.values()) >= 100, codes  # the budget allowed far too few runs to mean anything
    assert codes[2] > 0 and codes[0] + codes[1] > 0, codes  # mutations were both caught and survived
