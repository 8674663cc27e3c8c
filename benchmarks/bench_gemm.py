"""GEMM benchmark: convx.gemm against numpy.matmul (OpenBLAS), same process, medians.

Run it with OpenBLAS left to pick its own kernel, in this command only:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_gemm.py

and for the AVX2 comparison (convx forced to its AVX2 path, OpenBLAS to Haswell):

    CONVX_ISA=avx2 OPENBLAS_CORETYPE=Haswell python benchmarks/bench_gemm.py

At 1 thread the two libraries are timed round-robin, so a slow spell on this shared
machine slows both alike; at 2 threads each is timed in its own block (see
interleaved_medians in convx/bench/timing.py for why). It prints the kernel threadpoolctl names for
OpenBLAS, the measured FMA peak of one core on convx's active path, and per shape: Gflop/s
of both, the ratio, and convx's % of peak, at 1 and 2 threads.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import convx
from convx.bench.timing import interleaved_medians

SQUARES = [64, 128, 256, 512, 1024, 2048]
CONV_SHAPES = [  # (M, K, N, name)
    (12544, 1152, 128, "vgg16.conv2_2"),
    (3136, 576, 64, "resnet 3x3"),
    (3136, 256, 64, "resnet 1x1"),
    (49, 4608, 512, "resnet stage 5"),
    (50176, 9, 32, "mnist, batch 64"),
    (12544, 147, 64, "resnet50 conv1"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--min-time", type=float, default=0.4)
    args = parser.parse_args()
    from threadpoolctl import threadpool_info, threadpool_limits

    blas = [(i.get("internal_api"), i.get("architecture"), i.get("version"))
            for i in threadpool_info() if i.get("user_api") == "blas"]
    info = convx.cpu_info()
    peak = float(convx._core.measure_peak_gflops(0.3))
    print(f"numpy {np.__version__}, BLAS: {blas}")
    print(f"convx {convx.__version__}, path {info['active']}, "
          f"measured f32 FMA peak {peak:.0f} Gflop/s per core\n")
    rng = np.random.default_rng(0)
    shapes = [(n, n, n, f"square {n}") for n in SQUARES] + CONV_SHAPES
    for threads in (int(t) for t in args.threads.split(",")):
        convx.set_num_threads(threads)
        print(f"### {threads} thread{'s' if threads > 1 else ''}\n")
        print("| shape (M x K x N) | convx Gflop/s | NumPy Gflop/s | convx / NumPy | % of peak |")
        print("|---|---|---|---|---|")
        for m, k, n, name in shapes:
            a = rng.standard_normal((m, k), dtype=np.float32)
            b = rng.standard_normal((k, n), dtype=np.float32)
            c = np.empty((m, n), np.float32)
            gflop = 2.0 * m * n * k / 1e9
            with threadpool_limits(threads):
                t = interleaved_medians({
                    "convx": lambda a=a, b=b, c=c: convx.gemm(a, b, out=c),
                    "numpy": lambda a=a, b=b, c=c: np.matmul(a, b, out=c),
                }, args.min_time, threads=threads)
            t_cx, t_np = t["convx"], t["numpy"]
            pct = 100 * gflop / t_cx / (peak * threads) if peak else float("nan")
            print(f"| {m} x {k} x {n} ({name}) | {gflop / t_cx:.1f} | {gflop / t_np:.1f} | "
                  f"{t_np / t_cx:.2f} | {pct:.0f}% |", flush=True)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
