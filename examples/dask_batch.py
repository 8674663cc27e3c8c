"""Scale a convx layer stack out over a Dask cluster, one batch chunk per task.

    python examples/dask_batch.py                      # a 2-process LocalCluster
    python examples/dask_batch.py --scheduler tcp://host:8786 --batch 256

The input is a dask.array made on the workers, chunked along the batch axis only
(`--chunk` images per chunk); `map_blocks` runs the stack (conv 3x3 + ReLU, conv 3x3) on
each chunk. The layers are scattered to every worker once (`client.scatter(...,
broadcast=True)`): each task receives a reference to them, not another pickled copy of
the weights. The result is gathered and compared with the same stack run in this process,
and the throughput of both is printed. On one machine the in-process run, which uses all
its cores already, is the faster: Dask pays for tasks and for moving the results. It is
for more data or more machines than one process has.

Threads. Dask runs `threads_per_worker` tasks at once in each worker, and convx by
default uses every CPU in each call, so N workers x T threads x CPUs convx threads would
compete for the cores. Give convx one thread per Dask thread: CONVX_NUM_THREADS=1 in the
workers' environment (read when convx is imported; this example passes it to the
LocalCluster's worker processes), or, for workers already running, a worker plugin that
calls convx.set_num_threads (ConvxThreads below, registered on every cluster here).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

import convx

try:
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:  # dask is optional: the module still imports, main() says what is missing
    WorkerPlugin = object  # type: ignore[assignment,misc]


class ConvxThreads(WorkerPlugin):  # type: ignore[misc]
    """Sets convx's thread count on each worker as it starts (and on those running)."""

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads

    def setup(self, worker: Any) -> None:
        import convx

        convx.set_num_threads(self.threads)


def make_stack(channels: int = 3, seed: int = 0) -> list[convx.Conv2D]:
    """conv 3x3 (channels -> 16) + ReLU, conv 3x3 (16 -> 8), 'same' padding, NHWC.
    The layers keep no input for backward (save_input False): this is inference."""
    layers = [convx.Conv2D(channels, 16, 3, padding="same", activation="relu", seed=seed),
              convx.Conv2D(16, 8, 3, padding="same", seed=seed + 1)]
    for layer in layers:
        layer.save_input = False
    return layers


def apply_stack(block: np.ndarray, layers: list[convx.Conv2D]) -> np.ndarray:
    """The stack on one chunk (N_chunk, H, W, C) -> (N_chunk, H, W, 8)."""
    for layer in layers:
        block = layer(block)
    return block


def stack_graph(xd: Any, layers: list[convx.Conv2D], client: Any) -> Any:
    """The dask.array of apply_stack over xd, a dask.array (N, H, W, C) chunked along N
    only. The layers go to every worker now, once; the graph holds a reference to them."""
    [shared] = client.scatter([layers], broadcast=True)
    _, h, w, _ = xd.shape
    return xd.map_blocks(apply_stack, shared, dtype=xd.dtype,
                         chunks=(xd.chunks[0], h, w, layers[-1].out_channels))


def run_dask(xd: Any, layers: list[convx.Conv2D], client: Any) -> np.ndarray:
    """apply_stack over the dask.array xd, as tasks on the client's cluster."""
    return np.asarray(client.compute(stack_graph(xd, layers, client)).result())


def local_cluster(workers: int = 2, **kwargs: Any) -> Any:
    """A LocalCluster of `workers` single-threaded processes whose convx uses one thread,
    without the dashboard (kwargs go to LocalCluster)."""
    from distributed import LocalCluster

    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                        dashboard_address=None, env={"CONVX_NUM_THREADS": "1"}, **kwargs)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scheduler", default=None,
                        help="address of a running scheduler (default: a LocalCluster)")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster processes")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--chunk", type=int, default=8, help="images per task")
    parser.add_argument("--size", type=int, default=64, help="image height and width")
    args = parser.parse_args(argv)
    try:
        import dask.array as da
        from distributed import Client
    except ImportError:
        raise SystemExit("this example needs dask: pip install 'dask[array]' distributed") \
            from None

    cluster = None if args.scheduler else local_cluster(args.workers)
    with Client(args.scheduler or cluster) as client:
        client.register_plugin(ConvxThreads(1))
        # The images are made on the workers, as data loaded there would be, and kept
        # there; this process fetches a copy for the comparison.
        xd = da.random.default_rng(0).standard_normal(
            (args.batch, args.size, args.size, 3), chunks=(args.chunk, -1, -1, -1),
            dtype=np.float32).persist()
        x = xd.compute()
        layers = make_stack()
        run_dask(xd[: args.chunk], layers, client)  # warm-up: workers make their operators
        t0 = time.perf_counter()
        got = run_dask(xd, layers, client)
        t_dask = time.perf_counter() - t0
        n_workers = len(client.scheduler_info()["workers"])
    if cluster is not None:
        cluster.close()
    apply_stack(x[: args.chunk], layers)  # warm-up
    t0 = time.perf_counter()
    want = apply_stack(x, layers)
    t_local = time.perf_counter() - t0

    diff = float(np.max(np.abs(got - want)))
    print(f"input {x.shape} float32 in chunks of {args.chunk}; stack: conv 3x3 3->16 + ReLU, "
          "conv 3x3 16->8")
    print(f"this process ({convx.get_num_threads()} convx threads): {t_local * 1e3:8.1f} ms, "
          f"{args.batch / t_local:8.1f} images/s")
    print(f"dask, {n_workers} workers x 1 thread:  {t_dask * 1e3:8.1f} ms, "
          f"{args.batch / t_dask:8.1f} images/s")
    print(f"max |dask - local| = {diff:.1e} ({'identical' if diff == 0 else 'differs'})")
    return {"max_abs_diff": diff, "local_seconds": t_local, "dask_seconds": t_dask,
            "workers": n_workers}


if __name__ == "__main__":
    main()
