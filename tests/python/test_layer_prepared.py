"""Conv2D keeps its weights packed for its kernels; the packed path must equal conv2d."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import convx
from convx import _core


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize(
    ("c_in", "c_out", "k", "groups", "stride", "padding"),
    [(5, 7, 3, 1, 1, 1), (8, 12, 3, 4, 2, "same"), (6, 6, 3, 6, 1, 1), (40, 33, 1, 1, 1, 0),
     (3, 70, 5, 1, 2, ((2, 1), (0, 3)))],
)
def test_layer_equals_functional_on_repeated_calls(
    dtype: Any, layout: str, c_in: int, c_out: int, k: int, groups: int, stride: int,
    padding: Any,
) -> None:
    rng = np.random.default_rng(3)
    layer = convx.Conv2D(c_in, c_out, k, stride=stride, padding=padding, groups=groups,
                         layout=layout, dtype=dtype, seed=1, activation="relu")
    shape = (2, 11, 13, c_in) if layout == "NHWC" else (2, c_in, 11, 13)
    x = rng.standard_normal(shape).astype(dtype)
    expected = convx.conv2d(x, np.array(layer.weight), np.array(layer.bias), stride=stride,
                            padding=padding, groups=groups, layout=layout, activation="relu")
    first = layer(x)   # validated path
    second = layer(x)  # cached operator with prepacked weights
    np.testing.assert_array_equal(first, expected)
    np.testing.assert_array_equal(second, expected)


def test_weights_are_read_only_and_reassignable() -> None:
    layer = convx.Conv2D(4, 6, 3, padding=1, seed=0)
    x = np.random.default_rng(0).standard_normal((1, 8, 8, 4)).astype(np.float32)
    layer(x)
    with pytest.raises(ValueError, match="read-only"):
        layer.weight[0, 0, 0, 0] = 1.0
    new_w = np.ones(layer.weight.shape, np.float32)
    layer.weight = new_w
    new_w[...] = 5.0  # the layer copied it: this must not leak in
    assert layer.bias is not None
    np.testing.assert_allclose(layer(x), convx.conv2d(x, np.ones_like(new_w), layer.bias,
                                                      padding=1), rtol=1e-6)
    with pytest.raises(ValueError, match="weight must have shape"):
        layer.weight = np.ones((6, 3, 3, 5), np.float32)
    layer.bias = None
    np.testing.assert_allclose(layer(x), convx.conv2d(x, layer.weight, None, padding=1))


def test_prepacked_weights_survive_a_kernel_path_change() -> None:
    available = convx.cpu_info()["available"]
    active = convx.cpu_info()["active"]
    layer = convx.Conv2D(16, 24, 3, padding=1, seed=2)  # packed for the active path
    x = np.random.default_rng(1).standard_normal((1, 10, 10, 16)).astype(np.float32)
    reference = layer(x)
    try:
        for isa in available:
            convx._set_isa(isa)
            np.testing.assert_allclose(layer(x), reference, rtol=2e-5, atol=2e-5)
    finally:
        convx._set_isa(active)


def test_layer_rejects_wrong_input_clearly() -> None:
    layer = convx.Conv2D(4, 6, 3, seed=0)
    with pytest.raises(ValueError, match="C_in"):
        layer(np.zeros((1, 8, 8, 5), np.float32))
    with pytest.raises(TypeError, match="float64"):
        layer(np.zeros((1, 8, 8, 4), np.float64))


def test_reassigned_geometry_is_not_served_from_the_plan_cache() -> None:
    # A layer caches an operator per input shape, keyed by its geometry; reassigning stride,
    # padding, dilation or activation must take effect on the next call, and a value that
    # only compares equal to a valid one (2.0 == 2) must still be rejected.
    layer = convx.Conv2D(3, 4, 3, padding=1, seed=0)
    x = np.random.default_rng(0).standard_normal((1, 9, 9, 3)).astype(np.float32)
    assert layer(x).shape == (1, 9, 9, 4)
    assert layer(x).shape == (1, 9, 9, 4)  # served from the cache
    layer.stride = 2
    assert layer(x).shape == (1, 5, 5, 4)
    layer.padding = 0
    assert layer(x).shape == (1, 4, 4, 4)
    layer.activation = "relu"
    assert (layer(x) >= 0).all()
    layer.stride = 2.0
    with pytest.raises(TypeError, match="stride"):
        layer(x)
    layer.stride = (1, 1)
    np.testing.assert_array_equal(
        layer(x), convx.conv2d(x, np.array(layer.weight), np.array(layer.bias), padding=0,
                               activation="relu"))


def test_reassigned_bias_is_not_served_from_the_plan_cache() -> None:
    # Cached operators hold the layer's bias; assigning a new one must drop them.
    layer = convx.Conv2D(2, 3, 3, padding=1, seed=0)
    x = np.random.default_rng(1).standard_normal((1, 6, 6, 2)).astype(np.float32)
    layer(x)
    layer(x)
    layer.bias = np.full(3, 10.0, np.float32)
    np.testing.assert_array_equal(layer(x), convx.conv2d(x, np.array(layer.weight),
                                                         np.full(3, 10.0, np.float32), padding=1))
    layer.bias = None
    np.testing.assert_array_equal(layer(x), convx.conv2d(x, np.array(layer.weight), None,
                                                         padding=1))


@pytest.mark.parametrize("use_layer", [True, False])
def test_out_on_the_cached_path(use_layer: bool) -> None:
    # A repeated call with out= takes the cached operator: it must write and return out, and
    # still reject every bad out with an error naming it, leaving the arrays untouched.
    layer = convx.Conv2D(4, 6, 3, padding=1, seed=0)
    w, b = np.array(layer.weight), np.array(layer.bias)
    x = np.random.default_rng(2).standard_normal((2, 5, 7, 4)).astype(np.float32)

    def call(x: Any, out: Any) -> Any:
        return layer(x, out=out) if use_layer else convx.conv2d(x, w, b, padding=1, out=out)

    expected = convx.conv2d(x, w, b, padding=1)
    for _ in range(2):  # the first call validates and caches, the second reuses
        out = np.full(expected.shape, np.nan, np.float32)
        assert call(x, out) is out
        np.testing.assert_array_equal(out, expected)
    storage = np.zeros(x.size + expected.size, np.float32)
    x_in_storage = storage[:x.size].reshape(x.shape)
    x_in_storage[...] = x
    bad = [
        (np.empty((2, 5, 7, 5), np.float32), ValueError),
        (np.empty((5, 2, 7, 6), np.float32), ValueError),  # the right size, not shape
        (np.empty(expected.shape[1:], np.float32), ValueError),
        (np.empty(expected.shape, np.float64), TypeError),
        (np.empty((*expected.shape[:-1], 12), np.float32)[..., ::2], ValueError),
        (np.asfortranarray(np.empty(expected.shape, np.float32)), ValueError),
        (storage[x.size // 2:x.size // 2 + expected.size].reshape(expected.shape), ValueError),
        ([[0.0]], TypeError),
    ]
    ro = np.empty(expected.shape, np.float32)
    ro.setflags(write=False)
    bad.append((ro, ValueError))
    for out, exc in bad:
        with pytest.raises(exc, match=r"\bout\b"):
            call(x_in_storage, out)
    np.testing.assert_array_equal(x_in_storage, x)


def test_inputs_the_cached_plan_cannot_take_as_is() -> None:
    # The layer first tries the operator of the last input shape; any other input (another
    # shape, a single image, a non-contiguous view, Fortran order, a subclass) must still
    # get the right answer.
    layer = convx.Conv2D(3, 5, 3, padding=1, seed=2)
    w, b = np.array(layer.weight), np.array(layer.bias)
    rng = np.random.default_rng(4)
    a = rng.standard_normal((2, 6, 7, 3)).astype(np.float32)
    c = rng.standard_normal((1, 9, 4, 3)).astype(np.float32)
    for x in (a, c, a, a[0], c, a[:, :, ::-1], np.asfortranarray(a), np.ma.masked_array(a),
              a.reshape(2, 7, 6, 3), a):
        x_arr = np.ascontiguousarray(np.asarray(x))
        np.testing.assert_array_equal(layer(x), convx.conv2d(x_arr, w, b, padding=1))
    with pytest.raises(TypeError, match="dtype"):
        layer(a.astype(np.float64))


def test_bound_operator_is_a_strict_positional_call() -> None:
    """Conv2dOp.bind returns a builtin bound_conv(x, out=None): the layer's per-call entry,
    outside pybind11's dispatcher, so it translates its own errors."""
    rng = np.random.default_rng(5)
    w = rng.standard_normal((4, 3, 3, 2)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    x = rng.standard_normal((1, 6, 7, 2)).astype(np.float32)
    op = _core.Conv2dOp((1, 6, 7, 2), (4, 3), 3, (1, 1), (1, 1), (1, 1, 1, 1), 1, "NHWC",
                        "none", True, _core.PackedWeights(w, 1, "NHWC"), False)
    bound = op.bind(b)
    want = convx.conv2d(x, w, b, padding=1)
    np.testing.assert_array_equal(bound(x), want)
    out = np.full_like(want, np.nan)
    assert bound(x, out) is out
    np.testing.assert_array_equal(out, want)
    # Arrays it cannot take or write as they are: None, computing nothing.
    assert bound(x[:, :5]) is None
    assert bound(x.astype(np.float64)) is None
    assert bound(np.asfortranarray(x)) is None
    assert bound([1.0]) is None
    assert bound(x, np.empty((1, 6, 7, 5), np.float32)) is None
    assert bound(x, [0.0]) is None
    read_only = np.empty_like(want)
    read_only.setflags(write=False)
    assert bound(x, read_only) is None
    # Bad calls raise.
    with pytest.raises(TypeError, match="takes"):
        bound()
    with pytest.raises(TypeError, match="takes"):
        bound(x, out, out)
    with pytest.raises(TypeError):
        bound(x, out=out)  # positional only
    buf = np.zeros(x.size + want.size, np.float32)
    buf[: x.size] = x.reshape(-1)
    with pytest.raises(ValueError, match="overlap"):
        bound(buf[: x.size].reshape(x.shape), buf[50 : 50 + want.size].reshape(want.shape))
    del op  # the bound function keeps what it needs alive
    np.testing.assert_array_equal(bound(x), want)


def test_layer_call_in_c_falls_back_for_every_other_call() -> None:
    """Conv2D.__call__ is _core.LayerBase's, in C: layer(x) and layer(x, out=o) try the
    bound operator, and every other call, or one the operator declines, goes to
    _call_slow. Errors are never swallowed."""
    rng = np.random.default_rng(6)
    layer = convx.Conv2D(2, 3, 3, padding=1, seed=0)
    x = rng.standard_normal((1, 5, 6, 2)).astype(np.float32)
    want = convx.conv2d(x, np.array(layer.weight), np.array(layer.bias), padding=1)
    np.testing.assert_array_equal(layer(x), want)
    np.testing.assert_array_equal(layer(x), want)  # the bound operator
    out = np.empty_like(want)
    assert layer(x, out=out) is out
    np.testing.assert_array_equal(out, want)
    with pytest.raises(TypeError):
        layer()
    with pytest.raises(TypeError):
        layer(x, out)  # out is keyword-only
    with pytest.raises(TypeError):
        layer(x, bias=None)
    with pytest.raises(ValueError, match="out"):
        layer(x, out=np.empty((1, 5, 6, 4), np.float32))
    with pytest.raises(ValueError):
        layer(x[:, :, :, :1])
    np.testing.assert_array_equal(layer(x[0]), want[0])  # another shape: an operator of its own
    calls: list[int] = []

    def failing(x_: Any, out_: Any) -> None:
        calls.append(1)
        raise ValueError("from the operator")

    object.__setattr__(layer, "_fast", failing)
    with pytest.raises(ValueError, match="from the operator"):
        layer(x)
    assert calls == [1]


@pytest.mark.parametrize("how", ["deepcopy", "copy", "pickle"])
def test_layer_copies_and_pickles(how: str) -> None:
    """Copies carry the configuration and the arrays; the packed weights and the cached
    operators are rebuilt, and the copy's arrays are its own."""
    import copy
    import pickle

    rng = np.random.default_rng(8)
    layer = convx.Conv2D(4, 6, 3, stride=2, padding="same", groups=2, seed=3,
                         activation="relu", dtype=np.float64)
    layer.tag = "mine"  # attributes of the user's survive too
    x = rng.standard_normal((2, 9, 10, 4))
    want = layer(x)  # an operator is cached before copying
    if how == "pickle":
        twin = pickle.loads(pickle.dumps(layer))
    else:
        twin = getattr(copy, how)(layer)
    assert twin is not layer and twin.tag == "mine" and repr(twin) == repr(layer)
    np.testing.assert_array_equal(twin(x), want)
    np.testing.assert_array_equal(twin(x), want)  # its own cached operator
    assert not twin.weight.flags.writeable
    twin.weight = np.zeros_like(twin.weight)
    np.testing.assert_array_equal(layer(x), want)  # the original is untouched
    assert not np.array_equal(twin(x), want)
