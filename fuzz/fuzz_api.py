"""Coverage-guided fuzzing of convx's Python API with atheris (libFuzzer).

Every input drives one call, built from the fuzzer's bytes, of conv2d, Conv2D
(construction, calls, attribute changes between calls), im2col, pad, gemm,
output_shape, workspace_bytes or conv_matrix: random shapes and dtypes (float16,
integer, bool, complex, object, big-endian), strides, paddings (ints, pairs,
nested pairs, strings, huge ints), dilations, groups, layouts, activations,
out= buffers (wrong shape or dtype, read-only, non-contiguous, overlapping an
input), NaN / inf / subnormal data and non-contiguous, reversed or unaligned
views, on a random ISA path and thread count.

The project's rule is that bad input gets a clear ValueError, TypeError or
MemoryError and never a crash, a hang or a silent wrong answer. Each call is
therefore generated together with what it must do:

  ok   the call is valid: it must return the right result (checked against a
       float64 NumPy reference whose products follow IEEE rules exactly);
  bad  the call is invalid: it must raise ValueError, TypeError or MemoryError;
  any  either is acceptable (e.g. a huge but representable stride), but a
       result must still be right.

A finding is anything else: another exception type (OverflowError included,
since the rule names three), pybind11's generic "incompatible arguments"
TypeError (it names no argument), an error on a valid call, a result for an
invalid one, a wrong result, or a warning escaping from convx. Crashes and
hangs stop libFuzzer; the driver records the input and starts a new run.
Findings are deduplicated by a signature and kept with a reproducer (Python
code using make_array() below).

Run it with convx and atheris installed (pip install atheris), from anywhere:

    python fuzz/fuzz_api.py --seconds 600 --out /tmp/convx-fuzz --fresh   # a long run
    python fuzz/fuzz_api.py --runs 20000 --seed 1 --avoid-known-crashes \
        --fail-on new --out /tmp/convx-fuzz --fresh                      # as CI runs it
    python fuzz/fuzz_api.py --replay /tmp/convx-fuzz/crash-...            # one input

--fail-on decides the exit status: "any" finding (the default), only "new"
ones (those not matched by KNOWN below), or "none". The report gives new
findings in full, known ones as one line each, then a summary line and
"fuzz: N passed, M failed" over inputs (failed: inputs with a finding that
--fail-on counts, plus crashes and hangs). Every finding, with its input and
reproducer, is in <out>/findings.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "python"))

import reference as ref  # noqa: E402  (tests/python/reference.py)

OK, ANY, BAD = 0, 1, 2
ALLOWED = (ValueError, TypeError, MemoryError)
HUGE_INTS = (2**40, 2**62, 2**63 - 1, 2**63, 2**64, 10**30, -(2**63) - 1)
# --avoid-known-crashes: only huge ints past 2**62, which the Python layer refuses
# before C++ sees them. Extents of 2**40 and more are valid arguments, and some
# calls with them (conv_matrix, which visits every output position) run for a
# long time; a short run leaves them out.
HUGE_INTS_SAFE = (2**63, 2**64, 10**30, -(2**63) - 1)
# Largest output (elements) compared against the reference; a larger result from an
# "any" call is checked for shape and dtype only.
MAX_CHECKED = 20_000


def _too_big(*dims: int) -> bool:
    """Whether a reference over these extents (empty ones counted as 1) is too slow."""
    return math.prod(max(int(d), 1) for d in dims) > MAX_CHECKED

# Findings reported and still open, each with a predicate on its finding record.
# They are still printed (one line each); --fail-on new ignores them, so a short
# CI run fails only on something not seen before. Remove an entry once it is
# fixed, so that CI catches it coming back.
KNOWN: list[tuple[str, Callable[[dict[str, Any]], bool]]] = []


# --------------------------------------------------------------- arrays ------

_SPECIALS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "-0": -0.0}


def make_array(shape: tuple[int, ...], dtype: str, seed: int = 0,
               special: tuple[tuple[int, str], ...] = (), view: str | None = None) -> Any:
    """A deterministic array for a reproducer.

    Values are U(-1, 1) (floats, complex), small integers or booleans, drawn from
    `seed`; `special` sets flat positions (modulo the size) to "nan", "inf",
    "-inf", "-0" or "sub" (the dtype's smallest subnormal). `view` gives the same
    shape in another memory form: "F" (Fortran order), "T" (a transposed view),
    "step" (every other element of the last axis), "neg" (axis 0 reversed),
    "unaligned" (data one byte off alignment), "readonly", "bytestride" (strides
    that are not whole elements) or "list" (nested Python lists).
    """
    dt = np.dtype(dtype) if dtype != "object" else np.dtype(object)
    base_shape = list(shape)
    if view == "T" and len(shape) >= 2:
        base_shape[-1], base_shape[-2] = base_shape[-2], base_shape[-1]
    if view == "step" and shape:
        base_shape[-1] *= 2
    rng = np.random.default_rng(seed)
    size = int(np.prod(base_shape, dtype=np.int64))
    kind = dt.kind
    if kind in "iu":
        flat: Any = rng.integers(0, 4, size)
    elif kind == "b":
        flat = rng.integers(0, 2, size).astype(bool)
    elif kind == "c":
        flat = rng.uniform(-1, 1, size) + 1j * rng.uniform(-1, 1, size)
    else:
        flat = rng.uniform(-1, 1, size)
        for pos, name in special:
            if size:
                if name == "sub":
                    real = dt if kind == "f" else np.dtype(np.float64)
                    flat[pos % size] = float(np.finfo(real).smallest_subnormal)
                else:
                    flat[pos % size] = _SPECIALS[name]
    if view == "bytestride":
        rec = np.zeros(tuple(base_shape), dtype=[("v", dt), ("pad", "i1")])
        rec["v"] = np.asarray(flat).reshape(base_shape)
        return rec["v"]
    if view == "unaligned":
        buf = np.zeros(size * dt.itemsize + 1, dtype=np.uint8)
        arr = buf[1:].view(dt).reshape(base_shape)
        arr[...] = np.asarray(flat).reshape(base_shape)
        return arr
    arr = np.asarray(flat).astype(dt).reshape(base_shape)
    if view == "F":
        return np.asfortranarray(arr)
    if view == "T" and len(shape) >= 2:
        return arr.swapaxes(-1, -2)
    if view == "step" and shape:
        return arr[..., ::2]
    if view == "neg" and shape:
        return arr[::-1]
    if view == "readonly":
        arr.setflags(write=False)
    if view == "list":
        return arr.tolist()
    return arr


@dataclass
class Arr:
    """An argument array: how to build it, and how to write that as code."""

    shape: tuple[int, ...]
    dtype: str = "float32"
    seed: int = 0
    special: tuple[tuple[int, str], ...] = ()
    view: str | None = None
    value: Any = field(default=None, repr=False)

    def build(self) -> Any:
        self.value = make_array(self.shape, self.dtype, self.seed, self.special, self.view)
        return self.value

    def code(self) -> str:
        extra = ""
        if self.special:
            extra += f", special={self.special!r}"
        if self.view:
            extra += f", view={self.view!r}"
        return f"make_array({self.shape!r}, {self.dtype!r}, {self.seed}{extra})"

    @property
    def float_dtype(self) -> np.dtype[Any] | None:
        """The native float dtype convx computes in for this array, or None."""
        if self.view == "list":
            return np.dtype(np.float64) if self.dtype in FLOATS + BIG_ENDIAN else None
        if self.dtype in FLOATS + BIG_ENDIAN:
            return np.dtype(self.dtype).newbyteorder("=")
        return None


FLOATS = ("float32", "float64")
BIG_ENDIAN = (">f4", ">f8")
BAD_DTYPES = ("float16", "int32", "int64", "uint8", "bool", "complex64", "complex128", "object",
              "longdouble")
GOOD_VIEWS = (None, None, None, None, "F", "T", "step", "neg", "unaligned", "readonly", "list")


class Gen:
    """Draws argument values, each with the status (ok / any / bad) it gives the call."""

    def __init__(self, fdp: Any) -> None:
        self.fdp = fdp

    def int(self, lo: int, hi: int) -> int:
        return int(self.fdp.ConsumeIntInRange(lo, hi))

    def chance(self, percent: int) -> bool:
        return self.int(0, 99) < percent

    def pick(self, values: Any) -> Any:
        return values[self.int(0, len(values) - 1)]

    def dtype(self) -> tuple[str, int]:
        r = self.int(0, 99)
        if r < 70:
            return self.pick(FLOATS), OK
        if r < 82:
            return self.pick(BIG_ENDIAN), OK
        return self.pick(BAD_DTYPES), BAD

    def specials(self, percent: int = 25) -> tuple[tuple[int, str], ...]:
        if not self.chance(percent):
            return ()
        return tuple((self.int(0, 500), self.pick(("nan", "inf", "-inf", "sub", "-0")))
                     for _ in range(self.int(1, 3)))

    def array(self, shape: tuple[int, ...], dtype: str, views: tuple[Any, ...] = GOOD_VIEWS,
              specials: bool = True) -> Arr:
        view = self.pick(views)
        if (view == "list" and (dtype not in FLOATS or 0 in shape)) or \
                (view in ("unaligned", "bytestride") and dtype == "object"):
            view = None
        return Arr(tuple(shape), dtype, self.int(0, 2**16), self.specials() if specials else (),
                   view)

    def scalar_int(self, lo: int, hi: int, minimum: int) -> tuple[Any, int, int | None]:
        """An int-like argument that must be >= minimum: (value, status, its int)."""
        r = self.int(0, 99)
        if r < 70:
            v = self.int(lo, hi)
            return v, OK, v
        if r < 76:
            v = self.int(lo, hi)
            return np.int64(v), OK, v
        if r < 84:
            v = self.int(minimum - 3, minimum - 1)
            return v, BAD, None
        if r < 92:
            v = self.pick(HUGE_INTS_SAFE if AVOID_KNOWN_CRASHES else HUGE_INTS)
            return v, (BAD if v < minimum else ANY), (v if v >= minimum else None)
        return self.pick((1.0, 2.5, True, False, "1", None, [1], np.float32(1))), BAD, None

    def pair(self, name: str, lo: int, hi: int, minimum: int) -> tuple[Any, int, Any]:
        """stride / dilation / kernel_size: an int or an (h, w) pair."""
        if self.chance(50):
            v, st, iv = self.scalar_int(lo, hi, minimum)
            return v, st, None if iv is None else (iv, iv)
        r = self.int(0, 99)
        if r < 85:
            a, sa, ia = self.scalar_int(lo, hi, minimum)
            b, sb, ib = self.scalar_int(lo, hi, minimum)
            norm = None if ia is None or ib is None else (ia, ib)
            container = list if self.chance(20) else tuple
            return container((a, b)), max(sa, sb), norm
        return self.pick(((1, 1, 1), (1,), (), "11", {1: 1}, ((1, 1), (1, 1)))), BAD, None

    def padding(self) -> tuple[Any, int, Any]:
        """Any padding spelling: (value, status, normalised form for the reference)."""
        r = self.int(0, 99)

        def amount() -> tuple[Any, int, int | None]:
            return self.scalar_int(0, 3, 0)

        if r < 30:
            return amount()
        if r < 50:
            (a, sa, ia), (b, sb, ib) = amount(), amount()
            norm = None if ia is None or ib is None else (ia, ib)
            return (a, b), max(sa, sb), norm
        if r < 68:
            vals = [amount() for _ in range(4)]
            st = max(v[1] for v in vals)
            norm = None if st == BAD or any(v[2] is None for v in vals) else \
                ((vals[0][2], vals[1][2]), (vals[2][2], vals[3][2]))
            inner = list if self.chance(15) else tuple
            return (inner((vals[0][0], vals[1][0])), inner((vals[2][0], vals[3][0]))), st, norm
        if r < 88:
            s = self.pick(("valid", "same", "same_lower"))
            return s, OK, s
        return self.pick(("SAME", "full", "", ((1, 1), 1), ((1, 2, 3), (1, 1)), (1, 2, 3),
                          1.5, None, [[1], [1]], np.array([1, 1]))), BAD, None

    def groups(self, divisors_of: tuple[int, ...]) -> tuple[Any, int, int | None]:
        r = self.int(0, 99)
        if r < 85:
            g = self.pick(divisors_of)
            return g, OK, g
        if r < 90:
            return self.int(-2, 0), BAD, None
        return self.pick((1.0, True, "2", None, 2**64, 7)), BAD, None

    def layout(self) -> tuple[Any, int, str]:
        if self.chance(92):
            v = self.pick(("NHWC", "NCHW"))
            return v, OK, v
        return self.pick(("nhwc", "HWC", "", None, 0)), BAD, "NHWC"

    def activation(self) -> tuple[Any, int, str | None]:
        r = self.int(0, 99)
        if r < 50:
            return None, OK, None
        if r < 94:
            return "relu", OK, "relu"
        return self.pick(("ReLU", "sigmoid", "", 0, True)), BAD, None


# ------------------------------------------------------------ reference ------

def as_operand(a: Any, dtype: np.dtype[Any] | None) -> Any:
    """`a` in float64 as convx's arithmetic sees it in `dtype`: with denormals flushed
    (convx's default, FLUSH here) values below the dtype's smallest normal count as 0."""
    a64 = np.array(a, dtype=np.float64)
    if FLUSH and dtype is not None:
        a64[(a64 != 0) & (np.abs(a64) < np.finfo(dtype).tiny)] = 0.0
    return a64


def conv_reference(x: Any, w: Any, bias: Any, stride: tuple[int, int],
                   pads: tuple[tuple[int, int], tuple[int, int]], dilation: tuple[int, int],
                   groups: int, layout: str, activation: str | None, flip: bool,
                   dtype: np.dtype[Any] | None = None) -> Any:
    """conv2d in float64 from the formula, with products and sums that follow IEEE
    rules element by element (no BLAS, so 0 * inf is NaN wherever it occurs), on
    operands as convx reads them in `dtype` (see as_operand). None when the padded
    input or the output is too big to compute it quickly."""
    x64 = as_operand(x, dtype)
    single = x64.ndim == 3
    xs = ref.to_nhwc(x64, layout)
    ws = ref.weight_to_ohwi(as_operand(w, dtype), layout)
    if flip:
        ws = ws[:, ::-1, ::-1, :]
    n, h, wd, _ = xs.shape
    c_out, k_h, k_w, c_g = ws.shape
    m_g = c_out // groups
    (top, bottom), (left, right) = pads
    s_h, s_w = stride
    d_h, d_w = dilation
    h_out = (h + top + bottom - d_h * (k_h - 1) - 1) // s_h + 1
    w_out = (wd + left + right - d_w * (k_w - 1) - 1) // s_w + 1
    if _too_big(n, h + top + bottom, wd + left + right, c_g * groups) or \
            _too_big(n, h_out, w_out, c_out):
        return None
    xp = np.pad(xs, [(0, 0), (top, bottom), (left, right), (0, 0)])
    y = np.zeros((n, h_out, w_out, c_out))
    for i in range(h_out):
        for j in range(w_out):
            patch = xp[:, i * s_h: i * s_h + (k_h - 1) * d_h + 1: d_h,
                       j * s_w: j * s_w + (k_w - 1) * d_w + 1: d_w, :]
            for g in range(groups):
                p = patch[..., g * c_g:(g + 1) * c_g]            # (n, k_h, k_w, c_g)
                k = ws[g * m_g:(g + 1) * m_g]                    # (m_g, k_h, k_w, c_g)
                with np.errstate(invalid="ignore", over="ignore"):
                    y[:, i, j, g * m_g:(g + 1) * m_g] = (
                        p[:, None] * k[None]).sum(axis=(2, 3, 4))
    if bias is not None:
        y = y + as_operand(bias, dtype)
    if activation == "relu":
        y = np.where(np.isnan(y), y, np.maximum(y, 0.0))
    return ref.from_nhwc(y, layout, single)


def compare(got: Any, want: Any, dtype: np.dtype[Any], fan_in: int, exact: bool = False
            ) -> str | None:
    """None when `got` is `want` within rounding (NaN where NaN, equal infinities)."""
    if type(got) is not np.ndarray:
        return f"returned {type(got).__name__}, not an ndarray"
    if got.shape != want.shape:
        return f"shape {got.shape}, want {want.shape}"
    if got.dtype != dtype:
        return f"dtype {got.dtype}, want {dtype}"
    g = got.astype(np.float64)
    w = np.asarray(want, dtype=np.float64)
    nan_g, nan_w = np.isnan(g), np.isnan(w)
    if (nan_g != nan_w).any():
        at = tuple(int(v) for v in np.argwhere(nan_g != nan_w)[0])
        return f"NaN mismatch at {at}: got {g[at]}, want {w[at]}"
    inf_w = np.isinf(w)
    if (np.isinf(g) != inf_w).any() or (g[inf_w] != w[inf_w]).any():
        at = tuple(int(v) for v in np.argwhere((np.isinf(g) != inf_w) | (inf_w & (g != w)))[0])
        return f"inf mismatch at {at}: got {g[at]}, want {w[at]}"
    fin = np.isfinite(w)
    tol = 0.0 if exact else ref.tolerance(dtype, fan_in)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.where(fin, np.abs(g - w), 0.0)
        bad = fin & ~(err <= tol + tol * np.abs(np.where(fin, w, 0.0)))
    if bad.any():
        at = tuple(int(v) for v in np.argwhere(bad)[0])
        return f"value at {at}: got {g[at]!r}, want {w[at]!r} (tolerance {tol:.3g})"
    return None


# ----------------------------------------------------------------- calls ------

@dataclass
class Call:
    """One generated call: what to run, what it must do, and how to check a result."""

    op: str
    status: int
    lines: list[str]                       # the reproducer, after the common preamble
    run: Callable[[], Any]
    check: Callable[[Any], str | None] = lambda result: None
    relu: bool = False
    big_endian: bool = False
    huge_int: bool = False
    tags: tuple[str, ...] = ()
    # Follow-up calls on what a successful, valid call returned (a Conv2D's calls).
    then: Callable[[Any], list[Call]] | None = None


def _has_huge(*values: Any, limit: int = 2**63) -> bool:
    """Whether any int in these (nested) values is at least `limit` in magnitude."""
    def walk(v: Any) -> bool:
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            return abs(int(v)) >= limit
        if isinstance(v, (tuple, list)):
            return any(walk(e) for e in v)
        return False
    return any(walk(v) for v in values)


def _geometry_tags(stride: Any, padding: Any, dilation: Any) -> tuple[str, ...]:
    """Tags for KNOWN: huge (>= 2**40) geometry values, and a padding string that
    is not one of convx's spellings."""
    tags = []
    if _has_huge(stride, dilation, limit=2**40):
        tags.append("huge-stride-or-dilation")
    if _has_huge(padding, limit=2**40):
        tags.append("huge-padding")
    if isinstance(padding, str) and padding not in ("valid", "same", "same_lower"):
        tags.append("bad-padding-string")
    return tuple(tags)


def _kw(**kwargs: Any) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def _geometry_ok(h: int, w: int, k: tuple[int, int], s: tuple[int, int], d: tuple[int, int],
                 pad_norm: Any) -> tuple[Any, int, int] | None:
    """((top, bottom), (left, right)), h_out, w_out; None when the kernel does not fit."""
    pads = ref.resolve_padding(pad_norm, (h, w), k, s, d)
    (top, bottom), (left, right) = pads
    h_out = (h + top + bottom - d[0] * (k[0] - 1) - 1) // s[0] + 1
    w_out = (w + left + right - d[1] * (k[1] - 1) - 1) // s[1] + 1
    if h + top + bottom < d[0] * (k[0] - 1) + 1 or w + left + right < d[1] * (k[1] - 1) + 1:
        return None
    return pads, h_out, w_out


def _split(shape: tuple[int, ...], layout: str) -> tuple[int, int, int, int, bool]:
    """(n, h, w, c, batched) of a 3-D or 4-D activation shape."""
    full = shape if len(shape) == 4 else (1, *shape)
    n, a, b, c = full
    return (n, a, b, c, len(shape) == 4) if layout == "NHWC" else (n, b, c, a, len(shape) == 4)


def _conv_shapes_status(xs: tuple[int, ...], ws: tuple[int, ...],
                        bias_shape: tuple[int, ...] | None, layout: str, groups: int | None
                        ) -> int:
    """BAD when conv2d's input, weight and bias shapes do not fit together."""
    if len(xs) not in (3, 4) or len(ws) != 4 or groups is None:
        return BAD
    _, _, _, c_in, _ = _split(xs, layout)
    c_out, c_g = ws[0], (ws[3] if layout == "NHWC" else ws[1])
    k = (ws[1], ws[2]) if layout == "NHWC" else (ws[2], ws[3])
    if c_in < 1 or c_out < 1 or min(k) < 1 or c_in % groups or c_out % groups \
            or c_g * groups != c_in:
        return BAD
    if bias_shape is not None and bias_shape != (c_out,):
        return BAD
    return OK


def _x_shape(layout: str, n: int, h: int, w: int, c: int, batched: bool) -> tuple[int, ...]:
    s = (n, h, w, c) if layout == "NHWC" else (n, c, h, w)
    return s if batched else s[1:]


def _out_arg(gen: Gen, shape: tuple[int, ...] | None, dtype: np.dtype[Any] | None,
             src: Arr, src_name: str) -> tuple[Any, str, int]:
    """An out= argument for a result of `shape` (None: the call is invalid anyway) and
    `dtype`: (value, reproducer expression, status it gives the call)."""
    r = gen.int(0, 99)
    if r < 55 or dtype is None or (shape is not None and _too_big(*shape)):
        return None, "None", OK
    st_fit = OK if shape is not None else ANY
    shape = shape if shape is not None else (1,)
    name = dtype.name

    def made(arr: Arr, status: int) -> tuple[Any, str, int]:
        return arr.build(), arr.code(), status

    if r < 70:
        return made(Arr(shape, name, gen.int(0, 99)), st_fit)
    if r < 76:
        return made(Arr(tuple(d + 1 for d in shape) or (1,), name), BAD)
    if r < 81:
        other = gen.pick(("float64" if name == "float32" else "float32", "float16",
                          ">f4" if name == "float32" else ">f8"))
        return made(Arr(shape, other), BAD)
    if r < 86:
        return made(Arr(shape, name, view="readonly"), BAD)
    if r < 90:
        view = gen.pick(("F", "step", "neg"))
        arr = Arr(shape, name, view=view)
        value = arr.build()
        return value, arr.code(), (OK if value.flags.c_contiguous else BAD)
    if r < 95:
        x = src.value
        need = int(np.prod(shape))
        if isinstance(x, np.ndarray) and x.flags.c_contiguous and x.dtype == dtype \
                and x.size >= need > 0:
            return (x.reshape(-1)[:need].reshape(shape),
                    f"{src_name}.reshape(-1)[:{need}].reshape({shape!r})", BAD)
        return None, "None", OK
    value = gen.pick(([0.0], "out", 3))
    return value, repr(value), BAD


class Builder:
    """Builds Calls from fuzzer bytes."""

    def __init__(self, fdp: Any) -> None:
        self.g = Gen(fdp)

    # conv2d -----------------------------------------------------------------
    def conv2d(self) -> Call:
        g = self.g
        layout_v, st_layout, layout = g.layout()
        dt, st_dt = g.dtype()
        groups_ok = g.pick((1, 1, 1, 2, 3))
        c_in = groups_ok * g.int(1, 3)
        c_out = groups_ok * g.int(1, 3)
        k = (g.int(1, 3), g.int(1, 3))
        n, h, w = g.int(0, 2), g.int(0, 6), g.int(0, 6)
        batched = g.chance(75)
        status = max(st_layout, st_dt)
        if not batched:
            n = 1
        if h == 0 or w == 0:
            status = max(status, ANY)
        xs = _x_shape(layout, n, h, w, c_in, batched)
        ws = (c_out, k[0], k[1], c_in // groups_ok) if layout == "NHWC" else \
            (c_out, c_in // groups_ok, k[0], k[1])
        r = g.int(0, 99)
        if r < 4:
            xs = xs[1:] if len(xs) == 3 else (2, *xs)   # 2-D or 5-D
        elif r < 8:
            ws = (ws[0], ws[1] + 1, ws[2], ws[3]) if layout == "NCHW" else \
                (ws[0], ws[1], ws[2], ws[3] + 1)
        elif r < 10:
            ws = ws[1:]
        elif r < 12:
            xs = (*xs[:-1], 0) if layout == "NHWC" else (xs[0], 0, *xs[2:])
        w_dt = dt if not g.chance(6) else g.pick(("float32", "float64", "float16", ">f8"))
        x = g.array(xs, dt)
        wa = g.array(ws, w_dt)
        bias: Arr | None = None
        rb = g.int(0, 99)
        if rb < 60:
            bias = g.array((c_out,), w_dt)
        elif rb < 64:
            bias = g.array((c_out + 1,), w_dt)
        elif rb < 66:
            bias = g.array((1, c_out), w_dt)
        stride, st_s, s_norm = g.pair("stride", 1, 3, 1)
        dilation, st_d, d_norm = g.pair("dilation", 1, 2, 1)
        padding, st_p, p_norm = g.padding()
        groups, st_g, g_norm = g.groups((groups_ok, groups_ok, 1))
        # Whatever the mutations above did, the shapes as they are decide.
        st_shapes = _conv_shapes_status(xs, ws, bias.shape if bias else None, layout, g_norm)
        if st_shapes == BAD:
            status = BAD
        else:
            n, h, w, c_in, batched = _split(xs, layout)
            c_out, k = ws[0], ((ws[1], ws[2]) if layout == "NHWC" else (ws[2], ws[3]))
            groups_ok = g_norm if g_norm is not None else groups_ok
            if h == 0 or w == 0:
                status = max(status, ANY)
        activation, st_a, act = g.activation()
        flip = g.pick((False, False, False, True, 1, None)) if g.chance(30) else False
        st_f = OK if isinstance(flip, bool) else BAD
        status = max(status, st_s, st_d, st_p, st_g, st_a, st_f)
        arrays = [x, wa] + ([bias] if bias is not None else [])
        x.build()
        wa.build()
        if bias is not None:
            bias.build()
        fdt = x.float_dtype
        # Lists become float64 arrays, so they only go with float64 ones.
        if len({a.float_dtype for a in arrays}) > 1 or fdt is None:
            status = BAD

        geo = None
        if status < BAD and s_norm and d_norm and p_norm is not None:
            geo = _geometry_ok(h, w, k, s_norm, d_norm, p_norm)
            if geo is None:
                status = BAD
        out_shape = None
        if geo is not None:
            out_shape = _x_shape(layout, n, geo[1], geo[2], c_out, batched)
        out_value, out_code, st_o = _out_arg(g, out_shape, fdt, x, "x")
        status = max(status, st_o)

        kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                      layout=layout_v, activation=activation, flip=flip)
        lines = [f"x = {x.code()}", f"w = {wa.code()}",
                 f"b = {bias.code() if bias else None}", f"out = {out_code}",
                 f"y = convx.conv2d(x, w, b, {_kw(**kwargs)}, out=out)"]
        b_value = bias.value if bias is not None else None

        def run() -> Any:
            return convx.conv2d(x.value, wa.value, b_value, out=out_value, **kwargs)

        def check(y: Any) -> str | None:
            if geo is None or fdt is None:
                return None
            if out_value is not None and y is not out_value:
                return "out= was given but a different array was returned"
            if _too_big(*out_shape) or g_norm is None:
                return None if np.shape(y) == out_shape else f"shape {np.shape(y)}"
            want = conv_reference(x.value, wa.value, b_value, s_norm, geo[0], d_norm, g_norm,
                                  layout, act, bool(flip), fdt)
            if want is None:
                return None
            return compare(y, want, fdt, k[0] * k[1] * (c_in // groups_ok))

        tags = list(_geometry_tags(stride, padding, dilation))
        if not isinstance(flip, bool):
            tags.append("flip-not-bool")
        unpadded = (type(padding) is int and padding == 0) or \
            (isinstance(padding, str) and padding == "valid")
        if (wa.special or (bias is not None and bias.special)) and not unpadded:
            tags.append("nonfinite-weights-padded")
        return Call("conv2d", status, lines, run, check, relu=act == "relu",
                    big_endian=any(a.dtype in BIG_ENDIAN for a in arrays),
                    huge_int=_has_huge(stride, padding, dilation, groups), tags=tuple(tags))

    # Conv2D -----------------------------------------------------------------
    def layer(self) -> Call:
        g = self.g
        groups_ok = g.pick((1, 1, 2, 3))
        in_ok = groups_ok * g.int(1, 3)
        out_ok = groups_ok * g.int(1, 3)

        def channels(value: int) -> tuple[Any, int]:
            r = g.int(0, 99)
            if r < 85:
                return value, OK
            if r < 90:
                return np.int64(value), OK
            return g.pick((0, -1, 2.0, True, "3", None, 2**63, 2**40)), BAD

        in_ch, st_i = channels(in_ok)
        out_ch, st_o = channels(out_ok)
        ks, st_k, k_norm = g.pair("kernel_size", 1, 3, 1)
        if k_norm is not None and max(k_norm) > 8:
            # Legal, but a layer with such a kernel allocates k_h*k_w*... weights: too
            # slow to fuzz, and not an error.
            ks, st_k, k_norm = (1, 1), OK, (1, 1)
        stride, st_s, s_norm = g.pair("stride", 1, 3, 1)
        padding, st_p, p_norm = g.padding()
        dilation, st_d, d_norm = g.pair("dilation", 1, 2, 1)
        groups, st_g, g_norm = g.groups((groups_ok, groups_ok, 1))
        if g_norm is not None and (in_ok % g_norm or out_ok % g_norm):
            st_g = BAD
        with_bias = g.pick((True, True, False))
        layout_v, st_l, layout = g.layout()
        dt, st_dt = g.dtype()
        if dt in BIG_ENDIAN:
            st_dt = ANY  # the layer's own weights in a big-endian dtype: either is fine
        activation, st_a, act = g.activation()
        seed = g.int(0, 1000)
        status = max(st_i, st_o, st_k, st_s, st_p, st_d, st_g, st_l, st_dt, st_a)
        c_g = in_ok // (g_norm or 1)
        ctor = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                    bias=with_bias, layout=layout_v, dtype=dt, seed=seed, activation=activation)
        lines = [f"layer = convx.Conv2D({in_ch!r}, {out_ch!r}, {ks!r}, {_kw(**ctor)})"]

        # The input of the calls, and an optional attribute change before the last one.
        n, h, w = g.int(0, 2), g.int(1, 6), g.int(1, 6)
        batched = g.chance(75)
        if not batched:
            n = 1
        x_dt = dt if g.chance(90) else g.pick(("float32", "float64", ">f8", "int64"))
        x = g.array(_x_shape(layout, n, h, w, in_ok, batched), x_dt)
        x.build()
        fdt = x.float_dtype
        same_dtype = fdt is not None and dt in FLOATS + BIG_ENDIAN and \
            fdt == np.dtype(dt).newbyteorder("=")
        change: tuple[str, Any, int, Any] | None = None
        if g.chance(35):
            which = g.pick(("stride", "padding", "dilation", "activation", "weight", "bias"))
            if which in ("stride", "dilation"):
                value, st, norm = g.pair(which, 1, 3, 1)
            elif which == "padding":
                value, st, norm = g.padding()
            elif which == "activation":
                value, st, norm = g.activation()
            else:
                value, st, norm = None, OK, None
            change = (which, value, st, norm)

        def geometry(s: Any, p: Any, d: Any) -> Any:
            if k_norm is None or s is None or d is None or p is None:
                return None
            return _geometry_ok(h, w, k_norm, s, d, p)

        def then(layer: Any) -> list[Call]:
            def judged(label: str, run: Callable[[], Any], s: Any, p: Any, d: Any, a: Any,
                       geometry_status: int, huge: bool) -> Call:
                geo = geometry(s, p, d)
                st = max(geometry_status, OK if geo is not None and same_dtype else BAD)

                def check(y: Any) -> str | None:
                    if geo is None or fdt is None:
                        return None
                    if _too_big(n, geo[1], geo[2], out_ok):
                        return None
                    want = conv_reference(x.value, layer.weight, layer.bias, s, geo[0], d,
                                          g_norm or 1, layout, a, False, fdt)
                    if want is None:
                        return None
                    return compare(y, want, fdt, k_norm[0] * k_norm[1] * c_g)

                return Call("Conv2D." + label, st, lines, run, check, relu=a == "relu",
                            big_endian=dt in BIG_ENDIAN or x_dt in BIG_ENDIAN, huge_int=huge,
                            tags=_geometry_tags(*geo_values.values()))

            # Huge but legal values may still be refused when the layer is called.
            geo_status = {"stride": st_s, "padding": st_p, "dilation": st_d}
            geo_values = {"stride": stride, "padding": padding, "dilation": dilation}
            huge = _has_huge(*geo_values.values())
            first = max(geo_status.values())
            calls = [judged("call", lambda: layer(x.value), s_norm, p_norm, d_norm, act,
                            first, huge),
                     judged("call-again", lambda: layer(x.value), s_norm, p_norm, d_norm, act,
                            first, huge)]
            if change is None:
                return calls
            which, value, st, norm = change
            s, p, d, a = s_norm, p_norm, d_norm, act
            if which == "stride":
                s = norm
            elif which == "dilation":
                d = norm
            elif which == "padding":
                p = norm
            elif which == "activation":
                a = norm
            if which in geo_status:
                geo_status[which] = st
                geo_values[which] = value
            st = max(st, *geo_status.values())
            huge = _has_huge(*geo_values.values())

            def changed() -> Any:
                # A bad value may be refused by the assignment or by the call.
                if which == "weight":
                    layer.weight = layer.weight[::-1] * 2
                elif which == "bias":
                    layer.bias = None
                else:
                    setattr(layer, which, value)
                return layer(x.value)

            calls.append(judged("call-after-" + which, changed, s, p, d, a, st, huge))
            return calls

        lines += [f"x = {x.code()}", "y = layer(x)", "y = layer(x)"]
        if change is not None:
            which, value = change[0], change[1]
            lines.append({"weight": "layer.weight = layer.weight[::-1] * 2",
                          "bias": "layer.bias = None"}.get(which, f"layer.{which} = {value!r}"))
            lines.append("y = layer(x)")

        def run() -> Any:
            return convx.Conv2D(in_ch, out_ch, ks, **ctor)

        return Call("Conv2D", status, lines, run, relu=act == "relu",
                    big_endian=dt in BIG_ENDIAN,
                    huge_int=_has_huge(in_ch, out_ch, ks, stride, padding, dilation, groups),
                    tags=_geometry_tags(stride, padding, dilation), then=then)

    # im2col -----------------------------------------------------------------
    def im2col(self) -> Call:
        g = self.g
        layout_v, st_l, layout = g.layout()
        dt, st_dt = g.dtype()
        groups_ok = g.pick((1, 1, 2, 3))
        c = groups_ok * g.int(1, 3)
        n, h, w = g.int(0, 2), g.int(1, 6), g.int(1, 6)
        batched = g.chance(75)
        if not batched:
            n = 1
        x = g.array(_x_shape(layout, n, h, w, c, batched), dt)
        x.build()
        ks, st_k, k_norm = g.pair("kernel_size", 1, 3, 1)
        stride, st_s, s_norm = g.pair("stride", 1, 3, 1)
        dilation, st_d, d_norm = g.pair("dilation", 1, 2, 1)
        padding, st_p, p_norm = g.padding()
        groups, st_g, g_norm = g.groups((groups_ok, 1))
        if g_norm is not None and c % g_norm:
            st_g = BAD
        order = g.pick(("hwc", "chw", "seed")) if g.chance(95) else g.pick(("HWC", "", None))
        st_o = OK if order in ("hwc", "chw", "seed") else BAD
        status = max(st_l, st_dt, st_k, st_s, st_d, st_p, st_g, st_o)
        geo = None
        if status < BAD and k_norm and s_norm and d_norm and p_norm is not None:
            geo = _geometry_ok(h, w, k_norm, s_norm, d_norm, p_norm)
            if geo is None:
                status = BAD
        kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                      layout=layout_v, order=order)
        lines = [f"x = {x.code()}", f"cols = convx.im2col(x, {ks!r}, {_kw(**kwargs)})"]
        fdt = x.float_dtype

        def run() -> Any:
            return convx.im2col(x.value, ks, **kwargs)

        def check(cols: Any) -> str | None:
            if geo is None or fdt is None or g_norm is None:
                return None
            (t, b), (lf, rt) = geo[0]
            if _too_big(geo[1], geo[2], n, k_norm[0], k_norm[1], c) or \
                    _too_big(n, h + t + b, w + lf + rt, c):  # the reference pads x
                return None
            want = ref.im2col_ref(np.asarray(x.value, dtype=np.float64), k_norm, stride=s_norm,
                                  padding=geo[0], dilation=d_norm, groups=g_norm,
                                  layout=layout, order=order)
            return compare(cols, want, fdt, 1, exact=True)

        return Call("im2col", status, lines, run, check, big_endian=dt in BIG_ENDIAN,
                    huge_int=_has_huge(ks, stride, padding, dilation, groups),
                    tags=_geometry_tags(stride, padding, dilation))

    # pad --------------------------------------------------------------------
    def pad(self) -> Call:
        g = self.g
        layout_v, st_l, layout = g.layout()
        dt, st_dt = g.dtype()
        n, h, w, c = g.int(0, 2), g.int(0, 5), g.int(0, 5), g.int(1, 3)
        batched = g.chance(75)
        if not batched:
            n = 1
        xs = _x_shape(layout, n, h, w, c, batched)
        if g.chance(4):
            xs = (*xs, 1) if batched else xs[1:]
            st_l = BAD
        x = g.array(xs, dt)
        x.build()
        padding, st_p, p_norm = g.padding()
        if isinstance(padding, str) and padding != "valid":
            st_p = BAD
        status = max(st_l, st_dt, st_p)
        if status < BAD and (h == 0 or w == 0):
            status = max(status, ANY)
        lines = [f"x = {x.code()}", f"xp = convx.pad(x, {padding!r}, layout={layout_v!r})"]
        fdt = x.float_dtype

        def run() -> Any:
            return convx.pad(x.value, padding, layout=layout_v)

        def check(xp: Any) -> str | None:
            if status == BAD or p_norm is None or fdt is None:
                return None
            (t, b), (lf, rt) = ref.resolve_padding(p_norm, (h, w), (1, 1))
            if _too_big(n, h + t + b, w + lf + rt, c):
                return None
            want = ref.pad_ref(np.asarray(x.value, dtype=np.float64), ((t, b), (lf, rt)), layout)
            return compare(xp, want, fdt, 1, exact=True)

        return Call("pad", status, lines, run, check, big_endian=dt in BIG_ENDIAN,
                    huge_int=_has_huge(padding))

    # gemm -------------------------------------------------------------------
    def gemm(self) -> Call:
        g = self.g
        big = g.chance(15)
        m = g.int(0, 40 if big else 9)
        kk = g.int(0, 40 if big else 9)
        nn = g.int(0, 40 if big else 9)
        dt_a, st_a = g.dtype()
        dt_b = dt_a if g.chance(85) else g.dtype()[0]
        st_b = OK if dt_b in FLOATS + BIG_ENDIAN else BAD
        status = max(st_a, st_b)
        views = (*GOOD_VIEWS, "bytestride")
        a = g.array((m, kk), dt_a, views)
        b_shape = (kk, nn) if g.chance(95) else (kk + 1, nn)
        if b_shape[0] != kk:
            status = BAD
        b = g.array(b_shape, dt_b, views)
        if g.chance(3):
            a = g.array((m, kk, 1), dt_a)
            status = BAD
        if "bytestride" in (a.view, b.view):
            status = max(status, ANY)  # strides that are not whole elements: may be refused
        a.build()
        b.build()
        fdt = a.float_dtype
        if b.float_dtype != fdt:  # after byte order and lists (float64) are accounted for
            status = BAD
        out_value, out_code, st_o = _out_arg(g, (m, nn), fdt, a, "a")
        status = max(status, st_o)
        lines = [f"a = {a.code()}", f"b = {b.code()}", f"out = {out_code}",
                 "c = convx.gemm(a, b, out=out)"]

        def run() -> Any:
            return convx.gemm(a.value, b.value, out=out_value)

        def check(c: Any) -> str | None:
            if fdt is None:
                return None
            a64 = as_operand(a.value, fdt)
            b64 = as_operand(b.value, fdt)
            with np.errstate(invalid="ignore", over="ignore"):
                want = (a64[:, :, None] * b64[None, :, :]).sum(axis=1)
            if out_value is not None and c is not out_value:
                return "out= was given but a different array was returned"
            return compare(c, want, fdt, kk)

        return Call("gemm", status, lines, run, check,
                    big_endian=dt_a in BIG_ENDIAN or dt_b in BIG_ENDIAN)

    # output_shape and workspace_bytes ------------------------------------------
    def shapes(self, op: str) -> Call:
        g = self.g
        layout_v, st_l, layout = g.layout()

        def dim(lo: int, hi: int, minimum: int) -> tuple[Any, int, int | None]:
            return g.scalar_int(lo, hi, minimum)

        n, st_n, n_i = dim(1, 4, 0)
        h, st_h, h_i = dim(1, 9, 0)
        w, st_w, w_i = dim(1, 9, 0)
        groups_ok = g.pick((1, 1, 2))
        c, st_c, c_i = dim(groups_ok, 3 * groups_ok, 1)
        co, st_co, co_i = dim(1, 4, 1)
        kh, st_kh, kh_i = dim(1, 3, 1)
        kw, st_kw, kw_i = dim(1, 3, 1)
        cg = (c_i // groups_ok) if c_i else 1
        batched = g.chance(80)
        in_shape: Any = _x_shape(layout, n, h, w, c, batched)
        w_shape: Any = (co, kh, kw, cg) if layout == "NHWC" else (co, cg, kh, kw)
        status = max(st_l, st_h, st_w, st_kh, st_kw, st_n if batched else OK)
        # Channels and batch size are not validated by output_shape (it only needs the
        # geometry), so nonsense there may be accepted.
        extra = max(st_c, st_co, st_n if batched else OK)
        if g.chance(5):
            in_shape = list(in_shape) if g.chance(50) else (*in_shape, 1, 1)
            status = max(status, ANY if isinstance(in_shape, list) else BAD)
        if g.chance(4):
            w_shape = w_shape[:3]
            status = BAD
        stride, st_s, s_norm = g.pair("stride", 1, 3, 1)
        dilation, st_d, d_norm = g.pair("dilation", 1, 2, 1)
        padding, st_p, p_norm = g.padding()
        status = max(status, st_s, st_d, st_p)
        kwargs: dict[str, Any] = dict(stride=stride, padding=padding, dilation=dilation,
                                      layout=layout_v)
        want: Any = None
        if status < BAD and all(v is not None for v in (h_i, w_i, kh_i, kw_i)) \
                and s_norm and d_norm and p_norm is not None:
            geo = _geometry_ok(h_i, w_i, (kh_i, kw_i), s_norm, d_norm, p_norm)
            if geo is None:
                status = BAD
            elif n_i is not None and co_i is not None:
                want = _x_shape(layout, n_i, geo[1], geo[2], co_i, batched)
        if op == "workspace_bytes":
            groups, st_g, g_norm = g.groups((groups_ok, 1))
            if g_norm is not None and c_i is not None and (c_i % g_norm or
                                                           (co_i or 1) % g_norm):
                st_g = BAD
            # The weight's input channels per group must match the input's, as for
            # conv2d.
            if g_norm is not None and c_i is not None and not c_i % g_norm \
                    and cg * g_norm != c_i:
                st_g = BAD
            dtype = g.pick(("float32", "float64", np.float32, "float16", "int8", None)) \
                if g.chance(20) else "float32"
            st_t = OK if dtype in ("float32", "float64", np.float32) else BAD
            if dtype is None:
                st_t = ANY  # np.dtype(None) is float64
            kwargs.update(groups=groups, dtype=dtype)
            status = max(status, st_g, st_t, extra)
            # Channel counts must agree with the weight shape here.
            if status < BAD and (c_i is None or c_i % groups_ok or c_i // groups_ok != cg):
                status = max(status, ANY)
            if status < BAD and _has_huge(in_shape, w_shape):
                status = max(status, ANY)
        else:
            status = max(status, ANY if extra else OK)
        fn = getattr(convx, op)
        lines = [f"r = convx.{op}({in_shape!r}, {w_shape!r}, {_kw(**kwargs)})"]

        def run() -> Any:
            return fn(in_shape, w_shape, **kwargs)

        def check(r: Any) -> str | None:
            if op == "output_shape":
                if want is not None and extra == OK and tuple(r) != tuple(want):
                    return f"returned {r!r}, want {want!r}"
                if not isinstance(r, tuple):
                    return f"returned {type(r).__name__}, not a tuple"
                return None
            if type(r) is not int or r < 0:
                return f"returned {r!r}, not an int >= 0"
            return None

        return Call(op, status, lines, run, check,
                    huge_int=_has_huge(in_shape, w_shape, stride, padding, dilation,
                                       kwargs.get("groups")))

    # conv_matrix -------------------------------------------------------------
    def conv_matrix(self) -> Call:
        g = self.g
        layout_v, st_l, layout = g.layout()
        dt, st_dt = g.dtype()
        groups_ok = g.pick((1, 1, 2))
        c_g = g.int(1, 2)
        c_out = groups_ok * g.int(1, 2)
        k = (g.int(1, 3), g.int(1, 3))
        ws = (c_out, k[0], k[1], c_g) if layout == "NHWC" else (c_out, c_g, k[0], k[1])
        wa = g.array(ws, dt, specials=False)
        wa.build()
        h, w = g.int(1, 6), g.int(1, 6)
        hw: Any = (h, w) if g.chance(70) else (h if h == w else (h, w))
        st_hw = OK
        if g.chance(8):
            hw, st_hw = g.pick(((0, 3), (-1, 2), (1.5, 2), "3", (3,), 2**63)), BAD
        stride, st_s, s_norm = g.pair("stride", 1, 3, 1)
        dilation, st_d, d_norm = g.pair("dilation", 1, 2, 1)
        padding, st_p, p_norm = g.padding()
        groups, st_g, g_norm = g.groups((groups_ok, 1))
        acts_on = g.pick(("padded", "input")) if g.chance(95) else "inputs"
        st_ao = OK if acts_on in ("padded", "input") else BAD
        fmt = g.pick(("csr", "coo", "dense")) if g.chance(95) else "dok"
        st_f = OK if fmt in ("csr", "coo", "dense") else BAD
        flip = g.chance(20)
        max_dense = g.pick((1 << 30, 1 << 30, 64, 0))
        status = max(st_l, st_dt, st_hw, st_s, st_d, st_p, st_g, st_ao, st_f)
        geo = None
        if status < BAD and s_norm and d_norm and p_norm is not None:
            geo = _geometry_ok(h, w, k, s_norm, d_norm, p_norm)
            if geo is None:
                status = BAD
        if geo is not None and fmt == "dense":
            (t, b), (lf, rt) = geo[0]
            c_in = c_g * (g_norm or 1)
            cols = c_in * ((h + t + b) * (w + lf + rt) if acts_on == "padded" else h * w)
            rows = c_out * geo[1] * geo[2]
            if rows * cols * np.dtype(wa.float_dtype or np.float64).itemsize > max_dense:
                status = BAD
        if g_norm is not None and c_out % g_norm:
            status = BAD
        kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                      acts_on=acts_on, format=fmt, layout=layout_v, flip=flip,
                      max_dense_bytes=max_dense)
        lines = [f"w = {wa.code()}", f"W = convx.conv_matrix({hw!r}, w, {_kw(**kwargs)})"]
        fdt = wa.float_dtype

        def run() -> Any:
            return convx.conv_matrix(hw, wa.value, **kwargs)

        def check(mat: Any) -> str | None:
            if geo is None or fdt is None or g_norm is None:
                return None
            (t, b), (lf, rt) = geo[0]
            if _too_big(geo[1], geo[2], h + t + b, w + lf + rt):
                return None
            c_in = c_g * g_norm
            xi = np.random.default_rng(1).uniform(-1, 1, (h, w, c_in))
            x_layout = xi if layout == "NHWC" else xi.transpose(2, 0, 1)
            want = conv_reference(x_layout, wa.value, None, s_norm, geo[0], d_norm, g_norm,
                                  layout, None, flip)
            if want is None:
                return None
            want_hwc = want if layout == "NHWC" else want.transpose(1, 2, 0)
            if fmt == "csr":
                dense = mat.toarray()
            elif fmt == "coo":
                rows_, cols_, vals = mat
                dense = np.zeros((want.size, c_in * ((h + t + b) * (w + lf + rt)
                                                     if acts_on == "padded" else h * w)))
                np.add.at(dense, (rows_, cols_), vals)
                dense = dense.astype(fdt)
            else:
                dense = mat
            if acts_on == "padded":
                xv = np.pad(xi, [(t, b), (lf, rt), (0, 0)]).ravel(order="F")
            else:
                xv = xi.ravel(order="F")
            if dense.shape != (want.size, xv.size):
                return f"matrix shape {dense.shape}, want {(want.size, xv.size)}"
            if dense.dtype != fdt:
                return f"matrix dtype {dense.dtype}, want {fdt}"
            got = (dense.astype(np.float64) * xv[None, :]).sum(axis=1)
            return compare(got.astype(fdt), want_hwc.ravel(order="F"), fdt,
                           k[0] * k[1] * c_g)

        return Call("conv_matrix", status, lines, run, check, big_endian=dt in BIG_ENDIAN,
                    huge_int=_has_huge(hw, stride, padding, dilation, groups),
                    tags=_geometry_tags(stride, padding, dilation))


OPS = ("conv2d", "conv2d", "conv2d", "layer", "layer", "im2col", "pad", "gemm", "gemm",
       "output_shape", "workspace_bytes", "conv_matrix")


# -------------------------------------------------------------- judging ------

def _normalise(message: str) -> str:
    """A message with its numbers, reprs and shapes blanked, for deduplication."""
    m = re.sub(r"\d+", "N", message)
    m = re.sub(r"'[^']*'", "'…'", m)
    return m[:120]


def _judge(call: Call, result: Any, error: BaseException | None, caught: list[Any]
           ) -> tuple[str, str] | None:
    """(category, message) of a finding, or None."""
    if error is not None:
        msg = f"{type(error).__name__}: {error}"
        if not isinstance(error, ALLOWED):
            return "bad-exception-type", msg
        if isinstance(error, TypeError) and re.search(r"incompatible (function|constructor) "
                                                      r"arguments", str(error)):
            return "unclear-message", msg.splitlines()[0]
        if call.status == OK:
            return "rejected-valid", msg
        return None
    if caught:
        w = caught[0]
        return "warning", f"{w.category.__name__}: {w.message}"
    if call.status == BAD:
        return "accepted-invalid", f"returned {type(result).__name__}"
    try:
        problem = call.check(result)
    except Exception as exc:  # the result is not what an array of its kind can be
        problem = f"checking the result raised {type(exc).__name__}: {exc}"
    if problem:
        return "wrong-result", problem
    return None


class Findings:
    """Deduplicated findings, kept in <out>/findings.json across driver restarts."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.items: dict[str, dict[str, Any]] = {}
        if path is not None and path.exists():
            self.items = json.loads(path.read_text())

    def add(self, record: dict[str, Any]) -> bool:
        sig = hashlib.sha1(json.dumps([record["op"], record["category"],
                                       _normalise(record["message"])]).encode()).hexdigest()[:10]
        known = next((name for name, pred in KNOWN if pred(record)), None)
        record = dict(record, known=known, signature=sig)
        old = self.items.get(sig)
        if old is not None:
            old["count"] += 1
            return False
        record["count"] = 1
        self.items[sig] = record
        self.save()
        return True

    def save(self) -> None:
        if self.path is not None:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.items, indent=1))
            tmp.replace(self.path)


def _setup_lines(isa: str | None, threads: int, flush: bool | None) -> list[str]:
    lines = ["import numpy as np, convx", "from fuzz_api import make_array"]
    if isa:
        lines.append(f"convx._core._set_isa({isa!r})")
    lines.append(f"convx.set_num_threads({threads})")
    if flush is not None:
        lines.append(f"convx.set_flush_denormal({flush})")
    return lines


def execute(data: bytes, findings: Findings | None, verbose: bool = False) -> list[dict[str, Any]]:
    """Builds and runs the call for one input; returns its findings."""
    import atheris

    fdp = atheris.FuzzedDataProvider(data)
    builder = Builder(fdp)
    g = builder.g
    isas = _ISAS
    isa = g.pick(isas) if isas else None
    threads = g.int(1, 3)
    flush = g.pick((True, True, False)) if _HAS_FLUSH else None
    op = g.pick(OPS)
    if isa:
        convx._core._set_isa(isa)
    convx.set_num_threads(threads)
    global FLUSH
    if flush is not None:
        convx.set_flush_denormal(flush)
        FLUSH = flush
    call = builder.shapes(op) if op in ("output_shape", "workspace_bytes") else \
        getattr(builder, op)()
    setup = _setup_lines(isa, threads, flush)
    found: list[dict[str, Any]] = []
    pending = [call]
    while pending:
        step = pending.pop(0)
        if verbose:  # before the call, which may crash or hang
            print("\n".join(setup + step.lines) if step is call else f"# {step.op}", flush=True)
        result, error, caught = _run(step)
        verdict = _judge(step, result, error, caught)
        if verbose:
            print(f"# expected {('ok', 'any', 'bad')[step.status]}: "
                  f"{'raised ' + repr(error) if error else 'returned ' + type(result).__name__}")
        if verdict is not None:
            found.append(_record(step, verdict, setup, error))
        elif step.then is not None and error is None:
            pending.extend(step.then(result))
    if findings is not None:
        for rec in found:
            rec["input"] = data.hex()
            findings.add(rec)
    return found


def _run(call: Call) -> tuple[Any, BaseException | None, list[Any]]:
    """Runs a call: (result, exception, warnings raised from convx's own code)."""
    result, error = None, None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = call.run()
        except Exception as exc:
            error = exc
    ours = [w for w in caught if f"{os.sep}convx{os.sep}" in (w.filename or "")]
    return result, error, ours


def _record(call: Call, verdict: tuple[str, str], setup: list[str],
            error: BaseException | None) -> dict[str, Any]:
    category, message = verdict
    tb = ""
    if error is not None and category == "bad-exception-type":
        tb = "".join(traceback.format_exception(type(error), error, error.__traceback__)[-4:])
    return {"op": call.op, "category": category, "message": message[:500],
            "repro": "\n".join(setup + call.lines), "traceback": tb, "relu": call.relu,
            "big_endian": call.big_endian, "huge_int": call.huge_int, "tags": list(call.tags)}


# --------------------------------------------------------------- driver ------

convx: Any = None
_ISAS: list[str] = []
AVOID_KNOWN_CRASHES = False
_HAS_FLUSH = False  # convx has set_flush_denormal (and flushes by default)
FLUSH = False  # whether convx flushes denormals in the call being checked


def _import_convx(instrument: bool) -> None:
    global convx, _ISAS
    if instrument:
        import atheris

        with atheris.instrument_imports(include=["convx"]):
            import convx as mod
    else:
        import convx as mod
    convx = mod
    global _HAS_FLUSH
    _HAS_FLUSH = hasattr(convx, "set_flush_denormal")
    if getattr(convx._core, "_set_isa", None) is not None:
        _ISAS = [str(name) for name in convx.cpu_info()["available"]]


def child(args: argparse.Namespace, libfuzzer_args: list[str]) -> None:
    """One libFuzzer session; stops itself at the budget and writes its statistics."""
    import atheris

    global AVOID_KNOWN_CRASHES
    AVOID_KNOWN_CRASHES = args.avoid_known_crashes
    _import_convx(instrument=True)
    out = Path(args.out)
    findings = Findings(out / "findings.json")
    stats_path = out / f"stats-{os.getpid()}.json"
    stats = {"runs": 0, "inputs_with_findings": 0, "seconds": 0.0, "done": False}
    t0 = time.monotonic()
    last_write = [t0]

    def write(done: bool = False) -> None:
        stats["seconds"] = round(time.monotonic() - t0, 2)
        stats["done"] = done
        stats_path.write_text(json.dumps(stats))

    def one_input(data: bytes) -> None:
        if stats["runs"] >= args.runs_left or time.time() >= args.deadline:
            write(done=True)
            sys.stdout.flush()
            os._exit(0)
        stats["runs"] += 1
        if execute(data, findings):
            stats["inputs_with_findings"] += 1
        now = time.monotonic()
        if now - last_write[0] > 2.0:
            last_write[0] = now
            write()

    atheris.Setup([sys.argv[0], *libfuzzer_args], one_input)
    atheris.Fuzz()


def driver(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if args.fresh and out.exists():
        for old in [*out.glob("corpus/*"), out / "findings.json"]:
            if old.exists():
                old.unlink()
    (out / "corpus").mkdir(parents=True, exist_ok=True)
    for old in out.glob("stats-*.json"):
        old.unlink()
    start = time.time()
    deadline = start + args.seconds if args.seconds else float("inf")
    runs_left = args.runs if args.runs else 10**12
    sessions, crashes = 0, []
    while time.time() < deadline and runs_left > 0 and sessions < 50:
        log = out / f"session-{sessions}.log"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--out", str(out),
               "--deadline", str(deadline if deadline != float("inf") else 1e18),
               "--runs-left", str(runs_left),
               *(["--avoid-known-crashes"] if args.avoid_known_crashes else []), "--",
               f"-seed={args.seed + sessions}", f"-timeout={args.timeout}",
               "-rss_limit_mb=4096", "-max_len=512", "-len_control=0", f"-artifact_prefix={out}/",
               "-print_final_stats=0", str(out / "corpus")]
        # A fixed hash seed keeps set and dict orders, and so coverage, the same per run.
        env = dict(os.environ, PYTHONHASHSEED="0")
        with open(log, "w") as fh:
            proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False, env=env)
        sessions += 1
        stats = _session_stats(out)
        runs_left = (args.runs if args.runs else 10**12) - stats["runs"]
        if proc.returncode != 0:
            text = log.read_text(errors="replace")
            artifact = re.findall(r"Test unit written to (\S+)", text)
            reason = re.findall(r"==\d+== ERROR: libFuzzer: ([^\n]+)", text) or \
                re.findall(r"(Uncaught Python exception[^\n]*)", text) or ["exit status "
                                                                         f"{proc.returncode}"]
            crashes.append({"reason": reason[0], "artifact": artifact[0] if artifact else None,
                            "log": str(log)})
            print(f"fuzz: session {sessions} ended: {reason[0]}; input: "
                  f"{artifact[0] if artifact else '?'}", flush=True)
    stats = _session_stats(out)
    findings = Findings(out / "findings.json").items
    return report(args, stats, findings, crashes, time.time() - start)


def _session_stats(out: Path) -> dict[str, float]:
    total = {"runs": 0, "inputs_with_findings": 0, "seconds": 0.0}
    for path in out.glob("stats-*.json"):
        try:
            s = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for key in total:
            total[key] += s[key]
    return total


def report(args: argparse.Namespace, stats: dict[str, float], findings: dict[str, Any],
           crashes: list[dict[str, Any]], wall: float) -> int:
    new = [f for f in findings.values() if not f.get("known")]
    known = [f for f in findings.values() if f.get("known")]
    # New findings in full; known ones as one line per KNOWN entry (all of them
    # are in <out>/findings.json, with reproducers).
    for f in sorted(new, key=lambda f: (f["op"], f["category"])):
        print(f"\n--- NEW finding {f['signature']}: {f['op']} {f['category']} "
              f"({f['count']} inputs)\n{f['message']}\n{f['repro']}")
        if f.get("traceback"):
            print(f["traceback"].rstrip())
    groups: dict[str, list[dict[str, Any]]] = {}
    for f in known:
        groups.setdefault(f["known"], []).append(f)
    for name, items in groups.items():
        print(f"known: {name}: {sum(f['count'] for f in items)} inputs, "
              f"{len(items)} signatures ({', '.join(sorted({f['op'] for f in items}))})")
    for c in crashes:
        print(f"\n--- crash or hang: {c['reason']}\n    replay: python {Path(__file__).name} "
              f"--replay {c['artifact']}\n    log: {c['log']}")
    runs = int(stats["runs"])
    print(f"\nfuzz summary: {runs} inputs in {stats['seconds']:.0f} s of fuzzing "
          f"({wall:.0f} s wall, {runs / max(stats['seconds'], 1e-9):.0f}/s); findings: "
          f"{len(new)} new, {len(known)} known; crashes or hangs: {len(crashes)}")
    if args.fail_on == "none":
        failing = 0
    elif args.fail_on == "new":
        failing = sum(f["count"] for f in new) + len(crashes)
    else:
        failing = int(stats["inputs_with_findings"]) + len(crashes)
    failing = min(failing, runs) if runs else failing
    print(f"fuzz: {runs - failing} passed, {failing} failed")
    return 1 if failing else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0, help="fuzzing time budget")
    parser.add_argument("--runs", type=int, default=0, help="number of inputs to run")
    parser.add_argument("--seed", type=int, default=1, help="libFuzzer's -seed (first session)")
    parser.add_argument("--timeout", type=int, default=20, help="seconds before an input hangs")
    parser.add_argument("--out", default="/tmp/convx-fuzz", help="corpus, findings and logs")
    parser.add_argument("--fresh", action="store_true",
                        help="forget the corpus and findings already in --out")
    parser.add_argument("--fail-on", choices=("any", "new", "none"), default="any")
    parser.add_argument("--avoid-known-crashes", action="store_true",
                        help="draw no huge ints below 2**62 (see HUGE_INTS_SAFE)")
    parser.add_argument("--replay", nargs="*", help="run these input files once, verbosely")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--runs-left", type=int, default=0, help=argparse.SUPPRESS)
    argv = sys.argv[1:]
    rest: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, rest = argv[:cut], argv[cut + 1:]
    args = parser.parse_args(argv)
    if args.child:
        child(args, rest)
        return 0
    if args.replay is not None:
        global AVOID_KNOWN_CRASHES
        AVOID_KNOWN_CRASHES = args.avoid_known_crashes
        _import_convx(instrument=False)
        for path in args.replay:
            found = execute(Path(path).read_bytes(), None, verbose=True)
            for f in found:
                print(f"FINDING {f['category']}: {f['message']}")
        return 0
    if not args.seconds and not args.runs:
        parser.error("give --seconds and/or --runs (or --replay)")
    return driver(args)


if __name__ == "__main__":
    sys.exit(main())
