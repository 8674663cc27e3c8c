"""convx.conv2d_backward: the gradients of conv2d with respect to x, weight and bias.

The oracles, from the definition outwards:

* finite differences of L = sum(conv2d(x, w, b) * g) through convx.conv2d in float64.
  L is linear in each argument, so a central difference with step h = 1 is exact up to
  rounding and the comparison can be tight;
* the explicit matrix of the layer (convx.conv_matrix with acts_on="input"): dx = W^T g;
* the linearity of L in w: dw[i] = L(x, e_i) for each unit weight e_i;
* backward_ref below, a float64 NumPy loop over output pixels (checked itself against the
  finite differences), for the dtype, ISA and thread-count tests.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import (
    as_pair,
    assert_close,
    conv2d_ref,
    output_size,
    resolve_padding,
    to_nhwc,
    uniform,
    weight_to_ohwi,
)

import convx

DTYPES = [np.float32, np.float64]
LAYOUTS = ["NHWC", "NCHW"]
NEEDS = ("input", "weight", "bias")
GEOMETRY = ("stride", "padding", "dilation", "groups", "layout")


def x_shape(layout: str, n: int | None, h: int, w: int, c: int) -> tuple[int, ...]:
    spatial = (h, w, c) if layout == "NHWC" else (c, h, w)
    return spatial if n is None else (n, *spatial)


def w_shape(layout: str, c_out: int, k_h: int, k_w: int, c_g: int) -> tuple[int, ...]:
    return (c_out, k_h, k_w, c_g) if layout == "NHWC" else (c_out, c_g, k_h, k_w)


def backward_ref(grad_out: np.ndarray, x: np.ndarray, weight: np.ndarray, *,
                 stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: int = 1,
                 layout: str = "NHWC") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dx, dw, db) in float64, in the shapes and layout of x, weight and (C_out,).

    With Y[i, j, m] = b[m] + sum_{u,v,c} X_pad[i*s_h + u*d_h, j*s_w + v*d_w, g*C_g + c]
    K[m, u, v, c], each output pixel (i, j) adds G[i, j, m] * K[m] to the patch of dX_pad it
    read and G[i, j, m] * patch to dK[m]; db[m] = sum G[..., m].
    """
    single = np.asarray(x).ndim == 3
    xs = to_nhwc(np.asarray(x, dtype=np.float64), layout)
    gs = to_nhwc(np.asarray(grad_out, dtype=np.float64), layout)
    ws = weight_to_ohwi(np.asarray(weight, dtype=np.float64), layout)
    n, h, w, _ = xs.shape
    c_out, k_h, k_w, c_g = ws.shape
    m_g = c_out // groups
    s_h, s_w = as_pair(stride)
    d_h, d_w = as_pair(dilation)
    (top, bottom), (left, right) = resolve_padding(padding, (h, w), (k_h, k_w),
                                                   (s_h, s_w), (d_h, d_w))
    x_pad = np.pad(xs, [(0, 0), (top, bottom), (left, right), (0, 0)])
    h_out = output_size(h, k_h, s_h, top, bottom, d_h)
    w_out = output_size(w, k_w, s_w, left, right, d_w)
    assert gs.shape == (n, h_out, w_out, c_out)
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(ws)
    for i in range(h_out):
        for j in range(w_out):
            rows = slice(i * s_h, i * s_h + (k_h - 1) * d_h + 1, d_h)
            cols = slice(j * s_w, j * s_w + (k_w - 1) * d_w + 1, d_w)
            for grp in range(groups):
                chans = slice(grp * c_g, (grp + 1) * c_g)
                filters = slice(grp * m_g, (grp + 1) * m_g)
                g_pix = gs[:, i, j, filters]                              # (n, m_g)
                dx_pad[:, rows, cols, chans] += np.tensordot(g_pix, ws[filters], axes=1)
                dw[filters] += np.tensordot(g_pix, x_pad[:, rows, cols, chans], axes=(0, 0))
    dx = dx_pad[:, top:top + h, left:left + w]
    if layout == "NCHW":
        dx = dx.transpose(0, 3, 1, 2)
        dw = dw.transpose(0, 3, 1, 2)
    return (dx[0] if single else dx), dw, gs.sum(axis=(0, 1, 2))


def grad_fan_ins(weight: np.ndarray, grad_out: np.ndarray, groups: int,
                 layout: str) -> tuple[int, int]:
    """Lengths of the sums behind one element: of dx (k_h*k_w*C_out/groups terms), and of
    dw and db (one term per image and output pixel)."""
    c_out = weight.shape[0]
    k_h, k_w = weight.shape[1:3] if layout == "NHWC" else weight.shape[2:4]
    return int(k_h * k_w * c_out // groups), int(grad_out.size // c_out)


def call_backward(g: np.ndarray, x: np.ndarray, weight: np.ndarray, geo: dict[str, Any],
                  **kwargs: Any) -> tuple[Any, Any, Any]:
    result = convx.conv2d_backward(g, x, weight, **geo, **kwargs)
    assert isinstance(result, tuple) and len(result) == 3
    return result


# --------------------------------------------------------------------------------------
# Finite differences
# --------------------------------------------------------------------------------------

def loss(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, g: np.ndarray,
         geo: dict[str, Any]) -> float:
    return float(np.sum(convx.conv2d(x, weight, bias, **geo) * g))


def fd_input(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, g: np.ndarray,
             geo: dict[str, Any], h: float = 1.0) -> np.ndarray:
    """Central differences of L in every element of x, in two conv2d calls: the x.size
    perturbed copies of x go through conv2d as one batch of images."""
    p = x.size
    steps = h * np.eye(p).reshape((p, *x.shape))
    image = x.shape[-3:]
    y_plus = convx.conv2d((x + steps).reshape((-1, *image)), weight, bias, **geo)
    y_minus = convx.conv2d((x - steps).reshape((-1, *image)), weight, bias, **geo)
    diff = (y_plus - y_minus).reshape((p, *g.shape))
    return (np.tensordot(diff, g, axes=g.ndim) / (2 * h)).reshape(x.shape)


def fd_elementwise(arg: np.ndarray, evaluate: Any, h: float = 1.0) -> np.ndarray:
    """Central differences of evaluate(arg) in each element of arg."""
    grad = np.empty_like(arg)
    for idx in np.ndindex(arg.shape):
        plus, minus = arg.copy(), arg.copy()
        plus[idx] += h
        minus[idx] -= h
        grad[idx] = (evaluate(plus) - evaluate(minus)) / (2 * h)
    return grad


def fd_gradients(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, g: np.ndarray,
                 geo: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dx = fd_input(x, weight, bias, g, geo)
    dw = fd_elementwise(weight, lambda w: loss(x, w, bias, g, geo))
    db = fd_elementwise(bias, lambda b: loss(x, weight, b, g, geo))
    return dx, dw, db


def assert_grad(got: Any, want: np.ndarray, name: str) -> None:
    """float64 gradient against an exact-up-to-rounding oracle: shape, dtype and ~1e-9."""
    assert isinstance(got, np.ndarray), f"{name}: {type(got)}"
    assert got.dtype == np.float64, f"{name}: dtype {got.dtype}"
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, err_msg=name)


small_pad = st.integers(0, 2)
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
def backward_problems(draw: st.DrawFn) -> dict[str, Any]:
    """Small geometries over every parameter: plain, grouped and depthwise."""
    kind = draw(st.sampled_from(["plain", "plain", "grouped", "depthwise"]))
    if kind == "plain":
        groups, c_g, m_g = 1, draw(st.integers(1, 3)), draw(st.integers(1, 3))
    elif kind == "grouped":
        groups, c_g, m_g = draw(st.integers(2, 3)), draw(st.integers(1, 2)), draw(
            st.integers(1, 2))
    else:
        groups, c_g, m_g = draw(st.integers(1, 4)), 1, draw(st.integers(1, 2))
    k_h, k_w = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dilation = draw(st.one_of(st.integers(1, 2), st.tuples(st.integers(1, 2),
                                                           st.integers(1, 2))))
    padding = draw(padding_st)
    d_h, d_w = as_pair(dilation)
    min_h = _min_extent(padding, 0, (k_h - 1) * d_h + 1)
    min_w = _min_extent(padding, 1, (k_w - 1) * d_w + 1)
    return {
        "layout": draw(st.sampled_from(LAYOUTS)), "n": draw(st.sampled_from([None, 1, 2])),
        "groups": groups, "c_in": c_g * groups, "c_out": m_g * groups, "k": (k_h, k_w),
        "h": draw(st.integers(min_h, min_h + 4)), "w": draw(st.integers(min_w, min_w + 4)),
        "stride": draw(st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3),
                                                              st.integers(1, 3)))),
        "dilation": dilation, "padding": padding, "seed": draw(st.integers(0, 2**32 - 1)),
    }


def make_problem(p: dict[str, Any], dtype: type = np.float64
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """x, weight, bias, a random grad_out of the output's shape, and the geometry."""
    rng = np.random.default_rng(p["seed"])
    layout = p["layout"]
    geo = {key: p[key] for key in GEOMETRY}
    x = uniform(rng, x_shape(layout, p["n"], p["h"], p["w"], p["c_in"]), dtype)
    k_h, k_w = p["k"]
    weight = uniform(rng, w_shape(layout, p["c_out"], k_h, k_w, p["c_in"] // p["groups"]),
                     dtype)
    bias = uniform(rng, (p["c_out"],), dtype)
    y_shape = conv2d_ref(x, weight, bias, **geo).shape
    g = uniform(rng, y_shape, dtype)
    return x, weight, bias, g, geo


@given(problem=backward_problems())
def test_gradients_match_finite_differences(problem: dict[str, Any]) -> None:
    x, weight, bias, g, geo = make_problem(problem)
    dx, dw, db = call_backward(g, x, weight, geo)
    fd_dx, fd_dw, fd_db = fd_gradients(x, weight, bias, g, geo)
    assert_grad(dx, fd_dx, "dx")
    assert_grad(dw, fd_dw, "dw")
    assert_grad(db, fd_db, "db")
    # L without the bias is linear in x and in w: sum(y * g) = <dx, x> = <dw, w>.
    # Each side sums the same products x*w*g; bound the rounding by the sum of |products|.
    bilinear = float(np.sum(convx.conv2d(x, weight, **geo) * g))
    magnitude = float(np.sum(conv2d_ref(np.abs(x), np.abs(weight), **geo) * np.abs(g)))
    bound = 1e-13 * (weight.size + g.size) * magnitude
    assert abs(float(np.sum(dx * x)) - bilinear) <= bound
    assert abs(float(np.sum(dw * weight)) - bilinear) <= bound


def test_backward_reference_matches_finite_differences() -> None:
    # Guards the NumPy oracle used by the dtype, ISA and thread tests below.
    for seed, padding in enumerate([((2, 0), (1, 2)), "same", 0]):
        problem = {"layout": LAYOUTS[seed % 2], "n": [None, 2, 1][seed], "groups": 2,
                   "c_in": 4, "c_out": 6, "k": (3, 2), "h": 7, "w": 6, "stride": (2, 1),
                   "dilation": (1, 2), "padding": padding, "seed": seed}
        x, weight, bias, g, geo = make_problem(problem)
        for got, want, name in zip(backward_ref(g, x, weight, **geo),
                                   fd_gradients(x, weight, bias, g, geo), NEEDS):
            assert_grad(got, want, name)


def test_gradient_check_catches_a_wrong_value() -> None:
    # The comparison used above must notice an error far smaller than any indexing bug.
    problem = {"layout": "NHWC", "n": 2, "groups": 1, "c_in": 2, "c_out": 3, "k": (2, 2),
               "h": 5, "w": 4, "stride": 2, "dilation": 1, "padding": 1, "seed": 3}
    x, weight, bias, g, geo = make_problem(problem)
    dx, dw, db = backward_ref(g, x, weight, **geo)
    fd_dx, fd_dw, fd_db = fd_gradients(x, weight, bias, g, geo)
    for got, want in ((dx, fd_dx), (dw, fd_dw), (db, fd_db)):
        wrong = got.copy()
        wrong.flat[wrong.size // 2] += 1e-6
        with pytest.raises(AssertionError):
            assert_grad(wrong, want, "wrong")
    swapped = dx.copy()
    swapped[:, 0], swapped[:, 1] = dx[:, 1], dx[:, 0]
    with pytest.raises(AssertionError):
        assert_grad(swapped, fd_dx, "dx with two rows swapped")


# --------------------------------------------------------------------------------------
# The definitions: dx = W^T g with the layer's matrix, dw by linearity, db = sum g
# --------------------------------------------------------------------------------------

def vec(a: np.ndarray, layout: str) -> np.ndarray:
    """conv_matrix's vectorisation of one image: (r, c, k) -> k*H*W + c*H + r."""
    return a.ravel(order="F") if layout == "NHWC" else a.transpose(0, 2, 1).ravel()


def unvec(v: np.ndarray, shape: tuple[int, ...], layout: str) -> np.ndarray:
    if layout == "NHWC":
        return v.reshape(shape, order="F")
    c, h, w = shape
    return v.reshape(c, w, h).transpose(0, 2, 1)


DEFINITION_CASES = [
    # (n, h, w, c_in, c_out, k, stride, padding, dilation, groups)
    (None, 6, 5, 3, 4, (3, 3), 1, 1, 1, 1),
    (2, 7, 7, 2, 3, (1, 1), 3, 0, 1, 1),
    (1, 9, 8, 4, 6, (3, 2), (2, 3), ((2, 0), (1, 3)), 1, 2),
    (2, 8, 9, 3, 3, (3, 3), 2, "same", (2, 1), 3),
    (None, 5, 10, 6, 12, (2, 3), 1, "same_lower", 2, 6),
    (3, 4, 4, 2, 2, (3, 3), 1, "valid", 1, 1),
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", DEFINITION_CASES, ids=lambda c: "-".join(map(str, c)))
def test_input_gradient_is_transposed_conv_matrix(case: tuple[Any, ...], layout: str,
                                                  rng: np.random.Generator) -> None:
    n, h, w, c_in, c_out, k, stride, padding, dilation, groups = case
    geo = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups,
           "layout": layout}
    x = uniform(rng, x_shape(layout, n, h, w, c_in), np.float64)
    weight = uniform(rng, w_shape(layout, c_out, *k, c_in // groups), np.float64)
    g = uniform(rng, convx.conv2d(x, weight, **geo).shape, np.float64)
    dx, _, _ = call_backward(g, x, weight, geo)
    mat = convx.conv_matrix((h, w), weight, acts_on="input", format="dense", **geo)
    if n is None:
        want = unvec(mat.T @ vec(g, layout), x.shape, layout)
    else:
        want = np.stack([unvec(mat.T @ vec(gi, layout), xi.shape, layout)
                         for xi, gi in zip(x, g)])
    assert_grad(dx, want, "dx")


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", DEFINITION_CASES, ids=lambda c: "-".join(map(str, c)))
def test_weight_and_bias_gradients_by_linearity(case: tuple[Any, ...], layout: str,
                                                rng: np.random.Generator) -> None:
    # L(w) = sum(conv2d(x, w) * g) is linear in w, so dw[i] = L(e_i) exactly.
    n, h, w, c_in, c_out, k, stride, padding, dilation, groups = case
    geo = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups,
           "layout": layout}
    x = uniform(rng, x_shape(layout, n, h, w, c_in), np.float64)
    weight = uniform(rng, w_shape(layout, c_out, *k, c_in // groups), np.float64)
    g = uniform(rng, convx.conv2d(x, weight, **geo).shape, np.float64)
    _, dw, db = call_backward(g, x, weight, geo)
    want = np.empty_like(weight)
    for idx in np.ndindex(weight.shape):
        unit = np.zeros_like(weight)
        unit[idx] = 1.0
        want[idx] = np.sum(convx.conv2d(x, unit, **geo) * g)
    assert_grad(dw, want, "dw")
    channel_axis = -1 if layout == "NHWC" else (-3)
    want_db = np.moveaxis(g, channel_axis, -1).reshape(-1, c_out).sum(axis=0)
    assert_grad(db, want_db, "db")


# --------------------------------------------------------------------------------------
# needs=, dtypes, single images
# --------------------------------------------------------------------------------------

SUBSETS = [s for r in (1, 2, 3) for s in itertools.combinations(NEEDS, r)]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("needs", SUBSETS, ids="+".join)
def test_needs_returns_only_what_was_asked(needs: tuple[str, ...], layout: str,
                                           rng: np.random.Generator) -> None:
    geo = {"stride": 2, "padding": ((1, 0), (0, 1)), "dilation": 1, "groups": 2,
           "layout": layout}
    x = uniform(rng, x_shape(layout, 2, 7, 6, 4), np.float64)
    weight = uniform(rng, w_shape(layout, 6, 3, 3, 2), np.float64)
    g = uniform(rng, convx.conv2d(x, weight, **geo).shape, np.float64)
    full = call_backward(g, x, weight, geo)
    want = backward_ref(g, x, weight, **geo)
    for got, expected in zip(full, want):
        assert_close(got, expected, np.float64, 64)
    for order in (needs, tuple(reversed(needs))):
        part = call_backward(g, x, weight, geo, needs=order)
        for got, whole, name in zip(part, full, NEEDS):
            if name in needs:
                # A gradient does not depend on which others were asked for.
                assert isinstance(got, np.ndarray), name
                np.testing.assert_array_equal(got, whole, err_msg=name)
            else:
                assert got is None, f"{name} returned though needs={order!r}"


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [None, 1, 3])
def test_dtypes_shapes_and_layouts(n: int | None, dtype: type, layout: str,
                                   rng: np.random.Generator) -> None:
    geo = {"stride": (1, 2), "padding": "same", "dilation": (2, 1), "groups": 1,
           "layout": layout}
    x = uniform(rng, x_shape(layout, n, 9, 11, 5), dtype)
    weight = uniform(rng, w_shape(layout, 7, 3, 3, 5), dtype)
    g = uniform(rng, convx.conv2d(x, weight, **geo).shape, dtype)
    dx, dw, db = call_backward(g, x, weight, geo)
    want_dx, want_dw, want_db = backward_ref(g, x, weight, **geo)
    taps, per_channel = grad_fan_ins(weight, g, 1, layout)
    assert_close(dx, want_dx, dtype, taps)
    assert_close(dw, want_dw, dtype, per_channel)
    assert_close(db, want_db, dtype, per_channel)
    assert dx.shape == x.shape and dw.shape == weight.shape and db.shape == (7,)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_single_image_equals_batch_of_one(layout: str, rng: np.random.Generator) -> None:
    geo = {"stride": 2, "padding": ((0, 2), (1, 0)), "dilation": 1, "groups": 3,
           "layout": layout}
    x = uniform(rng, x_shape(layout, None, 8, 7, 6), np.float64)
    weight = uniform(rng, w_shape(layout, 6, 2, 3, 2), np.float64)
    g = uniform(rng, convx.conv2d(x, weight, **geo).shape, np.float64)
    single = call_backward(g, x, weight, geo)
    batched = call_backward(g[None], x[None], weight, geo)
    assert single[0].shape == x.shape
    np.testing.assert_allclose(single[0], batched[0][0], rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(single[1], batched[1], rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(single[2], batched[2], rtol=1e-13, atol=1e-13)


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------

_rng = np.random.default_rng(16)
X = _rng.uniform(-1, 1, (2, 6, 6, 4))
W = _rng.uniform(-1, 1, (6, 3, 3, 4))
G = _rng.uniform(-1, 1, (2, 4, 4, 6))
DTYPE_MSG = r"float32|float64|dtype"


def _bw(**kwargs: Any) -> Any:
    args = {"grad_out": G, "x": X, "weight": W}
    args.update(kwargs)
    g, x, weight = args.pop("grad_out"), args.pop("x"), args.pop("weight")
    return lambda: convx.conv2d_backward(g, x, weight, **args)


BACKWARD_ERRORS = [
    ("grad_out_taller", _bw(grad_out=G[:, :3].copy()), ValueError, r"grad_out"),
    ("grad_out_narrower", _bw(grad_out=np.zeros((2, 4, 5, 6))), ValueError, r"grad_out"),
    ("grad_out_channels", _bw(grad_out=G[..., :5].copy()), ValueError, r"grad_out"),
    ("grad_out_batch", _bw(grad_out=G[:1].copy()), ValueError, r"grad_out"),
    ("grad_out_single_image", _bw(grad_out=G[0].copy()), ValueError, r"grad_out"),
    ("grad_out_5d", _bw(grad_out=G[None]), ValueError, r"grad_out"),
    ("grad_out_for_stride_1", _bw(stride=2), ValueError, r"grad_out"),
    ("grad_out_nchw_given_nhwc", _bw(x=np.ascontiguousarray(X.transpose(0, 3, 1, 2)),
                                     weight=np.ascontiguousarray(W.transpose(0, 3, 1, 2)),
                                     layout="NCHW"), ValueError, r"grad_out"),
    ("grad_out_f32", _bw(grad_out=G.astype(np.float32)), (TypeError, ValueError), DTYPE_MSG),
    ("x_f32", _bw(x=X.astype(np.float32)), (TypeError, ValueError), DTYPE_MSG),
    ("weight_f32", _bw(weight=W.astype(np.float32)), (TypeError, ValueError), DTYPE_MSG),
    ("x_int", _bw(x=X.astype(np.int64)), TypeError, DTYPE_MSG),
    ("grad_out_int", _bw(grad_out=G.astype(np.int32)), TypeError, DTYPE_MSG),
    ("grad_out_complex", _bw(grad_out=G.astype(np.complex128)), TypeError, DTYPE_MSG),
    ("needs_unknown", _bw(needs=("input", "gradient")), ValueError, r"needs"),
    ("needs_capitalised", _bw(needs=("Input",)), ValueError, r"needs"),
    ("needs_x", _bw(needs=("x",)), ValueError, r"needs"),
    ("needs_int", _bw(needs=(1,)), (TypeError, ValueError), r"needs"),
    ("activation", _bw(activation="relu"), TypeError, r"activation"),
    ("bias_is_not_an_argument", _bw(bias=np.zeros(6)), TypeError, r"bias"),
    ("layout_unknown", _bw(layout="NWHC"), ValueError, r"layout"),
    ("stride_zero", _bw(stride=0), ValueError, r"stride"),
    ("dilation_negative", _bw(dilation=(1, -1)), ValueError, r"dilation"),
    ("padding_unknown", _bw(padding="full"), ValueError, r"padding"),
    ("padding_negative", _bw(padding=-1), ValueError, r"padding"),
    ("groups_zero", _bw(groups=0), ValueError, r"groups"),
    ("groups_not_dividing", _bw(groups=4), ValueError, r"groups"),
    ("weight_channels", _bw(weight=W[..., :3].copy()), ValueError, r"(?i)weight|channel"),
    ("weight_3d", _bw(weight=W[0]), ValueError, r"weight"),
    ("x_2d", _bw(x=X[0, :, :, 0]), ValueError, r"\bx\b"),
    ("kernel_too_large", _bw(weight=np.zeros((6, 7, 3, 4))), ValueError,
     r"(?i)kernel|larger|input"),
]


@pytest.mark.parametrize(("call", "exc", "pattern"),
                         [pytest.param(c, e, p, id=i) for i, c, e, p in BACKWARD_ERRORS])
def test_backward_rejects(call: Any, exc: Any, pattern: str) -> None:
    _bw()()  # the unmodified arguments are valid
    with pytest.raises(exc, match=pattern):
        call()


# --------------------------------------------------------------------------------------
# Exact zeros where no patch reads the input
# --------------------------------------------------------------------------------------

def read_indices(n_in: int, n_out: int, k: int, s: int, d: int, before: int) -> set[int]:
    """Input indices of one axis that some (output index, kernel tap) pair reads."""
    return {i * s + u * d - before for i in range(n_out) for u in range(k)} & set(range(n_in))


ZERO_CASES = [
    # (h, w, k, stride, padding, dilation)
    (7, 7, (1, 1), 3, 0, 1),        # rows and columns 0, 3, 6 read
    (8, 10, (2, 1), (3, 4), 0, 1),  # trailing rows never read
    (9, 9, (2, 2), 4, 0, 2),        # dilation and stride leave gaps
    (10, 7, (1, 3), (3, 2), ((1, 0), (0, 0)), 1),
    (11, 6, (3, 1), (5, 3), ((0, 2), (1, 0)), (1, 1)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", ZERO_CASES, ids=lambda c: "-".join(map(str, c)))
def test_unread_inputs_get_exact_zeros(case: tuple[Any, ...], layout: str, dtype: type,
                                       rng: np.random.Generator) -> None:
    h, w, (k_h, k_w), stride, padding, dilation = case
    geo = {"stride": stride, "padding": padding, "dilation": dilation, "groups": 1,
           "layout": layout}
    x = uniform(rng, x_shape(layout, 2, h, w, 3), dtype)
    weight = uniform(rng, w_shape(layout, 4, k_h, k_w, 3), dtype, 0.5, 1.0)
    g = uniform(rng, convx.conv2d(x, weight, **geo).shape, dtype, 0.5, 1.0)
    dx, _, _ = call_backward(g, x, weight, geo, needs=("input",))
    (top, _), (left, _) = resolve_padding(padding, (h, w), (k_h, k_w))
    s_h, s_w = as_pair(stride)
    d_h, d_w = as_pair(dilation)
    h_out, w_out = (g.shape[1], g.shape[2]) if layout == "NHWC" else (g.shape[2], g.shape[3])
    rows = read_indices(h, h_out, k_h, s_h, d_h, top)
    cols = read_indices(w, w_out, k_w, s_w, d_w, left)
    unread = np.ones((h, w), dtype=bool)
    unread[np.ix_(sorted(rows), sorted(cols))] = False
    assert unread.any() and not unread.all()
    dx_hw = to_nhwc(dx, layout)                             # (n, h, w, c)
    assert np.all(dx_hw[:, unread] == 0.0), "gradient of an input no patch reads"
    # Positive weights and grad_out: every read input has a nonzero gradient.
    assert np.all(dx_hw[:, ~unread] > 0.0)
    taps, _ = grad_fan_ins(weight, g, 1, layout)
    assert_close(dx, backward_ref(g, x, weight, **geo)[0], dtype, taps)


# --------------------------------------------------------------------------------------
# Bitwise determinism across thread counts; every ISA
# --------------------------------------------------------------------------------------

LARGE_CASES = [
    # (n, h, w, c_in, c_out, k, stride, padding, dilation, groups)
    (3, 17, 19, 8, 12, (3, 3), 1, 1, 1, 1),
    (2, 23, 21, 6, 10, (3, 3), 2, ((1, 0), (2, 1)), 1, 2),
    (2, 16, 16, 16, 16, (3, 3), 1, "same", 1, 16),
    (4, 32, 32, 4, 8, (3, 3), 1, 1, 1, 1),
    (2, 15, 33, 17, 33, (1, 1), 2, 0, 1, 1),
    (1, 20, 18, 9, 9, (5, 3), (2, 1), "same_lower", (1, 2), 3),
]
LARGE_IDS = ["plain", "strided-grouped", "depthwise", "long-dw-sum", "pointwise-17x33",
             "dilated-grouped"]
# Large enough for several threads to share out the groups, the depthwise channels and
# (few input channels: col2im) the accumulation into dx.
SPLIT_CASES = [
    (2, 28, 28, 24, 24, (3, 3), 1, 1, 1, 3),
    (1, 30, 30, 80, 80, (3, 3), 1, 1, 1, 80),
    (1, 112, 112, 3, 16, (7, 7), 2, 3, 1, 1),
]
SPLIT_IDS = ["split-grouped", "split-depthwise", "split-col2im-stem"]


def large_problem(case: tuple[Any, ...], layout: str, dtype: type, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    n, h, w, c_in, c_out, k, stride, padding, dilation, groups = case
    geo = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups,
           "layout": layout}
    x = uniform(rng, x_shape(layout, n, h, w, c_in), dtype)
    weight = uniform(rng, w_shape(layout, c_out, *k, c_in // groups), dtype)
    g = uniform(rng, convx.conv2d(x, weight, **geo).shape, dtype)
    return x, weight, g, geo


def check_against_reference(result: tuple[Any, Any, Any], x: np.ndarray, weight: np.ndarray,
                            g: np.ndarray, geo: dict[str, Any]) -> None:
    taps, per_channel = grad_fan_ins(weight, g, geo["groups"], geo["layout"])
    for got, want, fan_in in zip(result, backward_ref(g, x, weight, **geo),
                                 (taps, per_channel, per_channel)):
        assert_close(got, want, x.dtype, fan_in)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", LARGE_CASES + SPLIT_CASES, ids=LARGE_IDS + SPLIT_IDS)
def test_bitwise_identical_at_1_2_3_threads(case: tuple[Any, ...], layout: str, dtype: type,
                                            restore_threads: int,
                                            rng: np.random.Generator) -> None:
    x, weight, g, geo = large_problem(case, layout, dtype, rng)
    runs = {}
    for threads in (1, 2, 3, 1):
        convx.set_num_threads(threads)
        assert convx.get_num_threads() == threads
        result = call_backward(g, x, weight, geo)
        runs.setdefault(threads, []).append(tuple(a.tobytes() for a in result))
    check_against_reference(result, x, weight, g, geo)
    first = runs[1][0]
    for threads, results in runs.items():
        for got in results:
            for name, a, b in zip(NEEDS, got, first):
                assert a == b, f"d{name[0]} at {threads} threads differs bitwise from 1 thread"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", LARGE_CASES + DEFINITION_CASES,
                         ids=LARGE_IDS + [f"small{i}" for i in range(len(DEFINITION_CASES))])
def test_every_isa_matches_reference(case: tuple[Any, ...], layout: str, dtype: type, isa: str,
                                     rng: np.random.Generator) -> None:
    x, weight, g, geo = large_problem(case, layout, dtype, rng)
    check_against_reference(call_backward(g, x, weight, geo), x, weight, g, geo)
