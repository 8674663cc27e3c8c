"""convx.conv2d against the float64 reference written from the maths note."""

from __future__ import annotations

import tracemalloc
from typing import Any

import numpy as np
import pytest
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import (
    as_pair,
    assert_close,
    conv2d_literal,
    conv2d_ref,
    im2col_ref,
    resolve_padding,
    seed_flat_weights,
    uniform,
)

import convx

DTYPES = [np.float32, np.float64]
LAYOUTS = ["NHWC", "NCHW"]


def x_shape(layout: str, n: int | None, h: int, w: int, c: int) -> tuple[int, ...]:
    spatial = (h, w, c) if layout == "NHWC" else (c, h, w)
    return spatial if n is None else (n, *spatial)


def w_shape(layout: str, c_out: int, k_h: int, k_w: int, c_g: int) -> tuple[int, ...]:
    return (c_out, k_h, k_w, c_g) if layout == "NHWC" else (c_out, c_g, k_h, k_w)


def fan_in(weight: np.ndarray) -> int:
    """k_h * k_w * C_in / groups: the length of each output's dot product."""
    return int(np.prod(weight.shape[1:]))


def check_conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
               **kwargs: Any) -> np.ndarray:
    """Runs convx.conv2d and the reference on the same arguments and compares them."""
    got = convx.conv2d(x, weight, bias, **kwargs)
    want = conv2d_ref(x, weight, bias, **kwargs)
    assert isinstance(got, np.ndarray)
    assert_close(got, want, x.dtype, fan_in(weight))
    return got


# --------------------------------------------------------------------------------------
# Property test over the whole parameter space
# --------------------------------------------------------------------------------------

small_pad = st.integers(0, 2)
pair = st.tuples(st.integers(1, 3), st.integers(1, 3))
padding_st = st.one_of(
    small_pad,
    st.tuples(small_pad, small_pad),
    st.tuples(st.tuples(small_pad, small_pad), st.tuples(small_pad, small_pad)),
    st.sampled_from(["valid", "same", "same_lower"]),
)


def _min_extent(padding: Any, axis: int, eff_k: int) -> int:
    """Smallest input extent for which the dilated kernel fits in the padded input."""
    if padding in ("same", "same_lower"):
        return 1
    if padding == "valid":
        return eff_k
    (top, bottom), (left, right) = resolve_padding(padding, (0, 0), (1, 1))
    before, after = ((top, bottom), (left, right))[axis]
    return max(1, eff_k - before - after)


@st.composite
def conv_problems(draw: st.DrawFn) -> dict[str, Any]:
    layout = draw(st.sampled_from(LAYOUTS))
    dtype = draw(st.sampled_from(DTYPES))
    n = draw(st.sampled_from([None, 1, 2, 3]))
    groups = draw(st.sampled_from([1, 1, 1, 2, 3]))
    c_g = draw(st.integers(1, 4))
    m_g = draw(st.integers(1, 4))
    k_h, k_w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = draw(st.one_of(st.integers(1, 3), pair))
    dilation = draw(st.one_of(st.just(1), st.integers(1, 3), pair))
    padding = draw(padding_st)
    d_h, d_w = as_pair(dilation)
    min_h = _min_extent(padding, 0, (k_h - 1) * d_h + 1)
    min_w = _min_extent(padding, 1, (k_w - 1) * d_w + 1)
    h = draw(st.integers(min_h, min_h + 7))
    w = draw(st.integers(min_w, min_w + 7))
    return {
        "layout": layout, "dtype": dtype, "n": n, "groups": groups,
        "c_in": c_g * groups, "c_out": m_g * groups, "k": (k_h, k_w), "h": h, "w": w,
        "stride": stride, "dilation": dilation, "padding": padding,
        "bias": draw(st.booleans()), "activation": draw(st.sampled_from([None, "relu"])),
        "flip": draw(st.booleans()), "seed": draw(st.integers(0, 2**32 - 1)),
    }


def check_problem(problem: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """check_conv on a drawn problem's arrays and arguments; returns x, weight and the
    output."""
    x, weight, bias = make_arrays(problem)
    kwargs = {key: problem[key] for key in
              ("stride", "padding", "dilation", "groups", "layout", "activation", "flip")}
    return x, weight, check_conv(x, weight, bias, **kwargs)


def make_arrays(p: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    rng = np.random.default_rng(p["seed"])
    layout, dtype = p["layout"], p["dtype"]
    x = uniform(rng, x_shape(layout, p["n"], p["h"], p["w"], p["c_in"]), dtype)
    k_h, k_w = p["k"]
    weight = uniform(rng, w_shape(layout, p["c_out"], k_h, k_w, p["c_in"] // p["groups"]), dtype)
    bias = uniform(rng, (p["c_out"],), dtype) if p["bias"] else None
    return x, weight, bias


@given(problem=conv_problems())
def test_conv2d_matches_reference(problem: dict[str, Any], isa: str) -> None:
    x, weight, got = check_problem(problem)
    expected_shape = convx.output_shape(x.shape, weight.shape, stride=problem["stride"],
                                        padding=problem["padding"],
                                        dilation=problem["dilation"], layout=problem["layout"])
    assert tuple(expected_shape) == got.shape


@st.composite
def special_shapes(draw: st.DrawFn) -> dict[str, Any]:
    """Depthwise (groups == C_in, 1 or 2 filters per channel) and pointwise (1x1) problems
    with many channels, which implementations like to route to dedicated kernels."""
    kind = draw(st.sampled_from(["depthwise", "pointwise"]))
    channels = draw(st.sampled_from([1, 5, 8, 16, 17, 33]))
    if kind == "depthwise":
        groups, c_out = channels, channels * draw(st.sampled_from([1, 1, 2]))
        k = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    else:
        groups, c_out, k = 1, draw(st.sampled_from([1, 7, 16, 40])), (1, 1)
    dilation = draw(st.one_of(st.just(1), pair))
    padding = draw(padding_st)
    d_h, d_w = as_pair(dilation)
    min_h = _min_extent(padding, 0, (k[0] - 1) * d_h + 1)
    min_w = _min_extent(padding, 1, (k[1] - 1) * d_w + 1)
    return {
        "layout": draw(st.sampled_from(LAYOUTS)), "dtype": draw(st.sampled_from(DTYPES)),
        "n": draw(st.sampled_from([None, 1, 2])), "groups": groups, "c_in": channels,
        "c_out": c_out, "k": k, "h": draw(st.integers(min_h, min_h + 12)),
        "w": draw(st.integers(min_w, min_w + 12)),
        "stride": draw(st.one_of(st.just(1), st.integers(1, 3), pair)), "dilation": dilation,
        "padding": padding, "bias": draw(st.booleans()),
        "activation": draw(st.sampled_from([None, "relu"])), "flip": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


@given(problem=special_shapes())
def test_depthwise_and_pointwise_match_reference(problem: dict[str, Any], isa: str) -> None:
    check_problem(problem)


@st.composite
def medium_problems(draw: st.DrawFn) -> dict[str, Any]:
    """Images wide enough to have an interior away from every border, few channels."""
    problem = draw(conv_problems())
    # Growing the image keeps the drawn kernel fitting.
    problem["h"] = draw(st.integers(max(problem["h"], 16), 48))
    problem["w"] = draw(st.integers(max(problem["w"], 16), 64))
    problem["n"] = draw(st.sampled_from([None, 1, 2]))
    return problem


@settings(max_examples=max(10, settings.default.max_examples // 5))
@given(problem=medium_problems())
def test_medium_images_match_reference(problem: dict[str, Any], isa: str) -> None:
    check_problem(problem)


def test_reference_agrees_with_literal_sum() -> None:
    # Guards the oracle itself: the per-pixel tensordot reference against the maths
    # note's scalar sum.
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, 5, 3))
    weight = rng.standard_normal((4, 3, 2, 3))
    bias = rng.standard_normal(4)
    for stride in (1, 2):
        for padding in (0, 1):
            np.testing.assert_allclose(
                conv2d_ref(x, weight, bias, stride=stride, padding=padding),
                conv2d_literal(x, weight, bias, stride=stride, padding=padding), rtol=1e-13)


# --------------------------------------------------------------------------------------
# Explicit shapes
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_pointwise_1x1_is_a_matrix_product(layout: str, dtype: type, isa: str,
                                           rng: np.random.Generator) -> None:
    x_nhwc = uniform(rng, (2, 5, 6, 8), dtype)
    w_mat = uniform(rng, (7, 8), dtype)
    bias = uniform(rng, (7,), dtype)
    want = x_nhwc.astype(np.float64) @ w_mat.astype(np.float64).T + bias
    if layout == "NHWC":
        got = convx.conv2d(x_nhwc, w_mat[:, None, None, :], bias)
    else:
        x_nchw = np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))
        got = convx.conv2d(x_nchw, w_mat[:, :, None, None], bias, layout="NCHW")
        got = got.transpose(0, 2, 3, 1)
    assert_close(got, want, dtype, 8)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding", [0, 1, "same"])
def test_depthwise_matches_scipy_per_channel(padding: Any, dtype: type, isa: str,
                                             rng: np.random.Generator) -> None:
    channels = 6
    x = uniform(rng, (9, 8, channels), dtype)
    weight = uniform(rng, (channels, 3, 3, 1), dtype)
    got = convx.conv2d(x, weight, padding=padding, groups=channels)
    p = 1 if padding == "same" else padding
    x_pad = np.pad(x.astype(np.float64), [(p, p), (p, p), (0, 0)])
    for c in range(channels):
        want = scipy.signal.correlate2d(x_pad[:, :, c], weight[c, :, :, 0].astype(np.float64),
                                        mode="valid")
        assert_close(got[:, :, c], want, dtype, 9)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_depthwise_with_channel_multiplier(layout: str, dtype: type, isa: str,
                                           rng: np.random.Generator) -> None:
    # groups == C_in and C_out == 3 * C_in: each input channel feeds three filters.
    x = uniform(rng, x_shape(layout, 2, 7, 6, 4), dtype)
    weight = uniform(rng, w_shape(layout, 12, 3, 2, 1), dtype)
    bias = uniform(rng, (12,), dtype)
    check_conv(x, weight, bias, groups=4, padding=(1, 0), layout=layout)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_kernel_equal_to_input_gives_one_pixel(layout: str, dtype: type, isa: str,
                                               rng: np.random.Generator) -> None:
    x = uniform(rng, x_shape("NHWC", 3, 5, 4, 6), dtype)
    weight = uniform(rng, (10, 5, 4, 6), dtype)
    bias = uniform(rng, (10,), dtype)
    want = np.tensordot(x.astype(np.float64), weight.astype(np.float64),
                        axes=([1, 2, 3], [1, 2, 3])) + bias
    if layout == "NHWC":
        got = convx.conv2d(x, weight, bias)
        assert got.shape == (3, 1, 1, 10)
        got = got[:, 0, 0, :]
    else:
        got = convx.conv2d(np.ascontiguousarray(x.transpose(0, 3, 1, 2)),
                           np.ascontiguousarray(weight.transpose(0, 3, 1, 2)), bias,
                           layout="NCHW")
        assert got.shape == (3, 10, 1, 1)
        got = got[:, :, 0, 0]
    assert_close(got, want, dtype, 5 * 4 * 6)


@pytest.mark.parametrize(("hw", "k", "stride", "padding", "out_hw"), [
    ((7, 7), 3, 5, 0, (1, 1)),
    ((11, 13), 3, 5, 0, (2, 3)),
    ((11, 13), 2, (4, 6), 1, (3, 3)),
    ((4, 4), 3, 10, 0, (1, 1)),
    ((5, 3), 1, 7, 0, (1, 1)),
    ((9, 9), 3, 8, "same", (2, 2)),
])
@pytest.mark.parametrize("dtype", DTYPES)
def test_large_stride(hw: tuple[int, int], k: int, stride: Any, padding: Any,
                      out_hw: tuple[int, int], dtype: type, isa: str,
                      rng: np.random.Generator) -> None:
    x = uniform(rng, (2, *hw, 3), dtype)
    weight = uniform(rng, (4, k, k, 3), dtype)
    got = check_conv(x, weight, stride=stride, padding=padding)
    assert got.shape == (2, *out_hw, 4)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("groups", [1, 2, 5])
def test_blocked_sizes(layout: str, dtype: type, groups: int, isa: str,
                       rng: np.random.Generator) -> None:
    # Big enough to cross GEMM block boundaries along every axis of the product.
    x = uniform(rng, x_shape(layout, 2, 17, 19, 40), dtype)
    weight = uniform(rng, w_shape(layout, 70, 3, 3, 40 // groups), dtype)
    bias = uniform(rng, (70,), dtype)
    check_conv(x, weight, bias, padding=1, groups=groups, layout=layout, activation="relu")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("shape", "c_out", "k", "padding"), [
    ((1, 6, 5, 300), 20, 3, 1),        # K = 2700: deeper than any sensible K block
    ((2, 45, 41, 3), 9, 3, "same"),     # M = 3690 output pixels
    ((1, 12, 12, 64), 130, 1, 0),       # wide N
])
def test_large_gemm_dimensions(shape: tuple[int, ...], c_out: int, k: int, padding: Any,
                               dtype: type, isa: str, rng: np.random.Generator) -> None:
    x = uniform(rng, shape, dtype)
    weight = uniform(rng, (c_out, k, k, shape[3]), dtype)
    bias = uniform(rng, (c_out,), dtype)
    check_conv(x, weight, bias, padding=padding)


def test_list_and_numpy_int_arguments(rng: np.random.Generator) -> None:
    x = uniform(rng, (1, 7, 8, 2), np.float64)
    weight = uniform(rng, (3, 3, 2, 2), np.float64)
    want = convx.conv2d(x, weight, stride=(2, 1), padding=((1, 0), (0, 1)), dilation=(1, 2))
    got = convx.conv2d(x, weight, stride=[np.int64(2), 1], padding=[[1, 0], [np.int32(0), 1]],
                       dilation=[1, np.int16(2)])
    np.testing.assert_array_equal(got, want)
    depthwise = uniform(rng, (4, 3, 2, 1), np.float64)
    assert convx.conv2d(x, depthwise, groups=np.int64(2)).shape == (1, 5, 7, 4)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("channels", "multiplier", "k", "stride"), [
    (64, 1, 3, 1), (48, 2, 5, 2), (17, 1, (1, 7), 1), (32, 1, 3, 2),
])
def test_large_depthwise(layout: str, channels: int, multiplier: int, k: Any, stride: int,
                         isa: str, rng: np.random.Generator) -> None:
    k_h, k_w = as_pair(k)
    x = uniform(rng, x_shape(layout, 2, 20, 19, channels), np.float32)
    weight = uniform(rng, w_shape(layout, channels * multiplier, k_h, k_w, 1), np.float32)
    bias = uniform(rng, (channels * multiplier,), np.float32)
    check_conv(x, weight, bias, stride=stride, padding="same", groups=channels, layout=layout)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("hw", "padding"), [
    ((9, 11), 1), ((9, 11), 0), ((6, 5), 2), ((7, 8), ((0, 2), (2, 0))), ((1, 1), 1),
    ((3, 2), ((1, 1), (0, 1))), ((4, 30), "same"),
])
def test_nchw_depthwise_3x3(hw: tuple[int, int], padding: Any, dtype: type, isa: str,
                            rng: np.random.Generator) -> None:
    # NCHW 3x3 depthwise at stride 1 stages three zero-padded input rows per output row
    # and sums the nine taps in one pass; padding wider than the kernel, narrow images and
    # one-sided padding exercise the staging's clamps.
    x = uniform(rng, x_shape("NCHW", 2, *hw, 6), dtype)
    weight = uniform(rng, w_shape("NCHW", 6, 3, 3, 1), dtype)
    bias = uniform(rng, (6,), dtype)
    check_conv(x, weight, bias, padding=padding, groups=6, layout="NCHW", activation="relu")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("hw", "k", "stride", "padding"), [
    ((40, 1), (3, 1), 1, (1, 0)), ((33, 3), 3, 1, 0), ((30, 2), (3, 1), 1, (1, 0)),
    ((25, 3), 3, 1, 1), ((20, 5), 3, 2, 1),
    ((9, 17), (2, 3), (1, 2), ((0, 1), (2, 1))),
])
def test_nchw_narrow_outputs(hw: tuple[int, int], k: Any, stride: Any, padding: Any,
                             dtype: type, isa: str, rng: np.random.Generator) -> None:
    # NCHW packs a GEMM panel of output pixels as runs within output rows; outputs only
    # one to three pixels wide make a panel span many rows (the value-by-value fallback).
    k_h, k_w = as_pair(k)
    x = uniform(rng, x_shape("NCHW", 2, *hw, 3), dtype)
    weight = uniform(rng, w_shape("NCHW", 5, k_h, k_w, 3), dtype)
    check_conv(x, weight, None, stride=stride, padding=padding, layout="NCHW")


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("groups", "c_g", "m_g"), [(4, 5, 3), (8, 3, 7), (3, 16, 16)])
def test_grouped_odd_widths(layout: str, groups: int, c_g: int, m_g: int, isa: str,
                            rng: np.random.Generator) -> None:
    x = uniform(rng, x_shape(layout, 2, 13, 11, groups * c_g), np.float64)
    weight = uniform(rng, w_shape(layout, groups * m_g, 3, 3, c_g), np.float64)
    check_conv(x, weight, None, padding=1, groups=groups, layout=layout, activation="relu")


@pytest.mark.parametrize("dtype", DTYPES)
def test_single_channel_large_image(dtype: type, isa: str, rng: np.random.Generator) -> None:
    x = uniform(rng, (1, 97, 101, 1), dtype)
    weight = uniform(rng, (1, 3, 3, 1), dtype)
    check_conv(x, weight, uniform(rng, (1,), dtype), padding=1)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_nan_only_reaches_patches_that_cover_it(layout: str, isa: str,
                                                rng: np.random.Generator) -> None:
    # A NaN at input pixel (4, 6) must reach exactly the outputs whose receptive field
    # holds it, and no others: nothing reads outside the image or leaks across pixels.
    x_nhwc = uniform(rng, (1, 9, 11, 3), np.float64)
    x_nhwc[0, 4, 6, 1] = np.nan
    weight_ohwi = uniform(rng, (5, 3, 2, 3), np.float64)
    stride, dilation, padding = (1, 2), (2, 1), 1
    if layout == "NHWC":
        y = convx.conv2d(x_nhwc, weight_ohwi, stride=stride, dilation=dilation,
                         padding=padding)
    else:
        y = convx.conv2d(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2)),
                         np.ascontiguousarray(weight_ohwi.transpose(0, 3, 1, 2)),
                         stride=stride, dilation=dilation, padding=padding, layout="NCHW")
        y = y.transpose(0, 2, 3, 1)
    expected = np.zeros(y.shape[1:3], dtype=bool)
    for i in range(expected.shape[0]):
        for j in range(expected.shape[1]):
            rows = {i * stride[0] + u * dilation[0] - padding for u in range(3)}
            cols = {j * stride[1] + v * dilation[1] - padding for v in range(2)}
            expected[i, j] = 4 in rows and 6 in cols
    assert expected.any()
    for m in range(5):
        np.testing.assert_array_equal(np.isnan(y[0, :, :, m]), expected)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("n", "h", "w", "padding"), [
    (0, 5, 5, 0), (0, 4, 6, "same"), (1, 0, 5, 2), (2, 3, 0, (1, 2)), (1, 0, 0, 2),
])
def test_empty_inputs(layout: str, n: int, h: int, w: int, padding: Any) -> None:
    # An empty batch gives an empty output; an empty image that padding makes large
    # enough gives outputs whose patches are all padding: exactly the bias.
    x = np.zeros(x_shape(layout, n, h, w, 2), np.float64)
    weight = np.ones(w_shape(layout, 3, 3, 3, 2), np.float64)
    bias = np.array([0.5, -1.0, 2.0])
    shape = tuple(convx.output_shape(x.shape, weight.shape, padding=padding, layout=layout))
    out = np.full(shape, np.nan)
    assert convx.conv2d(x, weight, bias, padding=padding, layout=layout, out=out) is out
    np.testing.assert_array_equal(out, conv2d_ref(x, weight, bias, padding=padding,
                                                  layout=layout))


@pytest.mark.parametrize("dtype", DTYPES)
def test_single_image_equals_batch_of_one(dtype: type, rng: np.random.Generator) -> None:
    x = uniform(rng, (6, 7, 3), dtype)
    weight = uniform(rng, (5, 3, 3, 3), dtype)
    single = convx.conv2d(x, weight, padding=1)
    batched = convx.conv2d(x[None], weight, padding=1)
    assert single.shape == (6, 7, 5)
    assert batched.shape == (1, 6, 7, 5)
    np.testing.assert_array_equal(single, batched[0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_items_are_independent(dtype: type, rng: np.random.Generator) -> None:
    x = uniform(rng, (4, 6, 5, 3), dtype)
    weight = uniform(rng, (5, 2, 3, 3), dtype)
    bias = uniform(rng, (5,), dtype)
    whole = convx.conv2d(x, weight, bias, stride=(1, 2), padding="same")
    for b in range(4):
        np.testing.assert_allclose(whole[b], convx.conv2d(x[b], weight, bias, stride=(1, 2),
                                                          padding="same"),
                                   rtol=0, atol=8 * np.finfo(dtype).eps * 18)


@pytest.mark.parametrize("dtype", DTYPES)
def test_layouts_agree(dtype: type, rng: np.random.Generator) -> None:
    x = uniform(rng, (2, 8, 7, 6), dtype)
    weight = uniform(rng, (4, 3, 2, 3), dtype)
    bias = uniform(rng, (4,), dtype)
    kwargs: dict[str, Any] = {"stride": (2, 1), "padding": ((1, 0), (2, 1)), "groups": 2,
                              "dilation": (1, 2)}
    nhwc = convx.conv2d(x, weight, bias, **kwargs)
    nchw = convx.conv2d(np.ascontiguousarray(x.transpose(0, 3, 1, 2)),
                        np.ascontiguousarray(weight.transpose(0, 3, 1, 2)), bias,
                        layout="NCHW", **kwargs)
    assert nchw.shape == (nhwc.shape[0], nhwc.shape[3], nhwc.shape[1], nhwc.shape[2])
    assert_close(nchw.transpose(0, 2, 3, 1), nhwc.astype(np.float64), dtype, 9)


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_is_applied_after_bias(dtype: type, rng: np.random.Generator) -> None:
    x = uniform(rng, (1, 5, 5, 2), dtype, 0.0, 1.0)
    weight = uniform(rng, (3, 2, 2, 2), dtype, 0.0, 1.0)
    # Pre-activation values are in [0, 8]; bias shifts filter 0 fully negative,
    # filter 1 fully positive and leaves filter 2 alone.
    bias = np.array([-100.0, 100.0, 0.0], dtype=dtype)
    y = convx.conv2d(x, weight, bias, activation="relu")
    assert np.all(y[..., 0] == 0)
    assert np.all(y[..., 1] >= 100)
    lin = convx.conv2d(x, weight, bias)
    np.testing.assert_array_equal(y, np.maximum(lin, 0))
    assert np.any(lin < 0)


def test_dtype_is_preserved(rng: np.random.Generator) -> None:
    for dtype in DTYPES:
        x = uniform(rng, (1, 4, 4, 2), dtype)
        weight = uniform(rng, (2, 2, 2, 2), dtype)
        assert convx.conv2d(x, weight).dtype == np.dtype(dtype)


# --------------------------------------------------------------------------------------
# The maths note's vectorised formula, literally
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("hw", "k", "stride", "padding"), [
    ((5, 5), (3, 3), 1, 0),
    ((6, 7), (2, 3), 1, 1),
    ((9, 8), (3, 2), (2, 3), (1, 2)),
    ((4, 6), (1, 1), 1, 0),
    ((7, 7), (4, 4), 3, 2),
])
@pytest.mark.parametrize("dtype", DTYPES)
def test_seed_vectorised_formula(hw: tuple[int, int], k: tuple[int, int], stride: Any,
                                 padding: Any, dtype: type, rng: np.random.Generator) -> None:
    """Y[i, j, m] = x_ij^T k^(m) + b^(m) with x_ij from im2col(order="seed")."""
    c_in, c_out = 3, 4
    x = uniform(rng, (*hw, c_in), dtype)                       # one HWC image
    weight = uniform(rng, (c_out, *k, c_in), dtype)            # K^(m)[u, v, c] = weight[m]
    bias = uniform(rng, (c_out,), dtype)
    cols = convx.im2col(x, k, stride=stride, padding=padding, order="seed")
    k_flat = seed_flat_weights(weight.astype(np.float64))      # k^(m) per row
    y = convx.conv2d(x, weight, bias, stride=stride, padding=padding)
    h_out, w_out, _ = y.shape
    assert cols.shape == (h_out, w_out, k[0] * k[1] * c_in)
    for i in range(h_out):
        for j in range(w_out):
            x_ij = cols[i, j].astype(np.float64)
            for m in range(c_out):
                want = x_ij @ k_flat[m] + float(bias[m])
                assert abs(float(y[i, j, m]) - want) <= 40 * np.finfo(dtype).eps * (
                    1 + np.abs(x_ij) @ np.abs(k_flat[m])), (i, j, m)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_seed_vectorised_formula_with_groups(layout: str, rng: np.random.Generator) -> None:
    """Per group g: Y[i, j, m] = x_ij^(g)T k^(m) + b^(m) for the filters m of group g."""
    groups, c_g, m_g, k = 2, 3, 2, (2, 3)
    x = uniform(rng, x_shape(layout, 2, 6, 7, groups * c_g), np.float64)
    weight = uniform(rng, w_shape(layout, groups * m_g, *k, c_g), np.float64)
    bias = uniform(rng, (groups * m_g,), np.float64)
    cols = convx.im2col(x, k, padding=1, groups=groups, layout=layout, order="seed")
    y = convx.conv2d(x, weight, bias, padding=1, groups=groups, layout=layout)
    y_nhwc = y if layout == "NHWC" else y.transpose(0, 2, 3, 1)
    w_ohwi = weight if layout == "NHWC" else weight.transpose(0, 2, 3, 1)
    for g in range(groups):
        k_flat = seed_flat_weights(w_ohwi[g * m_g:(g + 1) * m_g])
        want = cols[:, :, :, g, :] @ k_flat.T + bias[g * m_g:(g + 1) * m_g]
        np.testing.assert_allclose(y_nhwc[..., g * m_g:(g + 1) * m_g], want, rtol=1e-12,
                                   atol=1e-12)


def test_seed_flattening_is_column_major_per_channel() -> None:
    # k^(m) stacks K^(m)'s columns channel by channel: check against numpy's Fortran
    # flattening of each channel matrix.
    weight = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5)
    flat = seed_flat_weights(weight)
    for m in range(2):
        expected = np.concatenate([weight[m, :, :, c].flatten(order="F") for c in range(5)])
        np.testing.assert_array_equal(flat[m], expected)


# --------------------------------------------------------------------------------------
# out=, input immutability, non-contiguous inputs, zero copy
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("single", [False, True])
def test_out_is_written_in_place(layout: str, dtype: type, single: bool,
                                 rng: np.random.Generator) -> None:
    x = uniform(rng, x_shape(layout, None if single else 2, 6, 5, 4), dtype)
    weight = uniform(rng, w_shape(layout, 3, 3, 3, 4), dtype)
    bias = uniform(rng, (3,), dtype)
    shape = convx.output_shape(x.shape, weight.shape, padding=1, layout=layout)
    out = np.full(tuple(shape), np.nan, dtype=dtype)   # must never be read
    result = convx.conv2d(x, weight, bias, padding=1, layout=layout, out=out)
    assert result is out
    assert_close(out, conv2d_ref(x, weight, bias, padding=1, layout=layout), dtype, 36)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_inputs_are_not_modified(layout: str, rng: np.random.Generator) -> None:
    x = uniform(rng, x_shape(layout, 2, 6, 5, 4), np.float32)
    weight = uniform(rng, w_shape(layout, 4, 3, 3, 2), np.float32)
    bias = uniform(rng, (4,), np.float32)
    copies = [a.copy() for a in (x, weight, bias)]
    shape = convx.output_shape(x.shape, weight.shape, padding="same", layout=layout)
    out = np.empty(tuple(shape), dtype=np.float32)
    convx.conv2d(x, weight, bias, padding="same", groups=2, layout=layout,
                 activation="relu", flip=True, out=out)
    convx.conv2d(x, weight, bias, stride=2, groups=2, layout=layout)
    for original, copy in zip((x, weight, bias), copies):
        np.testing.assert_array_equal(original, copy)


def _views(rng: np.random.Generator, dtype: type) -> dict[str, np.ndarray]:
    """NHWC inputs of logical shape (2, 6, 7, 3) that are not C-contiguous."""
    base = uniform(rng, (2, 6, 7, 3), dtype)
    big = uniform(rng, (4, 12, 9, 7), dtype)
    raw = bytearray(base.nbytes + 1)
    unaligned = np.frombuffer(raw, dtype=dtype, count=base.size, offset=1).reshape(base.shape)
    unaligned[...] = base
    readonly = base.copy()
    readonly.flags.writeable = False
    return {
        "from_nchw_transpose": np.ascontiguousarray(base.transpose(0, 3, 1, 2)).transpose(
            0, 2, 3, 1),
        "fortran": np.asfortranarray(base),
        "sliced": big[::2, 1:7, 1:8, 2:5],
        "strided": big[1:3, ::2, 1:8, ::2][:, :, :, :3],
        "reversed": base[:, ::-1, ::-1, :],
        "unaligned": unaligned,
        "readonly": readonly,
    }


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["from_nchw_transpose", "fortran", "sliced", "strided",
                                  "reversed", "unaligned", "readonly"])
def test_noncontiguous_input(kind: str, dtype: type, rng: np.random.Generator) -> None:
    x = _views(rng, dtype)[kind]
    assert x.shape == (2, 6, 7, 3)
    weight = uniform(rng, (4, 3, 2, 3), dtype)
    bias = uniform(rng, (4,), dtype)
    before = np.array(x)
    check_conv(x, weight, bias, padding=1, stride=(2, 1))
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("dtype", DTYPES)
def test_noncontiguous_weight_and_bias(dtype: type, rng: np.random.Generator) -> None:
    x = uniform(rng, (2, 6, 7, 3), dtype)
    weight = np.asfortranarray(uniform(rng, (4, 3, 2, 3), dtype))
    bias = uniform(rng, (8,), dtype)[::2]
    check_conv(x, weight, bias, padding=1)
    weight_t = uniform(rng, (3, 2, 3, 4), dtype).transpose(3, 0, 1, 2)   # OHWI view
    check_conv(x, weight_t, bias)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_noncontiguous_nchw(layout: str, rng: np.random.Generator) -> None:
    big = uniform(rng, (2, 8, 10, 12), np.float64)
    x = big[:, 1:7:2, ::2, 3:11] if layout == "NCHW" else big[:, ::2, 2:8, 1:4]
    c_in = x.shape[1] if layout == "NCHW" else x.shape[3]
    weight = uniform(rng, w_shape(layout, 5, 2, 2, c_in), np.float64)
    check_conv(x, weight, padding="same", layout=layout)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_contiguous_input_is_not_copied(layout: str, rng: np.random.Generator) -> None:
    # A C-contiguous input of the right dtype must be used in place. Python-side copies
    # are NumPy allocations and show up in tracemalloc; the input here is 8 MB, the
    # output 64 kB, so any copy of x (or a padded x) blows the budget.
    x = uniform(rng, x_shape(layout, 1, 512, 512, 8), np.float32)
    weight = uniform(rng, w_shape(layout, 2, 8, 8, 8), np.float32)
    shape = convx.output_shape(x.shape, weight.shape, stride=8, layout=layout)
    out = np.empty(tuple(shape), dtype=np.float32)
    convx.conv2d(x, weight, stride=8, layout=layout, out=out)   # warm-up
    tracemalloc.start()
    try:
        convx.conv2d(x, weight, stride=8, layout=layout, out=out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < x.nbytes // 8, f"peak Python allocation {peak} B for an {x.nbytes} B input"


# --------------------------------------------------------------------------------------
# flip=True is true convolution
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [(1, 1), (2, 3), (3, 3), (4, 2), (5, 5)])
def test_flip_matches_scipy_convolve2d(k: tuple[int, int], dtype: type, isa: str,
                                       rng: np.random.Generator) -> None:
    image = uniform(rng, (9, 11), dtype)
    kernel = uniform(rng, k, dtype)
    x, weight = image[:, :, None], kernel[None, :, :, None]
    ref_image, ref_kernel = image.astype(np.float64), kernel.astype(np.float64)
    valid = convx.conv2d(x, weight, flip=True)
    assert_close(valid[:, :, 0], scipy.signal.convolve2d(ref_image, ref_kernel, mode="valid"),
                 dtype, k[0] * k[1])
    full = convx.conv2d(x, weight, flip=True, padding=(k[0] - 1, k[1] - 1))
    assert_close(full[:, :, 0], scipy.signal.convolve2d(ref_image, ref_kernel, mode="full"),
                 dtype, k[0] * k[1])
    if k[0] % 2 and k[1] % 2:
        same = convx.conv2d(x, weight, flip=True, padding="same")
        assert_close(same[:, :, 0],
                     scipy.signal.convolve2d(ref_image, ref_kernel, mode="same"),
                     dtype, k[0] * k[1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [(2, 3), (3, 3), (1, 4)])
def test_no_flip_matches_scipy_correlate2d(k: tuple[int, int], dtype: type,
                                           rng: np.random.Generator) -> None:
    image = uniform(rng, (8, 10), dtype)
    kernel = uniform(rng, k, dtype)
    got = convx.conv2d(image[None, None], kernel[None, None], layout="NCHW")
    want = scipy.signal.correlate2d(image.astype(np.float64), kernel.astype(np.float64),
                                    mode="valid")
    assert_close(got[0, 0], want, dtype, k[0] * k[1])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_flip_equals_reversed_weight(layout: str, rng: np.random.Generator) -> None:
    x = uniform(rng, x_shape(layout, 2, 7, 6, 4), np.float64)
    weight = uniform(rng, w_shape(layout, 6, 3, 2, 2), np.float64)
    axes = (1, 2) if layout == "NHWC" else (2, 3)
    reversed_w = np.ascontiguousarray(np.flip(weight, axis=axes))
    flipped = convx.conv2d(x, weight, groups=2, padding=1, layout=layout, flip=True)
    plain = convx.conv2d(x, reversed_w, groups=2, padding=1, layout=layout)
    np.testing.assert_allclose(flipped, plain, rtol=1e-13, atol=1e-13)
    assert not np.allclose(flipped, convx.conv2d(x, weight, groups=2, padding=1,
                                                 layout=layout))


@pytest.mark.parametrize("padding", ["same", "same_lower"])
@pytest.mark.parametrize(("h", "k", "s", "d"), [(5, 2, 1, 1), (6, 3, 2, 1), (7, 4, 3, 1),
                                                (8, 3, 1, 2), (1, 3, 1, 1), (10, 2, 4, 3)])
def test_same_padding_keeps_ceil_size(padding: str, h: int, k: int, s: int, d: int,
                                      rng: np.random.Generator) -> None:
    x = uniform(rng, (1, h, h + 1, 2), np.float64)
    weight = uniform(rng, (3, k, k, 2), np.float64)
    got = check_conv(x, weight, stride=s, dilation=d, padding=padding)
    assert got.shape[1:3] == (-(-h // s), -(-(h + 1) // s))


def test_same_and_same_lower_differ_for_even_kernels(rng: np.random.Generator) -> None:
    x = uniform(rng, (1, 6, 6, 1), np.float64)
    weight = uniform(rng, (1, 2, 2, 1), np.float64)
    upper = convx.conv2d(x, weight, padding="same")
    lower = convx.conv2d(x, weight, padding="same_lower")
    np.testing.assert_allclose(upper, conv2d_ref(x, weight, padding=((0, 1), (0, 1))))
    np.testing.assert_allclose(lower, conv2d_ref(x, weight, padding=((1, 0), (1, 0))))
    assert not np.allclose(upper, lower)


def test_im2col_reference_is_consistent_with_conv_reference() -> None:
    # Guards the oracles: hwc-order patches times OHWI weights equal the direct sum.
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 5, 4))
    weight = rng.standard_normal((3, 2, 3, 4))
    cols = im2col_ref(x, (2, 3), stride=(2, 1), padding=1, order="hwc")
    np.testing.assert_allclose(cols @ weight.reshape(3, -1).T,
                               conv2d_ref(x, weight, stride=(2, 1), padding=1), rtol=1e-12)
