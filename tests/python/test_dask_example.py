"""examples/dask_batch.py: the layer stack over a chunked dask.array on a 2-process
LocalCluster gives the single-process result, and its graph does not carry the weights."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def example() -> Iterator[ModuleType]:
    pytest.importorskip("dask.array")
    pytest.importorskip("distributed")
    sys.path.insert(0, str(EXAMPLES))
    try:
        yield importlib.import_module("dask_batch")
    finally:
        sys.path.remove(str(EXAMPLES))
        sys.modules.pop("dask_batch", None)


def test_dask_stack_matches_the_single_process_result(example: ModuleType) -> None:
    import cloudpickle
    from distributed import Client

    # The workers unpickle apply_stack and the plugin by value: they need not import the
    # example module from examples/.
    cloudpickle.register_pickle_by_value(example)
    try:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((10, 12, 12, 3), dtype=np.float32)
        layers = example.make_stack(seed=3)
        want = example.apply_stack(x, layers)
        with example.local_cluster(2) as cluster, Client(cluster, timeout="30s") as client:
            client.register_plugin(example.ConvxThreads(1))
            assert len(client.scheduler_info()["workers"]) == 2
            threads = client.run(lambda: __import__("convx").get_num_threads())
            assert sorted(threads.values()) == [1, 1]
            import dask.array as da

            graph = example.stack_graph(da.from_array(x, chunks=(3, -1, -1, -1)), layers,
                                        client)
            assert graph.numblocks[0] == 4
            blob = cloudpickle.dumps(dict(graph.__dask_graph__()))
            assert layers[1].weight.tobytes() not in blob  # the layers were scattered
            got = np.asarray(client.compute(graph).result(timeout=30))
        np.testing.assert_array_equal(got, want)
    finally:
        cloudpickle.unregister_pickle_by_value(example)
