"""Two-thread scaling per layer: convx, PyTorch and ONNX Runtime at 1 and 2 threads.

For every layer of the benchmark suite plus ShuffleNet-style layers (grouped 1x1,
depthwise 3x3, deep small maps), prints the median time per call at one and two threads
and the speed-up (1-thread time / 2-thread time) of each library; or, with `--backward
weight` or `--backward input`, that gradient alone (convx and torch). Run from the
repository root after `pip install ".[bench]"`:

    python benchmarks/bench_scaling.py [--reps 11] [--only NAME] [--libs convx,torch,ort]
                                       [--backward weight|input] [--steady] [--json PATH]

Each round times every library at one and then two threads, each batch after a pause (a
long one after another library's two-thread batch, so that its spinning workers have gone
idle), and each cell is the median over the rounds. The two-thread FMA peak is sampled
before and after: if it is far from twice the one-thread peak, the other vCPU was busy and
the two-thread figures are low.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable

import convx
from convx.bench import suite, timing
from convx.bench.suite import Layer

# name: (n, h, w, c_in, c_out, k, stride, pad, dilation, groups)
SHUFFLE = [Layer(name, *dims) for name, dims in {
    "shuffle 1x1 g3": (1, 28, 28, 240, 240, 1, 1, 0, 1, 3),
    "shuffle 1x1 g4": (1, 28, 28, 240, 240, 1, 1, 0, 1, 4),
    "shuffle 1x1 g8": (1, 28, 28, 240, 240, 1, 1, 0, 1, 8),
    "dw 3x3 s1 28": (1, 28, 28, 240, 240, 3, 1, 1, 1, 240),
    "dw 3x3 s2 28": (1, 28, 28, 240, 240, 3, 2, 1, 1, 240),
    "dw 3x3 s1 14": (1, 14, 14, 480, 480, 3, 1, 1, 1, 480),
    "dw 3x3 s2 14": (1, 14, 14, 480, 480, 3, 2, 1, 1, 480),
    "14x14x1024 1x1": (1, 14, 14, 1024, 256, 1, 1, 0, 1, 1),
}.items()]
# Layers whose gradients are timed with --backward.
BACKWARD = ("mobilenet depthwise", "dw 3x3 s1 28", "shuffle 1x1 g3", "resnet.s5 3x3",
            "mnist batch 64", "resnet50 1x1")
# Seconds before each timed batch, and before a library's first batch after another
# library's two-thread batch: OpenMP and ONNX Runtime workers spin for a while after a call
# (torch's up to about 0.2 s), and would take the second vCPU from whoever runs next.
PAUSE = 0.02
PAUSE_AFTER_OTHER = 0.25
# A batch lasts about this long, after WARMUP untimed calls: a worker asleep since the pause
# takes a few milliseconds to run again on a VM (its vCPU is halted), which a network's
# back-to-back layers pay once, not per layer.
BATCH_SECONDS = 20e-3
WARMUP = 3
STEADY_CALLS = 12


def runners(layer: Layer, libs: list[str], threads: int, backward: str
            ) -> dict[str, Callable[[], object]]:
    x, w, b = suite.make_inputs(layer)
    out: dict[str, Callable[[], object] | None] = {}
    if backward:
        g = suite.make_grad(layer)
        if "convx" in libs:
            out["convx"] = suite.convx_backward_runner(layer, x, w, g, (backward,))
        if "torch" in libs:
            out["torch"] = suite.torch_backward_runner(layer, x, w, b, g, False, backward)
        return {k: v for k, v in out.items() if v is not None}
    if "convx" in libs:
        out["convx"] = suite.convx_layer_runner(layer, x, w, b)
    if "torch" in libs:
        out["torch"] = suite.torch_runner(layer, x, w, b, channels_last=False)
    if "ort" in libs:
        out["ort"] = suite.ort_runner(layer, x, w, b, threads)
    return {k: v for k, v in out.items() if v is not None}


def batch_size(fn: Callable[[], object]) -> int:
    fn()
    t0 = time.perf_counter()
    fn()
    return max(1, min(2000, int(BATCH_SECONDS / max(time.perf_counter() - t0, 1e-7))))


def time_layer(layer: Layer, libs: list[str], reps: int, backward: str,
               raw: dict[str, dict[int, list[float]]] | None = None
               ) -> dict[str, dict[int, float]]:
    """Median seconds per call, by library and thread count (and every sample into raw)."""
    by_threads = {t: runners(layer, libs, t, backward) for t in (1, 2)}
    sizes = {}
    for t, rs in by_threads.items():
        suite.set_threads(t)
        for name, fn in rs.items():
            sizes[(name, t)] = batch_size(fn)
    samples: dict[tuple[str, int], list[float]] = {key: [] for key in sizes}
    previous = ("", 1)
    for _ in range(reps):
        for name in by_threads[1]:
            for t, rs in by_threads.items():
                suite.set_threads(t)
                fn, n = rs[name], sizes[(name, t)]
                other = previous[0] != name and previous[1] > 1
                time.sleep(PAUSE_AFTER_OTHER if other else PAUSE)
                previous = (name, t)
                for _ in range(WARMUP):
                    fn()
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                samples[(name, t)].append((time.perf_counter() - t0) / n)
    if raw is not None:
        for (name, t), ts in samples.items():
            raw.setdefault(name, {})[t] = ts
    result: dict[str, dict[int, float]] = {}
    for (name, t), ts in samples.items():
        result.setdefault(name, {})[t] = statistics.median(ts)
    return result


def time_layer_steady(layer: Layer, libs: list[str], reps: int, backward: str,
                      raw: dict[str, dict[int, list[float]]] | None = None
                      ) -> dict[str, dict[int, float]]:
    """Per-call medians of runs of STEADY_CALLS back-to-back calls, one and two threads in
    turn for each library, dropping each run's first WARMUP calls: a measure of a network's
    back-to-back layers that a slow spell of the shared machine hits at both counts alike."""
    by_threads = {t: runners(layer, libs, t, backward) for t in (1, 2)}
    samples: dict[tuple[str, int], list[float]] = {}
    for _ in range(reps):
        for name in by_threads[1]:
            for t, rs in by_threads.items():
                suite.set_threads(t)
                time.sleep(PAUSE)
                for i in range(STEADY_CALLS):
                    t0 = time.perf_counter()
                    rs[name]()
                    if i >= WARMUP:
                        samples.setdefault((name, t), []).append(time.perf_counter() - t0)
    result: dict[str, dict[int, float]] = {}
    for (name, t), ts in samples.items():
        result.setdefault(name, {})[t] = statistics.median(ts)
        if raw is not None:
            raw.setdefault(name, {})[t] = ts
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python benchmarks/bench_scaling.py")
    ap.add_argument("--reps", type=int, default=11, help="timed rounds per layer (median)")
    ap.add_argument("--only", default="", help="layers whose name contains this")
    ap.add_argument("--libs", default="convx,torch,ort", help="comma-separated libraries")
    ap.add_argument("--backward", default="", choices=["", "weight", "input"],
                    help="time this gradient instead of the forward pass")
    ap.add_argument("--steady", action="store_true",
                    help="time runs of back-to-back calls, 1 and 2 threads in turn")
    ap.add_argument("--json", default="", help="write the results here")
    args = ap.parse_args(argv)
    libs = args.libs.split(",")
    layers = [*suite.SUITE, *SHUFFLE]
    if args.backward:
        layers = [layer for layer in layers if layer.name in BACKWARD]
    layers = [layer for layer in layers if args.only in layer.name]
    timing.settle_allocator()
    peaks = (timing.peak_gflops(0.05), timing.concurrent_peak(2))
    print(f"convx {convx.__version__}, FMA peak 1T {peaks[0]:.0f} 2T {peaks[1]:.0f} Gflop/s")
    head = f"{'layer':<22}" + "".join(f"{lib + ' 1T ms':>13}{'2T ms':>9}{'x':>6}" for lib in libs)
    print(head)
    results = {}
    samples: dict[str, dict[str, dict[int, list[float]]]] = {}
    for layer in layers:
        timer = time_layer_steady if args.steady else time_layer
        res = timer(layer, libs, args.reps, args.backward, samples.setdefault(layer.name, {}))
        results[layer.name] = res
        cells = []
        for lib in libs:
            if lib not in res:
                cells.append(f"{'-':>13}{'-':>9}{'-':>6}")
                continue
            t1, t2 = res[lib][1], res[lib][2]
            cells.append(f"{t1 * 1e3:>13.3f}{t2 * 1e3:>9.3f}{t1 / t2:>6.2f}")
        print(f"{layer.name:<22}" + "".join(cells), flush=True)
    after = timing.concurrent_peak(2)
    print(f"2T FMA peak after: {after:.0f} Gflop/s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"peaks": [*peaks, after], "backward": args.backward,
                       "results": results, "samples": samples}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
