"""conv1d against the equivalent conv2d (a 1 x k kernel on a 1 x L image), same arrays.

conv1d hands conv2d views with a unit axis inserted, so the two should take the same time
up to conv1d's few microseconds of argument handling. Prints the median of `--repeat`
timed calls of each, in milliseconds, per shape and layout:

    python benchmarks/bench_conv1d.py [--repeat 20] [--threads N]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import convx

# (N, L, C_in, C_out, k, label)
SHAPES = [
    (8, 16000, 64, 64, 3, "audio, k=3"),
    (8, 16000, 64, 64, 9, "audio, k=9"),
    (8, 4000, 128, 128, 9, "N=8 L=4000 C=128, k=9"),
    (1, 256, 16, 16, 3, "small: N=1 L=256 C=16, k=3"),
]


def _median_ms(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm-up: the operator is made and cached
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads is not None:
        convx.set_num_threads(args.threads)
    print(f"convx {convx.__version__}, {convx.cpu_info()['active']}, "
          f"{convx.get_num_threads()} threads, float32, median of {args.repeat}")
    print(f"{'shape':30} {'layout':6} {'conv1d ms':>10} {'conv2d ms':>10} {'ratio':>6}")
    rng = np.random.default_rng(0)
    for n, length, c_in, c_out, k, label in SHAPES:
        for layout in ("NLC", "NCL"):
            x_shape = (n, length, c_in) if layout == "NLC" else (n, c_in, length)
            w_shape = (c_out, k, c_in) if layout == "NLC" else (c_out, c_in, k)
            x = rng.standard_normal(x_shape, dtype=np.float32)
            w = rng.standard_normal(w_shape, dtype=np.float32)
            b = rng.standard_normal(c_out, dtype=np.float32)
            axis = 1 if layout == "NLC" else 2
            x4, w4 = np.expand_dims(x, axis), np.expand_dims(w, axis)
            layout2 = "NHWC" if layout == "NLC" else "NCHW"
            one = functools.partial(convx.conv1d, x, w, b, padding=k // 2, layout=layout)
            two = functools.partial(convx.conv2d, x4, w4, b, padding=(0, k // 2),
                                    layout=layout2)
            t1, t2 = _median_ms(one, args.repeat), _median_ms(two, args.repeat)
            print(f"{label:30} {layout:6} {t1:10.3f} {t2:10.3f} {t1 / t2:6.2f}")


if __name__ == "__main__":
    main()
