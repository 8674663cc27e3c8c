"""convx.im2col and convx.pad: pure data movement, so every comparison is exact."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import as_pair, im2col_ref, output_size, pad_ref, resolve_padding, uniform

import convx

DTYPES = [np.float32, np.float64]
LAYOUTS = ["NHWC", "NCHW"]
ORDERS = ["hwc", "chw", "seed"]


def padded_hwc(x: np.ndarray, padding: Any, k: tuple[int, int], stride: Any = 1,
               dilation: Any = 1) -> np.ndarray:
    (top, bottom), (left, right) = resolve_padding(padding, x.shape[:2], k, stride, dilation)
    return np.pad(x, [(top, bottom), (left, right), (0, 0)])


# --------------------------------------------------------------------------------------
# The maths note's index formula, element by element
# --------------------------------------------------------------------------------------

SEED_CASES = [
    # (H, W, C, (k_h, k_w), stride, padding)
    (5, 5, 1, (3, 3), 1, 0),
    (5, 6, 2, (2, 3), 1, 1),
    (7, 8, 3, (3, 2), (2, 3), (1, 0)),
    (6, 6, 4, (1, 1), 2, 0),
    (4, 9, 2, (4, 2), (1, 2), ((2, 1), (0, 3))),
    (8, 5, 3, (3, 3), 3, "same"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("h", "w", "c_in", "k", "stride", "padding"), SEED_CASES)
def test_seed_index_formula(h: int, w: int, c_in: int, k: tuple[int, int], stride: Any,
                            padding: Any, dtype: type, rng: np.random.Generator) -> None:
    """im2col[i, j, C*k_h*k_w + c*k_h + r] == X_pad[i*s_h + r, j*s_w + c, C]."""
    x = uniform(rng, (h, w, c_in), dtype)
    k_h, k_w = k
    s_h, s_w = as_pair(stride)
    cols = convx.im2col(x, k, stride=stride, padding=padding, order="seed")
    x_pad = padded_hwc(x, padding, k, stride)
    h_out = (x_pad.shape[0] - k_h) // s_h + 1
    w_out = (x_pad.shape[1] - k_w) // s_w + 1
    assert cols.shape == (h_out, w_out, k_h * k_w * c_in)
    assert cols.dtype == np.dtype(dtype)
    for i in range(h_out):
        for j in range(w_out):
            for big_c in range(c_in):
                for c in range(k_w):
                    for r in range(k_h):
                        assert cols[i, j, big_c * k_h * k_w + c * k_h + r] == \
                            x_pad[i * s_h + r, j * s_w + c, big_c], (i, j, big_c, c, r)


@pytest.mark.parametrize(("h", "w", "c_in", "k", "stride", "dilation", "padding"), [
    (7, 7, 2, (3, 3), 1, 2, 0),
    (9, 8, 3, (2, 3), (2, 1), (3, 2), 1),
    (6, 10, 1, (3, 2), 1, (1, 4), "same"),
    (8, 8, 2, (2, 2), 3, 2, ((0, 2), (1, 1))),
])
def test_seed_index_formula_dilated(h: int, w: int, c_in: int, k: tuple[int, int],
                                    stride: Any, dilation: Any, padding: Any,
                                    rng: np.random.Generator) -> None:
    """im2col[i, j, C*k_h*k_w + c*k_h + r] == X_pad[i*s_h + r*d_h, j*s_w + c*d_w, C]."""
    x = uniform(rng, (2, h, w, c_in), np.float64)
    k_h, k_w = k
    s_h, s_w = as_pair(stride)
    d_h, d_w = as_pair(dilation)
    cols = convx.im2col(x, k, stride=stride, padding=padding, dilation=dilation, order="seed")
    for b in range(2):
        x_pad = padded_hwc(x[b], padding, k, stride, dilation)
        h_out = (x_pad.shape[0] - d_h * (k_h - 1) - 1) // s_h + 1
        w_out = (x_pad.shape[1] - d_w * (k_w - 1) - 1) // s_w + 1
        assert cols.shape == (2, h_out, w_out, k_h * k_w * c_in)
        for i in range(h_out):
            for j in range(w_out):
                for big_c in range(c_in):
                    for c in range(k_w):
                        for r in range(k_h):
                            assert cols[b, i, j, big_c * k_h * k_w + c * k_h + r] == \
                                x_pad[i * s_h + r * d_h, j * s_w + c * d_w, big_c]


@pytest.mark.parametrize("order", ORDERS)
def test_order_index_formulas(order: str) -> None:
    # Values encode their own (row, col, channel) so a mismatch names the culprit.
    h, w, c_in, k_h, k_w = 4, 5, 3, 2, 3
    rr, cc, ch = np.meshgrid(np.arange(h), np.arange(w), np.arange(c_in), indexing="ij")
    x = (100 * rr + 10 * cc + ch).astype(np.float64)
    cols = convx.im2col(x, (k_h, k_w), order=order)
    for i in range(h - k_h + 1):
        for j in range(w - k_w + 1):
            for u in range(k_h):
                for v in range(k_w):
                    for c in range(c_in):
                        idx = {"hwc": (u * k_w + v) * c_in + c,
                               "chw": c * k_h * k_w + u * k_w + v,
                               "seed": c * k_h * k_w + v * k_h + u}[order]
                        assert cols[i, j, idx] == x[i + u, j + v, c]


def test_default_order_is_hwc(rng: np.random.Generator) -> None:
    x = uniform(rng, (1, 5, 6, 3), np.float32)
    np.testing.assert_array_equal(convx.im2col(x, 2), convx.im2col(x, 2, order="hwc"))
    assert not np.array_equal(convx.im2col(x, 2, order="hwc"),
                              convx.im2col(x, 2, order="chw"))


# --------------------------------------------------------------------------------------
# Property test against the reference
# --------------------------------------------------------------------------------------

small_pad = st.integers(0, 2)
pair = st.tuples(st.integers(1, 3), st.integers(1, 3))


@st.composite
def im2col_problems(draw: st.DrawFn) -> dict[str, Any]:
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    k_h, k_w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    square = draw(st.booleans())
    if square:
        k_w = k_h
    dilation = draw(st.one_of(st.just(1), st.integers(1, 3), pair))
    padding = draw(st.one_of(
        small_pad, st.tuples(small_pad, small_pad),
        st.tuples(st.tuples(small_pad, small_pad), st.tuples(small_pad, small_pad)),
        st.sampled_from(["valid", "same", "same_lower"])))
    d_h, d_w = as_pair(dilation)
    if padding in ("same", "same_lower"):
        min_h = min_w = 1
    else:
        (top, bottom), (left, right) = resolve_padding(padding, (0, 0), (1, 1))
        min_h = max(1, (k_h - 1) * d_h + 1 - top - bottom)
        min_w = max(1, (k_w - 1) * d_w + 1 - left - right)
    return {
        "layout": draw(st.sampled_from(LAYOUTS)), "dtype": draw(st.sampled_from(DTYPES)),
        "n": draw(st.sampled_from([None, 1, 2])), "groups": groups,
        "c_in": groups * draw(st.integers(1, 3)),
        "h": draw(st.integers(min_h, min_h + 6)), "w": draw(st.integers(min_w, min_w + 6)),
        "kernel_size": k_h if square else (k_h, k_w),
        "stride": draw(st.one_of(st.integers(1, 3), pair)), "dilation": dilation,
        "padding": padding, "order": draw(st.sampled_from(ORDERS)),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


@given(problem=im2col_problems())
def test_im2col_matches_reference(problem: dict[str, Any]) -> None:
    rng = np.random.default_rng(problem["seed"])
    n, h, w, c_in = problem["n"], problem["h"], problem["w"], problem["c_in"]
    spatial = (h, w, c_in) if problem["layout"] == "NHWC" else (c_in, h, w)
    x = uniform(rng, spatial if n is None else (n, *spatial), problem["dtype"])
    kwargs = {key: problem[key] for key in
              ("stride", "padding", "dilation", "groups", "layout", "order")}
    k = problem["kernel_size"]
    got = convx.im2col(x, k, **kwargs)
    want = im2col_ref(x, k, **kwargs)
    assert got.dtype == x.dtype
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


# --------------------------------------------------------------------------------------
# Layouts and groups
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("single", [False, True])
def test_nchw_input_gives_same_patches_as_nhwc(order: str, single: bool,
                                               rng: np.random.Generator) -> None:
    x_nhwc = uniform(rng, (2, 6, 7, 4), np.float32)
    x_nchw = np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))
    if single:
        x_nhwc, x_nchw = x_nhwc[1], x_nchw[1]
    kwargs: dict[str, Any] = {"stride": (1, 2), "padding": 1, "dilation": (2, 1),
                              "order": order}
    a = convx.im2col(x_nhwc, (2, 3), **kwargs)
    b = convx.im2col(x_nchw, (2, 3), layout="NCHW", **kwargs)
    h_out = output_size(6, 2, 1, 1, 1, 2)
    w_out = output_size(7, 3, 2, 1, 1, 1)
    expected = (h_out, w_out, 2 * 3 * 4) if single else (2, h_out, w_out, 2 * 3 * 4)
    assert a.shape == expected
    assert b.shape == expected
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("groups", [2, 3, 6])
def test_groups_split_channels(layout: str, order: str, groups: int,
                               rng: np.random.Generator) -> None:
    c_in = 6
    c_g = c_in // groups
    x_nhwc = uniform(rng, (2, 5, 6, c_in), np.float64)
    x = x_nhwc if layout == "NHWC" else np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))
    cols = convx.im2col(x, 3, padding=1, groups=groups, layout=layout, order=order)
    assert cols.shape == (2, 5, 6, groups, 9 * c_g)
    for g in range(groups):
        part = np.ascontiguousarray(x_nhwc[..., g * c_g:(g + 1) * c_g])
        np.testing.assert_array_equal(cols[:, :, :, g, :],
                                      convx.im2col(part, 3, padding=1, order=order))


@pytest.mark.parametrize("order", ORDERS)
def test_groups_single_image_shape(order: str, rng: np.random.Generator) -> None:
    x = uniform(rng, (5, 4, 4), np.float32)
    cols = convx.im2col(x, (2, 2), groups=2, order=order)
    assert cols.shape == (4, 3, 2, 8)
    np.testing.assert_array_equal(cols, im2col_ref(x, (2, 2), groups=2, order=order))


@pytest.mark.parametrize("dtype", DTYPES)
def test_im2col_times_weights_is_conv(dtype: type, rng: np.random.Generator) -> None:
    # hwc patches pair with OHWI weights, chw patches with OIHW weights.
    x = uniform(rng, (2, 7, 6, 3), dtype)
    w_ohwi = uniform(rng, (5, 3, 2, 3), dtype)
    want = convx.conv2d(x, w_ohwi, stride=(2, 1), padding=1).astype(np.float64)
    hwc = convx.im2col(x, (3, 2), stride=(2, 1), padding=1, order="hwc").astype(np.float64)
    chw = convx.im2col(x, (3, 2), stride=(2, 1), padding=1, order="chw").astype(np.float64)
    w64 = w_ohwi.astype(np.float64)
    tol = 64 * np.finfo(dtype).eps
    np.testing.assert_allclose(hwc @ w64.reshape(5, -1).T, want, rtol=tol, atol=tol)
    np.testing.assert_allclose(chw @ w64.transpose(0, 3, 1, 2).reshape(5, -1).T, want,
                               rtol=tol, atol=tol)


def test_im2col_noncontiguous_and_unchanged(rng: np.random.Generator) -> None:
    big = uniform(rng, (3, 10, 12, 5), np.float32)
    x = big[::2, 1::2, ::-1, 1:4]
    before = x.copy()
    for order in ORDERS:
        np.testing.assert_array_equal(convx.im2col(x, (3, 2), padding=(1, 0), order=order),
                                      im2col_ref(x, (3, 2), padding=(1, 0), order=order))
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("order", ORDERS)
def test_im2col_larger_input(layout: str, order: str, isa: str,
                             rng: np.random.Generator) -> None:
    shape = (2, 33, 35, 17) if layout == "NHWC" else (2, 17, 33, 35)
    x = uniform(rng, shape, np.float32)
    kwargs: dict[str, Any] = {"stride": (1, 2), "padding": "same", "dilation": (2, 1),
                              "layout": layout, "order": order}
    np.testing.assert_array_equal(convx.im2col(x, 3, **kwargs), im2col_ref(x, 3, **kwargs))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_pad_larger_input(layout: str, rng: np.random.Generator) -> None:
    x = uniform(rng, (3, 40, 37, 19), np.float64)
    spec = ((5, 0), (3, 9))
    np.testing.assert_array_equal(convx.pad(x, spec, layout=layout), pad_ref(x, spec, layout))


def test_im2col_zero_padding_region_is_zero() -> None:
    x = np.ones((3, 3, 2), dtype=np.float32)
    cols = convx.im2col(x, 3, padding=1, order="hwc")
    assert cols.shape == (3, 3, 18)
    # The centre patch sees only the image; the corner patch sees 4 of 9 pixels.
    assert cols[1, 1].sum() == 18
    assert cols[0, 0].sum() == 8
    assert cols[2, 2].sum() == 8
    assert cols[0, 1].sum() == 12


# --------------------------------------------------------------------------------------
# pad
# --------------------------------------------------------------------------------------

PAD_SPECS = [0, 1, 3, (1, 2), (0, 3), ((1, 0), (0, 2)), ((2, 3), (4, 1)), ((0, 0), (0, 0))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("padding", PAD_SPECS)
@pytest.mark.parametrize("single", [False, True])
def test_pad_matches_numpy(padding: Any, layout: str, dtype: type, single: bool,
                           rng: np.random.Generator) -> None:
    shape = (4, 5, 3) if single else (2, 4, 5, 3)
    x = uniform(rng, shape, dtype)
    before = x.copy()
    got = convx.pad(x, padding, layout=layout)
    want = pad_ref(x, padding, layout)
    assert got.dtype == x.dtype
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(x, before)


def test_pad_default_layout_is_nhwc(rng: np.random.Generator) -> None:
    x = uniform(rng, (2, 3, 4, 5), np.float32)
    assert convx.pad(x, ((1, 0), (0, 2))).shape == (2, 4, 6, 5)
    assert convx.pad(x, ((1, 0), (0, 2)), layout="NCHW").shape == (2, 3, 5, 7)


def test_pad_does_not_alias_input(rng: np.random.Generator) -> None:
    x = uniform(rng, (1, 3, 3, 2), np.float64)
    y = convx.pad(x, 1)
    y[...] = 7.0
    assert not np.any(x == 7.0)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_pad_noncontiguous(layout: str, rng: np.random.Generator) -> None:
    big = uniform(rng, (3, 8, 9, 6), np.float32)
    x = big[::2, ::-2, 1:7, ::3]
    np.testing.assert_array_equal(convx.pad(x, ((2, 1), (0, 3)), layout=layout),
                                  pad_ref(x, ((2, 1), (0, 3)), layout))


def test_pad_then_valid_conv_equals_padded_conv(rng: np.random.Generator) -> None:
    x = uniform(rng, (2, 5, 6, 3), np.float64)
    weight = uniform(rng, (4, 3, 3, 3), np.float64)
    spec = ((2, 0), (1, 3))
    direct = convx.conv2d(x, weight, padding=spec)
    via_pad = convx.conv2d(convx.pad(x, spec), weight)
    np.testing.assert_allclose(direct, via_pad, rtol=1e-13, atol=1e-13)
