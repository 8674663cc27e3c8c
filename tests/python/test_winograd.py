"""The Winograd algorithm (F(4x4, 3x3)): its error bound on random layers against the
float64 reference, where `fast` chooses it (and `auto` does not), the `algorithm=`
argument's validation on conv2d, Conv2D and explain, and a layer that keeps its request
through pickling."""
from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import conv2d_ref

import convx

# max|y - ref| / max|ref| allowed (docs/winograd.md: up to 1.5e-5 measured in float32 on
# VGG and ResNet layers, below 1e-14 in float64).
BOUND = {np.float32: 5e-5, np.float64: 5e-14}
NUMPY_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge",
               "circular": "wrap"}


def relative_error(y: Any, want: Any) -> float:
    scale = float(np.abs(want).max())
    return float(np.abs(y.astype(np.float64) - want).max()) / (scale if scale > 0 else 1.0)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 2), h=st.integers(3, 14), w=st.integers(3, 14),
       c_in=st.integers(1, 40), c_out=st.integers(1, 40),
       pads=st.tuples(*[st.integers(0, 2)] * 4),
       mode=st.sampled_from(["zeros", "reflect", "replicate", "circular"]),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_error_bound_on_random_layers(n: int, h: int, w: int, c_in: int, c_out: int,
                                      pads: tuple[int, int, int, int], mode: str, dtype: Any,
                                      seed: int) -> None:
    padding = ((pads[0], pads[1]), (pads[2], pads[3]))  # every pad < h, w: all modes fit
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c_in)).astype(dtype)
    weight = (rng.standard_normal((c_out, 3, 3, c_in)) * np.sqrt(2.0 / (9 * c_in))).astype(dtype)
    bias = rng.standard_normal(c_out).astype(dtype)
    y = convx.conv2d(x, weight, bias, padding=padding, padding_mode=mode, algorithm="winograd")
    # The reference convolves the input padded explicitly by NumPy's equivalent mode.
    x_pad = np.pad(x.astype(np.float64), ((0, 0), *padding, (0, 0)), mode=NUMPY_MODES[mode])
    want = conv2d_ref(x_pad, weight.astype(np.float64), bias.astype(np.float64))
    assert relative_error(y, want) <= BOUND[dtype]


def test_the_bound_can_fail() -> None:
    # The reference of another filter is far outside the bound: the test above can fail.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 8, 8, 4)).astype(np.float32)
    weight = rng.standard_normal((4, 3, 3, 4)).astype(np.float32)
    y = convx.conv2d(x, weight, algorithm="winograd")
    want = conv2d_ref(x.astype(np.float64), 1.001 * weight.astype(np.float64))
    assert relative_error(y, want) > BOUND[np.float32]


def test_wide_filters_in_large_blocks_match_the_reference_at_any_thread_count(
        restore_threads: int) -> None:
    # 256 x 256 transformed filters (9.4 MB) outgrow a block's L2 share, so a block takes
    # 48 tiles: the 64 tiles of a 30x30 output are two blocks of different sizes.
    rng = np.random.default_rng(11)
    x = rng.standard_normal((1, 30, 30, 256)).astype(np.float32)
    weight = (rng.standard_normal((256, 3, 3, 256)) * np.sqrt(2.0 / (9 * 256))).astype(np.float32)
    layer = convx.Conv2D(256, 256, 3, padding=1, bias=False, algorithm="winograd")
    layer.weight = weight
    outputs = []
    for threads in (1, 2, 3):
        convx.set_num_threads(threads)
        outputs.append(layer(x))
    x_pad = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
    assert relative_error(outputs[0], conv2d_ref(x_pad, weight.astype(np.float64))) <= BOUND[
        np.float32]
    assert all(np.array_equal(outputs[0], y) for y in outputs[1:])


def test_fast_chooses_winograd_for_wide_3x3_layers_with_kept_filters() -> None:
    rng = np.random.default_rng(5)
    for shape, kwargs, algorithm in [((1, 28, 28, 64), {}, "winograd"),
                                     ((1, 28, 28, 8), {}, "gemm"),
                                     ((1, 28, 28, 64), {"stride": 2}, "gemm"),
                                     ((1, 7, 7, 64), {}, "gemm")]:  # 4 tiles
        layer = convx.Conv2D(shape[-1], 64, 3, padding=1, seed=0, algorithm="fast", **kwargs)
        layer(rng.standard_normal(shape).astype(np.float32))
        assert layer.algorithm == algorithm
    # No upper limit on the channels: VGG's 512 -> 512 layers take it too.
    wide = convx.Conv2D(512, 512, 3, padding=1, seed=0, algorithm="fast")
    wide(np.zeros((1, 14, 14, 512), np.float32))
    assert wide.algorithm == "winograd"
    # The default keeps the rounding of a dot product: no Winograd unless asked.
    default = convx.Conv2D(64, 64, 3, padding=1, seed=0)
    default(np.zeros((1, 28, 28, 64), np.float32))
    assert default.algorithm == "gemm"
    layer = convx.Conv2D(64, 64, 3, padding=1, layout="NCHW", seed=0, algorithm="fast")
    layer(np.zeros((1, 64, 28, 28), np.float32))
    assert layer.algorithm == "gemm"
    # conv2d and explain take the filters per call, which Winograd would transform per
    # call: fast keeps the GEMM there, and a request still gets Winograd.
    assert convx.explain((1, 28, 28, 64), (64, 3, 3, 64), padding=1,
                         algorithm="fast")["algorithm"] == "gemm"
    info = convx.explain((1, 28, 28, 64), (64, 3, 3, 64), padding=1, algorithm="winograd")
    assert info["algorithm"] == "winograd"
    assert "winograd" in info["kernel"]


def test_layer_reports_winograd_where_fast_picks_it_and_where_forced() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 12, 12, 32)).astype(np.float32)
    fast = convx.Conv2D(32, 32, 3, padding=1, seed=0, algorithm="fast")
    y = fast(x)
    assert fast.algorithm == "winograd"
    forced = convx.Conv2D(8, 8, 3, padding=1, seed=0, algorithm="winograd")
    x8 = np.ascontiguousarray(x[..., :8])
    y8 = forced(x8)
    assert forced.algorithm == "winograd"
    want = conv2d_ref(x8.astype(np.float64), forced.weight.astype(np.float64),
                      forced.bias.astype(np.float64), padding=1)
    assert relative_error(y8, want) <= BOUND[np.float32]
    gemm = convx.Conv2D(32, 32, 3, padding=1, seed=0, algorithm="gemm")
    yg = gemm(x)
    assert gemm.algorithm == "gemm"
    np.testing.assert_allclose(y, yg, rtol=1e-4, atol=1e-4)


def test_algorithm_argument_is_validated() -> None:
    x = np.zeros((1, 9, 9, 4), np.float32)
    w = np.zeros((4, 3, 3, 4), np.float32)
    with pytest.raises(ValueError, match="algorithm must be"):
        convx.conv2d(x, w, algorithm="quick")
    with pytest.raises(ValueError, match="algorithm must be"):
        convx.Conv2D(4, 4, 3, algorithm=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="algorithm: winograd needs stride 1"):
        convx.conv2d(x, w, stride=2, algorithm="winograd")
    with pytest.raises(ValueError, match="winograd needs a 3x3 filter"):
        convx.explain((1, 9, 9, 4), (4, 5, 5, 4), algorithm="winograd")
    with pytest.raises(ValueError, match="winograd needs layout NHWC"):
        convx.conv2d(x.transpose(0, 3, 1, 2).copy(), w.transpose(0, 3, 1, 2).copy(),
                     layout="NCHW", algorithm="winograd")
    with pytest.raises(ValueError, match="direct needs"):
        convx.workspace_bytes((1, 9, 9, 4), (4, 3, 3, 4), algorithm="direct")
    with pytest.raises(ValueError, match="depthwise needs"):
        convx.Conv2D(4, 4, 3, algorithm="depthwise")(x)
    assert convx.explain((1, 9, 9, 4), (4, 1, 1, 4),
                         algorithm="pointwise")["algorithm"] == "pointwise"


def test_request_is_kept_by_pickle_repr_and_the_cache() -> None:
    layer = convx.Conv2D(16, 16, 3, padding=1, seed=2, algorithm="gemm")
    assert "algorithm='gemm'" in repr(layer)
    x = np.random.default_rng(3).standard_normal((1, 10, 10, 16)).astype(np.float32)
    y = layer(x)
    clone = pickle.loads(pickle.dumps(layer))
    assert clone.requested_algorithm == "gemm"
    np.testing.assert_array_equal(clone(x), y)
    assert clone.algorithm == "gemm"
    layer.requested_algorithm = "winograd"  # a new operator, not the cached one
    layer(x)
    assert layer.algorithm == "winograd"
    # conv2d's operator cache keys on the request too.
    w = layer.weight
    assert convx.explain(x.shape, w.shape, padding=1, algorithm="gemm")["algorithm"] == "gemm"
    a = convx.conv2d(x, w, padding=1, algorithm="gemm")
    b = convx.conv2d(x, w, padding=1, algorithm="winograd")
    assert not np.array_equal(a, b)  # the rounding differs: two operators ran
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_non_finite_values_keep_the_formula_pattern() -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 9, 9, 8))
    w = rng.standard_normal((8, 3, 3, 8))
    x[0, 4, 4, 0] = np.inf
    y = convx.conv2d(x, w, padding=1, algorithm="winograd")
    with np.errstate(invalid="ignore"):
        want = conv2d_ref(x, w, padding=1)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(y), np.isinf(want))
