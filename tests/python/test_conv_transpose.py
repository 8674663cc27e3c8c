"""convx.conv_transpose2d: the adjoint of conv2d, with PyTorch / ONNX ConvTranspose semantics.

The oracles: the adjoint identity <conv2d(x, w), y> = <x, conv_transpose2d(y, w)>, the
explicit matrix of the convolution (conv_matrix(...).T), conv2d_backward's input gradient,
and conv_transpose_ref below, a float64 NumPy scatter written from the definition.
test_torch_gradients.py compares with torch itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import as_pair, conv2d_ref, resolve_padding, to_nhwc, uniform

import convx

DTYPES = [np.float32, np.float64]
LAYOUTS = ["NHWC", "NCHW"]


def x_shape(layout: str, n: int | None, h: int, w: int, c: int) -> tuple[int, ...]:
    spatial = (h, w, c) if layout == "NHWC" else (c, h, w)
    return spatial if n is None else (n, *spatial)


def w_shape(layout: str, c_in: int, k_h: int, k_w: int, m_g: int) -> tuple[int, ...]:
    """Weight of conv_transpose2d: (C_in, k_h, k_w, C_out/groups) for NHWC, (C_in,
    C_out/groups, k_h, k_w) for NCHW. The same array is the weight (OHWI / OIHW) of the
    conv2d it transposes, from C_out/groups * groups channels to C_in."""
    return (c_in, k_h, k_w, m_g) if layout == "NHWC" else (c_in, m_g, k_h, k_w)


def explicit_padding(padding: Any) -> tuple[tuple[int, int], tuple[int, int]]:
    return resolve_padding(padding, (0, 0), (1, 1))


def min_output(n_in: int, k: int, s: int, d: int, before: int, after: int) -> int:
    """(in - 1)*s - before - after + d*(k - 1) + 1: the output size with output_padding 0."""
    return (n_in - 1) * s - before - after + d * (k - 1) + 1


def conv_transpose_ref(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, *,
                       stride: Any = 1, padding: Any = 0, output_padding: Any = 0,
                       dilation: Any = 1, groups: int = 1, layout: str = "NHWC",
                       output_size: Any = None) -> np.ndarray:
    """Transposed convolution from its definition, in float64.

    Every input pixel (i, j) of channel c (in group g) scatters x[i, j, c] * w[c, u, v, :]
    into the output channels of group g at (i*s_h + u*d_h - top, j*s_w + v*d_w - left);
    the output has H_out = (H - 1)*s_h - top - bottom + d_h*(k_h - 1) + output_padding + 1
    rows (output_padding adds rows that receive nothing but the bias).
    """
    single = np.asarray(x).ndim == 3
    xs = to_nhwc(np.asarray(x, dtype=np.float64), layout)
    w = np.asarray(weight, dtype=np.float64)
    ws = w if layout == "NHWC" else w.transpose(0, 2, 3, 1)        # (C_in, k_h, k_w, M_g)
    n, h, w_in, c_in = xs.shape
    _, k_h, k_w, m_g = ws.shape
    c_g = c_in // groups
    s_h, s_w = as_pair(stride)
    d_h, d_w = as_pair(dilation)
    (top, bottom), (left, right) = explicit_padding(padding)
    if output_size is not None:
        h_out, w_out = (int(v) for v in tuple(output_size)[-2:])
    else:
        o_h, o_w = as_pair(output_padding)
        h_out = min_output(h, k_h, s_h, d_h, top, bottom) + o_h
        w_out = min_output(w_in, k_w, s_w, d_w, left, right) + o_w
    full_h = max(top + h_out, (h - 1) * s_h + d_h * (k_h - 1) + 1)
    full_w = max(left + w_out, (w_in - 1) * s_w + d_w * (k_w - 1) + 1)
    y = np.zeros((n, full_h, full_w, m_g * groups))
    for grp in range(groups):
        chans = slice(grp * c_g, (grp + 1) * c_g)
        for u in range(k_h):
            for v in range(k_w):
                y[:, u * d_h: u * d_h + (h - 1) * s_h + 1: s_h,
                  v * d_w: v * d_w + (w_in - 1) * s_w + 1: s_w,
                  grp * m_g:(grp + 1) * m_g] += np.tensordot(xs[..., chans],
                                                             ws[chans, u, v, :], axes=1)
    y = y[:, top:top + h_out, left:left + w_out]
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float64)
    if layout == "NCHW":
        y = y.transpose(0, 3, 1, 2)
    return y[0] if single else y


def assert_f64(got: Any, want: np.ndarray, name: str = "y") -> None:
    assert isinstance(got, np.ndarray), f"{name}: {type(got)}"
    assert got.dtype == np.float64, f"{name}: dtype {got.dtype}"
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=name)


# --------------------------------------------------------------------------------------
# The adjoint identity, over the parameter space
# --------------------------------------------------------------------------------------

small_pad = st.integers(0, 2)
explicit_padding_st = st.one_of(
    small_pad,
    st.tuples(small_pad, small_pad),
    st.tuples(st.tuples(small_pad, small_pad), st.tuples(small_pad, small_pad)),
)


@st.composite
def adjoint_problems(draw: st.DrawFn) -> dict[str, Any]:
    """A conv2d from x (C channels) to y (C_T channels); conv_transpose2d maps y back to x's
    shape with the same weight."""
    kind = draw(st.sampled_from(["plain", "plain", "grouped", "depthwise"]))
    if kind == "plain":
        groups, c_g, m_g = 1, draw(st.integers(1, 4)), draw(st.integers(1, 4))
    elif kind == "grouped":
        groups, c_g, m_g = draw(st.integers(2, 3)), draw(st.integers(1, 3)), draw(
            st.integers(1, 3))
    else:
        groups, c_g, m_g = draw(st.integers(1, 5)), draw(st.integers(1, 2)), 1
    k_h, k_w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = draw(st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    dilation = draw(st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 2),
                                                           st.integers(1, 2))))
    padding = draw(explicit_padding_st)
    d_h, d_w = as_pair(dilation)
    (top, bottom), (left, right) = explicit_padding(padding)
    min_h = max(1, (k_h - 1) * d_h + 1 - top - bottom)
    min_w = max(1, (k_w - 1) * d_w + 1 - left - right)
    return {
        "layout": draw(st.sampled_from(LAYOUTS)), "n": draw(st.sampled_from([None, 1, 2, 3])),
        "groups": groups, "c_t": c_g * groups, "c": m_g * groups, "k": (k_h, k_w),
        "h": draw(st.integers(min_h, min_h + 6)), "w": draw(st.integers(min_w, min_w + 6)),
        "stride": stride, "dilation": dilation, "padding": padding,
        "by_output_size": draw(st.booleans()), "seed": draw(st.integers(0, 2**32 - 1)),
    }


@given(problem=adjoint_problems())
def test_adjoint_identity(problem: dict[str, Any]) -> None:
    rng = np.random.default_rng(problem["seed"])
    layout, groups = problem["layout"], problem["groups"]
    geo = {key: problem[key] for key in ("stride", "padding", "dilation", "groups", "layout")}
    k_h, k_w = problem["k"]
    # x has conv_transpose2d's output channels (c), y its input channels (c_t).
    x = uniform(rng, x_shape(layout, problem["n"], problem["h"], problem["w"], problem["c"]),
                np.float64)
    weight = uniform(rng, w_shape(layout, problem["c_t"], k_h, k_w, problem["c"] // groups),
                     np.float64)
    conv_y = convx.conv2d(x, weight, **geo)
    y = uniform(rng, conv_y.shape, np.float64)
    (top, bottom), (left, right) = explicit_padding(problem["padding"])
    s_h, s_w = as_pair(problem["stride"])
    d_h, d_w = as_pair(problem["dilation"])
    h_y, w_y = conv_y.shape[-3:-1] if layout == "NHWC" else conv_y.shape[-2:]
    # Rows of x that the conv's last window leaves out come back as output_padding.
    o_h = problem["h"] - min_output(h_y, k_h, s_h, d_h, top, bottom)
    o_w = problem["w"] - min_output(w_y, k_w, s_w, d_w, left, right)
    assert 0 <= o_h < s_h and 0 <= o_w < s_w
    if problem["by_output_size"]:
        z = convx.conv_transpose2d(y, weight, **geo, output_size=(problem["h"], problem["w"]))
    else:
        z = convx.conv_transpose2d(y, weight, **geo, output_padding=(o_h, o_w))
    assert_f64(z, conv_transpose_ref(y, weight, **geo, output_padding=(o_h, o_w)))
    assert z.shape == x.shape
    lhs, rhs = float(np.sum(conv_y * y)), float(np.sum(x * z))
    # Both sides sum the same products x*w*y; bound their rounding by the sum of |products|.
    magnitude = float(np.sum(conv2d_ref(np.abs(x), np.abs(weight), **geo) * np.abs(y)))
    assert abs(lhs - rhs) <= 1e-13 * (weight.size + y.size) * magnitude


def test_adjoint_check_catches_a_wrong_value() -> None:
    # A wrong element of z far smaller than an indexing bug's breaks the identity's bound.
    rng = np.random.default_rng(5)
    x = uniform(rng, (2, 6, 5, 3), np.float64)
    weight = uniform(rng, (4, 3, 2, 3), np.float64)
    conv_y = conv2d_ref(x, weight, stride=2, padding=1)
    y = uniform(rng, conv_y.shape, np.float64)
    z = conv_transpose_ref(y, weight, stride=2, padding=1, output_padding=(1, 1))
    assert z.shape == x.shape
    magnitude = float(np.sum(conv2d_ref(np.abs(x), np.abs(weight), stride=2, padding=1)
                             * np.abs(y)))
    bound = 1e-13 * (weight.size + y.size) * magnitude
    assert abs(float(np.sum(conv_y * y)) - float(np.sum(x * z))) <= bound
    z[1, 3, 2, 1] += 1e-6
    assert abs(float(np.sum(conv_y * y)) - float(np.sum(x * z))) > bound


# --------------------------------------------------------------------------------------
# The explicit matrix and the input gradient
# --------------------------------------------------------------------------------------

def vec(a: np.ndarray, layout: str) -> np.ndarray:
    """conv_matrix's vectorisation of one image: (r, c, k) -> k*H*W + c*H + r."""
    return a.ravel(order="F") if layout == "NHWC" else a.transpose(0, 2, 1).ravel()


def unvec(v: np.ndarray, shape: tuple[int, ...], layout: str) -> np.ndarray:
    if layout == "NHWC":
        return v.reshape(shape, order="F")
    c, h, w = shape
    return v.reshape(c, w, h).transpose(0, 2, 1)


MATRIX_CASES = [
    # (n, h, w, c, c_t, k, stride, padding, dilation, groups): conv2d from (h, w, c) to c_t
    (None, 5, 6, 2, 3, (3, 3), 1, 1, 1, 1),
    (2, 7, 7, 3, 2, (1, 1), 3, 0, 1, 1),
    (1, 9, 8, 4, 6, (3, 2), (2, 3), ((2, 0), (1, 3)), 1, 2),
    (2, 8, 9, 3, 3, (3, 3), 2, ((0, 1), (1, 0)), (2, 1), 3),
    (None, 6, 10, 4, 8, (2, 3), (1, 2), (2, 1), 2, 4),
    (3, 4, 4, 2, 5, (4, 4), 1, 0, 1, 1),
]


def matrix_problem(case: tuple[Any, ...], layout: str, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray, dict[str, Any], tuple[int, int]]:
    """y of the conv's output shape, the weight, the geometry and x's (h, w)."""
    n, h, w, c, c_t, k, stride, padding, dilation, groups = case
    geo = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups,
           "layout": layout}
    weight = uniform(rng, w_shape(layout, c_t, *k, c // groups), np.float64)
    y_shape = conv2d_ref(np.zeros(x_shape(layout, n, h, w, c)), weight, **geo).shape
    return uniform(rng, y_shape, np.float64), weight, geo, (h, w)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", MATRIX_CASES, ids=lambda c: "-".join(map(str, c)))
def test_equals_transposed_conv_matrix(case: tuple[Any, ...], layout: str,
                                       rng: np.random.Generator) -> None:
    y, weight, geo, (h, w) = matrix_problem(case, layout, rng)
    z = convx.conv_transpose2d(y, weight, **geo, output_size=(h, w))
    mat = convx.conv_matrix((h, w), weight, acts_on="input", format="dense", **geo)
    c = case[3]
    shape = (h, w, c) if layout == "NHWC" else (c, h, w)
    if y.ndim == 3:
        want = unvec(mat.T @ vec(y, layout), shape, layout)
    else:
        want = np.stack([unvec(mat.T @ vec(yi, layout), shape, layout) for yi in y])
    assert_f64(z, want)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", MATRIX_CASES, ids=lambda c: "-".join(map(str, c)))
def test_equals_input_gradient_of_conv2d(case: tuple[Any, ...], layout: str,
                                         rng: np.random.Generator) -> None:
    y, weight, geo, (h, w) = matrix_problem(case, layout, rng)
    n, c = case[0], case[3]
    x = uniform(rng, x_shape(layout, n, h, w, c), np.float64)
    dx, _, _ = convx.conv2d_backward(y, x, weight, **geo, needs=("input",))
    assert_f64(convx.conv_transpose2d(y, weight, **geo, output_size=(h, w)), dx)


# --------------------------------------------------------------------------------------
# output_padding and output_size
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("stride", "dilation", "output_padding"), [
    (2, 1, 1), ((3, 2), 1, (2, 1)), (1, 2, 1), (2, 3, (2, 1)), ((1, 3), (3, 1), (2, 2)),
    (3, 1, (0, 2)),
])
def test_output_padding_below_stride_or_dilation(stride: Any, dilation: Any,
                                                 output_padding: Any, layout: str,
                                                 rng: np.random.Generator) -> None:
    # output_padding < max(stride, dilation) per axis, as torch allows; the extra rows and
    # columns at the bottom and right receive only the bias.
    x = uniform(rng, x_shape(layout, 2, 4, 5, 3), np.float64)
    weight = uniform(rng, w_shape(layout, 3, 3, 2, 2), np.float64)
    bias = uniform(rng, (2,), np.float64)
    # No bottom or right padding: with it, the added rows and columns would be ones the
    # padding crops away, which do receive values.
    geo = {"stride": stride, "padding": ((1, 0), (2, 0)), "dilation": dilation,
           "layout": layout}
    got = convx.conv_transpose2d(x, weight, bias, output_padding=output_padding, **geo)
    assert_f64(got, conv_transpose_ref(x, weight, bias, output_padding=output_padding, **geo))
    without = convx.conv_transpose2d(x, weight, bias, **geo)
    o_h, o_w = as_pair(output_padding)
    got_hwc, without_hwc = to_nhwc(got, layout), to_nhwc(without, layout)
    h0, w0 = without_hwc.shape[1:3]
    assert got_hwc.shape[1:3] == (h0 + o_h, w0 + o_w)
    assert_f64(got_hwc[:, :h0, :w0], without_hwc)
    assert np.all(got_hwc[:, h0:] == bias) and np.all(got_hwc[:, :, w0:] == bias)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("n", [None, 2])
def test_output_size_chooses_output_padding(n: int | None, layout: str,
                                            rng: np.random.Generator) -> None:
    stride, dilation, k = (3, 2), 1, (3, 2)
    padding = ((1, 1), (0, 2))
    x = uniform(rng, x_shape(layout, n, 4, 5, 4), np.float64)
    weight = uniform(rng, w_shape(layout, 4, *k, 3), np.float64)
    geo = {"stride": stride, "padding": padding, "dilation": dilation, "layout": layout}
    h_min = min_output(4, 3, 3, 1, 1, 1)
    w_min = min_output(5, 2, 2, 1, 0, 2)
    for o_h in range(3):
        for o_w in range(2):
            size = (h_min + o_h, w_min + o_w)
            got = convx.conv_transpose2d(x, weight, **geo, output_size=size)
            want = conv_transpose_ref(x, weight, **geo, output_padding=(o_h, o_w))
            assert_f64(got, want)
            assert to_nhwc(got, layout).shape[1:3] == size
    for size in [(h_min - 1, w_min), (h_min, w_min - 1), (h_min + 3, w_min),
                 (h_min, w_min + 2), (h_min + 10, w_min + 10)]:
        with pytest.raises(ValueError, match="output_size"):
            convx.conv_transpose2d(x, weight, **geo, output_size=size)


@pytest.mark.parametrize("n", [None, 2])
def test_output_size_with_leading_dims_nchw(n: int | None, rng: np.random.Generator) -> None:
    # As torch: output_size may also be the whole output shape; only its last two count.
    x = uniform(rng, x_shape("NCHW", n, 3, 4, 2), np.float64)
    weight = uniform(rng, w_shape("NCHW", 2, 3, 3, 5), np.float64)
    size = (min_output(3, 3, 2, 1, 0, 0) + 1, min_output(4, 3, 2, 1, 0, 0))
    leading = (5,) if n is None else (n, 5)
    got = convx.conv_transpose2d(x, weight, stride=2, layout="NCHW",
                                 output_size=(*leading, *size))
    assert_f64(got, conv_transpose_ref(x, weight, stride=2, layout="NCHW",
                                       output_padding=(1, 0)))


_rng = np.random.default_rng(26)
X = _rng.uniform(-1, 1, (2, 4, 5, 3))           # NHWC, C_in = 3
W = _rng.uniform(-1, 1, (3, 3, 3, 2))           # (C_in, k_h, k_w, C_out)
B = _rng.uniform(-1, 1, (2,))
OUT_SHAPE = (2, 9, 11, 2)                         # stride 2, no padding


def _ct(**kwargs: Any) -> Any:
    args = {"x": X, "weight": W, "bias": B, "stride": 2}
    args.update(kwargs)
    x, weight, bias = args.pop("x"), args.pop("weight"), args.pop("bias")
    return lambda: convx.conv_transpose2d(x, weight, bias, **args)


def _readonly(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.flags.writeable = False
    return a


TRANSPOSE_ERRORS = [
    ("output_padding_equal_stride", _ct(output_padding=2), ValueError, r"output_padding"),
    ("output_padding_above_stride_w", _ct(output_padding=(1, 3)), ValueError,
     r"output_padding"),
    ("output_padding_stride_1", _ct(stride=1, output_padding=1), ValueError,
     r"output_padding"),
    ("output_padding_equal_dilation", _ct(stride=1, dilation=2, output_padding=(0, 2)),
     ValueError, r"output_padding"),
    ("output_padding_negative", _ct(output_padding=-1), ValueError, r"output_padding"),
    ("output_padding_triple", _ct(output_padding=(1, 1, 1)), (TypeError, ValueError),
     r"output_padding"),
    ("output_size_too_small", _ct(output_size=(8, 11)), ValueError, r"output_size"),
    ("output_size_too_large", _ct(output_size=(9, 13)), ValueError, r"output_size"),
    ("output_size_one_number", _ct(output_size=(9,)), (TypeError, ValueError),
     r"output_size"),
    ("padding_same", _ct(padding="same"), (TypeError, ValueError), r"padding"),
    ("padding_valid", _ct(padding="valid"), (TypeError, ValueError), r"padding"),
    ("padding_negative", _ct(padding=-1), ValueError, r"padding"),
    ("padding_removes_everything", _ct(padding=5), ValueError, r"(?i)padding|output"),
    ("stride_zero", _ct(stride=0), ValueError, r"stride"),
    ("dilation_zero", _ct(dilation=0), ValueError, r"dilation"),
    ("groups_not_dividing", _ct(groups=2), ValueError, r"groups"),
    ("weight_channels", _ct(weight=W[:2].copy()), ValueError, r"(?i)weight|channel"),
    ("weight_3d", _ct(weight=W[0]), ValueError, r"weight"),
    ("x_2d", _ct(x=X[0, :, :, 0]), ValueError, r"\bx\b"),
    ("bias_length", _ct(bias=np.zeros(3)), ValueError, r"bias"),
    ("x_int", _ct(x=X.astype(np.int64)), TypeError, r"float32|float64|dtype"),
    ("mixed_dtypes", _ct(weight=W.astype(np.float32)), (TypeError, ValueError),
     r"float32|float64|dtype"),
    ("layout_unknown", _ct(layout="CHWN"), ValueError, r"layout"),
    ("out_wrong_shape", _ct(out=np.empty((2, 9, 10, 2))), ValueError, r"\bout\b"),
    ("out_wrong_dtype", _ct(out=np.empty(OUT_SHAPE, np.float32)), (TypeError, ValueError),
     r"\bout\b"),
    ("out_readonly", _ct(out=_readonly(np.empty(OUT_SHAPE))), ValueError, r"\bout\b"),
    ("out_not_contiguous", _ct(out=np.empty((2, 9, 11, 4))[..., ::2]), ValueError,
     r"\bout\b"),
]


@pytest.mark.parametrize(("call", "exc", "pattern"),
                         [pytest.param(c, e, p, id=i) for i, c, e, p in TRANSPOSE_ERRORS])
def test_conv_transpose2d_rejects(call: Any, exc: Any, pattern: str) -> None:
    assert _ct()().shape == OUT_SHAPE  # the unmodified arguments are valid
    with pytest.raises(exc, match=pattern):
        call()


# --------------------------------------------------------------------------------------
# bias, out=, dtypes, single images
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_bias_and_out(layout: str, dtype: type, rng: np.random.Generator) -> None:
    geo = {"stride": (2, 3), "padding": ((0, 1), (2, 0)), "dilation": (1, 2), "groups": 2,
           "output_padding": (1, 0), "layout": layout}
    x = uniform(rng, x_shape(layout, 3, 5, 4, 6), dtype)
    weight = uniform(rng, w_shape(layout, 6, 3, 3, 2), dtype)
    bias = uniform(rng, (4,), dtype)
    want = conv_transpose_ref(x, weight, bias, **geo)
    fan_in = 6 // 2 * 9
    eps = 4.0 * float(np.finfo(dtype).eps) * (fan_in + 1)
    plain = convx.conv_transpose2d(x, weight, **geo)
    with_bias = convx.conv_transpose2d(x, weight, bias, **geo)
    assert with_bias.dtype == dtype and with_bias.shape == want.shape
    np.testing.assert_allclose(with_bias, want, rtol=eps, atol=eps)
    channel = -1 if layout == "NHWC" else 1
    shape = [1] * 4
    shape[channel] = 4
    np.testing.assert_allclose(with_bias, plain + bias.reshape(shape), rtol=eps, atol=eps)
    out = np.full(want.shape, np.nan, dtype=dtype)
    result = convx.conv_transpose2d(x, weight, bias, **geo, out=out)
    assert result is out
    np.testing.assert_array_equal(out, with_bias)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_single_image(layout: str, dtype: type, rng: np.random.Generator) -> None:
    geo = {"stride": 2, "padding": (1, 0), "dilation": 1, "groups": 3,
           "output_padding": (0, 1), "layout": layout}
    x = uniform(rng, x_shape(layout, None, 4, 6, 3), dtype)
    weight = uniform(rng, w_shape(layout, 3, 3, 2, 2), dtype)
    bias = uniform(rng, (6,), dtype)
    single = convx.conv_transpose2d(x, weight, bias, **geo)
    batched = convx.conv_transpose2d(x[None], weight, bias, **geo)
    want = conv_transpose_ref(x, weight, bias, **geo)
    expected_hw = (min_output(4, 3, 2, 1, 1, 1), min_output(6, 2, 2, 1, 0, 0) + 1)
    assert want.shape == ((*expected_hw, 6) if layout == "NHWC" else (6, *expected_hw))
    assert single.shape == want.shape and single.dtype == dtype
    np.testing.assert_array_equal(single, batched[0])
    eps = 4.0 * float(np.finfo(dtype).eps) * 8
    np.testing.assert_allclose(single, want, rtol=eps, atol=eps)
    out = np.empty_like(single)
    assert convx.conv_transpose2d(x, weight, bias, **geo, out=out) is out
    np.testing.assert_array_equal(out, single)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", MATRIX_CASES, ids=lambda c: "-".join(map(str, c)))
def test_every_isa_matches_reference(case: tuple[Any, ...], layout: str, dtype: type, isa: str,
                                     rng: np.random.Generator) -> None:
    y, weight, geo, (h, w) = matrix_problem(case, layout, rng)
    y, weight = y.astype(dtype), weight.astype(dtype)
    bias = uniform(rng, (case[3],), dtype)
    got = convx.conv_transpose2d(y, weight, bias, **geo, output_size=(h, w))
    want = conv_transpose_ref(y, weight, bias, **geo, output_size=(h, w))
    assert got.dtype == dtype and got.shape == want.shape
    k_h, k_w = case[5]
    eps = 4.0 * float(np.finfo(dtype).eps) * (k_h * k_w * case[4] // case[9] + 1)
    np.testing.assert_allclose(got, want, rtol=eps, atol=eps)
