"""A convolutional autoencoder on scikit-learn's 8x8 digits: convx encodes and decodes.

The model, for NHWC float32 images of shape (N, 8, 8, 1) scaled to [0, 1]:

    conv 3x3, 1 -> 8, stride 2, padding 1                      (N, 4, 4, 8)   convx.Conv2D
    ReLU
    conv 3x3, 8 -> 16, stride 2, padding 1                     (N, 2, 2, 16)  convx.Conv2D
    ReLU
    transposed conv 3x3, 16 -> 8, stride 2, padding 1, o.p. 1  (N, 4, 4, 8)   convx.ConvTranspose2D
    ReLU
    transposed conv 3x3, 8 -> 1, stride 2, padding 1, o.p. 1   (N, 8, 8, 1)   convx.ConvTranspose2D
    sigmoid

(o.p. is output_padding: with it each transposed convolution doubles the height and width,
undoing the stride-2 convolution it mirrors. The (2, 2, 16) code holds as many numbers as
the 8x8 image, so this shows convx learning end to end, not compression.) The loss is the
mean squared reconstruction error. All four layers run forward and backward in convx; ReLU,
the sigmoid, the loss and the Adam optimiser (train_digits.py's) are NumPy. The layers are
created without a fused activation because a fused ReLU has no backward.

The data are ``sklearn.datasets.load_digits`` (1797 images, bundled with scikit-learn, no
download), split once into 75% training and a 25% hold-out set (``random_state=0``). Each
epoch prints the mean training MSE and the hold-out MSE. At the end a PNG shows one
hold-out digit of each class: the inputs in the top row, their reconstructions beneath.
It is drawn with matplotlib (the Agg backend, no display needed) when that is installed,
and otherwise written directly by a small PNG encoder (zlib and struct).

Run:  python examples/autoencoder.py [--epochs N] [--batch-size B] [--seed S] [--png PATH]
                                     [--quiet]

It needs scikit-learn. ``main(argv)`` returns {"losses" (mean training MSE per epoch),
"test_mse" (hold-out MSE after training), "seconds", "png" (the path written)}.
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.datasets import load_digits  # type: ignore[import-untyped, unused-ignore]
from sklearn.model_selection import train_test_split  # type: ignore[import-untyped, unused-ignore]
from train_digits import Adam  # the classifier example's optimiser, over named arrays

import convx

Array = npt.NDArray[np.float32]
Layer = Any  # convx.Conv2D or convx.ConvTranspose2D: the same learning API


class ConvAutoencoder:
    """Two stride-2 convolutions down to (2, 2, 16), two transposed ones back to (8, 8, 1)."""

    def __init__(self, seed: int) -> None:
        self.layers: dict[str, Layer] = {
            "enc1": convx.Conv2D(1, 8, 3, stride=2, padding=1, seed=seed),
            "enc2": convx.Conv2D(8, 16, 3, stride=2, padding=1, seed=seed + 1),
            "dec1": convx.ConvTranspose2D(16, 8, 3, stride=2, padding=1, output_padding=1,
                                          seed=seed + 2),
            "dec2": convx.ConvTranspose2D(8, 1, 3, stride=2, padding=1, output_padding=1,
                                          seed=seed + 3),
        }
        self._hidden: list[Array] = []  # pre-ReLU outputs of enc1, enc2, dec1

    def forward(self, x: Array, train: bool) -> Array:
        """Reconstructions in (0, 1) of images (N, 8, 8, 1). With train, keeps what backward
        needs: each layer its input, the model the pre-activations for the ReLU masks."""
        hidden = []
        h = x
        for name in ("enc1", "enc2", "dec1"):
            pre = self.layers[name](h, save_input=train)
            hidden.append(pre)
            h = np.maximum(pre, 0)
        out: Array = 1.0 / (1.0 + np.exp(-self.layers["dec2"](h, save_input=train)))
        self._hidden = hidden if train else []
        return out

    def backward(self, recon: Array, grad_recon: Array) -> None:
        """Accumulates every layer's gradients from dL/d(reconstruction) of the last forward."""
        if not self._hidden:
            raise RuntimeError("backward needs a forward with train=True first")
        grad = self.layers["dec2"].backward(grad_recon * recon * (1.0 - recon))
        for name, pre in zip(("dec1", "enc2", "enc1"), reversed(self._hidden)):
            grad = self.layers[name].backward(grad * (pre > 0))

    def zero_grad(self) -> None:
        for layer in self.layers.values():
            layer.zero_grad()

    def parameters(self) -> dict[str, Array]:
        return {f"{name}.{key}": value for name, layer in self.layers.items()
                for key, value in layer.parameters().items()}

    def gradients(self) -> dict[str, Array]:
        return {f"{name}.{key}": getattr(layer, f"{key}_grad")
                for name, layer in self.layers.items() for key in layer.parameters()}

    def assign(self, params: dict[str, Array]) -> None:
        for qualified, value in params.items():
            name, key = qualified.split(".")
            setattr(self.layers[name], key, value)


def load_split() -> tuple[Array, Array, npt.NDArray[np.int64]]:
    """Training images, hold-out images and hold-out labels: NHWC float32 in [0, 1]."""
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., np.newaxis]
    x_train, x_test, _, y_test = train_test_split(x, digits.target.astype(np.int64),
                                                  test_size=0.25, random_state=0)
    return x_train, x_test, y_test


def mean_squared_error(model: ConvAutoencoder, x: Array, batch_size: int = 256) -> float:
    total = sum(float(np.sum((model.forward(x[i:i + batch_size], train=False)
                              - x[i:i + batch_size]) ** 2))
                for i in range(0, len(x), batch_size))
    return total / x.size


def write_png_gray(path: Path, image: npt.NDArray[np.uint8]) -> None:
    """Writes a 2-D uint8 array as an 8-bit grayscale PNG, with no dependency: the
    signature, then IHDR, one zlib-compressed IDAT and IEND chunks, each length-prefixed
    and CRC-suffixed. Every row starts with filter type 0 (none)."""
    height, width = image.shape

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    # Bit depth 8, colour type 0 (grayscale), default compression, filter and no interlace.
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = b"".join(b"\x00" + image[r].tobytes() for r in range(height))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


def mosaic(inputs: Array, recons: Array, scale: int = 8, gap: int = 2) -> npt.NDArray[np.uint8]:
    """Inputs in the top row, reconstructions beneath: black digits on white, each pixel
    enlarged to scale x scale, each tile framed by a gap-wide light grey border."""
    rows = np.stack([inputs[..., 0], recons[..., 0]])  # (2, n, 8, 8)
    tiles = np.kron(1.0 - np.clip(rows, 0.0, 1.0), np.ones((scale, scale)))
    tiles = np.pad(tiles, ((0, 0), (0, 0), (gap, gap), (gap, gap)), constant_values=0.8)
    n_rows, n_cols, tile_h, tile_w = tiles.shape
    grid = tiles.transpose(0, 2, 1, 3).reshape(n_rows * tile_h, n_cols * tile_w)
    return np.round(grid * 255.0).astype(np.uint8)


def save_png(path: Path, inputs: Array, recons: Array, mse: float) -> str:
    """Draws inputs above reconstructions to `path`; returns what drew it."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        write_png_gray(path, mosaic(inputs, recons))
        return "the built-in PNG writer"
    # A Figure with its own Agg canvas: no pyplot, so no global backend is chosen or changed.
    n = len(inputs)
    fig = Figure(figsize=(0.8 * n, 2.0), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, n)
    for row, (images, label) in enumerate(((inputs, "input"), (recons, "reconstruction"))):
        for col in range(n):
            ax = axes[row, col]
            ax.imshow(images[col, ..., 0], cmap="gray_r", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row, 0].set_ylabel(label, fontsize=8)
    fig.suptitle(f"convx autoencoder on hold-out digits (MSE {mse:.4f})", fontsize=10)
    fig.savefig(path, dpi=100)
    return "matplotlib"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--epochs", type=int, default=30, help="passes over the training set")
    parser.add_argument("--batch-size", type=int, default=32, help="images per step")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the weights and the batch order (the split is fixed)")
    parser.add_argument("--lr", type=float, default=5e-3, help="Adam's learning rate")
    parser.add_argument("--png", type=Path, default=Path("autoencoder.png"),
                        help="where to write inputs beside reconstructions "
                             "(default: autoencoder.png in the current directory)")
    parser.add_argument("--quiet", action="store_true",
                        help="no per-epoch lines, only the result")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1:
        parser.error("--epochs and --batch-size must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Trains, reports and draws; returns {"losses", "test_mse", "seconds", "png"}."""
    args = parse_args(argv)
    start = time.perf_counter()
    x_train, x_test, y_test = load_split()
    model = ConvAutoencoder(seed=args.seed)
    optimiser = Adam(lr=args.lr)
    order_rng = np.random.default_rng(args.seed)
    losses: list[float] = []

    for epoch in range(1, args.epochs + 1):
        epoch_start = time.perf_counter()
        order = order_rng.permutation(len(x_train))
        total = 0.0
        for first in range(0, len(x_train), args.batch_size):
            x = x_train[order[first:first + args.batch_size]]
            model.zero_grad()
            recon = model.forward(x, train=True)
            diff = recon - x
            total += float(np.sum(diff * diff))
            model.backward(recon, (2.0 / diff.size) * diff)  # d(mean of diff**2)/d(recon)
            model.assign(optimiser.step(model.parameters(), model.gradients()))
        losses.append(total / x_train.size)
        if not args.quiet:
            print(f"epoch {epoch:2d}/{args.epochs}  train MSE {losses[-1]:.5f}  "
                  f"hold-out MSE {mean_squared_error(model, x_test):.5f}  "
                  f"({time.perf_counter() - epoch_start:.2f} s)", flush=True)

    test_mse = mean_squared_error(model, x_test)
    shown = np.array([np.flatnonzero(y_test == digit)[0] for digit in range(10)])
    drawer = save_png(args.png, x_test[shown], model.forward(x_test[shown], train=False),
                      test_mse)
    seconds = time.perf_counter() - start
    print(f"hold-out MSE {test_mse:.5f} on {len(x_test)} digits; {args.epochs} epochs in "
          f"{seconds:.1f} s (convx {convx.__version__}, {convx.get_num_threads()} threads); "
          f"wrote {args.png} with {drawer}")
    return {"losses": losses, "test_mse": test_mse, "seconds": seconds, "png": str(args.png)}


if __name__ == "__main__":
    main(sys.argv[1:])
