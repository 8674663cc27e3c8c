"""Conv2D: a convolution layer that owns its weights."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from convx import _core
from convx._args import PaddingArg, check_layout, normalize_pair
from convx.functional import _conv2d_checked, _plain, output_shape

__all__ = ["Conv2D"]

# The public attributes a cached plan depends on besides the input's shape and dtype.
_SIGNATURE_ATTRS = ("stride", "padding", "dilation", "activation", "groups", "layout")
# Compiled state (packed weights, bound plans) that copies and pickles rebuild, not carry.
_REBUILT_ATTRS = ("_prepared", "_plans", "_fast", "_sig")


def _no_plan(x: Any, out: Any) -> None:
    """Conv2D._fast before a plan is cached: every input takes the validating path."""
    return None


class Conv2D(_core.LayerBase):
    """A 2-D convolution layer (cross-correlation, as in PyTorch and TensorFlow).

    Weights are OHWI (out_channels, k_h, k_w, in_channels/groups) for layout "NHWC" and
    OIHW (out_channels, in_channels/groups, k_h, k_w) for "NCHW". They and the bias are
    initialised as in PyTorch, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
    fan_in = in_channels/groups * k_h * k_w, reproducibly when ``seed`` is given.

    ``layer(x, *, out=None)`` applies the layer to a batch (4-D) or a single image (3-D)
    in the layer's layout, into ``out`` when given. The call itself is implemented in C
    (``_core.LayerBase``): a repeated call with an input of the same shape and dtype runs
    the plan cached for it with no Python frame; anything else takes ``_call_slow``.
    """

    _sig: tuple[Any, ...] | bool | None = None  # see _signature
    _fast: Callable[[Any, Any], npt.NDArray[Any] | None]  # see __call__

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: PaddingArg = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        *,
        layout: str = "NHWC",
        dtype: Any = np.float32,
        seed: int | None = None,
        activation: str | None = None,
    ) -> None:
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            ("groups", groups)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int, got {value!r}")
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if in_channels % groups != 0:
            raise ValueError(f"groups: in_channels {in_channels} is not divisible by "
                             f"groups={groups}")
        if out_channels % groups != 0:
            raise ValueError(f"groups: out_channels {out_channels} is not divisible by "
                             f"groups={groups}")
        dt = np.dtype(dtype)
        if dt not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dt}")
        if activation not in (None, "relu"):
            raise ValueError(f"activation must be None or 'relu', got {activation!r}")
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size = normalize_pair(kernel_size, "kernel_size")
        self.stride = normalize_pair(stride, "stride")
        self.dilation = normalize_pair(dilation, "dilation")
        self.padding = padding
        self.groups = int(groups)
        self.layout = check_layout(layout)
        self.activation = activation
        if not isinstance(padding, str):
            from convx._args import resolve_padding  # validates spelling and sign now

            resolve_padding(padding, (1, 1), (1, 1), (1, 1), (1, 1))

        self.dtype = dt
        shape = self.weight_shape
        fan_in = shape[1] * shape[2] * shape[3]
        bound = 1.0 / math.sqrt(fan_in)
        rng = np.random.default_rng(seed)
        self._plans: dict[Any, Callable[[Any, Any], npt.NDArray[Any] | None]] = {}
        self._bias: npt.NDArray[Any] | None = None
        self.weight = rng.uniform(-bound, bound, size=shape).astype(dt)
        self.bias = rng.uniform(-bound, bound, size=(out_channels,)).astype(dt) if bias else None

    @property
    def weight(self) -> npt.NDArray[Any]:
        """The filters (OHWI for NHWC, OIHW for NCHW): a read-only array the layer owns.

        The layer packs them once for its kernels, so they cannot be edited in place;
        assign a new array (``layer.weight = w``) to change them. It is copied.
        """
        return self._weight

    @weight.setter
    def weight(self, value: npt.ArrayLike) -> None:
        arr = np.array(value, dtype=self.dtype, copy=True, order="C")
        if arr.shape != self.weight_shape:
            raise ValueError(f"weight must have shape {self.weight_shape}, got {arr.shape}")
        arr.setflags(write=False)
        self._prepared = _core.PreparedWeights(arr, self.groups, self.layout)
        self._weight = arr
        self._drop_plans()  # they hold the previous weights

    @property
    def bias(self) -> npt.NDArray[Any] | None:
        """The (out_channels,) bias, read-only, or None. Assign to change it; it is copied."""
        return self._bias

    @bias.setter
    def bias(self, value: npt.ArrayLike | None) -> None:
        self._drop_plans()  # they hold the previous bias
        if value is None:
            self._bias = None
            return
        arr = np.array(value, dtype=self.dtype, copy=True)
        if arr.shape != (self.out_channels,):
            raise ValueError(f"bias must have shape ({self.out_channels},), got {arr.shape}")
        arr.setflags(write=False)
        self._bias = arr

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        k_h, k_w = self.kernel_size
        c_g = self.in_channels // self.groups
        if self.layout == "NHWC":
            return (self.out_channels, k_h, k_w, c_g)
        return (self.out_channels, c_g, k_h, k_w)

    def _call_slow(self, x: npt.ArrayLike, *, out: npt.NDArray[Any] | None = None
                   ) -> npt.NDArray[Any]:
        """The layer's call when the cached plan ``_fast`` declined it (see the class
        docstring): self._fast(x, out) is the plan of the last input shape, bound to this
        layer's weights and bias. It returns None for an input it cannot take as is
        (another shape or dtype, or one that needs a copy) and raises for a bad out."""
        return self._call_checked(x, out)

    def _call_checked(self, x: Any, out: npt.NDArray[Any] | None) -> npt.NDArray[Any]:
        sig = self._sig
        if sig is None:
            sig = self._sig = self._signature()
        key = None
        if type(x) is np.ndarray and sig:
            # Plans are dropped whenever the weights, the bias or the geometry change,
            # so the input's shape and dtype are the whole key.
            key = (x.shape, x.dtype)
            bound = self._plans.get(key)
            if bound is not None:
                try:
                    y = bound(x, out)
                except (TypeError, ValueError):
                    y = None  # re-run with full validation for a clear error
                if y is not None:
                    self._fast = bound
                    return y
        result = _conv2d_checked(x, self._weight, self._bias, self.stride, self.padding,
                                 self.dilation, self.groups, self.layout, self.activation,
                                 False, out, self._plans, key, self._prepared)
        if key is not None and key in self._plans:
            self._fast = self._plans[key]
        return result

    def __getstate__(self) -> dict[str, Any]:
        """What copy.deepcopy and pickle carry: the configuration and the arrays. The packed
        weights and the cached plans hold compiled objects and are rebuilt from them."""
        return {k: v for k, v in self.__dict__.items() if k not in _REBUILT_ATTRS}

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        weight, bias = state.pop("_weight"), state.pop("_bias")
        self.__dict__.update(state)
        self._plans = {}
        self._bias = None
        self.weight = weight  # copies and packs, as assigning them does
        self.bias = bias

    def _drop_plans(self) -> None:
        """Forget every cached plan: the weights, the bias or the geometry changed."""
        plans = self.__dict__.get("_plans")
        if plans is not None:
            plans.clear()
        object.__setattr__(self, "_fast", _no_plan)

    def __setattr__(self, name: str, value: Any) -> None:
        # The geometry attributes are public and may be reassigned; the cached plans
        # were made for the old values, so a change drops them (see _signature).
        if name in _SIGNATURE_ATTRS:
            object.__setattr__(self, "_sig", None)
            self._drop_plans()
        object.__setattr__(self, name, value)

    def _signature(self) -> tuple[Any, ...] | bool:
        """The geometry, or False when plans must not be cached for it: unhashable values,
        or values that compare equal to others of a different meaning (1.0 == 1), which
        must take the validating path on every call."""
        values = tuple(getattr(self, name) for name in _SIGNATURE_ATTRS)
        if not (_plain(values[0]) and _plain(values[1]) and _plain(values[2])):
            return False
        if values[3] is not None and type(values[3]) is not str:
            return False
        if type(values[4]) is not int or type(values[5]) is not str:
            return False
        return values

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape __call__ returns for an input of this shape."""
        return output_shape(input_shape, self.weight.shape, stride=self.stride,
                            padding=self.padding, dilation=self.dilation, layout=self.layout)

    def __repr__(self) -> str:
        return (f"Conv2D({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding!r}, dilation={self.dilation}, "
                f"groups={self.groups}, bias={self.bias is not None}, layout={self.layout!r}, "
                f"dtype={self.weight.dtype}, activation={self.activation!r})")
