"""convx: fast, exact 1-D and 2-D convolution layers for NumPy.

The numbers are computed by a C++17 core (implicit im2col feeding a blocked SIMD
GEMM, chosen at run time for the CPU); this package validates arguments and
hands NumPy buffers to it without copies.
"""

from __future__ import annotations

import warnings
from typing import Any

from convx import _conv1d as _conv1d_module
from convx import _core
from convx import functional as _functional
from convx._backward import conv2d_backward, conv_transpose2d
from convx._conv1d import Conv1D, conv1d, conv1d_backward, conv1d_output_shape
from convx._conv_matrix import conv_bias_vector, conv_matrix
from convx._threadpoolctl import register as _register_with_threadpoolctl
from convx._transposed import ConvTranspose2D
from convx.functional import conv2d, explain, gemm, im2col, output_shape, pad, workspace_bytes
from convx.layers import Conv2D

__version__: str = _core.__version__

# threadpoolctl, when installed, lists and limits convx's pool like a BLAS library's (its
# controller calls get_num_threads and set_num_threads below when threadpoolctl asks).
_register_with_threadpoolctl()

__all__ = [
    "Conv1D",
    "Conv2D",
    "ConvTranspose2D",
    "__version__",
    "conv1d",
    "conv1d_backward",
    "conv1d_output_shape",
    "conv2d",
    "conv2d_backward",
    "conv_bias_vector",
    "conv_matrix",
    "conv_transpose2d",
    "cpu_info",
    "explain",
    "gemm",
    "get_flush_denormal",
    "get_num_threads",
    "im2col",
    "output_shape",
    "pad",
    "set_flush_denormal",
    "set_num_threads",
    "workspace_bytes",
]

# An invalid CONVX_* variable is ignored (its default is used) and reported once, here.
for _message in _core._config_warnings():
    warnings.warn(f"convx: {_message}", RuntimeWarning, stacklevel=2)


def cpu_info() -> dict[str, Any]:
    """What the CPU supports, which kernel paths are compiled and available, and which is active.

    Keys: vendor, avx2, avx512, compiled, available, best, active, num_threads,
    usable_cpus (the affinity mask bounded by a cgroup CPU quota), flush_denormal, version,
    build_flags. Set CONVX_ISA=scalar|avx2|avx512 before import to force a path.

    The data caches of one core, which size the GEMM's blocks: l1d, l2 and l3 in bytes
    (l3 0 when there is none), l2_shared_by and l3_shared_by (logical CPUs sharing each,
    1 when not reported) and cache_source: "cpuid", "sysfs", "default" (32 KiB / 512 KiB
    / 8 MiB) or "env" (CONVX_CACHE_SIZES="L1d,L2[,L3]", e.g. "48K,1M,32M", set before
    import). gemm_blocking maps "float32" and "float64" to the active path's GEMM kernel
    and its blocks: kernel, mr, nr, mc, kc, nc and packed_b_bytes (docs/runtime.md).
    """
    return dict(_core.cpu_info())


def _set_isa(name: str) -> None:
    """Select the kernel path ("scalar", "avx2" or "avx512") for operators created from
    now on; for testing and benchmarking. Existing layers keep the kernels they bound;
    conv2d's and conv1d's cached operators are dropped so that their next calls use the
    new path."""
    _core._set_isa(name)
    _functional._forget_ops()
    _conv1d_module._OPS.clear()


def get_num_threads() -> int:
    """Threads convx's pool uses (default: the CPUs this process may use, or
    CONVX_NUM_THREADS)."""
    return int(_core.get_num_threads())


_warned_oversubscribed = False


def set_num_threads(n: int) -> None:
    """Use n threads (1 to 1024) for later calls. Results are bitwise identical for any n.

    More threads than the CPUs this process may use (cpu_info()["usable_cpus"]) are
    allowed, but they compete for the same cores and run slower; that warns, once.
    """
    global _warned_oversubscribed
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"n must be an int, got {n!r}")
    if not 1 <= n <= 1024:
        raise ValueError(f"n must be in [1, 1024], got {n}")
    _core.set_num_threads(n)
    cpus = int(_core.usable_cpus())
    if n > cpus and not _warned_oversubscribed:
        _warned_oversubscribed = True
        warnings.warn(f"convx: {n} threads on {cpus} usable CPU(s); the extra threads "
                      f"compete for the same cores", RuntimeWarning, stacklevel=2)


def get_flush_denormal() -> bool:
    """Whether convx computes with denormal numbers flushed to zero (the default)."""
    return bool(_core.get_flush_denormal())


def set_flush_denormal(enabled: bool) -> None:
    """Flush denormal (subnormal) numbers to zero in later calls, or not.

    On (the default), inputs and results smaller in magnitude than the smallest normal
    number (about 1.2e-38 in float32, 2.2e-308 in float64) count as zero, which keeps
    such data from slowing x86 CPUs down many times over. The mode is set on each thread
    that computes for the duration of a call; the caller's own floating-point state is
    left as it was. Off, convx computes with gradual underflow (the IEEE default). The
    environment variable CONVX_FLUSH_DENORMAL=0 turns it off at start-up.
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be True or False, got {enabled!r}")
    _core.set_flush_denormal(enabled)
