"""Type stubs for convx._core, the compiled pybind11 module (csrc/bindings/).

These functions trust the Python layer (convx.functional, convx._conv_matrix) to
normalise arguments; they still check every buffer they touch and raise
ValueError / TypeError rather than crash. Arrays must be C-contiguous float32 or
float64 of one dtype; outputs are written in place. Every call releases the GIL
while the C++ core runs.
"""

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

_Array = npt.NDArray[Any]
_Int2 = tuple[int, int]
_Int4 = tuple[int, int, int, int]
# What ConvPlan.bind returns: bound_conv(x, out=None), positional only.
_BoundConv = Callable[[object, object], _Array | None]

__version__: str

class PreparedWeights:
    """A layer's filters copied and packed once, in the dtype of `weight`.

    weight is OHWI (c_out, k_h, k_w, c_in/groups) for layout "NHWC" or OIHW
    (c_out, c_in/groups, k_h, k_w) for "NCHW", C-contiguous float32/float64.
    """

    def __init__(self, weight: _Array, groups: int, layout: str) -> None: ...
    @property
    def nbytes(self) -> int:
        """Bytes held by the packed copy."""

class LayerBase:
    """Base of convx.Conv2D: __call__(x, *, out=None) runs the cached plan
    self._fast(x, out), or self._call_slow(x, out=out) when it declines."""

    def __call__(self, x: npt.ArrayLike, *, out: _Array | None = None) -> _Array: ...

class ConvPlan:
    """One validated convolution geometry, reusable for any number of calls.

    input_dims is (n, h, w, c_in) whatever the layout; cout_kh is (c_out, k_h);
    pad is (top, bottom, left, right); layout is "NHWC" (x NHWC, weight OHWI,
    out NHWC) or "NCHW" (x NCHW, weight OIHW, out NCHW); activation is "none"
    or "relu". Raises ValueError naming the bad argument.
    """

    def __init__(
        self,
        input_dims: _Int4,
        cout_kh: _Int2,
        k_w: int,
        stride: _Int2,
        dilation: _Int2,
        pad: _Int4,
        groups: int,
        layout: str,
        activation: str,
        batched: bool = True,
    ) -> None: ...
    def __call__(self, x: _Array, weight: _Array, bias: object, out: object = None) -> _Array:
        """Forward convolution of x; bias has c_out values or is None. Writes a new array,
        or `out` (which must have the output's exact shape, x's dtype, be C-contiguous,
        writeable and not overlap the inputs), and returns it. The output is 3-D when the
        plan was made with batched=False. Checks every buffer's dtype, contiguity and size."""

    def bind(self, weight: PreparedWeights, bias: _Array | None) -> _BoundConv:
        """This plan with a layer's prepared weights (same dtype as x) and bias attached:
        a builtin function bound_conv(x, out=None), positional only. It computes as
        ConvPlan.__call__ with the bound weights and bias, or returns None (computing
        nothing) when x is not a C-contiguous ndarray of exactly the plan's input shape
        and the weights' dtype."""

    def workspace_bytes(self, f64: bool) -> int:
        """Scratch memory one run needs, in bytes, for float64 (f64=True) or float32."""

    @property
    def output_dims(self) -> _Int4:
        """(n, h_out, w_out, c_out)."""

def im2col(
    x: _Array,
    out: _Array,
    dims: _Int4,
    kernel: _Int2,
    stride: _Int2,
    dilation: _Int2,
    pad: _Int4,
    groups: int,
    layout: str,
    order: str,
) -> None:
    """Writes every patch of x into out, shape (n, h_out, w_out, k_h*k_w*c_in).

    dims is (n, h, w, c); order is "hwc", "chw" or "seed".
    """

def pad(x: _Array, out: _Array, dims: _Int4, pad: _Int4, layout: str) -> None:
    """Zero-pads x (dims (n, h, w, c) in `layout`) by (top, bottom, left, right) into out."""

def gemm(a: _Array, b: _Array, out: _Array, accumulate: bool) -> None:
    """out = a @ b (or out += a @ b) for 2-D arrays of any element strides."""

def cpu_info() -> dict[str, Any]:
    """Keys: vendor, avx2, avx512, compiled, available, best, active, num_threads,
    usable_cpus, flush_denormal, version, build_flags."""

def measure_peak_gflops(seconds: float = 0.1) -> float:
    """Single-core f32 multiply-add peak of the active path in GFLOP/s (0 on scalar)."""

def get_num_threads() -> int: ...
def set_num_threads(n: int) -> None: ...
def usable_cpus() -> int:
    """CPUs this process may run on: the affinity mask, bounded by a cgroup CPU quota."""

def get_flush_denormal() -> bool: ...
def set_flush_denormal(enabled: bool) -> None: ...
def _config_warnings() -> list[str]:
    """Why each ignored CONVX_* environment variable was ignored."""

def _set_isa(name: str) -> None:
    """Selects the kernel path ("scalar", "avx2" or "avx512"); ValueError if unavailable."""

def conv_matrix_info(
    c_out: int,
    k_h: int,
    k_w: int,
    h: int,
    w: int,
    c_in: int,
    stride_h: int,
    stride_w: int,
    pad_top: int,
    pad_bottom: int,
    pad_left: int,
    pad_right: int,
    dilation_h: int,
    dilation_w: int,
    groups: int,
    nchw: bool,
    acts_on_input: bool,
) -> tuple[int, int, int, int, int]:
    """(rows, cols, nnz, h_out, w_out) of the convolution matrix, without building it."""

def conv_matrix_csr_f32(
    weight: npt.ArrayLike,
    h: int,
    w: int,
    c_in: int,
    stride_h: int,
    stride_w: int,
    pad_top: int,
    pad_bottom: int,
    pad_left: int,
    pad_right: int,
    dilation_h: int,
    dilation_w: int,
    groups: int,
    nchw: bool,
    acts_on_input: bool,
) -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float32], tuple[int, int]
]:
    """(indptr, indices, data, (rows, cols)) of the convolution matrix of one image."""

def conv_matrix_csr_f64(
    weight: npt.ArrayLike,
    h: int,
    w: int,
    c_in: int,
    stride_h: int,
    stride_w: int,
    pad_top: int,
    pad_bottom: int,
    pad_left: int,
    pad_right: int,
    dilation_h: int,
    dilation_w: int,
    groups: int,
    nchw: bool,
    acts_on_input: bool,
) -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64], tuple[int, int]
]:
    """(indptr, indices, data, (rows, cols)) of the convolution matrix of one image."""
