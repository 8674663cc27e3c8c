"""Argument normalisation and validation shared by the public functions.

Everything here is pure Python and cheap: each check is a few attribute reads,
so a tiny convolution spends its time in C++, not here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Union, cast

import numpy as np
import numpy.typing as npt

__all__ = [
    "LAYOUTS",
    "MAX_INT",
    "PaddingArg",
    "Pair",
    "as_array",
    "as_float_array",
    "as_out_array",
    "check_array_size",
    "check_groups",
    "check_int",
    "check_layout",
    "check_out",
    "check_shape",
    "common_dtype",
    "float_dtype",
    "from_dlpack",
    "has_dlpack",
    "native_order",
    "normalize_pair",
    "output_size",
    "resolve_padding",
]

Pair = tuple[int, int]
PaddingArg = Union[int, str, Sequence[int], Sequence[Sequence[int]]]
LAYOUTS = ("NHWC", "NCHW")
_FLOAT_TYPES = (np.float32, np.float64)

#: The largest value of any integer argument: sizes, kernel sizes, strides, paddings,
#: dilations and groups. Every value up to it converts to the C++ core's int64, and the
#: core checks each sum and product it forms from them for overflow; past it, the
#: argument is refused here with a ValueError that names it.
MAX_INT = 2**62
_MAX_INT_TEXT = "2**62"
_MAX_BYTES = int(np.iinfo(np.intp).max)


def _is_int(v: object) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _check_range(value: int, name: str, minimum: int, shown: Any) -> None:
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {shown!r}")
    if value > MAX_INT:
        raise ValueError(f"{name} must be <= {_MAX_INT_TEXT}, got {shown!r}")


def check_int(value: Any, name: str, minimum: int = 0) -> int:
    """`value` as an int in [minimum, MAX_INT] (bools, floats and strings are rejected)."""
    if not _is_int(value):
        raise TypeError(f"{name} must be an int, got {value!r}")
    result = int(value)
    _check_range(result, name, minimum, value)
    return result


def check_shape(shape: Any, name: str) -> tuple[int, ...]:
    """A shape argument (any sequence of ints) as a tuple of ints in [0, MAX_INT]."""
    if isinstance(shape, str):
        raise TypeError(f"{name} must be a tuple of ints, got {shape!r}")
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(f"{name} must be a tuple of ints, got {shape!r}") from None
    return tuple(check_int(d, f"{name}[{i}]") for i, d in enumerate(dims))


def normalize_pair(value: Any, name: str, minimum: int = 1) -> Pair:
    """Turn an int or a pair of ints into (h, w), checking both are in [minimum, MAX_INT]."""
    if _is_int(value):
        pair = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) for v in value):
        pair = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    for v in pair:
        _check_range(v, name, minimum, value)
    return pair


def check_groups(groups: Any) -> int:
    """`groups` as an int in [1, MAX_INT] (bools, floats and strings are rejected)."""
    return check_int(groups, "groups", 1)


def check_array_size(shape: tuple[int, ...], itemsize: int, what: str) -> None:
    """Raise ValueError naming `what` when an array of this shape cannot exist: its byte
    count does not fit a signed pointer-sized integer (numpy's own error names nothing)."""
    nbytes = math.prod(shape) * itemsize
    if nbytes > _MAX_BYTES:
        raise ValueError(f"{what}: an array of shape {shape} would take {nbytes} bytes, "
                         "more than an array can hold")


def check_layout(layout: Any) -> str:
    if layout == "NHWC" or layout == "NCHW":
        return str(layout)
    raise ValueError(f"layout must be 'NHWC' or 'NCHW', got {layout!r}")


PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def check_padding_mode(mode: Any, name: str = "padding_mode") -> str:
    """One of PADDING_MODES (torch's names): what the padding reads. Its limits for a given
    input (reflect: every pad < the extent; circular: <= it) are checked by the core."""
    if type(mode) is str and mode in PADDING_MODES:
        return mode
    raise ValueError(f"{name} must be 'zeros', 'reflect', 'replicate' or 'circular', "
                     f"got {mode!r}")


ALGORITHMS = ("auto", "fast", "gemm", "winograd", "direct", "depthwise", "pointwise")


def check_algorithm(algorithm: Any) -> str:
    """One of ALGORITHMS: how the forward convolution is computed ("auto" lets the core
    choose among the algorithms that round as the GEMM does, "fast" lets it take Winograd
    too). Whether a named algorithm can run a given problem is checked by the core."""
    if type(algorithm) is str and algorithm in ALGORITHMS:
        return algorithm
    raise ValueError("algorithm must be 'auto', 'fast', 'gemm', 'winograd', 'direct', "
                     f"'depthwise' or 'pointwise', got {algorithm!r}")


def check_zeros_mode(mode: Any) -> None:
    """A transposed convolution has only zero padding (as in torch)."""
    if check_padding_mode(mode) != "zeros":
        raise ValueError(f"padding_mode: a transposed convolution supports only 'zeros', "
                         f"got {mode!r}")


def explicit_padding(padding: Any) -> tuple[Pair, Pair]:
    """Padding that needs no geometry: int, (p_h, p_w) or ((top, bottom), (left, right))."""
    if _is_int(padding):
        p = int(padding)
        result = ((p, p), (p, p))
    elif isinstance(padding, (tuple, list)) and len(padding) == 2:
        if all(_is_int(v) for v in padding):
            ph, pw = int(padding[0]), int(padding[1])
            result = ((ph, ph), (pw, pw))
        elif all(
            isinstance(v, (tuple, list)) and len(v) == 2 and all(_is_int(e) for e in v)
            for v in padding
        ):
            (t, b), (left, right) = padding
            result = ((int(t), int(b)), (int(left), int(right)))
        else:
            raise TypeError(
                "padding must be an int, (p_h, p_w), ((top, bottom), (left, right)), "
                f"'valid', 'same' or 'same_lower'; got {padding!r}"
            )
    else:
        raise TypeError(
            "padding must be an int, (p_h, p_w), ((top, bottom), (left, right)), "
            f"'valid', 'same' or 'same_lower'; got {padding!r}"
        )
    for v in result[0] + result[1]:
        _check_range(v, "padding", 0, padding)
    return result


def resolve_padding(
    padding: Any, in_hw: Pair, kernel_hw: Pair, stride_hw: Pair, dilation_hw: Pair
) -> tuple[Pair, Pair]:
    """Resolve any padding spelling to ((top, bottom), (left, right)).

    "same" gives out = ceil(in / stride) with the odd pixel at the bottom/right
    (TF / ONNX SAME_UPPER); "same_lower" puts it at the top/left.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0), (0, 0))
        if padding not in ("same", "same_lower"):
            raise ValueError(
                f"padding must be 'valid', 'same' or 'same_lower' when a string, got {padding!r}"
            )
        sides = []
        for n, k, s, d in zip(in_hw, kernel_hw, stride_hw, dilation_hw):
            out = -(-n // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
            if total > MAX_INT:
                raise ValueError(f"padding {padding!r} needs {total} rows or columns of "
                                 f"padding, more than {_MAX_INT_TEXT}")
            small = total // 2
            sides.append((small, total - small) if padding == "same" else (total - small, small))
        return (sides[0], sides[1])
    return explicit_padding(padding)


def output_size(n: int, k: int, s: int, d: int, before: int, after: int, axis: str) -> int:
    span = d * (k - 1) + 1
    padded = n + before + after
    if span > padded:
        raise ValueError(
            f"kernel_size: the {axis} kernel extent {span} (kernel {k}, dilation {d}) is larger "
            f"than the padded input {axis} {padded}"
        )
    return (padded - span) // s + 1


# DLPack device types (dlpack.h's DLDeviceType) by number, for the messages; kDLCPU is 1.
_DLPACK_CPU = 1
_DLPACK_DEVICES = {2: "CUDA", 3: "CUDA host", 4: "OpenCL", 7: "Vulkan", 8: "Metal", 9: "VPI",
                   10: "ROCm", 11: "ROCm host", 13: "CUDA managed", 14: "oneAPI"}


def from_dlpack(a: Any, name: str) -> npt.NDArray[Any]:
    """`a`, an object implementing the DLPack protocol (a PyTorch or JAX CPU tensor), as an
    ndarray of the same memory: no copy, any strides, read-only when `a` says its memory
    is. A tensor that requires grad, one on another device, and one whose dtype or flags
    NumPy cannot represent raise an error naming the argument."""
    if getattr(a, "requires_grad", False) is True:
        raise TypeError(f"{name} is a tensor that requires grad: convx computes outside "
                        f"autograd, so pass {name}.detach() (the same memory, no copy)")
    device = getattr(a, "__dlpack_device__", None)
    if device is not None:
        try:
            kind = int(device()[0])
        except (BufferError, RuntimeError, TypeError, ValueError) as e:
            raise ValueError(f"{name}: its DLPack device cannot be read ({e}); convx takes "
                             "arrays in CPU memory") from None
        if kind != _DLPACK_CPU:
            where = _DLPACK_DEVICES.get(kind, f"DLPack device type {kind}")
            raise ValueError(f"{name} is in {where} memory; convx takes arrays in CPU memory: "
                             f"copy it to the CPU first (in PyTorch, {name}.cpu())")
    try:
        return np.from_dlpack(a)
    except (BufferError, RuntimeError, TypeError, ValueError) as e:
        dtype = getattr(a, "dtype", None)
        what = type(a).__name__ if dtype is None else f"{type(a).__name__} of dtype {dtype}"
        raise TypeError(f"{name} ({what}) cannot be read through DLPack "
                        f"({str(e).rstrip('.')}); convx takes "
                        "float32 or float64 arrays in CPU memory") from None


def has_dlpack(a: Any) -> bool:
    """True for objects other than ndarrays (and their subclasses) that export DLPack."""
    return hasattr(type(a), "__dlpack__") and not isinstance(a, np.ndarray)


def as_array(a: Any, name: str) -> npt.NDArray[Any]:
    """`a` as an ndarray without a copy where one can be avoided: an ndarray is itself, a
    DLPack tensor its memory (see from_dlpack), anything else np.asarray(a)."""
    if type(a) is np.ndarray:
        return a
    if has_dlpack(a):
        return from_dlpack(a, name)
    return np.asarray(a)


def as_float_array(a: Any, name: str) -> npt.NDArray[Any]:
    """Return `a` as a C-contiguous float32/float64 array, copying only if needed."""
    if type(a) is not np.ndarray:
        a = as_array(a, name)
    if a.dtype.type not in _FLOAT_TYPES:
        kind = a.dtype.kind
        what = {
            "i": "an integer",
            "u": "an integer",
            "b": "a boolean",
            "c": "a complex",
            "f": "a half-precision" if a.dtype == np.float16 else "an unsupported float",
        }.get(kind, "an unsupported")
        hint = (
            "take the real part first" if kind == "c" else f"use {name}.astype(np.float32)"
        )
        raise TypeError(
            f"{name} has {what} dtype ({a.dtype}); convx computes in float32 or float64: "
            f"cast to float32 or float64 ({hint})"
        )
    if not a.dtype.isnative:  # byte-swapped data: one converting copy
        a = a.astype(a.dtype.newbyteorder("="))
    if not a.flags.c_contiguous:
        a = np.ascontiguousarray(a)
    return cast("npt.NDArray[Any]", a)


def as_out_array(out: Any) -> npt.NDArray[Any]:
    """An `out=` argument as the ndarray to write: an ndarray, or the memory of a DLPack
    tensor (check_out checks it further)."""
    if type(out) is np.ndarray:
        return out
    if has_dlpack(out):
        return from_dlpack(out, "out")
    raise TypeError(f"out must be a numpy.ndarray (or a CPU tensor implementing DLPack), got "
                    f"{type(out).__name__}")


def native_order(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """`a` itself when its bytes are in the machine's order, else one converting copy that
    keeps its memory layout (the C++ core reads native numbers only)."""
    if a.dtype.isnative:
        return a
    return a.astype(a.dtype.newbyteorder("="), order="K")


def float_dtype(dtype: Any) -> np.dtype[Any]:
    """A dtype argument as native float32 or float64: a byte-swapped spelling (">f4") names
    the same numbers, which convx computes in the machine's order."""
    dt: np.dtype[Any] = np.dtype(dtype)
    if dt.kind == "f":
        dt = dt.newbyteorder("=")
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {np.dtype(dtype)}")
    return dt


def common_dtype(first: npt.NDArray[Any], first_name: str, *others: tuple[Any, str]) -> None:
    """Raise TypeError unless every array has the dtype of `first`."""
    for arr, name in others:
        if arr is not None and arr.dtype != first.dtype:
            raise TypeError(
                f"{name} is {arr.dtype} but {first_name} is {first.dtype}; "
                f"cast both to the same dtype (float32 or float64)"
            )


def check_out(
    out: Any, shape: tuple[int, ...], dtype: np.dtype[Any], inputs: Sequence[Any]
) -> npt.NDArray[Any]:
    """Validate a caller-provided output buffer (an ndarray or a DLPack tensor) and return
    it as the ndarray to write, or allocate a fresh one."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    result = as_out_array(out)
    if result.shape != shape:
        raise ValueError(f"out has shape {result.shape}, expected {shape}")
    if not result.dtype.isnative:
        raise TypeError(
            f"out has dtype {result.dtype}, in non-native byte order: the result is written "
            f"in place in the machine's byte order, so out must have dtype {dtype}"
        )
    if result.dtype != dtype:
        raise TypeError(f"out has dtype {result.dtype}, expected {dtype}")
    if not result.flags.c_contiguous:
        raise ValueError("out must be C-contiguous")
    if not result.flags.writeable:
        raise ValueError("out must be writeable (read-only memory, such as a JAX array's or "
                         "a read-only NumPy view, cannot be written)")
    for arr in inputs:
        if arr is not None and np.may_share_memory(result, arr):
            raise ValueError("out must not overlap the input arrays")
    return result
