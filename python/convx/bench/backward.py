"""The forward + backward table of `python -m convx bench`: one training step's convolution.

On each layer of suite.BACKWARD_LAYERS, at each thread count, two timings with
timing.interleaved_medians (the forward tables' method):

1. forward + backward: convx's Conv2D (call, then backward for dX, dW and db) against
   torch's F.conv2d with autograd recording followed by torch.autograd.grad for x, w and b,
   with NCHW and with channels_last tensors;
2. the backward alone, dX and dW (+ db) separately: convx.conv2d_backward with needs
   ("input",) or ("weight", "bias") against torch.autograd.grad on a retained graph, in the
   memory format that was faster in 1.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from convx.bench import report
from convx.bench.suite import (
    BACKWARD_LAYERS,
    Layer,
    Runner,
    convx_backward_runner,
    convx_train_runner,
    make_grad,
    make_inputs,
    set_threads,
    torch_backward_runner,
    torch_train_runner,
)
from convx.bench.timing import interleaved_medians


def backward_layers(layers: list[Layer]) -> list[Layer]:
    """The layers of the forward + backward table among those of this run."""
    return [layer for layer in layers if layer.name in BACKWARD_LAYERS]


def bench_backward_layer(layer: Layer, threads: int, min_time: float) -> dict[str, Any]:
    """Median seconds of one layer's forward + backward per library, then of dX and dW
    alone for convx and for torch's faster memory format; and which format that was."""
    x, w, b = make_inputs(layer)
    g = make_grad(layer)
    set_threads(threads)
    train: dict[str, Runner | None] = {
        "convx": convx_train_runner(layer, x, w, b, g),
        "torch": torch_train_runner(layer, x, w, b, g, channels_last=False),
        "torch_cl": torch_train_runner(layer, x, w, b, g, channels_last=True),
    }
    present = {name: run for name, run in train.items() if run is not None}
    seconds = interleaved_medians(present, min_time, threads=threads)
    variant = min(("torch", "torch_cl"), key=lambda v: seconds.get(v, float("inf")))
    parts: dict[str, Runner | None] = {
        "convx_dx": convx_backward_runner(layer, x, w, g, ("input",)),
        "convx_dw": convx_backward_runner(layer, x, w, g, ("weight", "bias")),
    }
    if variant in seconds:
        cl = variant == "torch_cl"
        parts["torch_dx"] = torch_backward_runner(layer, x, w, b, g, cl, "input")
        parts["torch_dw"] = torch_backward_runner(layer, x, w, b, g, cl, "weight")
    present = {name: run for name, run in parts.items() if run is not None}
    seconds.update(interleaved_medians(present, min_time, threads=threads))
    return {"seconds": seconds, "torch_variant": variant if variant in seconds else None}


def run_backward_suite(doc: dict[str, Any], layers: list[Layer], min_time: float) -> None:
    """Times the forward + backward table and fills doc's "backward"."""
    chosen = backward_layers(layers)
    if not chosen:
        return
    thread_counts: list[int] = doc["meta"]["thread_counts"]
    results: dict[int, dict[str, dict[str, Any]]] = {t: {} for t in thread_counts}
    total = len(chosen) * len(thread_counts)
    done = 0
    start = time.perf_counter()
    for threads in thread_counts:
        for layer in chosen:
            done += 1
            print(f"[backward {done}/{total}] {layer.name}, {threads} thread(s) ...", end="",
                  file=sys.stderr, flush=True)
            res = bench_backward_layer(layer, threads, min_time)
            results[threads][layer.name] = res
            print(" " + ", ".join(f"{k} {1e3 * v:.2f} ms" for k, v in res["seconds"].items()),
                  file=sys.stderr, flush=True)
    print(f"(forward + backward table: {time.perf_counter() - start:.0f} s)", file=sys.stderr,
          flush=True)
    described = {layer["name"]: layer for layer in doc["layers"]}
    doc["backward"] = [report.backward_table(t, [described[lay.name] for lay in chosen],
                                             results[t]) for t in thread_counts]
