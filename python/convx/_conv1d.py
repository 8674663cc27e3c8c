"""1-D convolution: conv1d, conv1d_backward and the Conv1D layer.

A 1-D convolution is the 2-D one with a 1 x k kernel over a 1 x L image, so every
function here hands the 2-D code a view of its arrays with a unit axis inserted and
computes nothing itself:

    NLC input (N, L, C)         -> NHWC (N, 1, L, C)
    NCL input (N, C, L)         -> NCHW (N, C, 1, L)
    NLC weight (C_out, k, C_g)  -> OHWI (C_out, 1, k, C_g)
    NCL weight (C_out, C_g, k)  -> OIHW (C_out, C_g, 1, k)      (C_g = C_in / groups)

and the same for one signal, (L, C) or (C, L), and for `out=`. Inserting a unit axis
never copies (it is a view with one more stride), so the 2-D code sees the caller's
buffers: a C-contiguous float32/float64 input is read in place, `out=` is written in
place, and anything else is copied exactly once, by the 2-D code, as conv2d does.

NCL with (C_out, C_in/groups, k) weights is PyTorch's Conv1d; NLC with
(C_out, k, C_in/groups) weights is the channels-last form, as OHWI is for NHWC.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from convx import _interop
from convx import functional as _functional
from convx._args import (
    as_array,
    as_float_array,
    as_out_array,
    check_int,
    output_size,
    resolve_padding,
)
from convx._backward import conv2d_backward
from convx.functional import _plain, conv2d
from convx.layers import Conv2D

__all__ = ["Conv1D", "conv1d", "conv1d_backward", "conv1d_output_shape"]

Array = npt.NDArray[Any]
_LAYOUTS_2D = {"NLC": "NHWC", "NCL": "NCHW"}
_NEEDS = ("input", "weight", "bias")

# conv1d's calls by signature -> (2-D operator, unit axis of x, unit axis of the weight).
_OPS: dict[Any, tuple[Any, int, int]] = {}
_MAX_OPS = 512


def _unit_axis(layout: str, ndim: int) -> int:
    """Where the unit (height) axis goes in an activation or weight of `ndim` dimensions:
    before the length in NLC (before the second-to-last axis), before it in NCL too (the
    last axis)."""
    return ndim - 2 if layout == "NLC" else ndim - 1


# Index tuples that insert (None) or drop (0) the unit axis at positions 0-3.
_INSERT = tuple((slice(None),) * axis + (None,) for axis in range(4))
_DROP = tuple((slice(None),) * axis + (0,) for axis in range(4))


def _expand(a: Array, axis: int) -> Array:
    """`a` with a unit axis inserted at `axis`: always a view."""
    return a[_INSERT[axis]]


def _squeeze(a: Array, axis: int) -> Array:
    """`a` without its unit axis `axis`: always a view."""
    return a[_DROP[axis]]


def _check_layout(layout: Any) -> str:
    if layout == "NLC" or layout == "NCL":
        return str(layout)
    raise ValueError(f"layout must be 'NLC' or 'NCL', got {layout!r}")


def _single(value: Any, name: str, minimum: int = 1) -> int:
    """An int argument of a 1-D convolution, given as an int or a 1-tuple (as torch
    allows)."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if isinstance(value, (tuple, list)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    return check_int(value, name, minimum)


def _padding_2d(padding: Any) -> Any:
    """A 1-D padding argument in the 2-D spelling: int p or (p,) -> ((0, 0), (p, p)),
    (left, right) -> ((0, 0), (left, right)); "valid", "same" and "same_lower" as they
    are (with height 1 and a kernel of height 1 they pad no rows)."""
    if isinstance(padding, str):
        if padding not in ("valid", "same", "same_lower"):
            raise ValueError(f"padding must be 'valid', 'same' or 'same_lower' when a string, "
                             f"got {padding!r}")
        return padding
    if isinstance(padding, (tuple, list)) and len(padding) == 2:
        left = check_int(padding[0], "padding", 0)
        right = check_int(padding[1], "padding", 0)
        return ((0, 0), (left, right))
    if isinstance(padding, (tuple, list)) and len(padding) != 1:
        raise TypeError(f"padding must be an int, (left, right), 'valid', 'same' or "
                        f"'same_lower'; got {padding!r}")
    p = _single(padding, "padding", 0)
    return ((0, 0), (p, p))


def _as_array(a: Any, name: str) -> Array:
    """`a` itself when it is an ndarray (the 2-D code checks and converts it), else `a`
    converted as every convx argument is (lists, DLPack tensors)."""
    return a if type(a) is np.ndarray else as_float_array(a, name)


def _check_ndim(x: Array, weight: Array, layout: str, name: str = "x") -> None:
    if x.ndim not in (2, 3):
        expect = "(N, L, C) or (L, C)" if layout == "NLC" else "(N, C, L) or (C, L)"
        raise ValueError(f"{name} must be 3-D {expect} for layout {layout}, got shape "
                         f"{x.shape}")
    if weight.ndim != 3:
        expect = "(C_out, k, C_in/groups)" if layout == "NLC" else "(C_out, C_in/groups, k)"
        raise ValueError(f"weight must be 3-D {expect} for layout {layout}, got shape "
                         f"{weight.shape}")


def conv1d_output_shape(input_shape: tuple[int, ...], weight_shape: tuple[int, ...], *,
                        stride: Any = 1, padding: Any = 0, dilation: Any = 1,
                        layout: str = "NLC") -> tuple[int, ...]:
    """Shape of conv1d's output for these input and weight shapes, without computing it:
    L_out = floor((L + pad_left + pad_right - dilation*(k - 1) - 1) / stride) + 1."""
    layout = _check_layout(layout)
    if len(input_shape) not in (2, 3) or len(weight_shape) != 3:
        raise ValueError(f"input_shape must have 2 or 3 entries and weight_shape 3, got "
                         f"{tuple(input_shape)} and {tuple(weight_shape)}")
    length = int(input_shape[-2] if layout == "NLC" else input_shape[-1])
    c_out = int(weight_shape[0])
    k = int(weight_shape[1] if layout == "NLC" else weight_shape[2])
    s, d = _single(stride, "stride"), _single(dilation, "dilation")
    pads = _padding_2d(padding)
    (_, _), (left, right) = resolve_padding(pads, (1, length), (1, k), (1, s), (1, d))
    l_out = output_size(length, k, s, d, left, right, "length")
    lead = tuple(int(v) for v in input_shape[:-2])
    return (*lead, l_out, c_out) if layout == "NLC" else (*lead, c_out, l_out)


def conv1d(
    x: npt.ArrayLike,
    weight: npt.ArrayLike,
    bias: npt.ArrayLike | None = None,
    *,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    layout: str = "NLC",
    activation: str | None = None,
    padding_mode: str = "zeros",
    algorithm: str = "auto",
    out: Array | None = None,
) -> Array:
    """1-D convolution (cross-correlation, as torch.nn.functional.conv1d) of a batch or
    one signal.

    y[i, m] = act(bias[m] + sum_{u, c} x_pad[i*stride + u*dilation, c] * w[m, u, c])

    Args:
        x: (N, L, C_in) or (L, C_in) for NLC; (N, C_in, L) or (C_in, L) for NCL.
        weight: (C_out, k, C_in/groups) for NLC; (C_out, C_in/groups, k) for NCL (torch's).
        bias: (C_out,) or None.
        stride, dilation: int (or a 1-tuple), >= 1.
        padding: int, (left, right), "valid", "same" (out = ceil(L/stride), the odd
            element on the right) or "same_lower" (on the left).
        groups, activation: as for conv2d.
        padding_mode: "zeros", "reflect", "replicate" or "circular", as in torch (see
            conv2d): the values the padding reads, gathered with the patches.
        algorithm: as for conv2d ("auto", "gemm", "direct", ...; a 1 x k filter never
            takes Winograd).
        out: optional C-contiguous, writeable array of the exact output shape and dtype;
            it is written in place and returned.

    It runs conv2d on views of its arrays (see the module docstring), with no copy of
    its own, and returns the output in ``layout`` (a view of the 2-D result).
    """
    # A call seen before goes straight to its cached 2-D operator (see conv2d), with the
    # arguments that make the key plain values only.
    key = None
    if (out is None and type(x) is np.ndarray and type(weight) is np.ndarray
            and (bias is None or type(bias) is np.ndarray) and type(stride) is int
            and type(dilation) is int and _plain(padding) and type(groups) is int
            and type(layout) is str and (activation is None or type(activation) is str)
            and type(padding_mode) is str and type(algorithm) is str):
        key = (x.shape, x.dtype, weight.shape, bias is None, stride, padding, dilation,
               groups, layout, activation, padding_mode, algorithm)
        hit = _OPS.get(key)
        if hit is not None:
            op, axis, w_axis = hit
            y = op.try_call(_expand(x, axis), _expand(weight, w_axis), bias, None)
            if y is not None:
                return _squeeze(y, axis)
    layout = _check_layout(layout)
    xa, wa = _as_array(x, "x"), _as_array(weight, "weight")
    _check_ndim(xa, wa, layout)
    s, d, pads = _single(stride, "stride"), _single(dilation, "dilation"), _padding_2d(padding)
    axis, w_axis = _unit_axis(layout, xa.ndim), _unit_axis(layout, 3)
    outa = None if out is None else as_out_array(out)
    x2, w2 = _expand(xa, axis), _expand(wa, w_axis)
    try:
        y = conv2d(x2, w2, bias, stride=(1, s), padding=pads, dilation=(1, d), groups=groups,
                   layout=_LAYOUTS_2D[layout], activation=activation,
                   out=None if outa is None else _expand(outa, axis), padding_mode=padding_mode,
                   algorithm=algorithm)
    except ValueError as e:
        _explain_1d(xa.shape, wa.shape, s, pads, d, layout, outa)
        raise _in_1d_terms(e) from None
    if key is not None:  # the operator conv2d cached for this call, if it did
        op2 = _functional._OPS.get(_functional._op_key(
            x2, w2, bias, (1, s), pads, (1, d), groups, _LAYOUTS_2D[layout], activation,
            padding_mode, algorithm))
        if op2 is not None:
            if len(_OPS) >= _MAX_OPS:
                _OPS.clear()
            _OPS[key] = (op2, axis, w_axis)
    return _squeeze(y, axis) if outa is None else outa


def _explain_1d(x_shape: tuple[int, ...], w_shape: tuple[int, ...], stride: int, pads: Any,
                dilation: int, layout: str, out: Array | None) -> None:
    """Raise the 1-D wording of an error the 2-D call reported in its own terms (a kernel
    longer than the padded signal, an `out` of the wrong shape); return when there is
    none, and the 2-D error stands."""
    shape = conv1d_output_shape(x_shape, w_shape, stride=stride, padding=_pads_1d(pads),
                                dilation=dilation, layout=layout)
    if out is not None and out.shape != shape:
        raise ValueError(f"out has shape {out.shape}, expected {shape}")


def _in_1d_terms(error: ValueError) -> ValueError:
    """A padding_mode error of the 2-D call, which names the width, worded for a signal."""
    message = str(error)
    if not message.startswith("padding_mode"):
        return error
    return ValueError(message.replace("input width", "input length").replace("the width",
                                                                            "the length"))


def _pads_1d(pads: Any) -> Any:
    """The inverse of _padding_2d, for the 1-D messages."""
    return pads if isinstance(pads, str) else pads[1]


def conv1d_backward(
    grad_out: npt.ArrayLike,
    x: npt.ArrayLike,
    weight: npt.ArrayLike,
    *,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    layout: str = "NLC",
    padding_mode: str = "zeros",
    needs: Iterable[str] = _NEEDS,
) -> tuple[Array | None, Array | None, Array | None]:
    """The gradients (dx, dw, db) of y = conv1d(x, weight, bias, ...) for dL/dy = grad_out,
    computed by conv2d_backward on views with a unit axis (see conv2d_backward: dx in x's
    shape, dw in the weight's, db of shape (C_out,); None for what `needs` leaves out)."""
    layout = _check_layout(layout)
    xa, wa = _as_array(x, "x"), _as_array(weight, "weight")
    ga = _as_array(grad_out, "grad_out")
    _check_ndim(xa, wa, layout)
    _check_ndim(ga, wa, layout, "grad_out")
    s, d, pads = _single(stride, "stride"), _single(dilation, "dilation"), _padding_2d(padding)
    axis, w_axis = _unit_axis(layout, xa.ndim), _unit_axis(layout, 3)
    try:
        dx, dw, db = conv2d_backward(_expand(ga, axis), _expand(xa, axis), _expand(wa, w_axis),
                                     stride=(1, s), padding=pads, dilation=(1, d),
                                     groups=groups, layout=_LAYOUTS_2D[layout],
                                     padding_mode=padding_mode, needs=needs)
    except ValueError as e:
        shape = conv1d_output_shape(xa.shape, wa.shape, stride=s, padding=_pads_1d(pads),
                                    dilation=d, layout=layout)
        if ga.shape != shape:
            raise ValueError(f"grad_out must have the output's shape {shape}, got "
                             f"{ga.shape}") from None
        raise _in_1d_terms(e) from None
    return (None if dx is None else _squeeze(dx, axis),
            None if dw is None else _squeeze(dw, w_axis), db)


class Conv1D:
    """A 1-D convolution layer (torch.nn.Conv1d), computed by a Conv2D with a 1 x k kernel.

    Weights are (out_channels, kernel_size, in_channels/groups) for layout "NLC" and
    (out_channels, in_channels/groups, kernel_size) for "NCL" (torch's), initialised as
    Conv2D initialises them (PyTorch's U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
    fan_in = in_channels/groups * kernel_size; with the same seed, the same numbers as
    the equivalent Conv2D). ``layer(x, *, out=None, save_input=None)`` takes (N, L, C) or
    (L, C) in NLC and (N, C, L) or (C, L) in NCL and hands the 2-D layer views of x and out
    (no copies); learning (``backward``, ``zero_grad``, ``parameters``, ``weight_grad``,
    ``bias_grad``, ``save_input``), ``algorithm`` and ``kernel`` are the 2-D layer's, seen
    through the same views. The weight, bias and geometry may be reassigned as on Conv2D
    (kernel_size, groups and layout are fixed). It pickles and copies with its weights.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        *,
        layout: str = "NLC",
        dtype: Any = np.float32,
        seed: int | None = None,
        activation: str | None = None,
        padding_mode: str = "zeros",
        algorithm: str = "auto",
    ) -> None:
        self._layout = _check_layout(layout)
        k = _single(kernel_size, "kernel_size")
        s, d = _single(stride, "stride"), _single(dilation, "dilation")
        self._padding = padding
        self._conv = Conv2D(in_channels, out_channels, (1, k), (1, s), _padding_2d(padding),
                            (1, d), groups, bias, layout=_LAYOUTS_2D[self._layout], dtype=dtype,
                            seed=seed, activation=activation, padding_mode=padding_mode,
                            algorithm=algorithm)

    # -- configuration ----------------------------------------------------------------

    in_channels = property(lambda self: self._conv.in_channels)
    out_channels = property(lambda self: self._conv.out_channels)
    groups = property(lambda self: self._conv.groups)
    layout = property(lambda self: self._layout)
    dtype = property(lambda self: self._conv.dtype)
    padding_mode = property(lambda self: self._conv.padding_mode)
    requested_algorithm = property(lambda self: self._conv.requested_algorithm,
                                   doc="The algorithm asked for (see conv2d's `algorithm`).")
    algorithm = property(lambda self: self._conv.algorithm,
                         doc="The algorithm of the last call (see Conv2D.algorithm).")
    kernel = property(lambda self: self._conv.kernel,
                      doc="The micro-kernel of the last call (see Conv2D.kernel).")

    @property
    def kernel_size(self) -> int:
        return int(self._conv.kernel_size[1])

    @property
    def stride(self) -> int:
        return int(self._conv.stride[1])

    @stride.setter
    def stride(self, value: Any) -> None:
        self._conv.stride = (1, _single(value, "stride"))

    @property
    def dilation(self) -> int:
        return int(self._conv.dilation[1])

    @dilation.setter
    def dilation(self, value: Any) -> None:
        self._conv.dilation = (1, _single(value, "dilation"))

    @property
    def padding(self) -> Any:
        """The padding as given: int, (left, right), "valid", "same" or "same_lower"."""
        return self._padding

    @padding.setter
    def padding(self, value: Any) -> None:
        self._conv.padding = _padding_2d(value)
        self._padding = value

    @property
    def activation(self) -> str | None:
        return self._conv.activation

    @activation.setter
    def activation(self, value: str | None) -> None:
        self._conv.activation = value

    @property
    def weight_shape(self) -> tuple[int, int, int]:
        c_g = self.in_channels // self.groups
        if self._layout == "NLC":
            return (self.out_channels, self.kernel_size, c_g)
        return (self.out_channels, c_g, self.kernel_size)

    # -- parameters -------------------------------------------------------------------

    @property
    def weight(self) -> Array:
        """The filters ((C_out, k, C_in/groups) for NLC, (C_out, C_in/groups, k) for NCL):
        a read-only view of the 2-D layer's. Assign a new array to change them (copied)."""
        return _squeeze(self._conv.weight, _unit_axis(self._layout, 3))

    @weight.setter
    def weight(self, value: npt.ArrayLike) -> None:
        arr = as_array(value, "weight")
        if arr.shape != self.weight_shape:
            raise ValueError(f"weight must have shape {self.weight_shape}, got {arr.shape}")
        self._conv.weight = _expand(arr, _unit_axis(self._layout, 3))

    @property
    def bias(self) -> Array | None:
        """The (out_channels,) bias, read-only, or None. Assign to change it (copied)."""
        return self._conv.bias

    @bias.setter
    def bias(self, value: npt.ArrayLike | None) -> None:
        self._conv.bias = value

    @property
    def weight_grad(self) -> Array | None:
        """The sum of backward's dL/dweight, in the weight's shape, or None."""
        g = self._conv.weight_grad
        return None if g is None else _squeeze(g, _unit_axis(self._layout, 3))

    @weight_grad.setter
    def weight_grad(self, value: Array | None) -> None:
        self._conv.weight_grad = (None if value is None
                                  else _expand(np.asarray(value), _unit_axis(self._layout, 3)))

    @property
    def bias_grad(self) -> Array | None:
        return self._conv.bias_grad

    @bias_grad.setter
    def bias_grad(self, value: Array | None) -> None:
        self._conv.bias_grad = value

    @property
    def save_input(self) -> bool:
        """Whether a call keeps its input (a view of it) for backward; True by default."""
        return bool(self._conv.save_input)

    @save_input.setter
    def save_input(self, value: bool) -> None:
        self._conv.save_input = value

    def parameters(self) -> dict[str, Array]:
        """The learnable arrays by name ("weight", and "bias" when there is one), read-only:
        update them by assignment."""
        params = {"weight": self.weight}
        if self.bias is not None:
            params["bias"] = self.bias
        return params

    def zero_grad(self) -> None:
        """Forget the accumulated gradients (weight_grad and bias_grad become None)."""
        self._conv.zero_grad()

    # -- other libraries --------------------------------------------------------------

    @classmethod
    def from_torch(cls, module: Any, *, layout: str = "NLC", dtype: Any = None) -> Conv1D:
        """A layer computing what the torch.nn.Conv1d `module` computes: its geometry,
        padding_mode, weight (converted to `layout`) and bias; dtypes as Conv2D.from_torch."""
        return _interop.conv1d_from_torch(cls, module, layout, dtype)

    def to_torch(self) -> Any:
        """A torch module computing what this layer computes: an nn.Conv1d, preceded by a
        padding module when the padding is asymmetric and followed by nn.ReLU for
        activation="relu" (then an nn.Sequential)."""
        return _interop.conv1d_to_torch(self)

    def state_dict(self) -> dict[str, Array]:
        """{"weight", "bias"} as torch.nn.Conv1d names them, the weight
        (C_out, C_in/groups, k) whatever the layout (new, writable arrays)."""
        d = self._conv.state_dict()
        d["weight"] = np.ascontiguousarray(d["weight"][:, :, 0, :])
        return d

    def load_state_dict(self, state_dict: Any, strict: bool = True) -> None:
        """Set weight and bias from a torch-style state dict (numpy arrays or tensors, the
        weight (C_out, C_in/groups, k)); keys and shapes are checked as on Conv2D."""
        if isinstance(state_dict, Mapping) and "weight" in state_dict:
            w = as_array(state_dict["weight"], "state_dict['weight']")
            want = (self.out_channels, self.in_channels // self.groups, self.kernel_size)
            if w.shape != want:
                raise ValueError(f"state_dict['weight'] has shape {w.shape}, the layer's is "
                                 f"{want} (torch's (C_out, C_in/groups, k))")
            state_dict = {**state_dict, "weight": w[:, :, None, :]}
        self._conv.load_state_dict(state_dict, strict)

    # -- computing --------------------------------------------------------------------

    def __call__(self, x: npt.ArrayLike, *, out: Array | None = None,
                 save_input: bool | None = None) -> Array:
        xa = x if type(x) is np.ndarray else as_float_array(x, "x")
        ndim = xa.ndim
        if ndim != 3 and ndim != 2:
            _check_ndim(xa, self.weight, self._layout)
        axis = _unit_axis(self._layout, ndim)
        conv = self._conv
        if out is None and save_input is None:
            try:
                return _squeeze(conv(_expand(xa, axis)), axis)
            except ValueError:
                self.output_shape(xa.shape)  # raises the 1-D wording of a geometry error
                raise
        outa = None if out is None else as_out_array(out)
        extra = {} if save_input is None else {"save_input": save_input}
        try:
            y = conv(_expand(xa, axis), out=None if outa is None else _expand(outa, axis),
                     **extra)
        except ValueError:
            shape = self.output_shape(xa.shape)
            if outa is not None and outa.shape != shape:
                raise ValueError(f"out has shape {outa.shape}, expected {shape}") from None
            raise
        return _squeeze(y, axis) if outa is None else outa

    def backward(self, grad_out: npt.ArrayLike) -> Array:
        """dL/dx for the input of the last call, given grad_out = dL/dy; adds dL/dweight to
        ``weight_grad`` and dL/dbias to ``bias_grad`` (see Conv2D.backward)."""
        ga = _as_array(grad_out, "grad_out")
        if ga.ndim not in (2, 3):
            _check_ndim(ga, self.weight, self._layout, "grad_out")
        axis = _unit_axis(self._layout, ga.ndim)
        return _squeeze(self._conv.backward(_expand(ga, axis)), axis)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape __call__ returns for an input of this shape."""
        return conv1d_output_shape(input_shape, self.weight_shape, stride=self.stride,
                                   padding=self._padding, dilation=self.dilation,
                                   layout=self._layout)

    def __repr__(self) -> str:
        mode = self._conv.padding_mode
        mode = "" if mode == "zeros" else f", padding_mode={mode!r}"
        if self.requested_algorithm != "auto":
            mode += f", algorithm={self.requested_algorithm!r}"
        return (f"Conv1D({self.in_channels}, {self.out_channels}, "
                f"kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self._padding!r}, dilation={self.dilation}, groups={self.groups}, "
                f"bias={self.bias is not None}, layout={self._layout!r}, "
                f"dtype={self.weight.dtype}, activation={self.activation!r}{mode})")
