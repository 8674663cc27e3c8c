"""ConvTranspose2D, the transposed-convolution layer: its forward is conv_transpose2d, and
its backward gives the exact gradients of that linear map (checked by linearity in float64,
and against torch.autograd where torch is installed)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import convx

GEOMETRY = {"stride": 2, "padding": ((1, 0), (0, 1)), "output_padding": 1, "dilation": 1,
            "groups": 2}


def _layer(layout: str) -> tuple[convx.ConvTranspose2D, np.ndarray]:
    layer = convx.ConvTranspose2D(4, 6, (3, 2), layout=layout, dtype=np.float64, seed=3,
                                  **GEOMETRY)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 5, 4, 4) if layout == "NHWC" else (2, 4, 5, 4))
    return layer, x


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_forward_is_conv_transpose2d(layout: str) -> None:
    layer, x = _layer(layout)
    assert layer.weight.shape == ((4, 3, 2, 3) if layout == "NHWC" else (4, 3, 3, 2))
    want = convx.conv_transpose2d(x, layer.weight, layer.bias, layout=layout, **GEOMETRY)
    np.testing.assert_array_equal(layer(x), want)


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_backward_gives_the_exact_gradients(layout: str) -> None:
    layer, x = _layer(layout)
    y = layer(x)
    g = np.random.default_rng(5).standard_normal(y.shape)
    dx = layer.backward(g)
    assert layer.weight_grad is not None and layer.bias_grad is not None

    def loss(x_: np.ndarray, w: np.ndarray, b: np.ndarray) -> float:
        out = convx.conv_transpose2d(x_, w, b, layout=layout, **GEOMETRY)
        return float(np.sum(out * g))

    w, b = np.array(layer.weight), np.array(layer.bias)
    base = loss(x, w, b)
    # The loss is linear in each argument, so a unit step gives the gradient exactly.
    for index in [(0, 0, 0, 0), (1, 4, 3, 2) if layout == "NHWC" else (1, 3, 4, 2),
                  (1, 2, 1, 3)]:
        step = np.zeros_like(x)
        step[index] = 1.0
        assert loss(x + step, w, b) - base == pytest.approx(dx[index], rel=1e-9, abs=1e-12)
    for index in [(0, 0, 0, 0), (3, 2, 1, 2) if layout == "NHWC" else (3, 2, 2, 1)]:
        step = np.zeros_like(w)
        step[index] = 1.0
        assert loss(x, w + step, b) - base == pytest.approx(layer.weight_grad[index],
                                                            rel=1e-9, abs=1e-12)
    for c in range(6):
        step = np.zeros_like(b)
        step[c] = 1.0
        assert loss(x, w, b + step) - base == pytest.approx(layer.bias_grad[c], rel=1e-9)


def test_learning_api_and_errors() -> None:
    layer, x = _layer("NHWC")
    with pytest.raises(RuntimeError, match="no input saved"):
        layer.backward(np.zeros((2, 9, 8, 6)))
    y = layer(x, save_input=False)
    with pytest.raises(RuntimeError, match="no input saved"):
        layer.backward(np.zeros_like(y))
    layer(x)
    layer.backward(np.ones_like(y))
    assert set(layer.parameters()) == {"weight", "bias"}
    layer.zero_grad()
    assert layer.weight_grad is None and layer.bias_grad is None
    layer.weight = layer.weight * 2  # assignment drops the saved input
    with pytest.raises(RuntimeError, match="no input saved"):
        layer.backward(np.ones_like(y))
    with pytest.raises(ValueError, match="weight must have shape"):
        layer.weight = np.zeros((4, 3, 3, 3))
    with pytest.raises(ValueError, match="output_padding"):
        convx.ConvTranspose2D(4, 6, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="groups"):
        convx.ConvTranspose2D(4, 6, 3, groups=4)
    with pytest.raises(ValueError, match="padding"):
        convx.ConvTranspose2D(4, 6, 3, padding="same")
    assert layer(x, output_size=(10, 8)).shape == (2, 10, 8, 6)


def test_matches_torch_autograd() -> None:
    torch: Any = pytest.importorskip("torch")
    layer, x = _layer("NCHW")
    y = layer(x)
    g = np.random.default_rng(6).standard_normal(y.shape)
    dx = layer.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(np.array(layer.weight), requires_grad=True)
    bt = torch.tensor(np.array(layer.bias), requires_grad=True)
    yt = torch.nn.functional.conv_transpose2d(
        torch.nn.functional.pad(xt, (0, 0, 0, 0)), wt, bt, stride=2, padding=0,
        output_padding=1, groups=2)
    # torch pads symmetrically: crop its output to this layer's asymmetric padding.
    yt = yt[:, :, 1:1 + y.shape[2], 0:y.shape[3]]
    assert yt.shape == y.shape
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.weight_grad, wt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.bias_grad, bt.grad.numpy(), rtol=1e-10, atol=1e-12)
