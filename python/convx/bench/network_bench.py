"""`python -m convx bench --networks`: the conv layers of whole networks, timed per library.

For each network of convx.bench.networks, each thread count and each library, every
distinct convolution of the network is timed (median seconds per call) and the network's
total is the sum over its layers of count x median. Each library runs each layer in its
own best-prepared form: convx a `Conv2D` with packed weights on NHWC data, PyTorch
`F.conv2d` on NCHW and on channels_last tensors, ONNX Runtime a one-node Conv session
per layer (weights as initializers, so prepacked), and OpenVINO, when installed, a
one-layer model per layer compiled for the CPU, with NCHW and with NHWC input. Each
anchor's outputs are checked against convx's before timing.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from convx.bench.networks import NETWORKS, Network, unique_layers
from convx.bench.report import geomean
from convx.bench.suite import (
    Array,
    Layer,
    Runner,
    convx_layer_runner,
    make_inputs,
    ort_runner,
    set_threads,
    torch_runner,
)
from convx.bench.timing import BLOCK_PAUSE

__all__ = ["NET_ANCHORS", "NET_LIBRARIES", "ROUNDS", "networks_markdown", "openvino_runner",
           "run_networks"]

NET_LIBRARIES = {
    "convx": "convx Conv2D",
    "convx_fast": "convx fast",
    "torch": "torch",
    "torch_cl": "torch CL",
    "ort": "ORT",
    "openvino": "OpenVINO",
    "openvino_nhwc": "OpenVINO NHWC",
}
NET_ANCHORS = ("torch", "torch_cl", "ort", "openvino", "openvino_nhwc")
# Rounds over all libraries, in an order shuffled every round. In a round each library runs
# every layer of the network in turn, each layer repeatedly until LAYER_SECONDS have
# passed (at least once, at most MAX_CALLS times), timing every call: a large layer gets
# one sample a round, a small one up to MAX_CALLS.
ROUNDS = 7
LAYER_SECONDS = 0.004
MAX_CALLS = 50
# An anchor whose output differs from convx's by more than this, relative to the largest
# magnitude of convx's output, is reported as disagreeing (reduced precision would show).
AGREE_RTOL = 1e-3


def thread_settings(threads: int) -> str:
    """How each library's thread count is set, as the results record it.

    ONNX Runtime's workers do not spin here: each of a network's layers has a session of
    its own, all alive at once, and with spinning on, the workers of the sessions that
    just ran keep the CPUs busy while the next one runs (at two threads that made ONNX
    Runtime slower than at one)."""
    t = threads
    return (f"convx.set_num_threads({t}); torch.set_num_threads({t}); ONNX Runtime "
            f"intra_op_num_threads={t}, inter_op_num_threads=1, sequential execution, "
            f"session.intra_op.allow_spinning=0; "
            f"OpenVINO INFERENCE_NUM_THREADS={t}, NUM_STREAMS=1, PERFORMANCE_HINT=LATENCY, "
            f"INFERENCE_PRECISION_HINT=f32")


def openvino_runner(layer: Layer, x: Array, w: Array, b: Array, threads: int,
                    nhwc: bool) -> Runner | None:
    """A one-layer OpenVINO model (convolution or group convolution, then the bias) compiled
    for the CPU at `threads` threads and float32 precision (on CPUs with bf16 support the
    plugin otherwise computes in bf16). With nhwc the model takes and gives NHWC tensors
    (transposes around the NCHW operation, which the plugin absorbs into its layouts)."""
    try:
        import openvino as ov
        import openvino.opset13 as ops
    except ImportError:
        return None
    data = x if nhwc else np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    param = ops.parameter(list(data.shape), np.float32)
    node = ops.transpose(param, np.array([0, 3, 1, 2])) if nhwc else param
    g = layer.groups
    w_oihw = np.ascontiguousarray(w.transpose(0, 3, 1, 2))
    hw, pads, dil = [layer.stride] * 2, [layer.pad] * 2, [layer.dilation] * 2
    if g == 1:
        conv = ops.convolution(node, w_oihw, hw, pads, pads, dil)
    else:
        w_goihw = w_oihw.reshape(g, layer.c_out // g, *w_oihw.shape[1:])
        conv = ops.group_convolution(node, w_goihw, hw, pads, pads, dil)
    out = ops.add(conv, b.reshape(1, -1, 1, 1))
    if nhwc:
        out = ops.transpose(out, np.array([0, 2, 3, 1]))
    config = {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1,
              "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    compiled = _ov_core().compile_model(ov.Model([out], [param]), "CPU", config)
    request = compiled.create_infer_request()
    feed = {0: data}
    return lambda: request.infer(feed, share_inputs=True, share_outputs=True)


_OV_CORE: list[Any] = []


def _ov_core() -> Any:
    """One OpenVINO Core per process (creating one loads the plugins)."""
    if not _OV_CORE:
        import openvino as ov

        _OV_CORE.append(ov.Core())
    return _OV_CORE[0]


def _as_nhwc(lib: str, result: Any) -> Array:
    """A library's output of one call as a float32 NHWC NumPy array."""
    if lib.startswith("torch"):
        return np.asarray(result.permute(0, 2, 3, 1).numpy())
    if lib == "ort":
        return np.asarray(result[0]).transpose(0, 2, 3, 1)
    if lib.startswith("openvino"):
        out = np.asarray(result[0])
        return out if lib == "openvino_nhwc" else out.transpose(0, 2, 3, 1)
    return np.asarray(result)


def layer_runners(layer: Layer, libraries: list[str], threads: int
                  ) -> tuple[dict[str, Runner], dict[str, bool]]:
    """The runners of the installed libraries among `libraries` on one layer, each called
    once, and whether each anchor's output agrees with convx's."""
    x, w, b = make_inputs(layer)
    build: dict[str, Callable[[], Runner | None]] = {
        "convx": lambda: convx_layer_runner(layer, x, w, b),
        # Winograd allowed (algorithm="fast"): not an anchor, a second convx figure.
        "convx_fast": lambda: convx_layer_runner(layer, x, w, b, algorithm="fast"),
        "torch": lambda: torch_runner(layer, x, w, b, channels_last=False),
        "torch_cl": lambda: torch_runner(layer, x, w, b, channels_last=True),
        # All of a network's sessions are alive at once (see thread_settings).
        "ort": lambda: ort_runner(layer, x, w, b, threads, spinning=False),
        "openvino": lambda: openvino_runner(layer, x, w, b, threads, nhwc=False),
        "openvino_nhwc": lambda: openvino_runner(layer, x, w, b, threads, nhwc=True),
    }
    runners: dict[str, Runner] = {}
    for lib in libraries:
        run = build[lib]()
        if run is not None:
            runners[lib] = run
    ref = np.asarray(runners["convx"]())
    scale = float(np.max(np.abs(ref))) or 1.0
    agree = {}
    for lib, run in runners.items():
        if lib != "convx":
            got = _as_nhwc(lib, run())
            agree[lib] = got.shape == ref.shape and float(np.max(np.abs(got - ref))) <= (
                AGREE_RTOL * scale)
    return runners, agree


def time_layers(runners: dict[str, dict[str, Runner]], threads: int, rounds: int
                ) -> dict[str, dict[str, float]]:
    """Median seconds per call of every library (outer key) on every layer (inner key).

    The libraries take turns, a whole pass over the layers each, in an order shuffled
    every round. With several threads each pass starts after a pause that lets the
    previous library's spinning worker threads go idle (see convx.bench.timing).
    """
    samples: dict[str, dict[str, list[float]]] = {
        lib: {name: [] for name in layers} for lib, layers in runners.items()}
    libs = list(runners)
    order = random.Random(0)
    for _ in range(rounds):
        order.shuffle(libs)
        for lib in libs:
            if threads > 1:
                time.sleep(BLOCK_PAUSE)
            for name, run in runners[lib].items():
                times = samples[lib][name]
                start = time.perf_counter()
                for _ in range(MAX_CALLS):
                    t0 = time.perf_counter()
                    run()
                    t1 = time.perf_counter()
                    times.append(t1 - t0)
                    if t1 - start >= LAYER_SECONDS:
                        break
    return {lib: {name: statistics.median(ts) for name, ts in per.items()}
            for lib, per in samples.items()}


def network_row(net: Network, layers: list[tuple[Layer, int]],
                seconds: dict[str, dict[str, float]], agree: dict[str, bool]
                ) -> dict[str, Any]:
    """One network's totals (ms) per library, the fastest anchor, and the speed-ups of convx
    over it and over the per-layer fastest anchor (above 1: convx is faster)."""
    ms = {lib: 1e3 * sum(count * per[layer.name] for layer, count in layers)
          for lib, per in seconds.items()}
    anchors = {a: ms[a] for a in NET_ANCHORS if a in ms}
    best = min(anchors, key=lambda a: anchors[a]) if anchors else None
    per_layer_best = None
    if anchors:
        per_layer_best = 1e3 * sum(count * min(seconds[a][layer.name] for a in anchors)
                                   for layer, count in layers)
    row: dict[str, Any] = {
        "network": net.name, "title": net.title, "conv_layers": net.conv_layers,
        "unique_layers": len(layers), "gmacs": sum(c * lay.gflop for lay, c in layers) / 2,
        "ms": ms, "best_anchor": best, "per_layer_best_ms": per_layer_best,
        "speedup": anchors[best] / ms["convx"] if best else None,
        "speedup_per_layer_best": per_layer_best / ms["convx"] if per_layer_best else None,
        "speedup_fast": anchors[best] / ms["convx_fast"] if best and "convx_fast" in ms
        else None,
        "agree": agree,
        "layers": [{"layer": layer.name, "count": count,
                    "ms": {lib: 1e3 * per[layer.name] for lib, per in seconds.items()}}
                   for layer, count in layers],
    }
    return row


def _bench_network(net: Network, resolution: int, libraries: list[str], threads: int,
                   rounds: int) -> dict[str, Any]:
    layers = unique_layers(net, resolution)
    set_threads(threads)
    runners: dict[str, dict[str, Runner]] = {}
    agree: dict[str, bool] = {}
    for layer, _ in layers:
        per, ok = layer_runners(layer, libraries, threads)
        for lib, run in per.items():
            runners.setdefault(lib, {})[layer.name] = run
        for lib, good in ok.items():
            agree[lib] = agree.get(lib, True) and good
    seconds = time_layers(runners, threads, rounds)
    return network_row(net, layers, seconds, agree)


def run_networks(doc: dict[str, Any], thread_counts: list[int], *, resolution: int = 224,
                 libraries: list[str] | None = None, only: str | None = None,
                 rounds: int = ROUNDS) -> None:
    """Times every network (whose name contains `only`) at every thread count and fills
    doc["networks"]."""
    libs = list(NET_LIBRARIES) if libraries is None else libraries
    unknown = [lib for lib in libs if lib not in NET_LIBRARIES]
    if unknown or "convx" not in libs:
        raise ValueError(f"libraries: expected convx and any of {', '.join(NET_LIBRARIES)}, "
                         f"got {', '.join(libs)}")
    nets = [net for net in NETWORKS if only is None or only in net.name]
    tables = []
    for threads in thread_counts:
        rows = []
        for net in nets:
            print(f"[networks] {net.name}, {threads} thread(s) ...", end="", file=sys.stderr,
                  flush=True)
            t0, load = time.perf_counter(), os.getloadavg()[0]
            row = _bench_network(net, resolution, libs, threads, rounds)
            # The machine's load before and after, to judge the noise (this run's own threads
            # count too, about `threads` of it): T threads need T otherwise idle CPUs.
            row["load_average"] = [load, os.getloadavg()[0]]
            rows.append(row)
            print(" " + ", ".join(f"{k} {v:.1f} ms" for k, v in row["ms"].items())
                  + f" ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
        speedups = [r["speedup"] for r in rows if r["speedup"] is not None]
        per_layer = [r["speedup_per_layer_best"] for r in rows
                     if r["speedup_per_layer_best"] is not None]
        fast = [r["speedup_fast"] for r in rows if r.get("speedup_fast") is not None]
        tables.append({"threads": threads, "thread_settings": thread_settings(threads),
                       "rows": rows,
                       "geomean_speedup": geomean(speedups) if speedups else None,
                       "geomean_speedup_per_layer_best": geomean(per_layer) if per_layer
                       else None,
                       "geomean_speedup_fast": geomean(fast) if fast else None})
    doc["networks"] = {
        "batch": 1, "resolution": resolution, "rounds": rounds, "cpus": os.cpu_count(),
        "layer_seconds": LAYER_SECONDS, "max_calls": MAX_CALLS, "block_pause_s": BLOCK_PAUSE,
        "statistic": "per layer the median seconds per call; a network's total is the sum "
                     "of count x median over its distinct conv layers",
        "libraries": {lib: NET_LIBRARIES[lib] for lib in libs},
        "openvino_version": _openvino_version(),
        "definitions": [{"name": n.name, "title": n.title, "source": n.source,
                         "conv_layers": n.conv_layers, "gmacs": n.gmacs} for n in nets],
        "tables": tables,
    }


def _openvino_version() -> str | None:
    try:
        import openvino as ov
    except ImportError:
        return None
    return str(ov.get_version())


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def networks_markdown(section: dict[str, Any], heading: str = "###") -> list[str]:
    """The networks tables (one per thread count) of a results document's "networks"."""
    libs = [lib for lib in NET_LIBRARIES if lib in section["libraries"]]
    scale = "" if section["resolution"] == 224 else (
        f", inputs scaled to {section['resolution']}/224 (a harness check, not a measurement)")
    lines: list[str] = []
    for table in section["tables"]:
        threads = table["threads"]
        lines += [f"{heading} Whole networks' conv layers, {threads} "
                  f"thread{'s' if threads > 1 else ''} (total ms, batch 1{scale})", "",
                  "| network | conv layers (distinct) | GMACs | "
                  + " | ".join(NET_LIBRARIES[lib] for lib in libs)
                  + " | best anchor | best anchor / convx | per-layer best / convx |",
                  "|---|---|---|" + "---|" * (len(libs) + 3)]
        for row in table["rows"]:
            ms = row["ms"]
            bad = [NET_LIBRARIES[a] for a, ok in row["agree"].items() if not ok]
            note = f" (outputs differ: {', '.join(bad)})" if bad else ""
            best = row["best_anchor"]
            lines.append(
                f"| {row['title']}{note} | {row['conv_layers']} ({row['unique_layers']}) | "
                f"{row['gmacs']:.2f} | "
                + " | ".join(_fmt(ms.get(lib), ".2f") for lib in libs)
                + f" | {NET_LIBRARIES[best] if best else '-'} | "
                f"{_fmt(row['speedup'], '.2f')} | {_fmt(row['speedup_per_layer_best'], '.2f')} |")
        loads = [x for row in table["rows"] for x in row.get("load_average", [])]
        busy = (f"; 1-minute load average {min(loads):.1f}-{max(loads):.1f} "
                f"on {section.get('cpus', '?')} CPUs" if loads else "")
        lines += ["", f"geometric mean over the networks of best anchor / convx: "
                      f"{_fmt(table['geomean_speedup'], '.2f')}; of per-layer best / convx: "
                      f"{_fmt(table['geomean_speedup_per_layer_best'], '.2f')} (above 1: convx "
                      "is faster)"]
        if table.get("geomean_speedup_fast") is not None:
            lines += ["", f"with Winograd allowed (convx fast, `algorithm=\"fast\"`), "
                          f"best anchor / convx fast: "
                          f"{_fmt(table['geomean_speedup_fast'], '.2f')}"]
        lines += ["", f"threads: {table['thread_settings']}{busy}"]
        lines.append("")
    return lines[:-1]
