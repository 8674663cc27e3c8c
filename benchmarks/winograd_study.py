"""The Winograd study of docs/winograd.md: the error table and the speed table.

    python benchmarks/winograd_study.py error   # max|y - ref| / max|ref| in float32
    python benchmarks/winograd_study.py speed   # effective GFLOP/s, 1 and 2 threads

Error: every 3x3 stride-1 layer of the bench suite, and the 3x3 layers of VGG-16/19 and
ResNet-50 (N(0,1) inputs, He-initialised weights, zero bias), convx's winograd and gemm
in float32 against a float64 reference (torch's float64 conv2d). Speed: effective
GFLOP/s = the direct method's flops / the median time of >= `runs` calls, for convx
winograd, convx gemm and torch (NCHW and channels_last), all run back to back per layer.
"""
from __future__ import annotations

import functools
import sys
import time
from typing import Any

import numpy as np

import convx
from convx.bench.suite import SUITE, Layer

# (name, h = w, c_in, c_out): the distinct 3x3 stride-1 layers of the networks.
NETWORK_LAYERS = [
    ("vgg conv1_2", 224, 64, 64), ("vgg conv2_1", 112, 64, 128),
    ("vgg conv2_2", 112, 128, 128), ("vgg conv3_1", 56, 128, 256),
    ("vgg conv3_x", 56, 256, 256), ("vgg conv4_1", 28, 256, 512),
    ("vgg conv4_x", 28, 512, 512), ("vgg conv5_x", 14, 512, 512),
    ("resnet50 conv2_x", 56, 64, 64), ("resnet50 conv3_x", 28, 128, 128),
    ("resnet50 conv4_x", 14, 256, 256), ("resnet50 conv5_x", 7, 512, 512),
]


def _layers() -> list[tuple[str, int, int, int, int]]:
    suite = [(lay.name, lay.n, lay.h, lay.c_in, lay.c_out) for lay in SUITE
             if lay.k == 3 and lay.stride == 1 and lay.dilation == 1 and lay.groups == 1]
    return suite + [(name, 1, h, ci, co) for name, h, ci, co in NETWORK_LAYERS]


def error() -> None:
    import torch
    print("| layer | NxHxWxC_in→C_out | auto picks | gemm f32 | winograd f32 | ratio |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for name, n, h, c_in, c_out in _layers():
        x = rng.standard_normal((n, h, h, c_in)).astype(np.float32)
        w = (rng.standard_normal((c_out, 3, 3, c_in)) * np.sqrt(2.0 / (9 * c_in))).astype(
            np.float32)
        ref = torch.nn.functional.conv2d(
            torch.from_numpy(x.astype(np.float64)).permute(0, 3, 1, 2),
            torch.from_numpy(w.astype(np.float64)).permute(0, 3, 1, 2), padding=1
        ).permute(0, 2, 3, 1).numpy()
        scale = float(np.abs(ref).max())
        errs = {a: float(np.abs(convx.conv2d(x, w, padding=1, algorithm=a) - ref).max()) / scale
                for a in ("gemm", "winograd")}
        layer = convx.Conv2D(c_in, c_out, 3, padding=1, bias=False)
        layer.weight = w
        layer(x)
        auto = layer.algorithm
        print(f"| {name} | {n}x{h}x{h}x{c_in}→{c_out} | {auto} | {errs['gemm']:.2e} | "
              f"{errs['winograd']:.2e} | {errs['winograd'] / errs['gemm']:.1f} |")


def _median_seconds(fn: Any, runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def speed(runs: int = 15) -> None:
    import torch
    torch.set_grad_enabled(False)
    names = ("resnet.s2 3x3", "resnet.s3 3x3", "resnet.s4 3x3", "resnet.s5 3x3",
             "vgg16.conv2_2", "resnet.s3 batch 8")
    print("| layer | threads | convx winograd | convx gemm | torch NCHW | torch channels_last |"
          " winograd / best anchor |")
    print("|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    # VGG's 512-channel layers, whose transformed filters (38 MB) outgrow the caches.
    vgg512 = [Layer(name, 1, h, h, c_in, c_out, 3, 1, 1, 1, 1)
              for name, h, c_in, c_out in NETWORK_LAYERS if c_in == c_out == 512 and h > 7]
    for lay in [lay for lay in SUITE if lay.name in names] + vgg512:
        x = rng.standard_normal((lay.n, lay.h, lay.w, lay.c_in)).astype(np.float32)
        layers = {a: convx.Conv2D(lay.c_in, lay.c_out, 3, padding=1, seed=0, algorithm=a)
                  for a in ("winograd", "gemm")}
        tx = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
        tx_cl = tx.to(memory_format=torch.channels_last)
        conv = torch.nn.Conv2d(lay.c_in, lay.c_out, 3, padding=1).eval()
        conv_cl = torch.nn.Conv2d(lay.c_in, lay.c_out, 3, padding=1).eval().to(
            memory_format=torch.channels_last)
        for threads in (1, 2):
            convx.set_num_threads(threads)
            torch.set_num_threads(threads)
            calls = {"wino": functools.partial(layers["winograd"], x),
                     "gemm": functools.partial(layers["gemm"], x),
                     "torch": functools.partial(conv, tx),
                     "torch_cl": functools.partial(conv_cl, tx_cl)}
            t = {k: _median_seconds(fn, runs) for k, fn in calls.items()}
            g = {k: lay.gflop / v for k, v in t.items()}
            best = max(g["torch"], g["torch_cl"])
            print(f"| {lay.name} | {threads} | {g['wino']:.0f} | {g['gemm']:.0f} | "
                  f"{g['torch']:.0f} | {g['torch_cl']:.0f} | {g['wino'] / best:.2f}x |",
                  flush=True)


if __name__ == "__main__":
    {"error": error, "speed": speed}[sys.argv[1] if len(sys.argv) > 1 else "error"]()
