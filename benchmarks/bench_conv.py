"""Convolution benchmark: convx vs PyTorch, ONNX Runtime and NumPy on real layers.

Same as `python -m convx bench`; the harness is the convx.bench subpackage
(python/convx/bench/). Run from the repository root after `pip install ".[bench]"`:

    python benchmarks/bench_conv.py [--threads 1,2] [--only vgg] [--json PATH]
"""

from __future__ import annotations

import sys

from convx.bench import main

if __name__ == "__main__":
    sys.exit(main(prog="python benchmarks/bench_conv.py"))
