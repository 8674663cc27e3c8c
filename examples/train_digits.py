"""Train a small CNN on scikit-learn's 8x8 digits, with every convolution done by convx.

The model, for NHWC images of shape (N, 8, 8, 1) scaled to [0, 1]:

    conv 3x3, 1 -> 32, padding 1            (N, 8, 8, 32)   convx.Conv2D
    ReLU
    conv 3x3, 32 -> 64, stride 2, padding 1  (N, 4, 4, 64)   convx.Conv2D
    ReLU
    flatten, dense 1024 -> 10, softmax      (N, 10)         NumPy

Both convolutions run forward through ``convx.Conv2D`` and backward through
``Conv2D.backward``, which returns dL/dx and accumulates ``weight_grad`` and ``bias_grad``.
ReLU, the dense layer, the cross-entropy loss and the Adam optimiser are a few lines of
NumPy below: convx gives parameters and gradients, not an optimiser. The layers are created
without a fused activation because a fused ReLU has no backward.

The data are ``sklearn.datasets.load_digits`` (1797 images, bundled with scikit-learn, no
download), split once into 75% training and a 25% hold-out test set
(``train_test_split(..., test_size=0.25, random_state=0, stratify=y)``). The test set is
used only for the accuracy reported at the end. Everything is float32, and the weights, the
dense layer and the batch order are seeded, so a run is repeatable.

Run:  python examples/train_digits.py [--epochs N] [--batch-size B] [--seed S] [--quiet]

It needs scikit-learn; tqdm, when installed, draws a progress bar per epoch, and without it
one line is printed per epoch. It prints the test accuracy and the time taken. ``main(argv)``
returns {"test_accuracy", "losses" (mean training loss per epoch), "seconds"}.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.datasets import load_digits  # type: ignore[import-untyped, unused-ignore]
from sklearn.model_selection import train_test_split  # type: ignore[import-untyped, unused-ignore]

import convx

Array = npt.NDArray[np.float32]


class Adam:
    """Adam (Kingma and Ba, 2015) over named arrays: step() returns the updated values.
    The bias corrections are folded into the step size, as in section 2 of the paper.

    The caller assigns them back, which is how a convx layer takes new weights (its arrays
    are read-only; assignment copies and repacks them).
    """

    def __init__(self, lr: float, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8) -> None:
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.t = 0
        self.m: dict[str, Array] = {}
        self.v: dict[str, Array] = {}

    def step(self, params: dict[str, Array], grads: dict[str, Array]) -> dict[str, Array]:
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        scale = self.lr * np.sqrt(1.0 - b2**self.t) / (1.0 - b1**self.t)
        updated = {}
        for name, p in params.items():
            g = grads[name]
            m = b1 * self.m.get(name, np.zeros_like(p)) + (1.0 - b1) * g
            v = b2 * self.v.get(name, np.zeros_like(p)) + (1.0 - b2) * (g * g)
            self.m[name], self.v[name] = m, v
            updated[name] = (p - scale * m / (np.sqrt(v) + self.eps)).astype(np.float32)
        return updated


class DigitsCNN:
    """conv -> ReLU -> conv (stride 2) -> ReLU -> flatten -> dense; see the module docstring."""

    def __init__(self, seed: int, c1: int = 32, c2: int = 64, classes: int = 10) -> None:
        self.conv1 = convx.Conv2D(1, c1, 3, padding=1, seed=seed)
        self.conv2 = convx.Conv2D(c1, c2, 3, stride=2, padding=1, seed=seed + 1)
        fan_in = 4 * 4 * c2
        bound = 1.0 / np.sqrt(fan_in)
        rng = np.random.default_rng(seed + 2)
        self.dense_w: Array = rng.uniform(-bound, bound, (fan_in, classes)).astype(np.float32)
        self.dense_b: Array = np.zeros(classes, np.float32)
        self._cache: tuple[Array, Array, Array] | None = None
        self._dense_grads: dict[str, Array] = {}

    def forward(self, x: Array, train: bool) -> Array:
        """Logits (N, 10) for images (N, 8, 8, 1). With train, keeps what backward needs."""
        h1 = self.conv1(x, save_input=train)
        a1 = np.maximum(h1, 0)
        h2 = self.conv2(a1, save_input=train)
        flat = np.maximum(h2, 0).reshape(len(x), -1)
        if train:
            self._cache = (h1, h2, flat)
        return flat @ self.dense_w + self.dense_b

    def backward(self, grad_logits: Array) -> None:
        """Fills the gradients of every parameter from dL/dlogits of the last forward."""
        if self._cache is None:
            raise RuntimeError("backward needs a forward with train=True first")
        h1, h2, flat = self._cache
        self._dense_grads = {"dense_w": flat.T @ grad_logits,
                             "dense_b": grad_logits.sum(axis=0)}
        grad_h2 = (grad_logits @ self.dense_w.T).reshape(h2.shape) * (h2 > 0)
        grad_a1 = self.conv2.backward(grad_h2)
        self.conv1.backward(grad_a1 * (h1 > 0))  # dL/dimage itself is not needed

    def zero_grad(self) -> None:
        self.conv1.zero_grad()
        self.conv2.zero_grad()
        self._dense_grads = {}

    def parameters(self) -> dict[str, Array]:
        params = {"dense_w": self.dense_w, "dense_b": self.dense_b}
        for name, layer in (("conv1", self.conv1), ("conv2", self.conv2)):
            for key, value in layer.parameters().items():
                params[f"{name}.{key}"] = value
        return params

    def gradients(self) -> dict[str, Array]:
        grads = dict(self._dense_grads)
        for name, layer in (("conv1", self.conv1), ("conv2", self.conv2)):
            if layer.weight_grad is None or layer.bias_grad is None:
                raise RuntimeError("gradients: call backward first")
            grads[f"{name}.weight"] = layer.weight_grad
            grads[f"{name}.bias"] = layer.bias_grad
        return grads

    def assign(self, params: dict[str, Array]) -> None:
        self.dense_w, self.dense_b = params["dense_w"], params["dense_b"]
        for name, layer in (("conv1", self.conv1), ("conv2", self.conv2)):
            layer.weight = params[f"{name}.weight"]
            layer.bias = params[f"{name}.bias"]


def softmax_cross_entropy(logits: Array, labels: npt.NDArray[np.int64]) -> tuple[float, Array]:
    """Mean cross-entropy over the batch and its gradient with respect to the logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(len(labels))
    loss = float(-log_p[rows, labels].mean())
    grad = np.exp(log_p)
    grad[rows, labels] -= 1.0
    return loss, (grad / len(labels)).astype(np.float32)


def load_split() -> tuple[Array, Array, npt.NDArray[np.int64],
                                        npt.NDArray[np.int64]]:
    """The digits as NHWC float32 in [0, 1], split 75/25, stratified, with random_state=0."""
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., np.newaxis]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0,
                                                        stratify=y)
    return x_train, x_test, y_train, y_test


def _progress_bar(total: int, desc: str) -> Any | None:
    """A tqdm bar when tqdm is installed, else None (the caller prints a line instead)."""
    try:
        from tqdm import tqdm  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="batch", leave=True)


def predict(model: DigitsCNN, x: Array, batch_size: int = 256) -> npt.NDArray[np.int64]:
    labels = [model.forward(x[i:i + batch_size], train=False).argmax(axis=1)
              for i in range(0, len(x), batch_size)]
    return np.concatenate(labels).astype(np.int64)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--epochs", type=int, default=15, help="passes over the training set")
    parser.add_argument("--batch-size", type=int, default=32, help="images per step")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the weights and the batch order (the split is fixed)")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam's learning rate")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar or per-epoch lines, only the result")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1:
        parser.error("--epochs and --batch-size must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Trains and evaluates; returns {"test_accuracy", "losses", "seconds"}."""
    args = parse_args(argv)
    start = time.perf_counter()
    x_train, x_test, y_train, y_test = load_split()
    model = DigitsCNN(seed=args.seed)
    optimiser = Adam(lr=args.lr)
    order_rng = np.random.default_rng(args.seed)
    n_batches = -(-len(x_train) // args.batch_size)
    losses: list[float] = []

    for epoch in range(1, args.epochs + 1):
        epoch_start = time.perf_counter()
        bar = None if args.quiet else _progress_bar(n_batches, f"epoch {epoch}/{args.epochs}")
        order = order_rng.permutation(len(x_train))
        total = 0.0
        for step in range(n_batches):
            idx = order[step * args.batch_size:(step + 1) * args.batch_size]
            model.zero_grad()
            loss, grad_logits = softmax_cross_entropy(model.forward(x_train[idx], train=True),
                                                      y_train[idx])
            model.backward(grad_logits)
            model.assign(optimiser.step(model.parameters(), model.gradients()))
            total += loss * len(idx)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{total / ((step * args.batch_size) + len(idx)):.4f}")
        losses.append(total / len(x_train))
        if bar is not None:
            bar.close()
        elif not args.quiet:
            print(f"epoch {epoch}/{args.epochs}  loss {losses[-1]:.4f}  "
                  f"({time.perf_counter() - epoch_start:.2f} s)", flush=True)

    accuracy = float((predict(model, x_test) == y_test).mean())
    seconds = time.perf_counter() - start
    print(f"test accuracy {accuracy:.2%} on {len(x_test)} held-out digits; "
          f"{args.epochs} epochs in {seconds:.1f} s (convx {convx.__version__}, "
          f"{convx.get_num_threads()} threads)")
    return {"test_accuracy": accuracy, "losses": losses, "seconds": seconds}


if __name__ == "__main__":
    main(sys.argv[1:])
