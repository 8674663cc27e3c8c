"""padding_mode ("zeros", "reflect", "replicate", "circular"): conv2d, Conv2D, the backward
pass, pad and im2col against a float64 reference that pads with numpy.pad and convolves
unpadded, and against torch (F.pad + conv2d, nn.Conv2d(padding_mode=...) and its autograd);
every algorithm the core may choose; the limits of each mode; no input-sized allocation."""

from __future__ import annotations

import pickle
import tracemalloc
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import assert_close, conv2d_ref, uniform

import convx

MODES = ("reflect", "replicate", "circular")
NUMPY_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def np_pad(x: np.ndarray, pads: tuple[int, int, int, int], mode: str, layout: str) -> np.ndarray:
    """x padded by (top, bottom, left, right) with numpy.pad's equivalent of `mode`."""
    top, bottom, left, right = pads
    spatial = [(top, bottom), (left, right)]
    widths = [(0, 0), *spatial, (0, 0)] if layout == "NHWC" else [(0, 0), (0, 0), *spatial]
    return np.pad(x, widths, mode=NUMPY_MODE[mode])  # type: ignore[call-overload]


def reference(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, pads: tuple[int, int, int, int],
              mode: str, layout: str, **kw: Any) -> np.ndarray:
    xp = np_pad(np.asarray(x, np.float64), pads, mode, layout)
    return conv2d_ref(xp, w, b, padding=0, layout=layout, **kw)


def weight_shape(c_out: int, c_g: int, k: tuple[int, int], layout: str) -> tuple[int, ...]:
    return (c_out, *k, c_g) if layout == "NHWC" else (c_out, c_g, *k)


def input_shape(n: int, h: int, w: int, c: int, layout: str) -> tuple[int, ...]:
    return (n, h, w, c) if layout == "NHWC" else (n, c, h, w)


# Geometries that take each algorithm: (c_in, c_out, kernel, groups, stride, layout).
PATHS = [
    ("gemm", 24, 16, (3, 3), 1, 1, "NHWC"),
    ("gemm", 3, 8, (5, 5), 1, 2, "NHWC"),
    ("gemm", 8, 12, (3, 2), 2, 1, "NCHW"),
    ("direct", 1, 6, (3, 3), 1, 1, "NHWC"),
    ("depthwise", 16, 16, (3, 3), 16, 1, "NHWC"),
    ("depthwise", 12, 12, (3, 3), 12, 1, "NCHW"),
    ("depthwise", 8, 8, (5, 3), 8, 2, "NCHW"),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("path", PATHS, ids=lambda p: f"{p[0]}-{p[6]}-c{p[1]}")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_each_algorithm_matches_numpy_pad(mode: str, path: tuple[Any, ...], dtype: type,
                                          rng: np.random.Generator) -> None:
    algorithm, c_in, c_out, k, groups, stride, layout = path
    pads = (2, 1, 1, 2)
    x = uniform(rng, input_shape(2, 9, 10, c_in, layout), dtype)
    w = uniform(rng, weight_shape(c_out, c_in // groups, k, layout), dtype)
    b = uniform(rng, (c_out,), dtype)
    layer = convx.Conv2D(c_in, c_out, k, stride=stride, padding=((2, 1), (1, 2)),
                         groups=groups, layout=layout, dtype=dtype, padding_mode=mode)
    layer.weight, layer.bias = w, b
    y = layer(x)
    assert layer.algorithm == algorithm
    want = reference(x, w, b, pads, mode, layout, stride=stride, groups=groups)
    assert_close(y, want, dtype, k[0] * k[1] * c_in // groups)
    info = convx.explain(x.shape, w.shape, stride=stride, padding=((2, 1), (1, 2)),
                         groups=groups, layout=layout, dtype=dtype, padding_mode=mode)
    assert info["algorithm"] == algorithm
    np.testing.assert_array_equal(
        convx.conv2d(x, w, b, stride=stride, padding=((2, 1), (1, 2)), groups=groups,
                     layout=layout, padding_mode=mode), y)


@settings(max_examples=60)
@given(
    data=st.data(),
    layout=st.sampled_from(["NHWC", "NCHW"]),
    mode=st.sampled_from(("zeros", *MODES)),
    dtype=st.sampled_from([np.float32, np.float64]),
    groups=st.sampled_from([1, 2, 3]),
    c_g=st.integers(1, 5),
    m_g=st.integers(1, 4),
    k=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    hw=st.tuples(st.integers(1, 9), st.integers(1, 9)),
)
def test_property_against_numpy_pad(data: st.DataObject, layout: str, mode: str, dtype: type,
                                    groups: int, c_g: int, m_g: int, k: tuple[int, int],
                                    stride: tuple[int, int], dilation: tuple[int, int],
                                    hw: tuple[int, int]) -> None:
    h, w_ = hw
    limit_h = h - 1 if mode == "reflect" else h
    limit_w = w_ - 1 if mode == "reflect" else w_
    top, bottom = (data.draw(st.integers(0, min(limit_h, 4))) for _ in range(2))
    left, right = (data.draw(st.integers(0, min(limit_w, 4))) for _ in range(2))
    if h + top + bottom < dilation[0] * (k[0] - 1) + 1:
        return
    if w_ + left + right < dilation[1] * (k[1] - 1) + 1:
        return
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    x = uniform(rng, input_shape(2, h, w_, c_g * groups, layout), dtype)
    w = uniform(rng, weight_shape(m_g * groups, c_g, k, layout), dtype)
    y = convx.conv2d(x, w, stride=stride, dilation=dilation, groups=groups, layout=layout,
                     padding=((top, bottom), (left, right)), padding_mode=mode)
    want = reference(x, w, None, (top, bottom, left, right), mode, layout, stride=stride,
                     dilation=dilation, groups=groups)
    assert_close(y, want, dtype, k[0] * k[1] * c_g)


def _torch_layer(mode: str, c_in: int, c_out: int, k: int, stride: int, padding: int,
                 groups: int) -> Any:
    torch = pytest.importorskip("torch")
    return torch.nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding, groups=groups,
                           padding_mode=mode).double()


@pytest.mark.parametrize("mode", ("zeros", *MODES))
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize("geometry", [(6, 8, 3, 1, 1, 1), (4, 4, 3, 2, 2, 4), (3, 16, 5, 1, 2, 1)])
def test_forward_and_backward_match_torch(mode: str, layout: str, geometry: tuple[int, ...],
                                          rng: np.random.Generator) -> None:
    """nn.Conv2d(padding_mode=mode) and F.pad + conv2d; dx, dw, db from torch's autograd,
    through Conv2D.backward and conv2d_backward."""
    torch = pytest.importorskip("torch")
    c_in, c_out, k, stride, padding, groups = geometry
    tl = _torch_layer(mode, c_in, c_out, k, stride, padding, groups)
    x_nchw = rng.standard_normal((2, c_in, 8, 7))
    xt = torch.tensor(x_nchw, requires_grad=True)
    yt = tl(xt)
    if mode != "zeros":
        via_pad = torch.nn.functional.conv2d(
            torch.nn.functional.pad(xt, (padding,) * 4, mode=mode), tl.weight, tl.bias,
            stride=stride, groups=groups)
        torch.testing.assert_close(via_pad, yt)
    g_nchw = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(g_nchw))
    w_oihw = tl.weight.detach().numpy()
    nhwc = layout == "NHWC"
    layer = convx.Conv2D(c_in, c_out, k, stride=stride, padding=padding, groups=groups,
                         layout=layout, dtype=np.float64, padding_mode=mode)
    layer.weight = w_oihw.transpose(0, 2, 3, 1) if nhwc else w_oihw
    layer.bias = tl.bias.detach().numpy()
    x = x_nchw.transpose(0, 2, 3, 1).copy() if nhwc else x_nchw
    g = g_nchw.transpose(0, 2, 3, 1).copy() if nhwc else g_nchw
    y = layer(x)
    y_nchw = y.transpose(0, 3, 1, 2) if nhwc else y
    np.testing.assert_allclose(y_nchw, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    dx = layer.backward(g)
    dx_nchw = dx.transpose(0, 3, 1, 2) if nhwc else dx
    assert xt.grad is not None and tl.weight.grad is not None and tl.bias.grad is not None
    np.testing.assert_allclose(dx_nchw, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    assert layer.weight_grad is not None and layer.bias_grad is not None
    dw = layer.weight_grad.transpose(0, 3, 1, 2) if nhwc else layer.weight_grad
    np.testing.assert_allclose(dw, tl.weight.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.bias_grad, tl.bias.grad.numpy(), rtol=1e-12, atol=1e-12)
    dx2, dw2, _ = convx.conv2d_backward(g, x, layer.weight, stride=stride, padding=padding,
                                        groups=groups, layout=layout, padding_mode=mode)
    np.testing.assert_array_equal(dx2, dx)
    np.testing.assert_array_equal(dw2, layer.weight_grad)


@pytest.mark.parametrize("mode", MODES)
def test_backward_of_wide_layers_matches_torch(mode: str, rng: np.random.Generator) -> None:
    """dx as a convolution (many input channels) and by col2im (few), depthwise too, with a
    stride that spreads dy, against torch's autograd."""
    torch = pytest.importorskip("torch")
    for c_in, c_out, groups, stride in ((32, 8, 1, 1), (16, 16, 16, 2), (2, 24, 1, 2)):
        tl = _torch_layer(mode, c_in, c_out, 3, stride, 1, groups)
        x_nchw = rng.standard_normal((1, c_in, 6, 9))
        xt = torch.tensor(x_nchw, requires_grad=True)
        yt = tl(xt)
        g = rng.standard_normal(tuple(yt.shape))
        yt.backward(torch.tensor(g))
        dx, dw, db = convx.conv2d_backward(g, x_nchw, tl.weight.detach().numpy(), stride=stride,
                                           padding=1, groups=groups, layout="NCHW",
                                           padding_mode=mode)
        assert xt.grad is not None and tl.weight.grad is not None and tl.bias.grad is not None
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dw, tl.weight.grad.numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(db, tl.bias.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ("zeros", *MODES))
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_pad_and_im2col_match_numpy(mode: str, layout: str, rng: np.random.Generator) -> None:
    x = uniform(rng, input_shape(2, 5, 6, 3, layout), np.float64)
    got = convx.pad(x, ((2, 4), (3, 1)), mode=mode, layout=layout)
    want = np_pad(x, (2, 4, 3, 1), mode, layout)
    np.testing.assert_array_equal(got, want)
    cols = convx.im2col(x, 3, padding=((2, 4), (3, 1)), layout=layout, padding_mode=mode)
    np.testing.assert_array_equal(cols, convx.im2col(want, 3, padding=0, layout=layout))


@pytest.mark.parametrize("call", ["conv2d", "layer", "pad", "backward"])
def test_limits_of_each_mode_are_errors(call: str) -> None:
    x = np.zeros((1, 3, 4, 2), np.float32)
    w = np.zeros((2, 3, 3, 2), np.float32)

    def run(mode: str, padding: Any) -> Any:
        if call == "conv2d":
            return convx.conv2d(x, w, padding=padding, padding_mode=mode)
        if call == "layer":
            return convx.Conv2D(2, 2, 3, padding=padding, padding_mode=mode)(x)
        if call == "pad":
            return convx.pad(x, padding, mode=mode)
        return convx.conv2d_backward(np.zeros((1, 3 + 2 * padding - 2, 4 + 2 * padding - 2, 2),
                                              np.float32), x, w, padding=padding,
                                     padding_mode=mode)

    name = "mode" if call == "pad" else "padding_mode"
    with pytest.raises(ValueError, match=f"^{name} 'reflect'.*smaller than the height"):
        run("reflect", 3)
    with pytest.raises(ValueError, match=f"^{name} 'circular'.*at most the height"):
        run("circular", 5)
    run("reflect", 2)
    run("circular", 3)
    with pytest.raises(ValueError, match=f"^{name} must be 'zeros', 'reflect'"):
        run("mirror", 1)


def test_other_validation() -> None:
    with pytest.raises(ValueError, match=r"^mode 'replicate'.*height of at least 1"):
        convx.pad(np.zeros((1, 0, 4, 2)), 1, mode="replicate")
    with pytest.raises(ValueError, match="mode must be"):
        convx.pad(np.zeros((1, 2, 2, 1)), 1, mode="edge")
    with pytest.raises(ValueError, match="padding_mode must be"):
        convx.Conv2D(2, 2, 3, padding_mode="reflection")
    with pytest.raises(ValueError, match="padding_mode must be"):
        convx.conv2d(np.zeros((1, 4, 4, 1)), np.zeros((1, 1, 1, 1)), padding_mode=None)  # type: ignore[arg-type]
    x = np.ones((1, 3, 3, 2), np.float32)
    w = np.ones((2, 3, 3, 1), np.float32)
    with pytest.raises(ValueError, match="padding_mode: a transposed convolution supports only"):
        convx.conv_transpose2d(x, w, padding=1, padding_mode="reflect")
    with pytest.raises(ValueError, match="padding_mode: a transposed convolution supports only"):
        convx.ConvTranspose2D(2, 1, 3, padding_mode="circular")
    y = convx.conv_transpose2d(x, w, padding=1, padding_mode="zeros")
    assert y.shape == (1, 3, 3, 1)
    # Without padding the mode reads nothing: any mode gives the zeros result.
    big = np.ones((1, 2, 2, 1), np.float32)
    one = np.ones((1, 3, 3, 1), np.float32)
    assert convx.conv2d(big, one[:, :2, :2], padding_mode="reflect")[0, 0, 0, 0] == 4.0


def test_layer_keeps_the_mode_through_pickle_and_assignment(rng: np.random.Generator) -> None:
    layer = convx.Conv2D(3, 4, 3, padding=1, padding_mode="reflect", seed=1)
    assert "padding_mode='reflect'" in repr(layer)
    x = uniform(rng, (1, 6, 5, 3), np.float32)
    y = layer(x)
    clone = pickle.loads(pickle.dumps(layer))
    assert clone.padding_mode == "reflect"
    np.testing.assert_array_equal(clone(x), y)
    # A pickle from before the attribute existed reads as zeros padding.
    state = layer.__getstate__()
    del state["padding_mode"]
    old = convx.Conv2D.__new__(convx.Conv2D)
    old.__setstate__(state)
    assert old.padding_mode == "zeros"
    np.testing.assert_array_equal(old(x), convx.conv2d(x, layer.weight, layer.bias, padding=1))
    layer.padding_mode = "circular"
    np.testing.assert_array_equal(
        layer(x), convx.conv2d(x, layer.weight, layer.bias, padding=1, padding_mode="circular"))
    assert not np.array_equal(layer(x), y)


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_no_input_sized_allocation(layout: str, rng: np.random.Generator) -> None:
    """A reflect-padded call allocates no NumPy memory near the input's size (the padded
    input is never formed), and the core's scratch is the zeros mode's."""
    x = uniform(rng, input_shape(1, 96, 96, 32, layout), np.float32)  # 1.2 MB
    w = uniform(rng, weight_shape(32, 32, (3, 3), layout), np.float32)
    out = np.empty_like(x)
    for mode in ("zeros", "reflect"):
        convx.conv2d(x, w, padding=1, layout=layout, padding_mode=mode, out=out)
        tracemalloc.start()
        convx.conv2d(x, w, padding=1, layout=layout, padding_mode=mode, out=out)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < x.nbytes // 8, (mode, peak)
    sizes = {mode: convx.workspace_bytes(x.shape, w.shape, padding=1, layout=layout,
                                         padding_mode=mode) for mode in ("zeros", *MODES)}
    assert len(set(sizes.values())) == 1, sizes
