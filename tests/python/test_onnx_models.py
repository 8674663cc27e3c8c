"""examples/onnx_model.py's core on three of the CNNs the onnx package ships (resnet50,
shufflenet and squeezenet, with seeded random weights): every Conv node, given ONNX
Runtime's input to it, agrees with ONNX Runtime within 1e-4 relative, and the whole
model run by convx.onnx.evaluator agrees at the output where the reference evaluator's
other operators follow the specification (squeezenet's opset-9 Softmax does not: see the
example's docstring)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def onnx_model() -> Iterator[ModuleType]:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    sys.path.insert(0, str(EXAMPLES))
    try:
        yield importlib.import_module("onnx_model")
    finally:
        sys.path.remove(str(EXAMPLES))
        sys.modules.pop("onnx_model", None)


@pytest.mark.parametrize(("name", "output_checked"),
                         [("resnet50", True), ("shufflenet", True), ("squeezenet", False)])
def test_light_model_agrees_with_onnxruntime(onnx_model: ModuleType, name: str,
                                             output_checked: bool) -> None:
    import convx.onnx

    result = onnx_model.run_model(name, repeat=1)
    assert result.conv_nodes == len(convx.onnx.conv_nodes(onnx_model.light_model_path(name)))
    assert result.conv_nodes > 0
    assert result.conv_rel < 1e-4
    if output_checked:
        assert result.output_rel < 1e-4
    assert convx.onnx.timings()["Conv"]["calls"] == result.conv_nodes  # convx ran them all
    assert convx.onnx.timings()["Conv"]["fallbacks"] == 0


def test_main_prints_a_row_per_model(onnx_model: ModuleType,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    onnx_model.main(["--models", "squeezenet", "--repeat", "1", "--shipped-weights"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:3] == ["model", "convs", "conv"]
    assert lines[-1].split()[:2] == ["squeezenet", "26"]
