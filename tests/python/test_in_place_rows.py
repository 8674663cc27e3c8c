"""NHWC layers with at least 32 channels per group block K by whole taps of one kernel row
(or equal parts of one tap), and the GEMM then reads a micro-panel of patches straight from
the image when its pixels lie in one output row and inside the image; the other panels are
packed. Sweep the cases that decide between the two: widths around the register tile
height, padding on each side, strides, dilation, groups, a batch (panels that would cross
images), channel counts that give one, two or three taps per block or split a tap, and the
prepared-weights path, which must pack its weights for the same K blocks.

Layers with few channels (resnet50's conv1: 3) keep the whole patch in one K block; there
the GEMM reads a panel in place as one strip of k_w taps per kernel row, when the strip is
at least 8 values long and the panel's strips all lie inside the image.

Every case checks that the GEMM ran, and the cases built for one path check, through the
GEMM's panel counters, that the in-place path did run (or, where strips are too short,
that it did not)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from reference import assert_close, conv2d_ref, uniform

import convx
from convx import _core

GEOMETRIES = [
    # (n, h, w, c_in, c_out, k, stride, dilation, padding, groups)
    (2, 5, 14, 32, 8, (3, 3), 1, 1, 1, 1),       # 3 taps of 32 per block
    (1, 6, 13, 64, 17, (3, 3), 1, 1, 0, 1),      # no padding: most panels in place
    (2, 4, 7, 48, 5, (3, 3), 2, 1, 1, 1),        # stride 2
    (1, 7, 12, 40, 9, (3, 3), 1, 2, 2, 1),       # dilated: one tap per block
    (1, 5, 19, 130, 16, (3, 3), 1, 1, ((1, 0), (0, 2)), 1),  # one tap per block, odd C
    (1, 4, 9, 512, 8, (3, 3), 1, 1, 1, 1),       # a tap split into two blocks
    (2, 5, 11, 64, 12, (3, 3), 1, 1, 1, 2),      # groups of 32 channels
    (1, 3, 25, 96, 7, (1, 5), (1, 3), 1, (0, 2), 1),  # wide kernel, stride 3
    (3, 2, 6, 32, 4, (2, 2), 1, 1, 0, 1),        # short rows: panels span output rows
    # Few channels: strips of a kernel row read in place.
    (1, 20, 30, 3, 16, (7, 7), 2, 1, 3, 1),      # resnet50 conv1 in small
    (2, 9, 17, 8, 5, (3, 3), 1, 1, 1, 1),        # a batch of two, strips of 24
    (1, 8, 20, 4, 6, (5, 5), 1, 1, 0, 1),        # no padding: most panels in place
    (1, 6, 30, 5, 3, (3, 4), 3, 1, ((2, 0), (1, 1)), 1),  # stride 3, uneven padding
    (1, 10, 16, 6, 4, (3, 3), 1, (2, 1), 1, 1),  # strips two image rows apart
    (1, 24, 24, 3, 8, (11, 11), 4, 1, 2, 1),     # K over one block: strips packed
    (1, 7, 15, 3, 5, (3, 3), 1, 1, 1, 1),        # strips of 9, the shortest read in place
    (1, 9, 12, 2, 4, (3, 3), 1, 1, 1, 1),        # strips of 6: packed

]
# Cases whose micro-panels are read in place (True) or all packed (False) on every kernel
# path, whatever its register tile height.
READS_IN_PLACE = {4: True, 10: True, 11: True, 14: False, 16: False}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", range(len(GEOMETRIES)),
                         ids=[f"g{i}" for i in range(len(GEOMETRIES))])
def test_matches_reference(isa: str, dtype: Any, case: int, rng: np.random.Generator) -> None:
    n, h, w, c_in, c_out, k, stride, dilation, padding, groups = GEOMETRIES[case]
    x = uniform(rng, (n, h, w, c_in), dtype)
    weight = uniform(rng, (c_out, *k, c_in // groups), dtype)
    bias = uniform(rng, (c_out,), dtype)
    kw = dict(stride=stride, dilation=dilation, padding=padding, groups=groups)
    want = conv2d_ref(x, weight, bias, activation="relu", **kw)
    _core._gemm_panel_counts(True)
    got = convx.conv2d(x, weight, bias, activation="relu", **kw)
    in_place, packed = _core._gemm_panel_counts(True)
    assert convx.explain(x.shape, weight.shape, dtype=dtype, **kw)["algorithm"] == "gemm"
    assert in_place + packed > 0
    # The table holds for K blocks of 128 or more (any L1d from 24 KiB up); the tiny
    # caches that CONVX_CACHE_SIZES can claim give shorter blocks that cut the strips.
    kc = convx.cpu_info()["gemm_blocking"][np.dtype(dtype).name]["kc"]
    if case in READS_IN_PLACE and kc >= 128:
        assert (in_place > 0) == READS_IN_PLACE[case], (in_place, packed)
    assert_close(got, want, dtype, fan_in=k[0] * k[1] * c_in // groups)
    layer = convx.Conv2D(c_in, c_out, k, dtype=dtype, activation="relu", **kw)
    layer.weight = weight
    layer.bias = bias
    # Same K blocks, same kernel: the prepared path gives the same bits.
    np.testing.assert_array_equal(layer(x), got)
    np.testing.assert_array_equal(layer(x), got)  # the cached operator


def test_image_is_not_modified() -> None:
    rng = np.random.default_rng(3)
    x = uniform(rng, (2, 6, 14, 64), np.float32)
    before = x.copy()
    convx.conv2d(x, uniform(rng, (8, 3, 3, 64), np.float32), padding=1)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [256, 300, 1024])
def test_gemm_reads_long_rows_in_place(isa: str, dtype: Any, k: int) -> None:
    # Rows of at least 1 KiB are read where they lie, unless their stride would
    # crowd L1 (k = 1024 floats: 4 KiB apart); a row-strided view and a partial
    # last micro-panel (m = 31) exercise both.
    rng = np.random.default_rng(k)
    base = uniform(rng, (31, k + 9), dtype)
    a = base[:, 3:3 + k]
    b = uniform(rng, (k, 21), dtype)
    _core._gemm_panel_counts(True)
    got = convx.gemm(a, b)
    in_place, packed = _core._gemm_panel_counts(True)
    # The K block comes from the caches: one under 1 KiB of a row (a small L1d) is packed.
    kc = convx.cpu_info()["gemm_blocking"][np.dtype(dtype).name]["kc"]
    if min(kc, k) * np.dtype(dtype).itemsize >= 1024:
        assert in_place > 0 and packed > 0  # whole micro-panels in place, the last one packed
    else:
        assert in_place == 0 and packed > 0
    assert_close(got, a.astype(np.float64) @ b.astype(np.float64), dtype, fan_in=k)
