"""`python -m convx demo --png FILE`: classic filters and a Gabor layer on a picture.

The picture is matplotlib's sample photograph (grace_hopper.jpg) when matplotlib is
installed, else a scene drawn here (discs, stripes, a checkerboard, gradients). Five
classic filters (Gaussian blur, sharpen, Laplacian, Sobel x and y) run as ONE conv2d call
with five output channels, and the gradient magnitude is formed from the two Sobel
responses; a Conv2D whose eight filters are Gabor patches of random orientation,
wavelength and phase (what the first layer of a trained image network tends to look
like) runs on the same picture.
The grid of results is written with matplotlib (with titles) when it is installed, else
by the small PNG writer below (zlib, standard library), so numpy alone suffices.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import numpy as np
import numpy.typing as npt

import convx

__all__ = ["demo_panels", "sample_image", "write_demo", "write_png"]

Array = npt.NDArray[Any]
_GAP = 6  # pixels between panels of the PNG the built-in writer makes
_COLUMNS = 4
#: Size in inches and resolution of the matplotlib figure: 1200 x 900 pixels.
FIGSIZE, DPI = (12.0, 9.0), 100


def _procedural(size: int) -> Array:
    """A (size, size) float32 scene in [0, 1] with edges of every orientation."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = 0.25 + 0.35 * xx  # a horizontal gradient
    img = np.where((yy - 0.3) ** 2 + (xx - 0.3) ** 2 < 0.04, 0.95, img)  # a disc
    img = np.where((yy - 0.7) ** 2 + (xx - 0.72) ** 2 < 0.03,
                   0.5 + 0.4 * np.sin(40 * (xx + yy)), img)  # a disc of diagonal stripes
    checker = ((np.floor(xx * 16) + np.floor(yy * 16)) % 2) * 0.6 + 0.1
    img = np.where((xx > 0.62) & (yy < 0.38), checker, img)  # a checkerboard
    ring = np.abs(np.hypot(xx - 0.25, yy - 0.75) - 0.15) < 0.02
    img = np.where(ring, 0.05, img)  # a dark ring
    return np.asarray(img, np.float32)


def sample_image(size: int = 256) -> tuple[Array, str]:
    """A grayscale (size, size) float32 picture in [0, 1] and where it came from."""
    try:
        import matplotlib.cbook
        import matplotlib.image

        path = str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
        rgb = np.asarray(matplotlib.image.imread(path), np.float32) / 255.0
    except (ImportError, OSError, ValueError):
        return _procedural(size), "procedural scene"
    gray = rgb[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
    side = min(gray.shape)
    top, left = (gray.shape[0] - side) // 2, (gray.shape[1] - side) // 2
    square = gray[top:top + side, left:left + side]
    idx = (np.arange(size) * side) // size  # nearest-neighbour resampling
    return np.ascontiguousarray(square[np.ix_(idx, idx)]), "grace_hopper.jpg (matplotlib)"


def _classic_filters() -> tuple[list[str], Array]:
    """Names and OHWI weights (5, 7, 7, 1) of the classic filters, centred in 7 x 7."""
    g = np.exp(-0.5 * (np.arange(-3, 4) / 1.5) ** 2)
    gauss = np.outer(g, g) / np.outer(g, g).sum()
    sobel_x = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float64)
    sharpen = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], np.float64)
    laplace = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float64)
    small = {"sharpen": sharpen, "Sobel x": sobel_x, "Sobel y": sobel_x.T.copy(),
             "Laplacian": laplace}
    names = ["Gaussian blur (7x7, sigma 1.5)", *small]
    w = np.zeros((len(names), 7, 7, 1))
    w[0, :, :, 0] = gauss
    for i, k in enumerate(small.values(), start=1):
        w[i, 2:5, 2:5, 0] = k
    return names, w.astype(np.float32)


def _gabor_layer(seed: int = 0, n: int = 8, k: int = 11) -> convx.Conv2D:
    """A Conv2D (1 -> n, k x k, 'same') whose filters are zero-mean Gabor patches of
    random orientation, wavelength and phase."""
    rng = np.random.default_rng(seed)
    half = k // 2
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float64)
    weight = np.empty((n, k, k, 1))
    for i in range(n):
        theta = np.pi * i / n + rng.uniform(-0.1, 0.1)
        wavelength, phase = rng.uniform(4.0, 8.0), rng.uniform(0, np.pi)
        u = xx * np.cos(theta) + yy * np.sin(theta)
        envelope = np.exp(-(xx ** 2 + yy ** 2) / (2 * (0.4 * wavelength) ** 2))
        patch = envelope * np.cos(2 * np.pi * u / wavelength + phase)
        patch -= envelope * patch.sum() / envelope.sum()  # zero mean: flat areas give 0
        weight[i, :, :, 0] = patch / np.abs(patch).sum()
    layer = convx.Conv2D(1, n, k, padding="same", bias=False, seed=seed,
                         padding_mode="reflect")
    layer.weight = weight
    return layer


def demo_panels(size: int = 256) -> tuple[list[tuple[str, Array]], str]:
    """The panels of the picture, as (title, image in [0, 1]) pairs, and the source."""
    img, source = sample_image(size)
    names, weights = _classic_filters()
    x = img[None, :, :, None]  # NHWC, one channel
    # The five filters in one call; reflected borders keep the edges free of the dark
    # frame that zero padding would draw.
    y = convx.conv2d(x, weights, padding="same", padding_mode="reflect")[0]
    out = {name: y[..., i] for i, name in enumerate(names)}
    out["gradient magnitude"] = np.hypot(out["Sobel x"], out["Sobel y"])
    gabor = _gabor_layer()(x)[0]
    panels = [("input: " + source.split(" ")[0], img)]
    # Blur and sharpen give pictures (shown as the input is), the gradient magnitude a
    # positive map (stretched), the others signed responses (zero at mid-grey).
    panels += [(name, np.clip(out[name], 0.0, 1.0)) for name in names[:2]]
    panels += [(name, _signed(out[name])) for name in ("Laplacian", "Sobel x", "Sobel y")]
    panels += [("gradient magnitude", _unsigned(out["gradient magnitude"]))]
    panels += [(f"Gabor layer, filter {i}", _signed(gabor[..., i])) for i in range(5)]
    return panels, source


def _unsigned(a: Array) -> Array:
    lo, hi = float(np.percentile(a, 0.5)), float(np.percentile(a, 99.5))
    return np.clip((a - lo) / max(hi - lo, 1e-12), 0.0, 1.0)


def _signed(a: Array) -> Array:
    """Zero at mid-grey, the 99th percentile of |a| at black or white."""
    scale = max(float(np.percentile(np.abs(a), 99.0)), 1e-12)
    return np.clip(0.5 + 0.5 * a / scale, 0.0, 1.0)


def grid(panels: list[tuple[str, Array]], columns: int = _COLUMNS) -> Array:
    """The panels side by side, `columns` to a row, on white with _GAP-pixel gutters, as
    one uint8 image."""
    h, w = panels[0][1].shape
    rows = -(-len(panels) // columns)
    canvas = np.full((rows * (h + _GAP) + _GAP, columns * (w + _GAP) + _GAP), 255, np.uint8)
    for i, (_, img) in enumerate(panels):
        r, c = divmod(i, columns)
        top, left = _GAP + r * (h + _GAP), _GAP + c * (w + _GAP)
        canvas[top:top + h, left:left + w] = np.round(img * 255).astype(np.uint8)
    return canvas


def write_png(path: str, image: Array) -> None:
    """Write a uint8 (H, W) grey or (H, W, 3) RGB image as an 8-bit PNG (no filtering,
    one zlib stream), with the standard library only."""
    img = np.ascontiguousarray(image, np.uint8)
    height, width = img.shape[:2]
    colour = 0 if img.ndim == 2 else 2
    rows = b"".join(b"\x00" + row.tobytes() for row in img)  # filter type 0 per row

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


def _write_matplotlib(path: str, panels: list[tuple[str, Array]]) -> bool:
    """The grid with titles through matplotlib (Agg, no display); False without it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = -(-len(panels) // _COLUMNS)
    fig, axes = plt.subplots(rows, _COLUMNS, figsize=FIGSIZE, dpi=DPI)
    for ax, (title, img) in zip(axes.flat, panels):
        ax.imshow(img, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(title, fontsize=10)
    for ax in axes.flat:
        ax.set_axis_off()
    fig.suptitle(f"convx {convx.__version__}: classic filters as one conv2d call, "
                 "and a Conv2D of Gabor filters", fontsize=13)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return True


def write_demo(path: str, size: int = 256) -> int:
    """Write the demo grid to `path` (PNG) and say what was written; 0 on success."""
    panels, source = demo_panels(size)
    if _write_matplotlib(path, panels):
        how = f"{int(FIGSIZE[0] * DPI)} x {int(FIGSIZE[1] * DPI)} pixels, matplotlib"
    else:
        image = grid(panels)
        write_png(path, image)
        how = f"{image.shape[1]} x {image.shape[0]} pixels, built-in PNG writer"
    print(f"convx demo: {len(panels) - 1} filtered versions of the {source} picture "
          f"({size} x {size}) written to {path} ({how})")
    return 0
