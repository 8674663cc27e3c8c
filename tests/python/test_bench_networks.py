"""The networks of `python -m convx bench --networks` (convx.bench.networks) and a small run
of that mode.

Each network's layer table is checked three ways: its number of convolutions, its
multiply-adds against the figure its paper (or torchvision) publishes, and against an
independent walk through the network's published block structure, which tracks the
tensor shape with convx.output_shape from the 224x224x3 input to the last feature map and
must produce exactly the table's convolutions with the same counts.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import convx
from convx.bench import main as bench_main
from convx.bench.network_bench import NET_LIBRARIES, layer_runners, networks_markdown
from convx.bench.networks import NETWORKS, Network, network_named, unique_layers
from convx.bench.suite import Layer

Geometry = tuple[int, int, int, int, int, int, int, int]


class Walk:
    """A network's tensor (height = width, channels) followed through its convolutions,
    recording each convolution's geometry as ConvSpec.geometry orders it."""

    def __init__(self) -> None:
        self.h, self.c = 224, 3
        self.convs: list[Geometry] = []

    @property
    def now(self) -> tuple[int, int]:
        return self.h, self.c

    def conv(self, c_out: int, k: int = 1, stride: int = 1, groups: int = 1,
             src: tuple[int, int] | None = None) -> tuple[int, int]:
        """A "same"-padded convolution of src (default: the current tensor), which becomes
        the current tensor."""
        h, c = src or self.now
        pad = (k - 1) // 2
        shape = convx.output_shape((1, h, h, c), (c_out, k, k, c // groups), stride=stride,
                                   padding=pad)
        assert shape[1] == shape[2]
        self.convs.append((h, h, c, c_out, k, stride, pad, groups))
        self.h, self.c = shape[1], shape[3]
        return self.now

    def pool(self) -> tuple[int, int]:
        """A stride-2 pooling (3x3 padded or 2x2) to half the size, rounded up."""
        self.h = -(-self.h // 2)
        return self.now


def walk_resnet50() -> Walk:
    n = Walk()
    n.conv(64, 7, 2)
    n.pool()
    for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(blocks):
            x, s = n.now, (stride if i == 0 else 1)
            n.conv(width, 1, src=x)
            n.conv(width, 3, s)
            out = n.conv(4 * width)
            if i == 0:
                assert n.conv(4 * width, 1, s, src=x) == out  # the projection shortcut
            else:
                assert out == x  # the identity shortcut
    assert n.now == (7, 2048)
    return n


def walk_vgg19() -> Walk:
    n = Walk()
    for width, convs in ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4)):
        for _ in range(convs):
            n.conv(width, 3)
        n.pool()
    assert n.now == (7, 512)
    return n


def walk_googlenet() -> Walk:
    n = Walk()
    n.conv(64, 7, 2)
    n.pool()
    n.conv(64)
    n.conv(192, 3)
    n.pool()
    table = {"3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
             "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64),
             "4c": (128, 128, 256, 24, 64, 64), "4d": (112, 144, 288, 32, 64, 64),
             "4e": (256, 160, 320, 32, 128, 128), "5a": (256, 160, 320, 32, 128, 128),
             "5b": (384, 192, 384, 48, 128, 128)}
    for name, (n1, r3, n3, r5, n5, proj) in table.items():
        x = n.now
        branches = [n.conv(n1, src=x), n.conv(n3, 3, src=n.conv(r3, src=x)),
                    n.conv(n5, 5, src=n.conv(r5, src=x)), n.conv(proj, src=x)]
        assert {h for h, _ in branches} == {x[0]}
        n.h, n.c = x[0], sum(c for _, c in branches)  # concatenated
        if name in ("3b", "4e"):
            n.pool()
    assert n.now == (7, 1024)
    return n


def walk_shufflenet_g3() -> Walk:
    n = Walk()
    n.conv(24, 3, 2)
    n.pool()
    for stage, (width, units) in enumerate(((240, 4), (480, 8), (960, 4))):
        for i in range(units):
            x, mid = n.now, width // 4
            first_groups = 1 if stage == 0 and i == 0 else 3
            n.conv(mid, 1, groups=first_groups)
            n.conv(mid, 3, 2 if i == 0 else 1, groups=mid)
            if i == 0:  # concatenated with the stride-2 average-pooled input
                h, c = n.conv(width - x[1], groups=3)
                assert h == -(-x[0] // 2)
                n.c = c + x[1]
            else:
                assert n.conv(width, groups=3) == x
    assert n.now == (7, 960)
    return n


def walk_mobilenet_v2() -> Walk:
    n = Walk()
    n.conv(32, 3, 2)
    for t, c, repeats, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                             (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)):
        for i in range(repeats):
            x, stride = n.now, (s if i == 0 else 1)
            hidden = x[1] * t
            if t != 1:
                n.conv(hidden)
            n.conv(hidden, 3, stride, groups=hidden)
            out = n.conv(c)
            if i > 0:
                assert out == x  # the residual connection
    n.conv(1280)
    assert n.now == (7, 1280)
    return n


WALKS = {"resnet50": walk_resnet50, "vgg19": walk_vgg19, "googlenet": walk_googlenet,
         "shufflenet_g3": walk_shufflenet_g3, "mobilenet_v2": walk_mobilenet_v2}


def table_counts(net: Network) -> Counter[Geometry]:
    counts: Counter[Geometry] = Counter()
    for spec in net.specs:
        counts[spec.geometry] += spec.count
    return counts


def test_every_network_has_a_walk() -> None:
    assert sorted(WALKS) == sorted(net.name for net in NETWORKS)


@pytest.mark.parametrize("name", sorted(WALKS))
def test_table_is_the_published_structure_with_chained_shapes(name: str) -> None:
    net = network_named(name)
    assert table_counts(net) == Counter(WALKS[name]().convs)
    for spec in net.specs:
        lay = spec.layer
        expect = convx.output_shape((1, lay.h, lay.w, lay.c_in),
                                    (lay.c_out, lay.k, lay.k, lay.c_in // lay.groups),
                                    stride=lay.stride, padding=lay.pad)
        assert lay.out_hw == expect[1:3] and lay.name == spec.label
        assert spec.count >= 1 and lay.n == 1 and lay.dilation == 1


# (convolutions, published giga multiply-adds of the whole network, of which the
# classifier's, relative tolerance). ResNet-50 v1.5 and VGG-19: torchvision's model
# cards (4.09 and 19.63 GFLOPS, counted as multiply-adds); GoogLeNet: the sum of the ops
# column of Table 1 of its paper (1.586 G, quoted in the text as 1.5 G); ShuffleNet 1x g=3:
# 140 MFLOPs (Table 1; multiply-adds); MobileNet-v2: 300 M multiply-adds (Table 4).
PUBLISHED = {
    "resnet50": (53, 4.09, 2048 * 1000 / 1e9, 0.01),
    "vgg19": (16, 19.63, (25088 * 4096 + 4096 * 4096 + 4096 * 1000) / 1e9, 0.01),
    "googlenet": (57, 1.586, 1024 * 1000 / 1e9, 0.01),
    "shufflenet_g3": (49, 0.140, 960 * 1000 / 1e9, 0.03),
    "mobilenet_v2": (52, 0.300, 1280 * 1000 / 1e9, 0.01),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_layer_count_and_multiply_adds_match_the_published_figures(name: str) -> None:
    convs, total, classifier, rtol = PUBLISHED[name]
    net = network_named(name)
    assert net.conv_layers == convs
    assert net.gmacs == pytest.approx(total - classifier, rel=rtol)


def test_googlenet_modules_match_the_papers_ops_column() -> None:
    # Table 1 of Szegedy et al. 2014, millions of multiply-adds per row. Its row 5a says
    # 54 M, but that row's own channel numbers (which torchvision also uses) give 51 M:
    # its params column (1072 K against 1042 K) is off as well.
    paper = {"conv1": 118, "conv2": 360, "3a": 128, "3b": 304, "4a": 73, "4b": 88, "4c": 100,
             "4d": 119, "4e": 170, "5a": 54, "5b": 71}
    ops: Counter[str] = Counter()
    for spec in network_named("googlenet").specs:
        ops[spec.label.split()[0]] += spec.count * spec.macs
    assert set(ops) == set(paper)
    for row, millions in paper.items():
        tol = 3.0 if row == "5a" else 1.0
        assert ops[row] / 1e6 == pytest.approx(millions, abs=tol), row


def test_shufflenet_and_mobilenet_have_grouped_and_depthwise_layers() -> None:
    shuffle = [(s.layer, s.count) for s in network_named("shufflenet_g3").specs]
    assert sum(n for lay, n in shuffle if lay.k == 1 and lay.groups == 3) == 31
    assert sum(n for lay, n in shuffle if lay.groups == lay.c_in == lay.c_out > 1) == 16
    mobile = [(s.layer, s.count) for s in network_named("mobilenet_v2").specs]
    assert sum(n for lay, n in mobile if lay.groups == lay.c_in == lay.c_out > 1) == 17


def test_unique_layers_merge_equal_geometry_and_keep_every_run() -> None:
    net = network_named("resnet50")
    layers = unique_layers(net)
    assert len(layers) == len(table_counts(net)) == 23
    assert sum(count for _, count in layers) == 53
    # The first stage's projection shortcut has the shape of its blocks' last 1x1.
    merged = dict((lay.name, count) for lay, count in layers)
    assert merged["resnet50 conv2 1x1b"] == 4
    assert "resnet50 conv2_1 shortcut" not in merged
    assert sum(c * lay.gflop for lay, c in layers) / 2 == pytest.approx(net.gmacs)
    for lay, _ in layers:
        assert isinstance(lay, Layer) and lay.n == 1 and lay.dilation == 1


def test_unique_layers_scales_the_input_size() -> None:
    layers = unique_layers(network_named("vgg19"), resolution=32)
    assert [lay.h for lay, _ in layers] == [32, 32, 16, 16, 8, 8, 4, 4, 2]
    assert all(min(lay.out_hw) >= 1 for net in NETWORKS for lay, _ in unique_layers(net, 8))
    for bad in (0, -224, 2.5, True):
        with pytest.raises(ValueError, match="resolution"):
            unique_layers(network_named("vgg19"), resolution=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown name 'alexnet'"):
        network_named("alexnet")


def _run(tmp_path: Path, *args: str) -> dict[str, Any]:
    path = tmp_path / "nets.json"
    assert bench_main(["--networks", "--resolution", "16", "--rounds", "1", "--threads", "1",
                       "--json", str(path), *args]) == 0
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def test_networks_mode_convx_only_writes_every_network(tmp_path: Path) -> None:
    doc = _run(tmp_path, "--libraries", "convx")
    section = doc["networks"]
    assert doc["conv"] is None and section["resolution"] == 16
    assert list(section["libraries"]) == ["convx"]
    (table,) = section["tables"]
    assert table["threads"] == 1 and "convx.set_num_threads(1)" in table["thread_settings"]
    assert [r["network"] for r in table["rows"]] == [net.name for net in NETWORKS]
    for row, net in zip(table["rows"], NETWORKS):
        layers = unique_layers(net, 16)
        assert [lay["layer"] for lay in row["layers"]] == [lay.name for lay, _ in layers]
        assert row["conv_layers"] == net.conv_layers and row["ms"]["convx"] > 0
        total = sum(lay["count"] * lay["ms"]["convx"] for lay in row["layers"])
        assert row["ms"]["convx"] == pytest.approx(total)
        assert row["best_anchor"] is None and row["speedup"] is None
        assert len(row["load_average"]) == 2 and min(row["load_average"]) >= 0
    assert table["geomean_speedup"] is None
    text = "\n".join(networks_markdown(section))
    assert "| ResNet-50 | 53 (23) |" in text and "scaled to 16/224" in text
    assert "1-minute load average" in text


def test_networks_mode_with_torch_checks_and_compares(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    doc = _run(tmp_path, "--libraries", "convx,torch_cl", "--only", "shufflenet")
    (row,) = doc["networks"]["tables"][0]["rows"]
    assert row["agree"] == {"torch_cl": True}
    assert row["best_anchor"] == "torch_cl"
    assert row["speedup"] == pytest.approx(row["ms"]["torch_cl"] / row["ms"]["convx"])
    assert 0 < row["speedup_per_layer_best"]


@pytest.mark.parametrize("libraries", ["torch,convx,numpy", "torch"])
def test_networks_mode_refuses_unknown_or_missing_libraries(libraries: str,
                                                            capsys: Any) -> None:
    with pytest.raises(SystemExit):
        bench_main(["--networks", "--libraries", libraries])
    assert "libraries: expected convx and any of" in capsys.readouterr().err


@pytest.mark.parametrize("lib", [lib for lib in NET_LIBRARIES if lib != "convx"])
def test_each_anchor_agrees_with_convx_on_grouped_and_strided_layers(lib: str) -> None:
    module = {"convx_fast": "convx", "torch": "torch", "torch_cl": "torch",
              "ort": "onnxruntime", "openvino": "openvino", "openvino_nhwc": "openvino"}[lib]
    pytest.importorskip(module)
    for layer in (Layer("g3", 1, 9, 7, 6, 9, 1, 1, 0, 1, 3),
                  Layer("dw/2", 1, 9, 8, 5, 5, 3, 2, 1, 1, 5),
                  Layer("5x5", 1, 6, 6, 4, 3, 5, 1, 2, 1, 1)):
        runners, agree = layer_runners(layer, ["convx", lib], threads=1)
        assert set(runners) == {"convx", lib} and agree == {lib: True}
        # convx itself against the float64 defining sum, so that agreeing means correct.
        ref = _reference(layer)
        np.testing.assert_allclose(runners["convx"](), ref, rtol=1e-4, atol=1e-4)


def _reference(layer: Layer) -> Any:
    from convx.bench.suite import make_inputs

    x, w, b = (a.astype(np.float64) for a in make_inputs(layer))
    p, s, k, g = layer.pad, layer.stride, layer.k, layer.groups
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    ho, wo = layer.out_hw
    cg, og = layer.c_in // g, layer.c_out // g
    y = np.empty((1, ho, wo, layer.c_out))
    for i in range(ho):
        for j in range(wo):
            patch = xp[0, i * s:i * s + k, j * s:j * s + k]
            for m in range(layer.c_out):
                grp = m // og
                y[0, i, j, m] = b[m] + np.sum(patch[:, :, grp * cg:(grp + 1) * cg] * w[m])
    return y


def test_benchmarks_md_renders_runs_with_and_without_networks(tmp_path: Path) -> None:
    import importlib.util

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "make_benchmarks_md.py"
    if not script.exists():
        pytest.skip("benchmarks/ is not beside the tests")
    spec = importlib.util.spec_from_file_location("make_benchmarks_md", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    doc = _run(tmp_path, "--libraries", "convx", "--only", "mobilenet")
    with_nets = tmp_path / "with.json"
    with_nets.write_text(json.dumps(doc))
    old = {k: v for k, v in doc.items() if k != "networks"}  # a run from before the mode
    old["meta"] = {**doc["meta"], "date_utc": "2020-01-01T00:00:00+00:00"}
    without = tmp_path / "without.json"
    without.write_text(json.dumps(old))
    # A run of benchmarks/bench_nchw.py gets a section of its own, with its ratios.
    nchw = tmp_path / "nchw.json"
    seconds = {"convx NCHW": 0.002, "convx NHWC": 0.001, "torch NCHW": 0.003,
               "torch channels_last": 0.004}
    nchw.write_text(json.dumps({
        "schema": "convx-nchw/1",
        "meta": {"date_utc": "2021-01-01T00:00:00+00:00", "cpu_model": "a CPU", "isa": "avx2",
                 "command": "python benchmarks/bench_nchw.py", "convx": "0", "torch": "0"},
        "results": [{"layer": "one 3x3", "dtype": "float32", "threads": 1,
                     "seconds": seconds}]}))
    text = module.render([str(with_nets), str(without), str(nchw)])
    assert text.count("Whole networks' conv layers") == 1
    assert "| MobileNet-v2 | 52 (30) |" in text
    assert math.isfinite(doc["networks"]["tables"][0]["rows"][0]["ms"]["convx"])
    assert text.count("## NCHW against torch NCHW") == 1
    assert "| one 3x3 | float32 | 1 | 2.000 | 1.000 | 3.000 | 4.000 | 1.50 | 2.00 |" in text


def test_networks_mode_ort_sessions_do_not_spin() -> None:
    pytest.importorskip("onnxruntime")
    from convx.bench.suite import make_inputs, ort_session

    layer = Layer("g3", 1, 9, 7, 6, 9, 1, 1, 0, 1, 3)
    _, w, b = make_inputs(layer)
    key = "session.intra_op.allow_spinning"
    quiet = ort_session(layer, w, b, 2, spinning=False).get_session_options()
    assert quiet.get_session_config_entry(key) == "0"
    default = ort_session(layer, w, b, 2).get_session_options()
    with pytest.raises(RuntimeError, match="does not have configuration"):
        default.get_session_config_entry(key)  # the layer suite keeps ORT's default
