"""Integer arguments beyond the documented bound (2**62), inside pairs and nested padding,
as NumPy integers or hugely negative: every public function refuses them with a ValueError
whose message starts with the argument's name. (gemm takes no integer arguments.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import convx
from convx import _core

X = np.ones((1, 5, 5, 2), np.float32)
W = np.ones((4, 3, 3, 2), np.float32)

# Values out of range for any argument, as plain ints and NumPy integers.
HUGE: list[Any] = [2**63, 2**64, 2**70, 2**62 + 1, np.uint64(2**63), np.uint64(2**64 - 1),
                   -(2**63) - 1, -(2**70), np.int64(-(2**63))]
# Pairs and paddings with one huge entry.
HUGE_PAIRS: list[Any] = [(1, 2**63), (2**64, 1), [2**70, 2**70], (1, np.uint64(2**63)),
                         (1, -(2**64))]
HUGE_PADDINGS: list[Any] = [(0, 2**63), ((0, 2**63), (0, 0)), ((0, 0), (2**64, 1)),
                            ((0, 0), (-(2**63) - 1, 0)), 2**62 + 1]


def _cases(*names: str, pairs: bool = True) -> list[tuple[str, Any]]:
    """(argument, value) for every huge value of each named argument."""
    cases: list[tuple[str, Any]] = []
    for name in names:
        values = HUGE_PADDINGS + HUGE if name == "padding" else \
            HUGE + (HUGE_PAIRS if pairs else [])
        cases += [(name, v) for v in values]
    return cases


def _refusals(call: Callable[[str, Any], Any], cases: list[tuple[str, Any]]) -> list[str]:
    """The cases that call(name, value) does not refuse with a ValueError whose message
    starts with `name`."""
    wrong = []
    for name, value in cases:
        try:
            call(name, value)
        except ValueError as exc:
            if not str(exc).startswith(name):
                wrong.append(f"{name}={value!r}: ValueError {str(exc)[:100]!r}")
        except Exception as exc:
            wrong.append(f"{name}={value!r}: {type(exc).__name__} {str(exc)[:100]!r}")
        else:
            wrong.append(f"{name}={value!r}: accepted")
    return wrong


GEOMETRY = ("stride", "padding", "dilation")


def test_conv2d() -> None:
    def call(name: str, value: Any) -> Any:
        return convx.conv2d(X, W, **{name: value})

    assert _refusals(call, _cases(*GEOMETRY) + _cases("groups", pairs=False)) == []
    # The bound itself is accepted.
    assert convx.conv2d(X, W, stride=2**62).shape == (1, 1, 1, 4)
    assert convx.conv2d(X, W, stride=(1, 2**62), padding="same").shape == (1, 5, 1, 4)


def test_conv2d_same_padding_that_would_exceed_the_bound() -> None:
    # Each value is in range, but the padding "same" needs for them is not.
    with pytest.raises(ValueError, match=r"^padding 'same' needs \d+ rows or columns"):
        convx.conv2d(X, W, padding="same", dilation=2**62)


def test_conv2d_layer() -> None:
    def call(name: str, value: Any) -> Any:
        kwargs = {"in_channels": 2, "out_channels": 4, "kernel_size": 3, name: value}
        return convx.Conv2D(**kwargs)

    cases = _cases(*GEOMETRY, "kernel_size") + \
        _cases("in_channels", "out_channels", "groups", pairs=False)
    assert _refusals(call, cases) == []
    # Each in range, but the weight array they describe could not exist.
    with pytest.raises(ValueError, match=r"^in_channels, out_channels and kernel_size"):
        convx.Conv2D(2**40, 2**40, 3)


def test_im2col() -> None:
    def call(name: str, value: Any) -> Any:
        kwargs = {"kernel_size": 3, name: value}
        return convx.im2col(X, **kwargs)

    cases = _cases(*GEOMETRY, "kernel_size") + _cases("groups", pairs=False)
    assert _refusals(call, cases) == []
    with pytest.raises(ValueError, match=r"^kernel_size and padding: an array of shape"):
        convx.im2col(X, 3, padding=2**40)


def test_pad() -> None:
    assert _refusals(lambda name, value: convx.pad(X, value), _cases("padding")) == []
    with pytest.raises(ValueError, match=r"^padding: an array of shape"):
        convx.pad(X, 2**40)


@pytest.mark.parametrize("function", [convx.output_shape, convx.workspace_bytes])
def test_shape_functions(function: Callable[..., Any]) -> None:
    def call(name: str, value: Any) -> Any:
        if name.startswith("input_shape"):
            return function((1, 5, 5, value), W.shape)
        if name.startswith("weight_shape"):
            return function(X.shape, (4, value, 3, 2))
        return function(X.shape, W.shape, **{name: value})

    cases = _cases(*GEOMETRY)
    cases += [("input_shape[3]", v) for v in HUGE]
    cases += [("weight_shape[1]", v) for v in HUGE]
    if function is convx.workspace_bytes:
        cases += _cases("groups", pairs=False)
    assert _refusals(call, cases) == []
    assert function(X.shape, W.shape, stride=2**62) is not None  # the bound itself
    if function is convx.workspace_bytes:  # each size in range, but not the input's size
        with pytest.raises(ValueError, match=r"^input_shape: an array of shape"):
            function((1, 2**62, 5, 2), W.shape)


@pytest.mark.parametrize("format_", ["csr", "coo", "dense"])
def test_conv_matrix(format_: str) -> None:
    def call(name: str, value: Any) -> Any:
        if name == "input_hw":
            return convx.conv_matrix(value, W, format=format_)
        return convx.conv_matrix((5, 5), W, format=format_, **{name: value})

    cases = _cases(*GEOMETRY, "input_hw") + _cases("groups", pairs=False)
    assert _refusals(call, cases) == []


def test_conv_bias_vector() -> None:
    def call(name: str, value: Any) -> Any:
        if name == "input_hw":
            return convx.conv_bias_vector(value, W, None)
        return convx.conv_bias_vector((5, 5), W, None, **{name: value})

    cases = _cases(*GEOMETRY, "input_hw") + _cases("groups", pairs=False)
    assert _refusals(call, cases) == []


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_a_huge_stride_over_one_output_computes_the_right_answer(isa: str, layout: str) -> None:
    # One output column: the stride never moves the patch, and must not overflow the
    # kernels' index arithmetic (it gave zeros on every path).
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    w = rng.standard_normal((3, 1, 1, 3) if layout == "NHWC" else (3, 3, 1, 1)).astype(np.float32)
    pad = ((3, 1), (0, 0))
    got = convx.conv2d(x, w, stride=(3, 2**62), padding=pad, layout=layout)
    full = convx.conv2d(x, w, stride=(3, 1), padding=pad, layout=layout)
    want = full[:, :, :1] if layout == "NHWC" else full[..., :1]
    np.testing.assert_array_equal(got, want)
    assert got.shape == want.shape


def test_im2col_binding_refuses_a_count_that_wraps_int64() -> None:
    # n * h_out * w_out * k_h * k_w * c = 4096 * 8192**4 = 2**64: the binding must not
    # accept an empty `out` for it (the product wraps to 0) and write past it.
    x = np.zeros((4096, 1, 1, 1), np.float32)
    with pytest.raises(ValueError, match="im2col"):
        _core.im2col(x, np.empty(0, np.float32), (4096, 1, 1, 1), (8192, 8192), (1, 1), (1, 1),
                     (8191, 8191, 8191, 8191), 1, "NHWC", "hwc")
    with pytest.raises(ValueError, match="padding"):
        _core.pad(x, np.empty(0, np.float32), (4096, 1, 1, 1), (2**62, 2**62, 0, 0), "NHWC")
