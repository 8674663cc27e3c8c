"""The convolution benchmark behind `python -m convx bench` (and benchmarks/bench_conv.py).

Times convx.conv2d against PyTorch (NCHW and channels_last), ONNX Runtime (a one-node Conv
model) and NumPy im2col + matmul on a suite of real layers, in one process, at 1 and 2
threads, as medians of repeated calls. Anchors that are not installed are skipped
(`pip install convx[bench]` brings them all). Also checks that convx's output is bitwise
identical at 1 and 2 threads, and measures the extra peak memory of one vgg16.conv2_2 call in
a subprocess for each library.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

import convx

Array = npt.NDArray[Any]


@dataclass(frozen=True)
class Layer:
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
ANCHORS = ("torch", "torch_cl", "ort")


# Rounds of per-library blocks when timing several threads, and the pause before each
# block (see interleaved_medians). On a shared VM whether two threads get two cores
# changes from one second to the next, so a library's median is taken over many short
# blocks spread across the run rather than a few long ones.
_BLOCK_ROUNDS = 7
_BLOCK_PAUSE = 0.15  # OpenBLAS workers spin for about 2^28 cycles (~0.1 s)


def interleaved_medians(runners: dict[str, Callable[[], object]], min_time: float,
                        min_reps: int = 11, threads: int = 1) -> dict[str, float]:
    """Median seconds per call of each runner.

    The machine is shared and its speed drifts over seconds. With one thread the
    libraries take turns (one timed batch each per round, in shuffled order), so a slow
    spell slows all of them alike and the ratios stay fair. With several threads that
    would be unfair: OpenBLAS and OpenMP keep their worker threads spinning for a while
    after a call and would steal the cores from whichever library runs next. So then
    each library is timed in blocks of its own, each after a pause that lets the previous
    one's threads go idle, in several rounds of shuffled order. A batch repeats a fast call
    until it lasts about a millisecond. Every library gets at least min_reps batches: the
    large layers (30-70 ms a call) would otherwise get seven, and medians of seven moved
    single cells by 10 % or more between runs.
    """
    batch = {}
    for name, fn in runners.items():
        fn()
        t0 = time.perf_counter()
        fn()
        once = max(time.perf_counter() - t0, 1e-7)
        batch[name] = max(1, min(1000, int(1e-3 / once)))
    times: dict[str, list[float]] = {name: [] for name in runners}

    def timed_batch(name: str) -> None:
        fn, n = runners[name], batch[name]
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        times[name].append((time.perf_counter() - t0) / n)

    if threads == 1:
        # The order is shuffled every round, so that no library always runs right after
        # the same neighbour (after NumPy's im2col, say, which leaves the caches cold).
        names = list(runners)
        order = random.Random(0)
        start = time.perf_counter()
        rounds = 0
        while rounds < min_reps or (time.perf_counter() - start < min_time * len(runners)
                                    and rounds < 500):
            order.shuffle(names)
            for name in names:
                timed_batch(name)
            rounds += 1
    else:
        # Blocks in several rounds, in shuffled order, so that a slow spell of the
        # machine (which lasts seconds here) falls on every library's samples rather
        # than on one library's only block.
        names = list(runners)
        order = random.Random(0)
        for _ in range(_BLOCK_ROUNDS):
            order.shuffle(names)
            for name in names:
                time.sleep(_BLOCK_PAUSE)
                runners[name]()
                start = time.perf_counter()
                count = 0
                while count < -(-min_reps // _BLOCK_ROUNDS) or (
                        time.perf_counter() - start < min_time / _BLOCK_ROUNDS and count < 200):
                    timed_batch(name)
                    count += 1
    return {name: statistics.median(ts) for name, ts in times.items()}


def make_inputs(layer: Layer, seed: int = 0) -> tuple[Array, Array, Array]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((layer.n, layer.h, layer.w, layer.c_in), dtype=np.float32)
    w = rng.standard_normal((layer.c_out, layer.k, layer.k, layer.c_in // layer.groups),
                            dtype=np.float32) * np.float32(0.1)
    b = rng.standard_normal(layer.c_out, dtype=np.float32)
    return x, w, b


def convx_runner(layer: Layer, x: Array, w: Array, b: Array) -> Callable[[], object]:
    """The functional call: weights are packed on every call (like torch's functional)."""
    return lambda: convx.conv2d(x, w, b, stride=layer.stride, padding=layer.pad,
                                dilation=layer.dilation, groups=layer.groups)


def convx_layer_runner(layer: Layer, x: Array, w: Array, b: Array) -> Callable[[], object]:
    """A Conv2D layer: weights packed once when set (like an ONNX Runtime session)."""
    conv = convx.Conv2D(layer.c_in, layer.c_out, layer.k, stride=layer.stride,
                        padding=layer.pad, dilation=layer.dilation, groups=layer.groups)
    conv.weight = w
    conv.bias = b
    return lambda: conv(x)


def torch_runner(layer: Layer, x: Array, w: Array, b: Array, channels_last: bool
                 ) -> Callable[[], object] | None:
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


def ort_session(layer: Layer, w: Array, b: Array, threads: int) -> Any:
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
    return ort.InferenceSession(onnx._serialize(model) if hasattr(onnx, "_serialize")
                                else model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def ort_runner(layer: Layer, x: Array, w: Array, b: Array, threads: int
               ) -> Callable[[], object] | None:
    try:
        sess = ort_session(layer, w, b, threads)
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
    convx.set_num_threads(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass


def bench_layer(layer: Layer, threads: int, min_time: float) -> dict[str, float]:
    x, w, b = make_inputs(layer)
    set_threads(threads)
    runners: dict[str, Callable[[], object] | None] = {
        "convx": convx_layer_runner(layer, x, w, b),
        "convx_fn": convx_runner(layer, x, w, b),
        "torch": torch_runner(layer, x, w, b, channels_last=False),
        "torch_cl": torch_runner(layer, x, w, b, channels_last=True),
        "ort": ort_runner(layer, x, w, b, threads),
    }
    present = {name: run for name, run in runners.items() if run is not None}
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        seconds = interleaved_medians(present, min_time, threads=threads)
    else:
        present["numpy"] = lambda: numpy_conv(layer, x, w, b)
        with threadpool_limits(threads):
            seconds = interleaved_medians(present, min_time, threads=threads)
    return {name: layer.gflop / t for name, t in seconds.items()}


def bitwise_same_across_threads(layer: Layer) -> bool:
    x, w, b = make_inputs(layer, seed=1)
    outs: list[Any] = []
    for t in (1, 2):
        convx.set_num_threads(t)
        outs.append(convx_runner(layer, x, w, b)())
        outs.append(convx_layer_runner(layer, x, w, b)())
    return all(bool(np.array_equal(outs[0], o)) for o in outs[1:])


_MEMORY_PROBE = r"""
import sys, json
import numpy as np
lib = sys.argv[1]
from convx._bench_conv import SUITE, make_inputs, ort_session, torch_runner
import convx
layer = next(l for l in SUITE if l.name == "vgg16.conv2_2")
tiny = next(l for l in SUITE if l.name == "resnet.s5 3x3")
x, w, b = make_inputs(layer)
out_bytes = layer.n * layer.out_hw[0] * layer.out_hw[1] * layer.c_out * 4
if lib == "convx":
    convx.set_num_threads(1)
    xt, wt, bt = make_inputs(tiny)
    convx.conv2d(xt, wt, bt, padding=1)                     # initialise the library
    out = np.empty((layer.n, *layer.out_hw, layer.c_out), np.float32)
    out.fill(0)                                             # the output is the caller's
    run = lambda: convx.conv2d(x, w, b, padding=1, out=out)
    out_bytes = 0
elif lib in ("torch", "torch_cl"):
    import torch
    torch.set_num_threads(1)
    torch_runner(tiny, *make_inputs(tiny), channels_last=lib == "torch_cl")()
    run = torch_runner(layer, x, w, b, channels_last=lib == "torch_cl")
elif lib == "ort":
    sess = ort_session(layer, w, b, 1)
    feed = {"X": np.ascontiguousarray(x.transpose(0, 3, 1, 2))}
    ts = ort_session(tiny, *make_inputs(tiny)[1:], 1)
    ts.run(None, {"X": np.ascontiguousarray(make_inputs(tiny)[0].transpose(0, 3, 1, 2))})
    run = lambda: sess.run(None, feed)
# ru_maxrss is a high-water mark that earlier (freed) allocations may already have
# raised, hiding the call's own peak. So: hand freed heap back to the OS, reset the
# kernel's peak-RSS counter (VmHWM, via /proc/self/clear_refs), and read it after.
import ctypes
def status_kib(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
ctypes.CDLL("libc.so.6").malloc_trim(0)
before = status_kib("VmRSS")
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")
y = run()
after = status_kib("VmHWM")
print(json.dumps({"extra_mib": ((after - before) * 1024 - out_bytes) / 2**20}))
"""


def extra_memory_mib(lib: str) -> float | None:
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, lib], capture_output=True,
                          text=True, env=env, timeout=300, check=False)
    if proc.returncode != 0:
        return None
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["extra_mib"])


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def render(results: dict[int, dict[str, dict[str, float]]], peak: float) -> str:
    lines = []
    for threads, table in results.items():
        lines.append(f"\n### {threads} thread{'s' if threads > 1 else ''} (GFLOP/s, median)\n")
        lines.append("| layer | GFLOP | convx Conv2D | % peak | convx conv2d | torch | torch CL "
                     "| ORT | NumPy | convx / best anchor |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|")
        ratios, ratios_fn = [], []
        for layer in SUITE:
            r = table.get(layer.name)
            if r is None:
                continue
            anchors = [r[a] for a in ANCHORS if a in r]
            best = max(anchors) if anchors else float("nan")
            ratio = r["convx"] / best if anchors else float("nan")
            if anchors:
                ratios.append(ratio)
                if "convx_fn" in r:
                    ratios_fn.append(r["convx_fn"] / best)
            cells = [f"{r[k]:.1f}" if k in r else "-"
                     for k in ("convx_fn", "torch", "torch_cl", "ort", "numpy")]
            pct = f"{100 * r['convx'] / (peak * threads):.0f}%" if peak > 0 else "-"
            lines.append(f"| {layer.name} | {layer.gflop:.3f} | {r['convx']:.1f} | {pct} | "
                         + " | ".join(cells) + f" | {ratio:.2f} |")
        lines.append(f"\ngeometric mean of convx / best anchor: {geomean(ratios):.2f} (Conv2D), "
                     f"{geomean(ratios_fn):.2f} (conv2d)")
    return "\n".join(lines)


def plot(results: dict[int, dict[str, dict[str, float]]], path: str) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    libs = ["convx", "convx_fn", "torch", "torch_cl", "ort", "numpy"]
    fig, axes = plt.subplots(len(results), 1, figsize=(13, 4.5 * len(results)), squeeze=False)
    for ax, (threads, table) in zip(axes[:, 0], results.items()):
        names = [layer.name for layer in SUITE if layer.name in table]
        width = 0.14
        for i, lib in enumerate(libs):
            vals = [table[nm].get(lib, 0.0) for nm in names]
            ax.bar([j + (i - 2.5) * width for j in range(len(names))], vals, width, label=lib)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("GFLOP/s")
        ax.set_title(f"conv2d, float32, {threads} thread(s)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def tiny_call_overhead(min_time: float) -> dict[str, float]:
    """Median microseconds of one tiny conv (1x8x8x1 -> 4 channels, 3x3, pad 1), 1 thread."""
    tiny = Layer("tiny", 1, 8, 8, 1, 4, 3, 1, 1, 1, 1)
    x, w, b = make_inputs(tiny)
    set_threads(1)
    runners = {"convx conv2d": convx_runner(tiny, x, w, b),
               "convx Conv2D": convx_layer_runner(tiny, x, w, b),
               "torch": torch_runner(tiny, x, w, b, channels_last=False)}
    try:
        runners["ort"] = ort_runner(tiny, x, w, b, 1)
    except ImportError:
        pass
    present = {name: run for name, run in runners.items() if run is not None}
    return {name: 1e6 * t for name, t in interleaved_medians(present, min_time).items()}


def denormal_times(min_time: float) -> dict[str, float]:
    """Median milliseconds of one Conv2D call (28x28x128 -> 128, 3x3, pad 1, one thread)
    on normal data and on data with 10% of the weights and 10% of the inputs denormal
    (+-1e-40), with convx's flushing on (the default) and off, and torch on both."""
    layer = Layer("denormal", 1, 28, 28, 128, 128, 3, 1, 1, 1, 1)
    x, w, b = make_inputs(layer)
    rng = np.random.default_rng(1)
    xd, wd = x.copy(), w.copy()
    for a in (xd, wd):
        flat = a.reshape(-1)
        pick = rng.choice(flat.size, size=flat.size // 10, replace=False)
        flat[pick] = np.float32(1e-40) * rng.choice(np.array([-1, 1], np.float32), pick.size)
    set_threads(1)
    normal = convx_layer_runner(layer, x, w, b)
    denormal = convx_layer_runner(layer, xd, wd, b)

    def denormal_unflushed() -> object:
        convx.set_flush_denormal(False)
        try:
            return denormal()
        finally:
            convx.set_flush_denormal(True)

    runners: dict[str, Callable[[], object] | None] = {
        "convx normal": normal, "convx 10% denormal": denormal,
        "convx 10% denormal, flush off": denormal_unflushed,
        "torch normal": torch_runner(layer, x, w, b, channels_last=False),
        "torch 10% denormal": torch_runner(layer, xd, wd, b, channels_last=False)}
    present = {name: run for name, run in runners.items() if run is not None}
    return {name: 1e3 * t for name, t in interleaved_medians(present, min_time).items()}


def print_denormal_times(min_time: float) -> None:
    times = denormal_times(min_time)
    print("\ndenormal data (Conv2D 28x28x128 -> 128, 3x3, 1 thread; 10% of weights and inputs "
          "+-1e-40; median ms):")
    for name, ms in times.items():
        base = times["torch normal" if name.startswith("torch") else "convx normal"]
        print(f"  {name:30s} {ms:8.3f} ms  {ms / base:6.2f}x its normal time")


def concurrent_peak(threads: int, seconds: float = 0.05) -> float:
    """FMA GFLOP/s of `threads` peak loops run at once, summed. On a VM whose vCPUs are
    at times two hyperthreads of one core, this is about one core's peak rather than
    `threads` times it, and every library's multi-thread timing drops with it."""
    import threading

    rates = [0.0] * threads

    def one(i: int) -> None:
        rates[i] = float(convx._core.measure_peak_gflops(seconds))  # releases the GIL

    workers = [threading.Thread(target=one, args=(i,)) for i in range(1, threads)]
    for t in workers:
        t.start()
    one(0)
    for t in workers:
        t.join()
    return sum(rates)


def settle_allocator() -> None:
    """Put the process's malloc in the state it reaches after any large free, before timing.

    Until glibc first frees a large mapped block, every allocation above 128 KiB is a fresh
    mapping whose pages fault on first touch; the first such free raises that threshold to
    the block's size (up to 32 MiB). Without this, the first layer measured would be timed in
    a different state from the rest (NumPy's im2col frees a large block after its first call),
    and a library that allocates per call would pay for it there only: torch's NCHW
    resnet50.conv1 at one thread ran at 29 GFLOP/s before and 79 after one 16 MiB free.
    """
    block = np.ones((16 << 20) // 4, dtype=np.float32)
    del block


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m convx bench", description=__doc__)
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--min-time", type=float, default=0.3,
                        help="seconds of timed calls per library and layer")
    parser.add_argument("--only", default=None, help="substring filter on layer names")
    parser.add_argument("--png", default="benchmarks/results/conv_bench.png")
    parser.add_argument("--json", default=None, help="also write raw results here")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--denormal-only", action="store_true",
                        help="only the timing of normal against denormal data")
    args = parser.parse_args(argv)
    if args.denormal_only:
        settle_allocator()
        print_denormal_times(args.min_time)
        return 0
    thread_counts = [int(t) for t in args.threads.split(",")]
    layers = [lay for lay in SUITE if args.only is None or args.only in lay.name]

    settle_allocator()
    info = convx.cpu_info()
    # The machine's speed drifts, and one sample taken in a slow moment would make every
    # "% peak" wrong. So the peak is sampled at the start and before each one-thread layer,
    # and the fastest sample is the reference.
    peak_samples = [float(convx._core.measure_peak_gflops(0.06)) for _ in range(5)]
    print(f"convx {convx.__version__}, path {info['active']}, measured f32 FMA peak "
          f"{max(peak_samples):.0f} GFLOP/s per core so far", flush=True)
    results: dict[int, dict[str, dict[str, float]]] = {t: {} for t in thread_counts}
    capacity: dict[int, list[float]] = {t: [] for t in thread_counts if t > 1}
    total = len(layers) * len(thread_counts)
    done = 0
    for threads in thread_counts:
        for layer in layers:
            done += 1
            print(f"[{done}/{total}] {layer.name}, {threads} thread(s) ...", end="",
                  file=sys.stderr, flush=True)
            if threads == 1:
                peak_samples.append(float(convx._core.measure_peak_gflops(0.03)))
            if threads > 1:
                time.sleep(_BLOCK_PAUSE)  # other libraries' workers may still spin
                capacity[threads].append(concurrent_peak(threads))
                print(f" (FMA peak of {threads} threads at once: "
                      f"{capacity[threads][-1]:.0f} GFLOP/s)", end="", file=sys.stderr)
            r = bench_layer(layer, threads, args.min_time)
            results[threads][layer.name] = r
            print(" " + ", ".join(f"{k} {v:.1f}" for k, v in r.items()), file=sys.stderr,
                  flush=True)
    peak = max(peak_samples)
    print(f"f32 FMA peak of one core, the fastest of {len(peak_samples)} samples: "
          f"{peak:.0f} GFLOP/s (slowest {min(peak_samples):.0f})\n")
    print(render(results, peak))
    for threads, rates in capacity.items():
        print(f"FMA peak of {threads} threads at once, sampled before each layer: "
              f"{min(rates):.0f}-{max(rates):.0f} GFLOP/s (median {statistics.median(rates):.0f}; "
              f"{threads} full cores give about {threads * peak:.0f})")

    print("\ntiny-call overhead (1x8x8x1 -> 4, 3x3, pad 1; median of interleaved batches):")
    for name, us in tiny_call_overhead(args.min_time).items():
        print(f"  {name:13s} {us:6.2f} us")

    print_denormal_times(args.min_time)

    same = {layer.name: bitwise_same_across_threads(layer) for layer in layers}
    bad = [name for name, ok in same.items() if not ok]
    print(f"\nbitwise identical at 1 and 2 threads: {len(same) - len(bad)}/{len(same)} layers"
          + (f" (differs: {', '.join(bad)})" if bad else ""))

    if not args.no_memory:
        print("\nextra peak memory of one vgg16.conv2_2 call beyond its output (1 thread):")
        for lib in ("convx", "torch", "torch_cl", "ort"):
            mib = extra_memory_mib(lib)
            print(f"  {lib:9s} " + ("not available" if mib is None else f"{mib:6.2f} MiB"))
    if args.png:
        os.makedirs(os.path.dirname(args.png) or ".", exist_ok=True)
        path = plot(results, args.png)
        print(f"\nchart: {path}" if path else "\n(matplotlib not installed: no chart)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({str(k): v for k, v in results.items()}, fh, indent=1)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
