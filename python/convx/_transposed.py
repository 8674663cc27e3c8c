"""ConvTranspose2D: a transposed-convolution layer that owns its weights and learns."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from convx import _interop
from convx._args import (
    as_float_array,
    check_array_size,
    check_int,
    check_layout,
    check_zeros_mode,
    explicit_padding,
    float_dtype,
    normalize_pair,
)
from convx._backward import conv2d_backward, conv_transpose2d
from convx.functional import conv2d

__all__ = ["ConvTranspose2D"]

Array = npt.NDArray[Any]


class ConvTranspose2D:
    """A transposed-convolution layer (PyTorch's ConvTranspose2d, ONNX's ConvTranspose).

    The weight is that of the convolution it transposes: (in_channels, k_h, k_w,
    out_channels/groups) for layout "NHWC" and (in_channels, out_channels/groups, k_h, k_w)
    for "NCHW", initialised as in PyTorch, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
    fan_in = out_channels/groups * k_h * k_w, reproducibly when ``seed`` is given. Each
    spatial axis of the output has
        (in - 1)*stride - pad_before - pad_after + dilation*(k - 1) + output_padding + 1
    values; ``layer(x, output_size=(H, W))`` chooses output_padding instead.

    Learning works as for Conv2D: a call keeps a reference to its input unless
    ``save_input`` is False; ``backward(grad_out)`` returns dL/dx and adds to
    ``weight_grad`` and ``bias_grad``; ``zero_grad()`` and ``parameters()``. Parameters are
    read-only arrays: assign new ones (they are copied).
    """

    save_input: bool = True
    weight_grad: Array | None = None
    bias_grad: Array | None = None

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        output_padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        *,
        layout: str = "NHWC",
        dtype: Any = np.float32,
        seed: int | None = None,
        padding_mode: str = "zeros",
    ) -> None:
        check_zeros_mode(padding_mode)  # the only mode torch has for ConvTranspose2d
        self.in_channels = check_int(in_channels, "in_channels", 1)
        self.out_channels = check_int(out_channels, "out_channels", 1)
        self.groups = check_int(groups, "groups", 1)
        for name, value in (("in_channels", self.in_channels),
                            ("out_channels", self.out_channels)):
            if value % self.groups:
                raise ValueError(f"groups: {name} {value} is not divisible by "
                                 f"groups={self.groups}")
        self.kernel_size = normalize_pair(kernel_size, "kernel_size")
        self.stride = normalize_pair(stride, "stride")
        self.dilation = normalize_pair(dilation, "dilation")
        if isinstance(padding, str):
            raise ValueError(f"padding must be an int, a pair or ((top, bottom), (left, right)) "
                             f"for a transposed convolution, got {padding!r}")
        self.padding = explicit_padding(padding)
        self.output_padding = normalize_pair(output_padding, "output_padding", minimum=0)
        for axis, name in ((0, "height"), (1, "width")):
            if self.output_padding[axis] >= max(self.stride[axis], self.dilation[axis]):
                raise ValueError(f"output_padding ({name}) must be smaller than the stride or "
                                 f"the dilation, got {self.output_padding[axis]}")
        self.layout = check_layout(layout)
        self.dtype = float_dtype(dtype)
        shape = self.weight_shape
        check_array_size(shape, self.dtype.itemsize, "in_channels, out_channels and kernel_size")
        fan_in = self.out_channels // self.groups * self.kernel_size[0] * self.kernel_size[1]
        limit = 1.0 / math.sqrt(fan_in)
        rng = np.random.default_rng(seed)
        self.weight = rng.uniform(-limit, limit, size=shape)
        self.bias = rng.uniform(-limit, limit, size=(self.out_channels,)) if bias else None
        self._saved_input: Array | None = None

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        k_h, k_w = self.kernel_size
        per_group = self.out_channels // self.groups
        if self.layout == "NHWC":
            return (self.in_channels, k_h, k_w, per_group)
        return (self.in_channels, per_group, k_h, k_w)

    @property
    def weight(self) -> Array:
        """The filters, a read-only array the layer owns; assign to change them."""
        return self._weight

    @weight.setter
    def weight(self, value: npt.ArrayLike) -> None:
        arr = np.array(value, dtype=self.dtype, copy=True, order="C")
        if arr.shape != self.weight_shape:
            raise ValueError(f"weight must have shape {self.weight_shape}, got {arr.shape}")
        arr.setflags(write=False)
        self._weight = arr
        self._saved_input = None  # a gradient belongs to the weights of its forward

    @property
    def bias(self) -> Array | None:
        """The (out_channels,) bias, read-only, or None; assign to change it."""
        return self._bias

    @bias.setter
    def bias(self, value: npt.ArrayLike | None) -> None:
        arr = None
        if value is not None:
            arr = np.array(value, dtype=self.dtype, copy=True)
            if arr.shape != (self.out_channels,):
                raise ValueError(f"bias must have shape ({self.out_channels},), got {arr.shape}")
            arr.setflags(write=False)
        self._bias = arr

    def _geometry(self) -> dict[str, Any]:
        return {"stride": self.stride, "padding": self.padding, "dilation": self.dilation,
                "groups": self.groups, "layout": self.layout}

    def __call__(self, x: npt.ArrayLike, *, output_size: Any = None, out: Array | None = None,
                 save_input: bool | None = None) -> Array:
        if save_input is None:
            save_input = self.save_input
        elif type(save_input) is not bool:
            raise TypeError(f"save_input must be True or False, got {save_input!r}")
        xa = as_float_array(x, "x")
        padding = self.output_padding if output_size is None else 0
        y = conv_transpose2d(xa, self._weight, self._bias, output_padding=padding,
                             output_size=output_size, out=out, **self._geometry())
        self._saved_input = xa if save_input else None
        return y

    def backward(self, grad_out: npt.ArrayLike) -> Array:
        """dL/dx for the input of the last call, given grad_out = dL/dy; adds dL/dweight to
        ``weight_grad`` and dL/dbias to ``bias_grad``."""
        x = self._saved_input
        if x is None:
            raise RuntimeError("backward: no input saved; call the layer first, with "
                               "save_input on, and after any assignment of its weight")
        g = as_float_array(grad_out, "grad_out")
        # The layer is the adjoint of conv2d with its weight: y = C^T x, so dL/dx = C g and
        # dL/dW is conv2d's weight gradient for input g and upstream gradient x.
        dx = conv2d(g, self._weight, **self._geometry())
        if dx.shape != x.shape:
            raise ValueError(f"grad_out of shape {g.shape} does not match the last output")
        _, dw, _ = conv2d_backward(x, g, self._weight, needs=("weight",), **self._geometry())
        assert dw is not None
        self.weight_grad = dw if self.weight_grad is None else self.weight_grad + dw
        if self._bias is not None:
            channel = -1 if self.layout == "NHWC" else (1 if g.ndim == 4 else 0)
            axes = tuple(a for a in range(g.ndim) if a != channel % g.ndim)
            db = g.sum(axis=axes)
            self.bias_grad = db if self.bias_grad is None else self.bias_grad + db
        return dx

    def zero_grad(self) -> None:
        """Forget the accumulated gradients (weight_grad and bias_grad become None)."""
        self.weight_grad = None
        self.bias_grad = None

    def parameters(self) -> dict[str, Array]:
        """The learnable arrays by name ("weight", and "bias" when there is one)."""
        params = {"weight": self._weight}
        if self._bias is not None:
            params["bias"] = self._bias
        return params

    # Interchange with PyTorch and ONNX (convx._interop; docs/interop.md).

    @classmethod
    def from_torch(cls, module: Any, *, layout: str = "NHWC",
                   dtype: Any = None) -> ConvTranspose2D:
        """A layer computing what the torch.nn.ConvTranspose2d `module` computes."""
        return _interop.transpose_from_torch(cls, module, layout, dtype)

    def to_torch(self) -> Any:
        """A torch.nn.ConvTranspose2d computing what this layer computes."""
        return _interop.transpose_to_torch(self)

    @classmethod
    def from_onnx(cls, node: Any, initializers: Any, *, layout: str = "NCHW",
                  dtype: Any = None, input_shape: Any = None) -> ConvTranspose2D:
        """A layer computing the ONNX ConvTranspose `node` with weights from
        `initializers`. A node with output_shape or auto_pad SAME_* pads by the input
        size: give `input_shape` ((H, W), or the full input shape)."""
        return _interop.transpose_from_onnx(cls, node, initializers, layout, dtype,
                                            input_shape)

    def state_dict(self) -> dict[str, Array]:
        """{"weight", "bias"} as torch.nn.ConvTranspose2d names them, the weight
        (C_in, C_out/groups, kH, kW) whatever the layout (new, writable arrays)."""
        return _interop.state_dict(self)

    def load_state_dict(self, state_dict: Any, strict: bool = True) -> None:
        """Set weight and bias from a torch-style state dict (see Conv2D.load_state_dict)."""
        _interop.load_state_dict(self, state_dict, strict)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_saved_input"] = None
        return state

    def __repr__(self) -> str:
        return (f"ConvTranspose2D({self.in_channels}, {self.out_channels}, "
                f"kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, output_padding={self.output_padding}, "
                f"dilation={self.dilation}, groups={self.groups}, bias={self._bias is not None}, "
                f"layout={self.layout!r}, dtype={self.dtype})")
