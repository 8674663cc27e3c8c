"""The backward pass of conv2d and the transposed convolution (functional API).

Both run on the C++ operators of csrc/include/convx/conv2d_backward.hpp: dx is a forward
convolution of the upstream gradient with the flipped, transposed filters, dw a GEMM over
patches gathered tile by tile (never the whole im2col matrix), db an ordered sum. Results
are bitwise identical at any thread count.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from convx import _core
from convx._args import (
    PaddingArg,
    as_float_array,
    check_array_size,
    check_groups,
    check_layout,
    check_out,
    check_shape,
    check_zeros_mode,
    common_dtype,
    explicit_padding,
    normalize_pair,
)
from convx.functional import _normalise, _out_shape, _split_input

__all__ = ["conv2d_backward", "conv_transpose2d"]

Array = npt.NDArray[Any]
_NEEDS = ("input", "weight", "bias")


def _check_needs(needs: Any) -> frozenset[str]:
    if isinstance(needs, str) or not isinstance(needs, Iterable):
        raise TypeError(f"needs must be a tuple of 'input', 'weight' and 'bias', got {needs!r}")
    chosen = tuple(needs)
    for item in chosen:
        if item not in _NEEDS:
            raise ValueError(f"needs: {item!r} is not one of 'input', 'weight', 'bias'")
    return frozenset(chosen)


def conv2d_backward(
    grad_out: npt.ArrayLike,
    x: npt.ArrayLike,
    weight: npt.ArrayLike,
    *,
    stride: Any = 1,
    padding: PaddingArg = 0,
    dilation: Any = 1,
    groups: int = 1,
    layout: str = "NHWC",
    needs: Iterable[str] = _NEEDS,
    padding_mode: str = "zeros",
) -> tuple[Array | None, Array | None, Array | None]:
    """The gradients of y = conv2d(x, weight, bias, ...) for the upstream gradient dL/dy.

    Returns (dx, dw, db): dL/dx in x's shape, dL/dweight in the weight's shape and layout
    (OHWI for NHWC, OIHW for NCHW) and dL/dbias of shape (C_out,); an entry is None when
    it is not named in `needs`. grad_out has the shape conv2d gives for these arguments;
    the other arguments mean what they mean for conv2d. A fused activation is not an
    argument: mask grad_out by the activation's derivative first (for ReLU, where the
    forward output is 0). With a padding_mode other than "zeros", dx includes what the
    padding read: each padded position's gradient is added to the input pixel it mirrors,
    replicates or wraps (the adjoint of the padding, as torch's autograd gives).
    """
    wanted = _check_needs(needs)
    call = _normalise(x, weight, None, stride, padding, dilation, groups, layout, None, False,
                      None, padding_mode)
    ga = as_float_array(grad_out, "grad_out")
    common_dtype(call.x, "x", (ga, "grad_out"))
    if ga.shape != call.out_shape:
        raise ValueError(f"grad_out must have the output's shape {call.out_shape}, got "
                         f"{ga.shape}")
    dtype = call.x.dtype
    dx = np.empty(call.x.shape, dtype) if "input" in wanted else None
    dw = np.empty(call.weight.shape, dtype) if "weight" in wanted else None
    db = np.empty((call.c_out,), dtype) if "bias" in wanted else None
    _core.conv2d_backward(call.dims, (call.c_out, call.kernel[0]), call.kernel[1], call.stride,
                          call.dilation, call.pads, call.groups, call.layout, ga, call.x,
                          call.weight, dx, dw, db, padding_mode=call.padding_mode)
    return dx, dw, db


def _transposed_extent(n: int, k: int, s: int, d: int, before: int, after: int,
                       extra: int) -> int:
    return (n - 1) * s - before - after + d * (k - 1) + extra + 1


def conv_transpose2d(
    x: npt.ArrayLike,
    weight: npt.ArrayLike,
    bias: npt.ArrayLike | None = None,
    *,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    layout: str = "NHWC",
    output_size: Any = None,
    out: Array | None = None,
    padding_mode: str = "zeros",
) -> Array:
    """The transposed convolution (PyTorch's and ONNX's ConvTranspose): the adjoint of
    conv2d with the same weight and arguments, plus a bias.

    weight is the weight of the convolution it transposes: (C_in, C_out/groups, k_h, k_w)
    for NCHW, as torch and ONNX have it, and (C_in, k_h, k_w, C_out/groups) for NHWC, where
    C_in is x's channel count. Each spatial axis of the output has
        (in - 1)*stride - pad_before - pad_after + dilation*(k - 1) + output_padding + 1
    values. padding is an int, a pair or ((top, bottom), (left, right)); output_padding an
    int or a pair, each below the stride or the dilation of its axis. output_size, the
    (H, W) wanted (leading entries, as torch allows, are ignored), chooses output_padding.
    padding_mode must be "zeros", the only one torch defines for it.
    """
    check_zeros_mode(padding_mode)
    layout = check_layout(layout)
    xa = as_float_array(x, "x")
    wa = as_float_array(weight, "weight")
    ba = None if bias is None else as_float_array(bias, "bias")
    common_dtype(xa, "x", (wa, "weight"), (ba, "bias"))
    n, h, w, c_in, batched = _split_input(xa.shape, layout)
    if wa.ndim != 4:
        expect = "(C_in, k_h, k_w, C_out/groups)" if layout == "NHWC" else \
            "(C_in, C_out/groups, k_h, k_w)"
        raise ValueError(f"weight must be 4-D {expect} for layout {layout}, got shape {wa.shape}")
    if layout == "NHWC":
        w_in, k_h, k_w, c_out_g = (int(v) for v in wa.shape)
    else:
        w_in, c_out_g, k_h, k_w = (int(v) for v in wa.shape)
    if w_in != c_in:
        raise ValueError(f"weight.shape[0] is {w_in}, but x has {c_in} channels")
    g = check_groups(groups)
    if c_in % g:
        # The core would name these the transposed convolution's out_channels.
        raise ValueError(f"groups: x's {c_in} channels are not divisible by groups={g}")
    c_out = c_out_g * g
    s = normalize_pair(stride, "stride")
    d = normalize_pair(dilation, "dilation")
    if isinstance(padding, str):
        raise ValueError(f"padding must be an int, a pair or ((top, bottom), (left, right)) for "
                         f"a transposed convolution, got {padding!r}")
    (top, bottom), (left, right) = explicit_padding(padding)
    op = _output_padding(output_padding, output_size, (h, w), (k_h, k_w), s, d,
                         (top, bottom, left, right))
    h_out = _transposed_extent(h, k_h, s[0], d[0], top, bottom, op[0])
    w_out = _transposed_extent(w, k_w, s[1], d[1], left, right, op[1])
    if h_out < 1 or w_out < 1:
        raise ValueError(f"padding: the output would be {h_out} x {w_out}")
    if ba is not None and ba.shape != (c_out,):
        raise ValueError(f"bias must have shape ({c_out},), got {ba.shape}")
    shape = _out_shape(n, h_out, w_out, c_out, layout, batched)
    check_array_size(shape, xa.itemsize, "padding")
    result = check_out(out, shape, xa.dtype, (xa, wa, ba))
    _core.conv_transpose2d(xa, wa, ba, result, (n, h, w, c_in), c_out, (k_h, k_w), s, d,
                           (top, bottom, left, right), g, layout, op)
    return result


def _output_padding(output_padding: Any, output_size: Any, in_hw: tuple[int, int],
                    kernel: tuple[int, int], s: tuple[int, int], d: tuple[int, int],
                    pads: tuple[int, int, int, int]) -> tuple[int, int]:
    """output_padding as a checked pair, or the one that gives output_size."""
    if output_size is None:
        op = normalize_pair(output_padding, "output_padding", minimum=0)
    else:
        if output_padding not in (0, (0, 0)):
            raise ValueError("give output_size or output_padding, not both")
        wanted = check_shape(output_size, "output_size")[-2:]
        if len(wanted) != 2:
            raise ValueError(f"output_size must end with (H, W), got {output_size!r}")
        base = (_transposed_extent(in_hw[0], kernel[0], s[0], d[0], pads[0], pads[1], 0),
                _transposed_extent(in_hw[1], kernel[1], s[1], d[1], pads[2], pads[3], 0))
        op = (wanted[0] - base[0], wanted[1] - base[1])
        for axis in range(2):
            if not 0 <= op[axis] < max(s[axis], d[axis]):
                raise ValueError(f"output_size {tuple(wanted)} cannot be reached: the sizes "
                                 f"possible are {base[0]}..{base[0] + max(s[0], d[0]) - 1} x "
                                 f"{base[1]}..{base[1] + max(s[1], d[1]) - 1}")
    for axis, name in ((0, "height"), (1, "width")):
        if op[axis] >= max(s[axis], d[axis]):
            raise ValueError(f"output_padding ({name}) must be smaller than the stride or the "
                             f"dilation, got {op[axis]}")
    return op
