"""Float64 NumPy reference implementations for the convx test-suite.

Everything here is written straight from the maths note (convolution-layer-maths.md):
explicit loops over output pixels and kernel taps, vectorised over the batch and
channel axes only, so that each function can be checked against the formula by eye.
The references always compute in float64 and work in NHWC / OHWI internally; the
layout helpers convert NCHW / OIHW at the boundary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import numpy as np

__all__ = [
    "as_pair",
    "assert_close",
    "conv2d_literal",
    "conv2d_ref",
    "from_nhwc",
    "im2col_ref",
    "output_size",
    "pad_ref",
    "resolve_padding",
    "seed_flat_weights",
    "to_nhwc",
    "tolerance",
    "uniform",
    "weight_to_ohwi",
]

Padding = Union[int, str, Sequence]


def as_pair(value: int | Sequence[int]) -> tuple[int, int]:
    """Returns (h, w) from an int or a pair."""
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    h, w = value
    return int(h), int(w)


def output_size(n_in: int, k: int, stride: int, pad_before: int, pad_after: int,
                dilation: int) -> int:
    """floor((in + pad_before + pad_after - d*(k-1) - 1) / s) + 1 for one spatial axis."""
    return (n_in + pad_before + pad_after - dilation * (k - 1) - 1) // stride + 1


def _same_axis(n_in: int, k: int, stride: int, dilation: int, lower: bool) -> tuple[int, int]:
    # TF / ONNX SAME: the output keeps ceil(in / stride) pixels; the odd padding pixel
    # goes to the end (SAME_UPPER) or to the start (SAME_LOWER).
    n_out = -(-n_in // stride)
    total = max((n_out - 1) * stride + (k - 1) * dilation + 1 - n_in, 0)
    small, big = total // 2, total - total // 2
    return (big, small) if lower else (small, big)


def resolve_padding(padding: Padding, in_hw: tuple[int, int], k_hw: tuple[int, int],
                    stride: int | Sequence[int] = 1,
                    dilation: int | Sequence[int] = 1) -> tuple[tuple[int, int], tuple[int, int]]:
    """Returns ((top, bottom), (left, right)) for every padding spelling convx accepts."""
    s_h, s_w = as_pair(stride)
    d_h, d_w = as_pair(dilation)
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding in ("same", "same_lower"):
            lower = padding == "same_lower"
            return (_same_axis(in_hw[0], k_hw[0], s_h, d_h, lower),
                    _same_axis(in_hw[1], k_hw[1], s_w, d_w, lower))
        raise ValueError(f"unknown padding {padding!r}")
    if isinstance(padding, (int, np.integer)):
        p = int(padding)
        return (p, p), (p, p)
    p_h, p_w = padding
    if isinstance(p_h, (int, np.integer)):
        return (int(p_h), int(p_h)), (int(p_w), int(p_w))
    return (int(p_h[0]), int(p_h[1])), (int(p_w[0]), int(p_w[1]))


def to_nhwc(x: np.ndarray, layout: str) -> np.ndarray:
    """NHWC (or HWC) view of an activation given in `layout`; always 4-D."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[None]
    return x if layout == "NHWC" else x.transpose(0, 2, 3, 1)


def from_nhwc(y: np.ndarray, layout: str, single: bool) -> np.ndarray:
    """Inverse of to_nhwc for an output tensor."""
    if layout == "NCHW":
        y = y.transpose(0, 3, 1, 2)
    return y[0] if single else y


def weight_to_ohwi(weight: np.ndarray, layout: str) -> np.ndarray:
    """OHWI view of a weight given in the layout's convention (OIHW for NCHW)."""
    return weight if layout == "NHWC" else weight.transpose(0, 2, 3, 1)


def pad_ref(x: np.ndarray, padding: Padding, layout: str = "NHWC") -> np.ndarray:
    """Zero padding of the spatial axes, via numpy.pad (strings are not accepted here)."""
    (top, bottom), (left, right) = resolve_padding(padding, (0, 0), (1, 1))
    spatial = [(top, bottom), (left, right)]
    if layout == "NHWC":
        widths = [(0, 0)] * (x.ndim - 3) + spatial + [(0, 0)]
    else:
        widths = [(0, 0)] * (x.ndim - 2) + spatial
    return np.pad(x, widths)


def conv2d_ref(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, *,
               stride: int | Sequence[int] = 1, padding: Padding = 0,
               dilation: int | Sequence[int] = 1, groups: int = 1, layout: str = "NHWC",
               activation: str | None = None, flip: bool = False) -> np.ndarray:
    """Direct convolution (cross-correlation) from the maths note's formula.

    Y[i, j, m] = b[m] + sum_{u,v,c} X_pad[i*s_h + u*d_h, j*s_w + v*d_w, g*C_g + c] K[m, u, v, c]
    with g the group of filter m and C_g = C_in / groups.

    One output pixel at a time; for each pixel the patch X_patch[i, j] is cut out of
    X_pad and contracted with all filters of each group.
    """
    single = np.asarray(x).ndim == 3
    xs = to_nhwc(np.asarray(x, dtype=np.float64), layout)
    ws = weight_to_ohwi(np.asarray(weight, dtype=np.float64), layout)
    if flip:
        ws = ws[:, ::-1, ::-1, :]
    n, h, w, c_in = xs.shape
    c_out, k_h, k_w, c_g = ws.shape
    assert c_g * groups == c_in
    m_g = c_out // groups
    s_h, s_w = as_pair(stride)
    d_h, d_w = as_pair(dilation)
    (top, bottom), (left, right) = resolve_padding(padding, (h, w), (k_h, k_w),
                                                   (s_h, s_w), (d_h, d_w))
    x_pad = np.pad(xs, [(0, 0), (top, bottom), (left, right), (0, 0)])
    h_out = output_size(h, k_h, s_h, top, bottom, d_h)
    w_out = output_size(w, k_w, s_w, left, right, d_w)
    y = np.zeros((n, h_out, w_out, c_out))
    for i in range(h_out):
        for j in range(w_out):
            # X_patch[i, j][u, v, c] = X_pad[i*s_h + u*d_h, j*s_w + v*d_w, c]
            patch = x_pad[:, i * s_h: i * s_h + (k_h - 1) * d_h + 1: d_h,
                          j * s_w: j * s_w + (k_w - 1) * d_w + 1: d_w, :]
            for g in range(groups):
                p_g = patch[..., g * c_g:(g + 1) * c_g]           # (n, k_h, k_w, c_g)
                k_g = ws[g * m_g:(g + 1) * m_g]                   # (m_g, k_h, k_w, c_g)
                y[:, i, j, g * m_g:(g + 1) * m_g] = np.tensordot(
                    p_g, k_g, axes=([1, 2, 3], [1, 2, 3]))
    if bias is not None:
        y += np.asarray(bias, dtype=np.float64)
    if activation == "relu":
        y = np.maximum(y, 0.0)
    return from_nhwc(y, layout, single)


def conv2d_literal(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, *,
                   stride: int = 1, padding: int = 0) -> np.ndarray:
    """The maths note's sum, scalar by scalar, for one HWC image and HWC filters.

    Used only to cross-check conv2d_ref on tiny inputs.
    """
    h, w, c_in = x.shape
    c_out, k_h, k_w, _ = weight.shape
    x_pad = np.zeros((h + 2 * padding, w + 2 * padding, c_in))
    x_pad[padding:padding + h, padding:padding + w] = x
    h_out = (h - k_h + 2 * padding) // stride + 1
    w_out = (w - k_w + 2 * padding) // stride + 1
    y = np.zeros((h_out, w_out, c_out))
    for i in range(h_out):
        for j in range(w_out):
            for m in range(c_out):
                acc = 0.0 if bias is None else float(bias[m])
                for c in range(c_in):
                    for u in range(k_h):
                        for v in range(k_w):
                            acc += x_pad[i * stride + u, j * stride + v, c] * weight[m, u, v, c]
                y[i, j, m] = acc
    return y


def _flat_index(order: str, u: int, v: int, c: np.ndarray, k_h: int, k_w: int,
                c_g: int) -> np.ndarray:
    # u = kernel row, v = kernel column, c = channel within the group.
    if order == "hwc":
        return (u * k_w + v) * c_g + c
    if order == "chw":
        return c * k_h * k_w + u * k_w + v
    if order == "seed":
        return c * k_h * k_w + v * k_h + u
    raise ValueError(f"unknown order {order!r}")


def im2col_ref(x: np.ndarray, kernel_size: int | Sequence[int], *,
               stride: int | Sequence[int] = 1, padding: Padding = 0,
               dilation: int | Sequence[int] = 1, groups: int = 1, layout: str = "NHWC",
               order: str = "hwc") -> np.ndarray:
    """Patches of X_pad flattened in `order`.

    Output (N, H_out, W_out, K) with K = k_h*k_w*C, or (N, H_out, W_out, groups, K/groups)
    when groups > 1; the N axis is dropped for a single image. Element
    [i, j, (g,) idx(u, v, c)] = X_pad[i*s_h + u*d_h, j*s_w + v*d_w, g*C_g + c].
    """
    single = np.asarray(x).ndim == 3
    xs = to_nhwc(np.asarray(x), layout)
    n, h, w, c_in = xs.shape
    k_h, k_w = as_pair(kernel_size)
    s_h, s_w = as_pair(stride)
    d_h, d_w = as_pair(dilation)
    c_g = c_in // groups
    (top, bottom), (left, right) = resolve_padding(padding, (h, w), (k_h, k_w),
                                                   (s_h, s_w), (d_h, d_w))
    x_pad = np.pad(xs, [(0, 0), (top, bottom), (left, right), (0, 0)])
    h_out = output_size(h, k_h, s_h, top, bottom, d_h)
    w_out = output_size(w, k_w, s_w, left, right, d_w)
    cols = np.zeros((n, h_out, w_out, groups, k_h * k_w * c_g), dtype=xs.dtype)
    chans = np.arange(c_g)
    for i in range(h_out):
        for j in range(w_out):
            for u in range(k_h):
                for v in range(k_w):
                    idx = _flat_index(order, u, v, chans, k_h, k_w, c_g)
                    for g in range(groups):
                        cols[:, i, j, g, idx] = x_pad[:, i * s_h + u * d_h, j * s_w + v * d_w,
                                                      g * c_g + chans]
    if groups == 1:
        cols = cols[:, :, :, 0, :]
    return cols[0] if single else cols


def seed_flat_weights(weight_ohwi: np.ndarray) -> np.ndarray:
    """k^(m) of the maths note for every filter m: (C_out, k_h*k_w*C).

    K^(m)[r, c, C] = k^(m)[C*k_h*k_w + c*k_h + r], i.e. each channel's k_h x k_w matrix
    flattened column by column. Built with explicit indices rather than a reshape.
    """
    c_out, k_h, k_w, c_in = weight_ohwi.shape
    flat = np.zeros((c_out, k_h * k_w * c_in), dtype=weight_ohwi.dtype)
    for r in range(k_h):
        for c in range(k_w):
            for ch in range(c_in):
                flat[:, ch * k_h * k_w + c * k_h + r] = weight_ohwi[:, r, c, ch]
    return flat


def tolerance(dtype: np.dtype | type, fan_in: int, scale: float = 1.0) -> float:
    """Absolute tolerance for a sum of `fan_in` products of magnitude <= `scale`.

    Summing K rounded products of random sign in precision eps errs by about
    eps * K * scale (partial sums grow like sqrt(K) * scale and each of the K
    additions rounds). We allow four times that, linear in K, plus one rounding
    of the bias: an indexing bug changes results by O(scale), far above this.
    """
    eps = float(np.finfo(np.dtype(dtype)).eps)
    return 4.0 * eps * (max(int(fan_in), 1) + 1) * max(float(scale), 1.0)


def assert_close(actual: np.ndarray, expected: np.ndarray, dtype: np.dtype | type,
                 fan_in: int, scale: float = 1.0) -> None:
    """Shape-exact, dtype-exact comparison with the tolerance above."""
    actual = np.asarray(actual)
    assert actual.dtype == np.dtype(dtype), f"dtype {actual.dtype} != {np.dtype(dtype)}"
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape}"
    atol = tolerance(dtype, fan_in, scale)
    np.testing.assert_allclose(actual.astype(np.float64), expected, rtol=atol, atol=atol)


def uniform(rng: np.random.Generator, shape: Sequence[int], dtype: np.dtype | type,
            low: float = -1.0, high: float = 1.0) -> np.ndarray:
    """C-contiguous array of U(low, high) values in `dtype`."""
    return rng.uniform(low, high, size=tuple(shape)).astype(dtype)
