"""The functional API: conv2d, pad, im2col, gemm and output_shape.

Layouts. NHWC activations are (N, H, W, C) or one image (H, W, C), with OHWI
weights (C_out, k_h, k_w, C_in/groups). NCHW activations are (N, C, H, W) or
(C, H, W), with OIHW weights (C_out, C_in/groups, k_h, k_w). The output uses the
input's layout, and a single image in gives a single image out.

Copies. A C-contiguous float32/float64 array in native byte order is used in
place, and so is a CPU tensor that implements DLPack (``__dlpack__``: PyTorch,
JAX), read as an ndarray of its memory (see docs/arrays.md). Anything else (a
strided view, Fortran order, byte-swapped data) is copied once into such an
array before the call; gemm reads strided views in place. Nothing the caller
owns is ever written except `out=`, which is written in place and so must be
C-contiguous and in native byte order.

Integers. Every integer argument (sizes, kernel sizes, strides, paddings,
dilations, groups) is at most 2**62. A value outside an argument's range, or a
geometry whose result could not be held in an array, raises a ValueError that
names the argument.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from convx import _core
from convx._args import (
    PaddingArg,
    as_array,
    as_float_array,
    as_out_array,
    check_algorithm,
    check_array_size,
    check_groups,
    check_layout,
    check_out,
    check_padding_mode,
    check_shape,
    common_dtype,
    float_dtype,
    from_dlpack,
    has_dlpack,
    native_order,
    normalize_pair,
    output_size,
    resolve_padding,
)

__all__ = ["conv2d", "explain", "gemm", "im2col", "output_shape", "pad", "workspace_bytes"]

Array = npt.NDArray[Any]
_ACTIVATIONS = {None: "none", "relu": "relu"}
_ORDERS = ("hwc", "chw", "seed")


def _split_input(
    shape: tuple[int, ...], layout: str, name: str = "x"
) -> tuple[int, int, int, int, bool]:
    """Return (n, h, w, c, batched) for the shape of a 3-D or 4-D activation."""
    if len(shape) == 4:
        if layout == "NHWC":
            n, h, w, c = shape
        else:
            n, c, h, w = shape
        return int(n), int(h), int(w), int(c), True
    if len(shape) == 3:
        if layout == "NHWC":
            h, w, c = shape
        else:
            c, h, w = shape
        return 1, int(h), int(w), int(c), False
    expect = "(N, H, W, C) or (H, W, C)" if layout == "NHWC" else "(N, C, H, W) or (C, H, W)"
    raise ValueError(f"{name} must be 4-D {expect} for layout {layout}, got shape {shape}")


def _geometry(
    h: int,
    w: int,
    kernel: tuple[int, int],
    stride: Any,
    padding: Any,
    dilation: Any,
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int, int, int], int, int]:
    """Normalise stride/dilation/padding and compute the output extent."""
    s = normalize_pair(stride, "stride")
    d = normalize_pair(dilation, "dilation")
    (top, bottom), (left, right) = resolve_padding(padding, (h, w), kernel, s, d)
    h_out = output_size(h, kernel[0], s[0], d[0], top, bottom, "height")
    w_out = output_size(w, kernel[1], s[1], d[1], left, right, "width")
    return s, d, (top, bottom, left, right), h_out, w_out


def _out_shape(n: int, h: int, w: int, c: int, layout: str, batched: bool) -> tuple[int, ...]:
    shape = (n, h, w, c) if layout == "NHWC" else (n, c, h, w)
    return shape if batched else shape[1:]


def conv2d(
    x: npt.ArrayLike,
    weight: npt.ArrayLike,
    bias: npt.ArrayLike | None = None,
    *,
    stride: Any = 1,
    padding: PaddingArg = 0,
    dilation: Any = 1,
    groups: int = 1,
    layout: str = "NHWC",
    activation: str | None = None,
    flip: bool = False,
    out: Array | None = None,
    padding_mode: str = "zeros",
    algorithm: str = "auto",
) -> Array:
    """2-D convolution (cross-correlation by default) of a batch or one image.

    y[i, j, m] = act(bias[m] + sum_{u, v, c} x_pad[i*s_h + u*d_h, j*s_w + v*d_w, c] * w[m, u, v, c])

    Args:
        x: (N, H, W, C_in) or (H, W, C_in) for NHWC; (N, C_in, H, W) or (C_in, H, W) for NCHW.
        weight: OHWI (C_out, k_h, k_w, C_in/groups) for NHWC; OIHW for NCHW.
        bias: (C_out,) or None.
        stride, dilation: int or (h, w) pair, >= 1.
        padding: int, (p_h, p_w), ((top, bottom), (left, right)), "valid", "same"
            (out = ceil(in/stride), odd pixel bottom/right) or "same_lower".
        groups: C_in and C_out must both be divisible by it.
        layout: "NHWC" or "NCHW".
        activation: None or "relu", applied after the bias in the same pass.
        padding_mode: what the padding reads, as torch's Conv2d: "zeros", "reflect"
            (x mirrored without repeating the edge; every pad < the input's extent),
            "replicate" (the edge value) or "circular" (wrapped around; pad <= extent).
            The padded input is never formed: patches read the mapped values.
        algorithm: "auto" (the default: convx chooses from the shape among the methods
            that round as a dot product does; see explain), "fast" (as "auto", and
            Winograd where it pays, for a Conv2D layer, which keeps its transformed
            filters), "gemm", "winograd" (3x3, stride 1, dilation 1, one group, NHWC; its
            float32 error is 15-50 times the GEMM's, about 1e-5 of the output's range, see
            docs/winograd.md), "direct", "depthwise" or "pointwise". An algorithm that
            cannot compute the problem raises ValueError saying why.
        flip: False for cross-correlation (every DL framework); True flips the kernel in both
            spatial axes, giving true convolution as in scipy.signal.convolve2d. Flipping copies
            the weights once.
        out: optional C-contiguous, writeable array of the exact output shape and dtype,
            not overlapping the inputs; it is written and returned.

    Returns:
        The output, float32 for float32 inputs and float64 for float64, in ``layout``.
    """
    # A repeated call: the same plain argument values, by identity, as the last call that
    # found or made a cached operator (see _last). The operator computes only when x,
    # weight, bias and out are ndarrays it takes as they are, i.e. when this call's cache
    # key is the last one's; otherwise it returns None, computing nothing.
    last = _last
    if (last is not None and last[2] is stride and last[3] is padding
            and last[4] is dilation and last[5] is groups and last[6] is layout
            and last[7] is activation and last[8] is padding_mode and last[9] is algorithm
            and last[10] is (bias is None) and flip is False and last[0] is _OPS):
        y: Array | None = last[1].try_call(x, weight, bias, out)
        if y is not None:
            return y
    # A call seen before: plain ndarrays and plain argument values (see _plain), whose
    # operator is in the cache. The key is built inline: a function call here would be a
    # tenth of a tiny convolution's call. As above, the operator returns None for arrays
    # it cannot take as they are, and the call goes on as one not seen before.
    if (type(x) is _ndarray and type(weight) is _ndarray
            and (bias is None or type(bias) is _ndarray)
            and (out is None or type(out) is _ndarray) and flip is False
            and (type(stride) is int or _plain(stride))  # the int tests spare a call
            and (type(padding) is int or _plain(padding))
            and (type(dilation) is int or _plain(dilation)) and type(groups) is int
            and type(layout) is str and (activation is None or type(activation) is str)
            and type(padding_mode) is str and type(algorithm) is str):
        key = (x.shape, x.dtype, weight.shape, bias is None, stride, padding, dilation,
               groups, layout, activation, padding_mode, algorithm)
        op = _OPS.get(key)
        if op is not None:
            y = op.try_call(x, weight, bias, out)
            if y is not None:
                _remember(op, key)
                return y
        return _conv2d_uncached(x, weight, bias, stride, padding, dilation, groups, layout,
                                activation, flip, out, padding_mode, algorithm, key)
    return _conv2d_general(x, weight, bias, stride, padding, dilation, groups, layout,
                           activation, flip, out, padding_mode, algorithm)


def _conv2d_general(x: Any, weight: Any, bias: Any, stride: Any, padding: Any, dilation: Any,
                    groups: Any, layout: Any, activation: Any, flip: Any, out: Any,
                    padding_mode: Any, algorithm: Any) -> Array:
    """conv2d for any arguments: DLPack tensors become ndarrays of their memory (so that
    they too reuse operators and `out` is the array written), then a call seen before
    reuses its operator as in conv2d, and any other is normalised."""
    if not (type(x) is _ndarray and type(weight) is _ndarray
            and (bias is None or type(bias) is _ndarray)
            and (out is None or type(out) is _ndarray)):
        x, weight, bias, out = _dlpack_arrays(x, weight, bias, out)
    key = None
    if (flip is False and type(x) is _ndarray and type(weight) is _ndarray
            and _plain(stride) and _plain(padding) and _plain(dilation) and type(groups) is int
            and type(layout) is str and (activation is None or type(activation) is str)
            and type(padding_mode) is str and type(algorithm) is str):
        key = _op_key(x, weight, bias, stride, padding, dilation, groups, layout, activation,
                      padding_mode, algorithm)
        op = _OPS.get(key)
        if op is not None:
            y = op.try_call(x, weight, bias, out)
            if y is not None:
                return y
    return _conv2d_uncached(x, weight, bias, stride, padding, dilation, groups, layout,
                            activation, flip, out, padding_mode, algorithm, key)


def _conv2d_uncached(x: Any, weight: Any, bias: Any, stride: Any, padding: Any, dilation: Any,
                     groups: Any, layout: Any, activation: Any, flip: Any, out: Any,
                     padding_mode: Any, algorithm: Any, key: tuple[Any, ...] | None) -> Array:
    """conv2d by a new operator made from the normalised arguments (which raises the error
    naming a bad one); the operator is cached under `key` (None: not cached) when the
    arrays were used as they are."""
    call = _normalise(x, weight, bias, stride, padding, dilation, groups, layout, activation,
                      flip, out, padding_mode, algorithm)
    op = _make_op(call)
    result = op(call.x, call.weight, call.bias, out)
    if key is not None and call.x is x and call.weight is weight and call.bias is bias:
        if len(_OPS) >= _MAX_OPS:
            _forget_ops()
        _OPS[key] = op
        _remember(op, key)
    return result


def _remember(op: _core.Conv2dOp, key: tuple[Any, ...]) -> None:
    """Make `op`, cached under `key`, the operator conv2d tries first (see _last)."""
    global _last
    _last = (_OPS, op, *key[4:], key[3])


def _forget_ops() -> None:
    """Drop every cached operator (as when the kernel path changes)."""
    global _last
    _last = None
    _OPS.clear()


def _op_key(x: Array, weight: Array, bias: Any, *geometry: Any) -> tuple[Any, ...]:
    """The key of conv2d's operator cache: the arrays' shapes and dtype, whether there is a
    bias, and the plain geometry arguments (stride, padding, dilation, groups, layout,
    activation, padding_mode, algorithm) as given."""
    return (x.shape, x.dtype, weight.shape, bias is None, *geometry)


def _dlpack_arrays(x: Any, weight: Any, bias: Any, out: Any) -> tuple[Any, Any, Any, Any]:
    """The arguments with each DLPack tensor among them as an ndarray of its memory;
    anything else as it is (normalised or refused later)."""
    x = from_dlpack(x, "x") if has_dlpack(x) else x
    weight = from_dlpack(weight, "weight") if has_dlpack(weight) else weight
    bias = from_dlpack(bias, "bias") if has_dlpack(bias) else bias
    return x, weight, bias, (as_out_array(out) if has_dlpack(out) else out)


def _plain(v: Any) -> bool:
    """True for arguments whose equality implies identity of meaning: exact ints, strings
    and (nested) tuples of them. 1.0 == 1 and True == 1 in Python, so a float or bool
    must never hit an operator cached for an int: those take the normalising path."""
    t = type(v)
    if t is int or t is str:
        return True
    return t is tuple and all(type(e) is int or (type(e) is tuple and all(
        type(f) is int for f in e)) for e in v)


_FLOAT_TYPES = (np.float32, np.float64)
_ndarray = np.ndarray  # a module global: conv2d's type tests skip an attribute lookup

# Operators by call signature; bounded so that varied shapes cannot grow it forever.
_OPS: dict[Any, _core.Conv2dOp] = {}
_MAX_OPS = 512
# The operator conv2d found or made last, as (the _OPS it is cached in, the operator,
# stride, padding, dilation, groups, layout, activation, padding_mode, algorithm,
# bias is None): the values of its key besides the arrays' shapes and dtype, which the
# operator's try_call checks itself. None after _forget_ops. A call whose plain values
# are these very objects, with flip False, and whose arrays try_call takes has that
# operator's key, so it gets the operator a cache lookup would find, without building
# and hashing the key. A value object compared by identity is one of the plain values
# the key was made of (see _plain), so identity implies the meaning, and the _OPS test
# drops the shortcut when the cache is replaced.
_last: tuple[Any, ...] | None = None


class _ConvCall(NamedTuple):
    """A conv2d call's arguments, normalised: arrays the core takes as they are, and the
    geometry as plain ints and strings."""

    x: Array
    weight: Array
    bias: Array | None
    dims: tuple[int, int, int, int]  # n, h, w, c_in
    batched: bool
    c_out: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pads: tuple[int, int, int, int]  # top, bottom, left, right
    groups: int
    layout: str
    activation: str  # "none" or "relu"
    out_shape: tuple[int, ...]  # the result's
    padding_mode: str  # one of _args.PADDING_MODES
    algorithm: str  # one of _args.ALGORITHMS


def _normalise(
    x: npt.ArrayLike,
    weight: npt.ArrayLike,
    bias: npt.ArrayLike | None,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: Any,
    layout: Any,
    activation: Any,
    flip: bool,
    out: Array | None,
    padding_mode: Any = "zeros",
    algorithm: Any = "auto",
) -> _ConvCall:
    """Normalise and check every argument of conv2d (the geometry's own rules, such as
    groups dividing the channels, are the core's, which names the argument)."""
    layout = check_layout(layout)
    mode = check_padding_mode(padding_mode)
    algo = check_algorithm(algorithm)
    xa = as_float_array(x, "x")
    wa = as_float_array(weight, "weight")
    ba = None if bias is None else as_float_array(bias, "bias")
    common_dtype(xa, "x", (wa, "weight"), (ba, "bias"))
    n, h, w, c_in, batched = _split_input(xa.shape, layout)
    if type(flip) is not bool:
        raise TypeError(f"flip must be True or False, got {flip!r}")
    if wa.ndim != 4:
        expect = "(C_out, k_h, k_w, C_in/groups)" if layout == "NHWC" else \
            "(C_out, C_in/groups, k_h, k_w)"
        raise ValueError(f"weight must be 4-D {expect} for layout {layout}, got shape {wa.shape}")
    if layout == "NHWC":
        c_out, k_h, k_w, c_in_g = wa.shape
    else:
        c_out, c_in_g, k_h, k_w = wa.shape
    g = check_groups(groups)
    _check_weight_channels(c_in, int(c_in_g), g, "x")
    if ba is not None and ba.shape != (c_out,):
        raise ValueError(f"bias must have shape ({c_out},), got {ba.shape}")
    act = _activation_code(activation)
    s, d, pads, h_out, w_out = _geometry(h, w, (k_h, k_w), stride, padding, dilation)
    if flip:
        axes = (1, 2) if layout == "NHWC" else (2, 3)
        wa = np.ascontiguousarray(np.flip(wa, axis=axes))
    out_shape = _out_shape(n, h_out, w_out, c_out, layout, batched)
    check_array_size(out_shape, xa.itemsize, "padding")
    if out is not None:
        check_out(out, out_shape, xa.dtype, (xa, wa, ba))
    return _ConvCall(xa, wa, ba, (n, h, w, c_in), batched, int(c_out), (int(k_h), int(k_w)),
                     s, d, pads, g, layout, act, out_shape, mode, algo)


def _activation_code(activation: Any) -> str:
    """The core's name of an activation argument: "none" or "relu"."""
    act = _ACTIVATIONS.get(activation) if isinstance(activation, (str, type(None))) else None
    if act is None:
        raise ValueError(f"activation must be None or 'relu', got {activation!r}")
    return act


def _check_weight_channels(c_in: int, c_in_g: int, groups: int, name: str) -> None:
    """Raise when the weight's input channels per group do not match the input's. (That
    groups divides the channels is the core's rule, which names it.)"""
    if c_in % groups == 0 and c_in_g * groups != c_in:
        raise ValueError(
            f"weight expects C_in/groups = {c_in_g} input channels per group, but {name} has "
            f"C_in = {c_in} with groups={groups} (C_in/groups = {c_in // groups})"
        )


def _make_op(call: _ConvCall, packed: _core.PackedWeights | None = None) -> _core.Conv2dOp:
    """The operator for a normalised call: with `packed` weights (a layer's), or taking
    the weights at every call."""
    return _core.Conv2dOp(call.dims, (call.c_out, call.kernel[0]), call.kernel[1], call.stride,
                          call.dilation, call.pads, call.groups, call.layout, call.activation,
                          call.batched, packed, call.x.dtype == np.float64,
                          padding_mode=call.padding_mode, algorithm=call.algorithm)


def explain(
    input_shape: tuple[int, ...],
    weight_shape: tuple[int, ...],
    *,
    stride: Any = 1,
    padding: PaddingArg = 0,
    dilation: Any = 1,
    groups: int = 1,
    layout: str = "NHWC",
    dtype: Any = np.float32,
    activation: str | None = None,
    padding_mode: str = "zeros",
    algorithm: str = "auto",
) -> dict[str, Any]:
    """How conv2d would compute this problem, without computing it.

    Returns a dict with
      algorithm: "gemm", "pointwise", "direct", "depthwise" or "winograd" (see
        docs/design.md; the `algorithm` argument requests one, as in conv2d);
      kernel: the micro-kernel it runs, dtype, tile and ISA, e.g. "f32 12x32 avx512";
      workspace_bytes: the scratch memory it uses over all threads (see workspace_bytes);
      flops: 2 * the multiply-adds of one call;
      output_shape: the shape of the result.
    """
    op, out_shape = _shape_op(input_shape, weight_shape, stride, padding, dilation, groups,
                              layout, dtype, activation, padding_mode, algorithm)
    return {"algorithm": op.algorithm, "kernel": op.kernel,
            "workspace_bytes": int(op.workspace_bytes), "flops": int(op.flops),
            "output_shape": out_shape}


def _shape_op(input_shape: Any, weight_shape: Any, stride: Any, padding: Any, dilation: Any,
              groups: Any, layout: Any, dtype: Any, activation: Any, padding_mode: Any,
              algorithm: Any = "auto") -> tuple[_core.Conv2dOp, tuple[int, ...]]:
    """An operator (taking weights at every call) for a problem given by shapes, and the
    output shape."""
    layout = check_layout(layout)
    mode = check_padding_mode(padding_mode)
    algo = check_algorithm(algorithm)
    n, h, w, c_in, batched = _split_input(check_shape(input_shape, "input_shape"), layout,
                                          "input_shape")
    w_shape = check_shape(weight_shape, "weight_shape")
    c_out, k_h, k_w = _weight_dims(w_shape, layout)
    g = check_groups(groups)
    _check_weight_channels(c_in, w_shape[3] if layout == "NHWC" else w_shape[1], g,
                           "input_shape")
    dt = float_dtype(dtype)
    act = _activation_code(activation)
    check_array_size((n, h, w, c_in), dt.itemsize, "input_shape")
    s, d, pads, h_out, w_out = _geometry(h, w, (k_h, k_w), stride, padding, dilation)
    out_shape = _out_shape(n, h_out, w_out, c_out, layout, batched)
    check_array_size(out_shape, dt.itemsize, "padding")
    op = _core.Conv2dOp((n, h, w, c_in), (c_out, k_h), k_w, s, d, pads, g, layout, act,
                        batched, None, dt == np.float64, padding_mode=mode, algorithm=algo)
    return op, out_shape


def output_shape(
    input_shape: tuple[int, ...],
    weight_shape: tuple[int, ...],
    *,
    stride: Any = 1,
    padding: PaddingArg = 0,
    dilation: Any = 1,
    layout: str = "NHWC",
) -> tuple[int, ...]:
    """Shape of conv2d's output for these input and weight shapes, without computing it.

    Per axis: out = floor((in + pad_before + pad_after - dilation*(k - 1) - 1) / stride) + 1,
    which for dilation 1 and symmetric padding p is floor((in - k + 2p) / stride) + 1.
    """
    layout = check_layout(layout)
    n, h, w, _, batched = _split_input(check_shape(input_shape, "input_shape"), layout,
                                       "input_shape")
    c_out, k_h, k_w = _weight_dims(check_shape(weight_shape, "weight_shape"), layout)
    _, _, _, h_out, w_out = _geometry(h, w, (k_h, k_w), stride, padding, dilation)
    return _out_shape(n, h_out, w_out, c_out, layout, batched)


def _weight_dims(weight_shape: tuple[int, ...], layout: str) -> tuple[int, int, int]:
    """(c_out, k_h, k_w) of an OHWI (NHWC) or OIHW (NCHW) weight shape."""
    if len(weight_shape) != 4:
        raise ValueError(f"weight_shape must have 4 entries, got {weight_shape}")
    if layout == "NHWC":
        c_out, k_h, k_w, _ = weight_shape
    else:
        c_out, _, k_h, k_w = weight_shape
    if min(c_out, k_h, k_w) < 1:
        raise ValueError(f"weight_shape: kernel_size and out_channels must be >= 1, got "
                         f"{weight_shape}")
    return int(c_out), int(k_h), int(k_w)


def workspace_bytes(
    input_shape: tuple[int, ...],
    weight_shape: tuple[int, ...],
    *,
    stride: Any = 1,
    padding: PaddingArg = 0,
    dilation: Any = 1,
    groups: int = 1,
    layout: str = "NHWC",
    dtype: Any = np.float32,
    padding_mode: str = "zeros",
    algorithm: str = "auto",
) -> int:
    """Scratch memory, in bytes, that conv2d uses for this problem, over all threads.

    convx never materialises the im2col matrix: it packs patches tile by tile into
    per-thread buffers of fixed size, plus one packed copy of the weights. The figure
    therefore does not grow with the image (try doubling H and W), in any padding_mode.
    """
    op, _ = _shape_op(input_shape, weight_shape, stride, padding, dilation, groups, layout,
                      dtype, None, padding_mode, algorithm)
    return int(op.workspace_bytes)


def pad(x: npt.ArrayLike, padding: PaddingArg, *, mode: str = "zeros",
        layout: str = "NHWC") -> Array:
    """Pad the two spatial axes of x.

    padding: int, (p_h, p_w) or ((top, bottom), (left, right)), or "valid" (no padding).
    mode: "zeros", "reflect" (numpy.pad's "reflect": the edge is not repeated; every pad
    must be smaller than its axis), "replicate" (numpy's "edge") or "circular" (numpy's
    "wrap"; every pad at most its axis), as torch's padding_mode.
    Returns (N, H + top + bottom, W + left + right, C) for NHWC (or the NCHW / single-image
    equivalent), as a new array.
    """
    layout = check_layout(layout)
    padding_mode = check_padding_mode(mode, "mode")
    xa = as_float_array(x, "x")
    n, h, w, c, batched = _split_input(xa.shape, layout)
    if isinstance(padding, str) and padding != "valid":
        raise ValueError(
            f"padding {padding!r} depends on a kernel; pass explicit amounts to pad()"
        )
    (top, bottom), (left, right) = resolve_padding(padding, (h, w), (1, 1), (1, 1), (1, 1))
    shape = _out_shape(n, h + top + bottom, w + left + right, c, layout, batched)
    check_array_size(shape, xa.itemsize, "padding")
    result = np.empty(shape, dtype=xa.dtype)
    try:
        _core.pad(xa, result, (n, h, w, c), (top, bottom, left, right), layout,
                  padding_mode=padding_mode)
    except ValueError as e:  # the core names its argument padding_mode; here it is mode
        raise ValueError(str(e).replace("padding_mode", "mode", 1)) from None
    return result


def im2col(
    x: npt.ArrayLike,
    kernel_size: Any,
    *,
    stride: Any = 1,
    padding: PaddingArg = 0,
    dilation: Any = 1,
    groups: int = 1,
    layout: str = "NHWC",
    order: str = "hwc",
    padding_mode: str = "zeros",
) -> Array:
    """Every patch of x, flattened: the left operand of the convolution GEMM.

    Returns (N, H_out, W_out, k_h*k_w*C) (no N axis for a single image), whatever the input
    layout. With groups > 1 the last axis is split as (groups, k_h*k_w*C/groups).
    The patch element (u, v, c) (kernel row u, kernel column v, channel c) sits at
      order="hwc":  (u*k_w + v)*C + c          (matches OHWI weights)
      order="chw":  c*k_h*k_w + u*k_w + v      (matches OIHW weights)
      order="seed": c*k_h*k_w + v*k_h + u      (column-major per channel, as in the maths note)
    Patch values on the padding are what padding_mode reads there (see conv2d).
    """
    layout = check_layout(layout)
    mode = check_padding_mode(padding_mode)
    if order not in _ORDERS:
        raise ValueError(f"order must be 'hwc', 'chw' or 'seed', got {order!r}")
    xa = as_float_array(x, "x")
    n, h, w, c, batched = _split_input(xa.shape, layout)
    k = normalize_pair(kernel_size, "kernel_size")
    g = check_groups(groups)  # its divisibility is checked by the core, which names it
    s, d, pads, h_out, w_out = _geometry(h, w, k, stride, padding, dilation)
    tail: tuple[int, ...] = (k[0] * k[1] * c,) if g == 1 else (g, k[0] * k[1] * c // g)
    shape = (n, h_out, w_out, *tail) if batched else (h_out, w_out, *tail)
    check_array_size(shape, xa.itemsize, "kernel_size and padding")
    result = np.empty(shape, dtype=xa.dtype)
    _core.im2col(xa, result, (n, h, w, c), k, s, d, pads, g, layout, order, padding_mode=mode)
    return result


def gemm(a: npt.ArrayLike, b: npt.ArrayLike, *, out: Array | None = None) -> Array:
    """Matrix product a @ b of 2-D float32 or float64 arrays with convx's blocked GEMM.

    a is (M, K) and b is (K, N); any strides work (transposed or sliced views are read in
    place, with no copy). An operand in non-native byte order is converted with one copy,
    as every convx function does. out, if given, must be a C-contiguous writeable (M, N)
    array of the same dtype, in native byte order, that does not overlap a or b.
    """
    # Plain native float arrays of matching shapes go straight to the compiled call, which
    # checks the buffers (strides, writeability, overlap) itself; anything else is
    # normalised below, which names what is wrong.
    if (type(a) is np.ndarray and type(b) is np.ndarray and a.dtype is b.dtype
            and a.dtype.type in _FLOAT_TYPES and a.dtype.isnative and a.ndim == 2
            and b.ndim == 2 and a.shape[1] == b.shape[0]):
        shape = (a.shape[0], b.shape[1])
        if out is None:
            result = np.empty(shape, a.dtype)
            _core.gemm(a, b, result, False)
            return result
        if (type(out) is np.ndarray and out.dtype is a.dtype and out.shape == shape
                and out.flags.c_contiguous and out.flags.writeable):
            _core.gemm(a, b, out, False)
            return out
    aa, ba = as_array(a, "a"), as_array(b, "b")
    for arr, name in ((aa, "a"), (ba, "b")):
        if arr.dtype.type not in (np.float32, np.float64):
            as_float_array(arr, name)  # raises the TypeError that explains the cast
        if arr.ndim != 2:
            raise ValueError(f"{name} must be 2-D, got shape {arr.shape}")
    aa, ba = native_order(aa), native_order(ba)
    common_dtype(aa, "a", (ba, "b"))
    if aa.shape[1] != ba.shape[0]:
        raise ValueError(f"b: inner dimensions differ: a is {aa.shape}, b is {ba.shape}")
    for arr, name in ((aa, "a"), (ba, "b")):
        if any(st % arr.itemsize for st in arr.strides):
            raise ValueError(f"{name}: strides must be whole elements")
    result = check_out(out, (aa.shape[0], ba.shape[1]), aa.dtype, (aa, ba))
    _core.gemm(aa, ba, result, False)
    return result
