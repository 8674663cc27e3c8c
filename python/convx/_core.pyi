"""Type stubs for convx._core, the compiled pybind11 module (csrc/bindings/).

These functions trust the Python layer (convx.functional, convx._conv_matrix) to
normalise arguments; they still check every buffer they touch and raise
ValueError / TypeError rather than crash. Arrays must be C-contiguous float32 or
float64 of one dtype; outputs are written in place. Calls release the GIL while
the C++ core runs, except convolutions of at most 16K multiply-adds, for which
releasing it would cost as much as the work.
"""

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

_Array = npt.NDArray[Any]
_Int2 = tuple[int, int]
_Int4 = tuple[int, int, int, int]
# What Conv2dOp.bind returns: bound_conv(x, out=None), positional only.
_BoundOp = Callable[[object, object], _Array | None]

__version__: str

class PackedWeights:
    """A layer's filters copied and packed once (convx::ConvWeights), in the dtype of
    `weight`, for the kernels of the ISA active when it is made.

    weight is OHWI (c_out, k_h, k_w, c_in/groups) for layout "NHWC" or OIHW
    (c_out, c_in/groups, k_h, k_w) for "NCHW", C-contiguous float32/float64.
    """

    def __init__(self, weight: _Array, groups: int, layout: str) -> None: ...
    @property
    def nbytes(self) -> int:
        """Bytes held by the copy and its packed forms."""

class LayerBase:
    """Base of convx.Conv2D: __call__(x, *, out=None) runs the bound operator
    self._fast(x, out), or self._call_slow(x, out=out) when it declines."""

    def __call__(self, x: npt.ArrayLike, *, out: _Array | None = None,
                 save_input: bool | None = None) -> _Array: ...

class Conv2dOp:
    """A forward convolution operator (convx::Conv2d) for one problem: validated, its
    algorithm and kernels chosen, once; then called any number of times.

    input_dims is (n, h, w, c_in) whatever the layout; cout_kh is (c_out, k_h);
    pad is (top, bottom, left, right); layout is "NHWC" (x NHWC, weight OHWI,
    out NHWC) or "NCHW" (x NCHW, weight OIHW, out NCHW); activation is "none"
    or "relu"; batched=False drops the N axis of x and out. `weights` is a
    PackedWeights the operator keeps (its dtype wins), or None for an operator
    that takes the weights at every call, of float64 if f64 else float32.
    padding_mode is "zeros", "reflect", "replicate" or "circular" (what the padding
    reads, as in torch). algorithm is "auto" (the core chooses), "gemm", "winograd",
    "direct", "depthwise" or "pointwise"; one that cannot run the problem raises.
    Raises ValueError naming the bad argument.
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
        batched: bool,
        weights: PackedWeights | None,
        f64: bool,
        padding_mode: str = "zeros",
        algorithm: str = "auto",
    ) -> None: ...
    def __call__(self, x: _Array, weight: _Array | None, bias: object, out: object) -> _Array:
        """Forward convolution of x with `weight` (None: the operator's own); bias has
        c_out values or is None. Writes a new array, or `out` (which must have the
        output's exact shape and dtype, be C-contiguous, writeable and not overlap the
        inputs), and returns it. Checks every buffer's dtype, contiguity and size."""

    def try_call(self, x: object, weight: object, bias: object, out: object, /
                 ) -> _Array | None:
        """__call__, or None (computing nothing) when x, weight or bias is not an ndarray
        the operator takes as it is (exact shape and dtype, C-contiguous, native byte
        order), or out is not one it can write (also writeable). A plain method called
        through vectorcall, positional arguments only."""

    def bind(self, bias: _Array | None) -> _BoundOp:
        """This operator (which must have weights) with a bias attached: a builtin
        function bound_conv(x, out=None), positional only, that computes as __call__ or
        returns None when x is not an input it takes as it is."""

    @property
    def algorithm(self) -> str:
        """"gemm", "pointwise", "direct" or "depthwise"."""

    @property
    def kernel(self) -> str:
        """The micro-kernel, dtype, tile and ISA in the name, e.g. "f32 12x32 avx512"."""

    @property
    def workspace_bytes(self) -> int:
        """Scratch memory one run needs at most, over all threads, in bytes."""

    @property
    def flops(self) -> float:
        """2 * the multiply-adds of one run."""

    @property
    def output_dims(self) -> tuple[int, ...]:
        """The output's NumPy shape."""

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
    padding_mode: str = "zeros",
) -> None:
    """Writes every patch of x into out, shape (n, h_out, w_out, k_h*k_w*c_in).

    dims is (n, h, w, c); order is "hwc", "chw" or "seed"; the padding reads as
    padding_mode says.
    """

def pad(x: _Array, out: _Array, dims: _Int4, pad: _Int4, layout: str,
        padding_mode: str = "zeros") -> None:
    """Pads x (dims (n, h, w, c) in `layout`) by (top, bottom, left, right) into out, the
    padding read as padding_mode says ("zeros", "reflect", "replicate", "circular")."""

def gemm(a: _Array, b: _Array, out: _Array, accumulate: bool) -> None:
    """out = a @ b (or out += a @ b) for 2-D arrays of any element strides."""

def _gemm_panel_counts(reset: bool = False) -> tuple[int, int]:
    """(in place, packed): the GEMM's A micro-panels read in place from their source and
    packed, since the start or the last reset (which returns the counts before it)."""

def conv2d_backward(
    input_dims: _Int4,
    cout_kh: _Int2,
    k_w: int,
    stride: _Int2,
    dilation: _Int2,
    pad: _Int4,
    groups: int,
    layout: str,
    grad_out: _Array,
    x: _Array | None,
    weight: _Array | None,
    dx: _Array | None,
    dw: _Array | None,
    db: _Array | None,
    padding_mode: str = "zeros",
) -> None:
    """Writes the gradients asked for (dx, dw, db not None) of the convolution with these
    parameters (as for Conv2dOp) from grad_out; x is needed for dw, weight for dx."""

def conv_transpose2d(
    x: _Array,
    weight: _Array,
    bias: _Array | None,
    out: _Array,
    dims: _Int4,
    c_out: int,
    kernel: _Int2,
    stride: _Int2,
    dilation: _Int2,
    pad: _Int4,
    groups: int,
    layout: str,
    output_padding: _Int2,
) -> None:
    """The transposed convolution of x (dims (n, h, w, c_in)) to c_out channels into out;
    weight (c_in, k_h, k_w, c_out/groups) for NHWC or (c_in, c_out/groups, k_h, k_w)."""

def cpu_info() -> dict[str, Any]:
    """Keys: vendor, avx2, avx512, compiled, available, best, active, num_threads,
    usable_cpus, flush_denormal, version, build_flags, l1d, l2, l3, l2_shared_by,
    l3_shared_by, cache_source, gemm_blocking."""

def measure_peak_gflops(seconds: float = 0.1) -> float:
    """Single-core f32 multiply-add peak of the active path in Gflop/s (0 on scalar)."""

def get_num_threads() -> int: ...
def set_num_threads(n: int) -> None: ...
def usable_cpus() -> int:
    """CPUs this process may run on: the affinity mask, bounded by a cgroup CPU quota."""

def get_flush_denormal() -> bool: ...
def set_flush_denormal(enabled: bool) -> None: ...
def _config_warnings() -> list[str]:
    """Why each ignored CONVX_* environment variable was ignored."""

def _derive_blocking(
    mr: int, nr: int, elem_bytes: int, l1d: int, l2: int, l3: int, l3_shared_by: int = 1
) -> dict[str, Any]:
    """The GEMM blocking rule for any caches: kernel (""), mr, nr, mc, kc, nc and
    packed_b_bytes; ValueError unless mr, nr and elem_bytes are >= 1."""

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
