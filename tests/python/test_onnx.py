"""Conv2D.from_onnx, ConvTranspose2D.from_onnx and convx.onnx's evaluator against the
node tests the onnx package ships, their stored expected outputs, and ONNX Runtime.

Two sources: the converted PyTorch tests stored as model.onnx + test_data_set_0/*.pb
(onnx/backend/test/data/pytorch-converted and pytorch-operator: strides, pads, dilations,
groups, depthwise, no bias, transposed with output_padding), and the node cases that
onnx's backend test generator builds in Python (onnx.backend.test.case.node.conv and
.convtranspose: asymmetric pads, auto_pad SAME_*/VALID, output_shape, 1-D and 3-D). The
wheel stores only the first kind as files.
"""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import convx

onnx = pytest.importorskip("onnx")
from onnx import numpy_helper  # noqa: E402
from reference import conv2d_ref  # noqa: E402

import convx.onnx as convx_onnx  # noqa: E402

DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"


def stored_cases() -> list[tuple[str, Any, list[np.ndarray], np.ndarray]]:
    dirs = sorted([*DATA.glob("pytorch-converted/test_Conv*2d*"),
                   *DATA.glob("pytorch-operator/test_operator_conv*")])
    cases = []
    for d in dirs:
        model = onnx.load(str(d / "model.onnx"))
        sets = d / "test_data_set_0"
        x = numpy_helper.to_array(onnx.TensorProto.FromString((sets / "input_0.pb").read_bytes()))
        y = numpy_helper.to_array(onnx.TensorProto.FromString(
            (sets / "output_0.pb").read_bytes()))
        cases.append((d.name, model, [x], y))
    return cases


def generated_cases() -> list[tuple[str, Any, list[np.ndarray], np.ndarray]]:
    node_cases = importlib.import_module("onnx.backend.test.case.node")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        importlib.import_module("onnx.backend.test.case.node.conv")
        importlib.import_module("onnx.backend.test.case.node.convtranspose")
    cases = []
    for case in node_cases._NodeTestCases:
        if case.model.graph.node[0].op_type in ("Conv", "ConvTranspose"):
            (inputs, outputs), = case.data_sets
            cases.append((case.name, case.model, list(inputs), outputs[0]))
    return cases


CASES = stored_cases() + generated_cases()
IDS = [c[0] for c in CASES]


def test_the_shipped_cases_cover_the_attributes() -> None:
    seen = set()
    for _, model, _, _ in CASES:
        node = model.graph.node[0]
        for a in node.attribute:
            value = onnx.helper.get_attribute_value(a)
            if a.name == "auto_pad":
                seen.add(f"auto_pad={value.decode()}")
            elif a.name in ("pads", "strides", "dilations", "output_padding") and any(
                    v not in (0, 1) for v in value):
                seen.add(a.name)
            elif a.name == "group" and value > 1:
                seen.add("group")
            elif a.name == "output_shape":
                seen.add("output_shape")
    assert {"pads", "strides", "dilations", "group", "auto_pad=SAME_UPPER",
            "auto_pad=SAME_LOWER", "output_padding",
            "output_shape"} <= seen


def initializers_of(model: Any, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
    """The model's initializers, and its inputs after the first (weight, bias) by name."""
    result = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    node = model.graph.node[0]
    for name, value in zip(node.input[1:], inputs[1:]):
        result[name] = value
    return result


def feeds_of(model: Any, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
    inits = {t.name for t in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in inits]
    return dict(zip(names, inputs))


def assert_close(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * scale)


@pytest.mark.parametrize(("name", "model", "inputs", "expected"), CASES, ids=IDS)
def test_from_onnx_matches_the_expected_output(name: str, model: Any,
                                               inputs: list[np.ndarray],
                                               expected: np.ndarray) -> None:
    node = model.graph.node[0]
    inits = initializers_of(model, inputs)
    x = inputs[0]
    cls = convx.Conv2D if node.op_type == "Conv" else convx.ConvTranspose2D
    kwargs = {} if node.op_type == "Conv" else {"input_shape": x.shape}
    if x.ndim != 4:
        with pytest.raises(ValueError, match="only 2-D"):
            cls.from_onnx(node, inits, **kwargs)
        return
    layer = cls.from_onnx(node, inits, **kwargs)
    assert layer.layout == "NCHW"
    assert_close(layer(x), expected)
    # The NHWC import computes the same (its weights transposed on the way in).
    nhwc = cls.from_onnx(node, inits, layout="NHWC", **kwargs)
    y = nhwc(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    assert_close(y.transpose(0, 3, 1, 2), expected)


@pytest.mark.parametrize(("name", "model", "inputs", "expected"), CASES, ids=IDS)
def test_evaluator_matches_expected_and_onnxruntime(name: str, model: Any,
                                                    inputs: list[np.ndarray],
                                                    expected: np.ndarray) -> None:
    op = model.graph.node[0].op_type
    feeds = feeds_of(model, inputs)
    convx_onnx.reset_timings()
    (got,) = convx_onnx.evaluator(model).run(None, feeds)
    stats = convx_onnx.timings()[op]
    if inputs[0].ndim == 4:
        assert stats["calls"] == 1 and stats["fallbacks"] == 0  # convx ran it
    else:
        assert stats["calls"] == 0 and stats["fallbacks"] == 1  # the reference did
    assert_close(got, expected)
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    (theirs,) = session.run(None, feeds)
    assert_close(got, theirs)


def single_conv_model(weight_is_input: bool, **attrs: Any) -> Any:
    helper = onnx.helper
    w = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    inputs = [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])]
    inits = []
    if weight_is_input:
        inputs.append(helper.make_tensor_value_info("w", onnx.TensorProto.FLOAT, [4, 3, 3, 3]))
    else:
        inits.append(numpy_helper.from_array(w, "w"))
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv0", **attrs)
    graph = helper.make_graph([node], "g", inputs,
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
                              initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_operatorsetid("", 13)]), w


def test_evaluator_packs_once_and_again_when_the_weight_changes() -> None:
    model, w = single_conv_model(True, pads=[1, 0, 2, 1], strides=[2, 1])
    session = convx_onnx.evaluator(model)
    x = np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)
    reference = onnx.reference.ReferenceEvaluator(model)
    convx_onnx.reset_timings()
    for weight in (w, w.copy(), 2 * w):
        (got,) = session.run(None, {"x": x, "w": weight})
        (expected,) = reference.run(None, {"x": x, "w": weight})
        assert_close(got, expected)
    stats = convx_onnx.timings()["Conv"]
    assert stats["calls"] == 3
    assert stats["packs"] == 2  # equal values in a new array reuse the packed layer
    assert stats["seconds"] > 0


def test_conv_nodes_lists_weights_and_attributes() -> None:
    nodes = convx_onnx.conv_nodes(DATA / "light" / "light_resnet50.onnx")
    assert len(nodes) == 53
    first = nodes[0]
    assert first["op_type"] == "Conv"
    assert first["weight_shape"] == (64, 3, 7, 7)  # made by ConstantOfShape: inferred
    assert first["attributes"]["strides"] == [2, 2]
    model, _ = single_conv_model(False, auto_pad="SAME_UPPER")
    (only,) = convx_onnx.conv_nodes(model)
    assert only["name"] == "conv0" and only["weight_shape"] == (4, 3, 3, 3)
    assert only["attributes"] == {"auto_pad": "SAME_UPPER"}


def test_from_onnx_rejections() -> None:
    model, w = single_conv_model(False)
    node = model.graph.node[0]
    with pytest.raises(ValueError, match="'w' is not among the initializers"):
        convx.Conv2D.from_onnx(node, {})
    with pytest.raises(TypeError, match=r"float16.*dtype=np.float32"):
        convx.Conv2D.from_onnx(node, {"w": w.astype(np.float16)})
    layer = convx.Conv2D.from_onnx(node, {"w": w.astype(np.float16)}, dtype=np.float32)
    assert layer.dtype == np.float32
    with pytest.raises(TypeError, match=r"onnx.NodeProto"):
        convx.Conv2D.from_onnx("conv0", {"w": w})
    relu = onnx.helper.make_node("Relu", ["x"], ["y"], name="r")
    with pytest.raises(ValueError, match=r"ONNX Conv node, got ai.onnx.Relu"):
        convx.Conv2D.from_onnx(relu, {})
    odd = onnx.helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[2, 2])
    with pytest.raises(ValueError, match="kernel_shape"):
        convx.Conv2D.from_onnx(odd, {"w": w})
    with pytest.raises(ValueError, match="only 2-D"):
        convx.Conv2D.from_onnx(node, {"w": w[..., 0]})
    transposed = onnx.helper.make_node("ConvTranspose", ["x", "w"], ["y"],
                                       auto_pad="SAME_UPPER", strides=[2, 2])
    with pytest.raises(ValueError, match="pass input_shape="):
        convx.ConvTranspose2D.from_onnx(transposed, {"w": w})
    layer_t = convx.ConvTranspose2D.from_onnx(transposed, {"w": w}, input_shape=(5, 6))
    assert layer_t(np.zeros((1, 4, 5, 6), np.float32)).shape == (1, 3, 10, 12)


def test_from_onnx_takes_a_graphs_initializer_list() -> None:
    model, w = single_conv_model(False, pads=[0, 1, 1, 0])
    layer = convx.Conv2D.from_onnx(model.graph.node[0], model.graph.initializer)
    np.testing.assert_array_equal(layer.weight, w)
    assert layer.padding == ((0, 1), (1, 0))


@pytest.mark.parametrize("auto_pad", ["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"])
@pytest.mark.parametrize(("strides", "dilations", "group"),
                         [([1, 1], [1, 1], 1), ([2, 3], [1, 1], 1), ([2, 2], [2, 1], 3),
                          ([3, 1], [1, 3], 1)])
def test_auto_pad_against_onnxruntime(auto_pad: str, strides: list[int], dilations: list[int],
                                      group: int) -> None:
    ort = pytest.importorskip("onnxruntime")
    helper = onnx.helper
    rng = np.random.default_rng(7)
    w = rng.standard_normal((6, 6 // group, 3, 2)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    attrs: dict[str, Any] = {"auto_pad": auto_pad, "strides": strides, "dilations": dilations,
                             "group": group}
    if auto_pad == "NOTSET":
        attrs["pads"] = [2, 0, 1, 1]
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], **attrs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_operatorsetid("", 13)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    layer = convx.Conv2D.from_onnx(node, model.graph.initializer)
    evaluator = convx_onnx.evaluator(model)
    for shape in [(1, 6, 9, 10), (2, 6, 8, 7)]:  # 'same' pads by the input size
        x = rng.standard_normal(shape).astype(np.float32)
        pads = spec_pads(auto_pad, shape[2:], w.shape[2:], strides, dilations, [2, 0, 1, 1])
        expected = conv2d_ref(x, w, b, stride=strides, padding=pads, dilation=dilations,
                              groups=group, layout="NCHW")
        assert_close(layer(x), expected)
        assert_close(evaluator.run(None, {"x": x})[0], expected)
        if dilations == [1, 1] or auto_pad in ("NOTSET", "VALID"):
            # (ONNX Runtime refuses auto_pad SAME_* with dilations.)
            assert_close(session.run(None, {"x": x})[0], expected)


def spec_pads(auto_pad: str, hw: tuple[int, ...], k: tuple[int, ...], s: list[int],
              d: list[int], pads: list[int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """((top, bottom), (left, right)) as the ONNX Conv specification defines them."""
    if auto_pad == "NOTSET":
        return ((pads[0], pads[2]), (pads[1], pads[3]))
    if auto_pad == "VALID":
        return ((0, 0), (0, 0))
    sides = []
    for n, kk, ss, dd in zip(hw, k, s, d):
        out = -(-n // ss)
        total = max(0, (out - 1) * ss + (kk - 1) * dd + 1 - n)
        small, large = total // 2, total - total // 2
        sides.append((small, large) if auto_pad == "SAME_UPPER" else (large, small))
    return (sides[0], sides[1])
