"""The choice of algorithm: one place in the core (convx::choose_algorithm) picks gemm,
pointwise, direct or depthwise for a problem; convx.explain reports it without computing,
and a layer reports what its last call ran. Each case asserts the algorithm and then the
numbers against the float64 reference."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from reference import assert_close, conv2d_ref, uniform

import convx

# (name, x shape NHWC, c_out, kernel, kwargs, algorithm)
CASES: list[tuple[str, tuple[int, ...], int, tuple[int, int], dict[str, Any], str]] = [
    ("3x3", (2, 9, 8, 16), 24, (3, 3), {"padding": 1}, "gemm"),
    ("grouped", (1, 7, 7, 12), 18, (3, 3), {"groups": 3}, "gemm"),
    ("1x1 strided", (1, 8, 8, 32), 8, (1, 1), {"stride": 2}, "gemm"),
    ("1x1 padded", (1, 5, 5, 32), 8, (1, 1), {"padding": 1}, "gemm"),
    ("patch of 17", (1, 6, 6, 17), 4, (1, 1), {"stride": 2}, "gemm"),
    ("1x1", (2, 6, 5, 32), 8, (1, 1), {}, "pointwise"),
    ("1x1 grouped", (1, 4, 4, 40), 6, (1, 1), {"groups": 2}, "pointwise"),
    ("3x3 over 1", (2, 10, 9, 1), 16, (3, 3), {"padding": 1}, "direct"),
    ("2x2 over 4", (1, 7, 7, 4), 5, (2, 2), {"stride": 2}, "direct"),
    ("1x1 over 16", (1, 5, 5, 16), 3, (1, 1), {"stride": 2}, "direct"),
    ("depthwise", (2, 8, 9, 16), 16, (3, 3), {"groups": 16, "padding": 1}, "depthwise"),
    ("depthwise 5x5", (1, 9, 9, 5), 5, (5, 5), {"groups": 5, "stride": 2}, "depthwise"),
]


def _nchw(shape: tuple[int, ...]) -> tuple[int, ...]:
    n, h, w, c = shape
    return (n, c, h, w)


def _expected(algorithm: str, layout: str, k: tuple[int, int], c_in_g: int) -> str:
    # Direct is an NHWC algorithm; an NCHW problem of its shape is a GEMM.
    if algorithm == "direct" and layout == "NCHW":
        return "gemm"
    return algorithm


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_explain_reports_the_algorithm_that_runs(case: Any, dtype: Any, layout: str,
                                                 isa: str) -> None:
    name, x_shape, c_out, k, kw, algorithm = case
    groups = kw.get("groups", 1)
    c_in_g = x_shape[3] // groups
    rng = np.random.default_rng(len(name))
    x = uniform(rng, x_shape, dtype)
    w = uniform(rng, (c_out, *k, c_in_g), dtype)
    b = uniform(rng, (c_out,), dtype)
    want = conv2d_ref(x, w, b, **kw)
    if layout == "NCHW":
        x, w, want = (np.ascontiguousarray(x.transpose(0, 3, 1, 2)),
                      np.ascontiguousarray(w.transpose(0, 3, 1, 2)), want.transpose(0, 3, 1, 2))
    expected = _expected(algorithm, layout, k, c_in_g)

    plan = convx.explain(x.shape, w.shape, dtype=dtype, layout=layout, **kw)
    assert plan["algorithm"] == expected
    prefix = "f32 " if dtype == np.float32 else "f64 "
    assert plan["kernel"].startswith(prefix)
    if not (expected == "depthwise" and layout == "NCHW"):  # portable code, no ISA
        assert plan["kernel"].endswith(isa)
    assert plan["output_shape"] == want.shape
    assert plan["flops"] == 2 * want.size * k[0] * k[1] * c_in_g
    assert plan["workspace_bytes"] >= 0

    got = convx.conv2d(x, w, b, layout=layout, **kw)
    assert_close(got, want, dtype, fan_in=k[0] * k[1] * c_in_g)

    layer = convx.Conv2D(x_shape[3], c_out, k, layout=layout, dtype=dtype, **kw)
    assert layer.algorithm is None and layer.kernel is None  # no call yet
    layer.weight, layer.bias = w, b
    np.testing.assert_array_equal(layer(x), got)
    assert layer.algorithm == expected
    assert layer.kernel == plan["kernel"]


def test_layer_reports_its_last_input_shape() -> None:
    layer = convx.Conv2D(1, 4, 3, padding=1, seed=0)
    layer(np.zeros((1, 8, 8, 1), np.float32))
    assert layer.algorithm == "direct"
    layer.groups = 1  # a reassignment drops what the last call ran
    assert layer.algorithm is None
    wide = convx.Conv2D(32, 4, 3, padding=1, seed=0)
    wide(np.zeros((1, 8, 8, 32), np.float32))
    assert wide.algorithm == "gemm"


def test_explain_rejects_bad_problems_clearly() -> None:
    with pytest.raises(ValueError, match="groups"):
        convx.explain((1, 8, 8, 6), (4, 3, 3, 2), groups=4)
    with pytest.raises(ValueError, match="activation"):
        convx.explain((1, 8, 8, 6), (4, 3, 3, 6), activation="tanh")
    with pytest.raises(ValueError, match="kernel"):
        convx.explain((1, 2, 2, 6), (4, 3, 3, 6))
    with pytest.raises(TypeError):
        convx.explain((1, 8, 8, 6), (4, 3, 3, 6), dtype=np.int32)
    with pytest.raises(ValueError, match="C_in/groups"):  # as conv2d would refuse it
        convx.explain((1, 8, 8, 16), (32, 3, 3, 5))
    with pytest.raises(ValueError, match="C_in/groups"):
        convx.workspace_bytes((1, 8, 8, 16), (32, 3, 3, 5))


def test_depthwise_with_nonfinite_taps_on_the_padding_gives_nan() -> None:
    # The depthwise kernels skip taps on the padding; an inf weight there still makes the
    # formula's product with the padded zero NaN, and the result says so.
    x = np.ones((1, 4, 4, 2), np.float32)
    w = np.ones((2, 3, 3, 1), np.float32)
    w[0, 0, 0, 0] = np.inf  # top-left tap of channel 0
    assert convx.explain(x.shape, w.shape, groups=2, padding=1)["algorithm"] == "depthwise"
    y = convx.conv2d(x, w, groups=2, padding=1)
    with np.errstate(invalid="ignore"):  # inf * 0 in the reference
        want = conv2d_ref(x, w, None, groups=2, padding=1)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(want))
    assert np.isnan(y[0, 0, :, 0]).all() and np.isnan(y[0, :, 0, 0]).all()
    assert not np.isnan(y[0, 1:, 1:, 0]).any() and not np.isnan(y[..., 1]).any()
