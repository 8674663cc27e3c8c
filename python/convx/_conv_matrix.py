"""The convolution layer as an explicit sparse matrix: vec(Y) = W @ vec(X_pad) + b.

The arrays are built by the compiled core (``_core.conv_matrix_csr_*``) in O(nnz)
time and memory; this module only normalises arguments and wraps the result in the
requested format.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Union, overload

import numpy as np
import numpy.typing as npt

from convx import _core
from convx._args import (
    as_float_array,
    check_groups,
    check_layout,
    normalize_pair,
    resolve_padding,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    import scipy.sparse  # type: ignore[import-untyped, unused-ignore]

__all__ = ["DEFAULT_MAX_DENSE_BYTES", "conv_bias_vector", "conv_matrix"]

#: Largest dense matrix ``conv_matrix(..., format="dense")`` builds unless told otherwise.
DEFAULT_MAX_DENSE_BYTES = 1 << 30  # 1 GiB

FloatArray = npt.NDArray[np.floating[Any]]
IntArray = npt.NDArray[np.int64]
CooTriplet = tuple[IntArray, IntArray, FloatArray]
PairLike = Union[int, "Sequence[int]"]
PaddingLike = Union[int, str, "Sequence[int]", "Sequence[Sequence[int]]"]


@dataclass(frozen=True)
class _Geometry:
    """Validated arguments in the form the compiled core takes them."""

    weight: FloatArray  # C-contiguous float32/float64, OHWI or OIHW per `nchw`
    h: int
    w: int
    c_in: int
    stride: tuple[int, int]
    pad: tuple[int, int, int, int]  # top, bottom, left, right
    dilation: tuple[int, int]
    groups: int
    nchw: bool
    acts_on_input: bool

    def core_kwargs(self) -> dict[str, Any]:
        top, bottom, left, right = self.pad
        return {
            "h": self.h,
            "w": self.w,
            "c_in": self.c_in,
            "stride_h": self.stride[0],
            "stride_w": self.stride[1],
            "pad_top": top,
            "pad_bottom": bottom,
            "pad_left": left,
            "pad_right": right,
            "dilation_h": self.dilation[0],
            "dilation_w": self.dilation[1],
            "groups": self.groups,
            "nchw": self.nchw,
            "acts_on_input": self.acts_on_input,
        }

    def kernel_hw(self) -> tuple[int, int]:
        s = self.weight.shape
        return (int(s[2]), int(s[3])) if self.nchw else (int(s[1]), int(s[2]))

    def info(self) -> tuple[int, int, int, int, int]:
        """(rows, cols, nnz, h_out, w_out), computed without building W."""
        k_h, k_w = self.kernel_hw()
        rows, cols, nnz, h_out, w_out = _core.conv_matrix_info(
            c_out=int(self.weight.shape[0]), k_h=k_h, k_w=k_w, **self.core_kwargs()
        )
        return int(rows), int(cols), int(nnz), int(h_out), int(w_out)


def _geometry(
    input_hw: PairLike,
    weight: npt.ArrayLike,
    *,
    stride: PairLike,
    padding: PaddingLike,
    dilation: PairLike,
    groups: int,
    acts_on: str,
    layout: str,
    flip: bool,
) -> _Geometry:
    layout = check_layout(layout)
    if acts_on not in ("padded", "input"):
        raise ValueError(f"acts_on must be 'padded' or 'input', got {acts_on!r}")
    w = as_float_array(weight, "weight")
    nchw = layout == "NCHW"
    if w.ndim != 4:
        order = "(C_out, C_in/groups, k_h, k_w)" if nchw else "(C_out, k_h, k_w, C_in/groups)"
        raise ValueError(f"weight must be 4-D {order} for layout {layout}, got shape {w.shape}")
    spatial = (2, 3) if nchw else (1, 2)
    if flip:
        w = np.ascontiguousarray(np.flip(w, axis=spatial))
    g = check_groups(groups)
    if w.shape[0] % g != 0:
        raise ValueError(f"groups: out_channels {w.shape[0]} (weight.shape[0]) is not "
                         f"divisible by groups={g}")
    h, w_in = normalize_pair(input_hw, "input_hw")
    stride_hw = normalize_pair(stride, "stride")
    dilation_hw = normalize_pair(dilation, "dilation")
    kernel_hw = (int(w.shape[spatial[0]]), int(w.shape[spatial[1]]))
    (top, bottom), (left, right) = resolve_padding(
        padding, (h, w_in), kernel_hw, stride_hw, dilation_hw
    )
    c_in_per_group = int(w.shape[1] if nchw else w.shape[3])
    return _Geometry(
        weight=w,
        h=h,
        w=w_in,
        c_in=c_in_per_group * g,
        stride=stride_hw,
        pad=(top, bottom, left, right),
        dilation=dilation_hw,
        groups=g,
        nchw=nchw,
        acts_on_input=acts_on == "input",
    )


def _build_csr(geo: _Geometry) -> tuple[IntArray, IntArray, FloatArray, tuple[int, int]]:
    f32 = geo.weight.dtype == np.float32
    build = _core.conv_matrix_csr_f32 if f32 else _core.conv_matrix_csr_f64
    indptr, indices, data, (rows, cols) = build(geo.weight, **geo.core_kwargs())
    return indptr, indices, data, (int(rows), int(cols))


@overload
def conv_matrix(
    input_hw: PairLike,
    weight: npt.ArrayLike,
    *,
    stride: PairLike = ...,
    padding: PaddingLike = ...,
    dilation: PairLike = ...,
    groups: int = ...,
    acts_on: str = ...,
    format: Literal["csr"] = ...,
    layout: str = ...,
    flip: bool = ...,
    max_dense_bytes: int = ...,
) -> scipy.sparse.csr_array: ...
@overload
def conv_matrix(
    input_hw: PairLike,
    weight: npt.ArrayLike,
    *,
    stride: PairLike = ...,
    padding: PaddingLike = ...,
    dilation: PairLike = ...,
    groups: int = ...,
    acts_on: str = ...,
    format: Literal["coo"],
    layout: str = ...,
    flip: bool = ...,
    max_dense_bytes: int = ...,
) -> CooTriplet: ...
@overload
def conv_matrix(
    input_hw: PairLike,
    weight: npt.ArrayLike,
    *,
    stride: PairLike = ...,
    padding: PaddingLike = ...,
    dilation: PairLike = ...,
    groups: int = ...,
    acts_on: str = ...,
    format: Literal["dense"],
    layout: str = ...,
    flip: bool = ...,
    max_dense_bytes: int = ...,
) -> FloatArray: ...
@overload
def conv_matrix(
    input_hw: PairLike,
    weight: npt.ArrayLike,
    *,
    stride: PairLike = ...,
    padding: PaddingLike = ...,
    dilation: PairLike = ...,
    groups: int = ...,
    acts_on: str = ...,
    format: str,
    layout: str = ...,
    flip: bool = ...,
    max_dense_bytes: int = ...,
) -> scipy.sparse.csr_array | CooTriplet | FloatArray: ...
def conv_matrix(
    input_hw: PairLike,
    weight: npt.ArrayLike,
    *,
    stride: PairLike = 1,
    padding: PaddingLike = 0,
    dilation: PairLike = 1,
    groups: int = 1,
    acts_on: str = "padded",
    format: str = "csr",
    layout: str = "NHWC",
    flip: bool = False,
    max_dense_bytes: int = DEFAULT_MAX_DENSE_BYTES,
) -> scipy.sparse.csr_array | CooTriplet | FloatArray:
    """The matrix W of a conv layer on one image: ``vec(Y) = W @ vec(X_pad) + b``.

    Vectors stack each channel's columns (column-major per channel), so for an image
    held as an (H, W, C) array ``vec(A) == A.ravel(order="F")``:

    * output ``Y[r, c, m]`` is row ``m*H_out*W_out + c*H_out + r``;
    * padded input ``X_pad[r, c, k]`` is column ``k*H_pad*W_pad + c*H_pad + r``, where
      ``H_pad = H + top + bottom`` and ``W_pad = W + left + right``;
    * with ``acts_on="input"``, ``X[r, c, k]`` is column ``k*H*W + c*H + r``.

    For an image held as (C, H, W), ``vec(A) == A.transpose(0, 2, 1).ravel()``.

    Output ``(i, j, m)``, with ``m`` in group ``g`` and ``C_g = C_in/groups``, reads the
    patch ``X_pad[i*s_h + u*d_h, j*s_w + v*d_w, g*C_g + q]`` for ``u < k_h``, ``v < k_w``,
    ``q < C_g``. Its row therefore holds ``weight[m, u, v, q]`` at column
    ``(g*C_g + q)*H_pad*W_pad + (j*s_w + v*d_w)*H_pad + (i*s_h + u*d_h)`` and zeros
    elsewhere: exactly ``k_h*k_w*C_g`` entries, so
    ``nnz = H_out*W_out*C_out*k_h*k_w*C_in/groups``. With ``acts_on="input"`` the
    entries that land on the zero border are dropped (they multiply zeros) and the
    remaining columns are renumbered for the unpadded image, so
    ``W @ X.ravel(order="F") + b == Y.ravel(order="F")`` with no padding step.

    ``W.T`` is the transposed convolution (the layer's adjoint). With
    ``acts_on="input"`` it is also the gradient with respect to the input:
    ``dX = W.T @ dY`` for ``dY`` and ``dX`` vectorised the same way.

    Args:
        input_hw: (H, W) of the unpadded input, or one int for both.
        weight: (C_out, k_h, k_w, C_in/groups) for layout "NHWC", or
            (C_out, C_in/groups, k_h, k_w) for "NCHW"; float32 or float64 (W has the
            same dtype). The layout only says how ``weight`` is stored; W's ordering
            is the one above either way.
        stride, padding, dilation, groups: as in ``convx.conv2d``. ``padding`` takes
            an int, (p_h, p_w), ((top, bottom), (left, right)), "valid", "same" or
            "same_lower".
        acts_on: "padded" (W multiplies vec(X_pad)) or "input" (W multiplies vec(X)).
        format: "csr" gives a ``scipy.sparse.csr_array`` (needs SciPy); "coo" gives
            the ``(rows, cols, values)`` arrays, sorted by row then column; "dense"
            gives a NumPy array.
        flip: use the kernel flipped in both spatial axes, i.e. the matrix of
            ``convx.conv2d(..., flip=True)`` (true convolution).
        max_dense_bytes: ``format="dense"`` raises ValueError instead of allocating
            more than this many bytes. Default 1 GiB.

    Raises:
        ValueError: on an invalid geometry or argument (the message names it), or when
            a dense result would exceed ``max_dense_bytes``.
        ImportError: for ``format="csr"`` when SciPy is not installed.
    """
    if format not in ("csr", "coo", "dense"):
        raise ValueError(f"format must be 'csr', 'coo' or 'dense', got {format!r}")
    geo = _geometry(
        input_hw,
        weight,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        acts_on=acts_on,
        layout=layout,
        flip=flip,
    )

    if format == "csr":
        try:
            import scipy.sparse as sparse  # type: ignore[import-untyped, unused-ignore]
        except ImportError as exc:
            raise ImportError(
                'conv_matrix(format="csr") needs SciPy, which convx does not install by '
                'itself: pip install scipy (or ask for format="coo" or "dense")'
            ) from exc
        indptr, indices, data, shape = _build_csr(geo)
        return sparse.csr_array((data, indices, indptr), shape=shape)

    if format == "dense":
        rows, cols, _, _, _ = geo.info()
        nbytes = rows * cols * geo.weight.dtype.itemsize
        if nbytes > max_dense_bytes:
            raise ValueError(
                f"format='dense': a {rows} x {cols} {geo.weight.dtype} matrix needs {nbytes} "
                f"bytes, more than max_dense_bytes={max_dense_bytes}; use format='csr' or "
                "'coo', or raise max_dense_bytes"
            )

    indptr, indices, data, (rows, cols) = _build_csr(geo)
    row_of = np.repeat(np.arange(rows, dtype=np.int64), np.diff(indptr))
    if format == "coo":
        return row_of, indices, data
    dense = np.zeros((rows, cols), dtype=data.dtype)
    dense[row_of, indices] = data
    return dense


def conv_bias_vector(
    input_hw: PairLike,
    weight: npt.ArrayLike,
    bias: npt.ArrayLike | None,
    *,
    stride: PairLike = 1,
    padding: PaddingLike = 0,
    dilation: PairLike = 1,
    groups: int = 1,
    layout: str = "NHWC",
) -> FloatArray:
    """The vector b of ``vec(Y) = W @ vec(X_pad) + b`` that goes with ``conv_matrix``.

    Entry ``m*H_out*W_out + c*H_out + r`` is ``bias[m]``: each filter's bias repeated
    over its whole output plane. Takes the same geometry arguments as ``conv_matrix``
    (only the output size depends on them). ``bias=None`` gives zeros. The dtype is
    the one ``conv_matrix`` uses for ``weight``.
    """
    geo = _geometry(
        input_hw,
        weight,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        acts_on="padded",
        layout=layout,
        flip=False,
    )
    _, _, _, h_out, w_out = geo.info()
    c_out = int(geo.weight.shape[0])
    dtype = geo.weight.dtype
    if bias is None:
        return np.zeros(c_out * h_out * w_out, dtype=dtype)
    b = np.asarray(bias)
    if b.shape != (c_out,):
        raise ValueError(f"bias must have shape ({c_out},), got {b.shape}")
    return np.repeat(b.astype(dtype, copy=False), h_out * w_out)
