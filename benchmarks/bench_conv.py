"""Convolution benchmark: convx vs PyTorch, ONNX Runtime and NumPy on real layers.

Same as `python -m convx bench`; see python/convx/_bench_conv.py and README.md.
Run from the repository root after `pip install ".[bench]"`:

    python benchmarks/bench_conv.py [--threads 1,2] [--only vgg]
"""

from __future__ import annotations

import sys

from convx._bench_conv import main

if __name__ == "__main__":
    sys.exit(main())
