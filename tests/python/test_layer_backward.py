"""Conv2D as a learnable layer: a call keeps its input (through the C call path and the
Python one alike), backward() gives dx and accumulates the parameter gradients, exactly as
the functional conv2d_backward does."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import convx


def _layer_and_input(layout: str = "NHWC", bias: bool = True
                     ) -> tuple[convx.Conv2D, np.ndarray]:
    rng = np.random.default_rng(0)
    layer = convx.Conv2D(4, 6, 3, stride=2, padding=1, groups=2, bias=bias, layout=layout,
                         dtype=np.float64, seed=1)
    shape = (2, 9, 7, 4) if layout == "NHWC" else (2, 4, 9, 7)
    return layer, rng.standard_normal(shape)


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize("bias", [True, False])
def test_backward_equals_the_functional_gradients(layout: str, bias: bool) -> None:
    layer, x = _layer_and_input(layout, bias)
    for call in range(2):  # the first call normalises in Python, the second runs in C
        y = layer(x)
        assert layer._saved_input is x, f"call {call} did not keep its input"
    g = np.random.default_rng(2).standard_normal(y.shape)
    dx = layer.backward(g)
    want = convx.conv2d_backward(g, x, layer.weight, stride=2, padding=1, groups=2,
                                 layout=layout)
    np.testing.assert_array_equal(dx, want[0])
    np.testing.assert_array_equal(layer.weight_grad, want[1])
    if bias:
        np.testing.assert_array_equal(layer.bias_grad, want[2])
        assert set(layer.parameters()) == {"weight", "bias"}
    else:
        assert layer.bias_grad is None and set(layer.parameters()) == {"weight"}
    layer.backward(g)  # gradients accumulate
    np.testing.assert_allclose(layer.weight_grad, 2 * want[1], rtol=1e-15)
    layer.zero_grad()
    assert layer.weight_grad is None and layer.bias_grad is None


def test_saving_can_be_turned_off_and_assignments_drop_the_input() -> None:
    layer, x = _layer_and_input()
    y = layer(x)
    layer.weight = layer.weight * 0.5  # a new state: the saved input belongs to the old one
    with pytest.raises(RuntimeError, match="no input saved"):
        layer.backward(np.zeros_like(y))
    layer(x, save_input=False)
    with pytest.raises(RuntimeError, match="no input saved"):
        layer.backward(np.zeros_like(y))
    layer.save_input = False
    layer(x)
    layer(x)  # the C call path honours the flag too
    with pytest.raises(RuntimeError, match="no input saved"):
        layer.backward(np.zeros_like(y))
    with pytest.raises(TypeError, match="save_input"):
        layer(x, save_input=1)
    layer.save_input = True
    layer(np.asfortranarray(x))  # a copied input: the copy is what is kept
    assert layer._saved_input is not None and layer._saved_input.flags.c_contiguous
    assert layer.backward(np.ones_like(y)).shape == x.shape


def test_a_relu_layer_refuses_backward_clearly() -> None:
    layer = convx.Conv2D(2, 3, 3, activation="relu", seed=0)
    y = layer(np.ones((1, 5, 5, 2), np.float32))
    with pytest.raises(ValueError, match="activation"):
        layer.backward(np.ones_like(y))


def test_the_saved_input_is_not_pickled() -> None:
    layer, x = _layer_and_input()
    layer(x)
    twin = pickle.loads(pickle.dumps(layer))
    assert twin._saved_input is None
    with pytest.raises(RuntimeError, match="no input saved"):
        twin.backward(np.zeros((2, 5, 4, 6)))
