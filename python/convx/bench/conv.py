"""The convolution benchmark behind `python -m convx bench` (and benchmarks/bench_conv.py).

Times convx against PyTorch (NCHW and channels_last), ONNX Runtime (a one-node Conv model)
and NumPy (im2col + matmul) on a suite of real layers, in one process, at each requested
thread count, as medians of repeated calls; then one forward + backward of six of the
layers against torch autograd, with dX and dW timed apart as well (convx.bench.backward;
--no-backward leaves it out). Libraries that are not installed are skipped
(`pip install convx[bench]` brings them all). Also times a tiny call and denormal data,
checks that convx's output is bitwise identical at 1 and 2 threads, and measures the extra
peak memory of one vgg16.conv2_2 call in a fresh process per library. With --json PATH every
figure printed, and the machine, versions, command and method, are written to PATH.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import shlex
import sys
import time
from typing import Any

import numpy as np

import convx
from convx.bench import report
from convx.bench.backward import run_backward_suite
from convx.bench.memory_probe import LIBRARIES as MEMORY_LIBRARIES
from convx.bench.memory_probe import extra_memory_mib
from convx.bench.network_bench import ROUNDS, networks_markdown, run_networks
from convx.bench.suite import (
    LIBRARIES,
    SUITE,
    TINY,
    Layer,
    Runner,
    convx_layer_runner,
    convx_runner,
    make_inputs,
    numpy_conv,
    ort_runner,
    set_threads,
    torch_runner,
)
from convx.bench.timing import (
    BLOCK_PAUSE,
    concurrent_peak,
    interleaved_medians,
    method,
    peak_gflops,
    settle_allocator,
)

# Environment variables that change what is measured; the JSON records those that are set.
_ENV_RECORDED = ("CONVX_ISA", "CONVX_NUM_THREADS", "CONVX_FLUSH_DENORMAL", "OMP_NUM_THREADS",
                 "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE")


def bench_layer(layer: Layer, threads: int, min_time: float) -> dict[str, float]:
    """Median seconds per call of every library present on one layer."""
    x, w, b = make_inputs(layer)
    set_threads(threads)
    runners: dict[str, Runner | None] = {
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
        # Without threadpoolctl NumPy's BLAS threads cannot be limited, so it is left out.
        return interleaved_medians(present, min_time, threads=threads)
    present["numpy"] = lambda: numpy_conv(layer, x, w, b)
    with threadpool_limits(threads):
        return interleaved_medians(present, min_time, threads=threads)


def bitwise_same_across_threads(layer: Layer) -> bool:
    x, w, b = make_inputs(layer, seed=1)
    outs: list[Any] = []
    for t in (1, 2):
        convx.set_num_threads(t)
        outs.append(convx_runner(layer, x, w, b)())
        outs.append(convx_layer_runner(layer, x, w, b)())
    return all(bool(np.array_equal(outs[0], o)) for o in outs[1:])


def tiny_call_overhead(min_time: float) -> dict[str, float]:
    """Median microseconds of one tiny conv (1x8x8x1 -> 4 channels, 3x3, pad 1), 1 thread."""
    x, w, b = make_inputs(TINY)
    set_threads(1)
    runners = {"convx conv2d": convx_runner(TINY, x, w, b),
               "convx Conv2D": convx_layer_runner(TINY, x, w, b),
               "torch": torch_runner(TINY, x, w, b, channels_last=False),
               "ort": ort_runner(TINY, x, w, b, 1)}
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

    runners: dict[str, Runner | None] = {
        "convx normal": normal, "convx 10% denormal": denormal,
        "convx 10% denormal, flush off": denormal_unflushed,
        "torch normal": torch_runner(layer, x, w, b, channels_last=False),
        "torch 10% denormal": torch_runner(layer, xd, wd, b, channels_last=False)}
    present = {name: run for name, run in runners.items() if run is not None}
    return {name: 1e3 * t for name, t in interleaved_medians(present, min_time).items()}


def plot(tables: list[dict[str, Any]], path: str) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    libs = list(LIBRARIES)
    fig, axes = plt.subplots(len(tables), 1, figsize=(13, 4.5 * len(tables)), squeeze=False)
    for ax, table in zip(axes[:, 0], tables):
        names = [row["layer"] for row in table["rows"]]
        width = 0.14
        for i, lib in enumerate(libs):
            vals = [row["gflops"].get(lib, 0.0) for row in table["rows"]]
            ax.bar([j + (i - 2.5) * width for j in range(len(names))], vals, width,
                   label=LIBRARIES[lib])
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("Gflop/s")
        ax.set_title(f"conv2d, float32, {table['threads']} thread(s)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def cpu_model() -> str:
    """The CPU's model name, with its x86 family and model numbers when the name is vague
    (a VM may report only "AMD EPYC")."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if not key and fields:
                    break  # the first processor's block is enough
                fields.setdefault(key, value.strip())
    except OSError:
        pass
    name = fields.get("model name") or fields.get("Model") or fields.get("cpu model")
    if not name:
        return platform.processor() or platform.machine() or "unknown"
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def metadata(command: str, thread_counts: list[int], min_time: float) -> dict[str, Any]:
    """The machine, software and method of this run, as the JSON records them."""
    info = convx.cpu_info()
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "environment": {k: os.environ[k] for k in _ENV_RECORDED if k in os.environ},
        "cpu_model": cpu_model(),
        "cpu_vendor": info["vendor"],
        "machine": platform.machine(),
        "platform": platform.platform(),
        "usable_cpus": info["usable_cpus"],
        "isa_path": info["active"],
        "caches": {k: info[k] for k in ("l1d", "l2", "l3", "l2_shared_by", "l3_shared_by",
                                        "cache_source")},
        "gemm_blocking": info["gemm_blocking"],
        "isa_available": list(info["available"]),
        "build_flags": info["build_flags"],
        "default_threads": info["num_threads"],
        "thread_counts": thread_counts,
        "versions": {"convx": convx.__version__, "numpy": np.__version__,
                     "torch": _version("torch"), "onnxruntime": _version("onnxruntime"),
                     "python": platform.python_version()},
        "method": method(min_time),
    }


def _print(lines: list[str]) -> None:
    print("\n" + "\n".join(lines), flush=True)


def run_conv_suite(doc: dict[str, Any], layers: list[Layer], min_time: float) -> None:
    """Times every layer at every thread count and fills doc's "conv" and "fma_peak"."""
    thread_counts: list[int] = doc["meta"]["thread_counts"]
    # The machine's speed drifts, and one sample taken in a slow moment would make every
    # "% peak" wrong. So the peak is sampled at the start and before each one-thread layer,
    # and the fastest sample is the reference.
    samples = [peak_gflops(0.06) for _ in range(5)]
    print(f"convx {convx.__version__}, path {doc['meta']['isa_path']}, measured f32 FMA peak "
          f"{max(samples):.0f} Gflop/s per core so far", flush=True)
    seconds: dict[int, dict[str, dict[str, float]]] = {t: {} for t in thread_counts}
    capacity: dict[str, list[float]] = {str(t): [] for t in thread_counts if t > 1}
    total = len(layers) * len(thread_counts)
    done = 0
    for threads in thread_counts:
        for layer in layers:
            done += 1
            print(f"[{done}/{total}] {layer.name}, {threads} thread(s) ...", end="",
                  file=sys.stderr, flush=True)
            if threads == 1:
                samples.append(peak_gflops(0.03))
            else:
                time.sleep(BLOCK_PAUSE)  # other libraries' workers may still spin
                capacity[str(threads)].append(concurrent_peak(threads))
                print(f" (FMA peak of {threads} threads at once: "
                      f"{capacity[str(threads)][-1]:.0f} Gflop/s)", end="", file=sys.stderr)
            secs = bench_layer(layer, threads, min_time)
            seconds[threads][layer.name] = secs
            print(" " + ", ".join(f"{k} {layer.gflop / v:.1f}" for k, v in secs.items()),
                  file=sys.stderr, flush=True)
    peak = max(samples)
    doc["fma_peak"] = {"per_core_gflops": peak, "per_core_samples": samples,
                       "concurrent_gflops": capacity}
    doc["conv"] = [report.conv_table(t, doc["layers"], seconds[t], peak) for t in thread_counts]


def _write_json(doc: dict[str, Any], path: str | None) -> None:
    if path:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w") as fh:
            json.dump(doc, fh, indent=1, allow_nan=False)
            fh.write("\n")
        print(f"\nresults: {path}")


def main(argv: list[str] | None = None, prog: str = "python -m convx bench") -> int:
    args_list = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--min-time", type=float, default=0.3,
                        help="seconds of timed calls per library and layer")
    parser.add_argument("--only", default=None,
                        help="substring filter on layer names (with --networks: network names)")
    parser.add_argument("--png", default="benchmarks/results/conv_bench.png",
                        help="chart of the Gflop/s tables ('' for none)")
    parser.add_argument("--json", default=None, metavar="PATH",
                        help="write every figure, the machine, versions and method here")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--no-backward", action="store_true",
                        help="skip the forward + backward table (convx against torch autograd)")
    parser.add_argument("--denormal-only", action="store_true",
                        help="only the timing of normal against denormal data")
    nets = parser.add_argument_group("networks", "with --networks, the layer suite and the "
                                     "other tables are replaced by whole networks' conv layers")
    nets.add_argument("--networks", action="store_true",
                      help="time the conv layers of ResNet-50, VGG-19, ShuffleNet, GoogLeNet "
                           "and MobileNet-v2 (batch 1) per library (convx.bench.network_bench)")
    nets.add_argument("--resolution", type=int, default=224,
                      help="input size; other than 224 scales every layer (a harness check)")
    nets.add_argument("--rounds", type=int, default=ROUNDS,
                      help="rounds of timing over all libraries and layers")
    nets.add_argument("--libraries", default=None,
                      help="comma-separated subset of convx,torch,torch_cl,ort,openvino,"
                           "openvino_nhwc (default: all that are installed)")
    args = parser.parse_args(args_list)
    thread_counts = [int(t) for t in args.threads.split(",")]
    layers = [lay for lay in SUITE if args.only is None or args.only in lay.name]
    command = " ".join([prog, shlex.join(args_list)]).strip()
    doc: dict[str, Any] = {
        "schema": report.SCHEMA,
        "meta": metadata(command, [1] if args.denormal_only else thread_counts, args.min_time),
        "layers": [] if args.denormal_only else [layer.describe() for layer in layers],
        "fma_peak": None, "conv": None, "backward": None, "tiny_call_us": None, "denormal_ms": None,
        "bitwise_identical": None, "extra_memory_mib": None, "chart": None, "networks": None,
    }
    start_threads = sorted({1, max(thread_counts)})
    doc["meta"]["fma_peak_at_start"] = {
        str(t): max(peak_gflops(0.05) if t == 1 else concurrent_peak(t) for _ in range(3))
        for t in start_threads}
    print("\n".join(report.header_lines(doc)), flush=True)
    settle_allocator()
    if args.networks:
        if args.resolution < 1 or args.rounds < 1:
            parser.error("--resolution and --rounds must be positive")
        libraries = None if args.libraries is None else args.libraries.split(",")
        try:
            run_networks(doc, thread_counts, resolution=args.resolution, libraries=libraries,
                         only=args.only, rounds=args.rounds)
        except ValueError as err:
            parser.error(str(err))
        _print(networks_markdown(doc["networks"]))
        _write_json(doc, args.json)
        return 0
    if not args.denormal_only:
        run_conv_suite(doc, layers, args.min_time)
        _print(report.peak_lines(doc))
        for table in doc["conv"]:
            _print(report.conv_markdown(table))
        if not args.no_backward:
            run_backward_suite(doc, layers, args.min_time)
            for table in doc["backward"] or []:
                _print(report.backward_markdown(table))
        doc["tiny_call_us"] = tiny_call_overhead(args.min_time)
        _print(report.tiny_lines(doc["tiny_call_us"]))
    doc["denormal_ms"] = denormal_times(args.min_time)
    _print(report.denormal_lines(doc["denormal_ms"]))
    if not args.denormal_only:
        doc["bitwise_identical"] = {
            "threads": [1, 2],
            "layers": {layer.name: bitwise_same_across_threads(layer) for layer in layers}}
        _print([report.bitwise_line(doc["bitwise_identical"])])
        if not args.no_memory:
            doc["extra_memory_mib"] = {lib: extra_memory_mib(lib) for lib in MEMORY_LIBRARIES}
            _print(report.memory_lines(doc["extra_memory_mib"]))
        if args.png:
            os.makedirs(os.path.dirname(args.png) or ".", exist_ok=True)
            doc["chart"] = plot(doc["conv"], args.png)
            _print([f"chart: {doc['chart']}" if doc["chart"] else
                    "(matplotlib not installed: no chart)"])
    _write_json(doc, args.json)
    checks = doc["bitwise_identical"]
    return 0 if checks is None or all(checks["layers"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
