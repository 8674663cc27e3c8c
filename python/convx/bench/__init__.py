"""convx's benchmark harness: `python -m convx bench`, kept apart from the library's modules.

Nothing here is imported by `import convx`. The modules:

- suite: the layers and one runner per library (convx, PyTorch, ONNX Runtime, NumPy)
- timing: interleaved median timing, the FMA peak, the allocator warm-up
- backward: the forward + backward table (convx against torch autograd)
- conv: the benchmark's command line and run (`main`)
- report: figures derived from the results and their text and Markdown tables
- memory_probe: `python -m convx.bench.memory_probe LIB`, one call's extra peak memory
- networks: the conv layers of ResNet-50, VGG-19, ShuffleNet, GoogLeNet and MobileNet-v2
- network_bench: `python -m convx bench --networks`, those networks timed per library
"""

from __future__ import annotations

__all__ = ["main"]


def main(argv: list[str] | None = None, prog: str = "python -m convx bench") -> int:
    """Runs the benchmark with these command-line arguments (see convx.bench.conv)."""
    # Imported here, so that `python -m convx.bench.memory_probe` does not load the
    # probe's module through this package before runpy executes it.
    from convx.bench.conv import main as run

    return run(argv, prog)
