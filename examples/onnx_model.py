"""Run the CNNs that the onnx package ships for its backend tests with convx doing every
convolution, and compare with ONNX Runtime.

    python examples/onnx_model.py                  # the default subset
    python examples/onnx_model.py --models resnet50 vgg19
    python examples/onnx_model.py --all

The models are onnx/backend/test/data/light/light_*.onnx: the real architectures, with
every weight made by a ConstantOfShape node (all 0.02). Constant weights would hide a
weight-layout mistake, so by default each such weight becomes a seeded random initializer
(``--shipped-weights`` keeps them): weights of two or more dimensions He-normal, vectors
(biases and batch-norm parameters) uniform in [0.5, 1.5).

Each model runs on convx.onnx.evaluator (onnx's ReferenceEvaluator, with convx for Conv and
ConvTranspose: the other operators are onnx's NumPy reference code) and on ONNX Runtime,
with the same seeded input, and with every Conv node's output made a graph output so that
each convolution is compared. Printed per model: the number of Conv nodes; "conv rel", the
largest over the Conv outputs of max|convx - ort| / max|ort|; "conv abs", the largest
elementwise |convx - ort| over them; "out rel", the same relative error for the model's
output and for its logits (the input of a final Softmax, which could saturate); the
wall time of a run (the last of --repeat), the part of it spent in convx, and ONNX
Runtime's time.

Three of the reference evaluator's operators (onnx 1.23) disagree with the ONNX
specification as ONNX Runtime implements it, and this example replaces them
(``reference_fixes``): BatchNormalization-9 (the reference blends in the batch's
statistics because the schema gives momentum a default; a model run is inference), LRN
(the reference sums the squares for the first channel only) and the Softmax of opset < 13
(the reference takes it over the last axis, not over every axis from `axis` on). "conv
rel" compares each Conv node on ONNX Runtime's own input to that node, through
convx.Conv2D.from_onnx, so that a difference in another operator cannot show up as a
convolution's.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

MODELS = ("bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50",
          "shufflenet", "squeezenet", "vgg19", "zfnet512")
# Each under 3 s on two cores (the inception models take about 9 s: the reference
# evaluator's pooling is slow).
DEFAULT = ("bvlc_alexnet", "densenet121", "resnet50", "shufflenet", "squeezenet", "vgg19",
           "zfnet512")


def reference_fixes(opset: int) -> list[Any]:
    """OpRun classes for onnx's ReferenceEvaluator: BatchNormalization in inference mode,
    LRN over every channel, and, for a model of opset < 13, Softmax over all the axes from
    `axis` on, as the ONNX specification defines them."""
    from onnx.reference.op_run import OpRun

    class BatchNormalization(OpRun):  # type: ignore[misc]
        op_domain = ""

        def _run(self, x: Any, scale: Any, bias: Any, mean: Any, var: Any,
                 epsilon: float = 1e-5, **unused: Any) -> tuple[Any]:
            shape = (1, -1) + (1,) * (x.ndim - 2)
            inv = scale / np.sqrt(var + epsilon)
            y = (x - mean.reshape(shape)) * inv.reshape(shape) + bias.reshape(shape)
            return (y.astype(x.dtype),)

    class LRN(OpRun):  # type: ignore[misc]
        op_domain = ""

        def _run(self, x: Any, alpha: float = 1e-4, beta: float = 0.75, bias: float = 1.0,
                 size: int = 1) -> tuple[Any]:
            channels = x.shape[1]
            squares = x.astype(np.float64) ** 2
            before, after = (size - 1) // 2, -(-(size - 1) // 2)
            square_sum = np.zeros_like(squares)
            for c in range(channels):
                square_sum[:, c] = squares[:, max(0, c - before):min(channels, c + after + 1)
                                           ].sum(axis=1)
            y = x / (bias + (alpha / size) * square_sum) ** beta
            return (y.astype(x.dtype),)

    class Softmax(OpRun):  # type: ignore[misc]
        op_domain = ""

        def _run(self, x: Any, axis: int | None = None) -> tuple[Any]:
            # The reference fills `axis` with the newest schema's default, so the
            # node's own attribute decides, else the default of the model's opset.
            given = [a.i for a in self.onnx_node.attribute if a.name == "axis"]
            if opset >= 13:  # one axis, -1 by default
                axes: tuple[int, ...] = (given[0] if given else -1,)
            else:  # the input flattened to 2-D at `axis` (1 by default)
                axes = tuple(range((given[0] if given else 1) % x.ndim, x.ndim))
            e = np.exp(x - x.max(axis=axes, keepdims=True))
            return ((e / e.sum(axis=axes, keepdims=True)).astype(x.dtype),)

    return [BatchNormalization, LRN, Softmax]


def default_opset(model: Any) -> int:
    """The version of the default ONNX domain that the model imports."""
    return max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def light_model_path(name: str) -> str:
    """The path of onnx's light_<name>.onnx."""
    import onnx

    return os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light",
                        f"light_{name}.onnx")


def weights_as_initializers(model: Any, seed: int, random: bool = True) -> Any:
    """A copy of the model in which every ConstantOfShape node whose shape is an
    initializer is replaced by an initializer: of seeded random values (see the module
    docstring), or of the node's own constant when `random` is False."""
    import onnx
    from onnx import numpy_helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    rng = np.random.default_rng(seed)
    keep = []
    for node in graph.node:
        if node.op_type != "ConstantOfShape" or node.input[0] not in inits:
            keep.append(node)
            continue
        shape = tuple(int(v) for v in inits[node.input[0]])
        if not random:
            (attr,) = [a for a in node.attribute if a.name == "value"]
            values = np.full(shape, numpy_helper.to_array(attr.t).ravel()[0])
        elif len(shape) >= 2:
            fan_in = int(np.prod(shape[1:]))
            values = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        else:
            values = rng.uniform(0.5, 1.5, size=shape)
        graph.initializer.append(numpy_helper.from_array(values.astype(np.float32),
                                                         node.output[0]))
    del graph.node[:]
    graph.node.extend(keep)
    return model


def logits_name(model: Any) -> str:
    """The tensor that the model's final Softmax normalises, or its output when it ends
    otherwise: a saturated softmax would hide any difference before it."""
    last = model.graph.node[-1]
    return str(last.input[0] if last.op_type == "Softmax" else model.graph.output[0].name)


def expose_conv_tensors(model: Any) -> Any:
    """A copy of the model in which the data input and the output of every Conv node, and
    the logits (logits_name), are also graph outputs."""
    import onnx

    model = onnx.ModelProto.FromString(model.SerializeToString())
    present = {o.name for o in model.graph.output} | {i.name for i in model.graph.input}
    for node in model.graph.node:
        names = (node.input[0], node.output[0]) if node.op_type == "Conv" else ()
        for name in (*names, logits_name(model)):
            if name not in present:
                present.add(name)
                model.graph.output.append(
                    onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return model


def model_input(model: Any, seed: int) -> tuple[str, np.ndarray]:
    """The model's one data input (inputs that are initializers excluded) and a seeded
    standard-normal array of its shape."""
    inits = {t.name for t in model.graph.initializer}
    (inp,) = [i for i in model.graph.input if i.name not in inits]
    shape = [d.dim_value for d in inp.type.tensor_type.shape.dim]
    return inp.name, np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """max|a - b| / max|b| (0 when both are zero)."""
    scale = float(np.abs(b).max()) if b.size else 0.0
    diff = float(np.abs(a.astype(np.float64) - b).max()) if b.size else 0.0
    return diff / scale if scale > 0 else diff


@dataclass
class Result:
    name: str
    conv_nodes: int
    conv_rel: float
    conv_abs: float
    output_rel: float
    seconds: float
    convx_seconds: float
    ort_seconds: float


def run_model(name: str, *, seed: int = 0, shipped_weights: bool = False,
              repeat: int = 2) -> Result:
    """Run light_<name> on convx's evaluator and on ONNX Runtime and compare them."""
    import onnx
    import onnxruntime

    import convx.onnx

    model = onnx.load(light_model_path(name))
    model = weights_as_initializers(model, seed, random=not shipped_weights)
    model = expose_conv_tensors(model)
    input_name, x = model_input(model, seed)
    output_names = [o.name for o in model.graph.output]

    session = convx.onnx.evaluator(model, new_ops=reference_fixes(default_opset(model)))
    for _ in range(max(repeat, 1)):
        convx.onnx.reset_timings()
        start = time.perf_counter()
        ours = dict(zip(output_names, session.run(None, {input_name: x})))
        seconds = time.perf_counter() - start
    convx_seconds = convx.onnx.timings()["Conv"]["seconds"]

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # the light models carry unused initializers
    ort = onnxruntime.InferenceSession(model.SerializeToString(), options,
                                       providers=["CPUExecutionProvider"])
    for _ in range(max(repeat, 1)):
        start = time.perf_counter()
        theirs = dict(zip(output_names, ort.run(None, {input_name: x})))
        ort_seconds = time.perf_counter() - start
    theirs[input_name] = x

    # Each Conv node on ONNX Runtime's input to it, so that a difference upstream (in
    # another operator) cannot show up as a convolution's.
    conv_rel = conv_abs = 0.0
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    for node in convs:
        layer = convx.Conv2D.from_onnx(node, model.graph.initializer)
        y = layer(theirs[node.input[0]])
        expected = theirs[node.output[0]]
        conv_rel = max(conv_rel, rel_error(y, expected))
        conv_abs = max(conv_abs, float(np.abs(y.astype(np.float64) - expected).max()))
    output_rel = max(rel_error(ours[t], theirs[t]) for t in (output_names[0],
                                                               logits_name(model)))
    return Result(name, len(convs), conv_rel, conv_abs, output_rel, seconds, convx_seconds,
                  ort_seconds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, help="models to run")
    parser.add_argument("--all", action="store_true", help="run every light model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=2, help="runs per model (the last is "
                        "timed; the first also packs the weights)")
    parser.add_argument("--shipped-weights", action="store_true",
                        help="keep the models' constant weights")
    args = parser.parse_args(argv)
    names = MODELS if args.all else (args.models or DEFAULT)

    import convx

    info = convx.cpu_info()
    print(f"convx {convx.__version__}, kernels {info['active']}, {info['num_threads']} "
          f"threads; weights {'shipped' if args.shipped_weights else 'random'}, seed "
          f"{args.seed}")
    header = (f"{'model':<14}{'convs':>6}{'conv rel':>11}{'conv abs':>11}{'out rel':>11}"
              f"{'run s':>8}{'convx s':>9}{'ort s':>8}")
    print(header)
    print("-" * len(header))
    for name in names:
        r = run_model(name, seed=args.seed, shipped_weights=args.shipped_weights,
                      repeat=args.repeat)
        print(f"{r.name:<14}{r.conv_nodes:>6}{r.conv_rel:>11.2e}{r.conv_abs:>11.2e}"
              f"{r.output_rel:>11.2e}{r.seconds:>8.2f}{r.convx_seconds:>9.3f}"
              f"{r.ort_seconds:>8.3f}", flush=True)


if __name__ == "__main__":
    main()
