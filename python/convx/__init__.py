"""convx: fast, exact 2-D convolution layers for NumPy.

The numbers are computed by a C++17 core (implicit im2col feeding a blocked SIMD
GEMM, chosen at run time for the CPU); this package validates arguments and
hands NumPy buffers to it without copies.
"""

from __future__ import annotations

from typing import Any

from convx import _core
from convx._conv_matrix import conv_bias_vector, conv_matrix
from convx._threadpoolctl import register as _register_with_threadpoolctl
from convx.functional import conv2d, gemm, im2col, output_shape, pad, workspace_bytes
from convx.layers import Conv2D

__version__: str = _core.__version__

# threadpoolctl, when installed, lists and limits convx's pool like a BLAS library's (its
# controller calls get_num_threads and set_num_threads below when threadpoolctl asks).
_register_with_threadpoolctl()

__all__ = [
    "Conv2D",
    "__version__",
    "conv2d",
    "conv_bias_vector",
    "conv_matrix",
    "cpu_info",
    "gemm",
    "get_num_threads",
    "im2col",
    "output_shape",
    "pad",
    "set_num_threads",
    "workspace_bytes",
]


def cpu_info() -> dict[str, Any]:
    """What the CPU supports, which kernel paths are compiled and available, and which is active.

    Keys: vendor, avx2, avx512, compiled, available, best, active, num_threads, version,
    build_flags. Set CONVX_ISA=scalar|avx2|avx512 before import to force a path.
    """
    return dict(_core.cpu_info())


def get_num_threads() -> int:
    """Threads convx's pool uses (default: CPUs available, or CONVX_NUM_THREADS)."""
    return int(_core.get_num_threads())


def set_num_threads(n: int) -> None:
    """Use n >= 1 threads for later calls. Results are bitwise identical for any n."""
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"n must be an int, got {n!r}")
    if not 1 <= n <= 1024:
        raise ValueError(f"n must be in [1, 1024], got {n}")
    _core.set_num_threads(n)
