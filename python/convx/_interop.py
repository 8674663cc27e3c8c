"""Moving layers between convx and PyTorch, Keras and ONNX, and torch-style state dicts.

Weight layouts (O = output channels, I = input channels per group, H, W = kernel size):

============================  ==========================
convx Conv2D, layout "NHWC"   OHWI
convx Conv2D, layout "NCHW"   OIHW (= PyTorch, ONNX)
Keras Conv2D                  HWIO (either data_format)
convx ConvTranspose2D "NHWC"  (C_in, kH, kW, C_out/groups)
convx ConvTranspose2D "NCHW"  (C_in, C_out/groups, kH, kW) (= PyTorch, ONNX)
============================  ==========================

A state dict ("weight", and "bias" when the layer has one) always holds the weight in the
PyTorch layout, whatever the layer's own layout, so it loads into the matching torch module
unchanged. PyTorch, Keras and ONNX are imported inside the functions that need them.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt

from convx._args import explicit_padding, float_dtype

if TYPE_CHECKING:
    from convx._conv1d import Conv1D
    from convx._transposed import ConvTranspose2D
    from convx.layers import Conv2D

__all__ = [
    "conv1d_from_torch",
    "conv1d_to_torch",
    "conv_from_keras",
    "conv_from_onnx",
    "conv_from_torch",
    "conv_to_torch",
    "load_state_dict",
    "onnx_conv_geometry",
    "state_dict",
    "transpose_from_onnx",
    "transpose_from_torch",
    "transpose_to_torch",
]

Array = npt.NDArray[Any]

# OHWI/(C_in, kH, kW, C_out/g) <-> OIHW/(C_in, C_out/g, kH, kW): the same permutation serves
# both layers, since both keep their first axis and move the last one.
_TO_TORCH = (0, 3, 1, 2)
_FROM_TORCH = (0, 2, 3, 1)
_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


# ---------------------------------------------------------------- dtypes and arrays ------

def _import_dtype(source: Any, dtype: Any, what: str) -> np.dtype[Any]:
    """The dtype of a layer imported from weights of dtype `source` (a numpy dtype).

    float32 and float64 are kept when `dtype` is None. Half-precision weights (float16,
    bfloat16) are widened only when the caller asks for a dtype: convx computes in float32
    or float64, and a silent widening would make the layer's numbers differ from the
    original's. Anything else is refused."""
    if dtype is not None:
        return float_dtype(dtype)
    if source in (np.float32, np.float64):
        kept: np.dtype[Any] = np.dtype(source)
        return kept
    if source == np.float16 or str(source) == "bfloat16":
        raise TypeError(f"{what} has {source} weights; convx computes in float32 or float64: "
                        f"pass dtype=np.float32 (or np.float64) to widen them exactly")
    raise TypeError(f"{what} has {source} weights; convx layers hold float32 or float64")


def _torch_array(t: Any, what: str) -> Array:
    """A torch tensor as a new numpy array (float16 and bfloat16 widened to float32, which
    is exact); complex and integer tensors are refused."""
    import torch

    t = t.detach()
    if t.is_complex():
        raise TypeError(f"{what} is complex ({t.dtype}); convx computes with real numbers")
    if not t.is_floating_point():
        raise TypeError(f"{what} has dtype {t.dtype}; convx needs floating-point weights")
    if t.device.type == "meta":
        raise ValueError(f"{what} is on the meta device (it has no values yet)")
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    return np.array(t.cpu().numpy(), copy=True)


def _as_array(value: Any, name: str) -> Array:
    """A numpy array or torch tensor (or anything array-like) as a numpy array."""
    if type(value).__module__.startswith("torch"):
        return _torch_array(value, name)
    arr = np.asarray(value)
    if arr.dtype.kind not in "f":
        raise TypeError(f"{name} has dtype {arr.dtype}; a floating-point array is needed")
    return arr


# --------------------------------------------------------------------- state dicts ------

def state_dict(layer: Conv2D | ConvTranspose2D) -> dict[str, Array]:
    """{"weight": ..., "bias": ...} as PyTorch names and lays them out: OIHW for Conv2D,
    (C_in, C_out/groups, kH, kW) for ConvTranspose2D, in either layer layout. The arrays are
    new and writable (the layer's own are read-only); "bias" is absent without a bias."""
    weight = layer.weight
    if layer.layout == "NHWC":
        weight = weight.transpose(_TO_TORCH)
    result = {"weight": np.array(weight, copy=True, order="C")}
    if layer.bias is not None:
        result["bias"] = np.array(layer.bias, copy=True)
    return result


def _torch_weight_shape(layer: Conv2D | ConvTranspose2D) -> tuple[int, ...]:
    shape = layer.weight_shape
    if layer.layout == "NHWC":
        return tuple(shape[i] for i in _TO_TORCH)
    return tuple(shape)


def load_state_dict(layer: Conv2D | ConvTranspose2D, d: Mapping[str, Any],
                    strict: bool = True) -> None:
    """Set the layer's weight and bias from a state dict in PyTorch's layout (see
    state_dict), whose values are numpy arrays or torch tensors.

    With strict (the default, as in torch) the keys must be exactly those of
    ``layer.state_dict()``; otherwise missing keys leave their parameter as it is and other
    keys are ignored. Shapes must match exactly. Values are converted to the layer's dtype,
    as torch's load_state_dict copies into its parameters. Nothing changes unless every
    value is valid."""
    if not isinstance(d, Mapping):
        raise TypeError(f"state_dict must be a mapping of names to arrays, got "
                        f"{type(d).__name__}")
    expected = ["weight"] + (["bias"] if layer.bias is not None else [])
    if strict:
        missing = [k for k in expected if k not in d]
        unexpected = [k for k in d if k not in expected]
        if missing or unexpected:
            raise ValueError(f"load_state_dict: missing keys {missing}, unexpected keys "
                             f"{unexpected} (the layer has {expected})")
    shapes = {"weight": _torch_weight_shape(layer), "bias": (layer.out_channels,)}
    new: dict[str, Array] = {}
    for key in expected:
        if key not in d:
            continue
        arr = _as_array(d[key], f"state_dict[{key!r}]")
        if arr.shape != shapes[key]:
            raise ValueError(f"load_state_dict: {key!r} has shape {arr.shape}, but this layer's "
                             f"{key} has shape {shapes[key]} (in PyTorch's layout)")
        new[key] = arr
    if "weight" in new:
        w = new["weight"]
        layer.weight = w.transpose(_FROM_TORCH) if layer.layout == "NHWC" else w
    if "bias" in new:
        layer.bias = new["bias"]


# ------------------------------------------------------------------------- PyTorch ------

def _torch_module_class(module: Any, expected: str) -> Any:
    """torch.nn.<expected>, after checking `module` is one (and not a quantized or
    quantization-aware variant, whose numbers are not the float convolution's)."""
    import torch

    cls = getattr(torch.nn, expected)
    name = f"{type(module).__module__}.{type(module).__qualname__}"
    if not isinstance(module, cls):
        raise TypeError(f"module must be a torch.nn.{expected}, got {name}")
    if any(part in type(module).__module__ for part in ("quantized", ".qat", "intrinsic")):
        raise TypeError(f"module {name} is a quantized or quantization-aware convolution; "
                        f"convx imports float convolutions only")
    # (A parametrized weight is computed on reading; only a plain one can be lazy.)
    if (not torch.nn.utils.parametrize.is_parametrized(module, "weight")
            and isinstance(module.weight, torch.nn.parameter.UninitializedParameter)):
        raise ValueError(f"module {name} has uninitialised (lazy) weights: run it once first")
    return cls


def _torch_weight(module: Any) -> Any:
    """The weight the module's forward uses in eval mode. A parametrized weight
    (torch.nn.utils.parametrize, e.g. parametrizations.weight_norm or spectral_norm) is
    evaluated by reading it; the legacy hook-based weight_norm is recomputed from its hook.
    Any other hook may change what the module computes, so it is refused."""
    import torch
    from torch.nn.utils.weight_norm import WeightNorm

    # Eval mode while reading: a parametrization such as spectral_norm updates its state on
    # each read in training mode, and the module is the caller's.
    flags = [(m, m.training) for m in module.modules()]
    try:
        module.eval()
        with torch.no_grad():
            weight = module.weight
    finally:
        for m, training in flags:
            m.training = training
    for hook in module._forward_pre_hooks.values():
        if isinstance(hook, WeightNorm) and hook.name == "weight":
            weight = hook.compute_weight(module)
        else:
            raise ValueError(f"module has a forward pre-hook {hook!r}, which may change what "
                             f"it computes; remove it before importing")
    if module._forward_hooks:
        hooks = list(module._forward_hooks.values())
        raise ValueError(f"module has forward hooks {hooks}, which may change its output; "
                         f"remove them before importing")
    return weight


def _torch_params(module: Any, dtype: Any) -> tuple[Array, Array | None, np.dtype[Any]]:
    """The module's weight and bias as numpy arrays, and the dtype of the convx layer."""
    weight = _torch_weight(module)
    w = _torch_array(weight, "module.weight")
    half = {"torch.float16": np.dtype(np.float16), "torch.bfloat16": "bfloat16"}
    dt = _import_dtype(half.get(str(weight.dtype), w.dtype), dtype, "module")
    b = None if module.bias is None else _torch_array(module.bias, "module.bias")
    return w, b, dt


def conv_from_torch(cls: type[Conv2D], module: Any, layout: str, dtype: Any) -> Conv2D:
    """Conv2D.from_torch: see there."""
    _torch_module_class(module, "Conv2d")
    w, b, dt = _torch_params(module, dtype)
    padding: Any = module.padding
    if not isinstance(padding, str):
        padding = tuple(int(p) for p in padding)
    layer = cls(module.in_channels, module.out_channels, tuple(module.kernel_size),
                stride=tuple(module.stride), padding=padding, dilation=tuple(module.dilation),
                groups=module.groups, bias=module.bias is not None, layout=layout, dtype=dt,
                seed=0, padding_mode=module.padding_mode)
    load_state_dict(layer, {"weight": w} if b is None else {"weight": w, "bias": b})
    return layer


def _torch_dtype(dt: np.dtype[Any]) -> Any:
    import torch

    return torch.float64 if dt == np.float64 else torch.float32


def _pad_module(mode: str, pads: tuple[int, int, int, int]) -> Any:
    """The torch padding module for a padding mode; pads are (left, right, top, bottom)."""
    import torch

    nn = torch.nn
    if mode == "zeros":
        return nn.ZeroPad2d(pads)
    if mode == "reflect":
        return nn.ReflectionPad2d(pads)
    if mode == "replicate":
        return nn.ReplicationPad2d(pads)
    return nn.CircularPad2d(pads)


def _torch_module(conv: Any, pre: Any, params: Mapping[str, Array],
                  activation: str | None) -> Any:
    """The torch module of a convx layer: `conv` (a torch convolution) with the layer's
    parameters loaded, preceded by the padding module `pre` when there is one and followed
    by nn.ReLU for activation="relu" (then an nn.Sequential)."""
    import torch

    with torch.no_grad():
        conv.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
    parts = [m for m in (pre, conv) if m is not None]
    if activation == "relu":
        parts.append(torch.nn.ReLU())
    return parts[0] if len(parts) == 1 else torch.nn.Sequential(*parts)


def conv_to_torch(layer: Conv2D) -> Any:
    """Conv2D.to_torch: see there."""
    import torch

    nn = torch.nn
    mode = layer.padding_mode
    padding = layer.padding
    conv_padding: Any = padding
    pre: Any = None
    if isinstance(padding, str):
        if padding in ("same", "same_lower") and layer.stride != (1, 1):
            raise ValueError(f"padding={padding!r} with stride {layer.stride} depends on the "
                             f"input size, which a torch.nn.Conv2d cannot express")
        if padding == "same_lower":
            sides = [(d * (k - 1) - d * (k - 1) // 2, d * (k - 1) // 2)
                     for k, d in zip(layer.kernel_size, layer.dilation)]
            pre = _pad_module(mode, (sides[1][0], sides[1][1], sides[0][0], sides[0][1]))
            conv_padding = 0
    else:
        (top, bottom), (left, right) = explicit_padding(padding)
        if top == bottom and left == right:
            conv_padding = (top, left)
        else:
            pre = _pad_module(mode, (left, right, top, bottom))
            conv_padding = 0
    conv = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                     stride=layer.stride, padding=conv_padding, dilation=layer.dilation,
                     groups=layer.groups, bias=layer.bias is not None,
                     padding_mode=cast(Any, "zeros" if pre is not None else mode),
                     dtype=_torch_dtype(layer.dtype))
    return _torch_module(conv, pre, state_dict(layer), layer.activation)


def conv1d_from_torch(cls: type[Conv1D], module: Any, layout: str, dtype: Any) -> Conv1D:
    """Conv1D.from_torch: see there."""
    _torch_module_class(module, "Conv1d")
    w, b, dt = _torch_params(module, dtype)
    padding = module.padding if isinstance(module.padding, str) else int(module.padding[0])
    layer = cls(module.in_channels, module.out_channels, int(module.kernel_size[0]),
                stride=int(module.stride[0]), padding=padding,
                dilation=int(module.dilation[0]), groups=module.groups,
                bias=module.bias is not None, layout=layout, dtype=dt, seed=0,
                padding_mode=module.padding_mode)
    layer.load_state_dict({"weight": w} if b is None else {"weight": w, "bias": b})
    return layer


def conv1d_to_torch(layer: Conv1D) -> Any:
    """Conv1D.to_torch: see there."""
    import torch

    nn = torch.nn
    padding, mode = layer.padding, layer.padding_mode
    conv_padding: Any = padding
    pre: Any = None
    if isinstance(padding, str):
        if padding in ("same", "same_lower") and layer.stride != 1:
            raise ValueError(f"padding={padding!r} with stride {layer.stride} depends on the "
                             f"input length, which a torch.nn.Conv1d cannot express")
        if padding == "same_lower":
            total = layer.dilation * (layer.kernel_size - 1)
            padding = (total - total // 2, total // 2)
    if not isinstance(padding, str):
        left, right = (padding, padding) if isinstance(padding, int) else tuple(padding)
        conv_padding = left
        if left != right:
            pads = {"zeros": nn.ZeroPad1d, "reflect": nn.ReflectionPad1d,
                    "replicate": nn.ReplicationPad1d, "circular": nn.CircularPad1d}
            pre, conv_padding = pads[mode]((left, right)), 0
    conv = nn.Conv1d(layer.in_channels, layer.out_channels, layer.kernel_size,
                     stride=layer.stride, padding=conv_padding, dilation=layer.dilation,
                     groups=layer.groups, bias=layer.bias is not None,
                     padding_mode=cast(Any, "zeros" if pre is not None else mode),
                     dtype=_torch_dtype(layer.dtype))
    return _torch_module(conv, pre, layer.state_dict(), layer.activation)


def transpose_from_torch(cls: type[ConvTranspose2D], module: Any, layout: str,
                         dtype: Any) -> ConvTranspose2D:
    """ConvTranspose2D.from_torch: see there."""
    _torch_module_class(module, "ConvTranspose2d")
    w, b, dt = _torch_params(module, dtype)
    if module.padding_mode != "zeros":  # torch itself allows only zeros here
        raise ValueError(f"padding_mode={module.padding_mode!r} is not supported for a "
                         f"transposed convolution")
    if isinstance(module.padding, str):
        raise ValueError(f"padding={module.padding!r}: a transposed convolution needs "
                         f"explicit padding")
    layer = cls(module.in_channels, module.out_channels, tuple(module.kernel_size),
                stride=tuple(module.stride), padding=tuple(module.padding),
                output_padding=tuple(module.output_padding), dilation=tuple(module.dilation),
                groups=module.groups, bias=module.bias is not None, layout=layout, dtype=dt,
                seed=0)
    load_state_dict(layer, {"weight": w} if b is None else {"weight": w, "bias": b})
    return layer


def transpose_to_torch(layer: ConvTranspose2D) -> Any:
    """ConvTranspose2D.to_torch: see there."""
    import torch

    (top, bottom), (left, right) = layer.padding
    if top != bottom or left != right:
        raise ValueError(f"padding {layer.padding} is asymmetric, which a "
                         f"torch.nn.ConvTranspose2d cannot express")
    module = torch.nn.ConvTranspose2d(
        layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
        padding=(top, left), output_padding=layer.output_padding, dilation=layer.dilation,
        groups=layer.groups, bias=layer.bias is not None, dtype=_torch_dtype(layer.dtype))
    with torch.no_grad():
        module.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict(layer).items()})
    return module


# --------------------------------------------------------------------------- Keras ------

def _keras_numpy(keras: Any, value: Any) -> Array:
    """A Keras variable's values as a new numpy array. (On the torch backend the conversion
    goes through torch's __array__, which NumPy 2 warns about; that is no concern here.)"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return np.array(keras.ops.convert_to_numpy(value), copy=True)


def conv_from_keras(cls: type[Conv2D], layer: Any, dtype: Any) -> Conv2D:
    """Conv2D.from_keras: see there."""
    try:
        import keras
    except ImportError:  # pragma: no cover - only reached without keras
        raise TypeError("layer must be a keras.layers.Conv2D, and keras is not installed"
                        ) from None
    if not isinstance(layer, keras.layers.Conv2D):
        raise TypeError(f"layer must be a keras.layers.Conv2D, got {type(layer).__name__}")
    if not layer.built:
        raise ValueError("the Keras layer is not built yet (call it once or build() it)")
    config = layer.get_config()
    activation = config["activation"]
    if activation == "linear":
        activation = None
    if activation not in (None, "relu"):
        raise ValueError(f"activation {activation!r} of the Keras layer is not supported "
                         f"(only None, 'linear' and 'relu')")
    kernel = _keras_numpy(keras, layer.kernel)
    dt = _import_dtype(kernel.dtype, dtype, "the Keras layer")
    layout = "NHWC" if config["data_format"] == "channels_last" else "NCHW"
    groups = int(config["groups"])
    k_h, k_w, c_g, out = kernel.shape
    padding = config["padding"]
    if padding not in ("same", "valid"):
        raise ValueError(f"padding {padding!r} of the Keras layer is not supported")
    result = cls(c_g * groups, out, (k_h, k_w), stride=tuple(config["strides"]),
                 padding=padding, dilation=tuple(config["dilation_rate"]), groups=groups,
                 bias=bool(config["use_bias"]), layout=layout, dtype=dt, seed=0,
                 activation=activation)
    sd = {"weight": kernel.transpose(3, 2, 0, 1)}  # HWIO -> OIHW
    if config["use_bias"]:
        sd["bias"] = _keras_numpy(keras, layer.bias)
    load_state_dict(result, sd)
    return result


# ---------------------------------------------------------------------------- ONNX ------

def _initializer_map(initializers: Any) -> Mapping[str, Any]:
    """A name -> array mapping from a mapping or an iterable of onnx TensorProto."""
    if isinstance(initializers, Mapping):
        return initializers
    from onnx import numpy_helper

    if not isinstance(initializers, Iterable):
        raise TypeError("initializers must be a dict of name -> array or a list of "
                        f"onnx.TensorProto, got {type(initializers).__name__}")
    return {t.name: numpy_helper.to_array(t) for t in initializers}


def _onnx_array(value: Any, name: str) -> Array:
    if type(value).__name__ == "TensorProto":
        from onnx import numpy_helper

        return np.asarray(numpy_helper.to_array(value))
    return np.asarray(value)


def onnx_conv_geometry(op_type: str, attrs: Mapping[str, Any], weight_shape: tuple[int, ...],
                       where: str) -> dict[str, Any]:
    """The convx geometry of an ONNX Conv or ConvTranspose node's attributes (a dict of
    attribute name -> value, as onnx.helper.get_attribute_value gives them):
    stride, dilation, groups, kernel_size, and for Conv the padding (explicit, or
    "same"/"same_lower"/"valid", which convx resolves per input exactly as ONNX's auto_pad
    does). For ConvTranspose, "pads", "auto_pad", "output_padding" and "output_shape" are
    returned raw: their meaning may depend on the input size (see transpose_pads).

    `where` names the node in errors. Non-2-D nodes are refused."""
    if len(weight_shape) != 4:
        raise ValueError(f"{where}: only 2-D convolutions are supported (weight of shape "
                         f"{weight_shape})")
    known = {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"}
    if op_type == "ConvTranspose":
        known |= {"output_padding", "output_shape"}
    unknown = sorted(set(attrs) - known)
    if unknown:
        raise ValueError(f"{where}: unsupported attributes {unknown}")
    kernel = tuple(int(k) for k in weight_shape[2:])
    if "kernel_shape" in attrs and tuple(attrs["kernel_shape"]) != kernel:
        raise ValueError(f"{where}: kernel_shape {list(attrs['kernel_shape'])} does not "
                         f"match the weight's shape {weight_shape}")

    def pair(name: str, default: int) -> tuple[int, int]:
        value = attrs.get(name, [default, default])
        if len(value) != 2:
            raise ValueError(f"{where}: {name} must have 2 values, got {list(value)}")
        return (int(value[0]), int(value[1]))

    auto_pad = attrs.get("auto_pad", "NOTSET")
    if isinstance(auto_pad, bytes):
        auto_pad = auto_pad.decode()
    if auto_pad not in ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"):
        raise ValueError(f"{where}: unknown auto_pad {auto_pad!r}")
    pads = [int(p) for p in attrs.get("pads", [0, 0, 0, 0])]
    if len(pads) != 4:
        raise ValueError(f"{where}: pads must have 4 values [top, left, bottom, right], "
                         f"got {pads}")
    geometry: dict[str, Any] = {
        "kernel_size": kernel, "stride": pair("strides", 1), "dilation": pair("dilations", 1),
        "groups": int(attrs.get("group", 1)),
    }
    if op_type == "Conv":
        # auto_pad other than NOTSET overrides pads, as in ONNX Runtime.
        geometry["padding"] = {
            "NOTSET": ((pads[0], pads[2]), (pads[1], pads[3])), "VALID": "valid",
            "SAME_UPPER": "same", "SAME_LOWER": "same_lower"}[auto_pad]
    else:
        geometry.update(auto_pad=auto_pad, pads=pads, output_padding=pair("output_padding", 0),
                        output_shape=attrs.get("output_shape"))
    return geometry


def transpose_pads(geometry: Mapping[str, Any], input_hw: tuple[int, int] | None,
                   where: str) -> tuple[tuple[tuple[int, int], tuple[int, int]], tuple[int, int]]:
    """Explicit ((top, bottom), (left, right)) padding and the output_padding of an ONNX
    ConvTranspose (see onnx_conv_geometry). With output_shape or auto_pad SAME_*, ONNX
    derives the pads from the input size: total = stride*(in-1) + output_padding +
    dilation*(k-1) + 1 - out, split with the odd one at the end for SAME_UPPER and at the
    start otherwise; a negative total (an output larger than the full one) becomes extra
    output_padding at the end."""
    pads = geometry["pads"]
    out_pad = geometry["output_padding"]
    output_shape = geometry["output_shape"]
    auto_pad = geometry["auto_pad"]
    if output_shape is None and auto_pad in ("NOTSET", "VALID"):
        if auto_pad == "VALID":
            pads = [0, 0, 0, 0]
        return ((pads[0], pads[2]), (pads[1], pads[3])), out_pad
    if input_hw is None:
        raise ValueError(f"{where}: its pads depend on the input size (output_shape or "
                         f"auto_pad={auto_pad}); pass input_shape=")
    shape = output_shape
    if shape is None:
        shape = [n * s for n, s in zip(input_hw, geometry["stride"])]
    shape = [int(v) for v in shape][-2:]
    sides = []
    extra = []
    for n, k, s, d, op, out in zip(input_hw, geometry["kernel_size"], geometry["stride"],
                                   geometry["dilation"], out_pad, shape):
        total = s * (n - 1) + op + d * (k - 1) + 1 - out
        if total < 0:
            sides.append((0, 0))
            extra.append(op - total)
            continue
        half = total // 2
        sides.append((half, total - half) if auto_pad == "SAME_UPPER" else (total - half, half))
        extra.append(op)
    return (sides[0], sides[1]), (extra[0], extra[1])


def _onnx_node_parts(node: Any, initializers: Any, op_type: str, dtype: Any
                     ) -> tuple[str, dict[str, Any], Array, Array | None, np.dtype[Any]]:
    import onnx

    if not isinstance(node, onnx.NodeProto):
        raise TypeError(f"node must be an onnx.NodeProto, got {type(node).__name__}")
    where = f"{op_type} node {node.name!r}"
    if node.op_type != op_type or node.domain not in ("", "ai.onnx"):
        raise ValueError(f"node must be an ONNX {op_type} node, got {node.domain or 'ai.onnx'}"
                         f".{node.op_type} ({node.name!r})")
    inits = _initializer_map(initializers)
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}
    if len(node.input) < 2 or node.input[1] not in inits:
        name = node.input[1] if len(node.input) > 1 else None
        raise ValueError(f"{where}: its weight {name!r} is not among the initializers "
                         f"(a weight computed at run time needs convx.onnx.evaluator)")
    w = _onnx_array(inits[node.input[1]], "weight")
    b = None
    if len(node.input) > 2 and node.input[2]:
        if node.input[2] not in inits:
            raise ValueError(f"{where}: its bias {node.input[2]!r} is not among the "
                             f"initializers")
        b = _onnx_array(inits[node.input[2]], "bias")
    dt = _import_dtype(w.dtype, dtype, where)
    return where, attrs, w, b, dt


def conv_from_onnx(cls: type[Conv2D], node: Any, initializers: Any, layout: str,
                   dtype: Any) -> Conv2D:
    """Conv2D.from_onnx: see there."""
    where, attrs, w, b, dt = _onnx_node_parts(node, initializers, "Conv", dtype)
    g = onnx_conv_geometry("Conv", attrs, w.shape, where)
    layer = cls(w.shape[1] * g["groups"], w.shape[0], g["kernel_size"], stride=g["stride"],
                padding=g["padding"], dilation=g["dilation"], groups=g["groups"],
                bias=b is not None, layout=layout, dtype=dt, seed=0)
    load_state_dict(layer, {"weight": w} if b is None else {"weight": w, "bias": b})
    return layer


def transpose_from_onnx(cls: type[ConvTranspose2D], node: Any, initializers: Any,
                        layout: str, dtype: Any, input_shape: Any) -> ConvTranspose2D:
    """ConvTranspose2D.from_onnx: see there."""
    where, attrs, w, b, dt = _onnx_node_parts(node, initializers, "ConvTranspose", dtype)
    g = onnx_conv_geometry("ConvTranspose", attrs, w.shape, where)
    hw = None
    if input_shape is not None:
        shape = tuple(int(v) for v in input_shape)
        if len(shape) not in (2, 3, 4):
            raise ValueError(f"input_shape must be (H, W), (C, H, W) or (N, C, H, W), got "
                             f"{input_shape!r}")
        hw = (shape[-2], shape[-1])
    padding, out_pad = transpose_pads(g, hw, where)
    layer = cls(w.shape[0], w.shape[1] * g["groups"], g["kernel_size"], stride=g["stride"],
                padding=padding, output_padding=out_pad, dilation=g["dilation"],
                groups=g["groups"], bias=b is not None, layout=layout, dtype=dt, seed=0)
    load_state_dict(layer, {"weight": w} if b is None else {"weight": w, "bias": b})
    return layer
