"""Command line: `python -m convx demo [--png FILE] | info | bench | --version`."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import convx


def _demo() -> int:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 32, 32, 3)).astype(np.float32)
    layer = convx.Conv2D(3, 8, 3, padding="same", seed=0)
    t0 = time.perf_counter()
    y = layer(x)
    dt = time.perf_counter() - t0
    print(f"convx {convx.__version__} [{convx.cpu_info()['active']}, "
          f"{convx.get_num_threads()} threads]")
    print(f"Conv2D(3 -> 8, 3x3, padding='same') on NHWC input {x.shape} -> {y.shape} "
          f"in {dt * 1e3:.3f} ms")
    # Check one output element against the defining sum.
    xp = np.pad(x[0].astype(np.float64), ((1, 1), (1, 1), (0, 0)))
    i, j, m = 5, 7, 2
    assert layer.bias is not None
    expect = layer.bias[m] + np.sum(xp[i:i + 3, j:j + 3, :] * layer.weight[m])
    print(f"y[0, {i}, {j}, {m}] = {y[0, i, j, m]:+.6f}; direct sum = {expect:+.6f}; "
          f"|diff| = {abs(y[0, i, j, m] - expect):.1e}")
    ok = bool(np.isclose(y[0, i, j, m], expect, rtol=1e-5, atol=1e-5))
    print("ok" if ok else "MISMATCH")
    return 0 if ok else 1


def _info() -> int:
    from convx.bench import report  # the same renderings as the benchmark's header

    info = convx.cpu_info()
    print(f"convx {info['version']}")
    print(f"cpu vendor:     {info['vendor'] or 'unknown'}")
    print(f"detected:       avx2={info['avx2']} avx512={info['avx512']}")
    print(f"compiled paths: {', '.join(info['compiled'])}")
    print(f"available:      {', '.join(info['available'])}")
    print(f"active path:    {info['active']} (best: {info['best']})")
    print(f"threads:        {info['num_threads']}")
    print(f"build:          {info['build_flags']}")
    print(f"caches:         {report.cache_line(info)}")
    for dtype, blocking in info["gemm_blocking"].items():
        print(f"gemm {dtype}:  {report.blocking_line(blocking)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="convx", description=__doc__)
    info = convx.cpu_info()
    version = (f"convx {convx.__version__} (path {info['active']}; available "
               f"{', '.join(info['available'])}; {info['num_threads']} threads; "
               f"build {info['build_flags']})")
    parser.add_argument("--version", action="version", version=version)
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="convolve a small built-in example and check it; "
                                       "with --png FILE, write a picture of filters instead")
    demo.add_argument("--png", metavar="FILE", help="write a grid of filtered pictures")
    sub.add_parser("info", help="print version, CPU features, kernel path and threads")
    sub.add_parser("bench", help="benchmark against PyTorch, ONNX Runtime and NumPy",
                   add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "bench":
        from convx.bench import main as bench_main

        return bench_main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "info":
        return _info()
    if args.command == "demo" and args.png is not None:
        from convx._demo_image import write_demo

        return write_demo(args.png)
    if args.command == "demo" or args.command is None:
        return _demo()
    return 2


if __name__ == "__main__":
    sys.exit(main())
