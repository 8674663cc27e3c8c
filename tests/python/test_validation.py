"""Every bad argument gives a ValueError or TypeError that names it; plus output_shape and
the Conv2D layer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import conv2d_ref, output_size, resolve_padding, uniform

import convx

_rng = np.random.default_rng(2024)
X = _rng.uniform(-1, 1, (2, 6, 6, 4)).astype(np.float32)          # NHWC
X_NCHW = np.ascontiguousarray(X.transpose(0, 3, 1, 2))
W = _rng.uniform(-1, 1, (6, 3, 3, 4)).astype(np.float32)           # OHWI
W_OIHW = np.ascontiguousarray(W.transpose(0, 3, 1, 2))
B = _rng.uniform(-1, 1, (6,)).astype(np.float32)
A = _rng.uniform(-1, 1, (5, 7)).astype(np.float64)
M = _rng.uniform(-1, 1, (7, 3)).astype(np.float64)
OUT_SHAPE = (2, 4, 4, 6)
DTYPE_MSG = r"float32|float64"


def _conv(**kwargs: Any) -> Callable[[], Any]:
    args = {"x": X, "weight": W, "bias": B}
    args.update(kwargs)
    x, weight, bias = args.pop("x"), args.pop("weight"), args.pop("bias")
    return lambda: convx.conv2d(x, weight, bias, **args)


def _readonly(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.flags.writeable = False
    return a


SQUARE_X = _rng.uniform(-1, 1, (1, 5, 5, 3)).astype(np.float32)
SQUARE_W = _rng.uniform(-1, 1, (3, 1, 1, 3)).astype(np.float32)

CONV_CASES = [
    # x
    ("x_2d", _conv(x=X[0, :, :, 0]), ValueError, r"\bx\b"),
    ("x_5d", _conv(x=X[None]), ValueError, r"\bx\b"),
    ("x_1d", _conv(x=np.zeros(4, np.float32)), ValueError, r"\bx\b"),
    # weight
    ("weight_3d", _conv(weight=W[0]), ValueError, r"weight"),
    ("weight_5d", _conv(weight=W[None]), ValueError, r"weight"),
    ("weight_zero_kernel", _conv(weight=np.zeros((6, 0, 3, 4), np.float32)), ValueError,
     r"weight|kernel"),
    # channels and groups
    ("channel_mismatch_nhwc", _conv(weight=W[..., :3].copy()), ValueError,
     r"(?i)weight|channel"),
    ("channel_mismatch_nchw", _conv(x=X_NCHW, weight=W_OIHW[:, :3].copy(), layout="NCHW"),
     ValueError, r"(?i)weight|channel"),
    ("nchw_weight_given_as_ohwi", _conv(x=X_NCHW, weight=W, layout="NCHW"), ValueError,
     r"(?i)weight|channel"),
    ("cin_not_divisible_by_groups", _conv(weight=W[..., :1].copy(), groups=3), ValueError,
     r"groups"),
    ("cout_not_divisible_by_groups", _conv(weight=W[:5, :, :, :2].copy(), bias=B[:5].copy(),
                                           groups=2), ValueError, r"groups"),
    ("groups_zero", _conv(groups=0), ValueError, r"groups"),
    ("groups_negative", _conv(groups=-2), ValueError, r"groups"),
    ("groups_float", _conv(groups=1.5), (TypeError, ValueError), r"groups"),
    # stride / dilation
    ("stride_zero", _conv(stride=0), ValueError, r"stride"),
    ("stride_negative", _conv(stride=-1), ValueError, r"stride"),
    ("stride_pair_zero", _conv(stride=(1, 0)), ValueError, r"stride"),
    ("stride_triple", _conv(stride=(1, 1, 1)), (TypeError, ValueError), r"stride"),
    ("stride_float", _conv(stride=1.5), (TypeError, ValueError), r"stride"),
    ("stride_string", _conv(stride="2"), (TypeError, ValueError), r"stride"),
    ("dilation_zero", _conv(dilation=0), ValueError, r"dilation"),
    ("dilation_pair_negative", _conv(dilation=(2, -1)), ValueError, r"dilation"),
    ("dilation_float", _conv(dilation=(1.0, 2.0)), (TypeError, ValueError), r"dilation"),
    # padding
    ("padding_negative", _conv(padding=-1), ValueError, r"padding"),
    ("padding_pair_negative", _conv(padding=(0, -1)), ValueError, r"padding"),
    ("padding_asym_negative", _conv(padding=((0, 0), (-1, 2))), ValueError, r"padding"),
    ("padding_unknown_string", _conv(padding="full"), ValueError, r"padding"),
    ("padding_wrong_case", _conv(padding="SAME"), ValueError, r"padding"),
    ("padding_triple", _conv(padding=(1, 2, 3)), (TypeError, ValueError), r"padding"),
    ("padding_inner_triple", _conv(padding=((1, 2, 3), (0, 0))), (TypeError, ValueError),
     r"padding"),
    ("padding_float", _conv(padding=1.5), (TypeError, ValueError), r"padding"),
    # kernel larger than the padded input
    ("kernel_too_large", _conv(weight=np.zeros((6, 7, 3, 4), np.float32)), ValueError,
     r"(?i)kernel|larger|input"),
    ("kernel_too_wide_nchw", _conv(x=X_NCHW, weight=np.zeros((6, 4, 3, 9), np.float32),
                                   layout="NCHW", padding=1), ValueError,
     r"(?i)kernel|larger|input"),
    ("dilated_kernel_too_large", _conv(dilation=3), ValueError, r"(?i)kernel|dilat|input"),
    # bias
    ("bias_too_long", _conv(bias=np.zeros(7, np.float32)), ValueError, r"bias"),
    ("bias_2d", _conv(bias=B[None]), ValueError, r"bias"),
    ("bias_scalar", _conv(bias=np.float32(1.0)), ValueError, r"bias"),
    ("bias_column", _conv(bias=B[:, None].copy()), ValueError, r"bias"),
    ("bias_row", _conv(bias=B[None, :].copy()), ValueError, r"bias"),
    # strings
    ("layout_unknown", _conv(layout="NCWH"), ValueError, r"layout"),
    ("layout_hwcn", _conv(layout="HWCN"), ValueError, r"layout"),
    ("activation_unknown", _conv(activation="sigmoid"), ValueError, r"activation"),
    # dtypes
    ("x_int32", _conv(x=X.astype(np.int32)), TypeError, DTYPE_MSG),
    ("x_float16", _conv(x=X.astype(np.float16)), TypeError, DTYPE_MSG),
    ("x_complex", _conv(x=X.astype(np.complex64)), TypeError, DTYPE_MSG),
    ("x_bool", _conv(x=X > 0), TypeError, DTYPE_MSG),
    ("weight_int", _conv(weight=W.astype(np.int64)), TypeError, DTYPE_MSG),
    ("mixed_x32_w64", _conv(weight=W.astype(np.float64)), TypeError, DTYPE_MSG),
    ("mixed_x64_w32", _conv(x=X.astype(np.float64), bias=B.astype(np.float64)), TypeError,
     DTYPE_MSG),
    ("mixed_bias", _conv(bias=B.astype(np.float64)), TypeError, DTYPE_MSG),
    ("object_array", _conv(x=X.astype(object)), TypeError, DTYPE_MSG),
    # out=
    ("out_wrong_shape", _conv(out=np.empty((2, 4, 4, 5), np.float32)), ValueError, r"\bout\b"),
    ("out_single_image_shape", _conv(out=np.empty(OUT_SHAPE[1:], np.float32)), ValueError,
     r"\bout\b"),
    ("out_wrong_dtype", _conv(out=np.empty(OUT_SHAPE, np.float64)), (TypeError, ValueError),
     r"\bout\b"),
    ("out_not_contiguous", _conv(out=np.empty((2, 4, 4, 12), np.float32)[..., ::2]),
     ValueError, r"\bout\b"),
    ("out_fortran", _conv(out=np.asfortranarray(np.empty(OUT_SHAPE, np.float32))), ValueError,
     r"\bout\b"),
    ("out_readonly", _conv(out=_readonly(np.empty(OUT_SHAPE, np.float32))), ValueError,
     r"\bout\b"),
    ("out_list", _conv(out=[[0.0]]), (TypeError, ValueError), r"\bout\b"),
    ("out_is_x", _conv(x=SQUARE_X, weight=SQUARE_W, bias=None, out=SQUARE_X), ValueError,
     r"\bout\b"),
]


@pytest.mark.parametrize(("call", "exc", "pattern"),
                         [pytest.param(c, e, p, id=i) for i, c, e, p in CONV_CASES])
def test_conv2d_rejects(call: Callable[[], Any], exc: Any, pattern: str) -> None:
    with pytest.raises(exc, match=pattern):
        call()


@pytest.mark.parametrize(("call", "exc", "pattern"),
                         [pytest.param(c, e, p, id=i) for i, c, e, p in CONV_CASES])
def test_conv2d_rejects_after_a_valid_call(call: Callable[[], Any], exc: Any,
                                           pattern: str) -> None:
    # conv2d may remember work from earlier calls with the same shapes; a bad argument
    # must be rejected all the same. Warm up with valid calls on the shapes used above.
    convx.conv2d(X, W, B)
    convx.conv2d(X_NCHW, W_OIHW, B, layout="NCHW")
    convx.conv2d(SQUARE_X, SQUARE_W)
    with pytest.raises(exc, match=pattern):
        call()


def _outcome(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except (TypeError, ValueError) as exc:
        return type(exc)


@pytest.mark.parametrize(("index", "name", "value"), [
    (0, "stride", 1.0), (1, "stride", True), (2, "groups", 1.0), (3, "groups", True),
    (4, "padding", 0.0), (5, "padding", False), (6, "dilation", 1.0), (7, "dilation", True),
    (8, "stride", (1.0, 1)), (9, "padding", ((0, 0), (0.0, 0))),
])
def test_validation_does_not_depend_on_call_history(index: int, name: str,
                                                    value: Any) -> None:
    # Each argument value here compares (and hashes) equal to a valid one: 1.0 == True == 1.
    # Whether conv2d accepts it must not depend on whether the valid spelling was used
    # before with the same shapes. Shapes are unique to this test, so the first call is
    # the first with them.
    fresh = np.zeros((1, 31, 29 + index, 3), np.float32)
    warm = np.zeros((1, 31, 41 + index, 3), np.float32)
    weight = np.ones((2, 3, 3, 3), np.float32)
    valid = {"stride": 1, "groups": 1, "padding": 0, "dilation": 1}[name]
    if name == "stride" and isinstance(value, tuple):
        valid = (1, 1)
    if name == "padding" and isinstance(value, tuple):
        valid = ((0, 0), (0, 0))
    cold = _outcome(lambda: convx.conv2d(fresh, weight, **{name: value}))
    convx.conv2d(warm, weight, **{name: valid})
    hot = _outcome(lambda: convx.conv2d(warm, weight, **{name: value}))
    if isinstance(cold, type):
        assert hot is cold, f"{name}={value!r}: {cold.__name__} when cold, accepted when warm"
    else:
        assert not isinstance(hot, type), f"{name}={value!r}: accepted cold, {hot} when warm"


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_repeated_signature_from_many_threads(layout: str) -> None:
    # Many threads reuse one call signature at once, each with its own input: every result
    # must be that input's own.
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(11)
    shape = (2, 20, 18, 16) if layout == "NHWC" else (2, 16, 20, 18)
    xs = [rng.uniform(-1, 1, shape).astype(np.float32) for _ in range(6)]
    weight = rng.uniform(-1, 1, (24, 3, 3, 8) if layout == "NHWC" else (24, 8, 3, 3))
    weight = weight.astype(np.float32)
    want = [convx.conv2d(x, weight, padding=1, groups=2, layout=layout) for x in xs]

    def work(i: int) -> int:
        wrong = 0
        for r in range(20):
            j = (i + r) % len(xs)
            y = convx.conv2d(xs[j], weight, padding=1, groups=2, layout=layout)
            wrong += int(not np.array_equal(y, want[j]))
        return wrong

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert sum(pool.map(work, range(8))) == 0


def test_conv2d_rejects_out_overlapping_weight() -> None:
    # An out buffer that is a view into the same memory as the weight.
    x = np.ones((1, 2, 2, 1), np.float64)
    storage = np.zeros(16, np.float64)
    weight = storage[:4].reshape(4, 1, 1, 1)
    out = storage[:16].reshape(1, 2, 2, 4)
    with pytest.raises(ValueError, match=r"\bout\b"):
        convx.conv2d(x, weight, out=out)


def test_failed_call_leaves_out_and_inputs_untouched() -> None:
    x, weight = X.copy(), W.copy()
    out = np.full((2, 4, 4, 6), 5.0, np.float32)
    with pytest.raises(ValueError, match=r"bias"):
        convx.conv2d(x, weight, np.zeros(3, np.float32), out=out)
    assert np.all(out == 5.0)
    np.testing.assert_array_equal(x, X)
    np.testing.assert_array_equal(weight, W)


# --------------------------------------------------------------------------------------
# im2col, pad, gemm, output_shape
# --------------------------------------------------------------------------------------

IM2COL_CASES = [
    ("x_2d", lambda: convx.im2col(X[0, :, :, 0], 3), ValueError, r"\bx\b"),
    ("x_5d", lambda: convx.im2col(X[None], 3), ValueError, r"\bx\b"),
    ("kernel_zero", lambda: convx.im2col(X, 0), ValueError, r"kernel_size"),
    ("kernel_pair_zero", lambda: convx.im2col(X, (3, 0)), ValueError, r"kernel_size"),
    ("kernel_triple", lambda: convx.im2col(X, (3, 3, 3)), (TypeError, ValueError),
     r"kernel_size"),
    ("kernel_too_large", lambda: convx.im2col(X, 7), ValueError, r"(?i)kernel|larger|input"),
    ("kernel_too_large_dilated", lambda: convx.im2col(X, 3, dilation=(1, 3)), ValueError,
     r"(?i)kernel|larger|input"),
    ("order_unknown", lambda: convx.im2col(X, 3, order="whc"), ValueError, r"order"),
    ("order_garbage", lambda: convx.im2col(X, 3, order="HWC!"), ValueError, r"order"),
    ("layout_unknown", lambda: convx.im2col(X, 3, layout="CHWN"), ValueError, r"layout"),
    ("groups_not_dividing", lambda: convx.im2col(X, 3, groups=3), ValueError, r"groups"),
    ("groups_zero", lambda: convx.im2col(X, 3, groups=0), ValueError, r"groups"),
    ("stride_zero", lambda: convx.im2col(X, 3, stride=0), ValueError, r"stride"),
    ("dilation_zero", lambda: convx.im2col(X, 3, dilation=(0, 1)), ValueError, r"dilation"),
    ("padding_negative", lambda: convx.im2col(X, 3, padding=((0, -1), (0, 0))), ValueError,
     r"padding"),
    ("padding_unknown", lambda: convx.im2col(X, 3, padding="half"), ValueError, r"padding"),
    ("x_int", lambda: convx.im2col(X.astype(np.int16), 3), TypeError, DTYPE_MSG),
    ("x_float16", lambda: convx.im2col(X.astype(np.float16), 3), TypeError, DTYPE_MSG),
]

PAD_CASES = [
    ("x_2d", lambda: convx.pad(X[0, :, :, 0], 1), ValueError, r"\bx\b"),
    ("x_5d", lambda: convx.pad(X[None], 1), ValueError, r"\bx\b"),
    ("padding_negative", lambda: convx.pad(X, -1), ValueError, r"padding"),
    ("padding_pair_negative", lambda: convx.pad(X, (2, -2)), ValueError, r"padding"),
    ("padding_asym_negative", lambda: convx.pad(X, ((0, 0), (0, -3))), ValueError,
     r"padding"),
    ("padding_triple", lambda: convx.pad(X, (1, 1, 1)), (TypeError, ValueError), r"padding"),
    ("padding_unknown", lambda: convx.pad(X, "reflect"), ValueError, r"padding"),
    ("layout_unknown", lambda: convx.pad(X, 1, layout="NWHC"), ValueError, r"layout"),
    ("x_int", lambda: convx.pad(X.astype(np.int32), 1), TypeError, DTYPE_MSG),
    ("x_complex", lambda: convx.pad(X.astype(np.complex128), 1), TypeError, DTYPE_MSG),
]

GEMM_CASES = [
    ("a_1d", lambda: convx.gemm(A[0], M), ValueError, r"\ba\b"),
    ("a_3d", lambda: convx.gemm(A[None], M), ValueError, r"\ba\b"),
    ("b_1d", lambda: convx.gemm(A, M[:, 0]), ValueError, r"\bb\b"),
    ("b_3d", lambda: convx.gemm(A, M[None]), ValueError, r"\bb\b"),
    ("inner_mismatch", lambda: convx.gemm(A, M[:6]), ValueError, r"(?i)\bb\b|inner|shape"),
    ("mixed_dtypes", lambda: convx.gemm(A, M.astype(np.float32)), TypeError, DTYPE_MSG),
    ("int_inputs", lambda: convx.gemm(A.astype(np.int64), M.astype(np.int64)), TypeError,
     DTYPE_MSG),
    ("float16_inputs", lambda: convx.gemm(A.astype(np.float16), M.astype(np.float16)),
     TypeError, DTYPE_MSG),
    ("complex_inputs", lambda: convx.gemm(A.astype(np.complex128), M), TypeError, DTYPE_MSG),
    ("out_wrong_shape", lambda: convx.gemm(A, M, out=np.empty((3, 5))), ValueError,
     r"\bout\b"),
    ("out_wrong_dtype", lambda: convx.gemm(A, M, out=np.empty((5, 3), np.float32)),
     (TypeError, ValueError), r"\bout\b"),
    ("out_not_contiguous", lambda: convx.gemm(A, M, out=np.empty((3, 5)).T), ValueError,
     r"\bout\b"),
    ("out_readonly", lambda: convx.gemm(A, M, out=_readonly(np.empty((5, 3)))), ValueError,
     r"\bout\b"),
]


@pytest.mark.parametrize(("call", "exc", "pattern"),
                         [pytest.param(c, e, p, id=i) for i, c, e, p in IM2COL_CASES])
def test_im2col_rejects(call: Callable[[], Any], exc: Any, pattern: str) -> None:
    with pytest.raises(exc, match=pattern):
        call()


@pytest.mark.parametrize(("call", "exc", "pattern"),
                         [pytest.param(c, e, p, id=i) for i, c, e, p in PAD_CASES])
def test_pad_rejects(call: Callable[[], Any], exc: Any, pattern: str) -> None:
    with pytest.raises(exc, match=pattern):
        call()


@pytest.mark.parametrize(("call", "exc", "pattern"),
                         [pytest.param(c, e, p, id=i) for i, c, e, p in GEMM_CASES])
def test_gemm_rejects(call: Callable[[], Any], exc: Any, pattern: str) -> None:
    with pytest.raises(exc, match=pattern):
        call()


@pytest.mark.parametrize("which", ["a", "b"])
def test_gemm_rejects_out_overlapping_input(which: str) -> None:
    square = np.ones((4, 4))
    other = np.ones((4, 4))
    a, b = (square, other) if which == "a" else (other, square)
    with pytest.raises(ValueError, match=r"\bout\b"):
        convx.gemm(a, b, out=square)
    np.testing.assert_array_equal(square, np.ones((4, 4)))


def test_gemm_rejects_out_overlapping_a_view() -> None:
    storage = np.ones((8, 4))
    a = storage[:4]
    out = storage[2:6]          # overlaps the last two rows of a
    with pytest.raises(ValueError, match=r"\bout\b"):
        convx.gemm(a, np.ones((4, 4)), out=out)


OUTPUT_SHAPE_CASES = [
    ("stride_zero", {"stride": 0}, ValueError, r"stride"),
    ("dilation_negative", {"dilation": -1}, ValueError, r"dilation"),
    ("padding_negative", {"padding": -2}, ValueError, r"padding"),
    ("padding_unknown", {"padding": "biggest"}, ValueError, r"padding"),
    ("layout_unknown", {"layout": "NHCW"}, ValueError, r"layout"),
    ("kernel_too_large", {"padding": 0, "dilation": 4}, ValueError, r"(?i)kernel|larger|input"),
]


@pytest.mark.parametrize(("kwargs", "exc", "pattern"),
                         [pytest.param(k, e, p, id=i) for i, k, e, p in OUTPUT_SHAPE_CASES])
def test_output_shape_rejects(kwargs: dict[str, Any], exc: Any, pattern: str) -> None:
    with pytest.raises(exc, match=pattern):
        convx.output_shape((1, 6, 6, 4), (6, 3, 3, 4), **kwargs)


def test_output_shape_rejects_wrong_ranks() -> None:
    with pytest.raises(ValueError, match=r"input_shape|\bx\b"):
        convx.output_shape((6, 6), (6, 3, 3, 4))
    with pytest.raises(ValueError, match=r"weight"):
        convx.output_shape((1, 6, 6, 4), (3, 3, 4))


@pytest.mark.parametrize("n", [0, -1])
def test_set_num_threads_rejects_non_positive(n: int, restore_threads: int) -> None:
    with pytest.raises(ValueError, match=r"(?i)thread|\bn\b"):
        convx.set_num_threads(n)
    assert convx.get_num_threads() == restore_threads


# --------------------------------------------------------------------------------------
# output_shape agrees with the shapes conv2d produces
# --------------------------------------------------------------------------------------

@st.composite
def shape_problems(draw: st.DrawFn) -> dict[str, Any]:
    k_h, k_w = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = draw(st.one_of(st.integers(1, 4), st.tuples(st.integers(1, 4), st.integers(1, 4))))
    dilation = draw(st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3),
                                                            st.integers(1, 3))))
    padding = draw(st.one_of(
        st.integers(0, 3), st.tuples(st.integers(0, 3), st.integers(0, 3)),
        st.tuples(st.tuples(st.integers(0, 3), st.integers(0, 3)),
                  st.tuples(st.integers(0, 3), st.integers(0, 3))),
        st.sampled_from(["valid", "same", "same_lower"])))
    return {"h": draw(st.integers(1, 20)), "w": draw(st.integers(1, 20)), "k": (k_h, k_w),
            "stride": stride, "dilation": dilation, "padding": padding,
            "layout": draw(st.sampled_from(["NHWC", "NCHW"])),
            "n": draw(st.sampled_from([None, 1, 3]))}


@given(problem=shape_problems())
def test_output_shape_formula(problem: dict[str, Any]) -> None:
    h, w, (k_h, k_w), layout, n = (problem[key] for key in ("h", "w", "k", "layout", "n"))
    c_in, c_out = 2, 3
    spatial = (h, w, c_in) if layout == "NHWC" else (c_in, h, w)
    x_shape = spatial if n is None else (n, *spatial)
    w_shape = (c_out, k_h, k_w, c_in) if layout == "NHWC" else (c_out, c_in, k_h, k_w)
    kwargs = {key: problem[key] for key in ("stride", "padding", "dilation", "layout")}
    (top, bottom), (left, right) = resolve_padding(problem["padding"], (h, w), (k_h, k_w),
                                                   problem["stride"], problem["dilation"])
    s_h, s_w = (problem["stride"],) * 2 if isinstance(problem["stride"], int) \
        else problem["stride"]
    d_h, d_w = (problem["dilation"],) * 2 if isinstance(problem["dilation"], int) \
        else problem["dilation"]
    fits = (h + top + bottom >= d_h * (k_h - 1) + 1) and (w + left + right >= d_w * (k_w - 1) + 1)
    if not fits:
        with pytest.raises(ValueError, match=r"(?i)kernel|larger|input"):
            convx.output_shape(x_shape, w_shape, **kwargs)
        return
    h_out = output_size(h, k_h, s_h, top, bottom, d_h)
    w_out = output_size(w, k_w, s_w, left, right, d_w)
    spatial_out = (h_out, w_out, c_out) if layout == "NHWC" else (c_out, h_out, w_out)
    expected = spatial_out if n is None else (n, *spatial_out)
    assert tuple(convx.output_shape(x_shape, w_shape, **kwargs)) == expected
    x = np.zeros(x_shape, np.float32)
    assert convx.conv2d(x, np.zeros(w_shape, np.float32), **kwargs).shape == expected


@pytest.mark.parametrize(("h", "k", "p", "s", "expected"), [
    (5, 3, 0, 1, 3), (5, 3, 1, 1, 5), (5, 3, 1, 2, 3), (6, 3, 1, 2, 3), (7, 2, 0, 3, 2),
    (1, 1, 0, 1, 1), (4, 4, 0, 1, 1), (224, 7, 3, 2, 112), (10, 5, 2, 5, 2),
])
def test_output_shape_matches_maths_note(h: int, k: int, p: int, s: int, expected: int) -> None:
    # H_out = floor((H_in - k_h + 2 p_h) / s_h) + 1, stated once by hand.
    assert tuple(convx.output_shape((h, h, 1), (2, k, k, 1), stride=s, padding=p)) == \
        (expected, expected, 2)


# --------------------------------------------------------------------------------------
# Conv2D
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize(("c_in", "c_out", "k", "groups"), [(3, 8, 3, 1), (4, 6, (2, 5), 2),
                                                            (6, 6, 3, 6), (1, 1, 1, 1)])
def test_conv2d_layer_shapes_and_dtype(layout: str, c_in: int, c_out: int, k: Any, groups: int
                                       ) -> None:
    k_h, k_w = (k, k) if isinstance(k, int) else k
    for dtype in (np.float32, np.float64):
        layer = convx.Conv2D(c_in, c_out, k, groups=groups, layout=layout, dtype=dtype, seed=1)
        expected = (c_out, k_h, k_w, c_in // groups) if layout == "NHWC" else \
            (c_out, c_in // groups, k_h, k_w)
        assert layer.weight.shape == expected
        assert layer.weight.dtype == np.dtype(dtype)
        assert layer.bias is not None
        assert layer.bias.shape == (c_out,)
        assert layer.bias.dtype == np.dtype(dtype)


def test_conv2d_layer_default_dtype_is_float32() -> None:
    layer = convx.Conv2D(2, 3, 3, seed=0)
    assert layer.weight.dtype == np.float32
    assert layer.weight.shape == (3, 3, 3, 2)


@pytest.mark.parametrize(("c_in", "c_out", "k", "groups"), [(16, 64, 3, 1), (8, 64, (3, 5), 4),
                                                            (32, 32, 1, 1)])
def test_conv2d_layer_init_range(c_in: int, c_out: int, k: Any, groups: int) -> None:
    k_h, k_w = (k, k) if isinstance(k, int) else k
    bound = 1.0 / np.sqrt(c_in // groups * k_h * k_w)
    layer = convx.Conv2D(c_in, c_out, k, groups=groups, dtype=np.float64, seed=123)
    weight = layer.weight
    assert np.all(np.abs(weight) <= bound)
    assert np.all(np.abs(layer.bias) <= bound)
    # Uniform on [-bound, bound]: the extremes are reached and the spread is bound/sqrt(3).
    assert weight.max() > 0.9 * bound
    assert weight.min() < -0.9 * bound
    assert abs(weight.std() - bound / np.sqrt(3)) < 0.1 * bound
    assert abs(weight.mean()) < 0.1 * bound
    assert len(np.unique(weight)) == weight.size


def test_conv2d_layer_seed_reproducible() -> None:
    a = convx.Conv2D(3, 5, 3, seed=42)
    b = convx.Conv2D(3, 5, 3, seed=42)
    c = convx.Conv2D(3, 5, 3, seed=43)
    np.testing.assert_array_equal(a.weight, b.weight)
    np.testing.assert_array_equal(a.bias, b.bias)
    assert not np.array_equal(a.weight, c.weight)
    assert not np.array_equal(a.bias, c.bias)


def test_conv2d_layer_without_bias(rng: np.random.Generator) -> None:
    layer = convx.Conv2D(3, 4, 3, bias=False, padding=1, seed=0)
    assert layer.bias is None
    x = uniform(rng, (2, 5, 5, 3), np.float32)
    np.testing.assert_array_equal(layer(x), convx.conv2d(x, layer.weight, padding=1))


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_layer_call_equals_functional(layout: str, dtype: type,
                                             rng: np.random.Generator) -> None:
    kwargs: dict[str, Any] = {"stride": (2, 1), "padding": "same", "dilation": (1, 2),
                              "groups": 2}
    layer = convx.Conv2D(4, 6, (3, 2), layout=layout, dtype=dtype, seed=9,
                         activation="relu", **kwargs)
    x = uniform(rng, (2, 9, 8, 4) if layout == "NHWC" else (2, 4, 9, 8), dtype)
    y = layer(x)
    assert y.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(
        y, convx.conv2d(x, layer.weight, layer.bias, layout=layout, activation="relu",
                        **kwargs))
    want = conv2d_ref(x, layer.weight, layer.bias, layout=layout, activation="relu", **kwargs)
    np.testing.assert_allclose(y, want, rtol=1e-4 if dtype == np.float32 else 1e-12,
                               atol=1e-5 if dtype == np.float32 else 1e-12)
    assert tuple(layer.output_shape(x.shape)) == y.shape
    assert tuple(layer.output_shape(x[0].shape)) == y.shape[1:]
    assert layer(x[0]).shape == y.shape[1:]


def test_conv2d_layer_rejects_bad_input(rng: np.random.Generator) -> None:
    layer = convx.Conv2D(3, 4, 3, seed=0)
    with pytest.raises(ValueError, match=r"(?i)weight|channel"):
        layer(uniform(rng, (1, 5, 5, 2), np.float32))
    with pytest.raises(TypeError, match=DTYPE_MSG):
        layer(uniform(rng, (1, 5, 5, 3), np.float64))


@pytest.mark.parametrize(("args", "kwargs", "pattern"), [
    ((0, 4, 3), {}, r"in_channels"),
    ((3, 0, 3), {}, r"out_channels"),
    ((3, 4, 0), {}, r"kernel_size"),
    ((3, 4, (3, -1)), {}, r"kernel_size"),
    ((3, 4, 3), {"groups": 2}, r"groups"),
    ((4, 3, 3), {"groups": 2}, r"groups"),
    ((3, 4, 3), {"stride": 0}, r"stride"),
    ((3, 4, 3), {"dilation": 0}, r"dilation"),
    ((3, 4, 3), {"padding": -1}, r"padding"),
    ((3, 4, 3), {"layout": "HWC"}, r"layout"),
    ((3, 4, 3), {"activation": "tanh"}, r"activation"),
])
def test_conv2d_layer_rejects_bad_config(args: tuple[Any, ...], kwargs: dict[str, Any],
                                         pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        convx.Conv2D(*args, **kwargs)


@pytest.mark.parametrize("dtype", [np.int32, np.float16, np.complex64])
def test_conv2d_layer_rejects_bad_dtype(dtype: type) -> None:
    with pytest.raises(TypeError, match=DTYPE_MSG):
        convx.Conv2D(3, 4, 3, dtype=dtype)


def _layer_matches_functional(layer: Any, x: np.ndarray) -> None:
    want = convx.conv2d(x, np.array(layer.weight), None if layer.bias is None else
                        np.array(layer.bias), stride=layer.stride, padding=layer.padding,
                        dilation=layer.dilation, groups=layer.groups, layout=layer.layout,
                        activation=layer.activation)
    np.testing.assert_array_equal(layer(x), want)


def test_conv2d_layer_tracks_weight_and_bias_changes(rng: np.random.Generator) -> None:
    # However the parameters are changed, the layer computes with what layer.weight and
    # layer.bias show, warm or cold.
    layer = convx.Conv2D(4, 6, 3, padding=1, groups=2, seed=5)
    x = uniform(rng, (2, 7, 6, 4), np.float32)
    first = layer(x)
    _layer_matches_functional(layer, x)

    try:                                            # in place: either refused or honoured
        layer.weight[0, 0, 0, 0] += 1.0
    except ValueError:
        pass
    _layer_matches_functional(layer, x)

    new_weight = uniform(rng, layer.weight.shape, np.float32)
    layer.weight = new_weight
    np.testing.assert_array_equal(layer.weight, new_weight)
    _layer_matches_functional(layer, x)
    assert not np.array_equal(layer(x), first)

    new_weight[...] = 0.0                           # the caller's array is not aliased...
    _layer_matches_functional(layer, x)             # ...or, if it is, the layer follows it

    try:
        layer.bias[0] = 10.0
    except ValueError:
        pass
    _layer_matches_functional(layer, x)
    layer.bias = np.arange(6, dtype=np.float32)
    _layer_matches_functional(layer, x)
    layer.bias = None
    assert layer.bias is None
    _layer_matches_functional(layer, x)


def test_conv2d_layer_rejects_bad_assignments() -> None:
    layer = convx.Conv2D(3, 4, 3, seed=0)
    with pytest.raises(ValueError, match=r"weight"):
        layer.weight = np.zeros((4, 3, 3, 2), np.float32)
    with pytest.raises(ValueError, match=r"bias"):
        layer.bias = np.zeros(5, np.float32)


def test_conv2d_layer_validation_after_warm_up(rng: np.random.Generator) -> None:
    layer = convx.Conv2D(3, 4, 3, seed=0)
    x = uniform(rng, (2, 6, 6, 3), np.float32)
    layer(x)
    layer(x)
    with pytest.raises(TypeError, match=DTYPE_MSG):
        layer(x.astype(np.float64))
    with pytest.raises(TypeError, match=DTYPE_MSG):
        layer(x.astype(np.int32))
    noncontiguous = uniform(rng, (2, 6, 12, 3), np.float32)[:, :, ::2]
    _layer_matches_functional(layer, noncontiguous)
    out = np.empty((2, 4, 4, 4), np.float32)
    assert layer(x, out=out) is out
    np.testing.assert_array_equal(out, layer(x))
    with pytest.raises(ValueError, match=r"\bout\b"):
        layer(x, out=np.empty((2, 4, 4, 5), np.float32))
