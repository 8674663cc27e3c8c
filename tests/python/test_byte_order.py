"""Byte-swapped input is treated the same way by every function: converted with one copy,
alone or mixed with native arrays, giving exactly the native result; a byte-swapped `out`
cannot be written in place and is refused with an error that says why."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import convx

SWAPPED = [">f4", ">f8"] if np.little_endian else ["<f4", "<f8"]


def _native(swapped: str) -> np.dtype[Any]:
    return np.dtype(swapped).newbyteorder("=")


def _data(swapped: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    dt = _native(swapped)
    return {
        "x": rng.standard_normal((2, 7, 6, 4)).astype(dt),
        "w": rng.standard_normal((5, 3, 3, 4)).astype(dt),
        "b": rng.standard_normal(5).astype(dt),
        "a": rng.standard_normal((9, 4)).astype(dt),
        "m": rng.standard_normal((4, 6)).astype(dt),
    }


def _swapped_variants(arrays: dict[str, np.ndarray], names: tuple[str, ...], swapped: str
                      ) -> list[dict[str, np.ndarray]]:
    """Each named array swapped alone, then all of them swapped."""
    variants = [{**arrays, name: arrays[name].astype(swapped)} for name in names]
    if len(names) > 1:
        variants.append({**arrays, **{name: arrays[name].astype(swapped) for name in names}})
    return variants


def _assert_same(got: Any, want: Any) -> None:
    if isinstance(want, tuple):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            _assert_same(g, w)
        return
    assert got.dtype == want.dtype and got.dtype.isnative
    np.testing.assert_array_equal(got, want)


# Each function of the arrays, and the arrays it takes.
CALLS: dict[str, tuple[Callable[[dict[str, np.ndarray]], Any], tuple[str, ...]]] = {
    "gemm": (lambda d: convx.gemm(d["a"], d["m"]), ("a", "m")),
    "gemm_views": (lambda d: convx.gemm(d["m"].T, d["a"].T), ("a", "m")),
    "conv2d": (lambda d: convx.conv2d(d["x"], d["w"], d["b"], padding=1), ("x", "w", "b")),
    "conv2d_nchw": (lambda d: convx.conv2d(d["x"].transpose(0, 3, 1, 2),
                                           d["w"].transpose(0, 3, 1, 2), d["b"],
                                           layout="NCHW"), ("x", "w", "b")),
    "im2col": (lambda d: convx.im2col(d["x"], 3, padding=1), ("x",)),
    "pad": (lambda d: convx.pad(d["x"], ((1, 0), (2, 3))), ("x",)),
    "conv_matrix": (lambda d: convx.conv_matrix((7, 6), d["w"], padding=1, format="coo"),
                    ("w",)),
    "conv_matrix_dense": (lambda d: convx.conv_matrix((5, 4), d["w"], format="dense"),
                          ("w",)),
    "conv_bias_vector": (lambda d: convx.conv_bias_vector((7, 6), d["w"], d["b"]),
                         ("w", "b")),
}


@pytest.mark.parametrize("swapped", SWAPPED)
@pytest.mark.parametrize("function", sorted(CALLS))
def test_function_converts_swapped_input(function: str, swapped: str) -> None:
    call, names = CALLS[function]
    arrays = _data(swapped)
    want = call(arrays)
    for variant in _swapped_variants(arrays, names, swapped):
        _assert_same(call(variant), want)


@pytest.mark.parametrize("swapped", SWAPPED)
def test_layer_takes_swapped_input_and_parameters(swapped: str) -> None:
    arrays = _data(swapped)
    x, w, b = arrays["x"], arrays["w"], arrays["b"]
    dt = _native(swapped)
    layer = convx.Conv2D(4, 5, 3, padding=1, dtype=dt, seed=0)
    layer.weight, layer.bias = w, b
    want = convx.conv2d(x, w, b, padding=1)
    for _ in range(2):  # the validating path, then the cached operator
        _assert_same(layer(x), want)
    for _ in range(2):
        _assert_same(layer(x.astype(swapped)), want)
    twin = convx.Conv2D(4, 5, 3, padding=1, dtype=dt, seed=0)
    twin.weight, twin.bias = w.astype(swapped), b.astype(swapped)
    assert twin.weight.dtype == dt and twin.bias is not None and twin.bias.dtype == dt
    for _ in range(2):
        _assert_same(twin(x), want)
        _assert_same(twin(x.astype(swapped)), want)


@pytest.mark.parametrize("swapped", SWAPPED)
def test_dtype_arguments_name_the_numbers_not_the_byte_order(swapped: str) -> None:
    dt = _native(swapped)
    layer = convx.Conv2D(4, 5, 3, dtype=swapped, seed=0)
    assert layer.weight.dtype == dt
    assert layer.weight.dtype.isnative
    np.testing.assert_array_equal(layer.weight, convx.Conv2D(4, 5, 3, dtype=dt, seed=0).weight)
    assert convx.workspace_bytes((1, 7, 6, 4), (5, 3, 3, 4), dtype=swapped) == \
        convx.workspace_bytes((1, 7, 6, 4), (5, 3, 3, 4), dtype=dt)


@pytest.mark.parametrize("swapped", SWAPPED)
def test_swapped_out_is_refused(swapped: str) -> None:
    arrays = _data(swapped)
    x, w, b, a, m = (arrays[k] for k in "xwbam")
    layer = convx.Conv2D(4, 5, 3, padding=1, dtype=_native(swapped), seed=0)
    calls: list[tuple[Callable[[np.ndarray], Any], tuple[int, ...]]] = [
        (lambda out: convx.gemm(a, m, out=out), (9, 6)),
        (lambda out: convx.gemm(a.astype(swapped), m, out=out), (9, 6)),
        (lambda out: convx.conv2d(x, w, b, padding=1, out=out), (*x.shape[:3], 5)),
        (lambda out: convx.conv2d(x.astype(swapped), w, b, padding=1, out=out),
         (*x.shape[:3], 5)),
        (lambda out: layer(x, out=out), (*x.shape[:3], 5)),
    ]
    for call, shape in calls:
        for _ in range(2):  # before and after an operator for the call is cached
            call(np.empty(shape, _native(swapped)))
            out = np.zeros(shape, swapped)
            with pytest.raises(TypeError, match=r"^out has dtype .* non-native byte order"):
                call(out)
            assert not out.any()
