"""Conv2D: a convolution layer that owns its weights."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from convx import _core, _interop
from convx._args import (
    PaddingArg,
    as_array,
    check_algorithm,
    check_array_size,
    check_int,
    check_layout,
    check_padding_mode,
    float_dtype,
    normalize_pair,
    resolve_padding,
)
from convx._backward import conv2d_backward
from convx.functional import _dlpack_arrays, _make_op, _normalise, _plain, output_shape

__all__ = ["Conv2D"]

# The public attributes a cached operator depends on besides the input's shape and dtype, in
# the order _LayerState.geometry holds them.
_SIGNATURE_ATTRS = ("stride", "padding", "dilation", "activation", "groups", "layout",
                    "padding_mode", "requested_algorithm")
# What copies and pickles rebuild rather than carry: the state (its arrays travel as
# "_weight" and "_bias"), the published operator, the lock and the input saved for backward.
_REBUILT_ATTRS = ("_state", "_fast", "_op", "_lock", "_saved_input")

# An operator bound to a layer's packed weights and bias: bound(x, out) (see Conv2dOp.bind).
_BoundOp = Callable[[Any, Any], "npt.NDArray[Any] | None"]


def _no_op(x: Any, out: Any) -> None:
    """Conv2D._fast before an operator is published: every input takes the normalising
    path."""
    return None


def _op_signature(geometry: tuple[Any, ...]) -> tuple[Any, ...] | bool:
    """The geometry, or False when operators must not be cached for it: unhashable
    values, or values that compare equal to others of a different meaning (1.0 == 1),
    which must take the normalising path on every call."""
    stride, padding, dilation, activation, groups, layout, padding_mode, algorithm = geometry
    if not (_plain(stride) and _plain(padding) and _plain(dilation)):
        return False
    if type(padding_mode) is not str or type(algorithm) is not str:
        return False
    if activation is not None and type(activation) is not str:
        return False
    if type(groups) is not int or type(layout) is not str:
        return False
    return geometry


def _pack(weight: npt.NDArray[Any], groups: Any, layout: Any) -> _core.PackedWeights | None:
    """The weights packed for this grouping and layout, or None when these values cannot
    describe them (reassigned attributes that disagree: a call then names the bad one)."""
    if (type(groups) is int and groups >= 1 and weight.shape[0] % groups == 0
            and layout in ("NHWC", "NCHW")):
        return _core.PackedWeights(weight, groups, layout)
    return None


class _LayerState:
    """One version of a layer's numbers: the weight and bias arrays, their packed form,
    the geometry (values of _SIGNATURE_ATTRS) and the operators made for exactly these,
    one per input shape and dtype, each with its bound call.

    Nothing in it changes after it is made except that operators are added to `ops`. An
    assignment to the layer installs a new state with one attribute store, so a call
    that reads ``layer._state`` once computes with a single version from start to end,
    and an operator made from an old version only ever lands in that version's `ops`.
    """

    __slots__ = ("bias", "geometry", "ops", "prepared", "sig", "weight")

    def __init__(self, weight: npt.NDArray[Any], bias: npt.NDArray[Any] | None,
                 prepared: _core.PackedWeights | None, geometry: tuple[Any, ...]) -> None:
        self.weight = weight
        self.bias = bias
        self.prepared = prepared
        self.geometry = geometry
        self.sig = _op_signature(geometry)
        self.ops: dict[Any, tuple[_core.Conv2dOp, _BoundOp]] = {}


class Conv2D(_core.LayerBase):
    """A 2-D convolution layer (cross-correlation, as in PyTorch and TensorFlow).

    Weights are OHWI (out_channels, k_h, k_w, in_channels/groups) for layout "NHWC" and
    OIHW (out_channels, in_channels/groups, k_h, k_w) for "NCHW". They and the bias are
    initialised as in PyTorch, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
    fan_in = in_channels/groups * k_h * k_w, reproducibly when ``seed`` is given.

    ``layer(x, *, out=None)`` applies the layer to a batch (4-D) or a single image (3-D)
    in the layer's layout, into ``out`` when given. The layer keeps one compiled operator
    per input shape it has seen (the algorithm and kernels chosen, the weights packed
    once for all of them); ``layer.algorithm`` and ``layer.kernel`` say what the last
    call ran. The call itself is implemented in C (``_core.LayerBase``): a repeated call
    with an input of the same shape and dtype runs its operator with no Python frame;
    anything else takes ``_call_slow``.

    Learning. A call keeps a reference to its input (not a copy: do not modify the input
    in place before ``backward``) unless ``layer.save_input`` is False or the call passes
    ``save_input=False``. ``layer.backward(grad_out)`` returns dL/dx for that input and
    adds dL/dweight and dL/dbias to ``layer.weight_grad`` and ``layer.bias_grad``;
    ``layer.zero_grad()`` clears them and ``layer.parameters()`` lists the arrays to update
    (by assignment). Assigning to the layer drops the saved input. A layer with
    ``activation="relu"`` has no backward: apply ReLU to the output instead.

    Speed. ``algorithm="fast"`` lets the layer use Winograd's F(4x4, 3x3) on wide 3x3
    stride-1 NHWC layers: 2-3 times faster at one thread, with a float32 error of about
    1e-5 of the output's range, 15-50 times the default's (docs/winograd.md).

    Threads may call a layer while another assigns its weight, bias or geometry. A call
    computes with the state before the assignment or the one after it, never a mix of
    the two, and every call that starts after the assignment returns uses the new state.
    Assignments themselves are serialised by a lock.
    """

    # Whether a call keeps its input for backward (see above). The C call path reads it
    # from the instance's __dict__, falling back to True: set it on instances only.
    save_input: bool = True
    # What the padding reads (see convx.conv2d). The class value serves layers pickled
    # before the attribute existed.
    padding_mode: str = "zeros"
    # The algorithm asked for (see convx.conv2d's `algorithm`); `algorithm` reports the one
    # that ran. The class value serves layers pickled before the attribute existed.
    requested_algorithm: str = "auto"
    weight_grad: npt.NDArray[Any] | None = None  # the sums of backward's dL/dweight
    bias_grad: npt.NDArray[Any] | None = None
    _saved_input: npt.NDArray[Any] | None = None  # kept by the last call, for backward
    _state: _LayerState  # see _LayerState
    _fast: _BoundOp  # see __call__; it holds its own weights and bias
    _op: _core.Conv2dOp | None  # the operator _fast calls
    _lock: threading.Lock  # serialises installing a state and publishing an operator

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
        padding_mode: str = "zeros",
        algorithm: str = "auto",
    ) -> None:
        in_channels = check_int(in_channels, "in_channels", 1)
        padding_mode = check_padding_mode(padding_mode)
        algorithm = check_algorithm(algorithm)
        out_channels = check_int(out_channels, "out_channels", 1)
        groups = check_int(groups, "groups", 1)
        if in_channels % groups != 0:
            raise ValueError(f"groups: in_channels {in_channels} is not divisible by "
                             f"groups={groups}")
        if out_channels % groups != 0:
            raise ValueError(f"groups: out_channels {out_channels} is not divisible by "
                             f"groups={groups}")
        dt = float_dtype(dtype)
        if activation not in (None, "relu"):
            raise ValueError(f"activation must be None or 'relu', got {activation!r}")
        object.__setattr__(self, "_lock", threading.Lock())
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = normalize_pair(kernel_size, "kernel_size")
        self.stride = normalize_pair(stride, "stride")
        self.dilation = normalize_pair(dilation, "dilation")
        self.padding = padding
        self.groups = groups
        self.layout = check_layout(layout)
        self.activation = activation
        self.padding_mode = padding_mode
        self.requested_algorithm = algorithm
        # Validates spelling, sign and size now.
        resolve_padding(padding, (1, 1), (1, 1), (1, 1), (1, 1))

        self.dtype = dt
        shape = self.weight_shape
        check_array_size(shape, dt.itemsize, "in_channels, out_channels and kernel_size")
        fan_in = shape[1] * shape[2] * shape[3]
        bound = 1.0 / math.sqrt(fan_in)
        rng = np.random.default_rng(seed)
        self.weight = rng.uniform(-bound, bound, size=shape).astype(dt)
        self.bias = rng.uniform(-bound, bound, size=(out_channels,)).astype(dt) if bias else None

    @property
    def weight(self) -> npt.NDArray[Any]:
        """The filters (OHWI for NHWC, OIHW for NCHW): a read-only array the layer owns.

        The layer packs them once for its kernels, so they cannot be edited in place;
        assign a new array (``layer.weight = w``) to change them. It is copied.
        """
        return self._state.weight

    @weight.setter
    def weight(self, value: npt.ArrayLike) -> None:
        arr = np.array(as_array(value, "weight"), dtype=self.dtype, copy=True, order="C")
        if arr.shape != self.weight_shape:
            raise ValueError(f"weight must have shape {self.weight_shape}, got {arr.shape}")
        arr.setflags(write=False)
        self._install_packed(lambda state: arr, "weight", None)

    @property
    def bias(self) -> npt.NDArray[Any] | None:
        """The (out_channels,) bias, read-only, or None. Assign to change it; it is copied."""
        return self._state.bias

    @bias.setter
    def bias(self, value: npt.ArrayLike | None) -> None:
        arr = None
        if value is not None:
            arr = np.array(as_array(value, "bias"), dtype=self.dtype, copy=True)
            if arr.shape != (self.out_channels,):
                raise ValueError(f"bias must have shape ({self.out_channels},), got {arr.shape}")
            arr.setflags(write=False)
        with self._lock:
            old = self._state
            self._install(old.weight, arr, old.prepared)

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        k_h, k_w = self.kernel_size
        c_g = self.in_channels // self.groups
        if self.layout == "NHWC":
            return (self.out_channels, k_h, k_w, c_g)
        return (self.out_channels, c_g, k_h, k_w)

    @property
    def algorithm(self) -> str | None:
        """The algorithm of the last call: "gemm", "pointwise", "direct", "depthwise" or
        "winograd" (None before the first call). See convx.explain; the constructor's
        `algorithm` argument, kept as ``requested_algorithm``, asks for one."""
        op = self._op
        return None if op is None else op.algorithm

    @property
    def kernel(self) -> str | None:
        """The micro-kernel of the last call, e.g. "f32 12x32 avx512" (None before the
        first call)."""
        op = self._op
        return None if op is None else op.kernel

    def _call_slow(self, x: npt.ArrayLike, *, out: npt.NDArray[Any] | None = None,
                   save_input: bool | None = None) -> npt.NDArray[Any]:
        """The layer's call when the bound operator ``_fast`` declined it (see the class
        docstring): self._fast(x, out) is the operator of the last input shape, bound to
        this layer's weights and bias. It returns None for an input it cannot take as is
        (another shape or dtype, or one that needs a copy). save_input, when given,
        overrides ``self.save_input`` for this call."""
        if save_input is None:
            save_input = self.save_input
        elif type(save_input) is not bool:
            raise TypeError(f"save_input must be True or False, got {save_input!r}")
        y, x_used = self._forward(x, out)
        if save_input:
            object.__setattr__(self, "_saved_input", x_used)
        return y

    def _forward(self, x: Any, out: npt.NDArray[Any] | None
                 ) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        """The output, and the array (x, or its normalised copy) it was computed from."""
        if type(x) is not np.ndarray or (out is not None and type(out) is not np.ndarray):
            x, _, _, out = _dlpack_arrays(x, None, None, out)  # a tensor reuses operators
        state = self._state  # the one version this call computes with
        key = None
        if type(x) is np.ndarray and state.sig and state.prepared is not None:
            # A state's operators are all made from its own weights, bias and geometry, so
            # the input's shape and dtype are the whole key.
            key = (x.shape, x.dtype)
            entry = state.ops.get(key)
            if entry is not None:
                y = entry[1](x, out)
                if y is not None:
                    self._publish(state, entry)
                    return y, x
        stride, padding, dilation, activation, groups, layout, mode, algo = state.geometry
        call = _normalise(x, state.weight, state.bias, stride, padding, dilation, groups,
                          layout, activation, False, out, mode, algo)
        if state.prepared is None:
            # Attributes reassigned to values that do not describe the weights: the core
            # names the problem.
            return _make_op(call)(call.x, call.weight, call.bias, out), call.x
        op = _make_op(call, state.prepared)
        bound = op.bind(call.bias)
        y = bound(call.x, out)
        if y is None:  # call.x is a C-contiguous array of the operator's shape and dtype
            raise RuntimeError("convx internal error: a normalised input did not fit its "
                               "operator")
        if key is not None and call.x is x:
            state.ops[key] = (op, bound)
            self._publish(state, (op, bound))
        return y, call.x

    def backward(self, grad_out: npt.ArrayLike) -> npt.NDArray[Any]:
        """dL/dx for the input of the last call, given grad_out = dL/dy (the output's
        shape); adds dL/dweight to ``weight_grad`` and dL/dbias to ``bias_grad``."""
        x = self._saved_input
        if x is None:
            raise RuntimeError("backward: no input saved; call the layer first, with "
                               "save_input on, and after any assignment to the layer")
        state = self._state
        stride, padding, dilation, activation, groups, layout, mode, _ = state.geometry
        if activation is not None:
            raise ValueError(f"backward: the layer fuses activation={activation!r} into its "
                             "output, whose gradient needs that output; use activation=None "
                             "and apply the activation to the output yourself")
        needs = ("input", "weight", "bias") if state.bias is not None else ("input", "weight")
        dx, dw, db = conv2d_backward(grad_out, x, state.weight, stride=stride, padding=padding,
                                     dilation=dilation, groups=groups, layout=layout,
                                     needs=needs, padding_mode=mode)
        assert dx is not None and dw is not None
        self.weight_grad = dw if self.weight_grad is None else self.weight_grad + dw
        if db is not None:
            self.bias_grad = db if self.bias_grad is None else self.bias_grad + db
        return dx

    def zero_grad(self) -> None:
        """Forget the accumulated gradients (weight_grad and bias_grad become None)."""
        self.weight_grad = None
        self.bias_grad = None

    def parameters(self) -> dict[str, npt.NDArray[Any]]:
        """The learnable arrays by name ("weight", and "bias" when there is one). They are
        read-only: update a parameter by assigning it, e.g.
        ``layer.weight = layer.weight - lr * layer.weight_grad``."""
        params = {"weight": self.weight}
        if self.bias is not None:
            params["bias"] = self.bias
        return params

    def _publish(self, state: _LayerState, entry: tuple[_core.Conv2dOp, _BoundOp]) -> None:
        """Make `entry`, an operator of `state`, the one the C call tries first, unless an
        assignment has installed another state since `state` was read: then the operator
        is stale and must not outlive the assignment."""
        with self._lock:
            if self._state is state:
                object.__setattr__(self, "_op", entry[0])
                object.__setattr__(self, "_fast", entry[1])

    def _install(self, weight: npt.NDArray[Any], bias: npt.NDArray[Any] | None,
                 prepared: _core.PackedWeights | None) -> None:
        """Replace the state with one of these arrays and the current geometry, and drop
        the published operator, which belongs to the old state. The caller holds _lock."""
        geometry = tuple(getattr(self, name) for name in _SIGNATURE_ATTRS)
        object.__setattr__(self, "_state", _LayerState(weight, bias, prepared, geometry))
        object.__setattr__(self, "_fast", _no_op)
        object.__setattr__(self, "_op", None)
        object.__setattr__(self, "_saved_input", None)

    def __getstate__(self) -> dict[str, Any]:
        """What copy.deepcopy and pickle carry: the configuration and the arrays. The packed
        weights and the operators hold compiled objects and are rebuilt from them."""
        with self._lock:
            state = {k: v for k, v in self.__dict__.items() if k not in _REBUILT_ATTRS}
            state["_weight"] = self._state.weight
            state["_bias"] = self._state.bias
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        weight, bias = state.pop("_weight"), state.pop("_bias")
        object.__setattr__(self, "_lock", threading.Lock())
        self.__dict__.update(state)
        self.weight = weight  # copies and packs, as assigning them does
        self.bias = bias

    def __setattr__(self, name: str, value: Any) -> None:
        # The geometry attributes are public and may be reassigned: each assignment installs
        # a new state with the new value (and, for groups and layout, weights packed for it).
        if name not in _SIGNATURE_ATTRS:
            object.__setattr__(self, name, value)
            return
        if name in ("groups", "layout"):  # the weights are packed for them
            self._install_packed(lambda state: None if state is None else state.weight, name,
                                 value)
            return
        with self._lock:
            object.__setattr__(self, name, value)
            old = self.__dict__.get("_state")
            if old is not None:
                self._install(old.weight, old.bias, old.prepared)

    def _install_packed(self, weight_of: Callable[[_LayerState | None], Any], name: str,
                        value: Any) -> None:
        """Install a state with the weights `weight_of(current state)` packed for the
        layer's groups and layout, after setting attribute `name` to `value` (unless name
        is "weight"). The packing happens outside the lock: it releases the GIL, and a
        lock held then would stay held forever in a child forked meanwhile. If the state
        or the grouping changes while it packs, it packs again."""
        while True:
            state = self.__dict__.get("_state")
            groups = value if name == "groups" else self.__dict__.get("groups")
            layout = value if name == "layout" else self.__dict__.get("layout")
            weight = weight_of(state)
            prepared = None if weight is None else _pack(weight, groups, layout)
            with self._lock:
                if (self.__dict__.get("_state") is state
                        and (name == "groups" or self.__dict__.get("groups") == groups)
                        and (name == "layout" or self.__dict__.get("layout") == layout)):
                    if name != "weight":
                        object.__setattr__(self, name, value)
                    if weight is not None:
                        self._install(weight, None if state is None else state.bias, prepared)
                    return

    # Interchange with PyTorch, Keras and ONNX (convx._interop; docs/interop.md).

    @classmethod
    def from_torch(cls, module: Any, *, layout: str = "NHWC", dtype: Any = None) -> Conv2D:
        """A layer computing what the torch.nn.Conv2d `module` computes: its geometry,
        padding_mode, weight (converted to `layout`) and bias. float32/float64 weights keep
        their dtype unless `dtype` is given; float16/bfloat16 need `dtype`."""
        return _interop.conv_from_torch(cls, module, layout, dtype)

    def to_torch(self) -> Any:
        """A torch module computing what this layer computes: an nn.Conv2d, preceded by a
        padding module when the padding is asymmetric and followed by nn.ReLU for
        activation="relu" (then an nn.Sequential)."""
        return _interop.conv_to_torch(self)

    @classmethod
    def from_keras(cls, layer: Any, *, dtype: Any = None) -> Conv2D:
        """A layer computing what the built keras.layers.Conv2D `layer` computes
        (channels_last -> "NHWC", channels_first -> "NCHW")."""
        return _interop.conv_from_keras(cls, layer, dtype)

    @classmethod
    def from_onnx(cls, node: Any, initializers: Any, *, layout: str = "NCHW",
                  dtype: Any = None) -> Conv2D:
        """A layer computing the ONNX Conv `node` (an onnx.NodeProto) whose weight and bias
        are in `initializers` (a dict name -> array, or a graph's initializer list)."""
        return _interop.conv_from_onnx(cls, node, initializers, layout, dtype)

    def state_dict(self) -> dict[str, npt.NDArray[Any]]:
        """{"weight", "bias"} as torch.nn.Conv2d names them, the weight OIHW whatever the
        layout (new, writable arrays)."""
        return _interop.state_dict(self)

    def load_state_dict(self, state_dict: Any, strict: bool = True) -> None:
        """Set weight and bias from a torch-style state dict (numpy arrays or tensors,
        weight OIHW); keys are checked as torch checks them, shapes exactly."""
        _interop.load_state_dict(self, state_dict, strict)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape __call__ returns for an input of this shape."""
        return output_shape(input_shape, self.weight.shape, stride=self.stride,
                            padding=self.padding, dilation=self.dilation, layout=self.layout)

    def __repr__(self) -> str:
        return (f"Conv2D({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding!r}, dilation={self.dilation}, "
                f"groups={self.groups}, bias={self.bias is not None}, layout={self.layout!r}, "
                f"dtype={self.weight.dtype}, activation={self.activation!r}, "
                f"padding_mode={self.padding_mode!r}, algorithm={self.requested_algorithm!r})")
