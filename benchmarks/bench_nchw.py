"""convx's NCHW layout against torch NCHW, and against convx's own NHWC, layer by layer.

For each layer (batch 1), dtype and thread count, times four runners with the libraries
interleaved round by round (convx.bench.timing.interleaved_medians): convx NCHW (a Conv2D,
weights packed once), convx NHWC (likewise), torch.nn.functional.conv2d on a contiguous
NCHW tensor and on a channels_last one, each with its thread count set to the same value.
Prints a markdown table of median milliseconds with the ratios torch NCHW / convx NCHW
(above 1: convx faster) and convx NCHW / convx NHWC, and writes JSON with --json:

    python benchmarks/bench_nchw.py [--threads 1 2] [--dtype float32 float64]
                                    [--min-time 0.3] [--json PATH]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
from typing import Any

import numpy as np

import convx
from convx.bench.conv import cpu_model
from convx.bench.report import NCHW_SCHEMA, nchw_markdown
from convx.bench.suite import Layer
from convx.bench.timing import interleaved_medians, method, settle_allocator

LAYERS = [
    Layer("56x56x64->64 3x3", 1, 56, 56, 64, 64, 3, 1, 1, 1, 1),
    Layer("28x28x128->128 3x3", 1, 28, 28, 128, 128, 3, 1, 1, 1, 1),
    Layer("14x14x256->256 3x3", 1, 14, 14, 256, 256, 3, 1, 1, 1, 1),
    Layer("7x7x512->512 3x3", 1, 7, 7, 512, 512, 3, 1, 1, 1, 1),
    Layer("28x28x128->256 3x3/2", 1, 28, 28, 128, 256, 3, 2, 1, 1, 1),
    Layer("56x56x256->64 1x1", 1, 56, 56, 256, 64, 1, 1, 0, 1, 1),
    Layer("224x224x3->64 7x7/2", 1, 224, 224, 3, 64, 7, 2, 3, 1, 1),
]


def runners(layer: Layer, dtype: str) -> dict[str, Any]:
    """The four callables of one layer, inputs and weights prepared once."""
    import torch

    rng = np.random.default_rng(0)
    x = rng.standard_normal((layer.n, layer.c_in, layer.h, layer.w)).astype(dtype)
    x_nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    def layer_in(layout: str) -> convx.Conv2D:
        return convx.Conv2D(layer.c_in, layer.c_out, layer.k, layer.stride, layer.pad,
                            layout=layout, dtype=dtype, seed=0)

    nchw, nhwc = layer_in("NCHW"), layer_in("NHWC")
    tx = torch.from_numpy(x)
    tx_cl = tx.contiguous(memory_format=torch.channels_last)
    tw = torch.from_numpy(np.ascontiguousarray(nchw.weight))
    tw_cl = tw.contiguous(memory_format=torch.channels_last)
    assert nchw.bias is not None
    tb = torch.from_numpy(nchw.bias)

    def torch_call(inp: Any, w: Any) -> object:
        with torch.no_grad():
            return torch.nn.functional.conv2d(inp, w, tb, layer.stride, layer.pad)

    return {
        "convx NCHW": lambda: nchw(x),
        "convx NHWC": lambda: nhwc(x_nhwc),
        "torch NCHW": lambda: torch_call(tx, tw),
        "torch channels_last": lambda: torch_call(tx_cl, tw_cl),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--dtype", nargs="+", default=["float32", "float64"],
                        choices=["float32", "float64"])
    parser.add_argument("--min-time", type=float, default=0.3,
                        help="seconds of timed calls per library and cell, at least")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    import torch

    settle_allocator()
    results: list[dict[str, Any]] = []
    for threads in args.threads:
        convx.set_num_threads(threads)
        torch.set_num_threads(threads)
        for dtype in args.dtype:
            for layer in LAYERS:
                seconds = interleaved_medians(runners(layer, dtype), args.min_time,
                                              threads=threads)
                results.append({"layer": layer.name, "geometry": layer.describe(),
                                "dtype": dtype, "threads": threads, "seconds": seconds})
                print("\n".join(nchw_markdown(results[-1:])[2:]), flush=True)
    info = convx.cpu_info()
    meta = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python " + " ".join(sys.argv),
        "convx": convx.__version__, "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(), "cpu_model": cpu_model(),
        "isa": info["active"], "compiled": info["compiled"], "threads": args.threads,
        "torch_threads": "torch.set_num_threads(threads), as convx", "build": info["build_flags"],
        "method": {**method(args.min_time), "dtype": args.dtype,
                   "layout": "convx NCHW and NHWC; torch NCHW and channels_last"},
    }
    print("\n".join(nchw_markdown(results)))
    if args.json is not None:
        with open(args.json, "w") as f:
            json.dump({"schema": NCHW_SCHEMA, "meta": meta, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
