"""convx.conv1d, conv1d_backward and Conv1D against torch and a float64 NumPy reference."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import assert_close

import convx
import convx._conv1d as conv1d_module

torch = pytest.importorskip("torch")
F = torch.nn.functional

DTYPES = [np.float32, np.float64]
LAYOUTS = ["NLC", "NCL"]


def conv1d_ref(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int,
               pads: tuple[int, int], dilation: int, groups: int) -> np.ndarray:
    """The defining sum in float64, NCL with (C_out, C_in/groups, k) weights, one output
    element per (position, filter): y[n, m, i] = b[m] + sum_{c,u} xp[n, g*C_g + c,
    i*s + u*d] w[m, c, u]."""
    x = np.pad(np.asarray(x, np.float64), ((0, 0), (0, 0), pads))
    w = np.asarray(w, np.float64)
    n, _, length = x.shape
    c_out, c_g, k = w.shape
    l_out = (length - dilation * (k - 1) - 1) // stride + 1
    y = np.zeros((n, c_out, l_out))
    per_group = c_out // groups
    for m in range(c_out):
        g = m // per_group
        for i in range(l_out):
            taps = x[:, g * c_g:(g + 1) * c_g, i * stride:i * stride + dilation * (k - 1) + 1:
                     dilation]
            y[:, m, i] = np.einsum("ncu,cu->n", taps, w[m])
        if b is not None:
            y[:, m] += b[m]
    return y


def to_layout(x_ncl: np.ndarray, layout: str) -> np.ndarray:
    """An NCL array (or an OIK weight) in `layout`, C-contiguous."""
    return np.ascontiguousarray(x_ncl if layout == "NCL" else np.swapaxes(x_ncl, -1, -2))


def from_layout(y: np.ndarray, layout: str) -> np.ndarray:
    return y if layout == "NCL" else np.swapaxes(y, -1, -2)


def tol(dtype: Any) -> float:
    return 2e-5 if dtype == np.float32 else 1e-11


# ------------------------------------------------------------------------------- torch


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("stride", "padding", "dilation", "groups"), [
    (1, 0, 1, 1), (2, 1, 1, 1), (1, 3, 2, 1), (3, 2, 2, 2), (1, 0, 1, 6), (2, 4, 3, 3),
])
def test_conv1d_matches_torch(layout: str, dtype: Any, stride: int, padding: int,
                              dilation: int, groups: int, rng: np.random.Generator) -> None:
    x = rng.standard_normal((3, 6, 23)).astype(dtype)
    w = rng.standard_normal((12, 6 // groups, 4)).astype(dtype)
    b = rng.standard_normal(12).astype(dtype)
    want = F.conv1d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b),
                    stride=stride, padding=padding, dilation=dilation, groups=groups).numpy()
    got = convx.conv1d(to_layout(x, layout), to_layout(w, layout), b, stride=stride,
                       padding=padding, dilation=dilation, groups=groups, layout=layout)
    assert got.dtype == dtype
    np.testing.assert_allclose(from_layout(got, layout), want, rtol=tol(dtype),
                               atol=tol(dtype) * 10)


# torch warns that an odd total padding for "same" costs it a padded copy (it then pads
# the odd element on the right, as convx does).
@pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("kwargs"), [
    {"kernel_size": 5, "padding": "same"},
    {"kernel_size": 4, "padding": "same", "dilation": 3},
    {"kernel_size": 3, "stride": 2, "padding": 1, "groups": 4},
    {"kernel_size": 1, "groups": 8, "bias": False},
    {"kernel_size": 3, "padding": "valid", "dilation": 2},
])
def test_conv1d_layer_matches_torch_module(layout: str, kwargs: dict[str, Any],
                                           rng: np.random.Generator) -> None:
    module = torch.nn.Conv1d(8, 16, **kwargs).double()
    layer = convx.Conv1D(8, 16, **kwargs, layout=layout, dtype=np.float64)
    layer.weight = to_layout(module.weight.detach().numpy(), layout)
    layer.bias = None if module.bias is None else module.bias.detach().numpy()
    x = rng.standard_normal((2, 8, 31))
    want = module(torch.from_numpy(x)).detach().numpy()
    got = layer(to_layout(x, layout))
    np.testing.assert_allclose(from_layout(got, layout), want, rtol=1e-11, atol=1e-11)
    assert layer.output_shape(to_layout(x, layout).shape) == got.shape


# ---------------------------------------------------------------- float64 reference


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv1d_matches_the_float64_reference(layout: str, dtype: Any,
                                              rng: np.random.Generator) -> None:
    x = rng.uniform(-1, 1, (2, 4, 19)).astype(dtype)
    w = rng.uniform(-1, 1, (6, 2, 5)).astype(dtype)
    b = rng.uniform(-1, 1, 6).astype(dtype)
    got = convx.conv1d(to_layout(x, layout), to_layout(w, layout), b, stride=2,
                       padding=(3, 1), dilation=2, groups=2, layout=layout)
    assert_close(from_layout(got, layout), conv1d_ref(x, w, b, 2, (3, 1), 2, 2), dtype, 10)


@given(
    n=st.integers(1, 3), c_g=st.integers(1, 4), groups=st.integers(1, 3),
    per_group=st.integers(1, 3), length=st.integers(1, 24), k=st.integers(1, 5),
    stride=st.integers(1, 3), dilation=st.integers(1, 3),
    pads=st.tuples(st.integers(0, 3), st.integers(0, 3)) | st.sampled_from(["same", "valid"]),
    layout=st.sampled_from(LAYOUTS), dtype=st.sampled_from(DTYPES),
    with_bias=st.booleans(), relu=st.booleans(), seed=st.integers(0, 2**32 - 1),
)
def test_conv1d_property(n: int, c_g: int, groups: int, per_group: int, length: int, k: int,
                         stride: int, dilation: int, pads: Any, layout: str, dtype: Any,
                         with_bias: bool, relu: bool, seed: int) -> None:
    if isinstance(pads, str):
        if pads == "valid":
            left = right = 0
        else:
            out = -(-length // stride)
            total = max((out - 1) * stride + dilation * (k - 1) + 1 - length, 0)
            left, right = total // 2, total - total // 2
    else:
        left, right = pads
    if length + left + right < dilation * (k - 1) + 1:
        with pytest.raises(ValueError, match="kernel_size: the length kernel extent"):
            convx.conv1d(np.zeros((n, length, c_g * groups), dtype),
                         np.zeros((per_group * groups, k, c_g), dtype), stride=stride,
                         padding=pads, dilation=dilation, groups=groups)
        return
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, c_g * groups, length)).astype(dtype)
    w = rng.uniform(-1, 1, (per_group * groups, c_g, k)).astype(dtype)
    b = rng.uniform(-1, 1, per_group * groups).astype(dtype) if with_bias else None
    got = convx.conv1d(to_layout(x, layout), to_layout(w, layout), b, stride=stride,
                       padding=pads, dilation=dilation, groups=groups, layout=layout,
                       activation="relu" if relu else None)
    want = conv1d_ref(x, w, b, stride, (left, right), dilation, groups)
    if relu:
        want = np.maximum(want, 0.0)
    assert_close(from_layout(got, layout), want, dtype, c_g * k)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_conv1d_of_one_signal_is_the_batch_of_one(layout: str,
                                                  rng: np.random.Generator) -> None:
    x = to_layout(rng.standard_normal((1, 3, 10)).astype(np.float32), layout)
    w = to_layout(rng.standard_normal((5, 3, 3)).astype(np.float32), layout)
    single = convx.conv1d(x[0], w, padding=1, layout=layout)
    assert single.shape == convx.conv1d_output_shape(x[0].shape, w.shape, padding=1,
                                                     layout=layout)
    np.testing.assert_array_equal(single, convx.conv1d(x, w, padding=1, layout=layout)[0])
    layer = convx.Conv1D(3, 5, 3, padding=1, layout=layout, seed=1)
    np.testing.assert_array_equal(layer(x[0]), layer(x)[0])


# -------------------------------------------------------------------------- no copies


@pytest.mark.parametrize("layout", LAYOUTS)
def test_conv1d_hands_conv2d_views_of_its_arrays(layout: str, rng: np.random.Generator,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    real = conv1d_module.conv2d

    def spy(x: Any, weight: Any, bias: Any = None, **kwargs: Any) -> Any:
        seen.update(x=x, weight=weight, out=kwargs.get("out"))
        return real(x, weight, bias, **kwargs)

    monkeypatch.setattr(conv1d_module, "conv2d", spy)
    x = to_layout(rng.standard_normal((2, 4, 50)).astype(np.float32), layout)
    w = to_layout(rng.standard_normal((8, 4, 3)).astype(np.float32), layout)
    out = np.empty(convx.conv1d_output_shape(x.shape, w.shape, layout=layout), np.float32)
    result = convx.conv1d(x, w, layout=layout, out=out)
    assert result is out
    assert seen["x"].ndim == 4 and np.shares_memory(seen["x"], x)
    assert seen["x"].__array_interface__["data"][0] == x.__array_interface__["data"][0]
    assert np.shares_memory(seen["weight"], w)
    assert seen["out"].ndim == 4 and np.shares_memory(seen["out"], out)
    x4 = np.expand_dims(x, 1 if layout == "NLC" else 2)
    w4 = np.expand_dims(w, 1 if layout == "NLC" else 2)
    want = convx.conv2d(x4, w4, layout="NHWC" if layout == "NLC" else "NCHW")
    np.testing.assert_array_equal(out, np.squeeze(want, 1 if layout == "NLC" else 2))


def test_conv1d_result_is_a_view_of_the_2d_result(rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 30, 4)).astype(np.float32)
    y = convx.conv1d(x, rng.standard_normal((6, 3, 4)).astype(np.float32))
    assert y.shape == (2, 28, 6) and y.flags.c_contiguous and y.base is not None


def test_conv1d_layer_passes_views_and_writes_out_in_place(rng: np.random.Generator) -> None:
    layer = convx.Conv1D(4, 6, 3, padding="same", layout="NCL", seed=0)
    x = rng.standard_normal((2, 4, 40)).astype(np.float32)
    out = np.empty((2, 6, 40), np.float32)
    assert layer(x, out=out) is out
    saved = layer._conv._saved_input
    assert saved.ndim == 4 and np.shares_memory(saved, x)
    np.testing.assert_array_equal(out, layer(x))


def test_non_contiguous_input_gives_the_contiguous_result(rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 40, 6)).astype(np.float32)
    w = rng.standard_normal((5, 3, 6)).astype(np.float32)
    strided = x[:, ::2]
    np.testing.assert_array_equal(convx.conv1d(strided, w),
                                  convx.conv1d(np.ascontiguousarray(strided), w))


# --------------------------------------------------------------------------- backward


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("stride", "padding", "dilation", "groups"), [
    (1, 1, 1, 1), (2, 0, 2, 2), (1, "same", 3, 1), (3, (2, 1), 1, 4),
])
def test_conv1d_backward_matches_torch(layout: str, stride: int, padding: Any, dilation: int,
                                       groups: int, rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 8, 21))
    w = rng.standard_normal((12, 8 // groups, 3))
    xt = torch.from_numpy(x).requires_grad_()
    wt = torch.from_numpy(w).requires_grad_()
    bt = torch.zeros(12, dtype=torch.float64, requires_grad=True)
    if padding == "same":
        pad_t: Any = "same"
    elif isinstance(padding, tuple):
        pad_t = 0
        xt_in = F.pad(xt, padding)
    else:
        pad_t = padding
    y = F.conv1d(xt_in if isinstance(padding, tuple) else xt, wt, bt, stride=stride,
                 padding=pad_t, dilation=dilation, groups=groups)
    g = rng.standard_normal(y.shape)
    y.backward(torch.from_numpy(g))
    dx, dw, db = convx.conv1d_backward(to_layout(g, layout), to_layout(x, layout),
                                       to_layout(w, layout), stride=stride, padding=padding,
                                       dilation=dilation, groups=groups, layout=layout)
    assert dx is not None and dw is not None and db is not None
    np.testing.assert_allclose(from_layout(dx, layout), xt.grad.numpy(), atol=1e-11)
    np.testing.assert_allclose(from_layout(dw, layout), wt.grad.numpy(), atol=1e-11)
    np.testing.assert_allclose(db, bt.grad.numpy(), atol=1e-11)
    _, dw_only, db_none = convx.conv1d_backward(
        to_layout(g, layout), to_layout(x, layout), to_layout(w, layout), stride=stride,
        padding=padding, dilation=dilation, groups=groups, layout=layout, needs=("weight",))
    assert db_none is None
    np.testing.assert_array_equal(dw_only, dw)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_conv1d_layer_backward_matches_torch_module(layout: str,
                                                    rng: np.random.Generator) -> None:
    module = torch.nn.Conv1d(4, 6, 3, stride=2, padding=1, groups=2).double()
    layer = convx.Conv1D(4, 6, 3, stride=2, padding=1, groups=2, layout=layout,
                         dtype=np.float64)
    layer.weight = to_layout(module.weight.detach().numpy(), layout)
    layer.bias = module.bias.detach().numpy()
    x = rng.standard_normal((3, 4, 17))
    xt = torch.from_numpy(x).requires_grad_()
    y = module(xt)
    g = rng.standard_normal(y.shape)
    y.backward(torch.from_numpy(g))
    layer(to_layout(x, layout))
    for _ in range(2):  # the gradients add up over calls to backward
        dx = layer.backward(to_layout(g, layout))
    np.testing.assert_allclose(from_layout(dx, layout), xt.grad.numpy(), atol=1e-11)
    assert layer.weight_grad is not None and layer.bias_grad is not None
    assert layer.weight_grad.shape == layer.weight.shape
    np.testing.assert_allclose(from_layout(layer.weight_grad, layout),
                               2 * module.weight.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(layer.bias_grad, 2 * module.bias.grad.numpy(), atol=1e-10)
    layer.zero_grad()
    assert layer.weight_grad is None and layer.bias_grad is None


def test_layer_without_saved_input_has_no_backward(rng: np.random.Generator) -> None:
    layer = convx.Conv1D(2, 3, 3)
    layer.save_input = False
    layer(rng.standard_normal((1, 9, 2)).astype(np.float32))
    with pytest.raises(RuntimeError, match="no input saved"):
        layer.backward(np.ones((1, 7, 3), np.float32))
    layer.save_input = True
    layer(rng.standard_normal((1, 9, 2)).astype(np.float32), save_input=False)
    with pytest.raises(RuntimeError, match="no input saved"):
        layer.backward(np.ones((1, 7, 3), np.float32))


# ------------------------------------------------------------------------------ layer


def test_layer_weights_are_those_of_the_equivalent_conv2d() -> None:
    for layout, layout2, axis in (("NLC", "NHWC", 1), ("NCL", "NCHW", 2)):
        one = convx.Conv1D(6, 4, 5, groups=2, layout=layout, seed=7, dtype=np.float64)
        two = convx.Conv2D(6, 4, (1, 5), groups=2, layout=layout2, seed=7, dtype=np.float64)
        assert one.weight.shape == one.weight_shape
        np.testing.assert_array_equal(np.expand_dims(one.weight, axis), two.weight)
        assert one.bias is not None and two.bias is not None
        np.testing.assert_array_equal(one.bias, two.bias)
        bound = 1 / np.sqrt(3 * 5)
        assert np.abs(one.weight).max() <= bound


def test_layer_parameters_and_assignment(rng: np.random.Generator) -> None:
    layer = convx.Conv1D(3, 4, 2, layout="NCL")
    params = layer.parameters()
    assert set(params) == {"weight", "bias"} and params["weight"].shape == (4, 3, 2)
    assert not params["weight"].flags.writeable
    new = rng.standard_normal((4, 3, 2)).astype(np.float32)
    layer.weight = new
    new[0] = 0  # the layer copied it
    assert layer.weight[0].any()
    with pytest.raises(ValueError, match=r"weight must have shape \(4, 3, 2\)"):
        layer.weight = np.zeros((4, 2, 3), np.float32)
    layer.bias = None
    assert set(layer.parameters()) == {"weight"}
    layer.stride, layer.padding, layer.dilation = 2, (1, 0), 2
    assert layer.output_shape((1, 3, 10)) == (1, 4, 5)
    assert layer(np.ones((1, 3, 10), np.float32)).shape == (1, 4, 5)


def test_layer_pickles_and_copies(rng: np.random.Generator) -> None:
    layer = convx.Conv1D(4, 8, 3, stride=2, padding="same", activation="relu", seed=3)
    x = rng.standard_normal((2, 33, 4)).astype(np.float32)
    y = layer(x)
    for other in (pickle.loads(pickle.dumps(layer)), copy.deepcopy(layer)):
        assert repr(other) == repr(layer)
        np.testing.assert_array_equal(other(x), y)
        np.testing.assert_array_equal(other.weight, layer.weight)


def test_layer_repr_algorithm_and_kernel() -> None:
    layer = convx.Conv1D(4, 8, 3, padding=(1, 2), layout="NCL", bias=False)
    assert repr(layer) == ("Conv1D(4, 8, kernel_size=3, stride=1, padding=(1, 2), dilation=1, "
                           "groups=1, bias=False, layout='NCL', dtype=float32, "
                           "activation=None)")
    assert layer.algorithm is None and layer.kernel is None
    layer(np.ones((1, 4, 12), np.float32))
    assert layer.algorithm in ("gemm", "direct", "pointwise", "depthwise")
    assert isinstance(layer.kernel, str) and layer.kernel


# ------------------------------------------------------------------------ padding_mode


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_padding_modes_match_torch(mode: str, layout: str, rng: np.random.Generator) -> None:
    module = torch.nn.Conv1d(3, 5, 3, padding=2, padding_mode=mode).double()
    layer = convx.Conv1D(3, 5, 3, padding=2, padding_mode=mode, layout=layout,
                         dtype=np.float64)
    layer.weight = to_layout(module.weight.detach().numpy(), layout)
    layer.bias = module.bias.detach().numpy()
    x = rng.standard_normal((2, 3, 11))
    want = module(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(from_layout(layer(to_layout(x, layout)), layout), want,
                               atol=1e-11)
    got = convx.conv1d(to_layout(x, layout), layer.weight, layer.bias, padding=2,
                       padding_mode=mode, layout=layout)
    np.testing.assert_allclose(from_layout(got, layout), want, atol=1e-11)
    assert "padding_mode" in repr(layer)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_padding_mode_gradients_match_torch(mode: str, layout: str,
                                            rng: np.random.Generator) -> None:
    module = torch.nn.Conv1d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2,
                             padding_mode=mode).double()
    x = torch.from_numpy(rng.standard_normal((2, 4, 9))).requires_grad_(True)
    y = module(x)
    g = torch.from_numpy(rng.standard_normal(tuple(y.shape)))
    y.backward(g)
    w = to_layout(module.weight.detach().numpy(), layout)
    dx, dw, db = convx.conv1d_backward(to_layout(g.numpy(), layout),
                                       to_layout(x.detach().numpy(), layout), w, stride=2,
                                       padding=2, dilation=2, groups=2, layout=layout,
                                       padding_mode=mode)
    np.testing.assert_allclose(from_layout(dx, layout), x.grad.numpy(), atol=1e-11)
    np.testing.assert_allclose(from_layout(dw, layout), module.weight.grad.numpy(), atol=1e-11)
    np.testing.assert_allclose(db, module.bias.grad.numpy(), atol=1e-11)


def test_padding_mode_errors_speak_of_the_length() -> None:
    with pytest.raises(ValueError, match="input length 3"):
        convx.conv1d(np.ones((1, 3, 2)), np.ones((1, 3, 2)), padding=3, padding_mode="reflect")
    with pytest.raises(ValueError, match="padding_mode"):
        convx.Conv1D(2, 1, 3, padding_mode="mirror")


# ------------------------------------------------------------------------- validation


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"layout": "NHWC"}, ValueError, "layout must be 'NLC' or 'NCL'"),
    ({"stride": 0}, ValueError, "stride must be >= 1"),
    ({"stride": (1, 2)}, TypeError, "stride must be an int"),
    ({"dilation": 1.0}, TypeError, "dilation must be an int"),
    ({"padding": -1}, ValueError, "padding must be >= 0"),
    ({"padding": (1, 2, 3)}, TypeError, "padding must be an int, \\(left, right\\)"),
    ({"padding": "full"}, ValueError, "padding must be 'valid', 'same'"),
    ({"padding_mode": "mirror"}, ValueError, "padding_mode must be .zeros."),
    ({"groups": 0}, ValueError, "groups must be >= 1"),
    ({"activation": "tanh"}, ValueError, "activation must be None or 'relu'"),
])
def test_conv1d_argument_errors(kwargs: dict[str, Any], error: type[Exception],
                                match: str) -> None:
    with pytest.raises(error, match=match):
        convx.conv1d(np.ones((1, 8, 2), np.float32), np.ones((3, 3, 2), np.float32), **kwargs)


def test_conv1d_array_errors_name_the_array() -> None:
    x, w = np.ones((1, 8, 2), np.float32), np.ones((3, 3, 2), np.float32)
    with pytest.raises(ValueError, match=r"x must be 3-D \(N, L, C\) or \(L, C\)"):
        convx.conv1d(x[None], w)
    with pytest.raises(ValueError, match=r"x must be 3-D \(N, C, L\)"):
        convx.conv1d(x[0, 0], w, layout="NCL")
    with pytest.raises(ValueError, match=r"weight must be 3-D \(C_out, k, C_in/groups\)"):
        convx.conv1d(x, w[None])
    with pytest.raises(ValueError, match=r"kernel_size: the length kernel extent 9"):
        convx.conv1d(x, np.ones((3, 9, 2), np.float32))
    with pytest.raises(ValueError, match=r"kernel_size: the length kernel extent 5"):
        convx.conv1d(x[:, :4], w, dilation=2)
    with pytest.raises(ValueError, match=r"out has shape \(1, 5, 3\), expected \(1, 6, 3\)"):
        convx.conv1d(x, w, out=np.empty((1, 5, 3), np.float32))
    with pytest.raises(TypeError, match=r"out must be a numpy\.ndarray"):
        convx.conv1d(x, w, out=[0.0])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="weight has an integer dtype"):
        convx.conv1d(x, w.astype(np.int64))
    with pytest.raises(TypeError, match="bias is float64 but x is float32"):
        convx.conv1d(x, w, np.ones(3))
    with pytest.raises(ValueError, match="weight expects C_in/groups = 2"):
        convx.conv1d(np.ones((1, 8, 4), np.float32), w)
    with pytest.raises(ValueError, match="grad_out must have the output's shape"):
        convx.conv1d_backward(np.ones((1, 5, 3), np.float32), x, w)


def test_layer_argument_errors() -> None:
    with pytest.raises(TypeError, match="kernel_size must be an int"):
        convx.Conv1D(2, 3, (1, 3))
    with pytest.raises(ValueError, match="layout must be 'NLC' or 'NCL'"):
        convx.Conv1D(2, 3, 3, layout="NCHW")
    with pytest.raises(ValueError, match="groups: in_channels 3 is not divisible"):
        convx.Conv1D(3, 4, 3, groups=2)
    layer = convx.Conv1D(2, 3, 5)
    with pytest.raises(ValueError, match="kernel_size: the length kernel extent 5"):
        layer(np.ones((1, 4, 2), np.float32))
    with pytest.raises(ValueError, match=r"out has shape \(1, 2, 3\), expected \(1, 4, 3\)"):
        layer(np.ones((1, 8, 2), np.float32), out=np.empty((1, 2, 3), np.float32))
    with pytest.raises(ValueError, match=r"x must be 3-D \(N, L, C\)"):
        layer(np.ones((1, 1, 4, 2), np.float32))


# --------------------------------------------------------------------------- PyTorch


def _random_conv1d(rng: np.random.Generator) -> tuple[torch.nn.Conv1d, int]:
    """A random nn.Conv1d (every padding mode, 'same', groups, dilation, stride) and an input
    length that fits it."""
    groups = int(rng.choice([1, 2, 3]))
    c_in, c_out = groups * int(rng.integers(1, 4)), groups * int(rng.integers(1, 4))
    k, d = int(rng.integers(1, 6)), int(rng.integers(1, 3))
    mode = str(rng.choice(["zeros", "reflect", "replicate", "circular"]))
    stride = int(rng.integers(1, 4))
    padding: int | str = int(rng.integers(0, 4))
    if stride == 1 and rng.random() < 0.3:
        padding = "same"
    module = torch.nn.Conv1d(c_in, c_out, k, stride=stride, padding=padding, dilation=d,
                             groups=groups, bias=bool(rng.integers(0, 2)), padding_mode=mode,
                             dtype=torch.float64)
    return module, d * (k - 1) + 8


@pytest.mark.parametrize("seed", range(40))
def test_from_torch_and_back(seed: int) -> None:
    rng = np.random.default_rng(seed)
    module, length = _random_conv1d(rng)
    x = rng.standard_normal((2, module.in_channels, length))
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    for layout in LAYOUTS:
        layer = convx.Conv1D.from_torch(module, layout=layout)
        assert layer.padding_mode == module.padding_mode
        np.testing.assert_allclose(from_layout(layer(to_layout(x, layout)), layout), want,
                                   atol=1e-11)
        back = layer.to_torch()
        with torch.no_grad():
            np.testing.assert_array_equal(back(torch.from_numpy(x)).numpy(), want)
        for key, value in module.state_dict().items():
            np.testing.assert_array_equal(layer.state_dict()[key], value.numpy())


def test_state_dict_moves_between_layouts_and_torch() -> None:
    nlc = convx.Conv1D(4, 6, 3, groups=2, layout="NLC", seed=1)
    ncl = convx.Conv1D(4, 6, 3, groups=2, layout="NCL", seed=2)
    ncl.load_state_dict(nlc.state_dict())
    np.testing.assert_array_equal(ncl.weight, nlc.weight.transpose(0, 2, 1))
    module = torch.nn.Conv1d(4, 6, 3, groups=2)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in nlc.state_dict().items()})
    nlc.load_state_dict(module.state_dict())  # tensors are accepted as they are
    with pytest.raises(ValueError, match=r"shape \(6, 3, 2\).*\(6, 2, 3\)"):
        nlc.load_state_dict({"weight": np.zeros((6, 3, 2)), "bias": np.zeros(6)})
    with pytest.raises(ValueError, match="missing keys"):
        nlc.load_state_dict({"weight": np.zeros((6, 2, 3))})


def test_from_torch_refuses_other_modules() -> None:
    with pytest.raises(TypeError, match=r"torch\.nn\.Conv1d"):
        convx.Conv1D.from_torch(torch.nn.Conv2d(2, 3, 3))
    layer = convx.Conv1D(2, 3, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="depends on the input length"):
        layer.to_torch()


def test_to_torch_keeps_asymmetric_padding_and_relu() -> None:
    layer = convx.Conv1D(2, 3, 4, padding=(1, 2), padding_mode="reflect", activation="relu",
                         layout="NCL", dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((1, 2, 9))
    with torch.no_grad():
        np.testing.assert_allclose(layer.to_torch()(torch.from_numpy(x)).numpy(), layer(x),
                                   atol=1e-12)


def test_a_repeated_call_reuses_the_2d_operator() -> None:
    # conv1d keeps the operator conv2d cached for the same call, looked up by conv2d's own
    # key: a key spelt differently would leave this cache empty.
    convx._conv1d_module._OPS.clear()
    x = np.ones((1, 9, 2), np.float32)
    w = np.ones((3, 3, 2), np.float32)
    first = convx.conv1d(x, w, padding=1)
    assert len(convx._conv1d_module._OPS) == 1
    (op, _, _), = convx._conv1d_module._OPS.values()
    assert op.algorithm == "direct"
    np.testing.assert_array_equal(convx.conv1d(x, w, padding=1), first)
