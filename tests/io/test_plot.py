"""cyfes.io.plot: real image files of sensible size for 1-, 2- and 3-D surfaces, and clear failures."""
from __future__ import annotations

import struct
import sys
from pathlib import Path
from typing import Tuple

import numpy as np
import pytest

import cyfes
from cyfes._errors import InputError
from cyfes.io import plot

pytest.importorskip("matplotlib")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> Tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _result(dim: int, blocks: int = 1) -> cyfes.FESResult:
    rng = np.random.default_rng(dim)
    return cyfes.fes(rng.normal(size=(500, dim)), 0.3, bins=[40, 30, 5][:dim], blocks=blocks, device="cpu",
                     names=["phi", "psi", "chi"][:dim])


@pytest.mark.parametrize("dim, blocks, size", [(1, 3, (960, 720)), (2, 1, (960, 720)), (3, 1, (1500, 900))])
def test_png_of_each_dimension(tmp_path: Path, dim: int, blocks: int, size: Tuple[int, int]) -> None:
    path = _result(dim, blocks).plot(tmp_path / "fes.png")
    assert _png_size(path) == size  # inches x 150 dpi
    assert path.stat().st_size > 10_000  # drawn, not blank
    assert [p.name for p in tmp_path.iterdir()] == ["fes.png"]


def test_2d_picture_has_filled_contours(tmp_path: Path) -> None:
    """Filled contours draw the colour map's bands: the picture holds many distinct colours of viridis."""
    from matplotlib import colormaps
    from matplotlib.image import imread
    image = imread(plot.plot_result(_result(2), tmp_path / "fes.png", title="t", levels=12))
    assert image.shape[:2] == (720, 960)
    pixels = np.unique(image[..., :3].reshape(-1, 3), axis=0)
    bands = colormaps["viridis"]((np.arange(12) + 0.5) / 12)[:, :3]  # each band is drawn in its midpoint colour
    hits = [np.min(np.abs(pixels - band).sum(axis=1)) < 0.02 for band in bands]
    assert sum(hits) >= 10, hits  # nearly every band colour appears in the picture


@pytest.mark.parametrize("ext, magic", [(".pdf", b"%PDF"), (".svg", b"<?xml")])
def test_other_image_formats(tmp_path: Path, ext: str, magic: bytes) -> None:
    path = _result(2).plot(tmp_path / f"fes{ext}", vmax=5.0)
    assert path.read_bytes()[:len(magic)] == magic


def test_bad_requests(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown image extension '.bmp'"):
        _result(1).plot(tmp_path / "fes.bmp")
    explicit = cyfes.fes(np.random.default_rng(0).normal(size=(50, 1)), 0.3, grid=np.linspace(-1, 1, 9),
                         device="cpu")
    with pytest.raises(InputError, match="regular grid"):
        explicit.plot(tmp_path / "fes.png")
    with pytest.raises(InputError, match="does not exist"):
        _result(1).plot(tmp_path / "missing" / "fes.png")
    assert not list(tmp_path.iterdir())


def test_missing_matplotlib_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    with pytest.raises(plot.PlotUnavailable, match=r"pip install 'cyfes\[plot\]'"):
        _result(1).plot(tmp_path / "fes.png")
    assert not list(tmp_path.iterdir())
