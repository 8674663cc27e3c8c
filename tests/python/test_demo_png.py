"""`python -m convx demo --png FILE` writes a valid PNG of the expected size, with the
built-in writer (numpy only) and with matplotlib when it is installed; plain `demo` is
still the text check."""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

import convx
from convx import _demo_image
from convx.__main__ import main


def read_png(path: Path) -> tuple[int, int, int, bytes]:
    """(width, height, colour type, the decompressed scanlines) of an 8-bit PNG, checking
    the signature and every chunk's CRC."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        tag, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(tag + body) & 0xFFFFFFFF, f"bad CRC in {tag!r}"
        chunks.append((tag, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, colour = struct.unpack(">IIBB", chunks[0][1][:10])
    assert depth == 8
    pixels = zlib.decompress(b"".join(body for tag, body in chunks if tag == b"IDAT"))
    return width, height, colour, pixels


def test_demo_png_without_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` fails
    path = tmp_path / "demo.png"
    assert main(["demo", "--png", str(path)]) == 0
    assert "procedural scene" in capsys.readouterr().out
    width, height, colour, pixels = read_png(path)
    # 12 panels of 256 x 256, 4 to a row, 6-pixel gutters.
    assert (width, height) == (4 * 262 + 6, 3 * 262 + 6)
    assert colour == 0 and len(pixels) == height * (width + 1)
    image = np.frombuffer(pixels, np.uint8).reshape(height, width + 1)[:, 1:]
    panels, _ = _demo_image.demo_panels()
    np.testing.assert_array_equal(image, _demo_image.grid(panels))
    assert len({image[6:262, 6 + 262 * i:262 * (i + 1)].tobytes() for i in range(4)}) == 4


def test_demo_png_with_matplotlib(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "demo.png"
    assert main(["demo", "--png", str(path)]) == 0
    width, height, _, _ = read_png(path)
    assert (width, height) == (1200, 900)


def test_png_writer_round_trips(tmp_path: Path, rng: np.random.Generator) -> None:
    for shape in ((5, 7), (3, 4, 3)):
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        path = tmp_path / "small.png"
        _demo_image.write_png(str(path), image)
        width, height, colour, pixels = read_png(path)
        assert (height, width, colour) == (shape[0], shape[1], 0 if len(shape) == 2 else 2)
        rows = np.frombuffer(pixels, np.uint8).reshape(height, -1)
        assert not rows[:, 0].any()  # filter type 0 on every row
        np.testing.assert_array_equal(rows[:, 1:].reshape(shape), image)


def test_classic_filters_are_the_textbook_ones() -> None:
    names, weights = _demo_image._classic_filters()
    w = dict(zip(names, weights[..., 0]))
    assert w["Gaussian blur (7x7, sigma 1.5)"].sum() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_array_equal(w["Sobel x"][2:5, 2:5], [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    np.testing.assert_array_equal(w["Sobel y"][2:5, 2:5], w["Sobel x"][2:5, 2:5].T)
    x = np.tile(np.arange(16, dtype=np.float32), (16, 1))  # a ramp along x: slope 1
    y = convx.conv2d(x[None, :, :, None], weights, padding="valid")[0]
    sobel_x = y[..., names.index("Sobel x")]
    np.testing.assert_allclose(sobel_x, 8.0)  # the Sobel x of a unit ramp is 8
    np.testing.assert_allclose(y[..., names.index("Sobel y")], 0.0, atol=1e-6)
    np.testing.assert_allclose(y[..., names.index("Laplacian")], 0.0, atol=1e-5)


def test_plain_demo_is_still_the_text_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "ok" and "direct sum" in lines[-2]
