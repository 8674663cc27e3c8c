"""Short patches (k_h*k_w*C_in <= 16, NHWC, no groups) take convx's direct kernel on every
kernel path; each test asserts (through convx.explain or layer.algorithm) that it did. Sweep
its edges: channel counts around the vector width, odd widths (the
kernel works on up to four pixels at a time), strides, dilation, asymmetric padding, bias
and ReLU, on batches small enough to be staged whole and large enough to be staged by
rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from reference import assert_close, conv2d_ref, uniform

import convx


def assert_direct(x: Any, w: Any, isa: str | None = None, **kw: Any) -> None:
    """The problem takes the direct algorithm, with the direct kernel of `isa`."""
    plan = convx.explain(x.shape, w.shape, dtype=x.dtype, **kw)
    assert plan["algorithm"] == "direct", plan
    assert "direct" in plan["kernel"], plan
    if isa is not None:
        assert plan["kernel"].endswith(isa), plan


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c_out", [1, 2, 3, 4, 5, 6, 8, 9, 12, 16, 17, 31, 32, 33, 64, 70])
def test_channel_counts(isa: str, dtype: Any, c_out: int) -> None:
    rng = np.random.default_rng(c_out)
    x = uniform(rng, (2, 9, 7, 1), dtype)
    w = uniform(rng, (c_out, 3, 3, 1), dtype)
    b = uniform(rng, (c_out,), dtype)
    assert_direct(x, w, isa, padding=1)
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
    assert_direct(x, w, isa, stride=stride, dilation=dilation, padding=padding)
    got = convx.conv2d(x, w, None, stride=stride, dilation=dilation, padding=padding)
    want = conv2d_ref(x, w, None, stride=stride, dilation=dilation, padding=padding)
    assert_close(got, want, np.float64, fan_in=k[0] * k[1] * c_in)


def test_direct_is_bitwise_identical_across_threads(restore_threads: int) -> None:
    rng = np.random.default_rng(1)
    x = uniform(rng, (16, 28, 28, 1), np.float32)
    w = uniform(rng, (32, 3, 3, 1), np.float32)
    assert_direct(x, w, padding=1)
    outs = []
    for threads in (1, 2, 3):
        convx.set_num_threads(threads)
        outs.append(convx.conv2d(x, w, padding=1))
    assert all(np.array_equal(outs[0], o) for o in outs[1:])


def test_staged_batch_in_row_runs_across_threads(restore_threads: int) -> None:
    # A padded batch under 16 KiB is staged whole and its rows go to the kernel in runs
    # (one run per image on one thread, shorter runs on several).
    rng = np.random.default_rng(3)
    x = uniform(rng, (2, 40, 40, 1), np.float32)
    w = uniform(rng, (64, 3, 3, 1), np.float32)
    b = uniform(rng, (64,), np.float32)
    layer = convx.Conv2D(1, 64, 3, padding=1, activation="relu")
    layer.weight, layer.bias = w, b
    outs = []
    for threads in (1, 2, 3):
        convx.set_num_threads(threads)
        outs.append(layer(x))
        assert layer.algorithm == "direct"
        outs.append(convx.conv2d(x, w, b, padding=1, activation="relu"))
    assert_close(outs[0], conv2d_ref(x, w, b, padding=1, activation="relu"), np.float32,
                 fan_in=9)
    assert all(np.array_equal(outs[0], o) for o in outs[1:])


def test_a_layer_keeps_the_kernels_it_bound() -> None:
    # A layer packs its weights in the direct kernel's layout for the path active when
    # they were set, and keeps computing with that path's kernel after the active path
    # changes; a layer made on another path uses that one.
    setter = getattr(convx, "_set_isa", None)
    names = [str(n) for n in convx.cpu_info()["available"]]
    if setter is None or len(names) < 2:
        pytest.skip("only one kernel path can run here")
    previous = str(convx.cpu_info()["active"])
    rng = np.random.default_rng(4)
    x = uniform(rng, (1, 8, 8, 1), np.float64)
    w = uniform(rng, (5, 3, 3, 1), np.float64)
    want = conv2d_ref(x, w, None, padding=1)
    try:
        for built in names:
            setter(built)
            layer = convx.Conv2D(1, 5, 3, padding=1, bias=False, dtype=np.float64)
            layer.weight = w
            for name in names:
                setter(name)
                assert_close(layer(x), want, np.float64, fan_in=9)
                assert layer.algorithm == "direct"
                assert layer.kernel is not None and layer.kernel.endswith(built)
    finally:
        setter(previous)
