"""convx.conv_matrix: the layer as the explicit matrix of vec(Y) = W vec(X_pad) + b.

The oracle is convx.conv2d in float64; the row-by-row test rebuilds every entry of W
from the index formulas alone; the flip tests compare against scipy.signal.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import scipy.signal  # type: ignore[import-untyped, unused-ignore]
import scipy.sparse  # type: ignore[import-untyped, unused-ignore]
from hypothesis import assume, given
from hypothesis import strategies as st

import convx

F64 = npt.NDArray[np.float64]


def vec(a: npt.NDArray[Any], layout: str) -> npt.NDArray[Any]:
    """Column-major-per-channel flattening of one image: (r, c, k) -> k*H*W + c*H + r."""
    return a.ravel(order="F") if layout == "NHWC" else a.transpose(0, 2, 1).ravel()


def to_layout(hwc: npt.NDArray[Any], layout: str) -> npt.NDArray[Any]:
    return hwc if layout == "NHWC" else np.ascontiguousarray(hwc.transpose(2, 0, 1))


def weight_in(ohwi: npt.NDArray[Any], layout: str) -> npt.NDArray[Any]:
    return ohwi if layout == "NHWC" else np.ascontiguousarray(ohwi.transpose(0, 3, 1, 2))


def taps_inside(n_out: int, k: int, s: int, d: int, before: int, n_in: int) -> int:
    """How many (output index, kernel tap) pairs of one axis land inside the unpadded input."""
    return sum(1 for i in range(n_out) for u in range(k) if 0 <= i * s + u * d - before < n_in)


# --------------------------------------------------------------------------------------
# The identity against conv2d, over the parameter space
# --------------------------------------------------------------------------------------


@st.composite
def layers(draw: st.DrawFn) -> dict[str, Any]:
    groups = draw(st.integers(1, 3))
    k_h, k_w = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    s_h, s_w = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    d_h, d_w = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    pads = draw(st.tuples(*[st.integers(0, 2)] * 4))
    span_h, span_w = d_h * (k_h - 1) + 1, d_w * (k_w - 1) + 1
    # The dilated kernel must fit in the padded input.
    h = draw(st.integers(max(1, span_h - pads[0] - pads[1]), span_h + 5))
    w = draw(st.integers(max(1, span_w - pads[2] - pads[3]), span_w + 5))
    return {
        "hw": (h, w),
        "c_g": draw(st.integers(1, 3)),
        "c_out": groups * draw(st.integers(1, 3)),
        "k": (k_h, k_w),
        "stride": (s_h, s_w),
        "dilation": (d_h, d_w),
        "padding": ((pads[0], pads[1]), (pads[2], pads[3])),
        "groups": groups,
        "acts_on": draw(st.sampled_from(["padded", "input"])),
        "layout": draw(st.sampled_from(["NHWC", "NCHW"])),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


@given(layers())
def test_matrix_times_vec_x_plus_b_is_vec_y(cfg: dict[str, Any]) -> None:
    rng = np.random.default_rng(cfg["seed"])
    (h, w), (k_h, k_w), groups, layout = cfg["hw"], cfg["k"], cfg["groups"], cfg["layout"]
    c_in, c_out = cfg["c_g"] * groups, cfg["c_out"]
    x_hwc = rng.uniform(-1, 1, (h, w, c_in))
    ohwi = rng.uniform(-1, 1, (c_out, k_h, k_w, cfg["c_g"]))
    bias = rng.uniform(-1, 1, c_out)
    geometry = {k: cfg[k] for k in ("stride", "padding", "dilation", "groups")}
    x, weight = to_layout(x_hwc, layout), weight_in(ohwi, layout)

    y = convx.conv2d(x, weight, bias, layout=layout, **geometry)
    mat = convx.conv_matrix((h, w), weight, acts_on=cfg["acts_on"], layout=layout, **geometry)
    b = convx.conv_bias_vector((h, w), weight, bias, layout=layout, **geometry)

    (top, bottom), (left, right) = cfg["padding"]
    x_dom = (
        x_hwc
        if cfg["acts_on"] == "input"
        else np.pad(x_hwc, ((top, bottom), (left, right), (0, 0)))
    )
    h_out, w_out = (y.shape[0], y.shape[1]) if layout == "NHWC" else (y.shape[1], y.shape[2])
    assert isinstance(mat, scipy.sparse.csr_array)
    assert mat.shape == (h_out * w_out * c_out, x_dom.size)
    assert mat.dtype == np.float64
    assert mat.has_canonical_format
    got = mat @ x_dom.ravel(order="F") + b
    np.testing.assert_allclose(got, vec(y, layout), rtol=0, atol=1e-12)

    # nnz exactly as stated: every tap for the padded image, only the inside ones otherwise.
    (s_h, s_w), (d_h, d_w) = cfg["stride"], cfg["dilation"]
    if cfg["acts_on"] == "padded":
        want_nnz = h_out * w_out * c_out * k_h * k_w * cfg["c_g"]
    else:
        want_nnz = (
            c_out
            * cfg["c_g"]
            * taps_inside(h_out, k_h, s_h, d_h, top, h)
            * taps_inside(w_out, k_w, s_w, d_w, left, w)
        )
    assert mat.nnz == want_nnz

    # The other formats hold the same matrix.
    rows, cols, vals = convx.conv_matrix(
        (h, w), weight, acts_on=cfg["acts_on"], layout=layout, format="coo", **geometry
    )
    csr = mat.tocoo()
    np.testing.assert_array_equal(rows, csr.row)
    np.testing.assert_array_equal(cols, csr.col)
    np.testing.assert_array_equal(vals, csr.data)
    dense = convx.conv_matrix(
        (h, w), weight, acts_on=cfg["acts_on"], layout=layout, format="dense", **geometry
    )
    np.testing.assert_array_equal(dense, mat.toarray())


@given(layers())
def test_input_matrix_is_padded_matrix_without_border_columns(cfg: dict[str, Any]) -> None:
    rng = np.random.default_rng(cfg["seed"])
    (h, w), (k_h, k_w) = cfg["hw"], cfg["k"]
    ohwi = rng.uniform(-1, 1, (cfg["c_out"], k_h, k_w, cfg["c_g"]))
    geometry = {k: cfg[k] for k in ("stride", "padding", "dilation", "groups")}
    padded = convx.conv_matrix((h, w), ohwi, acts_on="padded", format="dense", **geometry)
    inside = convx.conv_matrix((h, w), ohwi, acts_on="input", format="dense", **geometry)
    (top, bottom), (left, right) = cfg["padding"]
    c_in = cfg["c_g"] * cfg["groups"]
    # Column index of every padded-image element, laid out as the padded image itself.
    col_of = np.arange(padded.shape[1]).reshape(
        (h + top + bottom, w + left + right, c_in), order="F"
    )
    interior = col_of[top : top + h, left : left + w, :].ravel(order="F")
    np.testing.assert_array_equal(inside, padded[:, interior])
    # Nothing is lost except entries that multiply the zero border.
    border = np.setdiff1d(np.arange(padded.shape[1]), interior)
    kept = np.count_nonzero(inside) + np.count_nonzero(padded[:, border])
    assert kept == np.count_nonzero(padded)


# --------------------------------------------------------------------------------------
# Every row, element by element, from the index formulas
# --------------------------------------------------------------------------------------

ROW_CASES = [
    # (h, w, c_in, c_out, k_h, k_w, stride, dilation, padding, groups)
    (4, 5, 1, 1, 2, 3, (1, 1), (1, 1), ((0, 0), (0, 0)), 1),
    (5, 4, 2, 3, 3, 2, (2, 1), (1, 1), ((1, 2), (0, 1)), 1),
    (6, 6, 4, 2, 2, 2, (1, 2), (2, 1), ((1, 1), (2, 0)), 2),
    (3, 7, 3, 3, 3, 3, (3, 2), (1, 2), ((2, 1), (1, 1)), 3),
    (1, 1, 2, 4, 3, 3, (1, 1), (1, 1), ((1, 1), (1, 1)), 2),
]


@pytest.mark.parametrize("case", ROW_CASES)
@pytest.mark.parametrize("acts_on", ["padded", "input"])
def test_each_row_holds_one_filter_at_one_patch(case: tuple[Any, ...], acts_on: str) -> None:
    h, w, c_in, c_out, k_h, k_w, stride, dilation, padding, groups = case
    rng = np.random.default_rng(7)
    c_g, m_g = c_in // groups, c_out // groups
    # Distinct values, so a weight in the wrong place cannot match by accident.
    ohwi = rng.permutation(np.arange(1, c_out * k_h * k_w * c_g + 1)).astype(np.float64)
    ohwi = ohwi.reshape(c_out, k_h, k_w, c_g)
    mat = convx.conv_matrix(
        (h, w),
        ohwi,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        acts_on=acts_on,
    )
    (top, bottom), (left, right) = padding
    h_pad, w_pad = h + top + bottom, w + left + right
    h_out = (h_pad - dilation[0] * (k_h - 1) - 1) // stride[0] + 1
    w_out = (w_pad - dilation[1] * (k_w - 1) - 1) // stride[1] + 1
    assert mat.shape[0] == h_out * w_out * c_out
    for m in range(c_out):
        g = m // m_g
        for j in range(w_out):
            for i in range(h_out):
                want: dict[int, float] = {}
                for q in range(c_g):
                    for v in range(k_w):
                        for u in range(k_h):
                            r = i * stride[0] + u * dilation[0]
                            c = j * stride[1] + v * dilation[1]
                            k = g * c_g + q
                            if acts_on == "padded":
                                col = k * h_pad * w_pad + c * h_pad + r
                            elif top <= r < top + h and left <= c < left + w:
                                col = k * h * w + (c - left) * h + (r - top)
                            else:
                                continue
                            want[col] = float(ohwi[m, u, v, q])
                row = m * h_out * w_out + j * h_out + i
                lo, hi = mat.indptr[row], mat.indptr[row + 1]
                got = dict(zip(mat.indices[lo:hi].tolist(), mat.data[lo:hi].tolist()))
                assert got == want, (m, i, j)
                if acts_on == "padded":
                    assert hi - lo == k_h * k_w * c_g


def test_large_layer_builds_with_exact_nnz() -> None:
    # 64x64x16 -> 16 channels, 3x3, padding 1: about 9.4 million entries.
    rng = np.random.default_rng(0)
    weight = rng.uniform(-1, 1, (16, 3, 3, 16))
    x = rng.uniform(-1, 1, (64, 64, 16))
    mat = convx.conv_matrix(64, weight, padding=1)
    assert mat.shape == (64 * 64 * 16, 66 * 66 * 16)
    assert mat.nnz == 64 * 64 * 16 * 3 * 3 * 16
    assert np.all(np.diff(mat.indptr) == 3 * 3 * 16)
    got = mat @ np.pad(x, ((1, 1), (1, 1), (0, 0))).ravel(order="F")
    np.testing.assert_allclose(
        got, convx.conv2d(x, weight, padding=1).ravel(order="F"), rtol=0, atol=1e-12
    )
    del mat  # keep the peak at one 9.4M-entry matrix
    inside = convx.conv_matrix(64, weight, padding=1, acts_on="input")
    assert inside.shape == (64 * 64 * 16, 64 * 64 * 16)
    # Per axis, 64 outputs x 3 taps minus the two that land on the border.
    assert inside.nnz == 16 * 16 * (64 * 3 - 2) ** 2


# --------------------------------------------------------------------------------------
# W.T: the transposed convolution, and the input gradient
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_transpose_is_the_adjoint_of_conv2d(layout: str) -> None:
    rng = np.random.default_rng(3)
    h, w, c_in, c_out, groups = 7, 6, 4, 6, 2
    ohwi = rng.uniform(-1, 1, (c_out, 3, 2, c_in // groups))
    weight = weight_in(ohwi, layout)
    geometry: dict[str, Any] = {
        "stride": (2, 1),
        "padding": ((1, 0), (2, 1)),
        "dilation": (1, 2),
        "groups": groups,
    }
    mat = convx.conv_matrix((h, w), weight, acts_on="input", layout=layout, **geometry)
    dx = to_layout(rng.uniform(-1, 1, (h, w, c_in)), layout)
    y = convx.conv2d(dx, weight, layout=layout, **geometry)
    dy = rng.uniform(-1, 1, y.shape)
    # <dY, conv(dX)> == <W.T dY, dX>: W.T is the gradient of the layer w.r.t. its input.
    lhs = float(np.dot(vec(dy, layout), vec(y, layout)))
    rhs = float(np.dot(mat.T @ vec(dy, layout), vec(dx, layout)))
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-12)


# --------------------------------------------------------------------------------------
# Formats, dtypes and errors
# --------------------------------------------------------------------------------------


def test_float32_stays_float32_in_every_format() -> None:
    weight = np.ones((2, 3, 3, 1), dtype=np.float32)
    assert convx.conv_matrix(5, weight).dtype == np.float32
    rows, cols, vals = convx.conv_matrix(5, weight, format="coo")
    assert rows.dtype == np.int64 and cols.dtype == np.int64 and vals.dtype == np.float32
    assert convx.conv_matrix(5, weight, format="dense").dtype == np.float32
    assert convx.conv_bias_vector(5, weight, np.ones(2)).dtype == np.float32


def test_flip_gives_the_matrix_of_flipped_conv2d() -> None:
    rng = np.random.default_rng(11)
    weight = rng.uniform(-1, 1, (3, 3, 2, 2))
    x = rng.uniform(-1, 1, (6, 5, 2))
    mat = convx.conv_matrix((6, 5), weight, padding=1, acts_on="input", flip=True)
    y = convx.conv2d(x, weight, padding=1, flip=True)
    np.testing.assert_allclose(mat @ x.ravel(order="F"), y.ravel(order="F"), atol=1e-12)


def test_bias_vector_repeats_each_bias_over_its_plane() -> None:
    weight = np.zeros((3, 2, 2, 1))
    b = convx.conv_bias_vector((4, 5), weight, np.array([1.0, 2.0, 3.0]), padding="same")
    np.testing.assert_array_equal(b, np.repeat([1.0, 2.0, 3.0], 4 * 5))
    np.testing.assert_array_equal(convx.conv_bias_vector((4, 5), weight, None), np.zeros(36))
    with pytest.raises(ValueError, match="bias"):
        convx.conv_bias_vector((4, 5), weight, np.ones(2))


def test_string_padding_matches_conv2d() -> None:
    rng = np.random.default_rng(5)
    weight = rng.uniform(-1, 1, (2, 3, 2, 3))
    x = rng.uniform(-1, 1, (5, 7, 3))
    for padding in ("valid", "same", "same_lower"):
        kw: dict[str, Any] = {"stride": 2, "padding": padding}
        mat = convx.conv_matrix((5, 7), weight, acts_on="input", **kw)
        got = mat @ x.ravel(order="F") + convx.conv_bias_vector((5, 7), weight, None, **kw)
        want = convx.conv2d(x, weight, **kw).ravel(order="F")
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_dense_refuses_to_exceed_its_limit() -> None:
    weight = np.ones((4, 3, 3, 4))
    with pytest.raises(ValueError, match="max_dense_bytes"):
        convx.conv_matrix(32, weight, format="dense", max_dense_bytes=1 << 20)
    # 4x4x4 input, 3x3 kernel: 2*2*4 rows, 4*4*4 columns; exactly at the limit is allowed.
    small = convx.conv_matrix(4, weight, format="dense", max_dense_bytes=16 * 64 * 8)
    assert small.shape == (16, 64)
    with pytest.raises(ValueError, match="max_dense_bytes"):
        convx.conv_matrix(4, weight, format="dense", max_dense_bytes=16 * 64 * 8 - 1)


def test_csr_without_scipy_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "scipy.sparse", None)
    with pytest.raises(ImportError, match="pip install scipy"):
        convx.conv_matrix(4, np.ones((1, 3, 3, 1)))
    rows, _, _ = convx.conv_matrix(4, np.ones((1, 3, 3, 1)), format="coo")
    assert rows.size == 2 * 2 * 9


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"acts_on": "output"}, ValueError, "acts_on"),
        ({"format": "csc"}, ValueError, "format"),
        ({"layout": "HWCN"}, ValueError, "layout"),
        ({"groups": 0}, ValueError, "groups"),
        ({"groups": 2}, ValueError, "groups"),  # 3 filters do not split into 2 groups
        ({"stride": 0}, ValueError, "stride"),
        ({"padding": -1}, ValueError, "padding"),
        ({"dilation": 4}, ValueError, "kernel"),  # dilated extent 9 > 5
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        convx.conv_matrix(5, np.ones((3, 3, 3, 1)), **kwargs)


def test_bad_weights_are_named() -> None:
    with pytest.raises(ValueError, match="weight"):
        convx.conv_matrix(5, np.ones((3, 3, 3)))
    with pytest.raises(TypeError, match="weight"):
        convx.conv_matrix(5, np.ones((1, 3, 3, 1), dtype=np.int64))
    with pytest.raises(ValueError, match="kernel"):
        convx.conv_matrix(2, np.ones((1, 3, 3, 1)))


# --------------------------------------------------------------------------------------
# Cross-correlation (flip=False) and true convolution (flip=True) against scipy.signal
# --------------------------------------------------------------------------------------


@given(
    h=st.integers(1, 8),
    w=st.integers(1, 8),
    k_h=st.integers(1, 4),
    k_w=st.integers(1, 4),
    pads=st.tuples(*[st.integers(0, 3)] * 4),
    seed=st.integers(0, 2**32 - 1),
)
def test_flip_matches_scipy_convolve2d_and_correlate2d(
    h: int, w: int, k_h: int, k_w: int, pads: tuple[int, int, int, int], seed: int
) -> None:
    top, bottom, left, right = pads
    assume(h + top + bottom >= k_h and w + left + right >= k_w)
    rng = np.random.default_rng(seed)
    image: F64 = rng.uniform(-1, 1, (h, w))
    kernel: F64 = rng.uniform(-1, 1, (k_h, k_w))
    padding = ((top, bottom), (left, right))
    padded = np.pad(image, padding)
    x, weight = image[:, :, None], kernel[None, :, :, None]

    corr = convx.conv2d(x, weight, padding=padding)[:, :, 0]
    np.testing.assert_allclose(
        corr, scipy.signal.correlate2d(padded, kernel, mode="valid"), rtol=0, atol=1e-12
    )
    conv = convx.conv2d(x, weight, padding=padding, flip=True)[:, :, 0]
    np.testing.assert_allclose(
        conv, scipy.signal.convolve2d(padded, kernel, mode="valid"), rtol=0, atol=1e-12
    )
