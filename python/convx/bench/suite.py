"""The benchmark's layers and one callable per library that runs a layer.

Every runner is built once (inputs converted, weights packed, sessions created) and then
timed; only the call itself is measured. A library that is not installed gives None.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

import convx

Array = npt.NDArray[Any]
Runner = Callable[[], object]


@dataclass(frozen=True)
class Layer:
    """One NHWC float32 convolution: square kernel, symmetric padding."""

    name: str
    n: int
    h: int
    w: int
    c_in: int
    c_out: int
    k: int
    stride: int
    pad: int
    dilation: int
    groups: int

    @property
    def out_hw(self) -> tuple[int, int]:
        span = self.dilation * (self.k - 1) + 1
        return ((self.h + 2 * self.pad - span) // self.stride + 1,
                (self.w + 2 * self.pad - span) // self.stride + 1)

    @property
    def gflop(self) -> float:
        ho, wo = self.out_hw
        return 2.0 * self.n * ho * wo * self.c_out * self.k * self.k * self.c_in / self.groups / 1e9

    def describe(self) -> dict[str, Any]:
        """The layer's geometry and work, as stored in the JSON results."""
        return {**asdict(self), "gflop": self.gflop}


SUITE = [
    Layer("resnet50.conv1", 1, 224, 224, 3, 64, 7, 2, 3, 1, 1),
    Layer("resnet.s2 3x3", 1, 56, 56, 64, 64, 3, 1, 1, 1, 1),
    Layer("resnet50 1x1", 1, 56, 56, 256, 64, 1, 1, 0, 1, 1),
    Layer("resnet.s3 3x3/2", 1, 56, 56, 128, 128, 3, 2, 1, 1, 1),
    Layer("resnet.s3 3x3", 1, 28, 28, 128, 128, 3, 1, 1, 1, 1),
    Layer("resnet.s4 3x3", 1, 14, 14, 256, 256, 3, 1, 1, 1, 1),
    Layer("resnet.s5 3x3", 1, 7, 7, 512, 512, 3, 1, 1, 1, 1),
    Layer("vgg16.conv2_2", 1, 112, 112, 128, 128, 3, 1, 1, 1, 1),
    Layer("resnet.s3 batch 8", 8, 28, 28, 128, 128, 3, 1, 1, 1, 1),
    Layer("mnist batch 64", 64, 28, 28, 1, 32, 3, 1, 0, 1, 1),
    Layer("deeplab dilated", 1, 64, 64, 256, 256, 3, 1, 2, 2, 1),
    Layer("mobilenet depthwise", 1, 112, 112, 32, 32, 3, 1, 1, 1, 32),
]
TINY = Layer("tiny", 1, 8, 8, 1, 4, 3, 1, 1, 1, 1)
# The layer whose extra memory is measured, and a small one that initialises each library
# before that measurement.
MEMORY_LAYER = "vgg16.conv2_2"
WARMUP_LAYER = "resnet.s5 3x3"

# The libraries convx is compared with; "convx / best anchor" divides by the fastest.
ANCHORS = ("torch", "torch_cl", "ort")
# Column labels of every library key that may appear in the results.
LIBRARIES = {
    "convx": "convx Conv2D",
    "convx_fn": "convx conv2d",
    "torch": "torch",
    "torch_cl": "torch CL",
    "ort": "ORT",
    "numpy": "NumPy",
}


# The layers of the forward + backward table: one of each kind in the suite (the stem,
# 1x1, 3x3 at stride 2 and on a deep 7x7 map, a batch of one-channel images, depthwise).
# Each layer takes seven timings, and at two threads every timing pays seven pauses of
# BLOCK_PAUSE: these six add about 75 s to a default run, the whole suite would add 150.
BACKWARD_LAYERS = ("resnet50.conv1", "resnet50 1x1", "resnet.s3 3x3/2", "resnet.s5 3x3",
                   "mnist batch 64", "mobilenet depthwise")
# Column labels of the backward table's keys: one forward + backward ("train" step) per
# library, and the input gradient (dX) and weight + bias gradients (dW) timed alone.
BACKWARD_LIBRARIES = {
    "convx": "convx Conv2D",
    "torch": "torch",
    "torch_cl": "torch CL",
    "convx_dx": "convx dX",
    "convx_dw": "convx dW",
    "torch_dx": "torch dX",
    "torch_dw": "torch dW",
}


def layer_named(name: str) -> Layer:
    return next(layer for layer in SUITE if layer.name == name)


def make_inputs(layer: Layer, seed: int = 0) -> tuple[Array, Array, Array]:
    """x (NHWC), w (OHWI, scaled by 0.1) and b, standard normal float32."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((layer.n, layer.h, layer.w, layer.c_in), dtype=np.float32)
    w = rng.standard_normal((layer.c_out, layer.k, layer.k, layer.c_in // layer.groups),
                            dtype=np.float32) * np.float32(0.1)
    b = rng.standard_normal(layer.c_out, dtype=np.float32)
    return x, w, b


def convx_runner(layer: Layer, x: Array, w: Array, b: Array) -> Runner:
    """The functional call: weights are packed on every call (like torch's functional)."""
    return lambda: convx.conv2d(x, w, b, stride=layer.stride, padding=layer.pad,
                                dilation=layer.dilation, groups=layer.groups)


def convx_layer_runner(layer: Layer, x: Array, w: Array, b: Array,
                       algorithm: str = "auto") -> Runner:
    """A Conv2D layer: weights packed once when set (like an ONNX Runtime session)."""
    conv = convx.Conv2D(layer.c_in, layer.c_out, layer.k, stride=layer.stride,
                        padding=layer.pad, dilation=layer.dilation, groups=layer.groups,
                        algorithm=algorithm)
    conv.weight = w
    conv.bias = b
    return lambda: conv(x)


def torch_runner(layer: Layer, x: Array, w: Array, b: Array, channels_last: bool
                 ) -> Runner | None:
    try:
        import torch
    except ImportError:
        return None
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    wt = torch.from_numpy(np.ascontiguousarray(w.transpose(0, 3, 1, 2)))
    bt = torch.from_numpy(b)
    if channels_last:
        xt = xt.contiguous(memory_format=torch.channels_last)
        wt = wt.contiguous(memory_format=torch.channels_last)
    conv = torch.nn.functional.conv2d

    # No inference_mode(): entering it costs microseconds, and these tensors do not
    # require grad, so no graph is recorded anyway.
    def run() -> object:
        return conv(xt, wt, bt, stride=layer.stride, padding=layer.pad,
                    dilation=layer.dilation, groups=layer.groups)

    return run


def make_grad(layer: Layer, seed: int = 2) -> Array:
    """An upstream gradient dL/dy for the layer's output (NHWC), standard normal float32."""
    ho, wo = layer.out_hw
    rng = np.random.default_rng(seed)
    return rng.standard_normal((layer.n, ho, wo, layer.c_out), dtype=np.float32)


def convx_train_runner(layer: Layer, x: Array, w: Array, b: Array, g: Array) -> Runner:
    """One training step's convolution on a Conv2D layer: forward (which keeps x), then
    backward (dX returned; dW and db into the layer's gradients, cleared first so that
    each call computes them afresh, as torch.autograd.grad does)."""
    conv = convx.Conv2D(layer.c_in, layer.c_out, layer.k, stride=layer.stride,
                        padding=layer.pad, dilation=layer.dilation, groups=layer.groups)
    conv.weight = w
    conv.bias = b

    def run() -> object:
        conv.zero_grad()
        conv(x)
        return conv.backward(g)

    return run


def convx_backward_runner(layer: Layer, x: Array, w: Array, g: Array,
                          needs: tuple[str, ...]) -> Runner:
    """The backward pass alone: ("input",) for dX, ("weight", "bias") for dW and db."""
    return lambda: convx.conv2d_backward(g, x, w, stride=layer.stride, padding=layer.pad,
                                         dilation=layer.dilation, groups=layer.groups,
                                         needs=needs)


def _torch_grad_tensors(x: Array, w: Array, b: Array, g: Array, channels_last: bool
                        ) -> tuple[Any, Any, Any, Any]:
    """x, w, b (requiring grad) and dL/dy as torch tensors, NCHW or channels_last."""
    import torch

    def nchw(a: Array) -> Any:
        t = torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))
        return t.contiguous(memory_format=torch.channels_last) if channels_last else t

    return (nchw(x).requires_grad_(), nchw(w).requires_grad_(),
            torch.from_numpy(b.copy()).requires_grad_(), nchw(g))


def torch_train_runner(layer: Layer, x: Array, w: Array, b: Array, g: Array,
                       channels_last: bool) -> Runner | None:
    """torch's forward with autograd recording, then torch.autograd.grad for x, w and b."""
    try:
        import torch
    except ImportError:
        return None
    xt, wt, bt, gt = _torch_grad_tensors(x, w, b, g, channels_last)
    conv, grad = torch.nn.functional.conv2d, torch.autograd.grad

    def run() -> object:
        y = conv(xt, wt, bt, stride=layer.stride, padding=layer.pad, dilation=layer.dilation,
                 groups=layer.groups)
        return grad(y, (xt, wt, bt), gt)

    return run


def torch_backward_runner(layer: Layer, x: Array, w: Array, b: Array, g: Array,
                          channels_last: bool, wrt: str) -> Runner | None:
    """torch's backward alone, through autograd on a graph recorded once and retained:
    wrt "input" asks for dX only, "weight" for dW and db only (autograd then computes
    just those)."""
    try:
        import torch
    except ImportError:
        return None
    xt, wt, bt, gt = _torch_grad_tensors(x, w, b, g, channels_last)
    y = torch.nn.functional.conv2d(xt, wt, bt, stride=layer.stride, padding=layer.pad,
                                   dilation=layer.dilation, groups=layer.groups)
    inputs = (xt,) if wrt == "input" else (wt, bt)
    grad = torch.autograd.grad
    return lambda: grad(y, inputs, gt, retain_graph=True)


def ort_session(layer: Layer, w: Array, b: Array, threads: int, spinning: bool = True) -> Any:
    """An ONNX Runtime session of a one-node Conv model (NCHW, OIHW weights). Without
    spinning its intra-op workers block as soon as a call ends (ONNX Runtime's default is
    to spin a while): with many sessions alive, their spinning workers would take the CPUs
    from the session that runs."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    w_oihw = np.ascontiguousarray(w.transpose(0, 3, 1, 2))
    ho, wo = layer.out_hw
    node = helper.make_node(
        "Conv", ["X", "W", "B"], ["Y"], kernel_shape=[layer.k, layer.k],
        strides=[layer.stride] * 2, pads=[layer.pad] * 4, dilations=[layer.dilation] * 2,
        group=layer.groups)
    graph = helper.make_graph(
        [node], "conv",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT,
                                       [layer.n, layer.c_in, layer.h, layer.w])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [layer.n, layer.c_out, ho, wo])],
        initializer=[numpy_helper.from_array(w_oihw, "W"), numpy_helper.from_array(b, "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(onnx._serialize(model) if hasattr(onnx, "_serialize")
                                else model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def ort_runner(layer: Layer, x: Array, w: Array, b: Array, threads: int,
               spinning: bool = True) -> Runner | None:
    try:
        sess = ort_session(layer, w, b, threads, spinning)
    except ImportError:
        return None
    feed = {"X": np.ascontiguousarray(x.transpose(0, 3, 1, 2))}
    return lambda: sess.run(None, feed)


def numpy_conv(layer: Layer, x: Array, w: Array, b: Array) -> Array:
    """im2col with NumPy views (one copy), then one matmul per group."""
    from numpy.lib.stride_tricks import sliding_window_view

    p, d, s, k = layer.pad, layer.dilation, layer.stride, layer.k
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0))) if p else x
    span = d * (k - 1) + 1
    win = sliding_window_view(xp, (span, span), axis=(1, 2))[:, ::s, ::s, :, ::d, ::d]
    n, ho, wo = win.shape[:3]
    cg, og = layer.c_in // layer.groups, layer.c_out // layer.groups
    outs = []
    for g in range(layer.groups):
        cols = win[:, :, :, g * cg:(g + 1) * cg].transpose(0, 1, 2, 4, 5, 3)
        cols = cols.reshape(n * ho * wo, k * k * cg)
        outs.append(cols @ w[g * og:(g + 1) * og].reshape(og, -1).T)
    return (np.concatenate(outs, axis=1) + b).reshape(n, ho, wo, layer.c_out)


def set_threads(threads: int) -> None:
    """convx's and torch's thread counts (ONNX Runtime's is set per session)."""
    convx.set_num_threads(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
