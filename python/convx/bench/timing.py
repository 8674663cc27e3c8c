"""How the benchmark times calls: interleaved batches, medians, and the machine's FMA peak."""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import convx

# Every library gets at least this many timed batches per layer and thread count: medians
# of fewer moved single cells by 10 % or more between runs.
MIN_BATCHES = 11
# A batch repeats a fast call until it lasts about this long (at most 1000 calls).
BATCH_SECONDS = 1e-3
# Rounds of per-library blocks when timing several threads, and the pause before each
# block (see interleaved_medians). On a shared VM whether two threads get two cores
# changes from one second to the next, so a library's median is taken over many short
# blocks spread across the run rather than a few long ones.
BLOCK_ROUNDS = 7
BLOCK_PAUSE = 0.15  # OpenBLAS workers spin for about 2^28 cycles (~0.1 s)


def method(min_time: float) -> dict[str, Any]:
    """The timing method as the JSON results record it."""
    return {
        "statistic": "median seconds per call over timed batches",
        "min_time_s": min_time,
        "min_batches": MIN_BATCHES,
        "batch_target_s": BATCH_SECONDS,
        "one_thread": "libraries take turns batch by batch, in an order shuffled every round",
        "several_threads": (f"each library timed in blocks of its own, {BLOCK_ROUNDS} rounds "
                            f"in shuffled order, each block after a {BLOCK_PAUSE} s pause"),
        "block_rounds": BLOCK_ROUNDS,
        "block_pause_s": BLOCK_PAUSE,
        "allocator": "one 16 MiB block freed before timing (settle_allocator)",
        "dtype": "float32",
        "layout": "NHWC (torch and ONNX Runtime get NCHW or channels_last copies)",
    }


def interleaved_medians(runners: dict[str, Callable[[], object]], min_time: float,
                        min_reps: int = MIN_BATCHES, threads: int = 1) -> dict[str, float]:
    """Median seconds per call of each runner.

    The machine may be shared and its speed drifts over seconds. With one thread the
    libraries take turns (one timed batch each per round, in shuffled order), so a slow
    spell slows all of them alike and the ratios stay fair. With several threads that
    would be unfair: OpenBLAS and OpenMP keep their worker threads spinning for a while
    after a call and would steal the cores from whichever library runs next. So then
    each library is timed in blocks of its own, each after a pause that lets the previous
    one's threads go idle, in several rounds of shuffled order. A batch repeats a fast call
    until it lasts about a millisecond; every library gets at least min_reps batches.
    """
    batch = {}
    for name, fn in runners.items():
        fn()
        t0 = time.perf_counter()
        fn()
        once = max(time.perf_counter() - t0, 1e-7)
        batch[name] = max(1, min(1000, int(BATCH_SECONDS / once)))
    times: dict[str, list[float]] = {name: [] for name in runners}

    def timed_batch(name: str) -> None:
        fn, n = runners[name], batch[name]
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        times[name].append((time.perf_counter() - t0) / n)

    names = list(runners)
    order = random.Random(0)
    if threads == 1:
        # Shuffled every round, so that no library always runs right after the same
        # neighbour (after NumPy's im2col, say, which leaves the caches cold).
        start = time.perf_counter()
        rounds = 0
        while rounds < min_reps or (time.perf_counter() - start < min_time * len(runners)
                                    and rounds < 500):
            order.shuffle(names)
            for name in names:
                timed_batch(name)
            rounds += 1
    else:
        # Several rounds of blocks, so that a slow spell of the machine (which lasts
        # seconds) falls on every library's samples rather than on one library's only block.
        for _ in range(BLOCK_ROUNDS):
            order.shuffle(names)
            for name in names:
                time.sleep(BLOCK_PAUSE)
                runners[name]()
                start = time.perf_counter()
                count = 0
                while count < -(-min_reps // BLOCK_ROUNDS) or (
                        time.perf_counter() - start < min_time / BLOCK_ROUNDS and count < 200):
                    timed_batch(name)
                    count += 1
    return {name: statistics.median(ts) for name, ts in times.items()}


def peak_gflops(seconds: float) -> float:
    """One core's f32 FMA Gflop/s on convx's active path, measured for `seconds`."""
    return float(convx._core.measure_peak_gflops(seconds))


def concurrent_peak(threads: int, seconds: float = 0.05) -> float:
    """FMA Gflop/s of `threads` peak loops run at once, summed. On a VM whose vCPUs are
    at times two hyperthreads of one core, this is about one core's peak rather than
    `threads` times it, and every library's multi-thread timing drops with it."""
    rates = [0.0] * threads

    def one(i: int) -> None:
        rates[i] = peak_gflops(seconds)  # releases the GIL

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
    the block's size (up to 32 MiB). Without this, the first layer measured would be timed
    in a different state from the rest (NumPy's im2col frees a large block after its first
    call), and a library that allocates per call would pay for it there only.
    """
    block = np.ones((16 << 20) // 4, dtype=np.float32)
    del block
