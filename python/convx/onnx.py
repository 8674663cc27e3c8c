"""convx.onnx: ONNX models with convx doing the convolutions.

* ``evaluator(model)``: an ``onnx.reference.ReferenceEvaluator`` whose Conv and
  ConvTranspose nodes run on convx (every other node runs on the reference
  implementation): ``evaluator(model).run(None, {"input": x})``.
* ``Conv`` and ``ConvTranspose``: those two operators, for ``ReferenceEvaluator(model,
  new_ops=[convx.onnx.Conv, convx.onnx.ConvTranspose])``. Each node keeps its convx layer,
  with the weights packed once, and packs again only when its weight or bias input
  changes. A node convx cannot compute (not 2-D, or neither float32 nor float64) runs on
  the reference implementation and is counted as a fallback.
* ``timings()`` / ``reset_timings()``: calls, seconds spent in convx (packing included),
  packs and fallbacks of each operator, summed over all evaluators since the last reset.
* ``conv_nodes(model)``: the Conv and ConvTranspose nodes of a model, with their weight
  shapes and attributes.

ONNX is NCHW, as the layers used here are, so inputs pass to convx without copies. The
onnx package is imported when one of these is first used, not by ``import convx``.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from convx import _interop
from convx._transposed import ConvTranspose2D
from convx.layers import Conv2D

# Conv and ConvTranspose are made on first access (module __getattr__): they subclass
# onnx's OpRun, and onnx is imported only when needed.
__all__ = ["Conv", "ConvTranspose", "conv_nodes", "evaluator",  # noqa: F822
           "reset_timings", "timings"]

_STAT_KEYS = ("calls", "seconds", "packs", "fallbacks")
_stats: dict[str, dict[str, float]] = {op: dict.fromkeys(_STAT_KEYS, 0.0)
                                       for op in ("Conv", "ConvTranspose")}
_classes: dict[str, Any] = {}


def timings() -> dict[str, dict[str, float]]:
    """{"Conv": {...}, "ConvTranspose": {...}}, each with "calls" (nodes run by convx),
    "seconds" (time in convx, packing included), "packs" (layers built: once per node and
    weight value) and "fallbacks" (nodes run by the reference implementation instead)."""
    return {op: dict(values) for op, values in _stats.items()}


def reset_timings() -> None:
    """Set every counter of timings() to zero."""
    for values in _stats.values():
        for key in _STAT_KEYS:
            values[key] = 0.0


def _load(model: Any) -> Any:
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, (str, os.PathLike)):
        return onnx.load(os.fspath(model))
    if isinstance(model, bytes):
        return onnx.load_from_string(model)
    raise TypeError(f"model must be an onnx.ModelProto, a path or bytes, got "
                    f"{type(model).__name__}")


def conv_nodes(model: Any) -> list[dict[str, Any]]:
    """The Conv and ConvTranspose nodes of the model's main graph (a ModelProto or a path),
    in graph order, each as {"name", "op_type", "inputs", "outputs", "weight_shape",
    "attributes"}. weight_shape comes from the initializers, else from ONNX shape
    inference, else is None; attributes maps each attribute to its value."""
    import onnx

    model = _load(model)
    shapes: dict[str, tuple[int, ...] | None] = {
        t.name: tuple(int(d) for d in t.dims) for t in model.graph.initializer}
    if any(n.op_type in ("Conv", "ConvTranspose") and len(n.input) > 1
           and n.input[1] not in shapes for n in model.graph.node):
        inferred = onnx.shape_inference.infer_shapes(model)
        for vi in (*inferred.graph.value_info, *inferred.graph.input):
            dims = vi.type.tensor_type.shape.dim
            if vi.name not in shapes and all(d.HasField("dim_value") for d in dims):
                shapes[vi.name] = tuple(int(d.dim_value) for d in dims)
    result = []
    for node in model.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose") or node.domain not in ("", "ai.onnx"):
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        result.append({
            "name": node.name, "op_type": node.op_type, "inputs": list(node.input),
            "outputs": list(node.output),
            "weight_shape": shapes.get(node.input[1]) if len(node.input) > 1 else None,
            "attributes": {k: v.decode() if isinstance(v, bytes) else v
                           for k, v in attrs.items()},
        })
    return result


def _attributes(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The attributes the reference evaluator passed, without those left unset (None)."""
    return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in kwargs.items()
            if v is not None}


def _same(a: Any, b: Any) -> bool:
    """Whether two optional input arrays hold the same values in the same shape."""
    if a is None or b is None:
        return a is None and b is None
    return bool(a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b))


def _convx_can_run(x: Any, w: Any) -> bool:
    return (x.ndim == 4 and w.ndim == 4 and x.dtype == w.dtype
            and x.dtype in (np.float32, np.float64))


def _make_classes() -> dict[str, Any]:
    """The two OpRun subclasses (defined once, when first asked for: they need onnx)."""
    if _classes:
        return _classes
    from onnx.reference import op_run
    from onnx.reference.ops import op_conv, op_conv_transpose

    # Typed as Any: the reference implementations are called on these classes' instances
    # (they use no state of their own), and the base class has no type information.
    OpRun: Any = op_run.OpRun
    ref_conv: Any = op_conv.Conv._run
    ref_conv_transpose: Any = op_conv_transpose.ConvTranspose._run

    class _Cached:
        """The weight and bias a node's layers were made from, and those layers."""

        def __init__(self) -> None:
            self.source: Any = None  # the weight array last seen (identity check first)
            self.weight: Any = None  # a copy of its values
            self.bias: Any = None
            self.layers: dict[Any, Any] = {}

        def matches(self, w: Any, b: Any) -> bool:
            """Whether the layers were made from these values. The same weight array as
            last time counts as unchanged: initializers are constant."""
            if self.weight is None or not _same(b, self.bias):
                return False
            if w is self.source or _same(w, self.weight):
                self.source = w
                return True
            return False

        def reset(self, w: Any, b: Any) -> None:
            self.source = w
            self.weight = np.array(w, copy=True)
            self.bias = None if b is None else np.array(b, copy=True)
            self.layers = {}

    class ConvxOp(OpRun):  # type: ignore[misc]
        """What Conv and ConvTranspose share: the fallback, the cache and the counters."""

        op_domain = ""
        reference: Any = None  # the reference implementation's _run

        def _run(self, X: Any, W: Any, B: Any = None, **kwargs: Any) -> tuple[Any]:
            op_type = type(self).__name__
            stats = _stats[op_type]
            if not _convx_can_run(X, W):
                stats["fallbacks"] += 1
                return type(self).reference(self, X, W, B, **kwargs)  # type: ignore[no-any-return]
            start = time.perf_counter()
            cache = self.__dict__.setdefault("_convx", _Cached())
            if not cache.matches(W, B):
                cache.reset(W, B)
            key = (X.dtype, X.shape[2:] if op_type == "ConvTranspose" else None)
            layer = cache.layers.get(key)
            if layer is None:
                where = f"{op_type} node {self.onnx_node.name!r}"
                g = _interop.onnx_conv_geometry(op_type, _attributes(kwargs), W.shape, where)
                layer = self._layer(g, X, W, B is not None, where)
                layer.save_input = False
                layer.weight = cache.weight
                if B is not None:
                    layer.bias = cache.bias
                cache.layers[key] = layer
                stats["packs"] += 1
            y = layer(X)
            stats["calls"] += 1
            stats["seconds"] += time.perf_counter() - start
            return (y,)

    class Conv(ConvxOp):
        """ONNX Conv on convx (see the module docstring): one Conv2D per node and dtype."""

        reference = ref_conv

        def _layer(self, g: dict[str, Any], X: Any, W: Any, bias: bool, where: str) -> Any:
            return Conv2D(W.shape[1] * g["groups"], W.shape[0], g["kernel_size"],
                          stride=g["stride"], padding=g["padding"], dilation=g["dilation"],
                          groups=g["groups"], bias=bias, layout="NCHW", dtype=X.dtype,
                          seed=0)

    class ConvTranspose(ConvxOp):
        """ONNX ConvTranspose on convx (see the module docstring): one ConvTranspose2D
        per node, dtype and input size (its pads may depend on the size)."""

        reference = ref_conv_transpose

        def _layer(self, g: dict[str, Any], X: Any, W: Any, bias: bool, where: str) -> Any:
            padding, out_pad = _interop.transpose_pads(g, X.shape[2:], where)
            return ConvTranspose2D(W.shape[0], W.shape[1] * g["groups"], g["kernel_size"],
                                   stride=g["stride"], padding=padding,
                                   output_padding=out_pad, dilation=g["dilation"],
                                   groups=g["groups"], bias=bias, layout="NCHW",
                                   dtype=X.dtype, seed=0)

    _classes.update(Conv=Conv, ConvTranspose=ConvTranspose)
    return _classes


def __getattr__(name: str) -> Any:
    if name in ("Conv", "ConvTranspose"):
        return _make_classes()[name]
    raise AttributeError(f"module 'convx.onnx' has no attribute {name!r}")


def evaluator(model: Any, **kwargs: Any) -> Any:
    """An onnx.reference.ReferenceEvaluator for `model` (a ModelProto, a path or bytes)
    with convx computing its Conv and ConvTranspose nodes; other keyword arguments go to
    ReferenceEvaluator (an extra ``new_ops`` list is added to convx's two)."""
    from onnx.reference import ReferenceEvaluator

    classes = _make_classes()
    new_ops = [classes["Conv"], classes["ConvTranspose"], *kwargs.pop("new_ops", [])]
    return ReferenceEvaluator(_load(model), new_ops=new_ops, **kwargs)
