"""Short patches (k_h*k_w*C_in <= 16, NHWC, no groups) take convx's direct kernel on the
SIMD paths. Sweep its edges: channel counts around the vector width, odd widths (the
kernel works on up to four pixels at a time), strides, dilation, asymmetric padding, bias
and ReLU, on batches small enough to be staged whole and large enough to be staged by
rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from reference import assert_close, conv2d_ref, uniform

import convx


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c_out", [1, 3, 4, 5, 8, 9, 16, 17, 31, 32, 33, 64, 70])
def test_channel_counts(isa: str, dtype: Any, c_out: int) -> None:
    rng = np.random.default_rng(c_out)
    x = uniform(rng, (2, 9, 7, 1), dtype)
    w = uniform(rng, (c_out, 3, 3, 1), dtype)
    b = uniform(rng, (c_out,), dtype)
    got = convx.conv2d(x, w, b, padding=1, activation="relu")
    assert_close(got, conv2d_ref(x, w, b, padding=1, activation="relu"), dtype, fan_in=9)


@pytest.mark.parametrize(
    ("hw", "c_in", "k", "stride", "dilation", "padding"),
    [((8, 8), 1, (3, 3), 1, 1, 0), ((9, 11), 1, (3, 3), 2, 1, 1), ((10, 13), 2, (2, 3), 1, 2, 2),
     ((6, 5), 3, (2, 2), (1, 2), 1, ((0, 1), (2, 0))), ((12, 12), 1, (4, 4), 3, 1, "same"),
     ((7, 7), 16, (1, 1), 1, 1, 1), ((5, 9), 1, (1, 5), 1, (1, 2), "same_lower"),
     ((3, 3), 1, (3, 3), 1, 1, 0), ((1, 2), 2, (1, 1), 1, 1, 0)],
)
@pytest.mark.parametrize("n", [3, 64])  # a small batch is staged whole, a large one by rows
def test_geometries(isa: str, hw: tuple[int, int], c_in: int, k: tuple[int, int],
                    stride: Any, dilation: Any, padding: Any, n: int) -> None:
    rng = np.random.default_rng(7)
    x = uniform(rng, (n, *hw, c_in), np.float64)
    w = uniform(rng, (10, *k, c_in), np.float64)
    got = convx.conv2d(x, w, None, stride=stride, dilation=dilation, padding=padding)
    want = conv2d_ref(x, w, None, stride=stride, dilation=dilation, padding=padding)
    assert_close(got, want, np.float64, fan_in=k[0] * k[1] * c_in)


def test_direct_matches_the_gemm_path_bitwise_across_threads(restore_threads: int) -> None:
    rng = np.random.default_rng(1)
    x = uniform(rng, (16, 28, 28, 1), np.float32)
    w = uniform(rng, (32, 3, 3, 1), np.float32)
    outs = []
    for threads in (1, 2, 3):
        convx.set_num_threads(threads)
        outs.append(convx.conv2d(x, w, padding=1))
    assert all(np.array_equal(outs[0], o) for o in outs[1:])
