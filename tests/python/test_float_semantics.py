"""What convx does with odd floating-point data: NaN through the fused ReLU, and
denormal (subnormal) numbers, which convx flushes to zero unless told not to.

Each case runs on every algorithm (GEMM NHWC and NCHW, pointwise, grouped, depthwise, the
direct kernel) on every ISA path this CPU has, at one thread and on the pool's two
threads, whatever the number of CPUs (the flush mode is set on each worker thread)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from reference import conv2d_ref

import convx

# (layout, x shape, weight shape, groups, padding): one case per algorithm.
PATHS = {
    "gemm-nhwc": ("NHWC", (2, 9, 9, 16), (24, 3, 3, 16), 1, 1),
    "gemm-nchw": ("NCHW", (2, 16, 9, 9), (24, 16, 3, 3), 1, 1),
    "pointwise-nhwc": ("NHWC", (2, 5, 7, 16), (24, 1, 1, 16), 1, 0),
    "pointwise-nchw": ("NCHW", (2, 16, 5, 7), (24, 16, 1, 1), 1, 0),
    "grouped": ("NHWC", (2, 9, 9, 16), (24, 3, 3, 4), 4, 1),
    "depthwise-nhwc": ("NHWC", (2, 9, 9, 16), (16, 3, 3, 1), 16, 1),
    "depthwise-nchw": ("NCHW", (2, 16, 9, 9), (16, 1, 3, 3), 16, 1),
    "direct": ("NHWC", (2, 9, 7, 1), (8, 3, 3, 1), 1, 1),
    "pooled": ("NHWC", (1, 32, 32, 64), (64, 3, 3, 64), 1, 1),
}
DTYPES = [np.float32, np.float64]


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request: pytest.FixtureRequest, restore_threads: int) -> Iterator[int]:
    n = int(request.param)
    convx.set_num_threads(n)
    yield n


@pytest.fixture
def flush_restored() -> Iterator[None]:
    before = convx.get_flush_denormal()
    try:
        yield
    finally:
        convx.set_flush_denormal(before)


def conv(x: Any, w: Any, path: str, **kwargs: Any) -> Any:
    layout, _, _, groups, padding = PATHS[path]
    return convx.conv2d(x, w, layout=layout, groups=groups, padding=padding, **kwargs)


# --------------------------------------------------------------------------------------
# NaN and infinities through the fused ReLU
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("path", PATHS)
def test_relu_keeps_nan(isa: str, threads: int, path: str, dtype: Any) -> None:
    _, x_shape, w_shape, _, _ = PATHS[path]
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, x_shape).astype(dtype)
    w = rng.uniform(-1, 1, w_shape).astype(dtype)
    flat = x.reshape(-1)
    flat[rng.choice(flat.size, size=3, replace=False)] = np.nan
    flat[rng.choice(flat.size, size=2, replace=False)] = -np.inf
    plain = conv(x, w, path)
    assert np.isnan(plain).any()
    fused = conv(x, w, path, activation="relu")
    # np.maximum propagates NaN, as torch.relu does: the fused result must equal it.
    np.testing.assert_array_equal(fused, np.maximum(plain, 0))
    layer = convx.Conv2D(x_shape[-1] if PATHS[path][0] == "NHWC" else x_shape[1],
                         w_shape[0], w_shape[1:3] if PATHS[path][0] == "NHWC" else w_shape[2:],
                         padding=PATHS[path][4], groups=PATHS[path][3], layout=PATHS[path][0],
                         dtype=dtype, activation="relu", bias=False)
    layer.weight = w
    np.testing.assert_array_equal(layer(x), fused)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("path", PATHS)
def test_relu_keeps_a_nan_bias(isa: str, path: str, dtype: Any) -> None:
    _, x_shape, w_shape, _, _ = PATHS[path]
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, x_shape).astype(dtype)
    w = rng.uniform(-1, 1, w_shape).astype(dtype)
    b = rng.uniform(-1, 1, w_shape[0]).astype(dtype)
    b[1] = np.nan
    b[2] = -np.inf
    b[3] = np.inf
    fused = conv(x, w, path, bias=b, activation="relu")
    channels = fused[..., 1:4] if PATHS[path][0] == "NHWC" else fused[:, 1:4]
    axis = -1 if PATHS[path][0] == "NHWC" else 1
    np.testing.assert_array_equal(np.take(channels, 0, axis=axis), np.nan)
    np.testing.assert_array_equal(np.take(channels, 1, axis=axis), 0)
    np.testing.assert_array_equal(np.take(channels, 2, axis=axis), np.inf)
    np.testing.assert_array_equal(fused, np.maximum(conv(x, w, path, bias=b), 0))


# --------------------------------------------------------------------------------------
# Denormals
# --------------------------------------------------------------------------------------

# Per dtype: a normal number whose square is denormal, and a denormal number.
TINY = {np.float32: (np.float32(1e-21), np.float32(1e-42)),
        np.float64: (np.float64(1e-160), np.float64(1e-315))}


def tiny_problem(path: str, dtype: Any, denormal_input: bool) -> tuple[Any, Any]:
    _, x_shape, w_shape, _, _ = PATHS[path]
    normal, denormal = TINY[dtype]
    x = np.full(x_shape, denormal if denormal_input else normal, dtype)
    w = np.full(w_shape, 1 if denormal_input else normal, dtype)
    return x, w


@pytest.mark.parametrize("denormal_input", [False, True], ids=["denormal-products",
                                                                "denormal-inputs"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("path", PATHS)
def test_denormals_flush_to_zero_by_default(isa: str, threads: int, flush_restored: None,
                                            path: str, dtype: Any,
                                            denormal_input: bool) -> None:
    convx.set_flush_denormal(True)
    x, w = tiny_problem(path, dtype, denormal_input)
    y = conv(x, w, path)
    np.testing.assert_array_equal(y, 0)
    # The caller's own arithmetic keeps gradual underflow: convx restored its state.
    normal, _ = TINY[dtype]
    assert (np.full(4, normal, dtype) * np.full(4, normal, dtype) > 0).all()


@pytest.mark.parametrize("denormal_input", [False, True], ids=["denormal-products",
                                                                "denormal-inputs"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("path", PATHS)
def test_denormals_kept_when_flushing_is_off(isa: str, threads: int, flush_restored: None,
                                             path: str, dtype: Any,
                                             denormal_input: bool) -> None:
    convx.set_flush_denormal(False)
    assert not convx.get_flush_denormal()
    x, w = tiny_problem(path, dtype, denormal_input)
    layout, _, _, groups, padding = PATHS[path]
    y = conv(x, w, path)
    expected = conv2d_ref(x.astype(np.float64), w.astype(np.float64), padding=padding,
                          groups=groups, layout=layout)
    assert (y > 0).any()
    # Each product and partial sum rounds to the denormal grid (spacing 1.4e-45 in
    # float32, 4.9e-324 in float64), so allow that much per term.
    step = np.finfo(dtype).smallest_subnormal
    fan_in = int(np.prod(w.shape[1:]))
    np.testing.assert_allclose(y, expected, rtol=0, atol=float(step) * 2 * fan_in)


def test_gemm_flushes_denormals(flush_restored: None) -> None:
    a = np.full((7, 33), 1e-21, np.float32)
    convx.set_flush_denormal(True)
    np.testing.assert_array_equal(convx.gemm(a, a.T), 0)
    convx.set_flush_denormal(False)
    assert (convx.gemm(a, a.T) > 0).all()


def test_set_flush_denormal_checks_its_argument(flush_restored: None) -> None:
    with pytest.raises(TypeError, match="enabled"):
        convx.set_flush_denormal(1)  # type: ignore[arg-type]
    assert convx.cpu_info()["flush_denormal"] == convx.get_flush_denormal()


@pytest.mark.parametrize("special", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("path", PATHS)
def test_non_finite_weights_meet_the_padding_as_the_formula_says(
        isa: str, path: str, dtype: Any, special: float) -> None:
    # The padding is zeros, and 0 * inf is NaN: a filter with an infinite or NaN tap gives
    # NaN wherever that tap falls on the padding, on every path (the depthwise kernels,
    # which leave padded taps out, hand such filters to the GEMM).
    layout, x_shape, w_shape, groups, padding = PATHS[path]
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, x_shape).astype(dtype)
    w = rng.uniform(-1, 1, w_shape).astype(dtype)
    w[0, 0, 0, 0] = special
    y = conv(x, w, path)
    with np.errstate(invalid="ignore"):
        want = conv2d_ref(x.astype(np.float64), w.astype(np.float64), padding=padding,
                          groups=groups, layout=layout)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(y), np.isinf(want))
    finite = np.isfinite(want)
    # A float32 sum of up to 576 products of values in [-1, 1] (outputs up to ~20) is
    # within a few 1e-5 of the float64 one; a wrong or missing tap is off by ~0.1 or more.
    tol = 1e-4 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(y[finite], want[finite], rtol=tol, atol=tol)
